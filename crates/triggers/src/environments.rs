//! piflow.yaml's `product:` and `environments:`: what the product is, and
//! the policy of each environment, declared once and applied to every
//! start (tag, event, terminal).
//!
//! ```yaml
//! product:
//!   name: product
//!   image: "registry.example/product/{service}:{version}"   # default template
//!   container: web                                            # default container
//!   services: [dashboard, renderer, scheduler, {name: pirana, image: "…/pirana:{version}"}]
//!   waves: [[dashboard], [renderer, scheduler, pirana]]
//! environments:
//!   dev:
//!     region: us-east-1
//!     cluster: product
//!     policy:
//!       lint: {fail_on: error}
//!       scan: {fail_on: high, suppressions: [{check: CKV_AWS_118, reason: "…", expires: 2027-06-30}]}
//!     rollout: {strategy: canary, percent: 25, step_minutes: 1, bake_minutes: 1, alarms: [dev-dashboard-5xx]}
//!     gates: {health_services: [ECS, ELASTICLOADBALANCING], smoke_urls: ["https://dev.example/health"]}
//!     remediation: {alarm_window_minutes: 60}
//! ```
//!
//! [`Estate::apply`] turns a start's input into the input that runs: the
//! environment's region, cluster and role fill `target`, the product fills
//! `product`, and the environment's `policy`, `rollout` and `gates` are
//! merged with the input's. An input may tighten them (a stricter
//! threshold, fewer suppressions, a more gradual strategy, longer bakes,
//! more alarms, more smoke URLs), never loosen them: an input that would
//! is refused ([`PolicyError`], code `policy-loosened`), naming the field.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::config::ConfigError;
use super::tags::is_region;
use piflow_asl::source::{Node, SourceText};

/// The product and the environments, as piflow.yaml declares them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Estate {
    /// `product:` as JSON (the shape `piflow:release` takes).
    pub product: Option<Value>,
    pub environments: BTreeMap<String, Environment>,
}

/// One environment's declared policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Environment {
    pub name: String,
    pub region: Option<String>,
    pub cluster: Option<String>,
    pub role_arn: Option<String>,
    /// `{lint, scan}`.
    pub policy: Value,
    pub rollout: Value,
    pub gates: Value,
    pub remediation: Value,
}

/// An input refused by an environment's policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment {env}: {field}: {message}")]
pub struct PolicyError {
    pub code: &'static str,
    pub env: String,
    /// Where in the input: `policy.scan.suppressions`, `rollout.strategy` …
    pub field: String,
    pub message: String,
}

impl PolicyError {
    /// Every code, with its meaning (docs/codes.md).
    pub const CODES: &[(&str, &str)] = &[
        (
            "policy-loosened",
            "the input loosens the environment's policy (piflow.yaml environments:)",
        ),
        (
            "policy-invalid",
            "a policy value (a threshold, a list, a number) is not one piflow knows",
        ),
        (
            "environment-unknown",
            "the input names an environment piflow.yaml does not declare",
        ),
        (
            "environment-mismatch",
            "the input's region, cluster or role differs from the environment's",
        ),
    ];
}

const PRODUCT_KEYS: [&str; 5] = ["name", "image", "container", "services", "waves"];
const SERVICE_KEYS: [&str; 4] = ["name", "service", "image", "container"];
const ENV_KEYS: [&str; 7] = [
    "region",
    "cluster",
    "role_arn",
    "policy",
    "rollout",
    "gates",
    "remediation",
];
const POLICY_KEYS: [&str; 2] = ["lint", "scan"];
const ROLLOUT_KEYS: [&str; 8] = [
    "strategy",
    "percent",
    "step_minutes",
    "bake_minutes",
    "alarms",
    "timeout_minutes",
    "interval_seconds",
    "bake_seconds",
];
const GATE_KEYS: [&str; 3] = ["health_services", "smoke_urls", "fail_open"];
const REMEDIATION_KEYS: [&str; 1] = ["alarm_window_minutes"];

/// The variables an image template may use.
const IMAGE_VARS: [&str; 2] = ["service", "version"];

struct P<'a> {
    src: &'a SourceText,
}

impl P<'_> {
    fn err(&self, node: &Node, key: &str, message: String) -> ConfigError {
        ConfigError {
            file: self.src.name.clone(),
            line: Some(self.src.line_col(node.span.start)),
            key: key.to_string(),
            message,
        }
    }

    /// A mapping with only `allowed` keys.
    fn mapping<'n>(
        &self,
        node: &'n Node,
        at: &str,
        allowed: &[&str],
    ) -> Result<&'n [(piflow_asl::source::Key, Node)], ConfigError> {
        let Some(entries) = node.as_object() else {
            return Err(self.err(
                node,
                at,
                format!("must be a mapping, not a {}", node.type_name()),
            ));
        };
        for (k, v) in entries {
            if !allowed.contains(&k.name.as_str()) {
                return Err(self.err(
                    v,
                    &format!("{at}.{}", k.name),
                    format!("unknown key; {at} holds {}", allowed.join(", ")),
                ));
            }
        }
        Ok(entries)
    }

    fn name(&self, node: &Node, at: &str) -> Result<String, ConfigError> {
        match node.as_str() {
            Some(s)
                if !s.is_empty()
                    && s.len() <= 255
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')) =>
            {
                Ok(s.to_string())
            }
            _ => Err(self.err(
                node,
                at,
                format!(
                    "must be a name of letters, digits, - and _ (1–255), not {}",
                    node.to_value()
                ),
            )),
        }
    }

    fn image_template(&self, node: &Node, at: &str) -> Result<String, ConfigError> {
        let Some(t) = node.as_str().filter(|s| !s.trim().is_empty()) else {
            return Err(self.err(node, at, "must be a non-empty image template".into()));
        };
        let mut rest = t;
        while let Some(i) = rest.find('{') {
            let after = &rest[i + 1..];
            let Some(end) = after.find('}') else {
                return Err(self.err(node, at, format!("{t:?}: '{{' without '}}'")));
            };
            let var = &after[..end];
            if !IMAGE_VARS.contains(&var) {
                return Err(self.err(
                    node,
                    at,
                    format!(
                        "{t:?}: unknown variable {{{var}}}; an image template may use {{service}} and {{version}}"
                    ),
                ));
            }
            rest = &after[end + 1..];
        }
        Ok(t.to_string())
    }

    fn product(&self, node: &Node) -> Result<Value, ConfigError> {
        self.mapping(node, "product", &PRODUCT_KEYS)?;
        let mut out = Map::new();
        if let Some(n) = node.get("name") {
            out.insert("name".into(), json!(self.name(n, "product.name")?));
        }
        if let Some(n) = node.get("image") {
            out.insert(
                "image".into(),
                json!(self.image_template(n, "product.image")?),
            );
        }
        if let Some(n) = node.get("container") {
            out.insert(
                "container".into(),
                json!(self.name(n, "product.container")?),
            );
        }
        let Some(services) = node.get("services") else {
            return Err(self.err(
                node,
                "product.services",
                "is required: the product's ECS services".into(),
            ));
        };
        let Some(list) = services.as_array().filter(|l| !l.is_empty()) else {
            return Err(self.err(
                services,
                "product.services",
                "must be a non-empty list of services (names or {name, service, image, container})"
                    .into(),
            ));
        };
        let mut names: Vec<String> = Vec::new();
        let mut items = Vec::new();
        for (i, s) in list.iter().enumerate() {
            let at = format!("product.services[{i}]");
            let item = if s.as_str().is_some() {
                let n = self.name(s, &at)?;
                names.push(n.clone());
                json!(n)
            } else {
                self.mapping(s, &at, &SERVICE_KEYS)?;
                let Some(n) = s.get("name") else {
                    return Err(self.err(s, &format!("{at}.name"), "is required".into()));
                };
                let n = self.name(n, &format!("{at}.name"))?;
                let mut m = Map::new();
                m.insert("name".into(), json!(n));
                if let Some(v) = s.get("service") {
                    m.insert(
                        "service".into(),
                        json!(self.name(v, &format!("{at}.service"))?),
                    );
                }
                if let Some(v) = s.get("image") {
                    m.insert(
                        "image".into(),
                        json!(self.image_template(v, &format!("{at}.image"))?),
                    );
                }
                if let Some(v) = s.get("container") {
                    m.insert(
                        "container".into(),
                        json!(self.name(v, &format!("{at}.container"))?),
                    );
                }
                names.push(n);
                Value::Object(m)
            };
            if names[..names.len() - 1].contains(&names[names.len() - 1]) {
                return Err(self.err(
                    s,
                    &at,
                    format!("names service {} twice", names[names.len() - 1]),
                ));
            }
            if out.get("image").is_none() && item.get("image").is_none() {
                return Err(self.err(
                    s,
                    &at,
                    format!(
                        "service {}: no image: give product.image or this service's image (a template such as registry.example/product/{{service}}:{{version}})",
                        names[names.len() - 1]
                    ),
                ));
            }
            items.push(item);
        }
        out.insert("services".into(), Value::Array(items));
        if let Some(w) = node.get("waves") {
            let Some(ws) = w.as_array().filter(|l| !l.is_empty()) else {
                return Err(self.err(
                    w,
                    "product.waves",
                    "must be a non-empty list of lists of service names".into(),
                ));
            };
            let mut seen: BTreeMap<String, usize> = BTreeMap::new();
            let mut waves = Vec::new();
            for (wi, wave) in ws.iter().enumerate() {
                let at = format!("product.waves[{wi}]");
                let Some(list) = wave.as_array().filter(|l| !l.is_empty()) else {
                    return Err(self.err(
                        wave,
                        &at,
                        "must be a non-empty list of service names".into(),
                    ));
                };
                let mut names_in = Vec::new();
                for n in list {
                    let name = self.name(n, &at)?;
                    if !names.contains(&name) {
                        return Err(self.err(
                            n,
                            &at,
                            format!(
                                "names {name}, which is not in product.services ({})",
                                names.join(", ")
                            ),
                        ));
                    }
                    if let Some(prev) = seen.insert(name.clone(), wi) {
                        return Err(self.err(
                            n,
                            &at,
                            format!(
                                "names {name}, already in product.waves[{prev}]: a service rolls once per release"
                            ),
                        ));
                    }
                    names_in.push(json!(name));
                }
                waves.push(Value::Array(names_in));
            }
            if let Some(missing) = names.iter().find(|n| !seen.contains_key(*n)) {
                return Err(self.err(
                    w,
                    "product.waves",
                    format!("service {missing} is in no wave: add it to one"),
                ));
            }
            out.insert("waves".into(), Value::Array(waves));
        }
        Ok(Value::Object(out))
    }

    fn environment(&self, name: &str, node: &Node) -> Result<Environment, ConfigError> {
        let at = format!("environments.{name}");
        self.mapping(node, &at, &ENV_KEYS)?;
        let text = |key: &str| -> Result<Option<String>, ConfigError> {
            match node.get(key) {
                None => Ok(None),
                Some(n) => match n.as_str().filter(|s| !s.trim().is_empty()) {
                    Some(s) => Ok(Some(s.to_string())),
                    None => Err(self.err(
                        n,
                        &format!("{at}.{key}"),
                        format!("must be a non-empty string, not {}", n.to_value()),
                    )),
                },
            }
        };
        let region = text("region")?;
        if let (Some(r), Some(n)) = (&region, node.get("region"))
            && !(is_region(r) && r != "global")
        {
            return Err(self.err(
                n,
                &format!("{at}.region"),
                format!("{r:?} is not an AWS region name such as us-east-1"),
            ));
        }
        let object = |key: &str, allowed: &[&str]| -> Result<Value, ConfigError> {
            match node.get(key) {
                None => Ok(Value::Null),
                Some(n) => {
                    self.mapping(n, &format!("{at}.{key}"), allowed)?;
                    Ok(n.to_value())
                }
            }
        };
        let policy = object("policy", &POLICY_KEYS)?;
        let rollout = object("rollout", &ROLLOUT_KEYS)?;
        let gates = object("gates", &GATE_KEYS)?;
        let remediation = object("remediation", &REMEDIATION_KEYS)?;
        // The values are checked by the same rules an input's are (merged
        // with themselves: nothing is loosened, every value is read).
        let mut probe = Estate::default();
        probe.environments.insert(
            name.to_string(),
            Environment {
                name: name.to_string(),
                region: None,
                cluster: None,
                role_arn: None,
                policy: policy.clone(),
                rollout: rollout.clone(),
                gates: gates.clone(),
                remediation: Value::Null,
            },
        );
        let as_input = json!({"target": {"environment": name}, "policy": policy, "rollout": rollout, "gates": gates});
        if let Err(e) = probe.apply(as_input) {
            return Err(self.err(node, &format!("{at}.{}", e.field), e.message));
        }
        if let Some(w) = remediation.get("alarm_window_minutes")
            && w.as_u64().is_none_or(|m| m > 10_080)
        {
            return Err(self.err(
                node,
                &format!("{at}.remediation.alarm_window_minutes"),
                format!("must be a whole number of minutes from 0 to 10080, not {w}"),
            ));
        }
        Ok(Environment {
            name: name.to_string(),
            region,
            cluster: text("cluster")?,
            role_arn: text("role_arn")?,
            policy,
            rollout,
            gates,
            remediation,
        })
    }
}

/// Parse `product:`.
pub fn parse_product(src: &SourceText, node: &Node) -> Result<Value, ConfigError> {
    P { src }.product(node)
}

/// Parse `environments:`.
pub fn parse_environments(
    src: &SourceText,
    node: &Node,
) -> Result<BTreeMap<String, Environment>, ConfigError> {
    let p = P { src };
    let Some(entries) = node.as_object() else {
        return Err(p.err(
            node,
            "environments",
            format!(
                "must be a mapping of environment names to their policy, not a {}",
                node.type_name()
            ),
        ));
    };
    let mut out = BTreeMap::new();
    for (k, v) in entries {
        let name = p.name(
            &Node::new(piflow_asl::source::NodeKind::String(k.name.clone()), k.span),
            "environments",
        )?;
        out.insert(name.clone(), p.environment(&name, v)?);
    }
    Ok(out)
}

/// The rank of a threshold: higher fails on more.
fn lint_rank(v: &str) -> Option<u8> {
    Some(match v {
        "never" => 0,
        "error" => 1,
        "warning" => 2,
        "info" => 3,
        _ => return None,
    })
}

fn scan_rank(v: &str) -> Option<u8> {
    Some(match v.to_ascii_lowercase().as_str() {
        "never" => 0,
        "critical" => 1,
        "high" => 2,
        "medium" => 3,
        "low" => 4,
        "info" => 5,
        _ => return None,
    })
}

/// How gradual a strategy is: an input may pick one at least as gradual.
fn strategy_rank(v: &str) -> Option<u8> {
    Some(match v {
        "rolling" => 0,
        "blue-green" | "all-at-once" => 1,
        "canary" | "linear" => 2,
        _ => return None,
    })
}

/// The declared object with the given one's keys on top.
fn overlay(
    declared: Option<&Map<String, Value>>,
    given: Option<&Map<String, Value>>,
) -> Map<String, Value> {
    let mut merged = declared.cloned().unwrap_or_default();
    if let Some(g) = given {
        merged.extend(g.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    merged
}

/// Set `k` to `v`, or remove it for `None`.
fn put(m: &mut Map<String, Value>, k: &str, v: Option<Value>) {
    match v {
        Some(v) => {
            m.insert(k.to_string(), v);
        }
        None => {
            m.remove(k);
        }
    }
}

struct Merge<'a> {
    env: &'a str,
}

impl Merge<'_> {
    fn loosened(&self, field: &str, message: String) -> PolicyError {
        PolicyError {
            code: "policy-loosened",
            env: self.env.to_string(),
            field: field.to_string(),
            message,
        }
    }

    fn invalid(&self, field: &str, message: String) -> PolicyError {
        PolicyError {
            code: "policy-invalid",
            env: self.env.to_string(),
            field: field.to_string(),
            message,
        }
    }

    /// A threshold: the input's when at least as strict.
    fn threshold(
        &self,
        field: &str,
        declared: Option<&Value>,
        given: Option<&Value>,
        rank: fn(&str) -> Option<u8>,
        allowed: &str,
    ) -> Result<Option<Value>, PolicyError> {
        let r = |v: &Value| -> Result<u8, PolicyError> {
            v.as_str()
                .and_then(rank)
                .ok_or_else(|| self.invalid(field, format!("must be one of {allowed}, not {v}")))
        };
        match (declared, given) {
            (Some(d), Some(g)) => {
                let (dr, gr) = (r(d)?, r(g)?);
                if gr < dr {
                    return Err(self.loosened(
                        field,
                        format!(
                            "the input asks {g}, which fails on less than the environment's {d}; raise it in piflow.yaml if that is meant"
                        ),
                    ));
                }
                Ok(Some(g.clone()))
            }
            (None, Some(g)) => {
                r(g)?;
                Ok(Some(g.clone()))
            }
            (Some(d), None) => {
                r(d)?;
                Ok(Some(d.clone()))
            }
            (None, None) => Ok(None),
        }
    }

    /// A list the input may only shorten (suppressions, ignored rules):
    /// `key` identifies an item.
    fn subset(
        &self,
        field: &str,
        declared: Option<&Value>,
        given: Option<&Value>,
        key: fn(&Value) -> String,
    ) -> Result<Option<Value>, PolicyError> {
        let list = |v: Option<&Value>| -> Result<Vec<Value>, PolicyError> {
            match v {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(a)) => Ok(a.clone()),
                Some(other) => Err(self.invalid(field, format!("must be a list, not {other}"))),
            }
        };
        let d = list(declared)?;
        let Some(given) = given.filter(|v| !v.is_null()) else {
            return Ok(declared.cloned());
        };
        let g = list(Some(given))?;
        for item in &g {
            let k = key(item);
            if !d.iter().any(|x| key(x) == k) {
                return Err(self.loosened(
                    field,
                    format!(
                        "the input adds {k}, which the environment does not allow; declare it (with its reason and expiry) in piflow.yaml environments.{}.{field}",
                        self.env
                    ),
                ));
            }
        }
        Ok(Some(Value::Array(g)))
    }

    /// A flag the input may only turn off.
    fn flag(
        &self,
        field: &str,
        declared: Option<&Value>,
        given: Option<&Value>,
    ) -> Result<Option<Value>, PolicyError> {
        let d = declared.and_then(Value::as_bool).unwrap_or(false);
        match given.filter(|v| !v.is_null()) {
            None => Ok(declared.cloned()),
            Some(Value::Bool(true)) if !d => Err(self.loosened(
                field,
                "the input turns it on and the environment does not".into(),
            )),
            Some(Value::Bool(b)) => Ok(Some(json!(b))),
            Some(other) => Err(self.invalid(field, format!("must be true or false, not {other}"))),
        }
    }

    /// A number the input may raise (`larger`) or lower (`!larger`).
    fn bound(
        &self,
        field: &str,
        declared: Option<&Value>,
        given: Option<&Value>,
        larger: bool,
    ) -> Result<Option<Value>, PolicyError> {
        let num = |v: &Value| -> Result<f64, PolicyError> {
            v.as_f64()
                .filter(|n| *n >= 0.0)
                .ok_or_else(|| self.invalid(field, format!("must be a number ≥ 0, not {v}")))
        };
        match (
            declared.filter(|v| !v.is_null()),
            given.filter(|v| !v.is_null()),
        ) {
            (Some(d), Some(g)) => {
                let (dn, gn) = (num(d)?, num(g)?);
                if (larger && gn < dn) || (!larger && gn > dn) {
                    return Err(self.loosened(
                        field,
                        format!(
                            "the input asks {g}, {} than the environment's {d}",
                            if larger { "less" } else { "more" }
                        ),
                    ));
                }
                Ok(Some(g.clone()))
            }
            (None, Some(g)) => {
                num(g)?;
                Ok(Some(g.clone()))
            }
            (d, None) => Ok(d.cloned()),
        }
    }

    /// Lists whose items add up (alarms, smoke URLs, Health services).
    fn union(
        &self,
        field: &str,
        declared: Option<&Value>,
        given: Option<&Value>,
    ) -> Result<Option<Value>, PolicyError> {
        let mut out: Vec<Value> = Vec::new();
        for v in [declared, given].into_iter().flatten() {
            match v {
                Value::Null => {}
                Value::Array(a) => {
                    for x in a {
                        if !out.contains(x) {
                            out.push(x.clone());
                        }
                    }
                }
                other => {
                    return Err(self.invalid(field, format!("must be a list, not {other}")));
                }
            }
        }
        Ok((declared.is_some() || given.is_some()).then_some(Value::Array(out)))
    }

    fn object<'v>(
        &self,
        field: &str,
        v: Option<&'v Value>,
    ) -> Result<Option<&'v Map<String, Value>>, PolicyError> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(other) => Err(self.invalid(field, format!("must be an object, not {other}"))),
        }
    }

    fn policy(&self, declared: &Value, given: Option<&Value>) -> Result<Value, PolicyError> {
        let mut out = self.object("policy", given)?.cloned().unwrap_or_default();
        for (part, rank, allowed) in [
            (
                "lint",
                lint_rank as fn(&str) -> Option<u8>,
                "never, error, warning, info",
            ),
            (
                "scan",
                scan_rank,
                "never, critical, high, medium, low, info",
            ),
        ] {
            let d = self.object(&format!("policy.{part}"), declared.get(part))?;
            let g = self.object(&format!("policy.{part}"), given.and_then(|g| g.get(part)))?;
            if d.is_none() && g.is_none() {
                continue;
            }
            // Operational keys (timeouts, runner …): the input's win.
            let mut merged = overlay(d, g);
            let field = |k: &str| format!("policy.{part}.{k}");
            let dv = |k: &str| d.and_then(|m| m.get(k));
            let gv = |k: &str| g.and_then(|m| m.get(k));
            let mut set = |k: &str, v: Option<Value>| put(&mut merged, k, v);
            set(
                "fail_on",
                self.threshold(
                    &field("fail_on"),
                    dv("fail_on"),
                    gv("fail_on"),
                    rank,
                    allowed,
                )?,
            );
            if part == "lint" {
                set(
                    "ignore_rules",
                    self.subset(
                        &field("ignore_rules"),
                        dv("ignore_rules"),
                        gv("ignore_rules"),
                        |v| v.as_str().map_or_else(|| v.to_string(), str::to_string),
                    )?,
                );
                set(
                    "allow_missing_tools",
                    self.flag(
                        &field("allow_missing_tools"),
                        dv("allow_missing_tools"),
                        gv("allow_missing_tools"),
                    )?,
                );
            } else {
                set(
                    "suppressions",
                    self.subset(
                        &field("suppressions"),
                        dv("suppressions"),
                        gv("suppressions"),
                        |v| {
                            let check = v.get("check").and_then(Value::as_str).unwrap_or("?");
                            match v.get("resource").and_then(Value::as_str) {
                                Some(r) => format!("{check} on {r}"),
                                None => check.to_string(),
                            }
                        },
                    )?,
                );
            }
            out.insert(part.to_string(), Value::Object(merged));
        }
        Ok(Value::Object(out))
    }

    fn rollout(&self, declared: &Value, given: Option<&Value>) -> Result<Value, PolicyError> {
        let g = self.object("rollout", given)?;
        let d = self.object("rollout", Some(declared))?;
        if g.is_none() && d.is_none() {
            return Ok(Value::Null);
        }
        let mut merged = overlay(d, g);
        let dv = |k: &str| d.and_then(|m| m.get(k));
        let gv = |k: &str| g.and_then(|m| m.get(k));
        let mut set = |k: &str, v: Option<Value>| put(&mut merged, k, v);
        set(
            "strategy",
            self.threshold(
                "rollout.strategy",
                dv("strategy"),
                gv("strategy"),
                strategy_rank,
                "rolling, blue-green, canary, linear",
            )?,
        );
        set(
            "percent",
            self.bound("rollout.percent", dv("percent"), gv("percent"), false)?,
        );
        for k in [
            "step_minutes",
            "bake_minutes",
            "interval_seconds",
            "bake_seconds",
        ] {
            set(k, self.bound(&format!("rollout.{k}"), dv(k), gv(k), true)?);
        }
        set(
            "timeout_minutes",
            self.bound(
                "rollout.timeout_minutes",
                dv("timeout_minutes"),
                gv("timeout_minutes"),
                false,
            )?,
        );
        set(
            "alarms",
            self.union("rollout.alarms", dv("alarms"), gv("alarms"))?,
        );
        Ok(Value::Object(merged))
    }

    fn gates(&self, declared: &Value, given: Option<&Value>) -> Result<Value, PolicyError> {
        let g = self.object("gates", given)?;
        let d = self.object("gates", Some(declared))?;
        if g.is_none() && d.is_none() {
            return Ok(Value::Null);
        }
        let mut out = Map::new();
        let dv = |k: &str| d.and_then(|m| m.get(k));
        let gv = |k: &str| g.and_then(|m| m.get(k));
        for k in ["health_services", "smoke_urls"] {
            if let Some(v) = self.union(&format!("gates.{k}"), dv(k), gv(k))? {
                out.insert(k.into(), v);
            }
        }
        if let Some(v) = self.flag("gates.fail_open", dv("fail_open"), gv("fail_open"))? {
            out.insert("fail_open".into(), v);
        }
        if let Some(g) = g
            && let Some(k) = g.keys().find(|k| !GATE_KEYS.contains(&k.as_str()))
        {
            return Err(self.invalid(
                &format!("gates.{k}"),
                format!("unknown gate; gates are {}", GATE_KEYS.join(", ")),
            ));
        }
        Ok(Value::Object(out))
    }
}

impl Estate {
    /// Is there anything to apply?
    pub fn is_empty(&self) -> bool {
        self.product.is_none() && self.environments.is_empty()
    }

    /// The input that runs, from the input a start gives: see the module
    /// documentation. An input without `target.environment` (or with no
    /// environments declared) gets only the product.
    pub fn apply(&self, mut input: Value) -> Result<Value, PolicyError> {
        let Some(obj) = input.as_object_mut() else {
            return Ok(input);
        };
        let env_name = obj
            .get("target")
            .and_then(|t| t.get("environment"))
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(p) = &self.product
            && obj.get("product").is_none_or(Value::is_null)
            && env_name.is_some()
        {
            obj.insert("product".into(), p.clone());
        }
        let Some(name) = env_name else {
            return Ok(input);
        };
        if self.environments.is_empty() {
            return Ok(input);
        }
        let Some(env) = self.environments.get(&name) else {
            return Err(PolicyError {
                code: "environment-unknown",
                env: name.clone(),
                field: "target.environment".into(),
                message: format!(
                    "piflow.yaml declares no environment {name:?} (its environments: {}); add it under environments: with its policy",
                    self.environments
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        };
        let m = Merge { env: &name };
        if let Some(target) = obj.get_mut("target").and_then(Value::as_object_mut) {
            for (key, declared) in [
                ("region", &env.region),
                ("cluster", &env.cluster),
                ("role_arn", &env.role_arn),
            ] {
                let Some(d) = declared else { continue };
                match target.get(key).filter(|v| !v.is_null()) {
                    None => {
                        target.insert(key.into(), json!(d));
                    }
                    Some(v) if v.as_str() == Some(d.as_str()) => {}
                    Some(v) => {
                        return Err(PolicyError {
                            code: "environment-mismatch",
                            env: name.clone(),
                            field: format!("target.{key}"),
                            message: format!(
                                "the input gives {v}, and environment {name} is declared with {key} {d:?} in piflow.yaml"
                            ),
                        });
                    }
                }
            }
        }
        let policy = m.policy(&env.policy, obj.get("policy"))?;
        if policy.as_object().is_some_and(|p| !p.is_empty()) || obj.contains_key("policy") {
            obj.insert("policy".into(), policy);
        }
        let rollout = m.rollout(&env.rollout, obj.get("rollout"))?;
        if !rollout.is_null() {
            obj.insert("rollout".into(), rollout);
        }
        let gates = m.gates(&env.gates, obj.get("gates"))?;
        if !gates.is_null() {
            obj.insert("gates".into(), gates);
        }
        // The remediation window is the environment's alone.
        if !env.remediation.is_null() {
            match obj.get("remediation").filter(|v| !v.is_null()) {
                Some(given) if *given != env.remediation => {
                    return Err(m.loosened(
                        "remediation",
                        format!(
                            "the input gives {given}; the remediation window is the environment's ({}): change it in piflow.yaml",
                            env.remediation
                        ),
                    ));
                }
                _ => {
                    obj.insert("remediation".into(), env.remediation.clone());
                }
            }
        }
        Ok(input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn estate() -> Estate {
        let text = r#"
product:
  image: "registry.example/product/{service}:{version}"
  container: web
  services: [dashboard, renderer]
  waves: [[dashboard], [renderer]]
environments:
  dev:
    region: us-east-1
    cluster: product
    policy:
      lint: {fail_on: error}
      scan:
        fail_on: high
        suppressions:
          - {check: CKV_AWS_118, reason: "cost", expires: "2027-06-30"}
    rollout: {strategy: canary, percent: 25, step_minutes: 1, bake_minutes: 1, alarms: [dev-5xx]}
    gates: {health_services: [ECS]}
"#;
        let src = SourceText::new("piflow.yaml", text);
        let root = piflow_asl::yaml::parse_yaml(text).unwrap();
        Estate {
            product: Some(parse_product(&src, root.get("product").unwrap()).unwrap()),
            environments: parse_environments(&src, root.get("environments").unwrap()).unwrap(),
        }
    }

    fn input(extra: Value) -> Value {
        let mut v = json!({"target": {"environment": "dev", "region": "us-east-1"}, "release": {"version": "1.0"}});
        if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        v
    }

    #[test]
    fn the_environment_fills_the_input() {
        let out = estate().apply(input(json!({}))).unwrap();
        assert_eq!(out["target"]["cluster"], "product");
        assert_eq!(
            out["policy"]["scan"]["suppressions"][0]["check"],
            "CKV_AWS_118"
        );
        assert_eq!(out["rollout"]["strategy"], "canary");
        assert_eq!(out["product"]["waves"][1][0], "renderer");
        assert_eq!(out["gates"]["health_services"], json!(["ECS"]));
    }

    #[test]
    fn an_input_may_tighten() {
        let out = estate()
            .apply(input(json!({
                "policy": {"scan": {"fail_on": "low", "suppressions": []}, "lint": {"fail_on": "warning"}},
                "rollout": {"strategy": "linear", "percent": 10, "bake_minutes": 5, "alarms": ["dev-cpu"]},
            })))
            .unwrap();
        assert_eq!(out["policy"]["scan"]["fail_on"], "low");
        assert_eq!(out["policy"]["scan"]["suppressions"], json!([]));
        assert_eq!(out["rollout"]["alarms"], json!(["dev-5xx", "dev-cpu"]));
        assert_eq!(out["rollout"]["bake_minutes"], 5);
    }

    #[test]
    fn an_input_may_not_loosen() {
        let e = estate();
        for (extra, field) in [
            (
                json!({"policy": {"scan": {"fail_on": "critical"}}}),
                "policy.scan.fail_on",
            ),
            (
                json!({"policy": {"lint": {"fail_on": "never"}}}),
                "policy.lint.fail_on",
            ),
            (
                json!({"policy": {"scan": {"suppressions": [{"check": "CKV_AWS_1", "reason": "x"}]}}}),
                "policy.scan.suppressions",
            ),
            (
                json!({"rollout": {"strategy": "rolling"}}),
                "rollout.strategy",
            ),
            (json!({"rollout": {"percent": 50}}), "rollout.percent"),
            (
                json!({"rollout": {"bake_minutes": 0}}),
                "rollout.bake_minutes",
            ),
            (json!({"gates": {"fail_open": true}}), "gates.fail_open"),
        ] {
            let err = e.apply(input(extra.clone())).unwrap_err();
            assert_eq!(
                (err.code, err.field.as_str()),
                ("policy-loosened", field),
                "{extra}"
            );
        }
        let err = e
            .apply(json!({"target": {"environment": "prod"}}))
            .unwrap_err();
        assert_eq!(err.code, "environment-unknown");
        let err = e
            .apply(json!({"target": {"environment": "dev", "region": "eu-west-1"}}))
            .unwrap_err();
        assert_eq!(
            (err.code, err.field.as_str()),
            ("environment-mismatch", "target.region")
        );
    }

    #[test]
    fn bad_declarations_are_refused_with_their_place() {
        for (text, key) in [
            (
                "product: {image: 'x:{version}', services: [a, a]}",
                "product.services[1]",
            ),
            (
                "product: {image: 'x:{version}', services: [a], waves: [[a], [a]]}",
                "product.waves[1]",
            ),
            (
                "product: {image: 'x:{version}', services: [a, b], waves: [[a]]}",
                "product.waves",
            ),
            (
                "product: {image: 'x:{version}', services: [a], waves: [[z]]}",
                "product.waves[0]",
            ),
            (
                "product: {image: 'x:{tag}', services: [a]}",
                "product.image",
            ),
            ("product: {services: [a]}", "product.services[0]"),
        ] {
            let src = SourceText::new("piflow.yaml", text);
            let root = piflow_asl::yaml::parse_yaml(text).unwrap();
            let err = parse_product(&src, root.get("product").unwrap()).unwrap_err();
            assert_eq!(err.key, key, "{text}: {err}");
        }
        let text = "environments: {dev: {region: mars, policy: {}}}";
        let src = SourceText::new("piflow.yaml", text);
        let root = piflow_asl::yaml::parse_yaml(text).unwrap();
        let err = parse_environments(&src, root.get("environments").unwrap()).unwrap_err();
        assert_eq!(err.key, "environments.dev.region");
        let text = "environments: {dev: {rollout: {strategy: sideways}}}";
        let src = SourceText::new("piflow.yaml", text);
        let root = piflow_asl::yaml::parse_yaml(text).unwrap();
        let err = parse_environments(&src, root.get("environments").unwrap()).unwrap_err();
        assert_eq!(err.key, "environments.dev.rollout.strategy", "{err}");
    }
}
