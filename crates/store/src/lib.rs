//! piflow-store: durable storage of workflow definitions (versioned, with
//! aliases), executions, their history, the audit trail and leases, behind
//! one [`Store`] trait.
//!
//! **Invariant.** Every ordering and uniqueness rule is enforced by the
//! store itself (inside one write transaction in the embedded backend; by
//! conditional writes in DynamoDB): history sequence numbers are gap-free and
//! never overwritten, an execution name is unique per workflow, a lease has
//! one holder at a time, the audit chain of an environment only grows at its
//! head. Errors are [`StoreError`]s, each with a stable code.
//!
//! Backends: [`embedded::EmbeddedStore`] (redb under `.piflow/`, the
//! default) and `dynamodb::DynamoStore` (the `dynamodb` feature).
//!
//! **May depend on:** `piflow-engine` (its record types and the
//! [`piflow_engine::AuditLog`] trait it implements), redb, and with the
//! `dynamodb` feature aws-sdk-dynamodb and `piflow-aws-config`.
//!
//! **Never:** runs a workflow, calls a step, or reaches any AWS service but
//! DynamoDB.

/// A backend's [`AuditLog`]: its own [`Store::append_audit`] and
/// [`Store::audit`], with the store error's code kept.
macro_rules! audit_log_of_store {
    ($backend:ty) => {
        impl piflow_engine::AuditLog for $backend {
            fn append_entry(
                &self,
                entry: $crate::AuditEntry,
            ) -> piflow_engine::AuditFuture<'_, $crate::AuditRecord> {
                let append = $crate::Store::append_audit(self, entry);
                Box::pin(async move { Ok(append.await?) })
            }

            fn records(
                &self,
                env: &str,
                since: Option<chrono::DateTime<chrono::Utc>>,
            ) -> piflow_engine::AuditFuture<'_, Vec<$crate::AuditRecord>> {
                let read = $crate::Store::audit(self, Some(env), since);
                Box::pin(async move { Ok(read.await?) })
            }
        }
    };
}

pub mod audit;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
pub mod embedded;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use audit::{AuditEntry, AuditRecord, ChainProblem, verify_chain};
/// SHA-256 of a text, hex (the engine's).
pub use piflow_engine::sha256_hex;
pub use piflow_engine::{AuditLog, Status, StorageError};

/// Read back JSON that piflow wrote, at any depth.
///
/// What piflow accepts (an event, an `--input`, a webhook payload) is parsed
/// with serde_json's limit of 128 nested levels at its own root; stored
/// inside a record (an execution's input, a history event, an audit
/// record) it sits a few levels deeper, and an execution's output can be
/// deeper still. Reading records back with the same limit would make a
/// record piflow wrote itself unreadable (and, in a listing, hide every
/// other record with it). So records are read with no recursion limit, and
/// `serde_stacker` grows the stack on the heap for deep values instead of
/// overflowing it.
pub fn read_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    let value = T::deserialize(serde_stacker::Deserializer::new(&mut de))?;
    de.end()?;
    Ok(value)
}

/// What a store call returns.
pub type StoreFuture<'a, T> = BoxFuture<'a, Result<T, StoreError>>;

/// Store errors, each with a stable code.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An ordering or uniqueness rule refused the write.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// The database file belongs to another program, is damaged, or is open
    /// in another process.
    #[error("the store at {path} cannot be used: {reason}")]
    Unavailable { path: String, reason: String },
    #[error("store I/O failed: {0}")]
    Io(String),
    #[error("a stored record is not valid: {0}")]
    Corrupt(String),
    /// The backend kept refusing for lack of capacity after its retries.
    #[error("store throttled: {0}")]
    Throttled(String),
    /// The backend refused the credentials or the permissions.
    #[error("store access refused: {0}")]
    Auth(String),
    /// A record is larger than the backend can hold.
    #[error("record too large for the store: {0}")]
    TooLarge(String),
}

impl StoreError {
    /// Every code [`StoreError::code`] returns, with its meaning.
    pub const CODES: &[(&str, &str)] = &[
        (
            "store-conflict",
            "an ordering or uniqueness rule of the store refused the write",
        ),
        (
            "store-not-found",
            "the record asked for is not in the store",
        ),
        (
            "store-unavailable",
            "the store cannot be opened: another program's file, damaged, or open in another process",
        ),
        ("store-io", "reading or writing the store failed"),
        ("store-corrupt", "a stored record cannot be read back"),
        (
            "store-throttled",
            "the backend kept refusing for lack of capacity after its retries",
        ),
        (
            "store-auth",
            "the backend refused the credentials or the permissions",
        ),
        (
            "store-too-large",
            "a record is larger than the backend can hold",
        ),
    ];

    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Conflict(_) => "store-conflict",
            StoreError::NotFound(_) => "store-not-found",
            StoreError::Unavailable { .. } => "store-unavailable",
            StoreError::Io(_) => "store-io",
            StoreError::Corrupt(_) => "store-corrupt",
            StoreError::Throttled(_) => "store-throttled",
            StoreError::Auth(_) => "store-auth",
            StoreError::TooLarge(_) => "store-too-large",
        }
    }
}

/// The engine's traits see a store error as a [`StorageError`] with the
/// same code and text.
impl From<StoreError> for StorageError {
    fn from(e: StoreError) -> Self {
        StorageError::new(e.code(), e.to_string())
    }
}

/// One immutable version of a workflow definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DefinitionVersion {
    pub workflow: String,
    /// 1, 2, 3 … per workflow.
    pub version: u64,
    /// SHA-256 of the definition text, hex.
    pub content_hash: String,
    pub definition: String,
    pub author: String,
    pub created: DateTime<Utc>,
    pub source_commit: Option<String>,
}

/// A definition to publish.
#[derive(Debug, Clone)]
pub struct NewDefinition {
    pub workflow: String,
    pub definition: String,
    pub author: String,
    pub source_commit: Option<String>,
}

/// An execution's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    pub id: String,
    pub workflow: String,
    /// Unique per workflow.
    pub name: String,
    pub version: u64,
    /// Written as AWS writes it (`RUNNING`, `SUCCEEDED`, …).
    pub status: Status,
    pub input: Value,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    /// Who or what started it (`cli:alice`, `tag:dev_us-east-1/research/1.0`, …).
    pub trigger: String,
    pub started: DateTime<Utc>,
    pub stopped: Option<DateTime<Utc>>,
    /// Bumped by every update; an update must carry the revision it read
    /// (optimistic concurrency: a stale update is a `Conflict`).
    #[serde(default)]
    pub revision: u64,
    /// How many times the execution was redriven.
    #[serde(default)]
    pub redrive_count: u32,
    /// `piflow stop` asked the process running it to stop (who, and why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_requested: Option<String>,
    /// The error and cause the stop gave (StopExecution's), recorded on
    /// the execution's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<StopReason>,
    /// The environment whose lease (`env:NAME`) the execution holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// The Step Functions state machine version it was started through
    /// (its ARN), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_arn: Option<String>,
    /// The Step Functions state machine alias it was started through (its
    /// ARN), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias_arn: Option<String>,
    /// The test case of the mock file the execution runs with (a Step
    /// Functions API start of `…:stateMachine:NAME#CASE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_case: Option<String>,
}

/// The error and cause of a stop request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StopReason {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// Which executions [`Store::list_executions`] returns: the newest first,
/// filtered in the backend's query (an index by status and start time in
/// both backends), so that a limit reads about that many records rather
/// than every one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecutionQuery {
    /// Only executions with this status.
    pub status: Option<Status>,
    /// Only executions of this workflow.
    pub workflow: Option<String>,
    /// At most this many, the newest; `None`: all of them.
    pub limit: Option<usize>,
}

impl ExecutionQuery {
    /// Whether `r` is one the query asks for (its limit aside).
    pub fn matches(&self, r: &ExecutionRecord) -> bool {
        self.status.is_none_or(|s| r.status == s)
            && self.workflow.as_deref().is_none_or(|w| r.workflow == w)
    }

    /// Whether `n` records fill the query.
    pub fn full(&self, n: usize) -> bool {
        self.limit.is_some_and(|l| n >= l)
    }
}

/// Newest first, ties by id: the order [`Store::list_executions`] returns.
pub fn newest_first(list: &mut [ExecutionRecord]) {
    list.sort_by(|a, b| b.started.cmp(&a.started).then_with(|| a.id.cmp(&b.id)));
}

/// Starting an execution: new, or the one that already has this name.
#[derive(Debug, Clone, PartialEq)]
pub enum StartOutcome {
    Created(ExecutionRecord),
    Existing(ExecutionRecord),
}

/// One history event as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// 1, 2, 3 … gap-free per execution.
    pub seq: u64,
    pub event_type: String,
    pub state: Option<String>,
    pub timestamp: DateTime<Utc>,
    pub details: Value,
    /// Where the event was recorded in the workflow (scope path, state,
    /// visit, attempt): how a resumed execution finds what already happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// What a resumed execution needs to continue after this event without
    /// running its state again (next state, assigned variables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Value>,
}

/// A lease on a key such as `env:prod`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    pub key: String,
    pub holder: String,
    pub expires: DateTime<Utc>,
}

/// The answer to a lease request.
#[derive(Debug, Clone, PartialEq)]
pub enum LeaseOutcome {
    Acquired(Lease),
    /// Someone else holds it until `expires`.
    Held(Lease),
}

/// A place in the FIFO queue for a lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Waiter {
    pub key: String,
    pub holder: String,
    /// Order of arrival; lower goes first.
    pub ticket: u64,
    /// A waiter that stops renewing its place drops out of the queue.
    pub expires: DateTime<Utc>,
}

/// The answer to a `.waitForTaskToken` task, sent by `send-task-success` or
/// `send-task-failure` from any process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskAnswer {
    pub token: String,
    /// `{"output": …}` or `{"error": …, "cause": …}`.
    pub outcome: Value,
    pub at: DateTime<Utc>,
}

/// A named record of some kind that a layer above keeps in the store (the
/// Step Functions API keeps its state machines as kind `sfn-machine`):
/// the store knows its kind, name and revision, not its body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub kind: String,
    pub name: String,
    pub body: Value,
    /// Bumped by every write; a write must carry the revision it read (0:
    /// the resource is new), else `Conflict`.
    pub revision: u64,
}

/// The store. It is also the engine's [`AuditLog`] (its audit chain, as
/// steps reach it), so an `Arc<dyn Store>` upcasts to an
/// `Arc<dyn AuditLog>`.
pub trait Store: AuditLog {
    /// Publish a definition. Publishing text identical to the latest version
    /// returns that version instead of creating a new one.
    fn publish(&self, new: NewDefinition) -> StoreFuture<'_, DefinitionVersion>;
    fn definition(
        &self,
        workflow: &str,
        version: u64,
    ) -> StoreFuture<'_, Option<DefinitionVersion>>;
    /// All versions of a workflow (or of every workflow), oldest first.
    fn definitions(&self, workflow: Option<&str>) -> StoreFuture<'_, Vec<DefinitionVersion>>;
    /// The newest version of a workflow, reading that one only.
    fn latest_definition(&self, workflow: &str) -> StoreFuture<'_, Option<DefinitionVersion>>;
    /// The names of the workflows with a published version, by name,
    /// reading no definition.
    fn workflows(&self) -> StoreFuture<'_, Vec<String>>;
    /// Point `alias` (e.g. `live`) at a version that exists.
    fn set_alias(&self, workflow: &str, alias: &str, version: u64) -> StoreFuture<'_, ()>;
    fn alias(&self, workflow: &str, alias: &str) -> StoreFuture<'_, Option<u64>>;

    /// Record a new execution, or return the existing one with its name.
    fn start_execution(&self, record: ExecutionRecord) -> StoreFuture<'_, StartOutcome>;
    /// Replace an execution's record. `record.revision` must be the stored
    /// revision (else `Conflict`: someone else updated it); the stored
    /// record, with the next revision, is returned.
    fn update_execution(&self, record: ExecutionRecord) -> StoreFuture<'_, ExecutionRecord>;
    fn execution(&self, id: &str) -> StoreFuture<'_, Option<ExecutionRecord>>;
    /// Executions, newest first (ties: by id), that match `query`, at most
    /// `query.limit` of them. The backend filters and stops in its own
    /// query: it reads the records it returns, plus those of the index
    /// range it skips for another workflow.
    fn list_executions(&self, query: ExecutionQuery) -> StoreFuture<'_, Vec<ExecutionRecord>>;
    /// Every execution, newest first, optionally with one status.
    fn executions(&self, status: Option<Status>) -> StoreFuture<'_, Vec<ExecutionRecord>> {
        self.list_executions(ExecutionQuery {
            status,
            ..ExecutionQuery::default()
        })
    }

    /// Append events; the first must have `seq` = the last stored + 1 and
    /// the rest follow without gaps, else `Conflict` and nothing is written.
    fn append_events(&self, execution: &str, events: Vec<StoredEvent>) -> StoreFuture<'_, ()>;
    fn events(&self, execution: &str) -> StoreFuture<'_, Vec<StoredEvent>>;

    /// Append to an environment's audit chain (sequence and hashes are
    /// assigned by the store). An entry whose `token` the environment's
    /// chain already has is not appended again: the record written the first
    /// time is returned.
    fn append_audit(&self, entry: AuditEntry) -> StoreFuture<'_, AuditRecord>;
    /// The newest record of an environment's chain, kept apart from the
    /// records so that removing records from the end is detected too.
    fn audit_head(&self, env: &str) -> StoreFuture<'_, Option<AuditRecord>>;
    /// Audit records of one environment (or all), oldest first.
    fn audit(
        &self,
        env: Option<&str>,
        since: Option<DateTime<Utc>>,
    ) -> StoreFuture<'_, Vec<AuditRecord>>;

    /// Take `key` for `holder` until now + `ttl`, if it is free, expired or
    /// already `holder`'s (then it is renewed).
    fn acquire_lease(
        &self,
        key: &str,
        holder: &str,
        ttl: chrono::Duration,
    ) -> StoreFuture<'_, LeaseOutcome>;
    /// Take `key` for `holder` as [`Store::acquire_lease`] does, or, when
    /// it is still exactly `current` (the same holder and expiry, as read
    /// before), although `current` has not expired: the caller found that
    /// `current`'s holder is gone. One conditional write: of two callers
    /// replacing the same `current`, one wins and the other is told who
    /// holds it now.
    fn take_over_lease(
        &self,
        key: &str,
        current: &Lease,
        holder: &str,
        ttl: chrono::Duration,
    ) -> StoreFuture<'_, LeaseOutcome>;
    /// Give the lease up (only its holder can).
    fn release_lease(&self, key: &str, holder: &str) -> StoreFuture<'_, ()>;
    /// The lease on `key`, expired or not.
    fn lease(&self, key: &str) -> StoreFuture<'_, Option<Lease>>;

    /// Join the FIFO queue for `key` (or renew one's place, keeping the
    /// ticket) until now + `ttl`.
    fn join_queue(&self, key: &str, holder: &str, ttl: chrono::Duration)
    -> StoreFuture<'_, Waiter>;
    /// The live waiters for `key`, first in line first.
    fn queue(&self, key: &str) -> StoreFuture<'_, Vec<Waiter>>;
    fn leave_queue(&self, key: &str, holder: &str) -> StoreFuture<'_, ()>;

    /// Record the answer to a task token; a token is answered once
    /// (`Conflict` the second time).
    fn answer_task(&self, answer: TaskAnswer) -> StoreFuture<'_, ()>;
    fn task_answer(&self, token: &str) -> StoreFuture<'_, Option<TaskAnswer>>;

    /// Write a resource: `revision` 0 creates it (`Conflict` when it
    /// exists); any other must be the stored revision (`Conflict` when
    /// someone else wrote it since, `NotFound` when it is gone). The
    /// stored resource, with the next revision, is returned.
    fn put_resource(&self, resource: Resource) -> StoreFuture<'_, Resource>;
    fn resource(&self, kind: &str, name: &str) -> StoreFuture<'_, Option<Resource>>;
    /// Every resource of a kind, by name.
    fn resources(&self, kind: &str) -> StoreFuture<'_, Vec<Resource>>;
}

#[cfg(feature = "dynamodb")]
async fn open_dynamodb(_spec: &str, table: &str) -> Result<Arc<dyn Store>, StoreError> {
    dynamodb::open(table).await
}

/// Without the `dynamodb` feature, a `dynamodb://` store cannot be opened.
#[cfg(not(feature = "dynamodb"))]
async fn open_dynamodb(spec: &str, _table: &str) -> Result<Arc<dyn Store>, StoreError> {
    Err(StoreError::Unavailable {
        path: spec.to_string(),
        reason: "this piflow was built without the dynamodb feature: use an embedded store, or a build with the feature".into(),
    })
}

/// Verify an environment's chain: [`verify_chain`] over its records, and
/// the last record against the stored head.
pub async fn verify_audit(store: &dyn Store, env: &str) -> Result<Vec<ChainProblem>, StoreError> {
    let records = store.audit(Some(env), None).await?;
    let mut problems = verify_chain(&records);
    let head = store.audit_head(env).await?;
    match (records.last(), head) {
        (Some(last), Some(head)) if last.hash != head.hash || last.seq != head.seq => problems.push(ChainProblem {
            env: env.to_string(),
            seq: head.seq,
            problem: format!(
                "the chain ends at record {} but its head is record {}: records were removed from the end",
                last.seq, head.seq
            ),
        }),
        (None, Some(head)) => problems.push(ChainProblem {
            env: env.to_string(),
            seq: head.seq,
            problem: "every record of the chain was removed".into(),
        }),
        _ => {}
    }
    Ok(problems)
}

/// Open the store named by `spec`: `dynamodb://TABLE`, a path to an
/// embedded store file, or (None) the embedded default under `PIFLOW_HOME`
/// or `.piflow/`.
pub async fn open(spec: Option<&str>) -> Result<Arc<dyn Store>, StoreError> {
    match spec {
        Some(s) if s.starts_with("dynamodb://") => {
            let table = &s["dynamodb://".len()..];
            if table.is_empty() {
                return Err(StoreError::Unavailable {
                    path: s.to_string(),
                    reason: "no table name: write dynamodb://TABLE".into(),
                });
            }
            open_dynamodb(s, table).await
        }
        Some(path) => Ok(Arc::new(embedded::EmbeddedStore::open(path)?)),
        None => Ok(Arc::new(embedded::EmbeddedStore::open(
            embedded::EmbeddedStore::default_path(),
        )?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_store_error_code_is_listed() {
        let errors = [
            StoreError::Conflict("x".into()),
            StoreError::NotFound("x".into()),
            StoreError::Unavailable {
                path: "p".into(),
                reason: "r".into(),
            },
            StoreError::Io("x".into()),
            StoreError::Corrupt("x".into()),
            StoreError::Throttled("x".into()),
            StoreError::Auth("x".into()),
            StoreError::TooLarge("x".into()),
        ];
        for e in &errors {
            assert!(
                StoreError::CODES.iter().any(|(c, _)| *c == e.code()),
                "{}",
                e.code()
            );
        }
        assert_eq!(errors.len(), StoreError::CODES.len());
        let seen = StorageError::from(StoreError::Io("disk full".into()));
        assert_eq!(seen.code(), "store-io");
        assert_eq!(seen.to_string(), "[store-io] store I/O failed: disk full");
    }

    /// Records written when the status was a string read back, and are
    /// written again, unchanged.
    #[test]
    fn stored_statuses_read_as_before() {
        for status in ["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"] {
            let stored = serde_json::json!({
                "id": "w:e", "workflow": "w", "name": "e", "version": 1,
                "status": status, "input": {}, "output": null, "error": null,
                "cause": null, "trigger": "cli:test",
                "started": "2024-01-01T00:00:00Z", "stopped": null,
            });
            let r: Result<ExecutionRecord, _> = serde_json::from_value(stored);
            let Ok(r) = r else {
                panic!("{status} does not read: {r:?}");
            };
            assert_eq!(r.status.as_str(), status);
            let again = serde_json::to_value(&r).unwrap_or_default();
            assert_eq!(again["status"], status);
        }
        let bad = serde_json::from_value::<ExecutionRecord>(serde_json::json!({
            "id": "w:e", "workflow": "w", "name": "e", "version": 1,
            "status": "PENDING", "input": {}, "output": null, "error": null,
            "cause": null, "trigger": "cli:test",
            "started": "2024-01-01T00:00:00Z", "stopped": null,
        }));
        assert!(bad.is_err(), "an unknown status is a corrupt record");
    }

    #[test]
    fn a_store_is_an_audit_log() {
        fn upcast(store: Arc<dyn Store>) -> Arc<dyn AuditLog> {
            store
        }
        let dir = std::env::temp_dir().join(format!("piflow-store-{}", uuid::Uuid::new_v4()));
        let store: Arc<dyn Store> = match embedded::EmbeddedStore::open(dir.join("s.redb")) {
            Ok(s) => Arc::new(s),
            Err(e) => panic!("open: {e}"),
        };
        let log = upcast(store.clone());
        let rt = tokio::runtime::Builder::new_current_thread().build();
        let Ok(rt) = rt else {
            panic!("runtime");
        };
        rt.block_on(async {
            let entry = AuditEntry {
                env: "dev".into(),
                actor: "test".into(),
                action: "note".into(),
                target: "t".into(),
                before: Value::Null,
                after: Value::Null,
                result: "ok".into(),
                execution: None,
                at: Utc::now(),
                token: Some("tok".into()),
            };
            let first = log.append_entry(entry.clone()).await;
            let again = log.append_entry(entry).await;
            assert!(first.is_ok() && first == again, "idempotent by token");
            let records = log.records("dev", None).await.unwrap_or_default();
            assert_eq!(records.len(), 1);
            let by_store = store.audit(Some("dev"), None).await.unwrap_or_default();
            assert_eq!(records, by_store);
            assert!(log.records("prod", None).await.is_ok_and(|r| r.is_empty()));
        });
        let _ = std::fs::remove_dir_all(dir);
    }
}
