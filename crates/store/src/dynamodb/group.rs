//! Group commit of history appends: appends of different executions that
//! wait at the same time share one `TransactWriteItems`.

use super::*;

/// One `append_events` call waiting for a group commit: its transaction
/// items (the `EVHEAD` put first), their size, and where to answer.
pub(super) struct Batch {
    pub(super) execution: String,
    pub(super) what: String,
    pub(super) items: Vec<TransactWriteItem>,
    pub(super) bytes: usize,
    pub(super) done: tokio::sync::oneshot::Sender<Result<(), WriteError>>,
}

/// A group of batches of different executions may fill at most this much
/// of a transaction's 4 MB (the sizes here are estimates; a batch alone may
/// use all of it, as without group commit).
pub(super) const GROUP_MAX_BYTES: usize = TX_MAX_BYTES / 8 * 7;

impl DynamoStore {
    /// Queue a batch for the next group commit and wait for its answer.
    /// The caller that finds no committer running starts one (a task, so
    /// that the commit finishes even if that caller goes away).
    pub(super) async fn group_append(
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
    pub(super) async fn commit_loop(self) {
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
    pub(super) async fn commit_group(&self, group: Vec<Batch>) {
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

    pub(super) async fn commit_one_by_one(&self, batches: Vec<Batch>) {
        for b in batches {
            let written = self.transact(&b.what, b.items).await;
            let _ = b.done.send(written);
        }
    }
}

/// Take the next group off the queue: batches in arrival order while they
/// fit one transaction (100 items, [`GROUP_MAX_BYTES`]), at most one per
/// execution (two would both condition on its `EVHEAD`). A batch left
/// behind keeps its place, and so do the later batches of its execution.
pub(super) fn next_group(queue: &mut Vec<Batch>) -> Vec<Batch> {
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
pub(super) struct Leader {
    pub(super) pending: Arc<Mutex<(Vec<Batch>, bool)>>,
    pub(super) running: bool,
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
pub(super) fn copy_error(e: &StoreError) -> StoreError {
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
