//! Executions: started, described, listed, stopped and redriven through the
//! same store and runner as `piflow run` (an execution started here shows
//! in `piflow executions`, and one started there shows here), and the
//! answers to their task tokens.

use serde_json::{Map, Value, json};

use piflow_engine::Status;
use piflow_runner::{Answered, RunnerError, TokenState, execution_id};
use piflow_store::{ExecutionQuery, ExecutionRecord, StartOutcome, StoreError};

use crate::api::{ApiError, Ctx, fields};
use crate::arn::{MachineRef, check_name};
use crate::machines::{epoch, load};
use crate::paging;
use crate::versions::{find, route};

/// Step Functions' limit on an execution's input and a task's output
/// (characters).
pub const MAX_PAYLOAD: usize = 262_144;

/// What a state machine ARN starts: the machine, the store's definition
/// version, and the version and alias ARNs it goes through.
struct Target {
    name: String,
    machine_type: String,
    definition_version: u64,
    version_arn: Option<String>,
    alias_arn: Option<String>,
}

async fn target(cx: &Ctx<'_>, arn: &str) -> Result<Target, ApiError> {
    let r = cx.b.identity.parse_machine("stateMachineArn", arn)?;
    let l = load(cx, r.name()).await?;
    let (version, alias_arn) = match &r {
        MachineRef::Machine(_) => (None, None),
        MachineRef::Version(_, n) => (Some(*n), None),
        MachineRef::Alias(name, alias) => {
            let a = l.machine.aliases.get(alias).ok_or_else(|| {
                ApiError::new(
                    "ResourceNotFound",
                    format!(
                        "Resource not found: '{arn}' (state machine {name} has no alias {alias})"
                    ),
                )
            })?;
            let roll = (uuid::Uuid::new_v4().as_u128() % 100) as u32;
            (route(&a.routing, roll), Some(arn.to_string()))
        }
    };
    let definition_version = match version {
        Some(n) => find(cx, &l, n)?.definition_version,
        None => l.machine.definition_version,
    };
    Ok(Target {
        version_arn: version.map(|n| cx.b.identity.version_arn(&l.name, n)),
        name: l.name,
        machine_type: l.machine.machine_type,
        definition_version,
        alias_arn,
    })
}

fn exec_arn(cx: &Ctx<'_>, r: &ExecutionRecord) -> String {
    cx.b.identity.execution_arn(&r.workflow, &r.name)
}

fn already_exists(cx: &Ctx<'_>, r: &ExecutionRecord, why: &str) -> ApiError {
    ApiError::new(
        "ExecutionAlreadyExists",
        format!("Execution Already Exists: '{}' ({why})", exec_arn(cx, r)),
    )
}

/// An execution of that name exists: Step Functions answers a start with
/// the same input while it runs with it, and refuses any other.
fn same_start(
    cx: &Ctx<'_>,
    r: ExecutionRecord,
    input: &Value,
    test_case: Option<&str>,
) -> Result<ExecutionRecord, ApiError> {
    if r.status != Status::Running {
        return Err(already_exists(cx, &r, &format!("it is {}", r.status)));
    }
    if &r.input != input {
        return Err(already_exists(cx, &r, "it runs with another input"));
    }
    if r.test_case.as_deref() != test_case {
        return Err(already_exists(cx, &r, "it runs with another test case"));
    }
    Ok(r)
}

/// Record a new execution (or find the same start), RUNNING, with no
/// history yet: the runner starts it from its first state.
async fn record(
    cx: &Ctx<'_>,
    body: &Map<String, Value>,
    sync: bool,
) -> Result<(ExecutionRecord, bool), ApiError> {
    let arn = fields::string(body, "stateMachineArn", true, 256)?.unwrap_or_default();
    let name = match fields::string(body, "name", false, 80)? {
        Some(n) => {
            check_name("execution", n)?;
            n.to_string()
        }
        None => uuid::Uuid::new_v4().to_string(),
    };
    let text = fields::string(body, "input", false, MAX_PAYLOAD)?.unwrap_or("{}");
    fields::string(body, "traceHeader", false, 256)?;
    let input: Value = serde_json::from_str(text).map_err(|e| {
        ApiError::new(
            "InvalidExecutionInput",
            format!("Invalid State Machine Execution Input: '{e}' (input must be JSON text)"),
        )
    })?;
    // `…:stateMachine:NAME#CASE` runs NAME with test case CASE of the
    // server's mock file, as Step Functions Local does.
    let (arn, test_case) = match arn.split_once('#') {
        Some((arn, case)) => (arn, Some(case)),
        None => (arn, None),
    };
    let t = target(cx, arn).await?;
    if let Some(case) = test_case {
        cx.b.service
            .runner()
            .tasks
            .test_case(&t.name, case)
            .map_err(|e| {
                ApiError::validation(format!(
                    "Invalid test case '{case}' in stateMachineArn: {e} [{}]",
                    e.code()
                ))
            })?;
    }
    if sync && t.machine_type != "EXPRESS" {
        return Err(ApiError::new(
            "StateMachineTypeNotSupported",
            format!(
                "This operation is not supported by this type of state machine: StartSyncExecution runs EXPRESS state machines; {} is {}",
                t.name, t.machine_type
            ),
        ));
    }
    // The store keeps one execution per name: an existing one comes back
    // instead, and is compared with this start.
    let asked = input.clone();
    let r = ExecutionRecord {
        id: execution_id(&t.name, &name),
        workflow: t.name,
        name,
        version: t.definition_version,
        status: Status::Running,
        env: piflow_triggers::events::input_environment(&input),
        input,
        output: None,
        error: None,
        cause: None,
        trigger: cx.actor(),
        started: cx.now,
        stopped: None,
        revision: 0,
        redrive_count: 0,
        stop_requested: None,
        stop_reason: None,
        version_arn: t.version_arn,
        alias_arn: t.alias_arn,
        test_case: test_case.map(str::to_string),
    };
    match cx.b.store().start_execution(r).await? {
        StartOutcome::Created(r) => Ok((r, true)),
        StartOutcome::Existing(r) => same_start(cx, r, &asked, test_case).map(|r| (r, false)),
    }
}

async fn audit_start(cx: &Ctx<'_>, r: &ExecutionRecord, action: &str) -> Result<(), ApiError> {
    cx.audit(
        r.env.as_deref(),
        action,
        &exec_arn(cx, r),
        json!({"definitionVersion": r.version, "versionArn": r.version_arn, "aliasArn": r.alias_arn}),
        Some(&r.id),
    )
    .await
}

/// `StartExecution`: the execution is recorded, then run in the server's
/// background; the answer does not wait for it.
pub(crate) async fn start(cx: &Ctx<'_>, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let (r, new) = record(cx, body, false).await?;
    if new {
        audit_start(cx, &r, "StartExecution").await?;
        let runner = cx.b.service.runner().clone();
        let id = r.id.clone();
        cx.b.launcher.launch(
            r.id.clone(),
            r.env.clone(),
            Box::pin(async move { runner.resume(&id).await }),
        );
    }
    Ok(json!({"executionArn": exec_arn(cx, &r), "startDate": epoch(r.started)}))
}

/// `StartSyncExecution`: an EXPRESS machine's execution, run to its end
/// before the answer.
pub(crate) async fn start_sync(cx: &Ctx<'_>, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let (r, new) = record(cx, body, true).await?;
    let r = if new {
        audit_start(cx, &r, "StartSyncExecution").await?;
        match cx.b.service.runner().resume(&r.id).await {
            Ok(f) => f.record,
            Err(e) => return Err(runner_error(cx, &r, e)),
        }
    } else {
        r
    };
    let mut out = described(cx, &r);
    if let Some(o) = out.as_object_mut() {
        o.retain(|k, _| {
            [
                "executionArn",
                "stateMachineArn",
                "name",
                "startDate",
                "stopDate",
                "status",
                "error",
                "cause",
                "input",
                "inputDetails",
                "output",
                "outputDetails",
            ]
            .contains(&k.as_str())
        })
    }
    // Billed as AWS bills express executions: the duration, at least
    // 100 ms; memory in AWS's smallest unit, 64 MB.
    let ms = r
        .stopped
        .map_or(0, |t| (t - r.started).num_milliseconds())
        .max(100);
    out["billingDetails"] = json!({"billedMemoryUsedInMB": 64, "billedDurationInMilliseconds": ms});
    Ok(out)
}

fn runner_error(cx: &Ctx<'_>, r: &ExecutionRecord, e: RunnerError) -> ApiError {
    match e {
        RunnerError::Store(s) => s.into(),
        RunnerError::NotFound(_) => not_found(&exec_arn(cx, r)),
        other => ApiError::new("ValidationException", format!("[{}] {other}", other.code())),
    }
}

fn not_found(arn: &str) -> ApiError {
    ApiError::new(
        "ExecutionDoesNotExist",
        format!("Execution Does Not Exist: '{arn}'"),
    )
}

/// The execution an `executionArn` field names.
async fn execution(cx: &Ctx<'_>, body: &Map<String, Value>) -> Result<ExecutionRecord, ApiError> {
    let arn = fields::string(body, "executionArn", true, 256)?.unwrap_or_default();
    let (machine, name) = cx.b.identity.parse_execution("executionArn", arn)?;
    cx.b.store()
        .execution(&execution_id(&machine, &name))
        .await?
        .ok_or_else(|| not_found(arn))
}

fn json_text(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// The DescribeExecution shape of a record.
fn described(cx: &Ctx<'_>, r: &ExecutionRecord) -> Value {
    let mut out = json!({
        "executionArn": exec_arn(cx, r),
        "stateMachineArn": cx.b.identity.machine_arn(&r.workflow),
        "name": r.name,
        "status": r.status.as_str(),
        "startDate": epoch(r.started),
        "input": json_text(&r.input),
        "inputDetails": {"included": true},
        "redriveCount": r.redrive_count,
    });
    if let Some(t) = r.stopped {
        out["stopDate"] = epoch(t);
    }
    if let Some(o) = &r.output
        && r.status == Status::Succeeded
    {
        out["output"] = json!(json_text(o));
        out["outputDetails"] = json!({"included": true});
    }
    if let Some(e) = &r.error {
        out["error"] = json!(e);
    }
    if let Some(c) = &r.cause {
        out["cause"] = json!(c);
    }
    if let Some(v) = &r.version_arn {
        out["stateMachineVersionArn"] = json!(v);
    }
    if let Some(a) = &r.alias_arn {
        out["stateMachineAliasArn"] = json!(a);
    }
    let (status, reason) = match r.status {
        Status::Failed | Status::TimedOut | Status::Aborted => ("REDRIVABLE", None),
        other => (
            "NOT_REDRIVABLE",
            Some(format!("Execution is {other} and cannot be redriven")),
        ),
    };
    out["redriveStatus"] = json!(status);
    if let Some(reason) = reason {
        out["redriveStatusReason"] = json!(reason);
    }
    out
}

/// `DescribeExecution`.
pub(crate) async fn describe(cx: &Ctx<'_>, body: &Map<String, Value>) -> Result<Value, ApiError> {
    fields::one_of(body, "includedData", &["ALL_DATA", "METADATA_ONLY"])?;
    let r = execution(cx, body).await?;
    Ok(described(cx, &r))
}

/// `ListExecutions` of a state machine (or of one of its versions or
/// aliases), newest first.
pub(crate) async fn list(cx: &Ctx<'_>, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let arn = fields::string(body, "stateMachineArn", false, 256)?;
    if fields::string(body, "mapRunArn", false, 2000)?.is_some() {
        return Err(ApiError::validation(
            "piflow runs Map states inline: it has no Map Runs to list executions of (use stateMachineArn)",
        ));
    }
    let Some(arn) = arn else {
        return Err(ApiError::validation("ListExecutions needs stateMachineArn"));
    };
    let status = fields::one_of(
        body,
        "statusFilter",
        &[
            "RUNNING",
            "SUCCEEDED",
            "FAILED",
            "TIMED_OUT",
            "ABORTED",
            "PENDING_REDRIVE",
        ],
    )?;
    let redrive = fields::one_of(body, "redriveFilter", &["REDRIVEN", "NOT_REDRIVEN"])?;
    let r = cx.b.identity.parse_machine("stateMachineArn", arn)?;
    load(cx, r.name()).await?;
    // The store filters by machine and status and stops one past the page;
    // the other filters read every execution of the machine.
    let (start, size) = paging::window("ListExecutions", body)?;
    let limit = (matches!(r, MachineRef::Machine(_)) && redrive.is_none())
        .then(|| start.saturating_add(size).saturating_add(1));
    let records =
        cx.b.store()
            .list_executions(ExecutionQuery {
                status: status.and_then(|s| s.parse().ok()),
                workflow: Some(r.name().to_string()),
                limit,
            })
            .await?;
    let wanted: Vec<ExecutionRecord> = records
        .into_iter()
        .filter(|_| status != Some("PENDING_REDRIVE"))
        .filter(|e| match &r {
            MachineRef::Machine(_) => true,
            MachineRef::Version(..) => e.version_arn.as_deref() == Some(arn),
            MachineRef::Alias(..) => e.alias_arn.as_deref() == Some(arn),
        })
        .filter(|e| match redrive {
            Some("REDRIVEN") => e.redrive_count > 0,
            Some(_) => e.redrive_count == 0,
            None => true,
        })
        .collect();
    let (page, next) = paging::page("ListExecutions", body, wanted)?;
    let items: Vec<Value> = page
        .iter()
        .map(|e| {
            let d = described(cx, e);
            let mut o = Map::new();
            for k in [
                "executionArn",
                "stateMachineArn",
                "name",
                "status",
                "startDate",
                "stopDate",
                "stateMachineVersionArn",
                "stateMachineAliasArn",
                "redriveCount",
            ] {
                if let Some(v) = d.get(k) {
                    o.insert(k.into(), v.clone());
                }
            }
            Value::Object(o)
        })
        .collect();
    Ok(paging::answer("executions", items, next))
}

/// `StopExecution`: the process running it stops it between two commits
/// (or, when none runs it, it is ended here); an execution that already
/// ended is answered with its stop date.
pub(crate) async fn stop(cx: &Ctx<'_>, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let error = fields::string(body, "error", false, 256)?;
    let cause = fields::string(body, "cause", false, 32_768)?;
    let r = execution(cx, body).await?;
    if r.status != Status::Running {
        return Ok(json!({"stopDate": epoch(r.stopped.unwrap_or(r.started))}));
    }
    cx.audit(
        r.env.as_deref(),
        "StopExecution",
        &exec_arn(cx, &r),
        json!({"error": error, "cause": cause}),
        Some(&r.id),
    )
    .await?;
    let reason = piflow_store::StopReason {
        error: error.map(str::to_string),
        cause: cause.map(str::to_string),
    };
    match cx
        .b
        .service
        .runner()
        .stop_with(&r.id, &cx.actor(), reason)
        .await
    {
        Ok(after) => Ok(json!({"stopDate": epoch(after.stopped.unwrap_or(cx.now))})),
        Err(RunnerError::WrongStatus { .. }) => Ok(json!({"stopDate": epoch(cx.now)})),
        Err(e) => Err(runner_error(cx, &r, e)),
    }
}

/// `RedriveExecution`: a FAILED, TIMED_OUT or ABORTED execution runs again
/// from the state that did not finish, in the server's background.
pub(crate) async fn redrive(cx: &Ctx<'_>, body: &Map<String, Value>) -> Result<Value, ApiError> {
    fields::string(body, "clientToken", false, 64)?;
    let r = execution(cx, body).await?;
    if !matches!(
        r.status,
        Status::Failed | Status::TimedOut | Status::Aborted
    ) {
        return Err(ApiError::new(
            "ExecutionNotRedrivable",
            format!(
                "Execution '{}' is {} and cannot be redriven (only FAILED, TIMED_OUT or ABORTED executions can)",
                exec_arn(cx, &r),
                r.status
            ),
        ));
    }
    cx.audit(
        r.env.as_deref(),
        "RedriveExecution",
        &exec_arn(cx, &r),
        json!({"redriveCount": r.redrive_count + 1}),
        Some(&r.id),
    )
    .await?;
    let runner = cx.b.service.runner().clone();
    let id = r.id.clone();
    cx.b.launcher.launch(
        r.id.clone(),
        r.env.clone(),
        Box::pin(async move { runner.redrive(&id).await }),
    );
    Ok(json!({"redriveDate": epoch(cx.now)}))
}

/// The role of an execution's machine (the default role when the machine
/// was deleted since).
async fn role_of(cx: &Ctx<'_>, machine: &str) -> String {
    match load(cx, machine).await {
        Ok(l) => l.machine.role_arn,
        Err(_) => crate::machines::default_role(cx),
    }
}

/// `GetExecutionHistory`: the stored events in AWS's shapes, paged.
pub(crate) async fn history(cx: &Ctx<'_>, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let r = execution(cx, body).await?;
    let events = cx.b.store().events(&r.id).await?;
    let role = role_of(cx, &r.workflow).await;
    crate::history::history(
        &events,
        &crate::history::Started {
            role_arn: &role,
            version_arn: r.version_arn.as_deref(),
            alias_arn: r.alias_arn.as_deref(),
            region: &cx.b.identity.region,
        },
        body,
    )
}

/// `DescribeStateMachineForExecution`: the definition the execution runs.
pub(crate) async fn machine_for(
    cx: &Ctx<'_>,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let r = execution(cx, body).await?;
    let def =
        cx.b.store()
            .definition(&r.workflow, r.version)
            .await?
            .ok_or_else(|| {
                ApiError::from(StoreError::Corrupt(format!(
                    "execution {} runs {} version {}, which is missing",
                    r.id, r.workflow, r.version
                )))
            })?;
    let role = role_of(cx, &r.workflow).await;
    let mut out = json!({
        "stateMachineArn": cx.b.identity.machine_arn(&r.workflow),
        "name": r.workflow,
        "definition": def.definition,
        "roleArn": role,
        "updateDate": epoch(def.created),
        "revisionId": def.content_hash,
    });
    if let Some(v) = &r.version_arn {
        out["stateMachineVersionArn"] = json!(v);
    }
    if let Some(a) = &r.alias_arn {
        out["stateMachineAliasArn"] = json!(a);
    }
    Ok(out)
}

const ANSWERED: &str =
    "Task Timed Out: 'Provided task does not exist anymore' (this task token was already answered)";

/// The `taskToken` field.
fn token_of(body: &Map<String, Value>) -> Result<&str, ApiError> {
    Ok(fields::string(body, "taskToken", true, 2048)?.unwrap_or_default())
}

/// Why no running execution waits for a token, as AWS says it.
fn refused(state: TokenState) -> ApiError {
    match state {
        TokenState::NotAToken => ApiError::new(
            "InvalidToken",
            "Invalid Token: the taskToken is not one piflow handed out (EXECUTION_ARN:EVENT:ATTEMPT)",
        ),
        TokenState::NoExecution(id) => ApiError::new(
            "TaskDoesNotExist",
            format!("Task Does Not Exist: the execution of this token, {id}, does not exist"),
        ),
        TokenState::Ended(r) | TokenState::Open(r) => ApiError::new(
            "TaskTimedOut",
            format!(
                "Task Timed Out: 'Provided task does not exist anymore' (execution {} is {})",
                r.id, r.status
            ),
        ),
    }
}

/// Answer a token through the runner (recorded once, handed to the task
/// when this server runs it); the execution it belongs to.
async fn answer(cx: &Ctx<'_>, token: &str, outcome: Value) -> Result<ExecutionRecord, ApiError> {
    match cx
        .b
        .service
        .runner()
        .answer_task(token, outcome, cx.now)
        .await?
    {
        Answered::Recorded(r) => Ok(r),
        Answered::Refused(state) => Err(refused(state)),
        Answered::Again => Err(ApiError::new("TaskTimedOut", ANSWERED)),
    }
}

/// `SendTaskSuccess`.
pub(crate) async fn task_success(
    cx: &Ctx<'_>,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let output = fields::string(body, "output", true, MAX_PAYLOAD)?.unwrap_or_default();
    let output: Value = serde_json::from_str(output).map_err(|e| {
        ApiError::new(
            "InvalidOutput",
            format!("Invalid Output: '{e}' (output must be JSON text)"),
        )
    })?;
    let r = answer(cx, token_of(body)?, json!({"output": output})).await?;
    cx.audit(
        r.env.as_deref(),
        "SendTaskSuccess",
        &exec_arn(cx, &r),
        Value::Null,
        Some(&r.id),
    )
    .await?;
    Ok(json!({}))
}

/// `SendTaskFailure`.
pub(crate) async fn task_failure(
    cx: &Ctx<'_>,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let error = fields::string(body, "error", false, 256)?;
    let cause = fields::string(body, "cause", false, 32_768)?;
    let r = answer(cx, token_of(body)?, json!({"error": error, "cause": cause})).await?;
    cx.audit(
        r.env.as_deref(),
        "SendTaskFailure",
        &exec_arn(cx, &r),
        json!({"error": error}),
        Some(&r.id),
    )
    .await?;
    Ok(json!({}))
}

/// `SendTaskHeartbeat`: the task's `HeartbeatSeconds` start again, at
/// once when this server runs it, at the next poll of the process that
/// does otherwise ([`piflow_runner::Runner::heartbeat_task`]).
pub(crate) async fn task_heartbeat(
    cx: &Ctx<'_>,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let token = token_of(body)?;
    match cx.b.service.runner().heartbeat_task(token, cx.now).await? {
        Answered::Recorded(_) => Ok(json!({})),
        Answered::Again => Err(ApiError::new("TaskTimedOut", ANSWERED)),
        Answered::Refused(other) => Err(refused(other)),
    }
}
