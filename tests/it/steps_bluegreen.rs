//! `piflow:ecs-blue-green` against the reference estate in moto
//! (tests/it/common/estate.rs); unhealthy targets come from a wiremock that
//! answers only `DescribeTargetHealth` (the step's `health_endpoint` hook).

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::estate::{self, BLUE_IMAGE, Estate};
use piflow_engine::{TaskHandler, TaskRequest};
use piflow_steps::AuditHandle;
use piflow_steps::bluegreen::EcsBlueGreen;
use piflow_store::Store;
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

const NEW_IMAGE: &str = "registry.example/dashboard:2.0";

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    step: EcsBlueGreen,
    env: String,
}

fn fixture() -> Fixture {
    let (dir, store) = common::steps::temp_store();
    let mut step = EcsBlueGreen::new(AuditHandle::ready(store.clone()));
    step.poll = Duration::from_millis(100);
    Fixture {
        _dir: dir,
        store,
        step,
        env: common::moto::unique("dev"),
    }
}

fn request(token: &str, input: Value) -> TaskRequest {
    common::steps::step_request(
        "arn:aws:states:us-east-1:123456789012:execution:upgrade:test",
        "BlueGreen",
        "piflow:ecs-blue-green",
        token,
        input,
    )
}

fn input(e: &Estate, env: &str, strategy: Value) -> Value {
    json!({
        "region": "us-east-1",
        "cluster": e.cluster,
        "service": e.service,
        "image": NEW_IMAGE,
        "strategy": strategy,
        "environment": env,
        "health_timeout_seconds": 1,
    })
}

/// (action, result, after) of the environment's audit records, oldest first.
async fn trail(f: &Fixture) -> Vec<(String, String, Value)> {
    f.store
        .audit(Some(&f.env), None)
        .await
        .expect("audit")
        .into_iter()
        .map(|r| (r.entry.action, r.entry.result, r.entry.after))
        .collect()
}

/// The environment's audit entries, oldest first.
async fn entries(f: &Fixture) -> Vec<piflow_store::AuditEntry> {
    f.store
        .audit(Some(&f.env), None)
        .await
        .expect("audit")
        .into_iter()
        .map(|r| r.entry)
        .collect()
}

/// The weights `{blue, green}` of the `shifted` records, in order.
async fn shifts(f: &Fixture) -> Vec<Value> {
    trail(f)
        .await
        .into_iter()
        .filter(|(a, r, _)| a == "bluegreen.shift" && r == "shifted")
        .map(|(_, _, after)| after)
        .collect()
}

/// A wiremock ELBv2 that reports every target of every group unhealthy
/// (after `healthy_first` healthy answers).
async fn health_server(healthy_first: u64) -> MockServer {
    let server = MockServer::start().await;
    let body = |state: &str| {
        format!(
            r#"<DescribeTargetHealthResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"><DescribeTargetHealthResult><TargetHealthDescriptions><member><Target><Id>10.0.2.10</Id><Port>80</Port></Target><HealthCheckPort>80</HealthCheckPort><TargetHealth><State>{state}</State><Reason>Target.FailedHealthChecks</Reason></TargetHealth></member></TargetHealthDescriptions></DescribeTargetHealthResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></DescribeTargetHealthResponse>"#
        )
    };
    if healthy_first > 0 {
        Mock::given(method("POST"))
            .and(body_string_contains("Action=DescribeTargetHealth"))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("content-type", "text/xml")
                    .set_body_string(body("healthy")),
            )
            .up_to_n_times(healthy_first)
            .with_priority(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("POST"))
        .and(body_string_contains("Action=DescribeTargetHealth"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/xml")
                .set_body_string(body("unhealthy")),
        )
        .with_priority(2)
        .mount(&server)
        .await;
    server
}

#[tokio::test(flavor = "multi_thread")]
async fn all_at_once_makes_green_primary_with_all_traffic() {
    let Some(moto) = common::moto::moto() else {
        return;
    };
    let e = estate::seed(moto).await;
    let f = fixture();
    let token = common::moto::unique("tok");
    let out = f
        .step
        .invoke(request(
            &token,
            input(&e, &f.env, json!({"strategy": "all-at-once"})),
        ))
        .await
        .expect("rollout succeeds");

    assert_eq!(out["traffic"], json!({"green": 100, "blue": 0}), "{out}");
    assert_eq!(out["service"], json!(e.service));
    assert_eq!(e.weights().await, (0, 100), "all traffic on green");
    let sets = e.task_sets().await;
    assert_eq!(sets.len(), 1, "blue task set deleted: {sets:?}");
    assert_eq!(sets[0].1, "PRIMARY");
    assert_eq!(json!(sets[0].0), out["task_set"]);
    assert_ne!(sets[0].0, e.blue_task_set);
    let td = out["task_definition"].as_str().expect("td").to_string();
    assert_ne!(td, e.task_definition, "a new revision");
    assert_eq!(e.image_of(&td).await, NEW_IMAGE);
    assert_eq!(e.image_of(&e.task_definition).await, BLUE_IMAGE);
    let web = e.container(&td).await;
    assert_eq!(web.name(), Some("web"), "other fields kept");
    assert_eq!(web.memory(), Some(256));
    assert_eq!(web.port_mappings().len(), 1);

    let t = trail(&f).await;
    let actions: Vec<(&str, &str)> = t.iter().map(|(a, r, _)| (a.as_str(), r.as_str())).collect();
    assert!(
        actions.contains(&("bluegreen.shift", "shifting")),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("bluegreen.shift", "shifted")),
        "{actions:?}"
    );
    assert_eq!(actions.last(), Some(&("bluegreen.done", "succeeded")));
    let shifted = t
        .iter()
        .find(|(a, r, _)| a == "bluegreen.shift" && r == "shifted")
        .expect("shift record");
    assert_eq!(shifted.2, json!({"blue": 0, "green": 100}));

    // Idempotent: the same token again creates nothing and reports the same.
    let revisions = e.revisions().await;
    let again = f
        .step
        .invoke(request(
            &token,
            input(&e, &f.env, json!({"strategy": "all-at-once"})),
        ))
        .await
        .expect("re-invocation succeeds");
    assert_eq!(again["task_set"], out["task_set"]);
    assert_eq!(again["task_definition"], out["task_definition"]);
    assert_eq!(e.task_sets().await.len(), 1, "no second task set");
    assert_eq!(e.revisions().await, revisions, "no second revision");
    assert_eq!(e.weights().await, (0, 100));
}

#[tokio::test(flavor = "multi_thread")]
async fn canary_shifts_bakes_then_completes() {
    let Some(moto) = common::moto::moto() else {
        return;
    };
    let e = estate::seed(moto).await;
    let f = fixture();
    let started = std::time::Instant::now();
    let out = f
        .step
        .invoke(request(
            &common::moto::unique("tok"),
            input(
                &e,
                &f.env,
                json!({"strategy": "canary", "percent": 20, "bake_seconds": 1}),
            ),
        ))
        .await
        .expect("canary succeeds");
    assert!(started.elapsed() >= Duration::from_secs(1), "baked");
    assert_eq!(out["traffic"], json!({"green": 100, "blue": 0}));
    assert_eq!(e.weights().await, (0, 100));
    assert_eq!(e.task_sets().await.len(), 1);
    let shifts: Vec<Value> = trail(&f)
        .await
        .into_iter()
        .filter(|(a, r, _)| a == "bluegreen.shift" && r == "shifted")
        .map(|(_, _, after)| after)
        .collect();
    assert_eq!(
        shifts,
        vec![
            json!({"blue": 80, "green": 20}),
            json!({"blue": 0, "green": 100})
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn linear_shifts_in_steps() {
    let Some(moto) = common::moto::moto() else {
        return;
    };
    let e = estate::seed(moto).await;
    let f = fixture();
    f.step
        .invoke(request(
            &common::moto::unique("tok"),
            input(
                &e,
                &f.env,
                json!({"strategy": "linear", "percent": 40, "interval_seconds": 0}),
            ),
        ))
        .await
        .expect("linear succeeds");
    assert_eq!(e.weights().await, (0, 100));
    let shifts: Vec<Value> = trail(&f)
        .await
        .into_iter()
        .filter(|(a, r, _)| a == "bluegreen.shift" && r == "shifted")
        .map(|(_, _, after)| after)
        .collect();
    assert_eq!(
        shifts,
        vec![
            json!({"blue": 60, "green": 40}),
            json!({"blue": 20, "green": 80}),
            json!({"blue": 0, "green": 100})
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unhealthy_green_rolls_back() {
    let Some(moto) = common::moto::moto() else {
        return;
    };
    let e = estate::seed(moto).await;
    let mut f = fixture();
    let health = health_server(0).await;
    f.step.health_endpoint = Some(health.uri());
    let err = f
        .step
        .invoke(request(
            &common::moto::unique("tok"),
            input(&e, &f.env, json!({"strategy": "all-at-once"})),
        ))
        .await
        .expect_err("green never becomes healthy");
    assert_eq!(err.error_name(), "BlueGreen.RolledBack", "{err:?}");
    let cause = err.cause.clone().unwrap_or_default();
    assert!(cause.contains("unhealthy"), "{cause}");
    assert_eq!(e.weights().await, (100, 0), "traffic on blue");
    let sets = e.task_sets().await;
    assert_eq!(sets.len(), 1, "green removed: {sets:?}");
    assert_eq!(sets[0].0, e.blue_task_set);
    assert_eq!(sets[0].1, "PRIMARY");
    let t = trail(&f).await;
    assert!(
        t.iter()
            .any(|(a, r, _)| a == "bluegreen.rollback" && r == "rolled-back"),
        "{t:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn green_failing_during_canary_bake_shifts_back() {
    let Some(moto) = common::moto::moto() else {
        return;
    };
    let e = estate::seed(moto).await;
    let mut f = fixture();
    // Healthy for the initial wait and the first look of the bake, then not.
    let health = health_server(2).await;
    f.step.health_endpoint = Some(health.uri());
    let err = f
        .step
        .invoke(request(
            &common::moto::unique("tok"),
            input(
                &e,
                &f.env,
                json!({"strategy": "canary", "percent": 25, "bake_seconds": 5}),
            ),
        ))
        .await
        .expect_err("green fails during the bake");
    assert_eq!(err.error_name(), "BlueGreen.RolledBack", "{err:?}");
    assert_eq!(e.weights().await, (100, 0));
    assert_eq!(e.task_sets().await.len(), 1);
    let shifts: Vec<Value> = trail(&f)
        .await
        .into_iter()
        .filter(|(a, r, _)| a == "bluegreen.shift" && r == "shifted")
        .map(|(_, _, after)| after)
        .collect();
    assert_eq!(
        shifts,
        vec![
            json!({"blue": 75, "green": 25}),
            json!({"blue": 100, "green": 0})
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_resources_are_named_and_nothing_changes() {
    let Some(moto) = common::moto::moto() else {
        return;
    };
    let e = estate::seed(moto).await;
    let f = fixture();
    let revisions = e.revisions().await;

    let mut i = input(&e, &f.env, json!({"strategy": "all-at-once"}));
    i["service"] = json!("no-such-service");
    let err = f
        .step
        .invoke(request(&common::moto::unique("tok"), i))
        .await
        .expect_err("missing service");
    assert_eq!(err.error_name(), "BlueGreen.NotFound");
    assert!(
        err.cause
            .clone()
            .unwrap_or_default()
            .contains("no-such-service")
    );

    let mut i = input(&e, &f.env, json!({"strategy": "all-at-once"}));
    i["cluster"] = json!("no-such-cluster");
    let err = f
        .step
        .invoke(request(&common::moto::unique("tok"), i))
        .await
        .expect_err("missing cluster");
    assert_eq!(err.error_name(), "BlueGreen.NotFound");
    assert!(
        err.cause
            .clone()
            .unwrap_or_default()
            .contains("no-such-cluster"),
        "{err:?}"
    );

    let mut i = input(&e, &f.env, json!({"strategy": "all-at-once"}));
    let bogus = e.listener.replace("listener/app/", "listener/app/x");
    i["listener_arn"] = json!(bogus);
    let err = f
        .step
        .invoke(request(&common::moto::unique("tok"), i))
        .await
        .expect_err("missing listener");
    assert_eq!(err.error_name(), "BlueGreen.NotFound", "{err:?}");
    assert!(
        err.cause.clone().unwrap_or_default().contains(&bogus),
        "{err:?}"
    );

    // The green target group deleted: the listener has nothing to shift to.
    let c = estate::clients().await;
    c.elb
        .modify_listener()
        .listener_arn(&e.listener)
        .default_actions(
            aws_sdk_elasticloadbalancingv2::types::Action::builder()
                .r#type(aws_sdk_elasticloadbalancingv2::types::ActionTypeEnum::Forward)
                .target_group_arn(&e.blue_tg)
                .build(),
        )
        .send()
        .await
        .expect("single forward");
    let err = f
        .step
        .invoke(request(
            &common::moto::unique("tok"),
            input(&e, &f.env, json!({"strategy": "all-at-once"})),
        ))
        .await
        .expect_err("no green target group");
    assert_eq!(err.error_name(), "BlueGreen.NotFound", "{err:?}");
    assert!(
        err.cause.clone().unwrap_or_default().contains(&e.blue_tg),
        "{err:?}"
    );

    let sets = e.task_sets().await;
    assert_eq!(sets.len(), 1, "{sets:?}");
    assert_eq!(sets[0].0, e.blue_task_set);
    assert_eq!(e.revisions().await, revisions, "no revision registered");
    assert!(trail(&f).await.is_empty(), "no side effect, no record");
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_mid_canary_resumes_with_the_same_token_or_rolls_back() {
    let Some(moto) = common::moto::moto() else {
        return;
    };
    for rollback in [false, true] {
        let e = estate::seed(moto).await;
        let f = fixture();
        let token = common::moto::unique("tok");
        // The first run bakes for a long time; it "crashes" during the bake.
        let long = input(
            &e,
            &f.env,
            json!({"strategy": "canary", "percent": 10, "bake_seconds": 600}),
        );
        let step = f.step.clone();
        let req = request(&token, long);
        let run = tokio::spawn(async move { step.invoke(req).await });
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while e.weights().await != (90, 10) {
            assert!(std::time::Instant::now() < deadline, "canary never shifted");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        run.abort();
        let _ = run.await;
        assert_eq!(e.task_sets().await.len(), 2);

        if rollback {
            let mut i = input(&e, &f.env, Value::Null);
            i["rollback"] = json!(true);
            let out = f
                .step
                .invoke(request(&common::moto::unique("tok"), i))
                .await
                .expect("rollback");
            assert_eq!(out["task_set"], json!(e.blue_task_set));
            assert_eq!(e.weights().await, (100, 0));
            let sets = e.task_sets().await;
            assert_eq!(sets.len(), 1, "{sets:?}");
            assert_eq!(sets[0].0, e.blue_task_set);
            let t = trail(&f).await;
            assert!(
                t.iter()
                    .any(|(a, r, _)| a == "bluegreen.rollback" && r == "rolled-back"),
                "{t:?}"
            );
        } else {
            let short = input(
                &e,
                &f.env,
                json!({"strategy": "canary", "percent": 10, "bake_seconds": 0}),
            );
            let out = f
                .step
                .invoke(request(&token, short))
                .await
                .expect("resumed rollout");
            assert_eq!(out["traffic"], json!({"green": 100, "blue": 0}));
            assert_eq!(e.weights().await, (0, 100));
            let sets = e.task_sets().await;
            assert_eq!(sets.len(), 1, "one green task set, blue gone: {sets:?}");
            assert_ne!(sets[0].0, e.blue_task_set);
            let t = trail(&f).await;
            assert!(t.iter().any(|(a, _, _)| a == "bluegreen.resume"), "{t:?}");
            assert_eq!(
                t.iter()
                    .filter(|(a, r, _)| a == "bluegreen.create-task-set" && r == "created")
                    .count(),
                1
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn previous_release_is_reported_and_can_be_rolled_out_again() {
    let Some(moto) = common::moto::moto() else {
        return;
    };
    let e = estate::seed(moto).await;
    let f = fixture();
    let token = common::moto::unique("tok");
    let first = input(&e, &f.env, json!({"strategy": "all-at-once"}));
    let out = f
        .step
        .invoke(request(&token, first.clone()))
        .await
        .expect("rollout succeeds");
    let previous = json!({
        "task_definition": e.task_definition,
        "image": estate::BLUE_IMAGE,
        "task_set": e.blue_task_set,
    });
    assert_eq!(out["previous"], previous, "{out}");
    assert_eq!(e.task_sets().await.len(), 1, "blue deleted");

    // Re-invoked after success: blue is gone, `previous` comes from the
    // audit record this token wrote.
    let again = f
        .step
        .invoke(request(&token, first.clone()))
        .await
        .expect("re-invocation succeeds");
    assert_eq!(again["previous"], previous, "{again}");
    assert_eq!(again["task_set"], out["task_set"]);
    // A store without that record: nothing to recover, nothing guessed.
    let other = fixture();
    let mut i = first.clone();
    i["environment"] = json!(other.env);
    let blind = other
        .step
        .invoke(request(&token, i))
        .await
        .expect("re-invocation with another store");
    assert_eq!(blind["previous"], Value::Null, "{blind}");

    // Roll back to the previous release with a second forward run.
    let revisions = e.revisions().await;
    let mut back = input(&e, &f.env, json!({"strategy": "all-at-once"}));
    back.as_object_mut().expect("object").remove("image");
    back["task_definition"] = out["previous"]["task_definition"].clone();
    let restored = f
        .step
        .invoke(request(&common::moto::unique("tok"), back))
        .await
        .expect("rollback rollout succeeds");
    assert_eq!(restored["task_definition"], json!(e.task_definition));
    assert_eq!(
        e.weights().await,
        (100, 0),
        "all traffic on the original target group again"
    );
    let sets = e.task_sets().await;
    assert_eq!(sets.len(), 1, "{sets:?}");
    assert_eq!(sets[0].1, "PRIMARY");
    assert_eq!(sets[0].3, e.task_definition);
    assert_eq!(json!(sets[0].0), restored["task_set"]);
    assert_eq!(e.image_of(&sets[0].3).await, estate::BLUE_IMAGE);
    assert_eq!(e.revisions().await, revisions, "no revision registered");
    assert_eq!(
        restored["previous"],
        json!({
            "task_definition": out["task_definition"],
            "image": NEW_IMAGE,
            "task_set": out["task_set"],
        })
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn alarm_in_alarm_during_canary_bake_rolls_back() {
    let Some(moto) = common::moto::moto() else {
        return;
    };
    let e = estate::seed(moto).await;
    let f = fixture();
    let alarm = common::moto::unique("dashboard-5xx");
    e.put_alarm(&alarm).await;
    let reason = "Threshold Crossed: 1 datapoint [7.0] was >= the threshold (1.0)";
    // Once green carries traffic, the alarm goes off.
    let watcher = {
        let e = e.clone();
        let alarm = alarm.clone();
        tokio::spawn(async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                let w = e.weights().await;
                if w.1 > 0 {
                    e.set_alarm(&alarm, "ALARM", reason).await;
                    return w;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "green never got traffic"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let started = std::time::Instant::now();
    let err = f
        .step
        .invoke(request(
            &common::moto::unique("tok"),
            input(
                &e,
                &f.env,
                json!({"strategy": "canary", "percent": 20, "bake_seconds": 120, "alarms": [alarm]}),
            ),
        ))
        .await
        .expect_err("the alarm rolls the rollout back");
    assert_eq!(watcher.await.expect("watcher"), (80, 20));
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "rolled back during the bake, not after it"
    );
    assert_eq!(err.error_name(), "BlueGreen.RolledBack", "{err:?}");
    let cause = err.cause.clone().unwrap_or_default();
    assert!(cause.contains(&alarm), "{cause}");
    assert!(cause.contains(reason), "{cause}");
    assert_eq!(e.weights().await, (100, 0), "traffic back on blue");
    let sets = e.task_sets().await;
    assert_eq!(sets.len(), 1, "green deleted: {sets:?}");
    assert_eq!(sets[0].0, e.blue_task_set);
    assert_eq!(sets[0].1, "PRIMARY");
    assert_eq!(
        shifts(&f).await,
        vec![
            json!({"blue": 80, "green": 20}),
            json!({"blue": 100, "green": 0})
        ]
    );
    let log = entries(&f).await;
    let firing = log
        .iter()
        .find(|r| r.action == "bluegreen.alarm" && r.result == "firing")
        .expect("an alarm record");
    assert_eq!(firing.after["alarms"][0]["name"], json!(alarm));
    assert_eq!(firing.after["alarms"][0]["state"], json!("ALARM"));
    let rollback = log
        .iter()
        .find(|r| r.action == "bluegreen.rollback" && r.result == "rolled-back")
        .expect("a rollback record");
    let why = rollback.before["cause"].as_str().unwrap_or_default();
    assert!(why.contains(&alarm), "{why}");
    assert!(why.contains("BlueGreen.AlarmFiring"), "{why}");
    assert!(!log.iter().any(|r| r.action == "bluegreen.done"));
}

#[tokio::test(flavor = "multi_thread")]
async fn alarms_are_checked_before_any_change() {
    let Some(moto) = common::moto::moto() else {
        return;
    };
    let e = estate::seed(moto).await;
    let f = fixture();
    let revisions = e.revisions().await;
    let ok = common::moto::unique("dashboard-latency");
    e.put_alarm(&ok).await;

    // A name CloudWatch does not know.
    let missing = common::moto::unique("no-such-alarm");
    let err = f
        .step
        .invoke(request(
            &common::moto::unique("tok"),
            input(
                &e,
                &f.env,
                json!({"strategy": "canary", "percent": 10, "bake_seconds": 1, "alarms": [ok, missing]}),
            ),
        ))
        .await
        .expect_err("missing alarm");
    assert_eq!(err.error_name(), "BlueGreen.InvalidInput", "{err:?}");
    let cause = err.cause.clone().unwrap_or_default();
    assert!(cause.contains(&missing), "{cause}");
    assert!(
        !cause.contains(&ok),
        "only the missing one is named: {cause}"
    );

    // An alarm already in ALARM.
    let firing = common::moto::unique("dashboard-errors");
    e.put_alarm(&firing).await;
    e.set_alarm(
        &firing,
        "ALARM",
        "Threshold Crossed: errors before the rollout",
    )
    .await;
    let err = f
        .step
        .invoke(request(
            &common::moto::unique("tok"),
            input(
                &e,
                &f.env,
                json!({"strategy": "all-at-once", "alarms": [ok, firing]}),
            ),
        ))
        .await
        .expect_err("alarm firing");
    assert_eq!(err.error_name(), "BlueGreen.AlarmFiring", "{err:?}");
    let cause = err.cause.clone().unwrap_or_default();
    assert!(cause.contains(&firing), "{cause}");
    assert!(cause.contains("errors before the rollout"), "{cause}");

    let sets = e.task_sets().await;
    assert_eq!(sets.len(), 1, "no green task set: {sets:?}");
    assert_eq!(sets[0].0, e.blue_task_set);
    assert_eq!(e.revisions().await, revisions, "no revision registered");
    assert_eq!(e.weights().await, (100, 0));
    assert!(trail(&f).await.is_empty(), "no side effect, no record");
}

#[tokio::test(flavor = "multi_thread")]
async fn quiet_alarms_let_the_rollout_finish() {
    let Some(moto) = common::moto::moto() else {
        return;
    };
    let e = estate::seed(moto).await;
    let f = fixture();
    let ok = common::moto::unique("dashboard-5xx");
    e.put_alarm(&ok).await;
    // No data is not a reason to roll back.
    let no_data = common::moto::unique("dashboard-latency");
    e.put_alarm(&no_data).await;
    e.set_alarm(
        &no_data,
        "INSUFFICIENT_DATA",
        "Insufficient Data: 0 datapoints",
    )
    .await;
    let out = f
        .step
        .invoke(request(
            &common::moto::unique("tok"),
            input(
                &e,
                &f.env,
                json!({"strategy": "linear", "percent": 50, "interval_seconds": 1, "alarms": [ok, no_data]}),
            ),
        ))
        .await
        .expect("rollout succeeds");
    assert_eq!(out["traffic"], json!({"green": 100, "blue": 0}), "{out}");
    assert_eq!(e.weights().await, (0, 100));
    assert_eq!(e.task_sets().await.len(), 1);
    assert_eq!(
        shifts(&f).await,
        vec![
            json!({"blue": 50, "green": 50}),
            json!({"blue": 0, "green": 100})
        ]
    );
    let t = trail(&f).await;
    assert!(!t.iter().any(|(a, _, _)| a == "bluegreen.alarm"), "{t:?}");
    assert!(
        !t.iter().any(|(a, _, _)| a == "bluegreen.rollback"),
        "{t:?}"
    );
}

/// An ECR input: `input` with `image` replaced.
fn with_image(e: &Estate, env: &str, strategy: Value, image: &str) -> Value {
    let mut i = input(e, env, strategy);
    i["image"] = json!(image);
    i
}

/// Nothing changed: blue alone and primary, no new revision, weights
/// 100/0, no audit record.
async fn assert_untouched(e: &Estate, f: &Fixture, revisions: usize) {
    let sets = e.task_sets().await;
    assert_eq!(sets.len(), 1, "no green task set: {sets:?}");
    assert_eq!(sets[0].0, e.blue_task_set);
    assert_eq!(sets[0].1, "PRIMARY");
    assert_eq!(e.revisions().await, revisions, "no revision registered");
    assert_eq!(e.weights().await, (100, 0), "listener weights unchanged");
    let t = trail(f).await;
    assert!(t.is_empty(), "no side effect, no record: {t:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn pushed_ecr_image_rolls_out() {
    let Some(moto) = common::moto::moto() else {
        return;
    };
    let e = estate::seed(moto).await;
    let f = fixture();
    let repo = common::moto::unique("product/dashboard");
    e.ecr_repository(&repo).await;
    let (image, digest) = e.push_image(&repo, "2.0").await;
    let out = f
        .step
        .invoke(request(
            &common::moto::unique("tok"),
            with_image(&e, &f.env, json!({"strategy": "all-at-once"}), &image),
        ))
        .await
        .expect("a pushed image rolls out");
    let td = out["task_definition"].as_str().expect("td").to_string();
    assert_eq!(e.image_of(&td).await, image);
    assert_eq!(e.weights().await, (0, 100));

    // By digest too (a second rollout, from the new blue).
    let by_digest = Estate::ecr_uri(&repo, &format!("@{digest}"));
    let out = f
        .step
        .invoke(request(
            &common::moto::unique("tok"),
            with_image(&e, &f.env, json!({"strategy": "all-at-once"}), &by_digest),
        ))
        .await
        .expect("an image named by its digest rolls out");
    let td = out["task_definition"].as_str().expect("td").to_string();
    assert_eq!(e.image_of(&td).await, by_digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_ecr_tag_or_digest_is_refused_before_any_change() {
    let Some(moto) = common::moto::moto() else {
        return;
    };
    let e = estate::seed(moto).await;
    let f = fixture();
    let revisions = e.revisions().await;
    let repo = common::moto::unique("product/dashboard");
    e.ecr_repository(&repo).await;
    e.push_image(&repo, "1.0").await;

    let image = Estate::ecr_uri(&repo, ":9.9");
    let err = f
        .step
        .invoke(request(
            &common::moto::unique("tok"),
            with_image(&e, &f.env, json!({"strategy": "all-at-once"}), &image),
        ))
        .await
        .expect_err("a tag that was never pushed");
    assert_eq!(err.error_name(), "BlueGreen.ImageNotFound", "{err:?}");
    let cause = err.cause.clone().unwrap_or_default();
    assert!(cause.contains(&image), "names the image: {cause}");
    assert!(cause.contains(&repo), "names the repository: {cause}");
    assert!(cause.contains("us-east-1"), "names the region: {cause}");
    assert!(cause.contains("tag 9.9"), "names the tag: {cause}");
    assert!(
        cause.contains("Push the image") && cause.contains("fix the"),
        "says what to do: {cause}"
    );
    assert_untouched(&e, &f, revisions).await;

    // No tag means `latest`, which was not pushed either.
    let latest = Estate::ecr_uri(&repo, "");
    let err = f
        .step
        .invoke(request(
            &common::moto::unique("tok"),
            with_image(&e, &f.env, json!({"strategy": "all-at-once"}), &latest),
        ))
        .await
        .expect_err("no latest tag");
    assert_eq!(err.error_name(), "BlueGreen.ImageNotFound", "{err:?}");
    let cause = err.cause.clone().unwrap_or_default();
    assert!(cause.contains("tag latest"), "{cause}");

    // A digest nothing has.
    let digest = format!("sha256:{}", "0".repeat(64));
    let by_digest = Estate::ecr_uri(&repo, &format!("@{digest}"));
    let err = f
        .step
        .invoke(request(
            &common::moto::unique("tok"),
            with_image(&e, &f.env, json!({"strategy": "all-at-once"}), &by_digest),
        ))
        .await
        .expect_err("a digest that was never pushed");
    assert_eq!(err.error_name(), "BlueGreen.ImageNotFound", "{err:?}");
    let cause = err.cause.clone().unwrap_or_default();
    assert!(cause.contains(&digest), "{cause}");
    assert_untouched(&e, &f, revisions).await;

    // With `task_definition` the image is not checked (nor used).
    let mut i = with_image(&e, &f.env, json!({"strategy": "all-at-once"}), &image);
    i["task_definition"] = json!(e.task_definition);
    let out = f
        .step
        .invoke(request(&common::moto::unique("tok"), i))
        .await
        .expect("task_definition wins over image");
    assert_eq!(out["task_definition"], json!(e.task_definition));
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_ecr_repository_is_refused_before_any_change() {
    let Some(moto) = common::moto::moto() else {
        return;
    };
    let e = estate::seed(moto).await;
    let f = fixture();
    let revisions = e.revisions().await;
    let repo = common::moto::unique("product/no-such-repo");
    let image = Estate::ecr_uri(&repo, ":2.0");
    let err = f
        .step
        .invoke(request(
            &common::moto::unique("tok"),
            with_image(
                &e,
                &f.env,
                json!({"strategy": "canary", "percent": 10, "bake_seconds": 1}),
                &image,
            ),
        ))
        .await
        .expect_err("a repository that does not exist");
    assert_eq!(err.error_name(), "BlueGreen.ImageNotFound", "{err:?}");
    let cause = err.cause.clone().unwrap_or_default();
    assert!(cause.contains(&image), "names the image: {cause}");
    assert!(
        cause.contains(&format!("repository {repo} does not exist")),
        "names the repository: {cause}"
    );
    assert!(cause.contains("us-east-1"), "names the region: {cause}");
    assert!(
        cause.contains(Estate::ECR_ACCOUNT),
        "names the registry: {cause}"
    );
    assert_untouched(&e, &f, revisions).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ecr_image_is_not_checked_again_once_green_exists() {
    let Some(moto) = common::moto::moto() else {
        return;
    };
    let e = estate::seed(moto).await;
    let f = fixture();
    let repo = common::moto::unique("product/dashboard");
    e.ecr_repository(&repo).await;
    let (image, _) = e.push_image(&repo, "2.0").await;
    let token = common::moto::unique("tok");
    let long = with_image(
        &e,
        &f.env,
        json!({"strategy": "canary", "percent": 10, "bake_seconds": 600}),
        &image,
    );
    let step = f.step.clone();
    let req = request(&token, long);
    let run = tokio::spawn(async move { step.invoke(req).await });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while e.weights().await != (90, 10) {
        assert!(std::time::Instant::now() < deadline, "canary never shifted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    run.abort();
    let _ = run.await;
    assert_eq!(e.task_sets().await.len(), 2);

    // The tag is gone now; green already runs the image: the resumed
    // rollout finishes instead of refusing with traffic on green.
    e.delete_image(&repo, "2.0").await;
    let short = with_image(
        &e,
        &f.env,
        json!({"strategy": "canary", "percent": 10, "bake_seconds": 0}),
        &image,
    );
    let out = f
        .step
        .invoke(request(&token, short.clone()))
        .await
        .expect("resumed rollout");
    assert_eq!(out["traffic"], json!({"green": 100, "blue": 0}));
    assert_eq!(e.weights().await, (0, 100));

    // A new rollout of the deleted tag is refused.
    let err = f
        .step
        .invoke(request(&common::moto::unique("tok"), short))
        .await
        .expect_err("deleted tag");
    assert_eq!(err.error_name(), "BlueGreen.ImageNotFound", "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ecr_access_denied_only_warns_and_the_rollout_goes_on() {
    let Some(moto) = common::moto::moto() else {
        return;
    };
    let e = estate::seed(moto).await;
    let mut f = fixture();
    let ecr = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("registryId"))
        .respond_with(
            ResponseTemplate::new(400)
                .insert_header("content-type", "application/x-amz-json-1.1")
                .set_body_string(
                    r#"{"__type":"AccessDeniedException","message":"User: arn:aws:sts::123456789012:assumed-role/deploy/piflow is not authorized to perform: ecr:DescribeImages"}"#,
                ),
        )
        .mount(&ecr)
        .await;
    f.step.ecr_endpoint = Some(ecr.uri());
    // In another region than the step's: the check goes to the image's.
    let image = "210987654321.dkr.ecr.eu-west-3.amazonaws.com/product/dashboard:2.0";
    let out = f
        .step
        .invoke(request(
            &common::moto::unique("tok"),
            with_image(&e, &f.env, json!({"strategy": "all-at-once"}), image),
        ))
        .await
        .expect("AccessDenied does not block the rollout");
    let td = out["task_definition"].as_str().expect("td").to_string();
    assert_eq!(e.image_of(&td).await, image);

    let asked = ecr.received_requests().await.expect("recorded requests");
    assert_eq!(asked.len(), 1, "one DescribeImages: {asked:?}");
    let r = &asked[0];
    let target = r
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(target.ends_with(".DescribeImages"), "{target}");
    let auth = r
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        auth.contains("/eu-west-3/ecr/"),
        "signed for the image's region: {auth}"
    );
    let body: Value = serde_json::from_slice(&r.body).expect("json body");
    assert_eq!(body["registryId"], json!("210987654321"));
    assert_eq!(body["repositoryName"], json!("product/dashboard"));
    assert_eq!(body["imageIds"], json!([{"imageTag": "2.0"}]));
}
