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
    pub code: Code,
    pub message: String,
    pub pointer: String,
    #[serde(skip)]
    pub span: Option<Span>,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl Diagnostic {
    pub fn error(code: Code, pointer: impl Into<String>, message: impl Into<String>) -> Self {
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

    pub fn warning(code: Code, pointer: impl Into<String>, message: impl Into<String>) -> Self {
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

/// A stable diagnostic code.
///
/// Codes are stable across releases: scripts may match on them. Each is
/// written (by [`Code::as_str`], `Display` and `Serialize`) as a kebab-case
/// string, e.g. `missing-field`; docs/codes.md explains every one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Code {
    /// `syntax`: the text is not valid JSON or YAML (reported at the first error).
    Syntax,
    /// `unreadable`: the file could not be read: missing, a directory, or not UTF-8 (reported by the CLI only).
    Unreadable,
    /// `duplicate-key`: an object has the same key twice (or `x` and `x.$` in one payload template).
    DuplicateKey,
    /// `too-large`: the definition is larger than piflow accepts (8 MiB of text, or 100,000 nodes of YAML alias expansion).
    TooLarge,
    /// `too-deep`: the definition nests arrays and objects deeper than piflow accepts (128 levels).
    TooDeep,
    /// `wrong-type`: a field has the wrong JSON type.
    WrongType,
    /// `missing-field`: a required field is absent.
    MissingField,
    /// `unknown-field`: a field that the language does not define.
    UnknownField,
    /// `field-not-allowed`: a field the language defines, but not for this state type.
    FieldNotAllowed,
    /// `query-language`: a field that belongs to the other query language (JSONPath or JSONata).
    QueryLanguage,
    /// `exclusive-fields`: two fields that cannot be used together.
    ExclusiveFields,
    /// `invalid-value`: a value outside what the field accepts.
    InvalidValue,
    /// `invalid-path`: a JSONPath or reference path that does not parse.
    InvalidPath,
    /// `invalid-intrinsic`: an intrinsic function call that does not parse or has wrong arguments.
    InvalidIntrinsic,
    /// `invalid-jsonata`: a JSONata expression that does not parse.
    InvalidJsonata,
    /// `invalid-timestamp`: a timestamp that is not RFC 3339.
    InvalidTimestamp,
    /// `invalid-resource`: a Task resource that is not a valid ARN or a known integration.
    InvalidResource,
    /// `invalid-name`: a state name or Map label that breaks the naming rules.
    InvalidName,
    /// `duplicate-state`: two states with the same name in one state machine.
    DuplicateState,
    /// `unknown-state`: `StartAt`, `Next`, `Default` or a catcher names a state that does not exist in its scope.
    UnknownState,
    /// `cross-scope`: a transition into or out of a Parallel branch or Map processor.
    CrossScope,
    /// `unreachable-state`: a state that no path from `StartAt` reaches.
    UnreachableState,
    /// `no-terminal`: a state from which no `End`, Succeed or Fail state can be reached.
    NoTerminal,
    /// `states-all`: `States.ALL` is not alone in `ErrorEquals`, or its retrier or catcher is not last.
    StatesAll,
    /// `express-unsupported`: a feature that EXPRESS state machines do not support.
    ExpressUnsupported,
    /// `unknown-step`: a Task names a `piflow:` resource that is no step.
    UnknownStep,
    /// `step-field-missing`: a step's Parameters lack a field it requires.
    StepFieldMissing,
    /// `step-field-unknown`: a step's Parameters give a field it does not declare.
    StepFieldUnknown,
    /// `step-field-type`: a literal of the wrong type for a step's field.
    StepFieldType,
    /// `path-field-unknown`: a data path reads a field that no type reaching the state has.
    PathFieldUnknown,
    /// `path-field-maybe`: a data path reads a field that is only maybe present (a warning).
    PathFieldMaybe,
    /// `choice-unmatchable`: a Choice compares with a string its field never holds.
    ChoiceUnmatchable,
    /// `error-unraisable`: a Retry or Catch names an error no state in its scope can raise.
    ErrorUnraisable,
    /// `output-mismatch`: an end state's output does not match the workflow's output schema.
    OutputMismatch,
    /// `schema-invalid`: a workflow's schema file is not JSON or not a valid JSON Schema.
    SchemaInvalid,
    /// `schema-ref`: a $ref in a schema does not resolve, or $refs form a cycle.
    SchemaRef,
    /// `substitution`: a `${placeholder}` left for CloudFormation `DefinitionSubstitutions` (a warning).
    Substitution,
}

impl Code {
    /// Every code, in the order of docs/codes.md.
    pub const ALL: &[Code] = &[
        Code::Syntax,
        Code::Unreadable,
        Code::DuplicateKey,
        Code::TooLarge,
        Code::TooDeep,
        Code::WrongType,
        Code::MissingField,
        Code::UnknownField,
        Code::FieldNotAllowed,
        Code::QueryLanguage,
        Code::ExclusiveFields,
        Code::InvalidValue,
        Code::InvalidPath,
        Code::InvalidIntrinsic,
        Code::InvalidJsonata,
        Code::InvalidTimestamp,
        Code::InvalidResource,
        Code::InvalidName,
        Code::DuplicateState,
        Code::UnknownState,
        Code::CrossScope,
        Code::UnreachableState,
        Code::NoTerminal,
        Code::StatesAll,
        Code::ExpressUnsupported,
        Code::Substitution,
        Code::UnknownStep,
        Code::StepFieldMissing,
        Code::StepFieldUnknown,
        Code::StepFieldType,
        Code::PathFieldUnknown,
        Code::PathFieldMaybe,
        Code::ChoiceUnmatchable,
        Code::ErrorUnraisable,
        Code::OutputMismatch,
        Code::SchemaInvalid,
        Code::SchemaRef,
    ];

    /// The stable string, e.g. `missing-field`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Code::Syntax => "syntax",
            Code::Unreadable => "unreadable",
            Code::DuplicateKey => "duplicate-key",
            Code::TooLarge => "too-large",
            Code::TooDeep => "too-deep",
            Code::WrongType => "wrong-type",
            Code::MissingField => "missing-field",
            Code::UnknownField => "unknown-field",
            Code::FieldNotAllowed => "field-not-allowed",
            Code::QueryLanguage => "query-language",
            Code::ExclusiveFields => "exclusive-fields",
            Code::InvalidValue => "invalid-value",
            Code::InvalidPath => "invalid-path",
            Code::InvalidIntrinsic => "invalid-intrinsic",
            Code::InvalidJsonata => "invalid-jsonata",
            Code::InvalidTimestamp => "invalid-timestamp",
            Code::InvalidResource => "invalid-resource",
            Code::InvalidName => "invalid-name",
            Code::DuplicateState => "duplicate-state",
            Code::UnknownState => "unknown-state",
            Code::CrossScope => "cross-scope",
            Code::UnreachableState => "unreachable-state",
            Code::NoTerminal => "no-terminal",
            Code::StatesAll => "states-all",
            Code::ExpressUnsupported => "express-unsupported",
            Code::Substitution => "substitution",
            Code::UnknownStep => "unknown-step",
            Code::StepFieldMissing => "step-field-missing",
            Code::StepFieldUnknown => "step-field-unknown",
            Code::StepFieldType => "step-field-type",
            Code::PathFieldUnknown => "path-field-unknown",
            Code::PathFieldMaybe => "path-field-maybe",
            Code::ChoiceUnmatchable => "choice-unmatchable",
            Code::ErrorUnraisable => "error-unraisable",
            Code::OutputMismatch => "output-mismatch",
            Code::SchemaInvalid => "schema-invalid",
            Code::SchemaRef => "schema-ref",
        }
    }

    /// A one-line meaning.
    pub const fn meaning(self) -> &'static str {
        match self {
            Code::Syntax => "the text is not valid JSON or YAML",
            Code::Unreadable => "the file could not be read (missing, not UTF-8)",
            Code::DuplicateKey => "an object has the same key twice",
            Code::TooLarge => "the definition is larger than piflow accepts",
            Code::TooDeep => "the definition nests deeper than piflow accepts",
            Code::WrongType => "a field has the wrong JSON type",
            Code::MissingField => "a required field is absent",
            Code::UnknownField => "a field that the language does not define",
            Code::FieldNotAllowed => "a field the language defines, but not for this state type",
            Code::QueryLanguage => {
                "a field that belongs to the other query language (JSONPath or JSONata)"
            }
            Code::ExclusiveFields => "two fields that cannot be used together",
            Code::InvalidValue => "a value outside what the field accepts",
            Code::InvalidPath => "a JSONPath or reference path that does not parse",
            Code::InvalidIntrinsic => {
                "an intrinsic function call that does not parse or has wrong arguments"
            }
            Code::InvalidJsonata => "a JSONata expression that does not parse",
            Code::InvalidTimestamp => "a timestamp that is not RFC 3339",
            Code::InvalidResource => {
                "a Task resource that is not a valid ARN or a known integration"
            }
            Code::InvalidName => "a state name or Map label that breaks the naming rules",
            Code::DuplicateState => "two states with the same name in one state machine",
            Code::UnknownState => {
                "StartAt, Next, Default or a Catch names a state that does not exist in its scope"
            }
            Code::CrossScope => "a transition into or out of a Parallel branch or Map processor",
            Code::UnreachableState => "a state that no path from StartAt reaches",
            Code::NoTerminal => "a state from which no End, Succeed or Fail state can be reached",
            Code::StatesAll => "States.ALL is not alone or not last",
            Code::ExpressUnsupported => "a feature that EXPRESS state machines do not support",
            Code::Substitution => "a ${placeholder} left for DefinitionSubstitutions",
            Code::UnknownStep => "a Task names a piflow: resource that is no built-in step",
            Code::StepFieldMissing => "a step's Parameters lack a field the step requires",
            Code::StepFieldUnknown => "a step's Parameters give a field the step does not declare",
            Code::StepFieldType => "a literal in a step's Parameters of the wrong type or value",
            Code::PathFieldUnknown => {
                "a data path reads a field that no type reaching the state has"
            }
            Code::PathFieldMaybe => {
                "a data path reads a field that is only maybe present (a warning)"
            }
            Code::ChoiceUnmatchable => "a Choice compares with a string its field never holds",
            Code::ErrorUnraisable => {
                "a Retry or Catch names an error no state in its scope can raise"
            }
            Code::OutputMismatch => {
                "an end state's output does not match the workflow's output schema"
            }
            Code::SchemaInvalid => {
                "a workflow's schema file is not JSON or not a valid JSON Schema"
            }
            Code::SchemaRef => "a $ref in a schema does not resolve, or $refs form a cycle",
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A string that is not the stable string of any [`Code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown diagnostic code {0:?}")]
pub struct UnknownCode(pub String);

impl std::str::FromStr for Code {
    type Err = UnknownCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Code::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownCode(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for &code in Code::ALL {
            assert!(seen.insert(code.as_str()), "{code} twice");
            assert_eq!(code.as_str().parse::<Code>(), Ok(code));
            assert_eq!(code.to_string(), code.as_str());
            assert_eq!(
                serde_json::to_string(&code).unwrap(),
                format!("\"{}\"", code.as_str())
            );
            assert!(!code.meaning().is_empty());
        }
        assert_eq!(Code::ALL.len(), 37);
        assert!("Missing-Field".parse::<Code>().is_err());
    }
}
