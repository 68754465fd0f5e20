//! The reference product as teams build it, for the release tests: seeded
//! in moto by `integration/estate/estate.py seed --suffix S` (the services
//! dashboard, renderer, scheduler and pirana under the ECS deployment
//! controller, behind one ALB with a production listener rule and an
//! alternate target group each; or `--external` for task sets), with a
//! piflow.yaml of the test's own (its environment, the product's services
//! under their suffixed names) that the binary reads through
//! `PIFLOW_CONFIG`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use super::e2e::{Health, Run, checks};
use super::moto::Moto;

pub const SERVICES: [&str; 4] = ["dashboard", "renderer", "scheduler", "pirana"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One seeded product, its piflow home and its configuration.
pub struct Product {
    pub moto: &'static Moto,
    pub health: Health,
    pub suffix: String,
    /// What estate.py printed.
    pub estate: Value,
    pub env: String,
    pub run: Run,
    pub config: PathBuf,
    pub cluster: String,
}

/// Run estate.py against `moto` (`seed` or `show`, with `args`).
pub fn estate_py(moto: &Moto, args: &[&str]) -> std::process::Output {
    let python = root().join(".emu/venv/bin/python");
    let mut c = Command::new(python);
    c.arg(root().join("integration/estate/estate.py"))
        .args(args)
        .current_dir(root());
    for (k, v) in moto.env_vars() {
        c.env(k, v);
    }
    c.env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1");
    c.output().expect("estate.py runs")
}

impl Product {
    /// A fresh product estate under the ECS controller (or `external`),
    /// and a configuration whose environment has `rollout`.
    pub async fn seed(
        health: impl std::future::Future<Output = Health>,
        external: bool,
        rollout: Value,
    ) -> Option<Product> {
        let moto = super::moto::moto()?;
        let health = health.await;
        let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
        let mut args = vec!["seed", "--suffix", &suffix];
        if external {
            args.push("--external");
        }
        let out = estate_py(moto, &args);
        assert!(
            out.status.success(),
            "estate.py seed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let estate: Value = serde_json::from_slice(&out.stdout).expect("estate JSON");
        let cluster = estate["cluster"].as_str().expect("cluster").to_string();
        let env = format!("dev-{suffix}");
        let names: Vec<String> = estate["services"]
            .as_object()
            .expect("services")
            .keys()
            .cloned()
            .collect();
        let waves = if names.len() == 4 {
            json!([["dashboard"], ["renderer", "scheduler", "pirana"]])
        } else {
            json!([names])
        };
        let config = json!({
            "product": {
                "image": "registry.example/product/{service}:{version}",
                "container": "web",
                "services": names.iter().map(|n| json!({"name": n, "service": format!("{n}-{suffix}")})).collect::<Vec<_>>(),
                "waves": waves,
            },
            "environments": {
                env.clone(): {
                    "region": "us-east-1",
                    "cluster": cluster,
                    "policy": checks()["policy"],
                    "rollout": rollout,
                    "gates": {"health_services": ["ECS", "ELASTICLOADBALANCING"]},
                    "remediation": {"alarm_window_minutes": 60},
                }
            }
        });
        let run = Run::new(moto, &health).with("PIFLOW_POLL_SECONDS", "0.3");
        let config_path = run.home().join("piflow.yaml");
        std::fs::write(&config_path, serde_json::to_string_pretty(&config).unwrap())
            .expect("write piflow.yaml");
        let run = run.with("PIFLOW_CONFIG", &config_path.display().to_string());
        Some(Product {
            moto,
            health,
            suffix,
            estate,
            env,
            run,
            config: config_path,
            cluster,
        })
    }

    /// The ECS name of a product service.
    pub fn service(&self, name: &str) -> String {
        format!("{name}-{}", self.suffix)
    }

    /// An upgrade input for this product's environment.
    pub fn upgrade_input(&self, version: &str) -> Value {
        json!({
            "target": {"environment": self.env, "region": "us-east-1", "team": "research"},
            "release": {"version": version},
            "infrastructure": {"path": "integration/estate/infra/"},
        })
    }

    /// Every service's running task definition and its `web` image.
    pub async fn running(&self) -> BTreeMap<String, (String, String)> {
        let c = super::estate::clients().await;
        let mut out = BTreeMap::new();
        for name in self.names() {
            let svc = c
                .ecs
                .describe_services()
                .cluster(&self.cluster)
                .services(self.service(&name))
                .send()
                .await
                .expect("DescribeServices");
            let svc = &svc.services()[0];
            let td = match svc.deployment_controller().map(|d| d.r#type().as_str()) {
                Some("EXTERNAL") => svc
                    .task_sets()
                    .iter()
                    .find(|t| t.status() == Some("PRIMARY"))
                    .and_then(|t| t.task_definition())
                    .unwrap_or_default()
                    .to_string(),
                _ => svc.task_definition().unwrap_or_default().to_string(),
            };
            let image = image_of(&c.ecs, &td).await;
            out.insert(name, (td, image));
        }
        out
    }

    pub fn names(&self) -> Vec<String> {
        self.estate["services"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The service deployments of a service, newest first (status).
    pub async fn deployments(&self, name: &str) -> Vec<String> {
        let c = super::estate::clients().await;
        let out = c
            .ecs
            .list_service_deployments()
            .cluster(&self.cluster)
            .service(self.service(name))
            .send()
            .await
            .expect("ListServiceDeployments");
        out.service_deployments()
            .iter()
            .map(|d| {
                d.status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default()
            })
            .collect()
    }

    /// The revisions of a service's task definition family.
    pub async fn revisions(&self, name: &str) -> usize {
        let c = super::estate::clients().await;
        c.ecs
            .list_task_definitions()
            .family_prefix(self.service(name))
            .send()
            .await
            .expect("ListTaskDefinitions")
            .task_definition_arns()
            .iter()
            .filter(|a| {
                a.rsplit('/')
                    .next()
                    .and_then(|f| f.rsplit_once(':'))
                    .is_some_and(|(fam, _)| fam == self.service(name))
            })
            .count()
    }

    /// Make the new tasks of a service's deployments fail to start
    /// (the emulator's test-only endpoint).
    pub fn fail_tasks(&self, name: &str) {
        let body = json!({"cluster": self.cluster, "service": self.service(name), "reason": "CannotPullContainerError: the image does not exist (test)"});
        post(
            self.moto,
            "/piflow-emulator/ecs/fail-tasks",
            &body.to_string(),
        );
    }

    pub fn home(&self) -> &Path {
        self.run.home()
    }
}

async fn image_of(ecs: &aws_sdk_ecs::Client, td: &str) -> String {
    if td.is_empty() {
        return String::new();
    }
    let out = ecs
        .describe_task_definition()
        .task_definition(td)
        .send()
        .await
        .expect("DescribeTaskDefinition");
    out.task_definition()
        .and_then(|t| {
            t.container_definitions()
                .iter()
                .find(|c| c.name() == Some("web"))
        })
        .and_then(|c| c.image())
        .unwrap_or_default()
        .to_string()
}

/// A plain HTTP POST to the emulator; panics unless it answers 2xx.
pub fn post(moto: &Moto, path: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{body}",
        port = moto.port(),
        len = body.len()
    );
    let mut s = std::net::TcpStream::connect(("127.0.0.1", moto.port())).expect("connect");
    s.write_all(req.as_bytes()).expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    assert!(
        text.starts_with("HTTP/1.1 2") || text.starts_with("HTTP/1.0 2"),
        "POST {path}: {text}"
    );
    text
}

/// The release records (`release.recorded`) of an audit trail.
pub fn releases(records: &[Value]) -> Vec<&Value> {
    records
        .iter()
        .filter(|r| r["action"] == "release.recorded")
        .collect()
}
