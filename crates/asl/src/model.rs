//! The typed model of an Amazon States Language state machine.
//!
//! Every field of the language has a typed home here; expressions (JSONPath
//! queries, reference paths, intrinsic calls, JSONata) are parsed values, not
//! strings. A model is built from source by [`super::load`], which reports
//! every problem it meets; a model that exists has passed the structural
//! checks of the loader, and [`super::check`] adds the graph rules.

use indexmap::IndexMap;
use serde_json::Value;

use super::intrinsic::PayloadExpr;
use super::jsonata::JsonataExpr;
use super::path::{JsonPath, ReferencePath};

/// Which expression language a state uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueryLanguage {
    #[default]
    JsonPath,
    Jsonata,
}

impl QueryLanguage {
    pub fn as_str(self) -> &'static str {
        match self {
            QueryLanguage::JsonPath => "JSONPath",
            QueryLanguage::Jsonata => "JSONata",
        }
    }
}

/// STANDARD or EXPRESS: EXPRESS machines reject `.sync`, `.waitForTaskToken`
/// and activities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MachineType {
    #[default]
    Standard,
    Express,
}

/// A top-level state machine.
#[derive(Debug, Clone)]
pub struct StateMachine {
    pub comment: Option<String>,
    pub version: Option<String>,
    pub timeout_seconds: Option<u64>,
    /// The machine-wide query language (JSONPath when absent).
    pub query_language: QueryLanguage,
    pub scope: Scope,
}

/// A set of states with a start: the machine itself, a Parallel branch or a
/// Map item processor.
#[derive(Debug, Clone)]
pub struct Scope {
    pub comment: Option<String>,
    pub start_at: String,
    pub states: IndexMap<String, State>,
    /// States that had errors too severe to model (already reported): they
    /// exist for the graph rules, but their transitions are unknown.
    pub broken: Vec<String>,
    /// JSON pointer of this scope's object.
    pub pointer: String,
}

/// One state, with the fields every state may carry.
#[derive(Debug, Clone)]
pub struct State {
    pub name: String,
    pub pointer: String,
    pub comment: Option<String>,
    /// The effective query language (the state's own, else the machine's).
    pub query_language: QueryLanguage,
    pub input_path: Option<Nullable<JsonPath>>,
    pub output_path: Option<Nullable<JsonPath>>,
    /// JSONata `Output`.
    pub output: Option<Template>,
    pub assign: Option<Template>,
    pub transition: Transition,
    pub kind: StateKind,
}

/// A field that may be `null` (meaning "no input" / "discard"), distinct
/// from absent.
#[derive(Debug, Clone, PartialEq)]
pub enum Nullable<T> {
    Null,
    Value(T),
}

/// Where a state goes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    Next(String),
    End,
    /// Choice, Succeed and Fail decide for themselves.
    Terminal,
}

#[derive(Debug, Clone)]
pub enum StateKind {
    Pass(Pass),
    Task(Box<Task>),
    Choice(Choice),
    Wait(Wait),
    Succeed,
    Fail(Fail),
    Parallel(Parallel),
    Map(Box<Map>),
}

impl StateKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            StateKind::Pass(_) => "Pass",
            StateKind::Task(_) => "Task",
            StateKind::Choice(_) => "Choice",
            StateKind::Wait(_) => "Wait",
            StateKind::Succeed => "Succeed",
            StateKind::Fail(_) => "Fail",
            StateKind::Parallel(_) => "Parallel",
            StateKind::Map(_) => "Map",
        }
    }
}

/// A payload: literal JSON with embedded expressions. JSONPath states mark
/// expressions with `.$` keys; JSONata states with `"{% ... %}"` strings.
#[derive(Debug, Clone)]
pub enum Template {
    /// No expression anywhere below: use as is.
    Literal(Value),
    Object(Vec<(String, Template)>),
    Array(Vec<Template>),
    /// The value of a `key.$` field.
    Path(PayloadExpr),
    Jsonata(JsonataExpr),
}

/// Result handling shared by Task, Parallel and Map (JSONPath side).
#[derive(Debug, Clone, Default)]
pub struct ResultHandling {
    pub parameters: Option<Template>,
    /// JSONata `Arguments`.
    pub arguments: Option<Template>,
    pub result_selector: Option<Template>,
    pub result_path: Option<Nullable<ReferencePath>>,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
}

#[derive(Debug, Clone)]
pub struct Pass {
    pub result: Option<Value>,
    pub result_path: Option<Nullable<ReferencePath>>,
    pub parameters: Option<Template>,
}

/// A number given directly, by a reference path (`...Path` fields, JSONPath
/// states) or by a JSONata expression (JSONata states).
#[derive(Debug, Clone)]
pub enum NumberSource {
    Value(f64),
    Path(ReferencePath),
    Jsonata(JsonataExpr),
}

#[derive(Debug, Clone)]
pub struct Task {
    pub resource: String,
    pub resource_kind: ResourceKind,
    pub io: ResultHandling,
    pub timeout_seconds: Option<NumberSource>,
    pub heartbeat_seconds: Option<NumberSource>,
    pub credentials: Option<Template>,
}

/// What a Task's `Resource` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceKind {
    /// `arn:aws:states:::service:action[.sync|.sync:2|.waitForTaskToken]`
    Integration {
        service: String,
        action: String,
        pattern: IntegrationPattern,
    },
    /// `arn:aws:states:::aws-sdk:service:action`
    AwsSdk {
        service: String,
        action: String,
        pattern: IntegrationPattern,
    },
    Lambda,
    Activity,
    /// `piflow:step` — a built-in piflow step.
    Piflow(String),
    /// Any other ARN (resolved by the task registry at run time).
    Other,
}

impl ResourceKind {
    /// Does the task wait for a task token's answer (`.waitForTaskToken`,
    /// also on a `piflow:` step)?
    pub fn waits_for_token(&self) -> bool {
        match self {
            ResourceKind::Integration { pattern, .. } | ResourceKind::AwsSdk { pattern, .. } => {
                *pattern == IntegrationPattern::WaitForTaskToken
            }
            ResourceKind::Piflow(step) => step.ends_with(".waitForTaskToken"),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegrationPattern {
    RequestResponse,
    Sync,
    Sync2,
    WaitForTaskToken,
}

#[derive(Debug, Clone)]
pub struct Retrier {
    pub error_equals: Vec<String>,
    pub interval_seconds: u64,
    pub max_attempts: u64,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<u64>,
    pub jitter: Jitter,
}

impl Default for Retrier {
    fn default() -> Self {
        Retrier {
            error_equals: Vec::new(),
            interval_seconds: 1,
            max_attempts: 3,
            backoff_rate: 2.0,
            max_delay_seconds: None,
            jitter: Jitter::None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    #[default]
    None,
    Full,
}

#[derive(Debug, Clone)]
pub struct Catcher {
    pub error_equals: Vec<String>,
    pub next: String,
    pub result_path: Option<Nullable<ReferencePath>>,
    pub output: Option<Template>,
    pub assign: Option<Template>,
    pub pointer: String,
}

#[derive(Debug, Clone)]
pub struct Choice {
    pub choices: Vec<ChoiceBranch>,
    pub default: Option<String>,
}

/// A top-level choice rule: a condition and where it leads.
#[derive(Debug, Clone)]
pub struct ChoiceBranch {
    pub rule: ChoiceRule,
    pub next: String,
    pub assign: Option<Template>,
    pub output: Option<Template>,
    pub comment: Option<String>,
    pub pointer: String,
}

#[derive(Debug, Clone)]
pub enum ChoiceRule {
    And(Vec<ChoiceRule>),
    Or(Vec<ChoiceRule>),
    Not(Box<ChoiceRule>),
    Compare {
        variable: JsonPath,
        op: Comparison,
        operand: Operand,
    },
    /// JSONata `Condition`: an expression or a literal boolean.
    Condition(ConditionExpr),
}

#[derive(Debug, Clone)]
pub enum ConditionExpr {
    Literal(bool),
    Jsonata(JsonataExpr),
}

#[derive(Debug, Clone)]
pub enum Operand {
    Literal(Value),
    Path(JsonPath),
}

/// Choice comparison operators (the `...Path` variants are the same operator
/// with an [`Operand::Path`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    BooleanEquals,
    IsBoolean,
    IsNull,
    IsNumeric,
    IsPresent,
    IsString,
    IsTimestamp,
    NumericEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    NumericLessThan,
    NumericLessThanEquals,
    StringEquals,
    StringGreaterThan,
    StringGreaterThanEquals,
    StringLessThan,
    StringLessThanEquals,
    StringMatches,
    TimestampEquals,
    TimestampGreaterThan,
    TimestampGreaterThanEquals,
    TimestampLessThan,
    TimestampLessThanEquals,
}

/// The operand type a comparison operator expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperandType {
    Boolean,
    Number,
    String,
    Timestamp,
}

impl Comparison {
    /// All operators with their field names; `has_path` says whether a
    /// `...Path` variant exists.
    pub const ALL: &'static [(&'static str, Comparison, OperandType, bool)] = &[
        (
            "BooleanEquals",
            Comparison::BooleanEquals,
            OperandType::Boolean,
            true,
        ),
        (
            "IsBoolean",
            Comparison::IsBoolean,
            OperandType::Boolean,
            false,
        ),
        ("IsNull", Comparison::IsNull, OperandType::Boolean, false),
        (
            "IsNumeric",
            Comparison::IsNumeric,
            OperandType::Boolean,
            false,
        ),
        (
            "IsPresent",
            Comparison::IsPresent,
            OperandType::Boolean,
            false,
        ),
        (
            "IsString",
            Comparison::IsString,
            OperandType::Boolean,
            false,
        ),
        (
            "IsTimestamp",
            Comparison::IsTimestamp,
            OperandType::Boolean,
            false,
        ),
        (
            "NumericEquals",
            Comparison::NumericEquals,
            OperandType::Number,
            true,
        ),
        (
            "NumericGreaterThan",
            Comparison::NumericGreaterThan,
            OperandType::Number,
            true,
        ),
        (
            "NumericGreaterThanEquals",
            Comparison::NumericGreaterThanEquals,
            OperandType::Number,
            true,
        ),
        (
            "NumericLessThan",
            Comparison::NumericLessThan,
            OperandType::Number,
            true,
        ),
        (
            "NumericLessThanEquals",
            Comparison::NumericLessThanEquals,
            OperandType::Number,
            true,
        ),
        (
            "StringEquals",
            Comparison::StringEquals,
            OperandType::String,
            true,
        ),
        (
            "StringGreaterThan",
            Comparison::StringGreaterThan,
            OperandType::String,
            true,
        ),
        (
            "StringGreaterThanEquals",
            Comparison::StringGreaterThanEquals,
            OperandType::String,
            true,
        ),
        (
            "StringLessThan",
            Comparison::StringLessThan,
            OperandType::String,
            true,
        ),
        (
            "StringLessThanEquals",
            Comparison::StringLessThanEquals,
            OperandType::String,
            true,
        ),
        (
            "StringMatches",
            Comparison::StringMatches,
            OperandType::String,
            false,
        ),
        (
            "TimestampEquals",
            Comparison::TimestampEquals,
            OperandType::Timestamp,
            true,
        ),
        (
            "TimestampGreaterThan",
            Comparison::TimestampGreaterThan,
            OperandType::Timestamp,
            true,
        ),
        (
            "TimestampGreaterThanEquals",
            Comparison::TimestampGreaterThanEquals,
            OperandType::Timestamp,
            true,
        ),
        (
            "TimestampLessThan",
            Comparison::TimestampLessThan,
            OperandType::Timestamp,
            true,
        ),
        (
            "TimestampLessThanEquals",
            Comparison::TimestampLessThanEquals,
            OperandType::Timestamp,
            true,
        ),
    ];

    pub fn name(self) -> &'static str {
        Comparison::ALL
            .iter()
            .find(|(_, c, _, _)| *c == self)
            .map(|(n, _, _, _)| *n)
            .unwrap_or("?")
    }
}

#[derive(Debug, Clone)]
pub struct Wait {
    pub until: WaitUntil,
}

#[derive(Debug, Clone)]
pub enum WaitUntil {
    Seconds(NumberSource),
    /// A literal RFC 3339 timestamp.
    Timestamp(String),
    TimestampPath(ReferencePath),
    TimestampJsonata(JsonataExpr),
}

#[derive(Debug, Clone)]
pub struct Fail {
    pub error: Option<StringSource>,
    pub cause: Option<StringSource>,
}

/// A string given literally, by a path (`ErrorPath`), or by JSONata.
#[derive(Debug, Clone)]
pub enum StringSource {
    Literal(String),
    Path(PayloadExpr),
    Jsonata(JsonataExpr),
}

#[derive(Debug, Clone)]
pub struct Parallel {
    pub branches: Vec<Scope>,
    pub io: ResultHandling,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProcessorMode {
    #[default]
    Inline,
    Distributed,
}

#[derive(Debug, Clone)]
pub struct Map {
    pub processor: Scope,
    pub mode: ProcessorMode,
    pub execution_type: Option<MachineType>,
    /// True when written with the legacy `Iterator` field.
    pub legacy_iterator: bool,
    pub items_path: Option<JsonPath>,
    /// JSONata `Items`: a literal array or an expression.
    pub items: Option<Template>,
    /// `ItemSelector` (or the legacy `Parameters`).
    pub item_selector: Option<Template>,
    pub item_reader: Option<ItemReader>,
    pub item_batcher: Option<ItemBatcher>,
    pub result_writer: Option<ResultWriter>,
    pub max_concurrency: Option<NumberSource>,
    pub tolerated_failure_count: Option<NumberSource>,
    pub tolerated_failure_percentage: Option<NumberSource>,
    pub label: Option<String>,
    pub io: ResultHandling,
}

#[derive(Debug, Clone)]
pub struct ItemReader {
    pub resource: String,
    pub parameters: Option<Template>,
    pub arguments: Option<Template>,
    /// `ReaderConfig`, kept as data (InputType, CSVHeaderLocation, ...).
    pub reader_config: Option<Value>,
    pub max_items: Option<NumberSource>,
}

#[derive(Debug, Clone)]
pub struct ItemBatcher {
    pub max_items_per_batch: Option<NumberSource>,
    pub max_input_bytes_per_batch: Option<NumberSource>,
    pub batch_input: Option<Template>,
}

#[derive(Debug, Clone)]
pub struct ResultWriter {
    pub resource: Option<String>,
    pub parameters: Option<Template>,
    pub arguments: Option<Template>,
    pub writer_config: Option<Value>,
}

impl Scope {
    /// Every scope nested in this one (branches and processors), depth first.
    pub fn children(&self) -> Vec<&Scope> {
        let mut out = Vec::new();
        for state in self.states.values() {
            match &state.kind {
                StateKind::Parallel(p) => out.extend(p.branches.iter()),
                StateKind::Map(m) => out.push(&m.processor),
                _ => {}
            }
        }
        out
    }
}

impl State {
    /// States this state can move to, with the kind of edge.
    pub fn successors(&self) -> Vec<(&str, EdgeKind)> {
        let mut out = Vec::new();
        if let Transition::Next(n) = &self.transition {
            out.push((n.as_str(), EdgeKind::Next));
        }
        match &self.kind {
            StateKind::Choice(c) => {
                for (i, b) in c.choices.iter().enumerate() {
                    out.push((b.next.as_str(), EdgeKind::Choice(i)));
                }
                if let Some(d) = &c.default {
                    out.push((d.as_str(), EdgeKind::Default));
                }
            }
            StateKind::Task(t) => push_catches(&mut out, &t.io.catch),
            StateKind::Parallel(p) => push_catches(&mut out, &p.io.catch),
            StateKind::Map(m) => push_catches(&mut out, &m.io.catch),
            _ => {}
        }
        out
    }

    /// Does this state end its scope (End, Succeed, Fail)?
    pub fn is_terminal(&self) -> bool {
        matches!(self.transition, Transition::End)
            || matches!(self.kind, StateKind::Succeed | StateKind::Fail(_))
    }

    pub fn catchers(&self) -> &[Catcher] {
        match &self.kind {
            StateKind::Task(t) => &t.io.catch,
            StateKind::Parallel(p) => &p.io.catch,
            StateKind::Map(m) => &m.io.catch,
            _ => &[],
        }
    }
}

fn push_catches<'a>(out: &mut Vec<(&'a str, EdgeKind)>, catch: &'a [Catcher]) {
    for (i, c) in catch.iter().enumerate() {
        out.push((c.next.as_str(), EdgeKind::Catch(i)));
    }
}

/// How one state leads to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EdgeKind {
    Next,
    Choice(usize),
    Default,
    Catch(usize),
}
