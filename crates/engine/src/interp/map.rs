//! Parallel and Map: branches, items, batches and tolerated failures.

use super::*;

impl<'e> Run<'e> {
    pub(super) async fn parallel(
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

    pub(super) async fn map(
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
        let items = self.map_items(cx, m, &input, vars)?;
        let distributed = m.mode == ProcessorMode::Distributed;
        let max_concurrency = self.map_max_concurrency(cx, m, &input, vars)? as usize;
        let akey = Self::attempt_key(cx);
        let ak = akey.as_deref();
        self.ev(
            vars,
            ak,
            "MapStateStarted",
            Some(&state.name),
            json!({"length": items.len()}),
        );
        let (tolerated_count, tolerated_pct) = self.map_tolerance(cx, m, &input, vars)?;
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

impl Run<'_> {
    /// A Map's items: JSONata `Items` (default: the input), or `ItemsPath`.
    pub(super) fn map_items(
        &self,
        cx: &StateCx<'_>,
        m: &piflow_asl::model::Map,
        input: &Value,
        vars: &Vars,
    ) -> Result<Vec<Value>, Failure> {
        let state = cx.state;
        let jsonata = state.query_language == QueryLanguage::Jsonata;
        Ok(if jsonata {
            match &m.items {
                Some(Template::Jsonata(e)) => {
                    let v = self.jsonata_in(cx, e, input, vars, "Items")?;
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
                Some(t) => match self.jsonata_template(cx, t, input, None, None, vars, "Items")? {
                    Value::Array(a) => a,
                    other => {
                        return Err(self.runtime(
                            cx,
                            format!("Items must be an array, not {}", json_type(&other)),
                        ));
                    }
                },
                None => match input {
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
                    .select(cx, p, input, vars)
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
        })
    }

    /// A Map's MaxConcurrency (0: no limit).
    pub(super) fn map_max_concurrency(
        &self,
        cx: &StateCx<'_>,
        m: &piflow_asl::model::Map,
        input: &Value,
        vars: &Vars,
    ) -> Result<u64, Failure> {
        Ok(match &m.max_concurrency {
            Some(src) => self.map_number(
                cx,
                src,
                input,
                vars,
                "MaxConcurrency",
                "integer",
                Value::as_u64,
            )?,
            None => 0,
        })
    }

    /// A Map's ToleratedFailureCount and ToleratedFailurePercentage.
    pub(super) fn map_tolerance(
        &self,
        cx: &StateCx<'_>,
        m: &piflow_asl::model::Map,
        input: &Value,
        vars: &Vars,
    ) -> Result<(Option<usize>, Option<f64>), Failure> {
        let tolerated_count = match &m.tolerated_failure_count {
            Some(src) => {
                let n = self.map_number(
                    cx,
                    src,
                    input,
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
                    input,
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
        Ok((tolerated_count, tolerated_pct))
    }
}

/// A string holding a number counts as that number (AWS reads `"1"` from a
/// `...Path` field as 1).
pub(super) fn numeric_string(v: Value) -> Value {
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

pub(super) fn display_raw(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
