//! `piflow:ecs-blue-green`: roll an ECS service (deployment controller
//! `EXTERNAL`, i.e. task sets) to a new image behind an ALB listener whose
//! default action is a weighted forward to two target groups.
//!
//! Input: `region`, `role_arn?`, `cluster`, `service`, `image` (new
//! container image) or `task_definition` (ARN), `container?` (default: the
//! first container), `strategy?` (`{strategy: all-at-once | linear | canary,
//! percent, interval_seconds, bake_seconds, alarms}`), `listener_arn?`
//! (else found from the primary task set's target group),
//! `health_timeout_seconds?` (default 600), `rollback?`, `environment`
//! (required).
//!
//! `strategy.alarms` names CloudWatch metric or composite alarms (in the
//! step's region). Before any change they are read: a missing one is
//! `BlueGreen.InvalidInput`, one already in ALARM is `BlueGreen.AlarmFiring`
//! (nothing created). They are read again with green's target health right
//! after every weight shift and throughout every bake/interval; an alarm in
//! ALARM rolls back like an unhealthy green. INSUFFICIENT_DATA does not.
//!
//! Forward: register a task definition revision with the new image (the
//! latest revision of the family is reused when its container already runs
//! that image), create the green task set (`externalId` derived from the
//! idempotency token) on the idle target group, wait for healthy targets,
//! shift the listener's weights by strategy while watching green's health
//! (and the alarms), then make green primary and delete blue. Any failure
//! after green exists shifts traffic back to blue, deletes green and fails
//! `BlueGreen.RolledBack`.
//!
//! The output's `previous` is blue's release (`task_definition`, `image` of
//! the rolled container, `task_set`): a second forward run with
//! `task_definition: previous.task_definition` brings it back. A
//! re-invocation after success, when blue may already be deleted, reads it
//! from the audit records this token wrote (`bluegreen.done` or
//! `bluegreen.primary`).
//!
//! Re-invoked with the same token it reads the live state (task sets,
//! listener weights) and continues from there. `rollback: true` returns the
//! service to its primary task set with all traffic.
//!
//! An `image` in Amazon ECR
//! (`ACCOUNT.dkr.ecr.REGION.amazonaws.com[.cn]/REPO[:TAG|@sha256:DIGEST]`,
//! no tag = `latest`) is checked before any change with ECR
//! `DescribeImages` in the image's region (the step's credentials): a
//! missing repository or image is `BlueGreen.ImageNotFound` (nothing
//! changed); `AccessDenied` only warns. Images in other registries are not
//! checked. Not checked with `task_definition`, on `rollback: true`, nor
//! when a re-invocation finds green already created.
//!
//! Test hooks: [`EcsBlueGreen::health_endpoint`] sends only
//! `DescribeTargetHealth` to another ELBv2 endpoint (moto always reports
//! healthy targets; a test points this at a wiremock that answers
//! "unhealthy"); [`EcsBlueGreen::ecr_endpoint`] sends the image check to
//! another ECR endpoint (a wiremock that answers `AccessDeniedException`).

use std::time::Duration;

use aws_sdk_ecs::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_ecs::types as ecs_t;
use aws_sdk_elasticloadbalancingv2::types as elb_t;
use serde_json::{Value, json};

use super::AuditHandle;
use super::aws_step;
use super::ecs_native::{Revision, RevisionError, plan_revision, register_with_image};
use piflow_engine::{Failure, TaskRequest};

const STEP: &str = "BlueGreen";

/// The step and its test hooks.
#[derive(Clone)]
pub struct EcsBlueGreen {
    pub store: AuditHandle,
    /// An ELBv2 endpoint for `DescribeTargetHealth` only (tests); `None`:
    /// the standard configuration.
    pub health_endpoint: Option<String>,
    /// An ECR endpoint for the image check only (tests); `None`: the
    /// standard configuration.
    pub ecr_endpoint: Option<String>,
    /// How often target health is read while waiting or baking.
    pub poll: Duration,
}

impl EcsBlueGreen {
    pub fn new(store: AuditHandle) -> Self {
        EcsBlueGreen {
            store,
            health_endpoint: None,
            ecr_endpoint: None,
            poll: Duration::from_secs(5),
        }
    }
}

super::real_time_step!(EcsBlueGreen);

fn fail(reason: &str, cause: impl Into<String>) -> Failure {
    Failure::new(format!("{STEP}.{reason}"), cause)
}

/// An SDK error as a failure: `NotFound` for a missing resource, else
/// `AwsFailed`.
fn aws_err<E, R>(e: aws_sdk_ecs::error::SdkError<E, R>, what: &str) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = e.code().unwrap_or("").to_string();
    let text = match e.code() {
        Some(c) => format!("{c}: {}", e.message().unwrap_or("")),
        None => format!("{}", DisplayErrorContext(&e)),
    };
    if code.contains("NotFound") {
        fail(
            "NotFound",
            format!("{what}: {text} (check the name, the region and the account)"),
        )
    } else {
        fail("AwsFailed", format!("{what}: {text}"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    AllAtOnce,
    Linear,
    Canary,
}

#[derive(Debug, Clone)]
struct Strategy {
    kind: Kind,
    percent: i32,
    interval: u64,
    bake: u64,
    /// CloudWatch alarm names watched with green's health (deduplicated).
    alarms: Vec<String>,
}

/// DescribeAlarms takes at most 100 names.
const MAX_ALARMS: usize = 100;

impl Strategy {
    /// The green weights to reach, in order.
    fn steps(&self) -> Vec<i32> {
        match self.kind {
            Kind::AllAtOnce => vec![100],
            Kind::Canary => vec![self.percent, 100],
            Kind::Linear => {
                let mut v = Vec::new();
                let mut w = self.percent;
                while w < 100 {
                    v.push(w);
                    w += self.percent;
                }
                v.push(100);
                v
            }
        }
    }

    /// Seconds to watch green after reaching `weight`.
    fn wait_after(&self, weight: i32) -> u64 {
        match self.kind {
            Kind::AllAtOnce => self.bake,
            Kind::Canary if weight < 100 => self.bake,
            Kind::Linear if weight < 100 => self.interval,
            _ => 0,
        }
    }
}

fn parse_strategy(request: &TaskRequest) -> Result<Strategy, Failure> {
    let s = request
        .input
        .get("strategy")
        .cloned()
        .unwrap_or(Value::Null);
    let bad = |m: String| fail("InvalidInput", format!("state {}: {m}", request.state_name));
    let num = |k: &str, d: u64| -> Result<u64, Failure> {
        match s.get(k) {
            None | Some(Value::Null) => Ok(d),
            Some(v) => v
                .as_u64()
                .ok_or_else(|| bad(format!("strategy.{k} must be a whole number ≥ 0, not {v}"))),
        }
    };
    let mut alarms: Vec<String> = Vec::new();
    match s.get("alarms") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for a in list {
                match a.as_str().map(str::trim) {
                    Some(name) if !name.is_empty() => {
                        if !alarms.iter().any(|x| x == name) {
                            alarms.push(name.to_string());
                        }
                    }
                    _ => {
                        return Err(bad(format!(
                            "strategy.alarms must list CloudWatch alarm names (non-empty strings), not {a}"
                        )));
                    }
                }
            }
            if alarms.len() > MAX_ALARMS {
                return Err(bad(format!(
                    "strategy.alarms names {} alarms; at most {MAX_ALARMS} (use a composite alarm to combine more)",
                    alarms.len()
                )));
            }
        }
        Some(v) => {
            return Err(bad(format!(
                "strategy.alarms must be a list of CloudWatch alarm names, not {v}"
            )));
        }
    }
    let kind = match s.get("strategy").and_then(Value::as_str) {
        None if s.is_null() || s.get("strategy").is_none() => Kind::AllAtOnce,
        Some("all-at-once") => Kind::AllAtOnce,
        Some("linear") => Kind::Linear,
        Some("canary") => Kind::Canary,
        _ => {
            return Err(bad(format!(
                "strategy.strategy must be all-at-once, linear or canary, not {}",
                s.get("strategy").unwrap_or(&Value::Null)
            )));
        }
    };
    let percent = num("percent", 10)?;
    if !(1..=100).contains(&percent) {
        return Err(bad(format!(
            "strategy.percent must be between 1 and 100, not {percent}"
        )));
    }
    Ok(Strategy {
        kind,
        percent: percent as i32,
        interval: num("interval_seconds", 60)?,
        bake: num("bake_seconds", if kind == Kind::Canary { 300 } else { 0 })?,
        alarms,
    })
}

/// What the listener forwards to which target group.
#[derive(Debug, Clone)]
struct Traffic {
    listener: String,
    blue_tg: String,
    green_tg: String,
    blue: i32,
    green: i32,
}

impl Traffic {
    fn json(&self) -> Value {
        json!({"blue": self.blue, "green": self.green, "blue_target_group": self.blue_tg, "green_target_group": self.green_tg})
    }
}

/// An image in Amazon ECR, as the step's `image` names it.
#[derive(Debug, Clone, PartialEq)]
struct EcrImage {
    /// The registry: the 12-digit account id.
    account: String,
    region: String,
    repository: String,
    /// The tag (`latest` when the image names neither tag nor digest);
    /// `None` when it names a digest.
    tag: Option<String>,
    /// `sha256:…`, when the image names one (it wins over a tag).
    digest: Option<String>,
}

impl EcrImage {
    /// `tag 2.0` or `digest sha256:…`.
    fn id(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => format!("digest {d}"),
            (None, Some(t)) => format!("tag {t}"),
            (None, None) => "no tag".to_string(),
        }
    }
}

/// `Ok(None)` for an image outside Amazon ECR (or one whose host does not
/// have ECR's form); `Err` for an ECR image with an empty repository, tag
/// or digest.
fn parse_ecr_image(image: &str) -> Result<Option<EcrImage>, String> {
    let Some((host, rest)) = image.split_once('/') else {
        return Ok(None);
    };
    let host = host.to_ascii_lowercase();
    let Some(head) = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"))
    else {
        return Ok(None);
    };
    let parts: Vec<&str> = head.split('.').collect();
    let [account, "dkr", "ecr" | "ecr-fips", region] = parts.as_slice() else {
        return Ok(None);
    };
    if account.len() != 12
        || !account.chars().all(|c| c.is_ascii_digit())
        || !aws_step::valid_region(region)
    {
        return Ok(None);
    }
    let (name, digest) = match rest.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (rest, None),
    };
    let (repository, tag) = match name.split_once(':') {
        Some((r, t)) => (r, Some(t)),
        None => (name, None),
    };
    if repository.is_empty() || repository.ends_with('/') {
        return Err("it names no repository after the registry host".into());
    }
    if tag.is_some_and(str::is_empty) {
        return Err("its tag (after ':') is empty".into());
    }
    if let Some(d) = digest
        && d.split_once(':')
            .is_none_or(|(a, h)| a.is_empty() || h.is_empty())
    {
        return Err(format!(
            "its digest (after '@') must be ALGORITHM:HEX such as sha256:…, not {d:?}"
        ));
    }
    Ok(Some(EcrImage {
        account: account.to_string(),
        region: region.to_string(),
        repository: repository.to_string(),
        tag: match digest {
            Some(_) => None,
            None => Some(tag.unwrap_or("latest").to_string()),
        },
        digest: digest.map(str::to_string),
    }))
}

/// One invocation's context.
struct Run {
    step: EcsBlueGreen,
    request: TaskRequest,
    env: String,
    cluster: String,
    service: String,
    ecs: aws_sdk_ecs::Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    health: aws_sdk_elasticloadbalancingv2::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    /// The step's SDK configuration (region, credentials, role), for
    /// clients in another region (the image's ECR registry).
    sdk: aws_config::SdkConfig,
    health_timeout: Duration,
}

use super::alarms::{Alarm, describe_firing};

impl EcsBlueGreen {
    async fn run(self, request: TaskRequest) -> Result<Value, Failure> {
        let env = aws_step::environment(&request, STEP)?;
        let text = |k: &str| -> Result<String, Failure> {
            request
                .input
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .ok_or_else(|| {
                    fail(
                        "InvalidInput",
                        format!(
                            "state {}: piflow:ecs-blue-green needs \"{k}\" (a string) in its input",
                            request.state_name
                        ),
                    )
                })
        };
        let cluster = text("cluster")?;
        let service = text("service")?;
        let rollback = request
            .input
            .get("rollback")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let health_timeout = Duration::from_secs(
            request
                .input
                .get("health_timeout_seconds")
                .and_then(Value::as_u64)
                .unwrap_or(600),
        );
        let sdk = aws_step::sdk_config(&request, STEP).await?;
        let ecs = aws_sdk_ecs::Client::new(&sdk);
        let elb = aws_sdk_elasticloadbalancingv2::Client::new(&sdk);
        let health = match &self.health_endpoint {
            Some(url) => aws_sdk_elasticloadbalancingv2::Client::from_conf(
                aws_sdk_elasticloadbalancingv2::config::Builder::from(&sdk)
                    .endpoint_url(url)
                    .build(),
            ),
            None => elb.clone(),
        };
        let cloudwatch = aws_sdk_cloudwatch::Client::new(&sdk);
        let run = Run {
            step: self,
            request,
            env,
            cluster,
            service,
            ecs,
            elb,
            health,
            cloudwatch,
            sdk,
            health_timeout,
        };
        if rollback {
            run.rollback().await
        } else {
            run.forward().await
        }
    }
}

impl Run {
    fn token(&self) -> &str {
        &self.request.idempotency_token
    }

    fn external_id(&self) -> String {
        let h = piflow_engine::sha256_hex(self.token().as_bytes());
        format!("piflow-{}", &h[..32.min(h.len())])
    }

    fn target(&self) -> String {
        format!("{}/{}", self.cluster, self.service)
    }

    /// An audit record; `key` makes records of the same action distinct
    /// (and deduplicated when a re-invocation writes the same one).
    async fn audit(&self, action: &str, key: &str, before: Value, after: Value, result: &str) {
        if let Err(e) = self.audited(action, key, before, after, result).await {
            tracing::warn!(action, error = ?e.cause, "audit record not written");
        }
    }

    /// An audit record that must be written before a side effect.
    async fn audited(
        &self,
        action: &str,
        key: &str,
        before: Value,
        after: Value,
        result: &str,
    ) -> Result<(), Failure> {
        let target = self.target();
        aws_step::record(
            &self.step.store,
            &self.request,
            STEP,
            aws_step::Change {
                env: &self.env,
                action,
                target: &target,
                before,
                after,
                result,
                token: format!("{}#{action}#{key}", self.token()),
            },
        )
        .await
        .map(|_| ())
    }

    async fn describe_service(&self) -> Result<ecs_t::Service, Failure> {
        let out = self
            .ecs
            .describe_services()
            .cluster(&self.cluster)
            .services(&self.service)
            .send()
            .await
            .map_err(|e| aws_err(e, &format!("ECS cluster {}", self.cluster)))?;
        if let Some(f) = out.failures().first() {
            return Err(fail(
                "NotFound",
                format!(
                    "ECS service {} in cluster {}: {} ({}); check the names and the region",
                    self.service,
                    self.cluster,
                    f.reason().unwrap_or("missing"),
                    f.arn().unwrap_or("")
                ),
            ));
        }
        let Some(svc) = out.services().first().cloned() else {
            return Err(fail(
                "NotFound",
                format!(
                    "ECS service {} in cluster {}: not found",
                    self.service, self.cluster
                ),
            ));
        };
        if svc.status() == Some("INACTIVE") {
            return Err(fail(
                "NotFound",
                format!(
                    "ECS service {} in cluster {} is INACTIVE (deleted)",
                    self.service, self.cluster
                ),
            ));
        }
        let controller = svc
            .deployment_controller()
            .map(|c| c.r#type().as_str().to_string());
        if controller.as_deref() != Some("EXTERNAL") {
            return Err(fail(
                "InvalidService",
                format!(
                    "ECS service {} in cluster {} uses the {} deployment controller; piflow:ecs-blue-green needs EXTERNAL (task sets)",
                    self.service,
                    self.cluster,
                    controller.as_deref().unwrap_or("ECS")
                ),
            ));
        }
        Ok(svc)
    }

    fn primary(&self, svc: &ecs_t::Service) -> Result<ecs_t::TaskSet, Failure> {
        svc.task_sets()
            .iter()
            .find(|t| t.status() == Some("PRIMARY"))
            .cloned()
            .ok_or_else(|| {
                fail(
                    "InvalidService",
                    format!(
                        "ECS service {} in cluster {} has no PRIMARY task set: create the first (blue) task set before a blue/green rollout",
                        self.service, self.cluster
                    ),
                )
            })
    }

    fn task_set_lb(&self, ts: &ecs_t::TaskSet) -> Result<ecs_t::LoadBalancer, Failure> {
        ts.load_balancers()
            .iter()
            .find(|l| l.target_group_arn().is_some())
            .cloned()
            .ok_or_else(|| {
                fail(
                    "InvalidService",
                    format!(
                        "task set {} of ECS service {} has no target group",
                        ts.id().unwrap_or(""),
                        self.service
                    ),
                )
            })
    }

    /// The listener forwarding to `blue_tg` and its other target group.
    async fn traffic(&self, blue_tg: &str) -> Result<Traffic, Failure> {
        let listeners = match self
            .request
            .input
            .get("listener_arn")
            .and_then(Value::as_str)
        {
            Some(arn) => self
                .elb
                .describe_listeners()
                .listener_arns(arn)
                .send()
                .await
                .map_err(|e| aws_err(e, &format!("listener {arn}")))?
                .listeners()
                .to_vec(),
            None => {
                let tgs = self
                    .elb
                    .describe_target_groups()
                    .target_group_arns(blue_tg)
                    .send()
                    .await
                    .map_err(|e| aws_err(e, &format!("target group {blue_tg}")))?;
                let lbs: Vec<String> = tgs
                    .target_groups()
                    .iter()
                    .flat_map(|t| t.load_balancer_arns().iter().cloned())
                    .collect();
                let mut all = Vec::new();
                for lb in lbs {
                    let out = self
                        .elb
                        .describe_listeners()
                        .load_balancer_arn(&lb)
                        .send()
                        .await
                        .map_err(|e| aws_err(e, &format!("listeners of load balancer {lb}")))?;
                    all.extend(out.listeners().iter().cloned());
                }
                all
            }
        };
        for l in &listeners {
            for a in l.default_actions() {
                let Some(fc) = a.forward_config() else {
                    continue;
                };
                let tgs = fc.target_groups();
                let weight = |arn: &str| {
                    tgs.iter()
                        .find(|t| t.target_group_arn() == Some(arn))
                        .map(|t| t.weight().unwrap_or(1))
                };
                let Some(blue) = weight(blue_tg) else {
                    continue;
                };
                let Some(green) = tgs
                    .iter()
                    .filter_map(|t| t.target_group_arn())
                    .find(|t| *t != blue_tg)
                else {
                    continue;
                };
                return Ok(Traffic {
                    listener: l.listener_arn().unwrap_or("").to_string(),
                    blue_tg: blue_tg.to_string(),
                    green_tg: green.to_string(),
                    blue,
                    green: weight(green).unwrap_or(0),
                });
            }
        }
        Err(fail(
            "NotFound",
            format!(
                "no listener with a weighted forward to target group {blue_tg} and a second (idle) target group{}: give \"listener_arn\" or add the green target group to the listener's default action",
                self.request
                    .input
                    .get("listener_arn")
                    .and_then(Value::as_str)
                    .map(|a| format!(" (looked at {a})"))
                    .unwrap_or_default()
            ),
        ))
    }

    /// Set the weights, with an audit record before and after.
    async fn shift(&self, t: &mut Traffic, green: i32, why: &str) -> Result<(), Failure> {
        let before = json!({"blue": t.blue, "green": t.green});
        let after = json!({"blue": 100 - green, "green": green});
        let key = format!("{why}:{}->{green}", t.green);
        self.audited(
            "bluegreen.shift",
            &format!("{key}:before"),
            before.clone(),
            after.clone(),
            "shifting",
        )
        .await?;
        let action = elb_t::Action::builder()
            .r#type(elb_t::ActionTypeEnum::Forward)
            .forward_config(
                elb_t::ForwardActionConfig::builder()
                    .target_groups(
                        elb_t::TargetGroupTuple::builder()
                            .target_group_arn(&t.blue_tg)
                            .weight(100 - green)
                            .build(),
                    )
                    .target_groups(
                        elb_t::TargetGroupTuple::builder()
                            .target_group_arn(&t.green_tg)
                            .weight(green)
                            .build(),
                    )
                    .build(),
            )
            .build();
        let r = self
            .elb
            .modify_listener()
            .listener_arn(&t.listener)
            .default_actions(action)
            .send()
            .await;
        if let Err(e) = r {
            let f = aws_err(e, &format!("listener {}", t.listener));
            self.audit(
                "bluegreen.shift",
                &format!("{key}:after"),
                before,
                json!({"error": f.cause}),
                "failed",
            )
            .await;
            return Err(f);
        }
        tracing::info!(listener = %t.listener, from = t.green, to = green, why, "shifted traffic");
        t.blue = 100 - green;
        t.green = green;
        self.audited(
            "bluegreen.shift",
            &format!("{key}:after"),
            before,
            after,
            "shifted",
        )
        .await
    }

    /// `Ok(None)` when every target is healthy (and there is one),
    /// else what is wrong.
    async fn health_problem(&self, tg: &str) -> Result<Option<String>, Failure> {
        let out = self
            .health
            .describe_target_health()
            .target_group_arn(tg)
            .send()
            .await
            .map_err(|e| aws_err(e, &format!("target health of {tg}")))?;
        // Draining targets (left by an earlier rollout) do not count.
        let d: Vec<_> = out
            .target_health_descriptions()
            .iter()
            .filter(|t| {
                t.target_health()
                    .and_then(|h| h.state())
                    .is_none_or(|s| s.as_str() != "draining")
            })
            .collect();
        if d.is_empty() {
            return Ok(Some(format!("target group {tg} has no registered target")));
        }
        let bad: Vec<String> = d
            .iter()
            .filter_map(|t| {
                let h = t.target_health()?;
                let state = h.state().map(|s| s.as_str()).unwrap_or("unknown");
                (state != "healthy").then(|| {
                    format!(
                        "{} {state} ({})",
                        t.target().and_then(|x| x.id()).unwrap_or("?"),
                        h.reason().map(|r| r.as_str()).unwrap_or("")
                    )
                })
            })
            .collect();
        Ok((!bad.is_empty()).then(|| format!("target group {tg}: {}", bad.join(", "))))
    }

    /// Wait until green's targets are all healthy.
    async fn wait_healthy(&self, tg: &str) -> Result<(), Failure> {
        let deadline = tokio::time::Instant::now() + self.health_timeout;
        loop {
            let problem = self.health_problem(tg).await?;
            let Some(problem) = problem else {
                return Ok(());
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(fail(
                    "Unhealthy",
                    format!(
                        "green did not become healthy within {}s: {problem}",
                        self.health_timeout.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(self.step.poll).await;
        }
    }

    /// Watch green for `secs` seconds (at least one look, so `0` is a
    /// single look right after a shift): target health and the alarms,
    /// read together at every poll; fail at the first unhealthy target or
    /// alarm in ALARM.
    async fn watch(
        &self,
        tg: &str,
        secs: u64,
        alarms: &[String],
        weight: i32,
    ) -> Result<(), Failure> {
        let end = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let (health, alarm) =
                tokio::join!(self.health_problem(tg), self.alarm_problem(alarms, weight));
            if let Some(f) = alarm? {
                return Err(f);
            }
            if let Some(p) = health? {
                return Err(fail("Unhealthy", format!("green became unhealthy: {p}")));
            }
            let now = tokio::time::Instant::now();
            if now >= end {
                return Ok(());
            }
            tokio::time::sleep(self.step.poll.min(end - now)).await;
        }
    }

    fn region(&self) -> &str {
        self.request
            .input
            .get("region")
            .and_then(Value::as_str)
            .unwrap_or("(default)")
    }

    /// The named alarms as CloudWatch reports them.
    async fn read_alarms(&self, names: &[String]) -> Result<Vec<Alarm>, Failure> {
        super::alarms::read(&self.cloudwatch, names)
            .await
            .map_err(|e| {
                aws_err(
                    e,
                    &format!(
                        "CloudWatch alarms {} in region {}",
                        names.join(", "),
                        self.region()
                    ),
                )
            })
    }

    /// Before any change: every alarm exists (else `InvalidInput`); the ones
    /// in ALARM are returned.
    async fn alarms_before(&self, names: &[String]) -> Result<Vec<Alarm>, Failure> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let found = self.read_alarms(names).await?;
        let missing = super::alarms::missing(names, &found);
        if !missing.is_empty() {
            return Err(fail(
                "InvalidInput",
                format!(
                    "state {}: strategy.alarms names CloudWatch alarm(s) {} that do not exist in region {}: check the names (case-sensitive, metric or composite alarms in the step's region) or remove them; nothing was changed",
                    self.request.state_name,
                    missing.join(", "),
                    self.region()
                ),
            ));
        }
        Ok(found.into_iter().filter(Alarm::firing).collect())
    }

    /// During a watch: `Some(failure)` when an alarm is in ALARM (with a
    /// `bluegreen.alarm` audit record) or has been deleted.
    async fn alarm_problem(
        &self,
        names: &[String],
        weight: i32,
    ) -> Result<Option<Failure>, Failure> {
        if names.is_empty() {
            return Ok(None);
        }
        let found = self.read_alarms(names).await?;
        let missing = super::alarms::missing(names, &found);
        if !missing.is_empty() {
            return Ok(Some(fail(
                "NotFound",
                format!(
                    "CloudWatch alarm(s) {} in region {} disappeared during the rollout: green can no longer be watched",
                    missing.join(", "),
                    self.region()
                ),
            )));
        }
        let firing: Vec<&Alarm> = found.iter().filter(|a| a.firing()).collect();
        if firing.is_empty() {
            return Ok(None);
        }
        let text = describe_firing(&firing);
        tracing::warn!(service = %self.service, green = weight, alarms = %text, "alarm in ALARM during the rollout");
        let names: Vec<&str> = firing.iter().map(|a| a.name.as_str()).collect();
        self.audit(
            "bluegreen.alarm",
            &format!("{}:{weight}", names.join(",")),
            json!({"green": weight}),
            json!({"alarms": firing.iter().map(|a| a.json()).collect::<Vec<_>>()}),
            "firing",
        )
        .await;
        Ok(Some(fail(
            "AlarmFiring",
            format!("{text} with {weight}% of the traffic on green"),
        )))
    }

    /// Blue's release: its task definition, the image of the rolled
    /// container (`container`, else the first) and its task set.
    async fn release_of(&self, blue: &ecs_t::TaskSet) -> Result<Value, Failure> {
        let td = blue.task_definition().unwrap_or_default().to_string();
        let image = self.image_in(&td).await?;
        Ok(json!({"task_definition": td, "image": image, "task_set": blue.task_set_arn()}))
    }

    /// The image of the rolled container in a task definition.
    async fn image_in(&self, td: &str) -> Result<Option<String>, Failure> {
        let out = self
            .ecs
            .describe_task_definition()
            .task_definition(td)
            .send()
            .await
            .map_err(|e| aws_err(e, &format!("task definition {td}")))?;
        let defs = out
            .task_definition()
            .map(|t| t.container_definitions())
            .unwrap_or_default();
        let container = self.request.input.get("container").and_then(Value::as_str);
        let def = container
            .and_then(|c| defs.iter().find(|d| d.name() == Some(c)))
            .or_else(|| defs.first());
        Ok(def.and_then(|d| d.image()).map(str::to_string))
    }

    /// Blue's release as this token recorded it before making green
    /// primary (`bluegreen.done`'s `before`, else `bluegreen.primary`'s
    /// `before.previous`); `Null` when there is no such record.
    async fn recorded_previous(&self) -> Result<Value, Failure> {
        let store = self
            .step
            .store
            .get()
            .await
            .map_err(|e| fail("StoreFailed", e.to_string()))?;
        let records = store
            .records(&self.env, None)
            .await
            .map_err(|e| fail("StoreFailed", e.to_string()))?;
        let token = |action: &str, key: &str| format!("{}#{action}#{key}", self.token());
        let done = token("bluegreen.done", "done");
        let primary = [
            token("bluegreen.primary", "after"),
            token("bluegreen.primary", "before"),
        ];
        let find = |t: &str| {
            records
                .iter()
                .rev()
                .find(|r| r.entry.token.as_deref() == Some(t))
                .map(|r| r.entry.before.clone())
        };
        let mut previous = find(&done)
            .filter(|b| b.get("task_definition").is_some_and(Value::is_string))
            .or_else(|| {
                primary.iter().find_map(|t| {
                    find(t)
                        .and_then(|b| b.get("previous").cloned())
                        .filter(|p| p.get("task_definition").is_some_and(Value::is_string))
                })
            })
            .unwrap_or(Value::Null);
        // Records written before `image` was recorded: a task definition
        // never changes, so its image can be read again.
        if let Some(td) = previous
            .get("task_definition")
            .and_then(Value::as_str)
            .map(str::to_string)
            && previous.get("image").is_none_or(Value::is_null)
        {
            previous["image"] = json!(self.image_in(&td).await?);
        }
        if previous.is_null() {
            tracing::warn!(service = %self.service, "no audit record of the previous release for this token");
        }
        Ok(previous)
    }

    /// The task definition to roll out: the input's ARN, or a revision of
    /// the current one with the new image (reusing the family's latest
    /// revision when it already runs that image).
    async fn task_definition(&self, current: &str) -> Result<String, Failure> {
        if let Some(arn) = self
            .request
            .input
            .get("task_definition")
            .and_then(Value::as_str)
        {
            self.ecs
                .describe_task_definition()
                .task_definition(arn)
                .send()
                .await
                .map_err(|e| aws_err(e, &format!("task definition {arn}")))?;
            return Ok(arn.to_string());
        }
        let Some(image) = self.request.input.get("image").and_then(Value::as_str) else {
            return Err(fail(
                "InvalidInput",
                format!(
                    "state {}: give \"image\" (the new container image) or \"task_definition\" (an ARN)",
                    self.request.state_name
                ),
            ));
        };
        let container = self.request.input.get("container").and_then(Value::as_str);
        let (td, idx, family) = match plan_revision(&self.ecs, current, container, image).await {
            Ok(Revision::Reuse(arn)) => {
                tracing::info!(
                    task_definition = arn,
                    image,
                    "reusing task definition revision"
                );
                return Ok(arn);
            }
            Ok(Revision::Register { td, idx, family }) => (td, idx, family),
            Err(RevisionError::Aws(what, e)) => return Err(aws_err(*e, &what)),
            Err(RevisionError::Missing(why)) => return Err(fail("NotFound", why)),
        };
        let old_image = td.container_definitions()[idx]
            .image()
            .unwrap_or_default()
            .to_string();
        let before = json!({"task_definition": current, "image": old_image});
        self.audited(
            "bluegreen.register-task-definition",
            "1",
            before.clone(),
            json!({"family": family, "image": image}),
            "registering",
        )
        .await?;
        let arn = register_with_image(&self.ecs, &td, idx, image, self.token())
            .await
            .map_err(|e| aws_err(e, &format!("registering a revision of {family}")))?;
        self.audited(
            "bluegreen.register-task-definition",
            "2",
            before,
            json!({"task_definition": arn, "image": image}),
            "registered",
        )
        .await?;
        Ok(arn)
    }

    /// Before any change, for an `image` (not a `task_definition`) in
    /// Amazon ECR: the image exists (`DescribeImages` in the image's region
    /// with the step's credentials), else `ImageNotFound`. AccessDenied
    /// only warns: the rollout goes on unchecked.
    async fn check_image(&self) -> Result<(), Failure> {
        let input = &self.request.input;
        if input
            .get("task_definition")
            .and_then(Value::as_str)
            .is_some()
        {
            return Ok(());
        }
        let Some(image) = input.get("image").and_then(Value::as_str) else {
            return Ok(());
        };
        let ecr = match parse_ecr_image(image) {
            Ok(Some(e)) => e,
            Ok(None) => {
                tracing::debug!(
                    image,
                    "not an Amazon ECR image: not checked before the rollout"
                );
                return Ok(());
            }
            Err(why) => {
                return Err(fail(
                    "InvalidInput",
                    format!(
                        "state {}: image {image} is not a valid Amazon ECR image reference: {why} (ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPOSITORY[:TAG|@sha256:DIGEST]); nothing was changed",
                        self.request.state_name
                    ),
                ));
            }
        };
        let mut conf = aws_sdk_ecr::config::Builder::from(&self.sdk)
            .region(aws_config::Region::new(ecr.region.clone()));
        if let Some(url) = &self.step.ecr_endpoint {
            conf = conf.endpoint_url(url);
        }
        let client = aws_sdk_ecr::Client::from_conf(conf.build());
        let id = aws_sdk_ecr::types::ImageIdentifier::builder()
            .set_image_tag(ecr.tag.clone())
            .set_image_digest(ecr.digest.clone())
            .build();
        let not_found = |detail: &str| {
            fail(
                "ImageNotFound",
                format!(
                    "image {image} does not exist: {detail} (Amazon ECR registry {}, region {}); nothing was changed. Push the image to repository {} (docker push {image}), or fix the image's repository or tag",
                    ecr.account, ecr.region, ecr.repository
                ),
            )
        };
        match client
            .describe_images()
            .registry_id(&ecr.account)
            .repository_name(&ecr.repository)
            .image_ids(id)
            .send()
            .await
        {
            Ok(out) if !out.image_details().is_empty() => {
                tracing::info!(image, region = %ecr.region, "image found in Amazon ECR");
                Ok(())
            }
            Ok(_) => Err(not_found(&format!(
                "repository {} has no image with {}",
                ecr.repository,
                ecr.id()
            ))),
            Err(e) => {
                let code = e.code().unwrap_or("").to_string();
                let text = match e.code() {
                    Some(c) => format!("{c}: {}", e.message().unwrap_or("")),
                    None => format!("{}", DisplayErrorContext(&e)),
                };
                if code.contains("RepositoryNotFound") {
                    Err(not_found(&format!(
                        "repository {} does not exist ({text})",
                        ecr.repository
                    )))
                } else if code.contains("ImageNotFound") {
                    Err(not_found(&format!(
                        "repository {} has no image with {} ({text})",
                        ecr.repository,
                        ecr.id()
                    )))
                } else if code.contains("AccessDenied") {
                    tracing::warn!(
                        image,
                        repository = %ecr.repository,
                        region = %ecr.region,
                        error = %text,
                        "cannot check that the image exists (the step's role needs ecr:DescribeImages): rolling out unchecked"
                    );
                    Ok(())
                } else {
                    Err(fail(
                        "AwsFailed",
                        format!(
                            "checking image {image} in Amazon ECR (repository {}, region {}): {text}; nothing was changed",
                            ecr.repository, ecr.region
                        ),
                    ))
                }
            }
        }
    }

    async fn delete_task_set(&self, ts: &ecs_t::TaskSet, why: &str) -> Result<(), Failure> {
        let arn = ts.task_set_arn().unwrap_or_default().to_string();
        let before = json!({"task_set": arn, "status": ts.status(), "task_definition": ts.task_definition()});
        self.audited(
            "bluegreen.delete-task-set",
            &format!("{arn}:before"),
            before.clone(),
            Value::Null,
            why,
        )
        .await?;
        let r = self
            .ecs
            .delete_task_set()
            .cluster(&self.cluster)
            .service(&self.service)
            .task_set(&arn)
            .force(true)
            .send()
            .await;
        match r {
            Ok(_) => {}
            Err(e) if e.code().is_some_and(|c| c.contains("TaskSetNotFound")) => {}
            Err(e) => return Err(aws_err(e, &format!("deleting task set {arn}"))),
        }
        self.audited(
            "bluegreen.delete-task-set",
            &format!("{arn}:after"),
            before,
            json!({"deleted": true}),
            "deleted",
        )
        .await
    }

    async fn forward(self) -> Result<Value, Failure> {
        let strategy = parse_strategy(&self.request)?;
        let svc = self.describe_service().await?;
        let ext = self.external_id();
        let green_ts = svc
            .task_sets()
            .iter()
            .find(|t| t.external_id() == Some(ext.as_str()))
            .cloned();
        let primary = self.primary(&svc)?;

        // Already done (re-invoked after success): converge and report.
        if let Some(g) = &green_ts
            && g.status() == Some("PRIMARY")
        {
            let lb = self.task_set_lb(g)?;
            let green_tg = lb.target_group_arn().unwrap_or_default().to_string();
            let t = self.traffic(&green_tg).await?;
            // Here "blue" in Traffic is green's target group (the live one).
            let mut live = t.clone();
            if t.blue != 100 || t.green != 0 {
                self.shift(&mut live, 0, "converge").await?;
            }
            for other in svc
                .task_sets()
                .iter()
                .filter(|x| x.status() != Some("PRIMARY"))
            {
                self.delete_task_set(other, "blue").await?;
            }
            let previous = self.recorded_previous().await?;
            return Ok(json!({
                "service": self.service,
                "task_definition": g.task_definition(),
                "traffic": {"green": 100, "blue": 0},
                "task_set": g.task_set_arn(),
                "previous": previous,
            }));
        }

        if green_ts.is_none()
            && let Some(other) = svc
                .task_sets()
                .iter()
                .find(|t| t.status() != Some("PRIMARY"))
        {
            return Err(fail(
                "Conflict",
                format!(
                    "ECS service {} in cluster {} already has a non-primary task set {} (external id {}) from another rollout: finish it or run piflow:ecs-blue-green with rollback: true first",
                    self.service,
                    self.cluster,
                    other.id().unwrap_or(""),
                    other.external_id().unwrap_or("")
                ),
            ));
        }

        let blue_lb = self.task_set_lb(&primary)?;
        let blue_tg = blue_lb.target_group_arn().unwrap_or_default().to_string();
        let mut traffic = self.traffic(&blue_tg).await?;
        if green_ts.is_none() && traffic.green > 0 {
            return Err(fail(
                "Conflict",
                format!(
                    "listener {} already sends {}% to target group {} but the service has no task set there: fix the listener or run with rollback: true",
                    traffic.listener, traffic.green, traffic.green_tg
                ),
            ));
        }

        // Reads only, before any change.
        let previous = self.release_of(&primary).await?;
        let firing = self.alarms_before(&strategy.alarms).await?;
        if green_ts.is_none() {
            self.check_image().await?;
        }
        if !firing.is_empty() {
            let refs: Vec<&Alarm> = firing.iter().collect();
            let text = describe_firing(&refs);
            match &green_ts {
                None => {
                    return Err(fail(
                        "AlarmFiring",
                        format!(
                            "{text} before the rollout of {}: nothing was changed; resolve the alarm (or drop it from strategy.alarms) and run again",
                            self.target()
                        ),
                    ));
                }
                // A resumed rollout: green exists and may carry traffic.
                Some(g) => {
                    let cause = fail("AlarmFiring", format!("{text} when the rollout resumed"));
                    return Err(self.roll_back(g, &mut traffic, cause).await);
                }
            }
        }

        let green = match green_ts {
            Some(g) => {
                tracing::info!(
                    task_set = g.id().unwrap_or(""),
                    green = traffic.green,
                    "resuming rollout"
                );
                self.audit(
                    "bluegreen.resume",
                    &format!("{}", traffic.green),
                    Value::Null,
                    json!({"task_set": g.task_set_arn(), "traffic": traffic.json()}),
                    "resuming",
                )
                .await;
                g
            }
            None => {
                let current_td = primary.task_definition().unwrap_or_default().to_string();
                let td = self.task_definition(&current_td).await?;
                let mut lb = ecs_t::LoadBalancer::builder().target_group_arn(&traffic.green_tg);
                if let Some(c) = blue_lb.container_name() {
                    lb = lb.container_name(c);
                }
                if let Some(p) = blue_lb.container_port() {
                    lb = lb.container_port(p);
                }
                let after = json!({"task_definition": td, "target_group": traffic.green_tg, "external_id": ext});
                self.audited(
                    "bluegreen.create-task-set",
                    "before",
                    Value::Null,
                    after.clone(),
                    "creating",
                )
                .await?;
                let mut req = self
                    .ecs
                    .create_task_set()
                    .cluster(&self.cluster)
                    .service(&self.service)
                    .task_definition(&td)
                    .external_id(&ext)
                    .load_balancers(lb.build())
                    .client_token(&ext);
                if let Some(lt) = primary.launch_type() {
                    req = req.launch_type(lt.clone());
                }
                if let Some(n) = primary.network_configuration() {
                    req = req.network_configuration(n.clone());
                }
                let out = req.send().await.map_err(|e| {
                    aws_err(
                        e,
                        &format!("creating the green task set of {}", self.service),
                    )
                })?;
                let Some(ts) = out.task_set().cloned() else {
                    return Err(fail("AwsFailed", "CreateTaskSet returned no task set"));
                };
                self.audited(
                    "bluegreen.create-task-set",
                    "after",
                    Value::Null,
                    json!({"task_set": ts.task_set_arn(), "task_definition": td, "target_group": traffic.green_tg}),
                    "created",
                )
                .await?;
                ts
            }
        };

        match self.roll(&strategy, &mut traffic, &green).await {
            Ok(()) => self.finish(&primary, &green, &traffic, previous).await,
            Err(cause) => Err(self.roll_back(&green, &mut traffic, cause).await),
        }
    }

    /// Health, then each shift with its watch.
    async fn roll(
        &self,
        strategy: &Strategy,
        traffic: &mut Traffic,
        green: &ecs_t::TaskSet,
    ) -> Result<(), Failure> {
        // Scaled here rather than at creation: moto places tasks for a
        // `scale` given to CreateTaskSet and fails without container
        // instances. Idempotent.
        let arn = green.task_set_arn().unwrap_or_default();
        self.ecs
            .update_task_set()
            .cluster(&self.cluster)
            .service(&self.service)
            .task_set(arn)
            .scale(
                ecs_t::Scale::builder()
                    .unit(ecs_t::ScaleUnit::Percent)
                    .value(100.0)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| aws_err(e, &format!("scaling the green task set {arn} to 100%")))?;
        let green_tg = traffic.green_tg.clone();
        self.wait_healthy(&green_tg).await?;
        for w in strategy.steps() {
            if w <= traffic.green {
                continue;
            }
            self.shift(traffic, w, strategy_name(strategy.kind)).await?;
            self.watch(&green_tg, strategy.wait_after(w), &strategy.alarms, w)
                .await?;
        }
        Ok(())
    }

    async fn finish(
        &self,
        blue: &ecs_t::TaskSet,
        green: &ecs_t::TaskSet,
        traffic: &Traffic,
        previous: Value,
    ) -> Result<Value, Failure> {
        let green_arn = green.task_set_arn().unwrap_or_default().to_string();
        let before = json!({"primary": blue.task_set_arn(), "previous": previous});
        self.audited(
            "bluegreen.primary",
            "before",
            before.clone(),
            json!({"primary": green_arn}),
            "switching",
        )
        .await?;
        self.ecs
            .update_service_primary_task_set()
            .cluster(&self.cluster)
            .service(&self.service)
            .primary_task_set(&green_arn)
            .send()
            .await
            .map_err(|e| aws_err(e, &format!("making task set {green_arn} primary")))?;
        self.audited(
            "bluegreen.primary",
            "after",
            before,
            json!({"primary": green_arn}),
            "switched",
        )
        .await?;
        self.delete_task_set(blue, "blue").await?;
        let out = json!({
            "service": self.service,
            "task_definition": green.task_definition(),
            "traffic": {"green": traffic.green, "blue": traffic.blue},
            "task_set": green_arn,
            "previous": previous,
        });
        self.audited("bluegreen.done", "done", previous, out.clone(), "succeeded")
            .await?;
        Ok(out)
    }

    /// Traffic back to blue, green deleted; the failure to return.
    async fn roll_back(
        &self,
        green: &ecs_t::TaskSet,
        traffic: &mut Traffic,
        cause: Failure,
    ) -> Failure {
        let why = format!(
            "{}: {}",
            cause.error_name(),
            cause.cause.clone().unwrap_or_default()
        );
        tracing::warn!(service = %self.service, cause = %why, "rolling back to blue");
        let mut steps = Vec::new();
        if (traffic.green != 0 || traffic.blue != 100)
            && let Err(e) = self.shift(traffic, 0, "rollback").await
        {
            steps.push(e.cause.unwrap_or_default());
        }
        if steps.is_empty()
            && let Err(e) = self.delete_task_set(green, "green").await
        {
            steps.push(e.cause.unwrap_or_default());
        }
        if !steps.is_empty() {
            self.audit(
                "bluegreen.rollback",
                "failed",
                json!({"cause": why}),
                json!({"traffic": traffic.json(), "errors": steps}),
                "failed",
            )
            .await;
            return fail(
                "RollbackFailed",
                format!(
                    "rollout of {} failed ({why}) and the rollback failed too: {}; traffic now blue {}% / green {}% on listener {}: run with rollback: true",
                    self.target(),
                    steps.join("; "),
                    traffic.blue,
                    traffic.green,
                    traffic.listener
                ),
            );
        }
        self.audit(
            "bluegreen.rollback",
            "done",
            json!({"cause": why}),
            json!({"traffic": traffic.json(), "deleted": green.task_set_arn()}),
            "rolled-back",
        )
        .await;
        fail(
            "RolledBack",
            format!(
                "rollout of {} rolled back: {why}; all traffic is on blue and the green task set {} is deleted",
                self.target(),
                green.id().unwrap_or("")
            ),
        )
    }

    /// `rollback: true`: all traffic to the primary task set, every other
    /// task set deleted.
    async fn rollback(self) -> Result<Value, Failure> {
        let svc = self.describe_service().await?;
        let primary = self.primary(&svc)?;
        let lb = self.task_set_lb(&primary)?;
        let tg = lb.target_group_arn().unwrap_or_default().to_string();
        let mut traffic = self.traffic(&tg).await?;
        let before = json!({"traffic": traffic.json(), "task_sets": svc.task_sets().iter().map(|t| json!({"arn": t.task_set_arn(), "status": t.status()})).collect::<Vec<_>>()});
        self.audited(
            "bluegreen.rollback",
            "before",
            before.clone(),
            Value::Null,
            "rolling-back",
        )
        .await?;
        if traffic.blue != 100 || traffic.green != 0 {
            self.shift(&mut traffic, 0, "rollback").await?;
        }
        for other in svc
            .task_sets()
            .iter()
            .filter(|t| t.status() != Some("PRIMARY"))
        {
            self.delete_task_set(other, "non-primary").await?;
        }
        let out = json!({
            "service": self.service,
            "task_definition": primary.task_definition(),
            "traffic": {"green": 0, "blue": 100},
            "task_set": primary.task_set_arn(),
        });
        self.audited(
            "bluegreen.rollback",
            "after",
            before,
            out.clone(),
            "rolled-back",
        )
        .await?;
        Ok(out)
    }
}

fn strategy_name(k: Kind) -> &'static str {
    match k {
        Kind::AllAtOnce => "all-at-once",
        Kind::Linear => "linear",
        Kind::Canary => "canary",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(kind: Kind, percent: i32) -> Strategy {
        Strategy {
            kind,
            percent,
            interval: 1,
            bake: 2,
            alarms: Vec::new(),
        }
    }

    fn req(input: Value) -> TaskRequest {
        TaskRequest {
            execution: "e".into(),
            state_name: "BlueGreen".into(),
            resource: "piflow:ecs-blue-green".into(),
            input,
            task_token: None,
            idempotency_token: "t".into(),
            credentials: None,
            attempt: 0,
        }
    }

    #[test]
    fn strategies_are_parsed_and_refused() {
        let ok = parse_strategy(&req(json!({}))).expect("default");
        assert_eq!(ok.kind, Kind::AllAtOnce);
        let c = parse_strategy(&req(
            json!({"strategy": {"strategy": "canary", "percent": 5}}),
        ))
        .expect("canary");
        assert_eq!((c.kind, c.percent, c.bake), (Kind::Canary, 5, 300));
        assert!(c.alarms.is_empty());
        let a = parse_strategy(&req(
            json!({"strategy": {"strategy": "canary", "alarms": ["cpu-high", "5xx", "cpu-high"]}}),
        ))
        .expect("alarms are accepted");
        assert_eq!(a.alarms, vec!["cpu-high".to_string(), "5xx".to_string()]);
        let many: Vec<String> = (0..=MAX_ALARMS).map(|i| format!("a{i}")).collect();
        let e = parse_strategy(&req(json!({"strategy": {"alarms": many}}))).expect_err("too many");
        assert_eq!(e.error_name(), "BlueGreen.InvalidInput");
        for bad in [
            json!({"strategy": {"strategy": "blue"}}),
            json!({"strategy": {"strategy": "linear", "percent": 0}}),
            json!({"strategy": {"strategy": "linear", "percent": 101}}),
            json!({"strategy": {"strategy": "canary", "bake_seconds": -1}}),
            json!({"strategy": {"alarms": "cpu-high"}}),
            json!({"strategy": {"alarms": ["cpu-high", ""]}}),
            json!({"strategy": {"alarms": [3]}}),
        ] {
            let e = parse_strategy(&req(bad.clone())).expect_err("refused");
            assert_eq!(e.error_name(), "BlueGreen.InvalidInput", "{bad}");
        }
    }

    #[test]
    fn ecr_images_are_parsed() {
        let e =
            |account: &str, region: &str, repo: &str, tag: Option<&str>, digest: Option<&str>| {
                Some(EcrImage {
                    account: account.into(),
                    region: region.into(),
                    repository: repo.into(),
                    tag: tag.map(str::to_string),
                    digest: digest.map(str::to_string),
                })
            };
        let p = |i: &str| parse_ecr_image(i).expect(i);
        assert_eq!(
            p("123456789012.dkr.ecr.us-east-1.amazonaws.com/product/dashboard:2.0"),
            e(
                "123456789012",
                "us-east-1",
                "product/dashboard",
                Some("2.0"),
                None
            )
        );
        assert_eq!(
            p("123456789012.dkr.ecr.eu-west-3.amazonaws.com/dashboard"),
            e(
                "123456789012",
                "eu-west-3",
                "dashboard",
                Some("latest"),
                None
            )
        );
        assert_eq!(
            p("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/dashboard@sha256:abc"),
            e(
                "123456789012",
                "cn-north-1",
                "dashboard",
                None,
                Some("sha256:abc")
            )
        );
        assert_eq!(
            p("123456789012.dkr.ecr.us-east-1.amazonaws.com/dashboard:2.0@sha256:abc"),
            e(
                "123456789012",
                "us-east-1",
                "dashboard",
                None,
                Some("sha256:abc")
            )
        );
        for other in [
            "registry.example/dashboard:2.0",
            "nginx:1.27",
            "nginx",
            "ghcr.io/org/app:1",
            "docker.io/library/nginx:latest",
            "public.ecr.aws/nginx/nginx:1",
            "12345.dkr.ecr.us-east-1.amazonaws.com/dashboard:1",
            "123456789012.dkr.ecr.useast1.amazonaws.com/dashboard:1",
            "123456789012.s3.us-east-1.amazonaws.com/dashboard:1",
        ] {
            assert_eq!(p(other), None, "{other}");
        }
        for bad in [
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/dashboard:",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/:1.0",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/dashboard@",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/dashboard@abc",
        ] {
            assert!(parse_ecr_image(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn schedules() {
        assert_eq!(s(Kind::AllAtOnce, 10).steps(), vec![100]);
        assert_eq!(s(Kind::Canary, 10).steps(), vec![10, 100]);
        assert_eq!(s(Kind::Linear, 30).steps(), vec![30, 60, 90, 100]);
        assert_eq!(s(Kind::Linear, 50).steps(), vec![50, 100]);
        assert_eq!(s(Kind::Canary, 10).wait_after(10), 2);
        assert_eq!(s(Kind::Canary, 10).wait_after(100), 0);
        assert_eq!(s(Kind::Linear, 50).wait_after(50), 1);
    }
}
