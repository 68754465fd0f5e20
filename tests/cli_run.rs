//! `piflow run` and `piflow test` on real workflow files, with mocks.

use assert_cmd::Command;
use serde_json::Value;

fn piflow() -> Command {
    let mut c = Command::cargo_bin("piflow").expect("the piflow binary is built");
    c.env("NO_COLOR", "1")
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn json_out(out: &[u8]) -> Value {
    serde_json::from_slice(out).unwrap_or_else(|e| {
        panic!(
            "not one JSON object ({e}): {}",
            String::from_utf8_lossy(out)
        )
    })
}

const INPUT: &str = "@integration/inputs/upgrade-dev.json";
const MOCKS: &str = "integration/mocks/upgrade.mock.json";

#[test]
fn upgrade_happy_path_succeeds() {
    let out = piflow()
        .args([
            "test",
            "upgrade",
            "--input",
            INPUT,
            "--mock",
            &format!("{MOCKS}#HappyPath"),
            "--format",
            "json",
        ])
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json_out(&out.stdout);
    assert_eq!(v["status"], "SUCCEEDED");
    assert_eq!(v["output"]["rollout_result"]["traffic"]["green"], 100);
    assert_eq!(v["output"]["checks"]["lint"]["tool"], "cfn-lint");
    assert!(
        v["execution"]
            .as_str()
            .unwrap_or("")
            .starts_with("arn:aws:states:")
    );
    assert!(v.get("error").is_none());
}

#[test]
fn an_aws_incident_refuses_the_upgrade_after_waiting_for_the_all_clear() {
    // HealthGate retries 12 times, 300 s apart: an hour of virtual time.
    let started = std::time::Instant::now();
    let out = piflow()
        .args([
            "test",
            "upgrade",
            "--input",
            INPUT,
            "--mock",
            &format!("{MOCKS}#HealthIncident"),
            "--format",
            "json",
        ])
        .output()
        .expect("runs");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1));
    let v = json_out(&out.stdout);
    assert_eq!(v["status"], "FAILED");
    assert_eq!(v["error"], "Upgrade.Refused");
    assert_eq!(
        v["cause"],
        "AWS Health reports an open ECS issue in us-east-1"
    );
    assert!(v.get("output").is_none());
}

#[test]
fn an_unhealthy_green_ends_rolled_back() {
    let out = piflow()
        .args([
            "test",
            "upgrade",
            "--input",
            INPUT,
            "--mock",
            &format!("{MOCKS}#GreenUnhealthy"),
        ])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("→ BlueGreen (Task)"), "{text}");
    assert!(
        text.contains("✗ BlueGreen TaskFailed: BlueGreen.RolledBack"),
        "{text}"
    );
    assert!(text.contains("→ RecordFailure (Task)"), "{text}");
    assert!(text.contains("error: Upgrade.RolledBack"), "{text}");
}

#[test]
fn input_that_breaks_the_schema_is_refused_with_pointers() {
    let out = piflow()
        .args([
            "test",
            "upgrade",
            "--input",
            r#"{"target": {"environment": 5}}"#,
        ])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("at /target/environment: 5 is not of type \"string\""),
        "{err}"
    );
    assert!(err.contains("\"release\" is a required property"), "{err}");
}

#[test]
fn bad_input_json_is_exit_two_with_position() {
    let out = piflow()
        .args(["run", "upgrade", "--input", "{\"a\": }"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1 column 7"));
}

#[test]
fn invalid_definitions_never_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("bad.asl.json");
    std::fs::write(
        &f,
        r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}}}"#,
    )
    .expect("write");
    let out = piflow()
        .args(["run", &f.display().to_string()])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error[unknown-state]"), "{err}");
    assert!(err.contains("nothing was run"), "{err}");
}

#[test]
fn unknown_workflow_and_bad_mock_are_usage_errors() {
    let out = piflow()
        .args(["run", "no-such-workflow"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let dir = tempfile::tempdir().expect("tempdir");
    let m = dir.path().join("m.json");
    std::fs::write(&m, r#"{"States": {"Lint": [{"Retrun": 1}]}}"#).expect("write");
    let out = piflow()
        .args([
            "test",
            "upgrade",
            "--input",
            INPUT,
            "--mock",
            &m.display().to_string(),
        ])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("States/Lint/0"));
}

#[test]
fn a_task_without_handler_or_mock_fails_clearly() {
    let out = piflow()
        .args(["test", "upgrade", "--input", INPUT, "--format", "json"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let v = json_out(&out.stdout);
    assert_eq!(v["status"], "FAILED");
    assert!(
        v["cause"]
            .as_str()
            .unwrap_or("")
            .contains("no handler for resource 'piflow:lint'"),
        "{v}"
    );
}

#[test]
fn waits_take_no_time_under_test_and_the_history_shows_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("wait.asl.json");
    std::fs::write(
        &f,
        r#"{"StartAt": "Hour", "States": {"Hour": {"Type": "Wait", "Seconds": 3600, "Next": "Done"}, "Done": {"Type": "Pass", "Result": {"ok": true}, "End": true}}}"#,
    )
    .expect("write");
    let started = std::time::Instant::now();
    let out = piflow()
        .args(["test", &f.display().to_string(), "--history"])
        .output()
        .expect("runs");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("SUCCEEDED in 3600."), "{text}");
    assert!(text.contains("WaitStateExited"), "{text}");
}
