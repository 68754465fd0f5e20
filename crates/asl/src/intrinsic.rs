//! Intrinsic functions (`States.Format(...)`, `States.MathAdd(...)`, …) and
//! the payload expressions of `key.$` fields (a path or an intrinsic call).
//!
//! Calls are parsed once, at load time, into an [`IntrinsicCall`]: the
//! function name, the number of arguments and the type of literal arguments
//! are checked then, so a mistake is a validation error with a character
//! offset. [`IntrinsicCall::evaluate`] implements every function with AWS
//! Step Functions' semantics; its failures are `States.IntrinsicFailure`
//! (see [`IntrinsicError::error_name`]).

use std::collections::HashSet;
use std::fmt;

use serde_json::{Map, Number, Value};

use super::path::{JsonPath, PathContext, PathError, json_equal, parse_json_path, parse_number};

/// How deeply calls may nest inside calls.
const MAX_NESTING: usize = 32;
/// Input limit of Base64Encode, Base64Decode and Hash (characters).
const MAX_CODEC_INPUT: usize = 10_000;
/// Most items States.ArrayRange may produce.
const MAX_RANGE_ITEMS: i128 = 1000;

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

/// The intrinsic functions of the JSONPath query language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntrinsicFn {
    Format,
    StringToJson,
    JsonToString,
    Array,
    ArrayPartition,
    ArrayContains,
    ArrayRange,
    ArrayGetItem,
    ArrayLength,
    ArrayUnique,
    Base64Encode,
    Base64Decode,
    Hash,
    JsonMerge,
    MathRandom,
    MathAdd,
    StringSplit,
    Uuid,
}

impl IntrinsicFn {
    pub const ALL: [IntrinsicFn; 18] = [
        IntrinsicFn::Format,
        IntrinsicFn::StringToJson,
        IntrinsicFn::JsonToString,
        IntrinsicFn::Array,
        IntrinsicFn::ArrayPartition,
        IntrinsicFn::ArrayContains,
        IntrinsicFn::ArrayRange,
        IntrinsicFn::ArrayGetItem,
        IntrinsicFn::ArrayLength,
        IntrinsicFn::ArrayUnique,
        IntrinsicFn::Base64Encode,
        IntrinsicFn::Base64Decode,
        IntrinsicFn::Hash,
        IntrinsicFn::JsonMerge,
        IntrinsicFn::MathRandom,
        IntrinsicFn::MathAdd,
        IntrinsicFn::StringSplit,
        IntrinsicFn::Uuid,
    ];

    /// The full name, e.g. `States.Format`.
    pub fn name(self) -> &'static str {
        match self {
            IntrinsicFn::Format => "States.Format",
            IntrinsicFn::StringToJson => "States.StringToJson",
            IntrinsicFn::JsonToString => "States.JsonToString",
            IntrinsicFn::Array => "States.Array",
            IntrinsicFn::ArrayPartition => "States.ArrayPartition",
            IntrinsicFn::ArrayContains => "States.ArrayContains",
            IntrinsicFn::ArrayRange => "States.ArrayRange",
            IntrinsicFn::ArrayGetItem => "States.ArrayGetItem",
            IntrinsicFn::ArrayLength => "States.ArrayLength",
            IntrinsicFn::ArrayUnique => "States.ArrayUnique",
            IntrinsicFn::Base64Encode => "States.Base64Encode",
            IntrinsicFn::Base64Decode => "States.Base64Decode",
            IntrinsicFn::Hash => "States.Hash",
            IntrinsicFn::JsonMerge => "States.JsonMerge",
            IntrinsicFn::MathRandom => "States.MathRandom",
            IntrinsicFn::MathAdd => "States.MathAdd",
            IntrinsicFn::StringSplit => "States.StringSplit",
            IntrinsicFn::Uuid => "States.UUID",
        }
    }

    /// Look a function up by its full name (`States.Format`), case-sensitively.
    pub fn from_name(name: &str) -> Option<IntrinsicFn> {
        IntrinsicFn::ALL.into_iter().find(|f| f.name() == name)
    }

    /// (minimum, maximum) number of arguments; `None` = no maximum.
    pub fn arity(self) -> (usize, Option<usize>) {
        match self {
            IntrinsicFn::Format => (1, None),
            IntrinsicFn::Array => (0, None),
            IntrinsicFn::Uuid => (0, Some(0)),
            IntrinsicFn::StringToJson
            | IntrinsicFn::JsonToString
            | IntrinsicFn::ArrayLength
            | IntrinsicFn::ArrayUnique
            | IntrinsicFn::Base64Encode
            | IntrinsicFn::Base64Decode => (1, Some(1)),
            IntrinsicFn::ArrayPartition
            | IntrinsicFn::ArrayContains
            | IntrinsicFn::ArrayGetItem
            | IntrinsicFn::Hash
            | IntrinsicFn::MathAdd
            | IntrinsicFn::StringSplit => (2, Some(2)),
            IntrinsicFn::ArrayRange | IntrinsicFn::JsonMerge => (3, Some(3)),
            IntrinsicFn::MathRandom => (2, Some(3)),
        }
    }

    fn arity_text(self) -> String {
        match self.arity() {
            (0, None) => "any number of arguments".to_string(),
            (min, None) => format!("at least {min} argument{}", plural(min)),
            (0, Some(0)) => "no arguments".to_string(),
            (min, Some(max)) if min == max => format!("exactly {min} argument{}", plural(min)),
            (min, Some(max)) => format!("{min} or {max} arguments"),
        }
    }

    /// What argument `i` must be, where it is a literal.
    fn expect(self, i: usize) -> Expect {
        use Expect::*;
        let list: &[Expect] = match self {
            IntrinsicFn::Format => &[Template],
            IntrinsicFn::StringToJson => &[Str],
            IntrinsicFn::JsonToString => &[Any],
            IntrinsicFn::Array => &[],
            IntrinsicFn::ArrayPartition => &[Array, ChunkSize],
            IntrinsicFn::ArrayContains => &[Array, Any],
            IntrinsicFn::ArrayRange => &[Num, Num, Num],
            IntrinsicFn::ArrayGetItem => &[Array, Index],
            IntrinsicFn::ArrayLength | IntrinsicFn::ArrayUnique => &[Array],
            IntrinsicFn::Base64Encode | IntrinsicFn::Base64Decode => &[Str],
            IntrinsicFn::Hash => &[Str, HashAlgorithm],
            IntrinsicFn::JsonMerge => &[Object, Object, False],
            IntrinsicFn::MathRandom => &[Num, Num, Num],
            IntrinsicFn::MathAdd => &[Num, Num],
            IntrinsicFn::StringSplit => &[Str, Str],
            IntrinsicFn::Uuid => &[],
        };
        list.get(i).copied().unwrap_or(Any)
    }
}

impl fmt::Display for IntrinsicFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A parsed intrinsic function call.
#[derive(Debug, Clone, PartialEq)]
pub struct IntrinsicCall {
    pub function: IntrinsicFn,
    pub args: Vec<IntrinsicArg>,
    source: String,
    /// For States.Format with a literal template: the template split at its
    /// (unescaped) `{}` placeholders.
    template: Option<Vec<Piece>>,
}

/// One argument of an intrinsic call.
#[derive(Debug, Clone, PartialEq)]
pub enum IntrinsicArg {
    /// A quoted literal, escapes resolved.
    String(String),
    Number(Number),
    Bool(bool),
    Null,
    Path(JsonPath),
    Call(Box<IntrinsicCall>),
}

/// The value of a `key.$` payload field in a JSONPath state.
#[derive(Debug, Clone, PartialEq)]
pub enum PayloadExpr {
    Path(JsonPath),
    Intrinsic(IntrinsicCall),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Placeholder,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Any,
    Str,
    Num,
    Array,
    Object,
    /// ArrayPartition's chunk size: a positive integer.
    ChunkSize,
    /// ArrayGetItem's index: a non-negative integer.
    Index,
    /// JsonMerge's deep-merge flag: `false`.
    False,
    HashAlgorithm,
    /// Format's template: a string literal or a path.
    Template,
}

const HASH_ALGORITHMS: [&str; 5] = ["MD5", "SHA-1", "SHA-256", "SHA-384", "SHA-512"];

/// Errors of parsing (validation) and of evaluation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntrinsicError {
    /// The call is malformed: syntax, unknown function, arity or the type of
    /// a literal argument. `offset` counts characters from the start of the
    /// expression.
    #[error("{message} (at offset {offset})")]
    Syntax {
        expr: String,
        offset: usize,
        message: String,
    },
    /// A path (the whole payload expression, or an argument) is malformed.
    #[error("invalid path '{path}': {message} (at offset {offset})")]
    InvalidPath {
        expr: String,
        path: String,
        offset: usize,
        message: String,
    },
    /// At run time: a function rejected its arguments (States.IntrinsicFailure).
    #[error("{function}: {message}")]
    Failure {
        function: &'static str,
        message: String,
    },
    /// At run time: a path did not resolve (States.Runtime).
    #[error("{0}")]
    Path(#[from] PathError),
}

impl IntrinsicError {
    /// The ASL error name the interpreter raises for this error:
    /// `States.Runtime` for a path that does not resolve, otherwise
    /// `States.IntrinsicFailure`.
    pub fn error_name(&self) -> &'static str {
        match self {
            IntrinsicError::Path(_) => "States.Runtime",
            _ => "States.IntrinsicFailure",
        }
    }

    /// A human message (the error's cause).
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// The character offset of a parse error.
    pub fn offset(&self) -> Option<usize> {
        match self {
            IntrinsicError::Syntax { offset, .. } | IntrinsicError::InvalidPath { offset, .. } => {
                Some(*offset)
            }
            _ => None,
        }
    }

    fn from_path_syntax(expr: &str, base: usize, e: PathError) -> IntrinsicError {
        match e {
            PathError::Syntax {
                path,
                offset,
                message,
            } => IntrinsicError::InvalidPath {
                expr: expr.to_string(),
                path,
                offset: base + offset,
                message,
            },
            other => IntrinsicError::InvalidPath {
                expr: expr.to_string(),
                path: other.path().to_string(),
                offset: base,
                message: other.to_string(),
            },
        }
    }
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

/// Parse an intrinsic function call such as `States.Format('Hi {}', $.name)`.
pub fn parse_intrinsic(s: &str) -> Result<IntrinsicCall, IntrinsicError> {
    let mut p = Parser {
        src: s,
        chars: s.chars().collect(),
        pos: 0,
        depth: 0,
    };
    let call = p.call()?;
    p.skip_ws();
    if p.pos < p.chars.len() {
        return Err(p.err(p.pos, "unexpected text after the closing ')' of the call"));
    }
    Ok(call)
}

/// Parse the value of a `key.$` field: an intrinsic call when it starts
/// with `States.`, a path otherwise.
pub fn parse_payload_expr(s: &str) -> Result<PayloadExpr, IntrinsicError> {
    if s.starts_with("States.") {
        parse_intrinsic(s).map(PayloadExpr::Intrinsic)
    } else {
        parse_json_path(s)
            .map(PayloadExpr::Path)
            .map_err(|e| IntrinsicError::from_path_syntax(s, 0, e))
    }
}

struct Parser<'s> {
    src: &'s str,
    chars: Vec<char>,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
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
            .all(|(i, c)| self.chars.get(self.pos.saturating_add(i)) == Some(&c))
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn text(&self, from: usize, to: usize) -> String {
        self.chars
            .get(from..to)
            .map(|c| c.iter().collect())
            .unwrap_or_default()
    }

    fn err(&self, offset: usize, message: impl Into<String>) -> IntrinsicError {
        IntrinsicError::Syntax {
            expr: self.src.to_string(),
            offset,
            message: message.into(),
        }
    }

    fn call(&mut self) -> Result<IntrinsicCall, IntrinsicError> {
        let start = self.pos;
        if !self.starts_with("States.") {
            return Err(self.err(
                start,
                "expected an intrinsic function call such as States.Format(...)",
            ));
        }
        self.pos += "States.".len();
        let mut short = String::new();
        while let Some(c) = self
            .peek()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        {
            short.push(c);
            self.pos += 1;
        }
        let full = format!("States.{short}");
        let Some(function) = IntrinsicFn::from_name(&full) else {
            let nearest = nearest_function(&full);
            return Err(self.err(
                start,
                format!(
                    "unknown intrinsic function '{full}' (did you mean '{}'?)",
                    nearest.name()
                ),
            ));
        };
        if !self.eat('(') {
            return Err(self.err(self.pos, format!("expected '(' after {full}")));
        }
        let mut args = Vec::new();
        let mut offsets = Vec::new();
        let mut first_template = None;
        self.skip_ws();
        if !self.eat(')') {
            loop {
                self.skip_ws();
                offsets.push(self.pos);
                let (arg, pieces) = self.arg()?;
                if args.is_empty() {
                    first_template = pieces;
                }
                args.push(arg);
                self.skip_ws();
                match self.bump() {
                    Some(',') => continue,
                    Some(')') => break,
                    None => {
                        return Err(self.err(
                            self.pos,
                            format!("missing ')' to close the call to {full} at offset {start}"),
                        ));
                    }
                    Some(c) => {
                        return Err(self.err(
                            self.pos - 1,
                            format!("unexpected '{c}': expected ',' or ')'"),
                        ));
                    }
                }
            }
        }
        check_arguments(self, function, &args, &offsets, start)?;
        let template = match (function, args.first()) {
            (IntrinsicFn::Format, Some(IntrinsicArg::String(_))) => first_template,
            _ => None,
        };
        Ok(IntrinsicCall {
            function,
            args,
            source: self.text(start, self.pos),
            template,
        })
    }

    fn arg(&mut self) -> Result<(IntrinsicArg, Option<Vec<Piece>>), IntrinsicError> {
        let start = self.pos;
        match self.peek() {
            None | Some(',') | Some(')') => Err(self.err(start, "expected an argument")),
            Some('\'') => {
                let (s, pieces) = self.string()?;
                Ok((IntrinsicArg::String(s), Some(pieces)))
            }
            Some('$') => Ok((IntrinsicArg::Path(self.path()?), None)),
            Some(c) if c == '-' || c.is_ascii_digit() => {
                let mut text = String::new();
                while let Some(c) = self
                    .peek()
                    .filter(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'))
                {
                    text.push(c);
                    self.pos += 1;
                }
                match parse_number(&text) {
                    Some(n) => Ok((IntrinsicArg::Number(n), None)),
                    None => Err(self.err(start, format!("invalid number '{text}'"))),
                }
            }
            Some(_) if self.starts_with("States.") => {
                if self.depth >= MAX_NESTING {
                    return Err(self.err(
                        start,
                        format!("intrinsic calls nested more than {MAX_NESTING} levels deep"),
                    ));
                }
                self.depth += 1;
                let call = self.call();
                self.depth -= 1;
                Ok((IntrinsicArg::Call(Box::new(call?)), None))
            }
            Some(c) if c.is_alphabetic() => {
                let mut word = String::new();
                while let Some(c) = self
                    .peek()
                    .filter(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
                {
                    word.push(c);
                    self.pos += 1;
                }
                match word.as_str() {
                    "true" => Ok((IntrinsicArg::Bool(true), None)),
                    "false" => Ok((IntrinsicArg::Bool(false), None)),
                    "null" => Ok((IntrinsicArg::Null, None)),
                    _ => Err(self.err(
                        start,
                        format!("unexpected '{word}': an argument is a 'quoted string', a number, true, false, null, a path ($...) or a States.* call"),
                    )),
                }
            }
            Some('"') => Err(self.err(
                start,
                "string literals in intrinsic functions use single quotes: 'text'",
            )),
            Some(c) => Err(self.err(start, format!("unexpected '{c}': expected an argument"))),
        }
    }

    /// A single-quoted literal; `\'`, `\{`, `\}` and `\\` are escapes.
    fn string(&mut self) -> Result<(String, Vec<Piece>), IntrinsicError> {
        let start = self.pos;
        self.pos += 1;
        let mut value = String::new();
        let mut pieces = Vec::new();
        let mut text = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(self.err(
                        start,
                        "unterminated string literal: missing the closing quote (')",
                    ));
                }
                Some('\'') => break,
                Some('\\') => match self.bump() {
                    None => {
                        return Err(self.err(
                            start,
                            "unterminated string literal: missing the closing quote (')",
                        ));
                    }
                    Some(c @ ('\'' | '{' | '}' | '\\')) => {
                        value.push(c);
                        text.push(c);
                    }
                    Some(c) => {
                        value.push('\\');
                        value.push(c);
                        text.push('\\');
                        text.push(c);
                    }
                },
                Some('{') if self.peek() == Some('}') => {
                    self.pos += 1;
                    value.push_str("{}");
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                    pieces.push(Piece::Placeholder);
                }
                Some(c) => {
                    value.push(c);
                    text.push(c);
                }
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok((value, pieces))
    }

    /// A path argument: up to the `,` or `)` that ends it (brackets, quotes
    /// inside brackets and parentheses are skipped over).
    fn path(&mut self) -> Result<JsonPath, IntrinsicError> {
        let start = self.pos;
        let mut brackets = 0usize;
        let mut parens = 0usize;
        let mut quote: Option<char> = None;
        while let Some(c) = self.peek() {
            if let Some(q) = quote {
                if c == '\\' {
                    self.pos += 1;
                } else if c == q {
                    quote = None;
                }
                self.pos += 1;
                continue;
            }
            match c {
                '\'' | '"' if brackets > 0 => quote = Some(c),
                '[' => brackets += 1,
                ']' => brackets = brackets.saturating_sub(1),
                '(' => parens += 1,
                ')' if parens > 0 => parens -= 1,
                ')' | ',' if brackets == 0 && parens == 0 => break,
                _ => {}
            }
            self.pos += 1;
        }
        self.pos = self.pos.min(self.chars.len());
        let raw = self.text(start, self.pos);
        let text = raw.trim_end();
        parse_json_path(text).map_err(|e| IntrinsicError::from_path_syntax(self.src, start, e))
    }
}

fn check_arguments(
    p: &Parser,
    function: IntrinsicFn,
    args: &[IntrinsicArg],
    offsets: &[usize],
    start: usize,
) -> Result<(), IntrinsicError> {
    let (min, max) = function.arity();
    let n = args.len();
    if n < min || max.is_some_and(|m| n > m) {
        return Err(p.err(
            start,
            format!(
                "{} takes {}, but {n} {} given",
                function.name(),
                function.arity_text(),
                if n == 1 { "was" } else { "were" }
            ),
        ));
    }
    for (i, arg) in args.iter().enumerate() {
        let offset = offsets.get(i).copied().unwrap_or(start);
        let which = format!("argument {} of {}", i + 1, function.name());
        let literal = match arg {
            IntrinsicArg::Path(_) => continue,
            IntrinsicArg::Call(_) => {
                if function.expect(i) == Expect::Template {
                    return Err(p.err(
                        offset,
                        format!("{which} (the template) must be a string literal or a path"),
                    ));
                }
                continue;
            }
            IntrinsicArg::String(s) => Value::String(s.clone()),
            IntrinsicArg::Number(n) => Value::Number(n.clone()),
            IntrinsicArg::Bool(b) => Value::Bool(*b),
            IntrinsicArg::Null => Value::Null,
        };
        let found = describe_literal(&literal);
        let problem = match function.expect(i) {
            Expect::Any => None,
            Expect::Str | Expect::Template => {
                (!literal.is_string()).then(|| format!("{which} must be a string, not {found}"))
            }
            Expect::Num => {
                (!literal.is_number()).then(|| format!("{which} must be a number, not {found}"))
            }
            Expect::Array => Some(format!(
                "{which} must be an array (a path or a function call), not {found}"
            )),
            Expect::Object => Some(format!(
                "{which} must be a JSON object (a path or a function call), not {found}"
            )),
            Expect::ChunkSize => match literal.as_f64().and_then(whole) {
                Some(v) if v > 0 => None,
                _ => Some(format!(
                    "{which} (the chunk size) must be a positive integer, not {found}"
                )),
            },
            Expect::Index => match literal.as_f64().and_then(whole) {
                Some(v) if v >= 0 => None,
                _ => Some(format!(
                    "{which} (the index) must be a non-negative integer, not {found}"
                )),
            },
            Expect::False => match literal {
                Value::Bool(false) => None,
                Value::Bool(true) => Some(format!(
                    "{which} must be false: deep merge (true) is not supported"
                )),
                _ => Some(format!("{which} must be the boolean false, not {found}")),
            },
            Expect::HashAlgorithm => match literal.as_str() {
                Some(a) if HASH_ALGORITHMS.contains(&a) => None,
                _ => Some(format!(
                    "{which} must be one of {}, not {found}",
                    HASH_ALGORITHMS.join(", ")
                )),
            },
        };
        if let Some(message) = problem {
            return Err(p.err(offset, message));
        }
    }
    Ok(())
}

fn describe_literal(v: &Value) -> String {
    match v {
        Value::String(s) => format!("the string '{s}'"),
        Value::Number(n) => format!("the number {n}"),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Null => "null".to_string(),
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

/// `v` as an integer, when it has no fractional part.
fn whole(v: f64) -> Option<i64> {
    (v.fract() == 0.0 && v.abs() < 9.0e15).then_some(v as i64)
}

fn nearest_function(name: &str) -> IntrinsicFn {
    let target = name.to_ascii_lowercase();
    let mut best = IntrinsicFn::Format;
    let mut best_distance = usize::MAX;
    for f in IntrinsicFn::ALL {
        let d = levenshtein(&target, &f.name().to_ascii_lowercase());
        if d < best_distance {
            best = f;
            best_distance = d;
        }
    }
    best
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut row = Vec::with_capacity(b.len() + 1);
        row.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev
                .get(j)
                .copied()
                .unwrap_or(usize::MAX)
                .saturating_add(usize::from(ca != *cb));
            let delete = prev
                .get(j + 1)
                .copied()
                .unwrap_or(usize::MAX)
                .saturating_add(1);
            let insert = row.get(j).copied().unwrap_or(usize::MAX).saturating_add(1);
            row.push(substitute.min(delete).min(insert));
        }
        prev = row;
    }
    prev.last().copied().unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Accessors
// ---------------------------------------------------------------------------

impl IntrinsicCall {
    /// The call as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl PayloadExpr {
    pub fn as_str(&self) -> &str {
        match self {
            PayloadExpr::Path(p) => p.as_str(),
            PayloadExpr::Intrinsic(c) => c.as_str(),
        }
    }

    /// Evaluate: the path's selection or the call's result.
    pub fn evaluate(&self, cx: &PathContext) -> Result<Value, IntrinsicError> {
        match self {
            PayloadExpr::Path(p) => p.select(cx).map_err(IntrinsicError::Path),
            PayloadExpr::Intrinsic(c) => c.evaluate(cx),
        }
    }
}

impl fmt::Display for IntrinsicCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl fmt::Display for PayloadExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for IntrinsicCall {
    type Err = IntrinsicError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_intrinsic(s)
    }
}

impl std::str::FromStr for PayloadExpr {
    type Err = IntrinsicError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_payload_expr(s)
    }
}

// ---------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------

impl IntrinsicArg {
    pub fn evaluate(&self, cx: &PathContext) -> Result<Value, IntrinsicError> {
        Ok(match self {
            IntrinsicArg::String(s) => Value::String(s.clone()),
            IntrinsicArg::Number(n) => Value::Number(n.clone()),
            IntrinsicArg::Bool(b) => Value::Bool(*b),
            IntrinsicArg::Null => Value::Null,
            IntrinsicArg::Path(p) => p.select(cx)?,
            IntrinsicArg::Call(c) => c.evaluate(cx)?,
        })
    }
}

impl IntrinsicCall {
    /// Run the function with AWS Step Functions' semantics.
    pub fn evaluate(&self, cx: &PathContext) -> Result<Value, IntrinsicError> {
        let mut values = Vec::with_capacity(self.args.len());
        for arg in &self.args {
            values.push(arg.evaluate(cx)?);
        }
        self.apply(values)
    }

    fn fail(&self, message: impl Into<String>) -> IntrinsicError {
        IntrinsicError::Failure {
            function: self.function.name(),
            message: message.into(),
        }
    }

    fn arg<'v>(&self, values: &'v [Value], i: usize) -> Result<&'v Value, IntrinsicError> {
        values
            .get(i)
            .ok_or_else(|| self.fail(format!("missing argument {}", i + 1)))
    }

    fn string_arg<'v>(
        &self,
        values: &'v [Value],
        i: usize,
        what: &str,
    ) -> Result<&'v str, IntrinsicError> {
        match self.arg(values, i)? {
            Value::String(s) => Ok(s),
            other => Err(self.fail(format!(
                "the {what} must be a string, but it is {}",
                describe_value(other)
            ))),
        }
    }

    fn array_arg<'v>(
        &self,
        values: &'v [Value],
        i: usize,
    ) -> Result<&'v Vec<Value>, IntrinsicError> {
        match self.arg(values, i)? {
            Value::Array(a) => Ok(a),
            other => Err(self.fail(format!(
                "argument {} must be an array, but it is {}",
                i + 1,
                describe_value(other)
            ))),
        }
    }

    fn object_arg<'v>(
        &self,
        values: &'v [Value],
        i: usize,
    ) -> Result<&'v Map<String, Value>, IntrinsicError> {
        match self.arg(values, i)? {
            Value::Object(m) => Ok(m),
            other => Err(self.fail(format!(
                "argument {} must be a JSON object, but it is {}",
                i + 1,
                describe_value(other)
            ))),
        }
    }

    fn number_arg(&self, values: &[Value], i: usize, what: &str) -> Result<f64, IntrinsicError> {
        match self.arg(values, i)? {
            Value::Number(n) => n
                .as_f64()
                .ok_or_else(|| self.fail(format!("the {what} is not a usable number"))),
            other => Err(self.fail(format!(
                "the {what} must be a number, but it is {}",
                describe_value(other)
            ))),
        }
    }

    /// A number argument rounded to the nearest integer (Java's Math.round)
    /// and checked to be a 32-bit integer.
    fn int_arg(&self, values: &[Value], i: usize, what: &str) -> Result<i64, IntrinsicError> {
        let v = self.number_arg(values, i, what)?;
        let r = java_round(v);
        if !(f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&r) {
            return Err(self.fail(format!(
                "the {what} ({}) must be an integer between {} and {}",
                self.arg(values, i)?,
                i32::MIN,
                i32::MAX
            )));
        }
        Ok(r as i64)
    }

    /// A number argument that must be a whole number.
    fn whole_arg(&self, values: &[Value], i: usize, what: &str) -> Result<i64, IntrinsicError> {
        let v = self.number_arg(values, i, what)?;
        whole(v).ok_or_else(|| {
            self.fail(format!(
                "the {what} must be an integer, but it is {}",
                values.get(i).map(Value::to_string).unwrap_or_default()
            ))
        })
    }

    fn apply(&self, values: Vec<Value>) -> Result<Value, IntrinsicError> {
        let v = &values;
        match self.function {
            IntrinsicFn::Format => self.format(v),
            IntrinsicFn::StringToJson => {
                let s = self.string_arg(v, 0, "argument")?;
                let t = s.trim();
                if t.is_empty() {
                    return Ok(Value::Null);
                }
                let parsed: Value = serde_json::from_str(t)
                    .map_err(|e| self.fail(format!("the argument is not valid JSON: {e}")))?;
                Ok(normalize_negative_zero(parsed))
            }
            IntrinsicFn::JsonToString => {
                let x = self.arg(v, 0)?;
                serde_json::to_string(x)
                    .map(Value::String)
                    .map_err(|e| self.fail(e.to_string()))
            }
            IntrinsicFn::Array => Ok(Value::Array(values)),
            IntrinsicFn::ArrayPartition => {
                let items = self.array_arg(v, 0)?;
                let size = self.whole_arg(v, 1, "chunk size")?;
                let size = usize::try_from(size)
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| {
                        self.fail(format!(
                            "the chunk size must be a positive integer, but it is {size}"
                        ))
                    })?;
                Ok(Value::Array(
                    items
                        .chunks(size)
                        .map(|c| Value::Array(c.to_vec()))
                        .collect(),
                ))
            }
            IntrinsicFn::ArrayContains => {
                let items = self.array_arg(v, 0)?;
                let needle = self.arg(v, 1)?;
                Ok(Value::Bool(items.iter().any(|i| json_equal(i, needle))))
            }
            IntrinsicFn::ArrayRange => self.array_range(v),
            IntrinsicFn::ArrayGetItem => {
                let items = self.array_arg(v, 0)?;
                let index = self.whole_arg(v, 1, "index")?;
                usize::try_from(index)
                    .ok()
                    .and_then(|i| items.get(i))
                    .cloned()
                    .ok_or_else(|| {
                        self.fail(format!(
                            "the index {index} is out of bounds for an array of {} item{}",
                            items.len(),
                            plural(items.len())
                        ))
                    })
            }
            IntrinsicFn::ArrayLength => Ok(Value::from(self.array_arg(v, 0)?.len())),
            IntrinsicFn::ArrayUnique => {
                let items = self.array_arg(v, 0)?;
                let mut seen = HashSet::new();
                let mut out = Vec::new();
                for item in items {
                    let mut key = String::new();
                    canonical(item, &mut key);
                    if seen.insert(key) {
                        out.push(item.clone());
                    }
                }
                Ok(Value::Array(out))
            }
            IntrinsicFn::Base64Encode => {
                let s = self.string_arg(v, 0, "input")?;
                self.check_codec_len(s)?;
                Ok(Value::String(base64_encode(s.as_bytes())))
            }
            IntrinsicFn::Base64Decode => {
                let s = self.string_arg(v, 0, "input")?;
                self.check_codec_len(s)?;
                let bytes =
                    base64_decode(s).ok_or_else(|| self.fail("the input is not valid Base64"))?;
                String::from_utf8(bytes)
                    .map(Value::String)
                    .map_err(|_| self.fail("the decoded data is not valid UTF-8 text"))
            }
            IntrinsicFn::Hash => {
                let data = self.string_arg(v, 0, "data to hash")?;
                self.check_codec_len(data)?;
                let algorithm = self.string_arg(v, 1, "hash algorithm")?;
                match hash_hex(data, algorithm) {
                    Some(h) => Ok(Value::String(h)),
                    None => Err(self.fail(format!(
                        "unsupported hash algorithm '{algorithm}': use one of {}",
                        HASH_ALGORITHMS.join(", ")
                    ))),
                }
            }
            IntrinsicFn::JsonMerge => {
                let a = self.object_arg(v, 0)?;
                let b = self.object_arg(v, 1)?;
                match self.arg(v, 2)? {
                    Value::Bool(false) => {}
                    Value::Bool(true) => {
                        return Err(self.fail(
                            "deep merge (true) is not supported: the third argument must be false",
                        ));
                    }
                    other => {
                        return Err(self.fail(format!(
                            "the third argument must be the boolean false, but it is {}",
                            describe_value(other)
                        )));
                    }
                }
                let mut merged = a.clone();
                for (k, x) in b {
                    merged.insert(k.clone(), x.clone());
                }
                Ok(Value::Object(merged))
            }
            IntrinsicFn::MathRandom => {
                let start = self.int_arg(v, 0, "start")?;
                let end = self.int_arg(v, 1, "end")?;
                if start >= end {
                    return Err(self.fail(format!(
                        "the start ({start}) must be less than the end ({end})"
                    )));
                }
                let bound = end - start;
                let r = if values.len() > 2 {
                    let seed = self.int_arg(v, 2, "seed")?;
                    let bound = i32::try_from(bound)
                        .map_err(|_| self.fail("the range between start and end is too large"))?;
                    i64::from(JavaRandom::new(seed).next_int(bound))
                } else {
                    let b = u64::try_from(bound).unwrap_or(1).max(1);
                    i64::try_from(random_u64() % b).unwrap_or(0)
                };
                Ok(Value::from(start + r))
            }
            IntrinsicFn::MathAdd => {
                let a = self.int_arg(v, 0, "first value")?;
                let b = self.int_arg(v, 1, "second value")?;
                Ok(Value::from(a + b))
            }
            IntrinsicFn::StringSplit => {
                let s = self.string_arg(v, 0, "input string")?;
                let delimiters = self.string_arg(v, 1, "delimiter")?;
                Ok(Value::Array(
                    s.split(|c: char| delimiters.contains(c))
                        .filter(|part| !part.is_empty())
                        .map(|part| Value::String(part.to_string()))
                        .collect(),
                ))
            }
            IntrinsicFn::Uuid => Ok(Value::String(uuid_v4())),
        }
    }

    fn check_codec_len(&self, s: &str) -> Result<(), IntrinsicError> {
        let n = s.chars().count();
        if n > MAX_CODEC_INPUT {
            return Err(self.fail(format!(
                "the input has {n} characters; the maximum is {MAX_CODEC_INPUT}"
            )));
        }
        Ok(())
    }

    fn format(&self, v: &[Value]) -> Result<Value, IntrinsicError> {
        let runtime_pieces;
        let pieces = match &self.template {
            Some(p) => p,
            None => {
                let template = self.string_arg(v, 0, "template (first argument)")?;
                runtime_pieces = split_template(template);
                &runtime_pieces
            }
        };
        let placeholders = pieces.iter().filter(|p| **p == Piece::Placeholder).count();
        let given = v.len().saturating_sub(1);
        if placeholders != given {
            return Err(self.fail(format!(
                "the template has {placeholders} placeholder{} '{{}}' but {given} value{} {} given",
                plural(placeholders),
                plural(given),
                if given == 1 { "was" } else { "were" }
            )));
        }
        let mut out = String::new();
        let mut next = v.iter().skip(1);
        for piece in pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Placeholder => {
                    if let Some(value) = next.next() {
                        render_format_value(value, &mut out);
                    }
                }
            }
        }
        Ok(Value::String(out))
    }

    fn array_range(&self, v: &[Value]) -> Result<Value, IntrinsicError> {
        let start = self.int_arg(v, 0, "start")?;
        let end = self.int_arg(v, 1, "end")?;
        let step = self.int_arg(v, 2, "step")?;
        if step == 0 {
            return Err(self.fail("the step must not be 0"));
        }
        let (start, end, step) = (i128::from(start), i128::from(end), i128::from(step));
        let count = if (step > 0 && start > end) || (step < 0 && start < end) {
            0
        } else {
            (end - start) / step + 1
        };
        if count > MAX_RANGE_ITEMS {
            return Err(self.fail(format!(
                "the range would have {count} items; arrays can contain at most {MAX_RANGE_ITEMS}"
            )));
        }
        let items = (0..count)
            .map(|k| Value::from(i64::try_from(start + k * step).unwrap_or_default()))
            .collect();
        Ok(Value::Array(items))
    }
}

/// `{}` placeholders of a template that came from the data.
fn split_template(s: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut parts = s.split("{}").peekable();
    while let Some(part) = parts.next() {
        if !part.is_empty() {
            pieces.push(Piece::Text(part.to_string()));
        }
        if parts.peek().is_some() {
            pieces.push(Piece::Placeholder);
        }
    }
    pieces
}

/// How States.Format shows a value: strings as they are, arrays and objects
/// as Java's `toString` (`[a, b]`, `{k=v, k2=v2}`), other values as JSON.
fn render_format_value(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render_format_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push('=');
                render_format_value(item, out);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn describe_value(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => {
            let short: String = s.chars().take(60).collect();
            let ellipsis = if s.chars().count() > 60 { "…" } else { "" };
            format!("the string \"{short}{ellipsis}\"")
        }
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

/// Java's `Math.round`: the nearest integer, halves rounded up.
fn java_round(x: f64) -> f64 {
    let floor = x.floor();
    if x - floor >= 0.5 { floor + 1.0 } else { floor }
}

fn normalize_negative_zero(v: Value) -> Value {
    match v {
        Value::Number(n)
            if n.as_f64() == Some(0.0) && n.is_f64() && n.to_string().starts_with('-') =>
        {
            Value::from(0)
        }
        other => other,
    }
}

/// A key equal for values that [`json_equal`] considers equal.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (_, Some(u), _) => out.push_str(&u.to_string()),
            (_, _, Some(f)) => match whole(f) {
                Some(i) => out.push_str(&i.to_string()),
                None => out.push_str(&format!("{f:e}")),
            },
            _ => out.push_str(&n.to_string()),
        },
        Value::Array(items) => {
            out.push('[');
            for item in items {
                canonical(item, out);
                out.push(',');
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for k in keys {
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(item) = map.get(k) {
                    canonical(item, out);
                }
                out.push(',');
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

// ----- randomness -------------------------------------------------------------

fn random_u64() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    h.finish()
}

fn uuid_v4() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `java.util.Random`, for seeded States.MathRandom.
struct JavaRandom {
    seed: u64,
}

impl JavaRandom {
    const MULTIPLIER: u64 = 0x5_DEEC_E66D;
    const MASK: u64 = (1 << 48) - 1;

    fn new(seed: i64) -> Self {
        JavaRandom {
            seed: (seed as u64 ^ Self::MULTIPLIER) & Self::MASK,
        }
    }

    fn next(&mut self, bits: u32) -> i32 {
        self.seed = self.seed.wrapping_mul(Self::MULTIPLIER).wrapping_add(0xB) & Self::MASK;
        (self.seed >> (48 - bits)) as u32 as i32
    }

    fn next_int(&mut self, bound: i32) -> i32 {
        let mut r = self.next(31);
        let m = bound.wrapping_sub(1);
        if bound & m == 0 {
            return ((i64::from(bound) * i64::from(r)) >> 31) as i32;
        }
        let mut u = r;
        loop {
            r = u % bound;
            if u.wrapping_sub(r).wrapping_add(m) >= 0 {
                return r;
            }
            u = self.next(31);
        }
    }
}

// ----- Base64 -------------------------------------------------------------------

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b0 = chunk.first().copied().unwrap_or(0);
        let b1 = chunk.get(1).copied();
        let b2 = chunk.get(2).copied();
        let n =
            (u32::from(b0) << 16) | (u32::from(b1.unwrap_or(0)) << 8) | u32::from(b2.unwrap_or(0));
        let sym = |shift: u32| char::from(BASE64[((n >> shift) & 63) as usize]);
        out.push(sym(18));
        out.push(sym(12));
        out.push(if b1.is_some() { sym(6) } else { '=' });
        out.push(if b2.is_some() { sym(0) } else { '=' });
    }
    out
}

/// Standard alphabet; padding optional, but when present it must be right
/// (as Java's `Base64.getDecoder()`).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let body = s.trim_end_matches('=');
    let pads = s.len() - body.len();
    if pads > 2 || (pads > 0 && !s.len().is_multiple_of(4)) || body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for c in body.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

// ----- hashes --------------------------------------------------------------------

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hex digest of `data` with one of MD5, SHA-1, SHA-256, SHA-384, SHA-512
/// (the algorithms `States.Hash` and JSONata `$hash` accept), by the
/// RustCrypto crates.
pub fn hash_hex(data: &str, algorithm: &str) -> Option<String> {
    use sha2::Digest;
    let bytes = data.as_bytes();
    let digest = match algorithm {
        "MD5" => md5::Md5::digest(bytes).to_vec(),
        "SHA-1" => sha1::Sha1::digest(bytes).to_vec(),
        "SHA-256" => sha2::Sha256::digest(bytes).to_vec(),
        "SHA-384" => sha2::Sha384::digest(bytes).to_vec(),
        "SHA-512" => sha2::Sha512::digest(bytes).to_vec(),
        _ => return None,
    };
    Some(hex(&digest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval_with(expr: &str, input: &Value) -> Result<Value, IntrinsicError> {
        let ctx = json!({"StateMachine": {"Id": "arn:sm", "Name": "my-state-machine"}, "Execution": {"Name": "run-1"}});
        let vars = |n: &str| (n == "x").then(|| json!(40));
        let cx = PathContext::new(input, &ctx).with_variables(&vars);
        parse_payload_expr(expr).expect("parses").evaluate(&cx)
    }

    fn eval(expr: &str) -> Result<Value, IntrinsicError> {
        eval_with(expr, &json!({}))
    }

    fn parse_err(expr: &str) -> (usize, String) {
        match parse_payload_expr(expr) {
            Err(e) => (e.offset().unwrap_or(usize::MAX), e.to_string()),
            Ok(p) => panic!("{expr}: expected an error, parsed {p:?}"),
        }
    }

    #[test]
    fn parses_calls() {
        let c = parse_intrinsic("States.Format('Hello, {}', $.name)").unwrap();
        assert_eq!(c.function, IntrinsicFn::Format);
        assert_eq!(c.args.len(), 2);
        assert_eq!(c.args[0], IntrinsicArg::String("Hello, {}".into()));
        assert!(matches!(&c.args[1], IntrinsicArg::Path(p) if p.as_str() == "$.name"));
        assert_eq!(c.as_str(), "States.Format('Hello, {}', $.name)");

        let c = parse_intrinsic("States.MathAdd( -1.5 ,  2e3 )").unwrap();
        assert_eq!(
            c.args,
            vec![
                IntrinsicArg::Number(Number::from_f64(-1.5).unwrap()),
                IntrinsicArg::Number(Number::from_f64(2000.0).unwrap())
            ]
        );
        let c =
            parse_intrinsic("States.Array(true, false, null, $$.Execution.Id, $x, States.UUID())")
                .unwrap();
        assert_eq!(c.args.len(), 6);
        assert!(
            matches!(&c.args[5], IntrinsicArg::Call(inner) if inner.function == IntrinsicFn::Uuid)
        );
        let c = parse_intrinsic("States.ArrayLength($.a[?(@.b == 'x,y')])").unwrap();
        assert!(
            matches!(&c.args[0], IntrinsicArg::Path(p) if p.as_str() == "$.a[?(@.b == 'x,y')]")
        );
        let c = parse_intrinsic(r"States.Format('it\'s \{\} {} \\', $.a)").unwrap();
        assert_eq!(c.args[0], IntrinsicArg::String(r"it's {} {} \".into()));
        assert!(parse_intrinsic("States.Array()").unwrap().args.is_empty());
        assert!(matches!(
            parse_payload_expr("$.a").unwrap(),
            PayloadExpr::Path(_)
        ));
        assert!(matches!(
            parse_payload_expr("$$.Map.Item.Value").unwrap(),
            PayloadExpr::Path(_)
        ));
    }

    #[test]
    fn parse_errors_say_what_and_where() {
        let (off, msg) = parse_err("States.Formt('x')");
        assert_eq!(off, 0);
        assert!(
            msg.contains("'States.Formt'") && msg.contains("did you mean 'States.Format'"),
            "{msg}"
        );
        let (_, msg) = parse_err("States.uuid()");
        assert!(msg.contains("States.UUID"), "{msg}");
        let (off, msg) = parse_err("States.MathAdd(1,'-1')");
        assert_eq!(off, 17);
        assert!(
            msg.contains("argument 2 of States.MathAdd must be a number"),
            "{msg}"
        );
        let (_, msg) = parse_err("States.MathAdd(1)");
        assert!(
            msg.contains("exactly 2 arguments, but 1 was given"),
            "{msg}"
        );
        let (_, msg) = parse_err("States.Format()");
        assert!(msg.contains("at least 1 argument"), "{msg}");
        let (_, msg) = parse_err("States.UUID(1)");
        assert!(msg.contains("no arguments"), "{msg}");
        let (_, msg) = parse_err("States.MathRandom(1, 2, 3, 4)");
        assert!(msg.contains("2 or 3 arguments"), "{msg}");
        let (off, msg) = parse_err("States.Hash($.a, 'SHA-2')");
        assert_eq!(off, 17);
        assert!(msg.contains("SHA-256"), "{msg}");
        let (_, msg) = parse_err("States.JsonMerge($.a, $.b, true)");
        assert!(msg.contains("deep merge"), "{msg}");
        assert!(parse_intrinsic("States.JsonMerge($.a, $.b, 'false')").is_err());
        let (_, msg) = parse_err("States.Format(1, $.a)");
        assert!(msg.contains("must be a string"), "{msg}");
        assert!(parse_intrinsic("States.Format(States.UUID())").is_err());
        assert!(parse_intrinsic("States.ArrayLength('abc')").is_err());
        assert!(parse_intrinsic("States.ArrayGetItem($.a, -1)").is_err());
        assert!(parse_intrinsic("States.ArrayGetItem($.a, 1.5)").is_err());
        assert!(parse_intrinsic("States.ArrayPartition($.a, 0)").is_err());
        let (off, msg) = parse_err("States.Format('x', $.a b)");
        assert_eq!(off, 22);
        assert!(msg.contains("invalid path '$.a b'"), "{msg}");
        let (off, _) = parse_err("States.Format('x'");
        assert_eq!(off, 17);
        let (off, _) = parse_err("States.Format('x)");
        assert_eq!(off, 14);
        assert!(parse_intrinsic("States.Format('x') extra").is_err());
        assert!(parse_intrinsic("States.Format(\"x\")").is_err());
        assert!(parse_intrinsic("States.Format('x',)").is_err());
        assert!(parse_intrinsic("States.Format('x' 'y')").is_err());
        assert!(parse_intrinsic("States.Array(foo)").is_err());
        assert!(parse_intrinsic("States.Array(1..2)").is_err());
        for bad in [
            "ipsum",
            "not a path",
            "",
            "States",
            "States.",
            "States.Format",
        ] {
            assert!(parse_payload_expr(bad).is_err(), "{bad}");
        }
        let deep = format!("{}{}", "States.Array(".repeat(100), ")".repeat(100));
        assert!(parse_intrinsic(&deep).is_err());
        let fine = format!("{}{}", "States.Array(".repeat(10), ")".repeat(10));
        assert!(parse_intrinsic(&fine).is_ok());
    }

    #[test]
    fn never_panics() {
        for s in [
            "States.Format('",
            "States.Format('\\",
            "States.Format($",
            "States.Format($[",
            "States.Format($['a",
            "States.Format($.a[?(@.b == ')'",
            "States.Format(-",
            "States.Array(1e999)",
            "States.Array(-0)",
            "States.\u{0}",
            "States.Array(é)",
            "States.Array(States.",
            "States.Format(')",
            "States.Array($.a)))",
            "States.Array((",
            "States.ArrayRange(1,2,3,",
        ] {
            let _ = parse_payload_expr(s);
        }
    }

    #[test]
    fn format() {
        let input = json!({"name": "Arnav", "template": "Hello, my name is {}.", "o": {"Arg1": 1, "Arg2": [], "s": "x"}, "n": null, "f": 1.1});
        assert_eq!(
            eval_with("States.Format('Hello, my name is {}.', $.name)", &input).unwrap(),
            json!("Hello, my name is Arnav.")
        );
        assert_eq!(
            eval_with("States.Format($.template, $.name)", &input).unwrap(),
            json!("Hello, my name is Arnav.")
        );
        assert_eq!(
            eval_with("States.Format('{} {} {}', $.o, $.n, $.f)", &input).unwrap(),
            json!("{Arg1=1, Arg2=[], s=x} null 1.1")
        );
        assert_eq!(
            eval_with(r"States.Format('\{\} {}', $x)", &input).unwrap(),
            json!("{} 40")
        );
        assert_eq!(
            eval_with("States.Format('{}', $$.StateMachine)", &input).unwrap(),
            json!("{Id=arn:sm, Name=my-state-machine}")
        );
        let e = eval_with("States.Format('{} {}', $.name)", &input).unwrap_err();
        assert_eq!(e.error_name(), "States.IntrinsicFailure");
        assert!(e.message().contains("2 placeholders"), "{e}");
        let e = eval_with("States.Format('{}', $.missing)", &input).unwrap_err();
        assert_eq!(e.error_name(), "States.Runtime");
        assert!(eval_with("States.Format($.n)", &input).is_err());
    }

    #[test]
    fn json_functions() {
        let input = json!({"s": "{\"a\": [1, 2], \"b\": \"x\"}", "o": {"Arg1": 1, "Arg2": []}, "j1": {"a": {"a1": 1}, "b": 2, "d": 3}, "j2": {"a": {"a3": 1}, "c": 3, "d": 4}});
        assert_eq!(
            eval_with("States.StringToJson($.s)", &input).unwrap(),
            json!({"a": [1, 2], "b": "x"})
        );
        assert_eq!(eval("States.StringToJson(' ')").unwrap(), json!(null));
        assert_eq!(eval("States.StringToJson('-0')").unwrap(), json!(0));
        assert_eq!(eval("States.StringToJson('1.1')").unwrap(), json!(1.1));
        assert!(eval("States.StringToJson('{nope')").is_err());
        assert_eq!(
            eval_with("States.JsonToString($.o)", &input).unwrap(),
            json!("{\"Arg1\":1,\"Arg2\":[]}")
        );
        assert_eq!(
            eval("States.JsonToString('HelloWorld')").unwrap(),
            json!("\"HelloWorld\"")
        );
        assert_eq!(
            eval_with("States.JsonMerge($.j1, $.j2, false)", &input).unwrap(),
            json!({"a": {"a3": 1}, "b": 2, "c": 3, "d": 4})
        );
        assert!(eval_with("States.JsonMerge($.j1, $.s, false)", &input).is_err());
        assert_eq!(
            eval_with(
                r#"States.JsonMerge(States.StringToJson('{"k": "v"}'), $.o, false)"#,
                &input
            )
            .unwrap(),
            json!({"k": "v", "Arg1": 1, "Arg2": []})
        );
    }

    #[test]
    fn array_functions() {
        let input = json!({"a": [1, 2, 3, 4, 5, 6, 7, 8, 9], "dup": [1, 2, 2, 3, 3, 4, 1.0, {"x": 1}, {"x": 1.0}], "e": []});
        assert_eq!(
            eval("States.Array('a', 1, true, null)").unwrap(),
            json!(["a", 1, true, null])
        );
        assert_eq!(
            eval_with("States.ArrayPartition($.a, 4)", &input).unwrap(),
            json!([[1, 2, 3, 4], [5, 6, 7, 8], [9]])
        );
        assert_eq!(
            eval_with("States.ArrayPartition($.e, 2)", &input).unwrap(),
            json!([])
        );
        assert_eq!(
            eval_with("States.ArrayContains($.a, 5)", &input).unwrap(),
            json!(true)
        );
        assert_eq!(
            eval_with("States.ArrayContains($.a, '5')", &input).unwrap(),
            json!(false)
        );
        assert_eq!(
            eval("States.ArrayRange(1, 9, 2)").unwrap(),
            json!([1, 3, 5, 7, 9])
        );
        assert_eq!(
            eval("States.ArrayRange(0, 10, 3)").unwrap(),
            json!([0, 3, 6, 9])
        );
        assert_eq!(eval("States.ArrayRange(1, 9, 9)").unwrap(), json!([1]));
        assert_eq!(
            eval("States.ArrayRange(5, 1, -2)").unwrap(),
            json!([5, 3, 1])
        );
        assert_eq!(eval("States.ArrayRange(5, 1, 2)").unwrap(), json!([]));
        assert_eq!(
            eval("States.ArrayRange(1, 1000, 1)")
                .unwrap()
                .as_array()
                .map(Vec::len),
            Some(1000)
        );
        assert!(eval("States.ArrayRange(0, 1000, 1)").is_err());
        assert!(eval("States.ArrayRange(0, 3, 0)").is_err());
        assert_eq!(
            eval_with("States.ArrayGetItem($.a, 5)", &input).unwrap(),
            json!(6)
        );
        assert!(eval_with("States.ArrayGetItem($.a, 9)", &input).is_err());
        assert_eq!(
            eval_with("States.ArrayLength($.a)", &input).unwrap(),
            json!(9)
        );
        assert_eq!(
            eval_with("States.ArrayUnique($.dup)", &input).unwrap(),
            json!([1, 2, 3, 4, {"x": 1}])
        );
        assert!(eval_with("States.ArrayLength($.dup[0])", &input).is_err());
    }

    #[test]
    fn string_and_encoding_functions() {
        let input =
            json!({"csv": "a,b,c,d,e", "raw": "Data to encode", "enc": "RGF0YSB0byBlbmNvZGU="});
        assert_eq!(
            eval_with("States.StringSplit($.csv, ',')", &input).unwrap(),
            json!(["a", "b", "c", "d", "e"])
        );
        assert_eq!(
            eval("States.StringSplit('This.is+a,test=string', '.+,=')").unwrap(),
            json!(["This", "is", "a", "test", "string"])
        );
        assert_eq!(
            eval("States.StringSplit(', , ,', ',')").unwrap(),
            json!([" ", " "])
        );
        assert_eq!(eval("States.StringSplit(',,,,', ',')").unwrap(), json!([]));
        assert_eq!(
            eval_with("States.Base64Encode($.raw)", &input).unwrap(),
            json!("RGF0YSB0byBlbmNvZGU=")
        );
        assert_eq!(
            eval_with("States.Base64Decode($.enc)", &input).unwrap(),
            json!("Data to encode")
        );
        assert_eq!(
            eval("States.Base64Encode('Hello World')").unwrap(),
            json!("SGVsbG8gV29ybGQ=")
        );
        assert_eq!(
            eval("States.Base64Decode('SGVsbG8gV29ybGQ')").unwrap(),
            json!("Hello World")
        );
        assert_eq!(eval("States.Base64Encode('ab')").unwrap(), json!("YWI="));
        assert_eq!(eval("States.Base64Decode('YWI=')").unwrap(), json!("ab"));
        assert!(eval("States.Base64Decode('Y*I=')").is_err());
        assert!(eval("States.Base64Decode('YWI==')").is_err());
        let long = json!({"s": "x".repeat(10_001)});
        assert!(eval_with("States.Base64Encode($.s)", &long).is_err());
    }

    #[test]
    fn hashes() {
        let h = |algo: &str, data: &str| {
            eval_with(&format!("States.Hash($.d, '{algo}')"), &json!({"d": data})).unwrap()
        };
        assert_eq!(
            h("MD5", "input data"),
            json!("812f45842bc6d66ee14572ce20db8e86")
        );
        assert_eq!(
            h("SHA-1", "input data"),
            json!("aaff4a450a104cd177d28d18d74485e8cae074b7")
        );
        assert_eq!(
            h("SHA-256", "input data"),
            json!("b4a697a057313163aee33cd8d40c66e9f0f177e00cac2de32475ffff6169c3e3")
        );
        assert_eq!(
            h("SHA-384", "input data"),
            json!(
                "d28a7d5cf25a74f11a50a18452b75e04bb3d70c9dd0510d6123aa008c756511b87525bdc835ebb27e1fb9e9374a15562"
            )
        );
        assert_eq!(
            h("SHA-512", "input data"),
            json!(
                "6ce4adb348546d4f449c4d25aad9a7c9cb711d9e91982d3f0b29ca2f3f47d4ce2deba23bf2954f0f1d593fc50283731a533d30d425402d4f91316d871303aac4"
            )
        );
        assert_eq!(
            h("SHA-256", "Hash this string"),
            json!("1cac63f39fd68d8c531f27b807610fb3d50f0fc3f186995767fb6316e7200a3e")
        );
        // Empty input and a multi-block input.
        assert_eq!(h("MD5", ""), json!("d41d8cd98f00b204e9800998ecf8427e"));
        let a200 = "a".repeat(200);
        assert_eq!(h("MD5", &a200), json!("887f30b43b2867f4a9accceee7d16e6c"));
        assert_eq!(
            h("SHA-1", &a200),
            json!("e61cfffe0d9195a525fc6cf06ca2d77119c24a40")
        );
        assert_eq!(
            h("SHA-256", &a200),
            json!("c2a908d98f5df987ade41b5fce213067efbcc21ef2240212a41e54b5e7c28ae5")
        );
        assert_eq!(
            h("SHA-384", &a200),
            json!(
                "0691b6e978614b67d60557b2a2cddd53406508522efa21c624dbbfa8ab6e726d5c586b489c7c09f24109a64c10211d48"
            )
        );
        assert_eq!(
            h("SHA-512", ""),
            json!(
                "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
            )
        );
        assert!(eval_with("States.Hash($.d, $.a)", &json!({"d": "x", "a": "SHA-2"})).is_err());
    }

    #[test]
    fn math_functions() {
        let input = json!({"v1": 111, "v2": -1, "half": 2.5, "neg": -2.5});
        assert_eq!(
            eval_with("States.MathAdd($.v1, $.v2)", &input).unwrap(),
            json!(110)
        );
        assert_eq!(
            eval_with("States.MathAdd($.half, 0)", &input).unwrap(),
            json!(3)
        );
        assert_eq!(
            eval_with("States.MathAdd($.neg, 0)", &input).unwrap(),
            json!(-2)
        );
        assert_eq!(eval("States.MathAdd(1.49, 1.5)").unwrap(), json!(3));
        assert_eq!(eval("States.MathAdd(-0.5, 0.5)").unwrap(), json!(1));
        assert_eq!(eval("States.MathAdd($x, 2)").unwrap(), json!(42));
        assert!(eval("States.MathAdd(3000000000, 1)").is_err());
        assert!(eval_with("States.MathAdd($.v1, States.Format('1'))", &input).is_err());
        for _ in 0..50 {
            let r = eval("States.MathRandom(1, 5)").unwrap().as_i64().unwrap();
            assert!((1..5).contains(&r), "{r}");
        }
        let a = eval("States.MathRandom(0, 1000, 7)").unwrap();
        assert_eq!(a, eval("States.MathRandom(0, 1000, 7)").unwrap());
        // As java.util.Random: new Random(42).nextInt(10) == 0,
        // new Random(7).nextInt(1000) == 236, new Random(3).nextInt(999) == 239.
        assert_eq!(eval("States.MathRandom(0, 10, 42)").unwrap(), json!(0));
        assert_eq!(a, json!(236));
        assert_eq!(eval("States.MathRandom(1, 1000, 3)").unwrap(), json!(240));
        assert!(eval("States.MathRandom(5, 5)").is_err());
        assert_eq!(eval("States.MathRandom(12.5, 13.6)").unwrap(), json!(13));
    }

    #[test]
    fn uuid_and_nesting() {
        let u = eval("States.UUID()").unwrap();
        let s = u.as_str().unwrap();
        assert_eq!(s.len(), 36);
        assert_eq!(s.chars().nth(14), Some('4'));
        assert!(matches!(s.chars().nth(19), Some('8' | '9' | 'a' | 'b')));
        assert_ne!(u, eval("States.UUID()").unwrap());
        assert_eq!(
            eval("States.ArrayGetItem(States.StringSplit($$.StateMachine.Name, '-'), States.MathAdd(States.ArrayLength(States.StringSplit($$.StateMachine.Name, '-')), -1))").unwrap(),
            json!("machine")
        );
        assert_eq!(
            eval("States.StringSplit('Hello\nWorld', '\n')").unwrap(),
            json!(["Hello", "World"])
        );
    }
}
