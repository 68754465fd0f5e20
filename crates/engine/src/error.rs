//! Failures inside an execution: an ASL error name and a cause.

use serde_json::Value;

/// An error raised by a state, in ASL terms (`States.Runtime`, `Lambda.Unknown`,
/// a Fail state's Error, ...). `cause` is the human text.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// A stop without an error or a cause.
impl From<()> for Failure {
    fn from((): ()) -> Self {
        Failure {
            error: None,
            cause: None,
        }
    }
}

impl Failure {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        Failure {
            error: Some(error.into()),
            cause: Some(cause.into()),
        }
    }

    pub fn error_name(&self) -> &str {
        self.error.as_deref().unwrap_or("")
    }

    /// Errors that no Retry or Catch handles (AWS: States.Runtime is never
    /// retried or caught; neither is a data-limit failure of the execution).
    pub fn is_uncatchable(&self) -> bool {
        matches!(
            self.error_name(),
            "States.Runtime" | super::journal::JOURNAL_FAILED
        )
    }

    /// The error output a Catch passes on: `{"Error": ..., "Cause": ...}`
    /// (`null` for a missing field, as AWS writes it).
    pub fn to_error_output(&self) -> Value {
        let mut m = serde_json::Map::new();
        let s = |v: &Option<String>| v.clone().map(Value::String).unwrap_or(Value::Null);
        m.insert("Error".into(), s(&self.error));
        // An error without a cause (a task timeout) is caught with an empty
        // Cause; a failure with neither field with two nulls.
        let cause = match (&self.error, &self.cause) {
            (Some(_), None) => Value::String(String::new()),
            _ => s(&self.cause),
        };
        m.insert("Cause".into(), cause);
        Value::Object(m)
    }

    /// Does a retrier's or catcher's ErrorEquals match this error?
    pub fn matches(&self, error_equals: &[String]) -> bool {
        let name = self.error_name();
        error_equals.iter().any(|e| {
            e == name
                || (e == "States.ALL" && !self.is_uncatchable())
                || (e == "States.TaskFailed" && !name.starts_with("States.") && !name.is_empty())
                || (e == "States.TaskFailed" && name == "States.Timeout")
        })
    }
}

/// A `States.Runtime` (or other) error raised while executing a state,
/// worded the way AWS words it.
pub fn in_state(
    error: &str,
    state: &str,
    entered_event: u64,
    detail: impl std::fmt::Display,
) -> Failure {
    Failure::new(
        error,
        format!(
            "An error occurred while executing the state '{state}' (entered at the event id #{entered_event}). {detail}"
        ),
    )
}
