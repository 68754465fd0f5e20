//! YAML reader: YAML text → a positioned value tree ([`Node`]).
//!
//! Built on `saphyr-parser`'s event stream. The tree is the same one the JSON
//! reader produces, so everything after reading is format-agnostic.
//!
//! Decisions, all in favour of predictability over YAML's more surprising
//! features:
//!
//! - **One document.** An empty stream, or a stream with a second document,
//!   is an error.
//! - **Strict YAML 1.2 core schema.** Plain (unquoted) scalars resolve to
//!   null (`null`, `Null`, `NULL`, `~`, empty), booleans (`true`/`True`/`TRUE`,
//!   `false`/`False`/`FALSE`: *not* YAML 1.1's `yes`/`no`/`on`/`off`, which stay
//!   strings), integers (decimal, `0x` hex, `0o` octal) and floats. `.inf` and
//!   `.nan` are errors: JSON cannot represent them. Anything else is a string,
//!   and quoted and block (`|`, `>`) scalars are always strings.
//! - **Tags.** `!!str`, `!!int`, `!!float`, `!!bool`, `!!null` (on scalars),
//!   `!!map`, `!!seq` (on collections) and the non-specific `!` are honoured.
//!   Every other tag, notably CloudFormation's `!Ref`, `!Sub`, `!GetAtt`, is an
//!   error naming the tag: silently dropping it would change the meaning.
//! - **Keys** must be scalars; a key's name is its scalar text (`1: x` has the
//!   key `"1"`). Duplicate keys are an error, as in the JSON reader.
//! - **Anchors and aliases.** An alias is expanded by cloning the anchored
//!   node; the clone's outermost span is the alias's, its inner spans are
//!   those of the anchored original. Alias expansion may create at most
//!   [`MAX_ALIAS_NODES`] nodes in all, and the anchors actually referred to may
//!   cover at most as many (billion-laughs defence).
//! - **Merge keys.** A plain, untagged `<<` key whose value is a mapping, or a
//!   sequence of mappings, merges their entries into the enclosing mapping
//!   (the YAML 1.1 merge-key convention, widely used to share `Retry` or
//!   `Catch` blocks): keys written in the mapping itself win, and among merged
//!   mappings the earlier wins. The merged entries take the place of the `<<`
//!   entry. A quoted `"<<"` is an ordinary key.
//! - **Limits.** Nesting deeper than [`MAX_DEPTH`] is refused, counting the
//!   nesting inside expanded aliases.
//!
//! Spans are byte offsets, like the JSON reader's. `saphyr-parser` counts
//! positions in characters, so they are converted (see `Offsets`).

use std::collections::{HashMap, HashSet};

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, StrInput, Tag};

use super::diagnostics::Code;
use super::source::{Key, MAX_DEPTH, Node, NodeKind, Span, SyntaxError, parse_number};

/// Most nodes alias expansion may create in one document (and most nodes the
/// anchors referred to by aliases may cover).
pub const MAX_ALIAS_NODES: usize = 100_000;

/// The URI prefix of the YAML core schema tags (`!!str` is `tag:yaml.org,2002:str`).
const CORE_TAG_PREFIX: &str = "tag:yaml.org,2002:";

/// Read YAML text holding exactly one document.
///
/// Errors carry a byte offset into `text` and one of the codes
/// [`Code::Syntax`], [`Code::DuplicateKey`], [`Code::TooDeep`] or
/// [`Code::TooLarge`].
pub fn parse_yaml(text: &str) -> Result<Node, SyntaxError> {
    let offsets = Offsets::new(text);
    let referenced = referenced_anchors(text);
    let mut builder = Builder {
        text,
        offsets: &offsets,
        referenced,
        anchors: HashMap::new(),
        stack: Vec::new(),
        expanded: 0,
        anchored: 0,
    };
    builder.run()
}

fn err(code: Code, message: impl Into<String>, offset: usize) -> SyntaxError {
    SyntaxError {
        message: message.into(),
        offset,
        code,
    }
}

// ---------------------------------------------------------------------------
// Character index → byte offset

/// Converts `saphyr-parser`'s character indices into byte offsets.
///
/// For ASCII text the two are equal. Otherwise the byte offset of every
/// [`Offsets::STRIDE`]-th character is kept, and a lookup walks at most
/// `STRIDE - 1` characters from the nearest checkpoint: memory stays small
/// (an eighth of the text size at most) and lookups O(1).
struct Offsets<'a> {
    text: &'a str,
    /// Byte offset of character `k * STRIDE`; empty for ASCII text.
    checkpoints: Vec<usize>,
    ascii: bool,
}

impl<'a> Offsets<'a> {
    const STRIDE: usize = 64;

    fn new(text: &'a str) -> Self {
        let ascii = text.is_ascii();
        let checkpoints = if ascii {
            Vec::new()
        } else {
            text.char_indices()
                .step_by(Self::STRIDE)
                .map(|(byte, _)| byte)
                .collect()
        };
        Offsets {
            text,
            checkpoints,
            ascii,
        }
    }

    /// The byte offset of the character with index `index`; indices past the
    /// end map to the end of the text. Always a char boundary.
    fn byte(&self, index: usize) -> usize {
        if self.ascii {
            return index.min(self.text.len());
        }
        let Some(&base) = self.checkpoints.get(index / Self::STRIDE) else {
            return self.text.len();
        };
        self.text
            .get(base..)
            .and_then(|rest| rest.char_indices().nth(index % Self::STRIDE))
            .map_or(self.text.len(), |(byte, _)| base + byte)
    }

    fn span(&self, span: saphyr_parser::Span) -> Span {
        let start = self.byte(span.start.index());
        let end = self.byte(span.end.index()).max(start);
        Span::new(start, end)
    }
}

// ---------------------------------------------------------------------------
// Anchors

/// Anchor ids that some alias refers to.
///
/// Only those anchors need a stored copy of their node. Finding them costs a
/// second pass over the events, which is skipped when the text cannot hold an
/// alias at all (no `*`). On a syntax error the pass simply stops: the main
/// pass reports the error.
fn referenced_anchors(text: &str) -> HashSet<usize> {
    let mut ids = HashSet::new();
    if !text.contains('*') {
        return ids;
    }
    for event in Parser::new_from_str(text) {
        match event {
            Ok((Event::Alias(id), _)) => {
                ids.insert(id);
            }
            Ok((Event::StreamEnd, _)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    ids
}

/// A stored copy of an anchored node.
struct Anchored {
    node: Node,
    /// Number of nodes in `node`.
    size: usize,
    /// Collection nesting inside `node` (0 for a scalar).
    height: usize,
    /// The scalar text, if the node is a scalar (for use as a mapping key).
    key_text: Option<String>,
}

fn count_nodes(node: &Node) -> usize {
    1 + match &node.kind {
        NodeKind::Array(items) => items.iter().map(count_nodes).sum(),
        NodeKind::Object(entries) => entries.iter().map(|(_, v)| count_nodes(v)).sum(),
        _ => 0,
    }
}

fn height(node: &Node) -> usize {
    match &node.kind {
        NodeKind::Array(items) => 1 + items.iter().map(height).max().unwrap_or(0),
        NodeKind::Object(entries) => 1 + entries.iter().map(|(_, v)| height(v)).max().unwrap_or(0),
        _ => 0,
    }
}

// ---------------------------------------------------------------------------
// Tags and scalars

/// What a node's tag asks for.
enum TagKind {
    /// No tag.
    None,
    /// The non-specific tag `!`: a scalar is a string.
    NonSpecific,
    /// A core schema tag such as `!!str`, by its short name (`str`).
    Core(String),
    /// Any other tag, as written for messages (`!Ref`).
    Other(String),
}

fn classify_tag(tag: Option<&Tag>) -> TagKind {
    let Some(tag) = tag else {
        return TagKind::None;
    };
    if tag.handle.is_empty() && tag.suffix == "!" {
        return TagKind::NonSpecific;
    }
    if tag.handle == "!" {
        return TagKind::Other(format!("!{}", tag.suffix));
    }
    let full = format!("{}{}", tag.handle, tag.suffix);
    match full.strip_prefix(CORE_TAG_PREFIX) {
        Some(name) => TagKind::Core(name.to_string()),
        None => TagKind::Other(format!("!<{full}>")),
    }
}

fn unsupported_tag(name: &str, offset: usize) -> SyntaxError {
    err(
        Code::Syntax,
        format!("YAML tag {name} is not supported in a state machine definition"),
        offset,
    )
}

/// Check a collection's tag: only `!`, `!!map` (mappings) and `!!seq`
/// (sequences) are allowed.
fn check_collection_tag(
    tag: Option<&Tag>,
    mapping: bool,
    offset: usize,
) -> Result<(), SyntaxError> {
    let what = if mapping { "mapping" } else { "sequence" };
    match classify_tag(tag) {
        TagKind::None | TagKind::NonSpecific => Ok(()),
        TagKind::Core(name) if name == if mapping { "map" } else { "seq" } => Ok(()),
        TagKind::Core(name)
            if matches!(
                name.as_str(),
                "str" | "int" | "float" | "bool" | "null" | "map" | "seq"
            ) =>
        {
            Err(err(
                Code::Syntax,
                format!("YAML tag !!{name} cannot be applied to a {what}"),
                offset,
            ))
        }
        TagKind::Core(name) => Err(unsupported_tag(&format!("!!{name}"), offset)),
        TagKind::Other(name) => Err(unsupported_tag(&name, offset)),
    }
}

fn is_null(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

fn as_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn all_digits(s: &str, radix: u32) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_digit(radix))
}

/// Core schema integer: `[-+]?[0-9]+`, `0o[0-7]+`, `0x[0-9a-fA-F]+`.
fn is_int(s: &str) -> bool {
    if let Some(hex) = s.strip_prefix("0x") {
        return all_digits(hex, 16);
    }
    if let Some(oct) = s.strip_prefix("0o") {
        return all_digits(oct, 8);
    }
    all_digits(s.strip_prefix(['-', '+']).unwrap_or(s), 10)
}

/// Core schema float, finite forms:
/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`.
fn is_finite_float(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match s.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, Some(exponent)),
        None => (s, None),
    };
    if exponent.is_some_and(|exp| !all_digits(exp.strip_prefix(['-', '+']).unwrap_or(exp), 10)) {
        return false;
    }
    match mantissa.split_once('.') {
        None => all_digits(mantissa, 10),
        Some(("", frac)) => all_digits(frac, 10),
        Some((int, frac)) => all_digits(int, 10) && (frac.is_empty() || all_digits(frac, 10)),
    }
}

/// Core schema infinity and not-a-number.
fn is_special_float(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    // (A sign before `.nan` is not core schema, but is refused all the same.)
    matches!(s, ".inf" | ".Inf" | ".INF" | ".nan" | ".NaN" | ".NAN")
}

fn not_representable(s: &str, offset: usize) -> SyntaxError {
    err(
        Code::Syntax,
        format!("the number {s} is not representable in JSON (JSON has no infinity or NaN)"),
        offset,
    )
}

/// Convert a core schema integer (already checked with [`is_int`]).
fn int_number(s: &str, offset: usize) -> Result<serde_json::Number, SyntaxError> {
    let radix = if s.starts_with("0x") {
        Some((16, s.get(2..).unwrap_or("")))
    } else if s.starts_with("0o") {
        Some((8, s.get(2..).unwrap_or("")))
    } else {
        None
    };
    let number = match radix {
        Some((radix, digits)) => u64::from_str_radix(digits, radix).ok().map(Into::into),
        None => parse_number(s),
    };
    number.ok_or_else(|| {
        err(
            Code::Syntax,
            format!("the integer {s} is out of range"),
            offset,
        )
    })
}

/// Convert a core schema float (finite form, already checked).
fn float_number(s: &str, offset: usize) -> Result<serde_json::Number, SyntaxError> {
    s.parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .ok_or_else(|| not_representable(s, offset))
}

/// Resolve a plain, untagged scalar with the core schema.
fn resolve_plain(s: &str, offset: usize) -> Result<NodeKind, SyntaxError> {
    if is_null(s) {
        return Ok(NodeKind::Null);
    }
    if let Some(b) = as_bool(s) {
        return Ok(NodeKind::Bool(b));
    }
    if is_int(s) {
        return int_number(s, offset).map(NodeKind::Number);
    }
    if is_finite_float(s) {
        // Keep JSON's reading of the lexeme (e.g. `1e3` is a float).
        return parse_number(s)
            .map(NodeKind::Number)
            .ok_or_else(|| not_representable(s, offset));
    }
    if is_special_float(s) {
        return Err(not_representable(s, offset));
    }
    Ok(NodeKind::String(s.to_string()))
}

/// Resolve a scalar from its text, style and tag.
fn resolve_scalar(
    s: &str,
    style: ScalarStyle,
    tag: Option<&Tag>,
    offset: usize,
) -> Result<NodeKind, SyntaxError> {
    let invalid = |tag: &str| {
        err(
            Code::Syntax,
            format!("{s:?} is not a valid value for the YAML tag !!{tag}"),
            offset,
        )
    };
    match classify_tag(tag) {
        TagKind::None if style == ScalarStyle::Plain => resolve_plain(s, offset),
        TagKind::None | TagKind::NonSpecific => Ok(NodeKind::String(s.to_string())),
        TagKind::Core(name) => match name.as_str() {
            "str" => Ok(NodeKind::String(s.to_string())),
            "null" if is_null(s) => Ok(NodeKind::Null),
            "bool" => as_bool(s)
                .map(NodeKind::Bool)
                .ok_or_else(|| invalid("bool")),
            "int" if is_int(s) => int_number(s, offset).map(NodeKind::Number),
            "float" if is_finite_float(s) => float_number(s, offset).map(NodeKind::Number),
            "float" if is_special_float(s) => Err(not_representable(s, offset)),
            "null" | "int" | "float" => Err(invalid(&name)),
            "map" | "seq" => Err(err(
                Code::Syntax,
                format!("YAML tag !!{name} cannot be applied to a scalar"),
                offset,
            )),
            _ => Err(unsupported_tag(&format!("!!{name}"), offset)),
        },
        TagKind::Other(name) => Err(unsupported_tag(&name, offset)),
    }
}

// ---------------------------------------------------------------------------
// The tree builder

/// A collection being built.
enum Frame {
    Seq {
        start: usize,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        start: usize,
        anchor: usize,
        entries: Vec<(Key, Node)>,
        /// Names of the keys seen, for the duplicate check.
        names: HashSet<String>,
        /// The key whose value comes next.
        pending: Option<Pending>,
        /// Entries to merge (from a `<<` key) and the index they go at.
        merge: Option<(usize, Vec<(Key, Node)>)>,
    },
}

/// A mapping key waiting for its value.
enum Pending {
    Key(Key),
    /// A `<<` merge key.
    Merge,
}

struct Builder<'a> {
    text: &'a str,
    offsets: &'a Offsets<'a>,
    /// Anchor ids some alias refers to: only those are stored.
    referenced: HashSet<usize>,
    anchors: HashMap<usize, Anchored>,
    stack: Vec<Frame>,
    /// Nodes created by alias expansion so far.
    expanded: usize,
    /// Nodes covered by stored anchors so far.
    anchored: usize,
}

fn too_deep(offset: usize) -> SyntaxError {
    err(
        Code::TooDeep,
        format!("nesting deeper than {MAX_DEPTH} levels"),
        offset,
    )
}

fn non_scalar_key(offset: usize) -> SyntaxError {
    err(
        Code::Syntax,
        "a mapping key must be a scalar (a string), not a mapping or a sequence",
        offset,
    )
}

fn internal(offset: usize) -> SyntaxError {
    err(Code::Syntax, "malformed YAML event stream", offset)
}

/// The entries a `<<` merge key brings: its value must be a mapping or a
/// sequence of mappings (earlier mappings first, so that they win).
fn merge_entries(node: Node) -> Result<Vec<(Key, Node)>, SyntaxError> {
    let bad = |offset| {
        err(
            Code::Syntax,
            "the value of a merge key (<<) must be a mapping or a sequence of mappings",
            offset,
        )
    };
    match node.kind {
        NodeKind::Object(entries) => Ok(entries),
        NodeKind::Array(items) => {
            let mut out = Vec::new();
            for item in items {
                match item.kind {
                    NodeKind::Object(entries) => out.extend(entries),
                    _ => return Err(bad(item.span.start)),
                }
            }
            Ok(out)
        }
        _ => Err(bad(node.span.start)),
    }
}

impl<'a> Builder<'a> {
    fn next(
        &self,
        parser: &mut Parser<'a, StrInput<'a>>,
    ) -> Result<(Event<'a>, Span), SyntaxError> {
        match parser.next_event() {
            Some(Ok((event, span))) => Ok((event, self.offsets.span(span))),
            Some(Err(e)) => Err(self.scan_error(&e)),
            None => Err(err(
                Code::Syntax,
                "unexpected end of the YAML stream",
                self.text.len(),
            )),
        }
    }

    fn scan_error(&self, e: &ScanError) -> SyntaxError {
        let offset = self.offsets.byte(e.marker().index());
        if e.info() == "recursion limit exceeded" {
            // The scanner reads ahead, so very deep flow nesting (over 255
            // levels) can hit its own limit before the parser reports ours.
            return too_deep(offset);
        }
        err(Code::Syntax, e.info().to_string(), offset)
    }

    fn run(&mut self) -> Result<Node, SyntaxError> {
        let mut parser = Parser::new_from_str(self.text);
        let (event, span) = self.next(&mut parser)?;
        if event != Event::StreamStart {
            return Err(internal(span.start));
        }
        let (event, span) = self.next(&mut parser)?;
        match event {
            Event::DocumentStart(_) => {}
            Event::StreamEnd => {
                return Err(err(
                    Code::Syntax,
                    "the definition is empty: expected a YAML mapping",
                    span.start,
                ));
            }
            _ => return Err(internal(span.start)),
        }
        let root = loop {
            let (event, span) = self.next(&mut parser)?;
            if let Some(node) = self.event(event, span)? {
                break node;
            }
        };
        let (event, span) = self.next(&mut parser)?;
        if event != Event::DocumentEnd {
            return Err(internal(span.start));
        }
        let (event, span) = self.next(&mut parser)?;
        match event {
            Event::StreamEnd => Ok(root),
            Event::DocumentStart(_) => Err(err(
                Code::Syntax,
                "the YAML text holds more than one document; a definition must be a single document",
                span.start,
            )),
            _ => Err(internal(span.start)),
        }
    }

    /// True when the next node is a mapping key.
    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { pending: None, .. }))
    }

    /// Handle one event inside the document; returns the root once complete.
    fn event(&mut self, event: Event<'a>, span: Span) -> Result<Option<Node>, SyntaxError> {
        match event {
            Event::Scalar(value, style, anchor, tag) => {
                if self.expecting_key() {
                    self.scalar_key(&value, style, anchor, tag.as_deref(), span)?;
                    return Ok(None);
                }
                let kind = resolve_scalar(&value, style, tag.as_deref(), span.start)?;
                let node = Node::new(kind, span);
                self.store_anchor(anchor, &node, Some(&value))?;
                self.complete(node)
            }
            Event::Alias(id) => self.alias(id, span),
            Event::SequenceStart(anchor, tag) => self.start(false, anchor, tag.as_deref(), span),
            Event::MappingStart(anchor, tag) => self.start(true, anchor, tag.as_deref(), span),
            Event::SequenceEnd | Event::MappingEnd => self.end(span),
            _ => Err(internal(span.start)),
        }
    }

    fn scalar_key(
        &mut self,
        value: &str,
        style: ScalarStyle,
        anchor: usize,
        tag: Option<&Tag>,
        span: Span,
    ) -> Result<(), SyntaxError> {
        let merge = style == ScalarStyle::Plain && tag.is_none() && value == "<<";
        if tag.is_some() {
            // Validate the tag (`!Ref key:` is as wrong as `key: !Ref x`).
            resolve_scalar(value, style, tag, span.start)?;
        }
        if anchor != 0 && self.referenced.contains(&anchor) {
            // A key is a string whatever it looks like; an alias to it used
            // as a value reads it like any scalar, or as a string if it
            // is not a valid value (`&k .inf: 1`).
            let kind = resolve_scalar(value, style, tag, span.start)
                .unwrap_or_else(|_| NodeKind::String(value.to_string()));
            self.store_anchor(anchor, &Node::new(kind, span), Some(value))?;
        }
        let key = Key {
            name: value.to_string(),
            span,
        };
        self.add_key(key, merge)
    }

    fn add_key(&mut self, key: Key, merge: bool) -> Result<(), SyntaxError> {
        let Some(Frame::Map { names, pending, .. }) = self.stack.last_mut() else {
            return Err(internal(key.span.start));
        };
        if !names.insert(key.name.clone()) {
            return Err(err(
                Code::DuplicateKey,
                format!("duplicate key {:?} in mapping", key.name),
                key.span.start,
            ));
        }
        *pending = Some(if merge {
            Pending::Merge
        } else {
            Pending::Key(key)
        });
        Ok(())
    }

    fn alias(&mut self, id: usize, span: Span) -> Result<Option<Node>, SyntaxError> {
        let Some(anchored) = self.anchors.get(&id) else {
            let name = self
                .text
                .get(span.start..span.end)
                .unwrap_or("")
                .trim_start_matches('*');
            return Err(err(
                Code::Syntax,
                format!(
                    "alias *{name} refers to a node that contains it (a recursive alias) or is not defined"
                ),
                span.start,
            ));
        };
        if self.expecting_key() {
            let Some(name) = anchored.key_text.clone() else {
                return Err(non_scalar_key(span.start));
            };
            self.add_key(Key { name, span }, false)?;
            return Ok(None);
        }
        if self.stack.len() + anchored.height > MAX_DEPTH {
            return Err(too_deep(span.start));
        }
        self.expanded = self.expanded.saturating_add(anchored.size);
        if self.expanded > MAX_ALIAS_NODES {
            return Err(err(
                Code::TooLarge,
                format!(
                    "expanding the YAML aliases would create more than {MAX_ALIAS_NODES} nodes"
                ),
                span.start,
            ));
        }
        let mut node = anchored.node.clone();
        node.span = span;
        self.complete(node)
    }

    fn start(
        &mut self,
        mapping: bool,
        anchor: usize,
        tag: Option<&Tag>,
        span: Span,
    ) -> Result<Option<Node>, SyntaxError> {
        if self.expecting_key() {
            return Err(non_scalar_key(span.start));
        }
        check_collection_tag(tag, mapping, span.start)?;
        if self.stack.len() >= MAX_DEPTH {
            return Err(too_deep(span.start));
        }
        let start = span.start;
        self.stack.push(if mapping {
            Frame::Map {
                start,
                anchor,
                entries: Vec::new(),
                names: HashSet::new(),
                pending: None,
                merge: None,
            }
        } else {
            Frame::Seq {
                start,
                anchor,
                items: Vec::new(),
            }
        });
        Ok(None)
    }

    fn end(&mut self, span: Span) -> Result<Option<Node>, SyntaxError> {
        let (node, anchor) = match self.stack.pop() {
            Some(Frame::Seq {
                start,
                anchor,
                items,
            }) => (
                Node::new(
                    NodeKind::Array(items),
                    Span::new(start, span.end.max(start)),
                ),
                anchor,
            ),
            Some(Frame::Map {
                start,
                anchor,
                mut entries,
                mut names,
                pending,
                merge,
            }) => {
                if pending.is_some() {
                    return Err(internal(span.start));
                }
                if let Some((at, merged)) = merge {
                    let tail = entries.split_off(at.min(entries.len()));
                    for (key, value) in merged {
                        if names.insert(key.name.clone()) {
                            entries.push((key, value));
                        }
                    }
                    entries.extend(tail);
                }
                (
                    Node::new(
                        NodeKind::Object(entries),
                        Span::new(start, span.end.max(start)),
                    ),
                    anchor,
                )
            }
            None => return Err(internal(span.start)),
        };
        self.store_anchor(anchor, &node, None)?;
        self.complete(node)
    }

    /// A node is complete: put it in its parent, or return it if it is the root.
    fn complete(&mut self, node: Node) -> Result<Option<Node>, SyntaxError> {
        match self.stack.last_mut() {
            None => Ok(Some(node)),
            Some(Frame::Seq { items, .. }) => {
                items.push(node);
                Ok(None)
            }
            Some(Frame::Map {
                entries,
                pending,
                merge,
                ..
            }) => match pending.take() {
                Some(Pending::Key(key)) => {
                    entries.push((key, node));
                    Ok(None)
                }
                Some(Pending::Merge) => {
                    let at = entries.len();
                    *merge = Some((at, merge_entries(node)?));
                    Ok(None)
                }
                None => Err(internal(node.span.start)),
            },
        }
    }

    /// Keep a copy of an anchored node, if some alias refers to it.
    fn store_anchor(
        &mut self,
        anchor: usize,
        node: &Node,
        scalar_text: Option<&str>,
    ) -> Result<(), SyntaxError> {
        if anchor == 0 || !self.referenced.contains(&anchor) {
            return Ok(());
        }
        let size = count_nodes(node);
        self.anchored = self.anchored.saturating_add(size);
        if self.anchored > MAX_ALIAS_NODES {
            return Err(err(
                Code::TooLarge,
                format!("the YAML anchors used by aliases cover more than {MAX_ALIAS_NODES} nodes"),
                node.span.start,
            ));
        }
        self.anchors.insert(
            anchor,
            Anchored {
                node: node.clone(),
                size,
                height: height(node),
                key_text: scalar_text.map(str::to_string),
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{SourceText, parse_json};
    use serde_json::json;

    fn value(text: &str) -> serde_json::Value {
        match parse_yaml(text) {
            Ok(node) => node.to_value(),
            Err(e) => panic!("{text:?}: {e} ({}) at {}", e.code, e.offset),
        }
    }

    fn error(text: &str) -> SyntaxError {
        match parse_yaml(text) {
            Ok(node) => panic!("{text:?} was accepted: {:?}", node.to_value()),
            Err(e) => e,
        }
    }

    fn slice(text: &str, span: Span) -> &str {
        text.get(span.start..span.end)
            .unwrap_or("<not a char range>")
    }

    #[test]
    fn positions_of_nested_values_and_keys() {
        let text = "StartAt: A\nStates:\n  A:\n    Type: Pass\n    Result: [1, {x: yes}]\n";
        let node = parse_yaml(text).unwrap();
        let src = SourceText::new("t.yaml", text);
        let a = node.get("States").unwrap().get("A").unwrap();
        let ty = a.get("Type").unwrap();
        assert_eq!(src.line_col(ty.span.start), (4, 11));
        assert_eq!(slice(text, ty.span), "Pass");
        let (key, _) = &a.as_object().unwrap()[1];
        assert_eq!(key.name, "Result");
        assert_eq!(src.line_col(key.span.start), (5, 5));
        assert_eq!(slice(text, key.span), "Result");
        let result = a.get("Result").unwrap();
        assert_eq!(slice(text, result.span), "[1, {x: yes}]");
        let inner = &result.as_array().unwrap()[1];
        assert_eq!(slice(text, inner.span), "{x: yes}");
        assert_eq!(src.line_col(inner.get("x").unwrap().span.start), (5, 21));
    }

    #[test]
    fn duplicate_keys_are_rejected_at_the_second_key() {
        let text = "a: 1\nb: 2\na: 3\n";
        let e = error(text);
        assert_eq!(e.code, Code::DuplicateKey);
        assert_eq!(e.message, "duplicate key \"a\" in mapping");
        assert_eq!(e.offset, 10);

        let text = "States:\n  A: {Type: Pass, Next: B, Type: Task}\n";
        let e = error(text);
        assert_eq!(e.code, Code::DuplicateKey);
        assert_eq!(e.message, "duplicate key \"Type\" in mapping");
        assert_eq!(e.offset, text.rfind("Type").unwrap());

        // Equal keys written differently are still equal.
        assert_eq!(error("'a': 1\n\"a\": 2\n").code, Code::DuplicateKey);
        // The same key in two mappings is fine.
        assert_eq!(
            value("a: {k: 1}\nb: {k: 2}"),
            json!({"a": {"k": 1}, "b": {"k": 2}})
        );
    }

    #[test]
    fn booleans_and_nulls_are_strict_core_schema() {
        assert_eq!(
            value("[true, True, TRUE, false, False, FALSE, yes, no, on, off, y, n, Yes, tRUE]"),
            json!([
                true, true, true, false, false, false, "yes", "no", "on", "off", "y", "n", "Yes",
                "tRUE"
            ])
        );
        assert_eq!(
            value("a: null\nb: Null\nc: NULL\nd: ~\ne:\nf: nULL\n"),
            json!({"a": null, "b": null, "c": null, "d": null, "e": null, "f": "nULL"})
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(
            value(
                "[0, 42, -7, +3, 007, 0x1F, 0o17, 1.5, -0.25, 1e3, 2.5E-1, .5, 5., +1.0, 18446744073709551615]"
            ),
            json!([
                0,
                42,
                -7,
                3,
                7,
                31,
                15,
                1.5,
                -0.25,
                1000.0,
                0.25,
                0.5,
                5.0,
                1.0,
                18446744073709551615u64
            ])
        );
        // Not numbers in the core schema: strings.
        assert_eq!(
            value("[0b101, 1_000, 0x, 0o8, 1.2.3, 1e, e3, '-', 0X1F, 12:30, 1 000]"),
            json!([
                "0b101", "1_000", "0x", "0o8", "1.2.3", "1e", "e3", "-", "0X1F", "12:30", "1 000"
            ])
        );
        for text in [
            ".inf",
            "-.inf",
            "+.Inf",
            ".NaN",
            ".nan",
            "1e400",
            "a: [.INF]",
        ] {
            let e = error(text);
            assert_eq!(e.code, Code::Syntax, "{text}");
            assert!(
                e.message.contains("not representable in JSON"),
                "{text}: {e}"
            );
        }
        let e = error("x: 0x1FFFFFFFFFFFFFFFF");
        assert!(e.message.contains("out of range"), "{e}");
        assert_eq!(e.offset, 3);
        // Very large decimal integers degrade to floats, as in the JSON reader.
        assert_eq!(value("99999999999999999999999"), json!(1e23));
    }

    #[test]
    fn quoted_and_block_scalars_are_strings() {
        assert_eq!(
            value(
                "a: '42'\nb: \"true\"\nc: 'null'\nd: \"\"\ne: |\n  1.5\nf: >-\n  yes\ng: \"0x10\"\n"
            ),
            json!({"a": "42", "b": "true", "c": "null", "d": "", "e": "1.5\n", "f": "yes", "g": "0x10"})
        );
        // Keys are strings whatever they look like.
        assert_eq!(
            value("1: a\ntrue: b\nnull: c\n"),
            json!({"1": "a", "true": "b", "null": "c"})
        );
    }

    #[test]
    fn anchors_and_aliases_are_expanded() {
        let text = "retry: &r\n  - ErrorEquals: [States.ALL]\n    MaxAttempts: 3\nA: {Retry: *r}\nB: {Retry: *r, Name: &n hello}\nC: *n\n";
        let node = parse_yaml(text).unwrap();
        let retry = json!([{"ErrorEquals": ["States.ALL"], "MaxAttempts": 3}]);
        assert_eq!(
            node.to_value(),
            json!({"retry": retry, "A": {"Retry": retry}, "B": {"Retry": retry, "Name": "hello"}, "C": "hello"})
        );
        // The expanded copy's span is the alias.
        let alias = node.get("A").unwrap().get("Retry").unwrap();
        assert_eq!(slice(text, alias.span), "*r");
        // An alias can be a key when it names a scalar.
        assert_eq!(value("- &k name\n- {*k : 1}"), json!(["name", {"name": 1}]));
    }

    #[test]
    fn bad_aliases() {
        // Unknown anchor (reported by the YAML parser).
        let e = error("a: *nope\n");
        assert_eq!(e.code, Code::Syntax);
        assert_eq!(e.offset, 3);
        // Recursive alias.
        let e = error("a: &x [1, *x]\n");
        assert!(e.message.contains("*x"), "{e}");
        assert_eq!(e.offset, 10);
        // A collection as a key.
        let e = error("a: &k {b: 1}\n*k : 2\n");
        assert_eq!(e.code, Code::Syntax);
        assert_eq!(e.offset, 13);
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = error(&text);
        assert_eq!(e.code, Code::TooLarge);
        // A moderate amount of sharing is fine.
        let ok = "a: &a [1, 2, 3]\nb: [*a, *a, *a, *a]\n";
        assert_eq!(
            value(ok)["b"],
            json!([[1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 2, 3]])
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(error(&deep).code, Code::TooDeep);
        let very_deep = "[".repeat(100_000);
        assert_eq!(error(&very_deep).code, Code::TooDeep);
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse_yaml(&ok).is_ok());
        // Block style counts the same.
        let mut block = String::new();
        for i in 0..=MAX_DEPTH {
            block.push_str(&" ".repeat(i));
            block.push_str("k:\n");
        }
        block.push_str(&" ".repeat(MAX_DEPTH + 1));
        block.push_str("k: 1\n");
        assert_eq!(error(&block).code, Code::TooDeep);
        // An alias to a deep node, used deep down, counts its own depth.
        let half = MAX_DEPTH / 2 + 1;
        let nested = "[".repeat(half) + &"]".repeat(half);
        let text = format!(
            "- &d {nested}\n- {}*d{}",
            "[".repeat(half),
            "]".repeat(half)
        );
        assert_eq!(error(&text).code, Code::TooDeep);
    }

    #[test]
    fn tags() {
        assert_eq!(
            value(
                "[!!str 42, !!str true, !!int '42', !!int 0x10, !!float 1, !!float '2.5', !!bool 'True', !!null '', !!null ~, ! 12, !!str, !<tag:yaml.org,2002:int> 7]"
            ),
            json!([
                "42", "true", 42, 16, 1.0, 2.5, true, null, null, "12", "", 7
            ])
        );
        assert_eq!(value("!!map {a: !!seq [1]}"), json!({"a": [1]}));
        let text = "Resource: !Ref MyFunction\n";
        let e = error(text);
        assert_eq!(e.code, Code::Syntax);
        assert_eq!(
            e.message,
            "YAML tag !Ref is not supported in a state machine definition"
        );
        assert_eq!(e.offset, 10);
        let e = error("a: !Sub\n  - x\n");
        assert!(e.message.contains("!Sub"), "{e}");
        let e = error("a: !GetAtt {b: c}\n");
        assert!(e.message.contains("!GetAtt"), "{e}");
        let e = error("a: !!binary aGVsbG8=\n");
        assert!(e.message.contains("!!binary"), "{e}");
        let e = error("!Ref k: v\n");
        assert!(e.message.contains("!Ref"), "{e}");
        for bad in [
            "!!int abc",
            "!!int 1.5",
            "!!float x",
            "!!bool yes",
            "!!null 0",
            "!!str {a: 1}",
            "!!map [1]",
            "!!seq x",
        ] {
            let e = error(bad);
            assert_eq!(e.code, Code::Syntax, "{bad}");
            assert_eq!(e.offset, 0, "{bad}");
        }
        assert!(error("!!float .inf").message.contains("not representable"));
    }

    #[test]
    fn exactly_one_document() {
        for empty in ["", "   \n", "# only a comment\n"] {
            let e = error(empty);
            assert_eq!(e.code, Code::Syntax);
            assert!(e.message.contains("empty"), "{e}");
        }
        let text = "a: 1\n---\nb: 2\n";
        let e = error(text);
        assert_eq!(e.code, Code::Syntax);
        assert!(e.message.contains("more than one document"), "{e}");
        assert_eq!(e.offset, 5);
        assert!(
            error("a: 1\n...\n---\nb: 2\n")
                .message
                .contains("more than one document")
        );
        assert_eq!(value("---\na: 1\n...\n"), json!({"a": 1}));
        assert_eq!(value("%YAML 1.2\n---\na: 1\n"), json!({"a": 1}));
    }

    #[test]
    fn syntax_errors_are_positioned() {
        let text = "a: [1, 2\nb: 3\n";
        let e = error(text);
        assert_eq!(e.code, Code::Syntax);
        assert!(e.offset <= text.len());
        let e = error("a: 'unterminated\n");
        assert_eq!(e.code, Code::Syntax);
        let e = error("a: b: c\n");
        assert_eq!(e.code, Code::Syntax);
        assert_eq!(e.offset, 4);
        let e = error("a:\n\t- b\n");
        assert_eq!(e.code, Code::Syntax);
    }

    #[test]
    fn non_ascii_offsets_are_bytes() {
        let text = "é: ünïcödé\n名前: [😀, x]\nzé: {k: v, k: w}\n";
        let e = error(text);
        assert_eq!(e.code, Code::DuplicateKey);
        assert_eq!(e.offset, text.rfind("k:").unwrap());

        let text = "é: ünïcödé\n名前: [😀, x]\n";
        let node = parse_yaml(text).unwrap();
        let (key, val) = &node.as_object().unwrap()[1];
        assert_eq!(key.name, "名前");
        assert_eq!(slice(text, key.span), "名前");
        assert_eq!(slice(text, val.span), "[😀, x]");
        assert_eq!(slice(text, val.as_array().unwrap()[1].span), "x");
        assert_eq!(slice(text, node.get("é").unwrap().span), "ünïcödé");
        let src = SourceText::new("t", text);
        assert_eq!(src.line_col(val.as_array().unwrap()[1].span.start), (2, 9));

        // Past many non-ASCII characters (beyond the checkpoint stride).
        let long = "ä".repeat(1000);
        let text = format!("a: {long}\nb: !Ref x\n");
        assert_eq!(error(&text).offset, text.find("!Ref").unwrap());
        // A byte order mark is allowed at the start.
        assert_eq!(value("\u{feff}a: 1"), json!({"a": 1}));
    }

    #[test]
    fn merge_keys() {
        let text = "defaults: &d {Type: Task, Retry: [], TimeoutSeconds: 10}\nA:\n  <<: *d\n  TimeoutSeconds: 5\nB:\n  <<: [{X: 1, Y: 1}, {X: 2, Z: 2}]\n  Y: 0\n";
        let v = value(text);
        assert_eq!(
            v["A"],
            json!({"Type": "Task", "Retry": [], "TimeoutSeconds": 5})
        );
        assert_eq!(v["B"], json!({"X": 1, "Y": 0, "Z": 2}));
        // Merged entries take the place of the `<<` entry.
        let keys: Vec<_> = v["A"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["Type", "Retry", "TimeoutSeconds"]);
        // A quoted "<<" is an ordinary key.
        assert_eq!(value("'<<': {a: 1}"), json!({"<<": {"a": 1}}));
        assert_eq!(error("a:\n  <<: 1\n").code, Code::Syntax);
        assert_eq!(error("a:\n  <<: [{b: 1}, 2]\n").code, Code::Syntax);
        assert_eq!(
            error("a:\n  <<: {b: 1}\n  <<: {c: 1}\n").code,
            Code::DuplicateKey
        );
    }

    #[test]
    fn non_scalar_keys_are_refused() {
        assert_eq!(error("? [a, b]\n: c\n").code, Code::Syntax);
        assert_eq!(error("{[a]: b}").code, Code::Syntax);
        assert_eq!(error("? {a: 1}\n: c\n").offset, 2);
    }

    #[test]
    fn realistic_state_machine_matches_its_json() {
        let yaml = r#"
# Order processing
Comment: "Process an order"
StartAt: Validate
TimeoutSeconds: 300
States:
  Validate:
    Type: Task
    Resource: arn:aws:states:::lambda:invoke
    Parameters:
      FunctionName: validate-order
      Payload.$: $
    ResultSelector:
      valid.$: $.Payload.valid
    ResultPath: $.validation
    Retry:
      - ErrorEquals: [Lambda.ServiceException, Lambda.TooManyRequestsException]
        IntervalSeconds: 2
        MaxAttempts: 6
        BackoffRate: 2.0
    Catch:
      - ErrorEquals: [States.ALL]
        ResultPath: $.error
        Next: Failed
    Next: IsValid
  IsValid:
    Type: Choice
    Choices:
      - Variable: $.validation.valid
        BooleanEquals: true
        Next: Ship
      - And:
          - Variable: $.total
            NumericGreaterThan: 1000.5
          - Variable: $.country
            StringEquals: "NO"
        Next: Review
    Default: Failed
  Review:
    Type: Wait
    Seconds: 60
    Next: Ship
  Ship:
    Type: Map
    ItemsPath: $.items
    MaxConcurrency: 0
    ItemProcessor:
      ProcessorConfig: {Mode: INLINE}
      StartAt: ShipOne
      States:
        ShipOne:
          Type: Pass
          Result:
            shipped: true
            note: null
            message: >-
              Shipped
              today
          End: true
    Next: Done
  Done:
    Type: Succeed
  Failed:
    Type: Fail
    Error: OrderFailed
    Cause: 'The order could not be processed'
"#;
        let json_text = r#"{
  "Comment": "Process an order",
  "StartAt": "Validate",
  "TimeoutSeconds": 300,
  "States": {
    "Validate": {
      "Type": "Task",
      "Resource": "arn:aws:states:::lambda:invoke",
      "Parameters": {"FunctionName": "validate-order", "Payload.$": "$"},
      "ResultSelector": {"valid.$": "$.Payload.valid"},
      "ResultPath": "$.validation",
      "Retry": [{"ErrorEquals": ["Lambda.ServiceException", "Lambda.TooManyRequestsException"],
                 "IntervalSeconds": 2, "MaxAttempts": 6, "BackoffRate": 2.0}],
      "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Failed"}],
      "Next": "IsValid"
    },
    "IsValid": {
      "Type": "Choice",
      "Choices": [
        {"Variable": "$.validation.valid", "BooleanEquals": true, "Next": "Ship"},
        {"And": [{"Variable": "$.total", "NumericGreaterThan": 1000.5},
                 {"Variable": "$.country", "StringEquals": "NO"}], "Next": "Review"}
      ],
      "Default": "Failed"
    },
    "Review": {"Type": "Wait", "Seconds": 60, "Next": "Ship"},
    "Ship": {
      "Type": "Map",
      "ItemsPath": "$.items",
      "MaxConcurrency": 0,
      "ItemProcessor": {
        "ProcessorConfig": {"Mode": "INLINE"},
        "StartAt": "ShipOne",
        "States": {"ShipOne": {"Type": "Pass", "Result": {"shipped": true, "note": null, "message": "Shipped today"}, "End": true}}
      },
      "Next": "Done"
    },
    "Done": {"Type": "Succeed"},
    "Failed": {"Type": "Fail", "Error": "OrderFailed", "Cause": "The order could not be processed"}
  }
}"#;
        let from_yaml = parse_yaml(yaml).unwrap();
        let from_json = parse_json(json_text).unwrap();
        assert_eq!(from_yaml.to_value(), from_json.to_value());
        // JSON is (nearly) YAML: the JSON text reads the same through this reader.
        assert_eq!(
            parse_yaml(json_text).unwrap().to_value(),
            from_json.to_value()
        );
        // Positions point into the YAML text.
        let src = SourceText::new("sm.yaml", yaml);
        let ship = from_yaml.get("States").unwrap().get("Ship").unwrap();
        let (line, _) = src.line_col(ship.get("Type").unwrap().span.start);
        assert_eq!(src.line_text(line), "    Type: Map");
    }

    /// A cheap stand-in for the fuzzer: truncations and byte-level mutations
    /// of a varied document never panic, and error offsets are char
    /// boundaries inside the text.
    #[test]
    fn mutations_never_panic() {
        let seed = "%YAML 1.2\n---\n# c\né: &a {k: [1, 'x', \"y\\u00e9\"], ü: !!str 2}\nb: *a\n<<: {m: 1}\nc: |\n  lit 名\nd: >-\n  f\n? e\n: [*a, ~, .5, 0x1F, !x y]\n...\n";
        let alphabet = [
            '[', ']', '{', '}', ':', '-', '?', '*', '&', '!', '|', '>', '\'', '"', '#', ' ', '\n',
            '\t', 'é', '😀', ',', '%', '@', '`', '\\', '\r', '\u{feff}',
        ];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut rand = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let chars: Vec<char> = seed.chars().collect();
        let check = |text: &str| {
            if let Err(e) = parse_yaml(text) {
                assert!(
                    e.offset <= text.len() && text.is_char_boundary(e.offset),
                    "{text:?}: {e:?}"
                );
            }
        };
        for i in 0..=chars.len() {
            check(&chars[..i].iter().collect::<String>());
        }
        for _ in 0..3000 {
            let mut c = chars.clone();
            for _ in 0..1 + rand(4) {
                let at = rand(c.len() + 1);
                match rand(3) {
                    0 => c.insert(at, alphabet[rand(alphabet.len())]),
                    1 if at < c.len() => {
                        c.remove(at);
                    }
                    _ if at < c.len() => c[at] = alphabet[rand(alphabet.len())],
                    _ => {}
                }
            }
            check(&c.iter().collect::<String>());
        }
    }
}
