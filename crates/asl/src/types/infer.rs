//! Type inference over the state graph, and the checks it makes possible.
//!
//! From the workflow's input type (its `schemas/NAME.input.json`), the data
//! is followed through every state and edge: InputPath, Parameters /
//! Arguments, the step's output (its contract), ResultSelector, ResultPath,
//! OutputPath; Next, Choice branches (narrowed by their rules), Default,
//! Catch (the error output), Parallel branches (a result per branch) and
//! Map items (`$$.Map.Item.Value`). Where edges meet, types join; loops run
//! to a fixed point (widened to unknown after a few rounds). Then each state
//! is checked once against the type that reaches it:
//!
//! - `path-field-unknown` (error): a JSONPath (or a JSONata
//!   `$states.input…` path) reads a field that no type on any incoming edge
//!   has, with the nearest field;
//! - `path-field-maybe` (warning): it reads a field present on some
//!   incoming edges only, or optional in the schema, with no Choice
//!   `IsPresent` (or comparison) guarding it;
//! - `step-field-type` (error): a path gives a step's field a value of a
//!   type the field never takes;
//! - `choice-unmatchable` (error): a Choice compares a field with a string
//!   it can never hold (outside the schema's `enum`, or an error no state
//!   before the Catch can raise);
//! - `error-unraisable` (error): a Catch or Retry of a Parallel or Map
//!   names an error no state inside can raise (a `piflow:` Task's own are
//!   checked with or without a schema: [`check_errors`]);
//! - `output-mismatch` (error): an end state's output does not fit
//!   `schemas/NAME.output.json`.
//!
//! Variables (`Assign`) are not typed: reads of `$name` are unknown.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::Value;

use super::{Read, Ty};
use crate::diagnostics::{Code, Diagnostic, child_pointer};
use crate::intrinsic::{IntrinsicArg, IntrinsicCall, IntrinsicFn, PayloadExpr};
use crate::jsonata::JsonataExpr;
use crate::load::suggest;
use crate::model::{
    Catcher, ChoiceRule, Comparison, EdgeKind, Nullable, Operand, QueryLanguage, ResultHandling,
    Retrier, Scope, State, StateKind, StateMachine, Template, Transition,
};
use crate::path::{JsonPath, PathRoot, ReferencePath, Step};
use crate::steps::StepSpec;

/// After this many growths of one state's input type, it is unknown (a
/// loop that nests its data deeper each round never settles otherwise).
const WIDEN_AFTER: usize = 8;

/// The errors every task can raise, whatever it does.
const RUNTIME_ERRORS: &[&str] = &[
    "States.ALL",
    "States.TaskFailed",
    "States.Timeout",
    "States.HeartbeatTimeout",
    "States.Permissions",
    "States.Runtime",
    "States.DataLimitExceeded",
    "States.ResultPathMatchFailure",
    "States.ParameterPathFailure",
    "States.IntrinsicFailure",
    "States.QueryEvaluationError",
    "States.BranchFailed",
    "States.NoChoiceMatched",
    "States.ExceedToleratedFailureThreshold",
    "States.ItemReaderFailed",
    "States.ResultWriterFailed",
];

/// What the checks know beyond the definition.
#[derive(Debug, Clone, Default)]
pub struct Typing<'a> {
    /// The installed steps (their input and output schemas, their errors).
    pub steps: &'a [StepSpec],
    /// The workflow's input type; `None`: no schema, no data-flow checks.
    pub input: Option<Ty>,
    /// The workflow's output type and its file, when it declares one.
    pub output: Option<(Ty, String)>,
}

/// The data on one edge, for drawing (`piflow graph --types`).
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeType {
    /// The pointer of the scope (the machine, a branch, a processor).
    pub scope: String,
    /// `None`: the scope's start.
    pub from: Option<String>,
    /// `None`: the scope's end (the state's output).
    pub to: Option<String>,
    pub kind: Option<EdgeKind>,
    pub ty: Ty,
}

struct Checker<'a> {
    steps: HashMap<&'a str, &'a StepSpec>,
    execution_input: Ty,
    diagnostics: Vec<Diagnostic>,
    /// Edge types are kept only for drawing.
    keep_edges: bool,
    edges: Vec<EdgeType>,
}

/// Infer the types of a machine and check its data paths (only with an
/// input type); with `keep_edges`, returns each edge's type.
pub fn check(
    machine: &StateMachine,
    typing: &Typing<'_>,
    keep_edges: bool,
    out: &mut Vec<Diagnostic>,
) -> Vec<EdgeType> {
    let Some(input) = &typing.input else {
        return Vec::new();
    };
    let mut c = Checker {
        steps: typing
            .steps
            .iter()
            .map(|s| (s.resource.as_str(), s))
            .collect(),
        execution_input: input.clone(),
        diagnostics: Vec::new(),
        keep_edges,
        edges: Vec::new(),
    };
    let ctx = c.context(None);
    let result = c.scope(&machine.scope, input.clone(), &ctx);
    if let Some((expected, file)) = &typing.output {
        c.check_output(&result.ends, expected, file);
    }
    // A path read in two places of one field is reported once.
    let mut seen = HashSet::new();
    out.extend(
        c.diagnostics
            .into_iter()
            .filter(|d| seen.insert((d.pointer.clone(), d.message.clone()))),
    );
    c.edges
}

/// The states of a scope reachable from its start, in reverse postorder
/// (the start first).
fn reverse_postorder(scope: &Scope) -> Vec<&str> {
    let mut post: Vec<&str> = Vec::with_capacity(scope.states.len());
    let mut seen: HashSet<&str> = HashSet::with_capacity(scope.states.len());
    let Some((start, _)) = scope.states.get_key_value(&scope.start_at) else {
        return post;
    };
    // An explicit stack: a 10,000-state chain must not recurse 10,000 deep.
    let mut stack: Vec<(&str, Vec<&str>)> = Vec::new();
    let successors = |name: &str| -> Vec<&str> {
        scope
            .states
            .get(name)
            .map(|s| {
                s.successors()
                    .into_iter()
                    .filter_map(|(t, _)| scope.states.get_key_value(t).map(|(k, _)| k.as_str()))
                    .rev()
                    .collect()
            })
            .unwrap_or_default()
    };
    seen.insert(start.as_str());
    stack.push((start.as_str(), successors(start)));
    while let Some((node, pending)) = stack.last_mut() {
        match pending.pop() {
            Some(next) => {
                if seen.insert(next) {
                    let succ = successors(next);
                    stack.push((next, succ));
                }
            }
            None => {
                post.push(node);
                stack.pop();
            }
        }
    }
    post.reverse();
    post
}

/// The outputs of a scope's end states.
struct ScopeResult<'s> {
    output: Ty,
    ends: Vec<(&'s str, String, Ty)>,
}

/// What one run of a state found: its checks, the edges of the scopes
/// nested in it, and its outgoing edges.
struct Run<'s> {
    diagnostics: Vec<Diagnostic>,
    nested: Vec<EdgeType>,
    outs: Vec<Out<'s>>,
}

/// One outgoing edge of a state.
struct Out<'s> {
    to: Option<&'s str>,
    kind: Option<EdgeKind>,
    ty: Ty,
}

fn base_resource(r: &str) -> &str {
    r.strip_suffix(".waitForTaskToken").unwrap_or(r)
}

impl<'a> Checker<'a> {
    fn diag(&mut self, d: Diagnostic) {
        self.diagnostics.push(d);
    }

    /// The context object (`$$`), inside a Map processor with its item.
    fn context(&self, item: Option<Ty>) -> Ty {
        let s = Ty::string;
        let mut fields = vec![
            (
                "Execution".to_string(),
                Ty::object(super::Obj {
                    fields: [
                        ("Id".to_string(), (s(), true)),
                        ("Input".to_string(), (self.execution_input.clone(), true)),
                        ("Name".to_string(), (s(), true)),
                        ("RoleArn".to_string(), (s(), true)),
                        ("StartTime".to_string(), (s(), true)),
                        ("RedriveCount".to_string(), (Ty::number(), true)),
                        ("RedriveTime".to_string(), (s(), false)),
                    ]
                    .into_iter()
                    .map(|(k, v)| (super::Key::from(k), v))
                    .collect(),
                    rest: None,
                }),
                true,
            ),
            (
                "State".to_string(),
                Ty::object(super::Obj {
                    fields: [
                        ("EnteredTime".to_string(), (s(), true)),
                        ("Name".to_string(), (s(), true)),
                        ("RetryCount".to_string(), (Ty::number(), false)),
                    ]
                    .into_iter()
                    .map(|(k, v)| (super::Key::from(k), v))
                    .collect(),
                    rest: None,
                }),
                true,
            ),
            (
                "StateMachine".to_string(),
                Ty::record([("Id".to_string(), s()), ("Name".to_string(), s())]),
                true,
            ),
            (
                "Task".to_string(),
                Ty::record([("Token".to_string(), s())]),
                false,
            ),
        ];
        if let Some(item) = item {
            fields.push((
                "Map".to_string(),
                Ty::record([(
                    "Item".to_string(),
                    Ty::record([
                        ("Index".to_string(), Ty::number()),
                        ("Value".to_string(), item),
                    ]),
                )]),
                true,
            ));
        }
        Ty::object(super::Obj {
            fields: fields
                .into_iter()
                .map(|(k, t, always)| (super::Key::from(k), (t, always)))
                .collect(),
            rest: None,
        })
    }

    /// Follow the data through a scope to a fixed point. Each state's
    /// checks and edges are those of its last run: a state runs again
    /// whenever its input grows, so its last run saw its final input (and
    /// no state runs twice only to report).
    fn scope<'s>(&mut self, scope: &'s Scope, input: Ty, ctx: &Ty) -> ScopeResult<'s> {
        let mut ins: HashMap<&'s str, Ty> = HashMap::new();
        let mut growths: HashMap<&'s str, usize> = HashMap::new();
        let mut last: HashMap<&'s str, Run<'s>> = HashMap::new();
        // States are taken in reverse postorder (a state before the states
        // it leads to, loops apart), so that a state whose inputs all come
        // from earlier states runs once, with all of them joined.
        let order = reverse_postorder(scope);
        let rank: HashMap<&'s str, usize> =
            order.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let mut work: BTreeSet<usize> = BTreeSet::new();
        if let Some((start, _)) = scope.states.get_key_value(&scope.start_at) {
            ins.insert(start.as_str(), input.clone());
            work.insert(0);
        }
        while let Some(i) = work.pop_first() {
            let name = order[i];
            let (Some(state), Some(t_in)) = (scope.states.get(name), ins.get(name).cloned()) else {
                continue;
            };
            let saved = (
                std::mem::take(&mut self.diagnostics),
                std::mem::take(&mut self.edges),
            );
            let outs = self.transfer(state, &t_in, ctx);
            let run = Run {
                diagnostics: std::mem::replace(&mut self.diagnostics, saved.0),
                nested: std::mem::replace(&mut self.edges, saved.1),
                outs,
            };
            for out in &run.outs {
                let Some(to) = out.to else { continue };
                let Some((to, _)) = scope.states.get_key_value(to) else {
                    continue;
                };
                let to = to.as_str();
                let entry = ins.entry(to).or_insert_with(Ty::never);
                if out.ty.leq(entry) {
                    continue;
                }
                let joined = entry.join(&out.ty);
                if joined != *entry {
                    let n = growths.entry(to).or_insert(0);
                    *n += 1;
                    *entry = if *n > WIDEN_AFTER { Ty::any() } else { joined };
                    if let Some(r) = rank.get(to) {
                        work.insert(*r);
                    }
                }
            }
            last.insert(name, run);
        }
        if self.keep_edges {
            self.edges.push(EdgeType {
                scope: scope.pointer.clone(),
                from: None,
                to: Some(scope.start_at.clone()),
                kind: None,
                ty: input,
            });
        }
        let mut result = ScopeResult {
            output: Ty::never(),
            ends: Vec::new(),
        };
        // In the order of the definition.
        for (name, state) in &scope.states {
            let Some(run) = last.remove(name.as_str()) else {
                continue;
            };
            self.diagnostics.extend(run.diagnostics);
            self.edges.extend(run.nested);
            for out in run.outs {
                if out.to.is_none() {
                    result.output = result.output.join(&out.ty);
                    result
                        .ends
                        .push((name.as_str(), state.pointer.clone(), out.ty.clone()));
                }
                if self.keep_edges {
                    self.edges.push(EdgeType {
                        scope: scope.pointer.clone(),
                        from: Some(name.clone()),
                        to: out.to.map(str::to_string),
                        kind: out.kind,
                        ty: out.ty,
                    });
                }
            }
        }
        result
    }

    /// A state's outgoing edges (an edge without a target: its output at
    /// the end of the scope), given its input.
    fn transfer<'s>(&mut self, state: &'s State, raw: &Ty, ctx: &Ty) -> Vec<Out<'s>> {
        if state.query_language == QueryLanguage::Jsonata {
            return self.transfer_jsonata(state, raw, ctx);
        }
        let mut outs = Vec::new();
        let eff = match &state.input_path {
            None => raw.clone(),
            Some(Nullable::Null) => Ty::record([]),
            Some(Nullable::Value(p)) => self.read(
                p,
                raw,
                ctx,
                state,
                &child_pointer(&state.pointer, "InputPath"),
            ),
        };
        match &state.kind {
            StateKind::Pass(p) => {
                let result = match (&p.parameters, &p.result) {
                    (Some(t), _) => self.template(
                        t,
                        &eff,
                        ctx,
                        state,
                        &child_pointer(&state.pointer, "Parameters"),
                    ),
                    (None, Some(v)) => Ty::of_value(v),
                    (None, None) => eff.clone(),
                };
                let after = result_path(&p.result_path, raw, result);
                let t = self.output_path(state, after, ctx);
                outs.extend(transition_out(state, t));
            }
            StateKind::Task(task) => {
                let step = match &task.resource_kind {
                    crate::model::ResourceKind::Piflow(_) => self
                        .steps
                        .get(base_resource(&task.resource))
                        .map(|s| (*s, s.output_type().clone())),
                    _ => None,
                };
                if let Some(params) = &task.io.parameters {
                    let ptr = child_pointer(&state.pointer, "Parameters");
                    let given = self.template(params, &eff, ctx, state, &ptr);
                    if let Some((spec, _)) = step {
                        self.check_step_fields(spec, params, &given, state, &ptr);
                    }
                }
                let result = step.map(|(_, o)| o).unwrap_or_else(Ty::any);
                self.result_edges(state, &task.io, raw, result, ctx, &mut outs);
            }
            StateKind::Choice(choice) => {
                let mut rest = eff.clone();
                for (i, branch) in choice.choices.iter().enumerate() {
                    let ptr = branch.pointer.clone();
                    let taken = self.rule(&branch.rule, &rest, ctx, state, &ptr, true);
                    let t = self.output_path(state, taken, ctx);
                    outs.push(Out {
                        to: Some(branch.next.as_str()),
                        kind: Some(EdgeKind::Choice(i)),
                        ty: t,
                    });
                    rest = narrow(&branch.rule, &rest, false);
                }
                if let Some(d) = &choice.default {
                    let t = self.output_path(state, rest, ctx);
                    outs.push(Out {
                        to: Some(d.as_str()),
                        kind: Some(EdgeKind::Default),
                        ty: t,
                    });
                }
            }
            StateKind::Wait(w) => {
                if let crate::model::WaitUntil::TimestampPath(p) = &w.until {
                    self.read_reference(
                        p,
                        &eff,
                        ctx,
                        state,
                        &child_pointer(&state.pointer, "TimestampPath"),
                    );
                }
                if let crate::model::WaitUntil::Seconds(crate::model::NumberSource::Path(p)) =
                    &w.until
                {
                    self.read_reference(
                        p,
                        &eff,
                        ctx,
                        state,
                        &child_pointer(&state.pointer, "SecondsPath"),
                    );
                }
                let t = self.output_path(state, eff, ctx);
                outs.extend(transition_out(state, t));
            }
            StateKind::Succeed => {
                let t = self.output_path(state, eff, ctx);
                outs.push(Out {
                    to: None,
                    kind: None,
                    ty: t,
                });
            }
            StateKind::Fail(f) => {
                for (src, field) in [(&f.error, "ErrorPath"), (&f.cause, "CausePath")] {
                    if let Some(crate::model::StringSource::Path(e)) = src {
                        self.payload(e, &eff, ctx, state, &child_pointer(&state.pointer, field));
                    }
                }
            }
            StateKind::Parallel(p) => {
                let branch_input = match &p.io.parameters {
                    Some(t) => self.template(
                        t,
                        &eff,
                        ctx,
                        state,
                        &child_pointer(&state.pointer, "Parameters"),
                    ),
                    None => eff.clone(),
                };
                let results: Vec<Ty> = p
                    .branches
                    .iter()
                    .map(|b| {
                        let inner = self.context(None);
                        self.scope(b, branch_input.clone(), &inner).output
                    })
                    .collect();
                self.scope_errors(state, &p.io, p.branches.iter().collect());
                self.result_edges(state, &p.io, raw, Ty::tuple(results), ctx, &mut outs);
            }
            StateKind::Map(m) => {
                // With an ItemReader, ItemsPath selects in what it reads.
                let items = match (&m.items_path, &m.item_reader) {
                    (_, Some(_)) => Ty::any(),
                    (Some(p), None) => self.read(
                        p,
                        &eff,
                        ctx,
                        state,
                        &child_pointer(&state.pointer, "ItemsPath"),
                    ),
                    (None, None) => eff.clone(),
                };
                let item = match (&items.array, items.any || m.item_reader.is_some()) {
                    (Some(a), false) => a.items.clone(),
                    _ => Ty::any(),
                };
                let item_ctx = self.context(Some(item.clone()));
                let processor_input = match &m.item_selector {
                    Some(t) => self.template(
                        t,
                        &eff,
                        &item_ctx,
                        state,
                        &child_pointer(&state.pointer, "ItemSelector"),
                    ),
                    None => item,
                };
                let inner = self.context(None);
                let out = self.scope(&m.processor, processor_input, &inner).output;
                self.scope_errors(state, &m.io, vec![&m.processor]);
                let result = if m.result_writer.is_some() {
                    Ty::any()
                } else {
                    Ty::array(out)
                };
                self.result_edges(state, &m.io, raw, result, ctx, &mut outs);
            }
        }
        outs
    }

    /// ResultSelector, ResultPath, OutputPath on success, and the Catch
    /// edges with their error outputs.
    fn result_edges<'s>(
        &mut self,
        state: &'s State,
        io: &'s ResultHandling,
        raw: &Ty,
        result: Ty,
        ctx: &Ty,
        outs: &mut Vec<Out<'s>>,
    ) {
        let result = match &io.result_selector {
            Some(t) => self.template(
                t,
                &result,
                ctx,
                state,
                &child_pointer(&state.pointer, "ResultSelector"),
            ),
            None => result,
        };
        let after = result_path(&io.result_path, raw, result);
        let t = self.output_path(state, after, ctx);
        outs.extend(transition_out(state, t));
        let raisable = self.raisable(state);
        for (i, c) in io.catch.iter().enumerate() {
            let error = error_output(c, raisable.as_ref());
            let t = result_path(&c.result_path, raw, error);
            outs.push(Out {
                to: Some(c.next.as_str()),
                kind: Some(EdgeKind::Catch(i)),
                ty: t,
            });
        }
    }

    /// The errors a state can raise, when they are all known.
    fn raisable(&self, state: &State) -> Option<BTreeSet<String>> {
        let mut set = BTreeSet::new();
        if self.collect_raisable(state, &mut set) {
            Some(set)
        } else {
            None
        }
    }

    fn collect_raisable(&self, state: &State, set: &mut BTreeSet<String>) -> bool {
        match &state.kind {
            StateKind::Task(t) => match &t.resource_kind {
                // A task token is answered with any error its answerer names.
                crate::model::ResourceKind::Piflow(_) if !t.resource_kind.waits_for_token() => {
                    match self.steps.get(base_resource(&t.resource)) {
                        Some(s) => {
                            set.extend(s.errors.iter().cloned());
                            true
                        }
                        None => false,
                    }
                }
                _ => false,
            },
            StateKind::Fail(f) => match &f.error {
                Some(crate::model::StringSource::Literal(e)) => {
                    set.insert(e.clone());
                    true
                }
                None => true,
                _ => false,
            },
            StateKind::Parallel(p) => p.branches.iter().all(|b| self.collect_scope(b, set)),
            StateKind::Map(m) => self.collect_scope(&m.processor, set),
            _ => true,
        }
    }

    fn collect_scope(&self, scope: &Scope, set: &mut BTreeSet<String>) -> bool {
        scope.states.values().all(|s| self.collect_raisable(s, set))
    }

    /// Catch and Retry of a Parallel or Map: every error they name must be
    /// one a state inside can raise (when all those are known).
    fn scope_errors(&mut self, state: &State, io: &ResultHandling, scopes: Vec<&Scope>) {
        let mut set = BTreeSet::new();
        if !scopes.iter().all(|s| self.collect_scope(s, &mut set)) {
            return;
        }
        let mut found = Vec::new();
        unraisable(
            state,
            &io.retry,
            &io.catch,
            &set,
            "the states inside it",
            &mut found,
        );
        for d in found {
            self.diag(d);
        }
    }

    fn output_path(&mut self, state: &State, t: Ty, ctx: &Ty) -> Ty {
        match &state.output_path {
            None => t,
            Some(Nullable::Null) => Ty::record([]),
            Some(Nullable::Value(p)) => self.read(
                p,
                &t,
                ctx,
                state,
                &child_pointer(&state.pointer, "OutputPath"),
            ),
        }
    }

    /// The type a payload template builds, its paths checked.
    fn template(&mut self, t: &Template, input: &Ty, ctx: &Ty, state: &State, ptr: &str) -> Ty {
        match t {
            Template::Literal(v) => Ty::of_value(v),
            Template::Object(entries) => {
                let mut fields = std::collections::BTreeMap::new();
                for (k, v) in entries {
                    let t = match v {
                        // A literal needs no pointer (nothing in it is read).
                        Template::Literal(l) => Ty::of_value(l),
                        Template::Path(_) => {
                            let at = child_pointer(ptr, &format!("{k}.$"));
                            self.template(v, input, ctx, state, &at)
                        }
                        _ => self.template(v, input, ctx, state, &child_pointer(ptr, k)),
                    };
                    fields.insert(super::Key::from(k.as_str()), (t, true));
                }
                Ty::object(super::Obj { fields, rest: None })
            }
            Template::Array(items) => Ty::tuple(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        self.template(v, input, ctx, state, &child_pointer(ptr, &i.to_string()))
                    })
                    .collect(),
            ),
            Template::Path(e) => self.payload(e, input, ctx, state, ptr),
            Template::Jsonata(e) => {
                self.jsonata(e, input, state, ptr);
                Ty::any()
            }
        }
    }

    fn payload(&mut self, e: &PayloadExpr, input: &Ty, ctx: &Ty, state: &State, ptr: &str) -> Ty {
        match e {
            PayloadExpr::Path(p) => self.read(p, input, ctx, state, ptr),
            PayloadExpr::Intrinsic(call) => self.intrinsic(call, input, ctx, state, ptr),
        }
    }

    fn intrinsic(
        &mut self,
        call: &IntrinsicCall,
        input: &Ty,
        ctx: &Ty,
        state: &State,
        ptr: &str,
    ) -> Ty {
        for arg in &call.args {
            match arg {
                IntrinsicArg::Path(p) => {
                    self.read(p, input, ctx, state, ptr);
                }
                IntrinsicArg::Call(c) => {
                    self.intrinsic(c, input, ctx, state, ptr);
                }
                _ => {}
            }
        }
        use IntrinsicFn as F;
        match call.function {
            F::Format | F::JsonToString | F::Base64Encode | F::Base64Decode | F::Hash | F::Uuid => {
                Ty::string()
            }
            F::Array | F::ArrayPartition | F::ArrayRange | F::ArrayUnique | F::StringSplit => {
                Ty::array(Ty::any())
            }
            F::ArrayContains => Ty::boolean(),
            F::ArrayLength | F::MathRandom | F::MathAdd => Ty::number(),
            F::StringToJson | F::ArrayGetItem | F::JsonMerge => Ty::any(),
        }
    }

    fn read_reference(
        &mut self,
        p: &ReferencePath,
        input: &Ty,
        ctx: &Ty,
        state: &State,
        ptr: &str,
    ) -> Ty {
        self.walk(
            &p.root,
            &p.steps,
            false,
            &p.to_string(),
            input,
            ctx,
            state,
            ptr,
        )
    }

    /// The type a JSONPath selects; unknown and maybe-present fields are
    /// reported.
    fn read(&mut self, p: &JsonPath, input: &Ty, ctx: &Ty, state: &State, ptr: &str) -> Ty {
        let (steps, more) = p.definite_prefix();
        self.walk(
            &p.root,
            &steps,
            more,
            &p.to_string(),
            input,
            ctx,
            state,
            ptr,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn walk(
        &mut self,
        root: &PathRoot,
        steps: &[Step],
        more: bool,
        text: &str,
        input: &Ty,
        ctx: &Ty,
        state: &State,
        ptr: &str,
    ) -> Ty {
        let mut cur = match root {
            PathRoot::Input => input.clone(),
            PathRoot::Context => ctx.clone(),
            PathRoot::Variable(_) => return Ty::any(),
        };
        let mut maybe: Option<String> = None;
        let mut walked = root.to_string();
        for step in steps {
            match cur.read(step) {
                None => return Ty::any(),
                Some(Read::Found(t, always)) => {
                    if let (Step::Field(f), false, None) = (step, always, &maybe) {
                        maybe = Some(f.clone());
                    }
                    cur = t;
                }
                Some(Read::Missing(fields)) => {
                    let Step::Field(f) = step else {
                        return Ty::any();
                    };
                    let near = suggest(f, fields.iter().map(String::as_str))
                        .map(|n| format!("; did you mean \"{n}\"?"))
                        .unwrap_or_default();
                    let has = if fields.is_empty() {
                        format!("{walked} has no fields")
                    } else {
                        format!("{walked} has {}", fields.join(", "))
                    };
                    let message = format!(
                        "state {}: {text} reads \"{f}\", which no input of {} has{near} ({has})",
                        state.name, state.name
                    );
                    // A path that is not definite (a wildcard, slice or
                    // filter follows) selects nothing instead of failing.
                    self.diag(if more {
                        Diagnostic::warning(
                            Code::PathFieldUnknown,
                            ptr,
                            format!("{message}: it selects nothing"),
                        )
                    } else {
                        Diagnostic::error(Code::PathFieldUnknown, ptr, message)
                    });
                    return Ty::any();
                }
            }
            match step {
                Step::Field(f) => walked.push_str(&format!(".{f}")),
                Step::Index(i) => walked.push_str(&format!("[{i}]")),
            }
        }
        if let Some(f) = maybe {
            self.diag(Diagnostic::warning(
                Code::PathFieldMaybe,
                ptr,
                format!(
                    "state {}: {text} may find nothing: \"{f}\" is only maybe present in the input of {} (it is missing on some paths into the state, or optional in the schema); guard it with a Choice IsPresent, or make it required",
                    state.name, state.name
                ),
            ));
        }
        if more { Ty::any() } else { cur }
    }

    /// `$states.input…` reads in a JSONata expression.
    fn jsonata(&mut self, e: &JsonataExpr, input: &Ty, state: &State, ptr: &str) {
        for path in crate::jsonata::states_input_paths(e) {
            let steps: Vec<Step> = path.into_iter().map(Step::Field).collect();
            let text = format!(
                "$states.input{}",
                steps
                    .iter()
                    .map(|s| match s {
                        Step::Field(f) => format!(".{f}"),
                        Step::Index(i) => format!("[{i}]"),
                    })
                    .collect::<String>()
            );
            let ctx = Ty::any();
            self.walk(
                &PathRoot::Input,
                &steps,
                false,
                &text,
                input,
                &ctx,
                state,
                ptr,
            );
        }
    }

    fn transfer_jsonata<'s>(&mut self, state: &'s State, raw: &Ty, ctx: &Ty) -> Vec<Out<'s>> {
        let mut outs = Vec::new();
        let mut natural = raw.clone();
        let mut io: Option<&'s ResultHandling> = None;
        match &state.kind {
            StateKind::Task(t) => {
                if let Some(a) = &t.io.arguments {
                    self.template(
                        a,
                        raw,
                        ctx,
                        state,
                        &child_pointer(&state.pointer, "Arguments"),
                    );
                }
                natural = match &t.resource_kind {
                    crate::model::ResourceKind::Piflow(_) => self
                        .steps
                        .get(base_resource(&t.resource))
                        .map(|s| s.output_type().clone())
                        .unwrap_or_else(Ty::any),
                    _ => Ty::any(),
                };
                io = Some(&t.io);
            }
            StateKind::Parallel(p) => {
                natural = Ty::any();
                io = Some(&p.io);
            }
            StateKind::Map(m) => {
                natural = Ty::any();
                io = Some(&m.io);
            }
            StateKind::Choice(c) => {
                for (i, b) in c.choices.iter().enumerate() {
                    if let ChoiceRule::Condition(crate::model::ConditionExpr::Jsonata(e)) = &b.rule
                    {
                        self.jsonata(e, raw, state, &child_pointer(&b.pointer, "Condition"));
                    }
                    let t = match &b.output {
                        Some(o) => {
                            self.template(o, raw, ctx, state, &child_pointer(&b.pointer, "Output"))
                        }
                        None => raw.clone(),
                    };
                    outs.push(Out {
                        to: Some(b.next.as_str()),
                        kind: Some(EdgeKind::Choice(i)),
                        ty: t,
                    });
                }
                if let Some(d) = &c.default {
                    let t = match &state.output {
                        Some(o) => self.template(
                            o,
                            raw,
                            ctx,
                            state,
                            &child_pointer(&state.pointer, "Output"),
                        ),
                        None => raw.clone(),
                    };
                    outs.push(Out {
                        to: Some(d.as_str()),
                        kind: Some(EdgeKind::Default),
                        ty: t,
                    });
                }
                return outs;
            }
            StateKind::Fail(_) => return outs,
            _ => {}
        }
        let t = match &state.output {
            Some(o) => self.template(o, raw, ctx, state, &child_pointer(&state.pointer, "Output")),
            None => natural,
        };
        match transition_out(state, t.clone()) {
            Some(out) => outs.push(out),
            // A Succeed state ends its scope with its output.
            None if matches!(state.kind, StateKind::Succeed) => outs.push(Out {
                to: None,
                kind: None,
                ty: t,
            }),
            None => {}
        }
        if let Some(io) = io {
            for (i, c) in io.catch.iter().enumerate() {
                let t = match &c.output {
                    Some(o) => {
                        let err = error_output(c, None);
                        self.template(o, &err, ctx, state, &child_pointer(&c.pointer, "Output"))
                    }
                    None => error_output(c, self.raisable(state).as_ref()),
                };
                outs.push(Out {
                    to: Some(c.next.as_str()),
                    kind: Some(EdgeKind::Catch(i)),
                    ty: t,
                });
            }
        }
        outs
    }

    /// Check a Choice rule's reads against `t` (narrowed as the rule is
    /// evaluated: a later operand of `And` is read only when the earlier
    /// ones hold), and give the type on the branch (`when` = the rule holds).
    fn rule(
        &mut self,
        rule: &ChoiceRule,
        t: &Ty,
        ctx: &Ty,
        state: &State,
        ptr: &str,
        when: bool,
    ) -> Ty {
        match rule {
            ChoiceRule::And(rs) | ChoiceRule::Or(rs) => {
                let is_and = matches!(rule, ChoiceRule::And(_));
                let key = if is_and { "And" } else { "Or" };
                let mut cur = t.clone();
                for (i, r) in rs.iter().enumerate() {
                    let p = child_pointer(&child_pointer(ptr, key), &i.to_string());
                    self.rule(r, &cur, ctx, state, &p, when);
                    // And: the next operand runs when this one held; Or:
                    // when it did not.
                    cur = narrow(r, &cur, is_and);
                }
                narrow(rule, t, when)
            }
            ChoiceRule::Not(r) => {
                self.rule(r, t, ctx, state, &child_pointer(ptr, "Not"), !when);
                narrow(rule, t, when)
            }
            ChoiceRule::Compare {
                variable,
                op,
                operand,
            } => {
                let vptr = child_pointer(ptr, "Variable");
                let v = if *op == Comparison::IsPresent {
                    // The guard itself: reading a maybe-present field is its
                    // purpose.
                    let (steps, _) = variable.definite_prefix();
                    self.read(variable, &t.refine(&steps, true), ctx, state, &vptr)
                } else {
                    self.read(variable, t, ctx, state, &vptr)
                };
                if let Operand::Path(p) = operand {
                    self.read(
                        p,
                        t,
                        ctx,
                        state,
                        &child_pointer(ptr, &format!("{}Path", op.name())),
                    );
                }
                if let (Comparison::StringEquals, Operand::Literal(Value::String(s))) =
                    (op, operand)
                    && let Some(values) = v.string_values()
                    && !values.contains(s)
                {
                    let near = suggest(s, values.iter().map(String::as_str))
                        .map(|n| format!("; did you mean \"{n}\"?"))
                        .unwrap_or_default();
                    self.diag(Diagnostic::error(
                        Code::ChoiceUnmatchable,
                        child_pointer(ptr, "StringEquals"),
                        format!(
                            "state {}: {variable} is never \"{s}\" (it is one of {}){near}",
                            state.name,
                            values
                                .iter()
                                .map(|v| format!("\"{v}\""))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
                narrow(rule, t, when)
            }
            ChoiceRule::Condition(_) => t.clone(),
        }
    }

    /// Fields of a step's Parameters given by paths: their type must be one
    /// the step's field can take.
    fn check_step_fields(
        &mut self,
        spec: &StepSpec,
        params: &Template,
        given: &Ty,
        state: &State,
        ptr: &str,
    ) {
        let (Template::Object(entries), Some(obj)) = (params, &given.object) else {
            return;
        };
        let props = spec.input.get("properties").and_then(Value::as_object);
        for (name, value) in entries {
            if !matches!(value, Template::Path(_)) {
                continue;
            }
            let Some(schema) = props.and_then(|p| p.get(name)) else {
                continue;
            };
            let types: Vec<&str> = match schema.get("type") {
                Some(Value::String(t)) => vec![t.as_str()],
                Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
                _ => continue,
            };
            let Some((t, _)) = obj.fields.get(name.as_str()) else {
                continue;
            };
            if t.any || t.is_never() || types.iter().any(|k| t.may_be(k)) {
                continue;
            }
            self.diag(Diagnostic::error(
                Code::StepFieldType,
                child_pointer(ptr, &format!("{name}.$")),
                format!(
                    "state {}: {} field \"{name}\" must be {}, but its path gives {}",
                    state.name,
                    spec.resource,
                    types.join(" or "),
                    t.shape()
                ),
            ));
        }
    }

    fn check_output(&mut self, ends: &[(&str, String, Ty)], expected: &Ty, file: &str) {
        for (name, pointer, actual) in ends {
            let mut problems = Vec::new();
            conforms(actual, expected, "$", &mut problems, 0);
            if !problems.is_empty() {
                self.diag(Diagnostic::error(
                    Code::OutputMismatch,
                    pointer.clone(),
                    format!(
                        "state {name} ends the workflow with an output that does not match {file}: {}",
                        problems.join("; ")
                    ),
                ));
            }
        }
    }
}

/// How a value of type `actual` can fail `expected`.
fn conforms(actual: &Ty, expected: &Ty, at: &str, problems: &mut Vec<String>, depth: usize) {
    if actual.any || expected.any || actual.is_never() || depth > 16 {
        return;
    }
    let kinds = [
        ("null", actual.null, expected.null),
        ("a boolean", actual.boolean, expected.boolean),
        ("a number", actual.number, expected.number),
        (
            "a string",
            actual.string.is_some(),
            expected.string.is_some(),
        ),
        ("an array", actual.array.is_some(), expected.array.is_some()),
        (
            "an object",
            actual.object.is_some(),
            expected.object.is_some(),
        ),
    ];
    for (what, a, e) in kinds {
        if a && !e {
            problems.push(format!(
                "{at} may be {what}, which the schema does not allow"
            ));
        }
    }
    if let (Some(a), Some(e)) = (&actual.object, &expected.object) {
        for (k, (et, required)) in &e.fields {
            match a.fields.get(k) {
                Some((at_, always)) => {
                    if *required && !always {
                        problems.push(format!("{at}.{k} is required but only maybe present"));
                    }
                    conforms(at_, et, &format!("{at}.{k}"), problems, depth + 1);
                }
                None if *required && a.rest.is_none() => {
                    problems.push(format!("{at}.{k} is required but missing"));
                }
                None => {}
            }
        }
        if e.rest.is_none() {
            for k in a.fields.keys() {
                if !e.fields.contains_key(k) {
                    problems.push(format!("{at}.{k} is not a field the schema allows"));
                }
            }
        }
    }
    if let (Some(a), Some(e)) = (&actual.array, &expected.array) {
        conforms(&a.items, &e.items, &format!("{at}[]"), problems, depth + 1);
    }
}

/// The type on a Catch edge: `{Error, Cause}`, Error limited to the names
/// the catcher lists (or everything the state can raise).
fn error_output(c: &Catcher, raisable: Option<&BTreeSet<String>>) -> Ty {
    let catches_all = c
        .error_equals
        .iter()
        .any(|e| e == "States.ALL" || e == "States.TaskFailed");
    let error = match (catches_all, raisable) {
        (false, _) => Ty::string_of(c.error_equals.iter().cloned()),
        (true, Some(set)) => Ty::string_of(
            set.iter().cloned().chain(
                RUNTIME_ERRORS
                    .iter()
                    .filter(|e| **e != "States.ALL")
                    .map(|e| e.to_string()),
            ),
        ),
        (true, None) => Ty::string(),
    };
    Ty::record([
        ("Error".to_string(), error),
        ("Cause".to_string(), Ty::string()),
    ])
}

/// The type after a Choice rule is known to hold (`when`) or not: fields
/// it reads are present (a comparison of a missing field fails the
/// execution), `IsPresent` says present or absent.
fn narrow(rule: &ChoiceRule, t: &Ty, when: bool) -> Ty {
    match rule {
        ChoiceRule::And(rs) if when => rs.iter().fold(t.clone(), |acc, r| narrow(r, &acc, true)),
        ChoiceRule::Or(rs) if !when => rs.iter().fold(t.clone(), |acc, r| narrow(r, &acc, false)),
        ChoiceRule::And(_) | ChoiceRule::Or(_) => t.clone(),
        ChoiceRule::Not(r) => narrow(r, t, !when),
        ChoiceRule::Compare {
            variable,
            op,
            operand,
        } => {
            let (steps, more) = variable.definite_prefix();
            if more || variable.root != PathRoot::Input {
                return t.clone();
            }
            match (op, operand) {
                (Comparison::IsPresent, Operand::Literal(Value::Bool(b))) => {
                    t.refine(&steps, *b == when)
                }
                // Any other comparison read the field: it was there.
                _ => t.refine(&steps, true),
            }
        }
        ChoiceRule::Condition(_) => t.clone(),
    }
}

/// Retry and Catch names no state can raise.
fn unraisable(
    state: &State,
    retry: &[Retrier],
    catch: &[Catcher],
    set: &BTreeSet<String>,
    whose: &str,
    out: &mut Vec<Diagnostic>,
) {
    let lists = retry
        .iter()
        .enumerate()
        .map(|(i, r)| ("Retry", i, &r.error_equals))
        .chain(
            catch
                .iter()
                .enumerate()
                .map(|(i, c)| ("Catch", i, &c.error_equals)),
        );
    for (field, i, names) in lists {
        for (j, name) in names.iter().enumerate() {
            if name.starts_with("States.") || set.contains(name) {
                continue;
            }
            let near = suggest(name, set.iter().map(String::as_str))
                .map(|n| format!("; did you mean \"{n}\"?"))
                .unwrap_or_default();
            out.push(Diagnostic::error(
                Code::ErrorUnraisable,
                child_pointer(
                    &child_pointer(
                        &child_pointer(&child_pointer(&state.pointer, field), &i.to_string()),
                        "ErrorEquals",
                    ),
                    &j.to_string(),
                ),
                format!(
                    "state {}: {field} names {name}, which {whose} cannot raise{near} (they raise {})",
                    state.name,
                    if set.is_empty() {
                        "only States.* errors".to_string()
                    } else {
                        set.iter().cloned().collect::<Vec<_>>().join(", ")
                    }
                ),
            ));
        }
    }
}

/// A `piflow:` Task's Retry and Catch against its step's errors (with or
/// without a schema: the contract is enough).
pub fn check_errors(machine: &StateMachine, steps: &[StepSpec], out: &mut Vec<Diagnostic>) {
    fn walk(scope: &Scope, steps: &[StepSpec], out: &mut Vec<Diagnostic>) {
        for state in scope.states.values() {
            match &state.kind {
                // A `.waitForTaskToken` step ends with whatever error its
                // answerer sends (`send-task-failure --error`): not checked.
                StateKind::Task(t) if !t.resource_kind.waits_for_token() => {
                    if let crate::model::ResourceKind::Piflow(_) = t.resource_kind {
                        let base = base_resource(&t.resource);
                        if let Some(spec) = steps.iter().find(|s| s.resource == base) {
                            let set: BTreeSet<String> = spec.errors.iter().cloned().collect();
                            unraisable(state, &t.io.retry, &t.io.catch, &set, base, out);
                        }
                    }
                }
                StateKind::Parallel(p) => p.branches.iter().for_each(|b| walk(b, steps, out)),
                StateKind::Map(m) => walk(&m.processor, steps, out),
                _ => {}
            }
        }
    }
    walk(&machine.scope, steps, out);
}

/// The edge a state's Next or End gives its output (`None`: the state
/// decides for itself: Choice, Succeed, Fail).
fn transition_out(state: &State, ty: Ty) -> Option<Out<'_>> {
    match &state.transition {
        Transition::Next(n) => Some(Out {
            to: Some(n.as_str()),
            kind: Some(EdgeKind::Next),
            ty,
        }),
        Transition::End => Some(Out {
            to: None,
            kind: None,
            ty,
        }),
        Transition::Terminal => None,
    }
}

/// The input with a state's result written where ResultPath says (`$`
/// or absent: the result itself; null: the input unchanged).
fn result_path(rp: &Option<Nullable<ReferencePath>>, raw: &Ty, result: Ty) -> Ty {
    match rp {
        None => result,
        Some(Nullable::Null) => raw.clone(),
        Some(Nullable::Value(p)) if p.root == PathRoot::Input => raw.write(&p.steps, result),
        Some(Nullable::Value(_)) => Ty::any(),
    }
}
