//! Intrinsic-function and `.$` payload-expression parsing and evaluation.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use piflow_asl::intrinsic::{parse_intrinsic, parse_payload_expr};
use piflow_asl::path::PathContext;
use serde_json::{Value, json};

/// Skip evaluation of longer inputs: nested States.ArrayRange /
/// States.StringSplit calls can otherwise do unbounded-looking work.
const MAX_EVAL_LEN: usize = 512;

static INPUT: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "a": {"b": [1, 2, 3], "s": "a,b,c", "n": 3, "f": 2.5},
        "arr": [1, "two", {"three": 3}, [4], null, true],
        "nums": [5, 1, 4, 1, 5, 9, 2, 6],
        "str": "hello {} world",
        "json": "{\"k\": [1, 2]}",
        "b64": "aGVsbG8=",
        "obj": {"x": 1, "y": {"z": 2}},
        "other": {"y": {"w": 3}, "q": 4},
        "empty": [],
        "neg": -1,
        "big": 1e300
    })
});

static CONTEXT: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "Execution": {"Id": "arn:aws:states:::execution:m:e", "Name": "e"},
        "State": {"Name": "S", "RetryCount": 0},
        "Map": {"Item": {"Index": 1, "Value": "v"}}
    })
});

fn variables(name: &str) -> Option<Value> {
    match name {
        "x" => Some(json!([1, 2, 3])),
        "v" => Some(json!("value")),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let cx = PathContext::new(&INPUT, &CONTEXT).with_variables(&variables);
    let evaluate = s.len() <= MAX_EVAL_LEN;
    if let Ok(call) = parse_intrinsic(s) {
        let _ = call.to_string();
        if evaluate {
            if let Err(e) = call.evaluate(&cx) {
                let _ = (e.error_name(), e.message(), e.offset());
            }
        }
    }
    if let Ok(expr) = parse_payload_expr(s) {
        if evaluate {
            let _ = expr.evaluate(&cx);
        }
    }
});
