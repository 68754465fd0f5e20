//! Durable executions: the journal the engine commits history to before it
//! moves on, and the replay of a journal when an execution resumes.
//!
//! Every event of a durable execution carries a key naming where in the
//! workflow it happened: the scope path (Parallel branch `b1`, Map item
//! `i3`), the state, its visit number in that scope and the attempt
//! (`/Deploy#1@0`). A resumed execution runs the workflow again from the
//! start with the recorded journal beside it:
//! - a state whose `...StateExited` is recorded is not run: its recorded
//!   output, next state and assigned variables are used;
//! - a Task attempt whose outcome is recorded is not invoked again;
//! - a Task attempt scheduled but not finished is invoked again with its
//!   recorded parameters and the same idempotency token;
//! - a Wait sleeps only what is left of its recorded interval;
//! - an event already recorded is not recorded again, so the history stays
//!   gap-free and free of duplicates.
//!
//! The engine commits (and waits for the commit) when a state is entered,
//! before a Task is invoked, after its outcome and when the execution ends;
//! commits of concurrent branches and executions can share one write (group
//! commit) in the store.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde_json::Value;

use super::audit::StorageError;
use super::history::HistoryEvent;

/// The error name of a failed journal commit: the execution stops where it
/// is, unrecorded work is not done, and it can be resumed.
pub const JOURNAL_FAILED: &str = "piflow.JournalFailed";

/// Why a journal could not commit, each with a stable code. The engine
/// stops the execution with [`JOURNAL_FAILED`] and this error (its code
/// included) as the cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    /// The storage refused or failed the write; its own code
    /// (`store-conflict`, `store-corrupt`, … — the store's
    /// `StoreError::CODES`) is kept.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The execution's lease went to another process: it runs there now.
    #[error("execution {execution} is now run by another process (its lease was lost)")]
    LeaseLost { execution: String },
    /// The execution's leases were not renewed in time: another process
    /// may take them, so this one acts on nothing more.
    #[error(
        "the leases of execution {execution} were not renewed in time (the store was slow or unreachable); it stopped so that no other process can run it at the same time"
    )]
    LeaseExpired { execution: String },
    /// The journal failed for a reason of its own.
    #[error("{0}")]
    Failed(String),
}

impl JournalError {
    /// Every code [`JournalError::code`] returns for the journal's own
    /// errors, with its meaning. [`JournalError::Storage`] returns the
    /// storage's code instead (the store's `StoreError::CODES`).
    pub const CODES: &[(&str, &str)] = &[
        (
            "journal-lease-lost",
            "the execution's lease went to another process, which runs it now",
        ),
        (
            "journal-lease-expired",
            "the execution's leases were not renewed in time, so it stopped before acting again",
        ),
        (
            "journal-failed",
            "the execution's history could not be written for a reason of the journal's own",
        ),
    ];

    /// The stable code: the storage's for [`JournalError::Storage`], else
    /// one of [`JournalError::CODES`].
    pub fn code(&self) -> &'static str {
        match self {
            JournalError::Storage(e) => e.code(),
            JournalError::LeaseLost { .. } => "journal-lease-lost",
            JournalError::LeaseExpired { .. } => "journal-lease-expired",
            JournalError::Failed(_) => "journal-failed",
        }
    }
}

/// Where a durable execution's history goes.
pub trait Journal: Send + Sync {
    /// Make `events` durable (in order, after every event committed
    /// before); resolves once they are.
    fn commit(&self, events: Vec<HistoryEvent>) -> BoxFuture<'_, Result<(), JournalError>>;
}

/// An event read back from the store.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub id: u64,
    pub event_type: String,
    pub timestamp: DateTime<Utc>,
    pub details: Value,
    pub key: Option<String>,
    pub checkpoint: Option<Value>,
}

/// A journal read back for a resumed execution.
#[derive(Debug, Default)]
pub struct Replay {
    events: Vec<RecordedEvent>,
    by_key: HashMap<(String, String), usize>,
    /// Every `…@N` attempt prefix that has events.
    attempts: HashSet<String>,
    last_id: u64,
}

impl Replay {
    /// Index a journal. After an `ExecutionRedriven` event only what the
    /// redriven run keeps counts: the states that ran to their end (and
    /// everything inside them); failed and unfinished states run again.
    pub fn new(events: Vec<RecordedEvent>) -> Replay {
        let mut by_key: HashMap<(String, String), usize> = HashMap::with_capacity(events.len());
        let mut last_id = 0;
        for (i, e) in events.iter().enumerate() {
            last_id = last_id.max(e.id);
            if e.event_type == "ExecutionRedriven" {
                let completed: HashSet<&str> = by_key
                    .iter()
                    .filter(|((_, t), _)| t.ends_with("StateExited"))
                    .map(|((k, _), _)| k.as_str())
                    .collect();
                let keep: Vec<(String, String)> = by_key
                    .keys()
                    .filter(|(k, t)| (k == "/" && t == "ExecutionStarted") || within(k, &completed))
                    .cloned()
                    .collect();
                let kept: HashMap<(String, String), usize> = keep
                    .into_iter()
                    .filter_map(|k| by_key.get(&k).map(|&i| (k, i)))
                    .collect();
                by_key = kept;
            }
            if let Some(k) = &e.key {
                by_key.insert((k.clone(), e.event_type.clone()), i);
            }
        }
        let mut attempts = HashSet::new();
        for (k, _) in by_key.keys() {
            for (at, _) in k.match_indices('@') {
                let end = k[at + 1..]
                    .find(|c: char| !c.is_ascii_digit())
                    .map_or(k.len(), |n| at + 1 + n);
                attempts.insert(k[..end].to_string());
            }
        }
        Replay {
            events,
            by_key,
            attempts,
            last_id,
        }
    }

    /// The recorded event of this key and type.
    pub fn get(&self, key: &str, event_type: &str) -> Option<&RecordedEvent> {
        self.by_key
            .get(&(key.to_string(), event_type.to_string()))
            .and_then(|&i| self.events.get(i))
    }

    /// Was this attempt (`…@N`) started before?
    pub fn has_attempt(&self, attempt_key: &str) -> bool {
        self.attempts.contains(attempt_key)
    }

    /// The id of the last recorded event.
    pub fn last_id(&self) -> u64 {
        self.last_id
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The terminal event (`ExecutionSucceeded`, …) of the latest run
    /// (since the last redrive), when that run ended.
    pub fn terminal(&self) -> Option<&RecordedEvent> {
        self.events
            .iter()
            .rev()
            .take_while(|e| e.event_type != "ExecutionRedriven")
            .find(|e| is_terminal(&e.event_type))
    }

    /// How many times the execution was redriven.
    pub fn redrives(&self) -> u32 {
        self.events
            .iter()
            .filter(|e| e.event_type == "ExecutionRedriven")
            .count() as u32
    }
}

/// `ExecutionSucceeded`, `ExecutionFailed`, `ExecutionTimedOut`, `ExecutionAborted`.
pub fn is_terminal(event_type: &str) -> bool {
    matches!(
        event_type,
        "ExecutionSucceeded" | "ExecutionFailed" | "ExecutionTimedOut" | "ExecutionAborted"
    )
}

/// Is `key` a completed visit, or inside one? (Its prefixes, cut at every
/// `/` and `@`, are the enclosing visits, attempts and scopes.)
fn within(key: &str, completed: &HashSet<&str>) -> bool {
    if completed.contains(key) {
        return true;
    }
    key.char_indices()
        .filter(|(i, c)| *i > 0 && (*c == '/' || *c == '@'))
        .any(|(i, _)| completed.contains(&key[..i]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: u64, t: &str, key: &str) -> RecordedEvent {
        RecordedEvent {
            id,
            event_type: t.into(),
            timestamp: Utc::now(),
            details: Value::Null,
            key: Some(key.into()),
            checkpoint: None,
        }
    }

    #[test]
    fn journal_errors_keep_their_codes() {
        let e = JournalError::from(StorageError::new("store-conflict", "seq 4 exists"));
        assert_eq!(e.code(), "store-conflict");
        assert_eq!(e.to_string(), "[store-conflict] seq 4 exists");
        let own = [
            JournalError::LeaseLost {
                execution: "w:e".into(),
            },
            JournalError::LeaseExpired {
                execution: "w:e".into(),
            },
            JournalError::Failed("kept failing".into()),
        ];
        for e in own {
            assert!(
                JournalError::CODES.iter().any(|(c, _)| *c == e.code()),
                "{} is listed",
                e.code()
            );
        }
    }

    #[test]
    fn attempts_are_indexed_at_every_level() {
        let r = Replay::new(vec![
            ev(1, "ExecutionStarted", "/"),
            ev(2, "TaskScheduled", "/P#1@0/b1/T#2@3"),
        ]);
        assert!(r.has_attempt("/P#1@0"));
        assert!(r.has_attempt("/P#1@0/b1/T#2@3"));
        assert!(!r.has_attempt("/P#1@1"));
        assert_eq!(r.last_id(), 2);
        assert!(r.get("/P#1@0/b1/T#2@3", "TaskScheduled").is_some());
        assert!(r.get("/P#1@0/b1/T#2@3", "TaskSucceeded").is_none());
    }

    #[test]
    fn a_redrive_keeps_only_what_completed() {
        let r = Replay::new(vec![
            ev(1, "ExecutionStarted", "/"),
            ev(2, "ParallelStateEntered", "/P#1"),
            ev(3, "ParallelStateStarted", "/P#1@0"),
            ev(4, "PassStateEntered", "/P#1@0/b0/A#1"),
            ev(5, "PassStateExited", "/P#1@0/b0/A#1"),
            ev(6, "TaskStateEntered", "/P#1@0/b1/T#1"),
            ev(7, "TaskScheduled", "/P#1@0/b1/T#1@0"),
            ev(8, "TaskFailed", "/P#1@0/b1/T#1@0"),
            ev(9, "ParallelStateFailed", "/P#1"),
            ev(10, "ExecutionFailed", "/"),
            ev(11, "ExecutionRedriven", "/~redrive1"),
        ]);
        assert!(r.get("/", "ExecutionStarted").is_some());
        assert!(r.get("/P#1@0/b0/A#1", "PassStateExited").is_some());
        assert!(r.get("/P#1@0/b0/A#1", "PassStateEntered").is_some());
        assert!(
            r.get("/P#1@0/b1/T#1@0", "TaskFailed").is_none(),
            "the failed task runs again"
        );
        assert!(r.get("/P#1", "ParallelStateEntered").is_none());
        assert!(!r.has_attempt("/P#1@0/b1/T#1@0"));
        assert!(r.terminal().is_none(), "the redriven run has not ended");
        assert_eq!(r.redrives(), 1);
        assert_eq!(r.last_id(), 11);
    }
}
