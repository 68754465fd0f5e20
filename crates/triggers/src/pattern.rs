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

use std::collections::HashMap;
use std::net::IpAddr;

use serde_json::{Map, Value};

/// Nesting deeper than this is refused (a compiled pattern is matched
/// recursively).
const MAX_DEPTH: usize = 64;

/// EventBridge limits numeric matching to values in ±5.0e9.
const NUMERIC_LIMIT: f64 = 5.0e9;

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
    /// A `numeric` range that is malformed, out of order or out of bounds.
    NumericRange,
    /// A `wildcard` value that is not allowed (consecutive `*`, bad escape).
    Wildcard,
    /// A `cidr` value that is not an IPv4 or IPv6 CIDR block.
    Cidr,
    /// A `$or` that is not an array of at least two objects.
    Or,
    /// Nesting deeper than piflow accepts.
    TooDeep,
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

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
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
    fields: Vec<(Box<str>, Field)>,
    ors: Vec<Vec<ObjNode>>,
}

#[derive(Clone, Debug)]
enum Field {
    Nested(ObjNode),
    Leaf(Leaf),
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

#[derive(Clone, Debug)]
enum AnythingBut {
    Strings(Vec<Box<str>>),
    Numbers(Vec<f64>),
    Prefix(Box<str>),
    Suffix(Box<str>),
    EqualsIgnoreCase(Vec<Box<str>>),
    Wildcard(Vec<Wildcard>),
}

#[derive(Clone, Debug)]
struct Range {
    lower: Option<(f64, bool)>,
    upper: Option<(f64, bool)>,
}

#[derive(Clone, Debug)]
struct Cidr {
    net: IpAddr,
    bits: u8,
}

/// A compiled `wildcard` value: the literal pieces between `*`.
#[derive(Clone, Debug)]
struct Wildcard {
    pieces: Vec<Box<str>>,
    leading_star: bool,
    trailing_star: bool,
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
        let root = parse_object(pattern, "", 0)?;
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
        self.root.matches(Some(event))
    }
}

fn parse_object(v: &Value, path: &str, depth: usize) -> Result<ObjNode, PatternError> {
    if depth > MAX_DEPTH {
        return Err(PatternError::new(
            PatternErrorKind::TooDeep,
            path,
            format!("nesting deeper than {MAX_DEPTH} levels"),
        ));
    }
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
    let mut node = ObjNode {
        fields: Vec::with_capacity(map.len()),
        ors: Vec::new(),
    };
    for (key, value) in map {
        let here = join(path, key);
        if key == "$or" && is_or(value) {
            node.ors.push(parse_or(value, path, depth)?);
            continue;
        }
        let field = match value {
            Value::Object(_) => Field::Nested(parse_object(value, &here, depth + 1)?),
            Value::Array(items) => Field::Leaf(parse_leaf(items, &here)?),
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
        };
        node.fields.push((key.as_str().into(), field));
    }
    Ok(node)
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

fn parse_or(v: &Value, path: &str, depth: usize) -> Result<Vec<ObjNode>, PatternError> {
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
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let branch = format!("{here}[{i}]");
            parse_object(item, &branch, depth + 1)
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
        matchers.push(parse_matcher(item, path)?);
    }
    let exists_false = matchers.iter().any(|m| matches!(m, Matcher::Exists(false)));
    Ok(Leaf {
        matchers,
        exists_false,
    })
}

fn parse_matcher(item: &Value, path: &str) -> Result<Matcher, PatternError> {
    use PatternErrorKind as K;
    match item {
        Value::String(s) => Ok(Matcher::Str(s.as_str().into())),
        Value::Number(n) => Ok(Matcher::Num(n.as_f64().unwrap_or(f64::NAN))),
        Value::Bool(b) => Ok(Matcher::Bool(*b)),
        Value::Null => Ok(Matcher::Null),
        Value::Array(_) => Err(PatternError::new(
            K::NotArray,
            path,
            "nested arrays are not allowed in a leaf: list values or operator objects",
        )),
        Value::Object(map) => {
            if map.len() != 1 {
                let keys: Vec<&str> = map.keys().map(String::as_str).collect();
                return Err(PatternError::new(
                    K::OperatorShape,
                    path,
                    format!(
                        "an operator object takes exactly one key, not {} ({})",
                        map.len(),
                        if keys.is_empty() {
                            "none".to_string()
                        } else {
                            keys.join(", ")
                        }
                    ),
                ));
            }
            let Some((op, operand)) = map.iter().next() else {
                return Err(PatternError::new(
                    K::OperatorShape,
                    path,
                    "empty operator object",
                ));
            };
            parse_operator(op, operand, path)
        }
    }
}

fn want_string<'a>(op: &str, operand: &'a Value, path: &str) -> Result<&'a str, PatternError> {
    operand.as_str().ok_or_else(|| {
        PatternError::new(
            PatternErrorKind::WrongOperand,
            path,
            format!("\"{op}\" takes a string, not {}", type_name(operand)),
        )
    })
}

/// `{"prefix": "x"}` or `{"prefix": {"equals-ignore-case": "x"}}`.
fn string_or_ignore_case<'a>(
    op: &str,
    operand: &'a Value,
    path: &str,
) -> Result<(&'a str, bool), PatternError> {
    match operand {
        Value::String(s) => Ok((s, false)),
        Value::Object(m) if m.len() == 1 => match m.get("equals-ignore-case") {
            Some(Value::String(s)) => Ok((s, true)),
            Some(other) => Err(PatternError::new(
                PatternErrorKind::WrongOperand,
                path,
                format!(
                    "\"{op}\": {{\"equals-ignore-case\": …}} takes a string, not {}",
                    type_name(other)
                ),
            )),
            None => Err(PatternError::new(
                PatternErrorKind::UnknownOperator,
                path,
                format!(
                    "\"{op}\" takes a string or {{\"equals-ignore-case\": string}}, not {{\"{}\": …}}",
                    m.keys().next().map(String::as_str).unwrap_or_default()
                ),
            )),
        },
        other => Err(PatternError::new(
            PatternErrorKind::WrongOperand,
            path,
            format!(
                "\"{op}\" takes a string or {{\"equals-ignore-case\": string}}, not {}",
                type_name(other)
            ),
        )),
    }
}

fn parse_operator(op: &str, operand: &Value, path: &str) -> Result<Matcher, PatternError> {
    use PatternErrorKind as K;
    match op {
        "prefix" => {
            let (s, ic) = string_or_ignore_case(op, operand, path)?;
            Ok(if ic {
                Matcher::PrefixIgnoreCase(s.into())
            } else {
                Matcher::Prefix(s.into())
            })
        }
        "suffix" => {
            let (s, ic) = string_or_ignore_case(op, operand, path)?;
            Ok(if ic {
                Matcher::SuffixIgnoreCase(s.into())
            } else {
                Matcher::Suffix(s.into())
            })
        }
        "equals-ignore-case" => Ok(Matcher::EqualsIgnoreCase(
            want_string(op, operand, path)?.into(),
        )),
        "wildcard" => Ok(Matcher::Wildcard(Wildcard::parse(
            want_string(op, operand, path)?,
            path,
        )?)),
        "exists" => match operand {
            Value::Bool(b) => Ok(Matcher::Exists(*b)),
            other => Err(PatternError::new(
                K::WrongOperand,
                path,
                format!("\"exists\" takes true or false, not {}", type_name(other)),
            )),
        },
        "cidr" => Ok(Matcher::Cidr(Cidr::parse(
            want_string(op, operand, path)?,
            path,
        )?)),
        "numeric" => Ok(Matcher::Numeric(Range::parse(operand, path)?)),
        "anything-but" => Ok(Matcher::AnythingBut(AnythingBut::parse(operand, path)?)),
        other => Err(PatternError::new(
            K::UnknownOperator,
            path,
            format!(
                "unknown operator \"{other}\" (known: {})",
                OPERATORS.join(", ")
            ),
        )),
    }
}

impl AnythingBut {
    fn parse(operand: &Value, path: &str) -> Result<Self, PatternError> {
        use PatternErrorKind as K;
        match operand {
            Value::String(s) => Ok(Self::Strings(vec![s.as_str().into()])),
            Value::Number(n) => Ok(Self::Numbers(vec![num(n)])),
            Value::Array(items) => {
                if items.is_empty() {
                    return Err(PatternError::new(
                        K::EmptyArray,
                        path,
                        "\"anything-but\" takes a non-empty array",
                    ));
                }
                if items.iter().all(Value::is_string) {
                    Ok(Self::Strings(
                        items
                            .iter()
                            .filter_map(Value::as_str)
                            .map(Into::into)
                            .collect(),
                    ))
                } else if items.iter().all(Value::is_number) {
                    Ok(Self::Numbers(
                        items.iter().filter_map(Value::as_number).map(num).collect(),
                    ))
                } else {
                    Err(PatternError::new(
                        K::WrongOperand,
                        path,
                        "\"anything-but\" takes an array of only strings or only numbers",
                    ))
                }
            }
            Value::Object(m) => {
                if m.len() != 1 {
                    return Err(PatternError::new(
                        K::OperatorShape,
                        path,
                        format!(
                            "\"anything-but\" takes an object with exactly one key (prefix, suffix, equals-ignore-case or wildcard), not {}",
                            m.len()
                        ),
                    ));
                }
                let Some((op, v)) = m.iter().next() else {
                    return Err(PatternError::new(K::OperatorShape, path, "empty object"));
                };
                match op.as_str() {
                    "prefix" | "suffix" => {
                        let s = v.as_str().ok_or_else(|| {
                            PatternError::new(
                                K::WrongOperand,
                                path,
                                format!(
                                    "\"anything-but\": {{\"{op}\": …}} takes a string, not {}",
                                    type_name(v)
                                ),
                            )
                        })?;
                        if s.is_empty() {
                            return Err(PatternError::new(
                                K::WrongOperand,
                                path,
                                format!(
                                    "\"anything-but\": {{\"{op}\": …}} takes a non-empty string"
                                ),
                            ));
                        }
                        Ok(if op == "prefix" {
                            Self::Prefix(s.into())
                        } else {
                            Self::Suffix(s.into())
                        })
                    }
                    "equals-ignore-case" => Ok(Self::EqualsIgnoreCase(string_list(op, v, path)?)),
                    "wildcard" => {
                        let list = string_list(op, v, path)?;
                        Ok(Self::Wildcard(
                            list.iter()
                                .map(|s| Wildcard::parse(s, path))
                                .collect::<Result<_, _>>()?,
                        ))
                    }
                    other => Err(PatternError::new(
                        K::UnknownOperator,
                        path,
                        format!(
                            "\"anything-but\" takes a string, number, array, or an object with prefix, suffix, equals-ignore-case or wildcard, not {{\"{other}\": …}}"
                        ),
                    )),
                }
            }
            other => Err(PatternError::new(
                K::WrongOperand,
                path,
                format!(
                    "\"anything-but\" takes a string, number, array, or an object with prefix, suffix, equals-ignore-case or wildcard, not {}",
                    type_name(other)
                ),
            )),
        }
    }
}

fn num(n: &serde_json::Number) -> f64 {
    n.as_f64().unwrap_or(f64::NAN)
}

fn string_list(op: &str, v: &Value, path: &str) -> Result<Vec<Box<str>>, PatternError> {
    let bad = || {
        PatternError::new(
            PatternErrorKind::WrongOperand,
            path,
            format!(
                "\"anything-but\": {{\"{op}\": …}} takes a string or a non-empty array of strings, not {}",
                type_name(v)
            ),
        )
    };
    match v {
        Value::String(s) => Ok(vec![s.as_str().into()]),
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_string) => Ok(items
            .iter()
            .filter_map(Value::as_str)
            .map(Into::into)
            .collect()),
        _ => Err(bad()),
    }
}

impl Range {
    fn parse(operand: &Value, path: &str) -> Result<Self, PatternError> {
        use PatternErrorKind as K;
        let err = |m: String| PatternError::new(K::NumericRange, path, m);
        let Value::Array(items) = operand else {
            return Err(err(format!(
                "\"numeric\" takes an array like [\">\", 0, \"<=\", 5], not {}",
                type_name(operand)
            )));
        };
        if items.len() != 2 && items.len() != 4 {
            return Err(err(format!(
                "\"numeric\" takes one or two comparisons ([op, number] or [op, number, op, number]), not {} items",
                items.len()
            )));
        }
        let mut range = Range {
            lower: None,
            upper: None,
        };
        for pair in items.chunks(2) {
            let op = pair[0].as_str().ok_or_else(|| {
                err(format!(
                    "\"numeric\": expected an operator (=, <, <=, >, >=), not {}",
                    type_name(&pair[0])
                ))
            })?;
            let n = match &pair[1] {
                Value::Number(n) => num(n),
                other => {
                    return Err(err(format!(
                        "\"numeric\": \"{op}\" takes a number, not {}",
                        type_name(other)
                    )));
                }
            };
            if !(-NUMERIC_LIMIT..=NUMERIC_LIMIT).contains(&n) {
                return Err(err(format!(
                    "\"numeric\": {n} is outside the range EventBridge compares (-5.0e9 to 5.0e9)"
                )));
            }
            match op {
                "=" => {
                    if items.len() != 2 {
                        return Err(err(
                            "\"numeric\": \"=\" cannot be combined with another comparison".into(),
                        ));
                    }
                    range.lower = Some((n, true));
                    range.upper = Some((n, true));
                }
                ">" | ">=" => {
                    if range.lower.is_some() {
                        return Err(err(
                            "\"numeric\": two lower bounds (> or >=); give one lower and one upper bound"
                                .into(),
                        ));
                    }
                    range.lower = Some((n, op == ">="));
                }
                "<" | "<=" => {
                    if range.upper.is_some() {
                        return Err(err(
                            "\"numeric\": two upper bounds (< or <=); give one lower and one upper bound"
                                .into(),
                        ));
                    }
                    range.upper = Some((n, op == "<="));
                }
                other => {
                    return Err(err(format!(
                        "\"numeric\": unknown comparison \"{other}\" (use =, <, <=, >, >=)"
                    )));
                }
            }
        }
        if items.len() == 4
            && let (Some((lo, _)), Some((hi, _))) = (range.lower, range.upper)
            && lo >= hi
        {
            return Err(err(format!(
                "\"numeric\": the range is out of order: the lower bound {lo} must be less than the upper bound {hi}"
            )));
        }
        Ok(range)
    }

    fn contains(&self, x: f64) -> bool {
        if let Some((lo, incl)) = self.lower
            && !(x > lo || (incl && x == lo))
        {
            return false;
        }
        if let Some((hi, incl)) = self.upper
            && !(x < hi || (incl && x == hi))
        {
            return false;
        }
        true
    }
}

impl Cidr {
    fn parse(s: &str, path: &str) -> Result<Self, PatternError> {
        let bad = |why: &str| {
            PatternError::new(
                PatternErrorKind::Cidr,
                path,
                format!(
                    "\"cidr\": {s:?} is not a CIDR block like 10.0.0.0/24 or 2001:db8::/64: {why}"
                ),
            )
        };
        let (addr, bits) = s.split_once('/').ok_or_else(|| bad("no /prefix-length"))?;
        let net: IpAddr = addr.parse().map_err(|_| bad("not an IP address"))?;
        let bits: u8 = bits
            .parse()
            .map_err(|_| bad("the prefix length is not a number"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        if bits > max {
            return Err(bad(&format!("the prefix length is above {max}")));
        }
        Ok(Cidr { net, bits })
    }

    fn contains(&self, s: &str) -> bool {
        let Ok(ip) = s.parse::<IpAddr>() else {
            return false;
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.bits)
                };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.bits)
                };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl Wildcard {
    fn parse(s: &str, path: &str) -> Result<Self, PatternError> {
        let mut pieces: Vec<Box<str>> = Vec::new();
        let mut cur = String::new();
        let mut leading_star = false;
        let mut trailing_star = false;
        let mut prev_star = false;
        let mut chars = s.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '*' => {
                    if prev_star {
                        return Err(PatternError::new(
                            PatternErrorKind::Wildcard,
                            path,
                            format!(
                                "\"wildcard\": consecutive wildcard characters at position {i} in {s:?} are not allowed"
                            ),
                        ));
                    }
                    if i == 0 {
                        leading_star = true;
                    } else {
                        pieces.push(std::mem::take(&mut cur).into());
                    }
                    prev_star = true;
                    trailing_star = true;
                    continue;
                }
                '\\' => match chars.next() {
                    Some((_, e @ ('*' | '\\'))) => cur.push(e),
                    _ => {
                        return Err(PatternError::new(
                            PatternErrorKind::Wildcard,
                            path,
                            format!(
                                "\"wildcard\": invalid escape at position {i} in {s:?}: only \\* and \\\\ may be escaped"
                            ),
                        ));
                    }
                },
                c => cur.push(c),
            }
            prev_star = false;
            trailing_star = false;
        }
        if !trailing_star || pieces.is_empty() && !leading_star {
            pieces.push(cur.into());
        }
        // `pieces`: the literal runs between stars. With a trailing star the
        // last run was pushed when the star was seen.
        Ok(Wildcard {
            pieces,
            leading_star,
            trailing_star,
        })
    }

    fn matches(&self, s: &str) -> bool {
        let n = self.pieces.len();
        if n == 0 {
            // "*" alone.
            return true;
        }
        if !self.leading_star && !self.trailing_star && n == 1 {
            return s == &*self.pieces[0];
        }
        let mut rest = s;
        let mut first = 0;
        let mut last = n;
        if !self.leading_star {
            let p = &*self.pieces[0];
            let Some(r) = rest.strip_prefix(p) else {
                return false;
            };
            rest = r;
            first = 1;
        }
        if !self.trailing_star {
            let p = &*self.pieces[n - 1];
            if first == n {
                return rest.is_empty();
            }
            let Some(r) = rest.strip_suffix(p) else {
                return false;
            };
            rest = r;
            last = n - 1;
        }
        for p in &self.pieces[first..last.max(first)] {
            match rest.find(&**p) {
                Some(i) => rest = &rest[i + p.len()..],
                None => return false,
            }
        }
        true
    }
}

// ---------------------------------------------------------------------------
// Matching

fn lower(s: &str) -> impl Iterator<Item = char> + '_ {
    s.chars().flat_map(char::to_lowercase)
}

fn eq_ignore_case(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        lower(a).eq(lower(b))
    }
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    if s.is_ascii() && prefix.is_ascii() {
        s.len() >= prefix.len()
            && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
    } else {
        let mut it = lower(s);
        lower(prefix).all(|c| it.next() == Some(c))
    }
}

fn ends_with_ignore_case(s: &str, suffix: &str) -> bool {
    if s.is_ascii() && suffix.is_ascii() {
        s.len() >= suffix.len()
            && s.as_bytes()[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
    } else {
        let mut it = s.chars().rev().flat_map(char::to_lowercase);
        suffix
            .chars()
            .rev()
            .flat_map(char::to_lowercase)
            .all(|c| it.next() == Some(c))
    }
}

impl Matcher {
    /// Does this alternative match one leaf value of the event?
    fn matches(&self, v: &Value) -> bool {
        match self {
            Matcher::Str(s) => v.as_str() == Some(s),
            Matcher::Num(n) => v.as_f64() == Some(*n),
            Matcher::Bool(b) => v.as_bool() == Some(*b),
            Matcher::Null => v.is_null(),
            Matcher::Prefix(p) => v.as_str().is_some_and(|s| s.starts_with(&**p)),
            Matcher::PrefixIgnoreCase(p) => {
                v.as_str().is_some_and(|s| starts_with_ignore_case(s, p))
            }
            Matcher::Suffix(p) => v.as_str().is_some_and(|s| s.ends_with(&**p)),
            Matcher::SuffixIgnoreCase(p) => v.as_str().is_some_and(|s| ends_with_ignore_case(s, p)),
            Matcher::EqualsIgnoreCase(p) => v.as_str().is_some_and(|s| eq_ignore_case(s, p)),
            Matcher::Wildcard(w) => v.as_str().is_some_and(|s| w.matches(s)),
            Matcher::Numeric(r) => v.is_number() && v.as_f64().is_some_and(|x| r.contains(x)),
            Matcher::Exists(b) => *b,
            Matcher::Cidr(c) => v.as_str().is_some_and(|s| c.contains(s)),
            Matcher::AnythingBut(a) => a.matches(v),
        }
    }
}

impl AnythingBut {
    fn matches(&self, v: &Value) -> bool {
        match self {
            AnythingBut::Strings(list) => match v.as_str() {
                Some(s) => !list.iter().any(|x| &**x == s),
                None => true,
            },
            AnythingBut::Numbers(list) => match v.as_f64() {
                Some(x) if v.is_number() => !list.contains(&x),
                _ => true,
            },
            AnythingBut::Prefix(p) => v.as_str().is_some_and(|s| !s.starts_with(&**p)),
            AnythingBut::Suffix(p) => v.as_str().is_some_and(|s| !s.ends_with(&**p)),
            AnythingBut::EqualsIgnoreCase(list) => v
                .as_str()
                .is_some_and(|s| !list.iter().any(|x| eq_ignore_case(s, x))),
            AnythingBut::Wildcard(list) => v
                .as_str()
                .is_some_and(|s| !list.iter().any(|w| w.matches(s))),
        }
    }
}

/// Calls `f` on every leaf value of `v` (a scalar is its own leaf; arrays are
/// flattened; objects have none) until `f` returns true.
fn any_leaf(v: &Value, f: &mut impl FnMut(&Value) -> bool) -> bool {
    match v {
        Value::Array(items) => items.iter().any(|i| any_leaf(i, f)),
        Value::Object(_) => false,
        scalar => f(scalar),
    }
}

impl Leaf {
    fn matches(&self, v: Option<&Value>) -> bool {
        let Some(v) = v else {
            return self.exists_false;
        };
        let mut any = false;
        let hit = any_leaf(v, &mut |leaf| {
            any = true;
            self.matchers.iter().any(|m| m.matches(leaf))
        });
        hit || (!any && self.exists_false)
    }
}

impl ObjNode {
    /// `v` is the event value at this level (`None`: absent).
    fn matches(&self, v: Option<&Value>) -> bool {
        match v {
            Some(Value::Object(map)) => self.matches_object(map),
            Some(Value::Array(items)) if !items.is_empty() => {
                items.iter().any(|i| self.matches(Some(i)))
            }
            // A scalar or an empty array has no fields below it.
            _ => self.matches_absent(),
        }
    }

    fn matches_object(&self, map: &Map<String, Value>) -> bool {
        self.fields.iter().all(|(k, f)| {
            let v = map.get(&**k);
            match f {
                Field::Leaf(l) => l.matches(v),
                Field::Nested(n) => n.matches(v),
            }
        }) && self
            .ors
            .iter()
            .all(|branches| branches.iter().any(|b| b.matches_object(map)))
    }

    fn matches_absent(&self) -> bool {
        self.fields.iter().all(|(_, f)| match f {
            Field::Leaf(l) => l.exists_false,
            Field::Nested(n) => n.matches_absent(),
        }) && self
            .ors
            .iter()
            .all(|branches| branches.iter().any(ObjNode::matches_absent))
    }
}

// ---------------------------------------------------------------------------
// Many patterns

/// Many compiled patterns, matched against an event at once.
///
/// Each pattern is indexed, where it can be, by a condition it cannot match
/// without: a field it requires to hold one of some exact strings or to start
/// with one of some prefixes (case-sensitive), or, for a `$or`, such a
/// condition in each branch. Among a pattern's conditions the most selective
/// is chosen, estimated by how many distinct values the field has across the
/// whole set. An event is then checked only against the patterns its own
/// values at the indexed fields select, plus the few patterns with no such
/// condition (`exists`, `numeric` or `anything-but` alone, …).
#[derive(Debug, Default)]
pub struct PatternSet {
    patterns: Vec<Pattern>,
    indexes: Vec<Index>,
    unindexed: Vec<u32>,
}

#[derive(Debug)]
struct Index {
    path: Vec<Box<str>>,
    exact: HashMap<Box<str>, Vec<u32>>,
    prefixes: HashMap<Box<str>, Vec<u32>>,
    /// The lengths (bytes) of the keys of `prefixes`, ascending.
    prefix_lens: Vec<usize>,
}

/// A necessary condition: the event has, at `path`, a string equal to (or
/// starting with, for `prefix`) one of `values`.
#[derive(Clone, Debug)]
struct Key<'a> {
    path: Vec<&'a str>,
    prefix: bool,
    values: Vec<&'a str>,
}

type Stats<'a> = HashMap<(Vec<&'a str>, bool), std::collections::HashSet<&'a str>>;

/// The index keys a leaf offers: its exact strings and its prefixes, when it
/// has nothing else.
fn leaf_keys<'a>(leaf: &'a Leaf, path: &[&'a str]) -> Option<Vec<Key<'a>>> {
    let mut exact = Vec::new();
    let mut prefixes = Vec::new();
    for m in &leaf.matchers {
        match m {
            Matcher::Str(s) => exact.push(&**s),
            Matcher::Prefix(p) => prefixes.push(&**p),
            _ => return None,
        }
    }
    let mut keys = Vec::new();
    for (prefix, values) in [(false, exact), (true, prefixes)] {
        if !values.is_empty() {
            keys.push(Key {
                path: path.to_vec(),
                prefix,
                values,
            });
        }
    }
    Some(keys)
}

/// Every leaf key of `node`, `$or` branches included (for the statistics).
fn all_keys<'a>(node: &'a ObjNode, path: &mut Vec<&'a str>, out: &mut Vec<Key<'a>>) {
    for (k, f) in &node.fields {
        path.push(k);
        match f {
            Field::Nested(n) => all_keys(n, path, out),
            Field::Leaf(l) => out.extend(leaf_keys(l, path).into_iter().flatten()),
        }
        path.pop();
    }
    for branch in node.ors.iter().flatten() {
        all_keys(branch, path, out);
    }
}

/// Estimated share of events that pass `keys`: for each key, its number of
/// values over the field's distinct values across the set.
fn cost(keys: &[Key], stats: &Stats) -> f64 {
    keys.iter()
        .map(|k| {
            let distinct = stats
                .get(&(k.path.clone(), k.prefix))
                .map_or(1, |d| d.len().max(1));
            k.values.len() as f64 / distinct as f64
        })
        .sum()
}

/// The most selective necessary condition of `node` (a disjunction of keys).
fn best_keys<'a>(
    node: &'a ObjNode,
    path: &mut Vec<&'a str>,
    stats: &Stats<'a>,
) -> Option<(f64, Vec<Key<'a>>)> {
    let mut best: Option<(f64, Vec<Key<'a>>)> = None;
    let mut consider = |c: Option<(f64, Vec<Key<'a>>)>| {
        if let Some((cost, keys)) = c
            && best.as_ref().is_none_or(|(b, _)| cost < *b)
        {
            best = Some((cost, keys));
        }
    };
    for (k, f) in &node.fields {
        path.push(k);
        match f {
            Field::Nested(n) => consider(best_keys(n, path, stats)),
            Field::Leaf(l) => {
                consider(leaf_keys(l, path).map(|keys| (cost(&keys, stats), keys)));
            }
        }
        path.pop();
    }
    for branches in &node.ors {
        let mut total = 0.0;
        let mut keys = Vec::new();
        let mut all = true;
        for b in branches {
            match best_keys(b, path, stats) {
                Some((c, k)) => {
                    total += c;
                    keys.extend(k);
                }
                None => {
                    all = false;
                    break;
                }
            }
        }
        if all {
            consider(Some((total, keys)));
        }
    }
    best
}

impl PatternSet {
    /// Builds the set and its index.
    pub fn new(patterns: Vec<Pattern>) -> Self {
        let mut indexes: Vec<Index> = Vec::new();
        let mut unindexed = Vec::new();
        {
            let mut stats: Stats = HashMap::new();
            let mut keys = Vec::new();
            for p in &patterns {
                all_keys(&p.root, &mut Vec::new(), &mut keys);
            }
            for k in &keys {
                stats
                    .entry((k.path.clone(), k.prefix))
                    .or_default()
                    .extend(k.values.iter().copied());
            }
            for (i, p) in patterns.iter().enumerate() {
                let id = i as u32;
                let Some((_, keys)) = best_keys(&p.root, &mut Vec::new(), &stats) else {
                    unindexed.push(id);
                    continue;
                };
                for key in keys {
                    let pos = match indexes
                        .iter()
                        .position(|ix| ix.path.iter().map(|s| &**s).eq(key.path.iter().copied()))
                    {
                        Some(p) => p,
                        None => {
                            indexes.push(Index {
                                path: key.path.iter().map(|s| (*s).into()).collect(),
                                exact: HashMap::new(),
                                prefixes: HashMap::new(),
                                prefix_lens: Vec::new(),
                            });
                            indexes.len() - 1
                        }
                    };
                    let ix = &mut indexes[pos];
                    for v in key.values {
                        let map = if key.prefix {
                            if !ix.prefix_lens.contains(&v.len()) {
                                ix.prefix_lens.push(v.len());
                            }
                            &mut ix.prefixes
                        } else {
                            &mut ix.exact
                        };
                        let list = map.entry(v.into()).or_default();
                        if list.last() != Some(&id) {
                            list.push(id);
                        }
                    }
                }
            }
        }
        for ix in &mut indexes {
            ix.prefix_lens.sort_unstable();
        }
        Self {
            patterns,
            indexes,
            unindexed,
        }
    }

    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<&Pattern> {
        self.patterns.get(i)
    }

    /// How many patterns no index covers (they are tried on every event).
    pub fn unindexed(&self) -> usize {
        self.unindexed.len()
    }

    /// Positions (in the order given to [`PatternSet::new`]) of the patterns
    /// that match `event`, ascending.
    pub fn matching(&self, event: &Value) -> Vec<usize> {
        let mut out = Vec::new();
        self.matching_into(event, &mut out);
        out
    }

    /// Like [`PatternSet::matching`], into a reused buffer (cleared first):
    /// no allocation once `out` has grown.
    pub fn matching_into(&self, event: &Value, out: &mut Vec<usize>) {
        out.clear();
        for &i in &self.unindexed {
            if self.patterns[i as usize].matches(event) {
                out.push(i as usize);
            }
        }
        let try_list = |list: &[u32], out: &mut Vec<usize>| {
            for &i in list {
                let i = i as usize;
                if !out.contains(&i) && self.patterns[i].matches(event) {
                    out.push(i);
                }
            }
        };
        for ix in &self.indexes {
            walk_strings(event, &ix.path, &mut |s| {
                if let Some(list) = ix.exact.get(s) {
                    try_list(list, out);
                }
                for &n in &ix.prefix_lens {
                    if n > s.len() {
                        break;
                    }
                    if let Some(head) = s.get(..n)
                        && let Some(list) = ix.prefixes.get(head)
                    {
                        try_list(list, out);
                    }
                }
            });
        }
        out.sort_unstable();
    }
}

/// Calls `f` on each string leaf at `path` in `v` (through arrays).
fn walk_strings(v: &Value, path: &[Box<str>], f: &mut impl FnMut(&str)) {
    match v {
        Value::Array(items) => {
            for i in items {
                walk_strings(i, path, f);
            }
        }
        Value::Object(map) => {
            if let Some((first, rest)) = path.split_first()
                && let Some(next) = map.get(&**first)
            {
                walk_strings(next, rest, f);
            }
        }
        Value::String(s) if path.is_empty() => f(s),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn w(s: &str) -> Wildcard {
        Wildcard::parse(s, "x").unwrap()
    }

    #[test]
    fn wildcards() {
        assert!(w("*").matches(""));
        assert!(w("*").matches("abc"));
        assert!(w("a*").matches("abc"));
        assert!(!w("a*").matches("bac"));
        assert!(w("*c").matches("abc"));
        assert!(w("a*c").matches("ac"));
        assert!(!w("a*c").matches("a"));
        assert!(w("*/lib/*").matches("/usr/lib/x"));
        assert!(!w("*/lib/*").matches("/usr/bin/x"));
        assert!(w("a*b*c").matches("aXbYc"));
        assert!(!w("a*b*c").matches("aXcYb"));
        assert!(w("abc").matches("abc"));
        assert!(!w("abc").matches("abcd"));
        assert!(w("a\\*b").matches("a*b"));
        assert!(!w("a\\*b").matches("axb"));
        assert!(w("a\\\\*").matches("a\\zzz"));
        assert!(!w("aa*aa").matches("aaa"));
        assert!(w("aa*aa").matches("aaaa"));
        assert!(Wildcard::parse("a**b", "x").is_err());
        assert!(Wildcard::parse("a\\b", "x").is_err());
    }

    #[test]
    fn set_index_picks_selective_path() {
        let ps: Vec<Pattern> = (0..10)
            .map(|i| {
                Pattern::parse(&json!({"source": ["s"], "detail-type": [format!("t{i}")]})).unwrap()
            })
            .collect();
        let set = PatternSet::new(ps);
        assert_eq!(set.indexes.len(), 1);
        assert_eq!(&*set.indexes[0].path[0], "detail-type");
        assert_eq!(
            set.matching(&json!({"source": "s", "detail-type": "t3"})),
            vec![3]
        );
    }
}
