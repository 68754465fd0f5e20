//! The TestState operation's engine side: run ONE state on an input, with
//! an optional mocked result or error, and report what each step of its
//! data flow produced (AWS's `inspectionData`).
//!
//! The state runs through the interpreter's own functions (InputPath,
//! Parameters/Arguments, ResultSelector, ResultPath, OutputPath, Assign,
//! Choice rules, Fail, Wait, Retry and Catch matching), so it behaves as it
//! does in an execution. What differs is TestState's contract: one attempt
//! only (a matching retrier answers `RETRIABLE` with its back-off, counting
//! `retrierRetryCount` attempts already made), a Catch answers
//! `CAUGHT_ERROR` with the next state, a Wait does not sleep, and Map and
//! Parallel states take their result from the mock.

use serde_json::{Map, Value};

use piflow_asl::model::State;

use crate::Engine;

/// A mocked outcome of the tested state's work.
#[derive(Debug, Clone, PartialEq)]
pub enum TestMock {
    /// The task's (or Map's, or Parallel's) result.
    Result(Value),
    /// The task fails with this error and cause.
    Error {
        error: Option<String>,
        cause: Option<String>,
    },
}

/// `stateConfiguration`: where in its life the tested state is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TestStateConfig {
    /// Attempts the retrier that matches the error has already made.
    pub retrier_retry_count: Option<u64>,
    /// The state inside a Map or Parallel that raised the mocked error.
    pub error_caused_by_state: Option<String>,
    /// How many Map iterations failed.
    pub map_iteration_failure_count: Option<u64>,
    /// What a Distributed Map's ItemReader read.
    pub map_item_reader_data: Option<Value>,
}

/// One TestState run.
#[derive(Debug, Clone)]
pub struct TestStateRequest {
    /// The state under test (with its effective query language).
    pub state: State,
    pub input: Value,
    pub mock: Option<TestMock>,
    pub config: TestStateConfig,
    /// The context object (`$$`, `$states.context`); `None`: one made up
    /// for a one-state express execution.
    pub context: Option<Value>,
    /// Workflow variables the state sees.
    pub variables: Map<String, Value>,
    pub role_arn: Option<String>,
}

/// How the tested state ended, as AWS names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestStatus {
    Succeeded,
    Failed,
    /// A retrier matched the error and has attempts left.
    Retriable,
    /// A catcher matched the error.
    CaughtError,
}

impl TestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TestStatus::Succeeded => "SUCCEEDED",
            TestStatus::Failed => "FAILED",
            TestStatus::Retriable => "RETRIABLE",
            TestStatus::CaughtError => "CAUGHT_ERROR",
        }
    }
}

/// Which retrier or catcher handled the error.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ErrorDetails {
    pub catch_index: Option<usize>,
    pub retry_index: Option<usize>,
    pub retry_backoff_interval_seconds: Option<u64>,
}

/// What each step of the state's data flow produced (absent: the step did
/// not run, or the state has none).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inspection {
    pub input: Option<Value>,
    pub after_input_path: Option<Value>,
    pub after_parameters: Option<Value>,
    pub after_arguments: Option<Value>,
    pub result: Option<Value>,
    pub after_result_selector: Option<Value>,
    pub after_result_path: Option<Value>,
    pub after_items_path: Option<Value>,
    /// The variables after the state (those given and those it assigned).
    pub variables: Option<Map<String, Value>>,
    pub error_details: Option<ErrorDetails>,
    pub max_concurrency: Option<u64>,
    pub tolerated_failure_count: Option<u64>,
    pub tolerated_failure_percentage: Option<f64>,
}

/// The answer of one TestState run.
#[derive(Debug, Clone, PartialEq)]
pub struct TestStateOutcome {
    pub status: TestStatus,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub next_state: Option<String>,
    pub inspection: Inspection,
}

/// A request TestState refuses before running the state.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TestStateError {
    /// The request breaks TestState's rules (AWS: ValidationException).
    #[error("{0}")]
    Invalid(String),
    /// The state is one TestState does not run this way (AWS:
    /// InvalidDefinition).
    #[error("{0}")]
    Unsupported(String),
}

impl Engine {
    /// Run one state as the TestState API does.
    pub async fn test_state(
        &self,
        request: &TestStateRequest,
    ) -> Result<TestStateOutcome, TestStateError> {
        crate::interp::test_state::run(self, request).await
    }
}
