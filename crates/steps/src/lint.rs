//! `piflow:lint`: lint the infrastructure code under a path.
//!
//! Input: `path` (a file or directory, relative to the working directory),
//! optional `policy`, `region`, `environment`, `codebuild: {project}`.
//!
//! - CloudFormation templates (`*.yaml|*.yml|*.json|*.template` holding
//!   `AWSTemplateFormatVersion` or a top-level `Resources`) go to
//!   `cfn-lint --format json`; Terraform directories (`*.tf`) to
//!   `tflint --format json`; Helm charts (`Chart.yaml`) to `helm lint`.
//!   A tool that is needed and not found fails `Lint.ToolMissing` unless
//!   `policy.allow_missing_tools` is true (then it is listed as skipped).
//! - Findings: `{file, line, column, rule, severity, message, tool}` with
//!   severity `error|warning|info`.
//! - Policy: `fail_on` (`error` default, `warning`, `info`, `never`),
//!   `ignore_rules` (rule ids), `allow_missing_tools`, `timeout_seconds`
//!   (per tool, default 600), `runner` (`local` default or `codebuild`),
//!   `codebuild_project`, `poll_seconds`.
//! - Output: `{runner, tools, findings, counts{error,warning,info}, ignored,
//!   passed}`; `Lint.Failed` when findings reach the threshold.
//!
//! With `policy.runner: "codebuild"` (or input `codebuild: {project}`) the
//! lint runs as an AWS CodeBuild build instead ([`run_codebuild`], shared
//! with `piflow:security-scan`).
//!
//! Audit: a `lint.run` record per run (environment's chain, or `local`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::StoreHandle;
use super::aws_step;
use super::process::{self, ToolSearch};
use piflow_engine::{Failure, TaskHandler, TaskRequest};

const STEP: &str = "Lint";

/// The `piflow:lint` handler.
pub struct Lint {
    pub store: StoreHandle,
    /// Where tools are found; `None`: [`ToolSearch::from_env`].
    pub tools: Option<ToolSearch>,
    /// The directory `path` is relative to; `None`: the current directory.
    pub workdir: Option<PathBuf>,
}

impl Lint {
    pub fn new(store: StoreHandle) -> Self {
        Lint {
            store,
            tools: None,
            workdir: None,
        }
    }
}

impl TaskHandler for Lint {
    fn invoke(&self, request: TaskRequest) -> BoxFuture<'static, Result<Value, Failure>> {
        let store = self.store.clone();
        let tools = self.tools.clone();
        let workdir = self.workdir.clone();
        Box::pin(async move {
            let workdir = match workdir {
                Some(w) => w,
                None => std::env::current_dir().map_err(|e| {
                    Failure::new(
                        "Lint.InvalidInput",
                        format!("cannot read the working directory: {e}"),
                    )
                })?,
            };
            let tools = tools.unwrap_or_else(|| ToolSearch::from_env(&workdir));
            run_lint(&store, &request, &workdir, &tools).await
        })
    }

    fn real_time(&self) -> bool {
        true
    }
}

/// Severity of a lint finding.
fn severity_rank(s: &str) -> u8 {
    match s {
        "error" => 3,
        "warning" => 2,
        "info" => 1,
        _ => 0,
    }
}

/// The infrastructure code found under a path.
#[derive(Debug, Default)]
pub(crate) struct Inventory {
    pub cloudformation: Vec<PathBuf>,
    /// Directories holding `*.tf` files.
    pub terraform: Vec<PathBuf>,
    /// Directories holding a `Chart.yaml`.
    pub helm: Vec<PathBuf>,
}

/// Walk `root` (a file or a directory), skipping hidden directories,
/// `node_modules` and `.terraform`, and files inside Helm charts.
pub(crate) fn inventory(root: &Path) -> Inventory {
    let mut inv = Inventory::default();
    if root.is_file() {
        classify_file(root, &mut inv);
        return inv;
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if dir.join("Chart.yaml").is_file() {
            inv.helm.push(dir);
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        let mut has_tf = false;
        for p in entries {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if p.is_dir() {
                if !name.starts_with('.') && name != "node_modules" {
                    stack.push(p);
                }
            } else if name.ends_with(".tf") {
                has_tf = true;
            } else {
                classify_file(&p, &mut inv);
            }
        }
        if has_tf {
            inv.terraform.push(dir);
        }
    }
    inv.cloudformation.sort();
    inv.terraform.sort();
    inv.helm.sort();
    inv
}

fn classify_file(p: &Path, inv: &mut Inventory) {
    let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ext == "tf" {
        if let Some(parent) = p.parent() {
            inv.terraform.push(parent.to_path_buf());
        }
        return;
    }
    if p.file_name().is_some_and(|n| n == "Chart.yaml") {
        if let Some(parent) = p.parent() {
            inv.helm.push(parent.to_path_buf());
        }
        return;
    }
    if !matches!(ext, "yaml" | "yml" | "json" | "template") {
        return;
    }
    let Ok(text) = std::fs::read_to_string(p) else {
        return;
    };
    let is_cfn = text.contains("AWSTemplateFormatVersion")
        || text
            .lines()
            .any(|l| l.starts_with("Resources:") || l.trim_start().starts_with("\"Resources\""));
    if is_cfn {
        inv.cloudformation.push(p.to_path_buf());
    }
}

/// The input's `policy` (an object, or absent/null).
pub(crate) fn policy(request: &TaskRequest, step: &str) -> Result<Value, Failure> {
    match request.input.get("policy") {
        None | Some(Value::Null) => Ok(json!({})),
        Some(p @ Value::Object(_)) => Ok(p.clone()),
        Some(other) => Err(Failure::new(
            format!("{step}.InvalidInput"),
            format!(
                "state {}: \"policy\" must be an object, not {other}",
                request.state_name
            ),
        )),
    }
}

/// The input's `path`, resolved against `workdir`; it must exist.
pub(crate) fn target_path(
    request: &TaskRequest,
    workdir: &Path,
    step: &str,
) -> Result<(String, PathBuf), Failure> {
    let Some(rel) = request.input.get("path").and_then(Value::as_str) else {
        return Err(Failure::new(
            format!("{step}.InvalidInput"),
            format!(
                "state {}: the step needs \"path\" (a file or directory of infrastructure code)",
                request.state_name
            ),
        ));
    };
    let full = workdir.join(rel);
    if !full.exists() {
        return Err(Failure::new(
            format!("{step}.InvalidInput"),
            format!(
                "state {}: path {rel} does not exist under {} (give a file or directory relative to the working directory)",
                request.state_name,
                workdir.display()
            ),
        ));
    }
    Ok((rel.to_string(), full))
}

pub(crate) fn timeout(policy: &Value) -> Duration {
    Duration::from_secs(
        policy
            .get("timeout_seconds")
            .and_then(Value::as_u64)
            .unwrap_or(600)
            .max(1),
    )
}

/// `path` shown relative to `workdir` when it is under it.
pub(crate) fn display_path(p: &Path, workdir: &Path) -> String {
    p.strip_prefix(workdir)
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

/// The audit chain of a run: the input's `environment`, else `local`.
pub(crate) fn audit_env(request: &TaskRequest) -> String {
    request
        .input
        .get("environment")
        .and_then(Value::as_str)
        .unwrap_or("local")
        .to_string()
}

/// The CodeBuild project when the policy or input asks for CodeBuild.
pub(crate) fn codebuild_project(
    request: &TaskRequest,
    policy: &Value,
    step: &str,
) -> Result<Option<String>, Failure> {
    let from_input = request
        .input
        .get("codebuild")
        .and_then(|c| c.get("project"))
        .and_then(Value::as_str);
    let runner = policy
        .get("runner")
        .and_then(Value::as_str)
        .unwrap_or("local");
    match (runner, from_input) {
        (_, Some(p)) => Ok(Some(p.to_string())),
        ("codebuild", None) => policy
            .get("codebuild_project")
            .and_then(Value::as_str)
            .map(|p| Some(p.to_string()))
            .ok_or_else(|| {
                Failure::new(
                    format!("{step}.InvalidInput"),
                    format!(
                        "state {}: policy.runner is codebuild but no project is named: set policy.codebuild_project or input codebuild.project",
                        request.state_name
                    ),
                )
            }),
        ("local", None) => Ok(None),
        (other, None) => Err(Failure::new(
            format!("{step}.InvalidInput"),
            format!(
                "state {}: policy.runner must be local or codebuild, not {other}",
                request.state_name
            ),
        )),
    }
}

async fn run_lint(
    store: &StoreHandle,
    request: &TaskRequest,
    workdir: &Path,
    tools: &ToolSearch,
) -> Result<Value, Failure> {
    let policy = policy(request, STEP)?;
    let fail_on = policy
        .get("fail_on")
        .and_then(Value::as_str)
        .unwrap_or("error");
    let threshold = match fail_on {
        "error" => 3,
        "warning" => 2,
        "info" => 1,
        "never" => u8::MAX,
        other => {
            return Err(Failure::new(
                "Lint.InvalidInput",
                format!(
                    "state {}: policy.fail_on must be error, warning, info or never, not {other}",
                    request.state_name
                ),
            ));
        }
    };
    if let Some(project) = codebuild_project(request, &policy, STEP)? {
        return run_codebuild(store, request, STEP, "lint", &project, &policy).await;
    }
    let (rel, full) = target_path(request, workdir, STEP)?;
    let ignore: Vec<String> = policy
        .get("ignore_rules")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let allow_missing = policy
        .get("allow_missing_tools")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let limit = timeout(&policy);
    let inv = inventory(&full);

    let mut tool_reports = Vec::new();
    let mut findings: Vec<Value> = Vec::new();
    let needed: [(&str, usize, &str); 3] = [
        (
            "cfn-lint",
            inv.cloudformation.len(),
            "run integration/emulator/setup.sh (it installs the pinned cfn-lint into .emu/venv), or pip install cfn-lint, or set PIFLOW_TOOLS_DIR to its bin directory",
        ),
        (
            "tflint",
            inv.terraform.len(),
            "install tflint (https://github.com/terraform-linters/tflint) into PATH or PIFLOW_TOOLS_DIR",
        ),
        (
            "helm",
            inv.helm.len(),
            "install helm (https://helm.sh/docs/intro/install/) into PATH or PIFLOW_TOOLS_DIR",
        ),
    ];
    for (tool, count, how) in needed {
        if count == 0 {
            continue;
        }
        let Some(program) = tools.find(tool) else {
            if allow_missing {
                tool_reports.push(json!({"name": tool, "status": "skipped", "targets": count,
                    "reason": format!("{tool} is not installed; {how}")}));
                continue;
            }
            let cause = format!(
                "state {}: {count} target(s) under {rel} need {tool}, which is not installed (looked in {}): {how}; or set policy.allow_missing_tools to skip it",
                request.state_name,
                tools
                    .dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":")
            );
            audit_run(
                store,
                request,
                &rel,
                json!({"missing": tool}),
                "tool-missing",
            )
            .await?;
            return Err(Failure::new("Lint.ToolMissing", cause));
        };
        let found = match tool {
            "cfn-lint" => cfn_lint(&program, &inv.cloudformation, workdir, limit).await?,
            "tflint" => tflint(&program, &inv.terraform, workdir, limit).await?,
            _ => helm_lint(&program, &inv.helm, workdir, limit).await?,
        };
        tool_reports.push(json!({"name": tool, "status": "ran", "targets": count,
            "path": program.display().to_string(), "findings": found.len()}));
        findings.extend(found);
    }

    let before = findings.len();
    findings.retain(|f| {
        !f.get("rule")
            .and_then(Value::as_str)
            .is_some_and(|r| ignore.iter().any(|i| i == r))
    });
    let ignored = before - findings.len();
    let count = |s: &str| {
        findings
            .iter()
            .filter(|f| f.get("severity").and_then(Value::as_str) == Some(s))
            .count()
    };
    let counts =
        json!({"error": count("error"), "warning": count("warning"), "info": count("info")});
    let failing: Vec<&Value> = findings
        .iter()
        .filter(|f| {
            severity_rank(f.get("severity").and_then(Value::as_str).unwrap_or("")) >= threshold
        })
        .collect();
    let passed = failing.is_empty();
    let output = json!({
        "runner": "local",
        "path": rel,
        "tools": tool_reports,
        "findings": findings,
        "counts": counts,
        "ignored": ignored,
        "fail_on": fail_on,
        "passed": passed,
    });
    let summary = json!({"counts": counts, "ignored": ignored, "fail_on": fail_on, "passed": passed,
        "tools": output["tools"]});
    audit_run(
        store,
        request,
        &rel,
        summary,
        if passed { "passed" } else { "failed" },
    )
    .await?;
    tracing::info!(state = %request.state_name, path = %rel, passed, errors = count("error"),
        warnings = count("warning"), infos = count("info"), "lint finished");
    if passed {
        return Ok(output);
    }
    let first: Vec<String> = failing
        .iter()
        .take(5)
        .map(|f| {
            format!(
                "{}:{}:{} {} [{}] {}",
                f["file"].as_str().unwrap_or("?"),
                f["line"],
                f["column"],
                f["rule"].as_str().unwrap_or("?"),
                f["severity"].as_str().unwrap_or("?"),
                f["message"].as_str().unwrap_or("")
            )
        })
        .collect();
    Err(Failure::new(
        "Lint.Failed",
        format!(
            "lint of {rel}: {} error(s), {} warning(s), {} info (fail_on: {fail_on}); {} finding(s) at or above the threshold, first: {}{}. Fix them, or list their rules in policy.ignore_rules",
            count("error"),
            count("warning"),
            count("info"),
            failing.len(),
            first.join("; "),
            if failing.len() > first.len() {
                "; …"
            } else {
                ""
            }
        ),
    ))
}

async fn audit_run(
    store: &StoreHandle,
    request: &TaskRequest,
    target: &str,
    after: Value,
    result: &str,
) -> Result<(), Failure> {
    aws_step::audit(
        store,
        request,
        STEP,
        &audit_env(request),
        "lint.run",
        target,
        Value::Null,
        after,
        result,
    )
    .await
}

fn tool_failed(tool: &str, out: &process::ToolOutput, limit: Duration) -> Failure {
    if out.timed_out {
        return Failure::new(
            "Lint.ToolFailed",
            format!(
                "{tool} did not finish within {}s and was stopped; raise policy.timeout_seconds or lint a smaller path",
                limit.as_secs()
            ),
        );
    }
    Failure::new(
        "Lint.ToolFailed",
        format!("{tool} failed (exit {:?}): {}", out.code, out.tail(800)),
    )
}

/// cfn-lint over the templates: `--format json`, exit code a bitmask (0
/// clean, 2 error, 4 warning, 8 info, 1 fatal).
async fn cfn_lint(
    program: &Path,
    files: &[PathBuf],
    workdir: &Path,
    limit: Duration,
) -> Result<Vec<Value>, Failure> {
    let mut args: Vec<OsString> = vec!["--format".into(), "json".into(), "--".into()];
    args.extend(files.iter().map(|f| f.clone().into_os_string()));
    let out = process::run(program, args, workdir, vec![], limit)
        .await
        .map_err(|e| Failure::new("Lint.ToolFailed", e))?;
    let code = out.code.unwrap_or(-1);
    if out.timed_out || !(0..16).contains(&code) || code & 1 == 1 {
        return Err(tool_failed("cfn-lint", &out, limit));
    }
    let parsed: Value = serde_json::from_str(out.stdout.trim()).map_err(|e| {
        Failure::new(
            "Lint.ToolFailed",
            format!(
                "cfn-lint (exit {code}) printed no JSON list ({e}): {}",
                out.tail(800)
            ),
        )
    })?;
    let items = parsed.as_array().cloned().unwrap_or_default();
    if items.is_empty() && code != 0 {
        return Err(tool_failed("cfn-lint", &out, limit));
    }
    Ok(items
        .iter()
        .map(|m| {
            let file = m["Filename"].as_str().unwrap_or("");
            let severity = match m["Level"].as_str().unwrap_or("") {
                "Error" => "error",
                "Warning" => "warning",
                _ => "info",
            };
            json!({
                "file": display_path(Path::new(file), workdir),
                "line": m["Location"]["Start"]["LineNumber"],
                "column": m["Location"]["Start"]["ColumnNumber"],
                "rule": m["Rule"]["Id"],
                "severity": severity,
                "message": m["Message"],
                "tool": "cfn-lint",
            })
        })
        .collect())
}

/// tflint in each Terraform directory: `--format json`; exit 0 clean, 2
/// issues, 1 (or 3) an error of tflint itself.
async fn tflint(
    program: &Path,
    dirs: &[PathBuf],
    workdir: &Path,
    limit: Duration,
) -> Result<Vec<Value>, Failure> {
    let mut found = Vec::new();
    for dir in dirs {
        let args: Vec<OsString> = vec![
            "--format".into(),
            "json".into(),
            format!("--chdir={}", dir.display()).into(),
        ];
        let out = process::run(program, args, workdir, vec![], limit)
            .await
            .map_err(|e| Failure::new("Lint.ToolFailed", e))?;
        let parsed: Option<Value> = serde_json::from_str(out.stdout.trim()).ok();
        let Some(parsed) = parsed.filter(|_| !out.timed_out && matches!(out.code, Some(0 | 2)))
        else {
            return Err(tool_failed("tflint", &out, limit));
        };
        for issue in parsed["issues"].as_array().into_iter().flatten() {
            let severity = match issue["rule"]["severity"].as_str().unwrap_or("") {
                "error" => "error",
                "warning" => "warning",
                _ => "info",
            };
            let file = dir.join(issue["range"]["filename"].as_str().unwrap_or(""));
            found.push(json!({
                "file": display_path(&file, workdir),
                "line": issue["range"]["start"]["line"],
                "column": issue["range"]["start"]["column"],
                "rule": issue["rule"]["name"],
                "severity": severity,
                "message": issue["message"],
                "tool": "tflint",
            }));
        }
    }
    Ok(found)
}

/// `helm lint DIR`: lines `[ERROR] file: message`, `[WARNING] …`,
/// `[INFO] …`; exit 1 when it found errors.
async fn helm_lint(
    program: &Path,
    dirs: &[PathBuf],
    workdir: &Path,
    limit: Duration,
) -> Result<Vec<Value>, Failure> {
    let mut found = Vec::new();
    for dir in dirs {
        let args: Vec<OsString> = vec!["lint".into(), dir.clone().into_os_string()];
        let out = process::run(program, args, workdir, vec![], limit)
            .await
            .map_err(|e| Failure::new("Lint.ToolFailed", e))?;
        if out.timed_out || !matches!(out.code, Some(0 | 1)) {
            return Err(tool_failed("helm lint", &out, limit));
        }
        let before = found.len();
        for line in out.stdout.lines().chain(out.stderr.lines()) {
            let line = line.trim();
            let (severity, rest) = if let Some(r) = line.strip_prefix("[ERROR]") {
                ("error", r)
            } else if let Some(r) = line.strip_prefix("[WARNING]") {
                ("warning", r)
            } else if let Some(r) = line.strip_prefix("[INFO]") {
                ("info", r)
            } else {
                continue;
            };
            let rest = rest.trim();
            let (file, message) = rest.split_once(": ").unwrap_or(("", rest));
            found.push(json!({
                "file": display_path(&dir.join(file), workdir),
                "line": Value::Null,
                "column": Value::Null,
                "rule": "helm-lint",
                "severity": severity,
                "message": message,
                "tool": "helm",
            }));
        }
        if out.code == Some(1) && found.len() == before {
            return Err(tool_failed("helm lint", &out, limit));
        }
    }
    Ok(found)
}

/// Without the `aws` feature there is no CodeBuild runner: a step asked
/// for one fails, naming the project.
#[cfg(not(feature = "aws"))]
pub(crate) async fn run_codebuild(
    _store: &StoreHandle,
    request: &TaskRequest,
    step: &str,
    _action: &str,
    project: &str,
    _policy: &Value,
) -> Result<Value, Failure> {
    Err(Failure::new(
        format!("{step}.CodeBuildUnavailable"),
        format!(
            "state {}: CodeBuild project {project}: this piflow was built without the aws feature",
            request.state_name
        ),
    ))
}

/// Run the step as an AWS CodeBuild build of `project`: `StartBuild` with
/// an idempotency token derived from the request's, then `BatchGetBuilds`
/// until the build is done. The build id is recorded in the audit trail
/// under the request's token, so a re-invocation after a crash polls the
/// same build instead of starting another (moto 5.2.5 ignores CodeBuild's
/// `idempotencyToken`; AWS honours it for 5 minutes).
#[cfg(feature = "aws")]
pub(crate) async fn run_codebuild(
    store: &StoreHandle,
    request: &TaskRequest,
    step: &str,
    action: &str,
    project: &str,
    policy: &Value,
) -> Result<Value, Failure> {
    let env = aws_step::environment(request, step)?;
    let config = aws_step::sdk_config(request, step).await?;
    let client = aws_sdk_codebuild::Client::new(&config);
    let client_token: String = piflow_store::sha256_hex(request.idempotency_token.as_bytes())
        .chars()
        .take(32)
        .collect();
    let started_action = format!("{action}.codebuild.started");
    let started_token = format!("{}#{started_action}", request.idempotency_token);
    let store_ = store
        .get()
        .await
        .map_err(|e| Failure::new(format!("{step}.StoreFailed"), e))?;
    let previous = store_
        .audit(Some(&env), None)
        .await
        .map_err(|e| Failure::new(format!("{step}.StoreFailed"), format!("[{}] {e}", e.code())))?
        .into_iter()
        .find(|r| r.entry.token.as_deref() == Some(started_token.as_str()))
        .and_then(|r| {
            r.entry
                .after
                .get("build_id")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    let build_id = match previous {
        Some(id) => {
            tracing::info!(state = %request.state_name, build = %id, "codebuild build already started under this token");
            id
        }
        None => {
            aws_step::audit(
                store,
                request,
                step,
                &env,
                &format!("{action}.codebuild.start"),
                project,
                Value::Null,
                json!({"project": project, "client_token": client_token}),
                "starting",
            )
            .await?;
            let mut env_vars = vec![("PIFLOW_STEP", action.to_string())];
            if let Some(p) = request.input.get("path").and_then(Value::as_str) {
                env_vars.push(("PIFLOW_PATH", p.to_string()));
            }
            env_vars.push(("PIFLOW_POLICY", policy.to_string()));
            let mut start = client
                .start_build()
                .project_name(project)
                .idempotency_token(&client_token);
            for (k, v) in env_vars {
                let var = aws_sdk_codebuild::types::EnvironmentVariable::builder()
                    .name(k)
                    .value(v)
                    .r#type(aws_sdk_codebuild::types::EnvironmentVariableType::Plaintext)
                    .build()
                    .map_err(|e| Failure::new(format!("{step}.InvalidInput"), e.to_string()))?;
                start = start.environment_variables_override(var);
            }
            let out = start.send().await.map_err(|e| {
                Failure::new(
                    format!("{step}.CodeBuildFailed"),
                    format!(
                        "StartBuild of CodeBuild project {project} failed: {}; check that the project exists in the region and that the role may start it",
                        aws_sdk_codebuild::error::DisplayErrorContext(&e)
                    ),
                )
            })?;
            let id = out
                .build_value()
                .and_then(|b| b.id())
                .map(str::to_string)
                .ok_or_else(|| {
                    Failure::new(
                        format!("{step}.CodeBuildFailed"),
                        format!("StartBuild of {project} returned no build id"),
                    )
                })?;
            aws_step::audit(
                store,
                request,
                step,
                &env,
                &started_action,
                project,
                Value::Null,
                json!({"project": project, "build_id": id}),
                "started",
            )
            .await?;
            id
        }
    };
    let poll = Duration::from_secs(
        policy
            .get("poll_seconds")
            .and_then(Value::as_u64)
            .unwrap_or(10),
    );
    let deadline = tokio::time::Instant::now() + timeout(policy);
    let (status, logs) = loop {
        let out = client
            .batch_get_builds()
            .ids(&build_id)
            .send()
            .await
            .map_err(|e| {
                Failure::new(
                    format!("{step}.CodeBuildFailed"),
                    format!(
                        "BatchGetBuilds of {build_id} failed: {}",
                        aws_sdk_codebuild::error::DisplayErrorContext(&e)
                    ),
                )
            })?;
        let Some(build) = out.builds().first() else {
            return Err(Failure::new(
                format!("{step}.CodeBuildFailed"),
                format!("CodeBuild does not know build {build_id} of project {project}"),
            ));
        };
        let status = build
            .build_status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| "UNKNOWN".into());
        if build.build_complete() || status != "IN_PROGRESS" {
            let logs = build.logs().and_then(|l| l.deep_link()).map(str::to_string);
            break (status, logs);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Failure::new(
                format!("{step}.CodeBuildFailed"),
                format!(
                    "CodeBuild build {build_id} was still running after {}s; it goes on in CodeBuild (raise policy.timeout_seconds, or look at it in the console)",
                    timeout(policy).as_secs()
                ),
            ));
        }
        tokio::time::sleep(poll).await;
    };
    let passed = status == "SUCCEEDED";
    let output = json!({"runner": "codebuild", "project": project, "build_id": build_id,
        "status": status, "logs": logs, "passed": passed});
    aws_step::audit(
        store,
        request,
        step,
        &env,
        &format!("{action}.run"),
        project,
        Value::Null,
        output.clone(),
        if passed { "passed" } else { "failed" },
    )
    .await?;
    tracing::info!(state = %request.state_name, build = %build_id, %status, "codebuild build finished");
    if passed {
        return Ok(output);
    }
    Err(Failure::new(
        format!("{step}.Failed"),
        format!(
            "CodeBuild build {build_id} of project {project} ended {status}; its log: {}",
            logs.as_deref().unwrap_or("(no log link)")
        ),
    ))
}
