//! `piflow:lint` and `piflow:security-scan` against the real cfn-lint and
//! checkov of `.emu/venv` (made by `integration/emulator/setup.sh`), and the
//! CodeBuild runner against moto.
//!
//! Run: `cargo test --test it steps_lint_scan::`.

use crate::common;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use piflow_engine::{Failure, TaskHandler, TaskRequest};
use piflow_steps::AuditHandle;
use piflow_steps::lint::Lint;
use piflow_steps::process::ToolSearch;
use piflow_steps::scan::SecurityScan;
use piflow_store::Store;
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn venv_bin() -> PathBuf {
    root().join(".emu/venv/bin")
}

/// `.emu/venv/bin` once it has cfn-lint and checkov (setup.sh is run once
/// if they are missing), or None with a visible SKIPPED message.
fn tools(what: &str) -> Option<ToolSearch> {
    static READY: OnceLock<bool> = OnceLock::new();
    let ready = *READY.get_or_init(|| {
        let has = || venv_bin().join("cfn-lint").is_file() && venv_bin().join("checkov").is_file();
        if has() {
            return true;
        }
        eprintln!(
            "lint/scan: .emu/venv lacks cfn-lint or checkov: running integration/emulator/setup.sh"
        );
        // Take turns with other test binaries making .emu/venv (as
        // tests/it/common/moto.rs does); released when `lock` is dropped.
        let _ = std::fs::create_dir_all(root().join(".emu"));
        let lock = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(root().join(".emu/setup.lock"));
        if let Ok(l) = &lock {
            let _ = l.lock();
        }
        if has() {
            return true;
        }
        let _ = std::process::Command::new("bash")
            .arg(root().join("integration/emulator/setup.sh"))
            .stdout(std::process::Stdio::null())
            .status();
        has()
    });
    if ready {
        Some(ToolSearch::only(vec![venv_bin()]))
    } else {
        eprintln!(
            "SKIPPED: {what}: cfn-lint/checkov are not in .emu/venv/bin (run integration/emulator/setup.sh)"
        );
        None
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    store: Arc<dyn Store>,
}

fn fixture() -> Fixture {
    let (dir, store) = common::steps::temp_store();
    Fixture {
        dir: dir.path().to_path_buf(),
        _dir: dir,
        store,
    }
}

impl Fixture {
    fn lint(&self, tools: ToolSearch) -> Lint {
        Lint {
            store: AuditHandle::ready(self.store.clone()),
            tools: Some(tools),
            workdir: Some(root()),
        }
    }

    fn scan(&self, tools: ToolSearch) -> SecurityScan {
        SecurityScan {
            store: AuditHandle::ready(self.store.clone()),
            tools: Some(tools),
            workdir: Some(root()),
            today: None,
        }
    }

    async fn audit(&self, env: &str, action: &str) -> Vec<(String, Value)> {
        self.store
            .audit(Some(env), None)
            .await
            .expect("audit")
            .into_iter()
            .filter(|r| r.entry.action == action)
            .map(|r| (r.entry.result, r.entry.after))
            .collect()
    }
}

fn request(token: &str, input: Value) -> TaskRequest {
    common::steps::step_request(
        &format!("arn:aws:states:us-east-1:123456789012:execution:test:{token}"),
        "Check",
        "piflow:lint",
        token,
        input,
    )
}

async fn call(h: &dyn TaskHandler, token: &str, input: Value) -> Result<Value, Failure> {
    h.invoke(request(token, input)).await
}

fn cause(f: &Failure) -> &str {
    f.cause.as_deref().unwrap_or("")
}

const CLEAN: &str = "integration/templates/clean.yaml";
const BROKEN: &str = "integration/templates/lint-errors.yaml";
const INSECURE: &str = "integration/templates/checkov-failures.yaml";

#[tokio::test]
async fn lint_clean_and_broken_templates() {
    let Some(tools) = tools("lint_clean_and_broken_templates") else {
        return;
    };
    let fx = fixture();
    let lint = fx.lint(tools);
    let out = call(
        &lint,
        "t-clean",
        json!({"path": CLEAN, "environment": "dev"}),
    )
    .await
    .expect("clean template passes");
    assert_eq!(out["passed"], true);
    assert_eq!(out["counts"], json!({"error": 0, "warning": 0, "info": 0}));
    assert_eq!(out["tools"][0]["name"], "cfn-lint");
    assert_eq!(out["tools"][0]["status"], "ran");

    let err = call(
        &lint,
        "t-broken",
        json!({"path": BROKEN, "environment": "dev"}),
    )
    .await
    .expect_err("broken template fails");
    assert_eq!(err.error_name(), "Lint.Failed");
    let c = cause(&err);
    assert!(c.contains(&format!("{BROKEN}:11:7 E3002")), "{c}");
    assert!(c.contains(&format!("{BROKEN}:14:5 E6101")), "{c}");
    assert!(c.contains("2 error(s), 1 warning(s)"), "{c}");
    assert!(
        !c.contains("W2001"),
        "a warning is below fail_on: error: {c}"
    );

    let runs = fx.audit("dev", "lint.run").await;
    let results: Vec<&str> = runs.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(results, ["passed", "failed"]);
    assert_eq!(runs[1].1["counts"]["error"], 2);

    // A whole directory: the clean and broken templates (and the checkov
    // one) are found; the policy example is not a template.
    let err = call(&lint, "t-dir", json!({"path": "integration/templates"}))
        .await
        .expect_err("the directory holds the broken template");
    assert!(
        cause(&err).contains("lint-errors.yaml:11:7"),
        "{}",
        cause(&err)
    );
    assert_eq!(fx.audit("local", "lint.run").await.len(), 1);
}

#[tokio::test]
async fn lint_policy_changes_the_outcome() {
    let Some(tools) = tools("lint_policy_changes_the_outcome") else {
        return;
    };
    let fx = fixture();
    let lint = fx.lint(tools);
    // Ignoring both error rules leaves a warning: below the default threshold.
    let out = call(
        &lint,
        "p1",
        json!({"path": BROKEN, "policy": {"ignore_rules": ["E3002", "E6101"]}}),
    )
    .await
    .expect("errors ignored");
    assert_eq!(out["passed"], true);
    assert_eq!(out["ignored"], 2);
    assert_eq!(out["counts"]["warning"], 1);
    assert_eq!(out["findings"][0]["rule"], "W2001");
    assert_eq!(out["findings"][0]["line"], 4);
    // fail_on: warning makes that warning fail the step.
    let err = call(
        &lint,
        "p2",
        json!({"path": BROKEN, "policy": {"ignore_rules": ["E3002", "E6101"], "fail_on": "warning"}}),
    )
    .await
    .expect_err("warning fails at fail_on: warning");
    assert_eq!(err.error_name(), "Lint.Failed");
    assert!(
        cause(&err).contains(&format!("{BROKEN}:4:3 W2001")),
        "{}",
        cause(&err)
    );
    // fail_on: never reports without failing.
    let out = call(
        &lint,
        "p3",
        json!({"path": BROKEN, "policy": {"fail_on": "never"}}),
    )
    .await
    .expect("never fails");
    assert_eq!(out["passed"], true);
    assert_eq!(out["counts"]["error"], 2);
    // A bad threshold is refused.
    let err = call(
        &lint,
        "p4",
        json!({"path": BROKEN, "policy": {"fail_on": "sometimes"}}),
    )
    .await
    .expect_err("bad fail_on");
    assert_eq!(err.error_name(), "Lint.InvalidInput");
    let err = call(
        &lint,
        "p5",
        json!({"path": "integration/templates/nope.yaml"}),
    )
    .await
    .expect_err("missing path");
    assert_eq!(err.error_name(), "Lint.InvalidInput");
}

/// No tools at all (an empty tools dir, no PATH): needs no installed tool.
#[tokio::test]
async fn missing_linters() {
    let fx = fixture();
    let empty = fx.dir.join("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    let lint = fx.lint(ToolSearch::only(vec![empty.clone()]));
    let err = call(&lint, "m1", json!({"path": CLEAN}))
        .await
        .expect_err("cfn-lint missing");
    assert_eq!(err.error_name(), "Lint.ToolMissing");
    assert!(cause(&err).contains("cfn-lint"), "{}", cause(&err));
    assert!(cause(&err).contains("setup.sh"), "{}", cause(&err));

    // Terraform: tflint is not installable here, so the step says so.
    let tf = fx.dir.join("infra");
    std::fs::create_dir_all(&tf).unwrap();
    std::fs::write(tf.join("main.tf"), "resource \"aws_s3_bucket\" \"b\" {}\n").unwrap();
    let err = call(&lint, "m2", json!({"path": tf.to_str().unwrap()}))
        .await
        .expect_err("tflint missing");
    assert_eq!(err.error_name(), "Lint.ToolMissing");
    assert!(cause(&err).contains("tflint"), "{}", cause(&err));
    let out = call(
        &lint,
        "m3",
        json!({"path": tf.to_str().unwrap(), "policy": {"allow_missing_tools": true}}),
    )
    .await
    .expect("allowed to skip");
    assert_eq!(out["passed"], true);
    assert_eq!(out["tools"][0]["name"], "tflint");
    assert_eq!(out["tools"][0]["status"], "skipped");

    // The standard search: PIFLOW_TOOLS_DIR replaces .emu/venv/bin, then PATH.
    let s = ToolSearch::from_values(Some(empty.as_os_str()), None, &root());
    assert_eq!(s.dirs, vec![empty.clone()]);
    assert!(s.find("cfn-lint").is_none());

    let scan = fx.scan(ToolSearch::only(vec![empty]));
    let err = call(&scan, "m4", json!({"path": CLEAN}))
        .await
        .expect_err("checkov missing");
    assert_eq!(err.error_name(), "SecurityScan.ToolMissing");
}

#[tokio::test]
async fn checkov_failures_suppressions_and_sarif() {
    let Some(tools) = tools("checkov_failures_suppressions_and_sarif") else {
        return;
    };
    let fx = fixture();
    let scan = fx.scan(tools);
    let sarif_dir = fx.dir.join("sarif");
    let policy = |suppressions: Value| {
        json!({"path": INSECURE, "environment": "dev",
            "policy": {"sarif_dir": sarif_dir.to_str().unwrap(), "suppressions": suppressions}})
    };

    let out = call(
        &scan,
        "s0",
        json!({"path": CLEAN, "policy": {"sarif_dir": sarif_dir.to_str().unwrap()}}),
    )
    .await
    .expect("clean template passes checkov");
    assert_eq!(out["passed"], true);
    assert!(out["passed_checks"].as_u64().unwrap_or(0) > 0, "{out}");

    let err = call(&scan, "s1", policy(json!([])))
        .await
        .expect_err("insecure template fails");
    assert_eq!(err.error_name(), "SecurityScan.Failed");
    let c = cause(&err);
    for check in ["CKV_AWS_3", "CKV_AWS_24", "CKV_AWS_23"] {
        assert!(c.contains(check), "{check} missing from: {c}");
    }
    assert!(
        c.contains(&format!("CKV_AWS_3 AWS::EC2::Volume.Data ({INSECURE}:4-8)")),
        "{c}"
    );
    assert!(c.contains("without a severity count as failing"), "{c}");
    let sarif = sarif_dir.join("Check.sarif");
    let text = std::fs::read_to_string(&sarif).expect("SARIF written");
    let doc: Value = serde_json::from_str(&text).expect("SARIF is JSON");
    assert!(doc["runs"].is_array(), "{doc}");
    assert!(text.contains("CKV_AWS_24"));

    // A valid suppression hides its check; an expired one and one without
    // a reason do not, and are reported.
    let err = call(
        &scan,
        "s2",
        policy(json!([
            {"check": "CKV_AWS_3", "reason": "test volume, no data", "expires": "2099-01-01"},
            {"check": "CKV_AWS_24", "reason": "bastion", "expires": "2020-01-01"},
            {"check": "CKV_AWS_23", "reason": ""},
        ])),
    )
    .await
    .expect_err("two checks still fail");
    let c = cause(&err);
    assert!(!c.contains("CKV_AWS_3 "), "suppressed check listed: {c}");
    assert!(
        c.contains("CKV_AWS_24 AWS::EC2::SecurityGroup.OpenIngress"),
        "{c}"
    );
    assert!(c.contains("expired on 2020-01-01"), "{c}");
    assert!(c.contains("no reason"), "{c}");

    let out = call(
        &scan,
        "s3",
        policy(json!([
            {"check": "CKV_AWS_3", "reason": "test volume", "expires": "2099-01-01"},
            {"check": "CKV_AWS_24", "reason": "bastion", "expires": "2099-01-01"},
            {"check": "CKV_AWS_23", "reason": "described elsewhere", "resource": "AWS::EC2::SecurityGroup.OpenIngress"},
        ])),
    )
    .await
    .expect("everything suppressed");
    assert_eq!(out["passed"], true);
    assert_eq!(out["failed_checks"], json!([]));
    assert_eq!(out["suppressed"].as_array().map(Vec::len), Some(3));
    assert_eq!(out["suppressed"][0]["reason"], "test volume");

    // fail_on: never reports the failed checks without failing.
    let mut input = policy(json!([]));
    input["policy"]["fail_on"] = json!("never");
    let out = call(&scan, "s4", input).await.expect("never fails");
    assert_eq!(out["passed"], true);
    assert!(
        out["failed_checks"]
            .as_array()
            .is_some_and(|a| a.len() >= 3)
    );

    let runs = fx.audit("dev", "security-scan.run").await;
    let results: Vec<&str> = runs.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(results, ["failed", "failed", "passed", "passed"]);
}

#[tokio::test]
async fn codebuild_runner_against_moto() {
    let Some(moto) = common::moto::moto() else {
        return;
    };
    let _ = moto;
    let config = piflow_aws_config::sdk_config().await;
    let cb = aws_sdk_codebuild::Client::new(&config);
    let project = common::moto::unique("lint");
    cb.create_project()
        .name(&project)
        .source(
            aws_sdk_codebuild::types::ProjectSource::builder()
                .r#type(aws_sdk_codebuild::types::SourceType::S3)
                .location("infra-bucket/infra.zip")
                .buildspec(
                    "version: 0.2\nphases:\n  build:\n    commands: [cfn-lint $PIFLOW_PATH]\n",
                )
                .build()
                .unwrap(),
        )
        .artifacts(
            aws_sdk_codebuild::types::ProjectArtifacts::builder()
                .r#type(aws_sdk_codebuild::types::ArtifactsType::NoArtifacts)
                .build()
                .unwrap(),
        )
        .environment(
            aws_sdk_codebuild::types::ProjectEnvironment::builder()
                .r#type(aws_sdk_codebuild::types::EnvironmentType::LinuxContainer)
                .image("aws/codebuild/standard:7.0")
                .compute_type(aws_sdk_codebuild::types::ComputeType::BuildGeneral1Small)
                .build()
                .unwrap(),
        )
        .service_role("arn:aws:iam::123456789012:role/codebuild")
        .send()
        .await
        .expect("create project");

    let fx = fixture();
    let empty = fx.dir.join("empty-bin");
    // No local tool is needed (nor used) with the CodeBuild runner.
    let lint = fx.lint(ToolSearch::only(vec![empty.clone()]));
    let input = json!({"path": BROKEN, "environment": "ci", "region": "us-east-1",
        "policy": {"runner": "codebuild", "codebuild_project": project, "poll_seconds": 0}});
    let token = common::moto::unique("tok");
    let first = call(&lint, &token, input.clone())
        .await
        .expect("build succeeds");
    assert_eq!(first["runner"], "codebuild");
    assert_eq!(first["status"], "SUCCEEDED");
    let id = first["build_id"].as_str().expect("build id").to_string();
    assert!(id.starts_with(&format!("{project}:")), "{id}");
    assert!(first["logs"].is_string(), "{first}");

    // The same token again (a crash-resume): the same build, no second one.
    let again = call(&lint, &token, input.clone()).await.expect("again");
    assert_eq!(again["build_id"], first["build_id"]);
    let builds = |cb: aws_sdk_codebuild::Client, project: String| async move {
        cb.list_builds_for_project()
            .project_name(project)
            .send()
            .await
            .expect("list builds")
            .ids()
            .len()
    };
    assert_eq!(builds(cb.clone(), project.clone()).await, 1);
    // Another token: another build.
    let other = call(&lint, &common::moto::unique("tok"), input.clone())
        .await
        .expect("second build");
    assert_ne!(other["build_id"], first["build_id"]);
    assert_eq!(builds(cb.clone(), project.clone()).await, 2);

    // The security scan through the input's codebuild.project.
    let scan = fx.scan(ToolSearch::only(vec![empty]));
    let out = call(
        &scan,
        &common::moto::unique("tok"),
        json!({"path": INSECURE, "environment": "ci", "codebuild": {"project": project},
            "policy": {"poll_seconds": 0}}),
    )
    .await
    .expect("scan build");
    assert_eq!(out["status"], "SUCCEEDED");
    assert_eq!(builds(cb.clone(), project.clone()).await, 3);

    let starts = fx.audit("ci", "lint.codebuild.started").await;
    assert_eq!(starts.len(), 2, "one start record per token");
    assert_eq!(fx.audit("ci", "security-scan.run").await.len(), 1);

    // moto 5.2.5 does not honour StartBuild's idempotencyToken (a second
    // call with the same token starts another build): piflow's own record
    // of the build id is what keeps a re-invocation from starting another.
    for _ in 0..2 {
        cb.start_build()
            .project_name(&project)
            .idempotency_token("same-token")
            .send()
            .await
            .expect("start build");
    }
    let n = builds(cb.clone(), project.clone()).await;
    eprintln!(
        "moto: two StartBuild calls with one idempotencyToken made {} build(s)",
        n - 3
    );

    // Without an environment the CodeBuild runner refuses (its records need a chain).
    let err = call(
        &lint,
        "no-env",
        json!({"path": BROKEN, "policy": {"runner": "codebuild", "codebuild_project": project}}),
    )
    .await
    .expect_err("needs environment");
    assert_eq!(err.error_name(), "Lint.InvalidInput");
}

/// A build that ends FAILED fails the step. moto's builds always succeed,
/// so a wiremock stub plays CodeBuild: it is reached through the standard
/// `AWS_ENDPOINT_URL`, given to a child process of this test binary (which
/// runs `codebuild_failed_build_child`) so that no test here changes the
/// shared process environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codebuild_failed_build() {
    use wiremock::matchers::{header, method};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    let reply = |body: Value| {
        ResponseTemplate::new(200)
            .insert_header("content-type", "application/x-amz-json-1.1")
            .set_body_string(body.to_string())
    };
    Mock::given(method("POST"))
        .and(header("x-amz-target", "CodeBuild_20161006.StartBuild"))
        .respond_with(reply(
            json!({"build": {"id": "lint-proj:b1", "buildStatus": "IN_PROGRESS"}}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(header("x-amz-target", "CodeBuild_20161006.BatchGetBuilds"))
        .respond_with(reply(json!({"builds": [{
            "id": "lint-proj:b1", "buildStatus": "FAILED", "buildComplete": true,
            "logs": {"deepLink": "https://console.example/logs/b1"}}]})))
        .mount(&server)
        .await;
    let exe = std::env::current_exe().expect("test binary");
    let endpoint = server.uri();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(exe)
            .args([
                "--ignored",
                "--exact",
                "steps_lint_scan::codebuild_failed_build_child",
                "--nocapture",
            ])
            .env("PIFLOW_STUB_CHILD", "1")
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_MAX_ATTEMPTS", "1")
            .env_remove("MOTO_PORT")
            .env_remove("AWS_ENDPOINT_URL_CODEBUILD")
            .env_remove("AWS_PROFILE")
            .output()
            .expect("run the child test")
    })
    .await
    .expect("join");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child test failed:\n{text}");
    assert!(text.contains("1 passed"), "child ran no test:\n{text}");
}

#[tokio::test]
#[ignore = "run by codebuild_failed_build in its own process, against its stub"]
async fn codebuild_failed_build_child() {
    if std::env::var_os("PIFLOW_STUB_CHILD").is_none() {
        return;
    }
    let fx = fixture();
    let lint = fx.lint(ToolSearch::only(vec![]));
    let err = call(
        &lint,
        "failed-build",
        json!({"path": BROKEN, "environment": "ci",
            "codebuild": {"project": "lint-proj"}, "policy": {"poll_seconds": 0}}),
    )
    .await
    .expect_err("a FAILED build fails the step");
    assert_eq!(err.error_name(), "Lint.Failed");
    let c = cause(&err);
    assert!(c.contains("lint-proj:b1"), "{c}");
    assert!(c.contains("ended FAILED"), "{c}");
    assert!(c.contains("https://console.example/logs/b1"), "{c}");
    let runs = fx.audit("ci", "lint.run").await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].0, "failed");
    assert_eq!(runs[0].1["build_id"], "lint-proj:b1");
}

/// The steps inside a state machine run by the engine: a failed lint is
/// caught by its `Lint.Failed` catcher (as in workflows/upgrade.asl.yaml);
/// a clean template goes on to the security scan.
#[tokio::test]
async fn lint_and_scan_in_a_state_machine() {
    use piflow_asl::{LoadOptions, validate_value};
    use piflow_engine::{Engine, ExecutionRequest, Status, SystemClock, TaskRegistry};
    let Some(tools) = tools("lint_and_scan_in_a_state_machine") else {
        return;
    };
    let fx = fixture();
    let mut registry = TaskRegistry::new();
    registry.register("piflow:lint", Arc::new(fx.lint(tools.clone())));
    registry.register("piflow:security-scan", Arc::new(fx.scan(tools)));
    let def = json!({
        "StartAt": "Lint",
        "States": {
            "Lint": {"Type": "Task", "Resource": "piflow:lint",
                "Parameters": {"path.$": "$.path", "environment": "dev"},
                "ResultPath": "$.lint", "Next": "Scan",
                "Catch": [{"ErrorEquals": ["Lint.Failed"], "ResultPath": "$.error", "Next": "Refused"}]},
            "Scan": {"Type": "Task", "Resource": "piflow:security-scan",
                "Parameters": {"path.$": "$.path", "environment": "dev",
                    "policy": {"sarif_dir": fx.dir.join("sarif").to_str().unwrap()}},
                "ResultPath": "$.scan", "End": true},
            "Refused": {"Type": "Fail", "Error": "Upgrade.Refused", "CausePath": "$.error.Cause"}
        }
    });
    let v = validate_value(&def, LoadOptions::default());
    assert!(v.is_valid(), "{:#?}", v.diagnostics);
    let machine = Arc::new(v.machine.expect("machine"));
    let engine = Engine::new(registry, Arc::new(SystemClock));
    let run = |name: &str, path: &str| ExecutionRequest {
        machine: machine.clone(),
        state_machine_name: "checks".into(),
        execution_name: name.into(),
        input: json!({"path": path}),
        role_arn: None,
        durable: None,
    };
    let out = engine.run(run("broken", BROKEN)).await;
    assert_eq!(out.status, Status::Failed);
    assert_eq!(out.error.as_deref(), Some("Upgrade.Refused"));
    assert!(
        out.cause
            .as_deref()
            .unwrap_or("")
            .contains("lint-errors.yaml:11:7 E3002"),
        "{:?}",
        out.cause
    );
    let out = engine.run(run("clean", CLEAN)).await;
    assert_eq!(
        out.status,
        Status::Succeeded,
        "{:?} {:?}",
        out.error,
        out.cause
    );
    let output = out.output.expect("output");
    assert_eq!(output["lint"]["passed"], true);
    assert_eq!(output["scan"]["passed"], true);
    assert!(
        output["scan"]["sarif"]
            .as_str()
            .is_some_and(|p| std::path::Path::new(p).is_file()),
        "{output}"
    );
}
