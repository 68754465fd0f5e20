//! `piflow`, the binary: the command line and `piflow serve`'s HTTP routes.
//!
//! **Invariant.** Commands and routes are thin adapters: they parse what the
//! user sent, call the crates below (the language in `piflow-asl`, durable
//! runs in `piflow-runner`, every start of a workflow through
//! `piflow-triggers`' trigger service, deployment in `piflow-aws-deploy`)
//! and print or answer the result. `anyhow` lives here and nowhere below.
//!
//! **May depend on:** every piflow crate; clap, axum (the `serve` feature),
//! tracing-subscriber. Cargo features: `serve`, `dynamodb`, `aws-steps`,
//! `deploy`, all on by default; a build without `serve` or `deploy` lacks
//! that command (and axum, hmac, … or the Step Functions and EventBridge
//! SDKs).
//!
//! **Never:** logic another entry point would need too (that belongs in a
//! crate below), or the conformance harness and its stub services.
//!
//! Exit codes, for every command: 0 ok, 1 the thing checked or run failed,
//! 2 usage error or unreadable input.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod bench;
#[cfg(feature = "deploy")]
mod deploy;
mod events;
mod executions;
mod files;
mod graph;
mod run;
#[cfg(feature = "serve")]
mod serve;
mod steps;
mod store_cmds;
mod tasks;
mod trigger;
mod validate;

/// Exit code: the thing checked or run failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: usage error or unreadable input.
pub const EXIT_USAGE: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "piflow",
    version,
    about = "Run Amazon States Language workflows that release and operate services on AWS"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check state machine definitions and report every problem at once.
    Validate(validate::Args),
    /// Draw a state machine as a Mermaid flowchart or a Graphviz DOT graph.
    Graph(graph::Args),
    /// List the built-in `piflow:` steps, or print one step's contract
    /// (input, output, errors).
    Steps(steps::Args),
    /// Run a workflow on the wall clock.
    Run(run::Args),
    /// Run a workflow on a virtual clock: waits, retries and timeouts take no time.
    Test(run::Args),
    /// Run a workflow many times in one process and print transitions per second.
    Bench(bench::Args),
    /// Publish, list, show and compare stored workflow versions.
    Workflows {
        #[command(subcommand)]
        cmd: store_cmds::WorkflowsCmd,
        #[command(flatten)]
        store: store_cmds::StoreArg,
    },
    /// Continue a RUNNING execution from its last committed event (or every
    /// orphaned one with --orphans).
    Resume(executions::ResumeArgs),
    /// Run a FAILED, TIMED_OUT or ABORTED execution again from the state that
    /// did not finish.
    Redrive(executions::RedriveArgs),
    /// Stop a RUNNING execution.
    Stop(executions::StopArgs),
    /// List stored executions, newest first.
    Executions(executions::ExecutionsArgs),
    /// Show an execution's history.
    History(executions::HistoryArgs),
    /// Approve a waiting `piflow:approval` (its token) [--reason R].
    Approve(executions::ApproveArgs),
    /// Reject a waiting `piflow:approval`: it fails with Approval.Rejected.
    Reject(executions::ApproveArgs),
    /// Answer a waiting `.waitForTaskToken` task with its output.
    SendTaskSuccess(executions::SendSuccessArgs),
    /// Answer a waiting `.waitForTaskToken` task with a failure.
    SendTaskFailure(executions::SendFailureArgs),
    /// Send a heartbeat to a waiting `.waitForTaskToken` task: its
    /// `HeartbeatSeconds` start again.
    SendTaskHeartbeat(executions::SendHeartbeatArgs),
    /// Test events against EventBridge event patterns (`piflow events test`).
    Events {
        #[command(subcommand)]
        cmd: events::EventsCmd,
    },
    /// Start the workflow a git tag maps to (`piflow trigger tag TAG`).
    Trigger {
        #[command(subcommand)]
        cmd: trigger::TriggerCmd,
    },
    /// Watch a git repository and trigger each new tag once.
    Watch(trigger::WatchArgs),
    /// Install git hooks that trigger new tags (`piflow hooks install`).
    Hooks {
        #[command(subcommand)]
        cmd: trigger::HooksCmd,
    },
    /// Serve EventBridge events, git webhooks and the executions over HTTP.
    #[cfg(feature = "serve")]
    Serve(serve::Args),
    /// Set up the store (`piflow store init`).
    Store {
        #[command(subcommand)]
        cmd: store_cmds::StoreCmd,
    },
    /// Translate a workflow for AWS Step Functions and deploy it
    /// (`piflow deploy WORKFLOW --to stepfunctions --role-arn ARN`).
    #[cfg(feature = "deploy")]
    Deploy(deploy::Args),
    /// Show the audit trail, or verify its hash chain (`piflow audit verify`).
    Audit {
        #[command(flatten)]
        args: store_cmds::AuditArgs,
        #[command(flatten)]
        store: store_cmds::StoreArg,
    },
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Human,
    Json,
}

/// mimalloc: the interpreter allocates many small JSON values per state
/// transition; measured +30–60% transitions/s over glibc malloc
/// (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The built-in steps' contracts, as validation checks them.
/// (`None`, so nothing is checked, if they do not read: the crate's tests
/// read every one.)
fn main() -> ExitCode {
    init_tracing();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
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
    // Every validation of this process checks the Task states that call a
    // built-in step against its contract (piflow_asl::steps; the contracts
    // are read at the first validation).
    piflow_asl::steps::install(piflow_steps::contracts::step_specs);
    let result = match cli.command {
        Command::Validate(a) => validate::run(a),
        Command::Graph(a) => graph::run(a),
        Command::Steps(a) => steps::run(a),
        Command::Run(a) => run::run(a, false),
        Command::Test(a) => run::run(a, true),
        Command::Bench(a) => bench::run(a),
        Command::Workflows { cmd, store } => store_cmds::workflows(cmd, store),
        Command::Audit { args, store } => store_cmds::audit(args, store),
        Command::Store { cmd } => store_cmds::store(cmd),
        #[cfg(feature = "serve")]
        Command::Serve(a) => serve::run(a),
        #[cfg(feature = "deploy")]
        Command::Deploy(a) => deploy::run(a),
        Command::Events { cmd } => events::run(cmd),
        Command::Trigger { cmd } => trigger::trigger(cmd),
        Command::Watch(a) => trigger::watch(a),
        Command::Hooks { cmd } => trigger::hooks(cmd),
        Command::Resume(a) => executions::resume(a),
        Command::Redrive(a) => executions::redrive(a),
        Command::Stop(a) => executions::stop(a),
        Command::Executions(a) => executions::executions(a),
        Command::History(a) => executions::history(a),
        Command::SendTaskSuccess(a) => executions::send_task_success(a),
        Command::Approve(a) => executions::approve(a),
        Command::Reject(a) => executions::reject(a),
        Command::SendTaskFailure(a) => executions::send_task_failure(a),
        Command::SendTaskHeartbeat(a) => executions::send_task_heartbeat(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("piflow: error: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("PIFLOW_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Should human output use colour? (a terminal, and NO_COLOR unset)
pub fn use_color() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}
