//! Evaluating JSONata expressions the way Step Functions does: `$states`
//! (input, result, errorOutput, context), workflow variables as `$name`, and
//! Step Functions' extra functions ($partition, $range, $hash, $random,
//! $uuid, $parse). `jsonata-core` values are `Rc`-based, so evaluation is
//! synchronous and stays on one thread.

use jsonata_core::evaluator::{Context, Evaluator, EvaluatorError};
use jsonata_core::value::JValue;
use serde_json::{Map, Value};

use piflow_asl::jsonata::JsonataExpr;

/// What `$states` holds while a state is evaluated.
pub struct StatesBinding<'a> {
    pub input: &'a Value,
    pub result: Option<&'a Value>,
    pub error_output: Option<&'a Value>,
    pub context: &'a Value,
}

/// Why an evaluation did not give a JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum EvalError {
    /// The expression returned nothing.
    Undefined,
    /// It returned a function or a regex.
    Unsupported,
    /// The evaluator raised an error (type error, bad argument, ...).
    Failed(String),
}

/// Evaluate `expr`. `lookup` reads workflow variables.
pub fn evaluate(
    expr: &JsonataExpr,
    states: &StatesBinding<'_>,
    lookup: &dyn Fn(&str) -> Option<Value>,
) -> Result<Value, EvalError> {
    let mut context = Context::new();
    let uses_states = expr.source().contains("$states");
    if uses_states {
        let mut st = Map::new();
        st.insert("input".into(), states.input.clone());
        if let Some(r) = states.result {
            st.insert("result".into(), r.clone());
        }
        if let Some(e) = states.error_output {
            st.insert("errorOutput".into(), e.clone());
        }
        if !states.context.is_null() {
            st.insert("context".into(), states.context.clone());
        }
        context.bind("states".to_string(), JValue::from(Value::Object(st)));
    }
    for name in referenced_variables(expr.source()) {
        if name == "states" {
            continue;
        }
        if let Some(v) = lookup(&name) {
            context.bind(name, JValue::from(v));
        }
    }
    let mut ev = Evaluator::with_context(context);
    register_functions(&mut ev);
    let data = JValue::from(states.input.clone());
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ev.evaluate(expr.ast(), &data)
    }))
    .map_err(|_| EvalError::Failed("the JSONata evaluator failed on this expression".into()))?
    .map_err(|e| EvalError::Failed(e.message().to_string()))?;
    to_json(&out)
}

/// `$name` tokens in an expression (a superset is fine: unknown names are
/// simply not bound).
fn referenced_variables(source: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let bytes = source.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let start = i + 1;
            let mut j = start;
            while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                j += 1;
            }
            if j > start {
                let name = &source[start..j];
                if !out.iter().any(|n| n == name) {
                    out.push(name.to_string());
                }
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

/// Convert an evaluation result to JSON.
pub fn to_json(v: &JValue) -> Result<Value, EvalError> {
    Ok(match v {
        JValue::Undefined => return Err(EvalError::Undefined),
        JValue::Null => Value::Null,
        JValue::Bool(b) => Value::Bool(*b),
        JValue::Number(n) => number(*n),
        JValue::String(s) => Value::String(s.to_string()),
        JValue::Array(a) => {
            let mut out = Vec::with_capacity(a.len());
            for item in a.iter() {
                match to_json(item) {
                    Ok(v) => out.push(v),
                    Err(EvalError::Undefined) => {}
                    Err(e) => return Err(e),
                }
            }
            Value::Array(out)
        }
        JValue::Object(_) => {
            let Some(m) = v.as_object() else {
                return Err(EvalError::Unsupported);
            };
            let mut out = Map::new();
            for (k, item) in m {
                match to_json(item) {
                    Ok(v) => {
                        out.insert(k.clone(), v);
                    }
                    Err(EvalError::Undefined) => {}
                    Err(e) => return Err(e),
                }
            }
            Value::Object(out)
        }
        _ => return Err(EvalError::Unsupported),
    })
}

fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 {
        Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

fn arg_error(msg: impl Into<String>) -> EvaluatorError {
    EvaluatorError::EvaluationError(msg.into())
}

fn register_functions(ev: &mut Evaluator) {
    let _ = ev.register_fn("partition", |args: &[JValue]| {
        let (Some(arr), Some(size)) = (
            args.first().and_then(JValue::as_array),
            args.get(1).and_then(JValue::as_f64),
        ) else {
            return Err(arg_error(
                "$partition(array, size) expects an array and a positive integer",
            ));
        };
        if size < 1.0 || size.fract() != 0.0 {
            return Err(arg_error("$partition: size must be a positive integer"));
        }
        let chunks: Vec<JValue> = arr
            .chunks(size as usize)
            .map(|c| JValue::array(c.to_vec()))
            .collect();
        Ok(JValue::array(chunks))
    });
    let _ = ev.register_fn("range", |args: &[JValue]| {
        let nums: Vec<f64> = args.iter().filter_map(JValue::as_f64).collect();
        if nums.len() != 3 || nums.iter().any(|n| n.fract() != 0.0) || nums[2] == 0.0 {
            return Err(arg_error(
                "$range(start, end, step) expects three integers, step not 0",
            ));
        }
        let (start, end, step) = (nums[0] as i64, nums[1] as i64, nums[2] as i64);
        let mut out = Vec::new();
        let mut i = start;
        while (step > 0 && i <= end) || (step < 0 && i >= end) {
            out.push(JValue::from_i64(i));
            if out.len() > 1000 {
                return Err(arg_error("$range: the result exceeds 1000 items"));
            }
            i += step;
        }
        Ok(JValue::sequence(out))
    });
    let _ = ev.register_fn("uuid", |_args: &[JValue]| {
        Ok(JValue::string(uuid::Uuid::new_v4().to_string()))
    });
    let _ = ev.register_fn("parse", |args: &[JValue]| {
        let Some(s) = args.first().and_then(JValue::as_str) else {
            return Err(arg_error("$parse expects a JSON string"));
        };
        let v: Value = serde_json::from_str(s).map_err(|e| arg_error(format!("$parse: {e}")))?;
        Ok(JValue::from(v))
    });
    let _ = ev.register_fn("hash", |args: &[JValue]| {
        let (Some(data), Some(alg)) = (
            args.first().and_then(JValue::as_str),
            args.get(1).and_then(JValue::as_str),
        ) else {
            return Err(arg_error("$hash(data, algorithm) expects two strings"));
        };
        piflow_asl::intrinsic::hash_hex(data, alg)
            .map(JValue::string)
            .ok_or_else(|| arg_error(format!("$hash: unsupported algorithm {alg}")))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use piflow_asl::jsonata::parse_expression;
    use serde_json::json;

    fn eval(src: &str, input: Value) -> Result<Value, EvalError> {
        let e = parse_expression(src).unwrap();
        let ctx = json!({"Execution": {"Name": "x"}});
        let b = StatesBinding {
            input: &input,
            result: None,
            error_output: None,
            context: &ctx,
        };
        evaluate(&e, &b, &|n| if n == "v" { Some(json!(41)) } else { None })
    }

    #[test]
    fn states_and_variables() {
        assert_eq!(eval("$states.input.a + $v", json!({"a": 1})), Ok(json!(42)));
        assert_eq!(
            eval("$states.context.Execution.Name", json!({})),
            Ok(json!("x"))
        );
        assert_eq!(eval("$nothing", json!({})), Err(EvalError::Undefined));
        assert_eq!(
            eval("function($x){$x}", json!({})),
            Err(EvalError::Unsupported)
        );
        assert_eq!(eval("1.5 * 2", json!({})), Ok(json!(3)));
    }

    #[test]
    fn step_functions_functions() {
        assert_eq!(
            eval("$partition([1,2,3,4,5], 2)", json!({})),
            Ok(json!([[1, 2], [3, 4], [5]]))
        );
        assert_eq!(eval("$range(0, 10, 5)", json!({})), Ok(json!([0, 5, 10])));
        assert_eq!(eval("$parse('{\"a\":1}').a", json!({})), Ok(json!(1)));
        assert_eq!(eval("$length($uuid())", json!({})), Ok(json!(36)));
    }
}
