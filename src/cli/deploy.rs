//! `piflow deploy WORKFLOW --to stepfunctions`: translate a workflow into a
//! Step Functions definition and deploy it (state machine, version, alias).
//! docs/scale-out.md describes the mapping.

use std::collections::BTreeMap;

use anyhow::Context as _;
use clap::ValueEnum;
use serde_json::{Value, json};

use super::files::read_text;
use super::run::{load_workflow, workflow_name};
use super::{EXIT_FAILED, EXIT_USAGE, OutputFormat};
use crate::asl::Format;
use crate::aws::policy::{PolicyContext, policy_document};
use crate::aws::stepfunctions::{
    DeployRequest, TranslateError, TranslateOptions, Translation, deploy, translate,
};

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// AWS Step Functions (a STANDARD state machine, a version and an alias).
    Stepfunctions,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A workflow name in workflows/ or a path.
    pub workflow: String,
    /// Where to deploy.
    #[arg(long = "to", value_enum)]
    pub to: Target,
    /// The execution role of the state machine (required to deploy).
    #[arg(long)]
    pub role_arn: Option<String>,
    /// The state machine's name (default: the workflow's name).
    #[arg(long)]
    pub name: Option<String>,
    /// The alias moved to the new version.
    #[arg(long, default_value = "live")]
    pub alias: String,
    /// The CodeBuild project that runs piflow:lint and piflow:security-scan.
    #[arg(long)]
    pub codebuild_project: Option<String>,
    /// piflow's DynamoDB store table, for piflow:audit-note.
    #[arg(long)]
    pub table: Option<String>,
    /// The SNS topic that carries piflow:approval's task token.
    #[arg(long)]
    pub approval_topic: Option<String>,
    /// Run a piflow: resource on a Lambda function or activity: RESOURCE=ARN (repeatable).
    #[arg(long = "task-arn", value_name = "RESOURCE=ARN")]
    pub task_arn: Vec<String>,
    /// Print the translated definition; deploy nothing.
    #[arg(long)]
    pub print_definition: bool,
    /// Print the IAM policy the state machine's role needs; deploy nothing.
    #[arg(long)]
    pub print_policy: bool,
    #[arg(long, value_enum, default_value = "human")]
    pub format: OutputFormat,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let Target::Stepfunctions = args.to;
    let mut task_arns = BTreeMap::new();
    for m in &args.task_arn {
        match m.split_once('=') {
            Some((r, a)) if r.starts_with("piflow:") && a.starts_with("arn:") => {
                task_arns.insert(r.to_string(), a.to_string());
            }
            _ => {
                eprintln!(
                    "piflow: error: --task-arn {m:?}: write RESOURCE=ARN, e.g. --task-arn piflow:ecs-blue-green=arn:aws:lambda:us-east-1:123456789012:function:blue-green"
                );
                return Ok(EXIT_USAGE);
            }
        }
    }
    let deploying = !args.print_definition && !args.print_policy;
    let role_arn = args.role_arn.clone();
    if deploying && role_arn.is_none() {
        eprintln!(
            "piflow: error: deploying needs the state machine's execution role: --role-arn arn:aws:iam::ACCOUNT:role/NAME (see --print-policy for what it must allow)"
        );
        return Ok(EXIT_USAGE);
    }
    let partition = role_arn
        .as_deref()
        .and_then(|r| r.split(':').nth(1))
        .filter(|p| !p.is_empty())
        .unwrap_or("aws")
        .to_string();

    let (path, _machine) = match load_workflow(&args.workflow) {
        Ok(w) => w,
        Err(code) => return Ok(code),
    };
    let shown = path.display().to_string();
    let text = match read_text(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("piflow: error: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let source = match crate::asl::source::parse(&text, Format::from_path(&shown)) {
        Ok(n) => n.to_value(),
        Err(e) => {
            eprintln!("piflow: error: {shown}: {}", e.message);
            return Ok(EXIT_USAGE);
        }
    };
    let options = TranslateOptions {
        partition,
        codebuild_project: args.codebuild_project.clone(),
        table: args.table.clone(),
        approval_topic: args.approval_topic.clone(),
        task_arns,
    };
    let translation = match translate(&source, &options) {
        Ok(t) => t,
        Err(e) => {
            report_translate_error(&shown, &e, args.format);
            return Ok(EXIT_USAGE);
        }
    };
    tracing::info!(workflow = %shown, integrations = translation.integrations.len(), "translated");
    let json_out = args.format == OutputFormat::Json;

    if !deploying {
        let rt = runtime()?;
        let region = rt.block_on(async {
            crate::aws::sdk_config()
                .await
                .region()
                .map(|r| r.to_string())
        });
        let ctx = PolicyContext::from_role(role_arn.as_deref(), region.as_deref());
        let policy = policy_document(&translation.integrations, &ctx);
        let out = match (args.print_definition, args.print_policy) {
            (true, true) => json!({"definition": translation.definition, "policy": policy}),
            (true, false) => translation.definition.clone(),
            _ => policy,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
        if !json_out {
            print_notes(&translation);
        }
        return Ok(0);
    }

    let role_arn = role_arn.unwrap_or_default();
    let name = args.name.clone().unwrap_or_else(|| workflow_name(&path));
    let request = DeployRequest {
        name: name.clone(),
        role_arn: role_arn.clone(),
        alias: args.alias.clone(),
        definition: translation.definition_text(),
        content_hash: translation.content_hash(&role_arn),
    };
    let rt = runtime()?;
    let result = rt.block_on(async {
        let config = crate::aws::sdk_config().await;
        let client = aws_sdk_sfn::Client::new(&config);
        deploy(&client, &request).await
    });
    match result {
        Ok(d) => {
            if json_out {
                let mut v = serde_json::to_value(&d)?;
                if let Value::Object(m) = &mut v {
                    m.insert("name".into(), json!(name));
                    m.insert("notes".into(), serde_json::to_value(&translation.notes)?);
                }
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("Deployed {shown} to Step Functions as {name}");
                println!("  state machine  {}", d.state_machine_arn);
                println!(
                    "  version        {} ({})",
                    d.version_arn,
                    if d.new_version {
                        "published"
                    } else {
                        "unchanged: same content hash, no new version"
                    }
                );
                println!(
                    "  alias {:<8} {}{}",
                    args.alias,
                    d.alias_arn,
                    if d.alias_moved {
                        " → this version (100%)"
                    } else {
                        ""
                    }
                );
                println!("  content hash   sha256:{}", d.content_hash);
                print_notes(&translation);
            }
            Ok(0)
        }
        Err(e) => {
            if json_out {
                println!("{}", json!({"error": e.code(), "message": e.to_string()}));
            }
            eprintln!("piflow: error: [{}] {e}", e.code());
            Ok(EXIT_FAILED)
        }
    }
}

fn print_notes(t: &Translation) {
    for n in &t.notes {
        eprintln!("note: state {}: {}", n.state, n.message);
    }
}

fn report_translate_error(shown: &str, e: &TranslateError, format: OutputFormat) {
    if format == OutputFormat::Json {
        let problems = match e {
            TranslateError::Unmappable { problems } => {
                serde_json::to_value(problems).unwrap_or(Value::Null)
            }
            TranslateError::Invalid(_) => Value::Array(vec![]),
        };
        println!(
            "{}",
            json!({"error": e.code(), "file": shown, "message": e.to_string(), "problems": problems})
        );
    }
    eprintln!(
        "piflow: error: [{}] {shown}: {e}\npiflow: nothing was deployed",
        e.code()
    );
}
