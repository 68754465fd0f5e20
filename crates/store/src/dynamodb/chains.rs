//! The audit chain, leases, lease queues and task answers.

use super::*;

impl DynamoStore {
    pub(super) async fn do_append_audit(
        &self,
        entry: AuditEntry,
    ) -> Result<AuditRecord, StoreError> {
        let pk = audit_pk(&entry.env);
        let what = format!("appending to the audit chain of {}", entry.env);
        let turn = {
            let mut turns = self
                .audit_turns
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            turns.entry(pk.clone()).or_default().clone()
        };
        let _turn = turn.lock().await;
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

    /// Take the lease when it is free, expired, `holder`'s own, or still
    /// exactly `replacing` (the same holder and expiry): one conditional put.
    pub(super) async fn do_acquire(
        &self,
        lease_key: &str,
        holder: &str,
        ttl: chrono::Duration,
        replacing: Option<&Lease>,
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
            let mut cond = Cond::new(if replacing.is_some() {
                "attribute_not_exists(#pk) OR #exp <= :now OR #holder = :me OR (#holder = :was AND #exp = :wasexp)"
            } else {
                "attribute_not_exists(#pk) OR #exp <= :now OR #holder = :me"
            })
            .name("#exp", "expires")
            .name("#holder", "holder")
            .value(":now", n(now.timestamp_millis()))
            .value(":me", s(holder));
            if let Some(was) = replacing {
                cond = cond
                    .value(":was", s(&was.holder))
                    .value(":wasexp", n(was.expires.timestamp_millis()));
            }
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

    pub(super) async fn do_release(&self, lease_key: &str, holder: &str) -> Result<(), StoreError> {
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

    pub(super) async fn do_join(
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

    pub(super) async fn do_queue(&self, queue_key: &str) -> Result<Vec<Waiter>, StoreError> {
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

    pub(super) async fn do_leave(&self, queue_key: &str, holder: &str) -> Result<(), StoreError> {
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

    pub(super) async fn do_answer(&self, answer: TaskAnswer) -> Result<(), StoreError> {
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
