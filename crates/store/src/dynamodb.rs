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
    DefinitionVersion, ExecutionRecord, Lease, LeaseOutcome, NewDefinition, StartOutcome, Status,
    Store, StoreError, StoreFuture, StoredEvent, TaskAnswer, Waiter, sha256_hex,
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
}

/// One `append_events` call waiting for a group commit: its transaction
/// items (the `EVHEAD` put first), their size, and where to answer.
struct Batch {
    execution: String,
    what: String,
    items: Vec<TransactWriteItem>,
    bytes: usize,
    done: tokio::sync::oneshot::Sender<Result<(), WriteError>>,
}

/// A group of batches of different executions may fill at most this much
/// of a transaction's 4 MB (the sizes here are estimates; a batch alone may
/// use all of it, as without group commit).
const GROUP_MAX_BYTES: usize = TX_MAX_BYTES / 8 * 7;

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

    fn missing_table(&self) -> StoreError {
        StoreError::Unavailable {
            path: self.spec(),
            reason: format!(
                "table {} does not exist (region {}): run `piflow store init --store dynamodb://{}` or deploy integration/store-table.yaml",
                self.table, self.region, self.table
            ),
        }
    }

    /// DescribeTable: the table exists, with piflow's keys and indexes.
    pub async fn check_table(&self) -> Result<(), StoreError> {
        let desc = self.describe().await?.ok_or_else(|| self.missing_table())?;
        self.check_schema(&desc)
    }

    async fn describe(&self) -> Result<Option<TableDescription>, StoreError> {
        match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(out) => Ok(out.table),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(None),
            Err(e) => Err(self.sdk_error("DescribeTable", "checking the table", e)),
        }
    }

    fn check_schema(&self, desc: &TableDescription) -> Result<(), StoreError> {
        let keys: Vec<(String, String)> = desc
            .key_schema()
            .iter()
            .map(|k| {
                (
                    k.attribute_name().to_string(),
                    k.key_type().as_str().to_string(),
                )
            })
            .collect();
        let want = vec![
            ("PK".to_string(), "HASH".to_string()),
            ("SK".to_string(), "RANGE".to_string()),
        ];
        if keys != want {
            let shown: Vec<String> = keys.iter().map(|(a, t)| format!("{a} ({t})")).collect();
            return Err(StoreError::Unavailable {
                path: self.spec(),
                reason: format!(
                    "table {} (region {}) has the keys [{}] but piflow needs PK (HASH, string) and SK (RANGE, string): use another table name, or create the table with `piflow store init` / integration/store-table.yaml",
                    self.table,
                    self.region,
                    shown.join(", ")
                ),
            });
        }
        let indexes: Vec<&str> = desc
            .global_secondary_indexes()
            .iter()
            .filter_map(|g| g.index_name())
            .collect();
        let missing: Vec<&str> = [INDEX_BY_START, INDEX_BY_STATUS]
            .into_iter()
            .filter(|i| !indexes.contains(i))
            .collect();
        if !missing.is_empty() {
            return Err(StoreError::Unavailable {
                path: self.spec(),
                reason: format!(
                    "table {} (region {}) lacks the global secondary index(es) {}: add them as in integration/store-table.yaml (or create a new table with `piflow store init`)",
                    self.table,
                    self.region,
                    missing.join(", ")
                ),
            });
        }
        Ok(())
    }

    async fn create_table(&self) -> Result<String, StoreError> {
        if let Some(desc) = self.describe().await? {
            self.check_schema(&desc)?;
            self.wait_active().await?;
            return Ok(format!(
                "DynamoDB table {} already exists in {} with piflow's keys and indexes: nothing to do",
                self.table, self.region
            ));
        }
        let build = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Io(e.to_string());
        let mut attrs = Vec::new();
        for a in ["PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK"] {
            attrs.push(
                AttributeDefinition::builder()
                    .attribute_name(a)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(build)?,
            );
        }
        let key = |hash: &str, range: &str| -> Result<Vec<KeySchemaElement>, StoreError> {
            Ok(vec![
                KeySchemaElement::builder()
                    .attribute_name(hash)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(build)?,
                KeySchemaElement::builder()
                    .attribute_name(range)
                    .key_type(KeyType::Range)
                    .build()
                    .map_err(build)?,
            ])
        };
        let mut gsis = Vec::new();
        for (name, h, r) in [
            (INDEX_BY_START, "GSI1PK", "GSI1SK"),
            (INDEX_BY_STATUS, "GSI2PK", "GSI2SK"),
        ] {
            gsis.push(
                GlobalSecondaryIndex::builder()
                    .index_name(name)
                    .set_key_schema(Some(key(h, r)?))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()
                    .map_err(build)?,
            );
        }
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .set_attribute_definitions(Some(attrs))
            .set_key_schema(Some(key("PK", "SK")?))
            .set_global_secondary_indexes(Some(gsis))
            .send()
            .await;
        match created {
            Ok(_) => {}
            // Someone else is creating it at the same time: wait for theirs.
            Err(e) if e.code() == Some("ResourceInUseException") => {}
            Err(e) => return Err(self.sdk_error("CreateTable", "creating the table", e)),
        }
        self.wait_active().await?;
        if let Some(desc) = self.describe().await? {
            self.check_schema(&desc)?;
        }
        Ok(format!(
            "created DynamoDB table {} in {} (on-demand, indexes {INDEX_BY_START} and {INDEX_BY_STATUS}): use it with --store dynamodb://{}",
            self.table, self.region, self.table
        ))
    }

    /// Poll DescribeTable until the table and its indexes are ACTIVE
    /// (at most 10 minutes).
    async fn wait_active(&self) -> Result<(), StoreError> {
        let deadline = std::time::Instant::now() + StdDuration::from_secs(600);
        loop {
            if let Some(desc) = self.describe().await? {
                let table_ok = desc.table_status() == Some(&TableStatus::Active);
                let indexes_ok = desc
                    .global_secondary_indexes()
                    .iter()
                    .all(|g| g.index_status().is_none_or(|s| *s == IndexStatus::Active));
                if table_ok && indexes_ok {
                    return Ok(());
                }
                tracing::debug!(table = %self.table, status = ?desc.table_status(), "waiting for the table to become ACTIVE");
            }
            if std::time::Instant::now() > deadline {
                return Err(StoreError::Unavailable {
                    path: self.spec(),
                    reason: format!(
                        "table {} (region {}) did not become ACTIVE within 10 minutes: look at it in the DynamoDB console, then run `piflow store init` again",
                        self.table, self.region
                    ),
                });
            }
            tokio::time::sleep(StdDuration::from_secs(1)).await;
        }
    }

    // ----- errors -------------------------------------------------------

    /// A clear error for an SDK failure: the cause and what to do.
    fn sdk_error<E, R>(&self, op: &str, what: &str, err: SdkError<E, R>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let code = err.code().map(str::to_string);
        let message = err
            .message()
            .unwrap_or_default()
            .trim_end_matches('.')
            .to_string();
        let (table, region) = (&self.table, &self.region);
        match code.as_deref() {
            Some("ResourceNotFoundException") => self.missing_table(),
            Some(
                c @ ("UnrecognizedClientException"
                | "InvalidSignatureException"
                | "ExpiredTokenException"
                | "ExpiredToken"
                | "MissingAuthenticationTokenException"
                | "MissingAuthenticationToken"
                | "IncompleteSignatureException"
                | "InvalidClientTokenId"
                | "SignatureDoesNotMatch"),
            ) => StoreError::Auth(format!(
                "AWS refused the credentials for DynamoDB table {table} (region {region}) while {what}: {c}: {message}. Check AWS_PROFILE / AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN, which expires); `aws sts get-caller-identity` shows who you are"
            )),
            Some(c @ ("AccessDeniedException" | "AccessDenied")) => StoreError::Auth(format!(
                "not allowed to use DynamoDB table {table} (region {region}) while {what}: {c}: {message}. Grant the caller dynamodb:DescribeTable, GetItem, Query, PutItem, UpdateItem, DeleteItem, ConditionCheckItem and TransactWriteItems on the table and its indexes (CreateTable for `piflow store init`)"
            )),
            Some(
                c @ ("ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "LimitExceededException"),
            ) => {
                tracing::warn!(table = %table, op, code = c, attempts = self.max_attempts, "DynamoDB kept throttling");
                StoreError::Throttled(format!(
                    "DynamoDB table {table} (region {region}) throttled {op} while {what} ({c}) after {} attempts with back-off; raise the table's capacity or use on-demand (PAY_PER_REQUEST) billing",
                    self.max_attempts
                ))
            }
            Some("ValidationException") if mentions_size(&message) => {
                StoreError::TooLarge(format!(
                    "{what}: DynamoDB refused the item as too large ({message}); an item holds at most 400 KB and a transaction 4 MB"
                ))
            }
            Some("ConditionalCheckFailedException") => {
                StoreError::Conflict(format!("{what}: a condition refused the write"))
            }
            Some("TransactionConflictException") => StoreError::Conflict(format!(
                "{what}: another transaction was writing the same items; try again"
            )),
            Some(c) => StoreError::Io(format!(
                "DynamoDB {op} on table {table} (region {region}) failed while {what}: {c}: {message}"
            )),
            None => {
                let detail = causes(&err);
                let lower = detail.to_lowercase();
                if lower.contains("credential") || lower.contains("identity") {
                    let first = detail.split(". ").next().unwrap_or_default();
                    StoreError::Auth(format!(
                        "no usable AWS credentials for DynamoDB table {table} (region {region}) while {what}: {first}. Set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (`aws configure list` shows what the AWS configuration finds)"
                    ))
                } else {
                    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
                        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
                        .unwrap_or_else(|_| format!("the {region} endpoint"));
                    StoreError::Io(format!(
                        "DynamoDB {op} on table {table} could not be sent to {endpoint} while {what}: {detail}. Check the network, AWS_REGION and AWS_ENDPOINT_URL"
                    ))
                }
            }
        }
    }

    // ----- reads ----------------------------------------------------------

    async fn get(&self, pk: &str, sk: &str, what: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("PK", s(pk))
            .key("SK", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.sdk_error("GetItem", what, e))?;
        Ok(out.item)
    }

    /// Every item of partition `pk` whose sort key starts with `prefix`, in
    /// sort-key order (strongly consistent, all pages).
    async fn query(&self, pk: &str, prefix: &str, what: &str) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", "PK")
                .expression_attribute_names("#sk", "SK")
                .expression_attribute_values(":pk", s(pk))
                .expression_attribute_values(":prefix", s(prefix))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.sdk_error("Query", what, e))?;
            out.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    /// Every item of an index partition, newest (highest sort key) first.
    async fn query_index(
        &self,
        index: &str,
        pk_attr: &str,
        pk: &str,
        what: &str,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", pk_attr)
                .expression_attribute_values(":pk", s(pk))
                .scan_index_forward(false)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.sdk_error("Query", what, e))?;
            out.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    /// One record (main item `sk` and its chunks), decoded.
    async fn read_record<T: DeserializeOwned>(
        &self,
        pk: &str,
        sk: &str,
        what: &str,
    ) -> Result<Option<T>, StoreError> {
        self.read_group(pk, sk, what)
            .await?
            .map(|(main, chunks)| decode(what, &main, &chunks))
            .transpose()
    }

    async fn read_group(
        &self,
        pk: &str,
        sk: &str,
        what: &str,
    ) -> Result<Option<(Item, Vec<Item>)>, StoreError> {
        let items = self.query(pk, sk, what).await?;
        Ok(group(items)
            .into_iter()
            .find(|(main, _)| str_attr(main, "SK") == Some(sk)))
    }

    /// Every record of partition `pk` under `prefix`, decoded, in order.
    async fn read_records<T: DeserializeOwned>(
        &self,
        pk: &str,
        prefix: &str,
        what: &str,
    ) -> Result<Vec<T>, StoreError> {
        let items = self.query(pk, prefix, what).await?;
        group(items)
            .iter()
            .map(|(main, chunks)| decode(what, main, chunks))
            .collect()
    }

    // ----- writes ---------------------------------------------------------

    /// Write `ops` atomically: one `PutItem`/`DeleteItem` for a single
    /// operation, else one `TransactWriteItems`. A refused condition comes
    /// back as [`WriteError::Refused`] with, per operation, whether its
    /// condition failed and the item as it was.
    async fn write(&self, what: &str, ops: Vec<Op>) -> Result<(), WriteError> {
        self.check_limits(what, &ops)?;
        let single = ops.len() == 1 && !matches!(ops.first(), Some(Op::Check { .. }));
        if single {
            if let Some(op) = ops.into_iter().next() {
                return self.write_one(what, op).await;
            }
            return Ok(());
        }
        let mut items = Vec::with_capacity(ops.len());
        for op in ops {
            items.push(self.tx_item(op).map_err(WriteError::Store)?);
        }
        self.transact(what, items).await
    }

    /// One `TransactWriteItems` of `items`, tried again while it is
    /// cancelled for throttling or a conflicting transaction. A failed
    /// condition comes back as [`WriteError::Refused`] with one reason per
    /// item (as DynamoDB lists them).
    async fn transact(&self, what: &str, items: Vec<TransactWriteItem>) -> Result<(), WriteError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.writes.fetch_add(1, Ordering::Relaxed);
            let err = match self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let reasons: Option<Vec<Cancellation>> = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => Some(
                    c.cancellation_reasons()
                        .iter()
                        .map(|r| {
                            (
                                r.code().map(str::to_string),
                                r.message().map(str::to_string),
                                r.item().cloned(),
                            )
                        })
                        .collect(),
                ),
                _ => None,
            };
            let Some(reasons) = reasons else {
                return Err(WriteError::Store(self.sdk_error(
                    "TransactWriteItems",
                    what,
                    err,
                )));
            };
            if reasons
                .iter()
                .any(|r| r.0.as_deref() == Some("ConditionalCheckFailed"))
            {
                return Err(WriteError::Refused(
                    reasons
                        .into_iter()
                        .map(|(code, _, old)| Reason {
                            failed: code.as_deref() == Some("ConditionalCheckFailed"),
                            old,
                        })
                        .collect(),
                ));
            }
            let codes: Vec<String> = reasons
                .iter()
                .filter_map(|r| r.0.clone())
                .filter(|c| c != "None")
                .collect();
            let throttled = codes
                .iter()
                .any(|c| c == "ThrottlingError" || c == "ProvisionedThroughputExceeded");
            let conflicting = codes.iter().any(|c| c == "TransactionConflict");
            let limit = TX_RETRIES.max(self.max_attempts);
            if (throttled || conflicting) && attempt < limit {
                tracing::debug!(table = %self.table, what, attempt, codes = ?codes, "transaction cancelled, retrying");
                tokio::time::sleep(backoff(attempt)).await;
                continue;
            }
            if throttled {
                tracing::warn!(table = %self.table, what, attempts = attempt, "DynamoDB kept throttling a transaction");
                return Err(WriteError::Store(StoreError::Throttled(format!(
                    "DynamoDB table {} (region {}) throttled TransactWriteItems while {what} after {attempt} attempts with back-off; raise the table's capacity or use on-demand (PAY_PER_REQUEST) billing",
                    self.table, self.region
                ))));
            }
            if conflicting {
                return Err(WriteError::Store(StoreError::Conflict(format!(
                    "{what}: other transactions kept writing the same items ({attempt} attempts)"
                ))));
            }
            let messages: Vec<String> = reasons.iter().filter_map(|r| r.1.clone()).collect();
            if messages.iter().any(|m| mentions_size(m))
                || codes.iter().any(|c| c == "ItemCollectionSizeLimitExceeded")
            {
                return Err(WriteError::Store(StoreError::TooLarge(format!(
                    "{what}: DynamoDB refused it as too large ({}); an item holds at most 400 KB and a transaction 4 MB",
                    messages.join("; ")
                ))));
            }
            return Err(WriteError::Store(StoreError::Io(format!(
                "DynamoDB cancelled the transaction on table {} while {what}: {} {}",
                self.table,
                codes.join(", "),
                messages.join("; ")
            ))));
        }
    }

    async fn write_one(&self, what: &str, op: Op) -> Result<(), WriteError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        match op {
            Op::Put { item, cond } => {
                let mut req = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    );
                if let Some(c) = cond {
                    req = req
                        .condition_expression(c.expr)
                        .set_expression_attribute_names(Some(c.names))
                        .set_expression_attribute_values(non_empty(c.values));
                }
                match req.send().await {
                    Ok(_) => Ok(()),
                    Err(e) => match e.as_service_error() {
                        Some(PutItemError::ConditionalCheckFailedException(c)) => {
                            Err(WriteError::Refused(vec![Reason {
                                failed: true,
                                old: c.item().cloned(),
                            }]))
                        }
                        _ => Err(WriteError::Store(self.sdk_error("PutItem", what, e))),
                    },
                }
            }
            Op::Delete { key, cond } => {
                let mut req = self
                    .client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(key))
                    .return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    );
                if let Some(c) = cond {
                    req = req
                        .condition_expression(c.expr)
                        .set_expression_attribute_names(Some(c.names))
                        .set_expression_attribute_values(non_empty(c.values));
                }
                match req.send().await {
                    Ok(_) => Ok(()),
                    Err(e) => match e.as_service_error() {
                        Some(DeleteItemError::ConditionalCheckFailedException(c)) => {
                            Err(WriteError::Refused(vec![Reason {
                                failed: true,
                                old: c.item().cloned(),
                            }]))
                        }
                        _ => Err(WriteError::Store(self.sdk_error("DeleteItem", what, e))),
                    },
                }
            }
            Op::Check { .. } => Ok(()),
        }
    }

    fn tx_item(&self, op: Op) -> Result<TransactWriteItem, StoreError> {
        let build = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Io(e.to_string());
        let fail = ReturnValuesOnConditionCheckFailure::AllOld;
        Ok(match op {
            Op::Put { item, cond } => {
                let mut b = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .return_values_on_condition_check_failure(fail);
                if let Some(c) = cond {
                    b = b
                        .condition_expression(c.expr)
                        .set_expression_attribute_names(Some(c.names))
                        .set_expression_attribute_values(non_empty(c.values));
                }
                TransactWriteItem::builder()
                    .put(b.build().map_err(build)?)
                    .build()
            }
            Op::Delete { key, cond } => {
                let mut b = Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(key))
                    .return_values_on_condition_check_failure(fail);
                if let Some(c) = cond {
                    b = b
                        .condition_expression(c.expr)
                        .set_expression_attribute_names(Some(c.names))
                        .set_expression_attribute_values(non_empty(c.values));
                }
                TransactWriteItem::builder()
                    .delete(b.build().map_err(build)?)
                    .build()
            }
            Op::Check { key, cond } => TransactWriteItem::builder()
                .condition_check(
                    ConditionCheck::builder()
                        .table_name(&self.table)
                        .set_key(Some(key))
                        .condition_expression(cond.expr)
                        .set_expression_attribute_names(Some(cond.names))
                        .set_expression_attribute_values(non_empty(cond.values))
                        .return_values_on_condition_check_failure(fail)
                        .build()
                        .map_err(build)?,
                )
                .build(),
        })
    }

    /// DynamoDB's size limits, checked before sending so that the error
    /// names the record and the limit.
    fn check_limits(&self, what: &str, ops: &[Op]) -> Result<(), WriteError> {
        let too_large = |detail: String| {
            WriteError::Store(StoreError::TooLarge(format!(
                "{what}: {detail}; DynamoDB holds at most 400 KB per item and 100 items or 4 MB per transaction (one store write)"
            )))
        };
        if ops.len() > TX_MAX_ITEMS {
            return Err(too_large(format!(
                "{} items in one write (with chunks)",
                ops.len()
            )));
        }
        let mut total = 0;
        for op in ops {
            let size = op_size(op);
            if size > ITEM_MAX {
                return Err(too_large(format!("an item of {size} bytes")));
            }
            total += size;
        }
        if total > TX_MAX_BYTES {
            return Err(too_large(format!("{total} bytes in one write")));
        }
        Ok(())
    }

    /// Read-modify-write loops give up with this.
    fn gave_up(&self, what: &str) -> StoreError {
        StoreError::Conflict(format!(
            "{what}: other writers kept changing it ({CONFLICT_RETRIES} attempts)"
        ))
    }
}

// ----- item helpers ---------------------------------------------------------

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn str_attr<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v),
        _ => None,
    }
}

fn num_attr(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

fn u64_attr(item: &Item, name: &str) -> Option<u64> {
    num_attr(item, name).and_then(|v| u64::try_from(v).ok())
}

fn key(pk: &str, sk: &str) -> Item {
    HashMap::from([("PK".to_string(), s(pk)), ("SK".to_string(), s(sk))])
}

fn non_empty(values: Item) -> Option<Item> {
    (!values.is_empty()).then_some(values)
}

/// An error and its sources, `: `-separated (without Debug dumps).
fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = e.source();
    }
    out
}

fn mentions_size(message: &str) -> bool {
    let m = message.to_lowercase();
    m.contains("size") || m.contains("too large") || m.contains("length")
}

/// The size an operation counts towards a transaction's limit.
fn op_size(op: &Op) -> usize {
    match op {
        Op::Put { item, .. } => item_size(item),
        Op::Delete { key, .. } | Op::Check { key, .. } => item_size(key),
    }
}

/// DynamoDB's item size: attribute names plus values.
fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.len().div_ceil(2) + 1,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
        AttributeValue::Ss(l) => l.iter().map(String::len).sum(),
        AttributeValue::Ns(l) => l.iter().map(|n| n.len()).sum(),
        AttributeValue::Bs(l) => l.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
    }
}

/// A condition expression with its names and values.
struct Cond {
    expr: String,
    names: HashMap<String, String>,
    values: Item,
}

impl Cond {
    fn new(expr: &str) -> Cond {
        // DynamoDB refuses names and values an expression does not use.
        let mut names = HashMap::new();
        if expr.contains("#pk") {
            names.insert("#pk".to_string(), "PK".to_string());
        }
        Cond {
            expr: expr.to_string(),
            names,
            values: HashMap::new(),
        }
    }

    fn name(mut self, placeholder: &str, attr: &str) -> Cond {
        self.names.insert(placeholder.into(), attr.into());
        self
    }

    fn value(mut self, placeholder: &str, v: AttributeValue) -> Cond {
        self.values.insert(placeholder.into(), v);
        self
    }
}

/// `attribute_not_exists(PK)`: the item is new.
fn is_new() -> Cond {
    Cond::new("attribute_not_exists(#pk)")
}

enum Op {
    Put { item: Item, cond: Option<Cond> },
    Delete { key: Item, cond: Option<Cond> },
    Check { key: Item, cond: Cond },
}

fn put(item: Item, cond: Option<Cond>) -> Op {
    Op::Put { item, cond }
}

/// Per operation of a refused write: whether its condition failed, and
/// the item as it was (when DynamoDB returned it).
struct Reason {
    failed: bool,
    old: Option<Item>,
}

enum WriteError {
    Refused(Vec<Reason>),
    Store(StoreError),
}

impl From<StoreError> for WriteError {
    fn from(e: StoreError) -> Self {
        WriteError::Store(e)
    }
}

impl WriteError {
    /// Whether operation `i`'s condition failed.
    fn failed(&self, i: usize) -> bool {
        matches!(self, WriteError::Refused(r) if r.get(i).is_some_and(|r| r.failed))
    }

    fn old(&self, i: usize) -> Option<&Item> {
        match self {
            WriteError::Refused(r) => r.get(i).and_then(|r| r.old.as_ref()),
            WriteError::Store(_) => None,
        }
    }

    /// A refusal as `Conflict(message)`; other errors as they are.
    fn conflict(self, message: impl FnOnce() -> String) -> StoreError {
        match self {
            WriteError::Refused(_) => StoreError::Conflict(message()),
            WriteError::Store(e) => e,
        }
    }
}

/// A record's items: the main item (`pk`, `sk`, `attrs`, and `body` when it
/// fits) and, for a body above [`INLINE_MAX`], chunk items `sk#CHUNK#001`….
/// The main item's `chunks` says how many.
fn record_items(pk: &str, sk: &str, body: &str, mut attrs: Item) -> Vec<Item> {
    attrs.insert("PK".into(), s(pk));
    attrs.insert("SK".into(), s(sk));
    if body.len() <= INLINE_MAX {
        attrs.insert("body".into(), s(body));
        attrs.insert("chunks".into(), n(0));
        return vec![attrs];
    }
    let parts = split_str(body, INLINE_MAX);
    attrs.insert("chunks".into(), n(parts.len()));
    let mut out = vec![attrs];
    for (i, part) in parts.into_iter().enumerate() {
        let mut c = key(pk, &chunk_sk(sk, i + 1));
        c.insert("body".into(), s(part));
        out.push(c);
    }
    out
}

fn chunk_sk(sk: &str, i: usize) -> String {
    format!("{sk}#CHUNK#{i:03}")
}

/// Split at UTF-8 character boundaries into pieces of at most `max` bytes.
fn split_str(text: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        let mut cut = max;
        while cut > 0 && !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if cut == 0 {
            break;
        }
        let (head, tail) = rest.split_at(cut);
        out.push(head);
        rest = tail;
    }
    out.push(rest);
    out
}

/// Puts for a record's items: the main item under `cond`, chunks plain.
fn record_puts(items: Vec<Item>, cond: Option<Cond>) -> Vec<Op> {
    let mut ops = Vec::with_capacity(items.len());
    let mut cond = cond;
    for item in items {
        ops.push(put(item, cond.take()));
    }
    ops
}

/// Items of a query, in sort-key order, grouped: each main item with the
/// chunk items that follow it.
fn group(items: Vec<Item>) -> Vec<(Item, Vec<Item>)> {
    let mut out: Vec<(Item, Vec<Item>)> = Vec::new();
    for item in items {
        let is_chunk = str_attr(&item, "SK").is_some_and(|sk| sk.contains("#CHUNK#"));
        match out.last_mut() {
            Some((_, chunks)) if is_chunk => chunks.push(item),
            _ if is_chunk => {} // a chunk without its record: ignore
            _ => out.push((item, Vec::new())),
        }
    }
    out
}

/// A record's JSON: the inline body or its chunks joined.
fn body_of(what: &str, main: &Item, chunks: &[Item]) -> Result<String, StoreError> {
    let where_ = || {
        format!(
            "{what} ({} / {})",
            str_attr(main, "PK").unwrap_or("?"),
            str_attr(main, "SK").unwrap_or("?")
        )
    };
    let want = u64_attr(main, "chunks").unwrap_or(0);
    if want == 0 {
        return str_attr(main, "body")
            .map(str::to_string)
            .ok_or_else(|| StoreError::Corrupt(format!("{}: the item has no body", where_())));
    }
    let sk = str_attr(main, "SK").unwrap_or_default();
    let mut body = String::new();
    for i in 1..=want {
        let csk = chunk_sk(sk, i as usize);
        let part = chunks
            .iter()
            .find(|c| str_attr(c, "SK") == Some(csk.as_str()))
            .and_then(|c| str_attr(c, "body"))
            .ok_or_else(|| {
                StoreError::Corrupt(format!("{}: chunk {i} of {want} is missing", where_()))
            })?;
        body.push_str(part);
    }
    Ok(body)
}

fn decode<T: DeserializeOwned>(what: &str, main: &Item, chunks: &[Item]) -> Result<T, StoreError> {
    let body = body_of(what, main, chunks)?;
    serde_json::from_str(&body).map_err(|e| {
        StoreError::Corrupt(format!(
            "{what} ({} / {}): {e}",
            str_attr(main, "PK").unwrap_or("?"),
            str_attr(main, "SK").unwrap_or("?")
        ))
    })
}

fn encode<T: Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A short random pause before a read-modify-write tries again after
/// losing a race (spreads contending writers): up to 5 ms × attempt, at
/// most 100 ms.
async fn contention_pause(attempt: u32) {
    let cap = u128::from((5 * attempt).min(100)) + 1;
    let ms = (uuid::Uuid::new_v4().as_u128() % cap) as u64;
    tokio::time::sleep(StdDuration::from_millis(ms)).await;
}

/// Exponential back-off with jitter: 20 ms, 40 ms … capped at 1 s.
fn backoff(attempt: u32) -> StdDuration {
    let base = 20u64.saturating_mul(1 << attempt.min(6)).min(1000);
    let jitter = (uuid::Uuid::new_v4().as_u128() % u128::from(base.max(1))) as u64;
    StdDuration::from_millis(base / 2 + jitter / 2)
}

// ----- keys -----------------------------------------------------------------

fn wf_pk(workflow: &str) -> String {
    format!("WF#{workflow}")
}

fn version_sk(version: u64) -> String {
    format!("V#{version:020}")
}

fn exec_pk(id: &str) -> String {
    format!("EX#{id}")
}

const EXEC_SK: &str = "EXEC";
const EVENTS_HEAD_SK: &str = "EVHEAD";
const HEAD_SK: &str = "HEAD";
const WORKFLOW_CATALOG: &str = "CATALOG#WF";
const ENV_CATALOG: &str = "CATALOG#ENV";

fn event_sk(seq: u64) -> String {
    format!("EV#{seq:020}")
}

fn audit_pk(env: &str) -> String {
    format!("AUDIT#{env}")
}

fn audit_sk(seq: u64) -> String {
    format!("R#{seq:020}")
}

fn lease_pk(key: &str) -> String {
    format!("LEASE#{key}")
}

fn queue_pk(key: &str) -> String {
    format!("QUEUE#{key}")
}

fn waiter_sk(ticket: u64) -> String {
    format!("W#{ticket:020}")
}

fn task_pk(token: &str) -> String {
    format!("TASK#{token}")
}

/// Index sort key: the start time (fixed width, so text order is time
/// order) and the id.
fn started_key(r: &ExecutionRecord) -> String {
    format!("{}#{}", r.started.format("%Y-%m-%dT%H:%M:%S%.9fZ"), r.id)
}

/// An execution record's items, with its index attributes.
fn execution_items(r: &ExecutionRecord) -> Result<Vec<Item>, StoreError> {
    let body = encode(r)?;
    let sort = started_key(r);
    let attrs = HashMap::from([
        ("id".to_string(), s(&r.id)),
        ("rev".to_string(), n(r.revision)),
        ("status".to_string(), s(r.status.as_str())),
        ("GSI1PK".to_string(), s("EXECUTIONS")),
        ("GSI1SK".to_string(), s(&sort)),
        ("GSI2PK".to_string(), s(format!("STATUS#{}", r.status))),
        ("GSI2SK".to_string(), s(sort)),
    ]);
    Ok(record_items(&exec_pk(&r.id), EXEC_SK, &body, attrs))
}

fn catalog_item(catalog: &str, name: &str) -> Item {
    let mut item = key(catalog, &format!("N#{name}"));
    item.insert("name".into(), s(name));
    item
}

impl DynamoStore {
    async fn catalog(&self, catalog: &str, what: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .query(catalog, "N#", what)
            .await?
            .iter()
            .filter_map(|i| str_attr(i, "name").map(str::to_string))
            .collect())
    }

    async fn definitions_of(&self, workflow: &str) -> Result<Vec<DefinitionVersion>, StoreError> {
        self.read_records(
            &wf_pk(workflow),
            "V#",
            &format!("reading the versions of {workflow}"),
        )
        .await
    }

    async fn audit_of(&self, env: &str) -> Result<Vec<AuditRecord>, StoreError> {
        self.read_records(
            &audit_pk(env),
            "R#",
            &format!("reading the audit chain of {env}"),
        )
        .await
    }

    async fn do_publish(&self, new: NewDefinition) -> Result<DefinitionVersion, StoreError> {
        let hash = sha256_hex(new.definition.as_bytes());
        let pk = wf_pk(&new.workflow);
        let what = format!("publishing {}", new.workflow);
        for attempt in 1..=CONFLICT_RETRIES {
            let head = self.get(&pk, HEAD_SK, &what).await?;
            let latest = head
                .as_ref()
                .and_then(|h| u64_attr(h, "latest"))
                .unwrap_or(0);
            if latest > 0 && head.as_ref().and_then(|h| str_attr(h, "hash")) == Some(hash.as_str())
            {
                return self
                    .read_record(&pk, &version_sk(latest), &what)
                    .await?
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!(
                            "{}: the head names version {latest}, which is missing",
                            new.workflow
                        ))
                    });
            }
            let d = DefinitionVersion {
                version: latest + 1,
                workflow: new.workflow.clone(),
                content_hash: hash.clone(),
                definition: new.definition.clone(),
                author: new.author.clone(),
                created: Utc::now(),
                source_commit: new.source_commit.clone(),
            };
            let mut head_item = key(&pk, HEAD_SK);
            head_item.insert("latest".into(), n(d.version));
            head_item.insert("hash".into(), s(&hash));
            let head_cond = if latest == 0 {
                is_new()
            } else {
                Cond::new("#latest = :prev")
                    .name("#latest", "latest")
                    .value(":prev", n(latest))
            };
            let mut ops = vec![put(head_item, Some(head_cond))];
            ops.extend(record_puts(
                record_items(&pk, &version_sk(d.version), &encode(&d)?, HashMap::new()),
                Some(is_new()),
            ));
            if d.version == 1 {
                ops.push(put(catalog_item(WORKFLOW_CATALOG, &d.workflow), None));
            }
            let what_v = format!("publishing {} version {}", d.workflow, d.version);
            match self.write(&what_v, ops).await {
                Ok(()) => return Ok(d),
                Err(WriteError::Refused(_)) => {
                    tracing::debug!(table = %self.table, workflow = %d.workflow, version = d.version, attempt, "publish raced another publish, retrying");
                    contention_pause(attempt).await;
                }
                Err(WriteError::Store(e)) => return Err(e),
            }
        }
        Err(self.gave_up(&what))
    }

    async fn do_start(&self, record: ExecutionRecord) -> Result<StartOutcome, StoreError> {
        let pk = wf_pk(&record.workflow);
        let name_sk = format!("NAME#{}", record.name);
        let what = format!(
            "starting execution {} ({} of {})",
            record.id, record.name, record.workflow
        );
        let mut name_item = key(&pk, &name_sk);
        name_item.insert("id".into(), s(&record.id));
        let mut ops = vec![put(name_item, Some(is_new()))];
        ops.extend(record_puts(execution_items(&record)?, Some(is_new())));
        match self.write(&what, ops).await {
            Ok(()) => Ok(StartOutcome::Created(record)),
            Err(e) if e.failed(0) => {
                let id = match e.old(0).and_then(|i| str_attr(i, "id")) {
                    Some(id) => id.to_string(),
                    None => self
                        .get(&pk, &name_sk, &what)
                        .await?
                        .as_ref()
                        .and_then(|i| str_attr(i, "id"))
                        .map(str::to_string)
                        .ok_or_else(|| {
                            StoreError::Conflict(format!(
                                "{what}: the name was taken and released at the same time; try again"
                            ))
                        })?,
                };
                let found = self.do_execution(&id).await?;
                found.map(StartOutcome::Existing).ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "execution name {} points at missing {id}",
                        record.name
                    ))
                })
            }
            Err(e) => Err(e.conflict(|| format!("execution id {} is already used", record.id))),
        }
    }

    async fn do_update(&self, record: ExecutionRecord) -> Result<ExecutionRecord, StoreError> {
        let id = record.id.clone();
        let read = record.revision;
        let mut new = record;
        new.revision += 1;
        let items = execution_items(&new)?;
        let what = format!("updating execution {id}");
        let stale = |stored: u64| {
            StoreError::Conflict(format!(
                "execution {id} was updated by someone else (revision {stored} is stored, {read} was read)"
            ))
        };
        let rev_cond = || {
            Cond::new("#rev = :rev")
                .name("#rev", "rev")
                .value(":rev", n(read))
        };
        if items.len() == 1 {
            // The common case: one conditional PutItem.
            let cond = Cond::new("#rev = :rev AND #chunks = :zero")
                .name("#rev", "rev")
                .name("#chunks", "chunks")
                .value(":rev", n(read))
                .value(":zero", n(0));
            let ops = record_puts(items.clone(), Some(cond));
            match self.write(&what, ops).await {
                Ok(()) => return Ok(new),
                Err(WriteError::Store(e)) => return Err(e),
                Err(refused) => {
                    let old = match refused.old(0) {
                        Some(o) => Some(o.clone()),
                        None => self.get(&exec_pk(&id), EXEC_SK, &what).await?,
                    };
                    let Some(old) = old else {
                        return Err(StoreError::NotFound(format!("execution {id}")));
                    };
                    let stored = u64_attr(&old, "rev").unwrap_or(0);
                    if stored != read {
                        return Err(stale(stored));
                    }
                    // The stored record is chunked: the path below removes
                    // its chunks.
                }
            }
        }
        let old = self
            .get(&exec_pk(&id), EXEC_SK, &what)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("execution {id}")))?;
        let stored = u64_attr(&old, "rev").unwrap_or(0);
        if stored != read {
            return Err(stale(stored));
        }
        // (Bounded: a damaged count must not make a huge request.)
        let old_chunks = u64_attr(&old, "chunks")
            .unwrap_or(0)
            .min(TX_MAX_ITEMS as u64) as usize;
        let new_chunks = items.len() - 1;
        let mut ops = record_puts(items, Some(rev_cond()));
        for i in new_chunks + 1..=old_chunks {
            ops.push(Op::Delete {
                key: key(&exec_pk(&id), &chunk_sk(EXEC_SK, i)),
                cond: None,
            });
        }
        self.write(&what, ops)
            .await
            .map_err(|e| e.conflict(|| format!("execution {id} was updated by someone else while it was being written (revision {read} was read)")))?;
        Ok(new)
    }

    async fn do_execution(&self, id: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        self.read_record(&exec_pk(id), EXEC_SK, &format!("reading execution {id}"))
            .await
    }

    async fn do_executions(
        &self,
        status: Option<Status>,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        let items = match status {
            Some(st) => {
                self.query_index(
                    INDEX_BY_STATUS,
                    "GSI2PK",
                    &format!("STATUS#{st}"),
                    "listing executions",
                )
                .await?
            }
            None => {
                self.query_index(INDEX_BY_START, "GSI1PK", "EXECUTIONS", "listing executions")
                    .await?
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            if u64_attr(&item, "chunks").unwrap_or(0) == 0 {
                out.push(decode::<ExecutionRecord>("listing executions", &item, &[])?);
            } else if let Some(id) = str_attr(&item, "id") {
                // A chunked record: the index holds its main item only.
                if let Some(r) = self.do_execution(id).await?
                    && status.is_none_or(|st| r.status == st)
                {
                    out.push(r);
                }
            }
        }
        out.sort_by(|a, b| b.started.cmp(&a.started).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    async fn do_append(&self, execution: &str, events: Vec<StoredEvent>) -> Result<(), StoreError> {
        let Some(first) = events.first().map(|e| e.seq) else {
            return Ok(());
        };
        for (want, e) in (first..).zip(events.iter()) {
            if e.seq != want || e.seq == 0 {
                return Err(StoreError::Conflict(format!(
                    "history of {execution}: event {} where {want} is next in the batch (duplicate or out of order)",
                    e.seq
                )));
            }
        }
        let last = first + events.len() as u64 - 1;
        let pk = exec_pk(execution);
        let mut head = key(&pk, EVENTS_HEAD_SK);
        head.insert("last".into(), n(last));
        let head_cond = if first == 1 {
            is_new()
        } else {
            Cond::new("#last = :prev")
                .name("#last", "last")
                .value(":prev", n(first - 1))
        };
        let mut ops = vec![put(head, Some(head_cond))];
        for e in &events {
            let body = encode(e)?;
            if body.len() + 64 > TX_MAX_BYTES {
                return Err(StoreError::TooLarge(format!(
                    "history of {execution}: event {} is {} bytes; DynamoDB takes at most 4 MB in one write (events are split into 350 KB items)",
                    e.seq,
                    body.len()
                )));
            }
            ops.extend(record_puts(
                record_items(&pk, &event_sk(e.seq), &body, HashMap::new()),
                Some(is_new()),
            ));
        }
        let what = if events.len() == 1 {
            format!("appending event {first} to the history of {execution}")
        } else {
            format!("appending events {first}..{last} to the history of {execution}")
        };
        // Group commit, unless it is off or the batch alone breaks a limit
        // (then `write` reports that, naming the limit).
        let written = if self.group_commit && self.check_limits(&what, &ops).is_ok() {
            let bytes = ops.iter().map(op_size).sum();
            let mut items = Vec::with_capacity(ops.len());
            for op in ops {
                items.push(self.tx_item(op)?);
            }
            self.group_append(execution, what.clone(), items, bytes)
                .await
        } else {
            self.write(&what, ops).await
        };
        match written {
            Ok(()) => Ok(()),
            Err(WriteError::Store(e)) => Err(e),
            Err(refused) => {
                let stored = match refused.old(0) {
                    Some(h) => u64_attr(h, "last"),
                    None => self
                        .get(&pk, EVENTS_HEAD_SK, &what)
                        .await?
                        .as_ref()
                        .and_then(|h| u64_attr(h, "last")),
                }
                .unwrap_or(0);
                tracing::debug!(table = %self.table, execution, first, stored, "history append refused");
                Err(StoreError::Conflict(format!(
                    "history of {execution}: event {first} where {} is next (duplicate or out of order)",
                    stored + 1
                )))
            }
        }
    }

    // ----- group commit of history appends ------------------------------

    /// Queue a batch for the next group commit and wait for its answer.
    /// The caller that finds no committer running starts one (a task, so
    /// that the commit finishes even if that caller goes away).
    async fn group_append(
        &self,
        execution: &str,
        what: String,
        items: Vec<TransactWriteItem>,
        bytes: usize,
    ) -> Result<(), WriteError> {
        let (done, answer) = tokio::sync::oneshot::channel();
        let lead = {
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            p.0.push(Batch {
                execution: execution.to_string(),
                what,
                items,
                bytes,
                done,
            });
            !std::mem::replace(&mut p.1, true)
        };
        if lead {
            let committer = self.handle();
            tokio::spawn(async move { committer.commit_loop().await });
        }
        answer.await.unwrap_or_else(|_| {
            Err(WriteError::Store(StoreError::Io(format!(
                "the history committer of table {} stopped before answering",
                self.table
            ))))
        })
    }

    /// The group committer: sends the waiting batches, as many as fit, in
    /// one `TransactWriteItems`, answers each, and repeats until nothing
    /// waits. One request is in flight at a time; what arrives meanwhile
    /// waits for the next.
    async fn commit_loop(self) {
        let mut leader = Leader {
            pending: self.pending.clone(),
            running: true,
        };
        loop {
            // Let the appenders just answered queue their next batches.
            tokio::task::yield_now().await;
            let group = {
                let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
                if p.0.is_empty() {
                    p.1 = false;
                    leader.running = false;
                    return;
                }
                next_group(&mut p.0)
            };
            self.commit_group(group).await;
        }
    }

    /// Write a group of batches (at most one per execution) in one
    /// transaction. A batch whose condition failed is answered alone
    /// (`Refused`) and the others are sent again without it; any other
    /// error is every batch's.
    async fn commit_group(&self, group: Vec<Batch>) {
        let mut live = group;
        while !live.is_empty() {
            let items: Vec<TransactWriteItem> =
                live.iter().flat_map(|b| b.items.iter().cloned()).collect();
            let what = match live.as_slice() {
                [one] => one.what.clone(),
                many => format!(
                    "appending to the histories of {} executions in one transaction",
                    many.len()
                ),
            };
            tracing::trace!(table = %self.table, batches = live.len(), items = items.len(), "group commit");
            match self.transact(&what, items).await {
                Ok(()) => {
                    for b in live {
                        let _ = b.done.send(Ok(()));
                    }
                    return;
                }
                Err(WriteError::Store(StoreError::TooLarge(_))) if live.len() > 1 => {
                    // Together too large for DynamoDB (the estimate was
                    // short): each batch on its own.
                    self.commit_one_by_one(live).await;
                    return;
                }
                Err(WriteError::Store(e)) => {
                    for b in live {
                        let _ = b.done.send(Err(WriteError::Store(copy_error(&e))));
                    }
                    return;
                }
                Err(WriteError::Refused(reasons)) => {
                    if live.len() == 1 {
                        if let Some(b) = live.pop() {
                            let _ = b.done.send(Err(WriteError::Refused(reasons)));
                        }
                        return;
                    }
                    let total: usize = live.iter().map(|b| b.items.len()).sum();
                    if reasons.len() != total {
                        // Whose condition failed cannot be told.
                        tracing::debug!(table = %self.table, reasons = reasons.len(), items = total, "group commit refused without one reason per item: one request per batch");
                        self.commit_one_by_one(live).await;
                        return;
                    }
                    let mut reasons = reasons.into_iter();
                    let mut rest = Vec::with_capacity(live.len());
                    for b in live {
                        let mine: Vec<Reason> = reasons.by_ref().take(b.items.len()).collect();
                        if mine.iter().any(|r| r.failed) {
                            tracing::debug!(table = %self.table, execution = %b.execution, "history append refused inside a group commit");
                            let _ = b.done.send(Err(WriteError::Refused(mine)));
                        } else {
                            rest.push(b);
                        }
                    }
                    live = rest;
                }
            }
        }
    }

    async fn commit_one_by_one(&self, batches: Vec<Batch>) {
        for b in batches {
            let written = self.transact(&b.what, b.items).await;
            let _ = b.done.send(written);
        }
    }

    async fn do_append_audit(&self, entry: AuditEntry) -> Result<AuditRecord, StoreError> {
        let pk = audit_pk(&entry.env);
        let what = format!("appending to the audit chain of {}", entry.env);
        for attempt in 1..=CONFLICT_RETRIES {
            let head = self.read_group(&pk, HEAD_SK, &what).await?;
            let (prev, old_chunks) = match &head {
                Some((main, chunks)) => (
                    Some(decode::<AuditRecord>(&what, main, chunks)?),
                    u64_attr(main, "chunks")
                        .unwrap_or(0)
                        .min(TX_MAX_ITEMS as u64) as usize,
                ),
                None => (None, 0),
            };
            let record = chain(prev.as_ref(), entry.clone());
            let body = encode(&record)?;
            let head_cond = match &prev {
                None => is_new(),
                Some(p) => Cond::new("#seq = :prev")
                    .name("#seq", "seq")
                    .value(":prev", n(p.seq)),
            };
            let seq_attr = HashMap::from([("seq".to_string(), n(record.seq))]);
            let head_items = record_items(&pk, HEAD_SK, &body, seq_attr.clone());
            let new_head_chunks = head_items.len() - 1;
            let mut ops = record_puts(head_items, Some(head_cond));
            for i in new_head_chunks + 1..=old_chunks {
                ops.push(Op::Delete {
                    key: key(&pk, &chunk_sk(HEAD_SK, i)),
                    cond: None,
                });
            }
            let token_at = ops.len();
            if let Some(token) = &entry.token {
                let mut t = key(&pk, &format!("TOKEN#{token}"));
                t.insert("seq".into(), n(record.seq));
                ops.push(put(t, Some(is_new())));
            }
            ops.extend(record_puts(
                record_items(&pk, &audit_sk(record.seq), &body, seq_attr),
                Some(is_new()),
            ));
            if record.seq == 1 {
                ops.push(put(catalog_item(ENV_CATALOG, &entry.env), None));
            }
            let what_r = format!("audit record {} of {}", record.seq, entry.env);
            match self.write(&what_r, ops).await {
                Ok(()) => return Ok(record),
                Err(WriteError::Store(e)) => return Err(e),
                Err(refused) => {
                    if let Some(token) = entry.token.as_ref().filter(|_| refused.failed(token_at)) {
                        let seq = match refused.old(token_at).and_then(|t| u64_attr(t, "seq")) {
                            Some(seq) => Some(seq),
                            None => self
                                .get(&pk, &format!("TOKEN#{token}"), &what)
                                .await?
                                .as_ref()
                                .and_then(|t| u64_attr(t, "seq")),
                        };
                        if let Some(seq) = seq {
                            return self
                                .read_record(&pk, &audit_sk(seq), &what)
                                .await?
                                .ok_or_else(|| {
                                    StoreError::Corrupt(format!(
                                        "audit token {token} points at missing record {seq}"
                                    ))
                                });
                        }
                    }
                    tracing::debug!(table = %self.table, env = %entry.env, seq = record.seq, attempt, "audit append raced another, retrying");
                    contention_pause(attempt).await;
                }
            }
        }
        Err(self.gave_up(&what))
    }

    async fn do_acquire(
        &self,
        lease_key: &str,
        holder: &str,
        ttl: chrono::Duration,
    ) -> Result<LeaseOutcome, StoreError> {
        let pk = lease_pk(lease_key);
        let what = format!("taking lease {lease_key} for {holder}");
        for attempt in 1..=CONFLICT_RETRIES {
            let now = Utc::now();
            let lease = Lease {
                key: lease_key.to_string(),
                holder: holder.to_string(),
                expires: now + ttl,
            };
            let mut item = key(&pk, "LEASE");
            item.insert("holder".into(), s(holder));
            item.insert("expires".into(), n(lease.expires.timestamp_millis()));
            item.insert("body".into(), s(encode(&lease)?));
            let cond = Cond::new("attribute_not_exists(#pk) OR #exp <= :now OR #holder = :me")
                .name("#exp", "expires")
                .name("#holder", "holder")
                .value(":now", n(now.timestamp_millis()))
                .value(":me", s(holder));
            match self.write(&what, vec![put(item, Some(cond))]).await {
                Ok(()) => return Ok(LeaseOutcome::Acquired(lease)),
                Err(WriteError::Store(e)) => return Err(e),
                Err(refused) => {
                    let old = match refused.old(0) {
                        Some(o) => Some(o.clone()),
                        None => self.get(&pk, "LEASE", &what).await?,
                    };
                    if let Some(old) = old {
                        let held: Lease = decode(&what, &old, &[])?;
                        tracing::debug!(table = %self.table, key = lease_key, holder, by = %held.holder, "lease is held");
                        return Ok(LeaseOutcome::Held(held));
                    }
                    tracing::debug!(table = %self.table, key = lease_key, attempt, "lease released meanwhile, retrying");
                }
            }
        }
        Err(self.gave_up(&what))
    }

    async fn do_release(&self, lease_key: &str, holder: &str) -> Result<(), StoreError> {
        let pk = lease_pk(lease_key);
        let what = format!("releasing lease {lease_key} for {holder}");
        let cond = Cond::new("attribute_not_exists(#pk) OR #holder = :me")
            .name("#holder", "holder")
            .value(":me", s(holder));
        match self
            .write(
                &what,
                vec![Op::Delete {
                    key: key(&pk, "LEASE"),
                    cond: Some(cond),
                }],
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(WriteError::Store(e)) => Err(e),
            Err(refused) => {
                let by = match refused.old(0) {
                    Some(o) => str_attr(o, "holder").map(str::to_string),
                    None => self
                        .get(&pk, "LEASE", &what)
                        .await?
                        .as_ref()
                        .and_then(|o| str_attr(o, "holder").map(str::to_string)),
                }
                .unwrap_or_else(|| "someone else".into());
                Err(StoreError::Conflict(format!(
                    "{lease_key} is held by {by}, not {holder}"
                )))
            }
        }
    }

    async fn do_join(
        &self,
        queue_key: &str,
        holder: &str,
        ttl: chrono::Duration,
    ) -> Result<Waiter, StoreError> {
        let pk = queue_pk(queue_key);
        let holder_sk = format!("H#{holder}");
        let what = format!("joining the queue for {queue_key} as {holder}");
        for attempt in 1..=CONFLICT_RETRIES {
            let expires = Utc::now() + ttl;
            let mine = self.get(&pk, &holder_sk, &what).await?;
            if let Some(ticket) = mine.as_ref().and_then(|m| u64_attr(m, "ticket")) {
                // Renew one's place: same ticket, later expiry.
                let waiter = Waiter {
                    key: queue_key.to_string(),
                    holder: holder.to_string(),
                    ticket,
                    expires,
                };
                let cond = Cond::new("attribute_exists(#pk) AND #holder = :me")
                    .name("#holder", "holder")
                    .value(":me", s(holder));
                match self
                    .write(&what, vec![put(waiter_item(&pk, &waiter)?, Some(cond))])
                    .await
                {
                    Ok(()) => return Ok(waiter),
                    Err(WriteError::Store(e)) => return Err(e),
                    Err(WriteError::Refused(_)) => {
                        // The place was cleared: drop the pointer and join anew.
                        let cond = Cond::new("#ticket = :t")
                            .name("#ticket", "ticket")
                            .value(":t", n(ticket));
                        match self
                            .write(
                                &what,
                                vec![Op::Delete {
                                    key: key(&pk, &holder_sk),
                                    cond: Some(cond),
                                }],
                            )
                            .await
                        {
                            Ok(()) | Err(WriteError::Refused(_)) => continue,
                            Err(WriteError::Store(e)) => return Err(e),
                        }
                    }
                }
            }
            // A new place: the next ticket (ADD on the counter item), then
            // the waiter and the holder's pointer together.
            self.writes.fetch_add(1, Ordering::Relaxed);
            let out = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("PK", s(&pk))
                .key("SK", s("TICKETS"))
                .update_expression("ADD #next :one")
                .expression_attribute_names("#next", "next")
                .expression_attribute_values(":one", n(1))
                .return_values(ReturnValue::UpdatedNew)
                .send()
                .await
                .map_err(|e| self.sdk_error("UpdateItem", &what, e))?;
            let ticket = out
                .attributes
                .as_ref()
                .and_then(|a| u64_attr(a, "next"))
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("{what}: the ticket counter has no number"))
                })?;
            let waiter = Waiter {
                key: queue_key.to_string(),
                holder: holder.to_string(),
                ticket,
                expires,
            };
            let mut pointer = key(&pk, &holder_sk);
            pointer.insert("ticket".into(), n(ticket));
            let ops = vec![
                put(pointer, Some(is_new())),
                put(waiter_item(&pk, &waiter)?, Some(is_new())),
            ];
            match self.write(&what, ops).await {
                Ok(()) => return Ok(waiter),
                Err(WriteError::Store(e)) => return Err(e),
                Err(WriteError::Refused(_)) => {
                    tracing::debug!(table = %self.table, key = queue_key, holder, attempt, "joined the queue twice at once, retrying");
                    contention_pause(attempt).await;
                }
            }
        }
        Err(self.gave_up(&what))
    }

    async fn do_queue(&self, queue_key: &str) -> Result<Vec<Waiter>, StoreError> {
        let now = Utc::now();
        let mut all: Vec<Waiter> = self
            .read_records(
                &queue_pk(queue_key),
                "W#",
                &format!("reading the queue for {queue_key}"),
            )
            .await?;
        all.retain(|w| w.expires > now);
        Ok(all)
    }

    async fn do_leave(&self, queue_key: &str, holder: &str) -> Result<(), StoreError> {
        let pk = queue_pk(queue_key);
        let what = format!("leaving the queue for {queue_key} as {holder}");
        let all: Vec<Waiter> = self.read_records(&pk, "W#", &what).await?;
        let cutoff = Utc::now() - chrono::Duration::hours(1);
        let mut mine = Vec::new();
        for w in &all {
            if w.holder == holder {
                mine.push(Op::Delete {
                    key: key(&pk, &waiter_sk(w.ticket)),
                    cond: None,
                });
            } else if w.expires < cutoff {
                // A waiter long dead: clear its place (if still dead) and its
                // pointer (if it still points there). Best effort.
                let dead = Cond::new("#exp < :cutoff")
                    .name("#exp", "expires")
                    .value(":cutoff", n(cutoff.timestamp_millis()));
                let gone = self
                    .write(
                        &what,
                        vec![Op::Delete {
                            key: key(&pk, &waiter_sk(w.ticket)),
                            cond: Some(dead),
                        }],
                    )
                    .await;
                if let Err(WriteError::Store(e)) = gone {
                    return Err(e);
                }
                let points = Cond::new("#ticket = :t")
                    .name("#ticket", "ticket")
                    .value(":t", n(w.ticket));
                let gone = self
                    .write(
                        &what,
                        vec![Op::Delete {
                            key: key(&pk, &format!("H#{}", w.holder)),
                            cond: Some(points),
                        }],
                    )
                    .await;
                if let Err(WriteError::Store(e)) = gone {
                    return Err(e);
                }
            }
        }
        if mine.is_empty() {
            return Ok(());
        }
        mine.push(Op::Delete {
            key: key(&pk, &format!("H#{holder}")),
            cond: None,
        });
        while !mine.is_empty() {
            let rest = mine.split_off(mine.len().min(TX_MAX_ITEMS));
            self.write(&what, mine)
                .await
                .map_err(|e| e.conflict(|| format!("{what}: refused")))?;
            mine = rest;
        }
        Ok(())
    }

    async fn do_answer(&self, answer: TaskAnswer) -> Result<(), StoreError> {
        let pk = task_pk(&answer.token);
        let what = format!("answering task token {}", answer.token);
        let ops = record_puts(
            record_items(&pk, "ANSWER", &encode(&answer)?, HashMap::new()),
            Some(is_new()),
        );
        self.write(&what, ops)
            .await
            .map_err(|e| e.conflict(|| format!("task token {} was already answered", answer.token)))
    }
}

/// Take the next group off the queue: batches in arrival order while they
/// fit one transaction (100 items, [`GROUP_MAX_BYTES`]), at most one per
/// execution (two would both condition on its `EVHEAD`). A batch left
/// behind keeps its place, and so do the later batches of its execution.
fn next_group(queue: &mut Vec<Batch>) -> Vec<Batch> {
    let mut group: Vec<Batch> = Vec::new();
    let mut left = Vec::new();
    let mut taken: HashSet<String> = HashSet::new();
    let (mut items, mut bytes) = (0, 0);
    for b in queue.drain(..) {
        let fits = group.is_empty()
            || (items + b.items.len() <= TX_MAX_ITEMS && bytes + b.bytes <= GROUP_MAX_BYTES);
        if !fits || !taken.insert(b.execution.clone()) {
            taken.insert(b.execution.clone());
            left.push(b);
            continue;
        }
        items += b.items.len();
        bytes += b.bytes;
        group.push(b);
    }
    *queue = left;
    group
}

/// The running committer's mark: if its task ends without clearing it
/// (a panic, or the runtime shutting down), the queue is answered with an
/// error and the next append starts a new committer.
struct Leader {
    pending: Arc<Mutex<(Vec<Batch>, bool)>>,
    running: bool,
}

impl Drop for Leader {
    fn drop(&mut self) {
        if !self.running {
            return;
        }
        let waiting = {
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            p.1 = false;
            std::mem::take(&mut p.0)
        };
        for b in waiting {
            let _ = b.done.send(Err(WriteError::Store(StoreError::Io(
                "the history committer stopped".into(),
            ))));
        }
    }
}

/// The same error again (one per batch of a failed group commit).
fn copy_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Conflict(m) => StoreError::Conflict(m.clone()),
        StoreError::NotFound(m) => StoreError::NotFound(m.clone()),
        StoreError::Unavailable { path, reason } => StoreError::Unavailable {
            path: path.clone(),
            reason: reason.clone(),
        },
        StoreError::Io(m) => StoreError::Io(m.clone()),
        StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
        StoreError::Throttled(m) => StoreError::Throttled(m.clone()),
        StoreError::Auth(m) => StoreError::Auth(m.clone()),
        StoreError::TooLarge(m) => StoreError::TooLarge(m.clone()),
    }
}

fn waiter_item(pk: &str, w: &Waiter) -> Result<Item, StoreError> {
    let mut item = key(pk, &waiter_sk(w.ticket));
    item.insert("holder".into(), s(&w.holder));
    item.insert("expires".into(), n(w.expires.timestamp_millis()));
    item.insert("body".into(), s(encode(w)?));
    item.insert("chunks".into(), n(0));
    Ok(item)
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

    fn executions(&self, status: Option<Status>) -> StoreFuture<'_, Vec<ExecutionRecord>> {
        Box::pin(async move { self.do_executions(status).await })
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
        Box::pin(async move { self.do_acquire(&key, &holder, ttl).await })
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_split_at_character_boundaries_and_join_back() {
        let text = "é".repeat(400_000); // 800 000 bytes
        let items = record_items("EX#a", EXEC_SK, &text, HashMap::new());
        assert_eq!(items.len(), 4, "main item + 3 chunks");
        assert!(items.iter().all(|i| item_size(i) < ITEM_MAX));
        let (main, chunks) = items
            .split_first()
            .map(|(m, c)| (m.clone(), c.to_vec()))
            .unwrap_or_default();
        assert_eq!(body_of("t", &main, &chunks).ok(), Some(text));
        let small = record_items("EX#a", EXEC_SK, "{}", HashMap::new());
        assert_eq!(small.len(), 1);
    }

    #[test]
    fn grouping_keeps_chunks_with_their_record() {
        let mut items = record_items(
            "P",
            &event_sk(1),
            &"x".repeat(INLINE_MAX + 10),
            HashMap::new(),
        );
        items.extend(record_items("P", &event_sk(2), "{}", HashMap::new()));
        let groups = group(items);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].1.len(), 2);
        assert_eq!(groups[1].1.len(), 0);
    }
}
