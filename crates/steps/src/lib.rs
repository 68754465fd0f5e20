//! piflow-steps: the built-in `piflow:` steps. Each is a
//! [`TaskHandler`](piflow_engine::TaskHandler) registered in the engine's
//! task registry under its resource name: `piflow:audit-note`,
//! `piflow:approval.waitForTaskToken`, `piflow:last-release`, `piflow:lint`,
//! `piflow:security-scan`, `piflow:http-check`, and with the `aws` feature
//! `piflow:health-gate`, `piflow:release` (a whole product, every
//! service), `piflow:ecs-blue-green`,
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

#[cfg(feature = "aws")]
mod alarms;
pub mod aws_step;
#[cfg(feature = "aws")]
pub mod bluegreen;
#[cfg(feature = "aws")]
pub mod cfn;
#[cfg(feature = "aws")]
mod codebuild;
pub mod contracts;
#[cfg(feature = "aws")]
pub mod ecs_native;
#[cfg(feature = "aws")]
pub mod health;
pub mod http_check;
pub mod lint;
pub mod process;
#[cfg(feature = "aws")]
pub mod product;
pub mod release;
#[cfg(feature = "aws")]
pub mod repoint;
#[cfg(feature = "aws")]
pub mod restore;
pub mod scan;

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::{Value, json};

use piflow_engine::{
    AuditEntry, AuditLog, Failure, StorageError, TaskHandler, TaskRegistry, TaskRequest,
};

/// What opens the audit log when it is first needed.
pub type OpenFuture = BoxFuture<'static, Result<Arc<dyn AuditLog>, StorageError>>;

/// Opens the audit log when first needed.
type Opener = dyn Fn() -> OpenFuture + Send + Sync;

/// The audit trail (the engine's [`AuditLog`], e.g. a store upcast to it),
/// opened on first use: a workflow that writes nothing to it never opens
/// it.
#[derive(Clone)]
pub struct AuditHandle {
    source: Source,
}

#[derive(Clone)]
enum Source {
    Ready(Arc<dyn AuditLog>),
    Lazy {
        open: Arc<Opener>,
        opened: Arc<tokio::sync::Mutex<Option<Arc<dyn AuditLog>>>>,
    },
}

/// The handle's former name, for callers written against it.
pub type StoreHandle = AuditHandle;

impl AuditHandle {
    /// Open the log with `open` the first time a step needs it; an error
    /// is that step's failure, and the next step tries again.
    pub fn lazy(open: impl Fn() -> OpenFuture + Send + Sync + 'static) -> Self {
        AuditHandle {
            source: Source::Lazy {
                open: Arc::new(open),
                opened: Arc::new(tokio::sync::Mutex::new(None)),
            },
        }
    }

    /// A log that is already open (an `Arc<dyn Store>` coerces to it).
    pub fn ready(log: Arc<dyn AuditLog>) -> Self {
        AuditHandle {
            source: Source::Ready(log),
        }
    }

    /// The log, opened now if it was not yet.
    pub async fn get(&self) -> Result<Arc<dyn AuditLog>, StorageError> {
        match &self.source {
            Source::Ready(log) => Ok(log.clone()),
            Source::Lazy { open, opened } => {
                let mut slot = opened.lock().await;
                if let Some(s) = slot.as_ref() {
                    return Ok(s.clone());
                }
                let s = open().await?;
                *slot = Some(s.clone());
                Ok(s)
            }
        }
    }
}

/// A product release record's services, as `{NAME: {task_definition,
/// image}}` of their release after (what a rollback to that release
/// rolls); empty for a single-service record.
pub fn product_services(record: &Value) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    if let Some(Value::Object(services)) = record.get("services") {
        for (name, s) in services {
            if let Some(after) = s.get("after").filter(|a| a.is_object()) {
                out.insert(name.clone(), after.clone());
            }
        }
    }
    out
}

/// Register every built-in step (the AWS ones with the `aws` feature), all
/// writing to the audit trail behind `audit`.
pub fn register_builtins(registry: &mut TaskRegistry, audit: AuditHandle) {
    #[cfg(feature = "aws")]
    register_aws(registry, &audit);
    registry.register(
        "piflow:audit-note",
        Arc::new(AuditNote {
            store: audit.clone(),
        }),
    );
    registry.register(
        "piflow:last-release",
        Arc::new(release::LastRelease {
            store: audit.clone(),
        }),
    );
    registry.register("piflow:lint", Arc::new(lint::Lint::new(audit.clone())));
    registry.register(
        "piflow:security-scan",
        Arc::new(scan::SecurityScan::new(audit.clone())),
    );
    registry.register(
        "piflow:http-check",
        Arc::new(http_check::HttpCheck::new(audit.clone())),
    );
    registry.register("piflow:approval", Arc::new(Approval { store: audit }));
}

/// The steps that call AWS.
#[cfg(feature = "aws")]
fn register_aws(registry: &mut TaskRegistry, audit: &AuditHandle) {
    registry.register(
        "piflow:health-gate",
        Arc::new(health::HealthGate::new(audit.clone())),
    );
    registry.register(
        "piflow:ecs-blue-green",
        Arc::new(bluegreen::EcsBlueGreen::new(audit.clone())),
    );
    registry.register(
        "piflow:release",
        Arc::new(product::Release::new(audit.clone())),
    );
    registry.register(
        "piflow:cloudformation-deploy",
        Arc::new(cfn::CfnDeploy::new(audit.clone())),
    );
    registry.register(
        "piflow:rds-restore",
        Arc::new(restore::RdsRestore::new(audit.clone())),
    );
    registry.register(
        "piflow:efs-restore",
        Arc::new(restore::EfsRestore::new(audit.clone())),
    );
    registry.register(
        "piflow:repoint",
        Arc::new(repoint::Repoint::new(audit.clone())),
    );
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
    pub store: AuditHandle,
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
                .map_err(|e| Failure::new("Approval.StoreFailed", e.to_string()))?;
            store
                .append_entry(AuditEntry {
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
                .map_err(|e| Failure::new("Approval.StoreFailed", e.to_string()))?;
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
    pub store: AuditHandle,
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
                .map_err(|e| Failure::new("AuditNote.StoreFailed", e.to_string()))?;
            let record = store
                .append_entry(entry)
                .await
                .map_err(|e| Failure::new("AuditNote.StoreFailed", e.to_string()))?;
            Ok(json!({"env": record.entry.env, "seq": record.seq, "hash": record.hash}))
        })
    }

    fn real_time(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An audit log in memory.
    #[derive(Default)]
    struct Memory(std::sync::Mutex<Vec<piflow_engine::AuditRecord>>);

    impl AuditLog for Memory {
        fn append_entry(
            &self,
            entry: AuditEntry,
        ) -> piflow_engine::AuditFuture<'_, piflow_engine::AuditRecord> {
            Box::pin(async move {
                let mut all = self.0.lock().unwrap();
                let record = piflow_engine::AuditRecord {
                    seq: all.len() as u64 + 1,
                    entry,
                    prev_hash: String::new(),
                    hash: String::new(),
                };
                all.push(record.clone());
                Ok(record)
            })
        }

        fn records(
            &self,
            env: &str,
            _since: Option<chrono::DateTime<chrono::Utc>>,
        ) -> piflow_engine::AuditFuture<'_, Vec<piflow_engine::AuditRecord>> {
            let env = env.to_string();
            Box::pin(async move {
                let all = self.0.lock().unwrap();
                Ok(all.iter().filter(|r| r.entry.env == env).cloned().collect())
            })
        }
    }

    fn note(n: u32) -> TaskRequest {
        TaskRequest {
            execution: "arn:x".into(),
            state_name: "Note".into(),
            resource: "piflow:audit-note".into(),
            input: json!({"environment": "dev", "outcome": "ok"}),
            task_token: None,
            idempotency_token: format!("tok{n}"),
            credentials: None,
            attempt: 0,
        }
    }

    #[tokio::test]
    async fn the_log_opens_once_and_its_errors_keep_their_code() {
        let opened = Arc::new(AtomicUsize::new(0));
        let count = opened.clone();
        let handle = AuditHandle::lazy(move || {
            let count = count.clone();
            Box::pin(async move {
                if count.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err(StorageError::new("store-unavailable", "locked"));
                }
                let log: Arc<dyn AuditLog> = Arc::new(Memory::default());
                Ok(log)
            })
        });
        let step = AuditNote {
            store: handle.clone(),
        };
        let failed = step.invoke(note(0)).await;
        let Err(f) = failed else {
            panic!("the first open fails");
        };
        assert_eq!(f.error_name(), "AuditNote.StoreFailed");
        assert_eq!(f.cause.as_deref(), Some("[store-unavailable] locked"));
        for n in 1..3 {
            let out = step.invoke(note(n)).await;
            assert!(out.is_ok(), "{out:?}");
        }
        assert_eq!(opened.load(Ordering::SeqCst), 2, "opened once it worked");
        let log = handle.get().await.unwrap();
        assert_eq!(log.records("dev", None).await.unwrap().len(), 2);
    }
}
