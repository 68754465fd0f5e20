//! Task (with Retry and Catch, shared by Parallel and Map) and its
//! timeouts.

use super::*;

impl<'e> Run<'e> {
    /// The common shape of Task, Parallel and Map: input processing, the
    /// body with Retry, result processing, and Catch.
    pub(super) async fn with_retry<'a, F>(
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
                let out = self.catch_output(cx, catcher, raw, &f, vars)?;
                Ok((Some(catcher.next.clone()), out))
            }
        }
    }

    /// The output of a state whose error `f` a catcher caught: its
    /// ResultPath (JSONPath) or Output (JSONata), and its Assign.
    pub(super) fn catch_output(
        &self,
        cx: &StateCx<'_>,
        catcher: &Catcher,
        raw: Value,
        f: &Failure,
        vars: &mut Vars,
    ) -> Result<Value, Failure> {
        let error_output = f.to_error_output();
        if cx.state.query_language == QueryLanguage::Jsonata {
            let o = match &catcher.output {
                Some(t) => {
                    self.jsonata_template(cx, t, &raw, None, Some(&error_output), vars, "Output")?
                }
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
            Ok(o)
        } else {
            self.assign(cx, catcher.assign.as_ref(), &error_output, None, None, vars)?;
            self.result_path(cx, catcher.result_path.as_ref(), raw, error_output)
        }
    }

    /// ResultSelector, Assign, ResultPath, OutputPath (or JSONata Output/Assign).
    pub(super) fn process_result(
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

    pub(super) async fn task(
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
        // An activity's worker answers through a token as a callback's
        // holder does (GetActivityTask hands it out); the context object
        // has no `Task.Token` for it, as in Step Functions.
        let activity = matches!(t.resource_kind, ResourceKind::Activity);
        let token = if wait_token {
            cx.task_token.clone()
        } else if activity {
            Some(format!(
                "{}:{}:{}",
                self.execution_arn, cx.entered_id, cx.retry_count
            ))
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
        let request = crate::tasks::TaskRequest {
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
        let mut receiver = token
            .as_ref()
            .map(|tok| self.engine.tokens.open(tok, heartbeat.is_some()));
        let engine = self.engine;
        let work = async {
            // A callback task that already handed its token out waits for
            // the answer without sending the token again (an activity task
            // is queued again: the queue of the process that ran it is gone).
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
                if !activity {
                    self.ev(
                        vars,
                        ak,
                        "TaskSubmitted",
                        Some(&state.name),
                        json!({"output": r}),
                    );
                }
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

    pub(super) fn seconds(
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
}

/// Delay before retry `attempt` (0-based): IntervalSeconds × BackoffRate^attempt,
/// capped by MaxDelaySeconds; FULL jitter picks uniformly in [0, delay].
pub(super) fn retry_delay(r: &Retrier, attempt: u64) -> Duration {
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

#[cfg(test)]
mod tests {
    use super::*;

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
