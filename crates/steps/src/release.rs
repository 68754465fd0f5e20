//! `piflow:last-release`: the environment's last successful release, read
//! from the audit trail (what `rollback` rolls back to).
//!
//! Input: `environment` (required), `service` (optional: only releases of
//! that service), `before` (optional: a version; the answer is the newest
//! successful release recorded before the newest record of that version,
//! else the newest one that is not that version). Successful releases are
//! the records whose result is `deployed` or `upgraded` and whose `after`
//! names a `version` (the deploy and upgrade workflows write them). Output:
//! `{"version", "image", "service", "released", "record"}`; none found →
//! `LastRelease.NotFound`.

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::AuditHandle;
use piflow_engine::AuditRecord;
use piflow_engine::{Failure, TaskHandler, TaskRequest};

pub struct LastRelease {
    pub store: AuditHandle,
}

fn is_release(r: &AuditRecord, service: Option<&str>) -> bool {
    matches!(r.entry.result.as_str(), "deployed" | "upgraded")
        && r.entry
            .after
            .get("version")
            .and_then(Value::as_str)
            .is_some()
        && service.is_none_or(|s| {
            r.entry
                .after
                .get("service")
                .and_then(Value::as_str)
                .is_none_or(|rs| rs == s)
        })
}

/// The release to go back to, among an environment's records (oldest first).
pub fn last_release<'a>(
    records: &'a [AuditRecord],
    service: Option<&str>,
    before: Option<&str>,
) -> Option<&'a AuditRecord> {
    let releases: Vec<&AuditRecord> = records.iter().filter(|r| is_release(r, service)).collect();
    let version = |r: &AuditRecord| {
        r.entry
            .after
            .get("version")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    match before {
        Some(b) => match releases
            .iter()
            .rposition(|r| version(r).as_deref() == Some(b))
        {
            Some(i) => releases[..i]
                .iter()
                .rev()
                .find(|r| version(r).as_deref() != Some(b))
                .copied(),
            None => releases
                .iter()
                .rev()
                .find(|r| version(r).as_deref() != Some(b))
                .copied(),
        },
        None => releases.last().copied(),
    }
}

impl TaskHandler for LastRelease {
    fn invoke(&self, request: TaskRequest) -> BoxFuture<'static, Result<Value, Failure>> {
        let store = self.store.clone();
        Box::pin(async move {
            let env = super::aws_step::environment(&request, "LastRelease")?;
            let text = |k: &str| {
                request
                    .input
                    .get(k)
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            let (service, before) = (text("service"), text("before"));
            let store = store
                .get()
                .await
                .map_err(|e| Failure::new("LastRelease.StoreFailed", e.to_string()))?;
            let records = store
                .records(&env, None)
                .await
                .map_err(|e| Failure::new("LastRelease.StoreFailed", e.to_string()))?;
            let Some(r) = last_release(&records, service.as_deref(), before.as_deref()) else {
                return Err(Failure::new(
                    "LastRelease.NotFound",
                    format!(
                        "no successful release{} in {env}{} in the audit trail (records with result deployed or upgraded and a version)",
                        service
                            .as_deref()
                            .map(|s| format!(" of {s}"))
                            .unwrap_or_default(),
                        before
                            .as_deref()
                            .map(|b| format!(" before {b}"))
                            .unwrap_or_default()
                    ),
                ));
            };
            Ok(json!({
                "version": r.entry.after.get("version"),
                "image": r.entry.after.get("image"),
                "service": r.entry.after.get("service"),
                "released": r.entry.at,
                "record": r.seq,
            }))
        })
    }

    fn real_time(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use piflow_engine::AuditEntry;

    fn rec(seq: u64, result: &str, version: &str, service: &str) -> AuditRecord {
        AuditRecord {
            seq,
            entry: AuditEntry {
                env: "dev".into(),
                actor: "x".into(),
                action: "note".into(),
                target: "t".into(),
                before: Value::Null,
                after: json!({"version": version, "image": format!("img:{version}"), "service": service}),
                result: result.into(),
                execution: None,
                at: chrono::Utc::now(),
                token: None,
            },
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn finds_the_release_before_the_current_one() {
        let records = vec![
            rec(1, "deployed", "1.0", "dashboard"),
            rec(2, "upgraded", "1.1", "renderer"),
            rec(3, "rolled-back", "1.2", "dashboard"),
            rec(4, "upgraded", "1.1", "dashboard"),
            rec(5, "upgraded", "1.2", "dashboard"),
        ];
        let v = |r: Option<&AuditRecord>| r.map(|r| r.seq);
        assert_eq!(
            v(last_release(&records, Some("dashboard"), Some("1.2"))),
            Some(4)
        );
        assert_eq!(
            v(last_release(&records, Some("dashboard"), Some("1.1"))),
            Some(1)
        );
        assert_eq!(v(last_release(&records, Some("dashboard"), None)), Some(5));
        assert_eq!(
            v(last_release(&records, Some("dashboard"), Some("1.0"))),
            None
        );
        assert_eq!(
            v(last_release(&records, Some("renderer"), Some("9.9"))),
            Some(2)
        );
    }
}
