//! `piflow bench FILE`: run a workflow many times in one process and report
//! state transitions per second (used by benches/moto_compare.py).

use std::sync::Arc;

use super::{EXIT_FAILED, EXIT_USAGE};
use crate::run::{load_workflow, read_input};
use piflow_engine::{Engine, ExecutionRequest, Status, SystemClock, TaskRegistry};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A workflow name or path.
    target: String,
    /// Execution input: JSON text or @FILE.
    #[arg(long, default_value = "{}")]
    input: String,
    /// How many executions to run, one after another on one thread.
    #[arg(long, default_value_t = 100)]
    executions: u32,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let machine = match load_workflow(&args.target) {
        Ok(w) => w.machine,
        Err(code) => return Ok(code),
    };
    let input = match read_input(&args.input) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("piflow: error: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let machine = Arc::new(machine);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let engine = Engine::new(TaskRegistry::new(), Arc::new(SystemClock));
    let started = std::time::Instant::now();
    let mut transitions = 0u64;
    for i in 0..args.executions {
        let out = rt.block_on(engine.run(ExecutionRequest {
            machine: machine.clone(),
            state_machine_name: "bench".into(),
            execution_name: format!("bench-{i}"),
            input: input.clone(),
            role_arn: None,
            durable: None,
        }));
        if out.status != Status::Succeeded {
            eprintln!(
                "piflow: execution {i} ended {}: {} {}",
                out.status.as_str(),
                out.error.unwrap_or_default(),
                out.cause.unwrap_or_default()
            );
            return Ok(EXIT_FAILED);
        }
        transitions += out
            .history
            .iter()
            .filter(|e| e.event_type.ends_with("StateEntered"))
            .count() as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "executions": args.executions,
            "transitions": transitions,
            "seconds": secs,
            "transitions_per_second": transitions as f64 / secs,
            "seconds_per_execution": secs / f64::from(args.executions.max(1)),
        })
    );
    Ok(0)
}
