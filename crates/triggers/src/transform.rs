//! EventBridge target input: `InputPath` (a JSONPath selecting part of the
//! event) and the input transformer (`InputPathsMap` + `InputTemplate`).
//!
//! A template placeholder `<name>` is replaced with the value the name's
//! JSONPath selects: outside a JSON string by the value as JSON, inside a
//! quoted string by its text (strings unquoted and escaped, objects and
//! arrays with their inner quotes removed, as EventBridge does). The
//! reserved placeholders are `<aws.events.event>` (the event without
//! `detail`), `<aws.events.event.json>` (the whole event), both only as JSON
//! values, and `<aws.events.rule-arn>`, `<aws.events.rule-name>`,
//! `<aws.events.event.ingestion-time>`.
//!
//! Where piflow differs from EventBridge, because a workflow input must be
//! JSON: the result must parse as JSON (an error names the template line and
//! column otherwise); a name whose path selects nothing becomes `null`
//! outside a string (EventBridge leaves the slot empty) and nothing inside
//! one; text put inside a string is JSON-escaped (EventBridge does not escape
//! it, which can break the JSON).

use indexmap::IndexMap;
use serde_json::{Map, Value};
use serde_json_path::JsonPath;

/// EventBridge allows at most 100 entries in `InputPathsMap`.
pub const MAX_INPUT_PATHS: usize = 100;

const EVENT: &str = "aws.events.event";
const EVENT_JSON: &str = "aws.events.event.json";
const RULE_ARN: &str = "aws.events.rule-arn";
const RULE_NAME: &str = "aws.events.rule-name";
const INGESTION_TIME: &str = "aws.events.event.ingestion-time";
const RESERVED: &[&str] = &[EVENT, EVENT_JSON, RULE_ARN, RULE_NAME, INGESTION_TIME];

/// Why an input path or transformer is invalid, or why its output is not JSON.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TransformError {
    #[error("{field}: {path:?} is not a JSONPath EventBridge accepts: {reason}")]
    InvalidPath {
        /// `InputPath` or `InputPathsMap.NAME`.
        field: String,
        path: String,
        reason: String,
    },
    #[error("InputPathsMap.{name}: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("InputPathsMap has {count} entries; EventBridge allows at most {MAX_INPUT_PATHS}")]
    TooManyPaths { count: usize },
    #[error(
        "InputTemplate line {line} column {column}: the placeholder <{name}> is used as an object key; placeholders may only be values"
    )]
    PlaceholderAsKey {
        name: String,
        line: usize,
        column: usize,
    },
    #[error(
        "InputTemplate line {line} column {column}: <{name}> can only be the value of a JSON field, not text inside a string (its content is not escaped)"
    )]
    EventInString {
        name: String,
        line: usize,
        column: usize,
    },
    #[error(
        "InputTemplate line {line} column {column}: the transformed input is not JSON: {reason}"
    )]
    NotJson {
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("input transformer: {0}")]
    Shape(String),
}

impl TransformError {
    /// Every code [`Self::code`] returns, with its meaning (docs/codes.md).
    pub const CODES: &[(&str, &str)] = &[
        (
            "transform.invalid-path",
            "an InputPathsMap value is not a JSONPath",
        ),
        (
            "transform.invalid-name",
            "an InputPathsMap key is not a valid name",
        ),
        (
            "transform.too-many-paths",
            "more than 100 InputPathsMap entries",
        ),
        (
            "transform.placeholder-as-key",
            "a placeholder used as an object key",
        ),
        (
            "transform.event-in-string",
            "the whole event inside a string",
        ),
        ("transform.not-json", "the transformed input is not JSON"),
        ("transform.shape", "the transformer has the wrong shape"),
    ];

    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidPath { .. } => "transform.invalid-path",
            Self::InvalidName { .. } => "transform.invalid-name",
            Self::TooManyPaths { .. } => "transform.too-many-paths",
            Self::PlaceholderAsKey { .. } => "transform.placeholder-as-key",
            Self::EventInString { .. } => "transform.event-in-string",
            Self::NotJson { .. } => "transform.not-json",
            Self::Shape(_) => "transform.shape",
        }
    }
}

/// An EventBridge JSONPath (dot notation, array indices, `*` wildcards).
#[derive(Clone, Debug)]
pub struct InputPath {
    text: String,
    path: JsonPath,
}

impl InputPath {
    /// Parses `text` as the target's `InputPath`.
    pub fn parse(text: &str) -> Result<Self, TransformError> {
        Self::parse_for("InputPath", text)
    }

    fn parse_for(field: &str, text: &str) -> Result<Self, TransformError> {
        let err = |reason: &str| TransformError::InvalidPath {
            field: field.to_string(),
            path: text.to_string(),
            reason: reason.to_string(),
        };
        if !text.starts_with('$') {
            return Err(err("it must start with $"));
        }
        if text.contains("['") || text.contains("[\"") {
            return Err(err(
                "use dot notation ($.detail.name), not bracket notation",
            ));
        }
        let normal = to_rfc9535(text).map_err(|e| err(&e))?;
        let path = JsonPath::parse(&normal).map_err(|e| err(&e.to_string()))?;
        Ok(Self {
            text: text.to_string(),
            path,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// What the path selects in `event`: the one value it selects, an array
    /// when it selects several (a `*`), `None` when nothing.
    pub fn select(&self, event: &Value) -> Option<Value> {
        let nodes = self.path.query(event).all();
        match nodes.len() {
            0 => None,
            1 => Some(nodes[0].clone()),
            _ => Some(Value::Array(nodes.into_iter().cloned().collect())),
        }
    }

    /// The target input `InputPath` gives: [`InputPath::select`], `null` when
    /// nothing is selected.
    pub fn apply(&self, event: &Value) -> Value {
        self.select(event).unwrap_or(Value::Null)
    }
}

/// Rewrites EventBridge's dot notation (whose names may hold `-`, `/` and
/// other characters RFC 9535's shorthand does not allow) into bracket
/// notation: `$.detail.instance-id` → `$['detail']['instance-id']`.
fn to_rfc9535(text: &str) -> Result<String, String> {
    let rest = text.strip_prefix('$').ok_or("it must start with $")?;
    let mut out = String::from("$");
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                let mut name = String::new();
                while let Some(&n) = chars.peek() {
                    if n == '.' || n == '[' {
                        break;
                    }
                    name.push(n);
                    chars.next();
                }
                if name.is_empty() {
                    return Err("an empty name after '.' (.. is not supported)".into());
                }
                if name == "*" {
                    out.push_str("[*]");
                } else {
                    out.push_str("['");
                    for ch in name.chars() {
                        if ch == '\\' || ch == '\'' {
                            out.push('\\');
                        }
                        out.push(ch);
                    }
                    out.push_str("']");
                }
            }
            '[' => {
                out.push('[');
                let mut closed = false;
                for n in chars.by_ref() {
                    out.push(n);
                    if n == ']' {
                        closed = true;
                        break;
                    }
                }
                if !closed {
                    return Err("an unclosed '['".into());
                }
            }
            other => return Err(format!("unexpected {other:?}: use $.name.name or [index]")),
        }
    }
    Ok(out)
}

/// Values of the reserved placeholders that do not come from the event.
#[derive(Clone, Debug, Default)]
pub struct RuleContext {
    pub rule_arn: String,
    pub rule_name: String,
    /// ISO 8601, e.g. `2026-11-22T05:30:00Z`.
    pub ingestion_time: String,
}

impl RuleContext {
    /// A context whose ingestion time is now.
    pub fn new(rule_arn: impl Into<String>, rule_name: impl Into<String>) -> Self {
        Self {
            rule_arn: rule_arn.into(),
            rule_name: rule_name.into(),
            ingestion_time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }
}

#[derive(Clone, Debug)]
enum Seg {
    Lit(String),
    Var {
        name: String,
        quoted: bool,
        /// Byte offset of `<` in the template.
        at: usize,
    },
}

/// A compiled EventBridge input transformer.
#[derive(Clone, Debug)]
pub struct InputTransformer {
    paths: IndexMap<String, InputPath>,
    template: String,
    /// Segments with the template byte offset each starts at.
    segs: Vec<(usize, Seg)>,
}

fn line_col(text: &str, byte: usize) -> (usize, usize) {
    let byte = byte.min(text.len());
    let before = text.get(..byte).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

impl InputTransformer {
    /// Compiles `InputPathsMap` and `InputTemplate`.
    pub fn new(
        input_paths_map: &IndexMap<String, String>,
        input_template: &str,
    ) -> Result<Self, TransformError> {
        if input_paths_map.len() > MAX_INPUT_PATHS {
            return Err(TransformError::TooManyPaths {
                count: input_paths_map.len(),
            });
        }
        let mut paths = IndexMap::new();
        for (name, path) in input_paths_map {
            if name.is_empty() || !name.chars().all(is_name_char) {
                return Err(TransformError::InvalidName {
                    name: name.clone(),
                    reason: "a name is letters, digits, '_', '-' and '.'".into(),
                });
            }
            if name.to_ascii_lowercase().starts_with("aws.") {
                return Err(TransformError::InvalidName {
                    name: name.clone(),
                    reason: "names starting with \"aws.\" are reserved".into(),
                });
            }
            let field = format!("InputPathsMap.{name}");
            paths.insert(name.clone(), InputPath::parse_for(&field, path)?);
        }
        let mut me = Self {
            paths,
            template: input_template.to_string(),
            segs: Vec::new(),
        };
        me.segs = me.compile()?;
        Ok(me)
    }

    /// From EventBridge's shape: `{"InputPathsMap": {...}, "InputTemplate": "..."}`.
    pub fn from_value(v: &Value) -> Result<Self, TransformError> {
        let obj = v
            .as_object()
            .ok_or_else(|| TransformError::Shape("must be an object with InputTemplate".into()))?;
        let template = obj
            .get("InputTemplate")
            .and_then(Value::as_str)
            .ok_or_else(|| TransformError::Shape("InputTemplate (a string) is required".into()))?;
        let mut map = IndexMap::new();
        match obj.get("InputPathsMap") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, p) in m {
                    let p = p.as_str().ok_or_else(|| {
                        TransformError::Shape(format!(
                            "InputPathsMap.{k} must be a string JSONPath"
                        ))
                    })?;
                    map.insert(k.clone(), p.to_string());
                }
            }
            Some(_) => {
                return Err(TransformError::Shape(
                    "InputPathsMap must be an object of name → JSONPath".into(),
                ));
            }
        }
        Self::new(&map, template)
    }

    fn known(&self, name: &str) -> bool {
        self.paths.contains_key(name) || RESERVED.contains(&name)
    }

    /// Splits the template into literal text and placeholders, knowing for
    /// each placeholder whether it sits inside a JSON string.
    fn compile(&self) -> Result<Vec<(usize, Seg)>, TransformError> {
        let t = self.template.as_str();
        let mut segs: Vec<(usize, Seg)> = Vec::new();
        let mut lit = String::new();
        let mut lit_start = 0usize;
        let mut in_string = false;
        let mut in_key = false;
        let mut escape = false;
        let mut stack: Vec<char> = Vec::new();
        let mut expect_key = false;
        let mut i = 0usize;
        while i < t.len() {
            let Some(c) = t[i..].chars().next() else {
                break;
            };
            if c == '<' && !escape {
                let rest = &t[i + 1..];
                let end = rest.find(|ch: char| !is_name_char(ch));
                if let Some(end) = end
                    && end > 0
                    && rest[end..].starts_with('>')
                    && self.known(&rest[..end])
                {
                    let name = &rest[..end];
                    let (line, column) = line_col(t, i);
                    let as_key = if in_string {
                        in_key
                    } else {
                        stack.last() == Some(&'{') && expect_key
                    };
                    if as_key {
                        return Err(TransformError::PlaceholderAsKey {
                            name: name.to_string(),
                            line,
                            column,
                        });
                    }
                    if in_string && (name == EVENT || name == EVENT_JSON) {
                        return Err(TransformError::EventInString {
                            name: name.to_string(),
                            line,
                            column,
                        });
                    }
                    if !lit.is_empty() {
                        segs.push((lit_start, Seg::Lit(std::mem::take(&mut lit))));
                    }
                    segs.push((
                        i,
                        Seg::Var {
                            name: name.to_string(),
                            quoted: in_string,
                            at: i,
                        },
                    ));
                    i += 1 + end + 1;
                    lit_start = i;
                    continue;
                }
            }
            if in_string {
                if escape {
                    escape = false;
                } else if c == '\\' {
                    escape = true;
                } else if c == '"' {
                    in_string = false;
                    in_key = false;
                }
            } else {
                match c {
                    '"' => {
                        in_string = true;
                        in_key = stack.last() == Some(&'{') && expect_key;
                    }
                    '{' => {
                        stack.push('{');
                        expect_key = true;
                    }
                    '[' => {
                        stack.push('[');
                        expect_key = false;
                    }
                    '}' | ']' => {
                        stack.pop();
                        expect_key = false;
                    }
                    ':' => expect_key = false,
                    ',' => expect_key = stack.last() == Some(&'{'),
                    _ => {}
                }
            }
            if lit.is_empty() {
                lit_start = i;
            }
            lit.push(c);
            i += c.len_utf8();
        }
        if !lit.is_empty() {
            segs.push((lit_start, Seg::Lit(lit)));
        }
        Ok(segs)
    }

    /// The names defined in `InputPathsMap`.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.paths.keys().map(String::as_str)
    }

    /// Transforms `event` into the workflow input.
    pub fn apply(&self, event: &Value, ctx: &RuleContext) -> Result<Value, TransformError> {
        let (text, map) = self.render(event, ctx);
        serde_json::from_str(&text).map_err(|e| {
            // Map the error's position in the output back to the template.
            let out_byte = byte_at(&text, e.line(), e.column());
            let tpl_byte =
                map.iter()
                    .rev()
                    .find(|(o, _, _)| *o <= out_byte)
                    .map_or(
                        0,
                        |(o, t, is_var)| if *is_var { *t } else { t + (out_byte - o) },
                    );
            let (line, column) = line_col(&self.template, tpl_byte);
            let reason = e.to_string();
            let reason = match reason.find(" at line ") {
                Some(i) => reason[..i].to_string(),
                None => reason,
            };
            TransformError::NotJson {
                line,
                column,
                reason,
            }
        })
    }

    /// The output text, and for each segment (output byte, template byte, is a placeholder).
    fn render(&self, event: &Value, ctx: &RuleContext) -> (String, Vec<(usize, usize, bool)>) {
        let mut out = String::with_capacity(self.template.len() + 64);
        let mut map = Vec::with_capacity(self.segs.len());
        for (start, seg) in &self.segs {
            match seg {
                Seg::Lit(s) => {
                    map.push((out.len(), *start, false));
                    out.push_str(s);
                }
                Seg::Var { name, quoted, at } => {
                    map.push((out.len(), *at, true));
                    let value = self.value_of(name, event, ctx);
                    match (value, quoted) {
                        (None, false) => out.push_str("null"),
                        (None, true) => {}
                        (Some(v), false) => out.push_str(&v.to_string()),
                        (Some(v), true) => push_text(&mut out, &v),
                    }
                }
            }
        }
        (out, map)
    }

    fn value_of(&self, name: &str, event: &Value, ctx: &RuleContext) -> Option<Value> {
        match name {
            EVENT_JSON => Some(event.clone()),
            EVENT => Some(match event {
                Value::Object(m) => Value::Object(
                    m.iter()
                        .filter(|(k, _)| k.as_str() != "detail")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect::<Map<String, Value>>(),
                ),
                other => other.clone(),
            }),
            RULE_ARN => Some(Value::String(ctx.rule_arn.clone())),
            RULE_NAME => Some(Value::String(ctx.rule_name.clone())),
            INGESTION_TIME => Some(Value::String(ctx.ingestion_time.clone())),
            _ => self.paths.get(name).and_then(|p| p.select(event)),
        }
    }
}

/// Byte offset of 1-based (line, column) in `text`; serde_json counts
/// columns in bytes.
fn byte_at(text: &str, line: usize, column: usize) -> usize {
    let mut off = 0usize;
    for (i, l) in text.split('\n').enumerate() {
        if i + 1 == line {
            return (off + column.saturating_sub(1)).min(text.len());
        }
        off += l.len() + 1;
    }
    text.len()
}

/// Appends `v` as text inside a JSON string: strings escaped without their
/// quotes; objects and arrays as JSON with their (unescaped) quotes removed.
fn push_text(out: &mut String, v: &Value) {
    let json = v.to_string();
    match v {
        Value::String(_) => out.push_str(&json[1..json.len() - 1]),
        Value::Object(_) | Value::Array(_) => {
            let mut escaped = false;
            for c in json.chars() {
                if escaped {
                    escaped = false;
                    out.push(c);
                } else if c == '\\' {
                    escaped = true;
                    out.push(c);
                } else if c != '"' {
                    out.push(c);
                }
            }
        }
        _ => out.push_str(&json),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn html_like_text_is_left_alone() {
        let t = InputTransformer::new(&IndexMap::new(), r#"{"m": "<b>bold</b>"}"#).unwrap();
        let out = t.apply(&json!({}), &RuleContext::default()).unwrap();
        assert_eq!(out, json!({"m": "<b>bold</b>"}));
    }

    #[test]
    fn key_placeholder_rejected() {
        let mut m = IndexMap::new();
        m.insert("k".to_string(), "$.a".to_string());
        let e = InputTransformer::new(&m, r#"{"x": 1, <k>: 2}"#).unwrap_err();
        assert_eq!(e.code(), "transform.placeholder-as-key");
        let e = InputTransformer::new(&m, r#"{"<k>": 2}"#).unwrap_err();
        assert_eq!(e.code(), "transform.placeholder-as-key");
        assert!(InputTransformer::new(&m, r#"{"a": {"b": <k>}, "c": "<k>"}"#).is_ok());
    }
}
