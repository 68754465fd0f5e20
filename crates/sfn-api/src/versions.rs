//! State machine versions (immutable, numbered revisions) and aliases
//! (one or two versions, with the share of new executions each gets).

use serde_json::{Map, Value, json};

use crate::api::{ApiError, Ctx, fields};
use crate::arn::{MachineRef, check_name};
use crate::machines::{
    Alias, Loaded, MAX_ALIASES, MAX_VERSIONS, Machine, Route, Version, epoch, load, plain_name,
    save,
};
use crate::paging;

pub(crate) fn version_missing(cx: &Ctx<'_>, name: &str, n: u64) -> ApiError {
    ApiError::new(
        "ResourceNotFound",
        format!(
            "Resource not found: '{}' (state machine {name} has no version {n})",
            cx.b.identity.version_arn(name, n)
        ),
    )
}

/// Version `n` of a loaded machine.
pub(crate) fn find<'a>(cx: &Ctx<'_>, l: &'a Loaded, n: u64) -> Result<&'a Version, ApiError> {
    l.machine
        .versions
        .iter()
        .find(|v| v.number == n)
        .ok_or_else(|| version_missing(cx, &l.name, n))
}

/// Publish the machine's current revision as a version (the latest
/// version when it already is that revision); its number.
pub(crate) fn publish_current(
    cx: &Ctx<'_>,
    name: &str,
    m: &mut Machine,
    description: Option<String>,
) -> Result<u64, ApiError> {
    if let Some(last) = m.versions.last()
        && last.revision_id == m.revision_id
    {
        return Ok(last.number);
    }
    if m.versions.len() >= MAX_VERSIONS {
        return Err(ApiError::new(
            "ServiceQuotaExceededException",
            format!(
                "state machine {name} has {MAX_VERSIONS} versions, Step Functions' quota: delete one with DeleteStateMachineVersion first"
            ),
        ));
    }
    m.last_version += 1;
    m.versions.push(Version {
        number: m.last_version,
        definition_version: m.definition_version,
        revision_id: m.revision_id.clone(),
        role_arn: m.role_arn.clone(),
        description,
        created: cx.now,
    });
    Ok(m.last_version)
}

/// `PublishStateMachineVersion`.
pub(crate) async fn publish(cx: &Ctx<'_>, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let arn = fields::string(body, "stateMachineArn", true, 256)?.unwrap_or_default();
    let name = plain_name(cx, "stateMachineArn", arn, "PublishStateMachineVersion")?;
    let revision = fields::string(body, "revisionId", false, 256)?;
    let description = fields::string(body, "description", false, 256)?.map(str::to_string);
    let mut l = load(cx, &name).await?;
    if let Some(r) = revision
        && r != l.machine.revision_id
    {
        return Err(ApiError::new(
            "ConflictException",
            format!(
                "revisionId {r:?} is not the current revision of {name} ({:?}): it was updated since",
                l.machine.revision_id
            ),
        ));
    }
    let before = l.machine.versions.len();
    let n = publish_current(cx, &name, &mut l.machine, description)?;
    if l.machine.versions.len() != before {
        save(cx, &name, &l.machine, l.revision).await?;
        cx.audit(
            None,
            "PublishStateMachineVersion",
            &cx.b.identity.version_arn(&name, n),
            json!({"definitionVersion": l.machine.definition_version}),
            None,
        )
        .await?;
    }
    let created = find(cx, &l, n)?.created;
    Ok(json!({
        "creationDate": epoch(created),
        "stateMachineVersionArn": cx.b.identity.version_arn(&name, n),
    }))
}

/// `ListStateMachineVersions`: newest first.
pub(crate) async fn list(cx: &Ctx<'_>, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let arn = fields::string(body, "stateMachineArn", true, 256)?.unwrap_or_default();
    let name = plain_name(cx, "stateMachineArn", arn, "ListStateMachineVersions")?;
    let l = load(cx, &name).await?;
    let rows: Vec<&Version> = l.machine.versions.iter().rev().collect();
    let (page, next) = paging::page("ListStateMachineVersions", body, rows)?;
    let versions: Vec<Value> = page
        .into_iter()
        .map(|v| {
            json!({
                "stateMachineVersionArn": cx.b.identity.version_arn(&name, v.number),
                "creationDate": epoch(v.created),
            })
        })
        .collect();
    Ok(paging::answer("stateMachineVersions", versions, next))
}

/// `DeleteStateMachineVersion`: refused while an alias routes to it.
pub(crate) async fn delete(cx: &Ctx<'_>, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let arn = fields::string(body, "stateMachineVersionArn", true, 256)?.unwrap_or_default();
    let MachineRef::Version(name, n) =
        cx.b.identity.parse_machine("stateMachineVersionArn", arn)?
    else {
        return Err(ApiError::validation(format!(
            "'{arn}' is not a state machine version ARN (…:stateMachine:NAME:N)"
        )));
    };
    let mut l = match load(cx, &name).await {
        Ok(l) => l,
        Err(e) if e.kind == "StateMachineDoesNotExist" => return Ok(json!({})),
        Err(e) => return Err(e),
    };
    if let Some((alias, _)) = l
        .machine
        .aliases
        .iter()
        .find(|(_, a)| a.routing.iter().any(|r| r.version == n))
    {
        return Err(ApiError::new(
            "ConflictException",
            format!(
                "Version {n} of {name} is referenced by alias {alias}: change the alias's routing first"
            ),
        ));
    }
    let before = l.machine.versions.len();
    l.machine.versions.retain(|v| v.number != n);
    if l.machine.versions.len() != before {
        save(cx, &name, &l.machine, l.revision).await?;
        cx.audit(None, "DeleteStateMachineVersion", arn, Value::Null, None)
            .await?;
    }
    Ok(json!({}))
}

/// An alias's name: a state machine name that is not a version number
/// (Step Functions: letters, digits, `-`, `_`, `.`, not all digits).
fn check_alias_name(name: &str) -> Result<(), ApiError> {
    check_name("alias", name)?;
    if name.chars().all(|c| c.is_ascii_digit())
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(ApiError::new(
            "InvalidName",
            format!(
                "Invalid Name: '{name}' (an alias name has letters, digits, '-', '_' and '.', and is not a number)"
            ),
        ));
    }
    Ok(())
}

/// A `routingConfiguration`: one or two versions of `name` that exist,
/// each once, weights 0–100 adding up to 100.
fn routing(
    cx: &Ctx<'_>,
    l: &Loaded,
    body: &Map<String, Value>,
) -> Result<Option<Vec<Route>>, ApiError> {
    let Some(list) = fields::list(body, "routingConfiguration", 1, 2)? else {
        return Ok(None);
    };
    let mut out: Vec<Route> = Vec::new();
    for (i, r) in list.iter().enumerate() {
        let at = format!("routingConfiguration.{}", i + 1);
        let arn = r
            .get("stateMachineVersionArn")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ApiError::validation(format!("{at}: stateMachineVersionArn is required"))
            })?;
        let weight = r
            .get("weight")
            .and_then(Value::as_u64)
            .filter(|w| *w <= 100)
            .ok_or_else(|| {
                ApiError::validation(format!("{at}: weight is an integer from 0 to 100"))
            })?;
        let MachineRef::Version(m, n) = cx.b.identity.parse_machine(&at, arn)? else {
            return Err(ApiError::validation(format!(
                "{at}: '{arn}' is not a version ARN"
            )));
        };
        if m != l.name {
            return Err(ApiError::validation(format!(
                "{at}: version '{arn}' belongs to state machine {m}, not {}",
                l.name
            )));
        }
        find(cx, l, n)?;
        if out.iter().any(|o| o.version == n) {
            return Err(ApiError::validation(format!(
                "routingConfiguration names version {n} twice"
            )));
        }
        out.push(Route {
            version: n,
            weight: weight as u32,
        });
    }
    let total: u32 = out.iter().map(|r| r.weight).sum();
    if total != 100 {
        return Err(ApiError::validation(format!(
            "the weights of routingConfiguration add up to {total}; they must add up to 100"
        )));
    }
    Ok(Some(out))
}

/// The alias an alias ARN names, with its machine.
async fn alias_of(cx: &Ctx<'_>, body: &Map<String, Value>) -> Result<(Loaded, String), ApiError> {
    let arn = fields::string(body, "stateMachineAliasArn", true, 256)?.unwrap_or_default();
    let MachineRef::Alias(name, alias) =
        cx.b.identity.parse_machine("stateMachineAliasArn", arn)?
    else {
        return Err(ApiError::validation(format!(
            "'{arn}' is not a state machine alias ARN (…:stateMachine:NAME:ALIAS)"
        )));
    };
    let l = load(cx, &name).await.map_err(|e| {
        if e.kind == "StateMachineDoesNotExist" {
            alias_missing(arn)
        } else {
            e
        }
    })?;
    if !l.machine.aliases.contains_key(&alias) {
        return Err(alias_missing(arn));
    }
    Ok((l, alias))
}

fn alias_missing(arn: &str) -> ApiError {
    ApiError::new("ResourceNotFound", format!("Resource not found: '{arn}'"))
}

fn routing_json(cx: &Ctx<'_>, name: &str, routes: &[Route]) -> Value {
    json!(
        routes
            .iter()
            .map(|r| json!({
                "stateMachineVersionArn": cx.b.identity.version_arn(name, r.version),
                "weight": r.weight,
            }))
            .collect::<Vec<_>>()
    )
}

/// `CreateStateMachineAlias` (the same alias again is answered with it).
pub(crate) async fn create_alias(
    cx: &Ctx<'_>,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let alias = fields::string(body, "name", true, 80)?.unwrap_or_default();
    check_alias_name(alias)?;
    let description = fields::string(body, "description", false, 256)?.map(str::to_string);
    let first = fields::list(body, "routingConfiguration", 1, 2)?
        .and_then(|l| l.first())
        .and_then(|r| r.get("stateMachineVersionArn"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::validation(
                "1 validation error detected: Value null at 'routingConfiguration' failed to satisfy constraint: Member must not be null",
            )
        })?;
    let name =
        cx.b.identity
            .parse_machine("routingConfiguration.1.stateMachineVersionArn", first)?
            .name()
            .to_string();
    let mut l = load(cx, &name).await?;
    let routes = routing(cx, &l, body)?.unwrap_or_default();
    let arn = cx.b.identity.alias_arn(&name, alias);
    if let Some(a) = l.machine.aliases.get(alias) {
        if a.routing == routes && a.description == description {
            return Ok(json!({"stateMachineAliasArn": arn, "creationDate": epoch(a.created)}));
        }
        return Err(ApiError::new(
            "ConflictException",
            format!(
                "Alias {alias} of {name} exists with another routing or description: change it with UpdateStateMachineAlias"
            ),
        ));
    }
    if l.machine.aliases.len() >= MAX_ALIASES {
        return Err(ApiError::new(
            "ServiceQuotaExceededException",
            format!("state machine {name} has {MAX_ALIASES} aliases, Step Functions' quota"),
        ));
    }
    l.machine.aliases.insert(
        alias.to_string(),
        Alias {
            description,
            routing: routes,
            created: cx.now,
            updated: cx.now,
        },
    );
    save(cx, &name, &l.machine, l.revision).await?;
    cx.audit(
        None,
        "CreateStateMachineAlias",
        &arn,
        routing_json(cx, &name, &l.machine.aliases[alias].routing),
        None,
    )
    .await?;
    Ok(json!({"stateMachineAliasArn": arn, "creationDate": epoch(cx.now)}))
}

/// `DescribeStateMachineAlias`.
pub(crate) async fn describe_alias(
    cx: &Ctx<'_>,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let (l, alias) = alias_of(cx, body).await?;
    let a = &l.machine.aliases[&alias];
    let mut out = json!({
        "stateMachineAliasArn": cx.b.identity.alias_arn(&l.name, &alias),
        "name": alias,
        "routingConfiguration": routing_json(cx, &l.name, &a.routing),
        "creationDate": epoch(a.created),
        "updateDate": epoch(a.updated),
    });
    if let Some(d) = &a.description {
        out["description"] = json!(d);
    }
    Ok(out)
}

/// `UpdateStateMachineAlias`.
pub(crate) async fn update_alias(
    cx: &Ctx<'_>,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let (mut l, alias) = alias_of(cx, body).await?;
    let description = fields::string(body, "description", false, 256)?.map(str::to_string);
    let routes = routing(cx, &l, body)?;
    if description.is_none() && routes.is_none() {
        return Err(ApiError::new(
            "MissingRequiredParameter",
            "UpdateStateMachineAlias needs description or routingConfiguration",
        ));
    }
    let arn = cx.b.identity.alias_arn(&l.name, &alias);
    if let Some(a) = l.machine.aliases.get_mut(&alias) {
        if let Some(r) = routes {
            a.routing = r;
        }
        if description.is_some() {
            a.description = description;
        }
        a.updated = cx.now;
    }
    save(cx, &l.name, &l.machine, l.revision).await?;
    cx.audit(
        None,
        "UpdateStateMachineAlias",
        &arn,
        routing_json(cx, &l.name, &l.machine.aliases[&alias].routing),
        None,
    )
    .await?;
    Ok(json!({"updateDate": epoch(cx.now)}))
}

/// `DeleteStateMachineAlias`.
pub(crate) async fn delete_alias(
    cx: &Ctx<'_>,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let (mut l, alias) = alias_of(cx, body).await?;
    l.machine.aliases.remove(&alias);
    save(cx, &l.name, &l.machine, l.revision).await?;
    cx.audit(
        None,
        "DeleteStateMachineAlias",
        &cx.b.identity.alias_arn(&l.name, &alias),
        Value::Null,
        None,
    )
    .await?;
    Ok(json!({}))
}

/// `ListStateMachineAliases`, by name.
pub(crate) async fn list_aliases(
    cx: &Ctx<'_>,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let arn = fields::string(body, "stateMachineArn", true, 256)?.unwrap_or_default();
    let name = plain_name(cx, "stateMachineArn", arn, "ListStateMachineAliases")?;
    let l = load(cx, &name).await?;
    let rows: Vec<(&String, &Alias)> = l.machine.aliases.iter().collect();
    let (page, next) = paging::page("ListStateMachineAliases", body, rows)?;
    let aliases: Vec<Value> = page
        .into_iter()
        .map(|(n, a)| {
            json!({
                "stateMachineAliasArn": cx.b.identity.alias_arn(&name, n),
                "creationDate": epoch(a.created),
            })
        })
        .collect();
    Ok(paging::answer("stateMachineAliases", aliases, next))
}

/// The machine version an alias routes a new execution to: by weight,
/// with `roll` a number in 0..100.
pub(crate) fn route(routes: &[Route], roll: u32) -> Option<u64> {
    let mut acc = 0;
    for r in routes {
        acc += r.weight;
        if roll < acc {
            return Some(r.version);
        }
    }
    routes
        .iter()
        .rev()
        .find(|r| r.weight > 0)
        .map(|r| r.version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alias_routes_by_weight() {
        let routes = [
            Route {
                version: 1,
                weight: 90,
            },
            Route {
                version: 2,
                weight: 10,
            },
        ];
        let picks: Vec<u64> = (0..100).filter_map(|r| route(&routes, r)).collect();
        assert_eq!(picks.iter().filter(|v| **v == 1).count(), 90);
        assert_eq!(picks.iter().filter(|v| **v == 2).count(), 10);
        let all_second = [
            Route {
                version: 1,
                weight: 0,
            },
            Route {
                version: 2,
                weight: 100,
            },
        ];
        assert!((0..100).all(|r| route(&all_second, r) == Some(2)));
    }

    #[test]
    fn alias_names_are_not_numbers() {
        assert!(check_alias_name("prod").is_ok());
        assert!(check_alias_name("v1.2-blue_x").is_ok());
        for bad in ["12", "a b", "a:b", "ä"] {
            assert_eq!(
                check_alias_name(bad).unwrap_err().kind,
                "InvalidName",
                "{bad}"
            );
        }
    }
}
