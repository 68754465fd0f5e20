//! `piflow run` and `piflow test`: execute a workflow.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use owo_colors::OwoColorize;
use serde_json::{Value, json};

use super::files::read_text;
use super::{EXIT_FAILED, EXIT_USAGE, OutputFormat, use_color};
use piflow_asl::{Format, LoadOptions, StateMachine, validate_text};
use piflow_engine::{
    Clock, Engine, ExecutionOutcome, ExecutionRequest, HistoryEvent, HistorySink, MockConfig,
    Status, SystemClock, TaskRegistry, VirtualClock,
};

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
    #[command(flatten)]
    store: super::store_cmds::StoreArg,
}

/// Find the definition file for a target.
pub fn resolve_target(target: &str) -> Option<PathBuf> {
    let p = PathBuf::from(target);
    if p.is_file() {
        return Some(p);
    }
    for ext in ["asl.yaml", "asl.yml", "asl.json", "yaml", "yml", "json"] {
        let candidate = PathBuf::from("workflows").join(format!("{target}.{ext}"));
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    None
}

/// The workflow's name: the file name without `.asl.yaml` etc.
pub fn workflow_name(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    for ext in [
        ".asl.yaml",
        ".asl.yml",
        ".asl.json",
        ".yaml",
        ".yml",
        ".json",
    ] {
        if let Some(stem) = file.strip_suffix(ext) {
            return stem.to_string();
        }
    }
    file
}

/// The input schema of a workflow, if it declares one: `schemas/NAME.input.json`
/// beside the `workflows/` directory that holds it, else under `base`
/// (e.g. beside piflow.yaml), else under the current directory.
pub fn input_schema(path: &Path, base: Option<&Path>, name: &str) -> Option<PathBuf> {
    let file = format!("{name}.input.json");
    let mut candidates = Vec::new();
    if let Some(dir) = path.parent() {
        candidates.push(dir.join("../schemas").join(&file));
        candidates.push(dir.join("schemas").join(&file));
    }
    if let Some(base) = base {
        candidates.push(base.join("schemas").join(&file));
    }
    candidates.push(PathBuf::from("schemas").join(&file));
    candidates.into_iter().find(|c| c.is_file())
}

/// The input against the workflow's schema: the problems, one a line
/// (`at POINTER: what`); an unreadable or invalid schema is an error.
pub fn schema_problems(schema_path: &Path, input: &Value) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(schema_path)
        .map_err(|e| format!("reading input schema {}: {e}", schema_path.display()))?;
    let schema: Value = serde_json::from_str(&text)
        .map_err(|e| format!("input schema {} is not JSON: {e}", schema_path.display()))?;
    let validator = jsonschema::validator_for(&schema).map_err(|e| {
        format!(
            "input schema {} is not a valid JSON Schema: {e}",
            schema_path.display()
        )
    })?;
    Ok(validator
        .iter_errors(input)
        .map(|e| {
            let ptr = e.instance_path().to_string();
            format!("at {}: {e}", if ptr.is_empty() { "/" } else { &ptr })
        })
        .collect())
}

/// Parse `--input`: JSON text or @FILE. Errors name the position.
pub fn read_input(arg: &str) -> Result<Value, String> {
    let (text, origin) = match arg.strip_prefix('@') {
        Some(file) => (
            std::fs::read_to_string(file)
                .map_err(|e| format!("--input @{file}: cannot read it: {e}"))?,
            format!("@{file}"),
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
    match s.find(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
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

/// Find, read and validate a workflow for running. On failure the errors
/// are printed and the exit code returned (2: nothing may run).
pub fn load_workflow(target: &str) -> Result<(PathBuf, StateMachine), u8> {
    let Some(path) = resolve_target(target) else {
        eprintln!(
            "piflow: error: no workflow {target:?}: not a file, and no workflows/{target}.asl.yaml, .asl.json, .yaml or .json"
        );
        return Err(EXIT_USAGE);
    };
    let shown = path.display().to_string();
    let text = read_text(&path).map_err(|e| {
        eprintln!("piflow: error: {e}");
        EXIT_USAGE
    })?;
    let v = validate_text(
        &shown,
        &text,
        Format::from_path(&shown),
        LoadOptions::default(),
    );
    match v.machine {
        Some(m) if v.diagnostics.iter().all(|d| !d.is_error()) => Ok((path, m)),
        _ => {
            for d in v.errors() {
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
            Err(EXIT_USAGE)
        }
    }
}

pub fn run(args: Args, virtual_time: bool) -> anyhow::Result<u8> {
    let (path, machine) = match load_workflow(&args.target) {
        Ok(w) => w,
        Err(code) => return Ok(code),
    };
    let shown = path.display().to_string();
    let input = match read_input(&args.input) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("piflow: error: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    // As in AWS, an execution's input is at most 256 KiB.
    let limit = piflow_engine::EngineOptions::default().max_payload_bytes;
    let size = serde_json::to_vec(&input).map(|v| v.len()).unwrap_or(0);
    if size > limit {
        eprintln!(
            "piflow: error: the input is {size} bytes; an execution's input may be at most {limit} bytes"
        );
        return Ok(EXIT_USAGE);
    }
    let name = workflow_name(&path);
    if let Some(schema_path) = input_schema(&path, None, &name) {
        let errors = schema_problems(&schema_path, &input).map_err(|e| anyhow::anyhow!(e))?;
        if !errors.is_empty() {
            eprintln!(
                "piflow: error: the input does not match {}:\n  {}",
                schema_path.display(),
                errors.join("\n  ")
            );
            return Ok(EXIT_USAGE);
        }
    }
    let mut tasks = match task_registry(args.mock.as_deref()) {
        Ok(t) => t,
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
    let sink: Option<Arc<dyn HistorySink>> = display.clone().map(|d| -> Arc<dyn HistorySink> { d });
    if !virtual_time {
        let definition = match read_text(&path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("piflow: error: {e}");
                return Ok(EXIT_USAGE);
            }
        };
        let env = args
            .env
            .clone()
            .or_else(|| piflow_triggers::events::input_environment(&input));
        let start = piflow_runner::StartRequest {
            workflow: name.clone(),
            definition,
            source_commit: source_commit(&path),
            author: user(),
            name: args.name.clone(),
            input,
            trigger: format!("cli:{}", user()),
            env,
            wait: !args.no_wait,
        };
        return super::executions::run_durable(
            &args.store,
            tasks,
            display,
            args.format,
            args.history,
            start,
        );
    }
    // Built-in steps that write to the store (piflow:audit-note); the store
    // is opened on first use.
    let store_arg = args.store.clone();
    piflow_steps::register_builtins(
        &mut tasks,
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
        machine: Arc::new(machine),
        state_machine_name: name.clone(),
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

/// The task registry of a run: with `--mock FILE[#CASE]`, mocked responses.
pub fn task_registry(mock: Option<&str>) -> Result<TaskRegistry, String> {
    let tasks = TaskRegistry::new();
    let Some(spec) = mock else {
        return Ok(tasks);
    };
    let (file, case) = match spec.split_once('#') {
        Some((f, c)) => (f, Some(c)),
        None => (spec, None),
    };
    let text =
        std::fs::read_to_string(file).map_err(|e| format!("--mock {file}: cannot read it: {e}"))?;
    let value: Value =
        serde_json::from_str(&text).map_err(|e| format!("--mock {file} is not valid JSON: {e}"))?;
    let m = MockConfig::from_value(&value, case).map_err(|e| format!("--mock {file}: {e}"))?;
    Ok(tasks.with_mocks(m))
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

/// The git commit of the directory that holds the definition, when it is
/// in a repository with a clean copy of the file.
pub fn source_commit(path: &Path) -> Option<String> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty())?;
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let commit = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && commit.len() == 40).then_some(commit)
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
