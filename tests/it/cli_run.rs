//! `piflow run` and `piflow test` on real workflow files, with mocks.

use assert_cmd::Command;
use serde_json::Value;

/// The binary, run from the project root with its own store (PIFLOW_HOME).
fn piflow(home: &std::path::Path) -> Command {
    let mut c = Command::cargo_bin("piflow").expect("the piflow binary is built");
    c.env("NO_COLOR", "1")
        .env("PIFLOW_HOME", home)
        .env_remove("PIFLOW_STORE")
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

/// `piflow test WORKFLOW --input INPUT --mock MOCK --format json`: the
/// result object.
fn test_json(home: &std::path::Path, workflow: &str, input: &str, mock: &str) -> Value {
    let out = piflow(home)
        .args([
            "test", workflow, "--input", input, "--mock", mock, "--format", "json",
        ])
        .output()
        .expect("runs");
    json_out(&out.stdout)
}

/// The results of an environment's audit records, oldest first.
fn audit_results(home: &std::path::Path, env: &str) -> Vec<String> {
    let out = piflow(home)
        .args(["audit", "--env", env, "--format", "json"])
        .output()
        .expect("runs");
    json_out(&out.stdout)
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|r| r["result"].as_str().map(str::to_string))
        .collect()
}
const MOCKS: &str = "integration/mocks/upgrade.mock.json";

#[test]
fn upgrade_happy_path_succeeds() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = piflow(home.path())
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
    assert_eq!(v["output"]["released"]["outcome"], "released");
    assert_eq!(
        v["output"]["released"]["services"]["pirana"]["after"]["image"],
        "registry.example/product/pirana:1.0"
    );
    // piflow.yaml's product and environment filled the input.
    assert_eq!(v["output"]["product"]["waves"][0][0], "dashboard");
    assert_eq!(v["output"]["target"]["cluster"], "product");
    assert_eq!(v["output"]["rollout"]["strategy"], "canary");
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
    let home = tempfile::tempdir().expect("tempdir");
    // HealthGate retries 12 times, 300 s apart: an hour of virtual time.
    let started = std::time::Instant::now();
    let out = piflow(home.path())
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
fn a_failed_service_ends_the_release_rolled_back() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = piflow(home.path())
        .args([
            "test",
            "upgrade",
            "--input",
            INPUT,
            "--mock",
            &format!("{MOCKS}#ServiceFails"),
        ])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("→ Release (Task)"), "{text}");
    assert!(
        text.contains("✗ Release TaskFailed: Release.RolledBack"),
        "{text}"
    );
    assert!(text.contains("error: Upgrade.RolledBack"), "{text}");
}

#[test]
fn input_that_breaks_the_schema_is_refused_with_pointers() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = piflow(home.path())
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
    let home = tempfile::tempdir().expect("tempdir");
    let out = piflow(home.path())
        .args(["run", "upgrade", "--input", "{\"a\": }"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1 column 7"));
}

#[test]
fn invalid_definitions_never_start() {
    let home = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("bad.asl.json");
    std::fs::write(
        &f,
        r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}}}"#,
    )
    .expect("write");
    let out = piflow(home.path())
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
    let home = tempfile::tempdir().expect("tempdir");
    let out = piflow(home.path())
        .args(["run", "no-such-workflow"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let dir = tempfile::tempdir().expect("tempdir");
    let m = dir.path().join("m.json");
    std::fs::write(&m, r#"{"States": {"Lint": [{"Retrun": 1}]}}"#).expect("write");
    let out = piflow(home.path())
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
    let home = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    // A piflow: step that does not exist is refused before anything runs.
    let f = dir.path().join("unknown.asl.json");
    std::fs::write(
        &f,
        r#"{"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "piflow:no-such-step", "End": true}}}"#,
    )
    .expect("write");
    let out = piflow(home.path())
        .args(["test", &f.display().to_string(), "--format", "json"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown-step") && err.contains("piflow:no-such-step"),
        "{err}"
    );
    // A resource that is valid but that nothing here serves fails when it runs.
    let f = dir.path().join("activity.asl.json");
    std::fs::write(
        &f,
        r#"{"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:us-east-1:123456789012:activity:nobody", "End": true}}}"#,
    )
    .expect("write");
    let out = piflow(home.path())
        .args(["test", &f.display().to_string(), "--format", "json"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let v = json_out(&out.stdout);
    assert_eq!(v["status"], "FAILED");
    assert!(
        v["cause"].as_str().unwrap_or("").contains(
            "no handler for resource 'arn:aws:states:us-east-1:123456789012:activity:nobody'"
        ),
        "{v}"
    );
}

#[test]
fn waits_take_no_time_under_test_and_the_history_shows_them() {
    let home = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("wait.asl.json");
    std::fs::write(
        &f,
        r#"{"StartAt": "Hour", "States": {"Hour": {"Type": "Wait", "Seconds": 3600, "Next": "Done"}, "Done": {"Type": "Pass", "Result": {"ok": true}, "End": true}}}"#,
    )
    .expect("write");
    let started = std::time::Instant::now();
    let out = piflow(home.path())
        .args(["test", &f.display().to_string(), "--history"])
        .output()
        .expect("runs");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("SUCCEEDED in 3600."), "{text}");
    assert!(text.contains("WaitStateExited"), "{text}");
}

#[test]
fn audit_notes_are_chained_in_the_store_and_verify() {
    let home = tempfile::tempdir().expect("tempdir");
    for case in ["Refused", "RollbackFails"] {
        piflow(home.path())
            .args([
                "test",
                "upgrade",
                "--input",
                INPUT,
                "--mock",
                &format!("{MOCKS}#{case}"),
                "--format",
                "json",
            ])
            .output()
            .expect("runs");
    }
    let out = piflow(home.path())
        .args(["audit", "--env", "dev", "--format", "json"])
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = json_out(&out.stdout);
    let records = records.as_array().expect("array");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["result"], "refused");
    assert_eq!(records[0]["action"], "release.refused");
    let out = piflow(home.path())
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
    assert_eq!(out.status.code(), Some(1));
    let out = piflow(home.path())
        .args(["audit", "--env", "dev", "--format", "json"])
        .output()
        .expect("runs");
    let records = json_out(&out.stdout);
    let records = records.as_array().expect("array");
    assert_eq!(records.len(), 2);
    assert_eq!(records[1]["result"], "refused");
    assert_eq!(records[1]["prev_hash"], records[0]["hash"]);
    let out = piflow(home.path())
        .args(["audit", "verify"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("the audit chain is intact"));
}

#[test]
fn workflows_are_published_as_versions_with_aliases() {
    let home = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("deploy.asl.json");
    std::fs::write(
        &f,
        "{\"StartAt\": \"A\", \"States\": {\"A\": {\"Type\": \"Pass\", \"End\": true}}}\n",
    )
    .expect("write");
    let file = f.display().to_string();
    let publish = |args: &[&str]| {
        let mut all = vec!["workflows", "publish", file.as_str(), "--format", "json"];
        all.extend_from_slice(args);
        let out = piflow(home.path()).args(&all).output().expect("runs");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        json_out(&out.stdout)
    };
    assert_eq!(publish(&["--alias", "live"])["version"], 1);
    assert_eq!(
        publish(&[])["version"],
        1,
        "the same text is the same version"
    );
    std::fs::write(
        &f,
        "{\"StartAt\": \"B\", \"States\": {\"B\": {\"Type\": \"Succeed\"}}}\n",
    )
    .expect("write");
    assert_eq!(publish(&[])["version"], 2);

    let out = piflow(home.path())
        .args(["workflows", "list", "deploy", "--format", "json"])
        .output()
        .expect("runs");
    assert_eq!(json_out(&out.stdout).as_array().map(Vec::len), Some(2));
    let out = piflow(home.path())
        .args(["workflows", "show", "deploy", "--version", "live"])
        .output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"StartAt\": \"A\""));
    let out = piflow(home.path())
        .args(["workflows", "diff", "deploy", "live", "2"])
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(1),
        "a difference exits 1, like diff"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("-{\"StartAt\": \"A\"") && text.contains("+{\"StartAt\": \"B\""),
        "{text}"
    );

    // An invalid definition is not published.
    std::fs::write(&f, "{\"StartAt\": \"Nope\", \"States\": {}}").expect("write");
    let out = piflow(home.path())
        .args(["workflows", "publish", &file])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was published"));
}

#[test]
fn an_input_over_256_kib_is_refused() {
    let home = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("big.json");
    std::fs::write(
        &big,
        format!("{{\"blob\": \"{}\"}}", "x".repeat(300 * 1024)),
    )
    .expect("write");
    let f = dir.path().join("p.asl.json");
    std::fs::write(
        &f,
        r#"{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}"#,
    )
    .expect("write");
    let out = piflow(home.path())
        .args([
            "test",
            &f.display().to_string(),
            "--input",
            &format!("@{}", big.display()),
        ])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("may be at most 262144 bytes"));
}

/// In prod the upgrade waits for an approval; a rejection refuses the
/// upgrade before any traffic moves, and the refusal is audited.
#[test]
fn upgrade_in_prod_waits_for_approval() {
    let home = tempfile::tempdir().expect("tempdir");
    let run = |case: &str| {
        test_json(
            home.path(),
            "upgrade",
            "@integration/inputs/upgrade-prod.json",
            &format!("{MOCKS}#{case}"),
        )
    };
    let approved = run("ProdApproved");
    assert_eq!(approved["status"], "SUCCEEDED", "{approved}");
    assert_eq!(approved["output"]["approval"]["by"], "alice");
    let rejected = run("ProdRejected");
    assert_eq!(rejected["status"], "FAILED");
    assert_eq!(rejected["error"], "Upgrade.Refused");
    assert_eq!(rejected["cause"], "not during the quarter close");
    // The release record is the release step's own (mocked here): only
    // the refusal is recorded.
    assert_eq!(audit_results(home.path(), "prod"), vec!["refused"]);
}

/// Each workflow end to end with its steps mocked: the happy path, and
/// failures that must end refused or rolled back, each audited.
#[test]
fn every_workflow_ends_as_its_mocks_say() {
    // A mocked release step records nothing itself (its release record
    // is its own): the workflows' notes are the refusals and failures.
    let cases = [
        ("deploy", "HappyPath", "SUCCEEDED", None, None),
        (
            "deploy",
            "StackFails",
            "FAILED",
            Some("Deploy.Failed"),
            Some("failed"),
        ),
        (
            "deploy",
            "ServiceFails",
            "FAILED",
            Some("Deploy.RolledBack"),
            None,
        ),
        (
            "upgrade",
            "RollbackFails",
            "FAILED",
            Some("Upgrade.RollbackFailed"),
            None,
        ),
        ("rollback", "HappyPath", "SUCCEEDED", None, None),
        (
            "rollback",
            "NoPrevious",
            "FAILED",
            Some("Rollback.NoPreviousRelease"),
            Some("refused"),
        ),
        ("restore", "HappyPath", "SUCCEEDED", None, Some("restored")),
        (
            "restore",
            "BackupFails",
            "FAILED",
            Some("Restore.Failed"),
            Some("failed"),
        ),
        // repoint answering without services: nothing to roll, recorded.
        (
            "restore",
            "NothingRepointed",
            "FAILED",
            Some("Restore.Failed"),
            Some("failed"),
        ),
    ];
    for (workflow, case, status, error, outcome) in cases {
        let home = tempfile::tempdir().expect("tempdir");
        let v = test_json(
            home.path(),
            workflow,
            &format!("@integration/inputs/{workflow}-dev.json"),
            &format!("integration/mocks/{workflow}.mock.json#{case}"),
        );
        assert_eq!(v["status"], status, "{workflow}#{case}: {v}");
        assert_eq!(v["error"].as_str(), error, "{workflow}#{case}: {v}");
        assert_eq!(
            audit_results(home.path(), "dev"),
            outcome.into_iter().collect::<Vec<_>>(),
            "{workflow}#{case}"
        );
    }
}

/// An alarm rolls the product back only when the newest release is
/// recent (environments.dev.remediation.alarm_window_minutes: 60); an
/// older one is only noted.
#[test]
fn an_alarm_rolls_back_a_recent_release_and_notes_an_old_one() {
    let alarm = r#"{"target": {"environment": "dev", "region": "us-east-1", "cluster": "product", "service": "dashboard"}, "reason": {"trigger": "aws.cloudwatch", "alarm": "dev-dashboard-5xx"}}"#;
    let home = tempfile::tempdir().expect("tempdir");
    let recent = test_json(
        home.path(),
        "rollback",
        alarm,
        "integration/mocks/rollback.mock.json#Newest",
    );
    assert_eq!(recent["status"], "SUCCEEDED", "{recent}");
    assert_eq!(recent["output"]["previous"]["version"], "0.9", "{recent}");
    assert_eq!(recent["output"]["rolled_back"]["outcome"], "released");
    let home = tempfile::tempdir().expect("tempdir");
    let old = test_json(
        home.path(),
        "rollback",
        alarm,
        "integration/mocks/rollback.mock.json#OldReleaseAlarm",
    );
    assert_eq!(old["status"], "SUCCEEDED", "{old}");
    assert!(old["output"].get("rolled_back").is_none(), "{old}");
    assert_eq!(audit_results(home.path(), "dev"), vec!["noted"]);
}
