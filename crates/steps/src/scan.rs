//! `piflow:security-scan`: checkov over the infrastructure code under a
//! path.
//!
//! Input: `path`, optional `policy`, `region`, `environment`,
//! `codebuild: {project}`.
//!
//! Runs `checkov -f FILE | -d DIR --framework … -o json -o sarif
//! --output-file-path DIR --skip-download` (frameworks from
//! `policy.framework`, else from the files found: cloudformation,
//! terraform, helm; none found: checkov's own detection). The SARIF report
//! is kept as `<state>.sarif` in `policy.sarif_dir` or
//! `$PIFLOW_HOME/artifacts/<execution>/` (else `.piflow/artifacts/<execution>/`).
//!
//! Policy: `fail_on` (`low` default, `medium`, `high`, `critical`, `never`:
//! a failed check fails the step when its severity reaches it; checkov
//! offline reports no severity, and a check without one fails unless
//! `fail_on` is `never`), `suppressions: [{check, reason, expires?,
//! resource?}]` (one without a reason, with a bad date or expired does not
//! apply and is reported), `framework`, `timeout_seconds`, `runner`,
//! `codebuild_project`, `poll_seconds`.
//!
//! Output: `{failed_checks: [{check, resource, file, lines, severity,
//! guideline, name}], passed, passed_checks, suppressed,
//! suppressions_ignored, sarif}`; `SecurityScan.Failed` lists the failing
//! checks. Audit: a `security-scan.run` record.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::AuditHandle;
use super::aws_step;
use super::lint;
use super::process::{self, ToolSearch};
use piflow_engine::{Failure, TaskHandler, TaskRequest};

const STEP: &str = "SecurityScan";

/// The `piflow:security-scan` handler.
pub struct SecurityScan {
    pub store: AuditHandle,
    /// Where checkov is found; `None`: [`ToolSearch::from_env`].
    pub tools: Option<ToolSearch>,
    /// The directory `path` is relative to; `None`: the current directory.
    pub workdir: Option<PathBuf>,
    /// "Today" for suppression expiry; `None`: the current UTC date.
    pub today: Option<chrono::NaiveDate>,
}

impl SecurityScan {
    pub fn new(store: AuditHandle) -> Self {
        SecurityScan {
            store,
            tools: None,
            workdir: None,
            today: None,
        }
    }
}

impl TaskHandler for SecurityScan {
    fn invoke(&self, request: TaskRequest) -> BoxFuture<'static, Result<Value, Failure>> {
        let store = self.store.clone();
        let tools = self.tools.clone();
        let workdir = self.workdir.clone();
        let today = self.today;
        Box::pin(async move {
            let workdir = match workdir {
                Some(w) => w,
                None => std::env::current_dir().map_err(|e| {
                    Failure::new(
                        "SecurityScan.InvalidInput",
                        format!("cannot read the working directory: {e}"),
                    )
                })?,
            };
            let tools = tools.unwrap_or_else(|| ToolSearch::from_env(&workdir));
            let today = today.unwrap_or_else(|| chrono::Utc::now().date_naive());
            run_scan(&store, &request, &workdir, &tools, today).await
        })
    }

    fn real_time(&self) -> bool {
        true
    }
}

fn severity_rank(s: &str) -> u8 {
    match s.to_ascii_lowercase().as_str() {
        "info" => 1,
        "low" => 2,
        "medium" => 3,
        "high" => 4,
        "critical" => 5,
        _ => 0,
    }
}

/// A name safe as a file or directory name.
fn safe_name(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let out = out.trim_matches('.').to_string();
    let out: String = out
        .chars()
        .rev()
        .take(120)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if out.is_empty() { "run".into() } else { out }
}

/// One usable suppression, or why it does not apply.
fn check_suppressions(
    policy: &Value,
    today: chrono::NaiveDate,
) -> Result<(Vec<Value>, Vec<Value>), String> {
    let mut valid = Vec::new();
    let mut ignored = Vec::new();
    let Some(list) = policy.get("suppressions") else {
        return Ok((valid, ignored));
    };
    let Some(list) = list.as_array() else {
        return Err("policy.suppressions must be a list of {check, reason, expires}".into());
    };
    for s in list {
        let check = s.get("check").and_then(Value::as_str).unwrap_or("");
        if check.is_empty() {
            ignored.push(
                json!({"suppression": s, "problem": "no check id (\"check\": \"CKV_AWS_20\")"}),
            );
            continue;
        }
        let reason = s.get("reason").and_then(Value::as_str).unwrap_or("").trim();
        if reason.is_empty() {
            ignored.push(json!({"check": check, "suppression": s, "problem": "no reason: a suppression must say why the check does not apply"}));
            continue;
        }
        if let Some(exp) = s.get("expires").filter(|v| !v.is_null()) {
            let date = exp
                .as_str()
                .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
            match date {
                None => {
                    ignored.push(json!({"check": check, "suppression": s, "problem": format!("expires {exp} is not a date like 2027-01-01")}));
                    continue;
                }
                Some(d) if d <= today => {
                    ignored.push(json!({"check": check, "suppression": s, "problem": format!("expired on {d}: renew it with a new date or fix the check")}));
                    continue;
                }
                Some(_) => {}
            }
        }
        valid.push(s.clone());
    }
    Ok((valid, ignored))
}

async fn run_scan(
    store: &AuditHandle,
    request: &TaskRequest,
    workdir: &Path,
    tools: &ToolSearch,
    today: chrono::NaiveDate,
) -> Result<Value, Failure> {
    let policy = lint::policy(request, STEP)?;
    let invalid = |m: String| {
        Failure::new(
            "SecurityScan.InvalidInput",
            format!("state {}: {m}", request.state_name),
        )
    };
    let fail_on = policy
        .get("fail_on")
        .and_then(Value::as_str)
        .unwrap_or("low");
    let threshold = match fail_on.to_ascii_lowercase().as_str() {
        "never" => None,
        s @ ("info" | "low" | "medium" | "high" | "critical") => Some(severity_rank(s)),
        other => {
            return Err(invalid(format!(
                "policy.fail_on must be info, low, medium, high, critical or never, not {other}"
            )));
        }
    };
    let (suppressions, suppressions_ignored) =
        check_suppressions(&policy, today).map_err(invalid)?;
    if let Some(project) = lint::codebuild_project(request, &policy, STEP)? {
        return lint::run_codebuild(store, request, STEP, "security-scan", &project, &policy).await;
    }
    let (rel, full) = lint::target_path(request, workdir, STEP)?;
    let Some(checkov) = tools.find("checkov") else {
        return Err(Failure::new(
            "SecurityScan.ToolMissing",
            format!(
                "state {}: checkov is not installed (looked in {}): run integration/emulator/setup.sh (it installs the pinned checkov into .emu/venv), or pip install checkov, or set PIFLOW_TOOLS_DIR to its bin directory",
                request.state_name,
                tools
                    .dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":")
            ),
        ));
    };
    let frameworks: Vec<String> = match policy.get("framework") {
        Some(Value::String(f)) if f != "auto" => vec![f.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => {
            let inv = lint::inventory(&full);
            let mut f = Vec::new();
            if !inv.cloudformation.is_empty() {
                f.push("cloudformation".to_string());
            }
            if !inv.terraform.is_empty() {
                f.push("terraform".to_string());
            }
            if !inv.helm.is_empty() {
                f.push("helm".to_string());
            }
            f
        }
    };
    let artifacts = match policy.get("sarif_dir").and_then(Value::as_str) {
        Some(d) => workdir.join(d),
        // Beside the embedded store: $PIFLOW_HOME/artifacts, else
        // .piflow/artifacts in the working directory.
        None => std::env::var_os("PIFLOW_HOME")
            .filter(|h| !h.is_empty())
            .map_or_else(|| workdir.join(".piflow"), std::path::PathBuf::from)
            .join("artifacts")
            .join(safe_name(&request.execution)),
    };
    let run_dir = artifacts.join(format!(
        ".checkov-{}",
        &piflow_engine::sha256_hex(request.idempotency_token.as_bytes())[..16]
    ));
    let _ = std::fs::remove_dir_all(&run_dir);
    private_dir(&run_dir).map_err(|e| {
        Failure::new(
            "SecurityScan.ArtifactFailed",
            format!(
                "cannot create the artifact directory {}: {e} (set policy.sarif_dir to a writable directory)",
                run_dir.display()
            ),
        )
    })?;
    let mut args: Vec<OsString> = vec![
        if full.is_file() { "-f" } else { "-d" }.into(),
        full.clone().into_os_string(),
    ];
    if !frameworks.is_empty() {
        args.push("--framework".into());
        args.extend(frameworks.iter().map(OsString::from));
    }
    args.extend(["-o", "json", "-o", "sarif", "--output-file-path"].map(OsString::from));
    args.push(run_dir.clone().into_os_string());
    args.extend(["--skip-download", "--quiet", "--compact"].map(OsString::from));
    let limit = lint::timeout(&policy);
    let out = process::run(
        &checkov,
        args,
        workdir,
        vec![("CKV_SKIP_PACKAGE_UPDATE_CHECK".into(), "true".into())],
        limit,
    )
    .await
    .map_err(|e| Failure::new("SecurityScan.ToolFailed", e.to_string()))?;
    let json_path = run_dir.join("results_json.json");
    let report: Option<Value> = std::fs::read_to_string(&json_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let report = match report {
        Some(r) if !out.timed_out && matches!(out.code, Some(0 | 1)) => r,
        _ => {
            let _ = std::fs::remove_dir_all(&run_dir);
            return Err(Failure::new(
                "SecurityScan.ToolFailed",
                if out.timed_out {
                    format!(
                        "checkov did not finish within {}s and was stopped; raise policy.timeout_seconds",
                        limit.as_secs()
                    )
                } else {
                    format!(
                        "checkov on {rel} failed (exit {:?}) or wrote no JSON report: {}",
                        out.code,
                        out.tail(800)
                    )
                },
            ));
        }
    };
    let sarif_path = artifacts.join(format!("{}.sarif", safe_name(&request.state_name)));
    let sarif = match std::fs::rename(run_dir.join("results_sarif.sarif"), &sarif_path) {
        Ok(()) => {
            owner_only(&sarif_path);
            Some(sarif_path.display().to_string())
        }
        Err(e) => {
            tracing::warn!(state = %request.state_name, error = %e, "checkov wrote no SARIF report");
            None
        }
    };
    let _ = std::fs::remove_dir_all(&run_dir);

    // One report, or a list of them (one per framework).
    let reports: Vec<Value> = match report {
        Value::Array(a) => a,
        other => vec![other],
    };
    let mut failed = Vec::new();
    let mut suppressed = Vec::new();
    let mut passed_checks = 0u64;
    for r in &reports {
        passed_checks += r["summary"]["passed"].as_u64().unwrap_or(0);
        for c in r["results"]["failed_checks"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let check = c["check_id"].as_str().unwrap_or("").to_string();
            let resource = c["resource"].as_str().unwrap_or("").to_string();
            let file = c["file_abs_path"]
                .as_str()
                .map(|p| lint::display_path(Path::new(p), workdir))
                .or_else(|| c["file_path"].as_str().map(str::to_string))
                .unwrap_or_default();
            let item = json!({
                "check": check,
                "name": c["check_name"],
                "resource": resource,
                "file": file,
                "lines": c["file_line_range"],
                "severity": c["severity"],
                "guideline": c["guideline"],
                "framework": r["check_type"],
            });
            let by = suppressions.iter().find(|s| {
                s["check"].as_str() == Some(check.as_str())
                    && s.get("resource")
                        .and_then(Value::as_str)
                        .is_none_or(|res| res == resource)
            });
            match by {
                Some(s) => {
                    let mut item = item;
                    item["reason"] = s["reason"].clone();
                    item["expires"] = s.get("expires").cloned().unwrap_or(Value::Null);
                    suppressed.push(item);
                }
                None => failed.push(item),
            }
        }
    }
    let failing: Vec<&Value> = failed
        .iter()
        .filter(|c| match threshold {
            None => false,
            Some(t) => match c["severity"].as_str() {
                None => true,
                Some(s) => severity_rank(s) >= t,
            },
        })
        .collect();
    let passed = failing.is_empty();
    let output = json!({
        "runner": "local",
        "path": rel,
        "frameworks": frameworks,
        "failed_checks": failed,
        "failing": failing.len(),
        "passed_checks": passed_checks,
        "suppressed": suppressed,
        "suppressions_ignored": suppressions_ignored,
        "sarif": sarif,
        "fail_on": fail_on,
        "passed": passed,
    });
    let ids = |v: &[&Value]| -> Vec<String> {
        v.iter()
            .map(|c| {
                format!(
                    "{} {} ({}:{})",
                    c["check"].as_str().unwrap_or("?"),
                    c["resource"].as_str().unwrap_or("?"),
                    c["file"].as_str().unwrap_or("?"),
                    match c["lines"].as_array().map(|a| a.as_slice()) {
                        Some([a, b]) => format!("{a}-{b}"),
                        _ => "?".into(),
                    }
                )
            })
            .collect()
    };
    aws_step::audit(
        store,
        request,
        STEP,
        &lint::audit_env(request),
        "security-scan.run",
        &rel,
        Value::Null,
        json!({"failing": ids(&failing), "suppressed": suppressed.len(),
            "suppressions_ignored": suppressions_ignored, "sarif": sarif, "passed": passed}),
        if passed { "passed" } else { "failed" },
    )
    .await?;
    tracing::info!(state = %request.state_name, path = %rel, passed, failing = failing.len(),
        suppressed = suppressed.len(), "security scan finished");
    if passed {
        return Ok(output);
    }
    let listed = ids(&failing);
    let shown: Vec<&String> = listed.iter().take(10).collect();
    Err(Failure::new(
        "SecurityScan.Failed",
        format!(
            "checkov found {} failing check(s) in {rel} (fail_on: {fail_on}{}): {}{}. Fix them, or add a suppression with a reason and an expiry date to policy.suppressions{}{}",
            failing.len(),
            if failing.iter().any(|c| c["severity"].is_null()) {
                "; checks without a severity count as failing"
            } else {
                ""
            },
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            if listed.len() > shown.len() {
                ", …"
            } else {
                ""
            },
            if suppressions_ignored.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} suppression(s) did not apply: {})",
                    suppressions_ignored.len(),
                    suppressions_ignored
                        .iter()
                        .map(|s| format!(
                            "{}: {}",
                            s["check"].as_str().unwrap_or("?"),
                            s["problem"].as_str().unwrap_or("?")
                        ))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            },
            sarif
                .as_deref()
                .map(|s| format!("; SARIF: {s}"))
                .unwrap_or_default()
        ),
    ))
}

/// Create `dir` and its missing parents readable by their owner only (0700
/// on unix): the reports name the infrastructure's weaknesses.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Make a report checkov wrote (with its umask) its owner's only (0600).
fn owner_only(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
            tracing::warn!(path = %path.display(), error = %e, "cannot make the report its owner's only");
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suppressions_need_reason_and_future_expiry() {
        let today = chrono::NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
        let policy = json!({"suppressions": [
            {"check": "CKV_AWS_1", "reason": "ok", "expires": "2027-01-01"},
            {"check": "CKV_AWS_2", "reason": "", "expires": "2027-01-01"},
            {"check": "CKV_AWS_3", "reason": "old", "expires": "2026-01-01"},
            {"check": "CKV_AWS_4", "reason": "no date"},
            {"check": "CKV_AWS_5", "reason": "bad", "expires": "soon"},
        ]});
        let (valid, ignored) = check_suppressions(&policy, today).unwrap();
        let v: Vec<&str> = valid.iter().filter_map(|s| s["check"].as_str()).collect();
        assert_eq!(v, ["CKV_AWS_1", "CKV_AWS_4"]);
        let i: Vec<&str> = ignored.iter().filter_map(|s| s["check"].as_str()).collect();
        assert_eq!(i, ["CKV_AWS_2", "CKV_AWS_3", "CKV_AWS_5"]);
    }

    #[test]
    fn safe_names() {
        assert_eq!(
            safe_name("arn:aws:states:us-east-1:1:execution:up/x"),
            "arn_aws_states_us-east-1_1_execution_up_x"
        );
        assert_eq!(safe_name(".."), "run");
    }
}
