//! TestState's unit tests: bad requests answered with AWS's error types,
//! and the answer's shape.

use super::*;

use crate::api::body_of as body;

fn run(v: Value) -> Result<Value, ApiError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(test_state(&body(v), &TaskRegistry::default()))
}

const PASS: &str = r#"{"Type": "Pass", "End": true}"#;
const TASK: &str = r#"{"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"FunctionName": "f"}, "Retry": [{"ErrorEquals": ["Boom"], "IntervalSeconds": 2, "MaxAttempts": 3, "BackoffRate": 3}], "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Handle"}], "End": true}"#;
const MACHINE: &str =
    r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Succeed"}}}"#;

#[test]
fn bad_requests_get_aws_error_types_naming_the_field() {
    let cases = [
        (json!({}), "ValidationException", "'definition'"),
        (
            json!({"definition": PASS, "inspectionLevel": "ALL"}),
            "ValidationException",
            "[INFO, DEBUG, TRACE]",
        ),
        (
            json!({"definition": "{not json"}),
            "InvalidDefinition",
            "not JSON",
        ),
        (
            json!({"definition": r#"{"Type": "Pass", "Nxt": "B", "End": true}"#}),
            "InvalidDefinition",
            "unknown-field at /Nxt: ",
        ),
        (
            json!({"definition": r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}}"#, "stateName": "A"}),
            "InvalidDefinition",
            "Nowhere",
        ),
        (
            json!({"definition": MACHINE, "stateName": "Z"}),
            "ValidationException",
            "stateName 'Z'",
        ),
        (
            json!({"definition": MACHINE}),
            "ValidationException",
            "'stateName'",
        ),
        (
            json!({"definition": PASS, "stateName": "A"}),
            "ValidationException",
            "whole state machine",
        ),
        (
            json!({"definition": PASS, "input": "{\"a\": "}),
            "InvalidExecutionInput",
            "'input'",
        ),
        (
            json!({"definition": PASS, "variables": "[1]"}),
            "ValidationException",
            "'variables'",
        ),
        (
            json!({"definition": TASK, "mock": {"result": "{}", "errorOutput": {"error": "E"}}}),
            "ValidationException",
            "only one of the following fields: [result, errorOutput]",
        ),
        (
            json!({"definition": TASK, "mock": {}}),
            "ValidationException",
            "[result, errorOutput]",
        ),
        (
            json!({"definition": TASK, "mock": {"result": "{oops"}}),
            "ValidationException",
            "'mock.result'",
        ),
        (
            json!({"definition": TASK, "mock": {"errorOutput": {"cause": "c"}}}),
            "ValidationException",
            "'mock.errorOutput.error'",
        ),
        (
            json!({"definition": TASK, "mock": {"result": "{\"StatusCode\": \"200\"}"}}),
            "ValidationException",
            "Field 'StatusCode' must be a number",
        ),
        (
            json!({"definition": TASK, "mock": {"result": "{}", "fieldValidationMode": "LAX"}}),
            "ValidationException",
            "[STRICT, PRESENT, NONE]",
        ),
        (
            json!({"definition": TASK, "mock": {"result": "{}"}, "revealSecrets": true}),
            "ValidationException",
            "RevealSecrets",
        ),
        (
            json!({"definition": PASS, "mock": {"result": "{}"}}),
            "ValidationException",
            "State type 'Pass' is not supported when a mock is specified",
        ),
        (
            json!({"definition": PASS, "context": "{}"}),
            "ValidationException",
            "'context'",
        ),
        (
            json!({"definition": r#"{"Type": "Map", "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Pass", "End": true}}}, "End": true}"#}),
            "InvalidDefinition",
            "does not support Map or Parallel states",
        ),
        (
            json!({"definition": r#"{"Type": "Parallel", "Branches": [{"StartAt": "I", "States": {"I": {"Type": "Pass", "End": true}}}], "End": true}"#, "mock": {"result": "[1, 2]"}}),
            "ValidationException",
            "same number of items as number of Parallel branches",
        ),
        (
            json!({"definition": r#"{"Type": "Map", "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Pass", "End": true}}}, "End": true}"#, "mock": {"errorOutput": {"error": "E"}}, "stateConfiguration": {"errorCausedByState": "J"}}),
            "ValidationException",
            "errorCausedByState 'J'",
        ),
        (
            json!({"definition": TASK, "mock": {"result": "{}"}, "stateConfiguration": {"retrierRetryCount": -1}}),
            "ValidationException",
            "'retrierRetryCount'",
        ),
        (
            json!({"definition": r#"{"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken", "Parameters": {"QueueUrl": "q", "MessageBody.$": "$$.Task.Token"}, "End": true}"#}),
            "InvalidDefinition",
            "only with a mock",
        ),
    ];
    for (input, kind, says) in cases {
        let e = run(input.clone()).expect_err(&input.to_string());
        assert_eq!(e.kind, kind, "{input}: {e}");
        assert!(e.message.contains(says), "{input}: {}", e.message);
        assert_eq!(e.status, 400);
    }
}

#[test]
fn answers_with_json_text_and_inspection_data_by_level() {
    let def = r#"{"Type": "Pass", "InputPath": "$.a", "Parameters": {"x.$": "$.b"}, "ResultPath": "$.r", "Next": "N"}"#;
    let input = r#"{"a": {"b": 1}}"#;
    let info = run(json!({"definition": def, "input": input})).unwrap();
    assert_eq!(
        info,
        json!({"status": "SUCCEEDED", "output": r#"{"a":{"b":1},"r":{"x":1}}"#, "nextState": "N"})
    );
    let debug =
        run(json!({"definition": def, "input": input, "inspectionLevel": "DEBUG"})).unwrap();
    assert_eq!(
        debug["inspectionData"],
        json!({
            "input": r#"{"a":{"b":1}}"#,
            "afterInputPath": r#"{"b":1}"#,
            "afterParameters": r#"{"x":1}"#,
            "afterResultSelector": r#"{"x":1}"#,
            "afterResultPath": r#"{"a":{"b":1},"r":{"x":1}}"#,
        })
    );
}

#[test]
fn retry_and_catch_answer_retriable_and_caught_error() {
    let mock = json!({"errorOutput": {"error": "Boom", "cause": "why"}});
    let retriable = run(
        json!({"definition": TASK, "mock": mock, "inspectionLevel": "TRACE",
        "stateConfiguration": {"retrierRetryCount": 2}}),
    )
    .unwrap();
    assert_eq!(retriable["status"], "RETRIABLE");
    assert_eq!(retriable["error"], "Boom");
    // IntervalSeconds × BackoffRate^2 = 2 × 9.
    assert_eq!(
        retriable["inspectionData"]["errorDetails"],
        json!({"retryIndex": 0, "retryBackoffIntervalSeconds": 18})
    );
    let caught = run(
        json!({"definition": TASK, "mock": mock, "inspectionLevel": "DEBUG",
        "stateConfiguration": {"retrierRetryCount": 3}}),
    )
    .unwrap();
    assert_eq!(caught["status"], "CAUGHT_ERROR");
    assert_eq!(caught["nextState"], "Handle");
    assert_eq!(caught["output"], r#"{"Error":"Boom","Cause":"why"}"#);
    assert_eq!(
        caught["inspectionData"]["errorDetails"],
        json!({"retryIndex": 0, "catchIndex": 0})
    );
}

#[test]
fn a_wait_state_is_checked_but_not_waited() {
    let started = std::time::Instant::now();
    let out =
        run(json!({"definition": r#"{"Type": "Wait", "Seconds": 3600, "Next": "N"}"#})).unwrap();
    assert_eq!(out["status"], "SUCCEEDED");
    assert!(started.elapsed().as_secs() < 5);
    let bad = run(json!({"definition": r#"{"Type": "Wait", "SecondsPath": "$.s", "End": true}"#, "input": r#"{"s": -1}"#}))
        .unwrap();
    assert_eq!(bad["status"], "FAILED");
    assert_eq!(bad["error"], "States.Runtime");
}

#[test]
fn an_unmocked_task_reaches_its_handler_through_the_registry() {
    // No handler: the task fails as an execution's would.
    let out = run(json!({"definition": r#"{"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:f", "End": true}"#}))
        .unwrap();
    assert_eq!(out["status"], "FAILED");
    assert_eq!(out["error"], "States.TaskFailed");
}
