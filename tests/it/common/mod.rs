//! Shared helpers for integration tests.
#![allow(dead_code)]

pub mod e2e;
pub mod estate;
pub mod health;
pub mod moto;
pub mod product;
pub mod serve;
pub mod steps;

pub mod corpus;
pub mod test_state_corpus;

/// `[[[ … "x" … ]]]`: `depth` nested arrays around `"x"` (deep-input tests).
pub fn nested(depth: usize) -> serde_json::Value {
    let mut v = serde_json::json!("x");
    for _ in 0..depth {
        v = serde_json::Value::Array(vec![v]);
    }
    v
}
