//! TestState: one state, one attempt, with inspection data. The data flow
//! is the interpreter's own functions called step by step, so that each
//! step's value can be reported; Retry and Catch are matched as
//! [`Run::with_retry`] matches them, but answered (`RETRIABLE`,
//! `CAUGHT_ERROR`) instead of looped.

use super::task::retry_delay;
use super::*;
use crate::test_state::{
    ErrorDetails, Inspection, TestMock, TestStateError, TestStateOutcome, TestStateRequest,
    TestStatus,
};

/// The name of the state in a made-up context object (AWS reports this
/// name, not the tested state's, when no context is given).
const CONTEXT_STATE_NAME: &str = "StateName";

/// The cause AWS gives when a Map's failures exceed its tolerance.
const THRESHOLD_CAUSE: &str = "The specified tolerated failure threshold was exceeded";

pub(crate) async fn run(
    engine: &Engine,
    req: &TestStateRequest,
) -> Result<TestStateOutcome, TestStateError> {
    let state = &req.state;
    check(req)?;
    let now = engine.clock.now();
    let o = &engine.options;
    let id = uuid::Uuid::new_v4().to_string();
    let sm_name = format!("TestStateMachine-{}", &id[..8]);
    let exec_name = id.clone();
    let execution_arn = format!(
        "arn:aws:states:{}:{}:express:{sm_name}:{exec_name}",
        o.region, o.account
    );
    let sm_arn = format!(
        "arn:aws:states:{}:{}:stateMachine:{sm_name}",
        o.region, o.account
    );
    let retry_count = req.config.retrier_retry_count.unwrap_or(0);
    let wait_token = matches!(
        &state.kind,
        StateKind::Task(t) if t.resource_kind.waits_for_token()
    );
    let context = match &req.context {
        Some(c) => c.clone(),
        None => {
            let mut st = Map::new();
            st.insert("Name".into(), json!(CONTEXT_STATE_NAME));
            st.insert("EnteredTime".into(), json!(timestamp(now)));
            if matches!(
                state.kind,
                StateKind::Task(_) | StateKind::Parallel(_) | StateKind::Map(_)
            ) {
                st.insert("RetryCount".into(), json!(retry_count));
            }
            let mut c = json!({
                "Execution": {
                    "Id": execution_arn,
                    "Input": req.input,
                    "Name": exec_name,
                    "RoleArn": req.role_arn,
                    "StartTime": timestamp(now),
                },
                "StateMachine": {"Id": sm_arn, "Name": sm_name},
                "State": st,
            });
            if wait_token {
                c["Task"] = json!({"Token": format!("{execution_arn}:1:{retry_count}")});
            }
            c
        }
    };
    let task_token = wait_token.then(|| {
        context
            .pointer("/Task/Token")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    });
    let run = Run {
        engine,
        history: Mutex::new(Vec::new()),
        next_id: AtomicU64::new(1),
        execution: context.get("Execution").cloned().unwrap_or(Value::Null),
        state_machine: context.get("StateMachine").cloned().unwrap_or(Value::Null),
        execution_arn,
        durable: None,
        fixed_context: Some(context),
    };
    let cx = StateCx {
        state,
        key: None,
        entered_id: 1,
        entered_time: now,
        retry_count: retry_count.min(u64::from(u32::MAX)) as u32,
        task_token,
        map_item: None,
        context: OnceLock::new(),
    };
    let mut vars = Vars {
        local: req.variables.clone().into_iter().collect(),
        path: "".into(),
        ..Vars::default()
    };
    let mut ins = Inspection {
        input: Some(req.input.clone()),
        ..Inspection::default()
    };
    let outcome = run.test_one(&cx, req, &mut vars, &mut ins).await;
    if !vars.local.is_empty() {
        ins.variables = Some(
            vars.local
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        );
    }
    let mut out = match outcome {
        Tested::Done(Ok((next, output))) => TestStateOutcome {
            status: TestStatus::Succeeded,
            output: Some(output),
            error: None,
            cause: None,
            next_state: next,
            inspection: Inspection::default(),
        },
        Tested::Done(Err(f)) => failed(TestStatus::Failed, f),
        Tested::Retriable(f) => failed(TestStatus::Retriable, f),
        Tested::Caught { f, next, output } => TestStateOutcome {
            output: Some(output),
            next_state: Some(next),
            ..failed(TestStatus::CaughtError, f)
        },
    };
    out.inspection = ins;
    Ok(out)
}

fn failed(status: TestStatus, f: Failure) -> TestStateOutcome {
    TestStateOutcome {
        status,
        output: None,
        error: f.error,
        cause: f.cause,
        next_state: None,
        inspection: Inspection::default(),
    }
}

/// How the one attempt ended.
enum Tested {
    Done(Result<(Option<String>, Value), Failure>),
    Retriable(Failure),
    Caught {
        f: Failure,
        next: String,
        output: Value,
    },
}

/// TestState's rules on the state, the mock and the configuration.
fn check(req: &TestStateRequest) -> Result<(), TestStateError> {
    let state = &req.state;
    let type_name = state.kind.type_name();
    let invalid = |m: String| Err(TestStateError::Invalid(m));
    match (&state.kind, &req.mock) {
        (StateKind::Task(_) | StateKind::Map(_) | StateKind::Parallel(_), _) => {}
        (_, Some(_)) => {
            return invalid(format!(
                "State type '{type_name}' is not supported when a mock is specified"
            ));
        }
        _ => {}
    }
    if req.mock.is_none() {
        match &state.kind {
            StateKind::Map(_) | StateKind::Parallel(_) => {
                return Err(TestStateError::Unsupported(
                    "TestState API does not support Map or Parallel states. Supported state types include: [Task, Wait, Pass, Succeed, Fail, Choice]".into(),
                ));
            }
            StateKind::Task(t) => {
                let needs_mock = match &t.resource_kind {
                    ResourceKind::Activity => Some("an Activity task"),
                    ResourceKind::Integration { pattern, .. }
                    | ResourceKind::AwsSdk { pattern, .. } => match pattern {
                        IntegrationPattern::Sync | IntegrationPattern::Sync2 => {
                            Some("a .sync integration")
                        }
                        IntegrationPattern::WaitForTaskToken => {
                            Some("a .waitForTaskToken integration")
                        }
                        IntegrationPattern::RequestResponse => None,
                    },
                    _ => None,
                };
                if let Some(what) = needs_mock {
                    return Err(TestStateError::Unsupported(format!(
                        "TestState runs {what} only with a mock: give 'mock' a result or an errorOutput"
                    )));
                }
            }
            _ => {}
        }
        if req.context.is_some() {
            return invalid(
                "The field 'context' may only be specified if a mock is specified in the same request".into(),
            );
        }
    }
    if let Some(TestMock::Result(v)) = &req.mock {
        match &state.kind {
            StateKind::Map(m) if m.result_writer.is_some() && !v.is_object() => {
                return invalid("Mocked result must be a JSON object.".into());
            }
            StateKind::Map(m) if m.result_writer.is_none() && !v.is_array() => {
                return invalid("Mocked result must be an array.".into());
            }
            StateKind::Parallel(p) => match v {
                Value::Array(a) if a.len() != p.branches.len() => {
                    return invalid(
                        "Mocked result must contain the same number of items as number of Parallel branches.".into(),
                    );
                }
                Value::Array(_) => {}
                _ => return invalid("Mocked result must be an array.".into()),
            },
            _ => {}
        }
    }
    if let Some(inner) = &req.config.error_caused_by_state {
        let scopes: Vec<&Scope> = match &state.kind {
            StateKind::Map(m) => vec![&m.processor],
            StateKind::Parallel(p) => p.branches.iter().collect(),
            _ => {
                return invalid(format!(
                    "stateConfiguration.errorCausedByState may only be specified for a Map or Parallel state, not a {type_name} state"
                ));
            }
        };
        if !matches!(req.mock, Some(TestMock::Error { .. })) {
            return invalid(
                "stateConfiguration.errorCausedByState may only be specified with mock.errorOutput"
                    .into(),
            );
        }
        if !scopes.iter().any(|s| scope_has(s, inner)) {
            return invalid(format!(
                "stateConfiguration.errorCausedByState '{inner}' is not a state inside the tested {type_name} state '{}'",
                state.name
            ));
        }
    }
    if req.config.map_iteration_failure_count.is_some() && !matches!(state.kind, StateKind::Map(_))
    {
        return invalid(format!(
            "stateConfiguration.mapIterationFailureCount may only be specified for a Map state, not a {type_name} state"
        ));
    }
    Ok(())
}

/// Does the scope (or a scope nested in it) hold a state of this name?
fn scope_has(scope: &Scope, name: &str) -> bool {
    scope.states.contains_key(name) || scope.children().into_iter().any(|s| scope_has(s, name))
}

impl Run<'_> {
    async fn test_one(
        &self,
        cx: &StateCx<'_>,
        req: &TestStateRequest,
        vars: &mut Vars,
        ins: &mut Inspection,
    ) -> Tested {
        let state = cx.state;
        let jsonata = state.query_language == QueryLanguage::Jsonata;
        let raw = req.input.clone();
        let next = match &state.transition {
            Transition::Next(n) => Some(n.clone()),
            _ => None,
        };
        let r = match &state.kind {
            StateKind::Pass(p) => self.test_pass(cx, p, raw, vars, ins).map(|v| (next, v)),
            StateKind::Succeed if jsonata => self
                .jsonata_output(cx, state.output.as_ref(), &raw, None, None, vars, &raw)
                .map(|v| (None, v)),
            StateKind::Succeed => self.input_path(cx, &raw, vars).and_then(|eff| {
                ins.after_input_path = Some(eff.clone());
                Ok((None, self.output_path(cx, eff, vars)?))
            }),
            StateKind::Fail(f) => {
                if !jsonata {
                    ins.after_input_path = Some(raw.clone());
                }
                Err(self.fail_state(cx, f, &raw, vars))
            }
            StateKind::Choice(c) => {
                if !jsonata {
                    match self.input_path(cx, &raw, vars) {
                        Ok(eff) => ins.after_input_path = Some(eff),
                        Err(f) => return Tested::Done(Err(f)),
                    }
                }
                self.choice(cx, c, raw, vars)
            }
            StateKind::Wait(w) => self.test_wait(cx, w, raw, vars, ins).map(|v| (next, v)),
            StateKind::Task(_) | StateKind::Parallel(_) | StateKind::Map(_) => {
                return self.test_retrying(cx, req, raw, vars, ins).await;
            }
        };
        Tested::Done(r)
    }

    fn test_pass(
        &self,
        cx: &StateCx<'_>,
        p: &Pass,
        raw: Value,
        vars: &mut Vars,
        ins: &mut Inspection,
    ) -> Result<Value, Failure> {
        if cx.state.query_language == QueryLanguage::Jsonata {
            return self.jsonata_output_and_assign(cx, &raw, vars);
        }
        let result = match &p.result {
            Some(r) => {
                ins.result = Some(r.clone());
                r.clone()
            }
            None => {
                let eff = self.input_path(cx, &raw, vars)?;
                ins.after_input_path = Some(eff.clone());
                let eff = match &p.parameters {
                    Some(t) => self.payload(cx, t, &eff, vars, "Parameters")?,
                    None => eff,
                };
                ins.after_parameters = Some(eff.clone());
                eff
            }
        };
        ins.after_result_selector = Some(result.clone());
        self.assign(cx, cx.state.assign.as_ref(), &result, None, None, vars)?;
        let out = self.result_path(cx, p.result_path.as_ref(), raw, result)?;
        ins.after_result_path = Some(out.clone());
        self.output_path(cx, out, vars)
    }

    /// A Wait state: its time is read and checked, but not waited.
    fn test_wait(
        &self,
        cx: &StateCx<'_>,
        w: &Wait,
        raw: Value,
        vars: &mut Vars,
        ins: &mut Inspection,
    ) -> Result<Value, Failure> {
        if cx.state.query_language == QueryLanguage::Jsonata {
            self.wait_delay(cx, w, &raw, vars)?;
            return self.jsonata_output_and_assign(cx, &raw, vars);
        }
        let eff = self.input_path(cx, &raw, vars)?;
        ins.after_input_path = Some(eff.clone());
        self.wait_delay(cx, w, &eff, vars)?;
        self.assign(cx, cx.state.assign.as_ref(), &eff, None, None, vars)?;
        self.output_path(cx, eff, vars)
    }

    /// Task, Parallel and Map: one attempt, then Retry and Catch matched.
    async fn test_retrying(
        &self,
        cx: &StateCx<'_>,
        req: &TestStateRequest,
        raw: Value,
        vars: &mut Vars,
        ins: &mut Inspection,
    ) -> Tested {
        let state = cx.state;
        let io = match &state.kind {
            StateKind::Task(t) => &t.io,
            StateKind::Parallel(p) => &p.io,
            StateKind::Map(m) => &m.io,
            _ => return Tested::Done(Err(self.runtime(cx, "not a Task, Parallel or Map state"))),
        };
        let f = match self.test_attempt(cx, req, io, &raw, vars, ins).await {
            Ok(out) => {
                let next = match &state.transition {
                    Transition::Next(n) => Some(n.clone()),
                    _ => None,
                };
                return Tested::Done(Ok((next, out)));
            }
            Err(f) => f,
        };
        if f.is_uncatchable() {
            return Tested::Done(Err(f));
        }
        let mut details = ErrorDetails::default();
        if let Some((i, retrier)) = io
            .retry
            .iter()
            .enumerate()
            .find(|(_, r)| f.matches(&r.error_equals))
        {
            details.retry_index = Some(i);
            let attempts = req.config.retrier_retry_count.unwrap_or(0);
            if attempts < retrier.max_attempts {
                details.retry_backoff_interval_seconds =
                    Some(retry_delay(retrier, attempts).as_secs());
                ins.error_details = Some(details);
                return Tested::Retriable(f);
            }
        }
        let caught = io
            .catch
            .iter()
            .enumerate()
            .find(|(_, c)| f.matches(&c.error_equals));
        let ended = match caught {
            Some((i, catcher)) => {
                details.catch_index = Some(i);
                match self.catch_output(cx, catcher, raw, &f, vars) {
                    Ok(output) => Tested::Caught {
                        f,
                        next: catcher.next.clone(),
                        output,
                    },
                    Err(e) => Tested::Done(Err(e)),
                }
            }
            None => Tested::Done(Err(f)),
        };
        if details != ErrorDetails::default() {
            ins.error_details = Some(details);
        }
        ended
    }

    /// The attempt: input processing, the work (mocked, or the task's
    /// handler), result processing.
    async fn test_attempt(
        &self,
        cx: &StateCx<'_>,
        req: &TestStateRequest,
        io: &ResultHandling,
        raw: &Value,
        vars: &mut Vars,
        ins: &mut Inspection,
    ) -> Result<Value, Failure> {
        let state = cx.state;
        let jsonata = state.query_language == QueryLanguage::Jsonata;
        let result = match &state.kind {
            StateKind::Task(t) => {
                let eff = if jsonata {
                    let eff = match &io.arguments {
                        Some(t) => {
                            self.jsonata_template(cx, t, raw, None, None, vars, "Arguments")?
                        }
                        None => raw.clone(),
                    };
                    ins.after_arguments = Some(eff.clone());
                    eff
                } else {
                    let eff = self.input_path(cx, raw, vars)?;
                    ins.after_input_path = Some(eff.clone());
                    let eff = match &io.parameters {
                        Some(t) => self.payload(cx, t, &eff, vars, "Parameters")?,
                        None => eff,
                    };
                    ins.after_parameters = Some(eff.clone());
                    eff
                };
                let result = match &req.mock {
                    Some(m) => mocked(m)?,
                    None => self.task(cx, t, eff, raw, vars).await?,
                };
                ins.result = Some(result.clone());
                result
            }
            StateKind::Parallel(_) => match &req.mock {
                Some(m) => mocked(m)?,
                None => return Err(self.runtime(cx, "a Parallel state needs a mock")),
            },
            StateKind::Map(m) => self.test_map(cx, req, m, raw, vars, ins)?,
            _ => return Err(self.runtime(cx, "not a Task, Parallel or Map state")),
        };
        if jsonata {
            return self.process_result(cx, io, raw, result, vars);
        }
        let result = match &io.result_selector {
            Some(t) => self.payload(cx, t, &result, vars, "ResultSelector")?,
            None => result,
        };
        ins.after_result_selector = Some(result.clone());
        self.assign(cx, state.assign.as_ref(), &result, None, None, vars)?;
        let out = self.result_path(cx, io.result_path.as_ref(), raw.clone(), result)?;
        ins.after_result_path = Some(out.clone());
        self.output_path(cx, out, vars)
    }

    /// A Map: its items and limits are read as an execution reads them; its
    /// result (or error) is the mock's; `mapIterationFailureCount` failures
    /// beyond its tolerance fail it as AWS does.
    fn test_map(
        &self,
        cx: &StateCx<'_>,
        req: &TestStateRequest,
        m: &piflow_asl::model::Map,
        raw: &Value,
        vars: &Vars,
        ins: &mut Inspection,
    ) -> Result<Value, Failure> {
        let jsonata = cx.state.query_language == QueryLanguage::Jsonata;
        let input = if jsonata {
            raw.clone()
        } else {
            let eff = self.input_path(cx, raw, vars)?;
            ins.after_input_path = Some(eff.clone());
            eff
        };
        let items: Option<Vec<Value>> = if m.item_reader.is_some() {
            match &req.config.map_item_reader_data {
                Some(Value::Array(a)) => Some(a.clone()),
                _ => None,
            }
        } else if jsonata {
            Some(self.map_items(cx, m, &input, vars)?)
        } else {
            let v = match &m.items_path {
                Some(p) => self
                    .select(cx, p, &input, vars)
                    .map_err(|e| self.runtime(cx, e))?,
                None => input.clone(),
            };
            match v {
                Value::Array(a) => {
                    ins.after_items_path = Some(Value::Array(a.clone()));
                    Some(a)
                }
                _ => {
                    // TestState's own wording; a context path reads "$".
                    let path = m.items_path.as_ref().map_or("$", |p| p.as_str());
                    let path = path
                        .strip_prefix('$')
                        .filter(|p| p.starts_with('$'))
                        .unwrap_or(path);
                    return Err(Failure::new(
                        "States.Runtime",
                        format!("Reference path \"{path}\" must point to array."),
                    ));
                }
            }
        };
        ins.max_concurrency = Some(self.map_max_concurrency(cx, m, &input, vars)?);
        let (count, pct) = self.map_tolerance(cx, m, &input, vars)?;
        ins.tolerated_failure_count = count.map(|c| c as u64);
        ins.tolerated_failure_percentage = pct;
        let result = match &req.mock {
            Some(mock) => mocked(mock)?,
            None => return Err(self.runtime(cx, "a Map state needs a mock")),
        };
        let failures = req.config.map_iteration_failure_count.unwrap_or(0);
        if failures > 0 && (count.is_some() || pct.is_some()) {
            let total = items
                .as_ref()
                .map(Vec::len)
                .or_else(|| result.as_array().map(Vec::len))
                .unwrap_or(0);
            let over_count = count.is_some_and(|c| failures > c as u64);
            let over_pct =
                pct.is_some_and(|p| total > 0 && (failures as f64) * 100.0 / (total as f64) > p);
            if over_count || over_pct {
                return Err(Failure::new(
                    "States.ExceedToleratedFailureThreshold",
                    THRESHOLD_CAUSE,
                ));
            }
        }
        Ok(result)
    }
}

/// The mock as the work's outcome.
fn mocked(m: &TestMock) -> Result<Value, Failure> {
    match m {
        TestMock::Result(v) => Ok(v.clone()),
        TestMock::Error { error, cause } => Err(Failure {
            error: error.clone(),
            cause: cause.clone(),
        }),
    }
}
