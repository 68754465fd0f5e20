//! An execution recorded with a test case of the mock file (a Step
//! Functions API start of `…:stateMachine:NAME#CASE`) runs with that
//! case's responses; resumed by a runner that has no such case (a server
//! restarted without the file), it ends FAILED saying so, and never runs
//! its tasks un-mocked.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

use std::sync::Arc;

use chrono::Utc;
use piflow_engine::{MockFile, Status, SystemClock, TaskRegistry};
use piflow_runner::{Runner, execution_id};
use piflow_store::embedded::EmbeddedStore;
use piflow_store::{ExecutionRecord, NewDefinition, StartOutcome, Store};
use serde_json::json;

const CALL: &str = r#"{"StartAt": "Call", "States": {"Call": {"Type": "Task",
    "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"FunctionName": "f"}, "End": true}}}"#;

async fn recorded(store: &Arc<dyn Store>, name: &str, test_case: &str) -> String {
    let version = store
        .publish(NewDefinition {
            workflow: "w".into(),
            definition: CALL.into(),
            author: "test".into(),
            source_commit: None,
        })
        .await
        .expect("publish");
    let id = execution_id("w", name);
    let record = ExecutionRecord {
        id: id.clone(),
        workflow: "w".into(),
        name: name.into(),
        version: version.version,
        status: Status::Running,
        input: json!({}),
        output: None,
        error: None,
        cause: None,
        trigger: "test".into(),
        started: Utc::now(),
        stopped: None,
        revision: 0,
        redrive_count: 0,
        stop_requested: None,
        stop_reason: None,
        env: None,
        version_arn: None,
        alias_arn: None,
        test_case: Some(test_case.into()),
    };
    assert!(matches!(
        store.start_execution(record).await.expect("record"),
        StartOutcome::Created(_)
    ));
    id
}

fn mock_file() -> Arc<MockFile> {
    Arc::new(
        MockFile::from_value(&json!({
            "StateMachines": {"w": {"TestCases": {"Ok": {"Call": "Answer"}}}},
            "MockedResponses": {"Answer": {"0": {"Return": {"from": "the test case"}}}}
        }))
        .expect("mock file"),
    )
}

#[tokio::test]
async fn the_recorded_test_case_gives_the_responses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(dir.path().join("piflow.redb")).expect("store"));
    let id = recorded(&store, "ok", "Ok").await;
    let tasks = TaskRegistry::new().with_mock_file(mock_file());
    let runner = Runner::new(store.clone(), tasks, Arc::new(SystemClock));
    let done = runner.resume(&id).await.expect("resume");
    assert_eq!(done.record.status, Status::Succeeded, "{:?}", done.record);
    assert_eq!(done.record.output, Some(json!({"from": "the test case"})));
}

#[tokio::test]
async fn a_test_case_the_runner_does_not_have_fails_the_execution_plainly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(dir.path().join("piflow.redb")).expect("store"));
    for (name, tasks) in [
        ("no-file", TaskRegistry::new()),
        ("no-case", TaskRegistry::new().with_mock_file(mock_file())),
    ] {
        let id = recorded(&store, name, if name == "no-file" { "Ok" } else { "Gone" }).await;
        let runner = Runner::new(store.clone(), tasks, Arc::new(SystemClock));
        let done = runner.resume(&id).await.expect("resume");
        assert_eq!(done.record.status, Status::Failed, "{name}");
        assert_eq!(done.record.error.as_deref(), Some("States.Runtime"));
        let cause = done.record.cause.clone().unwrap_or_default();
        assert!(cause.contains("[unknown-test-case]"), "{name}: {cause}");
        // No task ran: the history holds no event of the Task state.
        let events = store.events(&id).await.expect("events");
        assert!(
            !events.iter().any(|e| e.event_type.starts_with("Task")),
            "{name}: {:?}",
            events.iter().map(|e| &e.event_type).collect::<Vec<_>>()
        );
        let stored = store.execution(&id).await.expect("read").expect("record");
        assert_eq!(stored.status, Status::Failed);
    }
}
