//! The interpreter against the executions recorded on AWS Step Functions.

mod common;

use piflow::conformance::{load_cases, run_all};

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
}
