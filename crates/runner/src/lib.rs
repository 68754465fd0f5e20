//! piflow-runner: durable executions. Start, resume, redrive and stop
//! executions whose history is committed to the store before each next
//! step.
//!
//! **Invariant.** The runner joins the engine and the store: it publishes
//! (or finds) the definition version an execution is pinned to, takes the
//! environment's lease (waiting in its FIFO queue), holds an execution lease
//! that it renews while the process lives, gives the engine a
//! [`StoreJournal`], delivers task-token answers sent from other processes,
//! and writes the execution's record when it ends. A process that dies
//! leaves its leases to expire; `resume` continues from the last committed
//! event, and a Task that started is invoked again with the same token.
//!
//! **May depend on:** `piflow-asl`, `piflow-engine`, `piflow-store`, tokio.
//!
//! **Never:** an AWS SDK crate, HTTP, git, knowledge of particular steps
//! (the caller hands it a task registry).

mod journal;
mod lease;
pub mod liveness;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::watch;

pub use journal::StoreJournal;
pub use lease::{LeaseWait, env_key, exec_key};

use piflow_asl::{Format, LoadOptions, StateMachine, validate_text};
use piflow_engine::{
    Clock, Durable, Engine, EngineOptions, ExecutionOutcome, ExecutionRequest, Failure,
    HistorySink, RecordedEvent, Replay, Status, TaskRegistry, TokenRegistry,
};
use piflow_store::{
    DefinitionVersion, ExecutionRecord, LeaseOutcome, NewDefinition, Resource, StartOutcome,
    StopReason, Store, StoreError, StoredEvent, TaskAnswer,
};

/// What can keep the runner from starting or continuing an execution.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no execution {0}")]
    NotFound(String),
    /// The environment is leased to another execution (`--no-wait`).
    #[error(
        "{key} is held by execution {holder} until {until} (renewed while it runs); {waiting} other execution(s) are waiting. Run without --no-wait to queue"
    )]
    LeaseHeld {
        key: String,
        holder: String,
        until: DateTime<Utc>,
        waiting: usize,
    },
    /// Another live process runs this execution.
    #[error(
        "execution {id} is running in process {holder} (its lease runs until {until}, renewed while that process lives); if it died on another host, resume it after the lease expires (a process of this host that died is taken over at once)"
    )]
    Running {
        id: String,
        holder: String,
        until: DateTime<Utc>,
    },
    #[error("execution {id} is {status}: {what}")]
    WrongStatus {
        id: String,
        status: Status,
        what: String,
    },
    #[error(
        "an execution named {name} of {workflow} already exists with a different input; choose another --name"
    )]
    AlreadyExists { workflow: String, name: String },
    #[error("{0}")]
    Definition(String),
    #[error("{0}")]
    BadRequest(String),
}

impl RunnerError {
    /// Every code [`RunnerError::code`] returns for the runner's own
    /// errors, with its meaning. [`RunnerError::Store`] returns the store
    /// error's code instead ([`StoreError::CODES`]).
    pub const CODES: &[(&str, &str)] = &[
        ("execution-not-found", "no execution has this id"),
        (
            "lease-held",
            "the environment is leased to another execution and the call was not to wait",
        ),
        (
            "execution-running",
            "another live process runs this execution",
        ),
        (
            "wrong-status",
            "the execution's status does not allow what was asked",
        ),
        (
            "execution-already-exists",
            "an execution of this name exists with a different input",
        ),
        (
            "definition-invalid",
            "the workflow definition is not valid or is missing from the store",
        ),
        ("bad-request", "the request itself is not valid"),
    ];

    /// The stable code: the store's for [`RunnerError::Store`], else one of
    /// [`RunnerError::CODES`].
    pub fn code(&self) -> &'static str {
        match self {
            RunnerError::Store(e) => e.code(),
            RunnerError::NotFound(_) => "execution-not-found",
            RunnerError::LeaseHeld { .. } => "lease-held",
            RunnerError::Running { .. } => "execution-running",
            RunnerError::WrongStatus { .. } => "wrong-status",
            RunnerError::AlreadyExists { .. } => "execution-already-exists",
            RunnerError::Definition(_) => "definition-invalid",
            RunnerError::BadRequest(_) => "bad-request",
        }
    }
}

/// A new execution.
#[derive(Debug, Clone)]
pub struct StartRequest {
    pub workflow: String,
    /// The definition's text; published as the workflow's next version
    /// unless it equals the latest one.
    pub definition: String,
    pub source_commit: Option<String>,
    pub author: String,
    /// Unique per workflow (default: a fresh UUID).
    pub name: Option<String>,
    pub input: Value,
    /// Who or what started it: `cli:alice`, `tag:…`, `event:…`.
    pub trigger: String,
    /// Take the lease `env:ENV` for the execution's whole run.
    pub env: Option<String>,
    /// Wait in the environment's queue (else refuse while it is held).
    pub wait: bool,
}

/// How a runner call ended.
#[derive(Debug, Clone)]
pub struct Finished {
    pub record: ExecutionRecord,
    /// The engine's outcome, when this call ran the execution.
    pub outcome: Option<ExecutionOutcome>,
    /// The execution existed already (same name and input): nothing ran.
    pub existing: bool,
}

/// Things worth telling the operator while waiting.
pub type Notice = Arc<dyn Fn(&str) + Send + Sync>;

/// Runs executions durably against one store.
#[derive(Clone)]
pub struct Runner {
    pub store: Arc<dyn Store>,
    pub tasks: TaskRegistry,
    pub clock: Arc<dyn Clock>,
    pub options: EngineOptions,
    pub sink: Option<Arc<dyn HistorySink>>,
    /// How long a lease lives without renewal (renewed every third of it).
    pub lease_ttl: Duration,
    /// This process, as a lease holder:
    /// `pid@host#nonce/start=…,boot=…,pidns=…` ([`liveness::HolderId`]).
    pub holder: String,
    pub notice: Option<Notice>,
    /// The open task tokens of every execution this runner runs (a
    /// `.waitForTaskToken` task's answer or heartbeat sent to this process
    /// reaches the task at once; the store carries answers between
    /// processes).
    pub tokens: Arc<TokenRegistry>,
    /// The executions this runner drives now, each with the signal that
    /// stops it at once (a stop asked of this process does not wait for
    /// the keeper's next read of the record).
    stops: Arc<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Notify>>>>,
}

/// The execution id of `workflow` and `name`: `workflow:name`.
pub fn execution_id(workflow: &str, name: &str) -> String {
    format!("{workflow}:{name}")
}

/// An execution id from an id or an execution ARN
/// (`arn:aws:states:REGION:ACCOUNT:execution:WORKFLOW:NAME`).
pub fn id_from(text: &str) -> String {
    match text.split_once(":execution:") {
        Some((_, rest)) if text.starts_with("arn:") => rest.to_string(),
        _ => text.to_string(),
    }
}

/// The execution a task token belongs to: tokens are
/// `EXECUTION_ARN:ENTERED_EVENT:ATTEMPT`.
pub fn execution_of_token(token: &str) -> Option<String> {
    let mut parts = token.rsplitn(3, ':');
    let attempt = parts.next()?;
    let entered = parts.next()?;
    let arn = parts.next()?;
    if attempt.parse::<u32>().is_err() || entered.parse::<u64>().is_err() {
        return None;
    }
    arn.contains(":execution:").then(|| id_from(arn))
}

/// The execution a task token belongs to, as the store holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenState {
    /// Not a piflow token (`EXECUTION_ARN:EVENT:ATTEMPT`).
    NotAToken,
    /// Its execution (this id) does not exist.
    NoExecution(String),
    /// Its execution ended: its tasks no longer wait.
    Ended(ExecutionRecord),
    /// Its execution runs.
    Open(ExecutionRecord),
}

/// The kind of the store records that carry a task token's heartbeats to
/// the process that runs the task ([`Runner::heartbeat_task`]).
pub const HEARTBEAT_KIND: &str = "task-heartbeat";

/// What became of an answer to a task token.
#[derive(Debug, Clone, PartialEq)]
pub enum Answered {
    /// Recorded for the running execution: the task gets it (at once when
    /// this runner runs it; from the store at its keeper's next poll in
    /// another process).
    Recorded(ExecutionRecord),
    /// Refused: no running execution waits for this token.
    Refused(TokenState),
    /// The token was answered before.
    Again,
}

/// What breaks Step Functions' name rule in a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameProblem {
    /// Not 1 to 80 characters: it has this many.
    Length(usize),
    /// A character names may not hold.
    Char(char),
}

/// Names as Step Functions allows them (executions, state machines,
/// aliases): 1–80 characters, none of whitespace,
/// `< > { } [ ] ? * " # % \ ^ | ~ ` $ & , ; : /` or controls.
pub fn name_problem(name: &str) -> Option<NameProblem> {
    let bad =
        |c: char| c.is_whitespace() || c.is_control() || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(c);
    let n = name.chars().count();
    if n == 0 || n > 80 {
        return Some(NameProblem::Length(n));
    }
    name.chars().find(|c| bad(*c)).map(NameProblem::Char)
}

/// An execution name by [`name_problem`]'s rule.
pub fn check_name(name: &str) -> Result<(), RunnerError> {
    match name_problem(name) {
        None => Ok(()),
        Some(NameProblem::Length(_)) => Err(RunnerError::BadRequest(format!(
            "execution name {name:?} must be 1 to 80 characters"
        ))),
        Some(NameProblem::Char(c)) => Err(RunnerError::BadRequest(format!(
            "execution name {name:?} contains {c:?}; names may not contain whitespace or any of < > {{ }} [ ] ? * \" # % \\ ^ | ~ ` $ & , ; : /"
        ))),
    }
}

fn process_holder() -> String {
    liveness::HolderId::this_process().to_string()
}

/// The lease time-to-live: `PIFLOW_LEASE_TTL` seconds, else 30.
pub fn default_lease_ttl() -> Duration {
    std::env::var("PIFLOW_LEASE_TTL")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| *s > 0.0 && s.is_finite())
        .map_or(Duration::from_secs(30), Duration::from_secs_f64)
}

fn chrono_ttl(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or_else(|_| chrono::Duration::seconds(30))
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

/// Parse and validate a stored definition.
fn machine_of(def: &DefinitionVersion) -> Result<StateMachine, RunnerError> {
    let shown = format!("{} version {}", def.workflow, def.version);
    let format = if def.definition.trim_start().starts_with('{') {
        Format::Json
    } else {
        Format::Yaml
    };
    let v = validate_text(&shown, &def.definition, format, LoadOptions::default());
    match v.machine {
        Some(m) if v.diagnostics.iter().all(|d| !d.is_error()) => Ok(m),
        _ => Err(RunnerError::Definition(format!(
            "{shown} is not a valid state machine: {}",
            v.errors()
                .map(|d| format!("{} at {}", d.message, d.pointer))
                .collect::<Vec<_>>()
                .join("; ")
        ))),
    }
}

fn recorded(events: Vec<StoredEvent>) -> Vec<RecordedEvent> {
    events
        .into_iter()
        .map(|e| RecordedEvent {
            id: e.seq,
            event_type: e.event_type,
            timestamp: e.timestamp,
            details: e.details,
            key: e.key,
            checkpoint: e.checkpoint,
        })
        .collect()
}

impl Runner {
    pub fn new(store: Arc<dyn Store>, tasks: TaskRegistry, clock: Arc<dyn Clock>) -> Runner {
        Runner {
            store,
            tasks,
            clock,
            options: EngineOptions::default(),
            sink: None,
            lease_ttl: default_lease_ttl(),
            holder: process_holder(),
            notice: None,
            tokens: Arc::new(TokenRegistry::default()),
            stops: Arc::default(),
        }
    }

    /// The execution a task token belongs to.
    pub async fn token_state(&self, token: &str) -> Result<TokenState, StoreError> {
        let Some(id) = execution_of_token(token) else {
            return Ok(TokenState::NotAToken);
        };
        Ok(match self.store.execution(&id).await? {
            None => TokenState::NoExecution(id),
            Some(r) if r.status != Status::Running => TokenState::Ended(r),
            Some(r) => TokenState::Open(r),
        })
    }

    /// Answer a task token (`{"output": …}` or `{"error": …, "cause": …}`):
    /// recorded in the store once, then handed to the task when this
    /// runner runs it (`piflow send-task-success` and the API's
    /// SendTaskSuccess/Failure).
    pub async fn answer_task(
        &self,
        token: &str,
        outcome: Value,
        at: DateTime<Utc>,
    ) -> Result<Answered, StoreError> {
        let r = match self.token_state(token).await? {
            TokenState::Open(r) => r,
            other => return Ok(Answered::Refused(other)),
        };
        let answer = TaskAnswer {
            token: token.to_string(),
            outcome,
            at,
        };
        match self.store.answer_task(answer.clone()).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Ok(Answered::Again),
            Err(e) => return Err(e),
        }
        let text = |f: &str| {
            answer
                .outcome
                .get(f)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        // Not open here: another process runs the task; it reads the store.
        let _ = match answer.outcome.get("output") {
            Some(o) => self.tokens.send_success(token, o.clone()),
            None => self
                .tokens
                .send_failure(token, text("error"), text("cause")),
        };
        Ok(Answered::Recorded(r))
    }

    /// A heartbeat for a task token (`piflow send-task-heartbeat` and the
    /// API's SendTaskHeartbeat): the waiting task's `HeartbeatSeconds`
    /// start again, at once when this runner runs it; otherwise the
    /// heartbeat is recorded in the store (a [`Resource`] of kind
    /// [`HEARTBEAT_KIND`] named by the token, whose revision counts the
    /// heartbeats) and the keeper of the process that runs the task hands
    /// it on at its next poll. `Again`: the token was answered already.
    pub async fn heartbeat_task(
        &self,
        token: &str,
        at: DateTime<Utc>,
    ) -> Result<Answered, StoreError> {
        let r = match self.token_state(token).await? {
            TokenState::Open(r) => r,
            other => return Ok(Answered::Refused(other)),
        };
        if self.store.task_answer(token).await?.is_some() {
            return Ok(Answered::Again);
        }
        if self.tokens.send_heartbeat(token).is_ok() {
            return Ok(Answered::Recorded(r));
        }
        let revision = match self.store.resource(HEARTBEAT_KIND, token).await? {
            Some(last) => last.revision,
            None => 0,
        };
        let beat = Resource {
            kind: HEARTBEAT_KIND.to_string(),
            name: token.to_string(),
            body: json!({"at": at}),
            revision,
        };
        match self.store.put_resource(beat).await {
            // Conflict: another heartbeat was recorded since the read; the
            // keeper sees that one, which is as good.
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(Answered::Recorded(r)),
            Err(e) => Err(e),
        }
    }

    fn local_stops(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::Notify>>> {
        self.stops.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn say(&self, text: &str) {
        if let Some(n) = &self.notice {
            n(text);
        }
        tracing::info!(holder = %self.holder, "{text}");
    }

    /// Start a new execution and run it to its end (or return the existing
    /// execution of that name).
    pub async fn start(&self, req: StartRequest) -> Result<Finished, RunnerError> {
        let name = req
            .name
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        check_name(&name)?;
        let id = execution_id(&req.workflow, &name);
        if let Some(existing) = self.store.execution(&id).await? {
            return self.existing(existing, &req.input);
        }
        // Definitions are checked before anything is stored.
        let version = self
            .store
            .publish(NewDefinition {
                workflow: req.workflow.clone(),
                definition: req.definition.clone(),
                author: req.author.clone(),
                source_commit: req.source_commit.clone(),
            })
            .await?;
        let machine = machine_of(&version)?;
        if let Some(env) = &req.env {
            self.take_env_lease(env, &id, req.wait).await?;
        }
        let record = ExecutionRecord {
            id: id.clone(),
            workflow: req.workflow.clone(),
            name: name.clone(),
            version: version.version,
            status: Status::Running,
            input: req.input.clone(),
            output: None,
            error: None,
            cause: None,
            trigger: req.trigger.clone(),
            started: self.clock.now(),
            stopped: None,
            revision: 0,
            redrive_count: 0,
            stop_requested: None,
            stop_reason: None,
            env: req.env.clone(),
            version_arn: None,
            alias_arn: None,
            test_case: None,
        };
        let record = match self.store.start_execution(record).await {
            Ok(StartOutcome::Created(r)) => r,
            Ok(StartOutcome::Existing(r)) => {
                self.release_env(&req.env, &id).await;
                return self.existing(r, &req.input);
            }
            Err(e) => {
                self.release_env(&req.env, &id).await;
                return Err(e.into());
            }
        };
        self.drive(record, machine, Replay::default()).await
    }

    fn existing(&self, r: ExecutionRecord, input: &Value) -> Result<Finished, RunnerError> {
        if &r.input != input {
            return Err(RunnerError::AlreadyExists {
                workflow: r.workflow,
                name: r.name,
            });
        }
        Ok(Finished {
            record: r,
            outcome: None,
            existing: true,
        })
    }

    /// Continue a RUNNING execution from its last committed event.
    pub async fn resume(&self, id: &str) -> Result<Finished, RunnerError> {
        let id = id_from(id);
        let record = self
            .store
            .execution(&id)
            .await?
            .ok_or_else(|| RunnerError::NotFound(id.clone()))?;
        if record.status != Status::Running {
            return Ok(Finished {
                record,
                outcome: None,
                existing: true,
            });
        }
        // The execution's lease first, then the environment's: while an
        // environment is leased to this execution for a live process, the
        // execution's lease is never held by a dead one (lease::take).
        self.claim(&id).await?;
        let prepared = async {
            let machine = self.pinned_machine(&record).await?;
            let replay = Replay::new(recorded(self.store.events(&id).await?));
            if let Some(env) = &record.env {
                self.take_env_lease_holding(env, &id).await?;
            }
            Ok::<_, RunnerError>((machine, replay))
        }
        .await;
        match prepared {
            Ok((machine, replay)) => self.drive(record, machine, replay).await,
            Err(e) => {
                self.release_exec(&id).await;
                Err(e)
            }
        }
    }

    /// Run a FAILED, TIMED_OUT or ABORTED execution again from the state
    /// that did not finish, keeping every state that did (Step Functions'
    /// redrive).
    pub async fn redrive(&self, id: &str) -> Result<Finished, RunnerError> {
        let id = id_from(id);
        let record = self
            .store
            .execution(&id)
            .await?
            .ok_or_else(|| RunnerError::NotFound(id.clone()))?;
        if !matches!(
            record.status,
            Status::Failed | Status::TimedOut | Status::Aborted
        ) {
            return Err(RunnerError::WrongStatus {
                id,
                status: record.status,
                what: "only a FAILED, TIMED_OUT or ABORTED execution can be redriven".into(),
            });
        }
        self.claim(&id).await?;
        match self.redriven(&id, &record).await {
            Ok((record, machine, replay)) => self.drive(record, machine, replay).await,
            Err(e) => {
                self.release_exec(&id).await;
                Err(e)
            }
        }
    }

    /// Redrive's preparation, under the execution's lease: the environment's
    /// lease, `ExecutionRedriven`, the record RUNNING again.
    async fn redriven(
        &self,
        id: &str,
        record: &ExecutionRecord,
    ) -> Result<(ExecutionRecord, StateMachine, Replay), RunnerError> {
        let machine = self.pinned_machine(record).await?;
        if let Some(env) = &record.env {
            self.take_env_lease_holding(env, id).await?;
        }
        let events = self.store.events(id).await?;
        let n = record.redrive_count + 1;
        let seq = events.last().map_or(1, |e| e.seq + 1);
        self.store
            .append_events(
                id,
                vec![StoredEvent {
                    seq,
                    event_type: "ExecutionRedriven".into(),
                    state: None,
                    timestamp: self.clock.now(),
                    details: json!({"redriveCount": n}),
                    key: Some(format!("/~redrive{n}")),
                    checkpoint: None,
                }],
            )
            .await?;
        let record = self
            .update(id, |r| {
                r.status = Status::Running;
                r.redrive_count = n;
                r.stopped = None;
                r.error = None;
                r.cause = None;
                r.output = None;
                r.stop_requested = None;
                r.stop_reason = None;
            })
            .await?;
        let replay = Replay::new(recorded(self.store.events(id).await?));
        Ok((record, machine, replay))
    }

    /// Stop a RUNNING execution: ask the process running it, or, when no
    /// process runs it, end it here.
    pub async fn stop(&self, id: &str, who: &str) -> Result<ExecutionRecord, RunnerError> {
        self.stop_with(id, who, StopReason::default()).await
    }

    /// [`Runner::stop`] with the error and cause the execution ends with
    /// (StopExecution's): on its ExecutionAborted event and its record.
    pub async fn stop_with(
        &self,
        id: &str,
        who: &str,
        reason: StopReason,
    ) -> Result<ExecutionRecord, RunnerError> {
        let id = id_from(id);
        let record = self
            .store
            .execution(&id)
            .await?
            .ok_or_else(|| RunnerError::NotFound(id.clone()))?;
        if record.status != Status::Running {
            return Err(RunnerError::WrongStatus {
                id,
                status: record.status,
                what: "only a RUNNING execution can be stopped".into(),
            });
        }
        match self.live_owner(&id).await? {
            Some(_) => {
                let given = (reason.error.is_some() || reason.cause.is_some()).then_some(reason);
                self.update(&id, |r| {
                    r.stop_requested = Some(who.to_string());
                    r.stop_reason = given.clone();
                })
                .await?;
                // Driven by this process: stopped now; by another: at its
                // keeper's next read of the record.
                if let Some(here) = self.local_stops().get(&id) {
                    here.notify_one();
                }
                // The owner sees the request at its next renewal.
                let deadline = tokio::time::Instant::now() + self.lease_ttl;
                loop {
                    let r = self
                        .store
                        .execution(&id)
                        .await?
                        .ok_or_else(|| RunnerError::NotFound(id.clone()))?;
                    if r.status != Status::Running || tokio::time::Instant::now() >= deadline {
                        return Ok(r);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            None => {
                self.claim(&id).await?;
                let error = reason.error.unwrap_or_else(|| "piflow.Stopped".into());
                let cause = reason.cause.unwrap_or_else(|| format!("stopped by {who}"));
                let events = self.store.events(&id).await?;
                let seq = events.last().map_or(1, |e| e.seq + 1);
                self.store
                    .append_events(
                        &id,
                        vec![StoredEvent {
                            seq,
                            event_type: "ExecutionAborted".into(),
                            state: None,
                            timestamp: self.clock.now(),
                            details: json!({"error": error, "cause": cause}),
                            key: Some("/".into()),
                            checkpoint: None,
                        }],
                    )
                    .await?;
                let stopped = self.clock.now();
                let r = self
                    .update(&id, |r| {
                        r.status = Status::Aborted;
                        r.stopped = Some(stopped);
                        r.stop_requested = Some(who.to_string());
                        r.error = Some(error.clone());
                        r.cause = Some(cause.clone());
                    })
                    .await?;
                self.release_env(&r.env, &id).await;
                self.release_exec(&id).await;
                Ok(r)
            }
        }
    }

    /// The state machine of the definition version an execution is pinned to.
    async fn pinned_machine(&self, record: &ExecutionRecord) -> Result<StateMachine, RunnerError> {
        let def = self
            .store
            .definition(&record.workflow, record.version)
            .await?
            .ok_or_else(|| {
                RunnerError::Definition(format!(
                    "{} version {} is missing from the store",
                    record.workflow, record.version
                ))
            })?;
        machine_of(&def)
    }

    /// RUNNING executions that no live process holds: their lease expired,
    /// or its holder is a process of this host that is gone ([`liveness`]).
    pub async fn orphans(&self) -> Result<Vec<ExecutionRecord>, RunnerError> {
        Ok(self
            .orphan_leases()
            .await?
            .into_iter()
            .map(|(r, _)| r)
            .collect())
    }

    /// [`Runner::orphans`], each with the execution lease read to judge it
    /// (none, expired, or a dead holder's): one lease read per execution.
    async fn orphan_leases(
        &self,
    ) -> Result<Vec<(ExecutionRecord, Option<piflow_store::Lease>)>, RunnerError> {
        let mut out = Vec::new();
        for r in self.store.executions(Some(Status::Running)).await? {
            let lease = self.store.lease(&exec_key(&r.id)).await?;
            if !lease.as_ref().is_some_and(is_live) {
                out.push((r, lease));
            }
        }
        Ok(out)
    }

    /// The orphans a periodic scan resumes: [`Runner::orphans`], less the
    /// executions that have no execution lease at all and started less than
    /// a lease time-to-live ago (a live process may be between writing the
    /// record and taking the lease; if it died there, the next scan after
    /// that time resumes it).
    pub async fn scan_orphans(&self) -> Result<Vec<ExecutionRecord>, RunnerError> {
        let young = now() - chrono_ttl(self.lease_ttl);
        let mut out = Vec::new();
        for (r, lease) in self.orphan_leases().await? {
            if r.started > young && lease.is_none() {
                tracing::debug!(execution = %r.id, "no lease yet; looked at again at the next scan");
                continue;
            }
            out.push(r);
        }
        Ok(out)
    }

    /// Every `every`, hand the orphans [`Runner::scan_orphans`] finds to
    /// `resume` (`piflow serve` resumes them as its own tasks), until the
    /// future is dropped. The first scan is one interval after the call: a
    /// server resumes the orphans it finds at start-up itself.
    pub async fn watch_orphans<F>(self, every: Duration, resume: F)
    where
        F: Fn(ExecutionRecord) + Send + Sync + 'static,
    {
        let every = every.clamp(
            Duration::from_millis(100),
            Duration::from_secs(365 * 86_400),
        );
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            match self.scan_orphans().await {
                Ok(found) => {
                    for o in found {
                        tracing::info!(execution = %o.id, "resuming an orphaned execution");
                        resume(o);
                    }
                }
                Err(e) => {
                    tracing::warn!(code = e.code(), error = %e, "cannot look for orphaned executions")
                }
            }
        }
    }

    /// The execution's lease, when a live process may hold it: it has not
    /// expired and its holder is not a process of this host that is gone
    /// ([`liveness`]).
    async fn live_owner(&self, id: &str) -> Result<Option<piflow_store::Lease>, RunnerError> {
        Ok(self.store.lease(&exec_key(id)).await?.filter(is_live))
    }

    /// Take the execution's lease for this process: when it is free,
    /// expired or already this process's, or at once from a process of
    /// this host that is gone (one conditional write that replaces exactly
    /// the lease that process held: of two processes taking it over, one
    /// wins and the other is refused naming the winner). A live holder,
    /// or one on another host before its lease expires: `Running`.
    async fn claim(&self, id: &str) -> Result<(), RunnerError> {
        let key = exec_key(id);
        let ttl = chrono_ttl(self.lease_ttl);
        let outcome = match self.store.acquire_lease(&key, &self.holder, ttl).await? {
            LeaseOutcome::Held(l) if liveness::is_dead(&l.holder) => {
                self.say(&format!(
                    "taking {id} over from process {}, which is gone",
                    l.holder
                ));
                self.store
                    .take_over_lease(&key, &l, &self.holder, ttl)
                    .await?
            }
            other => other,
        };
        match outcome {
            LeaseOutcome::Acquired(_) => Ok(()),
            LeaseOutcome::Held(l) => Err(RunnerError::Running {
                id: id.to_string(),
                holder: l.holder,
                until: l.expires,
            }),
        }
    }

    /// Give the execution's lease back (it expires by itself otherwise).
    async fn release_exec(&self, id: &str) {
        if let Err(e) = self.store.release_lease(&exec_key(id), &self.holder).await {
            tracing::debug!(execution = %id, error = %e, "could not release the execution lease");
        }
    }

    /// Read-modify-write an execution record, again on a concurrent update.
    async fn update(
        &self,
        id: &str,
        change: impl Fn(&mut ExecutionRecord),
    ) -> Result<ExecutionRecord, RunnerError> {
        let mut attempt = 0;
        loop {
            let mut r = self
                .store
                .execution(id)
                .await?
                .ok_or_else(|| RunnerError::NotFound(id.to_string()))?;
            change(&mut r);
            match self.store.update_execution(r).await {
                Ok(stored) => return Ok(stored),
                Err(StoreError::Conflict(why)) if attempt < 10 => {
                    tracing::debug!(execution = %id, attempt, %why, "record changed meanwhile; again");
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn take_env_lease(&self, env: &str, id: &str, wait: bool) -> Result<(), RunnerError> {
        let notice = self.notice.clone();
        lease::take(
            self.store.as_ref(),
            &env_key(env),
            id,
            self.lease_ttl,
            wait,
            &|text: &str| {
                if let Some(n) = &notice {
                    n(text);
                }
            },
        )
        .await
    }

    /// Wait for the environment's lease (for execution `id`) while keeping
    /// the execution's lease, which this process took first: renewed every
    /// third of its time to live, so that no one takes the execution over
    /// while it waits in the queue. Taken over meanwhile: `Running`.
    async fn take_env_lease_holding(&self, env: &str, id: &str) -> Result<(), RunnerError> {
        let key = exec_key(id);
        let ttl = chrono_ttl(self.lease_ttl);
        let keep = async {
            loop {
                tokio::time::sleep(self.lease_ttl / 3).await;
                match self.store.acquire_lease(&key, &self.holder, ttl).await {
                    Ok(LeaseOutcome::Held(l)) => {
                        return RunnerError::Running {
                            id: id.to_string(),
                            holder: l.holder,
                            until: l.expires,
                        };
                    }
                    Ok(LeaseOutcome::Acquired(_)) => {}
                    Err(e) => {
                        tracing::warn!(lease = %key, error = %e, "could not renew the lease; trying again")
                    }
                }
            }
        };
        tokio::select! {
            taken = self.take_env_lease(env, id, true) => taken,
            lost = keep => Err(lost),
        }
    }

    async fn release_env(&self, env: &Option<String>, id: &str) {
        if let Some(env) = env {
            let key = env_key(env);
            if let Err(e) = self.store.release_lease(&key, id).await {
                tracing::warn!(lease = %key, execution = %id, error = %e, "could not release the lease; it expires by itself");
            }
            let _ = self.store.leave_queue(&key, id).await;
        }
    }

    /// Run an execution (new, resumed or redriven) under its leases until
    /// it ends, then record how it ended.
    /// End a claimed execution without running it: write its end with
    /// `end`, release its leases.
    async fn end_unrun(
        &self,
        id: &str,
        end: impl Fn(&mut ExecutionRecord),
    ) -> Result<Finished, RunnerError> {
        let r = self.update(id, end).await?;
        self.release_env(&r.env, id).await;
        self.release_exec(id).await;
        Ok(Finished {
            record: r,
            outcome: None,
            existing: false,
        })
    }

    async fn drive(
        &self,
        record: ExecutionRecord,
        machine: StateMachine,
        replay: Replay,
    ) -> Result<Finished, RunnerError> {
        let id = record.id.clone();
        let key = exec_key(&id);
        // The lease written by the claim runs from no earlier than this.
        let claimed_at = tokio::time::Instant::now();
        if let Err(e) = self.claim(&id).await {
            self.release_env(&record.env, &id).await;
            return Err(e);
        }
        // Ended before the process that ran it could record it.
        if let Some(end) = replay.terminal() {
            let (status, output, error, cause) = ended_by(end);
            let at = end.timestamp;
            return self
                .end_unrun(&id, |r| {
                    r.status = status;
                    r.output = output.clone();
                    r.error = error.clone();
                    r.cause = cause.clone();
                    r.stopped = Some(at);
                })
                .await;
        }
        if !replay.is_empty() {
            self.say(&format!(
                "continuing {id} after event {}{}",
                replay.last_id(),
                if record.redrive_count > 0 {
                    format!(" (redrive {})", record.redrive_count)
                } else {
                    String::new()
                }
            ));
        }
        // This execution's tasks: its test case's mocked responses when it
        // names one.
        let tasks = match self
            .tasks
            .for_execution(&record.workflow, record.test_case.as_deref())
        {
            Ok(t) => t,
            Err(e) => {
                let at = self.clock.now();
                return self
                    .end_unrun(&id, |r| {
                        r.status = Status::Failed;
                        r.error = Some("States.Runtime".into());
                        r.cause = Some(format!("{e} [{}]", e.code()));
                        r.stopped = Some(at);
                    })
                    .await;
            }
        };
        let lost = Arc::new(AtomicBool::new(false));
        let valid_until = Arc::new(std::sync::Mutex::new(
            claimed_at + self.lease_ttl.mul_f64(0.9),
        ));
        let mut engine = Engine::new(tasks, self.clock.clone());
        engine.options = self.options.clone();
        engine.sink = self.sink.clone();
        engine.tokens = self.tokens.clone();
        let tokens = engine.tokens.clone();
        let journal = Arc::new(StoreJournal::new(
            self.store.clone(),
            id.clone(),
            lost.clone(),
            valid_until.clone(),
        ));
        let request = ExecutionRequest {
            machine: Arc::new(machine),
            state_machine_name: record.workflow.clone(),
            execution_name: record.name.clone(),
            input: record.input.clone(),
            role_arn: None,
            durable: Some(Durable {
                journal,
                replay: Arc::new(replay),
                start_date: Some(record.started),
                redrive_count: record.redrive_count,
            }),
        };
        // Renew the leases, watch for stop requests and task answers.
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let (done_tx, done_rx) = watch::channel(false);
        let keeper = tokio::spawn(lease::keep(lease::Keeper {
            store: self.store.clone(),
            id: id.clone(),
            holder: self.holder.clone(),
            env: record.env.clone(),
            ttl: self.lease_ttl,
            tokens,
            lost: lost.clone(),
            since: claimed_at,
            valid_until,
            stop: stop_tx,
            done: done_rx,
        }));
        let here = Arc::new(tokio::sync::Notify::new());
        self.local_stops().insert(id.clone(), here.clone());
        let (store, stopped_id) = (self.store.clone(), id.clone());
        let stop = async move {
            let requested = async {
                while !*stop_rx.borrow() {
                    if stop_rx.changed().await.is_err() {
                        futures::future::pending::<()>().await;
                    }
                }
            };
            tokio::select! {
                () = requested => {}
                () = here.notified() => {}
            }
            // The error and cause the stop gave, from the record.
            match store.execution(&stopped_id).await {
                Ok(Some(r)) => r.stop_reason.map_or_else(
                    || Failure::from(()),
                    |s| Failure {
                        error: s.error,
                        cause: s.cause,
                    },
                ),
                _ => Failure::from(()),
            }
        };
        let outcome = engine.run_until(request, stop).await;
        self.local_stops().remove(&id);
        let _ = done_tx.send(true);
        let _ = keeper.await;
        if outcome.status == Status::Running {
            // The journal could not be written (store down, lease lost):
            // the execution stays RUNNING and resumable.
            self.say(&format!(
                "{id} stopped without finishing: {}; run `piflow resume {id}` when the store is reachable",
                outcome.cause.as_deref().unwrap_or("the store failed")
            ));
            if !lost.load(Ordering::SeqCst) {
                self.release_exec(&id).await;
            }
            let r = self
                .store
                .execution(&id)
                .await
                .ok()
                .flatten()
                .unwrap_or(record);
            return Ok(Finished {
                record: r,
                outcome: Some(outcome),
                existing: false,
            });
        }
        let r = self
            .update(&id, |r| {
                r.status = outcome.status;
                r.output = outcome.output.clone();
                r.error = outcome.error.clone();
                r.cause = outcome.cause.clone();
                r.stopped = Some(outcome.stop_date);
            })
            .await?;
        self.release_env(&r.env, &id).await;
        if let Err(e) = self.store.release_lease(&key, &self.holder).await {
            tracing::warn!(lease = %key, error = %e, "could not release the execution lease; it expires by itself");
        }
        Ok(Finished {
            record: r,
            outcome: Some(outcome),
            existing: false,
        })
    }
}

/// Status, output, error and cause from a terminal history event.
fn ended_by(e: &RecordedEvent) -> (Status, Option<Value>, Option<String>, Option<String>) {
    let text = |f: &str| e.details.get(f).and_then(Value::as_str).map(str::to_string);
    match e.event_type.as_str() {
        "ExecutionSucceeded" => (Status::Succeeded, Some(e.details.clone()), None, None),
        "ExecutionFailed" => (Status::Failed, None, text("error"), text("cause")),
        "ExecutionTimedOut" => (Status::TimedOut, None, None, None),
        _ => (Status::Aborted, None, text("error"), text("cause")),
    }
}

/// A lease some live process holds: not expired, and its holder not a
/// process of this host that is gone.
fn is_live(l: &piflow_store::Lease) -> bool {
    l.expires > now() && !liveness::is_dead(&l.holder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_tokens_and_names() {
        assert_eq!(id_from("upgrade:r1"), "upgrade:r1");
        assert_eq!(
            id_from("arn:aws:states:us-east-1:000000000000:execution:upgrade:r1"),
            "upgrade:r1"
        );
        assert_eq!(
            execution_of_token("arn:aws:states:us-east-1:000000000000:execution:upgrade:r1:17:0"),
            Some("upgrade:r1".into())
        );
        assert_eq!(execution_of_token("not-a-token"), None);
        assert_eq!(execution_of_token("a:b:c"), None);
        assert!(check_name("release-1.0").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("has space").is_err());
        assert!(check_name("a:b").is_err());
        assert!(check_name(&"x".repeat(81)).is_err());
    }

    #[test]
    fn every_code_is_listed() {
        let errors = [
            RunnerError::NotFound("w:e".into()),
            RunnerError::LeaseHeld {
                key: "env:prod".into(),
                holder: "w:f".into(),
                until: now(),
                waiting: 0,
            },
            RunnerError::Running {
                id: "w:e".into(),
                holder: "p".into(),
                until: now(),
            },
            RunnerError::WrongStatus {
                id: "w:e".into(),
                status: Status::Succeeded,
                what: "only a RUNNING execution can be stopped".into(),
            },
            RunnerError::AlreadyExists {
                workflow: "w".into(),
                name: "e".into(),
            },
            RunnerError::Definition("bad".into()),
            RunnerError::BadRequest("bad".into()),
        ];
        for e in &errors {
            assert!(
                RunnerError::CODES.iter().any(|(c, _)| *c == e.code()),
                "{}",
                e.code()
            );
        }
        assert_eq!(errors.len(), RunnerError::CODES.len());
        let store = RunnerError::Store(StoreError::Corrupt("x".into()));
        assert!(StoreError::CODES.iter().any(|(c, _)| *c == store.code()));
    }
}
