//! `piflow-conformance DIR` (`cargo run -p piflow-conformance --release -- DIR`): run the execution corpus and print a
//! per-feature table.

use std::path::PathBuf;

use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use piflow_conformance::{load_cases, run_all};

/// Exit code: a pure-language case failed.
const EXIT_FAILED: u8 = 1;
/// Exit code: usage error or unreadable corpus.
const EXIT_USAGE: u8 = 2;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Human,
    Json,
}

/// Run the ASL conformance corpus and print a per-feature table.
#[derive(Parser, Debug)]
#[command(name = "piflow-conformance", version)]
struct Args {
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

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(EXIT_USAGE),
            };
        }
    };
    match run(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("piflow-conformance: error: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn run(args: Args) -> anyhow::Result<u8> {
    let cases = match load_cases(&args.dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("piflow-conformance: error: {e}");
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
