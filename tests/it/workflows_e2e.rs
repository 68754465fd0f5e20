//! The `upgrade` and `rollback` workflows end to end on a service under the
//! `EXTERNAL` deployment controller (task sets): the release step drives it
//! through `piflow:ecs-blue-green`. The real binary runs the real
//! definitions against the moto server (ECS task sets, ELBv2 weighted
//! listeners), with real cfn-lint and checkov on the reference estate's
//! template and AWS Health on wiremock (an incident that opens mid-release
//! is injected there). Each test seeds its own estate (the product is its
//! one service, in the test's piflow.yaml) and asserts the live ECS/ELB
//! state and the audit trail afterwards.

use crate::common;

use common::e2e::{Case, Health, actions, checks};
use common::estate::{BLUE_IMAGE, Estate};
use serde_json::{Value, json};

/// An upgrade input for the estate: the reference estate's checks, a
/// canary of 50% baked for a second.
fn upgrade_input(estate: &Estate, env: &str, version: &str) -> Value {
    let mut input = checks();
    input["target"] = json!({
        "environment": env,
        "region": "us-east-1",
        "team": "research",
        "cluster": estate.cluster,
    });
    input["release"] = json!({"version": version});
    input["rollout"] = json!({"strategy": "canary", "percent": 50, "bake_seconds": 1});
    input["gates"] = json!({"health_services": ["ECS"]});
    input
}

/// The release record of a run (`release.recorded`).
fn release_record(records: &[Value]) -> &Value {
    records
        .iter()
        .rfind(|r| r["action"] == "release.recorded")
        .expect("a release record")
}

/// The one task set of the service: it is PRIMARY and runs `image`, and
/// the listener sends all traffic to its target group.
async fn serves_only(estate: &Estate, image: &str) -> String {
    let sets = estate.task_sets().await;
    assert_eq!(sets.len(), 1, "one task set left, not {sets:?}");
    let (_, status, _, td) = &sets[0];
    assert_eq!(status, "PRIMARY");
    assert_eq!(estate.image_of(td).await, image);
    let (blue, green) = estate.weights().await;
    assert!(
        (blue, green) == (100, 0) || (blue, green) == (0, 100),
        "traffic is split: blue {blue} / green {green}"
    );
    td.clone()
}

/// Does `wanted` appear in `all`, in this order (not necessarily adjacent)?
fn in_order(all: &[String], wanted: &[&str]) -> bool {
    let mut it = all.iter();
    wanted.iter().all(|w| it.any(|a| a == w))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_rolls_the_service_to_the_new_image_and_records_it() {
    let Some(Case {
        health,
        estate,
        run,
        env,
        ..
    }) = Case::new(Health::quiet()).await
    else {
        return;
    };

    let result = run
        .workflow("upgrade", &upgrade_input(&estate, &env, "2.0"))
        .await;

    assert_eq!(result["status"], "SUCCEEDED", "{result:#}");
    let out = &result["output"];
    assert_eq!(out["checks"]["lint"]["passed"], true, "{out:#}");
    assert_eq!(
        out["checks"]["scan"]["suppressed"][0]["check"], "CKV_AWS_118",
        "{out:#}"
    );
    assert_eq!(
        out["released"]["services"]["dashboard"]["before"]["task_definition"],
        estate.task_definition.as_str(),
        "the release reports what it replaced"
    );
    assert_eq!(
        out["released"]["services"]["dashboard"]["controller"],
        "EXTERNAL"
    );
    let td = serves_only(&estate, "registry.example/dashboard:2.0").await;
    assert_ne!(td, estate.task_definition);
    assert_eq!(estate.weights().await, (0, 100), "green took all traffic");
    assert!(
        health.calls().await >= 2,
        "the gate and the release's checks asked"
    );

    let records = run.audit(&env);
    let acts = actions(&records);
    assert!(
        in_order(
            &acts,
            &[
                "lint.run",
                "security-scan.run",
                "decision.health-gate",
                "bluegreen.create-task-set",
                "bluegreen.shift",
                "bluegreen.primary",
                "bluegreen.done",
                "release.recorded",
            ]
        ),
        "{acts:?}"
    );
    let release = release_record(&records);
    assert_eq!(release["result"], "released");
    assert_eq!(release["after"]["version"], "2.0");
    assert_eq!(
        release["after"]["services"]["dashboard"]["after"]["image"],
        "registry.example/dashboard:2.0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_rolls_back_when_aws_health_opens_an_issue_mid_deployment() {
    // The gate before the release finds nothing; the release's checks
    // after the roll find an open ECS issue in the region.
    let Some(Case {
        health: _health, // keeps the Health server up
        estate,
        run,
        env,
        ..
    }) = Case::new(Health::opens_after(1)).await
    else {
        return;
    };

    let result = run
        .workflow("upgrade", &upgrade_input(&estate, &env, "3.0"))
        .await;

    assert_eq!(result["status"], "FAILED", "{result:#}");
    assert_eq!(result["error"], "Upgrade.RolledBack", "{result:#}");
    let cause = result["cause"].as_str().unwrap_or_default();
    assert!(
        cause.contains("AWS_ECS_OPERATIONAL_ISSUE"),
        "the cause names the event: {cause}"
    );
    // Back on the task definition it ran before, all traffic on it.
    let td = serves_only(&estate, BLUE_IMAGE).await;
    assert_eq!(td, estate.task_definition);
    assert_eq!(estate.weights().await, (100, 0));

    let records = run.audit(&env);
    let acts = actions(&records);
    assert!(
        in_order(
            &acts,
            &[
                "bluegreen.done",
                "release.rolling-back",
                "bluegreen.create-task-set",
                "bluegreen.done",
                "release.recorded",
            ]
        ),
        "rolled out, gate closed, rolled back: {acts:?}"
    );
    let last = records.last().expect("records");
    assert_eq!(last["action"], "release.recorded", "{last:#}");
    assert_eq!(last["result"], "rolled-back", "{last:#}");
    assert_eq!(
        last["after"]["services"]["dashboard"]["outcome"], "returned",
        "{last:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_of_a_template_that_does_not_lint_changes_nothing() {
    let Some(Case {
        health,
        estate,
        run,
        env,
        ..
    }) = Case::new(Health::quiet()).await
    else {
        return;
    };
    let mut input = upgrade_input(&estate, &env, "4.0");
    input["infrastructure"]["path"] = json!("integration/templates/lint-errors.yaml");

    let result = run.workflow("upgrade", &input).await;

    assert_eq!(result["error"], "Upgrade.Refused", "{result:#}");
    assert!(
        result["cause"]
            .as_str()
            .is_some_and(|c| c.contains("lint-errors.yaml")),
        "{result:#}"
    );
    assert_eq!(
        serves_only(&estate, BLUE_IMAGE).await,
        estate.task_definition
    );
    assert_eq!(estate.weights().await, (100, 0));
    assert_eq!(estate.revisions().await, 1, "no task definition registered");
    assert_eq!(health.calls().await, 0, "refused before the health gate");
    let acts = actions(&run.audit(&env));
    assert_eq!(
        acts.first().map(String::as_str),
        Some("lint.run"),
        "{acts:?}"
    );
    assert!(
        !acts.iter().any(|a| a.starts_with("bluegreen.")),
        "{acts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_of_a_missing_service_is_refused_naming_it() {
    let Some(Case {
        health: _health, // keeps the Health server up
        estate,
        run,
        env,
        ..
    }) = Case::new(Health::quiet()).await
    else {
        return;
    };
    let mut input = upgrade_input(&estate, &env, "5.0");
    input["product"] = json!({
        "image": "registry.example/dashboard:{version}",
        "services": [{"name": "dashboard", "service": "no-such-service"}],
    });

    let result = run.workflow("upgrade", &input).await;

    assert_eq!(result["error"], "Upgrade.Refused", "{result:#}");
    let cause = result["cause"].as_str().unwrap_or_default();
    assert!(
        cause.contains("no-such-service") && cause.contains(&estate.cluster),
        "names the service and the cluster: {cause}"
    );
    assert_eq!(
        serves_only(&estate, BLUE_IMAGE).await,
        estate.task_definition
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_returns_the_service_to_the_last_release() {
    let Some(Case {
        health: _health, // keeps the Health server up
        estate,
        run,
        env,
        ..
    }) = Case::new(Health::quiet()).await
    else {
        return;
    };
    for version in ["6.0", "6.1"] {
        let r = run
            .workflow("upgrade", &upgrade_input(&estate, &env, version))
            .await;
        assert_eq!(r["status"], "SUCCEEDED", "upgrade to {version}: {r:#}");
    }
    serves_only(&estate, "registry.example/dashboard:6.1").await;

    let input = json!({
        "target": {"environment": env, "region": "us-east-1", "team": "research",
                   "cluster": estate.cluster},
        "current_version": "6.1",
        "reason": {"trigger": "operator", "summary": "dashboard 5xx after 6.1"},
    });
    let result = run.workflow("rollback", &input).await;

    assert_eq!(result["status"], "SUCCEEDED", "{result:#}");
    assert_eq!(result["output"]["previous"]["version"], "6.0");
    serves_only(&estate, "registry.example/dashboard:6.0").await;
    let records = run.audit(&env);
    let rb = release_record(&records);
    assert_eq!(rb["result"], "released");
    assert_eq!(rb["after"]["version"], "6.0");
    assert_eq!(rb["after"]["trigger"]["summary"], "dashboard 5xx after 6.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_without_a_previous_release_changes_nothing() {
    let Some(Case {
        health: _health, // keeps the Health server up
        estate,
        run,
        env,
        ..
    }) = Case::new(Health::quiet()).await
    else {
        return;
    };
    let input = json!({
        "target": {"environment": env, "region": "us-east-1", "team": "research",
                   "cluster": estate.cluster},
        "current_version": "1.0",
        "reason": {"trigger": "test"},
    });

    let result = run.workflow("rollback", &input).await;

    assert_eq!(result["error"], "Rollback.NoPreviousRelease", "{result:#}");
    assert_eq!(
        serves_only(&estate, BLUE_IMAGE).await,
        estate.task_definition
    );
    assert_eq!(estate.revisions().await, 1);
    let records = run.audit(&env);
    assert_eq!(
        records.last().map(|r| r["result"].clone()),
        Some(json!("refused"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_rolls_back_when_a_cloudwatch_alarm_fires_during_the_canary() {
    let Some(Case {
        health: _health, // keeps the Health server up
        estate,
        run,
        env,
        ..
    }) = Case::new(Health::quiet()).await
    else {
        return;
    };
    let alarm = common::moto::unique("dashboard-5xx");
    estate.put_alarm(&alarm).await;
    let mut input = upgrade_input(&estate, &env, "7.0");
    input["rollout"] =
        json!({"strategy": "canary", "percent": 20, "bake_seconds": 30, "alarms": [alarm]});
    input["gates"] = json!({});

    // The alarm fires once the canary has traffic.
    let watcher = {
        let estate = estate.clone();
        let alarm = alarm.clone();
        tokio::spawn(async move {
            for _ in 0..600 {
                if estate.weights().await.1 > 0 {
                    estate
                        .set_alarm(&alarm, "ALARM", "5xx above 5% on the canary")
                        .await;
                    return true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            false
        })
    };
    let result = run.workflow("upgrade", &input).await;

    assert!(
        watcher.await.expect("watcher"),
        "the canary never got traffic"
    );
    assert_eq!(result["error"], "Upgrade.RolledBack", "{result:#}");
    let cause = result["cause"].as_str().unwrap_or_default();
    assert!(
        cause.contains(&alarm) && cause.contains("5xx above 5%"),
        "names the alarm and its reason: {cause}"
    );
    assert_eq!(
        serves_only(&estate, BLUE_IMAGE).await,
        estate.task_definition
    );
    assert_eq!(estate.weights().await, (100, 0));
    let records = run.audit(&env);
    let acts = actions(&records);
    assert!(
        in_order(
            &acts,
            &["bluegreen.shift", "bluegreen.alarm", "bluegreen.shift"]
        ),
        "shifted, alarm recorded, shifted back: {acts:?}"
    );
    let last = records.last().expect("records");
    assert_eq!(last["action"], "release.recorded", "{last:#}");
    assert_eq!(last["result"], "rolled-back", "{last:#}");
}
