//! The interpreter proper: scopes, states, data flow, Retry and Catch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::future::BoxFuture;
use futures::stream::{FuturesOrdered, StreamExt};
use serde_json::{Map, Value, json};

use super::error::{Failure, in_state};
use super::history::{HistoryEvent, state_event_names};
use super::journal::{JOURNAL_FAILED, Journal, Replay};
use super::jsonata_eval::{EvalError, StatesBinding, evaluate};
use super::tokens::TokenMessage;
use super::{Engine, ExecutionOutcome, ExecutionRequest, Status};
use piflow_asl::intrinsic::PayloadExpr;
use piflow_asl::jsonata::JsonataExpr;
use piflow_asl::model::*;
use piflow_asl::path::{JsonPath, PathContext, PathError, ReferencePath};

/// Everything one execution shares.
pub(crate) struct Run<'e> {
    engine: &'e Engine,
    history: Mutex<Vec<HistoryEvent>>,
    next_id: AtomicU64,
    execution: Value,
    state_machine: Value,
    execution_arn: String,
    durable: Option<DurableRun>,
}

/// A durable execution's journal state.
struct DurableRun {
    journal: Arc<dyn Journal>,
    replay: Arc<Replay>,
    /// Events recorded but not yet committed, in id order.
    pending: Mutex<Vec<HistoryEvent>>,
    /// One commit at a time per execution, so that commits stay in order.
    commit: tokio::sync::Mutex<()>,
}

/// Workflow variables: this scope's own, and read-only ones from enclosing scopes.
#[derive(Clone, Default)]
pub(crate) struct Vars {
    local: HashMap<String, Value>,
    outer: Option<Arc<HashMap<String, Value>>>,
    /// Inside a distributed Map: child executions keep their own history.
    quiet: bool,
    /// Inside a Parallel branch: let the other branches run after each
    /// state is entered, as concurrent branches do.
    interleave: bool,
    /// Durable executions only: this scope instance's path in the workflow
    /// (`""`, `/Fan#1@0/b2`, `/Each#1@0/i7`), the visits of its states, and
    /// the variables the current state assigned.
    path: Arc<str>,
    visits: HashMap<String, u32>,
    assigned: Vec<String>,
}

impl Vars {
    fn get(&self, name: &str) -> Option<Value> {
        self.local
            .get(name)
            .or_else(|| self.outer.as_ref().and_then(|o| o.get(name)))
            .cloned()
    }

    /// The variables a Parallel branch or Map iteration sees.
    fn child(&self) -> Vars {
        let mut all: HashMap<String, Value> = self
            .outer
            .as_ref()
            .map(|o| (**o).clone())
            .unwrap_or_default();
        for (k, v) in &self.local {
            all.insert(k.clone(), v.clone());
        }
        Vars {
            local: HashMap::new(),
            outer: Some(Arc::new(all)),
            quiet: self.quiet,
            interleave: self.interleave,
            path: self.path.clone(),
            visits: HashMap::new(),
            assigned: Vec::new(),
        }
    }

    /// The key of the next visit of `state` in this scope instance.
    fn visit_key(&mut self, state: &str) -> Arc<str> {
        let n = self.visits.entry(state.to_string()).or_insert(0);
        *n += 1;
        format!("{}/{}#{}", self.path, state, n).into()
    }
}

/// Where a state goes after running.
enum Step {
    Next(String, Value),
    End(Value),
}

pub(crate) async fn run(
    engine: &Engine,
    req: ExecutionRequest,
    stop: impl std::future::Future<Output = ()>,
) -> ExecutionOutcome {
    let start = req
        .durable
        .as_ref()
        .and_then(|d| d.start_date)
        .unwrap_or_else(|| engine.clock.now());
    let redrive_count = req.durable.as_ref().map_or(0, |d| d.redrive_count);
    let o = &engine.options;
    let execution_arn = format!(
        "arn:aws:states:{}:{}:execution:{}:{}",
        o.region, o.account, req.state_machine_name, req.execution_name
    );
    let sm_arn = format!(
        "arn:aws:states:{}:{}:stateMachine:{}",
        o.region, o.account, req.state_machine_name
    );
    let durable = req.durable.as_ref().map(|d| DurableRun {
        journal: d.journal.clone(),
        replay: d.replay.clone(),
        pending: Mutex::new(Vec::new()),
        commit: tokio::sync::Mutex::new(()),
    });
    let first_id = durable.as_ref().map_or(0, |d| d.replay.last_id());
    let run = Run {
        engine,
        history: Mutex::new(Vec::new()),
        next_id: AtomicU64::new(first_id),
        execution: json!({
            "Id": execution_arn,
            "Input": req.input,
            "Name": req.execution_name,
            "RoleArn": req.role_arn.clone().unwrap_or_else(|| format!("arn:aws:iam::{}:role/piflow", o.account)),
            "StartTime": timestamp(start),
            "RedriveCount": redrive_count,
        }),
        state_machine: json!({"Id": sm_arn, "Name": req.state_machine_name}),
        execution_arn: execution_arn.clone(),
        durable,
    };
    run.keyed("/", "ExecutionStarted", None, req.input.clone(), None);
    let machine = req.machine.clone();
    let mut vars = Vars {
        path: "".into(),
        ..Vars::default()
    };
    // ExecutionStarted is committed with the first state's entry.
    let body = run.scope(&machine.scope, req.input.clone(), &mut vars);
    let timeout = async {
        match machine.timeout_seconds {
            Some(t) => {
                // A resumed execution keeps the deadline of its first start.
                let spent = (engine.clock.now() - start).to_std().unwrap_or_default();
                engine
                    .clock
                    .sleep(Duration::from_secs(t).saturating_sub(spent))
                    .await
            }
            None => futures::future::pending::<()>().await,
        }
    };
    let result = tokio::select! {
        r = body => Ended::Done(r),
        _ = timeout => Ended::TimedOut,
        _ = stop => Ended::Aborted,
    };
    let (mut status, output, mut error, mut cause) = match result {
        // The journal could not be written: stop where we are, record
        // nothing more; the execution stays resumable.
        Ended::Done(Err(f)) if f.error_name() == JOURNAL_FAILED => {
            (Status::Running, None, f.error, f.cause)
        }
        Ended::Done(Ok(out)) => {
            run.keyed("/", "ExecutionSucceeded", None, out.clone(), None);
            (Status::Succeeded, Some(out), None, None)
        }
        Ended::Done(Err(f)) => {
            run.keyed(
                "/",
                "ExecutionFailed",
                None,
                json!({"error": f.error, "cause": f.cause}),
                None,
            );
            (Status::Failed, None, f.error, f.cause)
        }
        Ended::TimedOut => {
            run.keyed("/", "ExecutionTimedOut", None, Value::Null, None);
            (Status::TimedOut, None, None, None)
        }
        Ended::Aborted => {
            run.keyed("/", "ExecutionAborted", None, Value::Null, None);
            (Status::Aborted, None, None, None)
        }
    };
    if status != Status::Running
        && let Err(f) = run.flush().await
    {
        (status, error, cause) = (Status::Running, f.error, f.cause);
    }
    let history = std::mem::take(&mut *run.history.lock().unwrap_or_else(|p| p.into_inner()));
    ExecutionOutcome {
        execution_arn,
        status,
        output,
        error,
        cause,
        start_date: start,
        stop_date: engine.clock.now(),
        history,
    }
}

/// A field's name for error messages, formatted only when an error occurs.
#[derive(Clone, Copy)]
enum Field<'a> {
    Plain(&'a str),
    /// A payload key written with ".$".
    Dollar(&'a str),
}

impl std::fmt::Display for Field<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Field::Plain(s) => f.write_str(s),
            Field::Dollar(s) => write!(f, "{s}.$"),
        }
    }
}

/// Can this state's output be larger than its input? (Only those are
/// measured against the payload limit: measuring means serialising.)
fn produces_data(state: &State) -> bool {
    state.output.is_some()
        || match &state.kind {
            StateKind::Pass(p) => p.result.is_some() || p.parameters.is_some(),
            StateKind::Task(_) | StateKind::Parallel(_) | StateKind::Map(_) => true,
            _ => false,
        }
}

enum Ended {
    Done(Result<Value, Failure>),
    TimedOut,
    Aborted,
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Approximate serialized size, for the payload limit.
fn json_size(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

/// One attempt at one state: what the context object and error messages need.
struct StateCx<'a> {
    state: &'a State,
    /// The visit's key (durable executions only).
    key: Option<Arc<str>>,
    entered_id: u64,
    entered_time: DateTime<Utc>,
    retry_count: u32,
    task_token: Option<String>,
    map_item: Option<(usize, Value)>,
    context: OnceLock<Value>,
}

impl<'e> Run<'e> {
    /// Record an event at `key` (durable executions: an event the journal
    /// already holds is not recorded again; its id and time are returned).
    fn keyed(
        &self,
        key: &str,
        event_type: &'static str,
        state: Option<&str>,
        details: Value,
        checkpoint: Option<Value>,
    ) -> (u64, DateTime<Utc>) {
        if let Some(r) = self
            .durable
            .as_ref()
            .and_then(|d| d.replay.get(key, event_type))
        {
            return (r.id, r.timestamp);
        }
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let id = self.next_id.fetch_add(1, Ordering::SeqCst) + 1;
        let now = self.engine.clock.now();
        let ev = HistoryEvent {
            id,
            previous_event_id: id.saturating_sub(1),
            timestamp: now,
            event_type,
            state: state.map(str::to_string),
            details,
            key: self.durable.as_ref().map(|_| Arc::from(key)),
            checkpoint,
        };
        if let Some(sink) = &self.engine.sink {
            sink.record(&ev);
        }
        if let Some(d) = &self.durable {
            d.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(ev.clone());
        }
        history.push(ev);
        (id, now)
    }

    /// Record an event unless this scope's history is kept elsewhere.
    fn ev(
        &self,
        vars: &Vars,
        key: Option<&str>,
        event_type: &'static str,
        state: Option<&str>,
        details: Value,
    ) -> u64 {
        if vars.quiet {
            return self.next_id.load(Ordering::SeqCst);
        }
        self.keyed(key.unwrap_or(""), event_type, state, details, None)
            .0
    }

    /// Durable executions: wait until every event recorded so far is
    /// committed to the journal.
    async fn flush(&self) -> Result<(), Failure> {
        let Some(d) = &self.durable else {
            return Ok(());
        };
        let _one_at_a_time = d.commit.lock().await;
        let batch = std::mem::take(&mut *d.pending.lock().unwrap_or_else(|p| p.into_inner()));
        if batch.is_empty() {
            return Ok(());
        }
        d.journal.commit(batch).await.map_err(|e| {
            Failure::new(
                JOURNAL_FAILED,
                format!("the execution's history could not be written, so it stopped here: {e}"),
            )
        })
    }

    /// The key of one attempt at a state (durable executions only).
    fn attempt_key(cx: &StateCx<'_>) -> Option<String> {
        cx.key.as_ref().map(|k| format!("{k}@{}", cx.retry_count))
    }

    fn history_full(&self) -> bool {
        self.next_id.load(Ordering::SeqCst) as usize >= self.engine.options.max_history_events
    }

    fn context(&self, cx: &StateCx<'_>) -> Value {
        let mut m = Map::new();
        m.insert("Execution".into(), self.execution.clone());
        let mut state = Map::new();
        state.insert(
            "EnteredTime".into(),
            Value::String(timestamp(cx.entered_time)),
        );
        state.insert("Name".into(), Value::String(cx.state.name.clone()));
        // Only states that can retry carry a RetryCount.
        if matches!(
            cx.state.kind,
            StateKind::Task(_) | StateKind::Parallel(_) | StateKind::Map(_)
        ) {
            state.insert("RetryCount".into(), json!(cx.retry_count));
        }
        m.insert("State".into(), Value::Object(state));
        m.insert("StateMachine".into(), self.state_machine.clone());
        if let Some(t) = &cx.task_token {
            m.insert("Task".into(), json!({"Token": t}));
        }
        if let Some((i, v)) = &cx.map_item {
            m.insert("Map".into(), json!({"Item": {"Index": i, "Value": v}}));
        }
        Value::Object(m)
    }

    fn ctx<'c>(&self, cx: &'c StateCx<'_>) -> &'c Value {
        cx.context.get_or_init(|| self.context(cx))
    }

    /// The context object only when an expression can read it (building it
    /// copies the execution input): `$$` in JSONPath, `$states` in JSONata.
    fn ctx_if<'c>(&self, cx: &'c StateCx<'_>, needed: bool) -> &'c Value {
        static EMPTY: Value = Value::Null;
        if needed { self.ctx(cx) } else { &EMPTY }
    }

    /// Run a scope from its StartAt to its end.
    fn scope<'a>(
        &'a self,
        scope: &'a Scope,
        input: Value,
        vars: &'a mut Vars,
    ) -> BoxFuture<'a, Result<Value, Failure>> {
        Box::pin(async move {
            let mut name: &str = &scope.start_at;
            let mut input = input;
            loop {
                let Some(state) = scope.states.get(name) else {
                    return Err(Failure::new(
                        "States.Runtime",
                        format!("state '{name}' does not exist"),
                    ));
                };
                if self.history_full() {
                    return Err(Failure::new(
                        "States.Runtime",
                        format!(
                            "The execution reached the maximum number of history events ({}).",
                            self.engine.options.max_history_events
                        ),
                    ));
                }
                match self.state(state, input, vars).await? {
                    Step::Next(next, out) => {
                        let Some((k, _)) = scope.states.get_key_value(next.as_str()) else {
                            return Err(Failure::new(
                                "States.Runtime",
                                format!("state '{next}' does not exist"),
                            ));
                        };
                        name = k;
                        input = out;
                    }
                    Step::End(out) => return Ok(out),
                }
            }
        })
    }

    async fn state(&self, state: &State, input: Value, vars: &mut Vars) -> Result<Step, Failure> {
        let (entered, exited) = state_event_names(state.kind.type_name());
        let key = match &self.durable {
            Some(d) if !vars.quiet => {
                vars.assigned.clear();
                let key = vars.visit_key(&state.name);
                // Ran to its end before: continue after it.
                if let Some(done) = d.replay.get(&key, exited) {
                    let cp = done.checkpoint.clone().unwrap_or(Value::Null);
                    if let Some(Value::Object(assigned)) = cp.get("assigned") {
                        for (k, v) in assigned {
                            vars.local.insert(k.clone(), v.clone());
                        }
                    }
                    let out = done.details.clone();
                    return Ok(match cp.get("next").and_then(Value::as_str) {
                        Some(n) => Step::Next(n.to_string(), out),
                        None => Step::End(out),
                    });
                }
                Some(key)
            }
            _ => None,
        };
        let (entered_id, entered_time) = if vars.quiet {
            (self.next_id.load(Ordering::SeqCst), self.engine.clock.now())
        } else {
            self.keyed(
                key.as_deref().unwrap_or(""),
                entered,
                Some(&state.name),
                input.clone(),
                None,
            )
        };
        if key.is_some() {
            self.flush().await?;
        }
        if vars.interleave {
            tokio::task::yield_now().await;
        }
        let cx = StateCx {
            state,
            key: key.clone(),
            entered_id,
            entered_time,
            retry_count: 0,
            task_token: None,
            map_item: None,
            context: OnceLock::new(),
        };
        let (next, output) = match self.state_body(&cx, input, vars).await {
            Ok(r) => r,
            Err(f) => {
                return Err(f);
            }
        };
        if produces_data(state) && json_size(&output) > self.engine.options.max_payload_bytes {
            return Err(Failure::new(
                "States.DataLimitExceeded",
                format!(
                    "The state/task '{}' returned a result with a size exceeding the maximum number of bytes service limit.",
                    state.name
                ),
            ));
        }
        if !matches!(state.kind, StateKind::Fail(_)) && !vars.quiet {
            let checkpoint = key.as_ref().map(|_| {
                let assigned: Map<String, Value> = std::mem::take(&mut vars.assigned)
                    .into_iter()
                    .filter_map(|n| vars.local.get(&n).map(|v| (n, v.clone())))
                    .collect();
                json!({"next": next, "assigned": assigned})
            });
            self.keyed(
                key.as_deref().unwrap_or(""),
                exited,
                Some(&state.name),
                output.clone(),
                checkpoint,
            );
        }
        Ok(match next {
            Some(n) => Step::Next(n, output),
            None => Step::End(output),
        })
    }

    /// Returns the next state (None = end of scope) and the output.
    async fn state_body(
        &self,
        cx: &StateCx<'_>,
        raw: Value,
        vars: &mut Vars,
    ) -> Result<(Option<String>, Value), Failure> {
        let state = cx.state;
        let jsonata = state.query_language == QueryLanguage::Jsonata;
        let next_of = |t: &Transition| match t {
            Transition::Next(n) => Some(n.clone()),
            _ => None,
        };
        match &state.kind {
            StateKind::Pass(p)
                if !jsonata
                    && state.input_path.is_none()
                    && state.output_path.is_none()
                    && state.assign.is_none()
                    && p.parameters.is_none()
                    && p.result.is_none()
                    && p.result_path.is_none() =>
            {
                Ok((next_of(&state.transition), raw))
            }
            StateKind::Pass(p) => {
                if jsonata {
                    let out = self.jsonata_output_and_assign(cx, &raw, vars)?;
                    return Ok((next_of(&state.transition), out));
                }
                let eff = self.input_path(cx, &raw, vars)?;
                let eff = match &p.parameters {
                    Some(t) => self.payload(cx, t, &eff, vars, "Parameters")?,
                    None => eff,
                };
                let result = match &p.result {
                    Some(r) => r.clone(),
                    None => eff,
                };
                self.assign(cx, state.assign.as_ref(), &result, None, None, vars)?;
                let out = self.result_path(cx, p.result_path.as_ref(), raw, result)?;
                let out = self.output_path(cx, out, vars)?;
                Ok((next_of(&state.transition), out))
            }
            StateKind::Succeed => {
                let out = if jsonata {
                    self.jsonata_output(cx, state.output.as_ref(), &raw, None, None, vars, &raw)?
                } else {
                    let eff = self.input_path_owned(cx, raw, vars)?;
                    self.output_path(cx, eff, vars)?
                };
                Ok((None, out))
            }
            StateKind::Fail(f) => Err(self.fail_state(cx, f, &raw, vars)),
            StateKind::Wait(w) => {
                let eff = if jsonata {
                    raw.clone()
                } else {
                    self.input_path(cx, &raw, vars)?
                };
                let delay = self.wait_delay(cx, w, &eff, vars)?;
                // A resumed Wait sleeps what is left of its interval (a
                // Timestamp is already measured from now).
                let delay = if matches!(w.until, WaitUntil::Seconds(_)) {
                    let spent = (self.engine.clock.now() - cx.entered_time)
                        .to_std()
                        .unwrap_or_default();
                    delay.saturating_sub(spent)
                } else {
                    delay
                };
                if !delay.is_zero() {
                    self.engine.clock.sleep(delay).await;
                }
                let out = if jsonata {
                    self.jsonata_output_and_assign(cx, &raw, vars)?
                } else {
                    self.assign(cx, state.assign.as_ref(), &eff, None, None, vars)?;
                    self.output_path(cx, eff, vars)?
                };
                Ok((next_of(&state.transition), out))
            }
            StateKind::Choice(c) => self.choice(cx, c, raw, vars),
            StateKind::Task(t) => {
                self.with_retry(cx, &t.io, raw, vars, |this, cx, eff, raw, vars| {
                    Box::pin(async move { this.task(cx, t, eff, raw, vars).await })
                })
                .await
            }
            StateKind::Parallel(p) => {
                self.with_retry(cx, &p.io, raw, vars, |this, cx, eff, _raw, vars| {
                    Box::pin(async move { this.parallel(cx, p, eff, vars).await })
                })
                .await
            }
            StateKind::Map(m) => {
                self.with_retry(cx, &m.io, raw, vars, |this, cx, eff, _raw, vars| {
                    Box::pin(async move { this.map(cx, m, eff, vars).await })
                })
                .await
            }
        }
    }

    // ----- data flow --------------------------------------------------------

    fn path_cx<'a>(
        &self,
        input: &'a Value,
        context: &'a Value,
        lookup: &'a dyn Fn(&str) -> Option<Value>,
    ) -> PathContext<'a> {
        PathContext::new(input, context).with_variables(lookup)
    }

    fn runtime(&self, cx: &StateCx<'_>, detail: impl std::fmt::Display) -> Failure {
        in_state("States.Runtime", &cx.state.name, cx.entered_id, detail)
    }

    fn select(
        &self,
        cx: &StateCx<'_>,
        path: &JsonPath,
        input: &Value,
        vars: &Vars,
    ) -> Result<Value, PathError> {
        let lookup = |n: &str| vars.get(n);
        path.select(&self.path_cx(
            input,
            self.ctx_if(cx, path.as_str().contains("$$")),
            &lookup,
        ))
    }

    /// InputPath when the raw input is not needed afterwards (no copy).
    fn input_path_owned(
        &self,
        cx: &StateCx<'_>,
        raw: Value,
        vars: &Vars,
    ) -> Result<Value, Failure> {
        match &cx.state.input_path {
            None => Ok(raw),
            _ => self.input_path(cx, &raw, vars),
        }
    }

    fn input_path(&self, cx: &StateCx<'_>, raw: &Value, vars: &Vars) -> Result<Value, Failure> {
        match &cx.state.input_path {
            None => Ok(raw.clone()),
            Some(Nullable::Null) => Ok(json!({})),
            Some(Nullable::Value(p))
                if p.is_root_only() && matches!(p.root, piflow_asl::path::PathRoot::Input) =>
            {
                Ok(raw.clone())
            }
            Some(Nullable::Value(p)) => self
                .select(cx, p, raw, vars)
                .map_err(|e| self.runtime(cx, e)),
        }
    }

    fn output_path(&self, cx: &StateCx<'_>, out: Value, vars: &Vars) -> Result<Value, Failure> {
        match &cx.state.output_path {
            None => Ok(out),
            Some(Nullable::Null) => Ok(json!({})),
            Some(Nullable::Value(p))
                if p.is_root_only() && matches!(p.root, piflow_asl::path::PathRoot::Input) =>
            {
                Ok(out)
            }
            Some(Nullable::Value(p)) => self
                .select(cx, p, &out, vars)
                .map_err(|e| self.runtime(cx, e)),
        }
    }

    fn result_path(
        &self,
        cx: &StateCx<'_>,
        rp: Option<&Nullable<ReferencePath>>,
        raw: Value,
        result: Value,
    ) -> Result<Value, Failure> {
        match rp {
            None => Ok(result),
            Some(Nullable::Null) => Ok(raw),
            Some(Nullable::Value(p)) if p.is_root_only() => Ok(result),
            Some(Nullable::Value(p)) => p.set(raw, result).map_err(|e| {
                in_state(
                    "States.ResultPathMatchFailure",
                    &cx.state.name,
                    cx.entered_id,
                    e,
                )
            }),
        }
    }

    /// Evaluate a JSONPath payload template against `input`.
    fn payload(
        &self,
        cx: &StateCx<'_>,
        t: &Template,
        input: &Value,
        vars: &Vars,
        field: &str,
    ) -> Result<Value, Failure> {
        match t {
            Template::Literal(v) => Ok(v.clone()),
            Template::Object(entries) => {
                let mut m = Map::with_capacity(entries.len());
                for (k, v) in entries {
                    let value = match v {
                        // The field is named with its ".$" in messages.
                        Template::Path(expr) => {
                            self.payload_expr(cx, expr, input, vars, Field::Dollar(k))
                        }
                        other => self.payload(cx, other, input, vars, k),
                    }?;
                    m.insert(k.clone(), value);
                }
                Ok(Value::Object(m))
            }
            Template::Array(items) => items
                .iter()
                .map(|i| self.payload(cx, i, input, vars, field))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            Template::Path(expr) => self.payload_expr(cx, expr, input, vars, Field::Plain(field)),
            Template::Jsonata(e) => self.jsonata_in(cx, e, input, vars, field),
        }
    }

    fn payload_expr(
        &self,
        cx: &StateCx<'_>,
        expr: &PayloadExpr,
        input: &Value,
        vars: &Vars,
        field: Field<'_>,
    ) -> Result<Value, Failure> {
        let lookup = |n: &str| vars.get(n);
        let pcx = self.path_cx(
            input,
            self.ctx_if(cx, expr.as_str().contains("$$")),
            &lookup,
        );
        match expr {
            PayloadExpr::Path(p) => p.select(&pcx).map_err(|e| match e {
                PathError::NotFound { .. } | PathError::UndefinedVariable { .. } => self.runtime(
                    cx,
                    format!(
                        "The JSONPath '{}' specified for the field '{field}' could not be found in the input '{}'",
                        p.as_str(),
                        serde_json::to_string(input).unwrap_or_default()
                    ),
                ),
                other => self.runtime(cx, other),
            }),
            PayloadExpr::Intrinsic(call) => call
                .evaluate(&pcx)
                .map_err(|e| in_state(e.error_name(), &cx.state.name, cx.entered_id, e.message())),
        }
    }

    /// Evaluate an expression whose `$states` holds only the input (and the
    /// context object when the expression reads `$states`).
    fn jsonata_in(
        &self,
        cx: &StateCx<'_>,
        e: &JsonataExpr,
        input: &Value,
        vars: &Vars,
        field: &str,
    ) -> Result<Value, Failure> {
        let b = StatesBinding {
            input,
            result: None,
            error_output: None,
            context: self.ctx_if(cx, e.source().contains("$states")),
        };
        self.jsonata(cx, e, &b, vars, field)
    }

    fn jsonata(
        &self,
        cx: &StateCx<'_>,
        e: &JsonataExpr,
        b: &StatesBinding<'_>,
        vars: &Vars,
        field: &str,
    ) -> Result<Value, Failure> {
        let lookup = |n: &str| vars.get(n);
        evaluate(e, b, &lookup).map_err(|err| {
            let detail = match err {
                EvalError::Undefined => format!(
                    "The JSONata expression '{}' specified for the field '{field}' returned nothing (undefined).",
                    e.source()
                ),
                EvalError::Unsupported => format!(
                    "The JSONata expression '{}' specified for the field '{field}' returned an unsupported result type.",
                    e.source()
                ),
                EvalError::Failed(m) => format!(
                    "The JSONata expression '{}' specified for the field '{field}' threw an error during evaluation. {m}",
                    e.source()
                ),
            };
            in_state("States.QueryEvaluationError", &cx.state.name, cx.entered_id, detail)
        })
    }

    /// Evaluate a JSONata template (Arguments, Output, Assign, ...).
    #[allow(clippy::too_many_arguments)]
    fn jsonata_template(
        &self,
        cx: &StateCx<'_>,
        t: &Template,
        input: &Value,
        result: Option<&Value>,
        error_output: Option<&Value>,
        vars: &Vars,
        field: &str,
    ) -> Result<Value, Failure> {
        match t {
            Template::Literal(v) => Ok(v.clone()),
            Template::Jsonata(e) => {
                let b = StatesBinding {
                    input,
                    result,
                    error_output,
                    context: self.ctx_if(cx, e.source().contains("$states")),
                };
                self.jsonata(cx, e, &b, vars, field)
            }
            Template::Object(entries) => {
                let mut m = Map::with_capacity(entries.len());
                for (k, v) in entries {
                    let f = format!("{field}/{k}");
                    m.insert(
                        k.clone(),
                        self.jsonata_template(cx, v, input, result, error_output, vars, &f)?,
                    );
                }
                Ok(Value::Object(m))
            }
            Template::Array(items) => items
                .iter()
                .map(|i| self.jsonata_template(cx, i, input, result, error_output, vars, field))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            Template::Path(expr) => self.payload_expr(cx, expr, input, vars, Field::Plain(field)),
        }
    }

    /// JSONata `Output`, defaulting to `default`.
    #[allow(clippy::too_many_arguments)]
    fn jsonata_output(
        &self,
        cx: &StateCx<'_>,
        output: Option<&Template>,
        input: &Value,
        result: Option<&Value>,
        error_output: Option<&Value>,
        vars: &Vars,
        default: &Value,
    ) -> Result<Value, Failure> {
        match output {
            Some(t) => self.jsonata_template(cx, t, input, result, error_output, vars, "Output"),
            None => Ok(default.clone()),
        }
    }

    /// A JSONata state without a result (Pass, Wait): `Output` (default: the
    /// input) and `Assign`, both against the values before the state.
    fn jsonata_output_and_assign(
        &self,
        cx: &StateCx<'_>,
        raw: &Value,
        vars: &mut Vars,
    ) -> Result<Value, Failure> {
        let state = cx.state;
        let out = self.jsonata_output(cx, state.output.as_ref(), raw, None, None, vars, raw)?;
        self.assign(cx, state.assign.as_ref(), raw, None, None, vars)?;
        Ok(out)
    }

    /// Evaluate Assign against the values before the state, then set them all.
    fn assign(
        &self,
        cx: &StateCx<'_>,
        assign: Option<&Template>,
        input: &Value,
        result: Option<&Value>,
        error_output: Option<&Value>,
        vars: &mut Vars,
    ) -> Result<(), Failure> {
        let Some(t) = assign else { return Ok(()) };
        let value = match cx.state.query_language {
            QueryLanguage::Jsonata => {
                self.jsonata_template(cx, t, input, result, error_output, vars, "Assign")?
            }
            QueryLanguage::JsonPath => self.payload(cx, t, input, vars, "Assign")?,
        };
        if let Value::Object(m) = value {
            let durable = self.durable.is_some();
            for (k, v) in m {
                if durable {
                    vars.assigned.push(k.clone());
                }
                vars.local.insert(k, v);
            }
        }
        Ok(())
    }

    // ----- Fail, Wait, Choice ----------------------------------------------

    fn fail_state(&self, cx: &StateCx<'_>, f: &Fail, raw: &Value, vars: &Vars) -> Failure {
        let eval = |s: &Option<StringSource>, field: &str| -> Result<Option<String>, Failure> {
            match s {
                None => Ok(None),
                Some(StringSource::Literal(l)) => Ok(Some(l.clone())),
                Some(StringSource::Path(p)) => {
                    let v = match p {
                        PayloadExpr::Path(path) => self.select(cx, path, raw, vars).map_err(|_| {
                            self.runtime(
                                cx,
                                format!(
                                    "The JSONPath '{}' specified for the field '{field}' could not be found in the input '{}'",
                                    path.as_str(),
                                    serde_json::to_string(raw).unwrap_or_default()
                                ),
                            )
                        })?,
                        _ => self.payload_expr(cx, p, raw, vars, Field::Plain(field))?,
                    };
                    Ok(Some(match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    }))
                }
                Some(StringSource::Jsonata(e)) => {
                    let v = self.jsonata_in(cx, e, raw, vars, field)?;
                    Ok(Some(match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    }))
                }
            }
        };
        let error = match eval(&f.error, "ErrorPath") {
            Ok(e) => e,
            Err(fail) => return fail,
        };
        let cause = match eval(&f.cause, "CausePath") {
            Ok(c) => c,
            Err(fail) => return fail,
        };
        Failure { error, cause }
    }

    fn number_value(
        &self,
        cx: &StateCx<'_>,
        src: &NumberSource,
        input: &Value,
        vars: &Vars,
        field: &str,
    ) -> Result<Value, Failure> {
        match src {
            NumberSource::Value(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => Ok(json!(*v as i64)),
            NumberSource::Value(v) => Ok(json!(v)),
            NumberSource::Path(p) => {
                let lookup = |n: &str| vars.get(n);
                p.get(&self.path_cx(input, self.ctx_if(cx, p.as_str().contains("$$")), &lookup))
                    .map_err(|e| self.runtime(cx, e))
            }
            NumberSource::Jsonata(e) => self.jsonata_in(cx, e, input, vars, field),
        }
    }

    fn wait_delay(
        &self,
        cx: &StateCx<'_>,
        w: &Wait,
        eff: &Value,
        vars: &Vars,
    ) -> Result<Duration, Failure> {
        let secs: i64 = match &w.until {
            WaitUntil::Seconds(src) => {
                let v = self.number_value(cx, src, eff, vars, "Seconds")?;
                let path = match src {
                    NumberSource::Path(p) => p.as_str().to_string(),
                    _ => "Seconds".into(),
                };
                match v.as_i64() {
                    Some(n) if n < 0 => {
                        return Err(self.runtime(cx, format!("The SecondsPath parameter references a negative value: {path} == {v}")));
                    }
                    Some(n) => n,
                    None => {
                        return Err(self.runtime(cx, format!("The SecondsPath parameter cannot be parsed as a long value: {path} == {v}")));
                    }
                }
            }
            WaitUntil::Timestamp(ts) => self.until(ts).ok_or_else(|| {
                in_state(
                    "States.QueryEvaluationError",
                    &cx.state.name,
                    cx.entered_id,
                    format!("The Timestamp field cannot be parsed as an ISO-8601 extended offset date-time format string: {ts}"),
                )
            })?,
            WaitUntil::TimestampPath(p) => {
                let lookup = |n: &str| vars.get(n);
                let v = p
                    .get(&self.path_cx(eff, self.ctx_if(cx, p.as_str().contains("$$")), &lookup))
                    .map_err(|e| self.runtime(cx, e))?;
                let s = v.as_str().unwrap_or_default().to_string();
                self.until(&s).ok_or_else(|| {
                    self.runtime(
                        cx,
                        format!(
                            "The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: {} == {}",
                            p.as_str(),
                            s
                        ),
                    )
                })?
            }
            WaitUntil::TimestampJsonata(e) => {
                let v = self.jsonata_in(cx, e, eff, vars, "Timestamp")?;
                let s = v.as_str().unwrap_or_default().to_string();
                self.until(&s).ok_or_else(|| {
                    in_state(
                        "States.QueryEvaluationError",
                        &cx.state.name,
                        cx.entered_id,
                        format!("The Timestamp field cannot be parsed as an ISO-8601 extended offset date-time format string: {s}"),
                    )
                })?
            }
        };
        if secs > 31_536_000 {
            return Err(self.runtime(cx, "Wait state delay is too long."));
        }
        Ok(Duration::from_secs(secs.max(0) as u64))
    }

    /// Seconds from now until an RFC 3339 timestamp (0 when in the past).
    fn until(&self, ts: &str) -> Option<i64> {
        if !piflow_asl::load::is_rfc3339(ts) {
            return None;
        }
        let t = DateTime::parse_from_rfc3339(ts).ok()?;
        let d = t.with_timezone(&Utc) - self.engine.clock.now();
        Some((d.num_milliseconds().max(0) + 999) / 1000)
    }

    fn choice(
        &self,
        cx: &StateCx<'_>,
        c: &Choice,
        raw: Value,
        vars: &mut Vars,
    ) -> Result<(Option<String>, Value), Failure> {
        let state = cx.state;
        if state.query_language == QueryLanguage::Jsonata {
            for branch in &c.choices {
                if self.rule(cx, &branch.rule, &raw, vars)? {
                    let out = self.jsonata_output(
                        cx,
                        branch.output.as_ref().or(state.output.as_ref()),
                        &raw,
                        None,
                        None,
                        vars,
                        &raw,
                    )?;
                    self.assign(
                        cx,
                        branch.assign.as_ref().or(state.assign.as_ref()),
                        &raw,
                        None,
                        None,
                        vars,
                    )?;
                    return Ok((Some(branch.next.clone()), out));
                }
            }
            return match &c.default {
                Some(d) => {
                    let out = self.jsonata_output(
                        cx,
                        state.output.as_ref(),
                        &raw,
                        None,
                        None,
                        vars,
                        &raw,
                    )?;
                    self.assign(cx, state.assign.as_ref(), &raw, None, None, vars)?;
                    Ok((Some(d.clone()), out))
                }
                None => Err(Failure::new("States.NoChoiceMatched", "No Matches!")),
            };
        }
        let eff = self.input_path_owned(cx, raw, vars)?;
        for branch in &c.choices {
            if self.rule(cx, &branch.rule, &eff, vars)? {
                self.assign(
                    cx,
                    branch.assign.as_ref().or(state.assign.as_ref()),
                    &eff,
                    None,
                    None,
                    vars,
                )?;
                let out = self.output_path(cx, eff, vars)?;
                return Ok((Some(branch.next.clone()), out));
            }
        }
        match &c.default {
            Some(d) => {
                self.assign(cx, state.assign.as_ref(), &eff, None, None, vars)?;
                let out = self.output_path(cx, eff, vars)?;
                Ok((Some(d.clone()), out))
            }
            None => Err(Failure::new("States.NoChoiceMatched", "No Matches!")),
        }
    }

    fn rule(
        &self,
        cx: &StateCx<'_>,
        rule: &ChoiceRule,
        input: &Value,
        vars: &Vars,
    ) -> Result<bool, Failure> {
        match rule {
            ChoiceRule::And(rs) => {
                for r in rs {
                    if !self.rule(cx, r, input, vars)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            ChoiceRule::Or(rs) => {
                for r in rs {
                    if self.rule(cx, r, input, vars)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            ChoiceRule::Not(r) => Ok(!self.rule(cx, r, input, vars)?),
            ChoiceRule::Condition(ConditionExpr::Literal(b)) => Ok(*b),
            ChoiceRule::Condition(ConditionExpr::Jsonata(e)) => {
                match self.jsonata_in(cx, e, input, vars, "Condition")? {
                    Value::Bool(b) => Ok(b),
                    other => Err(in_state(
                        "States.QueryEvaluationError",
                        &cx.state.name,
                        cx.entered_id,
                        format!(
                            "The JSONata expression '{}' specified for the field 'Condition' returned an unexpected result type. Expected 'boolean', but was '{}' for value: {}",
                            e.source(),
                            json_type(&other),
                            other
                        ),
                    )),
                }
            }
            ChoiceRule::Compare {
                variable,
                op,
                operand,
            } => {
                let value = match self.select(cx, variable, input, vars) {
                    Ok(v) => Some(v),
                    Err(e) if e.is_not_found() => None,
                    Err(e) => return Err(self.runtime(cx, e)),
                };
                if *op == Comparison::IsPresent {
                    let want = operand_literal_bool(operand);
                    return Ok(value.is_some() == want);
                }
                let Some(value) = value else {
                    return Err(self.runtime(
                        cx,
                        format!("Invalid path '{}': The choice state's condition path references an invalid value.", variable.as_str()),
                    ));
                };
                let expected = match operand {
                    Operand::Literal(v) => v.clone(),
                    Operand::Path(p) => self
                        .select(cx, p, input, vars)
                        .map_err(|e| self.runtime(cx, e))?,
                };
                Ok(compare(*op, &value, &expected))
            }
        }
    }

    // ----- Task, Parallel, Map ----------------------------------------------

    /// The common shape of Task, Parallel and Map: input processing, the
    /// body with Retry, result processing, and Catch.
    async fn with_retry<'a, F>(
        &'a self,
        cx: &'a StateCx<'a>,
        io: &'a ResultHandling,
        raw: Value,
        vars: &'a mut Vars,
        body: F,
    ) -> Result<(Option<String>, Value), Failure>
    where
        F: for<'b> Fn(
            &'b Self,
            &'b StateCx<'b>,
            Value,
            &'b Value,
            &'b Vars,
        ) -> BoxFuture<'b, Result<Value, Failure>>,
    {
        let state = cx.state;
        let jsonata = state.query_language == QueryLanguage::Jsonata;
        let wait_token = matches!(
            &state.kind,
            StateKind::Task(t) if t.resource_kind.waits_for_token()
        );
        let mut attempts: Vec<u64> = vec![0; io.retry.len()];
        let mut retry_count = 0u32;
        let outcome = loop {
            // Each attempt sees its own $$.State.RetryCount and task token.
            let attempt_cx = StateCx {
                state,
                key: cx.key.clone(),
                entered_id: cx.entered_id,
                entered_time: cx.entered_time,
                retry_count,
                task_token: wait_token
                    .then(|| format!("{}:{}:{}", self.execution_arn, cx.entered_id, retry_count)),
                map_item: None,
                context: OnceLock::new(),
            };
            let eff = if jsonata {
                match &io.arguments {
                    Some(t) => {
                        self.jsonata_template(&attempt_cx, t, &raw, None, None, vars, "Arguments")
                    }
                    None => Ok(raw.clone()),
                }
            } else {
                self.input_path(&attempt_cx, &raw, vars)
                    .and_then(|eff| match &io.parameters {
                        Some(t) => self.payload(&attempt_cx, t, &eff, vars, "Parameters"),
                        None => Ok(eff),
                    })
            };
            let r = match eff {
                Ok(eff) => body(self, &attempt_cx, eff, &raw, vars).await,
                Err(f) => Err(f),
            };
            let r = match r {
                Ok(result) => self.process_result(cx, io, &raw, result, vars),
                Err(f) => Err(f),
            };
            match r {
                Ok(v) => break Ok(v),
                Err(f) if f.is_uncatchable() => return Err(f),
                Err(f) => {
                    let Some((i, retrier)) = io
                        .retry
                        .iter()
                        .enumerate()
                        .find(|(_, r)| f.matches(&r.error_equals))
                    else {
                        break Err(f);
                    };
                    if attempts[i] >= retrier.max_attempts {
                        break Err(f);
                    }
                    let delay = retry_delay(retrier, attempts[i]);
                    attempts[i] += 1;
                    retry_count += 1;
                    // A resumed execution does not wait again for a retry
                    // that already started.
                    let started_before = match (&self.durable, &cx.key) {
                        (Some(d), Some(k)) => d.replay.has_attempt(&format!("{k}@{retry_count}")),
                        _ => false,
                    };
                    if !delay.is_zero() && !started_before {
                        self.engine.clock.sleep(delay).await;
                    }
                }
            }
        };
        match outcome {
            Ok(out) => Ok((
                match &state.transition {
                    Transition::Next(n) => Some(n.clone()),
                    _ => None,
                },
                out,
            )),
            Err(f) => {
                match &state.kind {
                    StateKind::Map(_) => {
                        self.ev(
                            vars,
                            cx.key.as_deref(),
                            "MapStateFailed",
                            Some(&state.name),
                            Value::Null,
                        );
                    }
                    StateKind::Parallel(_) => {
                        self.ev(
                            vars,
                            cx.key.as_deref(),
                            "ParallelStateFailed",
                            Some(&state.name),
                            json!({"error": f.error, "cause": f.cause}),
                        );
                    }
                    _ => {}
                }
                let Some(catcher) = io.catch.iter().find(|c| f.matches(&c.error_equals)) else {
                    return Err(f);
                };
                let error_output = f.to_error_output();
                let out = if jsonata {
                    let o = match &catcher.output {
                        Some(t) => self.jsonata_template(
                            cx,
                            t,
                            &raw,
                            None,
                            Some(&error_output),
                            vars,
                            "Output",
                        )?,
                        None => error_output.clone(),
                    };
                    self.assign(
                        cx,
                        catcher.assign.as_ref(),
                        &raw,
                        None,
                        Some(&error_output),
                        vars,
                    )?;
                    o
                } else {
                    self.assign(cx, catcher.assign.as_ref(), &error_output, None, None, vars)?;
                    self.result_path(cx, catcher.result_path.as_ref(), raw, error_output)?
                };
                Ok((Some(catcher.next.clone()), out))
            }
        }
    }

    /// ResultSelector, Assign, ResultPath, OutputPath (or JSONata Output/Assign).
    fn process_result(
        &self,
        cx: &StateCx<'_>,
        io: &ResultHandling,
        raw: &Value,
        result: Value,
        vars: &mut Vars,
    ) -> Result<Value, Failure> {
        let state = cx.state;
        if state.query_language == QueryLanguage::Jsonata {
            let out = self.jsonata_output(
                cx,
                state.output.as_ref(),
                raw,
                Some(&result),
                None,
                vars,
                &result,
            )?;
            self.assign(cx, state.assign.as_ref(), raw, Some(&result), None, vars)?;
            return Ok(out);
        }
        let result = match &io.result_selector {
            Some(t) => self.payload(cx, t, &result, vars, "ResultSelector")?,
            None => result,
        };
        self.assign(cx, state.assign.as_ref(), &result, None, None, vars)?;
        let out = self.result_path(cx, io.result_path.as_ref(), raw.clone(), result)?;
        self.output_path(cx, out, vars)
    }

    async fn task(
        &self,
        cx: &StateCx<'_>,
        t: &Task,
        input: Value,
        raw: &Value,
        vars: &Vars,
    ) -> Result<Value, Failure> {
        let state = cx.state;
        let (scheduled, started, succeeded, failed, timed_out) = match t.resource_kind {
            ResourceKind::Lambda => (
                "LambdaFunctionScheduled",
                "LambdaFunctionStarted",
                "LambdaFunctionSucceeded",
                "LambdaFunctionFailed",
                "LambdaFunctionTimedOut",
            ),
            ResourceKind::Activity => (
                "ActivityScheduled",
                "ActivityStarted",
                "ActivitySucceeded",
                "ActivityFailed",
                "ActivityTimedOut",
            ),
            _ => (
                "TaskScheduled",
                "TaskStarted",
                "TaskSucceeded",
                "TaskFailed",
                "TaskTimedOut",
            ),
        };
        let wait_token = t.resource_kind.waits_for_token();
        let timeout = match &t.timeout_seconds {
            Some(src) => Some(self.seconds(cx, src, raw, vars, "TimeoutSeconds")?),
            None => None,
        };
        let heartbeat = match &t.heartbeat_seconds {
            Some(src) => Some(self.seconds(cx, src, raw, vars, "HeartbeatSeconds")?),
            None => None,
        };
        let token = if wait_token {
            cx.task_token.clone()
        } else {
            None
        };
        let credentials = match &t.credentials {
            Some(c) if state.query_language == QueryLanguage::Jsonata => {
                Some(self.jsonata_template(cx, c, raw, None, None, vars, "Credentials")?)
            }
            Some(c) => Some(self.payload(cx, c, raw, vars, "Credentials")?),
            None => None,
        };
        let akey = Self::attempt_key(cx);
        let ak = akey.as_deref();
        // A resumed execution: an attempt whose outcome is recorded is not
        // invoked again; one that was scheduled is invoked again with its
        // recorded parameters (and the same idempotency token).
        let mut input = input;
        let mut submitted_before = false;
        if let (Some(d), Some(k)) = (&self.durable, ak) {
            if let Some(e) = d.replay.get(k, succeeded) {
                return Ok(e.details.get("output").cloned().unwrap_or(Value::Null));
            }
            if let Some(e) = d
                .replay
                .get(k, failed)
                .or_else(|| d.replay.get(k, timed_out))
            {
                let text = |f: &str| e.details.get(f).and_then(Value::as_str).map(str::to_string);
                return Err(Failure {
                    error: text("error"),
                    cause: text("cause"),
                });
            }
            if let Some(p) = d
                .replay
                .get(k, scheduled)
                .and_then(|e| e.details.get("parameters"))
            {
                input = p.clone();
            }
            submitted_before = d.replay.get(k, "TaskSubmitted").is_some();
        }
        self.ev(
            vars,
            ak,
            scheduled,
            Some(&state.name),
            json!({"resource": t.resource, "parameters": input}),
        );
        self.ev(
            vars,
            ak,
            started,
            Some(&state.name),
            json!({"resource": t.resource}),
        );
        // The attempt is durable before the side effect happens.
        self.flush().await?;
        let request = super::tasks::TaskRequest {
            execution: self.execution_arn.clone(),
            state_name: state.name.clone(),
            resource: t.resource.clone(),
            input,
            task_token: token.clone(),
            idempotency_token: format!(
                "{}:{}:{}",
                self.execution_arn, cx.entered_id, cx.retry_count
            ),
            credentials,
            attempt: cx.retry_count,
        };
        let mut receiver = token.as_ref().map(|tok| self.engine.tokens.open(tok));
        let engine = self.engine;
        let work = async {
            // A callback task that already handed its token out waits for
            // the answer without sending the token again.
            let r = if submitted_before && token.is_some() {
                Value::Null
            } else {
                engine
                    .tasks
                    .invoke_on(request, engine.clock.as_ref())
                    .await?
            };
            if let (Some(tok), Some(rx)) = (&token, receiver.as_mut()) {
                // A mocked callback answers for the token holder.
                if engine.tasks.has_mock(&state.name) {
                    return Ok(r);
                }
                self.ev(
                    vars,
                    ak,
                    "TaskSubmitted",
                    Some(&state.name),
                    json!({"output": r}),
                );
                self.flush().await?;
                loop {
                    let msg = match heartbeat {
                        Some(h) => {
                            tokio::select! {
                                m = rx.recv() => m,
                                _ = engine.clock.sleep(Duration::from_secs(h)) => {
                                    // AWS reports a missed heartbeat as States.Timeout.
                                    let _ = tok;
                                    return Err(Failure { error: Some("States.Timeout".into()), cause: None });
                                }
                            }
                        }
                        None => rx.recv().await,
                    };
                    match msg {
                        Some(TokenMessage::Success(v)) => return Ok(v),
                        Some(TokenMessage::Failure(f)) => return Err(f),
                        Some(TokenMessage::Heartbeat) => continue,
                        None => {
                            return Err(Failure::new(
                                "States.Runtime",
                                "the task token channel closed",
                            ));
                        }
                    }
                }
            }
            Ok(r)
        };
        let result = match timeout {
            Some(secs) => {
                tokio::select! {
                    r = work => r,
                    _ = engine.clock.sleep(Duration::from_secs(secs)) => Err(Failure { error: Some("States.Timeout".into()), cause: None }),
                }
            }
            None => work.await,
        };
        if let Some(tok) = &token {
            self.engine.tokens.close(tok);
        }
        // A .sync integration started a job and waited for it: AWS records
        // the submission before the job's outcome.
        if matches!(
            t.resource_kind,
            ResourceKind::Integration {
                pattern: IntegrationPattern::Sync | IntegrationPattern::Sync2,
                ..
            } | ResourceKind::AwsSdk {
                pattern: IntegrationPattern::Sync | IntegrationPattern::Sync2,
                ..
            }
        ) {
            self.ev(vars, ak, "TaskSubmitted", Some(&state.name), Value::Null);
        }
        let result = result.and_then(|v| {
            if json_size(&v) > self.engine.options.max_payload_bytes {
                Err(Failure::new(
                    "States.DataLimitExceeded",
                    format!(
                        "The state/task '{}' returned a result with a size exceeding the maximum number of bytes service limit.",
                        match &t.resource_kind {
                            ResourceKind::Integration { service, .. } => service.as_str(),
                            _ => t.resource.as_str(),
                        }
                    ),
                ))
            } else {
                Ok(v)
            }
        });
        if matches!(&result, Err(f) if f.error_name() == JOURNAL_FAILED) {
            return result;
        }
        match &result {
            Ok(v) => {
                self.ev(vars, ak, succeeded, Some(&state.name), json!({"output": v}));
            }
            Err(f) => {
                let kind = if f.error_name() == "States.Timeout" {
                    timed_out
                } else {
                    failed
                };
                self.ev(
                    vars,
                    ak,
                    kind,
                    Some(&state.name),
                    json!({"error": f.error, "cause": f.cause}),
                );
            }
        }
        // The outcome is durable before anything else happens.
        self.flush().await?;
        result
    }

    fn seconds(
        &self,
        cx: &StateCx<'_>,
        src: &NumberSource,
        input: &Value,
        vars: &Vars,
        field: &str,
    ) -> Result<u64, Failure> {
        let v = self.number_value(cx, src, input, vars, field)?;
        match v.as_u64() {
            Some(n) if n > 0 => Ok(n),
            _ => Err(self.runtime(
                cx,
                format!("The {field} value {v} is not a positive integer"),
            )),
        }
    }

    async fn parallel(
        &self,
        cx: &StateCx<'_>,
        p: &Parallel,
        input: Value,
        vars: &Vars,
    ) -> Result<Value, Failure> {
        let state = cx.state;
        let akey = Self::attempt_key(cx);
        self.ev(
            vars,
            akey.as_deref(),
            "ParallelStateStarted",
            Some(&state.name),
            Value::Null,
        );
        // Branches are polled in order, each up to its next yield point, so
        // the history interleaves them as concurrent branches do; the first
        // failure drops (cancels) the others.
        // One snapshot of the enclosing variables, shared by every branch.
        let mut base = vars.child();
        base.interleave = true;
        let futs = p.branches.iter().enumerate().map(|(b, branch)| {
            let input = input.clone();
            let mut child = base.clone();
            if let Some(k) = &akey {
                child.path = format!("{k}/b{b}").into();
            }
            async move { self.scope(branch, input, &mut child).await }
        });
        let results = futures::future::try_join_all(futs).await?;
        Ok(Value::Array(results))
    }

    async fn map(
        &self,
        cx: &StateCx<'_>,
        m: &piflow_asl::model::Map,
        input: Value,
        vars: &Vars,
    ) -> Result<Value, Failure> {
        let state = cx.state;
        let jsonata = state.query_language == QueryLanguage::Jsonata;
        if m.item_reader.is_some() || m.result_writer.is_some() {
            let what = if m.item_reader.is_some() {
                "ItemReader"
            } else {
                "ResultWriter"
            };
            return Err(self.runtime(
                cx,
                format!(
                    "{what} reads or writes S3 through an AWS integration, which this version of piflow does not run yet; pass the items in the input (ItemsPath/Items) instead"
                ),
            ));
        }
        // The items.
        let items = if jsonata {
            match &m.items {
                Some(Template::Jsonata(e)) => {
                    let v = self.jsonata_in(cx, e, &input, vars, "Items")?;
                    match v {
                        Value::Array(a) => a,
                        other => {
                            return Err(in_state(
                                "States.QueryEvaluationError",
                                &state.name,
                                cx.entered_id,
                                format!(
                                    "The JSONata expression '{}' specified for the field 'Items' returned an unexpected result type. Expected 'array', but was '{}' for value: {}",
                                    e.source(),
                                    json_type(&other),
                                    other
                                ),
                            ));
                        }
                    }
                }
                Some(t) => match self.jsonata_template(cx, t, &input, None, None, vars, "Items")? {
                    Value::Array(a) => a,
                    other => {
                        return Err(self.runtime(
                            cx,
                            format!("Items must be an array, not {}", json_type(&other)),
                        ));
                    }
                },
                None => match &input {
                    Value::Array(a) => a.clone(),
                    other => {
                        return Err(in_state(
                            "States.QueryEvaluationError",
                            &state.name,
                            cx.entered_id,
                            format!("Map state input must be an array but was: {other}"),
                        ));
                    }
                },
            }
        } else {
            let v = match &m.items_path {
                Some(p) => self
                    .select(cx, p, &input, vars)
                    .map_err(|e| self.runtime(cx, e))?,
                None => input.clone(),
            };
            match v {
                Value::Array(a) => a,
                other => {
                    return Err(self.runtime(
                        cx,
                        format!(
                            "Invalid path '{}' : Map state input must be an array but was: {}",
                            m.items_path.as_ref().map(|p| p.as_str()).unwrap_or("$"),
                            json_type(&other)
                        ),
                    ));
                }
            }
        };
        let distributed = m.mode == ProcessorMode::Distributed;
        let max_concurrency = match &m.max_concurrency {
            Some(src) => self.map_number(
                cx,
                src,
                &input,
                vars,
                "MaxConcurrency",
                "integer",
                Value::as_u64,
            )? as usize,
            None => 0,
        };
        let akey = Self::attempt_key(cx);
        let ak = akey.as_deref();
        self.ev(
            vars,
            ak,
            "MapStateStarted",
            Some(&state.name),
            json!({"length": items.len()}),
        );
        let tolerated_count = match &m.tolerated_failure_count {
            Some(src) => {
                let n = self.map_number(
                    cx,
                    src,
                    &input,
                    vars,
                    "ToleratedFailureCount",
                    "integer",
                    Value::as_i64,
                )?;
                if n < 0 {
                    return Err(self.runtime(cx, "ToleratedFailureCount cannot be negative."));
                }
                Some(n as usize)
            }
            None => None,
        };
        let tolerated_pct = match &m.tolerated_failure_percentage {
            Some(src) => {
                let p = self.map_number(
                    cx,
                    src,
                    &input,
                    vars,
                    "ToleratedFailurePercentage",
                    "float",
                    Value::as_f64,
                )?;
                if !(0.0..=100.0).contains(&p) {
                    return Err(
                        self.runtime(cx, "ToleratedFailurePercentage must be between 0 and 100.")
                    );
                }
                Some(p)
            }
            None => None,
        };
        if distributed {
            self.ev(vars, ak, "MapRunStarted", Some(&state.name), Value::Null);
        }
        // Inputs per item.
        let mut inputs = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let v = match &m.item_selector {
                Some(t) => {
                    let icx = StateCx {
                        state,
                        key: cx.key.clone(),
                        entered_id: cx.entered_id,
                        entered_time: cx.entered_time,
                        retry_count: cx.retry_count,
                        task_token: None,
                        map_item: Some((i, item.clone())),
                        context: OnceLock::new(),
                    };
                    if jsonata {
                        self.jsonata_template(&icx, t, &input, None, None, vars, "ItemSelector")?
                    } else {
                        self.payload(&icx, t, &input, vars, "ItemSelector")?
                    }
                }
                None => item,
            };
            inputs.push(v);
        }
        let inputs = match &m.item_batcher {
            Some(b) => self.batches(cx, b, inputs, &input, vars)?,
            None => inputs,
        };
        let total = inputs.len();
        let limit = if max_concurrency == 0 {
            total.max(1)
        } else {
            max_concurrency
        };
        let mut results: Vec<Option<Value>> = vec![None; total];
        let mut failures: Vec<Failure> = Vec::new();
        let mut running = FuturesOrdered::new();
        let mut queue = inputs.into_iter().enumerate();
        let tolerate = |failed: usize| -> bool {
            let by_count = tolerated_count.is_some_and(|c| failed <= c);
            let by_pct = tolerated_pct
                .is_some_and(|p| total > 0 && (failed as f64) * 100.0 / (total as f64) <= p);
            by_count || by_pct
        };
        // One snapshot of the enclosing variables, shared by every iteration.
        let mut base = vars.child();
        base.interleave = false;
        base.quiet = vars.quiet || distributed;
        let item_key = |i: usize| ak.map(|k| format!("{k}/i{i}"));
        let run_item = |i: usize, v: Value| {
            let mut child = base.clone();
            let key = item_key(i);
            if let Some(k) = &key {
                child.path = k.as_str().into();
            }
            async move {
                if !distributed {
                    self.ev(
                        vars,
                        key.as_deref(),
                        "MapIterationStarted",
                        Some(&state.name),
                        json!({"index": i}),
                    );
                }
                let r = self.scope(&m.processor, v, &mut child).await;
                (i, r)
            }
        };
        for (i, v) in queue.by_ref().take(limit) {
            running.push_back(run_item(i, v));
        }
        let mut failed_count = 0usize;
        while let Some((i, r)) = running.next().await {
            match r {
                Ok(v) => {
                    if !distributed {
                        self.ev(
                            vars,
                            item_key(i).as_deref(),
                            "MapIterationSucceeded",
                            Some(&state.name),
                            json!({"index": i}),
                        );
                    }
                    results[i] = Some(v);
                }
                Err(f) => {
                    if !distributed {
                        self.ev(
                            vars,
                            item_key(i).as_deref(),
                            "MapIterationFailed",
                            Some(&state.name),
                            json!({"index": i, "error": f.error, "cause": f.cause}),
                        );
                    }
                    failed_count += 1;
                    if f.is_uncatchable() || !tolerate(failed_count) {
                        drop(running);
                        let f = if tolerated_count.is_some() || tolerated_pct.is_some() {
                            Failure::new(
                                "States.ExceedToleratedFailureThreshold",
                                "The specified tolerated failure threshold was exceeded",
                            )
                        } else {
                            f
                        };
                        if distributed {
                            self.ev(vars, ak, "MapRunFailed", Some(&state.name), Value::Null);
                        }
                        return Err(f);
                    }
                    failures.push(f);
                    results[i] = Some(Value::Null);
                }
            }
            if let Some((j, v)) = queue.next() {
                running.push_back(run_item(j, v));
            }
        }
        if distributed {
            self.ev(vars, ak, "MapRunSucceeded", Some(&state.name), Value::Null);
        }
        self.ev(
            vars,
            ak,
            "MapStateSucceeded",
            Some(&state.name),
            Value::Null,
        );
        Ok(Value::Array(
            results
                .into_iter()
                .map(|r| r.unwrap_or(Value::Null))
                .collect(),
        ))
    }
}

/// A string holding a number counts as that number (AWS reads `"1"` from a
/// `...Path` field as 1).
fn numeric_string(v: Value) -> Value {
    if let Value::String(s) = &v {
        if let Ok(i) = s.trim().parse::<i64>() {
            return json!(i);
        }
        if let Ok(f) = s.trim().parse::<f64>()
            && f.is_finite()
        {
            return json!(f);
        }
    }
    v
}

impl Run<'_> {
    /// A Map number (MaxConcurrency, ToleratedFailureCount/Percentage):
    /// literal, `...Path` (numeric strings count) or JSONata, read with
    /// `read`; a value it cannot read is AWS's "not a valid integer/float".
    #[allow(clippy::too_many_arguments)]
    fn map_number<T>(
        &self,
        cx: &StateCx<'_>,
        src: &NumberSource,
        input: &Value,
        vars: &Vars,
        field: &str,
        kind: &str,
        read: fn(&Value) -> Option<T>,
    ) -> Result<T, Failure> {
        let v = numeric_string(self.number_value(cx, src, input, vars, field)?);
        read(&v).ok_or_else(|| {
            let path = match src {
                NumberSource::Path(p) => p.as_str(),
                _ => "",
            };
            self.runtime(
                cx,
                format!(
                    "The {field}Path field refers to value \"{}\" which is not a valid {kind}: {path}",
                    display_raw(&v)
                ),
            )
        })
    }

    /// ItemBatcher: group the items into `{"Items": [...], "BatchInput": ...}`
    /// inputs of at most MaxItemsPerBatch items and MaxInputBytesPerBatch bytes.
    fn batches(
        &self,
        cx: &StateCx<'_>,
        b: &ItemBatcher,
        items: Vec<Value>,
        input: &Value,
        vars: &Vars,
    ) -> Result<Vec<Value>, Failure> {
        let limit = |src: &Option<NumberSource>, field: &str| -> Result<Option<usize>, Failure> {
            match src {
                None => Ok(None),
                Some(src) => {
                    let v = numeric_string(self.number_value(cx, src, input, vars, field)?);
                    match v.as_u64() {
                        Some(n) if n > 0 => Ok(Some(n as usize)),
                        _ => Err(self
                            .runtime(cx, format!("{field} must be a positive integer, not {v}"))),
                    }
                }
            }
        };
        let max_items = limit(&b.max_items_per_batch, "MaxItemsPerBatch")?;
        let max_bytes =
            limit(&b.max_input_bytes_per_batch, "MaxInputBytesPerBatch")?.unwrap_or(256 * 1024);
        let batch_input = match &b.batch_input {
            Some(t) if cx.state.query_language == QueryLanguage::Jsonata => {
                Some(self.jsonata_template(cx, t, input, None, None, vars, "BatchInput")?)
            }
            Some(t) => Some(self.payload(cx, t, input, vars, "BatchInput")?),
            None => None,
        };
        let wrap = |batch: Vec<Value>| {
            let mut m = Map::new();
            if let Some(bi) = &batch_input {
                m.insert("BatchInput".into(), bi.clone());
            }
            m.insert("Items".into(), Value::Array(batch));
            Value::Object(m)
        };
        let mut out = Vec::new();
        let mut batch: Vec<Value> = Vec::new();
        let mut bytes = 0usize;
        for item in items {
            let size = json_size(&item) + 1;
            if size > max_bytes {
                return Err(self.runtime(
                    cx,
                    format!(
                        "an item of {size} bytes is larger than MaxInputBytesPerBatch ({max_bytes})"
                    ),
                ));
            }
            let full = max_items.is_some_and(|n| batch.len() >= n) || bytes + size > max_bytes;
            if full && !batch.is_empty() {
                out.push(wrap(std::mem::take(&mut batch)));
                bytes = 0;
            }
            bytes += size;
            batch.push(item);
        }
        if !batch.is_empty() {
            out.push(wrap(batch));
        }
        Ok(out)
    }
}

fn display_raw(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn operand_literal_bool(o: &Operand) -> bool {
    matches!(o, Operand::Literal(Value::Bool(true)))
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Delay before retry `attempt` (0-based): IntervalSeconds × BackoffRate^attempt,
/// capped by MaxDelaySeconds; FULL jitter picks uniformly in [0, delay].
fn retry_delay(r: &Retrier, attempt: u64) -> Duration {
    let mut secs = r.interval_seconds as f64 * r.backoff_rate.powi(attempt.min(1000) as i32);
    if let Some(max) = r.max_delay_seconds {
        secs = secs.min(max as f64);
    }
    secs = secs.min(31_536_000.0);
    if r.jitter == Jitter::Full {
        let u = (uuid::Uuid::new_v4().as_u128() % 1_000_000) as f64 / 1_000_000.0;
        secs *= u;
    }
    Duration::from_secs_f64(secs.max(0.0))
}

fn compare(op: Comparison, value: &Value, expected: &Value) -> bool {
    use Comparison::*;
    let num = |v: &Value| v.as_f64();
    let ts = |v: &Value| {
        v.as_str()
            .filter(|s| piflow_asl::load::is_rfc3339(s))
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
    };
    match op {
        IsNull => value.is_null() == expected.as_bool().unwrap_or(false),
        IsBoolean => value.is_boolean() == expected.as_bool().unwrap_or(false),
        IsNumeric => value.is_number() == expected.as_bool().unwrap_or(false),
        IsString => value.is_string() == expected.as_bool().unwrap_or(false),
        IsTimestamp => ts(value).is_some() == expected.as_bool().unwrap_or(false),
        IsPresent => true,
        BooleanEquals => value.is_boolean() && value == expected,
        StringEquals => value.is_string() && value == expected,
        StringMatches => match (value.as_str(), expected.as_str()) {
            (Some(s), Some(p)) => string_matches(s, p),
            _ => false,
        },
        StringGreaterThan | StringGreaterThanEquals | StringLessThan | StringLessThanEquals => {
            match (value.as_str(), expected.as_str()) {
                (Some(a), Some(b)) => ordering_ok(op, a.cmp(b)),
                _ => false,
            }
        }
        NumericEquals
        | NumericGreaterThan
        | NumericGreaterThanEquals
        | NumericLessThan
        | NumericLessThanEquals => match (num(value), num(expected)) {
            (Some(a), Some(b)) if value.is_number() => match a.partial_cmp(&b) {
                Some(o) => ordering_ok(op, o),
                None => false,
            },
            _ => false,
        },
        TimestampEquals
        | TimestampGreaterThan
        | TimestampGreaterThanEquals
        | TimestampLessThan
        | TimestampLessThanEquals => match (ts(value), ts(expected)) {
            (Some(a), Some(b)) => ordering_ok(op, a.cmp(&b)),
            _ => false,
        },
    }
}

fn ordering_ok(op: Comparison, o: std::cmp::Ordering) -> bool {
    use Comparison::*;
    use std::cmp::Ordering::*;
    match op {
        NumericEquals | StringEquals | TimestampEquals | BooleanEquals => o == Equal,
        NumericGreaterThan | StringGreaterThan | TimestampGreaterThan => o == Greater,
        NumericGreaterThanEquals | StringGreaterThanEquals | TimestampGreaterThanEquals => {
            o != Less
        }
        NumericLessThan | StringLessThan | TimestampLessThan => o == Less,
        NumericLessThanEquals | StringLessThanEquals | TimestampLessThanEquals => o != Greater,
        _ => false,
    }
}

/// `StringMatches`: `*` matches any run of characters; `\*` and `\\` escape.
fn string_matches(s: &str, pattern: &str) -> bool {
    #[derive(PartialEq)]
    enum Tok {
        Lit(char),
        Star,
    }
    let mut toks = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => toks.push(Tok::Lit(n)),
                None => toks.push(Tok::Lit('\\')),
            },
            '*' => toks.push(Tok::Star),
            c => toks.push(Tok::Lit(c)),
        }
    }
    let s: Vec<char> = s.chars().collect();
    // Classic wildcard matching with backtracking on the last star.
    let (mut si, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if ti < toks.len() {
            match toks[ti] {
                Tok::Star => {
                    star = Some((ti, si));
                    ti += 1;
                    continue;
                }
                Tok::Lit(c) if c == s[si] => {
                    si += 1;
                    ti += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((t, sp)) => {
                ti = t + 1;
                si = sp + 1;
                star = Some((t, sp + 1));
            }
            None => return false,
        }
    }
    while ti < toks.len() && toks[ti] == Tok::Star {
        ti += 1;
    }
    ti == toks.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(string_matches("log-2024.txt", "log-*.txt"));
        assert!(string_matches("abc", "*"));
        assert!(!string_matches("abc", "a*d"));
        assert!(string_matches("a*c", "a\\*c"));
        assert!(!string_matches("abc", "a\\*c"));
    }

    #[test]
    fn backoff() {
        let r = Retrier {
            interval_seconds: 2,
            backoff_rate: 2.0,
            max_delay_seconds: Some(10),
            ..Retrier::default()
        };
        assert_eq!(retry_delay(&r, 0), Duration::from_secs(2));
        assert_eq!(retry_delay(&r, 1), Duration::from_secs(4));
        assert_eq!(retry_delay(&r, 5), Duration::from_secs(10));
    }
}
