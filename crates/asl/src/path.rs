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

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Number, Value};

/// How deeply filters, parentheses and filter literals may nest.
const MAX_DEPTH: usize = 32;
/// The most nodes one evaluation step may select before giving up.
const MAX_NODES: usize = 1_000_000;

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

// ---------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------

struct Parsed {
    root: PathRoot,
    query: Query,
    /// Character offset of each segment.
    offsets: Vec<usize>,
    function_offset: Option<usize>,
}

struct Parser<'s> {
    src: &'s str,
    chars: Vec<char>,
    pos: usize,
    depth: usize,
    function_offset: Option<usize>,
}

fn is_filter_terminator(c: char) -> bool {
    matches!(c, ')' | ']' | '<' | '>' | '=' | '!' | '~' | '&' | '|' | ',')
}

impl<'s> Parser<'s> {
    fn new(src: &'s str) -> Self {
        Parser {
            src,
            chars: src.chars().collect(),
            pos: 0,
            depth: 0,
            function_offset: None,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.chars.get(self.pos.saturating_add(n)).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn starts_with(&self, s: &str) -> bool {
        s.chars()
            .enumerate()
            .all(|(i, c)| self.peek_at(i) == Some(c))
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn rest_is_ws(&self) -> bool {
        self.chars
            .get(self.pos..)
            .is_none_or(|rest| rest.iter().all(|c| c.is_whitespace()))
    }

    fn err(&self, offset: usize, message: impl Into<String>) -> PathError {
        PathError::Syntax {
            path: self.src.to_string(),
            offset,
            message: message.into(),
        }
    }

    fn nested<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, PathError>,
    ) -> Result<T, PathError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.err(
                self.pos,
                format!("expression nested more than {MAX_DEPTH} levels deep"),
            ));
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }

    fn parse_path(mut self) -> Result<Parsed, PathError> {
        match self.peek() {
            None => return Err(self.err(0, "a path cannot be empty: it must start with '$'")),
            Some('$') => {}
            Some(_) => {
                return Err(self.err(
                    0,
                    "a path must start with '$' (the input), '$$' (the context object) or '$name' (a variable)",
                ));
            }
        }
        self.pos = 1;
        let root = if self.eat('$') {
            PathRoot::Context
        } else if self
            .peek()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        {
            let mut name = String::new();
            while let Some(c) = self.peek() {
                if c.is_ascii_alphanumeric() || c == '_' {
                    name.push(c);
                    self.pos += 1;
                } else {
                    break;
                }
            }
            PathRoot::Variable(name)
        } else {
            PathRoot::Input
        };
        match self.peek() {
            None | Some('.') | Some('[') => {}
            Some(c) if c.is_whitespace() && self.rest_is_ws() => {}
            Some(c) => {
                return Err(self.err(
                    self.pos,
                    format!("unexpected '{c}' after '{root}': expected '.' or '['"),
                ));
            }
        }
        let (query, offsets) = self.parse_query(false)?;
        if self.pos < self.chars.len() {
            return Err(self.err(self.pos, "unexpected text after the path"));
        }
        Ok(Parsed {
            root,
            query,
            offsets,
            function_offset: self.function_offset,
        })
    }

    /// Segments up to the end of the text (or, inside a filter, up to a
    /// character that ends a filter path).
    fn parse_query(&mut self, in_filter: bool) -> Result<(Query, Vec<usize>), PathError> {
        let mut segments = Vec::new();
        let mut offsets = Vec::new();
        let mut function = None;
        loop {
            let start = self.pos;
            let Some(c) = self.peek() else { break };
            if in_filter && is_filter_terminator(c) {
                break;
            }
            if c.is_whitespace() {
                if in_filter {
                    break;
                }
                if self.rest_is_ws() {
                    self.pos = self.chars.len();
                    break;
                }
                return Err(self.err(
                    start,
                    "unexpected whitespace: use bracket notation, e.g. ['my key'], for a member name with spaces",
                ));
            }
            if function.is_some() {
                return Err(self.err(
                    start,
                    "a function call such as length() must be the last step of a path",
                ));
            }
            let segment = match c {
                '.' if self.peek_at(1) == Some('.') => {
                    self.pos += 2;
                    match self.peek() {
                        None => return Err(self.err(start, "a path must not end with '..'")),
                        Some('.') => {
                            return Err(self.err(self.pos, "'...' is not valid: use '.' or '..'"));
                        }
                        Some('[') => Segment::Descendant(self.bracket()?),
                        Some('*') => {
                            self.pos += 1;
                            Segment::Descendant(Selector::Wildcard)
                        }
                        Some(_) => {
                            let name_start = self.pos;
                            let name = self.dot_name(in_filter);
                            if name.is_empty() {
                                return Err(
                                    self.err(name_start, "expected a member name after '..'")
                                );
                            }
                            if self.peek() == Some('(') {
                                return Err(self.err(self.pos, "a function cannot follow '..'"));
                            }
                            Segment::Descendant(Selector::Name(name))
                        }
                    }
                }
                '.' => {
                    self.pos += 1;
                    match self.peek() {
                        None => return Err(self.err(start, "a path must not end with '.'")),
                        Some('[') => Segment::Child(self.bracket()?),
                        Some('*') => {
                            self.pos += 1;
                            Segment::Child(Selector::Wildcard)
                        }
                        Some(_) => {
                            let name_start = self.pos;
                            let name = self.dot_name(in_filter);
                            if name.is_empty() {
                                return Err(
                                    self.err(name_start, "expected a member name after '.'")
                                );
                            }
                            if self.peek() == Some('(') {
                                function = Some(self.function(&name, name_start)?);
                                self.function_offset = Some(name_start);
                                continue;
                            }
                            Segment::Child(Selector::Name(name))
                        }
                    }
                }
                '[' => Segment::Child(self.bracket()?),
                _ => {
                    return Err(self.err(start, format!("unexpected '{c}': expected '.' or '['")));
                }
            };
            segments.push(segment);
            offsets.push(start);
        }
        Ok((Query { segments, function }, offsets))
    }

    /// A member name in dot notation: Jayway takes everything up to `.`, `[`,
    /// `(` or whitespace (and, in filters, up to an operator or bracket).
    fn dot_name(&mut self, in_filter: bool) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c == '.'
                || c == '['
                || c == '('
                || c.is_whitespace()
                || (in_filter && is_filter_terminator(c))
            {
                break;
            }
            name.push(c);
            self.pos += 1;
        }
        name
    }

    /// `name(` has been read up to the parenthesis.
    fn function(&mut self, name: &str, name_start: usize) -> Result<PathFunction, PathError> {
        let Some(f) = FUNCTION_NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| *f)
        else {
            let known: Vec<String> = FUNCTION_NAMES
                .iter()
                .map(|(n, _)| format!("{n}()"))
                .collect();
            return Err(self.err(
                name_start,
                format!(
                    "unknown path function '{name}()'; supported: {}",
                    known.join(", ")
                ),
            ));
        };
        self.pos += 1; // '('
        self.skip_ws();
        if !self.eat(')') {
            return Err(self.err(
                self.pos,
                format!("expected ')': {name}() takes no arguments"),
            ));
        }
        Ok(f)
    }

    /// A bracketed selector; `self.pos` is at `[`.
    fn bracket(&mut self) -> Result<Selector, PathError> {
        let open = self.pos;
        self.pos += 1;
        self.skip_ws();
        match self.peek() {
            None => Err(self.err(open, "unclosed '['")),
            Some('\'') | Some('"') => self.quoted_names(open),
            Some('*') => {
                self.pos += 1;
                self.skip_ws();
                if !self.eat(']') {
                    return Err(self.err(self.pos, "expected ']' after '[*'"));
                }
                Ok(Selector::Wildcard)
            }
            Some('?') => {
                self.pos += 1;
                let filter = self.nested(|p| p.filter_or())?;
                self.skip_ws();
                if !self.eat(']') {
                    return Err(self.err(self.pos, format!("expected ']' to close the filter opened at offset {open}")));
                }
                Ok(Selector::Filter(Box::new(filter)))
            }
            Some(c) if c.is_ascii_digit() || c == '-' || c == ':' => self.index_or_slice(open),
            Some(c) => Err(self.err(
                self.pos,
                format!("unexpected '{c}' after '[': expected a quoted member name, an index, a slice, '*' or a '?' filter"),
            )),
        }
    }

    fn quoted_names(&mut self, open: usize) -> Result<Selector, PathError> {
        let mut names = Vec::new();
        loop {
            self.skip_ws();
            let q = match self.peek() {
                Some(q @ ('\'' | '"')) => q,
                _ => return Err(self.err(self.pos, "expected a quoted member name")),
            };
            let qstart = self.pos;
            self.pos += 1;
            let mut name = String::new();
            loop {
                match self.bump() {
                    None => return Err(self.err(qstart, "unterminated quoted member name")),
                    // Jayway keeps escapes as written: a backslash only stops
                    // the next character from closing the name.
                    Some('\\') => {
                        name.push('\\');
                        match self.bump() {
                            Some(n) => name.push(n),
                            None => return Err(self.err(qstart, "unterminated quoted member name")),
                        }
                    }
                    Some(c) if c == q => break,
                    Some(c) => name.push(c),
                }
            }
            names.push(name);
            self.skip_ws();
            match self.bump() {
                Some(',') => continue,
                Some(']') => break,
                None => return Err(self.err(open, "unclosed '['")),
                Some(c) => {
                    return Err(self.err(
                        self.pos - 1,
                        format!("unexpected '{c}': expected ',' or ']' after a quoted member name"),
                    ));
                }
            }
        }
        Ok(if names.len() == 1 {
            Selector::Name(names.pop().unwrap_or_default())
        } else {
            Selector::Names(names)
        })
    }

    fn index_or_slice(&mut self, open: usize) -> Result<Selector, PathError> {
        let start = self.pos;
        let mut text = String::new();
        loop {
            match self.peek() {
                None => return Err(self.err(open, "unclosed '['")),
                Some(']') => {
                    self.pos += 1;
                    break;
                }
                Some(c)
                    if c.is_ascii_digit()
                        || c == ','
                        || c == '-'
                        || c == ':'
                        || c.is_whitespace() =>
                {
                    text.push(c);
                    self.pos += 1;
                }
                Some(c) => {
                    return Err(self.err(
                        self.pos,
                        format!("unexpected '{c}' in an array index or slice"),
                    ));
                }
            }
        }
        let int = |p: &Self, s: &str| -> Result<i64, PathError> {
            s.trim()
                .parse::<i64>()
                .map_err(|_| p.err(start, format!("invalid array index '{}'", s.trim())))
        };
        if text.contains(':') {
            let mut parts = text.split(':');
            let from = parts.next().unwrap_or("");
            let to = parts.next().unwrap_or("");
            if parts.next().is_some() {
                return Err(self.err(start, "slice steps ([start:end:step]) are not supported"));
            }
            if from.contains(',') || to.contains(',') {
                return Err(self.err(start, "a slice cannot be combined with a list of indexes"));
            }
            let from = if from.trim().is_empty() {
                None
            } else {
                Some(int(self, from)?)
            };
            let to = if to.trim().is_empty() {
                None
            } else {
                Some(int(self, to)?)
            };
            if from.is_none() && to.is_none() {
                return Err(self.err(start, "a slice needs a start or an end, e.g. [1:] or [:2]"));
            }
            Ok(Selector::Slice(from, to))
        } else {
            let mut indexes = Vec::new();
            for part in text.split(',') {
                if part.trim().is_empty() {
                    return Err(self.err(start, "empty array index"));
                }
                indexes.push(int(self, part)?);
            }
            Ok(match indexes.as_slice() {
                [one] => Selector::Index(*one),
                _ => Selector::Indices(indexes),
            })
        }
    }

    // ----- filters -------------------------------------------------------

    fn filter_or(&mut self) -> Result<Filter, PathError> {
        self.filter_chain("||", Self::filter_and, Filter::Or)
    }

    fn filter_and(&mut self) -> Result<Filter, PathError> {
        self.filter_chain("&&", Self::filter_unary, Filter::And)
    }

    /// `operand (op operand)*`; a single operand stands for itself.
    fn filter_chain(
        &mut self,
        op: &str,
        operand: fn(&mut Self) -> Result<Filter, PathError>,
        join: fn(Vec<Filter>) -> Filter,
    ) -> Result<Filter, PathError> {
        let mut items = vec![operand(self)?];
        loop {
            self.skip_ws();
            if self.starts_with(op) {
                self.pos += op.len();
                items.push(operand(self)?);
            } else {
                break;
            }
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or_else(|| join(Vec::new()))
        } else {
            join(items)
        })
    }

    fn filter_unary(&mut self) -> Result<Filter, PathError> {
        self.skip_ws();
        match self.peek() {
            Some('!') if self.peek_at(1) != Some('=') => {
                self.pos += 1;
                let inner = self.nested(|p| p.filter_unary())?;
                Ok(match inner {
                    Filter::Exists { path, expect } => Filter::Exists {
                        path,
                        expect: !expect,
                    },
                    other => Filter::Not(Box::new(other)),
                })
            }
            Some('(') => {
                let open = self.pos;
                self.pos += 1;
                let inner = self.nested(|p| p.filter_or())?;
                self.skip_ws();
                if !self.eat(')') {
                    return Err(self.err(
                        self.pos,
                        format!("expected ')' to close the '(' at offset {open}"),
                    ));
                }
                Ok(inner)
            }
            None => Err(self.err(self.pos, "unexpected end of the filter expression")),
            _ => self.filter_relation(),
        }
    }

    fn filter_relation(&mut self) -> Result<Filter, PathError> {
        let left_start = self.pos;
        let left = self.operand()?;
        self.skip_ws();
        let op_start = self.pos;
        let Some(op) = self.rel_op()? else {
            return match left {
                Operand::Path(path) => Ok(Filter::Exists { path, expect: true }),
                _ => Err(self.err(
                    left_start,
                    "a filter condition needs a comparison, or a path to test for existence",
                )),
            };
        };
        self.skip_ws();
        let right_start = self.pos;
        let right = self.operand()?;
        let is_regex = |o: &Operand| matches!(o, Operand::Regex(_));
        match op {
            RelOp::Match => {
                if !is_regex(&left) && !is_regex(&right) {
                    return Err(self.err(op_start, "'=~' needs a /regular expression/ on one side"));
                }
            }
            _ => {
                if is_regex(&left) {
                    return Err(self.err(
                        left_start,
                        "a /regular expression/ can only be used with '=~'",
                    ));
                }
                if is_regex(&right) {
                    return Err(self.err(
                        right_start,
                        "a /regular expression/ can only be used with '=~'",
                    ));
                }
            }
        }
        if matches!(op, RelOp::Empty | RelOp::Exists)
            && !matches!(right, Operand::Literal(Value::Bool(_)))
        {
            return Err(self.err(
                right_start,
                "expected true or false after 'empty' or 'exists'",
            ));
        }
        if op == RelOp::Size && matches!(&right, Operand::Literal(v) if !v.is_number()) {
            return Err(self.err(right_start, "expected a number after 'size'"));
        }
        Ok(Filter::Compare { left, op, right })
    }

    fn rel_op(&mut self) -> Result<Option<RelOp>, PathError> {
        let start = self.pos;
        let Some(c) = self.peek() else {
            return Ok(None);
        };
        if c == ')' || c == ']' || self.starts_with("&&") || self.starts_with("||") {
            return Ok(None);
        }
        for (sym, op) in SYMBOL_OPS {
            if self.starts_with(sym) {
                self.pos += sym.chars().count();
                return Ok(Some(*op));
            }
        }
        if c.is_ascii_alphabetic() {
            let mut word = String::new();
            while let Some(c) = self.peek().filter(char::is_ascii_alphabetic) {
                word.push(c);
                self.pos += 1;
            }
            if let Some((_, op)) = WORD_OPS.iter().find(|(w, _)| word.eq_ignore_ascii_case(w)) {
                return Ok(Some(*op));
            }
            if word.eq_ignore_ascii_case("type") || word.eq_ignore_ascii_case("matches") {
                return Err(self.err(
                    start,
                    format!("the filter operator '{word}' is not supported"),
                ));
            }
            return Err(self.err(start, format!("unknown filter operator '{word}'")));
        }
        if c == '=' {
            return Err(self.err(start, "'=' is not a comparison: use '=='"));
        }
        Err(self.err(
            start,
            format!("unexpected '{c}': expected a comparison operator such as '==', '<' or 'in'"),
        ))
    }

    fn operand(&mut self) -> Result<Operand, PathError> {
        let start = self.pos;
        match self.peek() {
            None => Err(self.err(start, "expected a value in the filter expression")),
            Some('@') => {
                self.pos += 1;
                let (query, _) = self.parse_query(true)?;
                Ok(Operand::Path(FilterPath {
                    absolute: false,
                    query,
                }))
            }
            Some('$') => {
                if self
                    .peek_at(1)
                    .is_some_and(|c| c == '$' || c.is_ascii_alphanumeric() || c == '_')
                {
                    return Err(self.err(
                        start,
                        "only '@' (the current node) and '$' (the document root) paths can be used in a filter",
                    ));
                }
                self.pos += 1;
                let (query, _) = self.parse_query(true)?;
                Ok(Operand::Path(FilterPath {
                    absolute: true,
                    query,
                }))
            }
            Some('/') => self.regex(),
            Some(_) => Ok(Operand::Literal(self.literal()?)),
        }
    }

    /// A literal in a filter: string, number, true/false/null, JSON array or
    /// object (strings may use single quotes).
    fn literal(&mut self) -> Result<Value, PathError> {
        let start = self.pos;
        match self.peek() {
            Some('\'') | Some('"') => Ok(Value::String(self.filter_string()?)),
            Some(c) if c == '-' || c.is_ascii_digit() => {
                let mut text = String::new();
                while let Some(c) = self
                    .peek()
                    .filter(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'))
                {
                    text.push(c);
                    self.pos += 1;
                }
                parse_number(&text)
                    .map(Value::Number)
                    .ok_or_else(|| self.err(start, format!("invalid number '{text}'")))
            }
            Some('[') => self.nested(|p| {
                p.pos += 1;
                let mut items = Vec::new();
                p.skip_ws();
                if p.eat(']') {
                    return Ok(Value::Array(items));
                }
                loop {
                    p.skip_ws();
                    items.push(p.literal()?);
                    p.skip_ws();
                    match p.bump() {
                        Some(',') => continue,
                        Some(']') => break,
                        _ => {
                            return Err(
                                p.err(start, "malformed array literal: expected ',' or ']'")
                            );
                        }
                    }
                }
                Ok(Value::Array(items))
            }),
            Some('{') => self.nested(|p| {
                p.pos += 1;
                let mut map = Map::new();
                p.skip_ws();
                if p.eat('}') {
                    return Ok(Value::Object(map));
                }
                loop {
                    p.skip_ws();
                    if !matches!(p.peek(), Some('\'' | '"')) {
                        return Err(p.err(p.pos, "expected a quoted key in the object literal"));
                    }
                    let key = p.filter_string()?;
                    p.skip_ws();
                    if !p.eat(':') {
                        return Err(
                            p.err(p.pos, "expected ':' after the key in the object literal")
                        );
                    }
                    p.skip_ws();
                    let value = p.literal()?;
                    map.insert(key, value);
                    p.skip_ws();
                    match p.bump() {
                        Some(',') => continue,
                        Some('}') => break,
                        _ => {
                            return Err(
                                p.err(start, "malformed object literal: expected ',' or '}'")
                            );
                        }
                    }
                }
                Ok(Value::Object(map))
            }),
            Some(c) if c.is_ascii_alphabetic() => {
                let mut word = String::new();
                while let Some(c) = self
                    .peek()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                {
                    word.push(c);
                    self.pos += 1;
                }
                match word.as_str() {
                    "true" => Ok(Value::Bool(true)),
                    "false" => Ok(Value::Bool(false)),
                    "null" => Ok(Value::Null),
                    _ => Err(self.err(
                        start,
                        format!("unexpected '{word}': strings in filters must be quoted"),
                    )),
                }
            }
            Some(c) => Err(self.err(start, format!("unexpected '{c}' in the filter expression"))),
            None => Err(self.err(start, "expected a value in the filter expression")),
        }
    }

    /// A quoted string in a filter, with Jayway's escapes.
    fn filter_string(&mut self) -> Result<String, PathError> {
        let start = self.pos;
        let Some(q) = self.bump() else {
            return Err(self.err(start, "expected a string"));
        };
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(self.err(start, "unterminated string")),
                Some(c) if c == q => break,
                Some('\\') => match self.bump() {
                    None => return Err(self.err(start, "unterminated string")),
                    Some('n') => out.push('\n'),
                    Some('r') => out.push('\r'),
                    Some('t') => out.push('\t'),
                    Some('f') => out.push('\u{c}'),
                    Some('b') => out.push('\u{8}'),
                    Some('u') => {
                        let at = self.pos;
                        let hi = self
                            .hex4()
                            .ok_or_else(|| self.err(at, "invalid \\u escape"))?;
                        let c = if (0xD800..0xDC00).contains(&hi) {
                            if !self.starts_with("\\u") {
                                return Err(self.err(at, "unpaired surrogate in \\u escape"));
                            }
                            self.pos += 2;
                            let lo = self
                                .hex4()
                                .ok_or_else(|| self.err(at, "invalid \\u escape"))?;
                            if !(0xDC00..0xE000).contains(&lo) {
                                return Err(self.err(at, "unpaired surrogate in \\u escape"));
                            }
                            char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                        } else {
                            char::from_u32(hi)
                        };
                        out.push(c.ok_or_else(|| self.err(at, "invalid \\u escape"))?);
                    }
                    Some(c) => out.push(c),
                },
                Some(c) => out.push(c),
            }
        }
        Ok(out)
    }

    fn hex4(&mut self) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = self.peek()?.to_digit(16)?;
            v = v * 16 + d;
            self.pos += 1;
        }
        Some(v)
    }

    /// `/pattern/flags`.
    fn regex(&mut self) -> Result<Operand, PathError> {
        let start = self.pos;
        self.pos += 1;
        let mut pattern = String::new();
        loop {
            match self.bump() {
                None => return Err(self.err(start, "unterminated regular expression")),
                Some('\\') => {
                    pattern.push('\\');
                    match self.bump() {
                        Some(c) => pattern.push(c),
                        None => return Err(self.err(start, "unterminated regular expression")),
                    }
                }
                Some('/') => break,
                Some(c) => pattern.push(c),
            }
        }
        let mut flags = String::new();
        while let Some(c) = self.peek().filter(char::is_ascii_alphabetic) {
            match c {
                'i' | 'm' | 's' | 'x' => flags.push(c),
                'u' | 'U' | 'd' => {}
                _ => {
                    return Err(self.err(
                        self.pos,
                        format!("unsupported regular expression flag '{c}'"),
                    ));
                }
            }
            self.pos += 1;
        }
        let full = if flags.is_empty() {
            pattern.clone()
        } else {
            format!("(?{flags}){pattern}")
        };
        let query = format!("$[?match(@, '{}')]", rfc_string_escape(&full));
        let matcher = serde_json_path::JsonPath::parse(&query)
            .map_err(|e| self.err(start, format!("invalid regular expression: {e}")))?;
        Ok(Operand::Regex(Regex {
            source: pattern,
            matcher,
        }))
    }
}

fn rfc_string_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A JSON number from literal text (integers stay integers).
pub(crate) fn parse_number(text: &str) -> Option<Number> {
    if text.is_empty() || text.starts_with('+') {
        return None;
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    if !digits.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    if !text.contains(['.', 'e', 'E']) {
        if let Ok(i) = text.parse::<i64>() {
            return Some(Number::from(i));
        }
        if let Ok(u) = text.parse::<u64>() {
            return Some(Number::from(u));
        }
    }
    let f = text.parse::<f64>().ok()?;
    Number::from_f64(f)
}

// ---------------------------------------------------------------------------
// Public parse functions
// ---------------------------------------------------------------------------

/// Parse a full JSONPath query (Jayway dialect) rooted at `$`, `$$` or `$name`.
pub fn parse_json_path(s: &str) -> Result<JsonPath, PathError> {
    let parsed = Parser::new(s).parse_path()?;
    Ok(JsonPath {
        root: parsed.root,
        query: parsed.query,
        source: s.to_string(),
    })
}

/// Parse a Reference Path: `.name`, `['name']` and `[index]` steps only.
pub fn parse_reference_path(s: &str) -> Result<ReferencePath, PathError> {
    let parser = Parser::new(s);
    let parsed = parser.parse_path()?;
    let err = |offset: usize, message: &str| PathError::Syntax {
        path: s.to_string(),
        offset,
        message: format!(
            "{message}: a reference path may only use '.name', ['name'] and [index] steps"
        ),
    };
    let mut steps = Vec::with_capacity(parsed.query.segments.len());
    for (seg, &offset) in parsed.query.segments.iter().zip(parsed.offsets.iter()) {
        let step = match seg {
            Segment::Child(Selector::Name(n)) => Step::Field(n.clone()),
            Segment::Child(Selector::Index(i)) => match usize::try_from(*i) {
                Ok(i) => Step::Index(i),
                Err(_) => return Err(err(offset, "negative indexes are not allowed")),
            },
            Segment::Child(Selector::Names(_)) => {
                return Err(err(
                    offset,
                    "several member names in one step are not allowed",
                ));
            }
            Segment::Child(Selector::Indices(_)) => {
                return Err(err(offset, "several indexes in one step are not allowed"));
            }
            Segment::Child(Selector::Slice(..)) => {
                return Err(err(offset, "array slices are not allowed"));
            }
            Segment::Child(Selector::Wildcard) => {
                return Err(err(offset, "wildcards ('*') are not allowed"));
            }
            Segment::Child(Selector::Filter(_)) => {
                return Err(err(offset, "filters ('[?(...)]') are not allowed"));
            }
            Segment::Descendant(_) => {
                return Err(err(offset, "deep scan ('..') is not allowed"));
            }
        };
        steps.push(step);
    }
    if parsed.query.function.is_some() {
        return Err(err(
            parsed.function_offset.unwrap_or(0),
            "functions such as length() are not allowed",
        ));
    }
    Ok(ReferencePath {
        root: parsed.root,
        steps,
        query: parsed.query,
        source: s.to_string(),
    })
}

// ---------------------------------------------------------------------------
// Public evaluation API
// ---------------------------------------------------------------------------

fn root_value<'a>(
    root: &PathRoot,
    cx: &PathContext<'a>,
    source: &str,
) -> Result<Cow<'a, Value>, PathError> {
    match root {
        PathRoot::Input => Ok(Cow::Borrowed(cx.input)),
        PathRoot::Context => Ok(Cow::Borrowed(cx.context)),
        PathRoot::Variable(name) => match (cx.variables)(name) {
            Some(v) => Ok(Cow::Owned(v)),
            None => Err(PathError::UndefinedVariable {
                path: source.to_string(),
                name: name.clone(),
            }),
        },
    }
}

impl JsonPath {
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when the path names at most one node (no wildcard, filter,
    /// slice, index list or `..`): such a path fails when it selects nothing.
    pub fn is_definite(&self) -> bool {
        self.query.is_definite()
    }

    /// True for `$`, `$$` or `$name` alone.
    pub fn is_root_only(&self) -> bool {
        self.query.segments.is_empty() && self.query.function.is_none()
    }

    /// Evaluate: a definite path gives its node (or [`PathError::NotFound`]),
    /// an indefinite one a JSON array of all matches (possibly empty), a
    /// path ending in a function the function's result.
    pub fn select(&self, cx: &PathContext) -> Result<Value, PathError> {
        let root = root_value(&self.root, cx, &self.source)?;
        self.select_in(&root)
    }

    /// Evaluate the query part against `document`, whatever the root.
    pub fn select_in(&self, document: &Value) -> Result<Value, PathError> {
        match resolve(&self.query, document, document) {
            Ok(v) => Ok(v.into_owned()),
            Err(f) => {
                let e = f.into_error(&self.source);
                // Jayway: an indefinite path (wildcard, slice, filter, `..`)
                // that finds nothing is an empty list, not an error.
                if !self.is_definite() && matches!(e, PathError::NotFound { .. }) {
                    Ok(Value::Array(Vec::new()))
                } else {
                    Err(e)
                }
            }
        }
    }
}

impl ReferencePath {
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Always true: a reference path names one node.
    pub fn is_definite(&self) -> bool {
        true
    }

    /// True for `$`, `$$` or `$name` alone.
    pub fn is_root_only(&self) -> bool {
        self.steps.is_empty()
    }

    /// The value the path names, or [`PathError::NotFound`].
    pub fn get(&self, cx: &PathContext) -> Result<Value, PathError> {
        let root = root_value(&self.root, cx, &self.source)?;
        self.get_in(&root)
    }

    /// Evaluate the steps against `document`, whatever the root.
    pub fn get_in(&self, document: &Value) -> Result<Value, PathError> {
        resolve(&self.query, document, document)
            .map(Cow::into_owned)
            .map_err(|f| f.into_error(&self.source))
    }

    /// ResultPath: put `value` into `target` at this path and return the
    /// result. `$` replaces the whole target; missing members on the way are
    /// created as objects; a step through a non-object (for a name) or a
    /// non-array / out-of-range index fails.
    pub fn set(&self, target: Value, value: Value) -> Result<Value, PathError> {
        let fail = |message: String| PathError::Set {
            path: self.source.clone(),
            message,
        };
        if self.root != PathRoot::Input {
            return Err(fail(format!(
                "a ResultPath must be rooted at '$', not '{}'",
                self.root
            )));
        }
        let Some((last, parents)) = self.steps.split_last() else {
            return Ok(value);
        };
        let mut target = target;
        let mut node = &mut target;
        let mut at = String::from("$");
        for step in parents {
            node = match step {
                Step::Field(name) => match node {
                    Value::Object(map) => map
                        .entry(name.clone())
                        .or_insert_with(|| Value::Object(Map::new())),
                    other => {
                        return Err(fail(format!(
                            "cannot set member '{name}' of {at}: it is {}, not an object",
                            json_type_article(other)
                        )));
                    }
                },
                Step::Index(i) => match node {
                    Value::Array(items) => {
                        let len = items.len();
                        match items.get_mut(*i) {
                            Some(item) => item,
                            None => {
                                return Err(fail(format!(
                                    "index {i} is out of range for {at}, an array of {len} items"
                                )));
                            }
                        }
                    }
                    other => {
                        return Err(fail(format!(
                            "cannot index {at} with [{i}]: it is {}, not an array",
                            json_type_article(other)
                        )));
                    }
                },
            };
            match step {
                Step::Field(name) => at.push_str(&format!("['{name}']")),
                Step::Index(i) => at.push_str(&format!("[{i}]")),
            }
        }
        match last {
            Step::Field(name) => match node {
                Value::Object(map) => {
                    map.insert(name.clone(), value);
                }
                other => {
                    return Err(fail(format!(
                        "cannot set member '{name}' of {at}: it is {}, not an object",
                        json_type_article(other)
                    )));
                }
            },
            Step::Index(i) => match node {
                Value::Array(items) => {
                    let len = items.len();
                    match items.get_mut(*i) {
                        Some(slot) => *slot = value,
                        None => {
                            return Err(fail(format!(
                                "index {i} is out of range for {at}, an array of {len} items"
                            )));
                        }
                    }
                }
                other => {
                    return Err(fail(format!(
                        "cannot index {at} with [{i}]: it is {}, not an array",
                        json_type_article(other)
                    )));
                }
            },
        }
        Ok(target)
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

// ---------------------------------------------------------------------------
// Evaluator (Jayway semantics)
// ---------------------------------------------------------------------------

enum Fail {
    /// PathNotFoundException
    NotFound(String),
    /// Other evaluation failures.
    Invalid(String),
}

impl Fail {
    fn into_error(self, path: &str) -> PathError {
        match self {
            Fail::NotFound(detail) => PathError::NotFound {
                path: path.to_string(),
                detail,
            },
            Fail::Invalid(message) => PathError::Evaluation {
                path: path.to_string(),
                message,
            },
        }
    }
}

fn json_type_article(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The Java class name Jayway's messages show for a value.
fn java_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "java.lang.Boolean",
        Value::Number(n) if n.is_f64() => "java.lang.Double",
        Value::Number(_) => "java.lang.Integer",
        Value::String(_) => "java.lang.String",
        Value::Array(_) => "java.util.ArrayList",
        Value::Object(_) => "java.util.LinkedHashMap",
    }
}

/// Evaluate a query to one value: a definite path's node, an indefinite
/// path's array of matches, or a function's result.
fn resolve<'a>(q: &'a Query, start: &'a Value, root: &'a Value) -> Result<Cow<'a, Value>, Fail> {
    let nodes = collect(q, start, root)?;
    let definite = q.is_definite();
    let input = if definite {
        match nodes.into_iter().next() {
            Some(v) => v,
            None => {
                return Err(Fail::NotFound(format!(
                    "No results for path: {}",
                    q.normalized("$")
                )));
            }
        }
    } else {
        Cow::Owned(Value::Array(
            nodes.into_iter().map(Cow::into_owned).collect(),
        ))
    };
    match q.function {
        Some(f) => apply_function(f, &input).map(Cow::Owned),
        None => Ok(input),
    }
}

/// All nodes a query selects, in Jayway's order.
fn collect<'a>(
    q: &'a Query,
    start: &'a Value,
    root: &'a Value,
) -> Result<Vec<Cow<'a, Value>>, Fail> {
    let n = q.segments.len();
    let mut current: Vec<&'a Value> = vec![start];
    let mut walk = Walk {
        root,
        budget: MAX_NODES,
    };
    let mut upstream_definite = true;
    let mut prefix = String::from("$");
    for (i, seg) in q.segments.iter().enumerate() {
        let leaf = i + 1 == n && q.function.is_none();
        if leaf {
            // Several names as the last step: merged into one object each.
            match seg {
                Segment::Child(Selector::Names(names)) => {
                    let mut out = Vec::new();
                    for node in current {
                        match node {
                            Value::Object(map) => out.push(Cow::Owned(merge_names(map, names))),
                            other => {
                                if upstream_definite {
                                    return Err(Fail::NotFound(expected_object(
                                        seg, &prefix, other,
                                    )));
                                }
                            }
                        }
                    }
                    return Ok(out);
                }
                Segment::Descendant(Selector::Names(names)) => {
                    let mut out = Vec::new();
                    for node in current {
                        for d in descendants(node, &mut walk.budget)? {
                            if let Value::Object(map) = d
                                && names.iter().all(|k| map.contains_key(k))
                            {
                                out.push(Cow::Owned(merge_names(map, names)));
                            }
                        }
                    }
                    return Ok(out);
                }
                _ => {}
            }
        }
        let mut next = Vec::new();
        for node in current {
            apply_segment(
                seg,
                node,
                &mut walk,
                upstream_definite,
                leaf,
                &prefix,
                &mut next,
            )?;
            if next.len() > MAX_NODES {
                return Err(Fail::Invalid(format!(
                    "the path selects more than {MAX_NODES} nodes"
                )));
            }
        }
        if upstream_definite {
            seg.write_normalized(&mut prefix);
        }
        upstream_definite = upstream_definite && seg.is_definite(leaf);
        current = next;
    }
    Ok(current.into_iter().map(Cow::Borrowed).collect())
}

fn merge_names(map: &Map<String, Value>, names: &[String]) -> Value {
    let mut merged = Map::new();
    for name in names {
        if let Some(v) = map.get(name) {
            merged.insert(name.clone(), v.clone());
        }
    }
    Value::Object(merged)
}

fn expected_object(seg: &Segment, prefix: &str, found: &Value) -> String {
    let fragment = match seg {
        Segment::Child(sel) | Segment::Descendant(sel) => sel.normalized(),
    };
    format!(
        "Expected to find an object with property {fragment} in path {prefix} but found '{}'. This is not a json object according to the JsonProvider: 'com.jayway.jsonpath.spi.json.JacksonJsonProvider'.",
        java_type(found)
    )
}

/// The node and everything below it, in document (pre-)order.
fn descendants<'a>(v: &'a Value, budget: &mut usize) -> Result<Vec<&'a Value>, Fail> {
    let mut out = Vec::new();
    let mut stack = vec![v];
    while let Some(n) = stack.pop() {
        out.push(n);
        *budget = budget.saturating_sub(1);
        if *budget == 0 {
            return Err(Fail::Invalid(format!(
                "the path selects more than {MAX_NODES} nodes"
            )));
        }
        match n {
            Value::Object(map) => stack.extend(map.values().rev()),
            Value::Array(items) => stack.extend(items.iter().rev()),
            _ => {}
        }
    }
    Ok(out)
}

/// Evaluation state shared by the steps of one query.
struct Walk<'a> {
    root: &'a Value,
    /// How many more nodes deep scans may visit.
    budget: usize,
}

fn apply_segment<'a>(
    seg: &'a Segment,
    node: &'a Value,
    walk: &mut Walk<'a>,
    upstream_definite: bool,
    leaf: bool,
    prefix: &str,
    out: &mut Vec<&'a Value>,
) -> Result<(), Fail> {
    let sel = match seg {
        Segment::Descendant(sel) => {
            for d in descendants(node, &mut walk.budget)? {
                scan_select(sel, d, walk.root, out);
            }
            return Ok(());
        }
        Segment::Child(sel) => sel,
    };
    match sel {
        Selector::Name(name) => match node {
            Value::Object(map) => match map.get(name) {
                Some(v) => out.push(v),
                None => {
                    if !leaf && upstream_definite {
                        return Err(Fail::NotFound(format!(
                            "Missing property in path {prefix}['{name}']"
                        )));
                    }
                }
            },
            other => {
                if upstream_definite {
                    return Err(Fail::NotFound(expected_object(seg, prefix, other)));
                }
            }
        },
        Selector::Names(names) => match node {
            Value::Object(map) => out.extend(names.iter().filter_map(|n| map.get(n))),
            other => {
                if upstream_definite {
                    return Err(Fail::NotFound(expected_object(seg, prefix, other)));
                }
            }
        },
        Selector::Index(_) | Selector::Indices(_) | Selector::Slice(..) => match node {
            Value::Array(items) => select_indexes(sel, items, out),
            Value::Null => {
                if upstream_definite {
                    return Err(Fail::NotFound(format!("The path {prefix} is null")));
                }
            }
            other => {
                if upstream_definite {
                    return Err(Fail::NotFound(format!(
                        "Filter: {} can only be applied to arrays. Current context is: {other}",
                        sel.normalized()
                    )));
                }
            }
        },
        Selector::Wildcard => match node {
            Value::Object(map) => out.extend(map.values()),
            Value::Array(items) => out.extend(items.iter()),
            _ => {}
        },
        Selector::Filter(f) => match node {
            Value::Object(_) => {
                if test(f, node, walk.root) {
                    out.push(node);
                }
            }
            Value::Array(items) => {
                let root = walk.root;
                out.extend(items.iter().filter(|item| test(f, item, root)));
            }
            other => {
                if upstream_definite {
                    return Err(Fail::Invalid(format!(
                        "Filter: [?] can not be applied to primitives. Current context is: {other}"
                    )));
                }
            }
        },
    }
    Ok(())
}

/// A selector after `..`, applied to one visited node.
fn scan_select<'a>(sel: &'a Selector, node: &'a Value, root: &'a Value, out: &mut Vec<&'a Value>) {
    match (sel, node) {
        (Selector::Name(name), Value::Object(map)) => out.extend(map.get(name)),
        (Selector::Names(names), Value::Object(map)) => {
            out.extend(names.iter().filter_map(|n| map.get(n)));
        }
        (Selector::Index(_) | Selector::Indices(_) | Selector::Slice(..), Value::Array(items)) => {
            select_indexes(sel, items, out);
        }
        (Selector::Wildcard, Value::Object(map)) => out.extend(map.values()),
        (Selector::Wildcard, Value::Array(items)) => out.extend(items.iter()),
        (Selector::Filter(f), Value::Object(_)) if test(f, node, root) => out.push(node),
        _ => {}
    }
}

fn array_get(items: &[Value], i: i64) -> Option<&Value> {
    let len = i64::try_from(items.len()).ok()?;
    let effective = if i < 0 { len.checked_add(i)? } else { i };
    items.get(usize::try_from(effective).ok()?)
}

/// Index, index list and slice, with Jayway's slice rules.
fn select_indexes<'a>(sel: &Selector, items: &'a [Value], out: &mut Vec<&'a Value>) {
    let Ok(len) = i64::try_from(items.len()) else {
        return;
    };
    match sel {
        Selector::Index(i) => out.extend(array_get(items, *i)),
        Selector::Indices(is) => out.extend(is.iter().filter_map(|i| array_get(items, *i))),
        Selector::Slice(Some(from), None) => {
            let from = if *from < 0 {
                len.saturating_add(*from)
            } else {
                *from
            }
            .max(0);
            for i in from..len {
                out.extend(array_get(items, i));
            }
        }
        Selector::Slice(None, Some(to)) => {
            let to = if *to < 0 {
                len.saturating_add(*to)
            } else {
                *to
            }
            .min(len);
            for i in 0..to {
                out.extend(array_get(items, i));
            }
        }
        Selector::Slice(Some(from), Some(to)) => {
            let to = (*to).min(len);
            if *from >= to || len == 0 {
                return;
            }
            // Jayway does not normalise a negative start here; indexes below
            // -len select nothing, so start there at the earliest.
            for i in (*from).max(-len)..to {
                out.extend(array_get(items, i));
            }
        }
        _ => {}
    }
}

fn apply_function(f: PathFunction, v: &Value) -> Result<Value, Fail> {
    let numbers = || -> Result<Vec<f64>, Fail> {
        let nums: Vec<f64> = match v {
            Value::Array(items) => items
                .iter()
                .filter_map(|i| i.as_number().and_then(Number::as_f64))
                .collect(),
            _ => Vec::new(),
        };
        if nums.is_empty() {
            Err(Fail::Invalid(
                "Aggregation function attempted to calculate value using empty array".to_string(),
            ))
        } else {
            Ok(nums)
        }
    };
    let float = |x: f64| Number::from_f64(x).map_or(Value::Null, Value::Number);
    Ok(match f {
        PathFunction::Length | PathFunction::Size => match v {
            Value::Array(items) => Value::from(items.len()),
            Value::Object(map) => Value::from(map.len()),
            _ => Value::Null,
        },
        PathFunction::Sum => float(numbers()?.iter().sum()),
        PathFunction::Min => float(numbers()?.iter().copied().fold(f64::INFINITY, f64::min)),
        PathFunction::Max => float(numbers()?.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
        PathFunction::Avg => {
            let n = numbers()?;
            float(n.iter().sum::<f64>() / n.len() as f64)
        }
        PathFunction::Stddev => {
            let n = numbers()?;
            let count = n.len() as f64;
            let sum: f64 = n.iter().sum();
            let sum_sq: f64 = n.iter().map(|x| x * x).sum();
            float((sum_sq / count - sum * sum / count / count).sqrt())
        }
        PathFunction::Keys => match v {
            Value::Object(map) => Value::Array(map.keys().cloned().map(Value::String).collect()),
            _ => Value::Null,
        },
        PathFunction::First => match v {
            Value::Array(items) => items.first().cloned().unwrap_or(Value::Null),
            _ => Value::Null,
        },
        PathFunction::Last => match v {
            Value::Array(items) => items.last().cloned().unwrap_or(Value::Null),
            _ => Value::Null,
        },
    })
}

// ----- filter evaluation ----------------------------------------------------

/// A filter operand's value: Jayway's UNDEFINED for a path that resolves to
/// nothing.
enum FVal<'a> {
    Undefined,
    Val(Cow<'a, Value>),
    Regex(&'a Regex),
}

impl FVal<'_> {
    fn value(&self) -> Option<&Value> {
        match self {
            FVal::Val(v) => Some(v),
            _ => None,
        }
    }
}

fn test<'a>(f: &'a Filter, current: &'a Value, root: &'a Value) -> bool {
    match f {
        Filter::Or(items) => items.iter().any(|i| test(i, current, root)),
        Filter::And(items) => items.iter().all(|i| test(i, current, root)),
        Filter::Not(inner) => !test(inner, current, root),
        Filter::Exists { path, expect } => exists(path, current, root) == *expect,
        Filter::Compare { left, op, right } => {
            let l = operand_value(left, current, root);
            let r = operand_value(right, current, root);
            compare(*op, &l, &r)
        }
    }
}

fn filter_path_start<'a>(p: &FilterPath, current: &'a Value, root: &'a Value) -> &'a Value {
    if p.absolute { root } else { current }
}

fn exists(p: &FilterPath, current: &Value, root: &Value) -> bool {
    let start = filter_path_start(p, current, root);
    if p.query.is_definite() || p.query.function.is_some() {
        resolve(&p.query, start, root).is_ok()
    } else {
        collect(&p.query, start, root).is_ok_and(|nodes| !nodes.is_empty())
    }
}

fn operand_value<'a>(o: &'a Operand, current: &'a Value, root: &'a Value) -> FVal<'a> {
    match o {
        Operand::Literal(v) => FVal::Val(Cow::Borrowed(v)),
        Operand::Regex(r) => FVal::Regex(r),
        Operand::Path(p) => {
            let start = filter_path_start(p, current, root);
            match resolve(&p.query, start, root) {
                Ok(v) => FVal::Val(v),
                Err(_) => FVal::Undefined,
            }
        }
    }
}

#[derive(PartialEq, Eq)]
enum Kind {
    Number,
    String,
    Bool,
    Null,
    Json,
}

fn kind(v: &Value) -> Kind {
    match v {
        Value::Number(_) => Kind::Number,
        Value::String(_) => Kind::String,
        Value::Bool(_) => Kind::Bool,
        Value::Null => Kind::Null,
        Value::Array(_) | Value::Object(_) => Kind::Json,
    }
}

fn compare(op: RelOp, l: &FVal, r: &FVal) -> bool {
    let (lv, rv) = (l.value(), r.value());
    let in_list = |needle: &Value, list: &Value| -> bool {
        match list {
            Value::Array(items) => items.iter().any(|e| jayway_eq(needle, e)),
            _ => false,
        }
    };
    match op {
        RelOp::Eq => matches!((lv, rv), (Some(a), Some(b)) if jayway_eq(a, b)),
        RelOp::Ne => !matches!((lv, rv), (Some(a), Some(b)) if jayway_eq(a, b)),
        RelOp::StrictEq => {
            matches!((lv, rv), (Some(a), Some(b)) if kind(a) == kind(b) && jayway_eq(a, b))
        }
        RelOp::StrictNe => {
            !matches!((lv, rv), (Some(a), Some(b)) if kind(a) == kind(b) && jayway_eq(a, b))
        }
        RelOp::Lt | RelOp::Le | RelOp::Gt | RelOp::Ge => {
            let Some(ord) = lv.zip(rv).and_then(|(a, b)| ordering(a, b)) else {
                return false;
            };
            match op {
                RelOp::Lt => ord == Ordering::Less,
                RelOp::Le => ord != Ordering::Greater,
                RelOp::Gt => ord == Ordering::Greater,
                _ => ord != Ordering::Less,
            }
        }
        RelOp::Match => {
            let (regex, input) = match (l, r) {
                (FVal::Regex(re), other) | (other, FVal::Regex(re)) => (re, other),
                _ => return false,
            };
            let text = match input.value() {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::Bool(b)) => b.to_string(),
                _ => String::new(),
            };
            !regex
                .matcher
                .query(&Value::Array(vec![Value::String(text)]))
                .is_empty()
        }
        RelOp::In => matches!((lv, rv), (Some(a), Some(list)) if in_list(a, list)),
        RelOp::Nin => !matches!((lv, rv), (Some(a), Some(list)) if in_list(a, list)),
        RelOp::Contains => match (lv, rv) {
            (Some(Value::String(a)), Some(Value::String(b))) => a.contains(b.as_str()),
            (Some(list @ Value::Array(_)), Some(b)) => in_list(b, list),
            _ => false,
        },
        RelOp::SubsetOf => match (lv, rv) {
            (Some(Value::Array(a)), Some(list @ Value::Array(_))) => {
                a.iter().all(|x| in_list(x, list))
            }
            _ => false,
        },
        RelOp::AnyOf => match (lv, rv) {
            (Some(Value::Array(a)), Some(list @ Value::Array(_))) => {
                a.iter().any(|x| in_list(x, list))
            }
            _ => false,
        },
        RelOp::NoneOf => match (lv, rv) {
            (Some(Value::Array(a)), Some(list @ Value::Array(_))) => {
                !a.iter().any(|x| in_list(x, list))
            }
            _ => false,
        },
        RelOp::All => match (lv, rv) {
            (Some(list @ Value::Array(_)), Some(Value::Array(b))) => {
                b.iter().all(|x| in_list(x, list))
            }
            (Some(list @ Value::Array(_)), Some(b)) => in_list(b, list),
            _ => false,
        },
        RelOp::Size => {
            let Some(expected) = rv.and_then(Value::as_number).and_then(Number::as_f64) else {
                return false;
            };
            let expected = expected.trunc();
            let len = match lv {
                Some(Value::String(s)) => s.encode_utf16().count(),
                Some(Value::Array(a)) => a.len(),
                Some(Value::Object(m)) => m.len(),
                _ => return false,
            };
            len as f64 == expected
        }
        RelOp::Empty => {
            let Some(Value::Bool(want)) = rv else {
                return false;
            };
            let empty = match lv {
                Some(Value::String(s)) => s.is_empty(),
                Some(Value::Array(a)) => a.is_empty(),
                Some(Value::Object(m)) => m.is_empty(),
                _ => return false,
            };
            empty == *want
        }
        RelOp::Exists => {
            let Some(Value::Bool(want)) = rv else {
                return false;
            };
            lv.is_some() == *want
        }
    }
}

fn num_cmp(a: &Number, b: &Number) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

fn ordering(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y),
        // Java compares strings by UTF-16 code units.
        (Value::String(x), Value::String(y)) => Some(x.encode_utf16().cmp(y.encode_utf16())),
        _ => None,
    }
}

/// A string as Java's BigDecimal would read it (no leading/trailing space,
/// no NaN/Infinity).
fn string_as_number(s: &str) -> Option<f64> {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    if body.is_empty()
        || !body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
    {
        return None;
    }
    s.parse::<f64>().ok()
}

/// Jayway's `==` between two values: numbers compare numerically, a number
/// on the left equals a string that reads as the same number, a string on
/// the left equals a number written the same way; arrays and objects compare
/// structurally.
fn jayway_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y) == Some(Ordering::Equal),
        (Value::Number(x), Value::String(s)) => match (x.as_f64(), string_as_number(s)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
        (Value::String(s), Value::Number(y)) => *s == y.to_string(),
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Null, Value::Null) => true,
        (Value::Array(_) | Value::Object(_), Value::Array(_) | Value::Object(_)) => {
            json_equal(a, b)
        }
        _ => false,
    }
}

/// Structural JSON equality where numbers compare by value (`1 == 1.0`).
pub(crate) fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| json_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel(path: &str, input: &Value) -> Result<Value, PathError> {
        let ctx = json!({"Execution": {"Id": "exec-1", "Input": {"input-value": 7}}});
        let vars = |name: &str| match name {
            "answer" => Some(json!(42)),
            "obj" => Some(json!({"list": [1, 2, 3]})),
            _ => None,
        };
        let cx = PathContext::new(input, &ctx).with_variables(&vars);
        parse_json_path(path).expect("parses").select(&cx)
    }

    fn store() -> Value {
        json!({
            "store": {
                "book": [
                    {"category": "reference", "author": "Nigel Rees", "title": "Sayings", "price": 8.95},
                    {"category": "fiction", "author": "Evelyn Waugh", "title": "Sword", "price": 12.99},
                    {"category": "fiction", "author": "Herman Melville", "title": "Moby Dick", "isbn": "0-553", "price": 8.99},
                    {"category": "fiction", "author": "J. R. R. Tolkien", "title": "LOTR", "isbn": "0-395", "price": 22.99}
                ],
                "bicycle": {"color": "red", "price": 19.95}
            },
            "foo-bar": 1,
            "detail": {"x-y": "dash", "a:b": "colon"},
            "vals": [0, 1, 2, 3, 4, 5],
            "users": [{"status": 0, "id": "a"}, {"status": 1, "id": "b"}, {"status": "0", "id": "c"}]
        })
    }

    fn syntax_err(path: &str) -> (usize, String) {
        match parse_json_path(path) {
            Err(PathError::Syntax {
                offset, message, ..
            }) => (offset, message),
            other => panic!("{path}: expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn roots() {
        let input = json!({"a": 1});
        assert_eq!(sel("$", &input).unwrap(), input);
        assert_eq!(sel("$$.Execution.Id", &input).unwrap(), json!("exec-1"));
        assert_eq!(
            sel("$$.Execution.Input.input-value", &input).unwrap(),
            json!(7)
        );
        assert_eq!(sel("$answer", &input).unwrap(), json!(42));
        assert_eq!(sel("$obj.list[1]", &input).unwrap(), json!(2));
        let p = parse_json_path("$obj.list[0]").unwrap();
        assert_eq!(p.root, PathRoot::Variable("obj".into()));
        assert_eq!(parse_json_path("$$").unwrap().root, PathRoot::Context);
        assert!(matches!(
            sel("$nope", &input),
            Err(PathError::UndefinedVariable { .. })
        ));
        assert_eq!(
            sel("$$", &input).unwrap()["Execution"]["Id"],
            json!("exec-1")
        );
    }

    #[test]
    fn jayway_member_names() {
        let s = store();
        assert_eq!(sel("$.foo-bar", &s).unwrap(), json!(1));
        assert_eq!(sel("$.detail.x-y", &s).unwrap(), json!("dash"));
        assert_eq!(sel("$.detail.a:b", &s).unwrap(), json!("colon"));
        assert_eq!(sel("$['detail']['x-y']", &s).unwrap(), json!("dash"));
        assert_eq!(sel("$[\"detail\"].x-y", &s).unwrap(), json!("dash"));
        assert_eq!(sel("$.['foo-bar']", &s).unwrap(), json!(1));
        // Jayway keeps backslashes in bracket names (AWS-recorded case).
        let input = json!({"Test\\\"\"Name\"": "Value\"\\"});
        assert_eq!(
            sel("$['Test\\\"\"Name\"']", &input).unwrap(),
            json!("Value\"\\")
        );
    }

    #[test]
    fn definite_paths_and_not_found_messages() {
        let s = store();
        assert_eq!(sel("$.store.book[0].price", &s).unwrap(), json!(8.95));
        assert_eq!(sel("$.store.book[-1].title", &s).unwrap(), json!("LOTR"));
        match sel("$.NoSuchInputPath", &s) {
            Err(e @ PathError::NotFound { .. }) => assert_eq!(
                e.to_string(),
                "Invalid path '$.NoSuchInputPath' : No results for path: $['NoSuchInputPath']"
            ),
            other => panic!("{other:?}"),
        }
        match sel("$.no.such.result.path", &s) {
            Err(e) => assert_eq!(
                e.to_string(),
                "Invalid path '$.no.such.result.path' : Missing property in path $['no']"
            ),
            Ok(v) => panic!("{v}"),
        }
        assert!(sel("$.store.book[10]", &s).unwrap_err().is_not_found());
        assert!(
            sel("$.foo-bar.x", &s)
                .unwrap_err()
                .to_string()
                .contains("Expected to find an object")
        );
        assert!(
            sel("$.detail[0]", &s)
                .unwrap_err()
                .to_string()
                .contains("can only be applied to arrays")
        );
        // An indefinite path that finds nothing is an empty list, even when a
        // property ahead of the indefinite part is missing: AWS returns
        // {"item": []} for "item.$": "$.items[*]" on {} (conformance corpus,
        // test_json_path_array_wildcard_or_slice_with_no_input).
        assert_eq!(sel("$.nothing[*]", &s).unwrap(), serde_json::json!([]));
    }

    #[test]
    fn indefinite_paths() {
        let s = store();
        assert_eq!(
            sel("$.store.book[*].author", &s).unwrap(),
            json!([
                "Nigel Rees",
                "Evelyn Waugh",
                "Herman Melville",
                "J. R. R. Tolkien"
            ])
        );
        assert_eq!(
            sel("$.store.book[*].isbn", &s).unwrap(),
            json!(["0-553", "0-395"])
        );
        assert_eq!(sel("$.store.book[*].missing", &s).unwrap(), json!([]));
        assert_eq!(
            sel("$..price", &s).unwrap(),
            json!([8.95, 12.99, 8.99, 22.99, 19.95])
        );
        assert_eq!(sel("$.vals[3:]", &s).unwrap(), json!([3, 4, 5]));
        assert_eq!(sel("$.vals[:2]", &s).unwrap(), json!([0, 1]));
        assert_eq!(sel("$.vals[1:3]", &s).unwrap(), json!([1, 2]));
        assert_eq!(sel("$.vals[-2:]", &s).unwrap(), json!([4, 5]));
        assert_eq!(sel("$.vals[:-4]", &s).unwrap(), json!([0, 1]));
        assert_eq!(sel("$.vals[0,2,9]", &s).unwrap(), json!([0, 2]));
        assert_eq!(sel("$.store.bicycle.*", &s).unwrap(), json!(["red", 19.95]));
        assert_eq!(
            sel("$.vals[1:5]", &json!({"vals": [1]})).unwrap(),
            json!([])
        );
        let p = parse_json_path("$.store.book[*]").unwrap();
        assert!(!p.is_definite());
        assert!(parse_json_path("$.store.book[0]").unwrap().is_definite());
        assert!(!parse_json_path("$..x").unwrap().is_definite());
    }

    #[test]
    fn filters() {
        let s = store();
        assert_eq!(
            sel("$.store.book[?(@.price < 10)].title", &s).unwrap(),
            json!(["Sayings", "Moby Dick"])
        );
        assert_eq!(
            sel(
                "$.store.book[?(@.category == 'fiction' && @.price > 20)].title",
                &s
            )
            .unwrap(),
            json!(["LOTR"])
        );
        assert_eq!(
            sel("$.store.book[?(@.price < 9 || @.price > 20)].title", &s).unwrap(),
            json!(["Sayings", "Moby Dick", "LOTR"])
        );
        assert_eq!(
            sel("$.store.book[?(@.isbn)].title", &s).unwrap(),
            json!(["Moby Dick", "LOTR"])
        );
        assert_eq!(
            sel("$.store.book[?(!@.isbn)].title", &s).unwrap(),
            json!(["Sayings", "Sword"])
        );
        assert_eq!(
            sel("$.store.book[?@.author == 'Evelyn Waugh'].price", &s).unwrap(),
            json!([12.99])
        );
        // Jayway: 0 == '0' (number on the left).
        assert_eq!(
            sel("$.users[?(@.status == 0)].id", &s).unwrap(),
            json!(["a", "c"])
        );
        assert_eq!(
            sel("$.users[?(@.status === 0)].id", &s).unwrap(),
            json!(["a"])
        );
        assert_eq!(
            sel("$.users[?(@.id in ['a', 'c'])].id", &s).unwrap(),
            json!(["a", "c"])
        );
        assert_eq!(
            sel("$.users[?(@.id nin ['a', 'c'])].id", &s).unwrap(),
            json!(["b"])
        );
        assert_eq!(
            sel("$.store.book[?(@.author =~ /.*melville/i)].title", &s).unwrap(),
            json!(["Moby Dick"])
        );
        assert_eq!(
            sel("$.store.book[?(@.price > $.store.bicycle.price)].title", &s).unwrap(),
            json!(["LOTR"])
        );
        assert_eq!(
            sel("$..book[?(@.title size 4)].title", &s).unwrap(),
            json!(["LOTR"])
        );
        // A filter on an object tests the object itself.
        assert_eq!(
            sel("$.store.bicycle[?(@.color == 'red')].price", &s).unwrap(),
            json!([19.95])
        );
        assert_eq!(sel("$.vals[?(@ > 3)]", &s).unwrap(), json!([4, 5]));
        assert_eq!(sel("$.vals[?(@ > 3 && (@ < 5))]", &s).unwrap(), json!([4]));
    }

    #[test]
    fn functions() {
        let s = store();
        assert_eq!(sel("$.vals.length()", &s).unwrap(), json!(6));
        assert_eq!(sel("$.vals.sum()", &s).unwrap(), json!(15.0));
        assert_eq!(sel("$.vals.max()", &s).unwrap(), json!(5.0));
        assert_eq!(sel("$.vals.avg()", &s).unwrap(), json!(2.5));
        assert_eq!(sel("$..price.min()", &s).unwrap(), json!(8.95));
        assert_eq!(sel("$.detail.keys()", &s).unwrap(), json!(["x-y", "a:b"]));
        assert!(sel("$.detail.sum()", &s).is_err());
        // After an indefinite path a function applies to the list of matches.
        assert_eq!(sel("$.store.book[*].length()", &s).unwrap(), json!(4));
        assert_eq!(sel("$.vals[*].sum()", &s).unwrap(), json!(15.0));
        // length() of a string is null in Jayway, so nothing matches here.
        assert_eq!(
            sel("$.store.book[?(@.title.length() > 0)]", &s).unwrap(),
            json!([])
        );
        assert_eq!(
            sel("$.store[?(@.book.length() > 3)].bicycle.color", &s).unwrap(),
            json!(["red"])
        );
        assert_eq!(syntax_err("$.vals.nope()").0, 7);
    }

    #[test]
    fn syntax_errors() {
        for bad in [
            "",
            ".guid",
            "..guid",
            "()",
            "$...",
            "bug$.library.movies",
            "ipsum",
            "not a path",
            "$.",
            "$..",
            "$[",
            "$['a'",
            "$[*",
            "$[?(@.a == 1]",
            "$.a b",
            "$$$",
            "$-1",
            "$[1:2:3]",
            "$[:]",
            "$.a[?(@.x = 1)]",
            "$.a[?(@.x == foo)]",
            " $.a",
            "$[a]",
            "$.a.length().b",
            "$.*x",
        ] {
            let r = parse_json_path(bad);
            assert!(
                matches!(r, Err(PathError::Syntax { .. })),
                "{bad:?} should fail, got {r:?}"
            );
        }
        assert_eq!(syntax_err("$.a b").0, 3);
        assert_eq!(syntax_err("$...").0, 3);
        assert_eq!(syntax_err("bug$.x").0, 0);
        let (off, msg) = syntax_err("$.a[?(@.x = 1)]");
        assert_eq!(off, 10);
        assert!(msg.contains("'=='"), "{msg}");
        // Trailing whitespace is trimmed, as Jayway does.
        assert!(parse_json_path("$.a  ").is_ok());
        // Deep nesting is refused, not overflowed.
        let deep = format!("$[?{}@.a{}]", "(".repeat(500), ")".repeat(500));
        assert!(parse_json_path(&deep).is_err());
        let deep = format!("$[?(@.a in {}{})]", "[".repeat(500), "]".repeat(500));
        assert!(parse_json_path(&deep).is_err());
    }

    #[test]
    fn reference_paths() {
        let p = parse_reference_path("$.a['b c'][2]").unwrap();
        assert_eq!(p.root, PathRoot::Input);
        assert_eq!(
            p.steps,
            vec![
                Step::Field("a".into()),
                Step::Field("b c".into()),
                Step::Index(2)
            ]
        );
        assert_eq!(p.as_str(), "$.a['b c'][2]");
        assert!(parse_reference_path("$").unwrap().steps.is_empty());
        assert_eq!(
            parse_reference_path("$foo").unwrap().root,
            PathRoot::Variable("foo".into())
        );
        assert_eq!(
            parse_reference_path("$$.Task.Token").unwrap().root,
            PathRoot::Context
        );
        for bad in [
            ".guid",
            "..guid",
            "()",
            "$...",
            "$.a[*]",
            "$..a",
            "$.a[?(@.x)]",
            "$.a[1:2]",
            "$.a[-1]",
            "$.a.length()",
            "$['a','b']",
        ] {
            assert!(parse_reference_path(bad).is_err(), "{bad}");
        }
        match parse_reference_path("$.a[*]") {
            Err(PathError::Syntax {
                offset, message, ..
            }) => {
                assert_eq!(offset, 3);
                assert!(message.contains("wildcards"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reference_path_get_and_set() {
        let input = json!({"a": {"b": [1, 2]}, "s": "str"});
        let cx_ctx = json!({});
        let cx = PathContext::new(&input, &cx_ctx);
        assert_eq!(
            parse_reference_path("$.a.b[1]").unwrap().get(&cx).unwrap(),
            json!(2)
        );
        assert!(
            parse_reference_path("$.a.c")
                .unwrap()
                .get(&cx)
                .unwrap_err()
                .is_not_found()
        );

        let set = |p: &str, v: Value| parse_reference_path(p).unwrap().set(input.clone(), v);
        assert_eq!(set("$", json!(5)).unwrap(), json!(5));
        assert_eq!(
            set("$.r", json!(5)).unwrap(),
            json!({"a": {"b": [1, 2]}, "s": "str", "r": 5})
        );
        assert_eq!(
            set("$.x.y.z", json!(5)).unwrap()["x"],
            json!({"y": {"z": 5}})
        );
        assert_eq!(set("$.a.b[0]", json!(9)).unwrap()["a"]["b"], json!([9, 2]));
        assert_eq!(set("$.a.b", json!(null)).unwrap()["a"], json!({"b": null}));
        assert!(matches!(set("$.s.t", json!(1)), Err(PathError::Set { .. })));
        assert!(matches!(
            set("$.a.b[5]", json!(1)),
            Err(PathError::Set { .. })
        ));
        assert!(matches!(
            set("$.a[0]", json!(1)),
            Err(PathError::Set { .. })
        ));
        assert!(
            parse_reference_path("$$.x")
                .unwrap()
                .set(json!({}), json!(1))
                .is_err()
        );
        assert!(
            parse_reference_path("$.x")
                .unwrap()
                .set(json!("s"), json!(1))
                .is_err()
        );
    }

    #[test]
    fn never_panics_on_odd_input() {
        let inputs = [
            "$[",
            "$[?",
            "$[?(",
            "$[?(@",
            "$[?(@.",
            "$[?(@.a ==",
            "$[?(@.a == '",
            "$[?(@.a == \"\\",
            "$[?(@.a =~ /",
            "$[?(@.a =~ /x/q)]",
            "$['\\",
            "$[-",
            "$[99999999999999999999]",
            "$[-9223372036854775808:]",
            "$[:-9223372036854775808]",
            "$[-9223372036854775808:9223372036854775807]",
            "$[?(@.a == {'k': [1, {'x': null}]})]",
            "$[?(@.a == '\\u12')]",
            "$[?(@.a == '\\ud800')]",
            "$é",
            "$.é",
            "$$.",
            "$[?(!)]",
            "$[?(!!!@.a)]",
            "$[?(@.a in)]",
            "$[?()]",
            "$[?(@.a &&)]",
            "$..[?(@)]",
            "$[?(@.a.length() > 1)]",
            "$.\u{0}",
            "$[?(@ =~ /(/)]",
        ];
        let doc = json!({"a": [1, {"a": "x"}, [2, 3]], "b": {"a": null}});
        for s in inputs {
            if let Ok(p) = parse_json_path(s) {
                let _ = p.select_in(&doc);
            }
            let _ = parse_reference_path(s);
        }
        let big = json!({"vals": [1, 2, 3]});
        let p = parse_json_path("$.vals[-9223372036854775808:9223372036854775807]").unwrap();
        // Jayway does not normalise a negative start of [from:to]: the
        // indexes -3..3 wrap around.
        assert_eq!(p.select_in(&big).unwrap(), json!([1, 2, 3, 1, 2, 3]));
        let p = parse_json_path("$.vals[-2:2]").unwrap();
        assert_eq!(p.select_in(&big).unwrap(), json!([2, 3, 1, 2]));
    }

    // ----- the conformance corpus -----------------------------------------

    fn corpus_dir() -> std::path::PathBuf {
        match std::env::var_os("PIFLOW_CONFORMANCE_DIR") {
            Some(d) => std::path::PathBuf::from(d),
            None => {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
            }
        }
    }

    #[derive(Default)]
    struct Corpus {
        parsed: usize,
        failures: Vec<String>,
    }

    impl Corpus {
        fn check<T, E: fmt::Display>(&mut self, what: &str, text: &str, r: Result<T, E>) {
            match r {
                Ok(_) => self.parsed += 1,
                Err(e) => self.failures.push(format!("{what} {text:?}: {e}")),
            }
        }

        fn payload(&mut self, file: &str, v: &Value) {
            match v {
                Value::Object(map) => {
                    for (k, x) in map {
                        match (k.ends_with(".$"), x) {
                            (true, Value::String(s)) => {
                                let r = crate::intrinsic::parse_payload_expr(s);
                                self.check(&format!("{file}: {k}"), s, r);
                            }
                            _ => self.payload(file, x),
                        }
                    }
                }
                Value::Array(items) => items.iter().for_each(|x| self.payload(file, x)),
                _ => {}
            }
        }

        fn choice_rule(&mut self, file: &str, rule: &Value) {
            let Value::Object(map) = rule else { return };
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("Variable", Value::String(s)) => {
                        let r = parse_json_path(s);
                        self.check(&format!("{file}: Variable"), s, r);
                    }
                    ("And" | "Or", Value::Array(rules)) => {
                        rules.iter().for_each(|r| self.choice_rule(file, r))
                    }
                    ("Not", r) => self.choice_rule(file, r),
                    (k, Value::String(s)) if k.ends_with("Path") => {
                        let r = parse_json_path(s);
                        self.check(&format!("{file}: {k}"), s, r);
                    }
                    _ => {}
                }
            }
        }

        fn states(&mut self, file: &str, states: &Value, inherited: &str) {
            let Value::Object(states) = states else {
                return;
            };
            for state in states.values() {
                let Value::Object(s) = state else { continue };
                let lang = s
                    .get("QueryLanguage")
                    .and_then(Value::as_str)
                    .unwrap_or(inherited);
                if lang != "JSONata" {
                    for field in ["InputPath", "OutputPath", "ItemsPath"] {
                        if let Some(Value::String(p)) = s.get(field) {
                            let r = parse_json_path(p);
                            self.check(&format!("{file}: {field}"), p, r);
                        }
                    }
                    if let Some(Value::String(p)) = s.get("ResultPath") {
                        let r = parse_reference_path(p);
                        self.check(&format!("{file}: ResultPath"), p, r);
                    }
                    for field in ["Parameters", "ResultSelector", "ItemSelector", "Assign"] {
                        if let Some(v) = s.get(field) {
                            self.payload(file, v);
                        }
                    }
                    if let Some(v) = s.get("ItemReader").and_then(|r| r.get("Parameters")) {
                        self.payload(file, v);
                    }
                    for c in s
                        .get("Choices")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        self.choice_rule(file, c);
                        if let Some(v) = c.get("Assign") {
                            self.payload(file, v);
                        }
                    }
                    for c in s
                        .get("Catch")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        if let Some(Value::String(p)) = c.get("ResultPath") {
                            let r = parse_reference_path(p);
                            self.check(&format!("{file}: Catch ResultPath"), p, r);
                        }
                        if let Some(v) = c.get("Assign") {
                            self.payload(file, v);
                        }
                    }
                    for field in ["ErrorPath", "CausePath"] {
                        if let Some(Value::String(p)) = s.get(field) {
                            let r = crate::intrinsic::parse_payload_expr(p);
                            self.check(&format!("{file}: {field}"), p, r);
                        }
                    }
                    for field in [
                        "TimeoutSecondsPath",
                        "HeartbeatSecondsPath",
                        "SecondsPath",
                        "TimestampPath",
                        "MaxConcurrencyPath",
                        "ToleratedFailureCountPath",
                        "ToleratedFailurePercentagePath",
                    ] {
                        if let Some(Value::String(p)) = s.get(field) {
                            let r = parse_reference_path(p);
                            self.check(&format!("{file}: {field}"), p, r);
                        }
                    }
                }
                for b in s
                    .get("Branches")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let l = b
                        .get("QueryLanguage")
                        .and_then(Value::as_str)
                        .unwrap_or(lang);
                    if let Some(st) = b.get("States") {
                        self.states(file, st, l);
                    }
                }
                for field in ["Iterator", "ItemProcessor"] {
                    if let Some(p) = s.get(field) {
                        let l = p
                            .get("QueryLanguage")
                            .and_then(Value::as_str)
                            .unwrap_or(lang);
                        if let Some(st) = p.get("States") {
                            self.states(file, st, l);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn corpus_paths_parse() {
        let dir = corpus_dir().join("cases");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            eprintln!("skipping corpus_paths_parse: {} not found", dir.display());
            return;
        };
        let mut corpus = Corpus::default();
        let mut files = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("readable case");
            let case: Value = serde_json::from_str(&text).expect("case is JSON");
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("?")
                .to_string();
            let Some(def) = case.get("definition") else {
                continue;
            };
            files += 1;
            let lang = def
                .get("QueryLanguage")
                .and_then(Value::as_str)
                .unwrap_or("JSONPath");
            if case.get("kind").and_then(Value::as_str) == Some("test_state")
                && def.get("Type").is_some()
            {
                // A single state given to the TestState API.
                let wrapper = json!({ "State": def });
                corpus.states(&name, &wrapper, lang);
            } else if let Some(states) = def.get("States") {
                corpus.states(&name, states, lang);
            }
        }
        eprintln!(
            "corpus_paths_parse: {files} definitions, {} expressions parsed",
            corpus.parsed
        );
        assert!(
            corpus.failures.is_empty(),
            "{} failures:\n{}",
            corpus.failures.len(),
            corpus.failures.join("\n")
        );
        assert!(corpus.parsed > 0);

        // Expressions AWS (or asl-validator) rejects.
        for bad in [".guid", "..guid", "()", "$..."] {
            assert!(parse_reference_path(bad).is_err(), "{bad}");
        }
        assert!(parse_reference_path("$foo").unwrap().root.is_variable());
        assert!(parse_json_path("bug$.library.movies").is_err());
        assert!(crate::intrinsic::parse_payload_expr("ipsum").is_err());
        assert!(crate::intrinsic::parse_payload_expr("not a path").is_err());
    }
}
