//! What every AWS step shares: the SDK configuration for the region named in
//! the step's input (optionally through an assumed role), and audit records
//! written before and after each side effect.
//!
//! Input fields every AWS step reads:
//! - `region` — the target region (e.g. from a git tag); default: the
//!   standard AWS configuration's region;
//! - `role_arn` — optional; assumed with STS for a cross-account target
//!   (session name `piflow-<state>`);
//! - `environment` — the audit chain the step's records join (required by
//!   steps that change something).
//!
//! Credentials and endpoints come from the standard AWS configuration
//! (`AWS_PROFILE`, `AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT_URL`, …), so a step
//! reaches moto exactly as it reaches AWS.

#[cfg(feature = "aws")]
use aws_config::{Region, SdkConfig};
use serde_json::Value;

use super::AuditHandle;
use piflow_engine::{AuditEntry, AuditRecord, Failure, TaskRequest};

/// The SDK configuration for a step: the standard chain, the input's
/// `region`, and the input's `role_arn` assumed when present.
#[cfg(feature = "aws")]
pub async fn sdk_config(request: &TaskRequest, step: &str) -> Result<SdkConfig, Failure> {
    let base = piflow_aws_config::sdk_config().await;
    let region = match request.input.get("region") {
        None | Some(Value::Null) => base.region().cloned(),
        Some(Value::String(r)) if valid_region(r) => Some(Region::new(r.clone())),
        Some(other) => {
            return Err(Failure::new(
                format!("{step}.InvalidInput"),
                format!(
                    "state {}: \"region\" must be an AWS region name such as us-east-1, not {other}",
                    request.state_name
                ),
            ));
        }
    };
    let Some(region) = region else {
        return Err(Failure::new(
            format!("{step}.InvalidInput"),
            format!(
                "state {}: no region: put \"region\" in the step's input or set AWS_REGION",
                request.state_name
            ),
        ));
    };
    let mut builder = base.to_builder();
    builder.set_region(Some(region.clone()));
    if let Some(role) = request.input.get("role_arn").and_then(Value::as_str) {
        let session: String = format!("piflow-{}", request.state_name)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "=,.@-_".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .take(64)
            .collect();
        let provider = aws_config::sts::AssumeRoleProvider::builder(role)
            .session_name(session)
            .region(region)
            .configure(&base)
            .build()
            .await;
        builder.set_credentials_provider(Some(
            aws_credential_types::provider::SharedCredentialsProvider::new(provider),
        ));
    }
    Ok(builder.build())
}

/// `us-east-1`, `eu-west-3`, `us-gov-west-1`, `cn-north-1`, …
pub fn valid_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()))
}

/// One record of a step's change, ready to append.
pub struct Change<'a> {
    pub env: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub before: Value,
    pub after: Value,
    pub result: &'a str,
    /// Deduplicates the record: a step run again with the same token
    /// writes no second one (`{idempotency token}#{action}[#{key}]`).
    pub token: String,
}

/// Append a step's record to the environment's audit chain (actor and
/// execution from the request, the time now); `STEP.StoreFailed` when the
/// store cannot take it, so that the change it announces is not made.
pub async fn record(
    store: &AuditHandle,
    request: &TaskRequest,
    step: &str,
    change: Change<'_>,
) -> Result<AuditRecord, Failure> {
    let store = store
        .get()
        .await
        .map_err(|e| Failure::new(format!("{step}.StoreFailed"), e.to_string()))?;
    store
        .append_entry(AuditEntry {
            env: change.env.to_string(),
            actor: request.execution.clone(),
            action: change.action.to_string(),
            target: change.target.to_string(),
            before: change.before,
            after: change.after,
            result: change.result.to_string(),
            execution: Some(request.execution.clone()),
            at: chrono::Utc::now(),
            token: Some(change.token),
        })
        .await
        .map_err(|e| Failure::new(format!("{step}.StoreFailed"), e.to_string()))
}

/// Write an audit record for a step (deduplicated by `token`: a step run
/// again after a crash with the same token and `action` writes no second
/// record).
#[allow(clippy::too_many_arguments)]
pub async fn audit(
    store: &AuditHandle,
    request: &TaskRequest,
    step: &str,
    env: &str,
    action: &str,
    target: &str,
    before: Value,
    after: Value,
    result: &str,
) -> Result<(), Failure> {
    let token = format!("{}#{action}", request.idempotency_token);
    record(
        store,
        request,
        step,
        Change {
            env,
            action,
            target,
            before,
            after,
            result,
            token,
        },
    )
    .await
    .map(|_| ())
}

/// The input's `environment`, required by steps that change something.
pub fn environment(request: &TaskRequest, step: &str) -> Result<String, Failure> {
    request
        .input
        .get("environment")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            Failure::new(
                format!("{step}.InvalidInput"),
                format!(
                    "state {}: the step needs \"environment\" (a string): the audit chain its records join",
                    request.state_name
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn regions() {
        assert!(super::valid_region("us-east-1"));
        assert!(super::valid_region("us-gov-west-1"));
        assert!(!super::valid_region("us-east"));
        assert!(!super::valid_region("US-EAST-1"));
        assert!(!super::valid_region("us east 1"));
    }
}
