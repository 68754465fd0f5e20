//! piflow-asl: the Amazon States Language. Source reading (JSON and YAML
//! with positions), the typed model, JSONPath and reference paths,
//! intrinsic functions, JSONata parsing, static validation, type inference
//! over the state graph from the workflow's JSON Schemas ([`types`]), and
//! drawing.
//!
//! **Invariant.** Text in, a checked [`model::StateMachine`] and every
//! [`Diagnostic`] out, each with a stable [`diagnostics`] code and its
//! location. Pure and synchronous.
//!
//! **May depend on:** serde, parsing and hashing crates (saphyr-parser,
//! jsonata-core, serde_json_path, petgraph, sha2, …). Nothing of piflow's.
//!
//! **Never:** tokio or any async runtime, an AWS SDK crate, the store, the
//! file system beyond what a caller hands it ([`file::read_text`] and
//! [`SchemaFile::read`] read the one path they are given; finding a
//! workflow's schemas is the caller's), the network. Validation never
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
pub mod types;
pub mod yaml;

pub use diagnostics::{Code, Diagnostic, Severity};
pub use load::LoadOptions;
pub use model::{MachineType, StateMachine};
pub use source::{Format, Node, SourceText};
pub use types::schema::SchemaFile;

/// The schemas a workflow declares (`schemas/NAME.input.json` and
/// `NAME.output.json`): with an input schema, validation follows the data
/// through the graph ([`types::infer`]).
#[derive(Debug, Clone, Default)]
pub struct Schemas {
    pub input: Option<SchemaFile>,
    pub output: Option<SchemaFile>,
    /// Schema files that could not be read ([`SchemaFile::read`]): reported
    /// with the definition's diagnostics.
    pub problems: Vec<Diagnostic>,
}

impl Schemas {
    /// Read the schema files found for a workflow (either may be absent).
    pub fn read(input: Option<&std::path::Path>, output: Option<&std::path::Path>) -> Schemas {
        let mut s = Schemas::default();
        for (path, slot) in [(input, &mut s.input), (output, &mut s.output)] {
            if let Some(path) = path {
                match SchemaFile::read(path) {
                    Ok(f) => *slot = Some(f),
                    Err(d) => s.problems.push(d),
                }
            }
        }
        s
    }
}

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
    validate_text_with(name, text, format, options, &Schemas::default())
}

/// [`validate_text`], with the workflow's schemas: the data paths are
/// type-checked too.
pub fn validate_text_with(
    name: &str,
    text: &str,
    format: Format,
    options: LoadOptions,
    schemas: &Schemas,
) -> Validation {
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
    validate_parsed_with(name, text, node, options, schemas)
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
    validate_parsed_with(name, text, node, options, &Schemas::default())
}

/// [`validate_parsed`], with the workflow's schemas.
pub fn validate_parsed_with(
    name: &str,
    text: &str,
    node: Node,
    options: LoadOptions,
    schemas: &Schemas,
) -> Validation {
    let mut v = validate_node_with(&node, options, schemas);
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
    validate_node_with(node, options, &Schemas::default())
}

/// [`validate_node`], with the workflow's schemas.
pub fn validate_node_with(node: &Node, options: LoadOptions, schemas: &Schemas) -> Validation {
    let mut loader = load::Loader::new(options);
    let machine = loader.machine(node);
    let mut diagnostics = loader.diagnostics;
    diagnostics.extend(schemas.problems.iter().cloned());
    if let Some(m) = &machine {
        let loaded = diagnostics.len();
        check::check_machine(m, &mut diagnostics);
        // The data flow is followed only through a graph without errors
        // (a step's contract problems do not stop it).
        let sound = !diagnostics.iter().any(Diagnostic::is_error);
        let steps = steps::installed().unwrap_or(&[]);
        if !steps.is_empty() {
            steps::check(node, steps, &mut diagnostics);
            types::infer::check_errors(m, steps, &mut diagnostics);
        }
        if sound && schemas.input.is_some() {
            let typing = typing(schemas, steps, &mut diagnostics);
            types::infer::check(m, &typing, false, &mut diagnostics);
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

/// What type inference is given: the schemas read as types (their
/// problems reported).
fn typing<'a>(
    schemas: &Schemas,
    steps: &'a [steps::StepSpec],
    out: &mut Vec<Diagnostic>,
) -> types::infer::Typing<'a> {
    types::infer::Typing {
        steps,
        input: schemas.input.as_ref().map(|s| s.to_ty_checked("", out)),
        output: schemas
            .output
            .as_ref()
            .map(|s| (s.to_ty_checked("", out), s.file.clone())),
    }
}

/// The type of the data on every edge of a valid machine (for drawing),
/// with the problems found on the way.
pub fn edge_types(
    machine: &StateMachine,
    schemas: &Schemas,
) -> (Vec<types::infer::EdgeType>, Vec<Diagnostic>) {
    let mut out = schemas.problems.clone();
    let steps = steps::installed().unwrap_or(&[]);
    let mut typing = typing(schemas, steps, &mut out);
    if typing.input.is_none() {
        // Without a schema the input is unknown, and so is what follows
        // it, but for the steps' outputs.
        typing.input = Some(types::Ty::any());
    }
    let edges = types::infer::check(machine, &typing, true, &mut out);
    (edges, out)
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
