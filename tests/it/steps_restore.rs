//! The restore steps: `piflow:rds-restore` and `piflow:repoint` against moto
//! (RDS instances are available at once there), `piflow:efs-restore`
//! against a wiremock AWS Backup (moto does not emulate restore jobs).

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ecs::types as ecs_t;
use common::estate;
use piflow_engine::{TaskHandler, TaskRequest};
use piflow_steps::AuditHandle;
use piflow_steps::repoint::Repoint;
use piflow_steps::restore::{EfsRestore, RdsRestore};
use piflow_store::Store;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    handle: AuditHandle,
    env: String,
}

fn fixture() -> Fixture {
    let (dir, store) = common::steps::temp_store();
    Fixture {
        _dir: dir,
        handle: AuditHandle::ready(store.clone()),
        store,
        env: common::moto::unique("dev"),
    }
}

fn request(token: &str, resource: &str, input: Value) -> TaskRequest {
    common::steps::step_request(
        "arn:aws:states:us-east-1:123456789012:execution:restore:test",
        "Restore",
        resource,
        token,
        input,
    )
}

/// (action, result) of the environment's audit records, oldest first.
async fn trail(f: &Fixture) -> Vec<(String, String)> {
    f.store
        .audit(Some(&f.env), None)
        .await
        .expect("audit")
        .into_iter()
        .map(|r| (r.entry.action, r.entry.result))
        .collect()
}

fn rds_step(f: &Fixture) -> RdsRestore {
    let mut s = RdsRestore::new(f.handle.clone());
    s.poll = Duration::from_millis(50);
    s
}

async fn instance_exists(id: &str) -> bool {
    let sdk = piflow_aws_config::sdk_config().await;
    aws_sdk_rds::Client::new(&sdk)
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn rds_restore_from_snapshot_is_idempotent_and_refuses_foreign_targets() {
    if common::moto::moto().is_none() {
        return;
    }
    let f = fixture();
    let (_, snap) = common::estate::source_db().await;
    let target = common::moto::unique("restored");
    let input = json!({
        "region": "us-east-1",
        "environment": f.env,
        "source": {"instance": target, "snapshot": snap, "instance_class": "db.t3.small"},
    });
    let step = rds_step(&f);
    let out = step
        .invoke(request("tok-snap", "piflow:rds-restore", input.clone()))
        .await
        .expect("restore from snapshot");
    assert_eq!(out["instance"], target);
    assert_eq!(out["engine"], "mariadb");
    assert!(
        out["endpoint"].as_str().is_some_and(|e| !e.is_empty()),
        "{out}"
    );
    assert!(out["port"].as_i64().is_some(), "{out}");
    assert!(instance_exists(&target).await);

    // The same token again (a crash-resume): the same instance, no error.
    let again = step
        .invoke(request("tok-snap", "piflow:rds-restore", input.clone()))
        .await
        .expect("re-invocation reuses the instance");
    assert_eq!(again, out);
    let t = trail(&f).await;
    assert_eq!(
        t.iter().filter(|(a, _)| a == "rds.restore").count(),
        1,
        "{t:?}"
    );
    assert!(
        t.contains(&("rds.restore".into(), "requested".into())),
        "{t:?}"
    );
    assert!(
        t.contains(&("rds.restored".into(), "restored".into())),
        "{t:?}"
    );

    // Another token on the same target: never overwrite.
    let err = step
        .invoke(request("tok-other", "piflow:rds-restore", input))
        .await
        .expect_err("existing instance of another restore");
    assert_eq!(err.error.as_deref(), Some("RdsRestore.Conflict"));
    assert!(err.cause.unwrap_or_default().contains(&target));
}

#[tokio::test(flavor = "multi_thread")]
async fn rds_point_in_time_restores() {
    if common::moto::moto().is_none() {
        return;
    }
    let f = fixture();
    let (source, _) = common::estate::source_db().await;
    let step = rds_step(&f);
    for (token, extra) in [
        ("tok-latest", json!({"latest": true})),
        (
            "tok-time",
            json!({"restore_time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}),
        ),
    ] {
        let target = common::moto::unique("pitr");
        let mut src = json!({"instance": target, "source_instance": source});
        for (k, v) in extra.as_object().expect("object") {
            src[k] = v.clone();
        }
        let out = step
            .invoke(request(
                token,
                "piflow:rds-restore",
                json!({"region": "us-east-1", "environment": f.env, "source": src}),
            ))
            .await
            .unwrap_or_else(|e| panic!("{token}: {e:?}"));
        assert_eq!(out["instance"], target);
        assert_eq!(out["engine"], "mariadb");
        assert!(instance_exists(&target).await);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rds_restore_errors() {
    if common::moto::moto().is_none() {
        return;
    }
    let f = fixture();
    let step = rds_step(&f);
    let missing = common::moto::unique("no-such-snap");
    let target = common::moto::unique("restored");
    let err = step
        .invoke(request(
            "tok-missing",
            "piflow:rds-restore",
            json!({"region": "us-east-1", "environment": f.env,
                   "source": {"instance": target, "snapshot": missing}}),
        ))
        .await
        .expect_err("missing snapshot");
    assert_eq!(err.error.as_deref(), Some("RdsRestore.NotFound"));
    assert!(err.cause.unwrap_or_default().contains(&missing));
    assert!(!instance_exists(&target).await);

    let missing_db = common::moto::unique("no-such-db");
    let err = step
        .invoke(request(
            "tok-missing-db",
            "piflow:rds-restore",
            json!({"region": "us-east-1", "environment": f.env,
                   "source": {"instance": target, "source_instance": missing_db, "latest": true}}),
        ))
        .await
        .expect_err("missing source instance");
    assert_eq!(err.error.as_deref(), Some("RdsRestore.NotFound"));
    assert!(err.cause.unwrap_or_default().contains(&missing_db));

    let err = step
        .invoke(request(
            "tok-bad",
            "piflow:rds-restore",
            json!({"region": "us-east-1", "environment": f.env,
                   "source": {"instance": target, "source_instance": "x", "restore_time": "yesterday"}}),
        ))
        .await
        .expect_err("bad time");
    assert_eq!(err.error.as_deref(), Some("RdsRestore.InvalidInput"));
}

// ------------------------------------------------------------ EFS (wiremock)

const RP: &str = "arn:aws:backup:us-east-1:123456789012:recovery-point:abc";
const ROLE: &str = "arn:aws:iam::123456789012:role/backup-restore";
const NEW_FS: &str = "arn:aws:elasticfilesystem:us-east-1:123456789012:file-system/fs-0new";

async fn backup_mock(job: &str, statuses: &[Value]) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/restore-jobs"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"RestoreJobId": job})))
        .mount(&server)
        .await;
    let n = statuses.len();
    for (i, s) in statuses.iter().enumerate() {
        let m = Mock::given(method("GET"))
            .and(path(format!("/restore-jobs/{job}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(s.clone()));
        if i + 1 < n {
            m.up_to_n_times(1).mount(&server).await;
        } else {
            m.mount(&server).await;
        }
    }
    server
}

fn efs_step(f: &Fixture, server: &MockServer) -> EfsRestore {
    let mut s = EfsRestore::new(f.handle.clone());
    s.poll = Duration::from_millis(50);
    s.backup_endpoint = Some(server.uri());
    s
}

fn efs_input(f: &Fixture) -> Value {
    json!({"region": "us-east-1", "environment": f.env, "recovery_point": RP,
           "file_system": "fs-0old", "role_arn": ROLE})
}

#[tokio::test(flavor = "multi_thread")]
async fn efs_restore_completes_after_polling() {
    // The standard test environment (static credentials) comes from the
    // moto harness; the requests go to the wiremock only.
    if common::moto::moto().is_none() {
        return;
    }
    let f = fixture();
    let server = backup_mock(
        "job-1",
        &[
            json!({"RestoreJobId": "job-1", "Status": "PENDING"}),
            json!({"RestoreJobId": "job-1", "Status": "RUNNING"}),
            json!({"RestoreJobId": "job-1", "Status": "COMPLETED", "CreatedResourceArn": NEW_FS}),
        ],
    )
    .await;
    let out = efs_step(&f, &server)
        .invoke(request("tok-efs", "piflow:efs-restore", efs_input(&f)))
        .await
        .expect("restore");
    assert_eq!(
        out,
        json!({"restore_job": "job-1", "file_system_id": "fs-0new"})
    );
    let reqs = server.received_requests().await.expect("requests");
    let gets = reqs.iter().filter(|r| r.method.as_str() == "GET").count();
    assert_eq!(gets, 3, "polled until COMPLETED");
    let start: Value = reqs
        .iter()
        .find(|r| r.method.as_str() == "PUT")
        .map(|r| serde_json::from_slice(&r.body).expect("json body"))
        .expect("StartRestoreJob sent");
    assert_eq!(start["RecoveryPointArn"], RP);
    assert_eq!(start["IamRoleArn"], ROLE);
    assert_eq!(start["ResourceType"], "EFS");
    assert_eq!(start["Metadata"]["file-system-id"], "fs-0old");
    assert_eq!(start["Metadata"]["newFileSystem"], "true");
    let token = start["IdempotencyToken"].as_str().expect("token");
    assert_eq!(start["Metadata"]["CreationToken"], token);
    // The same token twice sends the same client token (AWS returns the job).
    efs_step(&f, &server)
        .invoke(request("tok-efs", "piflow:efs-restore", efs_input(&f)))
        .await
        .expect("re-invocation");
    let reqs = server.received_requests().await.expect("requests");
    let tokens: Vec<Value> = reqs
        .iter()
        .filter(|r| r.method.as_str() == "PUT")
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).expect("json")["IdempotencyToken"].clone()
        })
        .collect();
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens[0], tokens[1]);
    let t = trail(&f).await;
    assert_eq!(
        t,
        vec![
            ("efs.restore".to_string(), "requested".to_string()),
            ("efs.restored".to_string(), "restored".to_string())
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn efs_restore_failed_names_the_status_message() {
    // The standard test environment (static credentials) comes from the
    // moto harness; the requests go to the wiremock only.
    if common::moto::moto().is_none() {
        return;
    }
    let f = fixture();
    let server = backup_mock(
        "job-2",
        &[json!({"RestoreJobId": "job-2", "Status": "FAILED",
                 "StatusMessage": "Access denied to the KMS key"})],
    )
    .await;
    let err = efs_step(&f, &server)
        .invoke(request("tok-efs-f", "piflow:efs-restore", efs_input(&f)))
        .await
        .expect_err("failed job");
    assert_eq!(err.error.as_deref(), Some("EfsRestore.Failed"));
    let cause = err.cause.unwrap_or_default();
    assert!(cause.contains("Access denied to the KMS key"), "{cause}");
    assert!(cause.contains("job-2"), "{cause}");
    let t = trail(&f).await;
    assert!(
        t.contains(&("efs.restore.failed".into(), "failed".into())),
        "{t:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn efs_restore_times_out_while_running() {
    // The standard test environment (static credentials) comes from the
    // moto harness; the requests go to the wiremock only.
    if common::moto::moto().is_none() {
        return;
    }
    let f = fixture();
    let server = backup_mock(
        "job-3",
        &[json!({"RestoreJobId": "job-3", "Status": "RUNNING"})],
    )
    .await;
    let mut input = efs_input(&f);
    input["timeout_seconds"] = json!(0);
    let err = efs_step(&f, &server)
        .invoke(request("tok-efs-t", "piflow:efs-restore", input))
        .await
        .expect_err("timeout");
    assert_eq!(err.error.as_deref(), Some("EfsRestore.Timeout"));
}

// ------------------------------------------------------------ repoint (moto)

/// A service with the ECS deployment controller whose task definition
/// mounts an EFS volume and reads DB_HOST: (service, task definition).
async fn efs_service(e: &estate::Estate) -> (String, String) {
    let c = estate::clients().await;
    let family = common::moto::unique("api");
    let td = c
        .ecs
        .register_task_definition()
        .family(&family)
        .network_mode(ecs_t::NetworkMode::Bridge)
        .volumes(
            ecs_t::Volume::builder()
                .name("media")
                .efs_volume_configuration(
                    ecs_t::EfsVolumeConfiguration::builder()
                        .file_system_id("fs-0old")
                        .build()
                        .expect("efs config"),
                )
                .build(),
        )
        .container_definitions(
            ecs_t::ContainerDefinition::builder()
                .name("app")
                .image(estate::BLUE_IMAGE)
                .memory(256)
                .essential(true)
                .environment(
                    ecs_t::KeyValuePair::builder()
                        .name("DB_HOST")
                        .value("old.db")
                        .build(),
                )
                .environment(
                    ecs_t::KeyValuePair::builder()
                        .name("KEEP")
                        .value("1")
                        .build(),
                )
                .build(),
        )
        .container_definitions(
            ecs_t::ContainerDefinition::builder()
                .name("sidecar")
                .image("registry.example/sidecar:1")
                .memory(64)
                .build(),
        )
        .send()
        .await
        .expect("register task definition");
    let arn = td
        .task_definition()
        .and_then(|t| t.task_definition_arn())
        .expect("arn")
        .to_string();
    let service = common::moto::unique("api");
    c.ecs
        .create_service()
        .cluster(&e.cluster)
        .service_name(&service)
        .task_definition(&arn)
        .desired_count(0)
        .send()
        .await
        .expect("create service");
    (service, arn)
}

#[tokio::test(flavor = "multi_thread")]
async fn repoint_registers_one_revision_per_service_and_reuses_it() {
    let Some(moto) = common::moto::moto() else {
        return;
    };
    let f = fixture();
    let e = estate::seed(moto).await;
    let (api, api_td) = efs_service(&e).await;
    let input = json!({
        "region": "us-east-1", "environment": f.env, "cluster": e.cluster,
        "services": [api, e.service],
        "database_endpoint": "restored.abc.us-east-1.rds.amazonaws.com",
        "file_system_id": "fs-0new",
    });
    let step = Repoint::new(f.handle.clone());
    let out = step
        .invoke(request("tok-rp", "piflow:repoint", input.clone()))
        .await
        .expect("repoint");
    let list = out["services"].as_array().expect("services");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["service"], api);
    assert_eq!(list[1]["service"], e.service);
    let new_api = list[0]["task_definition"]
        .as_str()
        .expect("arn")
        .to_string();
    assert_ne!(new_api, api_td);
    let new_web = list[1]["task_definition"]
        .as_str()
        .expect("arn")
        .to_string();
    assert_ne!(new_web, e.task_definition);

    let c = estate::clients().await;
    let td = c
        .ecs
        .describe_task_definition()
        .task_definition(&new_api)
        .send()
        .await
        .expect("describe")
        .task_definition()
        .cloned()
        .expect("td");
    let fs = td.volumes()[0]
        .efs_volume_configuration()
        .map(|v| v.file_system_id().to_string());
    assert_eq!(fs.as_deref(), Some("fs-0new"));
    let env_of = |name: &str| -> Vec<(String, String)> {
        td.container_definitions()
            .iter()
            .find(|c| c.name() == Some(name))
            .expect("container")
            .environment()
            .iter()
            .map(|kv| {
                (
                    kv.name().unwrap_or_default().to_string(),
                    kv.value().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    let app = env_of("app");
    assert!(
        app.contains(&(
            "DB_HOST".into(),
            "restored.abc.us-east-1.rds.amazonaws.com".into()
        )),
        "{app:?}"
    );
    assert!(app.contains(&("KEEP".into(), "1".into())), "{app:?}");
    assert_eq!(app.iter().filter(|(k, _)| k == "DB_HOST").count(), 1);
    assert!(
        env_of("sidecar").is_empty(),
        "only containers that read DB_HOST"
    );
    // The estate's service (no container had DB_HOST): its first container.
    let web = e.container(&new_web).await;
    assert!(
        web.environment()
            .iter()
            .any(|kv| kv.name() == Some("DB_HOST")
                && kv.value() == Some("restored.abc.us-east-1.rds.amazonaws.com"))
    );

    // Same token: the same revisions, none registered.
    let before = e.revisions().await;
    let again = step
        .invoke(request("tok-rp", "piflow:repoint", input))
        .await
        .expect("again");
    assert_eq!(again, out);
    assert_eq!(e.revisions().await, before);
    let t = trail(&f).await;
    assert_eq!(
        t.iter().filter(|(a, _)| a == "ecs.repointed").count(),
        2,
        "{t:?}"
    );
    assert_eq!(
        t.iter().filter(|(a, _)| a == "ecs.repoint").count(),
        2,
        "{t:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn repoint_missing_service_is_not_found() {
    let Some(moto) = common::moto::moto() else {
        return;
    };
    let f = fixture();
    let e = estate::seed(moto).await;
    let missing = common::moto::unique("ghost");
    let err = Repoint::new(f.handle.clone())
        .invoke(request(
            "tok-rp-missing",
            "piflow:repoint",
            json!({"region": "us-east-1", "environment": f.env, "cluster": e.cluster,
                   "services": [missing], "database_endpoint": "db", "file_system_id": "fs-1"}),
        ))
        .await
        .expect_err("missing service");
    assert_eq!(err.error.as_deref(), Some("Repoint.NotFound"));
    assert!(err.cause.unwrap_or_default().contains(&missing));
}

// ------------------------------------------------- repoint by secret (moto)

const RESTORED: &str = "restored.xyz.us-east-1.rds.amazonaws.com";
/// A secret value no audit record may carry.
const PASSWORD: &str = "pw-Zq8-never-audited";

async fn secrets() -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&piflow_aws_config::sdk_config().await)
}

/// A new secret holding `value`: its ARN.
async fn secret(name: &str, value: &str) -> String {
    secrets()
        .await
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .expect("create secret")
        .arn()
        .expect("arn")
        .to_string()
}

/// The AWSCURRENT (version id, value) of a secret. (Named: moto 5.2.5
/// answers a GetSecretValue without a stage with the version PutSecretValue
/// made last, even after UpdateSecretVersionStage moved AWSCURRENT.)
async fn current(id: &str) -> (String, String) {
    let out = secrets()
        .await
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

async fn version_count(id: &str) -> usize {
    secrets()
        .await
        .list_secret_version_ids()
        .secret_id(id)
        .send()
        .await
        .expect("list versions")
        .versions()
        .len()
}

/// Every audit record of the environment, as JSON text.
async fn audit_text(f: &Fixture) -> Vec<String> {
    f.store
        .audit(Some(&f.env), None)
        .await
        .expect("audit")
        .into_iter()
        .map(|r| serde_json::to_string(&r.entry).expect("json"))
        .collect()
}

fn secret_input(f: &Fixture, e: &estate::Estate, secret: Value) -> Value {
    json!({
        "region": "us-east-1", "environment": f.env, "cluster": e.cluster,
        "services": [e.service],
        "database_endpoint": RESTORED,
        "file_system_id": "fs-0new",
        "secret": secret,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn repoint_by_json_secret_keeps_other_keys_is_idempotent_and_reverts() {
    let Some(moto) = common::moto::moto() else {
        return;
    };
    let f = fixture();
    let e = estate::seed(moto).await;
    let name = common::moto::unique("product/db");
    let old =
        json!({"username": "app", "password": PASSWORD, "host": "old.db.internal", "port": 3306});
    let arn = secret(&name, &old.to_string()).await;
    let (old_version, _) = current(&arn).await;
    let revisions = e.revisions().await;
    let step = Repoint::new(f.handle.clone());
    let input = secret_input(&f, &e, json!({"id": name, "file_system_key": "efs"}));

    let out = step
        .invoke(request("tok-sec", "piflow:repoint", input.clone()))
        .await
        .expect("repoint by secret");
    // The task definitions are not changed: the roll restarts the tasks.
    assert_eq!(
        out["services"],
        json!([{"service": e.service, "task_definition": e.task_definition,
                "previous_task_definition": e.task_definition}])
    );
    assert_eq!(e.revisions().await, revisions, "no revision registered");
    let (new_version, value) = current(&arn).await;
    assert_ne!(new_version, old_version);
    assert_eq!(
        out["secret"],
        json!({"arn": arn, "version_id": new_version, "previous_version_id": old_version})
    );
    let v: Value = serde_json::from_str(&value).expect("still JSON");
    assert_eq!(
        v,
        json!({"username": "app", "password": PASSWORD, "host": RESTORED, "port": 3306, "efs": "fs-0new"})
    );
    let len = new_version.len();
    assert!(
        (32..=64).contains(&len),
        "ClientRequestToken of {len} chars"
    );

    // The same token again: the same answer, no second version.
    let again = step
        .invoke(request("tok-sec", "piflow:repoint", input))
        .await
        .expect("again");
    assert_eq!(again, out);
    assert_eq!(current(&arn).await.0, new_version);
    assert_eq!(version_count(&arn).await, 2);

    // Revert: the old value is AWSCURRENT again; twice is harmless.
    let revert = json!({"region": "us-east-1", "environment": f.env,
                        "revert_secret": {"arn": arn, "to_version": old_version}});
    let back = step
        .invoke(request("tok-sec-revert", "piflow:repoint", revert.clone()))
        .await
        .expect("revert");
    assert_eq!(
        back["secret"],
        json!({"arn": arn, "version_id": old_version, "previous_version_id": new_version})
    );
    let (version, value) = current(&arn).await;
    assert_eq!(version, old_version);
    assert_eq!(serde_json::from_str::<Value>(&value).expect("json"), old);
    step.invoke(request("tok-sec-revert", "piflow:repoint", revert.clone()))
        .await
        .expect("revert again");
    step.invoke(request("tok-sec-revert-2", "piflow:repoint", revert))
        .await
        .expect("revert with another token, already current");
    assert_eq!(current(&arn).await.0, old_version);
    assert_eq!(version_count(&arn).await, 2);

    let t = trail(&f).await;
    assert_eq!(
        t,
        vec![
            (
                "secretsmanager.repoint".to_string(),
                "requested".to_string()
            ),
            (
                "secretsmanager.repointed".to_string(),
                "written".to_string()
            ),
            ("secretsmanager.revert".to_string(), "requested".to_string()),
            (
                "secretsmanager.reverted".to_string(),
                "reverted".to_string()
            ),
            (
                "secretsmanager.reverted".to_string(),
                "unchanged".to_string()
            ),
        ]
    );
    let records = f.store.audit(Some(&f.env), None).await.expect("audit");
    assert!(records.iter().all(|r| r.entry.target == arn));
    assert_eq!(records[1].entry.before["version_id"], old_version.as_str());
    assert_eq!(records[1].entry.after["version_id"], new_version.as_str());
    assert_eq!(records[3].entry.before["version_id"], new_version.as_str());
    assert_eq!(records[3].entry.after["version_id"], old_version.as_str());
    for text in audit_text(&f).await {
        for value in [PASSWORD, "old.db.internal", RESTORED] {
            assert!(!text.contains(value), "{value} in an audit record: {text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn repoint_by_plain_secret_replaces_it_and_both_modes_together() {
    let Some(moto) = common::moto::moto() else {
        return;
    };
    let f = fixture();
    let e = estate::seed(moto).await;
    let name = common::moto::unique("product/db-host");
    let arn = secret(&name, "old.db.internal").await;
    let step = Repoint::new(f.handle.clone());
    let out = step
        .invoke(request(
            "tok-plain",
            "piflow:repoint",
            secret_input(&f, &e, json!({"id": arn})),
        ))
        .await
        .expect("repoint by plain secret");
    assert_eq!(current(&arn).await.1, RESTORED);
    assert_eq!(out["secret"]["arn"], arn.as_str());
    // A file system key needs a JSON object: refused, nothing written.
    let err = step
        .invoke(request(
            "tok-plain-fs",
            "piflow:repoint",
            secret_input(&f, &e, json!({"id": arn, "file_system_key": "efs"})),
        ))
        .await
        .expect_err("file_system_key in a plain secret");
    assert_eq!(err.error.as_deref(), Some("Repoint.InvalidInput"));
    assert!(!err.cause.unwrap_or_default().contains(RESTORED));
    assert_eq!(version_count(&arn).await, 2);

    // A service whose task definition mounts another file system: a
    // secret alone is refused before anything is written…
    let (api, api_td) = efs_service(&e).await;
    let json_name = common::moto::unique("product/db");
    let json_arn = secret(&json_name, r#"{"host": "old.db.internal"}"#).await;
    let (old_version, _) = current(&json_arn).await;
    let mut input = secret_input(&f, &e, json!({"id": json_name}));
    input["services"] = json!([api]);
    let err = step
        .invoke(request("tok-both", "piflow:repoint", input.clone()))
        .await
        .expect_err("EFS volume on another file system");
    assert_eq!(err.error.as_deref(), Some("Repoint.InvalidInput"));
    let cause = err.cause.unwrap_or_default();
    assert!(cause.contains(&api) && cause.contains("fs-0old"), "{cause}");
    assert_eq!(current(&json_arn).await.0, old_version, "nothing written");
    // …and with env_names too, both: a new revision and the secret.
    input["env_names"] = json!({"database": "DB_HOST"});
    let out = step
        .invoke(request("tok-both", "piflow:repoint", input))
        .await
        .expect("both modes");
    let new_td = out["services"][0]["task_definition"].as_str().expect("td");
    assert_ne!(new_td, api_td);
    assert_eq!(
        out["services"][0]["previous_task_definition"],
        api_td.as_str()
    );
    let (version, value) = current(&json_arn).await;
    assert_ne!(version, old_version);
    assert_eq!(out["secret"]["version_id"], version.as_str());
    assert_eq!(
        serde_json::from_str::<Value>(&value).expect("json"),
        json!({"host": RESTORED})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn repoint_missing_secret_is_not_found() {
    let Some(moto) = common::moto::moto() else {
        return;
    };
    let f = fixture();
    let e = estate::seed(moto).await;
    let missing = common::moto::unique("no-such-secret");
    let step = Repoint::new(f.handle.clone());
    let err = step
        .invoke(request(
            "tok-sec-missing",
            "piflow:repoint",
            secret_input(&f, &e, json!({"id": missing})),
        ))
        .await
        .expect_err("missing secret");
    assert_eq!(err.error.as_deref(), Some("Repoint.NotFound"));
    assert!(err.cause.unwrap_or_default().contains(&missing));
    assert!(trail(&f).await.is_empty());

    let err = step
        .invoke(request(
            "tok-sec-missing-revert",
            "piflow:repoint",
            json!({"region": "us-east-1", "environment": f.env,
                   "revert_secret": {"arn": missing, "to_version": "v1"}}),
        ))
        .await
        .expect_err("missing secret to revert");
    assert_eq!(err.error.as_deref(), Some("Repoint.NotFound"));
    assert!(err.cause.unwrap_or_default().contains(&missing));
}
