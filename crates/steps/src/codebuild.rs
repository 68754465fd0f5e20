//! The CodeBuild runner that `piflow:lint` and `piflow:security-scan` share
//! (`policy.runner: "codebuild"`), with the `aws` feature.

use std::time::Duration;

use serde_json::{Value, json};

use super::AuditHandle;
use super::aws_step;
use super::lint::timeout;
use piflow_engine::{Failure, TaskRequest};

/// Run the step as an AWS CodeBuild build of `project`: `StartBuild` with
/// an idempotency token derived from the request's, then `BatchGetBuilds`
/// until the build is done. The build id is recorded in the audit trail
/// under the request's token, so a re-invocation after a crash polls the
/// same build instead of starting another (moto 5.2.5 ignores CodeBuild's
/// `idempotencyToken`; AWS honours it for 5 minutes).
pub(crate) async fn run_codebuild(
    store: &AuditHandle,
    request: &TaskRequest,
    step: &str,
    action: &str,
    project: &str,
    policy: &Value,
) -> Result<Value, Failure> {
    let env = aws_step::environment(request, step)?;
    let config = aws_step::sdk_config(request, step).await?;
    let client = aws_sdk_codebuild::Client::new(&config);
    let client_token: String = piflow_engine::sha256_hex(request.idempotency_token.as_bytes())
        .chars()
        .take(32)
        .collect();
    let started_action = format!("{action}.codebuild.started");
    let started_token = format!("{}#{started_action}", request.idempotency_token);
    let store_ = store
        .get()
        .await
        .map_err(|e| Failure::new(format!("{step}.StoreFailed"), e.to_string()))?;
    let previous = store_
        .records(&env, None)
        .await
        .map_err(|e| Failure::new(format!("{step}.StoreFailed"), e.to_string()))?
        .into_iter()
        .find(|r| r.entry.token.as_deref() == Some(started_token.as_str()))
        .and_then(|r| {
            r.entry
                .after
                .get("build_id")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    let build_id = match previous {
        Some(id) => {
            tracing::info!(state = %request.state_name, build = %id, "codebuild build already started under this token");
            id
        }
        None => {
            aws_step::audit(
                store,
                request,
                step,
                &env,
                &format!("{action}.codebuild.start"),
                project,
                Value::Null,
                json!({"project": project, "client_token": client_token}),
                "starting",
            )
            .await?;
            let mut env_vars = vec![("PIFLOW_STEP", action.to_string())];
            if let Some(p) = request.input.get("path").and_then(Value::as_str) {
                env_vars.push(("PIFLOW_PATH", p.to_string()));
            }
            env_vars.push(("PIFLOW_POLICY", policy.to_string()));
            let mut start = client
                .start_build()
                .project_name(project)
                .idempotency_token(&client_token);
            for (k, v) in env_vars {
                let var = aws_sdk_codebuild::types::EnvironmentVariable::builder()
                    .name(k)
                    .value(v)
                    .r#type(aws_sdk_codebuild::types::EnvironmentVariableType::Plaintext)
                    .build()
                    .map_err(|e| Failure::new(format!("{step}.InvalidInput"), e.to_string()))?;
                start = start.environment_variables_override(var);
            }
            let out = start.send().await.map_err(|e| {
                Failure::new(
                    format!("{step}.CodeBuildFailed"),
                    format!(
                        "StartBuild of CodeBuild project {project} failed: {}; check that the project exists in the region and that the role may start it",
                        aws_sdk_codebuild::error::DisplayErrorContext(&e)
                    ),
                )
            })?;
            let id = out
                .build_value()
                .and_then(|b| b.id())
                .map(str::to_string)
                .ok_or_else(|| {
                    Failure::new(
                        format!("{step}.CodeBuildFailed"),
                        format!("StartBuild of {project} returned no build id"),
                    )
                })?;
            aws_step::audit(
                store,
                request,
                step,
                &env,
                &started_action,
                project,
                Value::Null,
                json!({"project": project, "build_id": id}),
                "started",
            )
            .await?;
            id
        }
    };
    let poll = Duration::from_secs(
        policy
            .get("poll_seconds")
            .and_then(Value::as_u64)
            .unwrap_or(10),
    );
    let deadline = tokio::time::Instant::now() + timeout(policy);
    let (status, logs) = loop {
        let out = client
            .batch_get_builds()
            .ids(&build_id)
            .send()
            .await
            .map_err(|e| {
                Failure::new(
                    format!("{step}.CodeBuildFailed"),
                    format!(
                        "BatchGetBuilds of {build_id} failed: {}",
                        aws_sdk_codebuild::error::DisplayErrorContext(&e)
                    ),
                )
            })?;
        let Some(build) = out.builds().first() else {
            return Err(Failure::new(
                format!("{step}.CodeBuildFailed"),
                format!("CodeBuild does not know build {build_id} of project {project}"),
            ));
        };
        let status = build
            .build_status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| "UNKNOWN".into());
        if build.build_complete() || status != "IN_PROGRESS" {
            let logs = build.logs().and_then(|l| l.deep_link()).map(str::to_string);
            break (status, logs);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Failure::new(
                format!("{step}.CodeBuildFailed"),
                format!(
                    "CodeBuild build {build_id} was still running after {}s; it goes on in CodeBuild (raise policy.timeout_seconds, or look at it in the console)",
                    timeout(policy).as_secs()
                ),
            ));
        }
        tokio::time::sleep(poll).await;
    };
    let passed = status == "SUCCEEDED";
    let output = json!({"runner": "codebuild", "project": project, "build_id": build_id,
        "status": status, "logs": logs, "passed": passed});
    aws_step::audit(
        store,
        request,
        step,
        &env,
        &format!("{action}.run"),
        project,
        Value::Null,
        output.clone(),
        if passed { "passed" } else { "failed" },
    )
    .await?;
    tracing::info!(state = %request.state_name, build = %build_id, %status, "codebuild build finished");
    if passed {
        return Ok(output);
    }
    Err(Failure::new(
        format!("{step}.Failed"),
        format!(
            "CodeBuild build {build_id} of project {project} ended {status}; its log: {}",
            logs.as_deref().unwrap_or("(no log link)")
        ),
    ))
}
