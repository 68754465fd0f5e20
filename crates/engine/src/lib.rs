//! piflow-engine: the ASL interpreter.
//!
//! **Invariant.** The engine runs a validated [`StateMachine`] on an input
//! and produces an [`ExecutionOutcome`] with AWS's statuses, error names and
//! history. It reaches the outside only through its traits: tasks through
//! [`TaskHandler`] in a [`tasks::TaskRegistry`], time through
//! [`clock::Clock`], durable storage through [`Journal`] (and a recorded
//! [`Replay`] when it resumes), the audit trail through [`AuditLog`].
//!
//! **May depend on:** `piflow-asl`, tokio (timers, the paused clock),
//! futures, serde, serde_json, jsonata-core, chrono, uuid, sha2 (the audit
//! chain's hashes), thiserror.
//!
//! **Never:** an AWS SDK crate, the store's crate, HTTP, the file system.
//! Whoever implements its traits decides what is durable.

pub mod audit;
pub mod clock;
pub mod error;
pub mod history;
mod interp;
pub mod journal;
pub mod jsonata_eval;
pub mod mocks;
pub mod tasks;
pub mod test_state;
pub mod tokens;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use piflow_asl::StateMachine;

pub use audit::{AuditEntry, AuditFuture, AuditLog, AuditRecord, StorageError, sha256_hex};
pub use clock::{Clock, SystemClock, VirtualClock};
pub use error::Failure;
pub use history::HistoryEvent;
pub use journal::{JOURNAL_FAILED, Journal, JournalError, RecordedEvent, Replay};
pub use tasks::{MockConfig, MockError, MockFile, TaskHandler, TaskRegistry, TaskRequest};
pub use tokens::TokenRegistry;

/// Limits and settings of the interpreter.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Largest history before the execution fails (AWS Standard: 25,000).
    pub max_history_events: usize,
    /// Largest state input/output, in bytes (AWS: 256 KiB).
    pub max_payload_bytes: usize,
    /// Region and account used to build execution ARNs.
    pub region: String,
    pub account: String,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            max_history_events: 25_000,
            max_payload_bytes: 256 * 1024,
            region: "us-east-1".into(),
            account: "000000000000".into(),
        }
    }
}

/// How an execution ended (or that it still runs), written as AWS writes
/// it: `RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT`, `ABORTED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
}

impl Status {
    /// Every status, in the order AWS lists them.
    pub const ALL: [Status; 5] = [
        Status::Running,
        Status::Succeeded,
        Status::Failed,
        Status::TimedOut,
        Status::Aborted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "RUNNING",
            Status::Succeeded => "SUCCEEDED",
            Status::Failed => "FAILED",
            Status::TimedOut => "TIMED_OUT",
            Status::Aborted => "ABORTED",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text that is not a [`Status`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a status; use one of RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED")]
pub struct UnknownStatus(pub String);

impl UnknownStatus {
    /// Every code [`Self::code`] returns, with its meaning (docs/codes.md).
    pub const CODES: &[(&str, &str)] =
        &[("unknown-status", "a text that is not an execution status")];

    pub fn code(&self) -> &'static str {
        "unknown-status"
    }
}

impl std::str::FromStr for Status {
    type Err = UnknownStatus;

    /// `RUNNING`, `SUCCEEDED`, … exactly as written by [`Status::as_str`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ExecutionRequest {
    pub machine: Arc<StateMachine>,
    pub state_machine_name: String,
    pub execution_name: String,
    pub input: Value,
    pub role_arn: Option<String>,
    /// Commit the history to a journal before each next step; with a
    /// non-empty replay, resume from what the journal already holds.
    pub durable: Option<Durable>,
}

/// A durable execution's journal, and what it already holds.
#[derive(Clone)]
pub struct Durable {
    pub journal: Arc<dyn Journal>,
    pub replay: Arc<Replay>,
    /// When the execution first started (a resumed one keeps its start
    /// time, for `$$.Execution.StartTime` and its TimeoutSeconds).
    pub start_date: Option<DateTime<Utc>>,
    /// `$$.Execution.RedriveCount`.
    pub redrive_count: u32,
}

impl std::fmt::Debug for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durable")
            .field("recorded_events", &self.replay.last_id())
            .field("start_date", &self.start_date)
            .field("redrive_count", &self.redrive_count)
            .finish()
    }
}

/// The result of an execution.
#[derive(Debug, Clone, Serialize)]
pub struct ExecutionOutcome {
    pub execution_arn: String,
    pub status: Status,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub start_date: DateTime<Utc>,
    pub stop_date: DateTime<Utc>,
    pub history: Vec<HistoryEvent>,
}

/// Observes history events as they are recorded (progress display, stores).
pub trait HistorySink: Send + Sync {
    fn record(&self, event: &HistoryEvent);
}

/// The interpreter with its tasks, clock and options.
#[derive(Clone)]
pub struct Engine {
    pub tasks: TaskRegistry,
    pub clock: Arc<dyn Clock>,
    pub options: EngineOptions,
    pub tokens: Arc<TokenRegistry>,
    pub sink: Option<Arc<dyn HistorySink>>,
}

impl Engine {
    pub fn new(tasks: TaskRegistry, clock: Arc<dyn Clock>) -> Self {
        Engine {
            tasks,
            clock,
            options: EngineOptions::default(),
            tokens: Arc::new(TokenRegistry::default()),
            sink: None,
        }
    }

    /// Run an execution to its end.
    pub async fn run(&self, request: ExecutionRequest) -> ExecutionOutcome {
        interp::run(self, request, futures::future::pending()).await
    }

    /// Run an execution until it ends or `stop` completes (StopExecution):
    /// a stopped execution ends ABORTED with an ExecutionAborted event,
    /// which carries the error and cause `stop` gives (`()`: none).
    pub async fn run_until<O: Into<Failure>>(
        &self,
        request: ExecutionRequest,
        stop: impl std::future::Future<Output = O>,
    ) -> ExecutionOutcome {
        interp::run(self, request, async { stop.await.into() }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_and_write_as_aws_writes_them() {
        for st in Status::ALL {
            let json = serde_json::to_value(st).unwrap_or_default();
            assert_eq!(json, Value::String(st.as_str().into()));
            assert_eq!(serde_json::from_value::<Status>(json).ok(), Some(st));
            assert_eq!(st.as_str().parse::<Status>(), Ok(st));
            assert_eq!(st.to_string(), st.as_str());
        }
        let bad = "running".parse::<Status>();
        assert_eq!(bad, Err(UnknownStatus("running".into())));
        assert!(bad.is_err_and(|e| e.to_string().contains("TIMED_OUT")));
    }
}
