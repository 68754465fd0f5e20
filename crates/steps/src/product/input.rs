//! The release step's input, read into a [`Plan`] with every problem at
//! once.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::Service;
use crate::ecs_native::{Rollout, Strategy};
use piflow_engine::TaskRequest;

pub(super) struct Plan {
    pub(super) env: String,
    pub(super) cluster: String,
    pub(super) version: String,
    pub(super) services: Vec<Service>,
    pub(super) waves: Vec<Vec<usize>>,
    pub(super) rollout: Rollout,
    pub(super) health_services: Vec<String>,
    pub(super) smoke_urls: Vec<String>,
    pub(super) fail_open: bool,
    pub(super) reason: Value,
    pub(super) force: bool,
}

pub(super) fn text(v: &Value) -> Option<String> {
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
pub(super) fn parse(request: &TaskRequest) -> Result<Plan, Vec<String>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn req(input: Value) -> TaskRequest {
        TaskRequest {
            execution: "e".into(),
            state_name: "Release".into(),
            resource: "piflow:release".into(),
            input,
            task_token: None,
            idempotency_token: "t".into(),
            credentials: None,
            attempt: 0,
        }
    }

    fn base() -> Value {
        json!({
            "environment": "dev",
            "cluster": "product",
            "release": {"version": "1.0", "images": {"renderer": "reg/renderer:1.0-hotfix"}},
            "product": {
                "image": "reg/{service}:{version}",
                "container": "web",
                "services": ["dashboard", {"name": "renderer", "service": "renderer-x"}, "pirana"],
                "waves": [["dashboard"], ["renderer", "pirana"]],
            },
            "rollout": {"strategy": "canary", "percent": 25, "step_minutes": 2, "bake_seconds": 61},
        })
    }

    #[test]
    fn a_release_becomes_a_plan() {
        let p = parse(&req(base())).expect("valid");
        assert_eq!(p.version, "1.0");
        let images: Vec<(String, String, Option<String>)> = p
            .services
            .iter()
            .map(|s| (s.name.clone(), s.service.clone(), s.image.clone()))
            .collect();
        assert_eq!(
            images,
            vec![
                (
                    "dashboard".into(),
                    "dashboard".into(),
                    Some("reg/dashboard:1.0".into())
                ),
                (
                    "renderer".into(),
                    "renderer-x".into(),
                    Some("reg/renderer:1.0-hotfix".into())
                ),
                (
                    "pirana".into(),
                    "pirana".into(),
                    Some("reg/pirana:1.0".into())
                ),
            ]
        );
        assert_eq!(p.waves, vec![vec![0], vec![1, 2]]);
        assert_eq!(p.rollout.strategy, Strategy::Canary);
        assert_eq!((p.rollout.step_minutes, p.rollout.bake_minutes), (2, 2));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut input = base();
        input["product"]["image"] = Value::Null;
        input["product"]["waves"] = json!([["dashboard", "ghost"], ["dashboard"]]);
        input["release"]["images"] = json!({"nobody": "x"});
        input["rollout"] = json!({"strategy": "sideways", "percent": 100, "alarms": "cpu"});
        let problems = parse(&req(input)).err().expect("refused");
        let all = problems.join("\n");
        for needle in [
            "service dashboard: no image for version 1.0",
            "service pirana: no image for version 1.0",
            "images.nobody: the product has no service nobody",
            "product.waves[0] names ghost, which is not a service of the product",
            "product.waves[1] names service dashboard, already in wave 0",
            "service renderer is in no wave",
            "rollout.strategy must be blue-green, canary, linear or rolling",
            "rollout.percent must be a number above 0 and below 100",
            "rollout.alarms must be a list",
        ] {
            assert!(all.contains(needle), "{needle:?} missing from:\n{all}");
        }
    }

    #[test]
    fn task_definitions_by_ecs_service_name_are_read() {
        let mut input = base();
        input["release"] = json!({"version": "restore-1"});
        input["task_definitions"] = json!([
            {"service": "renderer-x", "task_definition": "arn:td/renderer:9"},
            {"service": "dashboard", "task_definition": "arn:td/dashboard:9"},
        ]);
        let p = parse(&req(input.clone())).expect("valid");
        let tds: Vec<Option<String>> = p
            .services
            .iter()
            .map(|s| s.task_definition.clone())
            .collect();
        assert_eq!(
            tds,
            vec![
                Some("arn:td/dashboard:9".into()),
                Some("arn:td/renderer:9".into()),
                None
            ]
        );
        input["task_definitions"] =
            json!([{"service": "ghost", "task_definition": "x"}, {"oops": 1}]);
        let all = parse(&req(input)).err().expect("refused").join("\n");
        assert!(
            all.contains("task_definitions.ghost: the product has no service ghost"),
            "{all}"
        );
        assert!(
            all.contains("task_definitions[1] must be {service, task_definition}"),
            "{all}"
        );
    }
}
