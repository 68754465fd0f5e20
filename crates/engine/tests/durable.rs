//! Durable executions inside the engine: a journal that stops accepting
//! commits at every possible point (as a killed process does), then a resume
//! from what was committed. The resumed execution must end exactly as an
//! uninterrupted one: same output, the same history events once each with
//! gap-free ids, and every side effect once per state entry.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use piflow_asl::{LoadOptions, StateMachine, validate_value};
use piflow_engine::{
    Durable, Engine, ExecutionOutcome, ExecutionRequest, Failure, HistoryEvent, JOURNAL_FAILED,
    Journal, JournalError, RecordedEvent, Replay, Status, TaskHandler, TaskRegistry, TaskRequest,
    VirtualClock, clock,
};
use serde_json::{Value, json};

const COUNT: &str = "arn:aws:lambda:us-east-1:000000000000:function:count";

fn machine(def: Value) -> Arc<StateMachine> {
    let v = validate_value(&def, LoadOptions::default());
    assert!(v.is_valid(), "{:#?}", v.diagnostics);
    Arc::new(v.machine.expect("machine"))
}

/// A journal in memory that refuses every commit after the first `limit`
/// (what a process killed at that point leaves behind).
#[derive(Default)]
struct MemJournal {
    events: Mutex<Vec<HistoryEvent>>,
    commits: Mutex<usize>,
    limit: Option<usize>,
}

impl Journal for MemJournal {
    fn commit(&self, events: Vec<HistoryEvent>) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(async move {
            let mut n = self
                .commits
                .lock()
                .map_err(|e| JournalError::Failed(e.to_string()))?;
            if self.limit.is_some_and(|l| *n >= l) {
                return Err(JournalError::Failed("the process was killed".into()));
            }
            *n += 1;
            let mut all = self
                .events
                .lock()
                .map_err(|e| JournalError::Failed(e.to_string()))?;
            let next = all.last().map_or(1, |e| e.id + 1);
            if events.first().map(|e| e.id) != Some(next) {
                return Err(JournalError::Failed(format!(
                    "out of order: {:?} after {}",
                    events.first().map(|e| e.id),
                    next - 1
                )));
            }
            all.extend(events);
            Ok(())
        })
    }
}

/// A side-effecting task that counts its calls by state and idempotency
/// token. "Flaky" fails its first attempt of every entry.
#[derive(Default, Clone)]
struct Counter {
    calls: Arc<Mutex<Vec<(String, String)>>>,
    fail: Arc<Mutex<Vec<String>>>,
}

impl Counter {
    /// The states called, in order.
    fn states(&self) -> Vec<String> {
        self.calls
            .lock()
            .expect("calls")
            .iter()
            .map(|(s, _)| s.clone())
            .collect()
    }
}

impl TaskHandler for Counter {
    fn invoke(&self, request: TaskRequest) -> BoxFuture<'static, Result<Value, Failure>> {
        let me = self.clone();
        Box::pin(async move {
            if let Ok(mut c) = me.calls.lock() {
                c.push((
                    request.state_name.clone(),
                    request.idempotency_token.clone(),
                ));
            }
            if request.state_name == "Flaky" && request.attempt == 0 {
                return Err(Failure::new("Flaky", "first attempts fail"));
            }
            if me
                .fail
                .lock()
                .is_ok_and(|f| f.contains(&request.state_name))
            {
                return Err(Failure::new("Broken", "this step is broken"));
            }
            Ok(json!({"ok": true, "step": request.input.get("step").cloned()}))
        })
    }
}

fn workflow() -> Arc<StateMachine> {
    machine(json!({
        "StartAt": "Init",
        "States": {
            "Init": {"Type": "Pass", "Assign": {"release.$": "States.UUID()"}, "Next": "Flaky"},
            "Flaky": {"Type": "Task", "Resource": COUNT,
                "Parameters": {"step": "flaky", "release.$": "$release"},
                "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 3, "MaxAttempts": 2}],
                "ResultPath": "$.flaky", "Next": "Pause"},
            "Pause": {"Type": "Wait", "Seconds": 10, "Next": "Fan"},
            "Fan": {"Type": "Parallel", "ResultPath": "$.fan", "Next": "Each", "Branches": [
                {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": COUNT,
                    "Parameters": {"step": "a", "release.$": "$release"}, "End": true}}},
                {"StartAt": "B1", "States": {
                    "B1": {"Type": "Pass", "Next": "B2"},
                    "B2": {"Type": "Task", "Resource": COUNT, "Parameters": {"step": "b"}, "End": true}}}
            ]},
            "Each": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2, "ResultPath": "$.each",
                "ItemProcessor": {"StartAt": "Item", "States": {
                    "Item": {"Type": "Task", "Resource": COUNT, "Parameters": {"step.$": "$"}, "End": true}}},
                "Next": "Check"},
            "Check": {"Type": "Choice", "Choices": [
                {"Variable": "$.flaky.ok", "BooleanEquals": true, "Next": "Final"}], "Default": "Bad"},
            "Bad": {"Type": "Fail", "Error": "Bad"},
            "Final": {"Type": "Task", "Resource": COUNT,
                "Parameters": {"step": "final", "release.$": "$release"}, "ResultPath": "$.final", "End": true}
        }
    }))
}

fn run(
    m: &Arc<StateMachine>,
    counter: &Counter,
    journal: Arc<MemJournal>,
    replay: Vec<RecordedEvent>,
    redrive_count: u32,
) -> ExecutionOutcome {
    let rt = clock::virtual_runtime().expect("runtime");
    let mut tasks = TaskRegistry::new();
    tasks.register(COUNT, Arc::new(counter.clone()));
    let m = m.clone();
    rt.block_on(async move {
        let engine = Engine::new(tasks, Arc::new(VirtualClock::new(chrono::Utc::now())));
        engine
            .run(ExecutionRequest {
                machine: m,
                state_machine_name: "durable".into(),
                execution_name: "e1".into(),
                input: json!({"items": ["i0", "i1", "i2"]}),
                role_arn: None,
                durable: Some(Durable {
                    journal,
                    replay: Arc::new(Replay::new(replay)),
                    start_date: None,
                    redrive_count,
                }),
            })
            .await
    })
}

fn recorded(events: &[HistoryEvent]) -> Vec<RecordedEvent> {
    events
        .iter()
        .map(|e| RecordedEvent {
            id: e.id,
            event_type: e.event_type.to_string(),
            timestamp: e.timestamp,
            details: e.details.clone(),
            key: e.key.as_deref().map(str::to_string),
            checkpoint: e.checkpoint.clone(),
        })
        .collect()
}

/// (type, state) of every event, counted.
fn shape(events: &[HistoryEvent]) -> HashMap<(String, Option<String>), usize> {
    let mut m = HashMap::new();
    for e in events {
        *m.entry((e.event_type.to_string(), e.state.clone()))
            .or_insert(0) += 1;
    }
    m
}

/// Every release id the tasks were given.
fn releases(events: &[HistoryEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| e.details.pointer("/parameters/release"))
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_crash_at_any_commit_resumes_to_the_same_end() {
    let m = workflow();
    // The uninterrupted run.
    let counter = Counter::default();
    let journal = Arc::new(MemJournal::default());
    let reference = run(&m, &counter, journal.clone(), vec![], 0);
    assert_eq!(reference.status, Status::Succeeded, "{reference:?}");
    let ref_events = journal.events.lock().expect("events").clone();
    assert_eq!(
        ref_events.len(),
        reference.history.len(),
        "every event is committed"
    );
    let commits = *journal.commits.lock().expect("commits");
    let ref_calls = counter.calls.lock().expect("calls").len();
    assert!(commits > 20, "a commit per step: {commits}");
    // 7 task entries; Flaky is called twice (one retry).
    assert_eq!(ref_calls, 8);

    for crash_at in 0..commits {
        let counter = Counter::default();
        let first = Arc::new(MemJournal {
            limit: Some(crash_at),
            ..MemJournal::default()
        });
        let crashed = run(&m, &counter, first.clone(), vec![], 0);
        assert_eq!(
            crashed.status,
            Status::Running,
            "crash at commit {crash_at}"
        );
        assert_eq!(crashed.error.as_deref(), Some(JOURNAL_FAILED));
        let committed = first.events.lock().expect("events").clone();

        let second = Arc::new(MemJournal::default());
        *second.events.lock().expect("events") = committed.clone();
        let resumed = run(&m, &counter, second.clone(), recorded(&committed), 0);
        assert_eq!(
            resumed.status,
            Status::Succeeded,
            "crash at commit {crash_at}: {resumed:?}"
        );
        assert_eq!(
            resumed.output, reference.output,
            "crash at commit {crash_at}"
        );
        let all = second.events.lock().expect("events").clone();
        let ids: Vec<u64> = all.iter().map(|e| e.id).collect();
        assert_eq!(
            ids,
            (1..=all.len() as u64).collect::<Vec<_>>(),
            "gap-free ids, crash at commit {crash_at}"
        );
        assert_eq!(
            shape(&all),
            shape(&ref_events),
            "the same events, each once, crash at commit {crash_at}"
        );
        // Variables survive the crash: every task saw the same release.
        let rel = releases(&all);
        assert_eq!(rel.len(), 4, "crash at commit {crash_at}");
        assert!(
            rel.windows(2).all(|w| w[0] == w[1]),
            "crash at commit {crash_at}: {rel:?}"
        );
        // Every side effect once per state entry and attempt: a call made
        // again after the crash carries the same idempotency token.
        let calls = counter.calls.lock().expect("calls").clone();
        let mut tokens: Vec<&String> = calls.iter().map(|(_, t)| t).collect();
        tokens.sort();
        tokens.dedup();
        assert_eq!(
            tokens.len(),
            ref_calls,
            "crash at commit {crash_at}: {calls:?}"
        );
        assert!(
            calls.len() <= ref_calls + 1,
            "at most the call in flight is repeated, crash at commit {crash_at}: {calls:?}"
        );
    }
}

#[test]
fn a_redrive_runs_the_failed_state_again_and_keeps_what_succeeded() {
    let m = workflow();
    let counter = Counter::default();
    counter.fail.lock().expect("fail").push("B2".into());
    let journal = Arc::new(MemJournal::default());
    let failed = run(&m, &counter, journal.clone(), vec![], 0);
    assert_eq!(failed.status, Status::Failed);
    assert_eq!(failed.error.as_deref(), Some("Broken"));
    let before = counter.states();
    assert_eq!(before, vec!["Flaky", "Flaky", "A", "B2"]);

    // Fix the step and redrive: as the runner does, mark the redrive in
    // the history, then run from what it keeps.
    counter.fail.lock().expect("fail").clear();
    counter.calls.lock().expect("calls").clear();
    let mut events = journal.events.lock().expect("events").clone();
    let next = events.len() as u64 + 1;
    events.push(HistoryEvent {
        id: next,
        previous_event_id: next - 1,
        timestamp: chrono::Utc::now(),
        event_type: "ExecutionRedriven",
        state: None,
        details: json!({"redriveCount": 1}),
        key: Some("/~redrive1".into()),
        checkpoint: None,
    });
    *journal.events.lock().expect("events") = events.clone();
    let redriven = run(&m, &counter, journal.clone(), recorded(&events), 1);
    assert_eq!(redriven.status, Status::Succeeded, "{redriven:?}");
    let after = counter.states();
    // Flaky and A succeeded before and are not called again.
    assert_eq!(
        after.iter().filter(|s| *s == "Flaky" || *s == "A").count(),
        0
    );
    assert_eq!(after.iter().filter(|s| *s == "B2").count(), 1);
    assert_eq!(after.iter().filter(|s| *s == "Item").count(), 3);
    let all = journal.events.lock().expect("events").clone();
    let ids: Vec<u64> = all.iter().map(|e| e.id).collect();
    assert_eq!(ids, (1..=all.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        all.iter()
            .filter(|e| e.event_type == "ExecutionFailed")
            .count(),
        1,
        "the first run's end stays in the history"
    );
    assert_eq!(all.last().map(|e| e.event_type), Some("ExecutionSucceeded"));
}
