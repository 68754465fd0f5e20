//! TestState against the conformance corpus: every `test_state` case
//! recorded against AWS, run through [`piflow_sfn_api::test_state`], its
//! whole answer (status, output, error, cause, nextState, inspectionData)
//! compared with AWS's (`tests/it/common/test_state_corpus.rs`).
//!
//! The stubbed resource `arn:aws:__STUB__` (a Lambda function answering
//! `<inputData>!`, flag `definition_contains_stubbed_resource`) is a
//! handler here.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

#[path = "../../../tests/it/common/corpus.rs"]
mod common;
#[path = "../../../tests/it/common/test_state_corpus.rs"]
mod test_state_corpus;

use std::sync::Arc;

use serde_json::{Value, json};

use piflow_engine::{Failure, TaskHandler, TaskRegistry, TaskRequest};

/// The corpus's stubbed Lambda function: `{"inputData": s}` → `s + "!"`.
struct Stub;

impl TaskHandler for Stub {
    fn invoke(
        &self,
        request: TaskRequest,
    ) -> futures_like::BoxFuture<'static, Result<Value, Failure>> {
        let out = match request.input.get("inputData").and_then(Value::as_str) {
            Some(s) => Ok(json!(format!("{s}!"))),
            None => Err(Failure::new("Lambda.Unknown", "the stub takes inputData")),
        };
        Box::pin(async move { out })
    }
}

mod futures_like {
    pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
}

#[test]
fn test_state_answers_as_aws_did() {
    let Some(dir) = common::conformance_dir() else {
        return;
    };
    let mut tasks = TaskRegistry::new();
    tasks.register("arn:aws:__STUB__", Arc::new(Stub));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut score = test_state_corpus::Score::default();
    for (name, case) in common::corpus_files(&dir.join("cases"))
        .into_iter()
        .filter(|(_, c)| c["kind"] == "test_state")
    {
        let body = test_state_corpus::request(&case);
        let answer = rt.block_on(piflow_sfn_api::test_state(&body, &tasks));
        score.add(&name, &case, answer.map_err(|e| e.to_string()));
    }
    score.report("", 95);
}
