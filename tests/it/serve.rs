//! `piflow serve` (docs/triggers.md, "piflow serve" and "EventBridge
//! rules"): the shipped remediation rules against AWS's documented sample
//! events, `events:` in piflow.yaml read strictly, and real HTTP requests to
//! a running `piflow serve` binary: signed, unsigned, wrongly signed,
//! replayed, duplicated, oversized and malformed events, GitHub and GitLab
//! tag pushes, the executions API, metrics, and SIGTERM leaving a running
//! execution RUNNING for the next server to resume.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common;
use crate::common::serve::{READ_KEY, Server};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use piflow_triggers::config::TriggerConfig;
use piflow_triggers::events::{EventRouter, execution_name, sign};
use serde_json::{Value, json};

const SECRET: &str = "s3cret-hmac";
const API_KEY: &str = "key-0123456789";
const GITHUB: &str = "gh-secret";
const GITLAB: &str = "gl-token";

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("piflow")
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------
// The shipped rules

/// AWS Health's documented "AWS Health Event" sample (an operational issue),
/// for ECS in the estate's region.
fn health_issue() -> Value {
    json!({
        "version": "0",
        "id": "7bf73129-1428-4cd3-a780-95db273d1602",
        "detail-type": "AWS Health Event",
        "source": "aws.health",
        "account": "123456789012",
        "time": "2023-01-27T09:01:22Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "eventArn": "arn:aws:health:us-east-1::event/ECS/AWS_ECS_OPERATIONAL_ISSUE/AWS_ECS_OPERATIONAL_ISSUE_7f35c8ae-af1f-54e6-a526-d0179ed6d68f",
            "service": "ECS",
            "eventTypeCode": "AWS_ECS_OPERATIONAL_ISSUE",
            "eventTypeCategory": "issue",
            "eventScopeCode": "PUBLIC",
            "communicationId": "01b0993207d81a09dcd552ebd1e633e36cf1f09a-1",
            "startTime": "Fri, 27 Jan 2023 06:02:51 GMT",
            "lastUpdatedTime": "Fri, 27 Jan 2023 09:01:22 GMT",
            "statusCode": "open",
            "eventRegion": "us-east-1",
            "eventDescription": [{"language": "en_US", "latestDescription": "Increased API error rates"}],
            "page": "1",
            "totalPages": "1",
            "affectedAccount": "123456789012"
        }
    })
}

/// CloudWatch's documented "Single Metric Alarm" state change sample.
fn alarm_sample() -> Value {
    json!({
        "version": "0",
        "id": "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92",
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": "123456789012",
        "time": "2019-10-02T17:04:40Z",
        "region": "us-east-1",
        "resources": ["arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServerCpuTooHigh"],
        "detail": {
            "alarmName": "ServerCpuTooHigh",
            "configuration": {
                "description": "Goes into alarm when server CPU utilization is too high!",
                "metrics": [{
                    "id": "30b6c6b2-a864-43a2-4877-c09a1afc3b87",
                    "metricStat": {
                        "metric": {
                            "dimensions": {"InstanceId": "i-12345678901234567"},
                            "name": "CPUUtilization",
                            "namespace": "AWS/EC2"
                        },
                        "period": 300,
                        "stat": "Average"
                    },
                    "returnData": true
                }]
            },
            "previousState": {
                "reason": "Threshold Crossed: 1 out of the last 1 datapoints [0.0666851903306472 (01/10/19 13:46:00)] was not greater than the threshold (50.0) (minimum 1 datapoint for ALARM -> OK transition).",
                "timestamp": "2019-10-01T13:56:40.985+0000",
                "value": "OK"
            },
            "state": {
                "reason": "Threshold Crossed: 1 out of the last 1 datapoints [99.50160229693434 (02/10/19 16:59:00)] was greater than the threshold (50.0) (minimum 1 datapoint for OK -> ALARM transition).",
                "timestamp": "2019-10-02T17:04:40.989+0000",
                "value": "ALARM"
            }
        }
    })
}

/// The same sample for one of the estate's alarms: `dev-dashboard-cpu` on
/// the ECS service's CPU.
fn estate_alarm() -> Value {
    let mut e = alarm_sample();
    e["id"] = json!("d2a5a4c1-0000-4e5b-9c4c-estatealarm1");
    e["detail"]["alarmName"] = json!("dev-dashboard-cpu");
    e["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"] = json!({
        "dimensions": {"ClusterName": "product", "ServiceName": "dashboard"},
        "name": "CPUUtilization",
        "namespace": "AWS/ECS"
    });
    e
}

fn schema(name: &str) -> jsonschema::Validator {
    let text =
        std::fs::read_to_string(repo_root().join(format!("schemas/{name}.input.json"))).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

fn route(config: &TriggerConfig, event: &Value) -> Vec<piflow_triggers::events::Fired> {
    let id = event["id"].as_str().unwrap();
    EventRouter::new(&config.events)
        .route(event, id)
        .into_iter()
        .map(|r| r.expect("the rule builds an input"))
        .collect()
}

/// The shipped rules: an AWS Health issue holds releases (the hold
/// workflow records it); an alarm of a service rolls the product back
/// (when its release is recent: the rollback workflow decides).
#[test]
fn shipped_rules_turn_documented_events_into_hold_and_rollback_inputs() {
    let config = TriggerConfig::load(&repo_root().join("piflow.yaml")).expect("piflow.yaml reads");
    let hold = schema("hold");
    let schema = schema("rollback");
    // What runs: the input the rule builds, completed by dev's
    // environment and the product.
    let runs = |input: &Value| {
        config
            .estate
            .apply(input.clone())
            .expect("dev's policy applies")
    };

    let fired = route(&config, &health_issue());
    assert_eq!(fired.len(), 1, "{fired:?}");
    let f = &fired[0];
    assert_eq!(f.rule, "health-issue-hold-dev");
    assert_eq!(f.workflow, "hold");
    assert_eq!(f.env.as_deref(), Some("dev"));
    assert!(hold.is_valid(&runs(&f.input)), "{}", f.input);
    assert_eq!(f.input["target"]["region"], "us-east-1");
    assert_eq!(
        f.input["reason"]["summary"],
        "AWS Health issue AWS_ECS_OPERATIONAL_ISSUE for ECS in us-east-1"
    );
    assert_eq!(
        f.input["reason"]["event"],
        "7bf73129-1428-4cd3-a780-95db273d1602"
    );
    assert_eq!(
        f.name,
        execution_name(
            "health-issue-hold-dev",
            "7bf73129-1428-4cd3-a780-95db273d1602"
        )
    );

    let fired = route(&config, &estate_alarm());
    assert_eq!(fired.len(), 1, "{fired:?}");
    let f = &fired[0];
    assert_eq!(f.rule, "alarm-rollback-dev");
    let input = runs(&f.input);
    assert!(schema.is_valid(&input), "{input}");
    assert_eq!(input["remediation"]["alarm_window_minutes"], 60);
    assert_eq!(input["product"]["services"][3], "pirana");
    assert_eq!(f.input["target"]["cluster"], "product");
    assert_eq!(f.input["target"]["service"], "dashboard");
    assert_eq!(f.input["reason"]["alarm"], "dev-dashboard-cpu");
    assert!(
        f.input["reason"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("CloudWatch alarm dev-dashboard-cpu in ALARM: Threshold Crossed"),
        "{}",
        f.input
    );

    // Not the estate's: the documented EC2 alarm as it is, an alarm back to
    // OK, a Health issue that is closed or about another service or region.
    assert!(route(&config, &alarm_sample()).is_empty());
    let mut ok = estate_alarm();
    ok["detail"]["state"]["value"] = json!("OK");
    assert!(route(&config, &ok).is_empty());
    let mut closed = health_issue();
    closed["detail"]["statusCode"] = json!("closed");
    assert!(route(&config, &closed).is_empty());
    let mut other = health_issue();
    other["detail"]["service"] = json!("SAGEMAKER");
    assert!(route(&config, &other).is_empty());
    let mut elsewhere = health_issue();
    elsewhere["detail"]["eventRegion"] = json!("eu-west-1");
    assert!(route(&config, &elsewhere).is_empty());
}

#[test]
fn events_section_is_read_strictly() {
    let parse = |text: &str| TriggerConfig::parse(text, Path::new("piflow.yaml"));
    let ok = parse(
        "events:\n  - name: a\n    pattern: {source: [x]}\n    workflow: w\n    input_path: $.detail\n  - name: b\n    pattern: {source: [x]}\n    workflow: w\n    environment: $.detail.env\n",
    )
    .expect("valid");
    assert_eq!(ok.events.len(), 2);
    // Several rules match one event: each fires.
    let event = json!({"id": "e1", "source": "x", "detail": {"env": "qa", "n": 1}});
    let fired = EventRouter::new(&ok.events).route(&event, "e1");
    assert_eq!(fired.len(), 2);
    let a = fired[0].as_ref().unwrap();
    assert_eq!(a.input, json!({"env": "qa", "n": 1}));
    let b = fired[1].as_ref().unwrap();
    assert_eq!(b.env.as_deref(), Some("qa"));
    assert_eq!(b.input, event);
    // An environment path selecting no environment name: a misfire, named.
    let bad_env = json!({"id": "e2", "source": "x", "detail": {"env": "Not An Env"}});
    let fired = EventRouter::new(&ok.events).route(&bad_env, "e2");
    let m = fired[1].as_ref().unwrap_err();
    assert_eq!(m.code, "environment-invalid");

    for (text, key, what) in [
        (
            "events:\n  - name: a\n    pattern: {source: [x]}\n    workflow: w\n    input_path: $.detail\n    input_transformer: {input_template: '{}'}\n",
            "events[0].input_transformer",
            "exclude each other",
        ),
        (
            "events:\n  - name: a\n    pattern: {source: x}\n    workflow: w\n",
            "events[0].pattern",
            "pattern.not-array",
        ),
        (
            "events:\n  - name: a\n    pattern: {source: [x]}\n    workflow: w\n  - name: a\n    pattern: {source: [y]}\n    workflow: w\n",
            "events[1].name",
            "unique",
        ),
        (
            "events:\n  - name: a b\n    pattern: {source: [x]}\n    workflow: w\n",
            "events[0].name",
            "not a rule name",
        ),
        (
            "events:\n  - name: a\n    pattern: {source: [x]}\n    workflow: w\n    inputpath: $.x\n",
            "events[0].inputpath",
            "did you mean \"input_path\"",
        ),
        (
            "events:\n  - name: a\n    pattern: {source: [x]}\n    workflow: w\n    input_transformer: {input_template: '<x> is <y>', input_paths_map: {x: detail}}\n",
            "events[0].input_transformer",
            "must start with $",
        ),
        (
            "events:\n  - name: a\n    pattern: {source: [x]}\n",
            "events[0].workflow",
            "required",
        ),
        (
            "events:\n  - name: a\n    pattern: {source: [x]}\n    workflow: w\n    environment: PROD!\n",
            "events[0].environment",
            "neither an environment name",
        ),
    ] {
        let e = parse(text).expect_err(text);
        assert_eq!(e.key, key, "{text}: {e}");
        assert!(e.message.contains(what), "{text}: {e}");
        assert!(e.line.is_some(), "{e}");
    }
}

// ---------------------------------------------------------------------------
// A running server

const TINY: &str = "StartAt: Done\nStates:\n  Done:\n    Type: Pass\n    End: true\n";
const SLOW: &str = "StartAt: First\nStates:\n  First:\n    Type: Pass\n    Next: Sleep\n  Sleep:\n    Type: Wait\n    Seconds: 4\n    Next: Done\n  Done:\n    Type: Pass\n    End: true\n";

const CONFIG: &str = r#"tags:
  - pattern: "<env>_<region>/<team>/<version>"
    workflow: tiny
    input: {environment: "{env}", version: "{version}", commit: "{commit}"}
events:
  - name: tiny-deploy
    pattern: {source: [piflow.test], detail-type: [tiny]}
    workflow: tiny
    input_path: $.detail
    environment: dev
  - name: slow-job
    pattern: {source: [piflow.test], detail-type: [slow]}
    workflow: slow
    input_transformer:
      input_paths_map: {n: $.detail.n}
      input_template: '{"n": <n>, "environment": "qa"}'
"#;

fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("workflows")).unwrap();
    std::fs::write(dir.path().join("workflows/tiny.asl.yaml"), TINY).unwrap();
    std::fs::write(dir.path().join("workflows/slow.asl.yaml"), SLOW).unwrap();
    std::fs::write(dir.path().join("piflow.yaml"), CONFIG).unwrap();
    dir
}

type Http = Client<HttpConnector, Full<Bytes>>;

fn http() -> Http {
    Client::builder(TokioExecutor::new()).build_http()
}

struct Answer {
    status: u16,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }
}

async fn send(
    c: &Http,
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Answer {
    let mut b = hyper::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    let res = c
        .request(b.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .expect("the request is answered");
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        text: String::from_utf8_lossy(&bytes).to_string(),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn signed(body: &[u8], ts: i64) -> Vec<(&'static str, String)> {
    vec![
        ("x-piflow-timestamp", ts.to_string()),
        ("x-piflow-signature", sign(SECRET.as_bytes(), ts, body)),
        ("content-type", "application/json".into()),
    ]
}

async fn post_event(c: &Http, s: &Server, event: &Value) -> Answer {
    let body = serde_json::to_vec(event).unwrap();
    send(
        c,
        "POST",
        &format!("{}/events", s.url),
        &signed(&body, now()),
        body,
    )
    .await
}

/// A read with the read key.
async fn get(c: &Http, s: &Server, path: &str) -> Answer {
    send(
        c,
        "GET",
        &format!("{}{path}", s.url),
        &[("x-piflow-api-key", READ_KEY.into())],
        Vec::new(),
    )
    .await
}

async fn wait_status(c: &Http, s: &Server, id: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let a = get(c, s, &format!("/executions/{id}")).await;
        if a.status == 200 && a.json()["status"] == want {
            return a.json();
        }
        assert!(
            Instant::now() < deadline,
            "{id} is not {want}: {} {}\nlog: {}",
            a.status,
            a.text,
            s.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn executions(c: &Http, s: &Server) -> Vec<Value> {
    let a = get(c, s, "/executions").await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.json().as_array().unwrap().clone()
}

fn tiny_event(id: &str) -> Value {
    json!({
        "version": "0", "id": id, "detail-type": "tiny", "source": "piflow.test",
        "account": "123456789012", "time": "2026-11-22T05:00:00Z", "region": "us-east-1",
        "resources": [], "detail": {"release": id}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_authenticated_deduplicated_and_checked() {
    let dir = site();
    let s = Server::start(
        dir.path(),
        &[],
        &[("PIFLOW_HMAC_SECRET", SECRET), ("PIFLOW_API_KEY", API_KEY)],
    );
    let c = http();
    let health = get(&c, &s, "/healthz").await;
    assert_eq!(health.status, 200, "{}", health.text);

    // Signed: 202 and one execution, which runs to its end.
    let a = post_event(&c, &s, &tiny_event("ev-1")).await;
    assert_eq!(a.status, 202, "{}", a.text);
    let id = format!("tiny:{}", execution_name("tiny-deploy", "ev-1"));
    assert_eq!(a.json()["executions"], json!([id]));
    let r = wait_status(&c, &s, &id, "SUCCEEDED").await;
    assert_eq!(r["input"], json!({"release": "ev-1"}));
    assert_eq!(r["env"], "dev");
    assert_eq!(r["trigger"], "event:ev-1");

    // The same event delivered 10 times (at once): one execution.
    let dup = tiny_event("ev-dup");
    let answers = futures::future::join_all((0..10).map(|_| post_event(&c, &s, &dup))).await;
    let firsts = answers.iter().filter(|a| a.status == 202).count();
    let dups = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(
        (firsts, dups),
        (1, 9),
        "{:?}",
        answers.iter().map(|a| &a.text).collect::<Vec<_>>()
    );
    assert!(
        answers
            .iter()
            .filter(|a| a.status == 200)
            .all(|a| a.json()["status"] == "duplicate")
    );
    let dup_id = format!("tiny:{}", execution_name("tiny-deploy", "ev-dup"));
    wait_status(&c, &s, &dup_id, "SUCCEEDED").await;
    let again = post_event(&c, &s, &dup).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json()["executions"], json!([dup_id]));
    let all = executions(&c, &s).await;
    assert_eq!(all.iter().filter(|e| e["id"] == dup_id).count(), 1);

    // The API key (an EventBridge API destination's connection).
    let body = serde_json::to_vec(&tiny_event("ev-key")).unwrap();
    let a = send(
        &c,
        "POST",
        &format!("{}/events", s.url),
        &[("x-piflow-api-key", API_KEY.into())],
        body.clone(),
    )
    .await;
    assert_eq!(a.status, 202, "{}", a.text);

    // Unauthenticated, wrongly signed, replayed, wrong key: 401, nothing started.
    let url = format!("{}/events", s.url);
    let bad = |id: &str| serde_json::to_vec(&tiny_event(id)).unwrap();
    let unsigned = send(&c, "POST", &url, &[], bad("ev-unsigned")).await;
    assert_eq!(unsigned.status, 401, "{}", unsigned.text);
    assert!(
        unsigned.json()["reason"]
            .as_str()
            .unwrap()
            .contains("not authenticated")
    );
    let body = bad("ev-wrong");
    let mut h = signed(&body, now());
    h[1].1 = sign(b"another secret", now(), &body);
    let wrong = send(&c, "POST", &url, &h, body).await;
    assert_eq!(wrong.status, 401, "{}", wrong.text);
    assert!(
        wrong.json()["reason"]
            .as_str()
            .unwrap()
            .contains("does not match")
    );
    let body = bad("ev-tampered");
    let h = signed(&body, now());
    let tampered = send(&c, "POST", &url, &h, bad("ev-tampered2")).await;
    assert_eq!(tampered.status, 401, "{}", tampered.text);
    let body = bad("ev-stale");
    let stale = send(&c, "POST", &url, &signed(&body, now() - 600), body).await;
    assert_eq!(stale.status, 401, "{}", stale.text);
    assert!(
        stale.json()["reason"]
            .as_str()
            .unwrap()
            .contains("replayed")
    );
    let badkey = send(
        &c,
        "POST",
        &url,
        &[("x-piflow-api-key", "nope".into())],
        bad("ev-badkey"),
    )
    .await;
    assert_eq!(badkey.status, 401, "{}", badkey.text);
    let all = executions(&c, &s).await;
    for id in [
        "ev-unsigned",
        "ev-wrong",
        "ev-tampered",
        "ev-tampered2",
        "ev-stale",
        "ev-badkey",
    ] {
        let name = execution_name("tiny-deploy", id);
        assert!(
            !all.iter().any(|e| e["name"] == name),
            "{id} started an execution"
        );
    }

    // Oversized: 413 with a reason.
    let mut big = tiny_event("ev-big");
    big["detail"]["blob"] = json!("x".repeat(300 * 1024));
    let body = serde_json::to_vec(&big).unwrap();
    let a = send(&c, "POST", &url, &signed(&body, now()), body).await;
    assert_eq!(a.status, 413, "{}", a.text);
    assert_eq!(a.json()["error"], "body-too-large");

    // Malformed JSON (signed): 400 naming where.
    let body = b"{\"id\": \"ev-m\", \"source\": }".to_vec();
    let a = send(&c, "POST", &url, &signed(&body, now()), body).await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(a.json()["error"], "malformed-json");
    assert!(
        a.json()["reason"]
            .as_str()
            .unwrap()
            .contains("at line 1 column 26"),
        "{}",
        a.text
    );
    // No id: 400.
    let body = br#"{"source": "piflow.test"}"#.to_vec();
    let a = send(&c, "POST", &url, &signed(&body, now()), body).await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(a.json()["error"], "event-no-id");
    // An event no rule matches: recorded, nothing started.
    let a = post_event(
        &c,
        &s,
        &json!({"id": "ev-unmatched", "source": "elsewhere"}),
    )
    .await;
    assert_eq!(a.status, 202, "{}", a.text);
    assert_eq!(a.json()["status"], "unmatched");

    // Unknown route, wrong method: 4xx with a reason.
    let a = get(&c, &s, "/nope").await;
    assert_eq!(a.status, 404, "{}", a.text);
    assert!(
        a.json()["reason"]
            .as_str()
            .unwrap()
            .contains("the routes are")
    );
    let a = get(&c, &s, "/events").await;
    assert_eq!(a.status, 405, "{}", a.text);
    assert_eq!(a.json()["error"], "method-not-allowed");
    let a = get(&c, &s, "/executions/tiny:nope").await;
    assert_eq!(a.status, 404, "{}", a.text);
    // Webhooks whose secret is not configured refuse.
    let a = send(
        &c,
        "POST",
        &format!("{}/webhooks/github", s.url),
        &[],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(a.status, 503, "{}", a.text);
    assert!(
        a.json()["reason"]
            .as_str()
            .unwrap()
            .contains("PIFLOW_GITHUB_SECRET")
    );

    // /executions filters; /metrics counts.
    let a = get(&c, &s, "/executions?status=succeeded&workflow=tiny").await;
    assert_eq!(a.status, 200);
    assert!(a.json().as_array().unwrap().len() >= 2);
    let m = get(&c, &s, "/metrics").await;
    assert_eq!(m.status, 200);
    for want in [
        "piflow_serve_events_total{outcome=\"accepted\"} 3",
        "piflow_serve_events_total{outcome=\"duplicate\"} 10",
        "piflow_serve_events_total{outcome=\"unauthorized\"} 5",
        "piflow_serve_requests_total{route=\"/events\",status=\"202\"}",
        "piflow_serve_executions_started_total 3",
    ] {
        assert!(m.text.contains(want), "no {want:?} in\n{}", m.text);
    }
    let (code, log) = s.terminate();
    assert_eq!(code, 0, "{log}");
}

/// Without any event secret, POST /events refuses instead of accepting
/// unauthenticated input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_without_a_secret_are_refused() {
    let dir = site();
    let s = Server::start(dir.path(), &[], &[]);
    let c = http();
    let a = post_event(&c, &s, &tiny_event("ev-1")).await;
    assert_eq!(a.status, 503, "{}", a.text);
    assert!(
        a.json()["reason"]
            .as_str()
            .unwrap()
            .contains("PIFLOW_API_KEY")
    );
    assert!(executions(&c, &s).await.is_empty());
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .env("GIT_AUTHOR_NAME", "Ada")
        .env("GIT_AUTHOR_EMAIL", "ada@example.com")
        .env("GIT_COMMITTER_NAME", "Ada")
        .env("GIT_COMMITTER_EMAIL", "ada@example.com")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_and_gitlab_tag_pushes_start_the_tag_workflow() {
    let dir = site();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    std::fs::write(repo.join("README"), "x").unwrap();
    git(&repo, &["add", "README"]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    git(
        &repo,
        &[
            "tag",
            "-a",
            "dev_us-east-1/research/1.0",
            "-m",
            "release 1.0",
        ],
    );
    git(&repo, &["tag", "qa_us-east-1/research/2.0"]);
    let commit = git(&repo, &["rev-parse", "HEAD"]);
    let s = Server::start(
        dir.path(),
        &["--repo", repo.to_str().unwrap()],
        &[
            ("PIFLOW_GITHUB_SECRET", GITHUB),
            ("PIFLOW_GITLAB_TOKEN", GITLAB),
        ],
    );
    let c = http();
    let gh_url = format!("{}/webhooks/github", s.url);
    let push = |tag: &str| {
        serde_json::to_vec(&json!({
            "ref": format!("refs/tags/{tag}"), "before": "0000000000000000000000000000000000000000",
            "after": commit, "created": true, "deleted": false, "pusher": {"name": "ada"}
        }))
        .unwrap()
    };
    // Wrongly signed and unsigned: 401, nothing started.
    let body = push("dev_us-east-1/research/1.0");
    let a = send(
        &c,
        "POST",
        &gh_url,
        &[
            ("x-github-event", "push".into()),
            ("x-hub-signature-256", gh_sig(b"other")),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(a.status, 401, "{}", a.text);
    let a = send(
        &c,
        "POST",
        &gh_url,
        &[("x-github-event", "push".into())],
        body.clone(),
    )
    .await;
    assert_eq!(a.status, 401, "{}", a.text);
    assert!(executions(&c, &s).await.is_empty());
    // Signed: the tag's workflow, as `piflow trigger tag` names it.
    let a = send(
        &c,
        "POST",
        &gh_url,
        &[
            ("x-github-event", "push".into()),
            ("x-hub-signature-256", gh_sig(&body)),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(a.status, 202, "{}", a.text);
    let id = format!(
        "tiny:{}",
        piflow_triggers::tags::execution_name("dev_us-east-1/research/1.0")
    );
    assert_eq!(a.json()["execution"], id);
    let r = wait_status(&c, &s, &id, "SUCCEEDED").await;
    assert_eq!(
        r["input"],
        json!({"environment": "dev", "version": "1.0", "commit": commit})
    );
    assert_eq!(r["trigger"], "git-tag:dev_us-east-1/research/1.0");
    // A ping, a branch push: nothing to start.
    let ping = b"{\"zen\": \"hi\"}".to_vec();
    let a = send(
        &c,
        "POST",
        &gh_url,
        &[
            ("x-github-event", "ping".into()),
            ("x-hub-signature-256", gh_sig(&ping)),
        ],
        ping,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let branch =
        serde_json::to_vec(&json!({"ref": "refs/heads/main", "created": false, "after": commit}))
            .unwrap();
    let a = send(
        &c,
        "POST",
        &gh_url,
        &[
            ("x-github-event", "push".into()),
            ("x-hub-signature-256", gh_sig(&branch)),
        ],
        branch,
    )
    .await;
    assert_eq!(a.status, 202, "{}", a.text);
    assert_eq!(a.json()["status"], "ignored");

    // GitLab: the token, constant-time compared.
    let gl_url = format!("{}/webhooks/gitlab", s.url);
    let gl = |tag: &str| {
        serde_json::to_vec(&json!({
            "object_kind": "tag_push", "ref": format!("refs/tags/{tag}"),
            "before": "0000000000000000000000000000000000000000", "after": commit,
            "user_username": "ada"
        }))
        .unwrap()
    };
    let a = send(
        &c,
        "POST",
        &gl_url,
        &[("x-gitlab-token", "wrong".into())],
        gl("qa_us-east-1/research/2.0"),
    )
    .await;
    assert_eq!(a.status, 401, "{}", a.text);
    let a = send(
        &c,
        "POST",
        &gl_url,
        &[("x-gitlab-token", GITLAB.into())],
        gl("qa_us-east-1/research/2.0"),
    )
    .await;
    assert_eq!(a.status, 202, "{}", a.text);
    let qa = a.json()["execution"].as_str().unwrap().to_string();
    wait_status(&c, &s, &qa, "SUCCEEDED").await;
    // The GitHub tag again, through GitLab: the same execution, nothing new.
    let a = send(
        &c,
        "POST",
        &gl_url,
        &[("x-gitlab-token", GITLAB.into())],
        gl("dev_us-east-1/research/1.0"),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["status"], "duplicate");
    // A tag no rule accepts: 422, the reason.
    git(&repo, &["tag", "nightly"]);
    let a = send(
        &c,
        "POST",
        &gl_url,
        &[("x-gitlab-token", GITLAB.into())],
        gl("nightly"),
    )
    .await;
    assert_eq!(a.status, 422, "{}", a.text);
    assert_eq!(a.json()["error"], "no-rule");
    assert_eq!(executions(&c, &s).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_leaves_executions_resumable_and_the_next_server_resumes_them() {
    let dir = site();
    let secrets = [("PIFLOW_HMAC_SECRET", SECRET)];
    let s = Server::start(dir.path(), &[], &secrets);
    let c = http();
    let event = json!({"id": "ev-slow", "source": "piflow.test", "detail-type": "slow", "time": "2026-11-22T05:00:00Z", "detail": {"n": 7}});
    let a = post_event(&c, &s, &event).await;
    assert_eq!(a.status, 202, "{}", a.text);
    let id = format!("slow:{}", execution_name("slow-job", "ev-slow"));
    // Wait until the Wait state is entered (started, Pass entered and
    // exited, Wait entered: committed).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = get(&c, &s, &format!("/executions/{id}")).await;
        if r.status == 200 && r.json()["history_events"].as_u64().unwrap_or(0) >= 4 {
            assert_eq!(r.json()["status"], "RUNNING");
            assert_eq!(r.json()["env"], "qa");
            break;
        }
        assert!(Instant::now() < deadline, "{} {}", r.status, r.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, log) = s.terminate();
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("1 execution(s) left RUNNING and resumable"),
        "{log}"
    );
    // Between the two servers: RUNNING, held by no one.
    let out = Command::new(bin())
        .current_dir(dir.path())
        .args(["executions", "--format", "json", "--store"])
        .arg(dir.path().join("store.redb"))
        .output()
        .unwrap();
    let list: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let rec = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["execution"] == id)
        .cloned()
        .unwrap();
    assert_eq!(rec["status"], "RUNNING", "{rec}");

    // The next server resumes it where it stopped, and it ends.
    let s = Server::start(dir.path(), &[], &secrets);
    let r = wait_status(&c, &s, &id, "SUCCEEDED").await;
    assert_eq!(r["input"], json!({"n": 7, "environment": "qa"}));
    assert!(
        s.log().contains("resuming 1 orphaned execution(s)"),
        "{}",
        s.log()
    );
    // The redelivered event starts nothing new.
    let a = post_event(&c, &s, &event).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(executions(&c, &s).await.len(), 1);
}

#[test]
fn serve_refuses_a_config_whose_workflow_is_missing() {
    let dir = site();
    std::fs::write(
        dir.path().join("piflow.yaml"),
        "events:\n  - name: a\n    pattern: {source: [x]}\n    workflow: missing\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--store"])
        .arg(dir.path().join("store.redb"))
        .env_remove("PIFLOW_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[no-workflow]") && err.contains("\"missing\""),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// Raw HTTP/1.1 on a socket: requests hyper's client would refuse to send,
// and connections that misbehave.

/// An answer read off a socket.
struct Raw {
    status: u16,
    head: String,
    body: String,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}\n\n{}", self.head, self.body))
    }

    /// `{"error": CODE, "reason": TEXT}`, as application/json.
    fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}\n\n{}", self.head, self.body);
        assert!(
            self.head
                .to_ascii_lowercase()
                .contains("\r\ncontent-type: application/json"),
            "{}",
            self.head
        );
        let v = self.json();
        assert_eq!(v["error"], code, "{v}");
        assert!(v["reason"].as_str().is_some_and(|r| !r.is_empty()), "{v}");
        assert_eq!(v.as_object().map(|o| o.len()), Some(2), "{v}");
    }
}

fn addr(s: &Server) -> String {
    s.url.trim_start_matches("http://").to_string()
}

/// Parse what a socket returned: one answer.
fn parse_raw(bytes: &[u8]) -> Raw {
    let text = String::from_utf8_lossy(bytes).to_string();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no answer: {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status: {head}"));
    Raw {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// Send `request` as it is on a new connection; read until the server
/// closes it.
fn raw(s: &Server, request: &[u8]) -> Raw {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr(s)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(request).unwrap();
    let mut out = Vec::new();
    // A reset after the answer still leaves the answer in `out`.
    let _ = c.read_to_end(&mut out);
    parse_raw(&out)
}

fn get_raw(path: &str, extra: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nhost: piflow\r\nx-piflow-api-key: {API_KEY}\r\n{extra}connection: close\r\n\r\n"
    )
    .into_bytes()
}

/// Every error answer is `{"error", "reason"}` JSON: the routes', axum's
/// extractors', the body limit's, and hyper's own answers to heads it
/// cannot parse.
#[test]
fn every_error_answer_is_json() {
    let dir = site();
    let s = Server::start(dir.path(), &[], &[("PIFLOW_API_KEY", API_KEY)]);
    // A query string that does not parse (axum's Query rejection).
    raw(&s, &get_raw("/executions?limit=abc", "")).assert_error(400, "bad-query");
    let a = raw(&s, &get_raw("/executions?limit=abc", ""));
    assert!(
        a.json()["reason"].as_str().unwrap().contains("limit"),
        "{}",
        a.body
    );
    // Routes.
    raw(&s, &get_raw("/nope", "")).assert_error(404, "no-route");
    raw(
        &s,
        b"DELETE /events HTTP/1.1\r\nhost: piflow\r\nconnection: close\r\n\r\n",
    )
    .assert_error(405, "method-not-allowed");
    // A body over the limit, by Content-Length (the limit layer answers
    // before the body is read).
    let big = raw(
        &s,
        b"POST /events HTTP/1.1\r\nhost: piflow\r\ncontent-length: 300000\r\n\r\n",
    );
    big.assert_error(413, "body-too-large");
    // The body was left unread: the connection is not reused.
    assert!(
        big.head
            .to_ascii_lowercase()
            .contains("\r\nconnection: close"),
        "{}",
        big.head
    );
    // A request target over piflow's limit (8 KiB), and one over hyper's
    // (65,534 bytes: hyper answers, piflow's JSON replaces its empty body).
    let long = "x".repeat(9 * 1024);
    raw(&s, &get_raw(&format!("/executions?w={long}"), "")).assert_error(414, "uri-too-long");
    let longer = "y".repeat(70 * 1024);
    raw(&s, &get_raw(&format!("/{longer}"), "")).assert_error(414, "uri-too-long");
    // Header fields over piflow's limit (16 KiB), and more than hyper's 100
    // fields.
    let big = format!("x-big: {}\r\n", "z".repeat(20 * 1024));
    raw(&s, &get_raw("/healthz", &big)).assert_error(431, "headers-too-large");
    let many: String = (0..150).map(|i| format!("x-h{i}: v\r\n")).collect();
    raw(&s, &get_raw("/healthz", &many)).assert_error(431, "headers-too-large");
    // A head hyper cannot parse.
    raw(
        &s,
        b"GET /healthz HTTP/1.1\r\nhost: piflow\r\nno colon here\r\n\r\n",
    )
    .assert_error(400, "bad-request");
    // Answers that are not errors are untouched.
    let ok = raw(&s, &get_raw("/healthz", ""));
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["status"], "ok");
}

/// Executions hold inputs and outputs: reading them takes the read key or
/// the API key; the read key posts nothing; /healthz and /metrics stay open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_need_a_key_and_the_read_key_only_reads() {
    let dir = site();
    let s = Server::start(dir.path(), &[], &[("PIFLOW_API_KEY", API_KEY)]);
    let c = http();
    let url = format!("{}/events", s.url);
    let post = |id: &str, key: &str| {
        let body = serde_json::to_vec(&tiny_event(id)).unwrap();
        let c = c.clone();
        let (url, key) = (url.clone(), key.to_string());
        async move { send(&c, "POST", &url, &[("x-piflow-api-key", key)], body).await }
    };
    let mut ids = Vec::new();
    for n in 1..=3 {
        let ev = format!("ev-read-{n}");
        let a = post(&ev, API_KEY).await;
        assert_eq!(a.status, 202, "{}", a.text);
        let id = format!("tiny:{}", execution_name("tiny-deploy", &ev));
        wait_status(&c, &s, &id, "SUCCEEDED").await;
        ids.push(id);
    }
    // The read key cannot post events: 403, nothing started.
    let a = post("ev-read-only", READ_KEY).await;
    assert_eq!(a.status, 403, "{}", a.text);
    assert_eq!(a.json()["error"], "read-only-key");

    let list = format!("{}/executions", s.url);
    let one = format!("{}/executions/{}", s.url, ids[0]);
    for target in [&list, &one] {
        let a = send(&c, "GET", target, &[], Vec::new()).await;
        assert_eq!(a.status, 401, "{target}: {}", a.text);
        assert_eq!(a.json()["error"], "unauthorized");
        assert!(
            a.json()["reason"]
                .as_str()
                .unwrap()
                .contains("PIFLOW_READ_KEY")
        );
        let a = send(
            &c,
            "GET",
            target,
            &[("x-piflow-api-key", "nope".into())],
            Vec::new(),
        )
        .await;
        assert_eq!(a.status, 401, "{target}: {}", a.text);
        for key in [READ_KEY, API_KEY] {
            let a = send(
                &c,
                "GET",
                target,
                &[("x-piflow-api-key", key.into())],
                Vec::new(),
            )
            .await;
            assert_eq!(a.status, 200, "{target} with {key}: {}", a.text);
        }
    }
    let all = executions(&c, &s).await;
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(
        !all.iter()
            .any(|e| e["name"] == execution_name("tiny-deploy", "ev-read-only"))
    );
    // limit and status go to the store's query: the newest first.
    let a = get(&c, &s, "/executions?limit=2").await;
    let got: Vec<String> = a
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, vec![ids[2].clone(), ids[1].clone()], "{}", a.text);
    let a = get(&c, &s, "/executions?status=succeeded&limit=1").await;
    assert_eq!(a.json().as_array().unwrap().len(), 1, "{}", a.text);
    assert_eq!(a.json()[0]["id"], ids[2]);
    let a = get(&c, &s, "/executions?status=running").await;
    assert_eq!(a.json(), json!([]), "{}", a.text);
    let a = get(&c, &s, "/executions?workflow=slow").await;
    assert_eq!(a.json(), json!([]), "{}", a.text);
    // Open: health and metrics.
    for path in ["/healthz", "/metrics"] {
        let a = send(&c, "GET", &format!("{}{path}", s.url), &[], Vec::new()).await;
        assert_eq!(a.status, 200, "{path}: {}", a.text);
    }
    drop(s);

    // No key configured: reads are off, as POST /events is.
    let s = Server::start(dir.path(), &[], &[("PIFLOW_READ_KEY", "")]);
    let a = get(&c, &s, "/executions").await;
    assert_eq!(a.status, 503, "{}", a.text);
    assert_eq!(a.json()["error"], "not-configured");
    assert!(
        a.json()["reason"]
            .as_str()
            .unwrap()
            .contains("PIFLOW_READ_KEY")
    );
}

/// The store's directory and file, and what a run writes, are their
/// owner's only.
#[cfg(unix)]
#[test]
fn store_files_are_their_owners_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = site();
    // `piflow store init` with the default store: .piflow/piflow.redb.
    let out = Command::new(bin())
        .current_dir(dir.path())
        .args(["store", "init"])
        .env_remove("PIFLOW_STORE")
        .env_remove("PIFLOW_HOME")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&dir.path().join(".piflow")), 0o700);
    assert_eq!(mode(&dir.path().join(".piflow/piflow.redb")), 0o600);
    // A run on a store in directories that do not exist yet.
    let store = dir.path().join("state/deep/runs.redb");
    let out = Command::new(bin())
        .current_dir(dir.path())
        .args(["run", "tiny", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&dir.path().join("state")), 0o700);
    assert_eq!(mode(&dir.path().join("state/deep")), 0o700);
    assert_eq!(mode(&store), 0o600);
}

/// Read one answer off a keep-alive connection (by its content-length).
fn read_answer(c: &mut std::net::TcpStream) -> Raw {
    use std::io::Read;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return parse_raw(&buf[..end + 4 + len]);
            }
        }
        let n = c.read(&mut chunk).expect("the answer arrives");
        assert!(
            n > 0,
            "closed before answering: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Wait for the server to close `c`; how long that took.
fn closed_after(c: &mut std::net::TcpStream) -> Duration {
    use std::io::Read;
    let t = Instant::now();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut rest = Vec::new();
    match c.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest)),
        Err(e) => assert!(
            e.kind() == std::io::ErrorKind::ConnectionReset,
            "not closed within 10 s: {e}"
        ),
    }
    t.elapsed()
}

/// A head that never ends, no bytes at all, a body that never ends, an
/// idle keep-alive connection: each is closed after its timeout.
#[test]
fn slow_connections_are_closed_after_their_timeouts() {
    use std::io::Write;
    let dir = site();
    let s = Server::start(
        dir.path(),
        &[
            "--header-timeout",
            "1",
            "--idle-timeout",
            "2.5",
            "--body-timeout",
            "1",
        ],
        &[("PIFLOW_API_KEY", API_KEY)],
    );
    let connect = || std::net::TcpStream::connect(addr(&s)).unwrap();
    // No bytes at all.
    let mut c = connect();
    let t = closed_after(&mut c);
    assert!(
        t >= Duration::from_millis(800) && t < Duration::from_secs(4),
        "{t:?}"
    );
    // Partial headers.
    let mut c = connect();
    c.write_all(b"GET /healthz HTTP/1.1\r\nhost: piflow\r\n")
        .unwrap();
    let t = closed_after(&mut c);
    assert!(
        t >= Duration::from_millis(800) && t < Duration::from_secs(4),
        "{t:?}"
    );
    // A body that never ends: 408 with the JSON error, then closed.
    let mut c = connect();
    c.write_all(
        format!(
            "POST /events HTTP/1.1\r\nhost: piflow\r\nx-piflow-api-key: {API_KEY}\r\ncontent-length: 100\r\n\r\n{{\"id\": "
        )
        .as_bytes(),
    )
    .unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t = Instant::now();
    let a = read_answer(&mut c);
    assert!(
        t.elapsed() >= Duration::from_millis(800),
        "{:?}",
        t.elapsed()
    );
    a.assert_error(408, "body-timeout");
    closed_after(&mut c);
    // Idle between two requests: the idle timeout (2.5 s), not the header
    // timeout (1 s); and a request answered in time keeps it open.
    let mut c = connect();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for _ in 0..2 {
        c.write_all(b"GET /healthz HTTP/1.1\r\nhost: piflow\r\n\r\n")
            .unwrap();
        assert_eq!(read_answer(&mut c).status, 200);
        std::thread::sleep(Duration::from_millis(1500));
    }
    let t = closed_after(&mut c);
    assert!(
        t >= Duration::from_millis(500) && t < Duration::from_secs(4),
        "{t:?}"
    );
}

/// Over --max-connections, a new connection waits in the backlog (not
/// reset) and is served when another closes; a burst of 500 connections
/// against a cap of 50 is queued and every one answered.
#[test]
fn the_connection_cap_holds_and_a_burst_queues() {
    use std::io::{Read, Write};
    let dir = site();
    let s = Server::start(
        dir.path(),
        &["--max-connections", "2", "--header-timeout", "30"],
        &[],
    );
    let connect = || std::net::TcpStream::connect(addr(&s)).unwrap();
    let a = connect();
    let b = connect();
    std::thread::sleep(Duration::from_millis(300));
    let mut c = connect();
    c.write_all(b"GET /healthz HTTP/1.1\r\nhost: piflow\r\nconnection: close\r\n\r\n")
        .unwrap();
    c.set_read_timeout(Some(Duration::from_millis(1000)))
        .unwrap();
    let mut buf = [0u8; 64];
    match c.read(&mut buf) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!("the third connection was served or closed over the cap: {other:?}"),
    }
    drop(a);
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).unwrap();
    assert_eq!(parse_raw(&out).status, 200);
    drop(b);
    drop(s);

    let s = Server::start(dir.path(), &["--max-connections", "50"], &[]);
    let target = addr(&s);
    let handles: Vec<_> = (0..500)
        .map(|_| {
            let target = target.clone();
            std::thread::spawn(move || {
                let mut c = std::net::TcpStream::connect(&target)?;
                c.set_read_timeout(Some(Duration::from_secs(30)))?;
                c.write_all(b"GET /healthz HTTP/1.1\r\nhost: piflow\r\nconnection: close\r\n\r\n")?;
                let mut out = Vec::new();
                c.read_to_end(&mut out)?;
                Ok::<_, std::io::Error>(parse_raw(&out).status)
            })
        })
        .collect();
    let answers: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let bad: Vec<_> = answers.iter().filter(|a| !matches!(a, Ok(200))).collect();
    assert!(
        bad.is_empty(),
        "{} of 500 failed: {:?}",
        bad.len(),
        bad.iter().take(5).collect::<Vec<_>>()
    );
}

use common::nested;

/// Events and webhook payloads of every depth around serde_json's limit of
/// 128, on both stores: each is accepted or refused with a JSON error, and
/// afterwards the store still reads: `GET /executions` lists every
/// accepted execution, each reads back by id, `/healthz` is 200, and a
/// restarted server starts (its start-up recovery reads every record).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_events_and_webhook_payloads_never_break_the_store() {
    // (name, the AWS environment, the --store spec)
    type Store = (&'static str, Vec<(String, String)>, Option<String>);
    let mut stores: Vec<Store> = vec![("embedded", vec![], None)];
    if let Some(moto) = common::moto::moto() {
        stores.push((
            "dynamodb",
            moto.env_vars(),
            Some(format!(
                "dynamodb://{}",
                common::moto::unique("piflow-serve-deep")
            )),
        ));
    }
    for (name, env, store) in stores {
        let dir = site();
        let mut secrets: Vec<(&str, &str)> = vec![
            ("PIFLOW_HMAC_SECRET", SECRET),
            ("PIFLOW_API_KEY", API_KEY),
            ("PIFLOW_GITHUB_SECRET", GITHUB),
        ];
        for (k, v) in &env {
            secrets.push((k.as_str(), v.as_str()));
        }
        let mut extra: Vec<&str> = Vec::new();
        if let Some(spec) = &store {
            extra.extend(["--store", spec.as_str()]);
            let mut init = Command::new(bin());
            init.args(["store", "init", "--store", spec.as_str()]);
            for (k, v) in &env {
                init.env(k, v);
            }
            let out = init.output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let s = Server::start(dir.path(), &extra, &secrets);
        let c = http();
        let mut accepted = Vec::new();
        for depth in 118..=132 {
            let mut event = tiny_event(&format!("deep-{depth}"));
            event["detail"] = json!({"d": nested(depth)});
            // serde_json writes any depth; the server reads at most 128.
            let a = post_event(&c, &s, &event).await;
            match a.status {
                202 => {
                    let v: Value = piflow_store::read_json(a.text.as_bytes()).unwrap();
                    accepted.push(v["executions"][0].as_str().unwrap().to_string());
                }
                400 => {
                    let v = a.json();
                    assert_eq!(v["error"], "malformed-json", "{name}: depth {depth}: {v}");
                    assert!(
                        v["reason"].as_str().unwrap().contains("recursion limit"),
                        "{name}: depth {depth}: {v}"
                    );
                }
                other => panic!("{name}: depth {depth}: {other} {}", a.text),
            }
            let body =
                serde_json::to_vec(&json!({"ref": "refs/heads/main", "x": nested(depth)})).unwrap();
            let sig = gh_sig(&body);
            let w = send(
                &c,
                "POST",
                &format!("{}/webhooks/github", s.url),
                &[
                    ("x-github-event", "push".into()),
                    ("x-hub-signature-256", sig),
                ],
                body,
            )
            .await;
            assert!(
                w.status == 202 || (w.status == 400 && w.json()["error"] == "malformed-json"),
                "{name}: webhook depth {depth}: {} {}",
                w.status,
                w.text
            );
        }
        assert!(accepted.len() >= 8, "{name}: {accepted:?}");
        for id in &accepted {
            // Each execution ran and reads back, deeper than it was sent.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let a = get(&c, &s, &format!("/executions/{id}")).await;
                // 404 until the background start has recorded it.
                assert!(
                    a.status == 200 || a.status == 404,
                    "{name}: {id}: {}",
                    &a.text[..a.text.len().min(300)]
                );
                let v: Value = piflow_store::read_json(a.text.as_bytes()).unwrap();
                if v["status"] == "SUCCEEDED" {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{name}: {id}: {}\nlog: {}",
                    &a.text[..a.text.len().min(300)],
                    s.log()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let list = get(&c, &s, "/executions").await;
        assert_eq!(
            list.status,
            200,
            "{name}: {}",
            &list.text[..list.text.len().min(300)]
        );
        let listed: Vec<Value> = piflow_store::read_json(list.text.as_bytes()).unwrap();
        for id in &accepted {
            assert!(
                listed
                    .iter()
                    .any(|e| e["id"] == id.as_str() || e["execution"] == id.as_str()),
                "{name}: {id} listed"
            );
        }
        let health = get(&c, &s, "/healthz").await;
        assert_eq!(health.status, 200, "{name}: {}", health.text);
        // A new server reads every record at start-up (recovery) and answers.
        drop(s);
        let again = Server::start(dir.path(), &extra, &secrets);
        let health = get(&c, &again, "/healthz").await;
        assert_eq!(health.status, 200, "{name}: {}", health.text);
        let list = get(&c, &again, "/executions").await;
        assert_eq!(list.status, 200, "{name}");
    }
}

/// `X-Hub-Signature-256` of a GitHub webhook body, signed with [`GITHUB`].
fn gh_sig(body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(GITHUB.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// An AWS Health issue during a release, as it reaches piflow in AWS: the
/// issue opens in AWS Health (the emulator's DescribeEvents) and
/// EventBridge posts its event to `piflow serve`. The shipped rule starts
/// `hold`, which records the decision with the event; the release in
/// flight sees the issue through its gates, stops its deployment with
/// `StopServiceDeployment` ROLLBACK and returns every service; a new
/// release waits at its health gate, changing nothing, while the issue is
/// open. The shipped piflow.yaml, the seeded estate with its reference
/// names, a moto server of the test's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_health_event_holds_releases_and_the_release_in_flight_rolls_back() {
    let Some(moto) = common::moto::own() else {
        return;
    };
    let root = repo_root();
    let seeded = common::product::estate_py(&moto, &["seed"]);
    assert!(
        seeded.status.success(),
        "{}",
        String::from_utf8_lossy(&seeded.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.redb");
    let path = format!(
        "{}:{}",
        root.join(".emu/venv/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut env: Vec<(String, String)> = moto.env_vars();
    env.push(("PATH".into(), path));
    env.push(("PIFLOW_POLL_SECONDS".into(), "0.3".into()));
    env.push(("AWS_EC2_METADATA_DISABLED".into(), "true".into()));
    let mut secrets: Vec<(&str, &str)> =
        env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    secrets.push(("PIFLOW_API_KEY", "the-api-key"));
    let config = root.join("piflow.yaml");
    let s = Server::start(
        dir.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
        ],
        &secrets,
    );
    let run = |name: &str| {
        let mut c = Command::new(bin());
        c.current_dir(&root)
            .args([
                "run",
                "upgrade",
                "--input",
                "@integration/inputs/upgrade-dev.json",
            ])
            .args([
                "--name",
                name,
                "--format",
                "json",
                "--store",
                store.to_str().unwrap(),
            ])
            .env_remove("PIFLOW_CONFIG")
            .env_remove("PIFLOW_STORE")
            .env_remove("PIFLOW_HEALTH_ENDPOINTS")
            .env_remove("AWS_PROFILE")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in &env {
            c.env(k, v);
        }
        c.spawn().expect("piflow run starts")
    };
    let ecs = aws_sdk_ecs::Client::from_conf(
        aws_sdk_ecs::config::Builder::new()
            .behavior_version(aws_sdk_ecs::config::BehaviorVersion::latest())
            .region(aws_sdk_ecs::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_ecs::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .endpoint_url(moto.endpoint())
            .http_client(piflow_aws_config::http_client())
            .build(),
    );
    let in_progress = |ecs: aws_sdk_ecs::Client| async move {
        ecs.list_service_deployments()
            .cluster("product")
            .service("dashboard")
            .status(aws_sdk_ecs::types::ServiceDeploymentStatus::InProgress)
            .send()
            .await
            .map(|o| !o.service_deployments().is_empty())
            .unwrap_or(false)
    };

    let first = run("first");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !in_progress(ecs.clone()).await {
        assert!(
            Instant::now() < deadline,
            "dashboard's deployment never started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The issue opens in AWS Health, and EventBridge delivers it.
    let issue = health_issue();
    let open = json!({"events": [{
        "arn": issue["detail"]["eventArn"], "service": "ECS",
        "eventTypeCode": "AWS_ECS_OPERATIONAL_ISSUE", "eventTypeCategory": "issue",
        "region": "us-east-1", "startTime": "2026-12-04T09:00:00Z", "statusCode": "open",
    }]});
    common::product::post(&moto, "/piflow-emulator/health/events", &open.to_string());
    let c = http();
    let delivered = send(
        &c,
        "POST",
        &format!("{}/events", s.url),
        &[
            ("x-piflow-api-key", "the-api-key".into()),
            ("content-type", "application/json".into()),
        ],
        serde_json::to_vec(&issue).unwrap(),
    )
    .await;
    assert_eq!(delivered.status, 202, "{}", delivered.text);
    let hold = delivered.json()["executions"][0]
        .as_str()
        .expect("the hold execution")
        .to_string();
    assert!(hold.starts_with("hold:"), "{hold}");

    let out = tokio::task::spawn_blocking(move || first.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let result: Value = serde_json::from_slice(&out.stdout).expect("the first run's result");
    assert_eq!(result["error"], "Upgrade.RolledBack", "{result:#}");
    assert!(
        result["cause"]
            .as_str()
            .unwrap_or_default()
            .contains("AWS_ECS_OPERATIONAL_ISSUE"),
        "{result:#}"
    );
    wait_status(&c, &s, &hold, "SUCCEEDED").await;
    let audit = |env: &str| -> Vec<Value> {
        let out = Command::new(bin())
            .args([
                "audit",
                "--env",
                env,
                "--format",
                "json",
                "--store",
                store.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout)
            .unwrap()
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let records = audit("dev");
    let held = records
        .iter()
        .find(|r| r["action"] == "release.hold")
        .expect("the hold is recorded");
    assert_eq!(held["after"]["trigger"]["event"], issue["id"]);
    assert!(
        records.iter().any(|r| r["action"] == "deploy.stop"),
        "StopServiceDeployment was called"
    );
    let release = records
        .iter()
        .rfind(|r| r["action"] == "release.recorded")
        .expect("a release record");
    assert_eq!(release["result"], "rolled-back", "{release:#}");
    let shown = common::product::estate_py(&moto, &["show"]);
    let table = String::from_utf8_lossy(&shown.stdout);
    assert!(
        !table.contains(":1.0"),
        "every service is back on 0.9:\n{table}"
    );

    // While the issue is open a new release waits at its health gate.
    let mut second = run("second");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let closed = audit("dev").iter().any(|r| {
            r["action"] == "decision.health-gate"
                && r["result"] == "closed"
                && r["execution"]
                    .as_str()
                    .is_some_and(|e| e.contains("second"))
        });
        if closed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second release's gate never closed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        second.try_wait().unwrap().is_none(),
        "the second release waits"
    );
    let deployments = ecs
        .list_service_deployments()
        .cluster("product")
        .service("dashboard")
        .send()
        .await
        .unwrap();
    assert_eq!(
        deployments.service_deployments().len(),
        2,
        "the seed's and the first release's: the second deployed nothing"
    );
    let _ = second.kill();
    let _ = second.wait();
}
