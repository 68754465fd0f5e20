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

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::AuditHandle;
use super::aws_step;
use super::bluegreen::EcsBlueGreen;
use super::ecs_native::{Native, STEP, fail};
use super::health::HealthGate;
use super::http_check::HttpCheck;
use piflow_engine::{AuditRecord, Failure, TaskRequest};

mod drive;
mod gates;
mod input;
mod preflight;

pub use input::image_for;
use input::{Plan, parse, text};

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
    pub(super) name: String,
    /// The ECS service's name.
    pub(super) service: String,
    pub(super) container: Option<String>,
    /// The image to roll (images mode).
    pub(super) image: Option<String>,
    /// The task definition to roll (task-definitions mode).
    pub(super) task_definition: Option<String>,
}

/// A service's release before it starts: what ECS says it is now.
#[derive(Debug, Clone)]
struct Before {
    pub(super) controller: String,
    pub(super) task_definition: String,
    pub(super) image: Option<String>,
    /// It shifts traffic between target groups (has advancedConfiguration).
    pub(super) shifts: bool,
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
    pub(super) outcome: String,
    pub(super) after: Option<Value>,
    pub(super) deployment: Option<String>,
    pub(super) reason: Option<String>,
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
        let records = token_records(&self.store, &plan.env, &request.idempotency_token).await?;
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

/// This token's records in the environment's chain: `T#ACTION` (the
/// release's) and `T/NAME…` (its services'), not another token that merely
/// starts with T.
async fn token_records(
    store: &AuditHandle,
    env: &str,
    token: &str,
) -> Result<Vec<AuditRecord>, Failure> {
    let store = store
        .get()
        .await
        .map_err(|e| fail("StoreFailed", e.to_string()))?;
    let ours = |t: &str| {
        t.strip_prefix(token)
            .is_some_and(|rest| rest.starts_with('#') || rest.starts_with('/'))
    };
    Ok(store
        .records(env, None)
        .await
        .map_err(|e| fail("StoreFailed", e.to_string()))?
        .into_iter()
        .filter(|r| r.entry.token.as_deref().is_some_and(ours))
        .collect())
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
        let target = format!("{}/product@{}", self.plan.cluster, self.plan.version);
        aws_step::record(
            &self.step.store,
            &self.request,
            STEP,
            aws_step::Change {
                env: &self.plan.env,
                action,
                target: &target,
                before,
                after,
                result,
                token: format!("{}#{action}", self.token()),
            },
        )
        .await
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

    async fn release(mut self) -> Result<Value, Failure> {
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
        // What the drivers recorded since this invocation began (the
        // deployments they started): the rollback stops and follows them.
        self.records = token_records(
            &self.step.store,
            &self.plan.env,
            &self.request.idempotency_token,
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
}
