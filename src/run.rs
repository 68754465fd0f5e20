//! `piflow run` and `piflow test`: execute a workflow.

use std::io::Write;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use owo_colors::OwoColorize;
use serde_json::{Value, json};

use super::tasks::{Mocks, registry};
use super::{EXIT_FAILED, EXIT_USAGE, OutputFormat, use_color};
use piflow_engine::{
    Clock, Engine, ExecutionOutcome, ExecutionRequest, HistoryEvent, HistorySink, Status,
    SystemClock, TaskRegistry, VirtualClock,
};
use piflow_triggers::service::{InputError, StartOptions, Workflow, WorkflowError};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A workflow name (workflows/NAME.asl.yaml, .asl.json, .yaml or .json) or a path.
    target: String,
    /// Execution input: JSON text, or @FILE to read it from a file.
    #[arg(long, default_value = "{}")]
    input: String,
    /// Mocked task responses: a piflow or Step Functions Local mock file,
    /// optionally with #TESTCASE (or #MACHINE/TESTCASE).
    #[arg(long)]
    mock: Option<String>,
    /// Execution name (default: a fresh UUID).
    #[arg(long)]
    name: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    format: OutputFormat,
    /// Print the whole history after the result (human format).
    #[arg(long)]
    history: bool,
    /// Hold the lease of this environment (`env:NAME`) for the whole run:
    /// one execution per environment at a time, the others wait in order.
    /// Default: the input's "environment" field, when it is a string.
    #[arg(long)]
    env: Option<String>,
    /// Refuse at once, naming the holder, when the environment is leased.
    #[arg(long)]
    no_wait: bool,
    /// piflow.yaml, whose product: and environments: complete and bound
    /// the input (default: PIFLOW_CONFIG, else ./piflow.yaml when there).
    #[arg(long, env = "PIFLOW_CONFIG")]
    config: Option<std::path::PathBuf>,
    #[command(flatten)]
    store: super::store_cmds::StoreArg,
}

/// Parse `--input`: JSON text or @FILE. Errors name the position.
pub fn read_input(arg: &str) -> Result<Value, String> {
    let (text, origin) = match arg.strip_prefix('@') {
        Some(file) => (
            std::fs::read_to_string(file)
                .map_err(|e| format!("--input @{file}: cannot read it: {e}"))?,
            format!("--input @{file}"),
        ),
        None => (arg.to_string(), "--input".to_string()),
    };
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "{origin} is not valid JSON: {} at line {} column {}",
            describe_json_error(&e),
            e.line(),
            e.column()
        )
    })
}

fn describe_json_error(e: &serde_json::Error) -> String {
    let s = e.to_string();
    let s = match s.find(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    };
    if s == "recursion limit exceeded" {
        // serde_json's limit: 128 nested arrays and objects.
        return "recursion limit exceeded (arrays and objects nested more than 128 levels deep)"
            .into();
    }
    s
}

/// Prints each state as it runs, with how long it took, and (once
/// [`Progress::tail_audit`] is called) the audit records the steps write
/// while they run, under the state that wrote them.
pub struct Progress {
    color: bool,
    out: Mutex<std::io::Stdout>,
    /// States whose task failed: their exit is a catch, not a success.
    failed: Mutex<std::collections::HashSet<String>>,
    /// When each running state was entered.
    entered: Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// Lines go through the audit tail when it runs (so that a step's
    /// records print before the line saying the step ended).
    tail: Mutex<Option<tokio::sync::mpsc::UnboundedSender<String>>>,
}

impl Progress {
    fn print(&self, line: String) {
        if let Ok(tail) = self.tail.lock()
            && let Some(tx) = tail.as_ref()
        {
            match tx.send(line) {
                Ok(()) => return,
                Err(e) => return self.write(&e.0),
            }
        }
        self.write(&line);
    }

    fn write(&self, line: &str) {
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{line}");
        }
    }

    fn took(&self, name: &str) -> String {
        let Some(t) = self.entered.lock().ok().and_then(|mut m| m.remove(name)) else {
            return String::new();
        };
        let d = t.elapsed();
        if d.as_millis() < 100 {
            String::new()
        } else if d.as_secs() < 60 {
            format!(" ({:.1} s)", d.as_secs_f64())
        } else {
            format!(" ({}m{:02}s)", d.as_secs() / 60, d.as_secs() % 60)
        }
    }

    /// Show the audit records of `env` written from now on, as they are
    /// written. Returns the task that prints; call [`Progress::end_tail`]
    /// and await it before printing anything else.
    pub async fn tail_audit(
        self: &Arc<Self>,
        store: Arc<dyn piflow_store::Store>,
        env: String,
    ) -> tokio::task::JoinHandle<()> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let mut last = match store.audit_head(&env).await {
            Ok(head) => head.map_or(0, |r| r.seq),
            Err(e) => {
                tracing::debug!(error = %e, "audit tail not started");
                return tokio::spawn(async {});
            }
        };
        let since = chrono::Utc::now() - chrono::Duration::seconds(5);
        if let Ok(mut t) = self.tail.lock() {
            *t = Some(tx);
        }
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let line = tokio::select! {
                    l = rx.recv() => match l {
                        Some(l) => Some(l),
                        None => {
                            me.print_audit(&store, &env, since, &mut last).await;
                            return;
                        }
                    },
                    _ = tick.tick() => None,
                };
                me.print_audit(&store, &env, since, &mut last).await;
                if let Some(l) = line {
                    me.write(&l);
                }
            }
        })
    }

    /// Stop routing lines through the audit tail (it prints what is left
    /// and ends).
    pub fn end_tail(&self) {
        if let Ok(mut t) = self.tail.lock() {
            *t = None;
        }
    }

    async fn print_audit(
        &self,
        store: &Arc<dyn piflow_store::Store>,
        env: &str,
        since: chrono::DateTime<chrono::Utc>,
        last: &mut u64,
    ) {
        let Ok(records) = store.audit(Some(env), Some(since)).await else {
            return;
        };
        let from = *last;
        for r in records.into_iter().filter(|r| r.seq > from) {
            *last = r.seq;
            let mut detail = match &r.entry.after {
                Value::Null => String::new(),
                v => v.to_string(),
            };
            if detail.chars().count() > 110 {
                detail = detail.chars().take(109).collect::<String>() + "…";
            }
            let head = format!("{} {}", r.entry.action, r.entry.result);
            let head = if self.color {
                format!("{}", head.dimmed())
            } else {
                head
            };
            self.write(&format!("      · {head} {detail}"));
        }
    }
}

impl HistorySink for Progress {
    fn record(&self, e: &HistoryEvent) {
        let name = e.state.as_deref().unwrap_or("");
        let line = if e.event_type.ends_with("StateEntered") {
            if let Ok(mut m) = self.entered.lock() {
                m.insert(name.to_string(), std::time::Instant::now());
            }
            let kind = e.event_type.trim_end_matches("StateEntered");
            format!("  → {name} ({kind})")
        } else if e.event_type.ends_with("StateExited") {
            let caught = self
                .failed
                .lock()
                .map(|mut f| f.remove(name))
                .unwrap_or(false);
            let (mark, note) = match (caught, self.color) {
                (true, true) => (format!("{}", "↪".yellow()), " (error caught)"),
                (true, false) => ("↪".to_string(), " (error caught)"),
                (false, true) => (format!("{}", "✓".green()), ""),
                (false, false) => ("✓".to_string(), ""),
            };
            format!("  {mark} {name}{note}{}", self.took(name))
        } else if e.event_type == "TaskSubmitted" {
            // A callback task handed its token out.
            let Some(out) = e.details.get("output") else {
                return;
            };
            let Some(token) = out.get("token").and_then(Value::as_str) else {
                return;
            };
            let message = out.get("message").and_then(Value::as_str).unwrap_or("");
            format!(
                "  … {name} waits for an answer: {message}\n      approve: piflow approve '{token}' --reason '…'\n      reject:  piflow reject '{token}' --reason '…'"
            )
        } else if e.event_type.ends_with("Failed") || e.event_type.ends_with("TimedOut") {
            if e.event_type.starts_with("Execution") {
                return;
            }
            let error = e.details.get("error").and_then(Value::as_str).unwrap_or("");
            if let Ok(mut f) = self.failed.lock() {
                f.insert(name.to_string());
            }
            let mark = if self.color {
                format!("{}", "✗".red())
            } else {
                "✗".to_string()
            };
            format!("  {mark} {name} {}: {error}", e.event_type)
        } else {
            return;
        };
        self.print(line);
    }
}

/// Say why a workflow cannot run (nothing may run: exit 2).
pub fn print_workflow_error(e: &WorkflowError) {
    match e {
        WorkflowError::Invalid { shown, errors } => {
            for d in errors {
                eprintln!(
                    "{shown}:{}:{}: error[{}]: {} (at {})",
                    d.line.unwrap_or(0),
                    d.column.unwrap_or(0),
                    d.code,
                    d.message,
                    d.pointer
                );
            }
            eprintln!("piflow: {shown} is not a valid state machine; nothing was run");
        }
        other => eprintln!("piflow: error: {other}"),
    }
}

/// Find, read and validate a workflow for running. On failure the errors
/// are printed and the exit code returned (2: nothing may run).
pub fn load_workflow(target: &str) -> Result<Workflow, u8> {
    Workflow::find(target).map_err(|e| {
        print_workflow_error(&e);
        EXIT_USAGE
    })
}

pub fn run(args: Args, virtual_time: bool) -> anyhow::Result<u8> {
    let workflow = match load_workflow(&args.target) {
        Ok(w) => w,
        Err(code) => return Ok(code),
    };
    let shown = workflow.path.display().to_string();
    let input = match read_input(&args.input) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("piflow: error: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    // The environment's policy and the product (piflow.yaml), as for a
    // tag or an event.
    let input = match piflow_triggers::config::TriggerConfig::find(args.config.as_deref()) {
        Ok(config) => match config.estate.apply(input) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("piflow: error: [{}] {e}", e.code);
                return Ok(EXIT_USAGE);
            }
        },
        Err(e) => {
            eprintln!("piflow: error: [config-invalid] {e}");
            return Ok(EXIT_USAGE);
        }
    };
    // As in AWS, an execution's input is at most 256 KiB; then the
    // workflow's input schema.
    match workflow.check_input(&input) {
        Ok(()) => {}
        Err(InputError::Mismatch { schema, problems }) => {
            eprintln!(
                "piflow: error: the input does not match {}:\n  {}",
                schema.display(),
                problems.join("\n  ")
            );
            return Ok(EXIT_USAGE);
        }
        Err(e) => {
            eprintln!("piflow: error: {e}");
            return Ok(EXIT_USAGE);
        }
    }
    let mocks = match Mocks::read(args.mock.as_deref()) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("piflow: error: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let color = use_color();
    let human = args.format == OutputFormat::Human;
    if let Some(Err(e)) = args.name.as_deref().map(piflow_runner::check_name) {
        eprintln!("piflow: error: --name: {e}");
        return Ok(EXIT_USAGE);
    }
    if human {
        println!(
            "{} {shown}",
            if virtual_time { "Testing" } else { "Running" }
        );
    }
    let display = human.then(|| progress(color));
    if !virtual_time {
        let env = args
            .env
            .clone()
            .or_else(|| piflow_triggers::events::input_environment(&input));
        let start = workflow.start_request(
            input,
            StartOptions {
                name: args.name.clone(),
                trigger: format!("cli:{}", user()),
                author: user(),
                env,
                wait: !args.no_wait,
            },
        );
        return super::executions::run_durable(
            &args.store,
            mocks,
            display,
            args.format,
            args.history,
            start,
        );
    }
    let sink: Option<Arc<dyn HistorySink>> = display.map(|d| -> Arc<dyn HistorySink> { d });
    // Built-in steps that write to the store (piflow:audit-note); the store
    // is opened on first use.
    let store_arg = args.store.clone();
    let tasks = registry(
        mocks,
        piflow_steps::AuditHandle::lazy(move || {
            let store_arg = store_arg.clone();
            Box::pin(async move {
                let store = piflow_store::open(store_arg.spec()).await?;
                Ok(store as Arc<dyn piflow_engine::AuditLog>)
            })
        }),
    );
    let execution_name = args
        .name
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let request = ExecutionRequest {
        state_machine_name: workflow.name.clone(),
        machine: Arc::new(workflow.machine),
        execution_name,
        input,
        role_arn: None,
        durable: None,
    };
    let outcome = execute(tasks, request, sink, virtual_time)?;
    match args.format {
        OutputFormat::Json => {
            println!("{}", serde_json::to_string_pretty(&result_json(&outcome))?);
        }
        OutputFormat::Human => print_human(&outcome, color, args.history),
    }
    Ok(if outcome.status == Status::Succeeded {
        0
    } else {
        EXIT_FAILED
    })
}

/// The live display of states as they run.
pub fn progress(color: bool) -> Arc<Progress> {
    Arc::new(Progress {
        color,
        out: Mutex::new(std::io::stdout()),
        failed: Mutex::new(Default::default()),
        entered: Mutex::new(Default::default()),
        tail: Mutex::new(None),
    })
}

/// Who runs this command: `$USER`, else `unknown`.
pub fn user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// Run on the wall clock (multi-threaded runtime) or on virtual time.
fn execute(
    tasks: TaskRegistry,
    request: ExecutionRequest,
    sink: Option<Arc<dyn HistorySink>>,
    virtual_time: bool,
) -> anyhow::Result<ExecutionOutcome> {
    if virtual_time {
        let rt = piflow_engine::clock::virtual_runtime().context("starting the runtime")?;
        Ok(rt.block_on(async move {
            let clock: Arc<dyn Clock> = Arc::new(VirtualClock::new(chrono::Utc::now()));
            let mut engine = Engine::new(tasks, clock);
            engine.sink = sink;
            engine.run(request).await
        }))
    } else {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the runtime")?;
        Ok(rt.block_on(async move {
            let mut engine = Engine::new(tasks, Arc::new(SystemClock));
            engine.sink = sink;
            engine.run(request).await
        }))
    }
}

/// The one JSON object `run`, `test`, `resume` and `redrive` print.
pub fn result_json(o: &ExecutionOutcome) -> Value {
    let mut v = json!({
        "execution": o.execution_arn,
        "status": o.status.as_str(),
    });
    if o.status == Status::Succeeded {
        v["output"] = o.output.clone().unwrap_or(Value::Null);
    } else {
        v["error"] = o.error.clone().map(Value::String).unwrap_or(Value::Null);
        v["cause"] = o.cause.clone().map(Value::String).unwrap_or(Value::Null);
    }
    v
}

pub fn print_human(o: &ExecutionOutcome, color: bool, history: bool) {
    let status = o.status.as_str();
    let status = match (o.status, color) {
        (Status::Succeeded, true) => format!("{}", status.green().bold()),
        (_, true) => format!("{}", status.red().bold()),
        (_, false) => status.to_string(),
    };
    let elapsed = (o.stop_date - o.start_date).num_milliseconds() as f64 / 1000.0;
    println!(
        "{status} in {elapsed:.3}s ({} history events)",
        o.history.len()
    );
    println!("execution: {}", o.execution_arn);
    match o.status {
        Status::Succeeded => {
            let out = o.output.clone().unwrap_or(Value::Null);
            println!(
                "output: {}",
                serde_json::to_string_pretty(&out).unwrap_or_default()
            );
        }
        _ => {
            println!("error: {}", o.error.as_deref().unwrap_or("-"));
            println!("cause: {}", o.cause.as_deref().unwrap_or("-"));
        }
    }
    if history {
        for e in &o.history {
            println!(
                "{:>5} {} {:<28} {}",
                e.id,
                e.timestamp
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                e.event_type,
                e.state.as_deref().unwrap_or("")
            );
        }
    }
}
