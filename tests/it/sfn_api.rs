//! The Step Functions API on a running `piflow serve`, driven by real AWS
//! clients: boto3 (in the emulator's venv) and the AWS CLI, signing with
//! SigV4 as they do for AWS (`integration/sfn-api/client.py` makes the
//! boto3 calls and prints what came back).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::serve::Server;

const ACCESS_KEY: &str = "AKIDPIFLOWAPITEST";
const SECRET: &str = "piflow-api-test-secret";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `piflow serve` in `dir`, the API on with the test's key pair (or off).
fn serve(dir: &Path, keys: bool) -> Server {
    let pair = [
        ("PIFLOW_API_ACCESS_KEY_ID", ACCESS_KEY),
        ("PIFLOW_API_SECRET_ACCESS_KEY", SECRET),
    ];
    Server::start(dir, &[], if keys { &pair } else { &[] })
}

/// The standard AWS environment of a client holding `secret`.
fn aws_env(cmd: &mut Command, secret: &str) {
    cmd.env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_SFN")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
}

/// Run one check of client.py with boto3.
fn boto3(server: &Server, check: &str, secret: &str) -> Value {
    let mut cmd = Command::new(root().join(".emu/venv/bin/python"));
    cmd.arg(root().join("integration/sfn-api/client.py"))
        .args([&server.url, check]);
    aws_env(&mut cmd, secret);
    let out = cmd.output().expect("python runs");
    assert!(
        out.status.success(),
        "{check}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{check}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn boto3_and_the_aws_cli_validate_definitions() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), true);

    let ok = boto3(&server, "validate-ok", SECRET);
    assert_eq!(ok["ok"]["result"], "OK", "{ok}");
    assert_eq!(ok["ok"]["diagnostics"], serde_json::json!([]), "{ok}");

    let broken = boto3(&server, "validate-broken", SECRET);
    assert_eq!(broken["ok"]["result"], "FAIL", "{broken}");
    let diags = broken["ok"]["diagnostics"].as_array().unwrap();
    let found: Vec<(&str, &str, &str)> = diags
        .iter()
        .map(|d| {
            (
                d["severity"].as_str().unwrap(),
                d["code"].as_str().unwrap(),
                d["location"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(
        found.contains(&("ERROR", "unknown-field", "/States/A/Nxt")),
        "{broken}"
    );
    assert_eq!(broken["ok"]["truncated"], false);

    // The AWS CLI, as a user runs it.
    let def = dir.path().join("broken.asl.json");
    std::fs::write(
        &def,
        r#"{"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "piflow:ecs-blue-grean", "End": true}}}"#,
    )
    .unwrap();
    // The AWS CLI of the emulator's venv (integration/emulator/setup.sh pins it).
    let mut cmd = Command::new(root().join(".emu/venv/bin/aws"));
    cmd.args([
        "stepfunctions",
        "validate-state-machine-definition",
        "--endpoint-url",
        &server.url,
        "--output",
        "json",
        "--definition",
    ])
    .arg(format!("file://{}", def.display()));
    aws_env(&mut cmd, SECRET);
    let out = cmd.output().expect("the AWS CLI runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["result"], "FAIL", "{v}");
    assert_eq!(v["diagnostics"][0]["code"], "unknown-step", "{v}");
    assert!(
        v["diagnostics"][0]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean \"piflow:ecs-blue-green\""),
        "{v}"
    );

    let unknown = boto3(&server, "unknown-operation", SECRET);
    assert_eq!(unknown["error"], "UnknownOperationException", "{unknown}");
    assert!(
        unknown["message"]
            .as_str()
            .unwrap()
            .contains("ListActivities"),
        "{unknown}"
    );
}

#[test]
fn unsigned_wrongly_signed_stale_and_replayed_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), true);

    let unsigned = boto3(&server, "unsigned", SECRET);
    assert_eq!(
        unsigned["error"], "MissingAuthenticationTokenException",
        "{unsigned}"
    );

    let wrong = boto3(&server, "validate-ok", "not-the-secret");
    assert_eq!(wrong["error"], "InvalidSignatureException", "{wrong}");

    let stale = boto3(&server, "stale", SECRET);
    assert_eq!(stale["status"], 400, "{stale}");
    assert_eq!(
        stale["body"]["__type"], "InvalidSignatureException",
        "{stale}"
    );
    assert!(
        stale["body"]["message"]
            .as_str()
            .unwrap()
            .contains("Signature expired"),
        "{stale}"
    );

    // The same signed request twice: a read is answered twice; an
    // operation that changes something is refused the second time, before
    // it is looked at.
    let replay = boto3(&server, "replay", SECRET);
    for answer in replay["read"].as_array().unwrap() {
        assert_eq!(answer["status"], 200, "{replay}");
        assert_eq!(answer["body"]["result"], "OK", "{replay}");
    }
    let change = replay["change"].as_array().unwrap();
    assert_eq!(
        change[0]["body"]["__type"], "UnknownOperationException",
        "{replay}"
    );
    assert_eq!(change[1]["status"], 400, "{replay}");
    assert_eq!(
        change[1]["body"]["__type"], "InvalidSignatureException",
        "{replay}"
    );

    let tampered = boto3(&server, "tampered", SECRET);
    assert_eq!(
        tampered["body"]["__type"], "InvalidSignatureException",
        "{tampered}"
    );
}

#[test]
fn a_server_without_a_key_pair_refuses_the_api_naming_the_variables() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), false);
    let off = boto3(&server, "validate-ok", SECRET);
    assert_eq!(off["error"], "AccessDeniedException", "{off}");
    assert_eq!(off["status"], 403, "{off}");
    let message = off["message"].as_str().unwrap();
    assert!(
        message.contains("PIFLOW_API_ACCESS_KEY_ID")
            && message.contains("PIFLOW_API_SECRET_ACCESS_KEY"),
        "{off}"
    );
}
