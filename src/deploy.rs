//! `piflow deploy WORKFLOW --to stepfunctions`: translate a workflow into a
//! Step Functions definition and deploy it (state machine, version, alias).
//! docs/scale-out.md describes the mapping.
//!
//! `piflow deploy triggers`: piflow.yaml's trigger rules as EventBridge
//! rules and targets that start those state machines (docs/scale-out.md,
//! "Triggers on EventBridge").

use std::collections::BTreeMap;

use anyhow::Context as _;
use clap::ValueEnum;
use serde_json::{Value, json};

use super::run::load_workflow;
use super::{EXIT_FAILED, EXIT_USAGE, OutputFormat};
use piflow_asl::Format;
use piflow_aws_deploy::policy::{PolicyContext, policy_document};
use piflow_aws_deploy::stepfunctions::{
    DeployRequest, TranslateError, TranslateOptions, Translation, deploy, translate,
};

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// AWS Step Functions (a STANDARD state machine, a version and an alias).
    Stepfunctions,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A workflow name in workflows/ or a path; `triggers` deploys
    /// piflow.yaml's trigger rules to EventBridge instead (a workflow file
    /// named triggers is deployed by its path, e.g. workflows/triggers.asl.yaml).
    pub workflow: String,
    /// Where to deploy (required for a workflow).
    #[arg(long = "to", value_enum)]
    pub to: Option<Target>,
    /// The execution role of the state machine (required to deploy); for
    /// `deploy triggers`, the role EventBridge assumes to start executions.
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
    /// deploy triggers: piflow.yaml (default: PIFLOW_CONFIG, else ./piflow.yaml).
    #[arg(long, env = "PIFLOW_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// deploy triggers: the event bus.
    #[arg(long, default_value = "default")]
    pub event_bus: String,
    /// deploy triggers: the CodeCommit repository ARN whose tags the `tags:` rules watch.
    #[arg(long, value_name = "ARN")]
    pub codecommit_repo: Option<String>,
    /// deploy triggers: the target of a workflow's rules, WORKFLOW=ARN (an
    /// alias or state machine ARN; repeatable). Default: the alias --alias
    /// of the state machine named as `piflow deploy` names it.
    #[arg(long = "alias-arn", value_name = "WORKFLOW=ARN")]
    pub alias_arn: Vec<String>,
    /// deploy triggers: print the rules and targets as JSON; call no AWS API.
    #[arg(long)]
    pub print: bool,
    /// deploy triggers: delete piflow's rules that piflow.yaml no longer has.
    #[arg(long)]
    pub prune: bool,
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
    if args.workflow == "triggers" {
        return run_triggers(args);
    }
    let Some(Target::Stepfunctions) = args.to else {
        eprintln!(
            "piflow: error: say where to deploy {}: --to stepfunctions",
            args.workflow
        );
        return Ok(EXIT_USAGE);
    };
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

    let workflow = match load_workflow(&args.workflow) {
        Ok(w) => w,
        Err(code) => return Ok(code),
    };
    let shown = workflow.path.display().to_string();
    let text = &workflow.definition;
    let source = match piflow_asl::source::parse(text, Format::from_path(&shown)) {
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
            piflow_aws_config::sdk_config()
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
    let name = args.name.clone().unwrap_or_else(|| workflow.name.clone());
    let request = DeployRequest {
        name: name.clone(),
        role_arn: role_arn.clone(),
        alias: args.alias.clone(),
        definition: translation.definition_text(),
        content_hash: translation.content_hash(&role_arn),
    };
    let rt = runtime()?;
    let result = rt.block_on(async {
        let config = piflow_aws_config::sdk_config().await;
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

fn current_region(rt: &tokio::runtime::Runtime) -> Option<String> {
    rt.block_on(async {
        piflow_aws_config::sdk_config()
            .await
            .region()
            .map(|r| r.to_string())
    })
}

/// `piflow deploy triggers`.
fn run_triggers(args: Args) -> anyhow::Result<u8> {
    use piflow_aws_deploy::eventbridge::{self as eb, PlanOptions, TriggersError};
    use piflow_triggers::config::TriggerConfig;

    let json_out = args.format == OutputFormat::Json;
    let fail = |e: &TriggersError, code: u8| {
        if json_out {
            println!("{}", json!({"error": e.code(), "message": e.to_string()}));
        }
        eprintln!(
            "piflow: error: [{}] {e}\npiflow: no EventBridge rule was changed",
            e.code()
        );
        Ok(code)
    };
    let mut targets = BTreeMap::new();
    for m in &args.alias_arn {
        match m.split_once('=') {
            Some((w, a)) if !w.is_empty() && a.starts_with("arn:") && a.contains(":states:") => {
                targets.insert(eb::workflow_machine_name(w), a.to_string());
            }
            _ => {
                eprintln!(
                    "piflow: error: --alias-arn {m:?}: write WORKFLOW=ARN, e.g. --alias-arn rollback=arn:aws:states:us-east-1:123456789012:stateMachine:rollback:live"
                );
                return Ok(EXIT_USAGE);
            }
        }
    }
    let deploying = !args.print && !args.print_policy;
    if deploying && args.role_arn.is_none() {
        eprintln!(
            "piflow: error: deploying triggers needs the role EventBridge assumes to start executions: --role-arn arn:aws:iam::ACCOUNT:role/NAME (see --print-policy for what it must allow)"
        );
        return Ok(EXIT_USAGE);
    }
    let config_path = args
        .config
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from(piflow_triggers::config::CONFIG_FILE));
    let shown = config_path.display().to_string();
    let config = match TriggerConfig::load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("piflow: error: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let raw = match piflow_asl::file::read_text(&config_path)
        .map_err(|e| e.to_string())
        .and_then(|t| {
            piflow_asl::source::parse(&t, Format::Yaml)
                .map(|n| n.to_value())
                .map_err(|e| e.message)
        }) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("piflow: error: {shown}: {e}");
            return Ok(EXIT_USAGE);
        }
    };

    let rt = runtime()?;
    let region = current_region(&rt);
    let ctx = PolicyContext::from_role(args.role_arn.as_deref(), region.as_deref());
    // The workflows without --alias-arn: their alias ARN as `piflow deploy`
    // makes it, from the account and region (printing) or from
    // ListStateMachines (deploying: a workflow not deployed is refused).
    let mut workflows: Vec<String> = config
        .events
        .iter()
        .map(|r| r.workflow.clone())
        .chain(config.tags.iter().map(|r| r.workflow.clone()))
        .map(|w| eb::workflow_machine_name(&w))
        .filter(|w| !targets.contains_key(w))
        .collect();
    workflows.sort();
    workflows.dedup();
    if deploying {
        // Refuse names and patterns before any call: plan once with every
        // workflow resolved to a placeholder.
        let mut placeholders = targets.clone();
        for w in &workflows {
            placeholders.insert(w.clone(), String::new());
        }
        let check = PlanOptions {
            event_bus: args.event_bus.clone(),
            role_arn: String::new(),
            codecommit_repo: args.codecommit_repo.clone(),
            targets: placeholders,
        };
        if let Err(e) = eb::plan(&config, &raw, &check) {
            return fail(&e, EXIT_USAGE);
        }
        let found = rt.block_on(async {
            let config = piflow_aws_config::sdk_config().await;
            let client = aws_sdk_sfn::Client::new(&config);
            let mut found = BTreeMap::new();
            for w in &workflows {
                if let Some(arn) =
                    piflow_aws_deploy::stepfunctions::find_state_machine(&client, w).await?
                {
                    found.insert(w.clone(), format!("{arn}:{}", args.alias));
                }
            }
            Ok::<_, piflow_aws_deploy::stepfunctions::DeployError>(found)
        });
        match found {
            Ok(f) => targets.extend(f),
            Err(e) => {
                eprintln!("piflow: error: [{}] {e}", e.code());
                return Ok(EXIT_FAILED);
            }
        }
    } else {
        for w in &workflows {
            targets.insert(
                w.clone(),
                format!(
                    "arn:{}:states:{}:{}:stateMachine:{w}:{}",
                    ctx.partition, ctx.region, ctx.account, args.alias
                ),
            );
        }
    }
    let options = PlanOptions {
        event_bus: args.event_bus.clone(),
        role_arn: args
            .role_arn
            .clone()
            .unwrap_or_else(|| format!("arn:{}:iam::{}:role/ROLE", ctx.partition, ctx.account)),
        codecommit_repo: args.codecommit_repo.clone(),
        targets,
    };
    let rules = match eb::plan(&config, &raw, &options) {
        Ok(r) => r,
        Err(e) => return fail(&e, EXIT_USAGE),
    };
    tracing::info!(config = %shown, rules = rules.len(), "planned triggers");

    if !deploying {
        let out = match (args.print, args.print_policy) {
            (true, true) => {
                json!({"rules": rules, "policy": eb::role_policy(&rules), "trust": eb::trust_policy()})
            }
            (true, false) => json!({"rules": rules}),
            _ => eb::role_policy(&rules),
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
        if !json_out && args.print_policy {
            eprintln!(
                "note: the role's trust policy must let events.amazonaws.com assume it (sts:AssumeRole)"
            );
        }
        return Ok(0);
    }

    let result = rt.block_on(async {
        let config = piflow_aws_config::sdk_config().await;
        let client = aws_sdk_eventbridge::Client::new(&config);
        eb::apply(&client, &rules, &args.event_bus, args.prune).await
    });
    match result {
        Ok(outcomes) => {
            if json_out {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({"rules": outcomes}))?
                );
            } else {
                println!("Triggers from {shown} on event bus {}", args.event_bus);
                for o in &outcomes {
                    let action = match o.action {
                        eb::Action::Created => "created",
                        eb::Action::Updated => "updated",
                        eb::Action::Unchanged => "unchanged",
                        eb::Action::Deleted => "deleted (--prune)",
                        eb::Action::Stale => "not in piflow.yaml: kept (--prune deletes it)",
                    };
                    let target = rules
                        .iter()
                        .find(|r| r.name == o.rule)
                        .and_then(|r| r.targets.first())
                        .map(|t| format!(" → {}", t.arn))
                        .unwrap_or_default();
                    println!("  {:<40} {action}{target}", o.rule);
                }
            }
            Ok(0)
        }
        Err(e) => fail(&e, EXIT_FAILED),
    }
}
