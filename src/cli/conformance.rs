//! `piflow conformance DIR`: run the execution corpus and print a
//! per-feature table.

use std::path::PathBuf;

use super::{EXIT_FAILED, EXIT_USAGE, OutputFormat};
use crate::conformance::{load_cases, run_all};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The corpus directory (holding cases/).
    #[arg(default_value = "../shared/conformance")]
    dir: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    format: OutputFormat,
    /// List every failing case with the difference.
    #[arg(long)]
    failures: bool,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let cases = match load_cases(&args.dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("piflow: error: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let started = std::time::Instant::now();
    let (results, s) = run_all(&cases);
    let elapsed = started.elapsed();
    if args.format == OutputFormat::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"summary": s, "cases": results}))?
        );
    } else {
        println!(
            "{:<48} {:>6} {:>7} {:>7}",
            "feature", "cases", "passed", "rate"
        );
        for (feature, (n, ok)) in &s.features {
            println!(
                "{feature:<48} {n:>6} {ok:>7} {:>6.1}%",
                100.0 * *ok as f64 / (*n).max(1) as f64
            );
        }
        if args.failures {
            for r in results.iter().filter(|r| !r.passed) {
                println!(
                    "FAIL {}\n    {}",
                    r.name,
                    r.skipped.clone().or(r.detail.clone()).unwrap_or_default()
                );
            }
        }
        println!(
            "pure-language: {}/{} exact, history {}/{}; all executions: {}/{} ({} skipped); {:.2}s",
            s.pure_passed,
            s.pure_total,
            s.pure_trace_passed,
            s.pure_trace_total,
            s.passed,
            s.total,
            s.skipped,
            elapsed.as_secs_f64()
        );
    }
    Ok(if s.pure_passed == s.pure_total {
        0
    } else {
        EXIT_FAILED
    })
}
