//! `piflow:repoint`: point ECS services at a restored database and file
//! system by registering a new task definition revision per service (the
//! restore workflow then rolls each out with `piflow:ecs-blue-green`).
//!
//! Input: `region`, `role_arn?`, `environment`, `cluster`, `services`
//! (service names), `database_endpoint`, `file_system_id` (`fs-…`),
//! `env_names?` (`{database: "DB_HOST", file_system?: "…"}`: the container
//! environment variables to set; default `{database: "DB_HOST"}`).
//!
//! For each service, from its current task definition: every container that
//! already defines a named variable gets the new value (when no container
//! defines it, the first container gets it); every EFS volume's
//! `fileSystemId` becomes `file_system_id`. The new revision is tagged
//! `piflow:token` with the step's idempotency token (per service): a
//! re-invocation finds and reuses it instead of registering another.
//! Output: `{services: [{service, task_definition, previous_task_definition}]}`
//! (the new revision, and the one the service ran before: a workflow rolls
//! back to it).

use std::collections::BTreeMap;

use aws_sdk_ecs::types as ecs_t;
use serde_json::{Value, json};

use super::StoreHandle;
use super::aws_step;
use super::restore::{TOKEN_TAG, aws_err, token_key};
use crate::engine::{Failure, TaskRequest};

const STEP: &str = "Repoint";

fn fail(reason: &str, cause: impl Into<String>) -> Failure {
    Failure::new(format!("{STEP}.{reason}"), cause)
}

/// `piflow:repoint`.
#[derive(Clone)]
pub struct Repoint {
    pub store: StoreHandle,
}

impl Repoint {
    pub fn new(store: StoreHandle) -> Self {
        Repoint { store }
    }
}

super::real_time_step!(Repoint);

/// How many of a family's latest revisions are searched for this token's.
const SEARCH: i32 = 20;

impl Repoint {
    async fn run(self, request: TaskRequest) -> Result<Value, Failure> {
        let env = aws_step::environment(&request, STEP)?;
        let bad = |m: String| fail("InvalidInput", format!("state {}: {m}", request.state_name));
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

        let sdk = aws_step::sdk_config(&request, STEP).await?;
        let ecs = aws_sdk_ecs::Client::new(&sdk);
        let mut out = Vec::new();
        for service in &services {
            let (arn, previous) = self
                .repoint(&request, &env, &ecs, &cluster, service, &vars, &fs_id)
                .await?;
            out.push(json!({"service": service, "task_definition": arn, "previous_task_definition": previous}));
        }
        Ok(json!({ "services": out }))
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
        let svc = ecs
            .describe_services()
            .cluster(cluster)
            .services(service)
            .send()
            .await
            .map_err(|e| aws_err(STEP, e, &format!("ECS cluster {cluster}")))?;
        let current = svc
            .services()
            .iter()
            .find(|s| s.status() != Some("INACTIVE"))
            .and_then(|s| {
                // EXTERNAL (task set) services: the primary task set's.
                s.task_definition().or_else(|| {
                    s.task_sets()
                        .iter()
                        .find(|t| t.status() == Some("PRIMARY"))
                        .and_then(|t| t.task_definition())
                })
            })
            .map(str::to_string)
            .ok_or_else(|| {
                fail(
                    "NotFound",
                    format!(
                        "ECS service {service} in cluster {cluster}: not found or without a task definition; check the names and the region"
                    ),
                )
            })?;
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
