//! The execution history: AWS's event types, ids and details.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// One history event, as `GetExecutionHistory` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HistoryEvent {
    pub id: u64,
    #[serde(rename = "previousEventId")]
    pub previous_event_id: u64,
    pub timestamp: DateTime<Utc>,
    #[serde(rename = "type")]
    pub event_type: &'static str,
    /// The state this event belongs to (for StateEntered/Exited events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The event's payload: the input of `ExecutionStarted` and
    /// `...StateEntered`, the output of `...StateExited` and
    /// `ExecutionSucceeded`, `{"error", "cause"}` of failures, and other
    /// details (index, resource, ...) of the rest.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub details: Value,
    /// Where in the workflow the event was recorded (scope path, state,
    /// visit, attempt); set only for durable executions, which find what
    /// already happened by it when they resume.
    #[serde(skip)]
    pub key: Option<std::sync::Arc<str>>,
    /// On a `...StateExited` event of a durable execution: the next state
    /// and the variables the state assigned, so that a resumed execution
    /// continues after it without running it again.
    #[serde(skip)]
    pub checkpoint: Option<Value>,
}

/// The `...StateEntered` / `...StateExited` event names of a state type.
pub fn state_event_names(type_name: &str) -> (&'static str, &'static str) {
    match type_name {
        "Pass" => ("PassStateEntered", "PassStateExited"),
        "Task" => ("TaskStateEntered", "TaskStateExited"),
        "Choice" => ("ChoiceStateEntered", "ChoiceStateExited"),
        "Wait" => ("WaitStateEntered", "WaitStateExited"),
        "Succeed" => ("SucceedStateEntered", "SucceedStateExited"),
        "Fail" => ("FailStateEntered", "FailStateExited"),
        "Parallel" => ("ParallelStateEntered", "ParallelStateExited"),
        "Map" => ("MapStateEntered", "MapStateExited"),
        _ => ("StateEntered", "StateExited"),
    }
}
