//! Data flow: paths, Parameters and Arguments, JSONata, ResultPath and
//! OutputPath, Assign, Fail and Wait values.

use super::*;

impl<'e> Run<'e> {
    pub(super) fn path_cx<'a>(
        &self,
        input: &'a Value,
        context: &'a Value,
        lookup: &'a dyn Fn(&str) -> Option<Value>,
    ) -> PathContext<'a> {
        PathContext::new(input, context).with_variables(lookup)
    }

    pub(super) fn runtime(&self, cx: &StateCx<'_>, detail: impl std::fmt::Display) -> Failure {
        in_state("States.Runtime", &cx.state.name, cx.entered_id, detail)
    }

    pub(super) fn select(
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
    pub(super) fn input_path_owned(
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

    pub(super) fn input_path(
        &self,
        cx: &StateCx<'_>,
        raw: &Value,
        vars: &Vars,
    ) -> Result<Value, Failure> {
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

    pub(super) fn output_path(
        &self,
        cx: &StateCx<'_>,
        out: Value,
        vars: &Vars,
    ) -> Result<Value, Failure> {
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

    pub(super) fn result_path(
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
    pub(super) fn payload(
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

    pub(super) fn payload_expr(
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
    pub(super) fn jsonata_in(
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

    pub(super) fn jsonata(
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
    pub(super) fn jsonata_template(
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
    pub(super) fn jsonata_output(
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
    pub(super) fn jsonata_output_and_assign(
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
    pub(super) fn assign(
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

    pub(super) fn fail_state(
        &self,
        cx: &StateCx<'_>,
        f: &Fail,
        raw: &Value,
        vars: &Vars,
    ) -> Failure {
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

    pub(super) fn number_value(
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

    pub(super) fn wait_delay(
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
    pub(super) fn until(&self, ts: &str) -> Option<i64> {
        if !piflow_asl::load::is_rfc3339(ts) {
            return None;
        }
        let t = DateTime::parse_from_rfc3339(ts).ok()?;
        let d = t.with_timezone(&Utc) - self.engine.clock.now();
        Some((d.num_milliseconds().max(0) + 999) / 1000)
    }
}
