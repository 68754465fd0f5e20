//! The interpreter against the executions recorded on AWS Step Functions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

#[path = "../../../tests/it/common/corpus.rs"]
mod common;

use piflow_conformance::{load_cases, run_all};

#[test]
fn corpus_executions() {
    let Some(dir) = common::conformance_dir() else {
        return;
    };
    let cases = load_cases(&dir).expect("corpus readable");
    assert_eq!(cases.len(), 1088);
    let (results, s) = run_all(&cases);
    let only = std::env::var("PIFLOW_CONFORMANCE_SHOW").unwrap_or_default();
    for r in &results {
        if !r.passed
            && r.skipped.is_none()
            && (only.is_empty() || r.name.contains(&only))
            && (r.pure_language || only == "all")
        {
            eprintln!(
                "FAIL {}\n    {}",
                r.name,
                r.detail.clone().unwrap_or_default()
            );
        }
    }
    if std::env::var_os("PIFLOW_CONFORMANCE_TRACES").is_some() {
        for r in &results {
            if r.pure_language && r.passed && r.trace_matched == Some(false) {
                eprintln!(
                    "TRACE {}\n    {}",
                    r.name,
                    r.detail.clone().unwrap_or_default()
                );
            }
        }
    }
    /// Pure cases whose recorded history piflow does not reproduce, with why
    /// (docs/conformance.md lists them too).
    const TRACE_EXCEPTIONS: &[&str] = &[
        // AWS ran six one-state branches truly in parallel: every branch was
        // entered before any exited; piflow interleaves state by state.
        "test_parallel_state_PARALLEL_STATE___get_execution_history",
        // AWS's history for a Parallel nested in a Parallel has no
        // ParallelStateExited for the inner state; piflow records one.
        "test_parallel_state_nested__get_execution_history",
    ];
    let trace_failures: Vec<&str> = results
        .iter()
        .filter(|r| r.pure_language && r.trace_matched == Some(false))
        .map(|r| r.name.as_str())
        .filter(|n| !TRACE_EXCEPTIONS.iter().any(|e| n.contains(e)))
        .collect();
    eprintln!(
        "conformance (execution): pure-language {}/{} exact; traces {}/{}; all {}/{} ({} skipped: need AWS services)",
        s.pure_passed,
        s.pure_total,
        s.pure_trace_passed,
        s.pure_trace_total,
        s.passed,
        s.total,
        s.skipped
    );
    assert_eq!(
        s.pure_passed, s.pure_total,
        "every pure-language case must match AWS exactly"
    );
    assert_eq!(s.pure_total, 842);
    // With stub services (crates/conformance/src/services.rs): a floor, so that a
    // regression in the service-backed cases fails the build.
    assert!(
        s.passed >= 1027,
        "all executions: {}/{} (floor 1027)",
        s.passed,
        s.total
    );
    assert!(
        trace_failures.is_empty(),
        "history differs from AWS: {trace_failures:#?}"
    );
}
