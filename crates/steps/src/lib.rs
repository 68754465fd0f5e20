//! piflow-steps: the built-in `piflow:` steps. Each is a
//! [`TaskHandler`](piflow_engine::TaskHandler) registered in the engine's
//! task registry under its resource name: `piflow:audit-note`,
//! `piflow:approval.waitForTaskToken`, `piflow:last-release`, `piflow:lint`,
//! `piflow:security-scan`, `piflow:http-check`, and with the `aws` feature
//! `piflow:health-gate`, `piflow:ecs-blue-green`,
//! `piflow:cloudformation-deploy`, `piflow:rds-restore`,
//! `piflow:efs-restore` and `piflow:repoint` (docs/workflows.md).
//!
//! **Invariant.** A step that changes something writes an audit record
//! before and after each change and is idempotent under its request's
//! idempotency token: invoked twice with the same token, it changes nothing
//! the second time and answers as the first.
//!
//! **May depend on:** `piflow-engine` (its traits and types), tokio,
//! hyper (HTTP checks), the tools it runs as processes (cfn-lint, checkov),
//! and with the `aws` feature the AWS SDK crates of the services it calls,
//! configured through `piflow-aws-config`.
//!
//! **Never:** the store's crate (it reaches the audit trail through the
//! engine's [`AuditLog`](piflow_engine::AuditLog) trait), the runner, the
//! triggers, HTTP serving.

/// The `TaskHandler` of a step that works in real time (AWS calls, tools,
/// the store): its `run(self, TaskRequest)` on a clone of the step.
macro_rules! real_time_step {
    ($step:ty) => {
        impl piflow_engine::TaskHandler for $step {
            fn invoke(
                &self,
                request: piflow_engine::TaskRequest,
            ) -> futures::future::BoxFuture<
                'static,
                Result<serde_json::Value, piflow_engine::Failure>,
            > {
                let step = self.clone();
                Box::pin(async move { step.run(request).await })
            }

            fn real_time(&self) -> bool {
                true
            }
        }
    };
}
pub(crate) use real_time_step;

pub mod aws_step;
#[cfg(feature = "aws")]
pub mod bluegreen;
#[cfg(feature = "aws")]
pub mod cfn;
#[cfg(feature = "aws")]
pub mod health;
pub mod http_check;
pub mod lint;
pub mod process;
pub mod release;
#[cfg(feature = "aws")]
pub mod repoint;
#[cfg(feature = "aws")]
pub mod restore;
pub mod scan;

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::{Value, json};

use piflow_engine::{Failure, TaskHandler, TaskRegistry, TaskRequest};
use piflow_store::{AuditEntry, Store};

/// Opens a store when first needed.
type Opener = dyn Fn() -> BoxFuture<'static, Result<Arc<dyn Store>, String>> + Send + Sync;

/// A store opened on first use: a workflow that writes nothing to the store
/// never opens it.
#[derive(Clone)]
pub struct StoreHandle {
    open: Arc<Opener>,
    opened: Arc<tokio::sync::Mutex<Option<Arc<dyn Store>>>>,
}

impl StoreHandle {
    pub fn lazy(
        open: impl Fn() -> BoxFuture<'static, Result<Arc<dyn Store>, String>> + Send + Sync + 'static,
    ) -> Self {
        StoreHandle {
            open: Arc::new(open),
            opened: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }

    pub fn ready(store: Arc<dyn Store>) -> Self {
        StoreHandle {
            open: Arc::new(|| {
                Box::pin(async { Err("unreachable: the store is already open".to_string()) })
            }),
            opened: Arc::new(tokio::sync::Mutex::new(Some(store))),
        }
    }

    pub async fn get(&self) -> Result<Arc<dyn Store>, String> {
        let mut slot = self.opened.lock().await;
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        let s = (self.open)().await?;
        *slot = Some(s.clone());
        Ok(s)
    }
}

/// Register every built-in step that needs only the store.
pub fn register_builtins(registry: &mut TaskRegistry, store: StoreHandle) {
    #[cfg(feature = "aws")]
    registry.register(
        "piflow:health-gate",
        Arc::new(health::HealthGate::new(store.clone())),
    );
    registry.register(
        "piflow:audit-note",
        Arc::new(AuditNote {
            store: store.clone(),
        }),
    );
    #[cfg(feature = "aws")]
    registry.register(
        "piflow:ecs-blue-green",
        Arc::new(bluegreen::EcsBlueGreen::new(store.clone())),
    );
    #[cfg(feature = "aws")]
    registry.register(
        "piflow:cloudformation-deploy",
        Arc::new(cfn::CfnDeploy::new(store.clone())),
    );
    registry.register(
        "piflow:last-release",
        Arc::new(release::LastRelease {
            store: store.clone(),
        }),
    );
    registry.register("piflow:lint", Arc::new(lint::Lint::new(store.clone())));
    registry.register(
        "piflow:security-scan",
        Arc::new(scan::SecurityScan::new(store.clone())),
    );
    #[cfg(feature = "aws")]
    registry.register(
        "piflow:rds-restore",
        Arc::new(restore::RdsRestore::new(store.clone())),
    );
    #[cfg(feature = "aws")]
    registry.register(
        "piflow:efs-restore",
        Arc::new(restore::EfsRestore::new(store.clone())),
    );
    #[cfg(feature = "aws")]
    registry.register(
        "piflow:repoint",
        Arc::new(repoint::Repoint::new(store.clone())),
    );
    registry.register(
        "piflow:http-check",
        Arc::new(http_check::HttpCheck::new(store.clone())),
    );
    registry.register("piflow:approval", Arc::new(Approval { store }));
}

/// `piflow:approval.waitForTaskToken`: a manual gate. It records an
/// `approval.requested` audit record naming the task token, and the
/// execution waits until someone answers with
/// `piflow approve TOKEN [--reason R]` (or `send-task-success TOKEN
/// --output JSON`) or `piflow reject TOKEN --reason R` (it fails with
/// `Approval.Rejected`), from any terminal.
///
/// Input: `environment` (required), optional `message`. Output (shown while
/// waiting): `{"token", "message", "approve", "reject"}`.
pub struct Approval {
    pub store: StoreHandle,
}

impl TaskHandler for Approval {
    fn invoke(&self, request: TaskRequest) -> BoxFuture<'static, Result<Value, Failure>> {
        let store = self.store.clone();
        Box::pin(async move {
            let Some(token) = request.task_token.clone() else {
                return Err(Failure::new(
                    "Approval.InvalidResource",
                    format!(
                        "state {}: write the resource as piflow:approval.waitForTaskToken; an approval waits for an answer",
                        request.state_name
                    ),
                ));
            };
            let input = &request.input;
            let Some(env) = input.get("environment").and_then(Value::as_str) else {
                return Err(Failure::new(
                    "Approval.InvalidInput",
                    format!(
                        "state {}: piflow:approval needs \"environment\" (a string) in its input",
                        request.state_name
                    ),
                ));
            };
            let message = input
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("approve to continue")
                .to_string();
            let store = store
                .get()
                .await
                .map_err(|e| Failure::new("Approval.StoreFailed", e))?;
            store
                .append_audit(AuditEntry {
                    env: env.to_string(),
                    actor: request.execution.clone(),
                    action: "approval.requested".into(),
                    target: request.state_name.clone(),
                    before: Value::Null,
                    after: json!({"token": token, "message": message}),
                    result: "waiting".into(),
                    execution: Some(request.execution.clone()),
                    at: chrono::Utc::now(),
                    token: Some(request.idempotency_token.clone()),
                })
                .await
                .map_err(|e| Failure::new("Approval.StoreFailed", format!("[{}] {e}", e.code())))?;
            tracing::info!(state = %request.state_name, %token, "approval requested");
            Ok(json!({
                "token": token,
                "message": message,
                "approve": format!("piflow approve '{token}' --reason '…'"),
                "reject": format!("piflow reject '{token}' --reason '…'"),
            }))
        })
    }

    fn real_time(&self) -> bool {
        true
    }
}

/// `piflow:audit-note`: an explicit entry in the audit trail.
///
/// Input: `environment` (required; the chain it joins), `outcome` (the
/// result, default `noted`), optional `action` (default `note`), `target`,
/// `before`; every other field is kept as the record's `after`. Output:
/// `{"env", "seq", "hash"}` of the record written.
pub struct AuditNote {
    pub store: StoreHandle,
}

impl TaskHandler for AuditNote {
    fn invoke(&self, request: TaskRequest) -> BoxFuture<'static, Result<Value, Failure>> {
        let store = self.store.clone();
        Box::pin(async move {
            let input = request.input;
            let Some(env) = input
                .get("environment")
                .and_then(Value::as_str)
                .map(str::to_string)
            else {
                return Err(Failure::new(
                    "AuditNote.InvalidInput",
                    format!(
                        "state {}: piflow:audit-note needs \"environment\" (a string) in its input",
                        request.state_name
                    ),
                ));
            };
            let text = |k: &str, default: &str| {
                input
                    .get(k)
                    .and_then(Value::as_str)
                    .unwrap_or(default)
                    .to_string()
            };
            let mut after = input.as_object().cloned().unwrap_or_default();
            for k in ["environment", "outcome", "action", "target", "before"] {
                after.remove(k);
            }
            let entry = AuditEntry {
                env,
                actor: request.execution.clone(),
                action: text("action", "note"),
                target: text("target", &request.state_name),
                before: input.get("before").cloned().unwrap_or(Value::Null),
                after: Value::Object(after),
                result: text("outcome", "noted"),
                execution: Some(request.execution),
                at: chrono::Utc::now(),
                token: Some(request.idempotency_token),
            };
            let store = store
                .get()
                .await
                .map_err(|e| Failure::new("AuditNote.StoreFailed", e))?;
            let record = store.append_audit(entry).await.map_err(|e| {
                Failure::new("AuditNote.StoreFailed", format!("[{}] {e}", e.code()))
            })?;
            Ok(json!({"env": record.entry.env, "seq": record.seq, "hash": record.hash}))
        })
    }

    fn real_time(&self) -> bool {
        true
    }
}
