//! Leases: one execution per environment at a time (`env:NAME`, in FIFO
//! order), and one process per execution (`exec:ID`), both renewed while
//! the process lives and left to expire when it dies.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use super::{RunnerError, chrono_ttl, liveness};
use piflow_engine::TokenRegistry;
use piflow_store::{LeaseOutcome, Store};

/// The lease key of an environment.
pub fn env_key(env: &str) -> String {
    format!("env:{env}")
}

/// The lease key of an execution (held by the process running it).
pub fn exec_key(id: &str) -> String {
    format!("exec:{id}")
}

/// How a wait for a lease went (for display).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseWait {
    pub key: String,
    pub holder: String,
    pub ahead: usize,
}

fn poll_interval(ttl: Duration) -> Duration {
    (ttl / 10).clamp(Duration::from_millis(50), Duration::from_millis(500))
}

/// Take the environment lease `key` for execution `holder`: join its FIFO
/// queue and take the lease when first in line and the lease is free,
/// expired, or held by an execution whose process is gone (its execution
/// lease's holder is a process of this host that died: [`liveness`]).
/// Without `wait`, refuse at once when it is held or others wait first.
pub async fn take(
    store: &dyn Store,
    key: &str,
    holder: &str,
    ttl: Duration,
    wait: bool,
    say: &(dyn Fn(&str) + Send + Sync),
) -> Result<(), RunnerError> {
    let ttl_c = chrono_ttl(ttl);
    let mut told: Option<LeaseWait> = None;
    loop {
        let me = store.join_queue(key, holder, ttl_c).await?;
        let line = store.queue(key).await?;
        let ahead: Vec<_> = line.iter().filter(|w| w.ticket < me.ticket).collect();
        let current = store.lease(key).await?;
        let held_by = current
            .as_ref()
            .filter(|l| l.expires > chrono::Utc::now() && l.holder != holder);
        if ahead.is_empty() {
            let outcome = match store.acquire_lease(key, holder, ttl_c).await? {
                LeaseOutcome::Held(l) if runs_nowhere(store, &l.holder).await? => {
                    tracing::info!(lease = key, execution = %l.holder, "the process that ran the execution holding the lease is gone; taking the lease over");
                    // Exactly the lease read before its execution's: if that
                    // execution was claimed and renewed this lease since,
                    // the write is refused.
                    store.take_over_lease(key, &l, holder, ttl_c).await?
                }
                other => other,
            };
            match outcome {
                LeaseOutcome::Acquired(_) => {
                    store.leave_queue(key, holder).await?;
                    return Ok(());
                }
                LeaseOutcome::Held(l) if !wait => {
                    store.leave_queue(key, holder).await?;
                    return Err(RunnerError::LeaseHeld {
                        key: key.to_string(),
                        holder: l.holder,
                        until: l.expires,
                        waiting: line.len().saturating_sub(1),
                    });
                }
                LeaseOutcome::Held(_) => {}
            }
        } else if !wait {
            store.leave_queue(key, holder).await?;
            let (who, until) = match held_by {
                Some(l) => (l.holder.clone(), l.expires),
                None => (
                    format!("(none; {} queued first)", ahead[0].holder),
                    ahead[0].expires,
                ),
            };
            return Err(RunnerError::LeaseHeld {
                key: key.to_string(),
                holder: who,
                until,
                waiting: ahead.len(),
            });
        }
        let now = LeaseWait {
            key: key.to_string(),
            holder: held_by.map_or_else(|| "-".to_string(), |l| l.holder.clone()),
            ahead: ahead.len(),
        };
        if told.as_ref() != Some(&now) {
            say(&format!(
                "waiting for {key}: held by {}, {} ahead in the queue",
                now.holder, now.ahead
            ));
            told = Some(now);
        }
        tokio::time::sleep(poll_interval(ttl)).await;
    }
}

/// The execution `id` holds an environment lease, but its execution lease
/// is held by a process of this host that is gone. (A live process takes
/// the execution's lease before the environment's, so this never judges an
/// execution that a live process resumes; one whose execution lease is
/// missing or held elsewhere is waited for, as before.)
async fn runs_nowhere(store: &dyn Store, id: &str) -> Result<bool, RunnerError> {
    Ok(store
        .lease(&exec_key(id))
        .await?
        .is_some_and(|l| liveness::is_dead(&l.holder)))
}

/// What the lease keeper of a running execution needs.
pub struct Keeper {
    pub store: Arc<dyn Store>,
    pub id: String,
    pub holder: String,
    pub env: Option<String>,
    pub ttl: Duration,
    pub tokens: Arc<TokenRegistry>,
    /// Set when another process took the execution over.
    pub lost: Arc<AtomicBool>,
    /// When the execution's lease was last written: just before the claim
    /// that started this run. The first renewal is a third of the lease's
    /// life after it.
    pub since: tokio::time::Instant,
    /// Until when this process may act on the leases: the start of the
    /// last renewal that succeeded plus nine tenths of their time to live.
    pub valid_until: Arc<std::sync::Mutex<tokio::time::Instant>>,
    pub stop: watch::Sender<bool>,
    pub done: watch::Receiver<bool>,
}

/// Renew the leases every third of their life, stop the execution when
/// `piflow stop` asks, and hand task-token answers (sent by any process) to
/// the waiting task; until `done`, or until another process took a lease.
///
/// The renewals keep their own schedule: a slow read of the record or of
/// the task answers never holds one back. On a store that answers in `S`,
/// a lease of `T` stays valid while `S` is under 0.45 `T` (3.6 s of an
/// 8 s lease); when each renewal waited for the reads made after the one
/// before, it lapsed from `S` ≈ 0.28 `T` on.
pub async fn keep(k: Keeper) {
    let mut done = k.done.clone();
    tokio::select! {
        _ = done.changed() => {}
        () = renew(&k) => {}
        () = watch_requests(&k) => {}
    }
}

/// Renew both leases (at the same time) a third of their life after the
/// start of the last renewal that succeeded, or a poll interval after one
/// that failed; returns when another process holds one of them.
async fn renew(k: &Keeper) {
    let renew_every = k.ttl / 3;
    let retry = poll_interval(k.ttl).min(renew_every);
    let ttl = chrono_ttl(k.ttl);
    let mut next = k.since + renew_every;
    loop {
        tokio::time::sleep_until(next).await;
        let start = tokio::time::Instant::now();
        let exec = (super::exec_key(&k.id), k.holder.clone());
        let env = k
            .env
            .as_ref()
            .map(|env| (super::env_key(env), k.id.clone()));
        let renewals = std::iter::once(exec)
            .chain(env)
            .map(|(key, holder)| async move {
                let outcome = k.store.acquire_lease(&key, &holder, ttl).await;
                (key, outcome)
            });
        let mut renewed = true;
        for (key, outcome) in futures::future::join_all(renewals).await {
            match outcome {
                Ok(LeaseOutcome::Acquired(_)) => {}
                Ok(LeaseOutcome::Held(l)) => {
                    tracing::error!(lease = %key, holder = %l.holder, execution = %k.id, "the lease was taken over; this process stops the execution");
                    k.lost.store(true, Ordering::SeqCst);
                    return;
                }
                Err(e) => {
                    renewed = false;
                    tracing::warn!(lease = %key, error = %e, "could not renew the lease; trying again");
                }
            }
        }
        if renewed {
            if let Ok(mut v) = k.valid_until.lock() {
                *v = start + k.ttl.mul_f64(0.9);
            }
            next = start + renew_every;
        } else {
            next = tokio::time::Instant::now() + retry;
        }
    }
}

/// A third of the leases' life after the last read ended, read the record
/// for a stop request (on a slow store, less often: the renewals keep
/// their pace, this gives way); every poll interval, the answers to the
/// open task tokens and the heartbeats of those that wait for them. Never
/// returns.
async fn watch_requests(k: &Keeper) {
    let read_every = k.ttl / 3;
    let tick = poll_interval(k.ttl).min(read_every);
    let mut next_read = tokio::time::Instant::now() + read_every;
    // The heartbeat revision last handed on, by token.
    let mut beats: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    loop {
        tokio::time::sleep(tick).await;
        if tokio::time::Instant::now() >= next_read {
            let read = k.store.execution(&k.id).await;
            next_read = tokio::time::Instant::now() + read_every;
            match read {
                Ok(Some(r)) if r.stop_requested.is_some() => {
                    let _ = k.stop.send(true);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(execution = %k.id, error = %e, "could not read the execution")
                }
            }
        }
        // The registry holds the tokens of every execution of this runner:
        // this keeper reads the answers to its own execution's.
        let own = k
            .tokens
            .open_tokens()
            .into_iter()
            .filter(|t| crate::execution_of_token(t).as_deref() == Some(k.id.as_str()));
        for token in own {
            match k.store.task_answer(&token).await {
                Ok(Some(a)) => {
                    let text =
                        |f: &str| a.outcome.get(f).and_then(Value::as_str).map(str::to_string);
                    let _ = match a.outcome.get("output") {
                        Some(out) => k.tokens.send_success(&token, out.clone()),
                        None => k.tokens.send_failure(&token, text("error"), text("cause")),
                    };
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "could not read task answers"),
            }
        }
        // Heartbeats recorded by other processes, for the tasks that wait
        // for them.
        let own: Vec<String> = k
            .tokens
            .heartbeat_tokens()
            .into_iter()
            .filter(|t| crate::execution_of_token(t).as_deref() == Some(k.id.as_str()))
            .collect();
        beats.retain(|t, _| own.contains(t));
        for token in own {
            match k.store.resource(crate::HEARTBEAT_KIND, &token).await {
                Ok(Some(beat)) if beats.get(&token) != Some(&beat.revision) => {
                    if k.tokens.send_heartbeat(&token).is_ok() {
                        beats.insert(token, beat.revision);
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not read task heartbeats"),
            }
        }
    }
}
