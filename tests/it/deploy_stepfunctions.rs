//! `piflow deploy WORKFLOW --to stepfunctions`: the translation of every
//! workflow, the IAM policy, refusals before any API call, and deployments
//! and executions in the moto server (docs/scale-out.md).

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use piflow_aws_deploy::stepfunctions::{TranslateError, TranslateOptions, translate};
use serde_json::{Value, json};

use common::moto::{moto, unique};

const ROLE: &str = "arn:aws:iam::123456789012:role/piflow-sfn";
const GATE: &str = "arn:aws:lambda:us-east-1:123456789012:function:piflow-health-gate";
const BLUE_GREEN: &str = "arn:aws:lambda:us-east-1:123456789012:function:piflow-blue-green";
const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:piflow-approvals";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn workflow_value(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    piflow_asl::source::parse(
        &text,
        piflow_asl::Format::from_path(&path.to_string_lossy()),
    )
    .unwrap()
    .to_value()
}

fn workflows() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("workflows"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".asl.yaml"))
        .collect();
    v.sort();
    assert!(v.len() >= 4, "workflows/ has the four workflows");
    v
}

/// Every `piflow:` resource in a definition, with the state path.
fn piflow_tasks(states: &Value, prefix: &str, out: &mut Vec<(String, String)>) {
    let Some(states) = states.as_object() else {
        return;
    };
    for (name, s) in states {
        let path = format!("{prefix}{name}");
        if let Some(r) = s["Resource"].as_str().filter(|r| r.starts_with("piflow:")) {
            out.push((path.clone(), r.to_string()));
        }
        if let Some(branches) = s["Branches"].as_array() {
            for (i, b) in branches.iter().enumerate() {
                piflow_tasks(&b["States"], &format!("{path}/Branches[{i}]/"), out);
            }
        }
        for key in ["ItemProcessor", "Iterator"] {
            piflow_tasks(&s[key]["States"], &format!("{path}/{key}/"), out);
        }
    }
}

/// Every state name, nested ones included, with its type.
fn state_names(states: &Value, out: &mut BTreeSet<(String, String)>) {
    let Some(states) = states.as_object() else {
        return;
    };
    for (name, s) in states {
        out.insert((name.clone(), s["Type"].as_str().unwrap_or("").to_string()));
        if let Some(branches) = s["Branches"].as_array() {
            for b in branches {
                state_names(&b["States"], out);
            }
        }
        for key in ["ItemProcessor", "Iterator"] {
            state_names(&s[key]["States"], out);
        }
    }
}

/// Steps that need code in Step Functions.
const NEEDS_CODE: [&str; 9] = [
    "piflow:health-gate",
    "piflow:ecs-blue-green",
    "piflow:release",
    "piflow:cloudformation-deploy",
    "piflow:rds-restore",
    "piflow:efs-restore",
    "piflow:repoint",
    "piflow:http-check",
    "piflow:last-release",
];

fn full_options() -> TranslateOptions {
    let mut o = TranslateOptions {
        codebuild_project: Some("piflow-checks".into()),
        table: Some("piflow-store".into()),
        approval_topic: Some(TOPIC.into()),
        ..Default::default()
    };
    for r in NEEDS_CODE {
        o.task_arns.insert(
            r.to_string(),
            format!(
                "arn:aws:lambda:us-east-1:123456789012:function:{}",
                r.trim_start_matches("piflow:")
            ),
        );
    }
    o
}

#[test]
fn every_workflow_fails_naming_each_state_to_map_then_translates_when_mapped() {
    for path in workflows() {
        let source = workflow_value(&path);
        let mut tasks = Vec::new();
        piflow_tasks(&source["States"], "", &mut tasks);
        assert!(!tasks.is_empty(), "{}", path.display());

        // Without options: every piflow: state is named, with what to give.
        let err = translate(&source, &TranslateOptions::default()).unwrap_err();
        let TranslateError::Unmappable { problems } = &err else {
            panic!("{}: {err}", path.display());
        };
        let named: BTreeSet<(String, String)> = problems
            .iter()
            .map(|p| (p.state.clone(), p.resource.clone()))
            .collect();
        let expected: BTreeSet<(String, String)> = tasks.iter().cloned().collect();
        assert_eq!(named, expected, "{}", path.display());
        let text = err.to_string();
        for (state, resource) in &tasks {
            assert!(
                text.contains(&format!("state {state}: {resource}")),
                "{}: {text}",
                path.display()
            );
            if NEEDS_CODE.contains(&resource.as_str()) {
                assert!(
                    text.contains(&format!("--task-arn {resource}=ARN")),
                    "{text}"
                );
            }
        }

        // Mapped: it translates; same states, nothing piflow-only left.
        let t = translate(&source, &full_options())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            !t.definition.to_string().contains("\"piflow:"),
            "{}",
            path.display()
        );
        let (mut before, mut after) = (BTreeSet::new(), BTreeSet::new());
        state_names(&source["States"], &mut before);
        state_names(&t.definition["States"], &mut after);
        assert_eq!(before, after, "{}", path.display());
        assert_eq!(t.definition["StartAt"], source["StartAt"]);
        // Non-Task states are copied unchanged (Parallel and Map apart from
        // the Tasks inside them).
        let without_scopes = |v: &Value| {
            let mut v = v.clone();
            if let Some(m) = v.as_object_mut() {
                for k in ["Branches", "ItemProcessor", "Iterator"] {
                    m.remove(k);
                }
            }
            v
        };
        for (name, s) in source["States"].as_object().unwrap() {
            if s["Type"] != "Task" {
                assert_eq!(
                    without_scopes(&t.definition["States"][name]),
                    without_scopes(s),
                    "{name}"
                );
            }
        }
        // The translated definition is valid ASL for piflow as well.
        piflow_asl::StateMachine::from_value(&t.definition, Default::default())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

#[test]
fn upgrade_translation_maps_each_step_to_its_integration() {
    let source = workflow_value(&root().join("workflows/upgrade.asl.yaml"));
    let t = translate(&source, &full_options()).unwrap();
    let s = &t.definition["States"];
    assert_eq!(
        s["Lint"]["Resource"],
        "arn:aws:states:::codebuild:startBuild.sync"
    );
    assert_eq!(s["Lint"]["Parameters"]["ProjectName"], "piflow-checks");
    assert_eq!(
        s["Lint"]["Catch"][0]["ErrorEquals"],
        json!(["Lint.Failed", "Lint.ToolMissing", "States.TaskFailed"])
    );
    assert_eq!(
        s["SecurityScan"]["Parameters"]["EnvironmentVariablesOverride"][0],
        json!({"Name": "PIFLOW_STEP", "Type": "PLAINTEXT", "Value": "security-scan"})
    );
    assert_eq!(
        s["Approval"]["Resource"],
        "arn:aws:states:::sns:publish.waitForTaskToken"
    );
    assert_eq!(s["Approval"]["Parameters"]["TopicArn"], TOPIC);
    assert_eq!(
        s["Approval"]["Parameters"]["Message"]["token.$"],
        "$$.Task.Token"
    );
    assert_eq!(
        s["Release"]["Resource"],
        "arn:aws:lambda:us-east-1:123456789012:function:release"
    );
    // A Lambda-mapped step keeps its Parameters, Retry and Catch as written.
    assert_eq!(
        s["Release"]["Parameters"],
        source["States"]["Release"]["Parameters"]
    );
    assert_eq!(s["Release"]["Catch"], source["States"]["Release"]["Catch"]);
    let record = &s["RecordRefusal"];
    assert_eq!(record["Resource"], "arn:aws:states:::dynamodb:putItem");
    assert_eq!(record["Parameters"]["TableName"], "piflow-store");
    let item = &record["Parameters"]["Item"];
    assert_eq!(
        item["PK"],
        json!({"S.$": "States.Format('AUDIT-PENDING#{}', $.target.environment)"})
    );
    assert_eq!(item["result"], json!({"S": "refused"}));
    assert_eq!(item["action"], json!({"S": "release.refused"}));
    assert_eq!(item["target"], json!({"S": "RecordRefusal"}));
    assert_eq!(
        item["after"]["M"]["reason"],
        json!({"S.$": "States.JsonToString($.error)"})
    );
    assert_eq!(record["ResultPath"], Value::Null);
}

#[test]
fn a_mapping_that_is_not_lambda_or_activity_is_refused() {
    let d = json!({"StartAt": "G", "States": {"G": {"Type": "Task", "Resource": "piflow:health-gate", "End": true}}});
    let mut o = TranslateOptions::default();
    o.task_arns.insert(
        "piflow:health-gate".into(),
        "arn:aws:sns:us-east-1:123456789012:topic".into(),
    );
    let e = translate(&d, &o).unwrap_err().to_string();
    assert!(e.contains("not a Lambda function ARN"), "{e}");
    o.task_arns.insert(
        "piflow:health-gate".into(),
        "arn:aws:states:us-east-1:123456789012:activity:gate".into(),
    );
    let t = translate(&d, &o).unwrap();
    assert_eq!(
        t.definition["States"]["G"]["Resource"],
        "arn:aws:states:us-east-1:123456789012:activity:gate"
    );
}

#[test]
fn an_approval_mapped_to_lambda_waits_for_its_token() {
    let d = json!({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "piflow:approval.waitForTaskToken",
        "Parameters": {"environment.$": "$.env", "message": "ok?"}, "TimeoutSeconds": 60, "End": true}}});
    let mut o = TranslateOptions::default();
    o.task_arns.insert(
        "piflow:approval.waitForTaskToken".into(),
        "arn:aws:lambda:us-east-1:123456789012:function:ask".into(),
    );
    let t = translate(&d, &o).unwrap();
    let a = &t.definition["States"]["A"];
    assert_eq!(
        a["Resource"],
        "arn:aws:states:::lambda:invoke.waitForTaskToken"
    );
    assert_eq!(
        a["Parameters"],
        json!({"FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:ask",
               "Payload": {"environment.$": "$.env", "message": "ok?", "task_token.$": "$$.Task.Token"}})
    );
    assert_eq!(a["TimeoutSeconds"], 60);
}

fn piflow() -> Command {
    let mut c = Command::cargo_bin("piflow").unwrap();
    c.current_dir(root());
    c.env_remove("AWS_PROFILE");
    c
}

#[test]
fn print_policy_lists_exactly_the_actions_the_integrations_need() {
    let out = piflow()
        .args([
            "deploy",
            "upgrade",
            "--to",
            "stepfunctions",
            "--print-policy",
            "--role-arn",
            ROLE,
            "--codebuild-project",
            "piflow-checks",
            "--table",
            "piflow-store",
            "--approval-topic",
            TOPIC,
            "--task-arn",
            &format!("piflow:health-gate={GATE}"),
            "--task-arn",
            &format!("piflow:release={BLUE_GREEN}"),
            "--task-arn",
            "piflow:http-check=arn:aws:states:us-east-1:123456789012:activity:http-check",
            "--format",
            "json",
        ])
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let policy: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        piflow_aws_deploy::policy::actions(&policy),
        vec![
            "codebuild:BatchGetBuilds",
            "codebuild:BatchGetReports",
            "codebuild:StartBuild",
            "codebuild:StopBuild",
            "dynamodb:PutItem",
            "events:DescribeRule",
            "events:PutRule",
            "events:PutTargets",
            "lambda:InvokeFunction",
            "sns:Publish",
        ]
    );
    let by_sid = |sid: &str| -> Vec<String> {
        policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == sid)
            .unwrap_or_else(|| panic!("{sid} in {policy}"))["Resource"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        by_sid("CodeBuildSync"),
        vec!["arn:aws:codebuild:eu-west-1:123456789012:project/piflow-checks"]
    );
    assert_eq!(
        by_sid("AuditPutItem"),
        vec!["arn:aws:dynamodb:eu-west-1:123456789012:table/piflow-store"]
    );
    assert_eq!(by_sid("ApprovalPublish"), vec![TOPIC]);
    assert_eq!(
        by_sid("InvokeSteps"),
        vec![
            BLUE_GREEN.to_string(),
            format!("{BLUE_GREEN}:*"),
            GATE.to_string(),
            format!("{GATE}:*"),
        ]
    );
    // Nothing for ECS, ELB or Health: those calls are the Lambda's, not the machine's.
    assert!(!policy.to_string().contains("ecs:"), "{policy}");
}

/// A port on which nothing listens.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn an_untranslatable_workflow_fails_before_any_api_call() {
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let run = |args: &[&str]| {
        piflow()
            .args(args)
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_MAX_ATTEMPTS", "1")
            .output()
            .unwrap()
    };
    let out = run(&[
        "deploy",
        "upgrade",
        "--to",
        "stepfunctions",
        "--role-arn",
        ROLE,
        "--codebuild-project",
        "piflow-checks",
        "--table",
        "piflow-store",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("[not-translatable]"), "{stderr}");
    assert!(
        stderr.contains("state Release: piflow:release is a loop"),
        "{stderr}"
    );
    assert!(
        stderr.contains("state Approval: piflow:approval.waitForTaskToken waits for a person"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--task-arn piflow:health-gate=ARN"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was deployed"), "{stderr}");
    assert!(!stderr.contains("ListStateMachines"), "{stderr}");

    // The same endpoint is really used once the workflow translates: the
    // refusal above came before any call.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("note.asl.json");
    std::fs::write(&file, note_workflow("x").to_string()).unwrap();
    let out = run(&[
        "deploy",
        file.to_str().unwrap(),
        "--to",
        "stepfunctions",
        "--role-arn",
        ROLE,
        "--table",
        "piflow-store",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("[deploy-failed] ListStateMachines"),
        "{stderr}"
    );
}

#[test]
fn a_jsonata_audit_note_is_refused_unless_mapped() {
    let d = json!({"QueryLanguage": "JSONata", "StartAt": "N", "States": {"N": {"Type": "Task", "Resource": "piflow:audit-note",
        "Arguments": {"environment": "{% $states.input.env %}"}, "End": true}}});
    let o = TranslateOptions {
        table: Some("t".into()),
        ..Default::default()
    };
    let e = translate(&d, &o).unwrap_err().to_string();
    assert!(
        e.contains("state N: piflow:audit-note in a JSONata state"),
        "{e}"
    );
}

/// Pass → Choice → piflow:audit-note → Succeed: a workflow moto can execute
/// once translated.
fn note_workflow(label: &str) -> Value {
    json!({
        "Comment": format!("deploy test {label}"),
        "StartAt": "Prepare",
        "States": {
            "Prepare": {"Type": "Pass", "Parameters": {"target.$": "$.target", "release.$": "$.release", "label": label}, "Next": "IsDev"},
            "IsDev": {"Type": "Choice", "Choices": [{"Variable": "$.target.environment", "StringEquals": "dev", "Next": "Record"}], "Default": "Refused"},
            "Record": {
                "Type": "Task",
                "Resource": "piflow:audit-note",
                "Parameters": {
                    "outcome": "upgraded",
                    "action": "release.upgraded",
                    "environment.$": "$.target.environment",
                    "version.$": "$.release.version",
                    "service.$": "$.target.service"
                },
                "ResultPath": null,
                "Next": "Done"
            },
            "Done": {"Type": "Succeed"},
            "Refused": {"Type": "Fail", "Error": "Test.Refused"}
        }
    })
}

struct Deployed {
    machine: String,
    version: String,
    alias: String,
    created: bool,
    new_version: bool,
}

fn deploy_file(file: &Path, name: &str, table: &str) -> Deployed {
    let m = moto().unwrap();
    let mut c = piflow();
    for (k, v) in m.env_vars() {
        c.env(k, v);
    }
    let out = c
        .args([
            "deploy",
            file.to_str().unwrap(),
            "--to",
            "stepfunctions",
            "--role-arn",
            ROLE,
            "--name",
            name,
            "--table",
            table,
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    Deployed {
        machine: v["state_machine_arn"].as_str().unwrap().into(),
        version: v["version_arn"].as_str().unwrap().into(),
        alias: v["alias_arn"].as_str().unwrap().into(),
        created: v["created"].as_bool().unwrap(),
        new_version: v["new_version"].as_bool().unwrap(),
    }
}

async fn sfn() -> aws_sdk_sfn::Client {
    aws_sdk_sfn::Client::new(&piflow_aws_config::sdk_config().await)
}

async fn alias_target(client: &aws_sdk_sfn::Client, alias: &str) -> Vec<(String, i32)> {
    client
        .describe_state_machine_alias()
        .state_machine_alias_arn(alias)
        .send()
        .await
        .unwrap()
        .routing_configuration()
        .iter()
        .map(|r| (r.state_machine_version_arn().to_string(), r.weight()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_creates_updates_and_moves_the_alias_idempotently() {
    if moto().is_none() {
        return;
    }
    let client = sfn().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("note.asl.json");
    let name = unique("piflow-deploy");

    std::fs::write(&file, note_workflow("one").to_string()).unwrap();
    let first = deploy_file(&file, &name, "piflow-store");
    assert!(first.created && first.new_version);
    assert!(
        first.machine.ends_with(&format!(":stateMachine:{name}")),
        "{}",
        first.machine
    );
    assert_eq!(first.version, format!("{}:1", first.machine));
    assert_eq!(first.alias, format!("{}:live", first.machine));
    assert_eq!(
        alias_target(&client, &first.alias).await,
        vec![(first.version.clone(), 100)]
    );
    let described = client
        .describe_state_machine()
        .state_machine_arn(&first.version)
        .send()
        .await
        .unwrap();
    let deployed: Value = serde_json::from_str(described.definition()).unwrap();
    assert_eq!(
        deployed["States"]["Record"]["Resource"],
        "arn:aws:states:::dynamodb:putItem"
    );
    assert!(
        described
            .description()
            .unwrap_or_default()
            .starts_with("piflow content sha256:"),
        "{:?}",
        described.description()
    );

    // The same definition again: no new version, the alias stays.
    let again = deploy_file(&file, &name, "piflow-store");
    assert!(!again.created && !again.new_version);
    assert_eq!(again.version, first.version);
    assert_eq!(again.machine, first.machine);

    // The human report says so too.
    let m = moto().unwrap();
    let mut c = piflow();
    for (k, v) in m.env_vars() {
        c.env(k, v);
    }
    let out = c
        .args([
            "deploy",
            file.to_str().unwrap(),
            "--to",
            "stepfunctions",
            "--role-arn",
            ROLE,
            "--name",
            &name,
            "--table",
            "piflow-store",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(&format!("version        {} (unchanged", first.version)),
        "{stdout}"
    );

    // A changed definition: a new version, the alias moved to it.
    std::fs::write(&file, note_workflow("two").to_string()).unwrap();
    let second = deploy_file(&file, &name, "piflow-store");
    assert!(!second.created && second.new_version);
    assert_eq!(second.version, format!("{}:2", first.machine));
    assert_eq!(second.alias, first.alias);
    assert_eq!(
        alias_target(&client, &second.alias).await,
        vec![(second.version.clone(), 100)]
    );
    let described = client
        .describe_state_machine()
        .state_machine_arn(&first.machine)
        .send()
        .await
        .unwrap();
    assert!(described.definition().contains("deploy test two"));

    // Another option (the table) changes the content hash too.
    let third = deploy_file(&file, &name, "piflow-other");
    assert!(third.new_version);
    assert_eq!(third.version, format!("{}:3", first.machine));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_deployed_machine_runs_in_moto_and_writes_the_audit_item() {
    let Some(_moto) = moto() else {
        return;
    };
    // moto() enabled execution (`execute_state_machine`) when it started.
    let config = piflow_aws_config::sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    let table = unique("piflow-sfn-audit");
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
        ScalarAttributeType,
    };
    ddb.create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("PK")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("SK")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("PK")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("SK")
                .key_type(KeyType::Range)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("note.asl.json");
    std::fs::write(&file, note_workflow("run").to_string()).unwrap();
    let name = unique("piflow-run");
    let env = unique("env");
    let d = deploy_file(&file, &name, &table);

    let client = sfn().await;
    let run = |environment: String| {
        let client = client.clone();
        let machine = d.machine.clone();
        async move {
            let exec = client
                .start_execution()
                .state_machine_arn(&machine)
                .name(unique("exec"))
                .input(
                    json!({"target": {"environment": environment, "service": "dashboard"}, "release": {"version": "1.0"}})
                        .to_string(),
                )
                .send()
                .await
                .unwrap()
                .execution_arn()
                .to_string();
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let out = client
                    .describe_execution()
                    .execution_arn(&exec)
                    .send()
                    .await
                    .unwrap();
                let status = out.status().as_str().to_string();
                if status != "RUNNING" {
                    return (
                        exec,
                        status,
                        out.error().map(str::to_string),
                        out.cause().map(str::to_string),
                    );
                }
                assert!(Instant::now() < deadline, "{exec} still RUNNING");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };

    // dev: the Choice leads to the putItem.
    let (exec, status, error, cause) = run("dev".to_string()).await;
    assert_eq!(status, "SUCCEEDED", "{exec}: {error:?} {cause:?}");
    let items = ddb
        .query()
        .table_name(&table)
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(":pk", AttributeValue::S("AUDIT-PENDING#dev".into()))
        .send()
        .await
        .unwrap()
        .items()
        .to_vec();
    assert_eq!(items.len(), 1, "{items:?}");
    let item = &items[0];
    let s = |k: &str| {
        item.get(k)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(s("result"), "upgraded");
    assert_eq!(s("action"), "release.upgraded");
    assert_eq!(s("env"), "dev");
    assert_eq!(s("target"), "Record");
    assert_eq!(s("execution"), exec);
    assert_eq!(s("source"), "stepfunctions");
    assert!(s("SK").ends_with("#Record"), "{}", s("SK"));
    let after = item["after"].as_m().unwrap();
    assert_eq!(after["version"].as_s().unwrap(), "\"1.0\"");
    assert_eq!(after["service"].as_s().unwrap(), "\"dashboard\"");

    // Another environment: the Choice leads to Fail and nothing is written.
    let (exec, status, error, _) = run(env.clone()).await;
    assert_eq!(status, "FAILED", "{exec}");
    assert_eq!(error.as_deref(), Some("Test.Refused"));
    let none = ddb
        .query()
        .table_name(&table)
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(format!("AUDIT-PENDING#{env}")))
        .send()
        .await
        .unwrap();
    assert_eq!(none.count(), 0);
}
