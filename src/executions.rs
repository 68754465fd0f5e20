//! Durable executions from the terminal: `run` (the durable part),
//! `resume`, `redrive`, `stop`, `executions`, `history`,
//! `send-task-success`, `send-task-failure` and `send-task-heartbeat`.

use std::sync::Arc;

use owo_colors::OwoColorize;
use serde_json::{Map, Value, json};

use super::run::{print_human, progress, result_json, user};
use super::store_cmds::StoreArg;
use super::tasks::{Mocks, registry, service};
use super::{EXIT_FAILED, EXIT_USAGE, OutputFormat, use_color};
use piflow_engine::{EngineOptions, HistorySink, Status, SystemClock};
use piflow_runner::{Answered, Finished, Runner, RunnerError, StartRequest, TokenState, id_from};
use piflow_steps::AuditHandle;
use piflow_store::{ExecutionRecord, Store, StoreError, StoredEvent};
use piflow_triggers::TriggerService;

#[derive(clap::Args, Debug)]
pub struct ResumeArgs {
    /// The execution (its id `WORKFLOW:NAME` or its ARN).
    #[arg(required_unless_present = "orphans", conflicts_with = "orphans")]
    id: Option<String>,
    /// Resume every RUNNING execution that no live process holds.
    #[arg(long)]
    orphans: bool,
    /// Mocked task responses, as given to the run (mocks are not stored).
    #[arg(long)]
    mock: Option<String>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    format: OutputFormat,
    #[command(flatten)]
    store: StoreArg,
}

#[derive(clap::Args, Debug)]
pub struct RedriveArgs {
    /// The execution (its id `WORKFLOW:NAME` or its ARN).
    id: String,
    /// Mocked task responses (mocks are not stored).
    #[arg(long)]
    mock: Option<String>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    format: OutputFormat,
    #[command(flatten)]
    store: StoreArg,
}

#[derive(clap::Args, Debug)]
pub struct StopArgs {
    /// The execution (its id `WORKFLOW:NAME` or its ARN).
    id: String,
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    format: OutputFormat,
    #[command(flatten)]
    store: StoreArg,
}

#[derive(clap::Args, Debug)]
pub struct ExecutionsArgs {
    /// Only executions with this status (RUNNING, SUCCEEDED, FAILED,
    /// TIMED_OUT, ABORTED).
    #[arg(long)]
    status: Option<Status>,
    /// Only executions of this workflow.
    #[arg(long)]
    workflow: Option<String>,
    /// At most this many, the newest (the store stops reading there).
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    format: OutputFormat,
    #[command(flatten)]
    store: StoreArg,
}

#[derive(clap::Args, Debug)]
pub struct HistoryArgs {
    /// The execution (its id `WORKFLOW:NAME` or its ARN).
    id: String,
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    format: OutputFormat,
    #[command(flatten)]
    store: StoreArg,
}

#[derive(clap::Args, Debug)]
pub struct SendSuccessArgs {
    /// The task token the waiting task handed out.
    token: String,
    /// The task's output: JSON text, or @FILE.
    #[arg(long, default_value = "{}")]
    output: String,
    #[command(flatten)]
    store: StoreArg,
}

#[derive(clap::Args, Debug)]
pub struct SendFailureArgs {
    /// The task token the waiting task handed out.
    token: String,
    #[arg(long)]
    error: Option<String>,
    #[arg(long)]
    cause: Option<String>,
    #[command(flatten)]
    store: StoreArg,
}

#[derive(clap::Args, Debug)]
pub struct SendHeartbeatArgs {
    /// The task token the waiting task handed out.
    token: String,
    #[command(flatten)]
    store: StoreArg,
}

#[derive(clap::Args, Debug)]
pub struct ApproveArgs {
    /// The token of the waiting approval (shown by the run, and in the
    /// audit trail's `approval.requested` record).
    token: String,
    /// Why (recorded with the answer).
    #[arg(long)]
    reason: Option<String>,
    #[command(flatten)]
    store: StoreArg,
}

/// `piflow approve TOKEN [--reason R]`: answer an approval with
/// `{"approved": true, "by": USER, "reason": R}`.
pub fn approve(args: ApproveArgs) -> anyhow::Result<u8> {
    let output = json!({"approved": true, "by": user(), "reason": args.reason});
    runtime()?.block_on(answer(&args.store, &args.token, json!({"output": output})))
}

/// `piflow reject TOKEN --reason R`: fail the approval with
/// `Approval.Rejected` and the reason as the cause.
pub fn reject(args: ApproveArgs) -> anyhow::Result<u8> {
    let cause = format!(
        "rejected by {}{}",
        user(),
        args.reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default()
    );
    runtime()?.block_on(answer(
        &args.store,
        &args.token,
        json!({"error": "Approval.Rejected", "cause": cause}),
    ))
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

async fn open(store: &StoreArg) -> Result<Arc<dyn Store>, u8> {
    store.open().await.map_err(|e| {
        eprintln!("piflow: error: {e}");
        EXIT_USAGE
    })
}

fn runner(
    store: Arc<dyn Store>,
    mocks: Mocks,
    sink: Option<Arc<dyn HistorySink>>,
    human: bool,
) -> Runner {
    let tasks = registry(mocks, AuditHandle::ready(store.clone()));
    let mut r = Runner::new(store, tasks, Arc::new(SystemClock));
    show(&mut r, sink, human);
    r
}

/// The live display of a runner: each state as it runs, and (human) what
/// it waits for.
fn show(r: &mut Runner, sink: Option<Arc<dyn HistorySink>>, human: bool) {
    r.sink = sink;
    if human {
        r.notice = Some(Arc::new(|text: &str| eprintln!("piflow: {text}")));
    }
}

/// The ARN of a stored execution.
fn arn_of(r: &ExecutionRecord) -> String {
    let o = EngineOptions::default();
    format!(
        "arn:aws:states:{}:{}:execution:{}:{}",
        o.region, o.account, r.workflow, r.name
    )
}

/// The result object of `run`, `resume` and `redrive`.
fn finished_json(f: &Finished) -> Value {
    let mut v = match &f.outcome {
        Some(o) => result_json(o),
        None => {
            let r = &f.record;
            let mut v = json!({"execution": arn_of(r), "status": r.status});
            if r.status == Status::Succeeded {
                v["output"] = r.output.clone().unwrap_or(Value::Null);
            } else if r.status != Status::Running {
                v["error"] = r.error.clone().map(Value::String).unwrap_or(Value::Null);
                v["cause"] = r.cause.clone().map(Value::String).unwrap_or(Value::Null);
            }
            v
        }
    };
    v["id"] = Value::String(f.record.id.clone());
    v
}

fn exit_of(f: &Finished) -> u8 {
    if f.record.status == Status::Succeeded {
        0
    } else {
        EXIT_FAILED
    }
}

fn report(f: &Finished, format: OutputFormat, history: bool) -> anyhow::Result<u8> {
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&finished_json(f))?),
        OutputFormat::Human => {
            match &f.outcome {
                Some(o) => print_human(o, use_color(), history),
                None => {
                    let r = &f.record;
                    if f.existing {
                        println!(
                            "execution {} already exists (started {} by {}): nothing was run",
                            r.id,
                            r.started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                            r.trigger
                        );
                    }
                    println!("{}", r.status);
                    match r.status {
                        Status::Succeeded => println!(
                            "output: {}",
                            serde_json::to_string_pretty(
                                r.output.as_ref().unwrap_or(&Value::Null)
                            )?
                        ),
                        Status::Running => {}
                        _ => {
                            println!("error: {}", r.error.as_deref().unwrap_or("-"));
                            println!("cause: {}", r.cause.as_deref().unwrap_or("-"));
                        }
                    }
                }
            }
            println!("id: {}", f.record.id);
            if f.record.status == Status::Running {
                println!(
                    "the execution did not finish; continue it with: piflow resume {}",
                    f.record.id
                );
            }
        }
    }
    Ok(exit_of(f))
}

fn refuse(e: &RunnerError) -> u8 {
    eprintln!("piflow: error: [{}] {e}", e.code());
    match e {
        RunnerError::BadRequest(_) | RunnerError::NotFound(_) => EXIT_USAGE,
        RunnerError::Store(StoreError::Unavailable { .. }) => EXIT_USAGE,
        _ => EXIT_FAILED,
    }
}

/// `piflow run` on the wall clock: a durable execution, started through
/// the trigger service.
pub fn run_durable(
    store: &StoreArg,
    mocks: Mocks,
    display: Option<Arc<super::run::Progress>>,
    format: OutputFormat,
    history: bool,
    start: StartRequest,
) -> anyhow::Result<u8> {
    runtime()?.block_on(async move {
        let store = match open(store).await {
            Ok(s) => s,
            Err(code) => return Ok(code),
        };
        start_and_report(service(store, mocks), display, format, history, start).await
    })
}

/// Start a checked request through the service and say how it ended: the
/// states as they run and the audit records the steps write, shown live
/// (`display`), then the result.
pub async fn start_and_report(
    mut service: TriggerService,
    display: Option<Arc<super::run::Progress>>,
    format: OutputFormat,
    history: bool,
    start: StartRequest,
) -> anyhow::Result<u8> {
    let human = format == OutputFormat::Human;
    let sink = display.clone().map(|d| -> Arc<dyn HistorySink> { d });
    // The audit records the steps write, shown live under their state.
    let tail = match (&display, &start.env) {
        (Some(d), Some(env)) => Some(d.tail_audit(service.store().clone(), env.clone()).await),
        _ => None,
    };
    show(service.runner_mut(), sink, human);
    let orphans = if human {
        service.runner().orphans().await.map_or(0, |o| o.len())
    } else {
        0
    };
    if orphans > 0 {
        eprintln!(
            "piflow: note: {orphans} execution(s) stopped without finishing and no process runs them: `piflow executions --status RUNNING`, `piflow resume --orphans`"
        );
    }
    let started = service.start(start).await;
    if let (Some(d), Some(tail)) = (&display, tail) {
        d.end_tail();
        let _ = tail.await;
    }
    match started {
        Ok(f) => report(&f, format, history),
        Err(e) => Ok(refuse(&e)),
    }
}

/// Run `body` with a runner over the store (and `--mock` tasks) in a
/// multi-threaded runtime; usage errors exit 2 before anything runs.
fn with_runner<F, Fut>(
    store: &StoreArg,
    mock: Option<&str>,
    format: OutputFormat,
    body: F,
) -> anyhow::Result<u8>
where
    F: FnOnce(Runner) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<u8>>,
{
    let mocks = match Mocks::read(mock) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("piflow: error: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let human = format == OutputFormat::Human;
    runtime()?.block_on(async move {
        let store = match open(store).await {
            Ok(s) => s,
            Err(code) => return Ok(code),
        };
        body(runner(
            store,
            mocks,
            human.then(|| -> Arc<dyn HistorySink> { progress(use_color()) }),
            human,
        ))
        .await
    })
}

pub fn resume(args: ResumeArgs) -> anyhow::Result<u8> {
    let human = args.format == OutputFormat::Human;
    with_runner(
        &args.store,
        args.mock.as_deref(),
        args.format,
        |r| async move {
            let Some(id) = args.id else {
                // Every orphan, concurrently.
                let orphans = match r.orphans().await {
                    Ok(o) => o,
                    Err(e) => return Ok(refuse(&e)),
                };
                if human {
                    println!("{} orphaned execution(s)", orphans.len());
                }
                let runs = orphans.iter().map(|o| r.resume(&o.id));
                let mut code = 0;
                let mut results = Vec::new();
                for (o, res) in orphans.iter().zip(futures::future::join_all(runs).await) {
                    match res {
                        Ok(f) => {
                            code = code.max(exit_of(&f));
                            if human {
                                println!("{} {}", f.record.status, o.id);
                            }
                            results.push(finished_json(&f));
                        }
                        Err(e) => {
                            code = code.max(refuse(&e));
                            results.push(
                                json!({"id": o.id, "error": e.code(), "cause": e.to_string()}),
                            );
                        }
                    }
                }
                if !human {
                    println!("{}", serde_json::to_string_pretty(&results)?);
                }
                return Ok(code);
            };
            match r.resume(&id).await {
                Ok(f) => report(&f, args.format, false),
                Err(e) => Ok(refuse(&e)),
            }
        },
    )
}

pub fn redrive(args: RedriveArgs) -> anyhow::Result<u8> {
    with_runner(
        &args.store,
        args.mock.as_deref(),
        args.format,
        |r| async move {
            match r.redrive(&args.id).await {
                Ok(f) => report(&f, args.format, false),
                Err(e) => Ok(refuse(&e)),
            }
        },
    )
}

pub fn stop(args: StopArgs) -> anyhow::Result<u8> {
    runtime()?.block_on(async move {
        let store = match open(&args.store).await {
            Ok(s) => s,
            Err(code) => return Ok(code),
        };
        let r = runner(store, Mocks::default(), None, false);
        match r.stop(&args.id, &format!("cli:{}", user())).await {
            Ok(rec) => {
                match args.format {
                    OutputFormat::Json => println!(
                        "{}",
                        serde_json::to_string_pretty(&json!({
                            "execution": arn_of(&rec), "id": rec.id, "status": rec.status
                        }))?
                    ),
                    OutputFormat::Human if rec.status == Status::Running => println!(
                        "asked the process running {} to stop; it stops within its lease renewal ({} s)",
                        rec.id,
                        r.lease_ttl.as_secs() / 3
                    ),
                    OutputFormat::Human => println!("{} {}", rec.status, rec.id),
                }
                Ok(0)
            }
            Err(e) => Ok(refuse(&e)),
        }
    })
}

pub fn executions(args: ExecutionsArgs) -> anyhow::Result<u8> {
    runtime()?.block_on(async move {
        let store = match open(&args.store).await {
            Ok(s) => s,
            Err(code) => return Ok(code),
        };
        let list = store
            .list_executions(piflow_store::ExecutionQuery {
                status: args.status,
                workflow: args.workflow.clone(),
                limit: args.limit,
            })
            .await?;
        let orphans: Vec<String> = {
            let r = runner(store.clone(), Mocks::default(), None, false);
            r.orphans()
                .await
                .map(|o| o.into_iter().map(|e| e.id).collect())
                .unwrap_or_default()
        };
        let ts = |t: &chrono::DateTime<chrono::Utc>| {
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        match args.format {
            OutputFormat::Json => {
                let items: Vec<Value> = list
                    .iter()
                    .map(|e| {
                        json!({
                            "execution": e.id,
                            "workflow": e.workflow,
                            "version": e.version,
                            "status": e.status,
                            "started": ts(&e.started),
                            "stopped": e.stopped.as_ref().map(ts),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&items)?);
            }
            OutputFormat::Human => {
                let color = use_color();
                for e in &list {
                    let text = e.status.as_str();
                    let status = match (e.status, color) {
                        (Status::Succeeded, true) => format!("{:<10}", text.green()),
                        (Status::Running, true) => format!("{:<10}", text.yellow()),
                        (_, true) => format!("{:<10}", text.red()),
                        _ => format!("{text:<10}"),
                    };
                    let note = if orphans.contains(&e.id) {
                        "  (orphaned: piflow resume to continue)"
                    } else {
                        ""
                    };
                    println!(
                        "{status} {:<44} v{:<4} {} {}{note}",
                        e.id,
                        e.version,
                        ts(&e.started),
                        e.stopped.as_ref().map(ts).unwrap_or_else(|| "-".into()),
                    );
                }
                println!("{} execution(s)", list.len());
            }
        }
        Ok(0)
    })
}

/// One event as `piflow history --format json` prints it: id, type, state,
/// timestamp and the event's details beside them.
pub fn history_json(e: &StoredEvent) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(e.seq));
    m.insert("type".into(), json!(e.event_type));
    m.insert("state".into(), json!(e.state));
    m.insert(
        "timestamp".into(),
        json!(
            e.timestamp
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        ),
    );
    let t = e.event_type.as_str();
    if t.ends_with("StateEntered") || t == "ExecutionStarted" {
        m.insert("input".into(), e.details.clone());
    } else if t.ends_with("StateExited") || t == "ExecutionSucceeded" {
        m.insert("output".into(), e.details.clone());
    } else {
        match &e.details {
            Value::Object(d) => {
                for (k, v) in d {
                    if !m.contains_key(k) {
                        m.insert(k.clone(), v.clone());
                    }
                }
            }
            Value::Null => {}
            other => {
                m.insert("details".into(), other.clone());
            }
        }
    }
    Value::Object(m)
}

pub fn history(args: HistoryArgs) -> anyhow::Result<u8> {
    runtime()?.block_on(async move {
        let store = match open(&args.store).await {
            Ok(s) => s,
            Err(code) => return Ok(code),
        };
        let id = id_from(&args.id);
        if store.execution(&id).await?.is_none() {
            eprintln!("piflow: error: [execution-not-found] no execution {id}");
            return Ok(EXIT_USAGE);
        }
        let events = store.events(&id).await?;
        match args.format {
            OutputFormat::Json => {
                let items: Vec<Value> = events.iter().map(history_json).collect();
                println!("{}", serde_json::to_string_pretty(&items)?);
            }
            OutputFormat::Human => {
                for e in &events {
                    let extra = match e.details.get("error").and_then(Value::as_str) {
                        Some(err) => format!("  {err}"),
                        None => String::new(),
                    };
                    println!(
                        "{:>5} {} {:<28} {}{extra}",
                        e.seq,
                        e.timestamp
                            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        e.event_type,
                        e.state.as_deref().unwrap_or("")
                    );
                }
                println!("{} event(s)", events.len());
            }
        }
        Ok(0)
    })
}

/// What a token holder sends: an answer (`{"output": …}` or `{"error": …,
/// "cause": …}`), or a heartbeat.
enum Reply {
    Answer(Value),
    Heartbeat,
}

async fn answer(store: &StoreArg, token: &str, outcome: Value) -> anyhow::Result<u8> {
    reply(store, token, Reply::Answer(outcome)).await
}

async fn reply(store: &StoreArg, token: &str, reply: Reply) -> anyhow::Result<u8> {
    let store = match open(store).await {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let r = runner(store, Mocks::default(), None, false);
    let now = chrono::Utc::now();
    let (answered, done) = match reply {
        Reply::Answer(outcome) => (r.answer_task(token, outcome, now).await?, "answered"),
        Reply::Heartbeat => (r.heartbeat_task(token, now).await?, "heartbeat recorded"),
    };
    let id = match answered {
        Answered::Recorded(rec) => rec.id,
        Answered::Refused(TokenState::NotAToken) => {
            eprintln!(
                "piflow: error: [task-does-not-exist] {token:?} is not a piflow task token (EXECUTION_ARN:EVENT:ATTEMPT)"
            );
            return Ok(EXIT_USAGE);
        }
        Answered::Refused(TokenState::NoExecution(id)) => {
            eprintln!(
                "piflow: error: [task-does-not-exist] the execution of this token, {id}, does not exist"
            );
            return Ok(EXIT_USAGE);
        }
        Answered::Refused(TokenState::Ended(rec) | TokenState::Open(rec)) => {
            eprintln!(
                "piflow: error: [task-does-not-exist] execution {} is {}; its tasks no longer wait",
                rec.id, rec.status
            );
            return Ok(EXIT_FAILED);
        }
        Answered::Again => {
            eprintln!(
                "piflow: error: [task-already-answered] this task token was already answered"
            );
            return Ok(EXIT_FAILED);
        }
    };
    let orphan = r
        .orphans()
        .await
        .map(|o| o.iter().any(|e| e.id == id))
        .unwrap_or(false);
    if orphan {
        println!("{done}; no process runs {id} now: continue it with `piflow resume {id}`");
    } else {
        println!("{done}; {id} continues");
    }
    Ok(0)
}

pub fn send_task_success(args: SendSuccessArgs) -> anyhow::Result<u8> {
    let output = match super::run::read_input(&args.output) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("piflow: error: {}", e.replace("--input", "--output"));
            return Ok(EXIT_USAGE);
        }
    };
    runtime()?.block_on(answer(&args.store, &args.token, json!({"output": output})))
}

/// `piflow send-task-heartbeat TOKEN`: the waiting task's
/// `HeartbeatSeconds` start again.
pub fn send_task_heartbeat(args: SendHeartbeatArgs) -> anyhow::Result<u8> {
    runtime()?.block_on(reply(&args.store, &args.token, Reply::Heartbeat))
}

pub fn send_task_failure(args: SendFailureArgs) -> anyhow::Result<u8> {
    runtime()?.block_on(answer(
        &args.store,
        &args.token,
        json!({"error": args.error, "cause": args.cause}),
    ))
}
