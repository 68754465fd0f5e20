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
//! futures, serde, jsonata-core.
//!
//! **Never:** an AWS SDK crate, the store's crate, HTTP, the file system.
//! Whoever implements its traits decides what is durable.

pub mod clock;
pub mod error;
pub mod history;
mod interp;
pub mod journal;
pub mod jsonata_eval;
pub mod tasks;
pub mod tokens;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use piflow_asl::StateMachine;

pub use clock::{Clock, SystemClock, VirtualClock};
pub use error::Failure;
pub use history::HistoryEvent;
pub use journal::{JOURNAL_FAILED, Journal, RecordedEvent, Replay};
pub use tasks::{MockConfig, TaskHandler, TaskRegistry, TaskRequest};
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

/// How an execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
}

impl Status {
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
    /// a stopped execution ends ABORTED with an ExecutionAborted event.
    pub async fn run_until(
        &self,
        request: ExecutionRequest,
        stop: impl std::future::Future<Output = ()>,
    ) -> ExecutionOutcome {
        interp::run(self, request, stop).await
    }
}
