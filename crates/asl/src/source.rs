//! Source text → a positioned value tree ([`Node`]).
//!
//! Definitions arrive as JSON or YAML text. Before anything is typed, the text
//! is read into a tree of [`Node`]s that keeps the byte span of every value
//! and every object key, so that each later diagnostic can name a line and a
//! column. Unlike `serde_json`, which silently keeps the last of two equal
//! keys, this reader rejects duplicate keys (AWS does too).
//!
//! The JSON reader is hand-written (a few hundred lines) because none of the
//! maintained JSON crates report both positions and duplicate keys; the YAML
//! reader is built on `saphyr-parser`'s event stream (see [`super::yaml`]).

use std::fmt;

use super::diagnostics::Code;

/// Largest definition accepted, in bytes. AWS Step Functions caps a
/// definition at 1 MiB; piflow allows generated definitions up to 8 MiB.
pub const MAX_SOURCE_BYTES: usize = 8 * 1024 * 1024;

/// Deepest nesting of arrays and objects accepted.
pub const MAX_DEPTH: usize = 128;

/// A byte range in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
}

/// An object key with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub span: Span,
}

/// A value with its position in the source.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Node>),
    Object(Vec<(Key, Node)>),
}

impl Node {
    pub fn new(kind: NodeKind, span: Span) -> Self {
        Node { kind, span }
    }

    /// The JSON type name, as used in diagnostics.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            NodeKind::Null => "null",
            NodeKind::Bool(_) => "boolean",
            NodeKind::Number(_) => "number",
            NodeKind::String(_) => "string",
            NodeKind::Array(_) => "array",
            NodeKind::Object(_) => "object",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&[(Key, Node)]> {
        match &self.kind {
            NodeKind::Object(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Node]> {
        match &self.kind {
            NodeKind::Array(a) => Some(a),
            _ => None,
        }
    }

    /// Look a key up in an object node (first match; duplicates were rejected).
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_object()?
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    /// Convert to a plain `serde_json::Value`, dropping positions.
    pub fn to_value(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            NodeKind::Null => Value::Null,
            NodeKind::Bool(b) => Value::Bool(*b),
            NodeKind::Number(n) => Value::Number(n.clone()),
            NodeKind::String(s) => Value::String(s.clone()),
            NodeKind::Array(a) => Value::Array(a.iter().map(Node::to_value).collect()),
            NodeKind::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.name.clone(), v.to_value()))
                    .collect(),
            ),
        }
    }

    /// Build a node tree from a plain value; every span is `span`.
    /// Used for definitions that arrive as values (APIs, the conformance corpus).
    pub fn from_value(value: &serde_json::Value, span: Span) -> Node {
        use serde_json::Value;
        let kind = match value {
            Value::Null => NodeKind::Null,
            Value::Bool(b) => NodeKind::Bool(*b),
            Value::Number(n) => NodeKind::Number(n.clone()),
            Value::String(s) => NodeKind::String(s.clone()),
            Value::Array(a) => {
                NodeKind::Array(a.iter().map(|v| Node::from_value(v, span)).collect())
            }
            Value::Object(m) => NodeKind::Object(
                m.iter()
                    .map(|(k, v)| {
                        (
                            Key {
                                name: k.clone(),
                                span,
                            },
                            Node::from_value(v, span),
                        )
                    })
                    .collect(),
            ),
        };
        Node { kind, span }
    }
}

/// The source format of a definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

impl Format {
    /// Pick the format from a file name: `.yaml`/`.yml` are YAML, everything
    /// else is JSON.
    pub fn from_path(path: &str) -> Format {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".yaml") || lower.ends_with(".yml") {
            Format::Yaml
        } else {
            Format::Json
        }
    }
}

/// Source text with a line index, to turn byte offsets into line/column.
#[derive(Debug, Clone)]
pub struct SourceText {
    pub name: String,
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceText {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        let text = text.into();
        let mut line_starts = vec![0];
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' {
                line_starts.push(i + 1);
            }
        }
        SourceText {
            name: name.into(),
            text,
            line_starts,
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.line_starts[line];
        let mut col_end = offset;
        while col_end > start && !self.text.is_char_boundary(col_end) {
            col_end -= 1;
        }
        let col = self.text[start..col_end].chars().count() + 1;
        (line + 1, col)
    }

    /// The text of a 1-based line, without its line break.
    pub fn line_text(&self, line: usize) -> &str {
        if line == 0 || line > self.line_starts.len() {
            return "";
        }
        let start = self.line_starts[line - 1];
        let end = self
            .line_starts
            .get(line)
            .copied()
            .unwrap_or(self.text.len());
        self.text[start..end].trim_end_matches(['\n', '\r'])
    }
}

/// A syntax error in the source text.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub message: String,
    pub offset: usize,
    /// [`Code::Syntax`], [`Code::DuplicateKey`], [`Code::TooDeep`] or
    /// [`Code::TooLarge`].
    pub code: Code,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)
    }
}

impl SyntaxError {
    fn new(code: Code, message: impl Into<String>, offset: usize) -> Self {
        SyntaxError {
            code,
            message: message.into(),
            offset,
        }
    }
}

/// Read source text in the given format.
pub fn parse(text: &str, format: Format) -> Result<Node, SyntaxError> {
    if text.len() > MAX_SOURCE_BYTES {
        return Err(SyntaxError::new(
            Code::TooLarge,
            format!(
                "definition is {} bytes; the limit is {} bytes",
                text.len(),
                MAX_SOURCE_BYTES
            ),
            0,
        ));
    }
    match format {
        Format::Json => parse_json(text),
        Format::Yaml => super::yaml::parse_yaml(text),
    }
}

/// Read JSON text, rejecting duplicate keys and nesting deeper than [`MAX_DEPTH`].
pub fn parse_json(text: &str) -> Result<Node, SyntaxError> {
    let mut p = JsonParser {
        s: text.as_bytes(),
        text,
        pos: 0,
        depth: 0,
        members: Vec::new(),
        items: Vec::new(),
    };
    p.skip_ws();
    if p.pos >= p.s.len() {
        return Err(SyntaxError::new(
            Code::Syntax,
            "the definition is empty: expected a JSON object",
            p.pos,
        ));
    }
    let node = p.value()?;
    p.skip_ws();
    if p.pos < p.s.len() {
        return Err(SyntaxError::new(
            Code::Syntax,
            "unexpected text after the end of the JSON value",
            p.pos,
        ));
    }
    Ok(node)
}

struct JsonParser<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
    depth: usize,
    /// Scratch stacks: members and items of the open objects and arrays
    /// collect here and move into an exactly-sized Vec when they close, so
    /// no Vec grows by doubling.
    members: Vec<(Key, Node)>,
    items: Vec<Node>,
}

impl JsonParser<'_> {
    fn skip_ws(&mut self) {
        while let Some(&b) = self.s.get(self.pos) {
            if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    fn err(&self, msg: impl Into<String>) -> SyntaxError {
        SyntaxError::new(Code::Syntax, msg, self.pos)
    }

    fn unexpected(&self, expected: &str) -> SyntaxError {
        match self.text[self.pos.min(self.text.len())..].chars().next() {
            None => self.err(format!("unexpected end of input: expected {expected}")),
            Some(c) => self.err(format!("unexpected character {c:?}: expected {expected}")),
        }
    }

    fn value(&mut self) -> Result<Node, SyntaxError> {
        let start = self.pos;
        match self.s.get(self.pos) {
            None => Err(self.unexpected("a JSON value")),
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => {
                let s = self.string()?;
                Ok(Node::new(NodeKind::String(s), Span::new(start, self.pos)))
            }
            Some(b't') => self.literal("true", NodeKind::Bool(true)),
            Some(b'f') => self.literal("false", NodeKind::Bool(false)),
            Some(b'n') => self.literal("null", NodeKind::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.unexpected("a JSON value")),
        }
    }

    fn literal(&mut self, word: &str, kind: NodeKind) -> Result<Node, SyntaxError> {
        let start = self.pos;
        if self.s[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(Node::new(kind, Span::new(start, self.pos)))
        } else {
            Err(self.unexpected("a JSON value"))
        }
    }

    fn number(&mut self) -> Result<Node, SyntaxError> {
        let start = self.pos;
        if self.s.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        match self.s.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                while matches!(self.s.get(self.pos), Some(b'0'..=b'9')) {
                    self.pos += 1;
                }
            }
            _ => return Err(self.unexpected("a digit")),
        }
        if self.s.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if !matches!(self.s.get(self.pos), Some(b'0'..=b'9')) {
                return Err(self.unexpected("a digit after the decimal point"));
            }
            while matches!(self.s.get(self.pos), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
        }
        if matches!(self.s.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.s.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !matches!(self.s.get(self.pos), Some(b'0'..=b'9')) {
                return Err(self.unexpected("a digit in the exponent"));
            }
            while matches!(self.s.get(self.pos), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
        }
        let lexeme = &self.text[start..self.pos];
        let number = parse_number(lexeme).ok_or_else(|| {
            SyntaxError::new(
                Code::Syntax,
                format!("number {lexeme} is out of range"),
                start,
            )
        })?;
        Ok(Node::new(
            NodeKind::Number(number),
            Span::new(start, self.pos),
        ))
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        // self.s[self.pos] == b'"'
        self.pos += 1;
        let mut out = String::new();
        loop {
            let run_start = self.pos;
            while let Some(&b) = self.s.get(self.pos) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            out.push_str(&self.text[run_start..self.pos]);
            match self.s.get(self.pos) {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let esc = self
                        .s
                        .get(self.pos)
                        .copied()
                        .ok_or_else(|| self.err("unterminated string"))?;
                    self.pos += 1;
                    match esc {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let c = self.unicode_escape()?;
                            out.push(c);
                        }
                        _ => {
                            self.pos -= 1;
                            return Err(self.err("invalid escape sequence in string"));
                        }
                    }
                }
                Some(_) => {
                    return Err(
                        self.err("control character in string: escape it (\\n, \\t, \\u00XX)")
                    );
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.err("truncated \\u escape"))?;
        let v = u32::from_str_radix(digits, 16).map_err(|_| self.err("invalid \\u escape"))?;
        self.pos += 4;
        Ok(v)
    }

    fn unicode_escape(&mut self) -> Result<char, SyntaxError> {
        let hi = self.hex4()?;
        if (0xD800..0xDC00).contains(&hi) {
            if self.s.get(self.pos) == Some(&b'\\') && self.s.get(self.pos + 1) == Some(&b'u') {
                self.pos += 2;
                let lo = self.hex4()?;
                if (0xDC00..0xE000).contains(&lo) {
                    let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                    return char::from_u32(c).ok_or_else(|| self.err("invalid surrogate pair"));
                }
            }
            return Err(self.err("unpaired surrogate in \\u escape"));
        }
        char::from_u32(hi).ok_or_else(|| self.err("invalid \\u escape"))
    }

    fn enter(&mut self) -> Result<(), SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(SyntaxError::new(
                Code::TooDeep,
                format!("nesting deeper than {MAX_DEPTH} levels"),
                self.pos,
            ));
        }
        Ok(())
    }

    fn array(&mut self) -> Result<Node, SyntaxError> {
        let start = self.pos;
        self.enter()?;
        self.pos += 1;
        let base = self.items.len();
        self.skip_ws();
        if self.s.get(self.pos) == Some(&b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Node::new(
                NodeKind::Array(Vec::new()),
                Span::new(start, self.pos),
            ));
        }
        loop {
            self.skip_ws();
            let item = self.value()?;
            self.items.push(item);
            self.skip_ws();
            match self.s.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(self.unexpected("',' or ']'")),
            }
        }
        self.depth -= 1;
        let items = self.items.split_off(base);
        Ok(Node::new(
            NodeKind::Array(items),
            Span::new(start, self.pos),
        ))
    }

    fn object(&mut self) -> Result<Node, SyntaxError> {
        let start = self.pos;
        self.enter()?;
        self.pos += 1;
        let base = self.members.len();
        let mut seen: Option<std::collections::HashSet<String>> = None;
        self.skip_ws();
        if self.s.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Node::new(
                NodeKind::Object(Vec::new()),
                Span::new(start, self.pos),
            ));
        }
        loop {
            self.skip_ws();
            if self.s.get(self.pos) != Some(&b'"') {
                return Err(self.unexpected("a quoted object key"));
            }
            let key_start = self.pos;
            let name = self.string()?;
            let key = Key {
                name,
                span: Span::new(key_start, self.pos),
            };
            // Small objects: a scan; large ones (a machine's States): a set,
            // so that the check stays linear.
            let duplicate = match seen.as_mut() {
                Some(set) => !set.insert(key.name.clone()),
                None => {
                    let open = &self.members[base..];
                    let dup = open.iter().any(|(k, _)| k.name == key.name);
                    if !dup && open.len() >= 16 {
                        let mut set: std::collections::HashSet<String> =
                            open.iter().map(|(k, _)| k.name.clone()).collect();
                        set.insert(key.name.clone());
                        seen = Some(set);
                    }
                    dup
                }
            };
            if duplicate {
                return Err(SyntaxError::new(
                    Code::DuplicateKey,
                    format!("duplicate key {:?} in object", key.name),
                    key_start,
                ));
            }
            self.skip_ws();
            if self.s.get(self.pos) != Some(&b':') {
                return Err(self.unexpected("':'"));
            }
            self.pos += 1;
            self.skip_ws();
            let value = self.value()?;
            self.members.push((key, value));
            self.skip_ws();
            match self.s.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(self.unexpected("',' or '}'")),
            }
        }
        self.depth -= 1;
        let members = self.members.split_off(base);
        Ok(Node::new(
            NodeKind::Object(members),
            Span::new(start, self.pos),
        ))
    }
}

/// Parse a JSON number lexeme into a `serde_json::Number`, keeping integers
/// exact where they fit in 64 bits.
pub fn parse_number(lexeme: &str) -> Option<serde_json::Number> {
    if !lexeme.contains(['.', 'e', 'E']) {
        if let Ok(i) = lexeme.parse::<i64>() {
            return Some(i.into());
        }
        if let Ok(u) = lexeme.parse::<u64>() {
            return Some(u.into());
        }
    }
    let f: f64 = lexeme.parse().ok()?;
    serde_json::Number::from_f64(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_values() {
        let text = "{\n  \"a\": [1, 2.5, \"x\"],\n  \"b\": {\"c\": null}\n}";
        let node = parse_json(text).unwrap();
        let a = node.get("a").unwrap();
        let src = SourceText::new("t", text);
        assert_eq!(src.line_col(a.span.start), (2, 8));
        assert_eq!(
            node.to_value(),
            serde_json::json!({"a": [1, 2.5, "x"], "b": {"c": null}})
        );
    }

    #[test]
    fn duplicate_keys_are_rejected_with_position() {
        let text = r#"{"a": 1, "b": {"x": 1, "x": 2}}"#;
        let err = parse_json(text).unwrap_err();
        assert_eq!(err.code, Code::DuplicateKey);
        assert_eq!(err.offset, text.rfind("\"x\"").unwrap());
    }

    #[test]
    fn syntax_errors_are_positioned() {
        for (text, at) in [
            ("{\"a\": }", 6),
            ("{\"a\": 1,}", 8),
            ("[1 2]", 3),
            ("not", 0),
            ("{\"a\": 01}", 7),
        ] {
            let err = parse_json(text).unwrap_err();
            assert_eq!(err.offset, at, "{text}: {err}");
        }
        assert!(parse_json("").is_err());
        assert!(parse_json("   ").is_err());
        assert!(parse_json("\"abc").is_err());
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(parse_json(&deep).unwrap_err().code, Code::TooDeep);
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse_json(&ok).is_ok());
    }

    #[test]
    fn escapes_and_unicode() {
        let node = parse_json(r#""a\u00e9\ud83d\ude00\n""#).unwrap();
        assert_eq!(node.as_str(), Some("aé😀\n"));
        assert!(parse_json(r#""\ud83d""#).is_err());
        let src = SourceText::new("t", "é\"x");
        assert_eq!(src.line_col(2), (1, 2));
    }
}
