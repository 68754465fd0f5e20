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
    /// `char_marks[k]`: the characters before byte `k * CHAR_BLOCK`, so that
    /// a column on a long line (a minified file) costs at most one block,
    /// not the line. Empty when the text is ASCII (a column is then a byte
    /// difference).
    char_marks: Vec<usize>,
}

/// Bytes per entry of [`SourceText`]'s character index.
const CHAR_BLOCK: usize = 4096;

/// Does the byte `b` begin a UTF-8 character (is it not a continuation)?
fn is_char_start(b: u8) -> bool {
    (b & 0xC0) != 0x80
}

/// The characters in `bytes`, which may start or end inside one: the bytes
/// that begin a UTF-8 character.
fn chars_in(bytes: &[u8]) -> usize {
    bytes.iter().filter(|b| is_char_start(**b)).count()
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
        let mut char_marks = Vec::new();
        if !text.is_ascii() {
            let mut before = 0;
            for block in text.as_bytes().chunks(CHAR_BLOCK) {
                char_marks.push(before);
                before += chars_in(block);
            }
        }
        SourceText {
            name: name.into(),
            text,
            line_starts,
            char_marks,
        }
    }

    /// The characters of the text before byte `offset` (a char boundary).
    fn chars_before(&self, offset: usize) -> usize {
        if self.char_marks.is_empty() {
            return offset;
        }
        let block = offset / CHAR_BLOCK;
        let mark = self.char_marks.get(block).copied().unwrap_or(0);
        let from = block * CHAR_BLOCK;
        mark + chars_in(self.text.as_bytes().get(from..offset).unwrap_or_default())
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
        let col = self.chars_before(col_end) - self.chars_before(start) + 1;
        (line + 1, col)
    }

    /// The byte offset of the character with index `c` (counted from the
    /// start of the text), or the text's length past its end. Costs at
    /// most one block of [`CHAR_BLOCK`] bytes.
    fn byte_of_char(&self, c: usize) -> usize {
        if self.char_marks.is_empty() {
            return c.min(self.text.len());
        }
        let block = self
            .char_marks
            .partition_point(|m| *m <= c)
            .saturating_sub(1);
        let seen = self.char_marks.get(block).copied().unwrap_or(0);
        let bytes = self.text.as_bytes();
        let from = (block * CHAR_BLOCK).min(bytes.len());
        bytes[from..]
            .iter()
            .enumerate()
            .filter(|(_, b)| is_char_start(**b))
            .nth(c.saturating_sub(seen))
            .map_or(bytes.len(), |(i, _)| from + i)
    }

    /// The part of 1-based line `line` to show for a diagnostic at 1-based
    /// character column `col`: the whole line when it has at most `width`
    /// characters, else `width` characters around the column with `…`
    /// where it was clipped. Returns the text and the caret's position in
    /// it (in characters). Costs the window, not the line, so diagnostics on
    /// a minified one-line file stay cheap.
    pub fn excerpt(&self, line: usize, col: usize, width: usize) -> (String, usize) {
        let text = self.line_text(line);
        let Some(&start) = line.checked_sub(1).and_then(|i| self.line_starts.get(i)) else {
            return (String::new(), 0);
        };
        let first = self.chars_before(start);
        let len = self.chars_before(start + text.len()) - first;
        let at = col.saturating_sub(1).min(len);
        if len <= width {
            return (text.to_string(), at);
        }
        let from = at.saturating_sub(width / 2).min(len - width);
        let to = from + width;
        let (b0, b1) = (
            self.byte_of_char(first + from),
            self.byte_of_char(first + to),
        );
        let mut shown = String::with_capacity(b1 - b0 + 6);
        if from > 0 {
            shown.push('…');
        }
        shown.push_str(self.text.get(b0..b1).unwrap_or_default());
        if to < len {
            shown.push('…');
        }
        (shown, at - from + usize::from(from > 0))
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

    /// Columns from the character index equal columns counted from the
    /// line's start, on ASCII and multi-byte text, on short and very long
    /// lines, at every offset (also inside a character).
    #[test]
    fn short_lines_are_shown_whole() {
        let src = SourceText::new("t", "StartAt: A\n  Type: Pass\n");
        assert_eq!(src.excerpt(2, 3, 120), ("  Type: Pass".into(), 2));
    }

    #[test]
    fn long_lines_are_clipped_around_the_column() {
        let line: String = (0..200_000u32)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let src = SourceText::new("t", format!("first\n{line}\nlast"));
        for col in [1, 50, 61, 100_000, 199_940, 199_990, 200_000] {
            let (shown, caret) = src.excerpt(2, col, 120);
            let chars: Vec<char> = shown.chars().collect();
            assert!(chars.len() <= 122, "col {col}: {} chars", chars.len());
            let want = line.chars().nth(col - 1).unwrap();
            assert_eq!(
                chars[caret], want,
                "col {col}: the caret is under the column"
            );
            assert_eq!(shown.starts_with('…'), col > 61, "col {col}");
            assert_eq!(shown.ends_with('…'), col <= 199_940, "col {col}");
        }
    }

    #[test]
    fn multibyte_lines_are_clipped_on_characters() {
        let line = "aé€😀".repeat(2_000);
        let src = SourceText::new("t", format!("x\n{line}"));
        for col in [1, 3_000, 7_999, 8_000] {
            let (shown, caret) = src.excerpt(2, col, 40);
            let chars: Vec<char> = shown.chars().collect();
            assert_eq!(
                chars[caret],
                line.chars().nth(col - 1).unwrap(),
                "col {col}"
            );
            assert!(chars.len() <= 42);
        }
    }

    #[test]
    fn columns_match_counting_from_the_line_start() {
        let naive = |text: &str, offset: usize| -> (usize, usize) {
            let mut o = offset.min(text.len());
            while !text.is_char_boundary(o) {
                o -= 1;
            }
            let before = &text[..o];
            let line = before.matches('\n').count() + 1;
            let start = before.rfind('\n').map_or(0, |i| i + 1);
            (line, text[start..o].chars().count() + 1)
        };
        let long: String = "aé€😀b".repeat(3000);
        for text in [
            "short\nlines\n".to_string(),
            "x".repeat(10_000),
            long.clone(),
            format!("{long}\n{long}\nend"),
        ] {
            let src = SourceText::new("t", text.clone());
            for offset in (0..=text.len()).step_by(7).chain([text.len()]) {
                assert_eq!(
                    src.line_col(offset),
                    naive(&text, offset),
                    "offset {offset}"
                );
            }
        }
    }
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
