//! Whole-product releases end to end: the real binary runs the shipped
//! `upgrade` and `rollback` workflows against the moto server with the
//! emulator's ECS service deployments (integration/emulator/
//! ecs_deployments.py), on an estate seeded as teams build it
//! (integration/estate/estate.py: four services under the default ECS
//! deployment controller, each with a production listener rule and an
//! alternate target group), with real cfn-lint and checkov and AWS Health
//! on wiremock (per test: the emulator's Health is shared by every test).

use crate::common;

use common::e2e::{Health, actions};
use common::product::{Product, SERVICES, releases};
use serde_json::{Value, json};

fn canary() -> Value {
    json!({"strategy": "canary", "percent": 25, "step_minutes": 1, "bake_minutes": 1})
}

fn images_at(running: &std::collections::BTreeMap<String, (String, String)>, version: &str) {
    for (name, (_, image)) in running {
        assert_eq!(
            image,
            &format!("registry.example/product/{name}:{version}"),
            "{name} runs {image}, not {version}: {running:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_releases_every_service_of_the_product() {
    let Some(p) = Product::seed(Health::quiet(), false, canary()).await else {
        return;
    };
    let before = p.running().await;
    images_at(&before, "0.9");

    let result = p.run.workflow("upgrade", &p.upgrade_input("1.0")).await;

    assert_eq!(result["status"], "SUCCEEDED", "{result:#}");
    let after = p.running().await;
    images_at(&after, "1.0");
    let records = p.run.audit(&p.env);
    let rel = releases(&records);
    assert_eq!(rel.len(), 1, "one release record: {:?}", actions(&records));
    let record = &rel[0];
    assert_eq!(record["result"], "released");
    for name in SERVICES {
        let s = &record["after"]["services"][name];
        assert_eq!(s["outcome"], "deployed", "{name}: {s}");
        assert_eq!(s["before"]["task_definition"], json!(before[name].0));
        assert_eq!(s["after"]["task_definition"], json!(after[name].0));
        assert_eq!(s["after"]["image"], json!(after[name].1));
        // One UpdateService: the seed's deployment and this release's.
        assert_eq!(
            p.deployments(name).await,
            vec!["SUCCESSFUL", "SUCCESSFUL"],
            "{name}"
        );
        assert_eq!(p.revisions(name).await, 2, "{name}: one new revision");
    }
    // The waves: dashboard's deployment ended before the others began.
    let acts = actions(&records);
    let first_done = records
        .iter()
        .position(|r| {
            r["action"] == "deploy.done"
                && r["target"]
                    .as_str()
                    .is_some_and(|t| t.contains("dashboard"))
        })
        .expect("dashboard's deploy.done");
    let renderer_update = records
        .iter()
        .position(|r| {
            r["action"] == "deploy.update-service"
                && r["target"].as_str().is_some_and(|t| t.contains("renderer"))
        })
        .expect("renderer's update");
    assert!(first_done < renderer_update, "{acts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_whose_tasks_fail_rolls_back_every_service_the_release_moved() {
    let Some(p) = Product::seed(Health::quiet(), false, canary()).await else {
        return;
    };
    let before = p.running().await;
    // renderer (wave 2) cannot start its new tasks: the circuit breaker
    // trips; dashboard (wave 1) is released by then and must go back.
    p.fail_tasks("renderer");

    let result = p.run.workflow("upgrade", &p.upgrade_input("1.0")).await;

    assert_eq!(result["status"], "FAILED", "{result:#}");
    assert_eq!(result["error"], "Upgrade.RolledBack", "{result:#}");
    let cause = result["cause"].as_str().unwrap_or_default();
    assert!(cause.contains("renderer"), "{cause}");
    let after = p.running().await;
    for name in SERVICES {
        assert_eq!(
            after[name].0, before[name].0,
            "{name} is back on its task definition"
        );
    }
    images_at(&after, "0.9");
    let records = p.run.audit(&p.env);
    let rel = releases(&records);
    assert_eq!(rel.len(), 1);
    assert_eq!(rel[0]["result"], "rolled-back");
    let services = &rel[0]["after"]["services"];
    assert_eq!(services["dashboard"]["outcome"], "returned", "{services:#}");
    assert_eq!(
        services["renderer"]["outcome"], "rolled-back",
        "{services:#}"
    );
    assert!(
        actions(&records).contains(&"release.rolling-back".to_string()),
        "{:?}",
        actions(&records)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_health_issue_mid_release_rolls_the_product_back() {
    // Quiet for the gate before the release and its first polls, then an
    // open ECS issue in us-east-1.
    let Some(p) = Product::seed(Health::opens_after(4), false, canary()).await else {
        return;
    };
    let before = p.running().await;

    let result = p.run.workflow("upgrade", &p.upgrade_input("1.0")).await;

    assert_eq!(result["error"], "Upgrade.RolledBack", "{result:#}");
    assert!(
        result["cause"]
            .as_str()
            .unwrap_or_default()
            .contains("AWS Health"),
        "{result:#}"
    );
    let after = p.running().await;
    for name in SERVICES {
        assert_eq!(after[name].0, before[name].0, "{name}");
    }
    let records = p.run.audit(&p.env);
    let stops: Vec<&Value> = records
        .iter()
        .filter(|r| r["action"] == "deploy.stop")
        .collect();
    assert!(
        !stops.is_empty(),
        "StopServiceDeployment was called: {:?}",
        actions(&records)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_after_two_releases_returns_the_product_to_the_first() {
    let Some(p) = Product::seed(
        Health::quiet(),
        false,
        json!({"strategy": "blue-green", "bake_minutes": 0}),
    )
    .await
    else {
        return;
    };
    let one = p.run.workflow("upgrade", &p.upgrade_input("1.0")).await;
    assert_eq!(one["status"], "SUCCEEDED", "{one:#}");
    let at_one = p.running().await;
    let two = p.run.workflow("upgrade", &p.upgrade_input("1.1")).await;
    assert_eq!(two["status"], "SUCCEEDED", "{two:#}");
    images_at(&p.running().await, "1.1");

    let back = p
        .run
        .workflow(
            "rollback",
            &json!({"target": {"environment": p.env, "region": "us-east-1"}, "reason": {"trigger": "operator"}}),
        )
        .await;

    assert_eq!(back["status"], "SUCCEEDED", "{back:#}");
    let now = p.running().await;
    images_at(&now, "1.0");
    for name in SERVICES {
        assert_eq!(
            now[name].0, at_one[name].0,
            "{name} runs 1.0's task definition"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_before_any_change_naming_every_problem() {
    let Some(p) = Product::seed(Health::quiet(), false, canary()).await else {
        return;
    };
    let before = p.running().await;
    let mut input = p.upgrade_input("1.0");
    input["product"] = json!({
        "container": "web",
        "services": [
            {"name": "dashboard", "service": p.service("dashboard")},
            {"name": "renderer", "service": p.service("renderer"), "image": "registry.example/product/renderer:{version}"},
            {"name": "ghost", "service": format!("ghost-{}", p.suffix), "image": "registry.example/ghost:{version}"},
        ],
        "waves": [["dashboard", "renderer"], ["renderer", "ghost"]],
    });

    let result = p.run.workflow("upgrade", &input).await;

    assert_eq!(result["error"], "Upgrade.Refused", "{result:#}");
    let cause = result["cause"].as_str().unwrap_or_default();
    for needle in [
        "service dashboard: no image for version 1.0",
        "names service renderer, already in wave 0",
    ] {
        assert!(cause.contains(needle), "{needle:?} in {cause}");
    }
    assert_eq!(p.running().await, before, "nothing changed");
    for name in SERVICES {
        assert_eq!(p.deployments(name).await.len(), 1, "{name}: no deployment");
    }
    let records = p.run.audit(&p.env);
    assert!(
        actions(&records).contains(&"release.refused".to_string()),
        "{:?}",
        actions(&records)
    );
    // A service that is not in the cluster, found before any change.
    let mut input = p.upgrade_input("1.0");
    input["product"] = json!({
        "image": "registry.example/product/{service}:{version}",
        "container": "web",
        "services": [
            {"name": "dashboard", "service": p.service("dashboard")},
            {"name": "ghost", "service": format!("ghost-{}", p.suffix)},
        ],
    });
    let result = p.run.workflow("upgrade", &input).await;
    assert_eq!(result["error"], "Upgrade.Refused", "{result:#}");
    assert!(
        result["cause"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("ECS service ghost-{} is not in cluster", p.suffix)),
        "{result:#}"
    );
    assert_eq!(p.running().await, before, "nothing changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_that_loosens_the_environment_policy_is_refused() {
    let Some(p) = Product::seed(Health::quiet(), false, canary()).await else {
        return;
    };
    let mut input = p.upgrade_input("1.0");
    input["policy"] = json!({"scan": {"fail_on": "never"}});
    let result = p
        .run
        .command_output(&["run", "upgrade", "--input", &input.to_string()]);
    assert_eq!(result.0, Some(2), "{}", result.2);
    assert!(
        result.2.contains("[policy-loosened]") && result.2.contains("policy.scan.fail_on"),
        "{}",
        result.2
    );
}
