//! `piflow:release`: release one version of the whole product, every
//! service, wave after wave; if any service fails, every service this
//! release moved goes back to where it was.
//!
//! Input:
//! - `environment` (required), `region`, `role_arn?`, `cluster`;
//! - `version` — the product version (what `{version}` in an image
//!   template becomes); `version`, `images` and `task_definitions` may
//!   also sit in a `release` object;
//! - `product` — `{services, waves?, image?, container?}` as piflow.yaml's
//!   `product:` declares it: `services` lists names or
//!   `{name, service?, image?, container?}` (`service`: the ECS service's
//!   name, default the name; `image`: a template with `{service}` and
//!   `{version}`, default the product's `image`; `container`: default the
//!   product's `container`, else the task definition's first container);
//!   `waves` lists lists of names (default: one wave of every service);
//! - `images?` — `{NAME: IMAGE}` overrides for this release;
//! - `task_definitions?` — `{NAME: ARN}`, or `[{service, task_definition}]`
//!   by ECS service name (what `piflow:repoint` answers): roll exactly these
//!   (a rollback to a recorded release, a restore) instead of images; the
//!   product's other services stay as they are;
//! - `force?` — `true`: a service already on its target is deployed again
//!   (new tasks: a restore by secret, whose tasks must read the new value);
//! - `rollout` — `{strategy: blue-green | canary | linear | rolling,
//!   percent, step_minutes, bake_minutes, alarms, timeout_minutes}`;
//! - `gates?` — `{health_services: [...], smoke_urls: [...],
//!   fail_open}`: asked on every poll while a deployment runs (AWS Health
//!   in the region, the alarms, the smoke URLs once per service when its
//!   new revision has production traffic), and once more when every wave
//!   is done;
//! - `reason?` — recorded with the release (a rollback's trigger).
//!
//! Before any change every service is checked at once, and every problem
//! is reported together (`Release.InvalidInput`, audited `release.refused`):
//! an unknown service, one in no wave or in two, no image for a service, a
//! service under a deployment controller piflow cannot drive, a missing
//! alternate target group or listener rule, a missing container or alarm,
//! another deployment in progress.
//!
//! Drivers, chosen per service from what ECS says it is: the `ECS`
//! controller (the default) gets an ECS-native deployment
//! ([`super::ecs_native`]); `EXTERNAL` gets the task-set step
//! (`piflow:ecs-blue-green`, unchanged); anything else is refused.
//!
//! Records (environment's audit chain): `release.started` (every service's
//! before), the drivers' `deploy.*` / `bluegreen.*` records,
//! `release.rolling-back` when a service failed, and one release record,
//! `release.recorded`, whose result is `released`, `rolled-back` or
//! `rollback-failed` and whose `after` lists every service's before, after
//! and outcome. Re-invoked with the same token (a resumed execution), the
//! step reads its records and goes on where it stopped: no second
//! `UpdateService`, no second task definition revision.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_sdk_ecs::types as ecs_t;
use futures::future::BoxFuture;
use serde_json::{Map, Value, json};

use super::AuditHandle;
use super::aws_step;
use super::bluegreen::EcsBlueGreen;
use super::ecs_native::{self, Ended, Native, Rollout, STEP, Strategy, Watch, aws_err, fail};
use super::health::HealthGate;
use super::http_check::HttpCheck;
use piflow_engine::{AuditEntry, AuditRecord, Failure, TaskHandler, TaskRequest};

/// How often a release reads its deployments, in seconds (default 5).
pub const POLL_ENV: &str = "PIFLOW_POLL_SECONDS";

/// The step.
#[derive(Clone)]
pub struct Release {
    pub store: AuditHandle,
    /// The task-set driver, for services under `EXTERNAL`.
    pub bluegreen: EcsBlueGreen,
    /// AWS Health, asked while deployments run.
    pub health: HealthGate,
    /// The smoke URLs' check.
    pub http: HttpCheck,
    /// How often a deployment is read while it runs.
    pub poll: Duration,
}

impl Release {
    /// The step; deployments are read every 5 s, or every
    /// `PIFLOW_POLL_SECONDS` (a number, 0.1–300) when that is set.
    pub fn new(store: AuditHandle) -> Self {
        let poll = std::env::var(POLL_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| (0.1..=300.0).contains(s))
            .map_or(Duration::from_secs(5), Duration::from_secs_f64);
        let mut bluegreen = EcsBlueGreen::new(store.clone());
        bluegreen.poll = poll;
        Release {
            bluegreen,
            health: HealthGate::new(store.clone()),
            http: HttpCheck::new(store.clone()),
            store,
            poll,
        }
    }
}

super::real_time_step!(Release);

/// A service of the product, as this release rolls it.
#[derive(Debug, Clone)]
struct Service {
    name: String,
    /// The ECS service's name.
    service: String,
    container: Option<String>,
    /// The image to roll (images mode).
    image: Option<String>,
    /// The task definition to roll (task-definitions mode).
    task_definition: Option<String>,
}

/// A service's release before it starts: what ECS says it is now.
#[derive(Debug, Clone)]
struct Before {
    controller: String,
    task_definition: String,
    image: Option<String>,
    /// It shifts traffic between target groups (has advancedConfiguration).
    shifts: bool,
}

impl Before {
    fn json(&self) -> Value {
        json!({"controller": self.controller, "task_definition": self.task_definition, "image": self.image})
    }

    fn from_json(v: &Value) -> Option<Before> {
        Some(Before {
            controller: v.get("controller")?.as_str()?.to_string(),
            task_definition: v.get("task_definition")?.as_str()?.to_string(),
            image: v.get("image").and_then(Value::as_str).map(str::to_string),
            shifts: v.get("shifts").and_then(Value::as_bool).unwrap_or(true),
        })
    }
}

/// How one service's part of the release ended.
#[derive(Debug, Clone)]
struct Outcome {
    /// `deployed`, `unchanged`, `rolled-back` (by ECS or piflow's gates),
    /// `failed`, `not-started`, then after a release rollback
    /// `returned` (moved back to before).
    outcome: String,
    after: Option<Value>,
    deployment: Option<String>,
    reason: Option<String>,
}

struct Plan {
    env: String,
    cluster: String,
    version: String,
    services: Vec<Service>,
    waves: Vec<Vec<usize>>,
    rollout: Rollout,
    health_services: Vec<String>,
    smoke_urls: Vec<String>,
    fail_open: bool,
    reason: Value,
    force: bool,
}

fn text(v: &Value) -> Option<String> {
    v.as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Fill `{service}` and `{version}` in an image template.
pub fn image_for(template: &str, service: &str, version: &str) -> String {
    template
        .replace("{service}", service)
        .replace("{version}", version)
}

fn parse_rollout(v: &Value, problems: &mut Vec<String>) -> Rollout {
    let mut r = Rollout {
        strategy: Strategy::BlueGreen,
        percent: 10.0,
        step_minutes: 5,
        bake_minutes: 5,
        alarms: Vec::new(),
        timeout: Duration::from_secs(3600),
    };
    if v.is_null() {
        return r;
    }
    if !v.is_object() {
        problems.push(format!("rollout must be an object, not {v}"));
        return r;
    }
    match v.get("strategy") {
        None | Some(Value::Null) => {}
        Some(s) => match s.as_str().and_then(Strategy::parse) {
            Some(k) => r.strategy = k,
            None => problems.push(format!(
                "rollout.strategy must be blue-green, canary, linear or rolling, not {s}"
            )),
        },
    }
    let mut minutes = |key: &str, seconds_key: &str, slot: &mut i32| {
        match (v.get(key), v.get(seconds_key)) {
            (Some(m), _) if !m.is_null() => match m.as_u64() {
                Some(n) if n <= 1440 => *slot = n as i32,
                _ => problems.push(format!(
                    "rollout.{key} must be a whole number of minutes from 0 to 1440, not {m}"
                )),
            },
            // The task-set step's seconds, rounded up to ECS's minutes.
            (_, Some(s)) if !s.is_null() => match s.as_u64() {
                Some(n) if n <= 86_400 => *slot = n.div_ceil(60) as i32,
                _ => problems.push(format!(
                    "rollout.{seconds_key} must be a whole number of seconds from 0 to 86400, not {s}"
                )),
            },
            _ => {}
        }
    };
    minutes("step_minutes", "interval_seconds", &mut r.step_minutes);
    minutes("bake_minutes", "bake_seconds", &mut r.bake_minutes);
    match v.get("percent") {
        None | Some(Value::Null) => {}
        Some(p) => match p.as_f64() {
            Some(n) if n > 0.0 && n < 100.0 => r.percent = n,
            _ => problems.push(format!(
                "rollout.percent must be a number above 0 and below 100, not {p}"
            )),
        },
    }
    match v.get("timeout_minutes") {
        None | Some(Value::Null) => {}
        Some(t) => match t.as_u64() {
            Some(n) if (1..=1440).contains(&n) => r.timeout = Duration::from_secs(n * 60),
            _ => problems.push(format!(
                "rollout.timeout_minutes must be a whole number from 1 to 1440, not {t}"
            )),
        },
    }
    match v.get("alarms") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for a in list {
                match text(a) {
                    Some(n) if !r.alarms.contains(&n) => r.alarms.push(n),
                    Some(_) => {}
                    None => problems.push(format!(
                        "rollout.alarms must list CloudWatch alarm names, not {a}"
                    )),
                }
            }
            if r.alarms.len() > 10 {
                problems.push(format!(
                    "rollout.alarms names {} alarms; an ECS deployment watches at most 10 (combine more in a composite alarm)",
                    r.alarms.len()
                ));
            }
        }
        Some(a) => problems.push(format!(
            "rollout.alarms must be a list of CloudWatch alarm names, not {a}"
        )),
    }
    r
}

fn strings(v: Option<&Value>, what: &str, problems: &mut Vec<String>) -> Vec<String> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(|x| {
                let t = text(x);
                if t.is_none() {
                    problems.push(format!("{what} must list non-empty strings, not {x}"));
                }
                t
            })
            .collect(),
        Some(other) => {
            problems.push(format!("{what} must be a list of strings, not {other}"));
            Vec::new()
        }
    }
}

/// The input as a plan; every problem at once.
fn parse(request: &TaskRequest) -> Result<Plan, Vec<String>> {
    let input = &request.input;
    let mut problems = Vec::new();
    let env = input.get("environment").and_then(text);
    if env.is_none() {
        problems.push("\"environment\" (the audit chain) is missing".to_string());
    }
    let cluster = input.get("cluster").and_then(text);
    if cluster.is_none() {
        problems.push("\"cluster\" (the ECS cluster) is missing".to_string());
    }
    // `version`, `images` and `task_definitions` at the top, or in
    // `release` (the workflows pass the input's `release` whole).
    let release = input.get("release").filter(|r| r.is_object());
    let field = |k: &str| {
        input
            .get(k)
            .filter(|v| !v.is_null())
            .or_else(|| release.and_then(|r| r.get(k)).filter(|v| !v.is_null()))
    };
    let version = field("version").and_then(text);
    // `[{service, task_definition}]` (what piflow:repoint answers, by ECS
    // service name) is read as the object form.
    let by_service: Option<Value> = match field("task_definitions") {
        Some(Value::Array(items)) => {
            let mut m = Map::new();
            for (i, it) in items.iter().enumerate() {
                match (
                    it.get("service").and_then(text),
                    it.get("task_definition").and_then(text),
                ) {
                    (Some(svc), Some(td)) => {
                        m.insert(svc, json!(td));
                    }
                    _ => problems.push(format!(
                        "task_definitions[{i}] must be {{service, task_definition}}, not {it}"
                    )),
                }
            }
            Some(Value::Object(m))
        }
        _ => None,
    };
    let listed_by_service = by_service.is_some();
    let task_definitions = by_service.as_ref().or_else(|| field("task_definitions"));
    if version.is_none() {
        problems.push("\"version\" (the product version to release) is missing".to_string());
    }
    let version = version.unwrap_or_default();
    let product = input.get("product").cloned().unwrap_or(Value::Null);
    if !product.is_object() {
        problems.push(
            "\"product\" (its services and waves, from piflow.yaml's product:) is missing"
                .to_string(),
        );
    }
    let default_image = product.get("image").and_then(text);
    let default_container = product.get("container").and_then(text);
    let images = field("images").cloned().unwrap_or(Value::Null);
    if !images.is_null() && !images.is_object() {
        problems.push(format!(
            "images must be an object NAME: IMAGE, not {images}"
        ));
    }
    if let Some(Value::Object(m)) = task_definitions
        && m.is_empty()
    {
        problems.push(
            "task_definitions names no service: the release rolled to records no task definition"
                .to_string(),
        );
    }
    if let Some(t) = task_definitions
        && !t.is_object()
    {
        problems.push(format!(
            "task_definitions must be an object NAME: ARN, not {t}"
        ));
    }
    let mut services: Vec<Service> = Vec::new();
    match product.get("services") {
        Some(Value::Array(list)) if !list.is_empty() => {
            for (i, s) in list.iter().enumerate() {
                let (name, obj) = match s {
                    Value::String(_) => (text(s), Map::new()),
                    Value::Object(o) => (o.get("name").and_then(text), o.clone()),
                    _ => (None, Map::new()),
                };
                let Some(name) = name else {
                    problems.push(format!(
                        "product.services[{i}] must be a name or {{name, service, image, container}}, not {s}"
                    ));
                    continue;
                };
                if services.iter().any(|x| x.name == name) {
                    problems.push(format!("product.services names {name} twice"));
                    continue;
                }
                let template = obj
                    .get("image")
                    .and_then(text)
                    .or_else(|| default_image.clone());
                let image = images
                    .get(&name)
                    .and_then(text)
                    .or_else(|| template.map(|t| image_for(&t, &name, &version)));
                let ecs_name = obj
                    .get("service")
                    .and_then(text)
                    .unwrap_or_else(|| name.clone());
                let task_definition = task_definitions
                    .and_then(|t| t.get(if listed_by_service { &ecs_name } else { &name }))
                    .and_then(text);
                if task_definitions.is_none() && image.is_none() {
                    problems.push(format!(
                        "service {name}: no image for version {version}: give product.image or product.services[{i}].image (a template such as registry.example/product/{{service}}:{{version}}) or images.{name}"
                    ));
                }
                services.push(Service {
                    service: obj
                        .get("service")
                        .and_then(text)
                        .unwrap_or_else(|| name.clone()),
                    container: obj
                        .get("container")
                        .and_then(text)
                        .or_else(|| default_container.clone()),
                    name,
                    image,
                    task_definition,
                });
            }
        }
        _ if product.is_object() => {
            problems.push("product.services must list at least one service".to_string())
        }
        _ => {}
    }
    for (field, map) in [
        ("images", Some(&images)),
        ("task_definitions", task_definitions),
    ] {
        if let Some(Value::Object(m)) = map {
            for k in m.keys() {
                let known = if field == "task_definitions" && listed_by_service {
                    services.iter().any(|s| &s.service == k)
                } else {
                    services.iter().any(|s| &s.name == k)
                };
                if !known {
                    problems.push(format!(
                        "{field}.{k}: the product has no service {k} (its services: {})",
                        services
                            .iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
        }
    }
    let waves = match product.get("waves") {
        None | Some(Value::Null) => vec![(0..services.len()).collect()],
        Some(Value::Array(ws)) => {
            let mut seen: HashMap<String, usize> = HashMap::new();
            let mut waves = Vec::new();
            for (wi, w) in ws.iter().enumerate() {
                let Some(list) = w.as_array().filter(|l| !l.is_empty()) else {
                    problems.push(format!(
                        "product.waves[{wi}] must be a non-empty list of service names, not {w}"
                    ));
                    continue;
                };
                let mut wave = Vec::new();
                for n in list {
                    let Some(name) = text(n) else {
                        problems.push(format!(
                            "product.waves[{wi}] must list service names, not {n}"
                        ));
                        continue;
                    };
                    if let Some(prev) = seen.insert(name.clone(), wi) {
                        problems.push(format!(
                            "product.waves[{wi}] names service {name}, already in wave {prev}: a service rolls once per release"
                        ));
                        continue;
                    }
                    match services.iter().position(|s| s.name == name) {
                        Some(i) => wave.push(i),
                        None => problems.push(format!(
                            "product.waves[{wi}] names {name}, which is not a service of the product (its services: {})",
                            services
                                .iter()
                                .map(|s| s.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                    }
                }
                waves.push(wave);
            }
            for s in &services {
                if !seen.contains_key(&s.name) {
                    problems.push(format!(
                        "service {} is in no wave of product.waves: add it to one",
                        s.name
                    ));
                }
            }
            waves
        }
        Some(w) => {
            problems.push(format!(
                "product.waves must be a list of lists of service names, not {w}"
            ));
            Vec::new()
        }
    };
    let rollout = parse_rollout(input.get("rollout").unwrap_or(&Value::Null), &mut problems);
    let gates = input.get("gates").cloned().unwrap_or(Value::Null);
    let health_services = strings(
        gates.get("health_services"),
        "gates.health_services",
        &mut problems,
    );
    let smoke_urls = strings(gates.get("smoke_urls"), "gates.smoke_urls", &mut problems);
    for u in &smoke_urls {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            problems.push(format!("gates.smoke_urls: {u:?} is not an http(s) URL"));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Plan {
        env: env.unwrap_or_default(),
        cluster: cluster.unwrap_or_default(),
        version,
        services,
        waves,
        rollout,
        health_services,
        smoke_urls,
        fail_open: gates
            .get("fail_open")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        reason: input.get("reason").cloned().unwrap_or(Value::Null),
        force: input.get("force").and_then(Value::as_bool).unwrap_or(false),
    })
}

/// One invocation.
struct Run {
    step: Release,
    request: TaskRequest,
    plan: Plan,
    ecs: aws_sdk_ecs::Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    /// This token's records, read once when the invocation began.
    records: Vec<AuditRecord>,
}

impl Release {
    async fn run(self, request: TaskRequest) -> Result<Value, Failure> {
        let plan = match parse(&request) {
            Ok(p) => p,
            Err(problems) => {
                let cause = format!(
                    "state {}: the release was refused before any change: {}",
                    request.state_name,
                    problems.join("; ")
                );
                if let Some(env) = request.input.get("environment").and_then(text) {
                    aws_step::audit(
                        &self.store,
                        &request,
                        STEP,
                        &env,
                        "release.refused",
                        "release",
                        Value::Null,
                        json!({"problems": problems, "version": request.input.get("version")}),
                        "refused",
                    )
                    .await?;
                }
                return Err(fail("InvalidInput", cause));
            }
        };
        let sdk = aws_step::sdk_config(&request, STEP).await?;
        let store = self
            .store
            .get()
            .await
            .map_err(|e| fail("StoreFailed", e.to_string()))?;
        let prefix = format!("{}", request.idempotency_token);
        let records: Vec<AuditRecord> = store
            .records(&plan.env, None)
            .await
            .map_err(|e| fail("StoreFailed", e.to_string()))?
            .into_iter()
            .filter(|r| {
                r.entry
                    .token
                    .as_deref()
                    .is_some_and(|t| t.starts_with(&prefix))
            })
            .collect();
        let run = Run {
            ecs: aws_sdk_ecs::Client::new(&sdk),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(&sdk),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&sdk),
            step: self,
            request,
            plan,
            records,
        };
        run.release().await
    }
}

/// A failure's text.
fn cause_of(f: &Failure) -> String {
    match &f.cause {
        Some(c) => format!("{}: {c}", f.error_name()),
        None => f.error_name().to_string(),
    }
}

impl Run {
    fn token(&self) -> &str {
        &self.request.idempotency_token
    }

    fn recorded(&self, action: &str) -> Option<&AuditRecord> {
        let t = format!("{}#{action}", self.token());
        self.records
            .iter()
            .rev()
            .find(|r| r.entry.token.as_deref() == Some(t.as_str()))
    }

    async fn audit(
        &self,
        action: &str,
        before: Value,
        after: Value,
        result: &str,
    ) -> Result<AuditRecord, Failure> {
        let store = self
            .step
            .store
            .get()
            .await
            .map_err(|e| fail("StoreFailed", e.to_string()))?;
        store
            .append_entry(AuditEntry {
                env: self.plan.env.clone(),
                actor: self.request.execution.clone(),
                action: action.to_string(),
                target: format!("{}/product@{}", self.plan.cluster, self.plan.version),
                before,
                after,
                result: result.to_string(),
                execution: Some(self.request.execution.clone()),
                at: chrono::Utc::now(),
                token: Some(format!("{}#{action}", self.token())),
            })
            .await
            .map_err(|e| fail("StoreFailed", e.to_string()))
    }

    fn native<'s>(&'s self, s: &'s Service, suffix: &str) -> Native<'s> {
        Native {
            store: &self.step.store,
            request: &self.request,
            env: &self.plan.env,
            ecs: &self.ecs,
            cluster: &self.plan.cluster,
            service: &s.service,
            token: format!("{}/{}{suffix}", self.token(), s.name),
            records: &self.records,
            poll: self.step.poll,
            force: self.plan.force,
        }
    }

    async fn release(self) -> Result<Value, Failure> {
        // Ended already (a re-invocation after the record was written).
        if let Some(r) = self.recorded("release.recorded") {
            return match r.entry.result.as_str() {
                "released" => Ok(r.entry.after.clone()),
                _ => Err(self.ended_failure(&r.entry.after)),
            };
        }
        let befores: Vec<Before> = match self.recorded("release.started") {
            Some(r) => {
                let got: Option<Vec<Before>> = self
                    .plan
                    .services
                    .iter()
                    .map(|s| r.entry.before.get(&s.name).and_then(Before::from_json))
                    .collect();
                got.ok_or_else(|| {
                    fail(
                        "StoreFailed",
                        "the release.started record of this token does not name every service's release before it: the product changed under a running release",
                    )
                })?
            }
            None => {
                let befores = self.preflight().await?;
                let before: Map<String, Value> = self
                    .plan
                    .services
                    .iter()
                    .zip(&befores)
                    .map(|(s, b)| {
                        let mut v = b.json();
                        v["service"] = json!(s.service);
                        v["shifts"] = json!(b.shifts);
                        (s.name.clone(), v)
                    })
                    .collect();
                self.audit(
                    "release.started",
                    Value::Object(before),
                    json!({
                        "version": self.plan.version,
                        "waves": self.wave_names(),
                        "rollout": self.plan.rollout.json(),
                        "reason": self.plan.reason,
                    }),
                    "started",
                )
                .await?;
                befores
            }
        };
        let mut outcomes: Vec<Outcome> = self
            .plan
            .services
            .iter()
            .map(|_| Outcome {
                outcome: "not-started".into(),
                after: None,
                deployment: None,
                reason: None,
            })
            .collect();
        let failure = match self.recorded("release.rolling-back") {
            Some(r) => {
                // A resumed rollback: what each service came to, as the
                // record of the failure says.
                for (s, o) in self.plan.services.iter().zip(outcomes.iter_mut()) {
                    if let Some(v) = r.entry.after.get("services").and_then(|m| m.get(&s.name)) {
                        o.outcome = v
                            .get("outcome")
                            .and_then(Value::as_str)
                            .unwrap_or("not-started")
                            .to_string();
                        o.after = v.get("after").filter(|a| !a.is_null()).cloned();
                        o.deployment = v
                            .get("deployment")
                            .and_then(Value::as_str)
                            .map(str::to_string);
                        o.reason = v.get("reason").and_then(Value::as_str).map(str::to_string);
                    }
                }
                Some(
                    r.entry
                        .after
                        .get("reason")
                        .and_then(Value::as_str)
                        .unwrap_or("a service failed")
                        .to_string(),
                )
            }
            None => self.forward(&befores, &mut outcomes).await,
        };
        let Some(reason) = failure else {
            return self.finish("released", &befores, &outcomes, None).await;
        };
        self.audit(
            "release.rolling-back",
            Value::Null,
            json!({"reason": reason, "services": self.outcomes_json(&befores, &outcomes)}),
            "rolling-back",
        )
        .await?;
        let problems = self.roll_back(&befores, &mut outcomes).await;
        if problems.is_empty() {
            self.finish("rolled-back", &befores, &outcomes, Some(&reason))
                .await
        } else {
            let why = format!(
                "{reason}; and the rollback left services not on their release before: {}",
                problems.join("; ")
            );
            self.finish("rollback-failed", &befores, &outcomes, Some(&why))
                .await
        }
    }

    fn wave_names(&self) -> Vec<Vec<String>> {
        self.plan
            .waves
            .iter()
            .map(|w| {
                w.iter()
                    .map(|i| self.plan.services[*i].name.clone())
                    .collect()
            })
            .collect()
    }

    fn outcomes_json(&self, befores: &[Before], outcomes: &[Outcome]) -> Value {
        let mut m = Map::new();
        for ((s, b), o) in self.plan.services.iter().zip(befores).zip(outcomes) {
            m.insert(
                s.name.clone(),
                json!({
                    "service": s.service,
                    "controller": b.controller,
                    "before": {"task_definition": b.task_definition, "image": b.image},
                    "after": o.after,
                    "outcome": o.outcome,
                    "deployment": o.deployment,
                    "reason": o.reason,
                }),
            );
        }
        Value::Object(m)
    }

    /// The release record; `Ok` for a release, else the failure.
    async fn finish(
        &self,
        result: &str,
        befores: &[Before],
        outcomes: &[Outcome],
        reason: Option<&str>,
    ) -> Result<Value, Failure> {
        let record = json!({
            "version": self.plan.version,
            "outcome": result,
            "waves": self.wave_names(),
            "services": self.outcomes_json(befores, outcomes),
            "rollout": self.plan.rollout.json(),
            "reason": reason,
            "trigger": self.plan.reason,
        });
        let r = self
            .audit("release.recorded", Value::Null, record.clone(), result)
            .await?;
        let mut out = record;
        out["record"] = json!(r.seq);
        if result == "released" {
            Ok(out)
        } else {
            Err(self.ended_failure(&out))
        }
    }

    /// `Release.RolledBack` / `Release.RollbackFailed`, each service's
    /// outcome in the cause.
    fn ended_failure(&self, record: &Value) -> Failure {
        let outcome = record.get("outcome").and_then(Value::as_str).unwrap_or("");
        let mut lines = Vec::new();
        if let Some(Value::Object(services)) = record.get("services") {
            for (name, s) in services {
                let o = s.get("outcome").and_then(Value::as_str).unwrap_or("?");
                match s.get("reason").and_then(Value::as_str) {
                    Some(r) => lines.push(format!("{name}: {o} ({r})")),
                    None => lines.push(format!("{name}: {o}")),
                }
            }
        }
        let reason = record
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or("a service failed");
        let version = &self.plan.version;
        match outcome {
            "rollback-failed" => fail(
                "RollbackFailed",
                format!(
                    "release {version} failed and its rollback did not finish: {reason}. Services: {}",
                    lines.join(", ")
                ),
            ),
            _ => fail(
                "RolledBack",
                format!(
                    "release {version} was rolled back: {reason}. Services: {}",
                    lines.join(", ")
                ),
            ),
        }
    }

    /// Before any change: every service as ECS has it, and every problem.
    async fn preflight(&self) -> Result<Vec<Before>, Failure> {
        let names: Vec<String> = self
            .plan
            .services
            .iter()
            .map(|s| s.service.clone())
            .collect();
        let found = ecs_native::describe_services(&self.ecs, &self.plan.cluster, &names).await?;
        let mut problems: Vec<String> = Vec::new();
        let mut befores = Vec::new();
        let mut target_groups: Vec<(String, String)> = Vec::new();
        let mut rules: Vec<(String, String)> = Vec::new();
        for s in &self.plan.services {
            let Some(svc) = found
                .iter()
                .find(|x| x.service_name() == Some(s.service.as_str()))
            else {
                problems.push(format!(
                    "service {}: ECS service {} is not in cluster {} (or is not ACTIVE)",
                    s.name, s.service, self.plan.cluster
                ));
                befores.push(Before {
                    controller: "?".into(),
                    task_definition: String::new(),
                    image: None,
                    shifts: false,
                });
                continue;
            };
            let controller = svc
                .deployment_controller()
                .map(|c| c.r#type().as_str().to_string())
                .unwrap_or_else(|| "ECS".into());
            let td = svc.task_definition().unwrap_or_default().to_string();
            let mut shifts = false;
            match controller.as_str() {
                "ECS" => {
                    let advanced: Vec<&ecs_t::AdvancedConfiguration> = svc
                        .load_balancers()
                        .iter()
                        .filter_map(|l| l.advanced_configuration())
                        .collect();
                    shifts = !advanced.is_empty();
                    if self.plan.rollout.strategy.shifts_traffic() && advanced.is_empty() {
                        problems.push(format!(
                            "service {}: a {} release moves traffic between two target groups, and ECS service {} has no load balancer with an alternate target group and a production listener rule (loadBalancers[].advancedConfiguration): add them to the service (Terraform: load_balancer.advanced_configuration), or release with rollout.strategy rolling",
                            s.name,
                            self.plan.rollout.strategy.name(),
                            s.service
                        ));
                    }
                    for a in advanced {
                        if let Some(tg) = a.alternate_target_group_arn() {
                            target_groups.push((s.name.clone(), tg.to_string()));
                        }
                        if let Some(r) = a.production_listener_rule() {
                            rules.push((s.name.clone(), r.to_string()));
                        }
                        if let Some(r) = a.test_listener_rule() {
                            rules.push((s.name.clone(), r.to_string()));
                        }
                    }
                    if let Some(p) = self.deployment_in_progress(&s.service).await? {
                        problems.push(format!(
                            "service {}: deployment {p} of ECS service {} is in progress: wait for it to end (or stop it) and release again",
                            s.name, s.service
                        ));
                    }
                }
                "EXTERNAL" => {
                    if svc
                        .task_sets()
                        .iter()
                        .all(|t| t.status() != Some("PRIMARY"))
                    {
                        problems.push(format!(
                            "service {}: ECS service {} (EXTERNAL controller) has no PRIMARY task set to roll from",
                            s.name, s.service
                        ));
                    }
                }
                other => problems.push(format!(
                    "service {}: ECS service {} uses the {other} deployment controller, which piflow does not drive: it drives ECS (ECS-native blue/green, canary, linear and rolling deployments) and EXTERNAL (task sets). Move the service to the ECS controller (UpdateService deploymentController, or re-create it), or release it with CodeDeploy outside piflow",
                    s.name, s.service
                )),
            }
            // The running task definition: for EXTERNAL services the
            // primary task set's.
            let td = if controller == "EXTERNAL" {
                svc.task_sets()
                    .iter()
                    .find(|t| t.status() == Some("PRIMARY"))
                    .and_then(|t| t.task_definition())
                    .map(str::to_string)
                    .unwrap_or(td)
            } else {
                td
            };
            let image = if td.is_empty() {
                None
            } else {
                match self.container_image(&td, s.container.as_deref()).await {
                    Ok(i) => i,
                    Err(why) => {
                        problems.push(format!("service {}: {why}", s.name));
                        None
                    }
                }
            };
            if let Some(t) = &s.task_definition
                && let Err(why) = self.container_image(t, s.container.as_deref()).await
            {
                problems.push(format!("service {}: {why}", s.name));
            }
            befores.push(Before {
                controller,
                task_definition: td,
                image,
                shifts,
            });
        }
        problems.extend(self.missing_target_groups(&target_groups).await?);
        problems.extend(self.missing_rules(&rules).await?);
        if !self.plan.rollout.alarms.is_empty() {
            let found = super::alarms::read(&self.cloudwatch, &self.plan.rollout.alarms)
                .await
                .map_err(|e| {
                    fail(
                        "AwsFailed",
                        format!(
                            "reading CloudWatch alarms {}: {e}",
                            self.plan.rollout.alarms.join(", ")
                        ),
                    )
                })?;
            let missing = super::alarms::missing(&self.plan.rollout.alarms, &found);
            if !missing.is_empty() {
                problems.push(format!(
                    "rollout.alarms names CloudWatch alarm(s) {} that do not exist in the region",
                    missing.join(", ")
                ));
            }
            let firing: Vec<&super::alarms::Alarm> = found.iter().filter(|a| a.firing()).collect();
            if !firing.is_empty() {
                problems.push(format!(
                    "{} before the release began",
                    super::alarms::describe_firing(&firing)
                ));
            }
        }
        if problems.is_empty() {
            return Ok(befores);
        }
        self.audit(
            "release.refused",
            Value::Null,
            json!({"version": self.plan.version, "problems": problems}),
            "refused",
        )
        .await?;
        Err(fail(
            "InvalidInput",
            format!(
                "state {}: release {} was refused before any change: {}",
                self.request.state_name,
                self.plan.version,
                problems.join("; ")
            ),
        ))
    }

    /// A deployment of the service that is pending or in progress.
    async fn deployment_in_progress(&self, service: &str) -> Result<Option<String>, Failure> {
        let out = self
            .ecs
            .list_service_deployments()
            .cluster(&self.plan.cluster)
            .service(service)
            .status(ecs_t::ServiceDeploymentStatus::Pending)
            .status(ecs_t::ServiceDeploymentStatus::InProgress)
            .status(ecs_t::ServiceDeploymentStatus::RollbackRequested)
            .status(ecs_t::ServiceDeploymentStatus::RollbackInProgress)
            .status(ecs_t::ServiceDeploymentStatus::StopRequested)
            .send()
            .await
            .map_err(|e| aws_err(e, &format!("listing the deployments of {service}")))?;
        Ok(out
            .service_deployments()
            .first()
            .and_then(|d| d.service_deployment_arn())
            .map(str::to_string))
    }

    /// The image of the container in a task definition (`container`, else
    /// the first); `Err` when there is no such container.
    async fn container_image(
        &self,
        td: &str,
        container: Option<&str>,
    ) -> Result<Option<String>, String> {
        let out = self
            .ecs
            .describe_task_definition()
            .task_definition(td)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "task definition {td}: {}",
                    aws_err(e, td).cause.unwrap_or_default()
                )
            })?;
        let defs = out
            .task_definition()
            .map(|t| t.container_definitions())
            .unwrap_or_default();
        let def = match container {
            Some(c) => defs.iter().find(|d| d.name() == Some(c)).ok_or_else(|| {
                format!(
                    "task definition {td} has no container {c} (its containers: {})",
                    defs.iter()
                        .filter_map(|d| d.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?,
            None => defs
                .first()
                .ok_or_else(|| format!("task definition {td} has no container"))?,
        };
        Ok(def.image().map(str::to_string))
    }

    async fn missing_target_groups(
        &self,
        tgs: &[(String, String)],
    ) -> Result<Vec<String>, Failure> {
        let mut problems = Vec::new();
        for (name, tg) in tgs {
            match self
                .elb
                .describe_target_groups()
                .target_group_arns(tg)
                .send()
                .await
            {
                Ok(out) if !out.target_groups().is_empty() => {}
                Ok(_) => problems.push(format!(
                    "service {name}: alternate target group {tg} does not exist"
                )),
                Err(e) if e.code().is_some_and(|c| c.contains("NotFound")) => problems.push(
                    format!("service {name}: alternate target group {tg} does not exist"),
                ),
                Err(e) => {
                    return Err(fail(
                        "AwsFailed",
                        format!("reading target group {tg}: {}", e.code().unwrap_or("error")),
                    ));
                }
            }
        }
        Ok(problems)
    }

    async fn missing_rules(&self, rules: &[(String, String)]) -> Result<Vec<String>, Failure> {
        let mut problems = Vec::new();
        for (name, rule) in rules {
            match self.elb.describe_rules().rule_arns(rule).send().await {
                Ok(out) if !out.rules().is_empty() => {}
                Ok(_) => problems.push(format!(
                    "service {name}: listener rule {rule} does not exist"
                )),
                Err(e) if e.code().is_some_and(|c| c.contains("NotFound")) => problems.push(
                    format!("service {name}: listener rule {rule} does not exist"),
                ),
                Err(e) => {
                    return Err(fail(
                        "AwsFailed",
                        format!(
                            "reading listener rule {rule}: {}",
                            e.code().unwrap_or("error")
                        ),
                    ));
                }
            }
        }
        Ok(problems)
    }

    /// Every wave in turn; `Some(reason)` when a service failed (the
    /// other services of its wave were stopped).
    async fn forward(&self, befores: &[Before], outcomes: &mut [Outcome]) -> Option<String> {
        let gates = Gates::new(self);
        for (wi, wave) in self.plan.waves.iter().enumerate() {
            let results = futures::future::join_all(
                wave.iter()
                    .map(|i| self.forward_one(*i, &befores[*i], &gates)),
            )
            .await;
            let mut failed = Vec::new();
            for (i, o) in wave.iter().zip(results) {
                if matches!(o.outcome.as_str(), "rolled-back" | "failed") {
                    failed.push(format!(
                        "{}: {}",
                        self.plan.services[*i].name,
                        o.reason.clone().unwrap_or_else(|| o.outcome.clone())
                    ));
                }
                outcomes[*i] = o;
            }
            if !failed.is_empty() {
                return Some(format!("wave {}: {}", wi + 1, failed.join("; ")));
            }
        }
        // Every wave done: the gates once more, for the whole product.
        if let Some(why) = gates.final_check().await {
            return Some(format!("after every wave: {why}"));
        }
        None
    }

    /// One service, forward; a failure ends as an outcome (and stops the
    /// other services of the wave).
    async fn forward_one(&self, i: usize, before: &Before, gates: &Gates<'_>) -> Outcome {
        let s = &self.plan.services[i];
        if s.task_definition.is_none() && s.image.is_none() {
            // A release to recorded task definitions that do not name this
            // service (it joined the product later): it stays as it is.
            return Outcome {
                outcome: "unchanged".into(),
                after: Some(before.json()),
                deployment: None,
                reason: Some("not in the release rolled to".into()),
            };
        }
        let r = match before.controller.as_str() {
            "EXTERNAL" => self.external(s, before, false).await,
            _ => self.native_forward(s, before, gates).await,
        };
        match r {
            Ok(o) => {
                if matches!(o.outcome.as_str(), "rolled-back" | "failed") {
                    gates.abort(&s.name, o.reason.as_deref().unwrap_or(&o.outcome));
                }
                o
            }
            Err(f) => {
                let why = cause_of(&f);
                gates.abort(&s.name, &why);
                Outcome {
                    outcome: if f.error_name() == "BlueGreen.RolledBack" {
                        "rolled-back".into()
                    } else {
                        "failed".into()
                    },
                    after: None,
                    deployment: None,
                    reason: Some(why),
                }
            }
        }
    }

    async fn native_forward(
        &self,
        s: &Service,
        before: &Before,
        gates: &Gates<'_>,
    ) -> Result<Outcome, Failure> {
        let native = self.native(s, "");
        let td = match (&s.task_definition, &s.image) {
            (Some(td), _) => td.clone(),
            (None, Some(image)) => self.revision(&native, s, before, image).await?,
            (None, None) => {
                return Err(fail(
                    "InvalidInput",
                    format!("service {}: no image", s.name),
                ));
            }
        };
        let rollout = if before.shifts || !self.plan.rollout.strategy.shifts_traffic() {
            self.plan.rollout.clone()
        } else {
            // Checked before the release: only reached on a resume after
            // the service changed.
            return Err(fail(
                "InvalidInput",
                format!("service {}: no alternate target group", s.name),
            ));
        };
        let ended = native.deploy(&td, &rollout, Some(gates)).await?;
        let image = self
            .container_image(&td, s.container.as_deref())
            .await
            .ok()
            .flatten();
        let after = json!({"task_definition": td, "image": image});
        Ok(match ended {
            Ended::Succeeded { deployment } => Outcome {
                outcome: "deployed".into(),
                after: Some(after),
                deployment,
                reason: None,
            },
            Ended::Unchanged => Outcome {
                outcome: "unchanged".into(),
                after: Some(after),
                deployment: None,
                reason: None,
            },
            Ended::RolledBack { deployment, reason } => Outcome {
                outcome: "rolled-back".into(),
                after: None,
                deployment: Some(deployment),
                reason: Some(reason),
            },
        })
    }

    /// The task definition with the release's image: the family's latest
    /// revision when it already runs the image, else a new revision of the
    /// service's current one with only that image changed.
    async fn revision(
        &self,
        native: &Native<'_>,
        s: &Service,
        before: &Before,
        image: &str,
    ) -> Result<String, Failure> {
        if before.image.as_deref() == Some(image) {
            return Ok(before.task_definition.clone());
        }
        let current = &before.task_definition;
        let cur = self
            .ecs
            .describe_task_definition()
            .task_definition(current)
            .send()
            .await
            .map_err(|e| aws_err(e, &format!("task definition {current}")))?;
        let Some(td) = cur.task_definition().cloned() else {
            return Err(fail("NotFound", format!("task definition {current}")));
        };
        let container = s.container.as_deref();
        let pick = |defs: &[ecs_t::ContainerDefinition]| -> Option<usize> {
            match container {
                Some(c) => defs.iter().position(|d| d.name() == Some(c)),
                None => (!defs.is_empty()).then_some(0),
            }
        };
        let family = td.family().unwrap_or_default().to_string();
        let latest = self
            .ecs
            .describe_task_definition()
            .task_definition(&family)
            .send()
            .await
            .map_err(|e| aws_err(e, &format!("task definition family {family}")))?;
        if let Some(l) = latest.task_definition()
            && let Some(i) = pick(l.container_definitions())
            && l.container_definitions()[i].image() == Some(image)
            && let Some(arn) = l.task_definition_arn()
        {
            return Ok(arn.to_string());
        }
        let Some(idx) = pick(td.container_definitions()) else {
            return Err(fail(
                "NotFound",
                format!(
                    "task definition {current} has no container {}",
                    container.unwrap_or("(none at all)")
                ),
            ));
        };
        let mut defs = td.container_definitions().to_vec();
        defs[idx].image = Some(image.to_string());
        let before_v = json!({"task_definition": current, "image": before.image});
        native
            .audit(
                "deploy.register-task-definition",
                "begin",
                before_v.clone(),
                json!({"family": family, "image": image}),
                "registering",
            )
            .await?;
        let out = self
            .ecs
            .register_task_definition()
            .family(&family)
            .set_container_definitions(Some(defs))
            .set_network_mode(td.network_mode.clone())
            .set_requires_compatibilities(td.requires_compatibilities.clone())
            .set_cpu(td.cpu.clone())
            .set_memory(td.memory.clone())
            .set_task_role_arn(td.task_role_arn.clone())
            .set_execution_role_arn(td.execution_role_arn.clone())
            .set_volumes(td.volumes.clone())
            .set_placement_constraints(td.placement_constraints.clone())
            .set_pid_mode(td.pid_mode.clone())
            .set_ipc_mode(td.ipc_mode.clone())
            .set_proxy_configuration(td.proxy_configuration.clone())
            .set_ephemeral_storage(td.ephemeral_storage.clone())
            .set_runtime_platform(td.runtime_platform.clone())
            .tags(
                ecs_t::Tag::builder()
                    .key("piflow:token")
                    .value(native.token.clone())
                    .build(),
            )
            .send()
            .await
            .map_err(|e| aws_err(e, &format!("registering a revision of {family}")))?;
        let arn = out
            .task_definition()
            .and_then(|t| t.task_definition_arn())
            .unwrap_or_default()
            .to_string();
        native
            .audit(
                "deploy.register-task-definition",
                "done",
                before_v,
                json!({"task_definition": arn, "image": image}),
                "registered",
            )
            .await?;
        Ok(arn)
    }

    /// An `EXTERNAL` service through the task-set step: forward to the
    /// release's image or task definition, or (`back`) to its release
    /// before.
    async fn external(&self, s: &Service, before: &Before, back: bool) -> Result<Outcome, Failure> {
        let r = &self.plan.rollout;
        let mut input = json!({
            "region": self.request.input.get("region"),
            "role_arn": self.request.input.get("role_arn"),
            "environment": self.plan.env,
            "cluster": self.plan.cluster,
            "service": s.service,
            "container": s.container,
        });
        if back {
            input["task_definition"] = json!(before.task_definition);
            input["strategy"] = json!({"strategy": "all-at-once", "bake_seconds": 0});
        } else {
            match (&s.task_definition, &s.image) {
                (Some(td), _) => input["task_definition"] = json!(td),
                (None, image) => input["image"] = json!(image),
            }
            let kind = match r.strategy {
                Strategy::Canary => "canary",
                Strategy::Linear => "linear",
                Strategy::BlueGreen | Strategy::Rolling => "all-at-once",
            };
            // The task-set step takes seconds: the rollout's own seconds
            // when it gave them, else its minutes.
            let secs = |k: &str, minutes: i32| {
                self.request
                    .input
                    .pointer(&format!("/rollout/{k}"))
                    .and_then(Value::as_u64)
                    .unwrap_or(minutes as u64 * 60)
            };
            input["strategy"] = json!({
                "strategy": kind,
                "percent": r.percent.round().clamp(1.0, 100.0) as u64,
                "interval_seconds": secs("interval_seconds", r.step_minutes),
                "bake_seconds": secs("bake_seconds", r.bake_minutes),
                "alarms": r.alarms,
            });
        }
        if let Value::Object(m) = &mut input {
            m.retain(|_, v| !v.is_null());
        }
        let mut request = self.request.clone();
        request.input = input;
        request.idempotency_token = format!(
            "{}/{}{}",
            self.token(),
            s.name,
            if back { ".back" } else { "" }
        );
        let out = self.step.bluegreen.invoke(request).await?;
        let td = out
            .get("task_definition")
            .and_then(Value::as_str)
            .unwrap_or(&before.task_definition)
            .to_string();
        let image = self
            .container_image(&td, s.container.as_deref())
            .await
            .ok()
            .flatten();
        Ok(Outcome {
            outcome: if back { "returned" } else { "deployed" }.into(),
            after: Some(json!({"task_definition": td, "image": image})),
            deployment: out
                .get("task_set")
                .and_then(Value::as_str)
                .map(str::to_string),
            reason: None,
        })
    }

    /// Every service back on its release before, the waves in reverse
    /// order; the problems of those that could not be.
    async fn roll_back(&self, befores: &[Before], outcomes: &mut [Outcome]) -> Vec<String> {
        let mut problems = Vec::new();
        for wave in self.plan.waves.iter().rev() {
            let results = futures::future::join_all(
                wave.iter()
                    .map(|i| self.back_one(&self.plan.services[*i], &befores[*i], &outcomes[*i])),
            )
            .await;
            for (i, r) in wave.iter().zip(results) {
                match r {
                    Ok(Some(o)) => outcomes[*i] = o,
                    Ok(None) => {}
                    Err(f) => {
                        let why = cause_of(&f);
                        problems.push(format!("{}: {why}", self.plan.services[*i].name));
                        outcomes[*i].outcome = "rollback-failed".into();
                        outcomes[*i].reason = Some(why);
                    }
                }
            }
        }
        problems
    }

    /// One service back on its release before; `None` when it never left.
    async fn back_one(
        &self,
        s: &Service,
        before: &Before,
        now: &Outcome,
    ) -> Result<Option<Outcome>, Failure> {
        if before.controller == "EXTERNAL" {
            let svc = self.native(s, "").describe().await?;
            let primary = svc
                .task_sets()
                .iter()
                .find(|t| t.status() == Some("PRIMARY"))
                .and_then(|t| t.task_definition())
                .unwrap_or_default()
                .to_string();
            // Settle first (all traffic to the primary task set, any other
            // deleted): what a roll cut short, or refused on a split
            // listener, may have left.
            if svc.task_sets().len() > 1 || now.outcome == "failed" {
                let mut request = self.request.clone();
                request.input = json!({
                    "region": self.request.input.get("region"),
                    "environment": self.plan.env,
                    "cluster": self.plan.cluster,
                    "service": s.service,
                    "rollback": true,
                });
                if let Value::Object(m) = &mut request.input {
                    m.retain(|_, v| !v.is_null());
                }
                request.idempotency_token = format!("{}/{}", self.token(), s.name);
                self.step.bluegreen.invoke(request).await?;
            }
            if primary == before.task_definition && !self.plan.force {
                return Ok(None);
            }
            let mut o = self.external(s, before, true).await?;
            o.reason = now.reason.clone();
            return Ok(Some(o));
        }
        let forward = self.native(s, "");
        // A deployment of this release still running: stop it first.
        if let Some(arn) = forward
            .records
            .iter()
            .rev()
            .find(|r| {
                r.entry.token.as_deref()
                    == Some(&format!("{}#deploy.update-service#done", forward.token))
            })
            .and_then(|r| r.entry.after.get("deployment"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| now.deployment.clone())
        {
            let d = forward.describe_deployment(&arn).await?;
            if matches!(
                d.status(),
                Some(
                    ecs_t::ServiceDeploymentStatus::Pending
                        | ecs_t::ServiceDeploymentStatus::InProgress
                )
            ) {
                forward
                    .stop(
                        &arn,
                        d.lifecycle_stage().map(|s| s.as_str()).unwrap_or(""),
                        "the release is rolling back",
                    )
                    .await?;
            }
            // Wait for it to end (ECS rolls it back).
            loop {
                let d = forward.describe_deployment(&arn).await?;
                use ecs_t::ServiceDeploymentStatus as S;
                match d.status() {
                    Some(
                        S::Successful | S::RollbackSuccessful | S::Stopped | S::RollbackFailed,
                    ) => break,
                    _ => tokio::time::sleep(self.step.poll).await,
                }
            }
        }
        let svc = forward.describe().await?;
        if svc.task_definition() == Some(before.task_definition.as_str()) {
            if now.outcome == "deployed" {
                // Moved and found back already (a resumed rollback).
                return Ok(Some(Outcome {
                    outcome: "returned".into(),
                    after: Some(before.json()),
                    deployment: now.deployment.clone(),
                    reason: now.reason.clone(),
                }));
            }
            return Ok(None);
        }
        let back = self.native(s, ".back");
        let rollout = self.plan.rollout.for_rollback(before.shifts);
        match back.deploy(&before.task_definition, &rollout, None).await? {
            Ended::Succeeded { deployment } => Ok(Some(Outcome {
                outcome: "returned".into(),
                after: Some(before.json()),
                deployment,
                reason: now.reason.clone(),
            })),
            Ended::Unchanged => Ok(None),
            Ended::RolledBack { deployment, reason } => Err(fail(
                "RollbackFailed",
                format!(
                    "ECS service {}: the deployment back to {} ({deployment}) was itself rolled back: {reason}",
                    s.service, before.task_definition
                ),
            )),
        }
    }
}

/// The gates a release runs while its deployments run.
struct Gates<'a> {
    run: &'a Run,
    /// Set when a service failed: the others stop.
    aborted: AtomicBool,
    abort_reason: Mutex<Option<String>>,
    /// Services whose smoke URLs passed with production traffic on the new
    /// revision.
    smoked: Mutex<HashSet<String>>,
    /// Health and alarms are read at most once per poll interval for the
    /// whole release (not once per service).
    last: tokio::sync::Mutex<Option<(std::time::Instant, Option<String>)>>,
}

impl<'a> Gates<'a> {
    fn new(run: &'a Run) -> Self {
        Gates {
            run,
            aborted: AtomicBool::new(false),
            abort_reason: Mutex::new(None),
            smoked: Mutex::new(HashSet::new()),
            last: tokio::sync::Mutex::new(None),
        }
    }

    fn abort(&self, service: &str, why: &str) {
        if let Ok(mut r) = self.abort_reason.lock()
            && r.is_none()
        {
            *r = Some(format!("service {service} failed ({why})"));
        }
        self.aborted.store(true, Ordering::SeqCst);
    }

    /// AWS Health and the alarms, shared by every service for one poll.
    async fn environment_check(&self) -> Option<String> {
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = last.as_ref()
            && at.elapsed() < self.run.step.poll
        {
            return answer.clone();
        }
        let answer = self.health_and_alarms().await;
        *last = Some((std::time::Instant::now(), answer.clone()));
        answer
    }

    async fn health_and_alarms(&self) -> Option<String> {
        let plan = &self.run.plan;
        if !plan.health_services.is_empty() {
            let mut request = self.run.request.clone();
            request.input = json!({
                "region": self.run.request.input.get("region"),
                "services": plan.health_services,
                "policy": {"fail_open": plan.fail_open},
            });
            if let Value::Object(m) = &mut request.input {
                m.retain(|_, v| !v.is_null());
            }
            request.idempotency_token = format!("{}#gate", self.run.token());
            match self.run.step.health.invoke(request).await {
                Ok(_) => {}
                Err(f) if f.error_name() == "HealthGate.Closed" => {
                    return Some(cause_of(&f));
                }
                Err(f) => {
                    tracing::warn!(error = %cause_of(&f), "AWS Health could not be read during the release; the deployments go on");
                }
            }
        }
        if !plan.rollout.alarms.is_empty() {
            match super::alarms::read(&self.run.cloudwatch, &plan.rollout.alarms).await {
                Ok(found) => {
                    let firing: Vec<&super::alarms::Alarm> =
                        found.iter().filter(|a| a.firing()).collect();
                    if !firing.is_empty() {
                        return Some(super::alarms::describe_firing(&firing));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "CloudWatch alarms could not be read during the release");
                }
            }
        }
        None
    }

    /// The smoke URLs (`key`: which check this is, for its audit record).
    async fn smoke(&self, attempts: u32, key: &str) -> Option<String> {
        let plan = &self.run.plan;
        if plan.smoke_urls.is_empty() {
            return None;
        }
        let mut request = self.run.request.clone();
        request.input = json!({
            "environment": plan.env,
            "urls": plan.smoke_urls,
            "attempts": attempts,
            "interval_seconds": 1,
        });
        request.idempotency_token = format!("{}#smoke/{key}", self.run.token());
        match self.run.step.http.invoke(request).await {
            Ok(_) => None,
            Err(f) => Some(format!("smoke check failed: {}", cause_of(&f))),
        }
    }

    /// After every wave.
    async fn final_check(&self) -> Option<String> {
        if let Some(why) = self.health_and_alarms().await {
            return Some(why);
        }
        self.smoke(5, "release").await
    }
}

impl Watch for Gates<'_> {
    fn check<'b>(&'b self, service: &'b str, stage: &'b str) -> BoxFuture<'b, Option<String>> {
        Box::pin(async move {
            if self.aborted.load(Ordering::SeqCst) {
                return Some(
                    self.abort_reason
                        .lock()
                        .ok()
                        .and_then(|r| r.clone())
                        .unwrap_or_else(|| "another service of the release failed".into()),
                );
            }
            if let Some(why) = self.environment_check().await {
                return Some(why);
            }
            // Smoke URLs once per service, when its new revision has
            // production traffic.
            if matches!(stage, "POST_PRODUCTION_TRAFFIC_SHIFT" | "BAKE_TIME") {
                let first = self
                    .smoked
                    .lock()
                    .map(|mut s| s.insert(service.to_string()))
                    .unwrap_or(false);
                if first && let Some(why) = self.smoke(3, service).await {
                    return Some(why);
                }
            }
            None
        })
    }
}
