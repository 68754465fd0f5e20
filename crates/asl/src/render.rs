//! Drawing a state machine as a Mermaid flowchart or a Graphviz DOT graph.
//!
//! Parallel branches and Map processors are subgraphs (clusters in DOT),
//! entered from their state by a thick edge; Catch edges are dashed and
//! labelled with their errors; Choice edges carry their rule; the Default
//! edge is labelled "Default".

use std::fmt::Write as _;

use super::model::{
    ChoiceRule, ConditionExpr, EdgeKind, Operand, Scope, State, StateKind, StateMachine,
};
use super::types::infer::EdgeType;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphFormat {
    Mermaid,
    Dot,
}

/// Render the machine in the chosen format.
pub fn render(machine: &StateMachine, format: GraphFormat) -> String {
    render_typed(machine, format, &[])
}

/// Render the machine with each edge labelled by the shape of the data on
/// it (its top-level fields; `?` marks a field only maybe present), as
/// [`crate::edge_types`] infers it.
pub fn render_typed(machine: &StateMachine, format: GraphFormat, edges: &[EdgeType]) -> String {
    let mut r = Renderer {
        out: String::new(),
        format,
        ids: std::collections::HashMap::new(),
        next_id: 0,
        shapes: edges
            .iter()
            .map(|e| {
                (
                    (e.scope.clone(), e.from.clone(), e.to.clone(), e.kind),
                    e.ty.shape(),
                )
            })
            .collect(),
    };
    r.machine(machine);
    r.out
}

type EdgeKey = (String, Option<String>, Option<String>, Option<EdgeKind>);

struct Renderer<'a> {
    out: String,
    format: GraphFormat,
    ids: std::collections::HashMap<(&'a str, &'a str), String>,
    next_id: usize,
    shapes: std::collections::HashMap<EdgeKey, String>,
}

impl<'a> Renderer<'a> {
    /// A stable id for a state (names are unique per machine, but keep the
    /// scope in the key so that an invalid machine still renders).
    fn id(&mut self, scope: &'a Scope, name: &'a str) -> String {
        if let Some(id) = self.ids.get(&(scope.pointer.as_str(), name)) {
            return id.clone();
        }
        let id = format!("s{}", self.next_id);
        self.next_id += 1;
        self.ids.insert((scope.pointer.as_str(), name), id.clone());
        id
    }

    fn fresh(&mut self, prefix: &str) -> String {
        let id = format!("{prefix}{}", self.next_id);
        self.next_id += 1;
        id
    }

    fn machine(&mut self, m: &'a StateMachine) {
        match self.format {
            GraphFormat::Mermaid => {
                self.out.push_str("flowchart TD\n");
                self.out
                    .push_str("    classDef choice fill:#fff4d6,stroke:#b58900\n");
                self.out
                    .push_str("    classDef fail fill:#fde2e1,stroke:#c0392b\n");
                self.out
                    .push_str("    classDef succeed fill:#e3f6e5,stroke:#2e7d32\n");
            }
            GraphFormat::Dot => {
                self.out.push_str("digraph state_machine {\n");
                self.out.push_str("    rankdir=TB;\n    node [shape=box, style=rounded, fontname=\"Helvetica\"];\n    edge [fontname=\"Helvetica\", fontsize=10];\n");
            }
        }
        self.scope(&m.scope, "    ");
        if self.format == GraphFormat::Dot {
            self.out.push_str("}\n");
        }
    }

    fn scope(&mut self, scope: &'a Scope, indent: &str) {
        let start = self.fresh("start");
        let end = self.fresh("end");
        match self.format {
            GraphFormat::Mermaid => {
                let _ = writeln!(self.out, "{indent}{start}((\"Start\"))");
                let _ = writeln!(self.out, "{indent}{end}((\"End\"))");
            }
            GraphFormat::Dot => {
                let _ = writeln!(
                    self.out,
                    "{indent}{start} [label=\"Start\", shape=circle, style=filled, fillcolor=\"#dddddd\"];"
                );
                let _ = writeln!(
                    self.out,
                    "{indent}{end} [label=\"End\", shape=doublecircle, style=filled, fillcolor=\"#dddddd\"];"
                );
            }
        }
        for (name, state) in &scope.states {
            self.node(scope, name, state, indent);
        }
        if scope.states.contains_key(&scope.start_at) {
            let first = self.id(scope, &scope.start_at);
            let shape = self.shape(scope, None, Some(&scope.start_at), None);
            self.edge(indent, &start, &first, None, shape, EdgeStyle::Plain);
        }
        for (name, state) in &scope.states {
            let from = self.id(scope, name);
            for (target, kind) in state.successors() {
                if !scope.states.contains_key(target) {
                    continue;
                }
                let Some((target, _)) = scope.states.get_key_value(target) else {
                    continue;
                };
                let to = self.id(scope, target);
                let (label, style) = match kind {
                    EdgeKind::Next => (None, EdgeStyle::Plain),
                    EdgeKind::Default => (Some("Default".to_string()), EdgeStyle::Plain),
                    EdgeKind::Choice(i) => {
                        let label = match &state.kind {
                            StateKind::Choice(c) => c.choices.get(i).map(|b| rule_text(&b.rule)),
                            _ => None,
                        };
                        (label, EdgeStyle::Plain)
                    }
                    EdgeKind::Catch(i) => {
                        let label = state
                            .catchers()
                            .get(i)
                            .map(|c| format!("catch {}", c.error_equals.join(", ")));
                        (label, EdgeStyle::Dashed)
                    }
                };
                let shape = self.shape(scope, Some(name), Some(target), Some(kind));
                self.edge(indent, &from, &to, label.as_deref(), shape, style);
            }
            if state.is_terminal() {
                let shape = self.shape(scope, Some(name), None, None);
                self.edge(indent, &from, &end, None, shape, EdgeStyle::Plain);
            }
        }
    }

    fn node(&mut self, scope: &'a Scope, name: &'a str, state: &'a State, indent: &str) {
        let id = self.id(scope, name);
        let type_name = state.kind.type_name();
        match self.format {
            GraphFormat::Mermaid => {
                let label = mermaid_escape(name);
                let shape = match &state.kind {
                    StateKind::Choice(_) => format!("{{\"{label}\"}}"),
                    StateKind::Succeed | StateKind::Fail(_) => format!("([\"{label}\"])"),
                    StateKind::Wait(_) => format!("[/\"{label}\"/]"),
                    StateKind::Parallel(_) | StateKind::Map(_) => format!("[[\"{label}\"]]"),
                    StateKind::Pass(_) => format!("(\"{label}\")"),
                    StateKind::Task(_) => format!("[\"{label}\"]"),
                };
                let _ = writeln!(self.out, "{indent}{id}{shape}");
                let class = match &state.kind {
                    StateKind::Choice(_) => Some("choice"),
                    StateKind::Fail(_) => Some("fail"),
                    StateKind::Succeed => Some("succeed"),
                    _ => None,
                };
                if let Some(c) = class {
                    let _ = writeln!(self.out, "{indent}class {id} {c}");
                }
            }
            GraphFormat::Dot => {
                let (shape, fill) = match &state.kind {
                    StateKind::Choice(_) => ("diamond", "#fff4d6"),
                    StateKind::Fail(_) => ("box", "#fde2e1"),
                    StateKind::Succeed => ("box", "#e3f6e5"),
                    StateKind::Parallel(_) | StateKind::Map(_) => ("box3d", "#e8eefc"),
                    StateKind::Wait(_) => ("parallelogram", "#f2f2f2"),
                    _ => ("box", "#ffffff"),
                };
                let _ = writeln!(
                    self.out,
                    "{indent}{id} [label=\"{}\\n({type_name})\", shape={shape}, style=\"rounded,filled\", fillcolor=\"{fill}\"];",
                    dot_escape(name)
                );
            }
        }
        let nested: Vec<(String, &'a Scope)> = match &state.kind {
            StateKind::Parallel(p) => p
                .branches
                .iter()
                .enumerate()
                .map(|(i, b)| (format!("{name} · branch {}", i + 1), b))
                .collect(),
            StateKind::Map(m) => vec![(format!("{name} · item processor"), &m.processor)],
            _ => Vec::new(),
        };
        for (title, sub) in nested {
            let sid = self.fresh("sub");
            let inner = format!("{indent}    ");
            match self.format {
                GraphFormat::Mermaid => {
                    let _ = writeln!(
                        self.out,
                        "{indent}subgraph {sid}[\"{}\"]",
                        mermaid_escape(&title)
                    );
                    let _ = writeln!(self.out, "{inner}direction TB");
                    self.scope(sub, &inner);
                    let _ = writeln!(self.out, "{indent}end");
                    let _ = writeln!(self.out, "{indent}{id} ==> {sid}");
                }
                GraphFormat::Dot => {
                    let _ = writeln!(self.out, "{indent}subgraph cluster_{sid} {{");
                    let _ = writeln!(
                        self.out,
                        "{inner}label=\"{}\";\n{inner}style=dashed;",
                        dot_escape(&title)
                    );
                    let before = self.next_id;
                    self.scope(sub, &inner);
                    let _ = writeln!(self.out, "{indent}}}");
                    // The scope's own start marker is the first id it took.
                    let _ = writeln!(self.out, "{indent}{id} -> start{before} [style=bold];");
                }
            }
        }
    }

    /// The shape of the data on an edge, when types were inferred.
    fn shape(
        &self,
        scope: &Scope,
        from: Option<&str>,
        to: Option<&str>,
        kind: Option<EdgeKind>,
    ) -> Option<String> {
        if self.shapes.is_empty() {
            return None;
        }
        self.shapes
            .get(&(
                scope.pointer.clone(),
                from.map(str::to_string),
                to.map(str::to_string),
                kind,
            ))
            .cloned()
    }

    fn edge(
        &mut self,
        indent: &str,
        from: &str,
        to: &str,
        label: Option<&str>,
        shape: Option<String>,
        style: EdgeStyle,
    ) {
        match self.format {
            GraphFormat::Mermaid => {
                let text = match (label, &shape) {
                    (None, None) => None,
                    (Some(l), None) => Some(mermaid_escape(l)),
                    (None, Some(s)) => Some(mermaid_escape(s)),
                    (Some(l), Some(s)) => {
                        Some(format!("{}<br/>{}", mermaid_escape(l), mermaid_escape(s)))
                    }
                };
                let arrow = match (style, text) {
                    (EdgeStyle::Plain, None) => " --> ".to_string(),
                    (EdgeStyle::Plain, Some(l)) => format!(" -->|\"{l}\"| "),
                    (EdgeStyle::Dashed, None) => " -.-> ".to_string(),
                    (EdgeStyle::Dashed, Some(l)) => format!(" -.->|\"{l}\"| "),
                };
                let _ = writeln!(self.out, "{indent}{from}{arrow}{to}");
            }
            GraphFormat::Dot => {
                let mut attrs = Vec::new();
                let text = match (label, &shape) {
                    (None, None) => None,
                    (Some(l), None) => Some(dot_escape(l)),
                    (None, Some(s)) => Some(dot_escape(s)),
                    (Some(l), Some(s)) => Some(format!("{}\\n{}", dot_escape(l), dot_escape(s))),
                };
                if let Some(l) = text {
                    attrs.push(format!("label=\"{l}\""));
                }
                if style == EdgeStyle::Dashed {
                    attrs.push("style=dashed".to_string());
                    attrs.push("color=\"#c0392b\"".to_string());
                }
                if attrs.is_empty() {
                    let _ = writeln!(self.out, "{indent}{from} -> {to};");
                } else {
                    let _ = writeln!(self.out, "{indent}{from} -> {to} [{}];", attrs.join(", "));
                }
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum EdgeStyle {
    Plain,
    Dashed,
}

/// A short text for a choice rule, e.g. `$.x == 1` or `not ($.a is present)`.
pub fn rule_text(rule: &ChoiceRule) -> String {
    match rule {
        ChoiceRule::And(rs) => join_rules(rs, " and "),
        ChoiceRule::Or(rs) => join_rules(rs, " or "),
        ChoiceRule::Not(r) => format!("not ({})", rule_text(r)),
        ChoiceRule::Compare {
            variable,
            op,
            operand,
        } => {
            let operand = match operand {
                Operand::Literal(v) => v.to_string(),
                Operand::Path(p) => p.as_str().to_string(),
            };
            format!("{} {} {}", variable.as_str(), op.name(), operand)
        }
        ChoiceRule::Condition(ConditionExpr::Literal(b)) => b.to_string(),
        ChoiceRule::Condition(ConditionExpr::Jsonata(e)) => e.source().to_string(),
    }
}

fn join_rules(rs: &[ChoiceRule], sep: &str) -> String {
    rs.iter()
        .map(|r| format!("({})", rule_text(r)))
        .collect::<Vec<_>>()
        .join(sep)
}

fn mermaid_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn dot_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}
