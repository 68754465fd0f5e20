//! The DynamoDB backend (`dynamodb://TABLE`): every record in ONE table
//! (single-table design), every ordering and uniqueness rule enforced by a
//! conditional write or a `TransactWriteItems`, so that any number of piflow
//! processes can share the store. See docs/store.md ("DynamoDB backend") for
//! the item shapes, the condition behind each rule and the write requests
//! each operation costs.
//!
//! Keys: `PK` (string, partition) and `SK` (string, sort). Two global
//! secondary indexes list executions newest first: [`INDEX_BY_START`] (all
//! executions) and [`INDEX_BY_STATUS`] (one status). Record bodies are JSON
//! strings in the attribute `body`; a body above [`INLINE_MAX`] bytes is
//! split into `…#CHUNK#n` items written in the same transaction (DynamoDB
//! items hold at most 400 KB).
//!
//! History appends are group-committed: appends of different executions
//! that wait at the same time share one `TransactWriteItems` (see
//! [`DynamoStore::set_group_commit`]).
//!
//! This module: the store and its [`Store`] calls; `schema` the table's
//! keys and indexes, `requests` reads, writes and SDK errors, `items` item
//! shapes and keys, `records` definitions, executions and history,
//! `chains` the audit chain, leases, queues and task answers, `resources`
//! the resources of the layers above, `group` the group commit.

mod chains;
mod group;
mod items;
mod records;
mod requests;
mod resources;
mod schema;

use group::*;
use items::*;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, GlobalSecondaryIndex,
    IndexStatus, KeySchemaElement, KeyType, Projection, ProjectionType, Put, ReturnValue,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TableDescription, TableStatus,
    TransactWriteItem,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::audit::{AuditEntry, AuditRecord, chain};
use super::{
    DefinitionVersion, ExecutionQuery, ExecutionRecord, Lease, LeaseOutcome, NewDefinition,
    Resource, StartOutcome, Store, StoreError, StoreFuture, StoredEvent, TaskAnswer, Waiter,
    newest_first, sha256_hex,
};

/// The global secondary index of every execution, newest first
/// (`GSI1PK` = `EXECUTIONS`, `GSI1SK` = `started#id`).
pub const INDEX_BY_START: &str = "by-start";
/// The global secondary index of executions by status, newest first
/// (`GSI2PK` = `STATUS#status`, `GSI2SK` = `started#id`).
pub const INDEX_BY_STATUS: &str = "by-status";
/// A body longer than this (bytes) is split into chunk items.
pub const INLINE_MAX: usize = 350_000;
/// DynamoDB's item size limit.
const ITEM_MAX: usize = 400 * 1024;
/// DynamoDB's limits on one `TransactWriteItems`.
const TX_MAX_ITEMS: usize = 100;
const TX_MAX_BYTES: usize = 4 * 1024 * 1024;
/// How often a read-then-conditional-write (publish, audit append, queue
/// join) is tried again when another writer got there first.
const CONFLICT_RETRIES: u32 = 64;
/// How often a transaction cancelled by a conflicting transaction or by
/// throttling is tried again (the SDK does not retry cancellations).
const TX_RETRIES: u32 = 8;

type Item = HashMap<String, AttributeValue>;
/// Why DynamoDB cancelled one item of a transaction: code, message, the
/// item as it was.
type Cancellation = (Option<String>, Option<String>, Option<Item>);

/// The DynamoDB store on one table.
pub struct DynamoStore {
    client: Client,
    table: String,
    region: String,
    max_attempts: u32,
    /// Write API calls (shared with the group committer's handle).
    writes: Arc<AtomicU64>,
    /// History appends waiting for the next group commit, and whether a
    /// committer (leader) is running.
    pending: Arc<Mutex<(Vec<Batch>, bool)>>,
    group_commit: bool,
    /// One turn per audit chain in this process: appends to the same chain
    /// from this process go one after the other instead of racing for its
    /// head (fifty executions of one environment resumed at once spent
    /// minutes in conditional-write retries); other processes still meet
    /// at the head's condition.
    audit_turns: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

/// Open the store in table `table`, with the standard AWS configuration
/// (see [`piflow_aws_config::sdk_config`]). A missing table is reported here, with
/// the way to create it.
pub async fn open(table: &str) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(DynamoStore::connect(table).await?))
}

/// Create the table (`piflow store init`): on-demand billing, the two
/// indexes; waits until it is ACTIVE. A table that already exists with
/// piflow's keys and indexes is fine; one with other keys is an error.
pub async fn init(table: &str) -> Result<String, StoreError> {
    let store = DynamoStore::from_sdk_config(table).await?;
    store.create_table().await
}

impl DynamoStore {
    /// A store on `table` with the standard AWS configuration; checks that
    /// the table exists and has piflow's keys.
    pub async fn connect(table: &str) -> Result<DynamoStore, StoreError> {
        let store = DynamoStore::from_sdk_config(table).await?;
        store.check_table().await?;
        Ok(store)
    }

    async fn from_sdk_config(table: &str) -> Result<DynamoStore, StoreError> {
        let conf = piflow_aws_config::sdk_config().await;
        if conf.region().is_none() {
            return Err(StoreError::Unavailable {
                path: format!("dynamodb://{table}"),
                reason: "no AWS region is configured: set AWS_REGION (or a region in the AWS_PROFILE's profile)".into(),
            });
        }
        Ok(DynamoStore::with_client(Client::new(&conf), table))
    }

    /// A store on `table` through `client` (tests point it at an emulator
    /// or a mock server). Does not check the table.
    pub fn with_client(client: Client, table: impl Into<String>) -> DynamoStore {
        let region = client
            .config()
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "unset".into());
        let max_attempts = client
            .config()
            .retry_config()
            .map_or(1, |r| r.max_attempts());
        DynamoStore {
            client,
            table: table.into(),
            region,
            max_attempts,
            writes: Arc::new(AtomicU64::new(0)),
            pending: Arc::new(Mutex::new((Vec::new(), false))),
            group_commit: true,
            audit_turns: Arc::default(),
        }
    }

    /// With group commit (the default), history appends of different
    /// executions that wait at the same time share one `TransactWriteItems`
    /// (the appends that arrive while one is in flight go into the next);
    /// without, every append is its own request (for comparison in
    /// benchmarks).
    pub fn set_group_commit(&mut self, on: bool) {
        self.group_commit = on;
    }

    /// Another handle on the same client, counters and queue (for the
    /// group committer's task).
    fn handle(&self) -> DynamoStore {
        DynamoStore {
            client: self.client.clone(),
            table: self.table.clone(),
            region: self.region.clone(),
            max_attempts: self.max_attempts,
            writes: self.writes.clone(),
            pending: self.pending.clone(),
            group_commit: self.group_commit,
            audit_turns: self.audit_turns.clone(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Write API calls made so far (`PutItem`, `UpdateItem`, `DeleteItem`,
    /// `TransactWriteItems`; SDK-internal retries of one call count once).
    pub fn write_requests(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    fn spec(&self) -> String {
        format!("dynamodb://{}", self.table)
    }
}

audit_log_of_store!(DynamoStore);

impl Store for DynamoStore {
    fn publish(&self, new: NewDefinition) -> StoreFuture<'_, DefinitionVersion> {
        Box::pin(self.do_publish(new))
    }

    fn definition(
        &self,
        workflow: &str,
        version: u64,
    ) -> StoreFuture<'_, Option<DefinitionVersion>> {
        let workflow = workflow.to_string();
        Box::pin(async move {
            self.read_record(
                &wf_pk(&workflow),
                &version_sk(version),
                &format!("reading {workflow} version {version}"),
            )
            .await
        })
    }

    fn definitions(&self, workflow: Option<&str>) -> StoreFuture<'_, Vec<DefinitionVersion>> {
        let workflow = workflow.map(str::to_string);
        Box::pin(async move {
            match workflow {
                Some(w) => self.definitions_of(&w).await,
                None => {
                    let mut out = Vec::new();
                    for w in self.catalog(WORKFLOW_CATALOG, "listing workflows").await? {
                        out.extend(self.definitions_of(&w).await?);
                    }
                    Ok(out)
                }
            }
        })
    }

    fn latest_definition(&self, workflow: &str) -> StoreFuture<'_, Option<DefinitionVersion>> {
        let workflow = workflow.to_string();
        Box::pin(async move {
            let pk = wf_pk(&workflow);
            let what = format!("reading the latest version of {workflow}");
            let head = self.get(&pk, HEAD_SK, &what).await?;
            match head.as_ref().and_then(|h| u64_attr(h, "latest")) {
                Some(v) => self.read_record(&pk, &version_sk(v), &what).await,
                None => Ok(None),
            }
        })
    }

    fn workflows(&self) -> StoreFuture<'_, Vec<String>> {
        Box::pin(async move { self.catalog(WORKFLOW_CATALOG, "listing workflows").await })
    }

    fn set_alias(&self, workflow: &str, alias: &str, version: u64) -> StoreFuture<'_, ()> {
        let (workflow, alias) = (workflow.to_string(), alias.to_string());
        Box::pin(async move {
            let pk = wf_pk(&workflow);
            let mut item = key(&pk, &format!("ALIAS#{alias}"));
            item.insert("version".into(), n(version));
            let ops = vec![
                Op::Check {
                    key: key(&pk, &version_sk(version)),
                    cond: Cond::new("attribute_exists(#pk)"),
                },
                put(item, None),
            ];
            let what = format!("pointing alias {alias} of {workflow} at version {version}");
            match self.write(&what, ops).await {
                Ok(()) => Ok(()),
                Err(WriteError::Refused(_)) => Err(StoreError::NotFound(format!(
                    "{workflow} has no version {version}"
                ))),
                Err(WriteError::Store(e)) => Err(e),
            }
        })
    }

    fn alias(&self, workflow: &str, alias: &str) -> StoreFuture<'_, Option<u64>> {
        let (workflow, alias) = (workflow.to_string(), alias.to_string());
        Box::pin(async move {
            let item = self
                .get(
                    &wf_pk(&workflow),
                    &format!("ALIAS#{alias}"),
                    &format!("reading alias {alias} of {workflow}"),
                )
                .await?;
            Ok(item.as_ref().and_then(|i| u64_attr(i, "version")))
        })
    }

    fn start_execution(&self, record: ExecutionRecord) -> StoreFuture<'_, StartOutcome> {
        Box::pin(self.do_start(record))
    }

    fn update_execution(&self, record: ExecutionRecord) -> StoreFuture<'_, ExecutionRecord> {
        Box::pin(self.do_update(record))
    }

    fn execution(&self, id: &str) -> StoreFuture<'_, Option<ExecutionRecord>> {
        let id = id.to_string();
        Box::pin(async move { self.do_execution(&id).await })
    }

    fn list_executions(&self, query: ExecutionQuery) -> StoreFuture<'_, Vec<ExecutionRecord>> {
        Box::pin(self.do_executions(query))
    }

    fn append_events(&self, execution: &str, events: Vec<StoredEvent>) -> StoreFuture<'_, ()> {
        let execution = execution.to_string();
        Box::pin(async move { self.do_append(&execution, events).await })
    }

    fn events(&self, execution: &str) -> StoreFuture<'_, Vec<StoredEvent>> {
        let execution = execution.to_string();
        Box::pin(async move {
            self.read_records(
                &exec_pk(&execution),
                "EV#",
                &format!("reading the history of {execution}"),
            )
            .await
        })
    }

    fn append_audit(&self, entry: AuditEntry) -> StoreFuture<'_, AuditRecord> {
        Box::pin(self.do_append_audit(entry))
    }

    fn audit_head(&self, env: &str) -> StoreFuture<'_, Option<AuditRecord>> {
        let env = env.to_string();
        Box::pin(async move {
            self.read_record(
                &audit_pk(&env),
                HEAD_SK,
                &format!("reading the audit head of {env}"),
            )
            .await
        })
    }

    fn audit(
        &self,
        env: Option<&str>,
        since: Option<DateTime<Utc>>,
    ) -> StoreFuture<'_, Vec<AuditRecord>> {
        let env = env.map(str::to_string);
        Box::pin(async move {
            let mut records = match env {
                Some(e) => self.audit_of(&e).await?,
                None => {
                    let mut out = Vec::new();
                    for e in self.catalog(ENV_CATALOG, "listing audit chains").await? {
                        out.extend(self.audit_of(&e).await?);
                    }
                    out
                }
            };
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
        Box::pin(async move { self.do_acquire(&key, &holder, ttl, None).await })
    }

    fn take_over_lease(
        &self,
        key: &str,
        current: &Lease,
        holder: &str,
        ttl: chrono::Duration,
    ) -> StoreFuture<'_, LeaseOutcome> {
        let (key, holder, current) = (key.to_string(), holder.to_string(), current.clone());
        Box::pin(async move { self.do_acquire(&key, &holder, ttl, Some(&current)).await })
    }

    fn release_lease(&self, key: &str, holder: &str) -> StoreFuture<'_, ()> {
        let (key, holder) = (key.to_string(), holder.to_string());
        Box::pin(async move { self.do_release(&key, &holder).await })
    }

    fn lease(&self, key: &str) -> StoreFuture<'_, Option<Lease>> {
        let key = key.to_string();
        Box::pin(async move {
            let what = format!("reading lease {key}");
            match self.get(&lease_pk(&key), "LEASE", &what).await? {
                Some(item) => Ok(Some(decode(&what, &item, &[])?)),
                None => Ok(None),
            }
        })
    }

    fn join_queue(
        &self,
        key: &str,
        holder: &str,
        ttl: chrono::Duration,
    ) -> StoreFuture<'_, Waiter> {
        let (key, holder) = (key.to_string(), holder.to_string());
        Box::pin(async move { self.do_join(&key, &holder, ttl).await })
    }

    fn queue(&self, key: &str) -> StoreFuture<'_, Vec<Waiter>> {
        let key = key.to_string();
        Box::pin(async move { self.do_queue(&key).await })
    }

    fn leave_queue(&self, key: &str, holder: &str) -> StoreFuture<'_, ()> {
        let (key, holder) = (key.to_string(), holder.to_string());
        Box::pin(async move { self.do_leave(&key, &holder).await })
    }

    fn answer_task(&self, answer: TaskAnswer) -> StoreFuture<'_, ()> {
        Box::pin(self.do_answer(answer))
    }

    fn task_answer(&self, token: &str) -> StoreFuture<'_, Option<TaskAnswer>> {
        let token = token.to_string();
        Box::pin(async move {
            self.read_record(
                &task_pk(&token),
                "ANSWER",
                &format!("reading the answer to task token {token}"),
            )
            .await
        })
    }

    fn put_resource(&self, resource: Resource) -> StoreFuture<'_, Resource> {
        Box::pin(self.do_put_resource(resource))
    }

    fn resource(&self, kind: &str, name: &str) -> StoreFuture<'_, Option<Resource>> {
        let (kind, name) = (kind.to_string(), name.to_string());
        Box::pin(async move { self.do_resource(&kind, &name).await })
    }

    fn resources(&self, kind: &str) -> StoreFuture<'_, Vec<Resource>> {
        let kind = kind.to_string();
        Box::pin(async move { self.do_resources(&kind).await })
    }
}
