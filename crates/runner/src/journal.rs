//! The engine's journal, written to the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;

use piflow_engine::{HistoryEvent, Journal, JournalError, StorageError};
use piflow_store::{Store, StoreError, StoredEvent};

/// Appends an execution's history to the store. A write that fails for a
/// passing reason (I/O, throttling after the SDK's own retries) is tried
/// again with back-off; a write refused by an ordering rule, or made after
/// the execution's lease went to another process, stops the execution.
pub struct StoreJournal {
    store: Arc<dyn Store>,
    execution: String,
    lost: Arc<AtomicBool>,
    /// The leases are ours until then (see `lease::Keeper`).
    valid_until: Arc<std::sync::Mutex<tokio::time::Instant>>,
}

impl StoreJournal {
    pub fn new(
        store: Arc<dyn Store>,
        execution: String,
        lost: Arc<AtomicBool>,
        valid_until: Arc<std::sync::Mutex<tokio::time::Instant>>,
    ) -> Self {
        StoreJournal {
            store,
            execution,
            lost,
            valid_until,
        }
    }
}

fn stored(e: HistoryEvent) -> StoredEvent {
    StoredEvent {
        seq: e.id,
        event_type: e.event_type.to_string(),
        state: e.state,
        timestamp: e.timestamp,
        details: e.details,
        key: e.key.as_deref().map(str::to_string),
        checkpoint: e.checkpoint,
    }
}

impl Journal for StoreJournal {
    fn commit(&self, events: Vec<HistoryEvent>) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(async move {
            if self.lost.load(Ordering::SeqCst) {
                return Err(JournalError::LeaseLost {
                    execution: self.execution.clone(),
                });
            }
            // A lease not renewed in time may already be someone else's:
            // act on nothing more (no step runs after this refusal).
            let valid = self
                .valid_until
                .lock()
                .map(|v| tokio::time::Instant::now() < *v)
                .unwrap_or(false);
            if !valid {
                return Err(JournalError::LeaseExpired {
                    execution: self.execution.clone(),
                });
            }
            let batch: Vec<StoredEvent> = events.into_iter().map(stored).collect();
            let last = batch.last().map_or(0, |e| e.seq);
            let mut delay = Duration::from_millis(50);
            for attempt in 0..5 {
                match self
                    .store
                    .append_events(&self.execution, batch.clone())
                    .await
                {
                    Ok(()) => return Ok(()),
                    Err(StoreError::Conflict(why)) => {
                        // A retried write whose first try landed after all.
                        if attempt > 0 {
                            let stored = self.store.events(&self.execution).await;
                            if stored.is_ok_and(|s| s.last().is_some_and(|e| e.seq == last)) {
                                return Ok(());
                            }
                        }
                        return Err(StorageError::new("store-conflict", why).into());
                    }
                    Err(e @ (StoreError::Io(_) | StoreError::Unavailable { .. }))
                        if attempt < 4 =>
                    {
                        tracing::warn!(execution = %self.execution, attempt, error = %e, "history write failed; trying again");
                        tokio::time::sleep(delay).await;
                        delay *= 3;
                    }
                    Err(e) => return Err(StorageError::from(e).into()),
                }
            }
            Err(JournalError::Failed(
                "the history write kept failing".into(),
            ))
        })
    }
}
