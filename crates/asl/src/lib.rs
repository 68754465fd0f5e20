//! piflow-asl: the Amazon States Language. Source reading (JSON and YAML
//! with positions), the typed model, JSONPath and reference paths,
//! intrinsic functions, JSONata parsing, static validation and drawing.
//!
//! **Invariant.** Text in, a checked [`model::StateMachine`] and every
//! [`Diagnostic`] out, each with a stable [`diagnostics`] code and its
//! location. Pure and synchronous.
//!
//! **May depend on:** serde, parsing and hashing crates (saphyr-parser,
//! jsonata-core, serde_json_path, petgraph, sha2, …). Nothing of piflow's.
//!
//! **Never:** tokio or any async runtime, an AWS SDK crate, the store, the
//! file system beyond what a caller hands it ([`file::read_text`] reads the
//! one path it is given), the network. Validation never
//! stops at the first problem.
//!
//! ```
//! use piflow_asl::{validate_text, Format, LoadOptions};
//! let v = validate_text("m.json", r#"{"StartAt":"A","States":{"A":{"Type":"Pass","End":true}}}"#,
//!                       Format::Json, LoadOptions::default());
//! assert!(v.is_valid());
//! ```

pub mod check;
pub mod diagnostics;
pub mod file;
pub mod intrinsic;
pub mod jsonata;
pub mod load;
pub mod model;
pub mod path;
pub mod render;
pub mod source;
pub mod steps;
pub mod yaml;

pub use diagnostics::{Code, Diagnostic, Severity};
pub use load::LoadOptions;
pub use model::{MachineType, StateMachine};
pub use source::{Format, Node, SourceText};

/// The outcome of validating one definition.
#[derive(Debug, Clone)]
pub struct Validation {
    /// The model, when the definition could be read far enough to build one.
    /// It is safe to run only when [`Validation::is_valid`] holds.
    pub machine: Option<StateMachine>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Validation {
    /// True when there is no error-severity diagnostic.
    pub fn is_valid(&self) -> bool {
        !self.diagnostics.iter().any(Diagnostic::is_error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }
}

/// Validate a definition given as source text (JSON or YAML).
pub fn validate_text(name: &str, text: &str, format: Format, options: LoadOptions) -> Validation {
    // The line index is built only when there is something to locate.
    let node = match source::parse(text, format) {
        Ok(n) => n,
        Err(e) => {
            let mut d =
                Diagnostic::error(e.code, "", e.message).at(source::Span::new(e.offset, e.offset));
            d.locate(&SourceText::new(name, text));
            return Validation {
                machine: None,
                diagnostics: vec![d],
            };
        }
    };
    validate_parsed(name, text, node, options)
}

/// Validate a definition given as the bytes of a file: bytes that are not
/// UTF-8 text are reported as [`Code::Unreadable`] (at the first invalid
/// byte), anything else as by [`validate_text`].
pub fn validate_bytes(
    name: &str,
    bytes: &[u8],
    format: Format,
    options: LoadOptions,
) -> Validation {
    match std::str::from_utf8(bytes) {
        Ok(text) => validate_text(name, text, format, options),
        Err(e) => {
            let offset = e.valid_up_to();
            let mut d = Diagnostic::error(
                Code::Unreadable,
                "",
                format!("{name} is not UTF-8 text (invalid byte at offset {offset})"),
            )
            .at(source::Span::new(offset, offset));
            // Everything before `offset` is valid: the position is exact.
            d.locate(&SourceText::new(name, String::from_utf8_lossy(bytes)));
            Validation {
                machine: None,
                diagnostics: vec![d],
            }
        }
    }
}

/// Validate a definition already read from `text` (its diagnostics are
/// located in that text).
pub fn validate_parsed(name: &str, text: &str, node: Node, options: LoadOptions) -> Validation {
    let mut v = validate_node(&node, options);
    if !v.diagnostics.is_empty() {
        let source = SourceText::new(name, text);
        for d in &mut v.diagnostics {
            if d.span.is_none() {
                d.span = pointer_span(&node, &d.pointer);
            }
            d.locate(&source);
        }
    }
    drop_in_background(node, text.len());
    v
}

/// Freeing the node tree of a large definition is a fifth of the time of
/// validating it: give that to another thread.
fn drop_in_background(node: Node, source_len: usize) {
    const LARGE: usize = 256 * 1024;
    if source_len >= LARGE {
        let spawned = std::thread::Builder::new()
            .name("piflow-drop".into())
            .spawn(move || drop(node));
        // Without a thread, drop here.
        drop(spawned);
    }
}

/// Validate a definition already parsed into a node tree.
pub fn validate_node(node: &Node, options: LoadOptions) -> Validation {
    let mut loader = load::Loader::new(options);
    let machine = loader.machine(node);
    let mut diagnostics = loader.diagnostics;
    if let Some(m) = &machine {
        let loaded = diagnostics.len();
        check::check_machine(m, &mut diagnostics);
        if let Some(steps) = steps::installed() {
            steps::check(node, steps, &mut diagnostics);
        }
        // The graph checks know pointers, not spans: find the spans before
        // sorting, so that all diagnostics come in source order.
        for d in &mut diagnostics[loaded..] {
            if d.span.is_none() {
                d.span = pointer_span(node, &d.pointer);
            }
        }
    }
    diagnostics.sort_by_key(|d| (d.span.map(|s| s.start), d.severity));
    Validation {
        machine,
        diagnostics,
    }
}

/// Validate a definition given as a JSON value (no positions).
pub fn validate_value(value: &serde_json::Value, options: LoadOptions) -> Validation {
    let mut v = validate_node(&Node::from_value(value, source::Span::default()), options);
    for d in &mut v.diagnostics {
        d.span = None;
    }
    v
}

/// Validate one state on its own, as the TestState API takes it.
pub fn validate_state_value(value: &serde_json::Value) -> (Option<model::State>, Vec<Diagnostic>) {
    let node = Node::from_value(value, source::Span::default());
    let mut loader = load::Loader::new(LoadOptions::default());
    let state = loader.single_state(&node, "State");
    (state, loader.diagnostics)
}

/// The span of the value at a JSON pointer, if it exists.
pub fn pointer_span(root: &Node, pointer: &str) -> Option<source::Span> {
    let mut node = root;
    if pointer.is_empty() {
        return Some(node.span);
    }
    let mut span = node.span;
    for raw in pointer.strip_prefix('/')?.split('/') {
        let token = raw.replace("~1", "/").replace("~0", "~");
        match &node.kind {
            source::NodeKind::Object(entries) => {
                let (k, v) = entries.iter().find(|(k, _)| k.name == token)?;
                span = k.span;
                node = v;
            }
            source::NodeKind::Array(items) => {
                node = items.get(token.parse::<usize>().ok()?)?;
                span = node.span;
            }
            _ => return Some(span),
        }
    }
    Some(span)
}

/// Why a definition could not become a [`StateMachine`]: every error found.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid state machine definition: {}", summary(.diagnostics))]
pub struct InvalidDefinition {
    pub diagnostics: Vec<Diagnostic>,
}

impl InvalidDefinition {
    /// Every code [`Self::code`] returns, with its meaning (docs/codes.md).
    pub const CODES: &[(&str, &str)] =
        &[("invalid-definition", "the definition does not validate")];

    /// Stable error code.
    pub fn code(&self) -> &'static str {
        "invalid-definition"
    }
}

fn summary(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| {
            format!(
                "[{}] {} at {}",
                d.code,
                d.message,
                if d.pointer.is_empty() {
                    "/"
                } else {
                    &d.pointer
                }
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl StateMachine {
    /// Parse and validate; `Err` carries every error.
    pub fn from_value(
        value: &serde_json::Value,
        options: LoadOptions,
    ) -> Result<StateMachine, InvalidDefinition> {
        let v = validate_value(value, options);
        match v.machine {
            Some(m) if v.diagnostics.iter().all(|d| !d.is_error()) => Ok(m),
            _ => Err(InvalidDefinition {
                diagnostics: v.diagnostics,
            }),
        }
    }
}

/// A `StateMachine` deserializes through the validator, so that serde users
/// get the same checks (all of them, in one error) as `piflow validate`.
impl<'de> serde::Deserialize<'de> for StateMachine {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        StateMachine::from_value(&value, LoadOptions::default()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_deserialize_validates() {
        let m: StateMachine =
            serde_json::from_str(r#"{"StartAt":"A","States":{"A":{"Type":"Pass","End":true}}}"#)
                .unwrap();
        assert_eq!(m.scope.start_at, "A");
        let err = serde_json::from_str::<StateMachine>(
            r#"{"StartAt":"B","States":{"A":{"Type":"Pass","Nxt":"A","End":true}}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("[unknown-field]") && err.contains("[unknown-state]"),
            "{err}"
        );
    }
}
