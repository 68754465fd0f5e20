//! Requests to the table: SDK errors made clear, reads (items, queries,
//! chunked records) and writes (transactions, retries, limits).

use super::*;

impl DynamoStore {
    // ----- errors -------------------------------------------------------

    /// A clear error for an SDK failure: the cause and what to do.
    pub(super) fn sdk_error<E, R>(&self, op: &str, what: &str, err: SdkError<E, R>) -> StoreError
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

    pub(super) async fn get(
        &self,
        pk: &str,
        sk: &str,
        what: &str,
    ) -> Result<Option<Item>, StoreError> {
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
    pub(super) async fn query(
        &self,
        pk: &str,
        prefix: &str,
        what: &str,
    ) -> Result<Vec<Item>, StoreError> {
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

    /// One page of an index partition, newest (highest sort key) first: at
    /// most `limit` items (DynamoDB's `Limit`, items evaluated), from
    /// after `start`; and where the next page starts, if there is one.
    pub(super) async fn query_index_page(
        &self,
        index: &str,
        pk_attr: &str,
        pk: &str,
        limit: Option<i32>,
        start: Option<Item>,
        what: &str,
    ) -> Result<(Vec<Item>, Option<Item>), StoreError> {
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", pk_attr)
            .expression_attribute_values(":pk", s(pk))
            .scan_index_forward(false)
            .set_limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| self.sdk_error("Query", what, e))?;
        let next = page.last_evaluated_key.filter(|k| !k.is_empty());
        Ok((page.items.unwrap_or_default(), next))
    }

    /// One record (main item `sk` and its chunks), decoded.
    pub(super) async fn read_record<T: DeserializeOwned>(
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

    pub(super) async fn read_group(
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
    pub(super) async fn read_records<T: DeserializeOwned>(
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
    pub(super) async fn write(&self, what: &str, ops: Vec<Op>) -> Result<(), WriteError> {
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
    pub(super) async fn transact(
        &self,
        what: &str,
        items: Vec<TransactWriteItem>,
    ) -> Result<(), WriteError> {
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

    pub(super) async fn write_one(&self, what: &str, op: Op) -> Result<(), WriteError> {
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

    pub(super) fn tx_item(&self, op: Op) -> Result<TransactWriteItem, StoreError> {
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
    pub(super) fn check_limits(&self, what: &str, ops: &[Op]) -> Result<(), WriteError> {
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
    pub(super) fn gave_up(&self, what: &str) -> StoreError {
        StoreError::Conflict(format!(
            "{what}: other writers kept changing it ({CONFLICT_RETRIES} attempts)"
        ))
    }
}
