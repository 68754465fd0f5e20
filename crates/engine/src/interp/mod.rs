//! The interpreter proper: scopes, states, data flow, Retry and Catch.
//! This module: an execution's run, its scopes and the common path of
//! every state; [`data`] the data flow, [`choice`] Choice rules, [`task`]
//! Task with Retry and Catch, [`map`] Parallel and Map.

mod choice;
mod data;
mod map;
mod task;
pub(crate) mod test_state;

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
    /// TestState: the context object, as given (or made up) whole.
    fixed_context: Option<Value>,
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
    stop: impl std::future::Future<Output = Failure>,
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
        fixed_context: None,
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
        f = stop => Ended::Aborted(f),
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
        // StopExecution's error and cause, when it gave them.
        Ended::Aborted(f) => {
            let details = if f.error.is_some() || f.cause.is_some() {
                json!({"error": f.error, "cause": f.cause})
            } else {
                Value::Null
            };
            run.keyed("/", "ExecutionAborted", None, details, None);
            (Status::Aborted, None, f.error, f.cause)
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
    Aborted(Failure),
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
        if let Some(c) = &self.fixed_context {
            return c.clone();
        }
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
}

pub(super) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
