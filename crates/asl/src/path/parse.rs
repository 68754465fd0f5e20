//! The path parser: text → the parsed form (`Query`), with the
//! character offset of every syntax error.

use serde_json::{Map, Number, Value};

use super::*;

/// How deeply filters, parentheses and filter literals may nest.
const MAX_DEPTH: usize = 32;

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
