//! Definitions, executions and their history.

use super::*;

impl DynamoStore {
    pub(super) async fn catalog(
        &self,
        catalog: &str,
        what: &str,
    ) -> Result<Vec<String>, StoreError> {
        Ok(self
            .query(catalog, "N#", what)
            .await?
            .iter()
            .filter_map(|i| str_attr(i, "name").map(str::to_string))
            .collect())
    }

    pub(super) async fn definitions_of(
        &self,
        workflow: &str,
    ) -> Result<Vec<DefinitionVersion>, StoreError> {
        self.read_records(
            &wf_pk(workflow),
            "V#",
            &format!("reading the versions of {workflow}"),
        )
        .await
    }

    pub(super) async fn audit_of(&self, env: &str) -> Result<Vec<AuditRecord>, StoreError> {
        self.read_records(
            &audit_pk(env),
            "R#",
            &format!("reading the audit chain of {env}"),
        )
        .await
    }

    pub(super) async fn do_publish(
        &self,
        new: NewDefinition,
    ) -> Result<DefinitionVersion, StoreError> {
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

    pub(super) async fn do_start(
        &self,
        record: ExecutionRecord,
    ) -> Result<StartOutcome, StoreError> {
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

    pub(super) async fn do_update(
        &self,
        record: ExecutionRecord,
    ) -> Result<ExecutionRecord, StoreError> {
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

    pub(super) async fn do_execution(
        &self,
        id: &str,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        self.read_record(&exec_pk(id), EXEC_SK, &format!("reading execution {id}"))
            .await
    }

    /// The executions `query` asks for: the status index (or the index of
    /// every execution) read newest first, a page at a time, until the
    /// query is full; a page asks for as many items as are still missing
    /// (more with a workflow filter, whose misses are skipped here).
    pub(super) async fn do_executions(
        &self,
        query: ExecutionQuery,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        let mut out = Vec::new();
        if query.full(0) {
            return Ok(out);
        }
        let (index, attr, pk) = match query.status {
            Some(st) => (INDEX_BY_STATUS, "GSI2PK", format!("STATUS#{st}")),
            None => (INDEX_BY_START, "GSI1PK", "EXECUTIONS".to_string()),
        };
        let mut start = None;
        loop {
            let limit = query.limit.map(|l| {
                let missing = l.saturating_sub(out.len()).max(1);
                let ask = if query.workflow.is_some() {
                    missing.saturating_mul(4).max(25)
                } else {
                    missing
                };
                i32::try_from(ask.min(1000)).unwrap_or(1000)
            });
            let (items, next) = self
                .query_index_page(index, attr, &pk, limit, start, "listing executions")
                .await?;
            for item in items {
                let read = if u64_attr(&item, "chunks").unwrap_or(0) == 0 {
                    decode::<ExecutionRecord>("listing executions", &item, &[]).map(Some)
                } else if let Some(id) = str_attr(&item, "id") {
                    // A chunked record: the index holds its main item only.
                    self.do_execution(id).await
                } else {
                    Ok(None)
                };
                // One record that cannot be read back never hides the
                // others: it is logged (with its key) and skipped.
                let record = match read {
                    Ok(r) => r,
                    Err(e @ StoreError::Corrupt(_)) => {
                        tracing::warn!(code = e.code(), error = %e, "an execution record cannot be read; listing the others");
                        None
                    }
                    Err(e) => return Err(e),
                };
                // The index is eventually consistent: a record whose status
                // moved on since is not the one asked for.
                if let Some(r) = record.filter(|r| query.matches(r)) {
                    out.push(r);
                    if query.full(out.len()) {
                        newest_first(&mut out);
                        return Ok(out);
                    }
                }
            }
            match next {
                Some(k) => start = Some(k),
                None => break,
            }
        }
        newest_first(&mut out);
        Ok(out)
    }

    pub(super) async fn do_append(
        &self,
        execution: &str,
        events: Vec<StoredEvent>,
    ) -> Result<(), StoreError> {
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
}
