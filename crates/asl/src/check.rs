//! Graph rules over a loaded state machine, with `petgraph`.
//!
//! Per scope (the machine, each Parallel branch, each Map processor): StartAt
//! and every Next/Default/Catch target exist in that same scope; every state
//! is reachable from StartAt; from every reachable state some terminal state
//! (End, Succeed, Fail) can be reached, so a loop with no way out is caught.

use std::collections::{HashMap, HashSet};

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{Dfs, Reversed};

use super::diagnostics::{Code, Diagnostic, child_pointer};
use super::load::suggest;
use super::model::{EdgeKind, Scope, StateMachine};

/// Run every graph rule on the machine and its nested scopes.
pub fn check_machine(machine: &StateMachine, out: &mut Vec<Diagnostic>) {
    let mut owner: HashMap<&str, &str> = HashMap::new();
    collect_owners(&machine.scope, &mut owner);
    check_scope(&machine.scope, &owner, out, "the state machine");
}

/// Map every state name to the pointer of the scope that holds it.
fn collect_owners<'a>(scope: &'a Scope, owner: &mut HashMap<&'a str, &'a str>) {
    for name in scope.states.keys() {
        owner.entry(name.as_str()).or_insert(scope.pointer.as_str());
    }
    for child in scope.children() {
        collect_owners(child, owner);
    }
}

fn scope_label(pointer: &str) -> String {
    if pointer.is_empty() {
        "the top level".to_string()
    } else {
        format!("the scope at {pointer}")
    }
}

fn check_scope(scope: &Scope, owner: &HashMap<&str, &str>, out: &mut Vec<Diagnostic>, what: &str) {
    let mut graph: DiGraph<&str, EdgeKind> =
        DiGraph::with_capacity(scope.states.len(), scope.states.len() * 2);
    let index: HashMap<&str, NodeIndex> = scope
        .states
        .keys()
        .map(|name| (name.as_str(), graph.add_node(name.as_str())))
        .collect();

    let missing = |target: &str, ptr: String, role: &str, out: &mut Vec<Diagnostic>| {
        match owner.get(target) {
            Some(other) => out.push(Diagnostic::error(
                Code::CrossScope,
                ptr,
                format!(
                    "{role} \"{target}\" is a state of {}, not of {}: a transition cannot enter or leave a Parallel branch or a Map processor",
                    scope_label(other),
                    scope_label(&scope.pointer)
                ),
            )),
            None if scope.broken.iter().any(|b| b == target) => {}
            None => {
                let hint = suggest(target, scope.states.keys().map(String::as_str))
                    .map(|s| format!("; did you mean \"{s}\"?"))
                    .unwrap_or_default();
                out.push(Diagnostic::error(
                    Code::UnknownState,
                    ptr,
                    format!("{role} \"{target}\" does not exist in {what}{hint}"),
                ));
            }
        }
    };

    let start = index.get(scope.start_at.as_str()).copied();
    if start.is_none() && !scope.broken.contains(&scope.start_at) {
        missing(
            &scope.start_at,
            child_pointer(&scope.pointer, "StartAt"),
            "StartAt",
            out,
        );
    }

    for (name, state) in &scope.states {
        let from = index[name.as_str()];
        for (target, kind) in state.successors() {
            match index.get(target) {
                Some(&to) => {
                    graph.add_edge(from, to, kind);
                }
                None if scope.broken.iter().any(|b| b == target) => {}
                None => {
                    let (ptr, role) = match kind {
                        EdgeKind::Next => (child_pointer(&state.pointer, "Next"), "Next"),
                        EdgeKind::Default => (child_pointer(&state.pointer, "Default"), "Default"),
                        EdgeKind::Choice(i) => (
                            child_pointer(
                                &child_pointer(
                                    &child_pointer(&state.pointer, "Choices"),
                                    &i.to_string(),
                                ),
                                "Next",
                            ),
                            "Next",
                        ),
                        EdgeKind::Catch(i) => (
                            child_pointer(
                                &child_pointer(
                                    &child_pointer(&state.pointer, "Catch"),
                                    &i.to_string(),
                                ),
                                "Next",
                            ),
                            "Catch Next",
                        ),
                    };
                    missing(target, ptr, role, out);
                }
            }
        }
    }

    // With a state that could not be modelled, reachability and termination
    // are unknowable: its own errors say what to fix first.
    if !scope.broken.is_empty() {
        recurse(scope, owner, out);
        return;
    }

    // Reachability from StartAt.
    let mut reachable: HashSet<NodeIndex> = HashSet::new();
    if let Some(s) = start {
        let mut dfs = Dfs::new(&graph, s);
        while let Some(n) = dfs.next(&graph) {
            reachable.insert(n);
        }
        for (name, state) in &scope.states {
            if !reachable.contains(&index[name.as_str()]) {
                out.push(Diagnostic::error(
                    Code::UnreachableState,
                    state.pointer.clone(),
                    format!(
                        "state \"{name}\" cannot be reached from StartAt \"{}\"",
                        scope.start_at
                    ),
                ));
            }
        }
    }

    // Every reachable state must be able to reach a terminal state.
    let terminals: Vec<NodeIndex> = scope
        .states
        .iter()
        .filter(|(_, s)| s.is_terminal())
        .map(|(n, _)| index[n.as_str()])
        .collect();
    if terminals.is_empty() && !scope.states.is_empty() {
        out.push(Diagnostic::error(
            Code::NoTerminal,
            child_pointer(&scope.pointer, "States"),
            format!(
                "{} has no terminal state: it needs a state with \"End\": true, a Succeed or a Fail state",
                capitalise(what)
            ),
        ));
    } else {
        let reversed = Reversed(&graph);
        let mut ends: HashSet<NodeIndex> = HashSet::new();
        // One search from all terminal states at once (the visited set is
        // shared), so the check is linear in the size of the scope.
        if let Some(&first) = terminals.first() {
            let mut dfs = Dfs::new(reversed, first);
            for &t in &terminals {
                if !dfs.discovered.contains(t.index()) {
                    dfs.move_to(t);
                }
                while let Some(n) = dfs.next(reversed) {
                    ends.insert(n);
                }
            }
        }
        for (name, state) in &scope.states {
            let i = index[name.as_str()];
            if reachable.contains(&i) && !ends.contains(&i) {
                out.push(Diagnostic::error(
                    Code::NoTerminal,
                    state.pointer.clone(),
                    format!(
                        "from state \"{name}\" no End, Succeed or Fail state can be reached: it loops forever"
                    ),
                ));
            }
        }
    }

    recurse(scope, owner, out);
}

fn recurse(scope: &Scope, owner: &HashMap<&str, &str>, out: &mut Vec<Diagnostic>) {
    for (name, state) in &scope.states {
        match &state.kind {
            super::model::StateKind::Parallel(p) => {
                for (i, b) in p.branches.iter().enumerate() {
                    check_scope(
                        b,
                        owner,
                        out,
                        &format!("branch {i} of Parallel state \"{name}\""),
                    );
                }
            }
            super::model::StateKind::Map(m) => {
                check_scope(
                    &m.processor,
                    owner,
                    out,
                    &format!("the item processor of Map state \"{name}\""),
                );
            }
            _ => {}
        }
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}
