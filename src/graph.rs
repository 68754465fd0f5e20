//! `piflow graph FILE --format mermaid|dot`

use std::path::PathBuf;

use super::{EXIT_FAILED, EXIT_USAGE};
use piflow_asl::file::read_text;
use piflow_asl::render::{GraphFormat, render, render_typed};
use piflow_asl::{Format, LoadOptions, Schemas, edge_types, validate_text_with};
use piflow_triggers::service::workflow::workflow_schemas;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The definition file to draw.
    file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphArg::Mermaid)]
    format: GraphArg,
    /// Label each edge with the shape of the data on it (its top-level
    /// fields, `?` when only maybe present), inferred from the workflow's
    /// schemas/NAME.input.json and the steps' contracts.
    #[arg(long)]
    types: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
enum GraphArg {
    Mermaid,
    Dot,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let shown = args.file.display().to_string();
    let text = match read_text(&args.file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("piflow: error: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let schemas = if args.types {
        workflow_schemas(&args.file, None)
    } else {
        Schemas::default()
    };
    let v = validate_text_with(
        &shown,
        &text,
        Format::from_path(&shown),
        LoadOptions::default(),
        &schemas,
    );
    let Some(machine) = &v.machine else {
        for d in v.errors() {
            eprintln!(
                "{shown}:{}:{}: error[{}]: {}",
                d.line.unwrap_or(0),
                d.column.unwrap_or(0),
                d.code,
                d.message
            );
        }
        eprintln!("piflow: {shown} cannot be drawn: it is not a readable state machine");
        return Ok(EXIT_FAILED);
    };
    let format = match args.format {
        GraphArg::Mermaid => GraphFormat::Mermaid,
        GraphArg::Dot => GraphFormat::Dot,
    };
    if args.types && v.is_valid() {
        let (edges, _) = edge_types(machine, &schemas);
        print!("{}", render_typed(machine, format, &edges));
    } else {
        print!("{}", render(machine, format));
    }
    if !v.is_valid() {
        let n = v.errors().count();
        eprintln!(
            "piflow: warning: {shown} has {n} validation error(s); run `piflow validate {shown}`"
        );
        return Ok(EXIT_FAILED);
    }
    Ok(0)
}
