//! The embedded store: one redb file (`.piflow/piflow.redb`, or under
//! `PIFLOW_HOME`). redb is pure Rust, crash-safe (copy-on-write B-trees with
//! a checksummed commit), fsyncs every durable commit, and refuses a second
//! process that opens the same file; see docs/store.md for why it was chosen.
//!
//! Each [`Store`] call is one write transaction, so every rule (gap-free
//! history, unique execution names, one lease holder, the audit chain head)
//! is checked and applied atomically.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use redb::{ConcurrencyMode, Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::audit::{AuditEntry, AuditRecord, chain};
use super::{
    DefinitionVersion, ExecutionQuery, ExecutionRecord, Lease, LeaseOutcome, NewDefinition,
    Resource, StartOutcome, Store, StoreError, StoreFuture, StoredEvent, TaskAnswer, Waiter,
    newest_first, sha256_hex,
};

const DEFINITIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("definitions");
const ALIASES: TableDefinition<&str, u64> = TableDefinition::new("aliases");
const EXECUTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("executions");
const EXECUTION_NAMES: TableDefinition<&str, &str> = TableDefinition::new("execution_names");
const EVENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("events");
const AUDIT: TableDefinition<&str, &[u8]> = TableDefinition::new("audit");
const AUDIT_HEADS: TableDefinition<&str, &[u8]> = TableDefinition::new("audit_heads");
const LEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("leases");
const QUEUE: TableDefinition<&str, &[u8]> = TableDefinition::new("lease_queue");
const QUEUE_TICKETS: TableDefinition<&str, u64> = TableDefinition::new("lease_queue_tickets");
const TASK_ANSWERS: TableDefinition<&str, &[u8]> = TableDefinition::new("task_answers");
const AUDIT_TOKENS: TableDefinition<&str, u64> = TableDefinition::new("audit_tokens");
/// Resources, by `kind \u{1} name`.
const RESOURCES: TableDefinition<&str, &[u8]> = TableDefinition::new("resources");
/// Every execution by start time: `started#id` (the DynamoDB index's sort
/// key, fixed width so that text order is time order) → id.
const EXECUTIONS_BY_START: TableDefinition<&str, &str> =
    TableDefinition::new("executions_by_start");
/// Executions by status, then start time: `STATUS\u{1}started#id` → id.
const EXECUTIONS_BY_STATUS: TableDefinition<&str, &str> =
    TableDefinition::new("executions_by_status");

/// Keys sort by their parts: `a\u{1}b` keeps every key of `a` together, and
/// numbers are zero-padded so that they sort numerically.
fn key2(a: &str, b: &str) -> String {
    format!("{a}\u{1}{b}")
}

fn seq_key(a: &str, seq: u64) -> String {
    format!("{a}\u{1}{seq:020}")
}

/// An execution's key in [`EXECUTIONS_BY_START`].
fn start_key(r: &ExecutionRecord) -> String {
    format!("{}#{}", r.started.format("%Y-%m-%dT%H:%M:%S%.9fZ"), r.id)
}

/// An execution's key in [`EXECUTIONS_BY_STATUS`].
fn status_key(r: &ExecutionRecord) -> String {
    key2(r.status.as_str(), &start_key(r))
}

/// Create `dir` and its missing parents readable by their owner only
/// (0700 on unix; an existing directory keeps its mode).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Create the store file, empty, readable and writable by its owner only
/// (0600 on unix), unless it exists (then its mode is left as it is);
/// redb initialises an empty file.
fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// The range of keys that start with `a\u{1}`.
fn prefix_range(a: &str) -> (String, String) {
    (format!("{a}\u{1}"), format!("{a}\u{2}"))
}

pub struct EmbeddedStore {
    db: Arc<Database>,
    path: PathBuf,
    /// History appends waiting for the next group commit, and whether a
    /// committer is running.
    pending: Arc<Mutex<(Vec<Batch>, bool)>>,
    group_commit: bool,
    /// Write transactions committed (each one fsync), for benchmarks.
    commits: Arc<std::sync::atomic::AtomicU64>,
}

/// One `append_events` call waiting for its commit.
struct Batch {
    execution: String,
    events: Vec<StoredEvent>,
    done: tokio::sync::oneshot::Sender<Result<(), StoreError>>,
}

impl EmbeddedStore {
    /// Open (or create) the store file at `path`. A directory or file it
    /// creates is its owner's only (0700, 0600): the store holds every
    /// execution's input and output.
    pub fn open(path: impl AsRef<Path>) -> Result<EmbeddedStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let shown = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir).map_err(|e| StoreError::Unavailable {
                path: shown.clone(),
                reason: format!("cannot create {}: {e}", dir.display()),
            })?;
        }
        create_private_file(&path).map_err(|e| StoreError::Unavailable {
            path: shown.clone(),
            reason: format!("cannot create the file: {e}"),
        })?;
        let mut builder = Database::builder();
        // Several piflow processes (a running execution, `piflow executions`
        // in another terminal, 20 concurrent starts) share the file; redb
        // serialises their write transactions with file locks.
        builder.set_concurrency_mode(ConcurrencyMode::MultiWriter);
        let db = builder.create(&path).map_err(|e| StoreError::Unavailable {
            path: shown.clone(),
            reason: match e {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    "it is open in another piflow process (only one process may use an embedded store; use dynamodb:// to share one)".into()
                }
                other => format!(
                    "{other} (is it a piflow store? move it away to start a new one)"
                ),
            },
        })?;
        let store = EmbeddedStore {
            db: Arc::new(db),
            path,
            pending: Arc::new(Mutex::new((Vec::new(), false))),
            group_commit: true,
            commits: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        };
        store.init_tables()?;
        Ok(store)
    }

    /// The default location: `$PIFLOW_HOME/piflow.redb`, else `.piflow/piflow.redb`.
    pub fn default_path() -> PathBuf {
        match std::env::var_os("PIFLOW_HOME") {
            Some(home) => PathBuf::from(home).join("piflow.redb"),
            None => PathBuf::from(".piflow").join("piflow.redb"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// With group commit (the default), history appends that arrive while a
    /// commit is being written share the next commit and its fsync; without,
    /// every append is its own commit (for comparison in benchmarks).
    pub fn set_group_commit(&mut self, on: bool) {
        self.group_commit = on;
    }

    /// Write transactions this handle committed (each is one fsync).
    pub fn commits(&self) -> u64 {
        self.commits.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn init_tables(&self) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(io)?;
        tx.open_table(DEFINITIONS).map_err(io)?;
        tx.open_table(ALIASES).map_err(io)?;
        tx.open_table(EXECUTIONS).map_err(io)?;
        tx.open_table(EXECUTION_NAMES).map_err(io)?;
        tx.open_table(EVENTS).map_err(io)?;
        tx.open_table(AUDIT).map_err(io)?;
        tx.open_table(AUDIT_HEADS).map_err(io)?;
        tx.open_table(LEASES).map_err(io)?;
        tx.open_table(QUEUE).map_err(io)?;
        tx.open_table(QUEUE_TICKETS).map_err(io)?;
        tx.open_table(TASK_ANSWERS).map_err(io)?;
        tx.open_table(AUDIT_TOKENS).map_err(io)?;
        tx.open_table(RESOURCES).map_err(io)?;
        index_executions(&tx)?;
        tx.commit().map_err(io)
    }

    /// Run `f` in one write transaction and commit it durably.
    fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let tx = self.db.begin_write().map_err(io)?;
        let out = f(&tx)?;
        tx.commit().map_err(io)?;
        self.commits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(out)
    }

    fn read_range<T: DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        range: (String, String),
    ) -> Result<Vec<T>, StoreError> {
        let tx = self.db.begin_read().map_err(io)?;
        let t = tx.open_table(table).map_err(io)?;
        let mut out = Vec::new();
        for item in t.range(range.0.as_str()..range.1.as_str()).map_err(io)? {
            let (_, v) = item.map_err(io)?;
            out.push(decode(v.value())?);
        }
        Ok(out)
    }

    fn read_one<T: DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let tx = self.db.begin_read().map_err(io)?;
        let t = tx.open_table(table).map_err(io)?;
        match t.get(key).map_err(io)? {
            Some(v) => Ok(Some(decode(v.value())?)),
            None => Ok(None),
        }
    }
}

/// Build the execution indexes when they do not hold every execution (a
/// store written before they existed): read every record once.
fn index_executions(tx: &redb::WriteTransaction) -> Result<(), StoreError> {
    use redb::ReadableTableMetadata;
    let count = |tx: &redb::WriteTransaction| -> Result<(u64, u64, u64), StoreError> {
        Ok((
            tx.open_table(EXECUTIONS).map_err(io)?.len().map_err(io)?,
            tx.open_table(EXECUTIONS_BY_START)
                .map_err(io)?
                .len()
                .map_err(io)?,
            tx.open_table(EXECUTIONS_BY_STATUS)
                .map_err(io)?
                .len()
                .map_err(io)?,
        ))
    };
    let (records, by_start, by_status) = count(tx)?;
    if records == by_start && records == by_status {
        return Ok(());
    }
    tx.delete_table(EXECUTIONS_BY_START).map_err(io)?;
    tx.delete_table(EXECUTIONS_BY_STATUS).map_err(io)?;
    let execs = tx.open_table(EXECUTIONS).map_err(io)?;
    let mut starts = tx.open_table(EXECUTIONS_BY_START).map_err(io)?;
    let mut statuses = tx.open_table(EXECUTIONS_BY_STATUS).map_err(io)?;
    for item in execs.iter().map_err(io)? {
        let (_, v) = item.map_err(io)?;
        let r: ExecutionRecord = decode(v.value())?;
        starts
            .insert(start_key(&r).as_str(), r.id.as_str())
            .map_err(io)?;
        statuses
            .insert(status_key(&r).as_str(), r.id.as_str())
            .map_err(io)?;
    }
    Ok(())
}

/// The sequence number the next audit record of `env` gets.
fn chain_seq(heads: &redb::Table<'_, &str, &[u8]>, env: &str) -> Result<u64, StoreError> {
    let head: Option<AuditRecord> = heads
        .get(env)
        .map_err(io)?
        .map(|v| decode(v.value()))
        .transpose()?;
    Ok(head.map_or(1, |h| h.seq + 1))
}

/// Append a batch after checking that it continues the stored history.
fn insert_events(
    t: &mut redb::Table<'_, &str, &[u8]>,
    execution: &str,
    events: &[StoredEvent],
) -> Result<(), StoreError> {
    let last: Option<StoredEvent> = last_in(t, &prefix_range(execution))?;
    let first = last.map_or(1, |e| e.seq + 1);
    let mut encoded = Vec::with_capacity(events.len());
    for (want, e) in (first..).zip(events.iter()) {
        if e.seq != want {
            return Err(StoreError::Conflict(format!(
                "history of {execution}: event {} where {want} is next (duplicate or out of order)",
                e.seq
            )));
        }
        encoded.push((seq_key(execution, e.seq), encode(e)?));
    }
    for (k, v) in encoded {
        t.insert(k.as_str(), v.as_slice()).map_err(io)?;
    }
    Ok(())
}

/// The group committer: writes every waiting batch in one transaction (one
/// fsync), answers each, and repeats until nothing waits.
fn commit_loop(
    db: &Database,
    pending: &Mutex<(Vec<Batch>, bool)>,
    commits: &std::sync::atomic::AtomicU64,
) {
    loop {
        let batches = {
            let mut p = pending.lock().unwrap_or_else(|p| p.into_inner());
            if p.0.is_empty() {
                p.1 = false;
                return;
            }
            std::mem::take(&mut p.0)
        };
        let mut results: Vec<Result<(), StoreError>> = Vec::with_capacity(batches.len());
        let committed = (|| {
            let tx = db.begin_write().map_err(io)?;
            {
                let mut t = tx.open_table(EVENTS).map_err(io)?;
                for b in &batches {
                    // A refused batch is answered alone; the others commit.
                    results.push(insert_events(&mut t, &b.execution, &b.events));
                }
            }
            tx.commit().map_err(io)
        })();
        if committed.is_ok() {
            commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        for (i, b) in batches.into_iter().enumerate() {
            let r = match &committed {
                Ok(()) => results
                    .get_mut(i)
                    .map(|r| std::mem::replace(r, Ok(())))
                    .unwrap_or(Ok(())),
                Err(e) => Err(StoreError::Io(e.to_string())),
            };
            let _ = b.done.send(r);
        }
    }
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    crate::read_json(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Take `key` for `holder` when it is free, expired, `holder`'s own, or
/// still exactly `replacing` (same holder and expiry).
fn put_lease(
    tx: &redb::WriteTransaction,
    key: &str,
    holder: &str,
    ttl: chrono::Duration,
    replacing: Option<&Lease>,
) -> Result<LeaseOutcome, StoreError> {
    let mut t = tx.open_table(LEASES).map_err(io)?;
    let now = Utc::now();
    let current: Option<Lease> = t
        .get(key)
        .map_err(io)?
        .map(|v| decode(v.value()))
        .transpose()?;
    let replaceable = |l: &Lease| {
        l.holder == holder
            || l.expires <= now
            || replacing.is_some_and(|r| r.holder == l.holder && r.expires == l.expires)
    };
    if let Some(l) = current.filter(|l| !replaceable(l)) {
        return Ok(LeaseOutcome::Held(l));
    }
    let lease = Lease {
        key: key.to_string(),
        holder: holder.to_string(),
        expires: now + ttl,
    };
    t.insert(key, encode(&lease)?.as_slice()).map_err(io)?;
    Ok(LeaseOutcome::Acquired(lease))
}

/// The last `(key, value)` of a key range in a write transaction's table.
fn last_in<T: DeserializeOwned>(
    t: &redb::Table<'_, &str, &[u8]>,
    range: &(String, String),
) -> Result<Option<T>, StoreError> {
    match t
        .range(range.0.as_str()..range.1.as_str())
        .map_err(io)?
        .next_back()
    {
        Some(item) => {
            let (_, v) = item.map_err(io)?;
            Ok(Some(decode(v.value())?))
        }
        None => Ok(None),
    }
}

audit_log_of_store!(EmbeddedStore);

impl Store for EmbeddedStore {
    fn publish(&self, new: NewDefinition) -> StoreFuture<'_, DefinitionVersion> {
        Box::pin(async move {
            self.write(|tx| {
                let mut t = tx.open_table(DEFINITIONS).map_err(io)?;
                let range = prefix_range(&new.workflow);
                let latest: Option<DefinitionVersion> = last_in(&t, &range)?;
                let hash = sha256_hex(new.definition.as_bytes());
                if let Some(l) = latest.as_ref().filter(|l| l.content_hash == hash) {
                    return Ok(l.clone());
                }
                let d = DefinitionVersion {
                    version: latest.map_or(1, |l| l.version + 1),
                    workflow: new.workflow.clone(),
                    content_hash: hash,
                    definition: new.definition,
                    author: new.author,
                    created: Utc::now(),
                    source_commit: new.source_commit,
                };
                t.insert(
                    seq_key(&d.workflow, d.version).as_str(),
                    encode(&d)?.as_slice(),
                )
                .map_err(io)?;
                Ok(d)
            })
        })
    }

    fn definition(
        &self,
        workflow: &str,
        version: u64,
    ) -> StoreFuture<'_, Option<DefinitionVersion>> {
        let key = seq_key(workflow, version);
        Box::pin(async move { self.read_one(DEFINITIONS, &key) })
    }

    fn definitions(&self, workflow: Option<&str>) -> StoreFuture<'_, Vec<DefinitionVersion>> {
        let range = match workflow {
            Some(w) => prefix_range(w),
            None => (String::new(), "\u{10FFFF}".to_string()),
        };
        Box::pin(async move { self.read_range(DEFINITIONS, range) })
    }

    fn latest_definition(&self, workflow: &str) -> StoreFuture<'_, Option<DefinitionVersion>> {
        let range = prefix_range(workflow);
        Box::pin(async move {
            let tx = self.db.begin_read().map_err(io)?;
            let t = tx.open_table(DEFINITIONS).map_err(io)?;
            let last = t
                .range(range.0.as_str()..range.1.as_str())
                .map_err(io)?
                .next_back();
            match last {
                Some(item) => {
                    let (_, v) = item.map_err(io)?;
                    Ok(Some(decode(v.value())?))
                }
                None => Ok(None),
            }
        })
    }

    fn workflows(&self) -> StoreFuture<'_, Vec<String>> {
        Box::pin(async move {
            let tx = self.db.begin_read().map_err(io)?;
            let t = tx.open_table(DEFINITIONS).map_err(io)?;
            let mut out: Vec<String> = Vec::new();
            // Keys only: `workflow␁version`, in order.
            for item in t.iter().map_err(io)? {
                let (k, _) = item.map_err(io)?;
                let key = k.value();
                let name = key.split_once('\u{1}').map_or(key, |(w, _)| w);
                if out.last().map(String::as_str) != Some(name) {
                    out.push(name.to_string());
                }
            }
            Ok(out)
        })
    }

    fn set_alias(&self, workflow: &str, alias: &str, version: u64) -> StoreFuture<'_, ()> {
        let (workflow, alias) = (workflow.to_string(), alias.to_string());
        Box::pin(async move {
            self.write(|tx| {
                let defs = tx.open_table(DEFINITIONS).map_err(io)?;
                if defs
                    .get(seq_key(&workflow, version).as_str())
                    .map_err(io)?
                    .is_none()
                {
                    return Err(StoreError::NotFound(format!(
                        "{workflow} has no version {version}"
                    )));
                }
                let mut t = tx.open_table(ALIASES).map_err(io)?;
                t.insert(key2(&workflow, &alias).as_str(), version)
                    .map_err(io)?;
                Ok(())
            })
        })
    }

    fn alias(&self, workflow: &str, alias: &str) -> StoreFuture<'_, Option<u64>> {
        let key = key2(workflow, alias);
        Box::pin(async move {
            let tx = self.db.begin_read().map_err(io)?;
            let t = tx.open_table(ALIASES).map_err(io)?;
            Ok(t.get(key.as_str()).map_err(io)?.map(|v| v.value()))
        })
    }

    fn start_execution(&self, record: ExecutionRecord) -> StoreFuture<'_, StartOutcome> {
        Box::pin(async move {
            self.write(|tx| {
                let mut names = tx.open_table(EXECUTION_NAMES).map_err(io)?;
                let mut execs = tx.open_table(EXECUTIONS).map_err(io)?;
                let name_key = key2(&record.workflow, &record.name);
                let existing = names
                    .get(name_key.as_str())
                    .map_err(io)?
                    .map(|id| id.value().to_string());
                if let Some(id) = existing {
                    let found = execs
                        .get(id.as_str())
                        .map_err(io)?
                        .map(|v| decode(v.value()))
                        .transpose()?;
                    return found.map(StartOutcome::Existing).ok_or_else(|| {
                        StoreError::Corrupt(format!(
                            "execution name {} points at missing {id}",
                            record.name
                        ))
                    });
                }
                if execs.get(record.id.as_str()).map_err(io)?.is_some() {
                    return Err(StoreError::Conflict(format!(
                        "execution id {} is already used",
                        record.id
                    )));
                }
                names
                    .insert(name_key.as_str(), record.id.as_str())
                    .map_err(io)?;
                execs
                    .insert(record.id.as_str(), encode(&record)?.as_slice())
                    .map_err(io)?;
                tx.open_table(EXECUTIONS_BY_START)
                    .map_err(io)?
                    .insert(start_key(&record).as_str(), record.id.as_str())
                    .map_err(io)?;
                tx.open_table(EXECUTIONS_BY_STATUS)
                    .map_err(io)?
                    .insert(status_key(&record).as_str(), record.id.as_str())
                    .map_err(io)?;
                Ok(StartOutcome::Created(record))
            })
        })
    }

    fn update_execution(&self, record: ExecutionRecord) -> StoreFuture<'_, ExecutionRecord> {
        Box::pin(async move {
            self.write(|tx| {
                let mut execs = tx.open_table(EXECUTIONS).map_err(io)?;
                let stored: ExecutionRecord = match execs.get(record.id.as_str()).map_err(io)? {
                    Some(v) => decode(v.value())?,
                    None => return Err(StoreError::NotFound(format!("execution {}", record.id))),
                };
                if stored.revision != record.revision {
                    return Err(StoreError::Conflict(format!(
                        "execution {} was updated by someone else (revision {} is stored, {} was read)",
                        record.id, stored.revision, record.revision
                    )));
                }
                let mut record = record;
                record.revision += 1;
                execs
                    .insert(record.id.as_str(), encode(&record)?.as_slice())
                    .map_err(io)?;
                if start_key(&stored) != start_key(&record) {
                    let mut starts = tx.open_table(EXECUTIONS_BY_START).map_err(io)?;
                    starts.remove(start_key(&stored).as_str()).map_err(io)?;
                    starts
                        .insert(start_key(&record).as_str(), record.id.as_str())
                        .map_err(io)?;
                }
                if status_key(&stored) != status_key(&record) {
                    let mut statuses = tx.open_table(EXECUTIONS_BY_STATUS).map_err(io)?;
                    statuses.remove(status_key(&stored).as_str()).map_err(io)?;
                    statuses
                        .insert(status_key(&record).as_str(), record.id.as_str())
                        .map_err(io)?;
                }
                Ok(record)
            })
        })
    }

    fn execution(&self, id: &str) -> StoreFuture<'_, Option<ExecutionRecord>> {
        let id = id.to_string();
        Box::pin(async move { self.read_one(EXECUTIONS, &id) })
    }

    fn list_executions(&self, query: ExecutionQuery) -> StoreFuture<'_, Vec<ExecutionRecord>> {
        Box::pin(async move {
            let mut out = Vec::new();
            if query.full(0) {
                return Ok(out);
            }
            let tx = self.db.begin_read().map_err(io)?;
            let execs = tx.open_table(EXECUTIONS).map_err(io)?;
            // The index, newest first: ids whose records are read one by one
            // until the query is full.
            let (table, range) = match query.status {
                Some(s) => (EXECUTIONS_BY_STATUS, prefix_range(s.as_str())),
                None => (
                    EXECUTIONS_BY_START,
                    (String::new(), "\u{10FFFF}".to_string()),
                ),
            };
            let index = tx.open_table(table).map_err(io)?;
            for item in index
                .range(range.0.as_str()..range.1.as_str())
                .map_err(io)?
                .rev()
            {
                let (_, id) = item.map_err(io)?;
                let Some(v) = execs.get(id.value()).map_err(io)? else {
                    continue;
                };
                // One record that cannot be read back never hides the
                // others: it is logged (store-corrupt, with its id) and
                // skipped; `piflow executions ID` still reports it.
                let r: ExecutionRecord = match decode(v.value()) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(execution = %id.value(), code = e.code(), error = %e, "an execution record cannot be read; listing the others");
                        continue;
                    }
                };
                if query.matches(&r) {
                    out.push(r);
                    if query.full(out.len()) {
                        break;
                    }
                }
            }
            newest_first(&mut out);
            Ok(out)
        })
    }

    fn append_events(&self, execution: &str, events: Vec<StoredEvent>) -> StoreFuture<'_, ()> {
        let execution = execution.to_string();
        Box::pin(async move {
            if events.is_empty() {
                return Ok(());
            }
            if !self.group_commit {
                return self.write(|tx| {
                    let mut t = tx.open_table(EVENTS).map_err(io)?;
                    insert_events(&mut t, &execution, &events)
                });
            }
            let (done, answer) = tokio::sync::oneshot::channel();
            let lead = {
                let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
                p.0.push(Batch {
                    execution,
                    events,
                    done,
                });
                !std::mem::replace(&mut p.1, true)
            };
            if lead {
                let (db, pending, commits) =
                    (self.db.clone(), self.pending.clone(), self.commits.clone());
                tokio::task::spawn_blocking(move || commit_loop(&db, &pending, &commits));
            }
            answer
                .await
                .unwrap_or_else(|_| Err(StoreError::Io("the committer stopped".into())))
        })
    }

    fn events(&self, execution: &str) -> StoreFuture<'_, Vec<StoredEvent>> {
        let range = prefix_range(execution);
        Box::pin(async move { self.read_range(EVENTS, range) })
    }

    fn append_audit(&self, entry: AuditEntry) -> StoreFuture<'_, AuditRecord> {
        Box::pin(async move {
            self.write(|tx| {
                let mut heads = tx.open_table(AUDIT_HEADS).map_err(io)?;
                let mut t = tx.open_table(AUDIT).map_err(io)?;
                let mut tokens = tx.open_table(AUDIT_TOKENS).map_err(io)?;
                if let Some(token) = &entry.token {
                    let k = key2(&entry.env, token);
                    let seen = tokens.get(k.as_str()).map_err(io)?.map(|v| v.value());
                    if let Some(seq) = seen {
                        return t
                            .get(seq_key(&entry.env, seq).as_str())
                            .map_err(io)?
                            .map(|v| decode(v.value()))
                            .transpose()?
                            .ok_or_else(|| {
                                StoreError::Corrupt(format!(
                                    "audit token {token} points at missing record {seq}"
                                ))
                            });
                    }
                    tokens
                        .insert(k.as_str(), chain_seq(&heads, &entry.env)?)
                        .map_err(io)?;
                }
                let head: Option<AuditRecord> = heads
                    .get(entry.env.as_str())
                    .map_err(io)?
                    .map(|v| decode(v.value()))
                    .transpose()?;
                let record = chain(head.as_ref(), entry);
                let bytes = encode(&record)?;
                t.insert(
                    seq_key(&record.entry.env, record.seq).as_str(),
                    bytes.as_slice(),
                )
                .map_err(io)?;
                heads
                    .insert(record.entry.env.as_str(), bytes.as_slice())
                    .map_err(io)?;
                Ok(record)
            })
        })
    }

    fn audit_head(&self, env: &str) -> StoreFuture<'_, Option<AuditRecord>> {
        let env = env.to_string();
        Box::pin(async move { self.read_one(AUDIT_HEADS, &env) })
    }

    fn audit(
        &self,
        env: Option<&str>,
        since: Option<DateTime<Utc>>,
    ) -> StoreFuture<'_, Vec<AuditRecord>> {
        let range = match env {
            Some(e) => prefix_range(e),
            None => (String::new(), "\u{10FFFF}".to_string()),
        };
        Box::pin(async move {
            let mut records: Vec<AuditRecord> = self.read_range(AUDIT, range)?;
            if let Some(t) = since {
                records.retain(|r| r.entry.at >= t);
            }
            Ok(records)
        })
    }

    fn acquire_lease(
        &self,
        key: &str,
        holder: &str,
        ttl: chrono::Duration,
    ) -> StoreFuture<'_, LeaseOutcome> {
        let (key, holder) = (key.to_string(), holder.to_string());
        Box::pin(async move { self.write(|tx| put_lease(tx, &key, &holder, ttl, None)) })
    }

    fn take_over_lease(
        &self,
        key: &str,
        current: &Lease,
        holder: &str,
        ttl: chrono::Duration,
    ) -> StoreFuture<'_, LeaseOutcome> {
        let (key, holder, current) = (key.to_string(), holder.to_string(), current.clone());
        Box::pin(async move { self.write(|tx| put_lease(tx, &key, &holder, ttl, Some(&current))) })
    }

    fn release_lease(&self, key: &str, holder: &str) -> StoreFuture<'_, ()> {
        let (key, holder) = (key.to_string(), holder.to_string());
        Box::pin(async move {
            self.write(|tx| {
                let mut t = tx.open_table(LEASES).map_err(io)?;
                let current: Option<Lease> = t
                    .get(key.as_str())
                    .map_err(io)?
                    .map(|v| decode(v.value()))
                    .transpose()?;
                match current {
                    Some(l) if l.holder == holder => {
                        t.remove(key.as_str()).map_err(io)?;
                        Ok(())
                    }
                    Some(l) => Err(StoreError::Conflict(format!(
                        "{key} is held by {}, not {holder}",
                        l.holder
                    ))),
                    None => Ok(()),
                }
            })
        })
    }

    fn lease(&self, key: &str) -> StoreFuture<'_, Option<Lease>> {
        let key = key.to_string();
        Box::pin(async move { self.read_one(LEASES, &key) })
    }

    fn join_queue(
        &self,
        key: &str,
        holder: &str,
        ttl: chrono::Duration,
    ) -> StoreFuture<'_, Waiter> {
        let (key, holder) = (key.to_string(), holder.to_string());
        Box::pin(async move {
            self.write(|tx| {
                let mut t = tx.open_table(QUEUE).map_err(io)?;
                let mut tickets = tx.open_table(QUEUE_TICKETS).map_err(io)?;
                let range = prefix_range(&key);
                let mine = {
                    let mut found = None;
                    for item in t.range(range.0.as_str()..range.1.as_str()).map_err(io)? {
                        let (_, v) = item.map_err(io)?;
                        let w: Waiter = decode(v.value())?;
                        if w.holder == holder {
                            found = Some(w);
                            break;
                        }
                    }
                    found
                };
                let expires = Utc::now() + ttl;
                let waiter = match mine {
                    Some(w) => Waiter { expires, ..w },
                    None => {
                        let ticket = tickets
                            .get(key.as_str())
                            .map_err(io)?
                            .map_or(0, |v| v.value())
                            + 1;
                        tickets.insert(key.as_str(), ticket).map_err(io)?;
                        Waiter {
                            key: key.clone(),
                            holder: holder.clone(),
                            ticket,
                            expires,
                        }
                    }
                };
                t.insert(
                    seq_key(&key, waiter.ticket).as_str(),
                    encode(&waiter)?.as_slice(),
                )
                .map_err(io)?;
                Ok(waiter)
            })
        })
    }

    fn queue(&self, key: &str) -> StoreFuture<'_, Vec<Waiter>> {
        let range = prefix_range(key);
        Box::pin(async move {
            let now = Utc::now();
            let mut all: Vec<Waiter> = self.read_range(QUEUE, range)?;
            all.retain(|w| w.expires > now);
            Ok(all)
        })
    }

    fn leave_queue(&self, key: &str, holder: &str) -> StoreFuture<'_, ()> {
        let (key, holder) = (key.to_string(), holder.to_string());
        Box::pin(async move {
            self.write(|tx| {
                let mut t = tx.open_table(QUEUE).map_err(io)?;
                let range = prefix_range(&key);
                let now = Utc::now();
                let mut gone = Vec::new();
                for item in t.range(range.0.as_str()..range.1.as_str()).map_err(io)? {
                    let (k, v) = item.map_err(io)?;
                    let w: Waiter = decode(v.value())?;
                    // Drop one's own place, and places of waiters long dead.
                    if w.holder == holder || w.expires < now - chrono::Duration::hours(1) {
                        gone.push(k.value().to_string());
                    }
                }
                for k in gone {
                    t.remove(k.as_str()).map_err(io)?;
                }
                Ok(())
            })
        })
    }

    fn answer_task(&self, answer: TaskAnswer) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.write(|tx| {
                let mut t = tx.open_table(TASK_ANSWERS).map_err(io)?;
                if t.get(answer.token.as_str()).map_err(io)?.is_some() {
                    return Err(StoreError::Conflict(format!(
                        "task token {} was already answered",
                        answer.token
                    )));
                }
                t.insert(answer.token.as_str(), encode(&answer)?.as_slice())
                    .map_err(io)?;
                Ok(())
            })
        })
    }

    fn task_answer(&self, token: &str) -> StoreFuture<'_, Option<TaskAnswer>> {
        let token = token.to_string();
        Box::pin(async move { self.read_one(TASK_ANSWERS, &token) })
    }

    fn put_resource(&self, resource: Resource) -> StoreFuture<'_, Resource> {
        Box::pin(async move {
            self.write(|tx| {
                let mut t = tx.open_table(RESOURCES).map_err(io)?;
                let k = key2(&resource.kind, &resource.name);
                let stored: Option<Resource> = match t.get(k.as_str()).map_err(io)? {
                    Some(v) => Some(decode(v.value())?),
                    None => None,
                };
                let shown = format!("{} {}", resource.kind, resource.name);
                match (&stored, resource.revision) {
                    (Some(_), 0) => {
                        return Err(StoreError::Conflict(format!("{shown} exists already")));
                    }
                    (None, r) if r > 0 => return Err(StoreError::NotFound(shown)),
                    (Some(s), r) if s.revision != r => {
                        return Err(StoreError::Conflict(format!(
                            "{shown} was written by someone else (revision {} is stored, {r} was read)",
                            s.revision
                        )));
                    }
                    _ => {}
                }
                let mut resource = resource;
                resource.revision += 1;
                t.insert(k.as_str(), encode(&resource)?.as_slice())
                    .map_err(io)?;
                Ok(resource)
            })
        })
    }

    fn resource(&self, kind: &str, name: &str) -> StoreFuture<'_, Option<Resource>> {
        let k = key2(kind, name);
        Box::pin(async move { self.read_one(RESOURCES, &k) })
    }

    fn resources(&self, kind: &str) -> StoreFuture<'_, Vec<Resource>> {
        let range = prefix_range(kind);
        Box::pin(async move { self.read_range(RESOURCES, range) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, started: DateTime<Utc>) -> ExecutionRecord {
        ExecutionRecord {
            id: id.into(),
            workflow: "w".into(),
            name: id.into(),
            version: 1,
            status: crate::Status::Running,
            input: serde_json::json!({}),
            output: None,
            error: None,
            cause: None,
            trigger: "test".into(),
            started,
            stopped: None,
            revision: 0,
            redrive_count: 0,
            stop_requested: None,
            stop_reason: None,
            env: None,
            version_arn: None,
            alias_arn: None,
            test_case: None,
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        match tokio::runtime::Builder::new_current_thread().build() {
            Ok(rt) => rt,
            Err(e) => panic!("runtime: {e}"),
        }
    }

    /// A store written before the execution indexes existed gets them
    /// when it opens; and the files it creates are its owner's only.
    #[test]
    fn the_execution_indexes_are_built_for_an_older_store() {
        let dir = std::env::temp_dir().join(format!("piflow-store-{}", uuid::Uuid::new_v4()));
        let path = dir.join("deep").join("s.redb");
        let t0 = Utc::now();
        {
            let store = match EmbeddedStore::open(&path) {
                Ok(s) => s,
                Err(e) => panic!("open: {e}"),
            };
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = |p: &Path| {
                    std::fs::metadata(p)
                        .map(|m| m.permissions().mode() & 0o777)
                        .unwrap_or(0)
                };
                assert_eq!(mode(&dir.join("deep")), 0o700);
                assert_eq!(mode(&path), 0o600);
            }
            rt().block_on(async {
                for i in 0..3 {
                    let r = record(&format!("e{i}"), t0 + chrono::Duration::seconds(i));
                    assert!(store.start_execution(r).await.is_ok());
                }
            });
            // As an older piflow left it: no indexes.
            let dropped = store.db.begin_write().map_err(io).and_then(|tx| {
                tx.delete_table(EXECUTIONS_BY_START).map_err(io)?;
                tx.delete_table(EXECUTIONS_BY_STATUS).map_err(io)?;
                tx.commit().map_err(io)
            });
            assert!(dropped.is_ok(), "{dropped:?}");
        }
        let store = match EmbeddedStore::open(&path) {
            Ok(s) => s,
            Err(e) => panic!("reopen: {e}"),
        };
        let newest = rt().block_on(store.list_executions(ExecutionQuery {
            limit: Some(2),
            ..ExecutionQuery::default()
        }));
        let ids: Vec<String> = newest
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, vec!["e2", "e1"]);
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A record that cannot be read back (damaged outside piflow) is
    /// skipped by listings, which still show every other record; reading it
    /// by id reports store-corrupt.
    #[test]
    fn one_unreadable_record_never_hides_the_others() {
        let dir = std::env::temp_dir().join(format!("piflow-store-{}", uuid::Uuid::new_v4()));
        let store = match EmbeddedStore::open(dir.join("s.redb")) {
            Ok(s) => s,
            Err(e) => panic!("open: {e}"),
        };
        let t0 = Utc::now();
        rt().block_on(async {
            for i in 0..3 {
                let r = record(&format!("e{i}"), t0 + chrono::Duration::seconds(i));
                assert!(store.start_execution(r).await.is_ok());
            }
        });
        let damaged = store.db.begin_write().map_err(io).and_then(|tx| {
            {
                let mut t = tx.open_table(EXECUTIONS).map_err(io)?;
                t.insert("e1", b"{not json".as_slice()).map_err(io)?;
            }
            tx.commit().map_err(io)
        });
        assert!(damaged.is_ok(), "{damaged:?}");
        rt().block_on(async {
            let listed = store.list_executions(ExecutionQuery::default()).await;
            let ids: Vec<String> = listed
                .unwrap_or_default()
                .into_iter()
                .map(|r| r.id)
                .collect();
            assert_eq!(ids, vec!["e2", "e0"]);
            let one = store.execution("e1").await;
            assert!(matches!(one, Err(StoreError::Corrupt(_))), "{one:?}");
        });
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }
}
