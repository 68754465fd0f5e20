//! Diagnostics: what validation found, where, and how bad it is.

use serde::Serialize;

use super::source::{SourceText, Span};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One problem in a definition.
///
/// `code` is stable across releases (scripts may match on it); `pointer` is an
/// RFC 6901 JSON pointer into the definition; `line`/`column` are 1-based and
/// present when the definition came from text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub pointer: String,
    #[serde(skip)]
    pub span: Option<Span>,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl Diagnostic {
    pub fn error(
        code: &'static str,
        pointer: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            pointer: pointer.into(),
            span: None,
            line: None,
            column: None,
        }
    }

    pub fn warning(
        code: &'static str,
        pointer: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, pointer, message)
        }
    }

    pub fn at(mut self, span: Span) -> Self {
        self.span = Some(span);
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Fill `line` and `column` from the span.
    pub fn locate(&mut self, source: &SourceText) {
        if let Some(span) = self.span {
            let (line, column) = source.line_col(span.start);
            self.line = Some(line);
            self.column = Some(column);
        }
    }
}

/// Escape one JSON pointer token (RFC 6901).
pub fn pointer_token(token: &str) -> String {
    if token.contains(['~', '/']) {
        token.replace('~', "~0").replace('/', "~1")
    } else {
        token.to_string()
    }
}

/// `base` + `/token`, escaped.
pub fn child_pointer(base: &str, token: &str) -> String {
    let mut p = String::with_capacity(base.len() + token.len() + 1);
    p.push_str(base);
    p.push('/');
    p.push_str(&pointer_token(token));
    p
}

/// Every stable diagnostic code, with a one-line meaning (see docs/validation.md).
pub const CODES: &[(&str, &str)] = &[
    ("syntax", "the text is not valid JSON or YAML"),
    (
        "unreadable",
        "the file could not be read (missing, not UTF-8)",
    ),
    ("duplicate-key", "an object has the same key twice"),
    ("too-large", "the definition is larger than piflow accepts"),
    (
        "too-deep",
        "the definition nests deeper than piflow accepts",
    ),
    ("wrong-type", "a field has the wrong JSON type"),
    ("missing-field", "a required field is absent"),
    ("unknown-field", "a field that the language does not define"),
    (
        "field-not-allowed",
        "a field the language defines, but not for this state type",
    ),
    (
        "query-language",
        "a field that belongs to the other query language (JSONPath or JSONata)",
    ),
    (
        "exclusive-fields",
        "two fields that cannot be used together",
    ),
    ("invalid-value", "a value outside what the field accepts"),
    (
        "invalid-path",
        "a JSONPath or reference path that does not parse",
    ),
    (
        "invalid-intrinsic",
        "an intrinsic function call that does not parse or has wrong arguments",
    ),
    (
        "invalid-jsonata",
        "a JSONata expression that does not parse",
    ),
    ("invalid-timestamp", "a timestamp that is not RFC 3339"),
    (
        "invalid-resource",
        "a Task resource that is not a valid ARN or a known integration",
    ),
    (
        "invalid-name",
        "a state name or Map label that breaks the naming rules",
    ),
    (
        "duplicate-state",
        "two states with the same name in one state machine",
    ),
    (
        "unknown-state",
        "StartAt, Next, Default or a Catch names a state that does not exist in its scope",
    ),
    (
        "cross-scope",
        "a transition into or out of a Parallel branch or Map processor",
    ),
    (
        "unreachable-state",
        "a state that no path from StartAt reaches",
    ),
    (
        "no-terminal",
        "a state from which no End, Succeed or Fail state can be reached",
    ),
    ("states-all", "States.ALL is not alone or not last"),
    (
        "express-unsupported",
        "a feature that EXPRESS state machines do not support",
    ),
    (
        "substitution",
        "a ${placeholder} left for DefinitionSubstitutions",
    ),
];
