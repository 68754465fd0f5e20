//! `piflow events test --pattern JSON|@FILE --event JSON|@FILE [--format json]`:
//! does an event match an EventBridge event pattern (as TestEventPattern
//! answers it)? Exit 0 for a match and for no match; 2 when the pattern or the
//! event is invalid or unreadable.

use serde_json::Value;

use super::OutputFormat;
use piflow_asl::path::json_type_article as kind;
use piflow_triggers::Pattern;

#[derive(clap::Subcommand, Debug)]
pub enum EventsCmd {
    /// Test an event against an EventBridge event pattern: prints `match` or `no match`.
    Test(TestArgs),
}

#[derive(clap::Args, Debug)]
pub struct TestArgs {
    /// The event pattern: JSON text, or @FILE to read it from a file.
    #[arg(long)]
    pattern: String,
    /// The event: JSON text, or @FILE to read it from a file.
    #[arg(long)]
    event: String,
    /// Output format: `match`/`no match`, or `{"match": true|false}`.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    format: OutputFormat,
}

pub fn run(cmd: EventsCmd) -> anyhow::Result<u8> {
    match cmd {
        EventsCmd::Test(a) => test(a),
    }
}

/// Reads `arg` as JSON text or `@FILE` (the convention of `piflow run --input`).
fn read_json(flag: &str, arg: &str) -> anyhow::Result<Value> {
    let (text, origin) = match arg.strip_prefix('@') {
        Some(file) => (
            std::fs::read_to_string(file)
                .map_err(|e| anyhow::anyhow!("{flag} @{file}: cannot read it: {e}"))?,
            format!("{flag} @{file}"),
        ),
        None => (arg.to_string(), flag.to_string()),
    };
    serde_json::from_str(&text).map_err(|e| {
        let s = e.to_string();
        let what = s.find(" at line ").map_or(s.as_str(), |i| &s[..i]);
        anyhow::anyhow!(
            "{origin} is not valid JSON: {what} at line {} column {}",
            e.line(),
            e.column()
        )
    })
}

fn test(a: TestArgs) -> anyhow::Result<u8> {
    let pattern = read_json("--pattern", &a.pattern)?;
    let event = read_json("--event", &a.event)?;
    let pattern = Pattern::parse(&pattern).map_err(|e| {
        anyhow::anyhow!("--pattern is not a valid event pattern [{}]: {e}", e.code())
    })?;
    if !event.is_object() {
        anyhow::bail!(
            "--event must be a JSON object (an event), not {}",
            kind(&event)
        );
    }
    let matched = pattern.matches(&event);
    tracing::debug!(matched, "events test");
    match a.format {
        OutputFormat::Json => println!("{}", serde_json::json!({ "match": matched })),
        OutputFormat::Human => println!("{}", if matched { "match" } else { "no match" }),
    }
    Ok(0)
}
