//! `piflow:health-gate` against AWS Health served by wiremock (no emulator
//! serves AWS Health). aws-sdk-health 1.x speaks Smithy RPC v2 CBOR:
//! `POST /service/AWSHealth_20160804/operation/DescribeEvents` with
//! `smithy-protocol: rpc-v2-cbor` and a CBOR body, so the mocks decode the
//! request's CBOR to check the filter and answer in CBOR.
//!
//! Every test passes its endpoints (one wiremock server per Health region)
//! and its retry settings to the handler explicitly; the only environment
//! variables (static test credentials, no IMDS) are set once, identically,
//! before any test reads them.

use crate::common;

use std::sync::{Arc, Once};
use std::time::Duration;

use futures::future::BoxFuture;
use piflow_asl::{LoadOptions, StateMachine, validate_value};
use piflow_engine::{
    Engine, ExecutionRequest, Failure, Status, TaskHandler, TaskRegistry, TaskRequest,
    VirtualClock, clock,
};
use piflow_steps::AuditHandle;
use piflow_steps::health::HealthGate;
use piflow_store::Store;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request};

use common::health::{OP_PATH, body_json, cbor, cbor_to_json, ecs_issue, events};

fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: runs once; the values are the ones the moto helper
        // (`common::moto`) sets in this same test binary, so whichever of
        // the two runs first, no test ever sees another value. The gate's
        // endpoints are given to it (`with_endpoints`), so AWS_ENDPOINT_URL
        // (moto's, when it is set) is never used here.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
            std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
            std::env::set_var("AWS_REGION", "us-east-1");
        }
    });
}

/// Matches a DescribeEvents request whose filter is exactly the gate's:
/// these regions and services, issues only, open only; and the page asked
/// for (`nextToken`, or none).
struct FilterIs {
    regions: Vec<&'static str>,
    services: Vec<&'static str>,
    next_token: Option<&'static str>,
}

impl wiremock::Match for FilterIs {
    fn matches(&self, req: &Request) -> bool {
        let Ok(v) = ciborium::from_reader::<ciborium::Value, _>(&req.body[..]) else {
            return false;
        };
        let body = cbor_to_json(&v);
        let f = &body["filter"];
        f["regions"] == json!(self.regions)
            && f["services"] == json!(self.services)
            && f["eventTypeCategories"] == json!(["issue"])
            && f["eventStatusCodes"] == json!(["open"])
            && body.get("nextToken").and_then(Value::as_str) == self.next_token
    }
}

fn describe_events() -> wiremock::MockBuilder {
    Mock::given(method("POST"))
        .and(path(OP_PATH))
        .and(header("smithy-protocol", "rpc-v2-cbor"))
}

fn filter(regions: Vec<&'static str>, services: Vec<&'static str>) -> FilterIs {
    FilterIs {
        regions,
        services,
        next_token: None,
    }
}

// ---- the handler ----

struct Servers {
    east1: MockServer,
    east2: MockServer,
}

async fn servers() -> Servers {
    Servers {
        east1: MockServer::start().await,
        east2: MockServer::start().await,
    }
}

async fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = piflow_store::open(Some(
        dir.path().join("store.redb").to_str().expect("utf-8 path"),
    ))
    .await
    .expect("store opens");
    (dir, s)
}

fn gate(store: Arc<dyn Store>, s: &Servers) -> HealthGate {
    HealthGate::new(AuditHandle::ready(store))
        .with_endpoints(vec![
            ("us-east-1".into(), s.east1.uri()),
            ("us-east-2".into(), s.east2.uri()),
        ])
        .with_retry(
            aws_sdk_health::config::retry::RetryConfig::standard()
                .with_max_attempts(2)
                .with_initial_backoff(Duration::from_millis(5)),
        )
}

fn request(input: Value) -> TaskRequest {
    common::steps::step_request(
        "arn:aws:states:us-east-1:000000000000:execution:upgrade:e1",
        "HealthGate",
        "piflow:health-gate",
        &format!("tok-{}", uuid::Uuid::new_v4()),
        input,
    )
}

async fn decisions(store: &Arc<dyn Store>, env: &str) -> Vec<(String, Value)> {
    store
        .audit(Some(env), None)
        .await
        .expect("audit reads")
        .into_iter()
        .filter(|r| r.entry.action == "decision.health-gate")
        .map(|r| (r.entry.result.clone(), r.entry.after.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_open_issue_opens_the_gate_and_sends_the_filter() {
    setup();
    let s = servers().await;
    describe_events()
        .and(header("content-type", "application/cbor"))
        .and(filter(vec!["eu-west-1"], vec!["ECS", "EC2", "RDS"]))
        .respond_with(events(vec![], None))
        .expect(1)
        .mount(&s.east1)
        .await;
    let (_d, st) = store().await;
    let out = gate(st.clone(), &s)
        .invoke(request(json!({
            "region": "eu-west-1",
            "services": ["ECS", "EC2", "rds"],
            "environment": "staging"
        })))
        .await
        .expect("the gate is open");
    assert_eq!(out["open_events"], json!([]));
    assert_eq!(out["regions"], json!(["eu-west-1"]));
    assert_eq!(out["services"], json!(["ECS", "EC2", "RDS"]));
    assert_eq!(out["endpoint"], "us-east-1");
    assert!(out["checked_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(out.get("warning").is_none());
    // The request really carried the filter (checked by the matcher above
    // and, visibly, here).
    let reqs = s.east1.received_requests().await.expect("recorded");
    assert_eq!(reqs.len(), 1);
    let body = body_json(&reqs[0]);
    assert_eq!(body["filter"]["eventTypeCategories"], json!(["issue"]));
    assert_eq!(body["filter"]["eventStatusCodes"], json!(["open"]));
    let d = decisions(&st, "staging").await;
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].0, "open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_ecs_issue_closes_the_gate() {
    setup();
    let s = servers().await;
    describe_events()
        .and(filter(
            vec!["eu-west-1", "eu-central-1"],
            vec!["ECS", "ELASTICLOADBALANCING"],
        ))
        .respond_with(events(vec![ecs_issue("eu-west-1", 7)], None))
        .mount(&s.east1)
        .await;
    let (_d, st) = store().await;
    let err = gate(st.clone(), &s)
        .invoke(request(json!({
            "regions": ["eu-west-1", "eu-central-1"],
            "services": ["ECS", "ELASTICLOADBALANCING"],
            "environment": "prod"
        })))
        .await
        .expect_err("the gate is closed");
    assert_eq!(err.error_name(), "HealthGate.Closed");
    let cause = err.cause.clone().unwrap_or_default();
    for part in [
        "1 open issue",
        "ECS eu-west-1 AWS_ECS_OPERATIONAL_ISSUE",
        "since 2026-11-22T02:15:00Z",
        "arn:aws:health:eu-west-1::event/ECS/AWS_ECS_OPERATIONAL_ISSUE/AWS_ECS_OPERATIONAL_ISSUE_7",
        "HealthGate.Closed",
    ] {
        assert!(cause.contains(part), "{part:?} not in {cause}");
    }
    // The failover endpoint was not needed.
    assert!(
        s.east2
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );
    let d = decisions(&st, "prod").await;
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].0, "closed");
    assert_eq!(d[0].1["open_events"], 1);
    assert_eq!(d[0].1["events"][0]["service"], "ECS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_is_read() {
    setup();
    let s = servers().await;
    // Page 1: nothing yet, a token; page 2: six issues, another token;
    // page 3: one more. The gate must see all seven.
    describe_events()
        .and(filter(vec!["us-west-2"], vec!["ECS"]))
        .respond_with(events(vec![], Some("page-2")))
        .expect(1)
        .mount(&s.east1)
        .await;
    describe_events()
        .and(FilterIs {
            regions: vec!["us-west-2"],
            services: vec!["ECS"],
            next_token: Some("page-2"),
        })
        .respond_with(events(
            (1..=6).map(|n| ecs_issue("us-west-2", n)).collect(),
            Some("page-3"),
        ))
        .expect(1)
        .mount(&s.east1)
        .await;
    describe_events()
        .and(FilterIs {
            regions: vec!["us-west-2"],
            services: vec!["ECS"],
            next_token: Some("page-3"),
        })
        .respond_with(events(vec![ecs_issue("us-west-2", 99)], None))
        .expect(1)
        .mount(&s.east1)
        .await;
    let (_d, st) = store().await;
    let err = gate(st, &s)
        .invoke(request(json!({"region": "us-west-2", "services": ["ECS"]})))
        .await
        .expect_err("closed");
    assert_eq!(err.error_name(), "HealthGate.Closed");
    let cause = err.cause.unwrap_or_default();
    assert!(cause.contains("7 open issue(s)"), "{cause}");
    assert!(cause.contains("and 2 more"), "{cause}");
    s.east1.verify().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_support_plan_is_unavailable_unless_fail_open() {
    setup();
    let s = servers().await;
    describe_events()
        .respond_with(cbor(
            400,
            json!({
                "__type": "com.amazonaws.health#SubscriptionRequiredException",
                "message": "The AWS Premium Support Subscription is required to use this service."
            }),
        ))
        .mount(&s.east1)
        .await;
    let (_d, st) = store().await;
    let g = gate(st.clone(), &s);
    let err = g
        .invoke(request(json!({
            "region": "eu-west-1",
            "services": ["ECS"],
            "environment": "prod"
        })))
        .await
        .expect_err("fails closed");
    assert_eq!(err.error_name(), "HealthGate.Unavailable");
    let cause = err.cause.unwrap_or_default();
    assert!(cause.contains("SubscriptionRequiredException"), "{cause}");
    assert!(cause.contains("Business"), "{cause}");
    assert!(cause.contains("policy.fail_open"), "{cause}");
    // A refusal is not an outage: us-east-2 is not asked.
    assert!(
        s.east2
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );

    let out = g
        .invoke(request(json!({
            "region": "eu-west-1",
            "services": ["ECS"],
            "environment": "prod",
            "policy": {"fail_open": true}
        })))
        .await
        .expect("fail_open passes");
    assert_eq!(out["open_events"], json!([]));
    let warning = out["warning"].as_str().unwrap_or_default();
    assert!(warning.contains("SubscriptionRequiredException"), "{out}");
    let d = decisions(&st, "prod").await;
    assert_eq!(d.len(), 2, "{d:?}");
    assert!(d.iter().all(|(r, _)| r == "unavailable"), "{d:?}");
    assert_eq!(d[1].1["fail_open"], true);

    let bad = g
        .invoke(request(json!({
            "region": "eu-west-1",
            "services": ["ECS"],
            "policy": {"fail_open": "yes"}
        })))
        .await
        .expect_err("invalid");
    assert_eq!(bad.error_name(), "HealthGate.InvalidInput");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn us_east_1_failing_falls_over_to_us_east_2() {
    setup();
    let s = servers().await;
    describe_events()
        .respond_with(cbor(
            500,
            json!({"__type": "InternalFailure", "message": "boom"}),
        ))
        .expect(2) // max_attempts = 2: retried once, then failed over
        .mount(&s.east1)
        .await;
    describe_events()
        .and(filter(vec!["eu-west-1"], vec!["ECS"]))
        .respond_with(events(vec![], None))
        .expect(1)
        .mount(&s.east2)
        .await;
    let (_d, st) = store().await;
    let out = gate(st, &s)
        .invoke(request(json!({"region": "eu-west-1", "services": ["ECS"]})))
        .await
        .expect("us-east-2 answered");
    assert_eq!(out["endpoint"], "us-east-2");
    s.east1.verify().await;
    s.east2.verify().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_endpoints_down_is_unavailable() {
    setup();
    let s = servers().await;
    for server in [&s.east1, &s.east2] {
        describe_events()
            .respond_with(cbor(503, json!({"__type": "ServiceUnavailableException"})))
            .mount(server)
            .await;
    }
    let (_d, st) = store().await;
    let g = gate(st, &s);
    let err = g
        .invoke(request(json!({"region": "eu-west-1", "services": ["ECS"]})))
        .await
        .expect_err("unavailable");
    assert_eq!(err.error_name(), "HealthGate.Unavailable");
    let cause = err.cause.unwrap_or_default();
    assert!(
        cause.contains("us-east-1") && cause.contains("us-east-2"),
        "{cause}"
    );
    assert!(cause.contains("HTTP 503"), "{cause}");
    let out = g
        .invoke(request(json!({
            "region": "eu-west-1",
            "services": ["ECS"],
            "policy": {"fail_open": true}
        })))
        .await
        .expect("fail_open passes");
    assert!(
        out["warning"]
            .as_str()
            .is_some_and(|w| w.contains("unreachable")),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_is_checked() {
    setup();
    let s = servers().await;
    let (_d, st) = store().await;
    let g = gate(st, &s);
    for input in [
        json!({"services": ["ECS"]}),
        json!({"region": "eu-west-1"}),
        json!({"region": "eu-west-1", "services": []}),
        json!({"region": "EU WEST", "services": ["ECS"]}),
        json!({"regions": "eu-west-1", "services": ["ECS"]}),
    ] {
        let e = g.invoke(request(input.clone())).await.expect_err("invalid");
        assert_eq!(e.error_name(), "HealthGate.InvalidInput", "{input}");
    }
    assert!(
        s.east1
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );
    // The built-ins resolve `piflow:health-gate` to this step.
    let (_d2, st2) = store().await;
    let mut registry = TaskRegistry::new();
    piflow_steps::register_builtins(&mut registry, AuditHandle::ready(st2));
    let e = registry
        .invoke(request(json!({"region": "eu-west-1"})))
        .await
        .expect_err("invalid");
    assert_eq!(e.error_name(), "HealthGate.InvalidInput");
}

/// Runs the gate's HTTP on a real runtime: the engine's virtual-time
/// runtime has no IO driver, and paused time would expire the SDK's
/// timeouts while a request is in flight.
struct OnRealRuntime {
    inner: HealthGate,
    rt: tokio::runtime::Handle,
}

impl TaskHandler for OnRealRuntime {
    fn invoke(&self, request: TaskRequest) -> BoxFuture<'static, Result<Value, Failure>> {
        let job = self.rt.spawn(self.inner.invoke(request));
        Box::pin(async move {
            job.await
                .map_err(|e| Failure::new("Test.Panicked", e.to_string()))?
        })
    }
}

fn machine(def: Value) -> Arc<StateMachine> {
    let v = validate_value(&def, LoadOptions::default());
    assert!(v.is_valid(), "{:#?}", v.diagnostics);
    Arc::new(v.machine.expect("machine"))
}

#[test]
fn an_issue_opening_mid_deployment_is_waited_out() {
    setup();
    let real = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (s, st, _dir) = real.block_on(async {
        let s = servers().await;
        // First check: an ECS issue just opened; afterwards: all clear.
        describe_events()
            .and(filter(vec!["eu-west-1"], vec!["ECS", "EC2"]))
            .respond_with(events(vec![ecs_issue("eu-west-1", 1)], None))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&s.east1)
            .await;
        describe_events()
            .and(filter(vec!["eu-west-1"], vec!["ECS", "EC2"]))
            .respond_with(events(vec![], None))
            .with_priority(2)
            .mount(&s.east1)
            .await;
        let (dir, st) = store().await;
        (s, st, dir)
    });
    let handler = OnRealRuntime {
        inner: gate(st.clone(), &s),
        rt: real.handle().clone(),
    };
    let def = json!({
        "StartAt": "HealthGate",
        "States": {
            "HealthGate": {
                "Type": "Task",
                "Resource": "piflow:health-gate",
                "Parameters": {
                    "region.$": "$.target.region",
                    "services": ["ECS", "EC2"],
                    "environment": "prod"
                },
                "ResultPath": "$.checks.health",
                "Retry": [{
                    "ErrorEquals": ["HealthGate.Closed"],
                    "IntervalSeconds": 300,
                    "BackoffRate": 1.0,
                    "MaxAttempts": 12
                }],
                "End": true
            }
        }
    });
    let started = std::time::Instant::now();
    let vrt = clock::virtual_runtime().expect("virtual runtime");
    let outcome = vrt.block_on(async {
        let mut tasks = TaskRegistry::new();
        tasks.register("piflow:health-gate", Arc::new(handler));
        let engine = Engine::new(tasks, Arc::new(VirtualClock::new(chrono::Utc::now())));
        engine
            .run(ExecutionRequest {
                machine: machine(def),
                state_machine_name: "upgrade".into(),
                execution_name: "mid-deployment".into(),
                input: json!({"target": {"region": "eu-west-1"}}),
                role_arn: None,
                durable: None,
            })
            .await
    });
    assert_eq!(
        outcome.status,
        Status::Succeeded,
        "{:?} {:?}",
        outcome.error,
        outcome.cause
    );
    let out = outcome.output.expect("output");
    assert_eq!(out["checks"]["health"]["open_events"], json!([]));
    // One retry interval of virtual time passed, in far less real time.
    assert!(
        outcome.stop_date - outcome.start_date >= chrono::Duration::seconds(300),
        "{} → {}",
        outcome.start_date,
        outcome.stop_date
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    let (reqs, d) = real.block_on(async {
        (
            s.east1.received_requests().await.unwrap_or_default().len(),
            decisions(&st, "prod").await,
        )
    });
    assert_eq!(reqs, 2, "checked twice: closed, then open");
    let results: Vec<&str> = d.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(results, ["closed", "open"]);
}
