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
    boto3_with(server, check, &[], secret)
}

/// Run one check of client.py, with arguments of its own.
fn boto3_with(server: &Server, check: &str, args: &[&str], secret: &str) -> Value {
    let mut cmd = Command::new(root().join(".emu/venv/bin/python"));
    cmd.arg(root().join("integration/sfn-api/client.py"))
        .args([&server.url, check])
        .args(args);
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
        unknown["message"].as_str().unwrap().contains("ListMapRuns"),
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
        change[0]["body"]["__type"], "StateMachineDoesNotExist",
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

/// `piflow ARGS --store DIR/store.redb THEN` in `dir`: the store the
/// server uses, while it is not running.
fn piflow_on_store(dir: &Path, args: &[&str], then: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_piflow"))
        .current_dir(dir)
        .args(args)
        .arg("--store")
        .arg(dir.join("store.redb"))
        .args(then)
        .output()
        .expect("piflow runs")
}

/// Write a workflow file and run it with `piflow run` on the store the
/// server will use, before it starts (the embedded store is one process's
/// at a time).
fn piflow_run(dir: &Path, workflow: &str, definition: &str, name: &str) -> Value {
    std::fs::create_dir_all(dir.join("workflows")).unwrap();
    std::fs::write(
        dir.join("workflows").join(format!("{workflow}.asl.json")),
        definition,
    )
    .unwrap();
    let out = piflow_on_store(
        dir,
        &["run", workflow, "--name", name, "--format", "json"],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn boto3_drives_state_machines_executions_versions_aliases_and_task_tokens() {
    let dir = tempfile::tempdir().unwrap();
    // An execution of `piflow run` shows through the API.
    let cli = piflow_run(
        dir.path(),
        "nightly",
        r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}}"#,
        "from-cli",
    );
    assert_eq!(cli["status"], "SUCCEEDED", "{cli}");
    let server = serve(dir.path(), true);
    let out = boto3(&server, "lifecycle", SECRET);
    let machine = "arn:aws:states:us-east-1:123456789012:stateMachine:hello";
    assert_eq!(out["create"]["stateMachineArn"], machine, "{out}");
    assert_eq!(
        out["create"]["stateMachineVersionArn"],
        format!("{machine}:1")
    );
    assert_eq!(out["create_again_same_arn"], true);
    assert_eq!(
        out["create_other"]["error"], "StateMachineAlreadyExists",
        "{out}"
    );
    assert_eq!(
        out["describe"],
        serde_json::json!({"name": "hello", "status": "ACTIVE", "type": "STANDARD", "roleArn": "arn:aws:iam::123456789012:role/piflow-test"})
    );
    assert_eq!(out["describe_definition_same"], true);
    assert_eq!(
        out["e1"],
        "arn:aws:states:us-east-1:123456789012:execution:hello:e1"
    );
    assert_eq!(out["e1_status"], "SUCCEEDED", "{out}");
    assert_eq!(out["e1_output"]["tag"], "v1");
    assert_eq!(out["e1_output"]["input"], serde_json::json!({"n": 1}));
    assert_eq!(out["e1_output"]["s9"], 9);
    assert_eq!(
        out["e1_again_other_input"]["error"],
        "ExecutionAlreadyExists"
    );
    assert_eq!(out["e1_again_closed"]["error"], "ExecutionAlreadyExists");
    let types: Vec<&str> = out["history_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(types.first(), Some(&"ExecutionStarted"), "{out}");
    assert_eq!(types.last(), Some(&"ExecutionSucceeded"), "{out}");
    assert_eq!(
        types.iter().filter(|t| **t == "PassStateEntered").count(),
        10,
        "{out}"
    );
    let ids: Vec<u64> = out["history_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_u64().unwrap())
        .collect();
    assert_eq!(
        ids,
        (1..=ids.len() as u64).collect::<Vec<_>>(),
        "paged once each, in order"
    );
    assert_eq!(out["history_last"], "ExecutionSucceeded");
    assert_eq!(out["update_version"], format!("{machine}:2"));
    assert_eq!(
        out["versions"],
        serde_json::json!([format!("{machine}:2"), format!("{machine}:1")])
    );
    assert_eq!(out["describe_v1_tag"], "v1");
    assert_eq!(out["alias"], format!("{machine}:prod"));
    assert_eq!(
        out["via_alias"],
        serde_json::json!({"tag": "v1", "aliasArn": format!("{machine}:prod"), "versionArn": format!("{machine}:1")})
    );
    assert_eq!(
        out["alias_now"],
        serde_json::json!([{"stateMachineVersionArn": format!("{machine}:2"), "weight": 100}])
    );
    assert_eq!(
        out["via_alias_2_tag"], "v2",
        "the alias routes to version 2 now"
    );
    assert_eq!(out["alias_bad_weights"]["error"], "ValidationException");
    assert_eq!(
        out["executions"],
        serde_json::json!(["e1", "via-alias", "via-alias-2"])
    );
    assert_eq!(
        out["executions_via_alias"],
        serde_json::json!(["via-alias", "via-alias-2"])
    );
    assert_eq!(
        out["gate_failed"],
        serde_json::json!({"status": "FAILED", "error": "Rejected", "cause": "not today", "redriveStatus": "REDRIVABLE"})
    );
    assert_eq!(out["answer_again"]["error"], "TaskTimedOut", "{out}");
    assert_eq!(out["heartbeat_after_end"]["error"], "TaskTimedOut", "{out}");
    assert_eq!(out["not_a_token"]["error"], "InvalidToken", "{out}");
    assert_eq!(out["new_token"], true);
    assert_eq!(
        out["gate_redriven"],
        serde_json::json!({"status": "SUCCEEDED", "redriveCount": 1, "approval": {"approved": true}})
    );
    assert_eq!(out["redrive_succeeded"]["error"], "ExecutionNotRedrivable");
    assert_eq!(out["history_redriven"], true);
    assert_eq!(
        out["stopped"],
        serde_json::json!({
            "status": "ABORTED",
            "error": "Manual",
            "cause": "operator stopped it",
            "event": {"error": "Manual", "cause": "operator stopped it"},
        }),
        "StopExecution's error and cause end the execution"
    );
    assert_eq!(out["machine_for_execution"], true);
    assert_eq!(
        out["tags"],
        serde_json::json!([{"key": "tier", "value": "gold"}])
    );
    assert_eq!(
        out["machines"],
        serde_json::json!(["gate", "hello", "nightly"]),
        "the workflow `piflow run` ran is a state machine too"
    );
    assert_eq!(
        out["machines_paged"],
        serde_json::json!([
            ["gate", "STANDARD", true],
            ["hello", "STANDARD", true],
            ["nightly", "STANDARD", true]
        ]),
        "one machine a page, each with its type and creation date"
    );
    assert_eq!(out["deleted"]["error"], "StateMachineDoesNotExist");
    assert_eq!(
        out["machines_after_delete"],
        serde_json::json!(["hello", "nightly"])
    );
    // The API sees the CLI's execution, ...
    let listed = aws_cli(
        &server,
        &[
            "list-executions",
            "--state-machine-arn",
            "arn:aws:states:us-east-1:123456789012:stateMachine:nightly",
        ],
    );
    assert_eq!(listed["executions"][0]["name"], "from-cli", "{listed}");
    assert_eq!(listed["executions"][0]["status"], "SUCCEEDED", "{listed}");
    drop(server);
    // ... and `piflow executions` the API's.
    let out = piflow_on_store(dir.path(), &["executions", "--format", "json"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for id in [
        "hello:e1",
        "hello:via-alias-2",
        "gate:g1",
        "gate:g2",
        "nightly:from-cli",
    ] {
        assert!(
            text.contains(id),
            "{id} missing from piflow executions: {text}"
        );
    }
    // Every change the API made is in the audit trail, its chains intact.
    let audit = piflow_on_store(
        dir.path(),
        &["audit", "--env", "sfn-api", "--format", "json"],
        &[],
    );
    let records = String::from_utf8_lossy(&audit.stdout);
    for action in [
        "sfn.CreateStateMachine",
        "sfn.UpdateStateMachine",
        "sfn.CreateStateMachineAlias",
        "sfn.StartExecution",
        "sfn.SendTaskFailure",
        "sfn.RedriveExecution",
        "sfn.StopExecution",
        "sfn.DeleteStateMachine",
    ] {
        assert!(records.contains(action), "{action} not audited: {records}");
    }
    assert!(records.contains("sfn-api:AKIDPIFLOWAPITEST"), "{records}");
    let verify = piflow_on_store(dir.path(), &["audit"], &["verify"]);
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[test]
fn executions_of_one_environment_take_its_lease_one_after_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), true);
    let out = boto3(&server, "env-lease", SECRET);
    assert_eq!(
        out["waiting"],
        serde_json::json!({"status": "RUNNING", "events": 0}),
        "{out}"
    );
    assert_eq!(out["first"], "SUCCEEDED", "{out}");
    assert_eq!(out["second"], "SUCCEEDED", "{out}");
    assert_eq!(out["second_started_after_first_stopped"], true, "{out}");
}

/// The AWS CLI of the emulator's venv, against the server: its answer.
fn aws_cli(server: &Server, args: &[&str]) -> Value {
    aws_cli_result(server, args).unwrap_or_else(|e| panic!("aws {args:?}: {e}"))
}

#[test]
fn the_aws_cli_creates_starts_and_describes() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), true);
    let def = dir.path().join("hello.asl.json");
    std::fs::write(
        &def,
        r#"{"StartAt": "Hi", "States": {"Hi": {"Type": "Pass", "Parameters": {"greeting.$": "States.Format('hello {}', $.who)"}, "End": true}}}"#,
    )
    .unwrap();
    let created = aws_cli(
        &server,
        &[
            "create-state-machine",
            "--name",
            "hello",
            "--role-arn",
            "arn:aws:iam::123456789012:role/r",
            "--definition",
            &format!("file://{}", def.display()),
        ],
    );
    let arn = created["stateMachineArn"].as_str().unwrap().to_string();
    let started = aws_cli(
        &server,
        &[
            "start-execution",
            "--state-machine-arn",
            &arn,
            "--name",
            "cli-1",
            "--input",
            r#"{"who": "release engineers"}"#,
        ],
    );
    let exec = started["executionArn"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let described = loop {
        let d = aws_cli(&server, &["describe-execution", "--execution-arn", &exec]);
        if d["status"] != "RUNNING" || std::time::Instant::now() > deadline {
            break d;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(described["status"], "SUCCEEDED", "{described}");
    let output: Value = serde_json::from_str(described["output"].as_str().unwrap()).unwrap();
    assert_eq!(output["greeting"], "hello release engineers");
    let machines = aws_cli(&server, &["list-state-machines"]);
    assert_eq!(
        machines["stateMachines"][0]["stateMachineArn"],
        arn.as_str()
    );
    let history = aws_cli(
        &server,
        &["get-execution-history", "--execution-arn", &exec],
    );
    let types: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "ExecutionStarted",
            "PassStateEntered",
            "PassStateExited",
            "ExecutionSucceeded"
        ],
        "{history}"
    );
    let version = aws_cli(
        &server,
        &["publish-state-machine-version", "--state-machine-arn", &arn],
    );
    assert_eq!(version["stateMachineVersionArn"], format!("{arn}:1"));
    let alias = aws_cli(
        &server,
        &[
            "create-state-machine-alias",
            "--name",
            "live",
            "--routing-configuration",
            &format!(r#"[{{"stateMachineVersionArn": "{arn}:1", "weight": 100}}]"#),
        ],
    );
    assert_eq!(alias["stateMachineAliasArn"], format!("{arn}:live"));
    // TestState, with the host prefix turned off as docs/sfn-api.md says.
    let mut cmd = Command::new(root().join(".emu/venv/bin/aws"));
    cmd.args([
        "stepfunctions",
        "test-state",
        "--endpoint-url",
        &server.url,
        "--output",
        "json",
        "--definition",
        r#"{"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"FunctionName": "f", "Payload.$": "$"}, "Retry": [{"ErrorEquals": ["States.ALL"]}], "End": true}"#,
        "--input",
        r#"{"n": 1}"#,
        "--mock",
        r#"{"errorOutput": {"error": "Lambda.ServiceException", "cause": "down"}}"#,
        "--inspection-level",
        "DEBUG",
    ])
    .env("AWS_DISABLE_HOST_PREFIX_INJECTION", "true");
    aws_env(&mut cmd, SECRET);
    let out = cmd.output().expect("the AWS CLI runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tested: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tested["status"], "RETRIABLE", "{tested}");
    assert_eq!(
        tested["inspectionData"]["errorDetails"]["retryIndex"], 0,
        "{tested}"
    );
}

#[test]
fn bad_input_is_refused_with_aws_error_types_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), true);
    let out = boto3(&server, "bad-input", SECRET);
    let expect = [
        (
            "invalid_definition",
            "InvalidDefinition",
            "unknown-field at /States/A/Nxt",
        ),
        (
            "not_json_definition",
            "InvalidDefinition",
            "Invalid State Machine Definition",
        ),
        ("oversized_definition", "ValidationException", "1048576"),
        ("bad_name", "InvalidName", "has space"),
        ("bad_role", "InvalidArn", "roleArn"),
        ("other_region", "InvalidArn", "region \"eu-west-1\""),
        ("other_account", "InvalidArn", "account \"999999999999\""),
        (
            "missing_machine",
            "StateMachineDoesNotExist",
            "stateMachine:nope",
        ),
        (
            "input_not_json",
            "InvalidExecutionInput",
            "input must be JSON",
        ),
        ("input_too_big", "ValidationException", "'input'"),
        ("bad_execution_name", "InvalidName", "a/b"),
        (
            "missing_execution",
            "ExecutionDoesNotExist",
            "execution:ok:nope",
        ),
        (
            "sync_on_standard",
            "StateMachineTypeNotSupported",
            "EXPRESS",
        ),
        ("bad_token", "InvalidToken", "garbage"),
        ("unknown_alias", "ResourceNotFound", "ok:nope"),
    ];
    for (check, kind, says) in expect {
        assert_eq!(out[check]["error"], kind, "{check}: {}", out[check]);
        assert_eq!(out[check]["status"], 400, "{check}");
        assert!(
            out[check]["message"].as_str().unwrap().contains(says),
            "{check}: {}",
            out[check]
        );
    }
    for (check, kind, says) in [
        ("malformed_json", "SerializationException", "not JSON"),
        ("missing_field", "ValidationException", "'name'"),
        (
            "wrong_type",
            "SerializationException",
            "'input' must be a string",
        ),
    ] {
        assert_eq!(out[check]["status"], 400, "{check}: {}", out[check]);
        assert_eq!(
            out[check]["body"]["__type"], kind,
            "{check}: {}",
            out[check]
        );
        assert!(
            out[check]["body"]["message"]
                .as_str()
                .unwrap()
                .contains(says),
            "{check}: {}",
            out[check]
        );
    }
    assert_eq!(out["machines_unchanged"], true);
    assert_eq!(out["no_execution_stored"], true);
}

/// TestState and StartSyncExecution have the host prefix `sync-`; the Rust
/// SDK has no switch for it, so this interceptor (docs/sfn-api.md shows it)
/// drops the prefix before the request's endpoint is resolved.
#[derive(Debug)]
struct NoHostPrefix;

impl aws_sdk_sfn::config::Intercept for NoHostPrefix {
    fn name(&self) -> &'static str {
        "NoHostPrefix"
    }

    fn modify_before_retry_loop(
        &self,
        _: &mut aws_sdk_sfn::config::interceptors::BeforeTransmitInterceptorContextMut<'_>,
        _: &aws_sdk_sfn::config::RuntimeComponents,
        cfg: &mut aws_sdk_sfn::config::ConfigBag,
    ) -> Result<(), aws_sdk_sfn::error::BoxError> {
        cfg.interceptor_state()
            .unset::<aws_smithy_runtime_api::client::endpoint::EndpointPrefix>();
        Ok(())
    }
}

/// The Rust SDK (`aws-sdk-sfn`), pointed at the server by the standard
/// configuration (an endpoint URL, static credentials).
#[test]
fn the_rust_sdk_starts_an_express_execution_synchronously() {
    use aws_sdk_sfn::config::{BehaviorVersion, Credentials, Region};
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), true);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let conf = aws_sdk_sfn::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .http_client(piflow_aws_config::http_client())
            .endpoint_url(&server.url)
            .interceptor(NoHostPrefix)
            .credentials_provider(Credentials::new(ACCESS_KEY, SECRET, None, None, "test"))
            .build();
        let sfn = aws_sdk_sfn::Client::from_conf(conf);
        let created = sfn
            .create_state_machine()
            .name("express")
            .r#type(aws_sdk_sfn::types::StateMachineType::Express)
            .role_arn("arn:aws:iam::123456789012:role/r")
            .definition(r#"{"StartAt": "Sum", "States": {"Sum": {"Type": "Pass", "Parameters": {"total.$": "States.MathAdd($.a, $.b)"}, "End": true}}}"#)
            .send()
            .await
            .expect("create");
        let done = sfn
            .start_sync_execution()
            .state_machine_arn(created.state_machine_arn())
            .input(r#"{"a": 40, "b": 2}"#)
            .send()
            .await
            .expect("start sync");
        assert_eq!(done.status(), &aws_sdk_sfn::types::SyncExecutionStatus::Succeeded);
        let out: Value = serde_json::from_str(done.output().unwrap()).unwrap();
        assert_eq!(out["total"], 42);
        // The SDK's paginator follows nextToken through the history.
        let events: Vec<aws_sdk_sfn::types::HistoryEvent> = sfn
            .get_execution_history()
            .execution_arn(done.execution_arn())
            .max_results(1)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .expect("history");
        let types: Vec<&str> = events.iter().map(|e| e.r#type().as_str()).collect();
        assert_eq!(
            types,
            ["ExecutionStarted", "PassStateEntered", "PassStateExited", "ExecutionSucceeded"]
        );
        assert_eq!(
            events[0]
                .execution_started_event_details()
                .and_then(|d| d.role_arn()),
            Some("arn:aws:iam::123456789012:role/r")
        );
        let missing = sfn
            .describe_state_machine()
            .state_machine_arn("arn:aws:states:us-east-1:123456789012:stateMachine:nope")
            .send()
            .await
            .expect_err("no such machine");
        assert!(
            missing
                .as_service_error()
                .is_some_and(|e| e.is_state_machine_does_not_exist()),
            "{missing:?}"
        );
    });
}

/// The 149 TestState cases of the conformance corpus, sent by boto3 to a
/// running `piflow serve` and compared with AWS's answers as boto3 parsed
/// them (its service model drops any member AWS does not have). The
/// server registers no handler for the corpus's stubbed Lambda function, so
/// the 3 cases that call it fail here; the target holds without them.
#[test]
fn boto3_runs_the_test_state_corpus_against_the_server() {
    use crate::common::test_state_corpus::{Score, request};
    let Some(corpus) = crate::common::corpus::conformance_dir() else {
        return;
    };
    let cases: Vec<(String, Value)> = crate::common::corpus::corpus_files(&corpus.join("cases"))
        .into_iter()
        .filter(|(_, c)| c["kind"] == "test_state")
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let requests: serde_json::Map<String, Value> = cases
        .iter()
        .map(|(name, case)| (name.clone(), Value::Object(request(case))))
        .collect();
    let (req_file, ans_file) = (
        dir.path().join("requests.json"),
        dir.path().join("answers.json"),
    );
    std::fs::write(&req_file, Value::Object(requests).to_string()).unwrap();
    let server = serve(dir.path(), true);
    let mut cmd = Command::new(root().join(".emu/venv/bin/python"));
    cmd.arg(root().join("integration/sfn-api/test_state_corpus.py"))
        .arg(&server.url)
        .args([&req_file, &ans_file]);
    aws_env(&mut cmd, SECRET);
    let out = cmd.output().expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Value = serde_json::from_slice(&std::fs::read(&ans_file).unwrap()).unwrap();
    let mut score = Score::default();
    for (name, case) in &cases {
        let a = &answers[name];
        let answer = match a.get("__error") {
            Some(code) => Err(format!("{code}: {}", a["message"])),
            None => Ok(a.clone()),
        };
        score.add(name, case, answer);
    }
    score.report(", boto3 against piflow serve", 95);
}

/// A Step Functions Local mock file, as its users have them: the state
/// machine `orders`, two test cases, a response whose second invocation
/// differs from its first.
const ORDERS_MOCKS: &str = r#"{
  "StateMachines": {
    "orders": {"TestCases": {
      "HappyPath": {"Charge": "Charged"},
      "CardDeclined": {"Charge": "Declined"}
    }}
  },
  "MockedResponses": {
    "Charged": {
      "0": {"Return": {"StatusCode": 200, "Payload": {"charged": "first call"}}},
      "1": {"Return": {"StatusCode": 200, "Payload": {"charged": "second call"}}}
    },
    "Declined": {"0": {"Throw": {"Error": "Card.Declined", "Cause": "insufficient funds"}}}
  }
}"#;

const ORDERS: &str = r#"{"StartAt": "Charge", "States": {
  "Charge": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
    "Parameters": {"FunctionName": "charge", "Payload.$": "$"},
    "ResultSelector": {"charged.$": "$.Payload.charged"},
    "Catch": [{"ErrorEquals": ["Card.Declined"], "ResultPath": "$.declined", "Next": "Refund"}],
    "End": true},
  "Refund": {"Type": "Pass", "End": true}}}"#;

/// The AWS CLI of the emulator's venv, against the server: its answer,
/// or its error text when it fails.
fn aws_cli_result(server: &Server, args: &[&str]) -> Result<Value, String> {
    let mut cmd = Command::new(root().join(".emu/venv/bin/aws"));
    cmd.args([
        "stepfunctions",
        "--endpoint-url",
        &server.url,
        "--output",
        "json",
    ])
    .args(args);
    aws_env(&mut cmd, SECRET);
    let out = cmd.output().expect("the AWS CLI runs");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap_or(Value::Null))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `…:stateMachine:NAME#CASE` runs NAME with the test case CASE of the
/// server's `--mock` file, as with Step Functions Local; each execution
/// counts its own calls of a mocked state.
#[test]
fn a_test_case_of_the_mock_file_is_chosen_by_the_state_machine_arn() {
    let dir = tempfile::tempdir().unwrap();
    let mocks = dir.path().join("MockConfigFile.json");
    std::fs::write(&mocks, ORDERS_MOCKS).unwrap();
    let pair = [
        ("PIFLOW_API_ACCESS_KEY_ID", ACCESS_KEY),
        ("PIFLOW_API_SECRET_ACCESS_KEY", SECRET),
    ];
    let server = Server::start(dir.path(), &["--mock", mocks.to_str().unwrap()], &pair);
    let machine = "arn:aws:states:us-east-1:123456789012:stateMachine:orders";
    aws_cli(
        &server,
        &[
            "create-state-machine",
            "--name",
            "orders",
            "--role-arn",
            "arn:aws:iam::123456789012:role/r",
            "--definition",
            ORDERS,
        ],
    );
    let run = |name: &str, case: &str| -> Value {
        let started = aws_cli(
            &server,
            &[
                "start-execution",
                "--name",
                name,
                "--state-machine-arn",
                &format!("{machine}#{case}"),
                "--input",
                r#"{"order": 7}"#,
            ],
        );
        let arn = started["executionArn"].as_str().unwrap().to_string();
        assert_eq!(
            arn,
            format!("arn:aws:states:us-east-1:123456789012:execution:orders:{name}")
        );
        for _ in 0..200 {
            let d = aws_cli(&server, &["describe-execution", "--execution-arn", &arn]);
            if d["status"] != "RUNNING" {
                return d;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("{name} did not end");
    };
    let output = |d: &Value| -> Value {
        serde_json::from_str(d["output"].as_str().unwrap_or("null")).unwrap()
    };
    // Two executions of one test case: each gets the first response.
    for name in ["happy-1", "happy-2"] {
        let d = run(name, "HappyPath");
        assert_eq!(d["status"], "SUCCEEDED", "{d}");
        assert_eq!(
            output(&d),
            serde_json::json!({"charged": "first call"}),
            "{name}"
        );
    }
    let d = run("declined", "CardDeclined");
    assert_eq!(d["status"], "SUCCEEDED", "{d}");
    assert_eq!(
        output(&d)["declined"],
        serde_json::json!({"Error": "Card.Declined", "Cause": "insufficient funds"})
    );
    // A test case the file does not have: refused, naming those it has;
    // no execution is recorded.
    let refused = aws_cli_result(
        &server,
        &[
            "start-execution",
            "--name",
            "nope",
            "--state-machine-arn",
            &format!("{machine}#SadPath"),
        ],
    )
    .expect_err("an unknown test case is refused");
    assert!(refused.contains("ValidationException"), "{refused}");
    assert!(
        refused.contains("CardDeclined, HappyPath") || refused.contains("HappyPath, CardDeclined"),
        "{refused}"
    );
    let missing = aws_cli_result(
        &server,
        &[
            "describe-execution",
            "--execution-arn",
            "arn:aws:states:us-east-1:123456789012:execution:orders:nope",
        ],
    )
    .expect_err("nothing was recorded");
    assert!(missing.contains("ExecutionDoesNotExist"), "{missing}");
    // A name is taken, whatever the test case.
    let again = aws_cli_result(
        &server,
        &[
            "start-execution",
            "--name",
            "happy-1",
            "--state-machine-arn",
            &format!("{machine}#CardDeclined"),
            "--input",
            r#"{"order": 7}"#,
        ],
    )
    .expect_err("the name is taken");
    assert!(again.contains("ExecutionAlreadyExists"), "{again}");
}

/// Activities through boto3: a worker takes an execution's activity task
/// with GetActivityTask (a poll that waits before the task exists, and one
/// after), heartbeats and answers it; a worker's failure fails the
/// execution; a poll with nothing to do ends after `--activity-poll`.
#[test]
fn boto3_workers_take_activity_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let pair = [
        ("PIFLOW_API_ACCESS_KEY_ID", ACCESS_KEY),
        ("PIFLOW_API_SECRET_ACCESS_KEY", SECRET),
    ];
    let server = Server::start(dir.path(), &["--activity-poll", "1"], &pair);
    let out = boto3(&server, "activities", SECRET);
    let arn = "arn:aws:states:us-east-1:123456789012:activity:approve";
    assert_eq!(out["arn"], arn, "{out}");
    assert_eq!(out["create_again_same"], true, "{out}");
    assert_eq!(
        out["describe"],
        serde_json::json!({"name": "approve", "arn": arn})
    );
    assert_eq!(out["listed"], serde_json::json!(["approve", "other"]));
    assert_eq!(out["listed_paged"], serde_json::json!(["approve", "other"]));
    assert_eq!(out["early_input"], serde_json::json!({"n": 1}), "{out}");
    assert_eq!(
        out["e1"],
        serde_json::json!({"status": "SUCCEEDED", "output": {"n": 1, "work": {"done": true}}}),
        "{out}"
    );
    let events: Vec<&str> = out["e1_events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for t in ["ActivityScheduled", "ActivityStarted", "ActivitySucceeded"] {
        assert!(events.contains(&t), "{t} not in {events:?}");
    }
    assert!(
        !events
            .iter()
            .any(|t| ["TaskScheduled", "TaskStarted", "TaskSubmitted"].contains(t)),
        "an activity's history has Activity events, not a service task's: {events:?}"
    );
    assert_eq!(out["answer_again"]["error"], "TaskTimedOut", "{out}");
    assert_eq!(out["late_input"], serde_json::json!({"n": 2}), "{out}");
    assert_eq!(
        out["e2"],
        serde_json::json!({"status": "FAILED", "error": "Worker.Failed", "cause": "disk full"})
    );
    assert_eq!(out["twice_inputs"], serde_json::json!([3, 4]), "{out}");
    assert_eq!(
        out["twice_done"],
        serde_json::json!(["SUCCEEDED", "SUCCEEDED"]),
        "{out}"
    );
    assert_eq!(out["empty_has_token"], false, "{out}");
    let waited = out["empty_waited"].as_f64().unwrap();
    assert!(
        (0.9..5.0).contains(&waited),
        "the empty poll took {waited} s"
    );
    assert_eq!(out["unknown"]["error"], "ActivityDoesNotExist", "{out}");
    assert_eq!(out["foreign"]["error"], "InvalidArn", "{out}");
    assert_eq!(out["bad_name"]["error"], "InvalidName", "{out}");
    assert_eq!(out["deleted"]["error"], "ActivityDoesNotExist", "{out}");
    assert!(
        out["delete_again"].get("error").is_none(),
        "deleting a deleted activity succeeds: {out}"
    );
    assert_eq!(out["listed_after_delete"], serde_json::json!(["other"]));
}

/// An activity task waits in the memory of the server that runs its
/// execution: killed, the next server resumes the execution and queues
/// the task again, and a worker of that server answers it.
#[test]
fn an_activity_task_is_queued_again_when_its_execution_is_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let pair = [
        ("PIFLOW_API_ACCESS_KEY_ID", ACCESS_KEY),
        ("PIFLOW_API_SECRET_ACCESS_KEY", SECRET),
    ];
    let first = Server::start(dir.path(), &[], &pair);
    let scheduled = boto3(&first, "activity-scheduled", SECRET);
    // SIGKILL: nothing of the process is left.
    drop(first);
    let second = Server::start(dir.path(), &[], &pair);
    let execution = scheduled["execution"].as_str().unwrap();
    let activity = scheduled["activity"].as_str().unwrap();
    let out = boto3_with(&second, "activity-resumed", &[execution, activity], SECRET);
    assert_eq!(out["input"], serde_json::json!({"n": 3}), "{out}");
    assert_eq!(out["status"], "SUCCEEDED", "{out}");
    assert_eq!(out["output"], serde_json::json!({"resumed": true}), "{out}");
}

/// A server that stops answers the workers' waiting GetActivityTask calls
/// at once (with no task), rather than after their 60 s.
#[test]
fn a_stopping_server_ends_the_workers_polls() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let pair = [
        ("PIFLOW_API_ACCESS_KEY_ID", ACCESS_KEY),
        ("PIFLOW_API_SECRET_ACCESS_KEY", SECRET),
    ];
    let server = Server::start(dir.path(), &[], &pair);
    let mut cmd = Command::new(root().join(".emu/venv/bin/python"));
    cmd.arg(root().join("integration/sfn-api/client.py"))
        .args([&server.url, "activity-poll"])
        .stdout(std::process::Stdio::piped());
    aws_env(&mut cmd, SECRET);
    let mut worker = cmd.spawn().expect("python runs");
    let mut out = std::io::BufReader::new(worker.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.contains("polling"), "{line}");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let began = std::time::Instant::now();
    let (code, log) = server.terminate();
    assert_eq!(code, 0, "{log}");
    assert!(
        began.elapsed() < std::time::Duration::from_secs(10),
        "the stop waited {:?} for the poll",
        began.elapsed()
    );
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(worker.wait().unwrap().success(), "{rest}");
    let polled: Value = serde_json::from_str(rest.trim()).unwrap();
    assert_eq!(polled["has_token"], false, "{polled}");
}
