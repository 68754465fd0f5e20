//! Choice: its rules and comparisons.

use super::*;

impl<'e> Run<'e> {
    pub(super) fn choice(
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

    pub(super) fn rule(
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
}

pub(super) fn operand_literal_bool(o: &Operand) -> bool {
    matches!(o, Operand::Literal(Value::Bool(true)))
}

pub(super) fn compare(op: Comparison, value: &Value, expected: &Value) -> bool {
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

pub(super) fn ordering_ok(op: Comparison, o: std::cmp::Ordering) -> bool {
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
pub(super) fn string_matches(s: &str, pattern: &str) -> bool {
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
}
