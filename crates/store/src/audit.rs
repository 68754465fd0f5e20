//! Audit records in a hash chain per environment: each record's hash covers
//! its content and the previous record's hash, so an edited, removed or
//! reordered record breaks the chain at a place [`verify_chain`] names.

use serde::Serialize;
use serde_json::Value;

use piflow_engine::sha256_hex;
pub use piflow_engine::{AuditEntry, AuditRecord};

/// The hash of a record: SHA-256 of its canonical JSON (entry fields in a
/// fixed order) with its sequence number and the previous hash.
pub fn record_hash(seq: u64, prev_hash: &str, entry: &AuditEntry) -> String {
    let mut canonical = serde_json::json!([
        seq,
        prev_hash,
        entry.env,
        entry.actor,
        entry.action,
        entry.target,
        entry.before,
        entry.after,
        entry.result,
        entry.execution,
        entry.at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
    ]);
    if let (Some(t), Value::Array(a)) = (&entry.token, &mut canonical) {
        a.push(Value::String(t.clone()));
    }
    sha256_hex(canonical.to_string().as_bytes())
}

/// Chain a new entry after `prev` (the environment's current head).
pub fn chain(prev: Option<&AuditRecord>, entry: AuditEntry) -> AuditRecord {
    let seq = prev.map_or(1, |p| p.seq + 1);
    let prev_hash = prev.map(|p| p.hash.clone()).unwrap_or_default();
    let hash = record_hash(seq, &prev_hash, &entry);
    AuditRecord {
        seq,
        entry,
        prev_hash,
        hash,
    }
}

/// A break in an environment's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainProblem {
    pub env: String,
    pub seq: u64,
    pub problem: String,
}

/// Check one environment's records (in stored order): sequence numbers
/// 1, 2, 3 …, each `prev_hash` equal to the previous record's hash, and each
/// hash equal to the hash of the record's content.
pub fn verify_chain(records: &[AuditRecord]) -> Vec<ChainProblem> {
    let mut problems = Vec::new();
    let mut prev: Option<&AuditRecord> = None;
    for (i, r) in records.iter().enumerate() {
        let want_seq = i as u64 + 1;
        let problem = |p: String| ChainProblem {
            env: r.entry.env.clone(),
            seq: r.seq,
            problem: p,
        };
        if r.seq != want_seq {
            problems.push(problem(format!(
                "sequence number {} where {want_seq} was expected: a record was removed, inserted or reordered",
                r.seq
            )));
        }
        let want_prev = prev.map(|p| p.hash.as_str()).unwrap_or("");
        if r.prev_hash != want_prev {
            problems.push(problem("its previous-hash does not match the record before it: a record was removed or reordered".into()));
        }
        if record_hash(r.seq, &r.prev_hash, &r.entry) != r.hash {
            problems.push(problem(
                "its content does not match its hash: the record was edited".into(),
            ));
        }
        prev = Some(r);
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use serde_json::json;

    fn entry(n: u64) -> AuditEntry {
        AuditEntry {
            env: "prod".into(),
            actor: "cli:alice".into(),
            action: "ecs.shift-traffic".into(),
            target: "dashboard".into(),
            before: json!({"green": n}),
            after: json!({"green": n + 10}),
            result: "ok".into(),
            execution: None,
            at: DateTime::from_timestamp(1_700_000_000 + n as i64, 0).unwrap_or_default(),
            token: None,
        }
    }

    fn chain_of(n: u64) -> Vec<AuditRecord> {
        let mut out: Vec<AuditRecord> = Vec::new();
        for i in 0..n {
            let r = chain(out.last(), entry(i));
            out.push(r);
        }
        out
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert!(verify_chain(&chain_of(5)).is_empty());
    }

    #[test]
    fn edits_removals_and_reorderings_are_found() {
        let mut edited = chain_of(5);
        edited[2].entry.result = "failed".into();
        let p = verify_chain(&edited);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].seq, 3);
        assert!(p[0].problem.contains("edited"));

        let mut removed = chain_of(5);
        removed.remove(1);
        let p = verify_chain(&removed);
        assert!(
            p.iter()
                .any(|p| p.seq == 3 && p.problem.contains("removed")),
            "{p:?}"
        );

        let mut reordered = chain_of(5);
        reordered.swap(1, 2);
        assert!(!verify_chain(&reordered).is_empty());
    }
}
