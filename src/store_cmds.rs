//! Commands over the store: `piflow workflows publish|list|show|diff` and
//! `piflow audit [verify]`.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::{EXIT_FAILED, EXIT_USAGE, OutputFormat};
use piflow_asl::file::read_text;
use piflow_asl::{Format, LoadOptions, validate_text};
use piflow_store::{NewDefinition, Store, verify_audit};
use piflow_triggers::service::workflow::workflow_name;
use std::sync::Arc;

/// Where the store is: `--store`, else `PIFLOW_STORE`, else the embedded
/// default (`.piflow/piflow.redb` or `$PIFLOW_HOME/piflow.redb`).
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArg {
    /// The store: a path to an embedded store file, or dynamodb://TABLE.
    #[arg(long, env = "PIFLOW_STORE")]
    store: Option<String>,
}

impl StoreArg {
    /// The store's address as given (None: the embedded default).
    pub fn spec(&self) -> Option<&str> {
        self.store.as_deref()
    }

    /// Open the store, with an error that names it.
    pub async fn open(&self) -> Result<Arc<dyn Store>, String> {
        piflow_store::open(self.spec())
            .await
            .map_err(|e| format!("[{}] {e}", e.code()))
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum WorkflowsCmd {
    /// Validate a definition and store it as the workflow's next version
    /// (unchanged text keeps its version); optionally move an alias to it.
    Publish {
        file: PathBuf,
        /// Workflow name (default: the file name without .asl.yaml etc.).
        #[arg(long)]
        name: Option<String>,
        /// Move this alias (e.g. live) to the published version.
        #[arg(long)]
        alias: Option<String>,
        /// Author recorded with the version (default: $USER).
        #[arg(long)]
        author: Option<String>,
        /// Source commit recorded with the version.
        #[arg(long)]
        commit: Option<String>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
        format: OutputFormat,
    },
    /// List workflows and their versions.
    List {
        workflow: Option<String>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
        format: OutputFormat,
    },
    /// Print one version's definition (default: the latest; or an alias).
    Show {
        workflow: String,
        /// A version number or an alias.
        #[arg(long)]
        version: Option<String>,
    },
    /// Show what changed between two versions (line by line).
    Diff {
        workflow: String,
        from: String,
        to: String,
    },
}

#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    #[command(subcommand)]
    cmd: Option<AuditCmd>,
    /// Only this environment.
    #[arg(long)]
    env: Option<String>,
    /// Only records at or after this RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    format: OutputFormat,
}

#[derive(clap::Subcommand, Debug)]
enum AuditCmd {
    /// Check the hash chain of every environment (or one): exit 1 when a
    /// record was edited, removed or reordered.
    Verify {
        #[arg(long)]
        env: Option<String>,
    },
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

async fn open_or_report(store: &StoreArg) -> Result<Arc<dyn Store>, u8> {
    store.open().await.map_err(|e| {
        eprintln!("piflow: error: {e}");
        EXIT_USAGE
    })
}

pub fn workflows(cmd: WorkflowsCmd, store: StoreArg) -> anyhow::Result<u8> {
    let rt = runtime()?;
    rt.block_on(async move {
        let store = match open_or_report(&store).await {
            Ok(s) => s,
            Err(code) => return Ok(code),
        };
        match cmd {
            WorkflowsCmd::Publish { file, name, alias, author, commit, format } => {
                let shown = file.display().to_string();
                let text = match read_text(&file) {
                    Ok(t) => t,
                    Err(e) => {
                        eprintln!("piflow: error: {e}");
                        return Ok(EXIT_USAGE);
                    }
                };
                let v = validate_text(&shown, &text, Format::from_path(&shown), LoadOptions::default());
                if !v.is_valid() {
                    for d in v.errors() {
                        eprintln!(
                            "{shown}:{}:{}: error[{}]: {}",
                            d.line.unwrap_or(0),
                            d.column.unwrap_or(0),
                            d.code,
                            d.message
                        );
                    }
                    eprintln!("piflow: {shown} is not valid; nothing was published");
                    return Ok(EXIT_FAILED);
                }
                let workflow = name.unwrap_or_else(|| workflow_name(&file));
                let author = author
                    .or_else(|| std::env::var("USER").ok())
                    .unwrap_or_else(|| "unknown".into());
                let d = store
                    .publish(NewDefinition { workflow: workflow.clone(), definition: text, author, source_commit: commit })
                    .await?;
                if let Some(a) = &alias {
                    store.set_alias(&workflow, a, d.version).await?;
                }
                match format {
                    OutputFormat::Json => println!(
                        "{}",
                        serde_json::json!({"workflow": d.workflow, "version": d.version, "content_hash": d.content_hash, "alias": alias})
                    ),
                    OutputFormat::Human => println!(
                        "{} version {} ({}…){}",
                        d.workflow,
                        d.version,
                        &d.content_hash[..12.min(d.content_hash.len())],
                        alias.map(|a| format!(", alias {a}")).unwrap_or_default()
                    ),
                }
                Ok(0)
            }
            WorkflowsCmd::List { workflow, format } => {
                let defs = store.definitions(workflow.as_deref()).await?;
                match format {
                    OutputFormat::Json => {
                        let rows: Vec<_> = defs
                            .iter()
                            .map(|d| {
                                serde_json::json!({"workflow": d.workflow, "version": d.version, "content_hash": d.content_hash,
                                    "author": d.author, "created": d.created, "source_commit": d.source_commit})
                            })
                            .collect();
                        println!("{}", serde_json::to_string_pretty(&rows)?);
                    }
                    OutputFormat::Human => {
                        println!("{:<24} {:>7} {:<14} {:<12} created", "workflow", "version", "hash", "author");
                        for d in &defs {
                            println!(
                                "{:<24} {:>7} {:<14} {:<12} {}",
                                d.workflow,
                                d.version,
                                &d.content_hash[..12.min(d.content_hash.len())],
                                d.author,
                                d.created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                            );
                        }
                    }
                }
                Ok(0)
            }
            WorkflowsCmd::Show { workflow, version } => {
                let Some(v) = resolve_version(store.as_ref(), &workflow, version.as_deref()).await? else {
                    eprintln!("piflow: error: {workflow} has no version {}", version.unwrap_or_else(|| "(any)".into()));
                    return Ok(EXIT_FAILED);
                };
                match store.definition(&workflow, v).await? {
                    Some(d) => {
                        print!("{}", d.definition);
                        if !d.definition.ends_with('\n') {
                            println!();
                        }
                        Ok(0)
                    }
                    None => {
                        eprintln!("piflow: error: {workflow} has no version {v}");
                        Ok(EXIT_FAILED)
                    }
                }
            }
            WorkflowsCmd::Diff { workflow, from, to } => {
                let mut texts = Vec::new();
                for spec in [&from, &to] {
                    let def = match resolve_version(store.as_ref(), &workflow, Some(spec)).await? {
                        Some(v) => store.definition(&workflow, v).await?,
                        None => None,
                    };
                    match def {
                        Some(d) => texts.push(d.definition),
                        None => {
                            eprintln!("piflow: error: {workflow} has no version {spec}");
                            return Ok(EXIT_FAILED);
                        }
                    }
                }
                let changed = print_diff(&texts[0], &texts[1], &format!("{workflow}@{from}"), &format!("{workflow}@{to}"));
                Ok(if changed { EXIT_FAILED } else { 0 })
            }
        }
    })
}

/// A version number, an alias, or (None) the latest version.
async fn resolve_version(
    store: &dyn Store,
    workflow: &str,
    spec: Option<&str>,
) -> anyhow::Result<Option<u64>> {
    Ok(match spec {
        Some(s) => match s.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => store.alias(workflow, s).await?,
        },
        None => store
            .definitions(Some(workflow))
            .await?
            .last()
            .map(|d| d.version),
    })
}

/// A line diff (longest common subsequence); prints `-`/`+` lines and
/// returns whether anything changed (exit 1, like diff(1)).
fn print_diff(a: &str, b: &str, a_name: &str, b_name: &str) -> bool {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    // Definitions are small (AWS caps them at 1 MiB); an O(n·m) table is fine
    // up to a few thousand lines, beyond that print both sides' sizes.
    if a.len().saturating_mul(b.len()) > 25_000_000 {
        println!(
            "--- {a_name} ({} lines)\n+++ {b_name} ({} lines)\n(too large for a line diff)",
            a.len(),
            b.len()
        );
        return a != b;
    }
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    println!("--- {a_name}\n+++ {b_name}");
    let (mut i, mut j, mut changed) = (0, 0, false);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            println!("+{}", b[j]);
            j += 1;
            changed = true;
        } else {
            println!("-{}", a[i]);
            i += 1;
            changed = true;
        }
    }
    changed
}

pub fn audit(args: AuditArgs, store: StoreArg) -> anyhow::Result<u8> {
    let since: Option<DateTime<Utc>> = match args.since.as_deref() {
        Some(s) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(e) => {
                eprintln!(
                    "piflow: error: --since {s:?} is not an RFC 3339 time (e.g. 2026-11-21T00:00:00Z): {e}"
                );
                return Ok(EXIT_USAGE);
            }
        },
        None => None,
    };
    let rt = runtime()?;
    rt.block_on(async move {
        let store = match open_or_report(&store).await {
            Ok(s) => s,
            Err(code) => return Ok(code),
        };
        if let Some(AuditCmd::Verify { env }) = args.cmd {
            let records = store.audit(env.as_deref(), None).await?;
            let mut envs: Vec<String> = records.iter().map(|r| r.entry.env.clone()).collect();
            envs.sort();
            envs.dedup();
            if let Some(e) = env.filter(|e| !envs.contains(e)) {
                envs.push(e);
            }
            let mut problems = Vec::new();
            for e in &envs {
                problems.extend(verify_audit(store.as_ref(), e).await?);
            }
            for p in &problems {
                println!("{} #{}: {}", p.env, p.seq, p.problem);
            }
            println!(
                "{} environment(s), {} record(s): {}",
                envs.len(),
                records.len(),
                if problems.is_empty() {
                    "the audit chain is intact"
                } else {
                    "the audit chain is BROKEN"
                }
            );
            return Ok(if problems.is_empty() { 0 } else { EXIT_FAILED });
        }
        let records = store.audit(args.env.as_deref(), since).await?;
        match args.format {
            OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&records)?),
            OutputFormat::Human => {
                for r in &records {
                    println!(
                        "{} {:<8} #{:<5} {:<24} {:<28} {:<32} {}",
                        r.entry
                            .at
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        r.entry.env,
                        r.seq,
                        short_actor(&r.entry.actor),
                        r.entry.action,
                        r.entry.target,
                        r.entry.result
                    );
                }
                println!("{} record(s)", records.len());
            }
        }
        Ok(0)
    })
}

#[derive(clap::Subcommand, Debug)]
pub enum StoreCmd {
    /// Create the store: the DynamoDB table for dynamodb://TABLE (waits
    /// until it is ACTIVE; an existing table with the right keys is kept),
    /// or the embedded store file.
    Init {
        #[command(flatten)]
        store: StoreArg,
    },
}

pub fn store(cmd: StoreCmd) -> anyhow::Result<u8> {
    let rt = runtime()?;
    rt.block_on(async move {
        match cmd {
            StoreCmd::Init { store } => {
                let result = match store.spec() {
                    // (Without the dynamodb feature, opening dynamodb://
                    // says the backend is not built in.)
                    #[cfg(feature = "dynamodb")]
                    Some(s) if s.starts_with("dynamodb://") => {
                        piflow_store::dynamodb::init(&s["dynamodb://".len()..]).await
                    }
                    _ => store
                        .open()
                        .await
                        .map(|_| {
                            format!(
                                "embedded store ready at {}",
                                store.spec().map_or_else(
                                    || piflow_store::embedded::EmbeddedStore::default_path()
                                        .display()
                                        .to_string(),
                                    str::to_string
                                )
                            )
                        })
                        .map_err(piflow_store::StoreError::Io),
                };
                match result {
                    Ok(msg) => {
                        println!("{msg}");
                        Ok(0)
                    }
                    Err(e) => {
                        eprintln!("piflow: error: [{}] {e}", e.code());
                        Ok(EXIT_FAILED)
                    }
                }
            }
        }
    })
}

/// An execution ARN as the execution id piflow's commands take
/// (`WORKFLOW:NAME`, the name cut to 8 characters and `…`); other actors
/// (a user, a trigger) as they are.
fn short_actor(actor: &str) -> String {
    let Some((_, rest)) = actor.split_once(":execution:") else {
        return actor.to_string();
    };
    match rest.split_once(':') {
        Some((workflow, name)) if name.chars().count() > 9 => {
            format!("{workflow}:{}…", name.chars().take(8).collect::<String>())
        }
        _ => rest.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::short_actor;

    #[test]
    fn execution_arns_are_shown_as_short_ids() {
        assert_eq!(
            short_actor(
                "arn:aws:states:us-east-1:000000000000:execution:upgrade:d16c41ff-86cc-4b95"
            ),
            "upgrade:d16c41ff…"
        );
        assert_eq!(
            short_actor("arn:aws:states:us-east-1:0:execution:upgrade:release-1"),
            "upgrade:release-1"
        );
        assert_eq!(short_actor("alice"), "alice");
    }
}
