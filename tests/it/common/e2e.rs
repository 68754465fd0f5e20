//! Whole workflows run by the real binary (`piflow run WORKFLOW --format
//! json`) against the moto server, with AWS Health (and AWS Backup, where a
//! test needs it) served by wiremock, and real cfn-lint and checkov from
//! `.emu/venv/bin` on the PATH.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer};

use super::health::{OP_PATH, ecs_issue, events};
use super::moto::Moto;

/// AWS Health served by wiremock: quiet, or opening an ECS issue in
/// us-east-1 after a number of quiet answers.
pub struct Health {
    pub server: MockServer,
}

impl Health {
    /// No open issue, ever.
    pub async fn quiet() -> Health {
        Health::opens_after(u64::MAX).await
    }

    /// The first `quiet` DescribeEvents calls find nothing; every later one
    /// finds an open ECS issue in us-east-1 (an incident that starts in the
    /// middle of a deployment).
    pub async fn opens_after(quiet: u64) -> Health {
        let server = MockServer::start().await;
        if quiet > 0 {
            Mock::given(method("POST"))
                .and(path(OP_PATH))
                .respond_with(events(vec![], None))
                .up_to_n_times(quiet)
                .with_priority(1)
                .mount(&server)
                .await;
        }
        Mock::given(method("POST"))
            .and(path(OP_PATH))
            .respond_with(events(vec![ecs_issue("us-east-1", 1)], None))
            .with_priority(5)
            .mount(&server)
            .await;
        Health { server }
    }

    /// How many DescribeEvents calls it answered.
    pub async fn calls(&self) -> usize {
        self.server.received_requests().await.map_or(0, |r| r.len())
    }
}

/// One piflow home (its own embedded store) and the environment that
/// points the binary at moto and the Health mock.
pub struct Run {
    pub home: tempfile::TempDir,
    pub env: Vec<(String, String)>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl Run {
    pub fn new(moto: &Moto, health: &Health) -> Run {
        let mut env = moto.env_vars();
        let venv_bin = root().join(".emu/venv/bin");
        let path = std::env::var("PATH").unwrap_or_default();
        env.push(("PATH".into(), format!("{}:{path}", venv_bin.display())));
        env.push((
            "PIFLOW_HEALTH_ENDPOINTS".into(),
            format!("us-east-1={}", health.server.uri()),
        ));
        env.push(("AWS_EC2_METADATA_DISABLED".into(), "true".into()));
        env.push(("NO_COLOR".into(), "1".into()));
        Run {
            home: tempfile::tempdir().expect("tempdir"),
            env,
        }
    }

    /// Another variable for the binary (e.g. `AWS_ENDPOINT_URL_BACKUP`).
    pub fn with(mut self, key: &str, value: &str) -> Run {
        self.env.push((key.into(), value.into()));
        self
    }

    fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_piflow"));
        c.current_dir(root())
            .env("PIFLOW_HOME", self.home.path())
            .env_remove("PIFLOW_STORE")
            .env_remove("AWS_PROFILE")
            .env_remove("PIFLOW_HEALTH_ENDPOINTS");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// `piflow run WORKFLOW --input INPUT --format json`: the result object
    /// (its exit status checked against its status).
    pub async fn workflow(&self, workflow: &str, input: &Value) -> Value {
        let mut c = self.command();
        c.args([
            "run",
            workflow,
            "--input",
            &input.to_string(),
            "--format",
            "json",
        ]);
        let out = tokio::task::spawn_blocking(move || c.output())
            .await
            .expect("join")
            .expect("piflow runs");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "piflow run {workflow}: not one JSON object ({e})\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let ok = v["status"] == "SUCCEEDED";
        assert_eq!(
            out.status.success(),
            ok,
            "exit status {:?} for {}: {}",
            out.status.code(),
            v["status"],
            String::from_utf8_lossy(&out.stderr)
        );
        v
    }

    /// The environment's audit records, oldest first (`piflow audit
    /// --format json`), after `piflow audit verify` found the chain intact.
    pub fn audit(&self, env: &str) -> Vec<Value> {
        let verify = self
            .command()
            .args(["audit", "verify", "--env", env])
            .output()
            .expect("piflow audit verify runs");
        assert!(
            verify.status.success(),
            "audit verify: {}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
        let out = self
            .command()
            .args(["audit", "--env", env, "--format", "json"])
            .output()
            .expect("piflow audit runs");
        serde_json::from_slice::<Value>(&out.stdout)
            .expect("audit JSON")
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// With a piflow.yaml of the test's own (`PIFLOW_CONFIG`): its
    /// environment `env` (region us-east-1, the checks' policy) and the
    /// product made of `services` (name, ECS service), images
    /// `registry.example/NAME:VERSION`; deployments read every 0.3 s.
    pub fn configured(self, env: &str, services: &[(&str, &str)]) -> Run {
        let config = self.home().join("piflow.yaml");
        let text = json!({
            "product": {
                "image": "registry.example/{service}:{version}",
                "container": "web",
                "services": services.iter().map(|(n, s)| json!({"name": n, "service": s})).collect::<Vec<_>>(),
            },
            "environments": {env: {"region": "us-east-1", "policy": checks()["policy"]}},
        });
        std::fs::write(&config, text.to_string()).expect("write piflow.yaml");
        self.with("PIFLOW_CONFIG", &config.display().to_string())
            .with("PIFLOW_POLL_SECONDS", "0.3")
    }

    /// Start piflow with `args` in the background (stdout and stderr
    /// discarded).
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.command()
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("piflow starts")
    }

    /// Run piflow with `args`: (exit code, stdout, stderr).
    pub fn command_output(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let out = self.command().args(args).output().expect("piflow runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// The actions of audit records, in order.
pub fn actions(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| r["action"].as_str().map(str::to_string))
        .collect()
}

/// The lint and scan part of an input: the reference estate's template,
/// with the one suppression its policy carries.
pub fn checks() -> Value {
    json!({
        "infrastructure": {"path": "integration/estate/infra/"},
        "policy": {
            "lint": {"fail_on": "error"},
            "scan": {"fail_on": "high", "suppressions": [
                {"check": "CKV_AWS_118", "reason": "enhanced monitoring is off in test estates", "expires": "2099-01-01"}
            ]}
        }
    })
}

/// What most end-to-end tests start from: moto, AWS Health on wiremock, a
/// freshly seeded estate, a piflow home and an environment of their own.
/// `None` (moto unavailable: the SKIPPED message is printed) ends the test.
/// Keep `health` bound for the whole test (`health: _health` when it is not
/// read): dropping it stops the Health server.
pub struct Case {
    pub moto: &'static Moto,
    pub health: Health,
    pub estate: super::estate::Estate,
    pub run: Run,
    pub env: String,
}

impl Case {
    pub async fn new(health: impl std::future::Future<Output = Health>) -> Option<Case> {
        let moto = super::moto::moto()?;
        let health = health.await;
        let estate = super::estate::seed(moto).await;
        let env = format!("dev-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let run = Run::new(moto, &health).configured(&env, &[("dashboard", &estate.service)]);
        Some(Case {
            moto,
            health,
            estate,
            run,
            env,
        })
    }
}
