//! `piflow:health-gate`: refuse to deploy while AWS Health reports an open
//! issue for the target region(s) and services.
//!
//! Input:
//! - `region` (a string) or `regions` (a list, up to 10): where the product
//!   runs; both may be given (their union is checked);
//! - `services` (required, 1–10): AWS Health service codes such as `ECS`,
//!   `EC2`, `ELASTICLOADBALANCING`, `RDS`, `ELASTICFILESYSTEM`,
//!   `CLOUDFORMATION`;
//! - `policy.fail_open` (default `false`): when the Health API cannot be
//!   used, pass with a `warning` instead of failing;
//! - `environment` (optional): the audit chain that receives a
//!   `decision.health-gate` record (`open`, `closed` or `unavailable`);
//! - `role_arn` (optional): as for every AWS step.
//!
//! It calls `DescribeEvents` (every page) with the filter regions, services,
//! `eventTypeCategories = [issue]`, `eventStatusCodes = [open]`.
//!
//! Endpoints: the Health API is global and served from `us-east-1`, with
//! `us-east-2` as its failover: when `us-east-1` is unreachable, times out,
//! throttles beyond the SDK's retries or answers 5xx, the same query is made
//! against `us-east-2`. `AWS_ENDPOINT_URL_HEALTH` / `AWS_ENDPOINT_URL` apply
//! to both as usual. To point each at its own URL (tests, a proxy), set
//! `PIFLOW_HEALTH_ENDPOINTS=us-east-1=http://a:1,us-east-2=http://b:2` (tried
//! in that order), or build the handler with [`HealthGate::with_endpoints`].
//!
//! Output (gate open): `{"open_events": [], "regions", "services",
//! "checked_at", "endpoint"}`, plus `"warning"` when `fail_open` let an
//! unusable API pass.
//!
//! Errors:
//! - `HealthGate.Closed`: open issues; the cause lists them (first few and a
//!   count). Retry on it to wait for the all-clear.
//! - `HealthGate.Unavailable`: no Business/Enterprise support plan
//!   (`SubscriptionRequiredException`) or the API unreachable on both
//!   endpoints (unless `policy.fail_open`).
//! - `HealthGate.AccessDenied`, `HealthGate.Failed`, `HealthGate.InvalidInput`,
//!   `HealthGate.StoreFailed`.

use std::time::Duration;

use aws_config::Region;
use aws_sdk_health::Client;
use aws_sdk_health::config::retry::RetryConfig;
use aws_sdk_health::config::timeout::TimeoutConfig;
use aws_sdk_health::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_health::operation::describe_events::DescribeEventsError;
use aws_sdk_health::primitives::{DateTime, DateTimeFormat};
use aws_sdk_health::types::{Event, EventFilter, EventStatusCode, EventTypeCategory};
use serde_json::{Map, Value, json};

use super::{AuditHandle, aws_step};
use piflow_engine::{Failure, TaskRequest};

const STEP: &str = "HealthGate";
/// The Health API's endpoints, in the order they are tried.
pub const DEFAULT_ENDPOINT_REGIONS: [&str; 2] = ["us-east-1", "us-east-2"];
/// `region=url,region=url`: one URL per Health endpoint region.
pub const ENDPOINTS_ENV: &str = "PIFLOW_HEALTH_ENDPOINTS";
/// Events named in a Closed cause (the rest are counted).
const CAUSE_EVENTS: usize = 5;
/// A guard against a service that keeps returning tokens.
const MAX_PAGES: usize = 200;

/// One place the Health API is asked: its signing region and, optionally,
/// an explicit URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthEndpoint {
    pub region: String,
    pub url: Option<String>,
}

/// The `piflow:health-gate` step.
#[derive(Clone)]
pub struct HealthGate {
    pub store: AuditHandle,
    /// Explicit endpoints (else [`ENDPOINTS_ENV`], else us-east-1 then us-east-2).
    pub endpoints: Option<Vec<HealthEndpoint>>,
    /// Retry settings for each endpoint (else the AWS configuration's).
    pub retry: Option<RetryConfig>,
}

impl HealthGate {
    pub fn new(store: AuditHandle) -> Self {
        HealthGate {
            store,
            endpoints: None,
            retry: None,
        }
    }

    /// Ask these endpoints, in order (each `(region, url)`).
    pub fn with_endpoints(mut self, endpoints: Vec<(String, String)>) -> Self {
        self.endpoints = Some(
            endpoints
                .into_iter()
                .map(|(region, url)| HealthEndpoint {
                    region,
                    url: Some(url),
                })
                .collect(),
        );
        self
    }

    /// Use these retry settings (e.g. fewer attempts) for every endpoint.
    pub fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.retry = Some(retry);
        self
    }
}

/// What the step checks, from its input.
#[derive(Debug, Clone)]
struct Query {
    regions: Vec<String>,
    services: Vec<String>,
    fail_open: bool,
    environment: Option<String>,
}

super::real_time_step!(HealthGate);

impl HealthGate {
    async fn run(&self, request: TaskRequest) -> Result<Value, Failure> {
        let query = parse_input(&request)?;
        // The SDK configuration (credentials, role) for the first target
        // region; the Health clients then get their own endpoint regions.
        let mut for_config = request.clone();
        if let Some(obj) = for_config.input.as_object_mut() {
            obj.insert("region".into(), Value::String(query.regions[0].clone()));
        }
        let sdk = aws_step::sdk_config(&for_config, STEP).await?;
        let endpoints = self.endpoints()?;
        let filter = EventFilter::builder()
            .set_regions(Some(query.regions.clone()))
            .set_services(Some(query.services.clone()))
            .event_type_categories(EventTypeCategory::Issue)
            .event_status_codes(EventStatusCode::Open)
            .build();

        let mut tried: Vec<String> = Vec::new();
        let mut outcome = None;
        for ep in &endpoints {
            let client = self.client(&sdk, ep);
            match fetch_all(&client, &filter).await {
                Ok(events) => {
                    outcome = Some(Ok((ep.region.clone(), events)));
                    break;
                }
                Err(e) if failover_worthy(&e) => {
                    let text = describe_sdk_error(&e);
                    tracing::warn!(state = %request.state_name, endpoint = %ep.region, error = %text, "AWS Health endpoint failed; trying the next one");
                    tried.push(format!("{} ({text})", ep.label()));
                }
                Err(e) => {
                    outcome = Some(Err(classify(&e, ep)));
                    break;
                }
            }
        }
        let outcome = outcome.unwrap_or_else(|| {
            Err(Failure::new(
                format!("{STEP}.Unavailable"),
                format!(
                    "the AWS Health API is unreachable: {}. Check the network path (proxy, VPC endpoint, firewall) to the Health endpoints, or set policy.fail_open: true to deploy without the check",
                    tried.join("; then ")
                ),
            ))
        });
        let checked_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);

        match outcome {
            Ok((endpoint, events)) => {
                let open: Vec<Value> = events.iter().map(event_json).collect();
                if open.is_empty() {
                    tracing::info!(state = %request.state_name, regions = ?query.regions, services = ?query.services, %endpoint, "AWS Health: no open issue");
                    self.decide(
                        &request,
                        &query,
                        "open",
                        json!({"open_events": 0, "endpoint": endpoint}),
                    )
                    .await?;
                    Ok(json!({
                        "open_events": [],
                        "regions": query.regions,
                        "services": query.services,
                        "checked_at": checked_at,
                        "endpoint": endpoint,
                    }))
                } else {
                    let cause = closed_cause(&query, &open);
                    tracing::warn!(state = %request.state_name, open_events = open.len(), %endpoint, "AWS Health: open issues, gate closed");
                    self.decide(
                        &request,
                        &query,
                        "closed",
                        json!({
                            "open_events": open.len(),
                            "events": open.iter().take(20).cloned().collect::<Vec<_>>(),
                            "endpoint": endpoint,
                        }),
                    )
                    .await?;
                    Err(Failure::new(format!("{STEP}.Closed"), cause))
                }
            }
            Err(failure) if failure.error_name() == "HealthGate.Unavailable" => {
                let cause = failure.cause.clone().unwrap_or_default();
                self.decide(
                    &request,
                    &query,
                    "unavailable",
                    json!({"cause": cause, "fail_open": query.fail_open}),
                )
                .await?;
                if query.fail_open {
                    tracing::warn!(state = %request.state_name, %cause, "AWS Health unavailable; passing because policy.fail_open is true");
                    Ok(json!({
                        "open_events": [],
                        "regions": query.regions,
                        "services": query.services,
                        "checked_at": checked_at,
                        "warning": format!("AWS Health was not checked (policy.fail_open): {cause}"),
                    }))
                } else {
                    Err(failure)
                }
            }
            Err(failure) => Err(failure),
        }
    }

    fn endpoints(&self) -> Result<Vec<HealthEndpoint>, Failure> {
        if let Some(e) = &self.endpoints {
            if e.is_empty() {
                return Err(Failure::new(
                    format!("{STEP}.InvalidInput"),
                    "the health gate was built with an empty list of endpoints: give at least one (region, url)",
                ));
            }
            return Ok(e.clone());
        }
        if let Some(spec) = std::env::var(ENDPOINTS_ENV)
            .ok()
            .filter(|s| !s.trim().is_empty())
        {
            return parse_endpoints(&spec);
        }
        Ok(DEFAULT_ENDPOINT_REGIONS
            .iter()
            .map(|r| HealthEndpoint {
                region: (*r).to_string(),
                url: None,
            })
            .collect())
    }

    fn client(&self, sdk: &aws_config::SdkConfig, ep: &HealthEndpoint) -> Client {
        let mut b =
            aws_sdk_health::config::Builder::from(sdk).region(Region::new(ep.region.clone()));
        if let Some(url) = &ep.url {
            b = b.endpoint_url(url.clone());
        }
        if let Some(retry) = &self.retry {
            b = b.retry_config(retry.clone());
        }
        // A hung endpoint must fail over, not hold the deployment.
        let has_attempt_timeout = sdk
            .timeout_config()
            .is_some_and(|t| t.operation_attempt_timeout().is_some());
        if !has_attempt_timeout {
            let mut t = TimeoutConfig::builder().operation_attempt_timeout(Duration::from_secs(20));
            if let Some(c) = sdk.timeout_config().and_then(|t| t.connect_timeout()) {
                t = t.connect_timeout(c);
            } else {
                t = t.connect_timeout(Duration::from_millis(3100));
            }
            b = b.timeout_config(t.build());
        }
        Client::from_conf(b.build())
    }

    /// The `decision.health-gate` audit record, when an environment is named.
    async fn decide(
        &self,
        request: &TaskRequest,
        query: &Query,
        result: &str,
        detail: Value,
    ) -> Result<(), Failure> {
        let Some(env) = &query.environment else {
            return Ok(());
        };
        let mut after = Map::new();
        after.insert("regions".into(), json!(query.regions));
        after.insert("services".into(), json!(query.services));
        if let Value::Object(d) = detail {
            after.extend(d);
        }
        aws_step::audit(
            &self.store,
            request,
            STEP,
            env,
            "decision.health-gate",
            &format!("aws-health:{}", query.regions.join(",")),
            Value::Null,
            Value::Object(after),
            result,
        )
        .await
    }
}

impl HealthEndpoint {
    fn label(&self) -> String {
        match &self.url {
            Some(u) => format!("{} at {u}", self.region),
            None => format!("{} (health.{}.amazonaws.com)", self.region, self.region),
        }
    }
}

fn invalid(request: &TaskRequest, what: String) -> Failure {
    Failure::new(
        format!("{STEP}.InvalidInput"),
        format!("state {}: {what}", request.state_name),
    )
}

fn parse_input(request: &TaskRequest) -> Result<Query, Failure> {
    let input = &request.input;
    let mut regions: Vec<String> = Vec::new();
    match input.get("region") {
        None | Some(Value::Null) => {}
        Some(Value::String(r)) => regions.push(r.clone()),
        Some(other) => {
            return Err(invalid(
                request,
                format!("\"region\" must be a region name such as eu-west-1, not {other}"),
            ));
        }
    }
    match input.get("regions") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for r in items {
                let Some(r) = r.as_str() else {
                    return Err(invalid(
                        request,
                        format!("\"regions\" must list region names, not {r}"),
                    ));
                };
                if !regions.iter().any(|x| x == r) {
                    regions.push(r.to_string());
                }
            }
        }
        Some(other) => {
            return Err(invalid(
                request,
                format!("\"regions\" must be a list of region names, not {other}"),
            ));
        }
    }
    if regions.is_empty() {
        return Err(invalid(
            request,
            "name the target with \"region\" (e.g. eu-west-1) or \"regions\" (a list): AWS Health is asked about those regions".into(),
        ));
    }
    if let Some(bad) = regions.iter().find(|r| !super::aws_step::valid_region(r)) {
        return Err(invalid(
            request,
            format!("{bad:?} is not an AWS region name such as eu-west-1"),
        ));
    }
    if regions.len() > 10 {
        return Err(invalid(
            request,
            format!(
                "AWS Health filters on at most 10 regions, {} were given: split the check",
                regions.len()
            ),
        ));
    }
    let services: Vec<String> = match input.get("services") {
        Some(Value::Array(items)) if !items.is_empty() => {
            let mut out: Vec<String> = Vec::new();
            for s in items {
                match s.as_str() {
                    Some(s) if !s.trim().is_empty() => {
                        let s = s.trim().to_ascii_uppercase();
                        if !out.contains(&s) {
                            out.push(s);
                        }
                    }
                    _ => {
                        return Err(invalid(
                            request,
                            format!(
                                "\"services\" must list AWS Health service codes such as ECS, not {s}"
                            ),
                        ));
                    }
                }
            }
            out
        }
        _ => {
            return Err(invalid(
                request,
                "\"services\" is required: a non-empty list of AWS Health service codes such as [ECS, EC2, ELASTICLOADBALANCING, RDS]".into(),
            ));
        }
    };
    if services.len() > 10 {
        return Err(invalid(
            request,
            format!(
                "AWS Health filters on at most 10 services, {} were given: split the check",
                services.len()
            ),
        ));
    }
    let fail_open = match input.get("policy") {
        None | Some(Value::Null) => false,
        Some(Value::Object(p)) => match p.get("fail_open") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(invalid(
                    request,
                    format!("\"policy.fail_open\" must be true or false, not {other}"),
                ));
            }
        },
        Some(other) => {
            return Err(invalid(
                request,
                format!(
                    "\"policy\" must be an object such as {{\"fail_open\": false}}, not {other}"
                ),
            ));
        }
    };
    let environment = match input.get("environment") {
        None | Some(Value::Null) => None,
        Some(Value::String(e)) => Some(e.clone()),
        Some(other) => {
            return Err(invalid(
                request,
                format!("\"environment\" must be a string (the audit chain), not {other}"),
            ));
        }
    };
    Ok(Query {
        regions,
        services,
        fail_open,
        environment,
    })
}

/// `region=url,region=url`.
fn parse_endpoints(spec: &str) -> Result<Vec<HealthEndpoint>, Failure> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some((region, url))
                if super::aws_step::valid_region(region.trim())
                    && (url.trim().starts_with("http://")
                        || url.trim().starts_with("https://")) =>
            {
                out.push(HealthEndpoint {
                    region: region.trim().to_string(),
                    url: Some(url.trim().to_string()),
                });
            }
            _ => {
                return Err(Failure::new(
                    format!("{STEP}.InvalidInput"),
                    format!(
                        "{ENDPOINTS_ENV}: {part:?} is not REGION=URL; write e.g. us-east-1=https://health.us-east-1.amazonaws.com,us-east-2=https://health.us-east-2.amazonaws.com"
                    ),
                ));
            }
        }
    }
    if out.is_empty() {
        return Err(Failure::new(
            format!("{STEP}.InvalidInput"),
            format!("{ENDPOINTS_ENV} names no endpoint: write REGION=URL,REGION=URL or unset it"),
        ));
    }
    Ok(out)
}

/// Every page of open issues.
async fn fetch_all(
    client: &Client,
    filter: &EventFilter,
) -> Result<Vec<Event>, SdkError<DescribeEventsError>> {
    let mut events = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let page = client
            .describe_events()
            .filter(filter.clone())
            .max_results(100)
            .set_next_token(token.clone())
            .send()
            .await?;
        events.extend(page.events().iter().cloned());
        match page.next_token() {
            Some(t) if !t.is_empty() && token.as_deref() != Some(t) => token = Some(t.to_string()),
            _ => return Ok(events),
        }
    }
    tracing::warn!(
        pages = MAX_PAGES,
        "AWS Health kept paging; using what was read"
    );
    Ok(events)
}

/// Errors after which the other endpoint is asked: the endpoint is
/// unreachable, timed out, answered 5xx, or throttled beyond the retries.
fn failover_worthy(e: &SdkError<DescribeEventsError>) -> bool {
    match e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            status >= 500
                || status == 429
                || matches!(
                    e.code(),
                    Some(
                        "ThrottlingException"
                            | "Throttling"
                            | "TooManyRequestsException"
                            | "RequestLimitExceeded"
                            | "ServiceUnavailable"
                            | "ServiceUnavailableException"
                            | "InternalFailure"
                    )
                )
        }
        _ => false,
    }
}

fn describe_sdk_error(e: &SdkError<DescribeEventsError>) -> String {
    match e {
        SdkError::ServiceError(s) => format!(
            "HTTP {}{}{}",
            s.raw().status().as_u16(),
            e.code().map(|c| format!(" {c}")).unwrap_or_default(),
            e.message().map(|m| format!(": {m}")).unwrap_or_default()
        ),
        SdkError::DispatchFailure(_) => "connection failed".into(),
        SdkError::TimeoutError(_) => "timed out".into(),
        other => {
            use std::error::Error as _;
            let mut text = other.to_string();
            let mut src = other.source();
            while let Some(s) = src {
                text.push_str(&format!(": {s}"));
                src = s.source();
            }
            text
        }
    }
}

/// A non-failover error from an endpoint, as a step failure.
fn classify(e: &SdkError<DescribeEventsError>, ep: &HealthEndpoint) -> Failure {
    let text = describe_sdk_error(e);
    match e.code() {
        Some("SubscriptionRequiredException") => Failure::new(
            format!("{STEP}.Unavailable"),
            format!(
                "the AWS Health API refused the account (SubscriptionRequiredException from {}): it needs a Business, Enterprise On-Ramp or Enterprise Support plan. Subscribe to one (https://aws.amazon.com/premiumsupport/), or set policy.fail_open: true to deploy without the check",
                ep.label()
            ),
        ),
        Some("AccessDeniedException" | "AccessDenied" | "UnrecognizedClientException") => {
            Failure::new(
                format!("{STEP}.AccessDenied"),
                format!(
                    "AWS Health refused DescribeEvents ({text} from {}): allow health:DescribeEvents to the deploying role",
                    ep.label()
                ),
            )
        }
        _ => Failure::new(
            format!("{STEP}.Failed"),
            format!("AWS Health DescribeEvents failed at {}: {text}", ep.label()),
        ),
    }
}

fn time(t: Option<&DateTime>) -> Value {
    t.and_then(|t| t.fmt(DateTimeFormat::DateTime).ok())
        .map(Value::String)
        .unwrap_or(Value::Null)
}

fn event_json(e: &Event) -> Value {
    let s = |v: Option<&str>| {
        v.map(|s| Value::String(s.to_string()))
            .unwrap_or(Value::Null)
    };
    json!({
        "arn": s(e.arn()),
        "service": s(e.service()),
        "region": s(e.region()),
        "availabilityZone": s(e.availability_zone()),
        "eventTypeCode": s(e.event_type_code()),
        "eventTypeCategory": s(e.event_type_category().map(|c| c.as_str())),
        "statusCode": s(e.status_code().map(|c| c.as_str())),
        "eventScopeCode": s(e.event_scope_code().map(|c| c.as_str())),
        "startTime": time(e.start_time()),
        "lastUpdatedTime": time(e.last_updated_time()),
    })
}

fn closed_cause(query: &Query, open: &[Value]) -> String {
    let field = |e: &Value, k: &str| e.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
    let listed: Vec<String> = open
        .iter()
        .take(CAUSE_EVENTS)
        .map(|e| {
            format!(
                "{} {} {} since {} ({})",
                field(e, "service"),
                field(e, "region"),
                field(e, "eventTypeCode"),
                field(e, "startTime"),
                field(e, "arn")
            )
        })
        .collect();
    let more = if open.len() > CAUSE_EVENTS {
        format!("; and {} more", open.len() - CAUSE_EVENTS)
    } else {
        String::new()
    };
    format!(
        "AWS Health reports {} open issue(s) for {} in {}: {}{more}. The gate reopens when AWS closes them: retry on HealthGate.Closed to wait for the all-clear, or follow them on https://health.aws.amazon.com/health/home",
        open.len(),
        query.services.join(","),
        query.regions.join(","),
        listed.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_lists() {
        let e = parse_endpoints("us-east-1=http://a:1, us-east-2=https://b").unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].region, "us-east-2");
        assert_eq!(e[1].url.as_deref(), Some("https://b"));
        assert!(parse_endpoints("us-east-1").is_err());
        assert!(parse_endpoints("nowhere=http://a").is_err());
        assert!(parse_endpoints(" , ").is_err());
    }

    /// Without overrides the two clients reach the two regional Health
    /// endpoints.
    #[tokio::test]
    async fn default_endpoints_are_regional() {
        use aws_sdk_health::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
        for region in DEFAULT_ENDPOINT_REGIONS {
            let params = Params::builder()
                .region(region.to_string())
                .use_fips(false)
                .use_dual_stack(false)
                .build()
                .unwrap();
            let e = DefaultResolver::new()
                .resolve_endpoint(&params)
                .await
                .unwrap();
            assert_eq!(e.url(), format!("https://health.{region}.amazonaws.com"));
        }
    }
}
