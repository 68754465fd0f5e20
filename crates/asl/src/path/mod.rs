//! ASL paths of the JSONPath query language: Reference Paths (`ResultPath`
//! and the `…Path` fields that name one value) and full JSONPath queries
//! (`InputPath`, `OutputPath`, `ItemsPath`, `key.$` payload values, Choice
//! `Variable`).
//!
//! AWS Step Functions evaluates these with Jayway JsonPath, and real
//! definitions rely on Jayway's dialect, which RFC 9535 rejects or reads
//! differently: member names with `-`, `:` or other punctuation in dot
//! notation (`$.detail.x-y`), functions (`$.items.length()`), filters that
//! test an *object* itself (`$.o[?(@.x)]`), `==` that compares `1` and `'1'`
//! equal, a definite path that fails with "No results for path" or "Missing
//! property in path". So this module parses and evaluates paths itself,
//! following Jayway; `serde_json_path` (RFC 9535) is used for the regular
//! expressions of `=~` filters.
//!
//! Everything is parsed once, at load time: a syntax error is a
//! [`PathError::Syntax`] with the character offset of the problem, and
//! evaluation only fails for data reasons (a definite path that selects
//! nothing, an undefined variable, a filter applied to a string…).
//!
//! Roots: `$` is the state input, `$$` the context object and `$name` an ASL
//! variable ([`PathRoot`]); callers that do not accept variables (ResultPath)
//! check the root.
//!
//! This module holds the public types and the parsed form of a path;
//! `parse` reads path text into that form and `eval` evaluates it (and
//! writes a ResultPath).

mod eval;
mod parse;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

pub(crate) use eval::json_equal;
pub use eval::json_type_article;
pub(crate) use parse::parse_number;
pub use parse::{parse_json_path, parse_reference_path};

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

/// What a path starts from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathRoot {
    /// `$`: the state input (or effective input).
    Input,
    /// `$$`: the context object.
    Context,
    /// `$name`: an ASL variable (names match `[A-Za-z_][A-Za-z0-9_]*`).
    Variable(String),
}

impl PathRoot {
    pub fn is_variable(&self) -> bool {
        matches!(self, PathRoot::Variable(_))
    }

    /// The variable name, for a `$name` root.
    pub fn variable_name(&self) -> Option<&str> {
        match self {
            PathRoot::Variable(n) => Some(n),
            _ => None,
        }
    }
}

impl fmt::Display for PathRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathRoot::Input => f.write_str("$"),
            PathRoot::Context => f.write_str("$$"),
            PathRoot::Variable(n) => write!(f, "${n}"),
        }
    }
}

/// One step of a [`ReferencePath`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Step {
    /// `.name` or `['name']`.
    Field(String),
    /// `[index]`.
    Index(usize),
}

/// A Reference Path: only `.name`, `['name']` and `[index]` steps, so it
/// names at most one node. Used by ResultPath (which writes through it) and
/// the `…Path` fields that read one value.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferencePath {
    pub root: PathRoot,
    pub steps: Vec<Step>,
    query: Query,
    source: String,
}

/// A full JSONPath query (filters, wildcards, slices, `..`, functions).
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    pub root: PathRoot,
    query: Query,
    source: String,
}

/// What paths are evaluated against.
#[derive(Clone, Copy)]
pub struct PathContext<'a> {
    /// The document `$` refers to.
    pub input: &'a Value,
    /// The context object, `$$`.
    pub context: &'a Value,
    /// Looks up an ASL variable (`$name`).
    pub variables: &'a dyn Fn(&str) -> Option<Value>,
}

fn no_variables(_: &str) -> Option<Value> {
    None
}

impl<'a> PathContext<'a> {
    /// A context without variables.
    pub fn new(input: &'a Value, context: &'a Value) -> Self {
        PathContext {
            input,
            context,
            variables: &no_variables,
        }
    }

    pub fn with_variables(mut self, variables: &'a dyn Fn(&str) -> Option<Value>) -> Self {
        self.variables = variables;
        self
    }
}

impl fmt::Debug for PathContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PathContext")
            .field("input", self.input)
            .field("context", self.context)
            .finish_non_exhaustive()
    }
}

/// Why a path could not be parsed or evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The text is not a valid path (or not a valid reference path).
    /// `offset` counts characters from the start of the expression.
    #[error("{message} (at offset {offset})")]
    Syntax {
        path: String,
        offset: usize,
        message: String,
    },
    /// A definite path did not resolve in the data (Jayway's
    /// PathNotFoundException); the interpreter reports it as States.Runtime.
    /// `detail` is Jayway's own text, e.g. `No results for path: $['a']`.
    #[error("Invalid path '{path}' : {detail}")]
    NotFound { path: String, detail: String },
    /// The path reads a variable that has no value.
    #[error("Invalid path '{path}' : The variable '{name}' is not defined")]
    UndefinedVariable { path: String, name: String },
    /// The data does not fit the path in some other way (a filter applied
    /// to a string, `sum()` of an array without numbers…).
    #[error("Invalid path '{path}' : {message}")]
    Evaluation { path: String, message: String },
    /// ResultPath could not write its value into the input.
    #[error("Unable to apply ResultPath '{path}' : {message}")]
    Set { path: String, message: String },
}

impl PathError {
    /// True for a path that did not resolve (including undefined variables).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            PathError::NotFound { .. } | PathError::UndefinedVariable { .. }
        )
    }

    /// The character offset of a syntax error.
    pub fn offset(&self) -> Option<usize> {
        match self {
            PathError::Syntax { offset, .. } => Some(*offset),
            _ => None,
        }
    }

    /// The path text the error is about.
    pub fn path(&self) -> &str {
        match self {
            PathError::Syntax { path, .. }
            | PathError::NotFound { path, .. }
            | PathError::UndefinedVariable { path, .. }
            | PathError::Evaluation { path, .. }
            | PathError::Set { path, .. } => path,
        }
    }
}

// ---------------------------------------------------------------------------
// Parsed form
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
struct Query {
    segments: Vec<Segment>,
    function: Option<PathFunction>,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Child(Selector),
    /// `..` followed by a selector (deep scan).
    Descendant(Selector),
}

#[derive(Debug, Clone, PartialEq)]
enum Selector {
    Name(String),
    Names(Vec<String>),
    Index(i64),
    Indices(Vec<i64>),
    Slice(Option<i64>, Option<i64>),
    Wildcard,
    Filter(Box<Filter>),
}

/// Jayway path functions (no-argument ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathFunction {
    Length,
    Size,
    Min,
    Max,
    Avg,
    Sum,
    Stddev,
    Keys,
    First,
    Last,
}

const FUNCTION_NAMES: &[(&str, PathFunction)] = &[
    ("length", PathFunction::Length),
    ("size", PathFunction::Size),
    ("min", PathFunction::Min),
    ("max", PathFunction::Max),
    ("avg", PathFunction::Avg),
    ("sum", PathFunction::Sum),
    ("stddev", PathFunction::Stddev),
    ("keys", PathFunction::Keys),
    ("first", PathFunction::First),
    ("last", PathFunction::Last),
];

#[derive(Debug, Clone, PartialEq)]
enum Filter {
    Or(Vec<Filter>),
    And(Vec<Filter>),
    Not(Box<Filter>),
    /// `@.x` (expect true) or `!@.x` (expect false).
    Exists {
        path: FilterPath,
        expect: bool,
    },
    Compare {
        left: Operand,
        op: RelOp,
        right: Operand,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct FilterPath {
    /// `$…` (the document root) rather than `@…` (the current node).
    absolute: bool,
    query: Query,
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Path(FilterPath),
    Literal(Value),
    Regex(Regex),
}

#[derive(Debug, Clone, PartialEq)]
struct Regex {
    source: String,
    /// `$[?match(@, '<pattern>')]`, applied to a one-element array.
    matcher: serde_json_path::JsonPath,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RelOp {
    Eq,
    Ne,
    StrictEq,
    StrictNe,
    Lt,
    Le,
    Gt,
    Ge,
    Match,
    In,
    Nin,
    Contains,
    SubsetOf,
    AnyOf,
    NoneOf,
    All,
    Size,
    Empty,
    Exists,
}

const SYMBOL_OPS: &[(&str, RelOp)] = &[
    ("===", RelOp::StrictEq),
    ("!==", RelOp::StrictNe),
    ("==", RelOp::Eq),
    ("!=", RelOp::Ne),
    ("<=", RelOp::Le),
    (">=", RelOp::Ge),
    ("=~", RelOp::Match),
    ("<", RelOp::Lt),
    (">", RelOp::Gt),
];

const WORD_OPS: &[(&str, RelOp)] = &[
    ("in", RelOp::In),
    ("nin", RelOp::Nin),
    ("contains", RelOp::Contains),
    ("subsetof", RelOp::SubsetOf),
    ("anyof", RelOp::AnyOf),
    ("noneof", RelOp::NoneOf),
    ("all", RelOp::All),
    ("size", RelOp::Size),
    ("empty", RelOp::Empty),
    ("exists", RelOp::Exists),
];

impl Segment {
    /// Jayway's `isTokenDefinite`: a multi-name step is definite only as the
    /// last step (where its results are merged into one object).
    fn is_definite(&self, leaf: bool) -> bool {
        match self {
            Segment::Child(Selector::Name(_)) | Segment::Child(Selector::Index(_)) => true,
            Segment::Child(Selector::Names(_)) => leaf,
            _ => false,
        }
    }

    fn write_normalized(&self, out: &mut String) {
        match self {
            Segment::Child(sel) => sel.write_normalized(out),
            Segment::Descendant(sel) => {
                out.push_str("..");
                sel.write_normalized(out);
            }
        }
    }
}

impl Selector {
    fn write_normalized(&self, out: &mut String) {
        match self {
            Selector::Name(n) => {
                out.push_str("['");
                out.push_str(n);
                out.push_str("']");
            }
            Selector::Names(ns) => {
                out.push('[');
                let quoted: Vec<String> = ns.iter().map(|n| format!("'{n}'")).collect();
                out.push_str(&quoted.join(", "));
                out.push(']');
            }
            Selector::Index(i) => out.push_str(&format!("[{i}]")),
            Selector::Indices(is) => {
                let parts: Vec<String> = is.iter().map(i64::to_string).collect();
                out.push_str(&format!("[{}]", parts.join(",")));
            }
            Selector::Slice(from, to) => {
                let f = from.map(|v| v.to_string()).unwrap_or_default();
                let t = to.map(|v| v.to_string()).unwrap_or_default();
                out.push_str(&format!("[{f}:{t}]"));
            }
            Selector::Wildcard => out.push_str("[*]"),
            Selector::Filter(_) => out.push_str("[?]"),
        }
    }

    fn normalized(&self) -> String {
        let mut s = String::new();
        self.write_normalized(&mut s);
        s
    }
}

impl Query {
    fn is_definite(&self) -> bool {
        let n = self.segments.len();
        self.segments
            .iter()
            .enumerate()
            .all(|(i, s)| s.is_definite(i + 1 == n && self.function.is_none()))
    }

    fn normalized(&self, root: &str) -> String {
        let mut s = String::from(root);
        for seg in &self.segments {
            seg.write_normalized(&mut s);
        }
        s
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl fmt::Display for ReferencePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FromStr for JsonPath {
    type Err = PathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_json_path(s)
    }
}

impl FromStr for ReferencePath {
    type Err = PathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_reference_path(s)
    }
}

impl JsonPath {
    /// The leading `.name` and `[index]` steps of the query, and whether
    /// anything follows them (a wildcard, a filter, `..`, a slice, a
    /// function): what static type checking can follow.
    pub fn definite_prefix(&self) -> (Vec<Step>, bool) {
        let mut steps = Vec::new();
        for seg in &self.query.segments {
            match seg {
                Segment::Child(Selector::Name(n)) => steps.push(Step::Field(n.clone())),
                Segment::Child(Selector::Index(ix)) if *ix >= 0 => {
                    steps.push(Step::Index(*ix as usize))
                }
                _ => return (steps, true),
            }
        }
        (steps, self.query.function.is_some())
    }
}
