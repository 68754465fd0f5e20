//! What the tests of the built-in steps share: a store in a temp dir, and a
//! `TaskRequest` as the engine would build it.

use std::sync::Arc;

use piflow_engine::TaskRequest;
use piflow_store::Store;
use piflow_store::embedded::EmbeddedStore;
use serde_json::Value;

/// An embedded store in a fresh temp dir (kept alive by the `TempDir`).
pub fn temp_store() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(dir.path().join("piflow.redb")).expect("open store"));
    (dir, store)
}

/// The request a Task state `state` of an execution `execution` (an ARN)
/// sends to `resource`, first attempt, with idempotency token `token`.
pub fn step_request(
    execution: &str,
    state: &str,
    resource: &str,
    token: &str,
    input: Value,
) -> TaskRequest {
    TaskRequest {
        execution: execution.into(),
        state_name: state.into(),
        resource: resource.into(),
        input,
        task_token: None,
        idempotency_token: token.into(),
        credentials: None,
        attempt: 0,
    }
}
