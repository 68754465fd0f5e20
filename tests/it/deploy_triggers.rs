//! `piflow deploy triggers`: piflow.yaml's `events:` and `tags:` rules as
//! EventBridge rules and targets in the moto server (docs/scale-out.md,
//! "Triggers on EventBridge"): patterns, targets, idempotence, pruning, and
//! `--print` and refusals without any API call.
//!
//! Not tested: an event sent with PutEvents starting an execution. moto
//! 5.2.5 delivers events only to SQS, CloudWatch Logs, event buses, archives
//! and API destinations; a Step Functions target makes its PutEvents fail
//! (NotImplementedError), so there is nothing to observe.

use crate::common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::{Value, json};

use common::moto::{moto, unique};

const SFN_ROLE: &str = "arn:aws:iam::123456789012:role/piflow-sfn";
const EB_ROLE: &str = "arn:aws:iam::123456789012:role/piflow-events";
const REPO: &str = "arn:aws:codecommit:us-east-1:123456789012:product";

fn piflow(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("piflow").unwrap();
    c.current_dir(dir);
    c.env_remove("AWS_PROFILE");
    c.env_remove("PIFLOW_CONFIG");
    c
}

/// A temp dir with workflows/WF.asl.yaml and a piflow.yaml with one events
/// rule (input transformer) and one tags rule, both starting WF.
struct Project {
    dir: tempfile::TempDir,
    wf: String,
    event_rule: String,
}

const TEMPLATE: &str = r#"{"reason": {"alarm": <alarm>, "event": <id>}}"#;

impl Project {
    fn new() -> Project {
        let dir = tempfile::tempdir().unwrap();
        let wf = unique("wf");
        let event_rule = unique("alarm");
        std::fs::create_dir(dir.path().join("workflows")).unwrap();
        std::fs::write(
            dir.path().join(format!("workflows/{wf}.asl.yaml")),
            "StartAt: Done\nStates:\n  Done:\n    Type: Pass\n    End: true\n",
        )
        .unwrap();
        let p = Project {
            dir,
            wf,
            event_rule,
        };
        p.write_config(true);
        p
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn write_config(&self, with_event_rule: bool) {
        let mut text = format!(
            "tags:\n  - pattern: \"release/<version>\"\n    workflow: {wf}\n    input:\n      release:\n        version: \"{{version}}\"\n",
            wf = self.wf
        );
        if with_event_rule {
            text.push_str(&format!(
                "events:\n  - name: {name}\n    pattern:\n      source: [aws.cloudwatch]\n      detail-type: [CloudWatch Alarm State Change]\n      detail:\n        alarmName: [{{prefix: dev-}}]\n        state:\n          value: [ALARM]\n    workflow: {wf}\n    environment: dev\n    input_transformer:\n      input_paths_map:\n        id: $.id\n        alarm: $.detail.alarmName\n      input_template: '{TEMPLATE}'\n",
                name = self.event_rule,
                wf = self.wf
            ));
        }
        std::fs::write(self.dir.path().join("piflow.yaml"), text).unwrap();
    }

    /// `piflow deploy workflows/WF.asl.yaml --to stepfunctions`: the alias ARN.
    fn deploy_workflow(&self) -> String {
        let m = moto().unwrap();
        let mut c = piflow(&self.path());
        c.envs(m.env_vars());
        let out = c
            .args([
                "deploy",
                &format!("workflows/{}.asl.yaml", self.wf),
                "--to",
                "stepfunctions",
                "--role-arn",
                SFN_ROLE,
                "--format",
                "json",
            ])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["alias_arn"].as_str().unwrap().to_string()
    }

    /// `piflow deploy triggers … --format json`: (exit code, stdout JSON, stderr).
    fn deploy_triggers(&self, bus: &str, extra: &[&str]) -> (i32, Value, String) {
        let m = moto().unwrap();
        let mut c = piflow(&self.path());
        c.envs(m.env_vars());
        c.args([
            "deploy",
            "triggers",
            "--role-arn",
            EB_ROLE,
            "--event-bus",
            bus,
            "--codecommit-repo",
            REPO,
            "--format",
            "json",
        ]);
        c.args(extra);
        let out = c.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let v = serde_json::from_str(&stdout).unwrap_or(Value::Null);
        (
            out.status.code().unwrap_or(-1),
            v,
            format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr)),
        )
    }
}

async fn events() -> aws_sdk_eventbridge::Client {
    aws_sdk_eventbridge::Client::new(&piflow_aws_config::sdk_config().await)
}

async fn new_bus(client: &aws_sdk_eventbridge::Client) -> String {
    let bus = unique("piflow-test-bus");
    client.create_event_bus().name(&bus).send().await.unwrap();
    bus
}

fn actions(v: &Value) -> Vec<(String, String)> {
    let mut a: Vec<(String, String)> = v["rules"]
        .as_array()
        .unwrap_or_else(|| panic!("no rules in {v}"))
        .iter()
        .map(|r| {
            (
                r["rule"].as_str().unwrap().to_string(),
                r["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    a.sort();
    a
}

#[tokio::test(flavor = "multi_thread")]
async fn deploys_event_and_tag_rules_with_targets_then_reports_unchanged() {
    if moto().is_none() {
        return;
    }
    let client = events().await;
    let bus = new_bus(&client).await;
    let p = Project::new();
    let alias = p.deploy_workflow();
    let event_name = format!("piflow-{}", p.event_rule);
    let tag_name = format!("piflow-tags-0-{}", p.wf);

    let (code, v, out) = p.deploy_triggers(&bus, &[]);
    assert_eq!(code, 0, "{out}");
    let mut want = vec![
        (event_name.clone(), "created".to_string()),
        (tag_name.clone(), "created".to_string()),
    ];
    want.sort();
    assert_eq!(actions(&v), want, "{out}");

    // The events rule: its pattern, its target with the input transformer.
    let r = client
        .describe_rule()
        .name(&event_name)
        .event_bus_name(&bus)
        .send()
        .await
        .unwrap();
    let pattern: Value = serde_json::from_str(r.event_pattern().unwrap()).unwrap();
    assert_eq!(
        pattern,
        json!({"source": ["aws.cloudwatch"], "detail-type": ["CloudWatch Alarm State Change"],
               "detail": {"alarmName": [{"prefix": "dev-"}], "state": {"value": ["ALARM"]}}})
    );
    assert_eq!(r.state().unwrap().as_str(), "ENABLED");
    assert!(
        r.description().unwrap().starts_with("piflow trigger")
            && r.description().unwrap().contains(&p.event_rule),
        "{:?}",
        r.description()
    );
    let t = client
        .list_targets_by_rule()
        .rule(&event_name)
        .event_bus_name(&bus)
        .send()
        .await
        .unwrap();
    assert_eq!(t.targets().len(), 1);
    let t0 = &t.targets()[0];
    assert_eq!(t0.arn(), alias);
    assert!(
        alias.ends_with(&format!(":stateMachine:{}:live", p.wf)),
        "{alias}"
    );
    assert_eq!(t0.role_arn(), Some(EB_ROLE));
    let x = t0.input_transformer().unwrap();
    assert_eq!(x.input_template(), TEMPLATE);
    let map = x.input_paths_map().unwrap();
    assert_eq!(map.len(), 2);
    assert_eq!(map["id"], "$.id");
    assert_eq!(map["alarm"], "$.detail.alarmName");

    // The tags rule: tag creation in the repository, names under release/.
    let r = client
        .describe_rule()
        .name(&tag_name)
        .event_bus_name(&bus)
        .send()
        .await
        .unwrap();
    let pattern: Value = serde_json::from_str(r.event_pattern().unwrap()).unwrap();
    assert_eq!(pattern["source"], json!(["aws.codecommit"]));
    assert_eq!(
        pattern["detail-type"],
        json!(["CodeCommit Repository State Change"])
    );
    assert_eq!(pattern["resources"], json!([REPO]));
    assert_eq!(pattern["detail"]["event"], json!(["referenceCreated"]));
    assert_eq!(pattern["detail"]["referenceType"], json!(["tag"]));
    assert_eq!(
        pattern["detail"]["referenceName"],
        json!([{"prefix": "release/"}])
    );
    let t = client
        .list_targets_by_rule()
        .rule(&tag_name)
        .event_bus_name(&bus)
        .send()
        .await
        .unwrap();
    let t0 = &t.targets()[0];
    assert_eq!(t0.arn(), alias);
    let map = t0.input_transformer().unwrap().input_paths_map().unwrap();
    assert_eq!(map["tag"], "$.detail.referenceName");
    assert_eq!(map["commit"], "$.detail.commitId");

    // Second run: nothing changes.
    let (code, v, out) = p.deploy_triggers(&bus, &[]);
    assert_eq!(code, 0, "{out}");
    let mut want = vec![
        (event_name.clone(), "unchanged".to_string()),
        (tag_name.clone(), "unchanged".to_string()),
    ];
    want.sort();
    assert_eq!(actions(&v), want, "{out}");

    // A changed template is put again: updated.
    let changed = std::fs::read_to_string(p.path().join("piflow.yaml"))
        .unwrap()
        .replace("\"event\": <id>", "\"id\": <id>");
    std::fs::write(p.path().join("piflow.yaml"), changed).unwrap();
    let (code, v, out) = p.deploy_triggers(&bus, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        actions(&v).contains(&(event_name.clone(), "updated".to_string())),
        "{out}"
    );
    let t = client
        .list_targets_by_rule()
        .rule(&event_name)
        .event_bus_name(&bus)
        .send()
        .await
        .unwrap();
    assert!(
        t.targets()[0]
            .input_transformer()
            .unwrap()
            .input_template()
            .contains("\"id\": <id>")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removed_rule_is_kept_and_reported_unless_pruned() {
    if moto().is_none() {
        return;
    }
    let client = events().await;
    let bus = new_bus(&client).await;
    let p = Project::new();
    p.deploy_workflow();
    let event_name = format!("piflow-{}", p.event_rule);
    let (code, _, out) = p.deploy_triggers(&bus, &[]);
    assert_eq!(code, 0, "{out}");

    p.write_config(false);
    let (code, v, out) = p.deploy_triggers(&bus, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        actions(&v).contains(&(event_name.clone(), "stale".to_string())),
        "{out}"
    );
    assert!(
        client
            .describe_rule()
            .name(&event_name)
            .event_bus_name(&bus)
            .send()
            .await
            .is_ok(),
        "kept without --prune"
    );

    let (code, v, out) = p.deploy_triggers(&bus, &["--prune"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        actions(&v).contains(&(event_name.clone(), "deleted".to_string())),
        "{out}"
    );
    let e = client
        .describe_rule()
        .name(&event_name)
        .event_bus_name(&bus)
        .send()
        .await
        .unwrap_err();
    assert!(
        e.as_service_error()
            .is_some_and(|s| s.is_resource_not_found_exception()),
        "{e:?}"
    );
    // The tags rule stays.
    let rules = client
        .list_rules()
        .name_prefix("piflow-")
        .event_bus_name(&bus)
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = rules.rules().iter().filter_map(|r| r.name()).collect();
    assert_eq!(names, vec![format!("piflow-tags-0-{}", p.wf).as_str()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workflow_without_a_state_machine_is_refused_before_any_rule() {
    if moto().is_none() {
        return;
    }
    let client = events().await;
    let bus = new_bus(&client).await;
    let p = Project::new(); // its workflow is never deployed
    let (code, _, out) = p.deploy_triggers(&bus, &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains(&format!("events: {}", p.event_rule)), "{out}");
    assert!(out.contains("no deployed state machine"), "{out}");
    let rules = client
        .list_rules()
        .event_bus_name(&bus)
        .send()
        .await
        .unwrap();
    assert!(rules.rules().is_empty(), "{:?}", rules.rules());
}

/// A port nothing listens on.
fn closed_endpoint() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

fn offline(dir: &Path) -> Command {
    let mut c = piflow(dir);
    c.env("AWS_ENDPOINT_URL", closed_endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_MAX_ATTEMPTS", "1");
    c
}

#[test]
fn print_shows_rules_targets_and_policy_without_calling_aws() {
    let p = Project::new();
    let out = offline(&p.path())
        .args([
            "deploy",
            "triggers",
            "--print",
            "--print-policy",
            "--role-arn",
            EB_ROLE,
            "--codecommit-repo",
            REPO,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let alias = format!(
        "arn:aws:states:us-east-1:123456789012:stateMachine:{}:live",
        p.wf
    );
    let rules = v["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 2);
    let ev = &rules[0];
    assert_eq!(ev["Name"], format!("piflow-{}", p.event_rule));
    assert_eq!(ev["State"], "ENABLED");
    assert_eq!(ev["EventPattern"]["source"], json!(["aws.cloudwatch"]));
    assert_eq!(ev["Targets"][0]["Arn"], alias);
    assert_eq!(ev["Targets"][0]["RoleArn"], EB_ROLE);
    assert_eq!(
        ev["Targets"][0]["InputTransformer"]["InputTemplate"],
        TEMPLATE
    );
    assert_eq!(
        ev["Targets"][0]["InputTransformer"]["InputPathsMap"],
        json!({"id": "$.id", "alarm": "$.detail.alarmName"})
    );
    assert_eq!(
        v["policy"]["Statement"][0]["Action"],
        "states:StartExecution"
    );
    assert_eq!(v["policy"]["Statement"][0]["Resource"], json!([alias]));
    assert_eq!(
        v["trust"]["Statement"][0]["Principal"]["Service"],
        "events.amazonaws.com"
    );
}

#[test]
fn rules_eventbridge_would_refuse_are_named_before_any_call() {
    let p = Project::new();
    // A rule name too long for EventBridge (64 characters with piflow-).
    let long = format!("r{}", "x".repeat(60));
    let text = std::fs::read_to_string(p.path().join("piflow.yaml"))
        .unwrap()
        .replace(&p.event_rule, &long);
    std::fs::write(p.path().join("piflow.yaml"), text).unwrap();
    let out = offline(&p.path())
        .args([
            "deploy",
            "triggers",
            "--role-arn",
            EB_ROLE,
            "--codecommit-repo",
            REPO,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("events: {long}")), "{stderr}");
    assert!(stderr.contains("EventBridge allows 1 to 64"), "{stderr}");
    assert!(
        !stderr.contains("ListStateMachines"),
        "no call was made: {stderr}"
    );

    // A tags rule without the repository is refused too, naming the rule.
    p.write_config(false);
    let out = offline(&p.path())
        .args(["deploy", "triggers", "--print", "--role-arn", EB_ROLE])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("tags[0] release/<version>"), "{stderr}");
    assert!(stderr.contains("--codecommit-repo"), "{stderr}");
}
