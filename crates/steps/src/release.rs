//! `piflow:last-release`: the environment's last successful release, read
//! from the audit trail (what `rollback` rolls back to).
//!
//! Input: `environment` (required), `service` (optional: only releases of
//! that service), `before` (optional: a version; the answer is the newest
//! successful release recorded before the newest record of that version,
//! else the newest one that is not that version), `previous` (optional,
//! `true`: the release before the newest successful one). Successful
//! releases are the product release records (`release.recorded`, result
//! `released`, written by `piflow:release`) and the single-service records
//! whose result is `deployed` or `upgraded` and whose `after` names a
//! `version`. Output: `{"version", "image", "service", "services",
//! "task_definitions", "released", "age_seconds", "age_minutes", "record"}` — for a
//! product release `services` is every service's release after
//! (`{NAME: {task_definition, image}}`) and `task_definitions` maps each to
//! its task definition (what `piflow:release` takes to return to it); none
//! found → `LastRelease.NotFound`.

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::AuditHandle;
use piflow_engine::AuditRecord;
use piflow_engine::{Failure, TaskHandler, TaskRequest};

pub struct LastRelease {
    pub store: AuditHandle,
}

fn is_release(r: &AuditRecord, service: Option<&str>) -> bool {
    if r.entry.action == "release.recorded" {
        return r.entry.result == "released"
            && service.is_none_or(|s| {
                r.entry
                    .after
                    .pointer("/services")
                    .and_then(|m| m.get(s))
                    .is_some()
            });
    }
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

fn version_of(r: &AuditRecord) -> Option<String> {
    r.entry
        .after
        .get("version")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The release to go back to, among an environment's records (oldest first).
pub fn last_release<'a>(
    records: &'a [AuditRecord],
    service: Option<&str>,
    before: Option<&str>,
) -> Option<&'a AuditRecord> {
    let releases: Vec<&AuditRecord> = records.iter().filter(|r| is_release(r, service)).collect();
    let version = version_of;
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
            let previous = request
                .input
                .get("previous")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let store = store
                .get()
                .await
                .map_err(|e| Failure::new("LastRelease.StoreFailed", e.to_string()))?;
            let records = store
                .records(&env, None)
                .await
                .map_err(|e| Failure::new("LastRelease.StoreFailed", e.to_string()))?;
            let found = if previous && before.is_none() {
                // The release before the newest one.
                last_release(&records, service.as_deref(), None)
                    .and_then(version_of)
                    .and_then(|v| last_release(&records, service.as_deref(), Some(&v)))
            } else {
                last_release(&records, service.as_deref(), before.as_deref())
            };
            let Some(r) = found else {
                return Err(Failure::new(
                    "LastRelease.NotFound",
                    format!(
                        "no successful release{} in {env}{} in the audit trail (records with result deployed or upgraded and a version)",
                        service
                            .as_deref()
                            .map(|s| format!(" of {s}"))
                            .unwrap_or_default(),
                        match (before.as_deref(), previous) {
                            (Some(b), _) => format!(" before {b}"),
                            (None, true) => " before the newest one".to_string(),
                            (None, false) => String::new(),
                        }
                    ),
                ));
            };
            let services = super::product_services(&r.entry.after);
            let task_definitions: serde_json::Map<String, Value> = services
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.get("task_definition")?.clone())))
                .collect();
            Ok(json!({
                "version": r.entry.after.get("version"),
                "image": r.entry.after.get("image"),
                "service": r.entry.after.get("service"),
                "services": services,
                "task_definitions": task_definitions,
                "released": r.entry.at,
                "age_seconds": (chrono::Utc::now() - r.entry.at).num_seconds().max(0),
                "age_minutes": (chrono::Utc::now() - r.entry.at).num_minutes().max(0),
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
