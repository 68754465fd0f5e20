//! Stopping an execution that this process drives: it ends ABORTED at
//! once, not at the keeper's next read of the record (a third of the
//! lease's life later).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

use std::sync::Arc;
use std::time::Duration;

use piflow_engine::{Status, SystemClock, TaskRegistry};
use piflow_runner::{Runner, StartRequest, execution_id};
use piflow_store::Store;
use piflow_store::embedded::EmbeddedStore;
use serde_json::json;

/// A lease so long that its keeper reads the record for a stop request
/// every 200 s: a stop that waited for that read would not end the test.
const TTL: Duration = Duration::from_secs(600);

const LONG_WAIT: &str =
    r#"{"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 500, "End": true}}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_of_an_execution_this_process_drives_takes_effect_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(dir.path().join("piflow.redb")).expect("store"));
    let mut r = Runner::new(store.clone(), TaskRegistry::new(), Arc::new(SystemClock));
    r.lease_ttl = TTL;
    let driver = r.clone();
    let run = tokio::spawn(async move {
        driver
            .start(StartRequest {
                workflow: "w".into(),
                definition: LONG_WAIT.into(),
                source_commit: None,
                author: "test".into(),
                name: Some("long".into()),
                input: json!({}),
                trigger: "test".into(),
                env: None,
                wait: false,
            })
            .await
    });
    let id = execution_id("w", "long");
    // Until the Wait state has begun (its entered event is committed).
    loop {
        let events = store.events(&id).await.expect("events");
        if events.iter().any(|e| e.event_type == "WaitStateEntered") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopped = tokio::time::timeout(Duration::from_secs(60), r.stop(&id, "operator"))
        .await
        .expect("the stop did not wait for the keeper's read")
        .expect("stop");
    assert_eq!(stopped.status, Status::Aborted, "{stopped:?}");
    let finished = run.await.expect("join").expect("the run ends");
    assert_eq!(finished.record.status, Status::Aborted);
    let events = store.events(&id).await.expect("events");
    assert_eq!(
        events.last().map(|e| e.event_type.as_str()),
        Some("ExecutionAborted")
    );
}
