//! What `piflow watch` remembers of a repository, in the store's audit
//! trail ([`TRIGGERS_ENV`]): whether it watched it before
//! (`watch.baseline`, with the tags it had then) and each tag it has
//! triggered since (`watch.seen`). A restarted watch starts no old tag again.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::TRIGGERS_ENV;
use piflow_store::{AuditEntry, Store, StoreError};

/// What `watch` knows of a repository: whether it looked before, and the
/// tags it has seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    pub started: bool,
    pub tags: HashSet<String>,
}

/// What the audit trail says `watch` saw of `repo` (as shown, canonical).
pub async fn seen(store: &dyn Store, repo: &str) -> Result<Seen, StoreError> {
    let records = store.audit(Some(TRIGGERS_ENV), None).await?;
    let mut out = Seen::default();
    for r in records {
        let e = &r.entry;
        if e.after.get("repo").and_then(Value::as_str) != Some(repo) {
            continue;
        }
        match e.action.as_str() {
            "watch.baseline" => {
                out.started = true;
                let tags = e.after.get("tags").and_then(Value::as_array);
                out.tags.extend(
                    tags.into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_string),
                );
            }
            "watch.seen" => {
                out.tags.insert(e.target.clone());
            }
            _ => {}
        }
    }
    Ok(out)
}

fn record(actor: &str, action: &str, target: &str, after: Value, result: &str) -> AuditEntry {
    AuditEntry {
        env: TRIGGERS_ENV.into(),
        actor: actor.into(),
        action: action.into(),
        target: target.into(),
        before: Value::Null,
        after,
        result: result.into(),
        execution: None,
        at: chrono::Utc::now(),
        token: None,
    }
}

/// What `watch` saw of `repo`; on its first watch, the baseline is
/// recorded first: the repository's `tags` now (so that only tags created
/// later trigger), or none with `from_start` (every tag triggers).
pub async fn look(
    store: &dyn Store,
    repo: &str,
    tags: &[(String, String)],
    from_start: bool,
    actor: &str,
) -> Result<Seen, StoreError> {
    let mut known = seen(store, repo).await?;
    if !known.started {
        let baseline: Vec<String> = if from_start {
            Vec::new()
        } else {
            tags.iter().map(|(n, _)| n.clone()).collect()
        };
        store
            .append_audit(record(
                actor,
                "watch.baseline",
                repo,
                json!({"repo": repo, "tags": baseline, "from_start": from_start}),
                "ok",
            ))
            .await?;
        known.tags.extend(baseline);
        known.started = true;
    }
    Ok(known)
}

/// Record that `watch` triggered `tag` (the tag `object`), and how it
/// ended (`exit`, the command's exit code). Written after the trigger: a
/// watch that dies in between triggers the tag again, which finds the same
/// execution.
pub async fn saw(
    store: &dyn Store,
    repo: &str,
    tag: &str,
    object: &str,
    exit: u8,
    actor: &str,
) -> Result<(), StoreError> {
    store
        .append_audit(record(
            actor,
            "watch.seen",
            tag,
            json!({"repo": repo, "object": object, "exit": exit}),
            if exit == 0 { "ok" } else { "failed" },
        ))
        .await
        .map(|_| ())
}
