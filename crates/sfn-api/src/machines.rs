//! State machines: a piflow workflow (its versioned definitions in the
//! store) with what Step Functions keeps besides (type, role, logging and
//! tracing configuration, tags, versions, aliases), stored as a resource
//! of kind [`KIND`]. A workflow published by `piflow run` or `deploy`
//! without such a record is a STANDARD state machine too, so that its
//! executions show through the API.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use piflow_asl::{Format, LoadOptions, MachineType, validate_text};
use piflow_store::{DefinitionVersion, NewDefinition, Resource};

use crate::api::{ApiError, Ctx, fields};
use crate::arn::{MachineRef, check_name};
use crate::ops::MAX_DEFINITION;
use crate::paging;

/// The store's resource kind of a state machine.
pub const KIND: &str = "sfn-machine";
/// Step Functions' quotas.
pub const MAX_TAGS: usize = 50;
pub const MAX_VERSIONS: usize = 1000;
pub const MAX_ALIASES: usize = 100;

/// What a state machine keeps besides its definitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Machine {
    /// DeleteStateMachine leaves this mark (the workflow's definitions
    /// stay: they are history).
    #[serde(default)]
    pub deleted: bool,
    #[serde(rename = "type")]
    pub machine_type: String,
    pub role_arn: String,
    /// The store's definition version that is the machine's current one.
    pub definition_version: u64,
    /// Changes with every update.
    pub revision_id: String,
    pub created: DateTime<Utc>,
    #[serde(default)]
    pub updated: Option<DateTime<Utc>>,
    #[serde(default)]
    pub logging: Option<Value>,
    #[serde(default)]
    pub tracing: Option<Value>,
    #[serde(default)]
    pub encryption: Option<Value>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub versions: Vec<Version>,
    /// The last version number given (numbers are never reused).
    #[serde(default)]
    pub last_version: u64,
    #[serde(default)]
    pub aliases: BTreeMap<String, Alias>,
}

/// A published version: an immutable revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Version {
    pub number: u64,
    pub definition_version: u64,
    pub revision_id: String,
    pub role_arn: String,
    #[serde(default)]
    pub description: Option<String>,
    pub created: DateTime<Utc>,
}

/// An alias: one or two versions, with the share of executions each gets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alias {
    #[serde(default)]
    pub description: Option<String>,
    pub routing: Vec<Route>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    pub version: u64,
    pub weight: u32,
}

/// A machine as read: its record (revision 0: none is stored yet), and
/// its current definition when reading the machine read it (a workflow
/// without a record); [`current_definition`] reads it otherwise.
pub struct Loaded {
    pub name: String,
    pub machine: Machine,
    pub revision: u64,
    pub definition: Option<DefinitionVersion>,
}

/// awsJson1_0's timestamp: epoch seconds, with milliseconds.
pub fn epoch(t: DateTime<Utc>) -> Value {
    json!(t.timestamp_millis() as f64 / 1000.0)
}

pub(crate) fn not_found(cx: &Ctx<'_>, name: &str) -> ApiError {
    ApiError::new(
        "StateMachineDoesNotExist",
        format!(
            "State Machine Does Not Exist: '{}'",
            cx.b.identity.machine_arn(name)
        ),
    )
}

/// The role of a workflow that has no state machine record.
pub(crate) fn default_role(cx: &Ctx<'_>) -> String {
    format!("arn:aws:iam::{}:role/piflow", cx.b.identity.account)
}

/// A stored machine record, read back (one that cannot be read is the
/// store's `Corrupt`, never overwritten).
fn parse(r: Resource) -> Result<Machine, ApiError> {
    record(r, "state machine")
}

/// A record of the API (`what`: its kind, as the message names it), read
/// back; one that cannot be read is the store's `Corrupt`.
pub(crate) fn record<T: serde::de::DeserializeOwned>(
    r: Resource,
    what: &str,
) -> Result<T, ApiError> {
    serde_json::from_value(r.body).map_err(|e| {
        ApiError::from(piflow_store::StoreError::Corrupt(format!(
            "{what} {}: {e}",
            r.name
        )))
    })
}

/// Read a state machine: its record, or the workflow's definitions alone.
pub(crate) async fn load(cx: &Ctx<'_>, name: &str) -> Result<Loaded, ApiError> {
    let store = cx.b.store();
    match store.resource(KIND, name).await? {
        Some(r) => {
            let revision = r.revision;
            let machine = parse(r)?;
            if machine.deleted {
                return Err(not_found(cx, name));
            }
            Ok(Loaded {
                name: name.to_string(),
                machine,
                revision,
                definition: None,
            })
        }
        None => {
            let Some(last) = store.latest_definition(name).await? else {
                return Err(not_found(cx, name));
            };
            let created = first_created(cx, name, &last).await?;
            Ok(Loaded {
                name: name.to_string(),
                machine: Machine {
                    deleted: false,
                    machine_type: "STANDARD".into(),
                    role_arn: default_role(cx),
                    definition_version: last.version,
                    revision_id: last.content_hash.clone(),
                    created,
                    updated: (last.version > 1).then_some(last.created),
                    logging: None,
                    tracing: None,
                    encryption: None,
                    tags: BTreeMap::new(),
                    versions: Vec::new(),
                    last_version: 0,
                    aliases: BTreeMap::new(),
                },
                revision: 0,
                definition: Some(last),
            })
        }
    }
}

/// A machine's current definition (read only by the operations that show
/// or compare it).
pub(crate) async fn current_definition(
    cx: &Ctx<'_>,
    l: &Loaded,
) -> Result<DefinitionVersion, ApiError> {
    if let Some(d) = &l.definition {
        return Ok(d.clone());
    }
    let v = l.machine.definition_version;
    cx.b.store().definition(&l.name, v).await?.ok_or_else(|| {
        ApiError::from(piflow_store::StoreError::Corrupt(format!(
            "state machine {} names definition version {v}, which is missing",
            l.name
        )))
    })
}

/// When a workflow without a machine record was first published (its
/// version 1; `latest` when that is it).
async fn first_created(
    cx: &Ctx<'_>,
    name: &str,
    latest: &DefinitionVersion,
) -> Result<DateTime<Utc>, ApiError> {
    if latest.version <= 1 {
        return Ok(latest.created);
    }
    Ok(cx
        .b
        .store()
        .definition(name, 1)
        .await?
        .map_or(latest.created, |d| d.created))
}

/// Write a machine at the revision read. A concurrent writer gets
/// `ConflictException`.
pub(crate) async fn save(
    cx: &Ctx<'_>,
    name: &str,
    machine: &Machine,
    revision: u64,
) -> Result<(), ApiError> {
    put(cx, KIND, "state machine", name, machine, revision).await
}

/// Write a record of the API (`what`: its kind, as the message names it)
/// at the revision read. A concurrent writer gets `ConflictException`.
pub(crate) async fn put(
    cx: &Ctx<'_>,
    kind: &str,
    what: &str,
    name: &str,
    record: &impl Serialize,
    revision: u64,
) -> Result<(), ApiError> {
    let body = serde_json::to_value(record)
        .map_err(|e| ApiError::from(piflow_store::StoreError::Corrupt(e.to_string())))?;
    match cx
        .b
        .store()
        .put_resource(Resource {
            kind: kind.into(),
            name: name.to_string(),
            body,
            revision,
        })
        .await
    {
        Ok(_) => Ok(()),
        Err(piflow_store::StoreError::Conflict(m)) | Err(piflow_store::StoreError::NotFound(m)) => {
            Err(ApiError::new(
                "ConflictException",
                format!(
                    "{what} {name} was changed by another request at the same time ({m}); try again"
                ),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// A machine ARN without qualifier (for the operations that take no
/// version or alias).
pub(crate) fn plain_name(
    cx: &Ctx<'_>,
    field: &str,
    arn: &str,
    op: &str,
) -> Result<String, ApiError> {
    match cx.b.identity.parse_machine(field, arn)? {
        MachineRef::Machine(n) => Ok(n),
        _ => Err(ApiError::validation(format!(
            "{op} takes a state machine ARN without a version or alias qualifier; '{arn}' has one"
        ))),
    }
}

/// Check a definition as Step Functions does before storing it.
pub(crate) fn check_definition(definition: &str, machine_type: &str) -> Result<(), ApiError> {
    let v = validate_text(
        "definition",
        definition,
        Format::Json,
        LoadOptions {
            machine_type: if machine_type == "EXPRESS" {
                MachineType::Express
            } else {
                MachineType::Standard
            },
        },
    );
    if v.is_valid() {
        return Ok(());
    }
    Err(crate::ops::invalid_definition(v.errors()))
}

fn role_arn(body: &Map<String, Value>, required: bool) -> Result<Option<String>, ApiError> {
    let Some(role) = fields::string(body, "roleArn", required, 256)? else {
        return Ok(None);
    };
    let parts: Vec<&str> = role.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" || parts[2] != "iam" || !parts[5].starts_with("role/")
    {
        return Err(ApiError::new(
            "InvalidArn",
            format!(
                "Invalid Arn: '{role}' (roleArn): an IAM role ARN is arn:aws:iam::ACCOUNT:role/NAME"
            ),
        ));
    }
    Ok(Some(role.to_string()))
}

/// The `tags` of a request: `[{key, value}]`, keys 1–128 characters,
/// values 0–256.
fn tags_of(body: &Map<String, Value>) -> Result<Vec<(String, String)>, ApiError> {
    let Some(list) = fields::list(body, "tags", 0, 200)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (i, t) in list.iter().enumerate() {
        let key = t.get("key").and_then(Value::as_str);
        let value = t.get("value").and_then(Value::as_str).unwrap_or("");
        match key {
            Some(k)
                if !k.is_empty() && k.chars().count() <= 128 && value.chars().count() <= 256 =>
            {
                out.push((k.to_string(), value.to_string()));
            }
            _ => {
                return Err(ApiError::validation(format!(
                    "1 validation error detected: Value at 'tags.{}' failed to satisfy constraint: a tag is {{\"key\": 1 to 128 characters, \"value\": 0 to 256 characters}}",
                    i + 1
                )));
            }
        }
    }
    Ok(out)
}

fn add_tags(machine: &mut Machine, tags: Vec<(String, String)>) -> Result<(), ApiError> {
    machine.tags.extend(tags);
    if machine.tags.len() > MAX_TAGS {
        return Err(ApiError::new(
            "TooManyTags",
            format!(
                "a state machine has at most {MAX_TAGS} tags; this would give it {}",
                machine.tags.len()
            ),
        ));
    }
    Ok(())
}

/// The logging, tracing and encryption configurations, as given.
fn configs(body: &Map<String, Value>) -> Result<[Option<Value>; 3], ApiError> {
    let get =
        |n: &str| Ok::<_, ApiError>(fields::object(body, n)?.map(|m| Value::Object(m.clone())));
    Ok([
        get("loggingConfiguration")?,
        get("tracingConfiguration")?,
        get("encryptionConfiguration")?,
    ])
}

fn version_description(
    body: &Map<String, Value>,
    publish: bool,
) -> Result<Option<String>, ApiError> {
    let d = fields::string(body, "versionDescription", false, 256)?.map(str::to_string);
    if d.is_some() && !publish {
        return Err(ApiError::validation(
            "versionDescription is only taken with publish: true",
        ));
    }
    Ok(d)
}

async fn publish_definition(
    cx: &Ctx<'_>,
    name: &str,
    definition: &str,
) -> Result<DefinitionVersion, ApiError> {
    Ok(cx
        .b
        .store()
        .publish(NewDefinition {
            workflow: name.to_string(),
            definition: definition.to_string(),
            author: cx.actor(),
            source_commit: None,
        })
        .await?)
}

/// `CreateStateMachine`.
pub(crate) async fn create(cx: &Ctx<'_>, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let name = fields::string(body, "name", true, 80)?.unwrap_or_default();
    check_name("state machine", name)?;
    let definition = fields::string(body, "definition", true, MAX_DEFINITION)?.unwrap_or_default();
    let role = role_arn(body, true)?.unwrap_or_default();
    let machine_type =
        fields::one_of(body, "type", &["STANDARD", "EXPRESS"])?.unwrap_or("STANDARD");
    let [logging, tracing, encryption] = configs(body)?;
    let tags = tags_of(body)?;
    let publish = fields::boolean(body, "publish")?.unwrap_or(false);
    let description = version_description(body, publish)?;
    check_definition(definition, machine_type)?;
    let store = cx.b.store();
    let stored = store.resource(KIND, name).await?;
    let prior = stored.as_ref().map_or(0, |r| r.revision);
    let live = match stored.clone().map(parse).transpose()? {
        Some(m) if !m.deleted => Some(m),
        _ => None,
    };
    let arn = cx.b.identity.machine_arn(name);
    if let Some(m) = live {
        // Step Functions answers a create identical to the machine with it.
        let same = m.role_arn == role
            && m.machine_type == machine_type
            && store
                .definition(name, m.definition_version)
                .await?
                .is_some_and(|d| d.definition == definition);
        if same && !publish {
            return Ok(json!({"stateMachineArn": arn, "creationDate": epoch(m.created)}));
        }
        return Err(ApiError::new(
            "StateMachineAlreadyExists",
            format!(
                "State Machine Already Exists: '{arn}' (with another definition, role or type: change it with UpdateStateMachine)"
            ),
        ));
    }
    if stored.is_none()
        && let Some(last) = store.latest_definition(name).await?
        && last.definition != definition
    {
        return Err(ApiError::new(
            "StateMachineAlreadyExists",
            format!(
                "State Machine Already Exists: '{arn}' (piflow workflow {name} has {} version(s), the latest with another definition: change it with UpdateStateMachine)",
                last.version
            ),
        ));
    }
    let def = publish_definition(cx, name, definition).await?;
    let mut machine = Machine {
        deleted: false,
        machine_type: machine_type.to_string(),
        role_arn: role,
        definition_version: def.version,
        revision_id: uuid::Uuid::new_v4().to_string(),
        created: cx.now,
        updated: None,
        logging,
        tracing,
        encryption,
        tags: BTreeMap::new(),
        versions: Vec::new(),
        last_version: 0,
        aliases: BTreeMap::new(),
    };
    add_tags(&mut machine, tags)?;
    let version = if publish {
        Some(crate::versions::publish_current(
            cx,
            name,
            &mut machine,
            description,
        )?)
    } else {
        None
    };
    save(cx, name, &machine, prior).await?;
    cx.audit(
        None,
        "CreateStateMachine",
        &arn,
        json!({"definitionVersion": def.version, "type": machine_type}),
        None,
    )
    .await?;
    let mut out = json!({"stateMachineArn": arn, "creationDate": epoch(machine.created)});
    if let Some(v) = version {
        out["stateMachineVersionArn"] = json!(cx.b.identity.version_arn(name, v));
    }
    Ok(out)
}

/// `UpdateStateMachine`.
pub(crate) async fn update(cx: &Ctx<'_>, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let arn = fields::string(body, "stateMachineArn", true, 256)?.unwrap_or_default();
    let name = plain_name(cx, "stateMachineArn", arn, "UpdateStateMachine")?;
    let definition = fields::string(body, "definition", false, MAX_DEFINITION)?;
    let role = role_arn(body, false)?;
    let [logging, tracing, encryption] = configs(body)?;
    let publish = fields::boolean(body, "publish")?.unwrap_or(false);
    let description = version_description(body, publish)?;
    if definition.is_none()
        && role.is_none()
        && logging.is_none()
        && tracing.is_none()
        && encryption.is_none()
    {
        return Err(ApiError::new(
            "MissingRequiredParameter",
            "UpdateStateMachine needs at least one of definition, roleArn, loggingConfiguration, tracingConfiguration, encryptionConfiguration",
        ));
    }
    let mut l = load(cx, &name).await?;
    if let Some(d) = definition {
        check_definition(d, &l.machine.machine_type)?;
        if d != current_definition(cx, &l).await?.definition {
            let def = publish_definition(cx, &name, d).await?;
            l.machine.definition_version = def.version;
        }
    }
    let m = &mut l.machine;
    if let Some(r) = role {
        m.role_arn = r;
    }
    for (slot, new) in [
        (&mut m.logging, logging),
        (&mut m.tracing, tracing),
        (&mut m.encryption, encryption),
    ] {
        if new.is_some() {
            *slot = new;
        }
    }
    m.revision_id = uuid::Uuid::new_v4().to_string();
    m.updated = Some(cx.now);
    let version = if publish {
        Some(crate::versions::publish_current(cx, &name, m, description)?)
    } else {
        None
    };
    save(cx, &name, &l.machine, l.revision).await?;
    let shown = cx.b.identity.machine_arn(&name);
    cx.audit(None, "UpdateStateMachine", &shown, json!({"definitionVersion": l.machine.definition_version, "revisionId": l.machine.revision_id}), None)
        .await?;
    let mut out = json!({"updateDate": epoch(cx.now), "revisionId": l.machine.revision_id});
    if let Some(v) = version {
        out["stateMachineVersionArn"] = json!(cx.b.identity.version_arn(&name, v));
    }
    Ok(out)
}

fn logging_of(m: &Machine) -> Value {
    m.logging
        .clone()
        .unwrap_or_else(|| json!({"level": "OFF", "includeExecutionData": false}))
}

fn tracing_of(m: &Machine) -> Value {
    m.tracing
        .clone()
        .unwrap_or_else(|| json!({"enabled": false}))
}

/// The DescribeStateMachine shape of a machine with `definition`.
pub(crate) fn described(cx: &Ctx<'_>, l: &Loaded, definition: &str) -> Value {
    let m = &l.machine;
    let mut out = json!({
        "stateMachineArn": cx.b.identity.machine_arn(&l.name),
        "name": l.name,
        "status": "ACTIVE",
        "definition": definition,
        "roleArn": m.role_arn,
        "type": m.machine_type,
        "creationDate": epoch(m.created),
        "loggingConfiguration": logging_of(m),
        "tracingConfiguration": tracing_of(m),
        "revisionId": m.revision_id,
    });
    if let Some(e) = &m.encryption {
        out["encryptionConfiguration"] = e.clone();
    }
    out
}

/// `DescribeStateMachine` (of a machine, or of one of its versions).
pub(crate) async fn describe(cx: &Ctx<'_>, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let arn = fields::string(body, "stateMachineArn", true, 256)?.unwrap_or_default();
    fields::one_of(body, "includedData", &["ALL_DATA", "METADATA_ONLY"])?;
    match cx.b.identity.parse_machine("stateMachineArn", arn)? {
        MachineRef::Machine(name) => {
            let l = load(cx, &name).await?;
            let d = current_definition(cx, &l).await?;
            Ok(described(cx, &l, &d.definition))
        }
        MachineRef::Version(name, n) => {
            let l = load(cx, &name).await?;
            let v = crate::versions::find(cx, &l, n)?;
            let def =
                cx.b.store()
                    .definition(&name, v.definition_version)
                    .await?
                    .ok_or_else(|| crate::versions::version_missing(cx, &name, n))?;
            let mut out = described(cx, &l, &def.definition);
            out["stateMachineArn"] = json!(arn);
            out["roleArn"] = json!(v.role_arn);
            out["revisionId"] = json!(v.revision_id);
            out["creationDate"] = epoch(v.created);
            if let Some(d) = &v.description {
                out["description"] = json!(d);
            }
            Ok(out)
        }
        MachineRef::Alias(..) => Err(ApiError::validation(format!(
            "'{arn}' is an alias ARN: describe it with DescribeStateMachineAlias"
        ))),
    }
}

/// `ListStateMachines`: the machines with a record and the workflows
/// without one, by name.
pub(crate) async fn list(cx: &Ctx<'_>, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let store = cx.b.store();
    // A machine's type and creation date; `None` for a workflow without a
    // record, whose first version gives them once it is on the page.
    let mut rows: BTreeMap<String, Option<(String, DateTime<Utc>)>> = BTreeMap::new();
    // Deleted or unreadable records hide the workflow of their name.
    let mut hidden = std::collections::BTreeSet::new();
    for r in store.resources(KIND).await? {
        let name = r.name.clone();
        // One record that cannot be read never hides the others.
        match parse(r) {
            Ok(m) if !m.deleted => {
                rows.insert(name, Some((m.machine_type, m.created)));
            }
            Ok(_) => {
                hidden.insert(name);
            }
            Err(e) => {
                hidden.insert(name);
                tracing::warn!(code = e.code(), error = %e, "a state machine record cannot be read; listing the others")
            }
        }
    }
    for name in store.workflows().await? {
        if !hidden.contains(&name) {
            rows.entry(name).or_insert(None);
        }
    }
    let (rows, next) = paging::page("ListStateMachines", body, rows.into_iter().collect())?;
    let mut page = Vec::with_capacity(rows.len());
    for (name, row) in rows {
        let row = match row {
            Some(row) => row,
            None => match store.definition(&name, 1).await? {
                Some(first) => ("STANDARD".to_string(), first.created),
                None => continue,
            },
        };
        page.push((name, row));
    }
    let machines: Vec<Value> = page
        .into_iter()
        .map(|(name, (t, created))| {
            json!({
                "stateMachineArn": cx.b.identity.machine_arn(&name),
                "name": name,
                "type": t,
                "creationDate": epoch(created),
            })
        })
        .collect();
    Ok(paging::answer("stateMachines", machines, next))
}

/// `DeleteStateMachine`: the machine is marked deleted (its definitions
/// and executions stay in the store); deleting one that does not exist
/// succeeds, as in Step Functions.
pub(crate) async fn delete(cx: &Ctx<'_>, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let arn = fields::string(body, "stateMachineArn", true, 256)?.unwrap_or_default();
    let name = plain_name(cx, "stateMachineArn", arn, "DeleteStateMachine")?;
    let mut l = match load(cx, &name).await {
        Ok(l) => l,
        Err(e) if e.kind == "StateMachineDoesNotExist" => return Ok(json!({})),
        Err(e) => return Err(e),
    };
    l.machine.deleted = true;
    save(cx, &name, &l.machine, l.revision).await?;
    cx.audit(None, "DeleteStateMachine", arn, Value::Null, None)
        .await?;
    Ok(json!({}))
}

/// The machine a tagging call names (tags belong to state machines).
async fn tagged(cx: &Ctx<'_>, body: &Map<String, Value>) -> Result<Loaded, ApiError> {
    let arn = fields::string(body, "resourceArn", true, 256)?.unwrap_or_default();
    match cx.b.identity.parse_machine("resourceArn", arn)? {
        MachineRef::Machine(name) => load(cx, &name).await,
        _ => Err(ApiError::new(
            "InvalidArn",
            format!(
                "Invalid Arn: '{arn}' (resourceArn): tags belong to a state machine, not to one of its versions or aliases"
            ),
        )),
    }
}

/// `TagResource`.
pub(crate) async fn tag(cx: &Ctx<'_>, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let tags = tags_of(body)?;
    if body.get("tags").is_none() {
        return Err(ApiError::validation(
            "1 validation error detected: Value null at 'tags' failed to satisfy constraint: Member must not be null",
        ));
    }
    let mut l = tagged(cx, body).await?;
    add_tags(&mut l.machine, tags)?;
    save(cx, &l.name, &l.machine, l.revision).await?;
    Ok(json!({}))
}

/// `UntagResource`.
pub(crate) async fn untag(cx: &Ctx<'_>, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let keys = fields::list(body, "tagKeys", 0, 200)?.ok_or_else(|| {
        ApiError::validation(
            "1 validation error detected: Value null at 'tagKeys' failed to satisfy constraint: Member must not be null",
        )
    })?;
    let mut l = tagged(cx, body).await?;
    for k in keys.iter().filter_map(Value::as_str) {
        l.machine.tags.remove(k);
    }
    save(cx, &l.name, &l.machine, l.revision).await?;
    Ok(json!({}))
}

/// `ListTagsForResource`.
pub(crate) async fn list_tags(cx: &Ctx<'_>, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let l = tagged(cx, body).await?;
    let tags: Vec<Value> = l
        .machine
        .tags
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect();
    Ok(json!({ "tags": tags }))
}
