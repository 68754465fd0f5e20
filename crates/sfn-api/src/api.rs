//! One API request, from its bytes to AWS's answer: authentication, the
//! operation named by `X-Amz-Target`, its JSON body, the answer or the
//! error in the awsJson1_0 shape (`{"__type": …, "message": …}`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use piflow_runner::{Finished, RunnerError};
use piflow_store::{AuditEntry, Store, StoreError};
use piflow_triggers::TriggerService;

use crate::arn::Identity;
use crate::sigv4::{self, Caller, KeyPairs, ReplayGuard};
use crate::{activities, executions, machines, versions};

/// The prefix of every `X-Amz-Target` of the Step Functions API.
pub const TARGET_PREFIX: &str = "AWSStepFunctions.";

/// The content type of requests and answers.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.0";

/// The largest request body the API reads: a definition may be 1 MiB of
/// characters, written in JSON with escapes.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// An answer: the HTTP status and the JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    fn ok(body: Value) -> Answer {
        Answer { status: 200, body }
    }
}

/// An operation's failure, as AWS names it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ApiError {
    /// AWS's error type (`ValidationException`, `InvalidDefinition`, …).
    pub kind: &'static str,
    pub message: String,
    pub status: u16,
}

impl ApiError {
    /// Every code [`Self::code`] returns, with its meaning (docs/codes.md).
    pub const CODES: &[(&str, &str)] = &[
        (
            "api-off",
            "the server has no key pair: the Step Functions API is refused",
        ),
        (
            "api-unknown-operation",
            "X-Amz-Target names no operation piflow answers",
        ),
        (
            "api-bad-request",
            "the body is not a JSON object, or a field breaks AWS's constraints (a name, an ARN of another region or account, an input that is not JSON, a paging token)",
        ),
        (
            "api-invalid-definition",
            "the definition is not a valid state machine (InvalidDefinition, with the validator's diagnostics)",
        ),
        (
            "api-not-found",
            "the state machine, version, alias, execution or task token named does not exist",
        ),
        (
            "api-conflict",
            "the request conflicts with what exists: a name taken with another definition or input, an execution that cannot be redriven, a task already answered",
        ),
        (
            "api-limit",
            "a quota of Step Functions is reached (versions, aliases, tags)",
        ),
        (
            "api-store",
            "the store failed or is throttled: nothing was changed, try again",
        ),
    ];

    pub fn code(&self) -> &'static str {
        match self.kind {
            "AccessDeniedException" => "api-off",
            "UnknownOperationException" => "api-unknown-operation",
            "InvalidDefinition" => "api-invalid-definition",
            "StateMachineDoesNotExist"
            | "ExecutionDoesNotExist"
            | "ResourceNotFound"
            | "TaskDoesNotExist" => "api-not-found",
            "StateMachineAlreadyExists"
            | "ExecutionAlreadyExists"
            | "ExecutionNotRedrivable"
            | "ConflictException"
            | "TaskTimedOut"
            | "StateMachineDeleting"
            | "StateMachineTypeNotSupported" => "api-conflict",
            "ServiceQuotaExceededException" | "TooManyTags" | "StateMachineLimitExceeded" => {
                "api-limit"
            }
            "InternalFailure" | "ThrottlingException" | "ServiceUnavailable" => "api-store",
            _ => "api-bad-request",
        }
    }

    /// An error of AWS's type `kind`, HTTP 400.
    pub fn new(kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            message: message.into(),
            status: 400,
        }
    }

    pub fn validation(message: impl Into<String>) -> ApiError {
        ApiError::new("ValidationException", message)
    }

    fn serialization(message: impl Into<String>) -> ApiError {
        ApiError::new("SerializationException", message)
    }

    fn answer(&self) -> Answer {
        Answer {
            status: self.status,
            body: json!({"__type": self.kind, "message": self.message}),
        }
    }
}

/// A store failure: throttling as AWS's `ThrottlingException` (the SDKs
/// retry it), the rest as `InternalFailure` (HTTP 500, retried too).
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Throttled(_) => {
                ApiError::new("ThrottlingException", format!("[{}] {e}", e.code()))
            }
            _ => ApiError {
                kind: "InternalFailure",
                message: format!("[{}] {e}", e.code()),
                status: 500,
            },
        }
    }
}

/// Starts an execution's run in the background of the server (the serve
/// adapter's task set: it is counted, deduplicated by id, and stopped
/// between two commits when the server stops).
pub trait Launcher: Send + Sync {
    fn launch(&self, id: String, env: Option<String>, run: Run);
}

/// One run of an execution (a start, resume or redrive by the runner).
pub type Run = Pin<Box<dyn Future<Output = Result<Finished, RunnerError>> + Send>>;

/// What the operations reach: the trigger service (its store and runner),
/// the launcher of background runs, the server's region and account.
pub struct Backend {
    pub service: Arc<TriggerService>,
    pub launcher: Arc<dyn Launcher>,
    pub identity: Identity,
    /// The activity tasks of the executions this server runs (registered
    /// in the service's task registry: [`crate::activities::Queue::register`]).
    pub activities: Arc<crate::activities::Queue>,
}

impl Backend {
    pub(crate) fn store(&self) -> &dyn Store {
        self.service.store().as_ref()
    }
}

/// One operation's context: the backend, who signed, when.
pub(crate) struct Ctx<'a> {
    pub b: &'a Backend,
    pub caller: &'a Caller,
    pub now: DateTime<Utc>,
}

impl Ctx<'_> {
    /// The actor of what this request does (`sfn-api:ACCESS_KEY_ID`).
    pub fn actor(&self) -> String {
        format!("sfn-api:{}", self.caller.access_key_id)
    }

    /// Record a change in the audit trail (the chain of `env`, or
    /// [`API_ENV`]).
    pub async fn audit(
        &self,
        env: Option<&str>,
        action: &str,
        target: &str,
        after: Value,
        execution: Option<&str>,
    ) -> Result<(), ApiError> {
        self.b
            .store()
            .append_audit(AuditEntry {
                env: env.unwrap_or(API_ENV).to_string(),
                actor: self.actor(),
                action: format!("sfn.{action}"),
                target: target.to_string(),
                before: Value::Null,
                after,
                result: "ok".into(),
                execution: execution.map(str::to_string),
                at: self.now,
                token: None,
            })
            .await?;
        Ok(())
    }
}

/// The audit chain of the API's changes to state machines (executions
/// join their environment's chain when their input names one).
pub const API_ENV: &str = "sfn-api";

/// The API as a server holds it: its key pairs, the signatures it saw,
/// what the operations reach.
pub struct Api {
    keys: Option<KeyPairs>,
    replay: ReplayGuard,
    backend: Backend,
}

impl Api {
    /// An API that accepts requests signed with one of `keys` (`None`: it
    /// refuses every request, naming the variables that turn it on).
    pub fn new(keys: Option<KeyPairs>, backend: Backend) -> Api {
        Api {
            keys,
            replay: ReplayGuard::default(),
            backend,
        }
    }

    /// What the operations reach.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Is the API on (a key pair given)?
    pub fn enabled(&self) -> bool {
        self.keys.is_some()
    }

    /// Answer one request: authenticated first, then its operation.
    pub async fn handle(
        &self,
        req: &sigv4::Request<'_>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Answer {
        let Some(keys) = &self.keys else {
            return ApiError {
                kind: "AccessDeniedException",
                message: "the Step Functions API is off on this server: start `piflow serve` with PIFLOW_API_ACCESS_KEY_ID and PIFLOW_API_SECRET_ACCESS_KEY set (the key pair clients sign with)".into(),
                status: 403,
            }
            .answer();
        };
        // A replayed request is refused when it would change something a
        // second time; an operation that only reads, or whose repetition is
        // answered as the first (an SDK polling DescribeExecution, or
        // retrying a named StartExecution, within one second signs the
        // same bytes), may be sent again.
        let target = req.values("x-amz-target").next().unwrap_or_default();
        let once = ReplayGuard::default();
        let replay = if reads_only(target) || idempotent(target, req.body) {
            &once
        } else {
            &self.replay
        };
        let caller = match sigv4::verify(req, keys, now, replay) {
            Ok(c) => c,
            Err(e) => {
                return Answer {
                    status: e.status(),
                    body: json!({"__type": e.aws_type(), "message": e.to_string()}),
                };
            }
        };
        let cx = Ctx {
            b: &self.backend,
            caller: &caller,
            now,
        };
        match operation(&cx, target, req.body).await {
            Ok(body) => Answer::ok(body),
            Err(e) => e.answer(),
        }
    }
}

async fn operation(cx: &Ctx<'_>, target: &str, body: &[u8]) -> Result<Value, ApiError> {
    let Some(op) = target.strip_prefix(TARGET_PREFIX) else {
        return Err(ApiError::new(
            "UnknownOperationException",
            format!(
                "X-Amz-Target {target:?} is not a Step Functions operation (it starts with {TARGET_PREFIX})"
            ),
        ));
    };
    let body = parse_body(body)?;
    let b = &body;
    match op {
        "ValidateStateMachineDefinition" => crate::ops::validate(b),
        "CreateStateMachine" => machines::create(cx, b).await,
        "UpdateStateMachine" => machines::update(cx, b).await,
        "DescribeStateMachine" => machines::describe(cx, b).await,
        "ListStateMachines" => machines::list(cx, b).await,
        "DeleteStateMachine" => machines::delete(cx, b).await,
        "PublishStateMachineVersion" => versions::publish(cx, b).await,
        "ListStateMachineVersions" => versions::list(cx, b).await,
        "DeleteStateMachineVersion" => versions::delete(cx, b).await,
        "CreateStateMachineAlias" => versions::create_alias(cx, b).await,
        "DescribeStateMachineAlias" => versions::describe_alias(cx, b).await,
        "UpdateStateMachineAlias" => versions::update_alias(cx, b).await,
        "DeleteStateMachineAlias" => versions::delete_alias(cx, b).await,
        "ListStateMachineAliases" => versions::list_aliases(cx, b).await,
        "TagResource" => machines::tag(cx, b).await,
        "UntagResource" => machines::untag(cx, b).await,
        "ListTagsForResource" => machines::list_tags(cx, b).await,
        "StartExecution" => executions::start(cx, b).await,
        "StartSyncExecution" => executions::start_sync(cx, b).await,
        "DescribeExecution" => executions::describe(cx, b).await,
        "ListExecutions" => executions::list(cx, b).await,
        "StopExecution" => executions::stop(cx, b).await,
        "RedriveExecution" => executions::redrive(cx, b).await,
        "GetExecutionHistory" => executions::history(cx, b).await,
        "DescribeStateMachineForExecution" => executions::machine_for(cx, b).await,
        "SendTaskSuccess" => executions::task_success(cx, b).await,
        "SendTaskFailure" => executions::task_failure(cx, b).await,
        "SendTaskHeartbeat" => executions::task_heartbeat(cx, b).await,
        "CreateActivity" => activities::create(cx, b).await,
        "DescribeActivity" => activities::describe(cx, b).await,
        "ListActivities" => activities::list(cx, b).await,
        "DeleteActivity" => activities::delete(cx, b).await,
        "GetActivityTask" => activities::get_task(cx, b).await,
        "TestState" => crate::test_state::test_state(b, &cx.b.service.runner().tasks).await,
        other => Err(ApiError::new(
            "UnknownOperationException",
            format!(
                "piflow does not answer the Step Functions operation {other:?} (docs/sfn-api.md lists the operations it answers)"
            ),
        )),
    }
}

/// Is a second, identical request answered as the first whatever happened
/// in between, changing nothing more: a StartExecution or
/// StartSyncExecution with a `name` (Step Functions' idempotency key: the
/// same start is answered with the execution, or refused once it ended),
/// StopExecution (an ended execution stays ended) and the task answers (a
/// token is answered once). A create, delete, tag or update is not: sent
/// again after another change, it would undo that change.
pub fn idempotent(target: &str, body: &[u8]) -> bool {
    /// The `name` of a start, the rest of the body skipped unread.
    #[derive(serde::Deserialize)]
    struct Named {
        name: Option<String>,
    }
    let op = target.strip_prefix(TARGET_PREFIX).unwrap_or(target);
    match op {
        "StopExecution" | "SendTaskSuccess" | "SendTaskFailure" | "SendTaskHeartbeat" => true,
        "StartExecution" | "StartSyncExecution" => serde_json::from_slice::<Named>(body)
            .ok()
            .is_some_and(|b| b.name.is_some()),
        _ => false,
    }
}

/// Does the operation only read (`Describe…`, `List…`, `Get…`,
/// `Validate…`, `TestState`)? `GetActivityTask` takes a task, and is
/// counted with them: a worker that polls again at once, in the same
/// second, sends the same signed bytes.
pub fn reads_only(target: &str) -> bool {
    let op = target.strip_prefix(TARGET_PREFIX).unwrap_or(target);
    ["Describe", "List", "Get", "Validate"]
        .iter()
        .any(|p| op.starts_with(p))
        || op == "TestState"
}

/// The body: a JSON object (empty means `{}`).
fn parse_body(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(ApiError::serialization(format!(
            "the request body must be a JSON object, not {}",
            piflow_asl::path::json_type_article(&other)
        ))),
        Err(e) => Err(ApiError::serialization(format!(
            "the request body is not JSON: {e}"
        ))),
    }
}

/// A request body from a JSON value (the unit tests' requests).
#[cfg(test)]
pub(crate) fn body_of(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Field readers that answer AWS's `ValidationException` text.
pub(crate) mod fields {
    use serde_json::{Map, Value};

    use super::ApiError;

    /// A string field, with AWS's length constraint.
    pub fn string<'a>(
        body: &'a Map<String, Value>,
        name: &str,
        required: bool,
        max: usize,
    ) -> Result<Option<&'a str>, ApiError> {
        match body.get(name) {
            None | Some(Value::Null) if required => Err(ApiError::validation(format!(
                "1 validation error detected: Value null at '{name}' failed to satisfy constraint: Member must not be null"
            ))),
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                let n = s.chars().count();
                if n == 0 || n > max {
                    return Err(ApiError::validation(format!(
                        "1 validation error detected: Value at '{name}' failed to satisfy constraint: Member must have length between 1 and {max} (it has {n})"
                    )));
                }
                Ok(Some(s))
            }
            Some(other) => Err(ApiError::serialization(format!(
                "field '{name}' must be a string, not {}",
                piflow_asl::path::json_type_article(other)
            ))),
        }
    }

    /// A string field that is one of `values`.
    pub fn one_of<'a>(
        body: &'a Map<String, Value>,
        name: &str,
        values: &[&str],
    ) -> Result<Option<&'a str>, ApiError> {
        let Some(v) = string(body, name, false, 256)? else {
            return Ok(None);
        };
        if !values.contains(&v) {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{v}' at '{name}' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                values.join(", ")
            )));
        }
        Ok(Some(v))
    }

    /// A boolean field.
    pub fn boolean(body: &Map<String, Value>, name: &str) -> Result<Option<bool>, ApiError> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(ApiError::serialization(format!(
                "field '{name}' must be a boolean, not {}",
                piflow_asl::path::json_type_article(other)
            ))),
        }
    }

    /// An integer field within `min..=max`.
    pub fn integer(
        body: &Map<String, Value>,
        name: &str,
        min: i64,
        max: i64,
    ) -> Result<Option<i64>, ApiError> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(i) if (min..=max).contains(&i) => Ok(Some(i)),
                _ => Err(ApiError::validation(format!(
                    "1 validation error detected: Value '{n}' at '{name}' failed to satisfy constraint: Member must be an integer between {min} and {max}"
                ))),
            },
            Some(other) => Err(ApiError::serialization(format!(
                "field '{name}' must be a number, not {}",
                piflow_asl::path::json_type_article(other)
            ))),
        }
    }

    /// An object field, as given.
    pub fn object<'a>(
        body: &'a Map<String, Value>,
        name: &str,
    ) -> Result<Option<&'a Map<String, Value>>, ApiError> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(other) => Err(ApiError::serialization(format!(
                "field '{name}' must be an object, not {}",
                piflow_asl::path::json_type_article(other)
            ))),
        }
    }

    /// A list field, with AWS's length constraint.
    pub fn list<'a>(
        body: &'a Map<String, Value>,
        name: &str,
        min: usize,
        max: usize,
    ) -> Result<Option<&'a Vec<Value>>, ApiError> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(a)) if (min..=max).contains(&a.len()) => Ok(Some(a)),
            Some(Value::Array(a)) => Err(ApiError::validation(format!(
                "1 validation error detected: Value at '{name}' failed to satisfy constraint: Member must have length between {min} and {max} (it has {})",
                a.len()
            ))),
            Some(other) => Err(ApiError::serialization(format!(
                "field '{name}' must be a list, not {}",
                piflow_asl::path::json_type_article(other)
            ))),
        }
    }
}
