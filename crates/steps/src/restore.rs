//! The restore steps: `piflow:rds-restore` (a database snapshot or a point
//! in time into a NEW RDS instance) and `piflow:efs-restore` (an AWS Backup
//! recovery point of an EFS file system).
//!
//! `piflow:rds-restore` input: `region`, `role_arn?`, `environment`,
//! `source: {instance (the NEW instance id), snapshot | source_instance +
//! (restore_time (RFC 3339) | latest: true), instance_class?,
//! subnet_group?, security_groups?}`, `timeout_seconds?` (default 3600).
//! It never overwrites an instance: an existing target instance is reused
//! only when its tag `piflow:token` carries this step's idempotency token (a
//! re-invocation after a crash), else the step fails `RdsRestore.Conflict`.
//! It waits until the instance is `available`. Output: `{instance,
//! endpoint, port, engine}`.
//!
//! `piflow:efs-restore` input: `region`, `environment`, `recovery_point`
//! (recovery point ARN), `file_system` (`fs-…`, the backed-up file system),
//! `role_arn` (the IAM role AWS Backup restores with — NOT a role piflow
//! assumes: the SDK configuration is built from `region` only),
//! `new_file_system?` (default true), `timeout_seconds?` (default 3600).
//! `StartRestoreJob` carries the idempotency token (AWS Backup returns the
//! same job to a re-invocation) and a `CreationToken` derived from it; the
//! step polls `DescribeRestoreJob` until COMPLETED (output `{restore_job,
//! file_system_id}`), FAILED (`EfsRestore.Failed`) or ABORTED
//! (`EfsRestore.Aborted`).

use std::time::{Duration, Instant};

use aws_sdk_rds::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_rds::primitives::{DateTime, DateTimeFormat};
use aws_sdk_rds::types as rds_t;
use serde_json::{Value, json};

use super::AuditHandle;
use super::aws_step;
use piflow_engine::{Failure, TaskRequest};

/// The tag naming the idempotency token that created a resource.
pub const TOKEN_TAG: &str = "piflow:token";

/// A short, stable form of an idempotency token (tag values and AWS client
/// tokens have length limits).
pub fn token_key(token: &str) -> String {
    let h = piflow_engine::sha256_hex(token.as_bytes());
    format!("piflow-{}", &h[..32.min(h.len())])
}

/// An SDK error as a failure of `step`: `NotFound` when the service says a
/// resource is missing, else `AwsFailed`.
pub(crate) fn aws_err<E, R>(step: &str, e: SdkError<E, R>, what: &str) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = e.code().unwrap_or("").to_string();
    let text = match e.code() {
        Some(c) => format!("{c}: {}", e.message().unwrap_or("")),
        None => format!("{}", DisplayErrorContext(&e)),
    };
    if code.contains("NotFound") {
        Failure::new(
            format!("{step}.NotFound"),
            format!("{what}: {text} (check the name, the region and the account)"),
        )
    } else {
        Failure::new(format!("{step}.AwsFailed"), format!("{what}: {text}"))
    }
}

fn timeout(request: &TaskRequest) -> Duration {
    Duration::from_secs(
        request
            .input
            .get("timeout_seconds")
            .and_then(Value::as_u64)
            .unwrap_or(3600),
    )
}

// ---------------------------------------------------------------- RDS

const RDS: &str = "RdsRestore";

fn rds_fail(reason: &str, cause: impl Into<String>) -> Failure {
    Failure::new(format!("{RDS}.{reason}"), cause)
}

/// `piflow:rds-restore`.
#[derive(Clone)]
pub struct RdsRestore {
    pub store: AuditHandle,
    /// How often DescribeDBInstances is read while waiting.
    pub poll: Duration,
}

impl RdsRestore {
    pub fn new(store: AuditHandle) -> Self {
        RdsRestore {
            store,
            poll: Duration::from_secs(15),
        }
    }
}

super::real_time_step!(RdsRestore);

/// Where the data comes from.
enum RdsSource {
    Snapshot(String),
    PointInTime {
        instance: String,
        at: Option<DateTime>,
    },
}

impl RdsSource {
    fn json(&self) -> Value {
        match self {
            RdsSource::Snapshot(s) => json!({"snapshot": s}),
            RdsSource::PointInTime { instance, at } => json!({
                "source_instance": instance,
                "restore_time": at.map(|t| t.to_string()),
                "latest": at.is_none(),
            }),
        }
    }
}

fn text_of<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty())
}

impl RdsRestore {
    async fn run(self, request: TaskRequest) -> Result<Value, Failure> {
        let env = aws_step::environment(&request, RDS)?;
        let bad =
            |m: String| rds_fail("InvalidInput", format!("state {}: {m}", request.state_name));
        let Some(src) = request.input.get("source").filter(|v| v.is_object()) else {
            return Err(bad(
                "piflow:rds-restore needs \"source\" (an object with instance and snapshot or source_instance)".into(),
            ));
        };
        let Some(instance) = text_of(src, "instance").map(str::to_string) else {
            return Err(bad(
                "source.instance (the NEW DB instance id) is required".into()
            ));
        };
        let source = match (text_of(src, "snapshot"), text_of(src, "source_instance")) {
            (Some(s), None) => RdsSource::Snapshot(s.to_string()),
            (None, Some(i)) => {
                let latest = src.get("latest").and_then(Value::as_bool).unwrap_or(false);
                let at = match (text_of(src, "restore_time"), latest) {
                    (Some(t), false) => Some(
                        DateTime::from_str(t, DateTimeFormat::DateTime).map_err(|e| {
                            bad(format!(
                                "source.restore_time must be an RFC 3339 time such as 2026-11-20T10:00:00Z, not {t:?} ({e})"
                            ))
                        })?,
                    ),
                    (None, true) => None,
                    _ => {
                        return Err(bad(
                            "with source.source_instance give exactly one of source.restore_time (RFC 3339) or source.latest: true".into(),
                        ));
                    }
                };
                RdsSource::PointInTime {
                    instance: i.to_string(),
                    at,
                }
            }
            _ => {
                return Err(bad(
                    "source needs exactly one of \"snapshot\" or \"source_instance\"".into(),
                ));
            }
        };
        let class = text_of(src, "instance_class").map(str::to_string);
        let subnet_group = text_of(src, "subnet_group").map(str::to_string);
        let security_groups: Option<Vec<String>> = match src.get("security_groups") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(
                a.iter()
                    .map(|v| {
                        v.as_str().map(str::to_string).ok_or_else(|| {
                            bad(format!("source.security_groups: {v} is not a string"))
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Some(other) => {
                return Err(bad(format!(
                    "source.security_groups must be a list of security group ids, not {other}"
                )));
            }
        };
        let deadline = Instant::now() + timeout(&request);
        let sdk = aws_step::sdk_config(&request, RDS).await?;
        let rds = aws_sdk_rds::Client::new(&sdk);
        let key = token_key(&request.idempotency_token);

        // An existing target: ours (reuse) or someone else's (refuse).
        let existing = self.describe(&rds, &instance).await?;
        if let Some(db) = &existing {
            let tagged = self.token_of(&rds, db).await?;
            if tagged.as_deref() != Some(key.as_str()) {
                return Err(rds_fail(
                    "Conflict",
                    format!(
                        "DB instance {instance} already exists and was not created by this restore; piflow never overwrites an instance: choose a new source.instance id"
                    ),
                ));
            }
            tracing::info!(%instance, "rds-restore: reusing the instance this token created");
        } else {
            aws_step::audit(
                &self.store,
                &request,
                RDS,
                &env,
                "rds.restore",
                &instance,
                source.json(),
                json!({"instance": instance}),
                "requested",
            )
            .await?;
            let tag = rds_t::Tag::builder().key(TOKEN_TAG).value(&key).build();
            let result = match &source {
                RdsSource::Snapshot(snap) => rds
                    .restore_db_instance_from_db_snapshot()
                    .db_instance_identifier(&instance)
                    .db_snapshot_identifier(snap)
                    .set_db_instance_class(class.clone())
                    .set_db_subnet_group_name(subnet_group.clone())
                    .set_vpc_security_group_ids(security_groups.clone())
                    .tags(tag)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| aws_err(RDS, e, &format!("DB snapshot {snap}"))),
                RdsSource::PointInTime { instance: from, at } => rds
                    .restore_db_instance_to_point_in_time()
                    .source_db_instance_identifier(from)
                    .target_db_instance_identifier(&instance)
                    .set_restore_time(*at)
                    .set_use_latest_restorable_time(at.is_none().then_some(true))
                    .set_db_instance_class(class.clone())
                    .set_db_subnet_group_name(subnet_group.clone())
                    .set_vpc_security_group_ids(security_groups.clone())
                    .tags(tag)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| aws_err(RDS, e, &format!("source DB instance {from}"))),
            };
            if let Err(f) = result {
                let _ = aws_step::audit(
                    &self.store,
                    &request,
                    RDS,
                    &env,
                    "rds.restore.failed",
                    &instance,
                    source.json(),
                    json!({"error": f.error, "cause": f.cause}),
                    "failed",
                )
                .await;
                return Err(f);
            }
            tracing::info!(%instance, "rds-restore: restore started");
        }

        // Wait until available.
        let db = loop {
            let db = self.describe(&rds, &instance).await?.ok_or_else(|| {
                rds_fail(
                    "NotFound",
                    format!("DB instance {instance} vanished while restoring"),
                )
            })?;
            let status = db.db_instance_status().unwrap_or("unknown").to_string();
            if status == "available" {
                break db;
            }
            if matches!(
                status.as_str(),
                "failed" | "incompatible-restore" | "incompatible-parameters" | "deleting"
            ) {
                return Err(rds_fail(
                    "Failed",
                    format!(
                        "DB instance {instance} is {status}: inspect its events in the RDS console, delete it and restore again under a new id"
                    ),
                ));
            }
            if Instant::now() >= deadline {
                return Err(rds_fail(
                    "Timeout",
                    format!(
                        "DB instance {instance} is still {status} after {}s: raise timeout_seconds or re-run the step (it resumes waiting)",
                        timeout(&request).as_secs()
                    ),
                ));
            }
            tracing::debug!(%instance, %status, "rds-restore: waiting");
            tokio::time::sleep(self.poll).await;
        };
        let endpoint = db.endpoint().and_then(|e| e.address()).unwrap_or("");
        let port = db.endpoint().and_then(|e| e.port());
        let out = json!({
            "instance": instance,
            "endpoint": endpoint,
            "port": port,
            "engine": db.engine(),
        });
        aws_step::audit(
            &self.store,
            &request,
            RDS,
            &env,
            "rds.restored",
            &instance,
            source.json(),
            out.clone(),
            "restored",
        )
        .await?;
        Ok(out)
    }

    async fn describe(
        &self,
        rds: &aws_sdk_rds::Client,
        instance: &str,
    ) -> Result<Option<rds_t::DbInstance>, Failure> {
        match rds
            .describe_db_instances()
            .db_instance_identifier(instance)
            .send()
            .await
        {
            Ok(out) => Ok(out.db_instances().first().cloned()),
            Err(e) if e.code().is_some_and(|c| c.contains("NotFound")) => Ok(None),
            Err(e) => Err(aws_err(RDS, e, &format!("DB instance {instance}"))),
        }
    }

    /// The instance's `piflow:token` tag.
    async fn token_of(
        &self,
        rds: &aws_sdk_rds::Client,
        db: &rds_t::DbInstance,
    ) -> Result<Option<String>, Failure> {
        let find = |tags: &[rds_t::Tag]| {
            tags.iter()
                .find(|t| t.key() == Some(TOKEN_TAG))
                .and_then(|t| t.value())
                .map(str::to_string)
        };
        if let Some(v) = find(db.tag_list()) {
            return Ok(Some(v));
        }
        let Some(arn) = db.db_instance_arn() else {
            return Ok(None);
        };
        let out = rds
            .list_tags_for_resource()
            .resource_name(arn)
            .send()
            .await
            .map_err(|e| aws_err(RDS, e, &format!("tags of DB instance {arn}")))?;
        Ok(find(out.tag_list()))
    }
}

// ---------------------------------------------------------------- EFS

const EFS: &str = "EfsRestore";

fn efs_fail(reason: &str, cause: impl Into<String>) -> Failure {
    Failure::new(format!("{EFS}.{reason}"), cause)
}

/// `piflow:efs-restore`.
#[derive(Clone)]
pub struct EfsRestore {
    pub store: AuditHandle,
    /// How often DescribeRestoreJob is read.
    pub poll: Duration,
    /// Another AWS Backup endpoint (tests: moto does not emulate restore
    /// jobs); `None`: the standard configuration.
    pub backup_endpoint: Option<String>,
}

impl EfsRestore {
    pub fn new(store: AuditHandle) -> Self {
        EfsRestore {
            store,
            poll: Duration::from_secs(15),
            backup_endpoint: None,
        }
    }
}

super::real_time_step!(EfsRestore);

/// `arn:aws:elasticfilesystem:REGION:ACCOUNT:file-system/fs-…` → `fs-…`.
pub fn file_system_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

impl EfsRestore {
    async fn run(self, request: TaskRequest) -> Result<Value, Failure> {
        let env = aws_step::environment(&request, EFS)?;
        let text = |k: &str, what: &str| -> Result<String, Failure> {
            text_of(&request.input, k)
                .map(str::to_string)
                .ok_or_else(|| {
                    efs_fail(
                        "InvalidInput",
                        format!(
                            "state {}: piflow:efs-restore needs \"{k}\" ({what}) in its input",
                            request.state_name
                        ),
                    )
                })
        };
        let recovery_point = text("recovery_point", "the AWS Backup recovery point ARN")?;
        let file_system = text("file_system", "the backed-up file system id, fs-…")?;
        let role = text("role_arn", "the IAM role AWS Backup restores with")?;
        let new_fs = match request.input.get("new_file_system") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(efs_fail(
                    "InvalidInput",
                    format!(
                        "state {}: new_file_system must be true or false, not {other}",
                        request.state_name
                    ),
                ));
            }
        };
        let deadline = Instant::now() + timeout(&request);
        // `role_arn` is AWS Backup's role, not one to assume: build the
        // configuration from the region only.
        let mut plain = request.clone();
        if let Some(o) = plain.input.as_object_mut() {
            o.remove("role_arn");
        }
        let sdk = aws_step::sdk_config(&plain, EFS).await?;
        let backup = match &self.backup_endpoint {
            Some(url) => aws_sdk_backup::Client::from_conf(
                aws_sdk_backup::config::Builder::from(&sdk)
                    .endpoint_url(url)
                    .build(),
            ),
            None => aws_sdk_backup::Client::new(&sdk),
        };
        let key = token_key(&request.idempotency_token);
        let before = json!({"recovery_point": recovery_point, "file_system": file_system, "new_file_system": new_fs});
        aws_step::audit(
            &self.store,
            &request,
            EFS,
            &env,
            "efs.restore",
            &file_system,
            before.clone(),
            json!({"role_arn": role}),
            "requested",
        )
        .await?;
        let started = backup
            .start_restore_job()
            .recovery_point_arn(&recovery_point)
            .iam_role_arn(&role)
            .idempotency_token(&key)
            .resource_type("EFS")
            .metadata("file-system-id", &file_system)
            .metadata("newFileSystem", new_fs.to_string())
            .metadata("Encrypted", "true")
            .metadata("PerformanceMode", "generalPurpose")
            .metadata("CreationToken", &key)
            .send()
            .await
            .map_err(|e| aws_err(EFS, e, &format!("recovery point {recovery_point}")))?;
        let Some(job) = started.restore_job_id().map(str::to_string) else {
            return Err(efs_fail(
                "AwsFailed",
                format!("AWS Backup started a restore of {recovery_point} but returned no job id"),
            ));
        };
        tracing::info!(%job, %file_system, "efs-restore: restore job started");
        let done = loop {
            let d = backup
                .describe_restore_job()
                .restore_job_id(&job)
                .send()
                .await
                .map_err(|e| aws_err(EFS, e, &format!("restore job {job}")))?;
            let status = d
                .status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default();
            let message = d.status_message().unwrap_or("no message").to_string();
            match status.as_str() {
                "COMPLETED" => break d,
                "FAILED" | "ABORTED" => {
                    let reason = if status == "FAILED" {
                        "Failed"
                    } else {
                        "Aborted"
                    };
                    let f = efs_fail(
                        reason,
                        format!(
                            "AWS Backup restore job {job} of {recovery_point} (file system {file_system}) is {status}: {message}; check the role {role} and the recovery point, then restore again"
                        ),
                    );
                    let _ = aws_step::audit(
                        &self.store,
                        &request,
                        EFS,
                        &env,
                        "efs.restore.failed",
                        &file_system,
                        before.clone(),
                        json!({"restore_job": job, "status": status, "message": message}),
                        "failed",
                    )
                    .await;
                    return Err(f);
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                return Err(efs_fail(
                    "Timeout",
                    format!(
                        "AWS Backup restore job {job} is still {status} after {}s: raise timeout_seconds or re-run the step (the same token finds the same job)",
                        timeout(&request).as_secs()
                    ),
                ));
            }
            tracing::debug!(%job, %status, "efs-restore: waiting");
            tokio::time::sleep(self.poll).await;
        };
        let created = done.created_resource_arn().unwrap_or("");
        let fs_id = if created.is_empty() {
            // Restored in place.
            file_system.clone()
        } else {
            file_system_id(created).to_string()
        };
        let out = json!({"restore_job": job, "file_system_id": fs_id});
        aws_step::audit(
            &self.store,
            &request,
            EFS,
            &env,
            "efs.restored",
            &file_system,
            before,
            out.clone(),
            "restored",
        )
        .await?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fs_id_from_arn() {
        assert_eq!(
            super::file_system_id(
                "arn:aws:elasticfilesystem:us-east-1:123456789012:file-system/fs-0abc"
            ),
            "fs-0abc"
        );
        assert_eq!(super::file_system_id("fs-1"), "fs-1");
    }

    #[test]
    fn token_key_is_short_and_stable() {
        let a = super::token_key("exec:state:1");
        assert_eq!(a, super::token_key("exec:state:1"));
        assert_ne!(a, super::token_key("exec:state:2"));
        assert!(a.len() <= 64);
    }
}
