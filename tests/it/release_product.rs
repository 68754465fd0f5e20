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

/// The shipped configuration as a new user has it: the repository's
/// piflow.yaml (product, environment dev, the default tag rule), the
/// estate seeded with its reference names on a moto server of the test's
/// own (AWS Health answered by the emulator there: no open issue), and a
/// real git repository with the shipped tag. Pushing it releases 1.0 of the
/// whole product; checkov's CKV_AWS_118 is suppressed by dev's policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_tag_releases_the_product_on_the_seeded_estate() {
    let Some(moto) = common::moto::own() else {
        return;
    };
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = common::product::estate_py(&moto, &["seed"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", dir.path())
            .env("GIT_AUTHOR_NAME", "Ann Releaser")
            .env("GIT_AUTHOR_EMAIL", "ann@example.com")
            .env("GIT_COMMITTER_NAME", "Ann Releaser")
            .env("GIT_COMMITTER_EMAIL", "ann@example.com")
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("README"), "product\n").unwrap();
    git(&["add", "README"]);
    git(&["-c", "commit.gpgSign=false", "commit", "-q", "-m", "1.0"]);
    git(&[
        "-c",
        "tag.gpgSign=false",
        "tag",
        "-a",
        "dev_us-east-1/research/1.0",
        "-m",
        "release 1.0",
    ]);

    let home = dir.path().join("home");
    let path = format!(
        "{}:{}",
        root.join(".emu/venv/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_piflow"));
    c.current_dir(&root)
        .args([
            "trigger",
            "tag",
            "dev_us-east-1/research/1.0",
            "--repo",
            repo.to_str().unwrap(),
            "--format",
            "json",
        ])
        .env("PIFLOW_HOME", &home)
        .env("PATH", path)
        .env("PIFLOW_POLL_SECONDS", "0.3")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("NO_COLOR", "1")
        .env_remove("PIFLOW_CONFIG")
        .env_remove("PIFLOW_STORE")
        .env_remove("PIFLOW_HEALTH_ENDPOINTS")
        .env_remove("AWS_PROFILE");
    for (k, v) in moto.env_vars() {
        c.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || c.output())
        .await
        .expect("join")
        .expect("piflow runs");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(v["status"], "SUCCEEDED", "{v:#}");
    let output = &v["output"];
    assert_eq!(
        output["checks"]["scan"]["suppressed"][0]["check"], "CKV_AWS_118",
        "{output:#}"
    );
    for name in SERVICES {
        assert_eq!(
            output["released"]["services"][name]["after"]["image"],
            format!("registry.example/product/{name}:1.0"),
            "{output:#}"
        );
    }
    let shown = common::product::estate_py(&moto, &["show"]);
    let table = String::from_utf8_lossy(&shown.stdout);
    for name in SERVICES {
        assert!(
            table.contains(&format!("registry.example/product/{name}:1.0")),
            "{table}"
        );
    }
}

/// A service under the CODE_DEPLOY controller and a service whose
/// production listener rule is gone: both named in one refusal, before any
/// change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_piflow_cannot_drive_are_refused_before_any_change() {
    let Some(p) = Product::seed(Health::quiet(), false, canary()).await else {
        return;
    };
    let c = common::estate::clients().await;
    let legacy = format!("legacy-{}", p.suffix);
    let td = c
        .ecs
        .register_task_definition()
        .family(&legacy)
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("web")
                .image("registry.example/product/legacy:0.9")
                .memory(256)
                .build(),
        )
        .send()
        .await
        .expect("register")
        .task_definition()
        .and_then(|t| t.task_definition_arn())
        .expect("arn")
        .to_string();
    c.ecs
        .create_service()
        .cluster(&p.cluster)
        .service_name(&legacy)
        .task_definition(&td)
        .desired_count(0)
        .deployment_controller(
            aws_sdk_ecs::types::DeploymentController::builder()
                .r#type(aws_sdk_ecs::types::DeploymentControllerType::CodeDeploy)
                .build()
                .expect("controller"),
        )
        .send()
        .await
        .expect("create the CODE_DEPLOY service");
    let rule = p.estate["services"]["pirana"]["production_listener_rule"]
        .as_str()
        .expect("pirana's production rule")
        .to_string();
    c.elb
        .delete_rule()
        .rule_arn(&rule)
        .send()
        .await
        .expect("delete pirana's production rule");
    let before = p.running().await;
    let mut input = p.upgrade_input("1.0");
    input["product"] = json!({
        "image": "registry.example/product/{service}:{version}",
        "container": "web",
        "services": SERVICES.iter().map(|n| json!({"name": n, "service": p.service(n)}))
            .chain([json!({"name": "legacy", "service": legacy})]).collect::<Vec<_>>(),
    });

    let result = p.run.workflow("upgrade", &input).await;

    assert_eq!(result["error"], "Upgrade.Refused", "{result:#}");
    let cause = result["cause"].as_str().unwrap_or_default();
    assert!(
        cause.contains(&format!(
            "ECS service {legacy} uses the CODE_DEPLOY deployment controller"
        )),
        "{cause}"
    );
    assert!(
        cause.contains(&format!("listener rule {rule} does not exist")),
        "{cause}"
    );
    assert_eq!(p.running().await, before, "nothing changed");
    for name in SERVICES {
        assert_eq!(p.deployments(name).await.len(), 1, "{name}: no deployment");
    }
    let records = p.run.audit(&p.env);
    let refused = records
        .iter()
        .find(|r| r["action"] == "release.refused" && r["after"]["problems"].is_array())
        .expect("the refusal with its problems");
    assert_eq!(
        refused["after"]["problems"].as_array().map(Vec::len),
        Some(2),
        "{refused:#}"
    );
}

/// An alarm of the release's rollout goes to ALARM while dashboard's new
/// revision bakes: the deployment is rolled back (by ECS's alarm rollback
/// or piflow's gate, whichever reads it first) and the release with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_in_the_bake_rolls_the_release_back() {
    let alarm = common::moto::unique("dev-dashboard-5xx");
    let rollout = json!({"strategy": "blue-green", "bake_minutes": 3, "alarms": [alarm]});
    let Some(p) = Product::seed(Health::quiet(), false, rollout).await else {
        return;
    };
    common::estate::put_alarm(&alarm, &p.service("dashboard")).await;
    let before = p.running().await;
    let c = common::estate::clients().await;
    let (cluster, service, name) = (p.cluster.clone(), p.service("dashboard"), alarm.clone());
    let watcher = tokio::spawn(async move {
        for _ in 0..600 {
            let list = c
                .ecs
                .list_service_deployments()
                .cluster(&cluster)
                .service(&service)
                .status(aws_sdk_ecs::types::ServiceDeploymentStatus::InProgress)
                .send()
                .await
                .expect("list");
            if let Some(arn) = list
                .service_deployments()
                .first()
                .and_then(|d| d.service_deployment_arn())
            {
                let d = c
                    .ecs
                    .describe_service_deployments()
                    .service_deployment_arns(arn)
                    .send()
                    .await
                    .expect("describe");
                if d.service_deployments()
                    .first()
                    .and_then(|d| d.lifecycle_stage())
                    .map(|s| s.as_str())
                    == Some("BAKE_TIME")
                {
                    common::estate::set_alarm(&name, "ALARM", "5xx above 5% on the new revision")
                        .await;
                    return true;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        false
    });

    let result = p.run.workflow("upgrade", &p.upgrade_input("1.0")).await;

    assert!(watcher.await.expect("watcher"), "dashboard never baked");
    assert_eq!(result["error"], "Upgrade.RolledBack", "{result:#}");
    let cause = result["cause"].as_str().unwrap_or_default();
    assert!(cause.contains(&alarm), "names the alarm: {cause}");
    let after = p.running().await;
    for name in SERVICES {
        assert_eq!(after[name].0, before[name].0, "{name}");
    }
    assert_eq!(
        p.deployments("renderer").await.len(),
        1,
        "wave 2 never started"
    );
}

/// A service whose deployments pause at a lifecycle hook (targetType
/// PAUSE, as its team configured it): piflow keeps the hook, runs its
/// gates when the deployment waits there and answers
/// `ContinueServiceDeployment` CONTINUE; the release goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_lifecycle_hook_is_answered_after_the_gates() {
    let Some(p) = Product::seed(
        Health::quiet(),
        false,
        json!({"strategy": "blue-green", "bake_minutes": 0}),
    )
    .await
    else {
        return;
    };
    let c = common::estate::clients().await;
    c.ecs
        .update_service()
        .cluster(&p.cluster)
        .service(p.service("dashboard"))
        .deployment_configuration(
            aws_sdk_ecs::types::DeploymentConfiguration::builder()
                .lifecycle_hooks(
                    aws_sdk_ecs::types::DeploymentLifecycleHook::builder()
                        .target_type(aws_sdk_ecs::types::DeploymentLifecycleHookTargetType::Pause)
                        .lifecycle_stages(
                            aws_sdk_ecs::types::DeploymentLifecycleHookStage::PostTestTrafficShift,
                        )
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("add a PAUSE hook");

    let result = p.run.workflow("upgrade", &p.upgrade_input("1.0")).await;

    assert_eq!(result["status"], "SUCCEEDED", "{result:#}");
    images_at(&p.running().await, "1.0");
    let records = p.run.audit(&p.env);
    let hooks: Vec<&Value> = records
        .iter()
        .filter(|r| r["action"] == "deploy.hook" && r["result"] == "answered")
        .collect();
    assert_eq!(hooks.len(), 1, "{:?}", actions(&records));
    assert_eq!(hooks[0]["after"]["action"], "CONTINUE");
    assert_eq!(hooks[0]["before"]["stage"], "POST_TEST_TRAFFIC_SHIFT");
}

/// `piflow run upgrade` SIGKILLed while dashboard's deployment runs, then
/// `piflow resume`: the release ends whole with one UpdateService per
/// service and one new revision each (the soak script,
/// integration/soak/release_sigkill.py, does this at random moments).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_killed_mid_deployment_resumes_without_a_second_deployment() {
    let Some(p) = Product::seed(Health::quiet(), false, canary()).await else {
        return;
    };
    let input = p.upgrade_input("1.0").to_string();
    let mut child = p.run.spawn(&[
        "run", "upgrade", "--input", &input, "--name", "killed", "--format", "json",
    ]);
    let c = common::estate::clients().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let list = c
            .ecs
            .list_service_deployments()
            .cluster(&p.cluster)
            .service(p.service("dashboard"))
            .status(aws_sdk_ecs::types::ServiceDeploymentStatus::InProgress)
            .send()
            .await
            .expect("list");
        if !list.service_deployments().is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "dashboard's deployment never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");

    let (code, out, err) = p
        .run
        .command_output(&["resume", "upgrade:killed", "--format", "json"]);

    assert_eq!(code, Some(0), "{out}\n{err}");
    images_at(&p.running().await, "1.0");
    for name in SERVICES {
        assert_eq!(
            p.deployments(name).await,
            vec!["SUCCESSFUL", "SUCCESSFUL"],
            "{name}: the seed's deployment and one from the release"
        );
        assert_eq!(p.revisions(name).await, 2, "{name}");
    }
    let records = p.run.audit(&p.env);
    let rel = releases(&records);
    assert_eq!(rel.len(), 1);
    // The resumed release found the deployment the killed process started
    // and followed it to its end (not "unchanged": it was this release's).
    for name in SERVICES {
        assert_eq!(
            rel[0]["after"]["services"][name]["outcome"], "deployed",
            "{name}: {:#}",
            rel[0]
        );
    }
}

/// The alarm rule's rollback on the real release records: with the
/// environment's window (60 minutes) a fresh release is rolled back; with
/// a window of 0 the same alarm is only recorded and nothing moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_rolls_back_a_recent_release_and_only_notes_otherwise() {
    let Some(p) = Product::seed(
        Health::quiet(),
        false,
        json!({"strategy": "blue-green", "bake_minutes": 0}),
    )
    .await
    else {
        return;
    };
    for version in ["1.0", "1.1"] {
        let r = p.run.workflow("upgrade", &p.upgrade_input(version)).await;
        assert_eq!(r["status"], "SUCCEEDED", "{version}: {r:#}");
    }
    let alarm = json!({
        "target": {"environment": p.env, "region": "us-east-1", "cluster": p.cluster, "service": p.service("renderer")},
        "reason": {"trigger": "aws.cloudwatch", "alarm": "dev-renderer-5xx", "summary": "CloudWatch alarm dev-renderer-5xx in ALARM"},
    });
    // A window of 0: the alarm is noted, nothing moves.
    let text = std::fs::read_to_string(&p.config).unwrap();
    let mut config: Value = serde_json::from_str(&text).unwrap();
    config["environments"][&p.env]["remediation"]["alarm_window_minutes"] = json!(0);
    std::fs::write(&p.config, config.to_string()).unwrap();
    let noted = p.run.workflow("rollback", &alarm).await;
    assert_eq!(noted["status"], "SUCCEEDED", "{noted:#}");
    assert!(noted["output"].get("rolled_back").is_none(), "{noted:#}");
    images_at(&p.running().await, "1.1");
    let records = p.run.audit(&p.env);
    let note = records
        .iter()
        .rfind(|r| r["action"] == "remediation.noted")
        .expect("noted");
    assert_eq!(note["after"]["release"], "1.1");
    // The environment's window of 60 minutes: 1.1 is recent, back to 1.0.
    config["environments"][&p.env]["remediation"]["alarm_window_minutes"] = json!(60);
    std::fs::write(&p.config, config.to_string()).unwrap();
    let back = p.run.workflow("rollback", &alarm).await;
    assert_eq!(back["status"], "SUCCEEDED", "{back:#}");
    images_at(&p.running().await, "1.0");
    let records = p.run.audit(&p.env);
    let rel = releases(&records);
    let last = rel.last().expect("a release record");
    assert_eq!(last["after"]["version"], "1.0");
    assert_eq!(last["after"]["trigger"]["alarm"], "dev-renderer-5xx");
}
