//! `piflow:repoint`: point ECS services at a restored database and file
//! system, by a new task definition revision per service (env mode), by a
//! Secrets Manager value the services read (secret mode), or both; and put
//! such a secret back (revert mode). The restore workflow then rolls the
//! services out with `piflow:release`.
//!
//! Input: `region`, `role_arn?`, `environment`, `cluster`, `services`
//! (service names), `database_endpoint`, `file_system_id` (`fs-…`),
//! `env_names?` (`{database: "DB_HOST", file_system?: "…"}`: the container
//! environment variables to set; default `{database: "DB_HOST"}`),
//! `secret?` (`{id, key?, file_system_key?}`).
//!
//! Env mode (no `secret`, or `secret` AND `env_names`): for each service,
//! from its current task definition: every container that already defines a
//! named variable gets the new value (when no container defines it, the
//! first container gets it); every EFS volume's `fileSystemId` becomes
//! `file_system_id`. The new revision is tagged `piflow:token` with the
//! step's idempotency token (per service): a re-invocation finds and reuses
//! it instead of registering another.
//!
//! Secret mode (`secret: {id: NAME_OR_ARN, key?: "host", file_system_key?:
//! "…"}`): the AWSCURRENT value is read; a JSON object gets `key` set to
//! `database_endpoint` (and `file_system_key`, when given, to
//! `file_system_id`), its other keys kept; any other string is replaced by
//! the endpoint. The value is written with PutSecretValue, whose
//! ClientRequestToken (the new version id) is derived from the idempotency
//! token: a re-invocation finds that version current and writes nothing.
//! Without `env_names` the task definitions are not changed (each service's
//! current one is both `task_definition` and `previous_task_definition`, so
//! the roll restarts the tasks, which read the new value); a service whose
//! task definition mounts an EFS volume of another file system is refused
//! (`Repoint.InvalidInput`) before anything is written. The secret is
//! written last, after every service was found (and, with `env_names`, its
//! revision registered). Secret values are never logged nor audited.
//!
//! Revert mode (`revert_secret: {arn, to_version}`, with `region`,
//! `environment`; nothing else is read): AWSCURRENT moves back to
//! `to_version` (UpdateSecretVersionStage, RemoveFromVersionId = the current
//! version); when `to_version` is already current nothing changes.
//!
//! Output: `{services: [{service, task_definition, previous_task_definition}],
//! previous: [{service, task_definition}], secret?: {arn, version_id,
//! previous_version_id}}` (the revision to roll out, and the one the
//! service ran before: `previous` is what a workflow rolls back to, in the
//! shape `piflow:release` takes);
//! revert mode: `{secret: {arn, version_id (now current),
//! previous_version_id (the one it replaced)}}`.

use std::collections::BTreeMap;

use aws_sdk_ecs::types as ecs_t;
use serde_json::{Value, json};

use super::AuditHandle;
use super::aws_step;
use super::restore::{TOKEN_TAG, aws_err, token_key};
use piflow_engine::{Failure, TaskRequest};

const STEP: &str = "Repoint";

fn fail(reason: &str, cause: impl Into<String>) -> Failure {
    Failure::new(format!("{STEP}.{reason}"), cause)
}

/// `piflow:repoint`.
#[derive(Clone)]
pub struct Repoint {
    pub store: AuditHandle,
}

impl Repoint {
    pub fn new(store: AuditHandle) -> Self {
        Repoint { store }
    }
}

super::real_time_step!(Repoint);

/// How many of a family's latest revisions are searched for this token's.
const SEARCH: i32 = 20;

/// Secrets Manager's staging labels.
const CURRENT: &str = "AWSCURRENT";
const PREVIOUS: &str = "AWSPREVIOUS";

/// The input's `secret`: `{id, key?, file_system_key?}`.
#[derive(Debug, Clone, PartialEq)]
struct SecretSpec {
    /// Name or ARN.
    id: String,
    /// The JSON key of the database endpoint (default `host`).
    key: String,
    /// The JSON key of the file system id, when it is to be written.
    file_system_key: Option<String>,
}

impl SecretSpec {
    fn parse(v: Option<&Value>) -> Result<Option<SecretSpec>, String> {
        let v = match v {
            None | Some(Value::Null) => return Ok(None),
            Some(v @ Value::Object(_)) => v,
            Some(other) => {
                return Err(format!(
                    "secret must be an object such as {{\"id\": \"product/db\", \"key\": \"host\"}}, not {other}"
                ));
            }
        };
        let field = |k: &str| -> Result<Option<String>, String> {
            match v.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
                Some(other) => Err(format!(
                    "secret.{k} must be a non-empty string, not {other}"
                )),
            }
        };
        let id =
            field("id")?.ok_or("secret.id (the secret's name or ARN) is required".to_string())?;
        let key = field("key")?.unwrap_or_else(|| "host".to_string());
        let file_system_key = field("file_system_key")?;
        if file_system_key.as_deref() == Some(key.as_str()) {
            return Err(format!(
                "secret.key and secret.file_system_key are both {key:?}: give two different keys"
            ));
        }
        Ok(Some(SecretSpec {
            id,
            key,
            file_system_key,
        }))
    }

    /// The new value from the current one, and its shape (`json`/`string`).
    /// Errors name no value.
    fn new_value(
        &self,
        current: &str,
        endpoint: &str,
        fs_id: &str,
    ) -> Result<(String, &'static str), String> {
        match serde_json::from_str::<Value>(current) {
            Ok(Value::Object(mut map)) => {
                map.insert(self.key.clone(), Value::String(endpoint.to_string()));
                if let Some(k) = &self.file_system_key {
                    map.insert(k.clone(), Value::String(fs_id.to_string()));
                }
                let text = serde_json::to_string(&Value::Object(map))
                    .map_err(|e| format!("the new JSON value could not be written: {e}"))?;
                Ok((text, "json"))
            }
            _ if self.file_system_key.is_some() => Err(format!(
                "secret.file_system_key {:?} needs a secret holding a JSON object, and its current value is not one; leave file_system_key out to replace the whole value with the endpoint",
                self.file_system_key.as_deref().unwrap_or_default()
            )),
            _ => Ok((endpoint.to_string(), "string")),
        }
    }
}

/// The version holding a staging label, from DescribeSecret.
async fn stage_holder(
    sm: &aws_sdk_secretsmanager::Client,
    arn: &str,
    stage: &str,
) -> Result<Option<String>, Failure> {
    let d = sm
        .describe_secret()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| aws_err(STEP, e, &format!("secret {arn}")))?;
    Ok(d.version_ids_to_stages().and_then(|m| {
        m.iter()
            .find(|(_, s)| s.iter().any(|s| s == stage))
            .map(|(v, _)| v.clone())
    }))
}

impl Repoint {
    async fn run(self, request: TaskRequest) -> Result<Value, Failure> {
        let env = aws_step::environment(&request, STEP)?;
        let bad = |m: String| fail("InvalidInput", format!("state {}: {m}", request.state_name));
        match request.input.get("revert_secret") {
            None | Some(Value::Null) => {}
            Some(spec) => {
                let field = |k: &str| -> Result<String, Failure> {
                    spec.get(k)
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .ok_or_else(|| {
                            bad(format!(
                                "revert_secret needs \"{k}\" (a string): {{\"arn\": SECRET_ARN, \"to_version\": VERSION_ID}}"
                            ))
                        })
                };
                let (arn, to) = (field("arn")?, field("to_version")?);
                let sdk = aws_step::sdk_config(&request, STEP).await?;
                let sm = aws_sdk_secretsmanager::Client::new(&sdk);
                return self.revert_secret(&request, &env, &sm, &arn, &to).await;
            }
        }
        let secret = SecretSpec::parse(request.input.get("secret")).map_err(&bad)?;
        let text = |k: &str| -> Result<String, Failure> {
            request
                .input
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .ok_or_else(|| {
                    bad(format!(
                        "piflow:repoint needs \"{k}\" (a string) in its input"
                    ))
                })
        };
        let cluster = text("cluster")?;
        let endpoint = text("database_endpoint")?;
        let fs_id = text("file_system_id")?;
        let services: Vec<String> = match request.input.get("services") {
            Some(Value::Array(a)) if !a.is_empty() => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .ok_or_else(|| bad(format!("services: {v} is not a service name")))
                })
                .collect::<Result<_, _>>()?,
            _ => {
                return Err(bad(
                    "piflow:repoint needs \"services\" (a non-empty list of ECS service names)"
                        .into(),
                ));
            }
        };
        // Variable name → value.
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        let names = request
            .input
            .get("env_names")
            .cloned()
            .unwrap_or(Value::Null);
        if !names.is_null() && !names.is_object() {
            return Err(bad(format!(
                "env_names must be an object such as {{\"database\": \"DB_HOST\"}}, not {names}"
            )));
        }
        let name_of = |k: &str, default: Option<&str>| -> Result<Option<String>, Failure> {
            match names.get(k) {
                None | Some(Value::Null) => Ok(default.map(str::to_string)),
                Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
                Some(other) => Err(bad(format!(
                    "env_names.{k} must be an environment variable name, not {other}"
                ))),
            }
        };
        if let Some(n) = name_of("database", Some("DB_HOST"))? {
            vars.insert(n, endpoint.clone());
        }
        if let Some(n) = name_of("file_system", None)? {
            vars.insert(n, fs_id.clone());
        }

        // Secret and env_names: both (new revisions, then the secret).
        let revisions = secret.is_none() || !names.is_null();

        let sdk = aws_step::sdk_config(&request, STEP).await?;
        let ecs = aws_sdk_ecs::Client::new(&sdk);
        let mut out = Vec::new();
        for service in &services {
            let (arn, previous) = if revisions {
                self.repoint(&request, &env, &ecs, &cluster, service, &vars, &fs_id)
                    .await?
            } else {
                let current = current_task_definition(&ecs, &cluster, service).await?;
                let td = describe(&ecs, &current).await?.0;
                let other: Vec<String> = td
                    .volumes()
                    .iter()
                    .filter_map(|v| {
                        let efs = v.efs_volume_configuration()?;
                        (efs.file_system_id() != fs_id).then(|| {
                            format!(
                                "{} ({})",
                                v.name().unwrap_or("unnamed"),
                                efs.file_system_id()
                            )
                        })
                    })
                    .collect();
                if !other.is_empty() {
                    return Err(bad(format!(
                        "ECS service {service}: its task definition {current} mounts EFS volume(s) {} from a file system other than {fs_id}, and a secret alone does not change task definitions; give \"env_names\" too (new revisions with the volumes repointed and the secret written), or leave \"secret\" out; nothing was changed",
                        other.join(", ")
                    )));
                }
                (current.clone(), current)
            };
            out.push(json!({"service": service, "task_definition": arn, "previous_task_definition": previous}));
        }
        // The same services on the revisions they ran before, in the shape
        // of `services` (what piflow:release takes to roll them back).
        let previous: Vec<Value> = out
            .iter()
            .map(|o| json!({"service": o["service"], "task_definition": o["previous_task_definition"]}))
            .collect();
        let mut result = json!({ "services": out, "previous": previous });
        if let Some(spec) = &secret {
            let sm = aws_sdk_secretsmanager::Client::new(&sdk);
            result["secret"] = self
                .write_secret(&request, &env, &sm, spec, &endpoint, &fs_id)
                .await?;
        }
        Ok(result)
    }

    /// Secret mode: the new value under a version id derived from the
    /// idempotency token: `{arn, version_id, previous_version_id}`.
    async fn write_secret(
        &self,
        request: &TaskRequest,
        env: &str,
        sm: &aws_sdk_secretsmanager::Client,
        spec: &SecretSpec,
        endpoint: &str,
        fs_id: &str,
    ) -> Result<Value, Failure> {
        let what = format!("secret {}", spec.id);
        // 39 characters: within Secrets Manager's 32–64.
        let version = token_key(&format!("{}#secret", request.idempotency_token));
        let current = sm
            .get_secret_value()
            .secret_id(&spec.id)
            .version_stage(CURRENT)
            .send()
            .await
            .map_err(|e| aws_err(STEP, e, &what))?;
        let arn = current.arn().unwrap_or(&spec.id).to_string();
        let current_version = current.version_id().unwrap_or_default().to_string();
        if current_version == version {
            // This token's version is current: a re-invocation.
            let previous = stage_holder(sm, &arn, PREVIOUS).await?.unwrap_or_default();
            tracing::info!(secret = %arn, version_id = %version, "repoint: this token's secret version is already current");
            return self
                .secret_repointed(request, env, &arn, &previous, &version)
                .await;
        }
        let Some(text) = current.secret_string() else {
            return Err(fail(
                "InvalidInput",
                format!(
                    "{what}: its current version holds a binary value; piflow:repoint writes string secrets only (a JSON object or a plain host name)"
                ),
            ));
        };
        let (value, shape) = spec
            .new_value(text, endpoint, fs_id)
            .map_err(|m| fail("InvalidInput", format!("{what}: {m}")))?;
        let keys =
            json!({"key": spec.key, "file_system_key": spec.file_system_key, "shape": shape});
        aws_step::audit(
            &self.store,
            request,
            STEP,
            env,
            "secretsmanager.repoint",
            &arn,
            json!({"version_id": current_version}),
            json!({"version_id": version, "value": keys}),
            "requested",
        )
        .await?;
        let put = sm
            .put_secret_value()
            .secret_id(&arn)
            .client_request_token(&version)
            .secret_string(value)
            .send()
            .await
            .map_err(|e| aws_err(STEP, e, &what))?;
        let written = put.version_id().unwrap_or(&version).to_string();
        tracing::info!(secret = %arn, version_id = %written, previous_version_id = %current_version, "repoint: secret written");
        self.secret_repointed(request, env, &arn, &current_version, &written)
            .await
    }

    /// The `secretsmanager.repointed` record (version ids only, never the
    /// value) and the step's `secret` output.
    async fn secret_repointed(
        &self,
        request: &TaskRequest,
        env: &str,
        arn: &str,
        previous: &str,
        version: &str,
    ) -> Result<Value, Failure> {
        aws_step::audit(
            &self.store,
            request,
            STEP,
            env,
            "secretsmanager.repointed",
            arn,
            json!({"version_id": previous}),
            json!({"version_id": version}),
            "written",
        )
        .await?;
        Ok(json!({"arn": arn, "version_id": version, "previous_version_id": previous}))
    }

    /// Revert mode: AWSCURRENT back to `to`.
    async fn revert_secret(
        &self,
        request: &TaskRequest,
        env: &str,
        sm: &aws_sdk_secretsmanager::Client,
        arn: &str,
        to: &str,
    ) -> Result<Value, Failure> {
        let what = format!("secret {arn}");
        let described = sm
            .describe_secret()
            .secret_id(arn)
            .send()
            .await
            .map_err(|e| aws_err(STEP, e, &what))?;
        let arn = described.arn().unwrap_or(arn).to_string();
        let stages = described.version_ids_to_stages();
        if !stages.is_some_and(|m| m.contains_key(to)) {
            return Err(fail(
                "NotFound",
                format!(
                    "{what}: no version {to} (deleted, or another secret's); put the value back by hand with aws secretsmanager put-secret-value"
                ),
            ));
        }
        let current = stages
            .and_then(|m| {
                m.iter()
                    .find(|(_, s)| s.iter().any(|s| s == CURRENT))
                    .map(|(v, _)| v.clone())
            })
            .unwrap_or_default();
        let out = json!({"secret": {"arn": arn, "version_id": to, "previous_version_id": current}});
        if current == to {
            tracing::info!(secret = %arn, version_id = %to, "repoint: the secret version is already current");
            aws_step::audit(
                &self.store,
                request,
                STEP,
                env,
                "secretsmanager.reverted",
                &arn,
                json!({"version_id": current}),
                json!({"version_id": to}),
                "unchanged",
            )
            .await?;
            return Ok(out);
        }
        aws_step::audit(
            &self.store,
            request,
            STEP,
            env,
            "secretsmanager.revert",
            &arn,
            json!({"version_id": current}),
            json!({"version_id": to}),
            "requested",
        )
        .await?;
        let mut update = sm
            .update_secret_version_stage()
            .secret_id(&arn)
            .version_stage(CURRENT)
            .move_to_version_id(to);
        if !current.is_empty() {
            update = update.remove_from_version_id(&current);
        }
        update.send().await.map_err(|e| aws_err(STEP, e, &what))?;
        tracing::info!(secret = %arn, version_id = %to, previous_version_id = %current, "repoint: secret reverted");
        aws_step::audit(
            &self.store,
            request,
            STEP,
            env,
            "secretsmanager.reverted",
            &arn,
            json!({"version_id": current}),
            json!({"version_id": to}),
            "reverted",
        )
        .await?;
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    async fn repoint(
        &self,
        request: &TaskRequest,
        env: &str,
        ecs: &aws_sdk_ecs::Client,
        cluster: &str,
        service: &str,
        vars: &BTreeMap<String, String>,
        fs_id: &str,
    ) -> Result<(String, String), Failure> {
        let key = token_key(&format!("{}#{service}", request.idempotency_token));
        // Audit records are deduplicated per (token, action): one token per
        // service.
        let mut per_service = request.clone();
        per_service.idempotency_token = format!("{}#{service}", request.idempotency_token);
        let request = &per_service;
        let target = format!("{cluster}/{service}");
        let current = current_task_definition(ecs, cluster, service).await?;
        let td = describe(ecs, &current).await?.0;
        let family = td.family().unwrap_or_default().to_string();

        // A revision this token already registered?
        let recent = ecs
            .list_task_definitions()
            .family_prefix(&family)
            .sort(ecs_t::SortOrder::Desc)
            .max_results(SEARCH)
            .send()
            .await
            .map_err(|e| aws_err(STEP, e, &format!("task definition family {family}")))?;
        for arn in recent.task_definition_arns() {
            // family_prefix matches by prefix: keep the family itself.
            if !arn.contains(&format!("/{family}:")) {
                continue;
            }
            let (_, tags) = describe(ecs, arn).await?;
            if tags
                .iter()
                .any(|t| t.key() == Some(TOKEN_TAG) && t.value() == Some(key.as_str()))
            {
                tracing::info!(%service, task_definition = %arn, "repoint: reusing this token's revision");
                return Ok((arn.clone(), current));
            }
        }

        // The new revision.
        let mut containers = td.container_definitions().to_vec();
        for (name, value) in vars {
            let defines = |c: &ecs_t::ContainerDefinition| {
                c.environment()
                    .iter()
                    .any(|kv| kv.name() == Some(name.as_str()))
            };
            let any = containers.iter().any(defines);
            for (i, c) in containers.iter_mut().enumerate() {
                if any && !defines(c) || !any && i > 0 {
                    continue;
                }
                let mut envs: Vec<ecs_t::KeyValuePair> = c
                    .environment()
                    .iter()
                    .filter(|kv| kv.name() != Some(name.as_str()))
                    .cloned()
                    .collect();
                envs.push(
                    ecs_t::KeyValuePair::builder()
                        .name(name)
                        .value(value)
                        .build(),
                );
                c.environment = Some(envs);
            }
        }
        let mut volumes = td.volumes().to_vec();
        let mut replaced = 0;
        for v in &mut volumes {
            if let Some(efs) = v.efs_volume_configuration.as_mut() {
                efs.file_system_id = fs_id.to_string();
                replaced += 1;
            }
        }
        if replaced == 0 {
            tracing::warn!(%service, task_definition = %current, "repoint: no EFS volume to repoint");
        }
        let before = json!({"task_definition": current});
        let planned = json!({"variables": vars.keys().collect::<Vec<_>>(), "file_system_id": fs_id, "efs_volumes": replaced});
        aws_step::audit(
            &self.store,
            request,
            STEP,
            env,
            "ecs.repoint",
            &target,
            before.clone(),
            planned.clone(),
            "requested",
        )
        .await?;
        let registered = ecs
            .register_task_definition()
            .family(&family)
            .set_task_role_arn(td.task_role_arn().map(str::to_string))
            .set_execution_role_arn(td.execution_role_arn().map(str::to_string))
            .set_network_mode(td.network_mode().cloned())
            .set_container_definitions(Some(containers))
            .set_volumes(Some(volumes))
            .set_placement_constraints(Some(td.placement_constraints().to_vec()))
            .set_requires_compatibilities(Some(td.requires_compatibilities().to_vec()))
            .set_cpu(td.cpu().map(str::to_string))
            .set_memory(td.memory().map(str::to_string))
            .set_pid_mode(td.pid_mode().cloned())
            .set_ipc_mode(td.ipc_mode().cloned())
            .set_proxy_configuration(td.proxy_configuration().cloned())
            .set_ephemeral_storage(td.ephemeral_storage().cloned())
            .set_runtime_platform(td.runtime_platform().cloned())
            .tags(ecs_t::Tag::builder().key(TOKEN_TAG).value(&key).build())
            .send()
            .await
            .map_err(|e| aws_err(STEP, e, &format!("task definition family {family}")))?;
        let arn = registered
            .task_definition()
            .and_then(|t| t.task_definition_arn())
            .map(str::to_string)
            .ok_or_else(|| {
                fail(
                    "AwsFailed",
                    format!("ECS registered a revision of {family} but returned no ARN"),
                )
            })?;
        tracing::info!(%service, task_definition = %arn, "repoint: registered");
        aws_step::audit(
            &self.store,
            request,
            STEP,
            env,
            "ecs.repointed",
            &target,
            before,
            json!({"task_definition": arn, "file_system_id": fs_id, "efs_volumes": replaced}),
            "registered",
        )
        .await?;
        Ok((arn, current))
    }
}

/// The task definition a service runs (for EXTERNAL services: its PRIMARY
/// task set's).
async fn current_task_definition(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
) -> Result<String, Failure> {
    let svc = ecs
        .describe_services()
        .cluster(cluster)
        .services(service)
        .send()
        .await
        .map_err(|e| aws_err(STEP, e, &format!("ECS cluster {cluster}")))?;
    svc
            .services()
            .iter()
            .find(|s| s.status() != Some("INACTIVE"))
            .and_then(|s| {
                // EXTERNAL (task set) services: the PRIMARY task set's.
                s.task_sets()
                    .iter()
                    .find(|t| t.status() == Some("PRIMARY"))
                    .and_then(|t| t.task_definition())
                    .or_else(|| s.task_definition())
            })
            .map(str::to_string)
            .ok_or_else(|| {
                fail(
                    "NotFound",
                    format!(
                        "ECS service {service} in cluster {cluster}: not found or without a task definition; check the names and the region"
                    ),
                )
            })
}

/// A task definition and its tags.
async fn describe(
    ecs: &aws_sdk_ecs::Client,
    arn: &str,
) -> Result<(ecs_t::TaskDefinition, Vec<ecs_t::Tag>), Failure> {
    let out = ecs
        .describe_task_definition()
        .task_definition(arn)
        .include(ecs_t::TaskDefinitionField::Tags)
        .send()
        .await
        .map_err(|e| aws_err(STEP, e, &format!("task definition {arn}")))?;
    let td = out
        .task_definition()
        .cloned()
        .ok_or_else(|| fail("NotFound", format!("task definition {arn}: not found")))?;
    Ok((td, out.tags().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::SecretSpec;
    use serde_json::json;

    #[test]
    fn secret_spec_defaults_and_errors() {
        let s = SecretSpec::parse(Some(&json!({"id": "product/db"})))
            .unwrap()
            .unwrap();
        assert_eq!(s.key, "host");
        assert_eq!(s.file_system_key, None);
        assert_eq!(SecretSpec::parse(None).unwrap(), None);
        assert!(SecretSpec::parse(Some(&json!({"key": "host"}))).is_err());
        assert!(SecretSpec::parse(Some(&json!("product/db"))).is_err());
        assert!(
            SecretSpec::parse(Some(
                &json!({"id": "x", "key": "a", "file_system_key": "a"})
            ))
            .is_err()
        );
    }

    #[test]
    fn new_values() {
        let s = SecretSpec {
            id: "x".into(),
            key: "host".into(),
            file_system_key: Some("fs".into()),
        };
        let (v, shape) = s
            .new_value(
                r#"{"user":"app","host":"old","password":"p"}"#,
                "new.db",
                "fs-1",
            )
            .unwrap();
        assert_eq!(shape, "json");
        assert_eq!(
            v,
            r#"{"user":"app","host":"new.db","password":"p","fs":"fs-1"}"#
        );
        let err = s.new_value("old.db", "new.db", "fs-1").unwrap_err();
        assert!(!err.contains("old.db"), "{err}");
        let plain = SecretSpec {
            file_system_key: None,
            ..s
        };
        assert_eq!(
            plain.new_value("old.db", "new.db", "fs-1").unwrap(),
            ("new.db".to_string(), "string")
        );
        assert_eq!(
            plain.new_value("[1]", "new.db", "fs-1").unwrap().1,
            "string"
        );
    }
}
