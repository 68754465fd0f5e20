//! JSONPath and reference-path parsing and evaluation.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use piflow_asl::path::{PathContext, parse_json_path, parse_reference_path};
use serde_json::{Value, json};

static INPUT: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "a": {"b": [1, 2, {"c": "x", "d": null}], "e": true, "f": 1.5},
        "items": [
            {"id": 1, "name": "one", "price": 10, "tags": ["x", "y"]},
            {"id": 2, "name": "two", "price": 25.5, "tags": []},
            {"id": 3, "name": "three", "price": -3, "on": false}
        ],
        "str": "hello",
        "n": 42,
        "empty": {},
        "arr": [[1, 2], [3, [4, 5]], "s", null],
        "weird key": {"with.dot": 1, "with'quote": 2}
    })
});

static CONTEXT: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "Execution": {"Id": "arn:aws:states:::execution:m:e", "Input": {"a": 1}, "Name": "e"},
        "State": {"Name": "S", "EnteredTime": "2024-01-01T00:00:00Z", "RetryCount": 0},
        "StateMachine": {"Id": "arn", "Name": "m"},
        "Map": {"Item": {"Index": 0, "Value": {"k": "v"}}}
    })
});

fn variables(name: &str) -> Option<Value> {
    match name {
        "x" => Some(json!({"y": [1, 2, 3]})),
        "v" => Some(json!("value")),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let cx = PathContext::new(&INPUT, &CONTEXT).with_variables(&variables);
    if let Ok(p) = parse_json_path(s) {
        let _ = p.is_definite();
        let _ = p.is_root_only();
        let _ = p.select(&cx);
        let _ = p.select_in(&INPUT);
        let _ = p.to_string();
    }
    if let Ok(p) = parse_reference_path(s) {
        let _ = p.get(&cx);
        let _ = p.get_in(&INPUT);
        let _ = p.set(INPUT.clone(), json!({"new": 1}));
        let _ = p.set(json!([1, 2, 3]), json!(null));
        let _ = p.set(json!("scalar"), json!(true));
    }
});
