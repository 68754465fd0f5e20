//! EventBridge event patterns: compile a pattern once ([`Pattern::parse`]),
//! then test events against it ([`Pattern::matches`]), or many patterns at
//! once with an index ([`PatternSet`]).
//!
//! The language is EventBridge's (see `docs/triggers.md`, "Event patterns"):
//! every leaf of a pattern is a non-empty array of alternatives (exact values
//! or one-key operator objects); fields are ANDed, alternatives ORed, and
//! `$or` ORs whole sub-patterns. An event value that is an array matches when
//! any of its elements matches. Nested fields reached through arrays in the
//! event keep "array consistency": all the fields of one nested pattern
//! object must match inside the same array element.
//!
//! Semantics of absent values follow EventBridge's leaf model: a field
//! "exists" when it has at least one leaf value (a string, number, boolean or
//! `null`; `null` counts). An object, an empty array or an array holding only
//! objects has no leaf value at that path, so `{"exists": false}` matches it
//! and `{"exists": true}` does not.
//!
//! Field names are dotted paths, on both sides: EventBridge's matcher
//! (aws/event-ruler) joins the keys of a pattern and of an event with `.`
//! and compares the joined names ("Caveat: Compiled rules and JSON keys with
//! dots", aws/event-ruler README.md; `Path.extendedName` in
//! src/main/software/amazon/event/ruler/JsonRuleCompiler.java), so the
//! pattern key `"a.b"` is the field `b` of the object `a`, and the event key
//! `"a.b"` is too. A compiled pattern is a tree split on the dots
//! ([`ObjNode`]); the event is walked through its keys whether or not they
//! hold dots (`matching.rs`).
//!
//! Layout: this file holds the types and the parsing of the pattern's
//! structure; `operators.rs` parses the operators, `values.rs` the numeric,
//! CIDR and wildcard operands, `complexity.rs` checks wildcards against
//! EventBridge's complexity limit, `matching.rs` matches events, and
//! `set.rs` indexes many patterns.

mod complexity;
mod matching;
mod operators;
mod set;
mod values;

use piflow_asl::path::json_type_article as type_name;
use serde_json::{Map, Value};

pub use set::PatternSet;
use values::{Cidr, Range, Wildcard};

/// Nesting deeper than this is refused (a compiled pattern is matched
/// recursively). Counted in field names (a dotted key counts each of its
/// parts) plus `$or` levels.
const MAX_DEPTH: usize = 64;

/// What is wrong with a pattern: a stable code for programs, and with the
/// JSON path inside the pattern in [`PatternError::path`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PatternErrorKind {
    /// The pattern, a nested field or a `$or` branch is not a JSON object.
    NotObject,
    /// An object with no field.
    EmptyObject,
    /// A leaf that is not an array of alternatives.
    NotArray,
    /// An empty array (a leaf, a `$or`, or an operator's list).
    EmptyArray,
    /// An operator name EventBridge does not know.
    UnknownOperator,
    /// An operator object with zero or several keys.
    OperatorShape,
    /// An operand of the wrong type.
    WrongOperand,
    /// A `numeric` range that is malformed, out of order or out of bounds,
    /// or a `numeric` or `anything-but` number EventBridge cannot compare.
    NumericRange,
    /// A `wildcard` value that is not allowed (consecutive `*`, bad escape).
    Wildcard,
    /// A `cidr` value that is not an IPv4 or IPv6 CIDR block.
    Cidr,
    /// A `$or` that is not an array of at least two objects.
    Or,
    /// Nesting deeper than piflow accepts.
    TooDeep,
    /// Wildcards that EventBridge refuses as too complex to match.
    TooComplex,
}

impl PatternErrorKind {
    /// Every code [`Self::code`] returns, with its meaning (docs/codes.md).
    pub const CODES: &[(&str, &str)] = &[
        ("pattern.not-object", "not an object"),
        ("pattern.empty-object", "an object with no field"),
        ("pattern.not-array", "a leaf that is not an array"),
        ("pattern.empty-array", "an empty array"),
        ("pattern.unknown-operator", "an unknown operator"),
        (
            "pattern.operator-shape",
            "an operator object with zero or several keys",
        ),
        ("pattern.numeric-range", "a malformed numeric range"),
        ("pattern.wrong-operand", "an operand of the wrong type"),
        ("pattern.wildcard", "a wildcard EventBridge refuses"),
        ("pattern.cidr", "not a CIDR block"),
        ("pattern.or", "a malformed $or"),
        ("pattern.too-deep", "nested too deep"),
        ("pattern.too-complex", "wildcards too complex to match"),
    ];

    /// The stable code, e.g. `pattern.not-array`.
    pub fn code(self) -> &'static str {
        match self {
            Self::NotObject => "pattern.not-object",
            Self::EmptyObject => "pattern.empty-object",
            Self::NotArray => "pattern.not-array",
            Self::EmptyArray => "pattern.empty-array",
            Self::UnknownOperator => "pattern.unknown-operator",
            Self::OperatorShape => "pattern.operator-shape",
            Self::WrongOperand => "pattern.wrong-operand",
            Self::NumericRange => "pattern.numeric-range",
            Self::Wildcard => "pattern.wildcard",
            Self::Cidr => "pattern.cidr",
            Self::Or => "pattern.or",
            Self::TooDeep => "pattern.too-deep",
            Self::TooComplex => "pattern.too-complex",
        }
    }
}

/// An invalid event pattern. Displays as `PATH: what is wrong`, e.g.
/// `detail.state: "anything-but" takes a string, number, or array, not a boolean`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{}: {message}", if path.is_empty() { "(pattern)" } else { path.as_str() })]
pub struct PatternError {
    pub kind: PatternErrorKind,
    /// Dotted path of the field inside the pattern (`$or[1].detail.state`);
    /// empty for the pattern itself.
    pub path: String,
    pub message: String,
}

impl PatternError {
    fn new(kind: PatternErrorKind, path: &str, message: impl Into<String>) -> Self {
        Self {
            kind,
            path: path.to_string(),
            message: message.into(),
        }
    }

    /// The stable code of [`PatternError::kind`].
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }
}

/// A compiled event pattern.
#[derive(Clone, Debug)]
pub struct Pattern {
    root: ObjNode,
}

/// An object level of a pattern: every field must match, and for each `$or`
/// one of its branches.
#[derive(Clone, Debug)]
struct ObjNode {
    /// `.` and the dotted name of this object in the event (`""` at the
    /// top, `.detail.state` below; the leading dot keeps a top-level key
    /// `""` apart from the top). `$or` branches share their parent's path.
    path: Box<str>,
    /// One entry per name segment (a pattern key `"a.b"` is the segment `a`
    /// holding an object with the segment `b`).
    fields: Vec<(Box<str>, Field)>,
    ors: Vec<Vec<ObjNode>>,
}

/// What a pattern asks of one field name. A name can be both a leaf and an
/// object (`{"a": [1], "a.b": [2]}`): event-ruler keeps `a` and `a.b` as two
/// fields, and both must match.
#[derive(Clone, Debug, Default)]
struct Field {
    leaf: Option<Leaf>,
    nested: Option<ObjNode>,
}

/// A leaf: alternatives, any of which may match any leaf value of the event.
#[derive(Clone, Debug)]
struct Leaf {
    matchers: Vec<Matcher>,
    /// Some matcher is `{"exists": false}` (matches when there is no value).
    exists_false: bool,
}

#[derive(Clone, Debug)]
enum Matcher {
    Str(Box<str>),
    Num(f64),
    Bool(bool),
    Null,
    Prefix(Box<str>),
    PrefixIgnoreCase(Box<str>),
    Suffix(Box<str>),
    SuffixIgnoreCase(Box<str>),
    EqualsIgnoreCase(Box<str>),
    Wildcard(Wildcard),
    AnythingBut(AnythingBut),
    Numeric(Range),
    Exists(bool),
    Cidr(Cidr),
}

/// `anything-but`: matches a leaf value that is not one of the listed
/// values. Every variant takes a list (a single operand is a list of one).
#[derive(Clone, Debug)]
enum AnythingBut {
    Strings(Vec<Box<str>>),
    Numbers(Vec<f64>),
    Prefix(Vec<Box<str>>),
    Suffix(Vec<Box<str>>),
    EqualsIgnoreCase(Vec<Box<str>>),
    Wildcard(Vec<Wildcard>),
}

// ---------------------------------------------------------------------------
// Parsing

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl Pattern {
    /// Compiles an event pattern, validating it as EventBridge does.
    pub fn parse(pattern: &Value) -> Result<Pattern, PatternError> {
        let map = object_of(pattern, "")?;
        let mut root = ObjNode::new("");
        fill_object(&mut root, map, "", 0)?;
        Ok(Pattern { root })
    }

    /// Parses pattern text (JSON), then compiles it.
    pub fn parse_str(text: &str) -> Result<Pattern, PatternError> {
        let v: Value = serde_json::from_str(text).map_err(|e| {
            PatternError::new(
                PatternErrorKind::NotObject,
                "",
                format!("is not valid JSON: {e}"),
            )
        })?;
        Self::parse(&v)
    }

    /// Does `event` match? Allocates nothing.
    pub fn matches(&self, event: &Value) -> bool {
        self.root.matches_value(event)
    }
}

impl ObjNode {
    fn new(path: &str) -> Self {
        ObjNode {
            path: path.into(),
            fields: Vec::new(),
            ors: Vec::new(),
        }
    }

    fn field_mut(&mut self, segment: &str) -> &mut Field {
        let pos = match self.fields.iter().position(|(k, _)| &**k == segment) {
            Some(pos) => pos,
            None => {
                self.fields.push((segment.into(), Field::default()));
                self.fields.len() - 1
            }
        };
        &mut self.fields[pos].1
    }

    /// The object at `segments` below this one, created when missing.
    fn object_at(&mut self, segments: &[&str]) -> &mut ObjNode {
        let Some((first, rest)) = segments.split_first() else {
            return self;
        };
        let path = format!("{}.{first}", self.path);
        self.field_mut(first)
            .nested
            .get_or_insert_with(|| ObjNode::new(&path))
            .object_at(rest)
    }
}

/// `v` as a non-empty object, or the error EventBridge gives.
fn object_of<'v>(v: &'v Value, path: &str) -> Result<&'v Map<String, Value>, PatternError> {
    let Value::Object(map) = v else {
        return Err(PatternError::new(
            PatternErrorKind::NotObject,
            path,
            format!("must be a JSON object, not {}", type_name(v)),
        ));
    };
    if map.is_empty() {
        return Err(PatternError::new(
            PatternErrorKind::EmptyObject,
            path,
            "empty objects are not allowed: name at least one field",
        ));
    }
    Ok(map)
}

/// Adds the fields of the pattern object `map` (at `path` in the pattern) to
/// `node`, which is `depth` levels down (name segments plus `$or` levels).
///
/// A key holding dots is a path of several segments (see the module docs).
/// When two keys name the same leaf (`{"a.b": [1], "a": {"b": [2]}}`), the
/// one written last wins: event-ruler stores a rule as a map from joined
/// names to values and writes each leaf into it in document order
/// (`writeRules` in JsonRuleCompiler.java, `withOverriding` true by default),
/// and the user guide says "if you include a key more than once the last
/// reference will be the one used" (awsdocs/amazon-eventbridge-user-guide,
/// doc_source/eb-event-patterns-content-based-filtering.md).
fn fill_object(
    node: &mut ObjNode,
    map: &Map<String, Value>,
    path: &str,
    depth: usize,
) -> Result<(), PatternError> {
    for (key, value) in map {
        let here = join(path, key);
        if key == "$or" && is_or(value) {
            let branches = parse_or(value, path, &node.path, depth)?;
            node.ors.push(branches);
            continue;
        }
        let segments: Vec<&str> = key.split('.').collect();
        let deeper = depth + segments.len();
        if deeper > MAX_DEPTH {
            return Err(PatternError::new(
                PatternErrorKind::TooDeep,
                &here,
                format!("nesting deeper than {MAX_DEPTH} levels"),
            ));
        }
        let Some((last, parents)) = segments.split_last() else {
            continue;
        };
        match value {
            Value::Object(_) => {
                let inner = object_of(value, &here)?;
                fill_object(node.object_at(&segments), inner, &here, deeper)?;
            }
            Value::Array(items) => {
                let leaf = parse_leaf(items, &here)?;
                node.object_at(parents).field_mut(last).leaf = Some(leaf);
            }
            other => {
                return Err(PatternError::new(
                    PatternErrorKind::NotArray,
                    &here,
                    format!(
                        "a leaf must be an array of values to match, not {} (write [{}])",
                        type_name(other),
                        other
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// `"$or"` is the OR operator when its value is an array holding objects;
/// otherwise it is an ordinary field name.
fn is_or(v: &Value) -> bool {
    match v {
        Value::Array(items) => {
            items.is_empty()
                || items
                    .iter()
                    .all(|i| i.is_object() && !is_operator_object(i))
        }
        _ => false,
    }
}

fn is_operator_object(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.len() == 1 && m.keys().all(|k| OPERATORS.contains(&k.as_str())),
        _ => false,
    }
}

const OPERATORS: &[&str] = &[
    "prefix",
    "suffix",
    "anything-but",
    "numeric",
    "exists",
    "cidr",
    "equals-ignore-case",
    "wildcard",
];

fn parse_or(
    v: &Value,
    path: &str,
    node_path: &str,
    depth: usize,
) -> Result<Vec<ObjNode>, PatternError> {
    let here = join(path, "$or");
    let items = v.as_array().map(Vec::as_slice).unwrap_or_default();
    if items.len() < 2 {
        return Err(PatternError::new(
            PatternErrorKind::Or,
            &here,
            format!(
                "\"$or\" takes an array of at least 2 pattern objects, not {}",
                items.len()
            ),
        ));
    }
    if depth + 1 > MAX_DEPTH {
        return Err(PatternError::new(
            PatternErrorKind::TooDeep,
            &here,
            format!("nesting deeper than {MAX_DEPTH} levels"),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let branch_path = format!("{here}[{i}]");
            let map = object_of(item, &branch_path)?;
            let mut branch = ObjNode::new(node_path);
            fill_object(&mut branch, map, &branch_path, depth + 1)?;
            Ok(branch)
        })
        .collect()
}

fn parse_leaf(items: &[Value], path: &str) -> Result<Leaf, PatternError> {
    if items.is_empty() {
        return Err(PatternError::new(
            PatternErrorKind::EmptyArray,
            path,
            "empty arrays are not allowed: list at least one value to match",
        ));
    }
    let mut matchers = Vec::with_capacity(items.len());
    for item in items {
        matchers.push(operators::parse_matcher(item, path)?);
    }
    let exists_false = matchers.iter().any(|m| matches!(m, Matcher::Exists(false)));
    complexity::check(&matchers, path)?;
    Ok(Leaf {
        matchers,
        exists_false,
    })
}
