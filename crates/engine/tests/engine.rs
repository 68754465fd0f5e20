//! Interpreter behaviour beyond the corpus: task tokens, mocks, batching,
//! back-off timing, stop, limits.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

use std::sync::Arc;
use std::time::Duration;

use piflow_asl::{LoadOptions, StateMachine, validate_value};
use piflow_engine::tasks::{MockConfig, MockResponse};
use piflow_engine::{
    Engine, ExecutionOutcome, ExecutionRequest, Status, TaskRegistry, VirtualClock, clock,
};
use serde_json::{Value, json};

fn machine(def: Value) -> Arc<StateMachine> {
    let v = validate_value(&def, LoadOptions::default());
    assert!(v.is_valid(), "{:#?}", v.diagnostics);
    Arc::new(v.machine.expect("machine"))
}

fn request(m: Arc<StateMachine>, input: Value) -> ExecutionRequest {
    ExecutionRequest {
        machine: m,
        state_machine_name: "t".into(),
        execution_name: "e".into(),
        input,
        role_arn: None,
        durable: None,
    }
}

fn run_virtual(tasks: TaskRegistry, m: Arc<StateMachine>, input: Value) -> ExecutionOutcome {
    let rt = clock::virtual_runtime().expect("runtime");
    rt.block_on(async move {
        let engine = Engine::new(tasks, Arc::new(VirtualClock::new(chrono::Utc::now())));
        engine.run(request(m, input)).await
    })
}

fn mocks(states: &[(&str, Vec<MockResponse>)]) -> TaskRegistry {
    TaskRegistry::new().with_mocks(MockConfig::new(
        states
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    ))
}

fn throw(e: &str) -> MockResponse {
    MockResponse::Throw {
        error: e.into(),
        cause: format!("{e} happened"),
    }
}

#[test]
fn retry_backs_off_exponentially_with_a_cap_then_catches() {
    let m = machine(json!({
        "StartAt": "Call",
        "States": {
            "Call": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 2, "BackoffRate": 3, "MaxAttempts": 3, "MaxDelaySeconds": 10}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Handled"}],
                "End": true},
            "Handled": {"Type": "Pass", "End": true}
        }
    }));
    let out = run_virtual(mocks(&[("Call", vec![throw("Flaky")])]), m, json!({"x": 1}));
    assert_eq!(out.status, Status::Succeeded);
    assert_eq!(
        out.output,
        Some(json!({"x": 1, "error": {"Error": "Flaky", "Cause": "Flaky happened"}}))
    );
    // 4 attempts; waits of 2, 6 and 10 (capped from 18) seconds between them.
    let starts: Vec<_> = out
        .history
        .iter()
        .filter(|e| e.event_type == "TaskScheduled")
        .map(|e| e.timestamp)
        .collect();
    assert_eq!(starts.len(), 4);
    let gaps: Vec<i64> = starts
        .windows(2)
        .map(|w| (w[1] - w[0]).num_seconds())
        .collect();
    assert_eq!(gaps, vec![2, 6, 10]);
}

#[test]
fn states_runtime_is_never_caught() {
    let m = machine(json!({
        "StartAt": "Call",
        "States": {
            "Call": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"v.$": "$.missing"},
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Handled"}], "End": true},
            "Handled": {"Type": "Pass", "End": true}
        }
    }));
    let out = run_virtual(
        mocks(&[("Call", vec![MockResponse::Return(json!(1))])]),
        m,
        json!({}),
    );
    assert_eq!(out.status, Status::Failed);
    assert_eq!(out.error.as_deref(), Some("States.Runtime"));
    assert!(
        out.cause
            .unwrap_or_default()
            .contains("The JSONPath '$.missing' specified for the field 'v.$' could not be found")
    );
}

#[test]
fn wait_for_task_token_resumes_on_send_task_success() {
    let m = machine(json!({
        "StartAt": "Approve",
        "States": {
            "Approve": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {"token.$": "$$.Task.Token"}, "HeartbeatSeconds": 60, "TimeoutSeconds": 3600, "End": true}
        }
    }));
    struct Submit(tokio::sync::mpsc::UnboundedSender<String>);
    impl piflow_engine::TaskHandler for Submit {
        fn invoke(
            &self,
            req: piflow_engine::TaskRequest,
        ) -> futures::future::BoxFuture<'static, Result<Value, piflow_engine::Failure>> {
            let token = req.input["token"].as_str().unwrap_or_default().to_string();
            assert_eq!(Some(token.clone()), req.task_token);
            let _ = self.0.send(token);
            Box::pin(async { Ok(json!({"MessageId": "m-1"})) })
        }
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = TaskRegistry::new();
    tasks.register("arn:aws:states:::sqs:", Arc::new(Submit(tx)));
    let rt = clock::virtual_runtime().expect("runtime");
    let out = rt.block_on(async move {
        let engine = Engine::new(tasks, Arc::new(VirtualClock::new(chrono::Utc::now())));
        let tokens = engine.tokens.clone();
        let approver = async move {
            let token = rx.recv().await.expect("token submitted");
            // A heartbeat within 60 s keeps the task alive; then the answer.
            tokio::time::sleep(Duration::from_secs(50)).await;
            tokens.send_heartbeat(&token).expect("heartbeat");
            tokio::time::sleep(Duration::from_secs(50)).await;
            tokens
                .send_success(&token, json!({"approved": true}))
                .expect("success");
            token
        };
        let (out, token) = tokio::join!(engine.run(request(m, json!({}))), approver);
        assert!(
            engine.tokens.send_success(&token, json!(1)).is_err(),
            "a completed token is refused"
        );
        out
    });
    assert_eq!(out.status, Status::Succeeded, "{:?}", out.cause);
    assert_eq!(out.output, Some(json!({"approved": true})));
    assert!(out.history.iter().any(|e| e.event_type == "TaskSubmitted"));
}

#[test]
fn a_missed_heartbeat_times_out() {
    let m = machine(json!({
        "StartAt": "Approve",
        "States": {"Approve": {"Type": "Task", "Resource": "arn:aws:states:::sns:publish.waitForTaskToken",
            "Parameters": {"t.$": "$$.Task.Token"}, "HeartbeatSeconds": 30, "End": true}}
    }));
    struct Ok1;
    impl piflow_engine::TaskHandler for Ok1 {
        fn invoke(
            &self,
            _: piflow_engine::TaskRequest,
        ) -> futures::future::BoxFuture<'static, Result<Value, piflow_engine::Failure>> {
            Box::pin(async { Ok(json!({})) })
        }
    }
    let mut tasks = TaskRegistry::new();
    tasks.register("arn:aws:states:::sns:", Arc::new(Ok1));
    let out = run_virtual(tasks, m, json!({}));
    assert_eq!(out.status, Status::Failed);
    assert_eq!(out.error.as_deref(), Some("States.Timeout"));
    assert!(out.history.iter().any(|e| e.event_type == "TaskTimedOut"));
}

#[test]
fn item_batcher_groups_items() {
    let m = machine(json!({
        "StartAt": "Fan",
        "States": {"Fan": {"Type": "Map",
            "ItemBatcher": {"MaxItemsPerBatch": 2, "BatchInput": {"job": "x"}},
            "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                "StartAt": "Count", "States": {"Count": {"Type": "Pass",
                    "Parameters": {"n.$": "States.ArrayLength($.Items)", "job.$": "$.BatchInput.job"}, "End": true}}},
            "End": true}}
    }));
    let out = run_virtual(TaskRegistry::new(), m, json!([1, 2, 3, 4, 5]));
    assert_eq!(out.status, Status::Succeeded, "{:?}", out.cause);
    assert_eq!(
        out.output,
        Some(json!([{"n": 2, "job": "x"}, {"n": 2, "job": "x"}, {"n": 1, "job": "x"}]))
    );
}

#[test]
fn item_reader_is_refused_clearly() {
    let m = machine(json!({
        "StartAt": "Fan",
        "States": {"Fan": {"Type": "Map",
            "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSON"},
                "Parameters": {"Bucket": "b", "Key": "k"}},
            "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}},
            "End": true}}
    }));
    let out = run_virtual(TaskRegistry::new(), m, json!({}));
    assert_eq!(out.status, Status::Failed);
    assert!(
        out.cause
            .unwrap_or_default()
            .contains("ItemReader reads or writes S3")
    );
}

#[test]
fn parallel_fails_on_the_first_failing_branch_and_cancels_the_others() {
    let m = machine(json!({
        "StartAt": "Both",
        "States": {"Both": {"Type": "Parallel", "End": true, "Branches": [
            {"StartAt": "Slow", "States": {"Slow": {"Type": "Wait", "Seconds": 3600, "Next": "After"},
                                            "After": {"Type": "Pass", "End": true}}},
            {"StartAt": "Boom", "States": {"Boom": {"Type": "Fail", "Error": "Boom", "Cause": "branch 2"}}}
        ]}}
    }));
    let out = run_virtual(TaskRegistry::new(), m, json!({}));
    assert_eq!(out.status, Status::Failed);
    assert_eq!(out.error.as_deref(), Some("Boom"));
    assert!(
        !out.history
            .iter()
            .any(|e| e.state.as_deref() == Some("After")),
        "the slow branch was cancelled"
    );
    assert!((out.stop_date - out.start_date).num_seconds() < 3600);
}

#[test]
fn execution_timeout_and_stop() {
    let m = machine(json!({"StartAt": "W", "TimeoutSeconds": 60,
        "States": {"W": {"Type": "Wait", "Seconds": 120, "End": true}}}));
    let out = run_virtual(TaskRegistry::new(), m.clone(), json!({}));
    assert_eq!(out.status, Status::TimedOut);
    assert_eq!(
        out.history.last().map(|e| e.event_type),
        Some("ExecutionTimedOut")
    );

    let rt = clock::virtual_runtime().expect("runtime");
    let out = rt.block_on(async move {
        let engine = Engine::new(
            TaskRegistry::new(),
            Arc::new(VirtualClock::new(chrono::Utc::now())),
        );
        engine
            .run_until(
                request(m, json!({})),
                tokio::time::sleep(Duration::from_secs(5)),
            )
            .await
    });
    assert_eq!(out.status, Status::Aborted);
}

#[test]
fn history_limit_bounds_an_endless_loop() {
    let m = machine(json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Next": "B"},
        "B": {"Type": "Choice", "Choices": [{"Variable": "$.stop", "IsPresent": true, "Next": "Done"}], "Default": "A"},
        "Done": {"Type": "Succeed"}}}));
    let rt = clock::virtual_runtime().expect("runtime");
    let out = rt.block_on(async move {
        let mut engine = Engine::new(
            TaskRegistry::new(),
            Arc::new(VirtualClock::new(chrono::Utc::now())),
        );
        engine.options.max_history_events = 500;
        engine.run(request(m, json!({}))).await
    });
    assert_eq!(out.status, Status::Failed);
    assert_eq!(out.error.as_deref(), Some("States.Runtime"));
    assert!(
        out.cause
            .unwrap_or_default()
            .contains("maximum number of history events (500)")
    );
    assert!(out.history.len() <= 502);
}

#[test]
fn results_over_the_payload_limit_fail_with_data_limit_exceeded() {
    let big = "x".repeat(300 * 1024);
    let m = machine(
        json!({"StartAt": "Big", "States": {"Big": {"Type": "Pass", "Result": {"blob": big}, "End": true}}}),
    );
    let out = run_virtual(TaskRegistry::new(), m, json!({}));
    assert_eq!(out.status, Status::Failed);
    assert_eq!(out.error.as_deref(), Some("States.DataLimitExceeded"));
}
