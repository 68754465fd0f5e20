//! The audit trail as the engine's steps see it: records they append
//! (idempotently, by their step's token) and read back, through the
//! [`AuditLog`] trait. Whoever implements it (the store) chains the records
//! per environment and keeps them durable.

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What an audit record says, before the store chains it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The environment whose chain it joins (`dev`, `prod`, …).
    pub env: String,
    /// Who: a user, a trigger, an execution.
    pub actor: String,
    /// What: `ecs.shift-traffic`, `decision.health-gate`, `tag.refused`, …
    pub action: String,
    /// The resource it touched (an ARN or name).
    pub target: String,
    pub before: Value,
    pub after: Value,
    /// `ok`, `failed: …`, `refused: …`
    pub result: String,
    pub execution: Option<String>,
    pub at: DateTime<Utc>,
    /// The idempotency token of the step that wrote it: a step re-run after
    /// a crash with the same token gets the record already written instead
    /// of a second one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// A chained audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// 1, 2, 3 … per environment.
    pub seq: u64,
    #[serde(flatten)]
    pub entry: AuditEntry,
    /// Hash of the previous record of the environment ("" for the first).
    pub prev_hash: String,
    /// SHA-256 over `seq`, `prev_hash` and the entry.
    pub hash: String,
}

/// An error of the storage behind one of the engine's traits
/// ([`AuditLog`], [`Journal`](crate::Journal)), carrying the storage's own
/// stable code (`store-conflict`, `store-io`, … — the store's
/// `StoreError::CODES`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[{code}] {message}")]
pub struct StorageError {
    /// The storage's stable code.
    pub code: &'static str,
    /// What failed, in words.
    pub message: String,
}

impl StorageError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        StorageError {
            code,
            message: message.into(),
        }
    }

    /// The storage's stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

/// What an audit-log call returns.
pub type AuditFuture<'a, T> = BoxFuture<'a, Result<T, StorageError>>;

/// The audit trail, as steps reach it.
pub trait AuditLog: Send + Sync {
    /// Append to an environment's audit chain (sequence and hashes are
    /// assigned by the log). An entry whose `token` the environment's chain
    /// already has is not appended again: the record written the first
    /// time is returned.
    fn append_entry(&self, entry: AuditEntry) -> AuditFuture<'_, AuditRecord>;
    /// The records of environment `env`, oldest first; with `since`, only
    /// those at or after it.
    fn records(&self, env: &str, since: Option<DateTime<Utc>>)
    -> AuditFuture<'_, Vec<AuditRecord>>;
}

/// SHA-256 of a text, hex.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(data);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn sha256_of_a_known_text() {
        assert_eq!(
            super::sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_storage_error_shows_its_code() {
        let e = super::StorageError::new("store-io", "disk full");
        assert_eq!(e.code(), "store-io");
        assert_eq!(e.to_string(), "[store-io] disk full");
    }
}
