//! The `deploy` and `restore` workflows end to end: the real binary runs
//! the real definitions against the moto server (CloudFormation, ECS task
//! sets, ELBv2 weighted listeners, RDS), with real cfn-lint and checkov on
//! the reference estate's template. Only what no emulator serves is on
//! wiremock: AWS Health (an incident that opens mid-restore is injected
//! there), AWS Backup's restore jobs (moto does not emulate them) and the
//! service's smoke URL (200, or 500 to force a rollback). Each test seeds
//! its own estate and asserts the live AWS state and the audit trail
//! afterwards.

use crate::common;

use std::time::Instant;

use common::e2e::{Health, Run, actions, checks};
use common::estate::{BLUE_IMAGE, Estate};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const NEW_IMAGE: &str = "registry.example/dashboard:2.0";

/// An environment name of its own (the lease and the audit chain).
fn env_name() -> String {
    format!("dev-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// Does `wanted` appear in `all`, in this order (not necessarily adjacent)?
fn in_order(all: &[String], wanted: &[&str]) -> bool {
    let mut it = all.iter();
    wanted.iter().all(|w| it.any(|a| a == w))
}

/// The records of one action, oldest first.
fn records_of<'a>(records: &'a [Value], action: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["action"] == action).collect()
}

/// The service's one task set: it is PRIMARY; its task definition.
async fn only_primary(estate: &Estate) -> String {
    let sets = estate.task_sets().await;
    assert_eq!(sets.len(), 1, "one task set left, not {sets:?}");
    let (_, status, _, td) = &sets[0];
    assert_eq!(status, "PRIMARY", "{sets:?}");
    td.clone()
}

/// The target group of the service's PRIMARY task set.
async fn primary_target_group(estate: &Estate) -> String {
    let c = common::estate::clients().await;
    let out = c
        .ecs
        .describe_services()
        .cluster(&estate.cluster)
        .services(&estate.service)
        .send()
        .await
        .expect("describe service");
    out.services()[0]
        .task_sets()
        .iter()
        .find(|t| t.status() == Some("PRIMARY"))
        .and_then(|t| t.load_balancers().first())
        .and_then(|l| l.target_group_arn())
        .expect("the primary task set has a target group")
        .to_string()
}

/// The listener's weight on the primary task set's target group.
async fn primary_weight(estate: &Estate) -> i32 {
    let tg = primary_target_group(estate).await;
    let (blue, green) = estate.weights().await;
    if tg == estate.blue_tg {
        assert_eq!((blue, green), (100, 0), "traffic split");
        blue
    } else {
        assert_eq!(tg, estate.green_tg);
        assert_eq!((blue, green), (0, 100), "traffic split");
        green
    }
}

// ------------------------------------------------------------------ deploy

/// A wiremock playing the service's smoke URL: every GET answers `status`.
async fn smoke_server(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(status).set_body_string(if status == 200 {
                "ok"
            } else {
                "database unreachable"
            }),
        )
        .mount(&server)
        .await;
    server
}

/// A deploy input for the estate: the reference estate's lint/scan checks,
/// a stack of its own, a canary of 50% baked for a second, and the smoke
/// URL.
///
/// The stack's template is `integration/templates/clean.yaml`, not the
/// reference estate's `product.yaml`: moto's CloudFormation cannot create
/// the estate's resources (ECS on Fargate behind an ALB, RDS, EFS) from a
/// template, and the ECS/ALB side is seeded directly instead
/// (`common::estate::seed`). Lint and scan still run on the estate's
/// template (`infrastructure.path`).
fn deploy_input(estate: &Estate, env: &str, stack: &str, smoke_url: &str) -> Value {
    let mut input = checks();
    input["infrastructure"]["stack"] = json!(stack);
    input["infrastructure"]["template"] = json!("integration/templates/clean.yaml");
    input["infrastructure"]["parameters"] = json!({});
    input["target"] = json!({
        "environment": env,
        "region": "us-east-1",
        "team": "research",
        "cluster": estate.cluster,
    });
    input["release"] = json!({"version": "2.0"});
    input["rollout"] = json!({"strategy": "canary", "percent": 50, "bake_seconds": 1});
    input["gates"] = json!({"smoke_urls": [smoke_url]});
    input
}

async fn stack_status(stack: &str) -> String {
    let cfn = aws_sdk_cloudformation::Client::new(&piflow_aws_config::sdk_config().await);
    let out = cfn
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .expect("the stack exists");
    out.stacks()
        .first()
        .and_then(|s| s.stack_status())
        .map(|s| s.as_str().to_string())
        .expect("a stack status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_creates_the_stack_rolls_the_service_and_records_it() {
    let Some(moto) = common::moto::moto() else {
        return;
    };
    let started = Instant::now();
    let health = Health::quiet().await;
    let smoke = smoke_server(200).await;
    let estate = common::estate::seed(moto).await;
    let env = env_name();
    let run = Run::new(moto, &health).configured(&env, &[("dashboard", &estate.service)]);
    let stack = common::moto::unique("product");

    let result = run
        .workflow(
            "deploy",
            &deploy_input(&estate, &env, &stack, &format!("{}/health", smoke.uri())),
        )
        .await;

    assert_eq!(result["status"], "SUCCEEDED", "{result:#}");
    let status = stack_status(&stack).await;
    assert!(
        status.ends_with("_COMPLETE") && !status.contains("ROLLBACK"),
        "stack {stack} is {status}"
    );
    let td = only_primary(&estate).await;
    assert_ne!(td, estate.task_definition, "a new revision runs");
    assert_eq!(estate.image_of(&td).await, NEW_IMAGE);
    assert_eq!(estate.weights().await, (0, 100), "green took all traffic");
    assert_eq!(primary_target_group(&estate).await, estate.green_tg);
    let smoke_calls = smoke.received_requests().await.map_or(0, |r| r.len());
    assert_eq!(smoke_calls, 1, "the smoke URL was asked once (200)");

    let records = run.audit(&env);
    let acts = actions(&records);
    assert!(
        in_order(
            &acts,
            &[
                "lint.run",
                "security-scan.run",
                "cloudformation.deploy",
                "cloudformation.deploy",
                "bluegreen.done",
                "check.http",
                "release.recorded",
            ]
        ),
        "{acts:?}"
    );
    let cfn: Vec<&str> = records_of(&records, "cloudformation.deploy")
        .iter()
        .map(|r| r["result"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(cfn, vec!["deploying", "succeeded"]);
    for a in ["lint.run", "security-scan.run"] {
        assert_eq!(records_of(&records, a)[0]["result"], "passed", "{a}");
    }
    let done = records_of(&records, "bluegreen.done");
    assert_eq!(done.len(), 1, "one roll");
    assert_eq!(done[0]["after"]["task_definition"], td.as_str());
    let release = records_of(&records, "release.recorded");
    assert_eq!(release.len(), 1);
    assert_eq!(release[0]["result"], "released");
    assert_eq!(
        release[0]["after"]["services"]["dashboard"]["after"]["image"],
        NEW_IMAGE
    );
    eprintln!("deploy happy path: {:.1?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_rolls_back_to_the_previous_release_when_the_smoke_url_fails() {
    let Some(moto) = common::moto::moto() else {
        return;
    };
    let started = Instant::now();
    let health = Health::quiet().await;
    let smoke = smoke_server(500).await;
    let estate = common::estate::seed(moto).await;
    let env = env_name();
    let run = Run::new(moto, &health).configured(&env, &[("dashboard", &estate.service)]);
    let stack = common::moto::unique("product");

    let result = run
        .workflow(
            "deploy",
            &deploy_input(&estate, &env, &stack, &format!("{}/health", smoke.uri())),
        )
        .await;

    assert_eq!(result["status"], "FAILED", "{result:#}");
    assert_eq!(result["error"], "Deploy.RolledBack", "{result:#}");
    let cause = result["cause"].as_str().unwrap_or_default();
    assert!(
        cause.contains("status 500") && cause.contains("/health"),
        "the cause names the URL and its answer: {cause}"
    );
    // The smoke check made all its attempts before giving up.
    let smoke_calls = smoke.received_requests().await.map_or(0, |r| r.len());
    assert_eq!(smoke_calls, 5, "the release's smoke check makes 5 attempts");

    // Back on the task definition and image it ran before, all traffic on
    // it (on the original target group, after two rolls).
    let td = only_primary(&estate).await;
    assert_eq!(td, estate.task_definition);
    assert_eq!(estate.image_of(&td).await, BLUE_IMAGE);
    assert_eq!(estate.weights().await, (100, 0));
    assert_eq!(primary_target_group(&estate).await, estate.blue_tg);

    let records = run.audit(&env);
    let acts = actions(&records);
    assert!(
        in_order(
            &acts,
            &[
                "cloudformation.deploy",
                "bluegreen.done",
                "check.http",
                "release.rolling-back",
                "bluegreen.done",
                "release.recorded",
            ]
        ),
        "{acts:?}"
    );
    let done = records_of(&records, "bluegreen.done");
    assert_eq!(done.len(), 2, "the roll and the rollback");
    let rolled = done[0]["after"]["task_definition"]
        .as_str()
        .expect("the roll's task definition");
    assert_ne!(rolled, estate.task_definition);
    assert_eq!(estate.image_of(rolled).await, NEW_IMAGE);
    assert_eq!(
        done[0]["after"]["previous"]["task_definition"],
        estate.task_definition.as_str()
    );
    assert_eq!(
        done[1]["after"]["task_definition"],
        estate.task_definition.as_str(),
        "the rollback rolled to the previous task definition"
    );
    assert_eq!(records_of(&records, "check.http")[0]["result"], "failed");
    let rb = records_of(&records, "release.recorded");
    assert_eq!(rb.len(), 1);
    assert_eq!(rb[0]["result"], "rolled-back");
    assert!(
        rb[0]["after"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("HttpCheck.Failed")),
        "{:#}",
        rb[0]
    );
    eprintln!("deploy rollback: {:.1?}", started.elapsed());
}

// ----------------------------------------------------------------- restore

const RECOVERY_POINT: &str = "arn:aws:backup:us-east-1:123456789012:recovery-point:e2e";
const BACKUP_ROLE: &str = "arn:aws:iam::123456789012:role/piflow-backup";

/// The endpoint address of a DB instance, or `None` when it does not exist.
async fn db_endpoint(id: &str) -> Option<String> {
    let rds = aws_sdk_rds::Client::new(&piflow_aws_config::sdk_config().await);
    let out = rds
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
        .ok()?;
    out.db_instances()
        .first()
        .and_then(|d| d.endpoint())
        .and_then(|e| e.address())
        .map(str::to_string)
}

/// AWS Backup on wiremock (aws-sdk-backup is restJson): StartRestoreJob is
/// `PUT /restore-jobs`, DescribeRestoreJob `GET /restore-jobs/{id}`; the
/// job is COMPLETED at the first look, with a new file system.
async fn backup_server(job: &str, new_fs: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/restore-jobs"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"RestoreJobId": job})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/restore-jobs/{job}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "RestoreJobId": job,
            "Status": "COMPLETED",
            "CreatedResourceArn": format!("arn:aws:elasticfilesystem:us-east-1:123456789012:file-system/{new_fs}"),
        })))
        .mount(&server)
        .await;
    server
}

fn restore_input(estate: &Estate, env: &str, instance: &str, snapshot: &str) -> Value {
    json!({
        "target": {
            "environment": env,
            "region": "us-east-1",
            "cluster": estate.cluster,
            "services": [estate.service],
        },
        "database": {"instance": instance, "snapshot": snapshot},
        "files": {
            "recovery_point": RECOVERY_POINT,
            "file_system": "fs-0123456789abcdef0",
            "backup_role_arn": BACKUP_ROLE,
        },
    })
}

/// The value of `name` in the first container of a task definition.
async fn env_var(estate: &Estate, td: &str, name: &str) -> Option<String> {
    estate
        .container(td)
        .await
        .environment()
        .iter()
        .find(|kv| kv.name() == Some(name))
        .and_then(|kv| kv.value())
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_repoints_the_service_at_the_restored_database() {
    let Some(moto) = common::moto::moto() else {
        return;
    };
    let started = Instant::now();
    let health = Health::quiet().await;
    let backup = backup_server("job-e2e-ok", "fs-0e2e0001").await;
    let estate = common::estate::seed(moto).await;
    let (_, snapshot) = common::estate::source_db().await;
    let instance = common::moto::unique("restored");
    let env = env_name();
    let run = Run::new(moto, &health)
        .with("AWS_ENDPOINT_URL_BACKUP", &backup.uri())
        .configured(&env, &[("dashboard", &estate.service)]);

    let result = run
        .workflow(
            "restore",
            &restore_input(&estate, &env, &instance, &snapshot),
        )
        .await;

    assert_eq!(result["status"], "SUCCEEDED", "{result:#}");
    let endpoint = db_endpoint(&instance)
        .await
        .expect("the restored instance exists");
    assert_eq!(
        result["output"]["restored"]["database"]["endpoint"],
        endpoint.as_str()
    );
    assert_eq!(
        result["output"]["restored"]["files"]["file_system_id"],
        "fs-0e2e0001"
    );
    let puts = backup
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.method.as_str() == "PUT")
        .count();
    assert_eq!(puts, 1, "one StartRestoreJob reached the Backup mock");

    // The service runs a new revision that reads the restored database,
    // with all traffic.
    let td = only_primary(&estate).await;
    assert_ne!(td, estate.task_definition);
    assert_eq!(
        env_var(&estate, &td, "DB_HOST").await.as_deref(),
        Some(endpoint.as_str())
    );
    assert_eq!(
        estate.image_of(&td).await,
        BLUE_IMAGE,
        "only DB_HOST changed"
    );
    assert_eq!(primary_weight(&estate).await, 100);

    let records = run.audit(&env);
    let acts = actions(&records);
    assert!(
        in_order(
            &acts,
            &[
                "decision.health-gate",
                "ecs.repointed",
                "bluegreen.done",
                "decision.health-gate",
                "data.restored",
            ]
        ),
        "{acts:?}"
    );
    for a in ["rds.restored", "efs.restored"] {
        assert_eq!(records_of(&records, a).len(), 1, "{a}: {acts:?}");
    }
    let restored = records_of(&records, "data.restored");
    assert_eq!(restored.len(), 1);
    assert_eq!(restored[0]["result"], "restored");
    assert_eq!(
        restored[0]["after"]["database"]["instance"],
        instance.as_str()
    );
    assert!(
        records_of(&records, "data.restore").is_empty(),
        "no failure record: {acts:?}"
    );
    eprintln!("restore happy path: {:.1?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_rolls_the_services_back_when_verify_fails() {
    let Some(moto) = common::moto::moto() else {
        return;
    };
    let started = Instant::now();
    // The gate before the restore finds nothing; Verify, after the roll,
    // finds an open ECS issue in the region.
    let health = Health::opens_after(1).await;
    let backup = backup_server("job-e2e-verify", "fs-0e2e0002").await;
    let estate = common::estate::seed(moto).await;
    let (_, snapshot) = common::estate::source_db().await;
    let instance = common::moto::unique("restored");
    let env = env_name();
    let run = Run::new(moto, &health)
        .with("AWS_ENDPOINT_URL_BACKUP", &backup.uri())
        .configured(&env, &[("dashboard", &estate.service)]);

    let result = run
        .workflow(
            "restore",
            &restore_input(&estate, &env, &instance, &snapshot),
        )
        .await;

    assert_eq!(result["status"], "FAILED", "{result:#}");
    assert_eq!(result["error"], "Restore.RolledBack", "{result:#}");
    let cause = result["cause"].as_str().unwrap_or_default();
    assert!(
        cause.contains("AWS_ECS_OPERATIONAL_ISSUE"),
        "the cause names the event: {cause}"
    );
    assert_eq!(health.calls().await, 2, "the gate and Verify asked");

    // Back on the task definition it ran before (no DB_HOST), all traffic
    // on it.
    let td = only_primary(&estate).await;
    assert_eq!(td, estate.task_definition);
    assert_eq!(env_var(&estate, &td, "DB_HOST").await, None);
    assert_eq!(primary_weight(&estate).await, 100);
    // The restored instance is a new resource and stays.
    assert!(
        db_endpoint(&instance).await.is_some(),
        "the restored instance {instance} is left in place"
    );

    let records = run.audit(&env);
    let acts = actions(&records);
    assert!(
        in_order(
            &acts,
            &[
                "ecs.repointed",
                "bluegreen.done",
                "decision.health-gate",
                "release.started",
                "bluegreen.done",
                "release.recorded",
                "data.restore",
            ]
        ),
        "{acts:?}"
    );
    let repointed = records_of(&records, "ecs.repointed");
    assert_eq!(repointed.len(), 1);
    let new_td = repointed[0]["after"]["task_definition"]
        .as_str()
        .expect("the repointed revision");
    let done = records_of(&records, "bluegreen.done");
    assert_eq!(done.len(), 2, "the roll and the rollback: {acts:?}");
    assert_eq!(done[0]["after"]["task_definition"], new_td);
    assert_eq!(
        done[1]["after"]["task_definition"],
        estate.task_definition.as_str()
    );
    let failure = records_of(&records, "data.restore");
    assert_eq!(failure.len(), 1, "{acts:?}");
    assert_eq!(failure[0]["result"], "rolled-back");
    assert_eq!(failure[0]["after"]["reason"]["Error"], "HealthGate.Closed");
    assert_eq!(
        failure[0]["after"]["services"][0]["previous_task_definition"],
        estate.task_definition.as_str()
    );
    assert_eq!(
        failure[0]["after"]["left_in_place"]["database"]["instance"],
        instance.as_str()
    );
    assert!(records_of(&records, "data.restored").is_empty());
    eprintln!("restore rollback: {:.1?}", started.elapsed());
}

/// A second service in `first`'s cluster, on an ALB and target groups of its
/// own (those of another seeded estate), with a PRIMARY task set on its blue
/// target group: an [`Estate`] whose cluster is `first`'s.
async fn second_service(moto: &common::moto::Moto, first: &Estate) -> Estate {
    let other = common::estate::seed(moto).await;
    let c = common::estate::clients().await;
    let service = format!("{}-2", other.service);
    let blue_task_set = common::estate::blue_service(
        &c,
        &first.cluster,
        &service,
        &other.task_definition,
        &other.blue_tg,
    )
    .await;
    Estate {
        cluster: first.cluster.clone(),
        service,
        blue_task_set,
        ..other
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_rolls_every_service_back_when_the_roll_fails_part_way() {
    let Some(moto) = common::moto::moto() else {
        return;
    };
    let started = Instant::now();
    let health = Health::quiet().await;
    let backup = backup_server("job-e2e-partway", "fs-0e2e0003").await;
    let first = common::estate::seed(moto).await;
    let second = second_service(moto, &first).await;
    // The second service's listener already sends 10% to its idle target
    // group (a half-finished change by hand): its roll is refused
    // (BlueGreen.Conflict) after the first service's roll succeeded.
    common::estate::clients()
        .await
        .elb
        .modify_listener()
        .listener_arn(&second.listener)
        .default_actions(common::estate::forward(
            &second.blue_tg,
            90,
            &second.green_tg,
            10,
        ))
        .send()
        .await
        .expect("split the second listener");
    let (_, snapshot) = common::estate::source_db().await;
    let instance = common::moto::unique("restored");
    let env = env_name();
    let run = Run::new(moto, &health)
        .with("AWS_ENDPOINT_URL_BACKUP", &backup.uri())
        .configured(
            &env,
            &[("dashboard", &first.service), ("renderer", &second.service)],
        );
    let mut input = restore_input(&first, &env, &instance, &snapshot);
    input["target"]["services"] = json!([first.service, second.service]);

    let result = run.workflow("restore", &input).await;

    assert_eq!(result["status"], "FAILED", "{result:#}");
    assert_eq!(result["error"], "Restore.RolledBack", "{result:#}");
    let cause = result["cause"].as_str().unwrap_or_default();
    assert!(
        cause.contains(&second.service) || cause.contains(&second.listener),
        "the cause names the refused roll: {cause}"
    );
    // Both services on the task definition they ran before, each with all
    // of its listener's traffic (the second one's split settled).
    for (e, label) in [(&first, "first"), (&second, "second")] {
        let td = only_primary(e).await;
        assert_eq!(td, e.task_definition, "{label} service");
        assert_eq!(env_var(e, &td, "DB_HOST").await, None, "{label} service");
        assert_eq!(primary_weight(e).await, 100, "{label} service");
    }

    let records = run.audit(&env);
    let acts = actions(&records);
    // The first service rolled and was rolled back by the release; the
    // second's roll was refused before any change and its split listener
    // settled.
    let done: Vec<&Value> = records_of(&records, "bluegreen.done")
        .into_iter()
        .filter(|r| r["after"]["service"] == first.service.as_str())
        .collect();
    assert_eq!(done.len(), 2, "{acts:?}");
    assert_eq!(
        done[1]["after"]["task_definition"],
        first.task_definition.as_str()
    );
    let release = records_of(&records, "release.recorded");
    assert_eq!(release.len(), 1, "{acts:?}");
    assert_eq!(release[0]["result"], "rolled-back");
    let services = &release[0]["after"]["services"];
    assert_eq!(services["dashboard"]["outcome"], "returned", "{services:#}");
    // Refused, then re-rolled on its previous revision (a restore deploys
    // new tasks even where the revision did not change).
    assert_eq!(services["renderer"]["outcome"], "returned", "{services:#}");
    assert!(
        services["renderer"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("BlueGreen.Conflict")),
        "{services:#}"
    );
    let failure = records_of(&records, "data.restore");
    assert_eq!(failure.len(), 1, "{acts:?}");
    assert_eq!(failure[0]["result"], "rolled-back");
    assert_eq!(failure[0]["after"]["reason"]["Error"], "Release.RolledBack");
    assert!(
        failure[0]["after"]["reason"]["Cause"]
            .as_str()
            .is_some_and(|c| c.contains("BlueGreen.Conflict")),
        "{:#}",
        failure[0]
    );
    eprintln!("restore part-way rollback: {:.1?}", started.elapsed());
}

/// The AWSCURRENT (version id, value) of a secret (the stage named: moto
/// 5.2.5 answers an unnamed one with the version written last, even after
/// UpdateSecretVersionStage moved AWSCURRENT).
async fn secret_current(id: &str) -> (String, String) {
    let sm = aws_sdk_secretsmanager::Client::new(&piflow_aws_config::sdk_config().await);
    let out = sm
        .get_secret_value()
        .secret_id(id)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .expect("get secret value");
    (
        out.version_id().expect("version").to_string(),
        out.secret_string().expect("string").to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_by_secret_reverts_the_secret_and_the_services_when_verify_fails() {
    let Some(moto) = common::moto::moto() else {
        return;
    };
    let started = Instant::now();
    // The gate before the restore finds nothing; Verify finds an open issue.
    let health = Health::opens_after(1).await;
    let backup = backup_server("job-e2e-secret", "fs-0e2e0004").await;
    let estate = common::estate::seed(moto).await;
    let (_, snapshot) = common::estate::source_db().await;
    let instance = common::moto::unique("restored");
    let name = common::moto::unique("product/db");
    let old =
        json!({"username": "app", "password": "pw-e2e-never-audited", "host": "old.db.internal"});
    let sm = aws_sdk_secretsmanager::Client::new(&piflow_aws_config::sdk_config().await);
    let arn = sm
        .create_secret()
        .name(&name)
        .secret_string(old.to_string())
        .send()
        .await
        .expect("create secret")
        .arn()
        .expect("arn")
        .to_string();
    let (old_version, _) = secret_current(&arn).await;
    let env = env_name();
    let run = Run::new(moto, &health)
        .with("AWS_ENDPOINT_URL_BACKUP", &backup.uri())
        .configured(&env, &[("dashboard", &estate.service)]);
    let mut input = restore_input(&estate, &env, &instance, &snapshot);
    input["secret"] = json!({"id": name});

    let result = run.workflow("restore", &input).await;

    assert_eq!(result["status"], "FAILED", "{result:#}");
    assert_eq!(result["error"], "Restore.RolledBack", "{result:#}");
    // The secret is back on its old version and value.
    let (version, value) = secret_current(&arn).await;
    assert_eq!(version, old_version);
    assert_eq!(serde_json::from_str::<Value>(&value).expect("json"), old);
    // The service never left its task definition (secret mode registers no
    // revision); it was restarted by the roll and the rollback.
    let td = only_primary(&estate).await;
    assert_eq!(td, estate.task_definition);
    assert_eq!(env_var(&estate, &td, "DB_HOST").await, None);
    assert_eq!(primary_weight(&estate).await, 100);

    let records = run.audit(&env);
    let acts = actions(&records);
    assert!(
        in_order(
            &acts,
            &[
                "secretsmanager.repointed",
                "bluegreen.done",
                "decision.health-gate",
                "secretsmanager.reverted",
                "release.started",
                "bluegreen.done",
                "release.recorded",
                "data.restore",
            ]
        ),
        "{acts:?}"
    );
    assert!(records_of(&records, "ecs.repointed").is_empty(), "{acts:?}");
    let written = records_of(&records, "secretsmanager.repointed");
    assert_eq!(written.len(), 1);
    let new_version = written[0]["after"]["version_id"]
        .as_str()
        .expect("the written version");
    assert_ne!(new_version, old_version);
    let reverted = records_of(&records, "secretsmanager.reverted");
    assert_eq!(reverted.len(), 1);
    assert_eq!(reverted[0]["result"], "reverted");
    assert_eq!(reverted[0]["target"], arn.as_str());
    assert_eq!(reverted[0]["before"]["version_id"], new_version);
    assert_eq!(reverted[0]["after"]["version_id"], old_version.as_str());
    let done = records_of(&records, "bluegreen.done");
    assert_eq!(done.len(), 2, "the roll and the rollback: {acts:?}");
    for d in done {
        assert_eq!(
            d["after"]["task_definition"],
            estate.task_definition.as_str()
        );
    }
    let text = serde_json::to_string(&records).expect("json");
    assert!(
        !text.contains("pw-e2e-never-audited"),
        "the password in the audit trail"
    );
    eprintln!("restore by secret, rollback: {:.1?}", started.elapsed());
}
