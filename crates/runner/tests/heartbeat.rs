//! Heartbeats for a `.waitForTaskToken` task that another process runs:
//! two runners on one store stand for two processes (each has its own
//! token registry, as each `piflow serve` has). The heartbeats one sends
//! keep the other's task alive past its `HeartbeatSeconds`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use piflow_engine::{Failure, Status, SystemClock, TaskHandler, TaskRegistry, TaskRequest};
use piflow_runner::{Answered, Finished, Runner, RunnerError, StartRequest, execution_id};
use piflow_store::Store;
use piflow_store::embedded::EmbeddedStore;
use serde_json::{Value, json};

/// A callback task whose token holder must beat every 2 s.
const CALLBACK: &str = r#"{"StartAt": "C", "States": {"C": {"Type": "Task",
    "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
    "Parameters": {"FunctionName": "cb", "Payload": {"token.$": "$$.Task.Token"}},
    "HeartbeatSeconds": 2, "End": true}}}"#;

/// Hands the token out (to the test) and returns at once.
struct HandOut(Arc<Mutex<Option<String>>>);

impl TaskHandler for HandOut {
    fn invoke(&self, request: TaskRequest) -> BoxFuture<'static, Result<Value, Failure>> {
        *self.0.lock().unwrap() = request.task_token;
        Box::pin(async { Ok(Value::Null) })
    }
}

fn runner(store: &Arc<dyn Store>, tasks: TaskRegistry) -> Runner {
    let mut r = Runner::new(store.clone(), tasks, Arc::new(SystemClock));
    // The keeper polls for answers and heartbeats every 100 ms.
    r.lease_ttl = Duration::from_secs(1);
    r
}

fn start(r: &Runner, name: &str) -> tokio::task::JoinHandle<Result<Finished, RunnerError>> {
    let r = r.clone();
    let name = name.to_string();
    tokio::spawn(async move {
        r.start(StartRequest {
            workflow: "w".into(),
            definition: CALLBACK.into(),
            source_commit: None,
            author: "test".into(),
            name: Some(name),
            input: json!({}),
            trigger: "test".into(),
            env: None,
            wait: false,
        })
        .await
    })
}

async fn token_of(slot: &Mutex<Option<String>>) -> String {
    for _ in 0..500 {
        if let Some(t) = slot.lock().unwrap().clone() {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the task never handed its token out");
}

/// A store in `dir`, and a runner whose callback task puts its token in
/// the slot.
fn setup(dir: &std::path::Path) -> (Arc<dyn Store>, Arc<Mutex<Option<String>>>, Runner) {
    let store: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(dir.join("piflow.redb")).expect("store"));
    let slot = Arc::new(Mutex::new(None));
    let mut tasks = TaskRegistry::new();
    tasks.register(
        "arn:aws:states:::lambda:invoke",
        Arc::new(HandOut(slot.clone())),
    );
    let runs = runner(&store, tasks);
    (store, slot, runs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_from_another_process_keep_the_task_alive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, slot, runs) = setup(dir.path());
    let other = runner(&store, TaskRegistry::new());

    let run = start(&runs, "beating");
    let token = token_of(&slot).await;
    // Six seconds of heartbeats every 500 ms from the other "process":
    // three times the task's HeartbeatSeconds.
    for _ in 0..12 {
        let beat = other
            .heartbeat_task(&token, chrono::Utc::now())
            .await
            .expect("heartbeat");
        assert!(matches!(beat, Answered::Recorded(_)), "{beat:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        !run.is_finished(),
        "the task timed out despite its heartbeats"
    );
    let answered = other
        .answer_task(
            &token,
            json!({"output": {"done": true}}),
            chrono::Utc::now(),
        )
        .await
        .expect("answer");
    assert!(matches!(answered, Answered::Recorded(_)), "{answered:?}");
    let finished = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the answer reached the task")
        .expect("join")
        .expect("run");
    assert_eq!(finished.record.status, Status::Succeeded, "{finished:?}");
    // Once answered, a heartbeat is refused as one for an answered token.
    let late = other
        .heartbeat_task(&token, chrono::Utc::now())
        .await
        .expect("heartbeat");
    assert!(
        matches!(late, Answered::Refused(_) | Answered::Again),
        "{late:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_heartbeats_the_task_times_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, slot, runs) = setup(dir.path());
    let run = start(&runs, "silent");
    let _ = token_of(&slot).await;
    let finished = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the heartbeat timeout ended the task")
        .expect("join")
        .expect("run");
    assert_eq!(finished.record.status, Status::Failed, "{finished:?}");
    assert_eq!(finished.record.error.as_deref(), Some("States.Timeout"));
    assert_eq!(
        store
            .execution(&execution_id("w", "silent"))
            .await
            .expect("read")
            .map(|r| r.status),
        Some(Status::Failed)
    );
}
