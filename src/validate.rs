//! `piflow validate [PATH ...]`

use std::io::Write;
use std::path::PathBuf;

use owo_colors::OwoColorize;
use serde::Serialize;

use super::files::{expand, is_asl_name};
use super::{EXIT_FAILED, EXIT_USAGE, OutputFormat, use_color};
use piflow_asl::file::{ReadError, read_text};
use piflow_asl::{
    Code, Diagnostic, Format, LoadOptions, MachineType, Severity, SourceText, source,
    validate_parsed_with, validate_text,
};
use piflow_triggers::service::workflow::workflow_schemas;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Definition files or directories (searched recursively for .json, .yaml and .yml files).
    #[arg(default_value = "workflows")]
    paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    format: OutputFormat,
    /// Validate as a STANDARD or EXPRESS state machine.
    #[arg(long = "type", value_enum, default_value_t = TypeArg::Standard)]
    machine_type: TypeArg,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
enum TypeArg {
    Standard,
    Express,
}

#[derive(Serialize)]
struct FileReport {
    file: String,
    valid: bool,
    diagnostics: Vec<Diagnostic>,
    #[serde(skip)]
    unreadable: bool,
    #[serde(skip)]
    source: Option<SourceText>,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let options = LoadOptions {
        machine_type: match args.machine_type {
            TypeArg::Standard => MachineType::Standard,
            TypeArg::Express => MachineType::Express,
        },
    };
    let files = expand(&args.paths);
    let mut reports = Vec::new();
    let mut skipped = 0usize;
    for (path, from_dir) in files {
        let shown = path.display().to_string();
        let text = match read_text(&path) {
            Ok(t) => t,
            Err(e) => {
                let (code, unreadable) = match e {
                    ReadError::TooLarge { .. } => (Code::TooLarge, false),
                    _ => (Code::Unreadable, true),
                };
                reports.push(FileReport {
                    file: shown,
                    valid: false,
                    diagnostics: vec![Diagnostic::error(code, "", e.to_string())],
                    unreadable,
                    source: None,
                });
                continue;
            }
        };
        let format = Format::from_path(&shown);
        // Read once: in a directory, a file not named `*.asl.*` is checked
        // only when its top level looks like a state machine (so mock and
        // schema files are skipped).
        let v = match source::parse(&text, format) {
            Ok(node) => {
                let machine_like = node.get("StartAt").is_some() || node.get("States").is_some();
                if from_dir && !is_asl_name(&path) && !machine_like {
                    skipped += 1;
                    continue;
                }
                // A workflow with schemas/NAME.input.json beside it is
                // type-checked.
                let schemas = workflow_schemas(&path, None);
                validate_parsed_with(&shown, &text, node, options, &schemas)
            }
            // Syntax errors: validate_text reports them with their position.
            Err(_) => validate_text(&shown, &text, format, options),
        };
        // The source is kept only to show the offending lines.
        let source = (!v.diagnostics.is_empty()).then(|| SourceText::new(shown.clone(), text));
        reports.push(FileReport {
            file: shown,
            valid: v.is_valid(),
            diagnostics: v.diagnostics,
            unreadable: false,
            source,
        });
    }
    if reports.is_empty() && args.format == OutputFormat::Human {
        eprintln!(
            "piflow: no state machine definitions found in {}",
            args.paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(EXIT_USAGE);
    }
    let mut stdout = std::io::stdout().lock();
    match args.format {
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut stdout, &reports)?;
            writeln!(stdout)?;
        }
        OutputFormat::Human => print_human(&mut stdout, &reports, skipped)?,
    }
    let code = if reports.iter().any(|r| r.unreadable) {
        EXIT_USAGE
    } else if reports.iter().any(|r| !r.valid) {
        EXIT_FAILED
    } else {
        0
    };
    Ok(code)
}

fn print_human(
    out: &mut impl Write,
    reports: &[FileReport],
    skipped: usize,
) -> std::io::Result<()> {
    let color = use_color();
    let (mut errors, mut warnings, mut bad_files) = (0, 0, 0);
    for r in reports {
        if !r.valid {
            bad_files += 1;
        }
        for d in &r.diagnostics {
            match d.severity {
                Severity::Error => errors += 1,
                Severity::Warning => warnings += 1,
            }
            print_diagnostic(out, &r.file, d, r.source.as_ref(), color)?;
        }
        if r.valid {
            let mark = if color {
                format!("{}", "ok".green())
            } else {
                "ok".to_string()
            };
            writeln!(out, "{mark}: {}", r.file)?;
        }
    }
    let mut summary = format!(
        "{} file{} checked: {} valid, {} with errors ({} error{}, {} warning{})",
        reports.len(),
        plural(reports.len()),
        reports.len() - bad_files,
        bad_files,
        errors,
        plural(errors),
        warnings,
        plural(warnings)
    );
    if skipped > 0 {
        summary.push_str(&format!(
            "; {skipped} file{} skipped (not state machines)",
            plural(skipped)
        ));
    }
    writeln!(out, "{summary}")
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// At most this many characters of a source line are shown under a
/// diagnostic; a longer line (a minified definition) is clipped around the
/// column.
const SOURCE_WIDTH: usize = 120;

fn print_diagnostic(
    out: &mut impl Write,
    file: &str,
    d: &Diagnostic,
    source: Option<&SourceText>,
    color: bool,
) -> std::io::Result<()> {
    let location = match (d.line, d.column) {
        (Some(l), Some(c)) => format!("{file}:{l}:{c}"),
        _ => file.to_string(),
    };
    let sev = match (d.severity, color) {
        (Severity::Error, true) => format!("{}", "error".red().bold()),
        (Severity::Warning, true) => format!("{}", "warning".yellow().bold()),
        (s, false) => s.to_string(),
    };
    writeln!(out, "{location}: {sev}[{}]: {}", d.code, d.message)?;
    if let (Some(src), Some(line), Some(col)) = (source, d.line, d.column) {
        let text = src.line_text(line);
        if !text.is_empty() {
            let gutter = line.to_string().len();
            let (shown, caret) = src.excerpt(line, col, SOURCE_WIDTH);
            writeln!(out, "{:>gutter$} | {}", line, shown)?;
            let pad: String = shown
                .chars()
                .take(caret)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            writeln!(out, "{:>gutter$} | {pad}^", "")?;
        }
    }
    if !d.pointer.is_empty() {
        writeln!(out, "    at {}", d.pointer)?;
    }
    Ok(())
}
