//! JSONata parsing (`{% ... %}` strings and bare expressions).
#![no_main]

use libfuzzer_sys::fuzz_target;
use piflow_asl::jsonata::{is_jsonata_string, parse_expression, parse_jsonata_string};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = is_jsonata_string(s);
    if let Some(Err(e)) = parse_jsonata_string(s) {
        let _ = e.code();
    }
    match parse_expression(s) {
        Ok(expr) => {
            let _ = expr.source();
            let _ = expr.ast();
        }
        Err(e) => {
            let _ = e.code();
        }
    }
});
