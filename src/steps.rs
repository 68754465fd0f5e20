//! `piflow steps [NAME] [--format json]`: the built-in steps and each one's
//! contract (its input, its output, the errors it raises), read from
//! `piflow_steps::contracts`.

use serde_json::{Value, json};

use super::{EXIT_USAGE, OutputFormat};
use piflow_steps::contracts::{self, Contract};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A step (`release`, `piflow:release`): print its contract. Without
    /// one: every step with what it does.
    name: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    format: OutputFormat,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let all = contracts::all()?;
    let Some(name) = args.name else {
        match args.format {
            OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&all)?),
            OutputFormat::Human => {
                let width = all.iter().map(|c| c.resource.len()).max().unwrap_or(0);
                for c in &all {
                    println!("{:width$}  {}", c.resource, c.summary);
                }
            }
        }
        return Ok(0);
    };
    let resource = if name.starts_with("piflow:") {
        name.clone()
    } else {
        format!("piflow:{name}")
    };
    let Some(c) = contracts::find(&all, &resource) else {
        let names: Vec<&str> = all.iter().map(|c| c.resource.as_str()).collect();
        let near = piflow_asl::load::suggest(&resource, names.iter().copied())
            .map(|n| format!(" (did you mean {n}?)"))
            .unwrap_or_default();
        eprintln!(
            "piflow: error: no built-in step {resource}{near}; the steps are {}",
            names.join(", ")
        );
        return Ok(EXIT_USAGE);
    };
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(c)?),
        OutputFormat::Human => print_contract(c),
    }
    Ok(0)
}

fn type_of(schema: &Value) -> String {
    match schema.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" | "),
        _ if schema.get("enum").is_some() => "enum".into(),
        _ => "any".into(),
    }
}

/// `name  type  required  description [enum, default]`, one line a field.
fn fields(schema: &Value) -> Vec<String> {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(Value::Object(props)) = schema.get("properties") else {
        return Vec::new();
    };
    let width = props.keys().map(String::len).max().unwrap_or(0);
    props
        .iter()
        .map(|(k, p)| {
            let mut line = format!(
                "  {k:width$}  {:<16} {}",
                type_of(p),
                if required.contains(&k.as_str()) {
                    "required  "
                } else {
                    "          "
                }
            );
            line.push_str(p.get("description").and_then(Value::as_str).unwrap_or(""));
            if let Some(Value::Array(e)) = p.get("enum") {
                let values: Vec<String> = e.iter().map(|v| v.to_string()).collect();
                line.push_str(&format!(" (one of {})", values.join(", ")));
            }
            if let Some(d) = p.get("default") {
                line.push_str(&format!(" (default {d})"));
            }
            line
        })
        .collect()
}

fn print_contract(c: &Contract) {
    println!("{}: {}", c.resource, c.summary);
    println!();
    println!("input:");
    for l in fields(&c.input) {
        println!("{l}");
    }
    if c.input.get("additionalProperties") == Some(&json!(false)) {
        println!("  (no other field)");
    }
    println!();
    println!("output:");
    let out = fields(&c.output);
    if out.is_empty() {
        println!("  {}", type_of(&c.output));
    }
    for l in out {
        println!("{l}");
    }
    println!();
    println!("errors:");
    let width = c.errors.iter().map(|e| e.error.len()).max().unwrap_or(0);
    for e in &c.errors {
        println!("  {:width$}  {}", e.error, e.when);
    }
}
