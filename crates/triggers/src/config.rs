//! `piflow.yaml`: which workflow a git tag starts, with which input.
//!
//! ```yaml
//! tags:
//!   - pattern: "<env>_<region>/<team>/<version>"
//!     workflow: upgrade                 # a name in workflows/ (beside piflow.yaml), or a path
//!     input:                            # a JSON object; its strings are templates
//!       target: {environment: "{env}", region: "{region}", team: "{team}"}
//!       release: {version: "{version}", commit: "{commit}"}
//!     set:                              # then these are set (dotted paths or JSON pointers)
//!       release.image: "registry.example/{team}:{version}"
//! ```
//!
//! `input` may also be `"@FILE"` (a JSON file, relative to piflow.yaml, taken
//! as it is) with `set` to put the tag's values into it. The file is read
//! strictly: unknown keys, malformed patterns or templates are errors that
//! name the file, the line and column, and the key. Without a `tags:`
//! section (or without a piflow.yaml) the default rule applies:
//! [`DEFAULT_PATTERN`] → workflow `upgrade`.
//!
//! An `events:` section holds EventBridge rules: each maps an event pattern
//! to a workflow, with the input an EventBridge target would get (the whole
//! event, `input_path`, or `input_transformer`). `piflow serve` applies them
//! to the events it receives (see `super::events`):
//!
//! ```yaml
//! events:
//!   - name: alarm-rollback               # unique; [A-Za-z0-9._-], 1–64
//!     pattern: {source: [aws.cloudwatch], detail: {state: {value: [ALARM]}}}
//!     workflow: rollback
//!     input_transformer:                 # or input_path: $.detail (not both)
//!       input_paths_map: {alarm: $.detail.alarmName}
//!       input_template: '{"reason": "<alarm>"}'
//!     environment: dev                   # the lease: a name, or $.path into the event
//! ```

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::environments::{Estate, parse_environments, parse_product};
use super::pattern::Pattern;
use super::tags::{DEFAULT_PATTERN, Field, TagFields, TagInfo, TagMatch, TagPattern};
use super::transform::{InputPath, InputTransformer};
use piflow_asl::source::{Node, NodeKind, SourceText};

/// The file's name in a working directory.
pub const CONFIG_FILE: &str = "piflow.yaml";

/// The largest piflow.yaml (or input file) piflow reads.
const MAX_BYTES: u64 = 1024 * 1024;

/// A problem in piflow.yaml (or a file it names).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {key}: {message}", .line.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
pub struct ConfigError {
    pub file: String,
    /// 1-based line and column, when known.
    pub line: Option<(usize, usize)>,
    /// Where in the file: `tags[0].pattern`, `tags[1].set.release.image`, …
    pub key: String,
    pub message: String,
}

impl ConfigError {
    /// Every code [`Self::code`] returns, with its meaning (docs/codes.md).
    pub const CODES: &[(&str, &str)] = &[("config-invalid", "piflow.yaml is not valid")];

    /// The stable code: `config-invalid`.
    pub fn code(&self) -> &'static str {
        "config-invalid"
    }
}

/// The variables a template may use.
const VARS: [&str; 8] = [
    "env", "region", "team", "version", "commit", "tag", "tagger", "date",
];

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Var(&'static str),
}

/// A template string: literal text and `{name}` variables (`{{` and `}}`
/// are literal braces).
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|(_, c)| *c) == Some('{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek().map(|(_, c)| *c) == Some('}') => {
                    chars.next();
                    lit.push('}');
                }
                '{' => {
                    let rest = &text[i + 1..];
                    let Some(end) = rest.find('}') else {
                        return Err(format!(
                            "{text:?}: '{{' opens a variable that no '}}' closes (write {{{{ for a literal brace)"
                        ));
                    };
                    let name = &rest[..end];
                    let Some(var) = VARS.iter().find(|v| **v == name) else {
                        return Err(format!(
                            "{text:?}: unknown variable {{{name}}}; the variables are {}",
                            VARS.map(|v| format!("{{{v}}}")).join(" ")
                        ));
                    };
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Var(var));
                    for _ in 0..name.chars().count() + 1 {
                        chars.next();
                    }
                }
                '}' => {
                    return Err(format!(
                        "{text:?}: a lone '}}' (write }}}} for a literal brace)"
                    ));
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Template { parts })
    }

    fn vars(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(*v),
            Part::Lit(_) => None,
        })
    }

    pub fn render(&self, vars: &TagVars) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(l) => out.push_str(l),
                Part::Var(v) => out.push_str(vars.get(v)),
            }
        }
        out
    }
}

/// The values templates see: the tag's fields and what git holds about it.
#[derive(Debug, Clone, Default)]
pub struct TagVars {
    pub fields: TagFields,
    pub commit: String,
    pub tag: String,
    pub tagger: String,
    pub date: String,
}

impl TagVars {
    pub fn new(fields: TagFields, info: &TagInfo) -> TagVars {
        TagVars {
            fields,
            commit: info.commit.clone(),
            tag: info.name.clone(),
            tagger: info.tagger(),
            date: info.date.clone(),
        }
    }

    fn get(&self, name: &str) -> &str {
        match name {
            "env" => self.fields.env.as_deref().unwrap_or(""),
            "region" => self.fields.region.as_deref().unwrap_or(""),
            "team" => self.fields.team.as_deref().unwrap_or(""),
            "version" => self.fields.version.as_deref().unwrap_or(""),
            "commit" => &self.commit,
            "tag" => &self.tag,
            "tagger" => &self.tagger,
            "date" => &self.date,
            _ => "",
        }
    }
}

/// A `set:` entry's value: a template (strings) or a JSON value as written.
#[derive(Debug, Clone, PartialEq)]
enum SetValue {
    Template(Template),
    Value(Value),
}

/// One `tags:` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct TagRule {
    /// Its position in `tags:` (0-based).
    pub index: usize,
    /// Its line in piflow.yaml.
    pub line: Option<usize>,
    pub pattern: TagPattern,
    /// A workflow name (looked up in `workflows/` beside piflow.yaml, then
    /// in the working directory) or a path (relative to piflow.yaml).
    pub workflow: String,
    /// The input before `set`: an inline template, or a file's JSON.
    base: Value,
    /// Whether `base`'s strings are templates (inline) or not (`@FILE`).
    base_is_template: bool,
    /// `(key as written, path tokens, value)`.
    set: Vec<(String, Vec<String>, SetValue)>,
}

/// Why a tag starts nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Refusal {
    /// `no-rule`, `malformed-version`, `malformed-region`, `malformed-env`,
    /// `malformed-team`.
    pub code: &'static str,
    pub reason: String,
    /// The tag's `<env>`, when a rule's shape captured a valid one.
    pub env: Option<String>,
}

/// piflow.yaml, read and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerConfig {
    /// The file, or None for the built-in default.
    pub source: Option<PathBuf>,
    pub tags: Vec<TagRule>,
    /// The `events:` rules (EventBridge), in file order.
    pub events: Vec<EventRule>,
    /// `product:` and `environments:`.
    pub estate: Estate,
}

/// What an event rule passes to its workflow, as an EventBridge target.
#[derive(Debug, Clone)]
pub enum EventInput {
    /// The whole event.
    Event,
    /// `input_path`: the part of the event the path selects.
    Path(InputPath),
    /// `input_transformer`: `input_paths_map` and `input_template`.
    Transformer(Box<InputTransformer>),
}

/// The environment whose lease an event's execution takes.
#[derive(Debug, Clone, PartialEq)]
pub enum EventEnv {
    /// Not given: the input's `environment` or `target.environment`.
    FromInput,
    /// A fixed name.
    Name(String),
    /// `$.…`: the string the path selects in the event.
    Path(String),
}

/// One `events:` rule.
#[derive(Debug, Clone)]
pub struct EventRule {
    /// Its position in `events:` (0-based).
    pub index: usize,
    /// Its line in piflow.yaml.
    pub line: Option<usize>,
    /// Unique among the rules; part of the execution names it starts.
    pub name: String,
    pub pattern: Pattern,
    /// The pattern as written (JSON), for messages and records.
    pub pattern_json: Value,
    /// As for tag rules: a name in `workflows/` or a path.
    pub workflow: String,
    pub input: EventInput,
    pub environment: EventEnv,
    /// The compiled path of [`EventEnv::Path`].
    pub environment_path: Option<InputPath>,
}

impl PartialEq for EventRule {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.pattern_json == other.pattern_json
            && self.workflow == other.workflow
            && self.environment == other.environment
    }
}

impl TriggerConfig {
    /// The built-in configuration: one rule, [`DEFAULT_PATTERN`] →
    /// `upgrade` with `{target: {environment, region, team}, release:
    /// {version, commit, tag}}`.
    pub fn builtin() -> TriggerConfig {
        TriggerConfig {
            source: None,
            tags: vec![default_rule()],
            events: Vec::new(),
            estate: Estate::default(),
        }
    }

    /// Find and read the configuration: `explicit` (`--config` or
    /// `PIFLOW_CONFIG`), else `piflow.yaml` in the working directory, else
    /// the built-in default.
    pub fn find(explicit: Option<&Path>) -> Result<TriggerConfig, ConfigError> {
        match explicit {
            Some(p) => TriggerConfig::load(p),
            None if Path::new(CONFIG_FILE).is_file() => TriggerConfig::load(Path::new(CONFIG_FILE)),
            None => Ok(TriggerConfig::builtin()),
        }
    }

    /// Read a piflow.yaml.
    pub fn load(path: &Path) -> Result<TriggerConfig, ConfigError> {
        let shown = path.display().to_string();
        let text = read_limited(path).map_err(|message| ConfigError {
            file: shown.clone(),
            line: None,
            key: "(file)".into(),
            message,
        })?;
        TriggerConfig::parse(&text, path)
    }

    /// Parse piflow.yaml text; `path` names it in errors and anchors
    /// relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<TriggerConfig, ConfigError> {
        let src = SourceText::new(path.display().to_string(), text);
        let base_dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let p = Parser {
            src: &src,
            base_dir: &base_dir,
        };
        let mut config = TriggerConfig {
            source: Some(path.to_path_buf()),
            tags: vec![default_rule()],
            events: Vec::new(),
            estate: Estate::default(),
        };
        let blank = text.lines().all(|l| {
            let l = l.trim();
            l.is_empty() || l.starts_with('#') || l == "---"
        });
        if blank {
            return Ok(config);
        }
        let root = piflow_asl::yaml::parse_yaml(text).map_err(|e| ConfigError {
            file: src.name.clone(),
            line: Some(src.line_col(e.offset)),
            key: "(syntax)".into(),
            message: e.message,
        })?;
        let entries = match &root.kind {
            NodeKind::Object(m) => m,
            NodeKind::Null => return Ok(config),
            _ => {
                return Err(p.err(
                    &root,
                    "(top level)",
                    format!(
                        "piflow.yaml must be a mapping with tags: and events: sections, not a {}",
                        root.type_name()
                    ),
                ));
            }
        };
        for (k, v) in entries {
            match k.name.as_str() {
                "tags" => config.tags = p.tags(v)?,
                "events" => config.events = p.events(v)?,
                "product" => config.estate.product = Some(parse_product(&src, v)?),
                "environments" => config.estate.environments = parse_environments(&src, v)?,
                other => {
                    return Err(p.err_at(
                        k.span.start,
                        other,
                        format!(
                            "unknown key{}; piflow.yaml holds tags:, events:, product: and environments:",
                            suggest(other, &["tags", "events", "product", "environments"])
                        ),
                    ));
                }
            }
        }
        Ok(config)
    }

    /// The directory relative paths are resolved from: piflow.yaml's, or
    /// the working directory for the built-in default.
    pub fn base_dir(&self) -> PathBuf {
        self.source
            .as_deref()
            .and_then(Path::parent)
            .filter(|d| !d.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }

    /// Where the configuration came from, for messages.
    pub fn shown(&self) -> String {
        self.source.as_ref().map_or_else(
            || format!("the default rule ({DEFAULT_PATTERN} → upgrade; no {CONFIG_FILE})"),
            |p| p.display().to_string(),
        )
    }

    /// The first rule the tag matches, with its fields; or why none does.
    pub fn match_tag(&self, tag: &str) -> Result<(&TagRule, TagFields), Refusal> {
        let mut malformed: Option<Refusal> = None;
        for rule in &self.tags {
            match rule.pattern.matches(tag) {
                TagMatch::Matched(fields) => return Ok((rule, fields)),
                TagMatch::Malformed {
                    fields,
                    field,
                    value,
                    reason,
                } if malformed.is_none() => {
                    let env = fields.env.clone().filter(|e| Field::Env.check(e));
                    malformed = Some(Refusal {
                        code: match field {
                            Field::Version => "malformed-version",
                            Field::Region => "malformed-region",
                            Field::Env => "malformed-env",
                            Field::Team => "malformed-team",
                        },
                        reason: format!(
                            "tag {tag:?} has the shape of rule {} ({}) in {}, but its {} {value:?} is malformed: {reason}; expected {}",
                            rule.index + 1,
                            rule.pattern.as_str(),
                            self.shown(),
                            field.name(),
                            field.shape()
                        ),
                        env,
                    });
                }
                _ => {}
            }
        }
        Err(malformed.unwrap_or_else(|| Refusal {
            code: "no-rule",
            reason: format!(
                "tag {tag:?} matches no rule in {}; the patterns are: {}",
                self.shown(),
                self.tags
                    .iter()
                    .map(|r| r.pattern.as_str().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            env: None,
        }))
    }
}

impl TagRule {
    /// The workflow input for a tag: the base (its templates rendered),
    /// then the `set:` entries. The same tag always gives the same input.
    pub fn input(&self, vars: &TagVars) -> Result<Value, String> {
        let mut input = if self.base_is_template {
            render_value(&self.base, vars)
        } else {
            self.base.clone()
        };
        for (key, path, value) in &self.set {
            let v = match value {
                SetValue::Template(t) => Value::String(t.render(vars)),
                SetValue::Value(v) => v.clone(),
            };
            set_path(&mut input, path, v).map_err(|e| format!("set {key}: {e}"))?;
        }
        Ok(input)
    }
}

fn render_value(v: &Value, vars: &TagVars) -> Value {
    match v {
        Value::String(s) => match Template::parse(s) {
            Ok(t) => Value::String(t.render(vars)),
            // Checked when the file was read; keep the text as it is.
            Err(_) => v.clone(),
        },
        Value::Array(a) => Value::Array(a.iter().map(|x| render_value(x, vars)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), render_value(x, vars)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Set `value` at `path` (object keys, or array indices into existing
/// arrays), creating missing objects on the way.
fn set_path(root: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let Some((last, init)) = path.split_last() else {
        *root = value;
        return Ok(());
    };
    let mut cur = root;
    for (depth, token) in init.iter().enumerate() {
        cur = step(cur, token, &path[..depth], true)?;
    }
    match cur {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            let i = index(last, a.len())?;
            a[i] = value;
            Ok(())
        }
        other => Err(format!(
            "/{} is a {}, not an object",
            init.join("/"),
            type_name(other)
        )),
    }
}

fn step<'v>(
    cur: &'v mut Value,
    token: &str,
    before: &[String],
    create: bool,
) -> Result<&'v mut Value, String> {
    match cur {
        Value::Object(m) => {
            if create && !m.contains_key(token) {
                m.insert(token.to_string(), Value::Object(Map::new()));
            }
            m.get_mut(token)
                .ok_or_else(|| format!("/{} has no {token:?}", before.join("/")))
        }
        Value::Array(a) => {
            let i = index(token, a.len())?;
            Ok(&mut a[i])
        }
        other => Err(format!(
            "/{} is a {}, not an object",
            before.join("/"),
            type_name(other)
        )),
    }
}

fn index(token: &str, len: usize) -> Result<usize, String> {
    token
        .parse::<usize>()
        .ok()
        .filter(|i| *i < len)
        .ok_or_else(|| format!("{token:?} is not an index of an array of {len} item(s)"))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A `set:` key: a JSON pointer (`/release/image`, with `~0` and `~1`) or
/// a dotted path (`release.image`).
fn parse_key(key: &str) -> Result<Vec<String>, String> {
    if let Some(p) = key.strip_prefix('/') {
        let mut out = Vec::new();
        for token in p.split('/') {
            let mut chars = token.chars();
            let mut bad = false;
            while let Some(c) = chars.next() {
                if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
                    bad = true;
                }
            }
            if bad {
                return Err(format!(
                    "{key:?} is not a JSON pointer: '~' must be followed by 0 or 1"
                ));
            }
            out.push(token.replace("~1", "/").replace("~0", "~"));
        }
        return Ok(out);
    }
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(format!(
            "{key:?} is neither a JSON pointer (/a/b) nor a dotted path (a.b) with non-empty names"
        ));
    }
    Ok(key.split('.').map(str::to_string).collect())
}

fn default_rule() -> TagRule {
    TagRule {
        index: 0,
        line: None,
        pattern: TagPattern::default_pattern(),
        workflow: "upgrade".into(),
        base: json!({
            "target": {"environment": "{env}", "region": "{region}", "team": "{team}"},
            "release": {"version": "{version}", "commit": "{commit}", "tag": "{tag}"}
        }),
        base_is_template: true,
        set: Vec::new(),
    }
}

fn read_limited(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read it: {e}"))?;
    if meta.len() > MAX_BYTES {
        return Err(format!(
            "it is {} bytes; the limit is {MAX_BYTES}",
            meta.len()
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))
}

fn suggest(name: &str, known: &[&str]) -> String {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(name, k), *k))
        .filter(|(s, _)| *s > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| format!(" (did you mean {k:?}?)"))
        .unwrap_or_default()
}

struct Parser<'a> {
    src: &'a SourceText,
    base_dir: &'a Path,
}

const RULE_KEYS: [&str; 4] = ["pattern", "workflow", "input", "set"];

const EVENT_RULE_KEYS: [&str; 6] = [
    "name",
    "pattern",
    "workflow",
    "input_path",
    "input_transformer",
    "environment",
];

/// An EventBridge rule name: 1–64 of `[A-Za-z0-9._-]`.
fn is_rule_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl Parser<'_> {
    fn err_at(&self, offset: usize, key: &str, message: String) -> ConfigError {
        ConfigError {
            file: self.src.name.clone(),
            line: Some(self.src.line_col(offset)),
            key: key.to_string(),
            message,
        }
    }

    fn err(&self, node: &Node, key: &str, message: String) -> ConfigError {
        self.err_at(node.span.start, key, message)
    }

    fn string<'n>(&self, node: &'n Node, key: &str) -> Result<&'n str, ConfigError> {
        node.as_str().ok_or_else(|| {
            self.err(
                node,
                key,
                format!("must be a string, not a {}", node.type_name()),
            )
        })
    }

    fn tags(&self, node: &Node) -> Result<Vec<TagRule>, ConfigError> {
        let Some(items) = node.as_array() else {
            return Err(self.err(
                node,
                "tags",
                format!("must be a list of rules, not a {}", node.type_name()),
            ));
        };
        if items.is_empty() {
            return Err(self.err(
                node,
                "tags",
                "holds no rule: every tag would be refused (remove tags: for the default rule)"
                    .into(),
            ));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, item)| self.rule(i, item))
            .collect()
    }

    fn rule(&self, index: usize, node: &Node) -> Result<TagRule, ConfigError> {
        let at = format!("tags[{index}]");
        let Some(entries) = node.as_object() else {
            return Err(self.err(
                node,
                &at,
                format!(
                    "a rule must be a mapping with pattern, workflow, input and set, not a {}",
                    node.type_name()
                ),
            ));
        };
        for (k, _) in entries {
            if !RULE_KEYS.contains(&k.name.as_str()) {
                return Err(self.err_at(
                    k.span.start,
                    &format!("{at}.{}", k.name),
                    format!(
                        "unknown key{}; a rule has {}",
                        suggest(&k.name, &RULE_KEYS),
                        RULE_KEYS.join(", ")
                    ),
                ));
            }
        }
        let need = |key: &str| {
            node.get(key)
                .ok_or_else(|| self.err(node, &format!("{at}.{key}"), format!("{key} is required")))
        };
        let pattern_node = need("pattern")?;
        let pattern_text = self.string(pattern_node, &format!("{at}.pattern"))?;
        let pattern = TagPattern::parse(pattern_text)
            .map_err(|e| self.err(pattern_node, &format!("{at}.pattern"), e.message))?;
        let workflow_node = need("workflow")?;
        let workflow = self.string(workflow_node, &format!("{at}.workflow"))?;
        if workflow.trim().is_empty() {
            return Err(self.err(workflow_node, &format!("{at}.workflow"), "is empty".into()));
        }
        let captured: Vec<&str> = pattern.fields().map(Field::name).collect();
        let check_template =
            |node: &Node, key: &str, text: &str| -> Result<Template, ConfigError> {
                let t = Template::parse(text).map_err(|m| self.err(node, key, m))?;
                if let Some(v) = t.vars().find(|v| {
                    ["env", "region", "team", "version"].contains(v) && !captured.contains(v)
                }) {
                    return Err(self.err(
                        node,
                        key,
                        format!(
                            "{{{v}}} is not captured by the pattern {:?}",
                            pattern.as_str()
                        ),
                    ));
                }
                Ok(t)
            };
        let (base, base_is_template) = match node.get("input") {
            None => (Value::Object(Map::new()), false),
            Some(n) => match &n.kind {
                NodeKind::String(s) => {
                    let Some(file) = s.strip_prefix('@') else {
                        return Err(self.err(
                            n,
                            &format!("{at}.input"),
                            "must be a mapping (the input, a template) or \"@FILE\" (a JSON file)"
                                .into(),
                        ));
                    };
                    let path = self.base_dir.join(file);
                    let text = read_limited(&path).map_err(|m| {
                        self.err(
                            n,
                            &format!("{at}.input"),
                            format!("{}: {m}", path.display()),
                        )
                    })?;
                    let v: Value = serde_json::from_str(&text).map_err(|e| {
                        self.err(
                            n,
                            &format!("{at}.input"),
                            format!("{} is not valid JSON: {e}", path.display()),
                        )
                    })?;
                    if !v.is_object() {
                        return Err(self.err(
                            n,
                            &format!("{at}.input"),
                            format!("{} must hold a JSON object", path.display()),
                        ));
                    }
                    (v, false)
                }
                NodeKind::Object(_) => {
                    self.check_strings(n, &format!("{at}.input"), &check_template)?;
                    (n.to_value(), true)
                }
                _ => {
                    return Err(self.err(
                        n,
                        &format!("{at}.input"),
                        format!("must be a mapping or \"@FILE\", not a {}", n.type_name()),
                    ));
                }
            },
        };
        let mut set = Vec::new();
        if let Some(n) = node.get("set") {
            let Some(entries) = n.as_object() else {
                return Err(self.err(
                    n,
                    &format!("{at}.set"),
                    format!("must be a mapping of path → value, not a {}", n.type_name()),
                ));
            };
            for (k, v) in entries {
                let key = format!("{at}.set.{}", k.name);
                let path = parse_key(&k.name).map_err(|m| self.err_at(k.span.start, &key, m))?;
                let value = match &v.kind {
                    NodeKind::String(s) => SetValue::Template(check_template(v, &key, s)?),
                    _ => SetValue::Value(v.to_value()),
                };
                set.push((k.name.clone(), path, value));
            }
        }
        let rule = TagRule {
            index,
            line: Some(self.src.line_col(node.span.start).0),
            pattern,
            workflow: workflow.to_string(),
            base,
            base_is_template,
            set,
        };
        // A set: entry that cannot apply to the base is an error now, not
        // when a tag arrives.
        rule.input(&TagVars::default())
            .map_err(|m| self.err(node.get("set").unwrap_or(node), &format!("{at}.set"), m))?;
        Ok(rule)
    }

    fn events(&self, node: &Node) -> Result<Vec<EventRule>, ConfigError> {
        let Some(items) = node.as_array() else {
            return Err(self.err(
                node,
                "events",
                format!("must be a list of rules, not a {}", node.type_name()),
            ));
        };
        let mut rules: Vec<EventRule> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let rule = self.event_rule(i, item)?;
            if let Some(first) = rules.iter().find(|r| r.name == rule.name) {
                return Err(self.err(
                    item.get("name").unwrap_or(item),
                    &format!("events[{i}].name"),
                    format!(
                        "{:?} is also the name of events[{}]; rule names are unique (they name the executions)",
                        rule.name, first.index
                    ),
                ));
            }
            rules.push(rule);
        }
        Ok(rules)
    }

    fn event_rule(&self, index: usize, node: &Node) -> Result<EventRule, ConfigError> {
        let at = format!("events[{index}]");
        let Some(entries) = node.as_object() else {
            return Err(self.err(
                node,
                &at,
                format!(
                    "an event rule must be a mapping with name, pattern and workflow, not a {}",
                    node.type_name()
                ),
            ));
        };
        for (k, _) in entries {
            if !EVENT_RULE_KEYS.contains(&k.name.as_str()) {
                return Err(self.err_at(
                    k.span.start,
                    &format!("{at}.{}", k.name),
                    format!(
                        "unknown key{}; an event rule has {}",
                        suggest(&k.name, &EVENT_RULE_KEYS),
                        EVENT_RULE_KEYS.join(", ")
                    ),
                ));
            }
        }
        let need = |key: &str| {
            node.get(key)
                .ok_or_else(|| self.err(node, &format!("{at}.{key}"), format!("{key} is required")))
        };
        let name_node = need("name")?;
        let name = self.string(name_node, &format!("{at}.name"))?;
        if !is_rule_name(name) {
            return Err(self.err(
                name_node,
                &format!("{at}.name"),
                format!("{name:?} is not a rule name: 1 to 64 letters, digits, '.', '_' or '-'"),
            ));
        }
        let pattern_node = need("pattern")?;
        let pattern_json = pattern_node.to_value();
        let pattern = Pattern::parse(&pattern_json).map_err(|e| {
            self.err(
                pattern_node,
                &format!("{at}.pattern"),
                format!("not a valid event pattern [{}]: {e}", e.code()),
            )
        })?;
        let workflow_node = need("workflow")?;
        let workflow = self.string(workflow_node, &format!("{at}.workflow"))?;
        if workflow.trim().is_empty() {
            return Err(self.err(workflow_node, &format!("{at}.workflow"), "is empty".into()));
        }
        let input = match (node.get("input_path"), node.get("input_transformer")) {
            (Some(_), Some(t)) => {
                return Err(self.err(
                    t,
                    &format!("{at}.input_transformer"),
                    "input_path and input_transformer exclude each other (as on an EventBridge target): keep one".into(),
                ));
            }
            (Some(p), None) => {
                let text = self.string(p, &format!("{at}.input_path"))?;
                EventInput::Path(
                    InputPath::parse(text)
                        .map_err(|e| self.err(p, &format!("{at}.input_path"), e.to_string()))?,
                )
            }
            (None, Some(t)) => EventInput::Transformer(Box::new(self.transformer(&at, t)?)),
            (None, None) => EventInput::Event,
        };
        let (environment, environment_path) = match node.get("environment") {
            None => (EventEnv::FromInput, None),
            Some(n) => {
                let key = format!("{at}.environment");
                let text = self.string(n, &key)?;
                if text.starts_with('$') {
                    let path =
                        InputPath::parse(text).map_err(|e| self.err(n, &key, e.to_string()))?;
                    (EventEnv::Path(text.to_string()), Some(path))
                } else if Field::Env.check(text) {
                    (EventEnv::Name(text.to_string()), None)
                } else {
                    return Err(self.err(
                        n,
                        &key,
                        format!(
                            "{text:?} is neither an environment name ({}) nor a path into the event ($.detail.environment)",
                            Field::Env.shape()
                        ),
                    ));
                }
            }
        };
        Ok(EventRule {
            index,
            line: Some(self.src.line_col(node.span.start).0),
            name: name.to_string(),
            pattern,
            pattern_json,
            workflow: workflow.to_string(),
            input,
            environment,
            environment_path,
        })
    }

    fn transformer(&self, at: &str, node: &Node) -> Result<InputTransformer, ConfigError> {
        let key = format!("{at}.input_transformer");
        let Some(entries) = node.as_object() else {
            return Err(self.err(
                node,
                &key,
                format!(
                    "must be a mapping with input_template and input_paths_map, not a {}",
                    node.type_name()
                ),
            ));
        };
        const KEYS: [&str; 2] = ["input_paths_map", "input_template"];
        for (k, _) in entries {
            if !KEYS.contains(&k.name.as_str()) {
                return Err(self.err_at(
                    k.span.start,
                    &format!("{key}.{}", k.name),
                    format!(
                        "unknown key{}; an input transformer has input_paths_map and input_template",
                        suggest(&k.name, &KEYS)
                    ),
                ));
            }
        }
        let template_node = node.get("input_template").ok_or_else(|| {
            self.err(
                node,
                &format!("{key}.input_template"),
                "input_template is required".into(),
            )
        })?;
        let template = self.string(template_node, &format!("{key}.input_template"))?;
        let mut map = indexmap::IndexMap::new();
        if let Some(m) = node.get("input_paths_map") {
            let Some(pairs) = m.as_object() else {
                return Err(self.err(
                    m,
                    &format!("{key}.input_paths_map"),
                    format!("must be a mapping of name → path, not a {}", m.type_name()),
                ));
            };
            for (k, v) in pairs {
                let path = self.string(v, &format!("{key}.input_paths_map.{}", k.name))?;
                map.insert(k.name.clone(), path.to_string());
            }
        }
        InputTransformer::new(&map, template).map_err(|e| self.err(node, &key, e.to_string()))
    }

    /// Every string inside an inline input must be a valid template.
    fn check_strings(
        &self,
        node: &Node,
        key: &str,
        check: &dyn Fn(&Node, &str, &str) -> Result<Template, ConfigError>,
    ) -> Result<(), ConfigError> {
        match &node.kind {
            NodeKind::String(s) => check(node, key, s).map(|_| ()),
            NodeKind::Array(a) => a
                .iter()
                .enumerate()
                .try_for_each(|(i, n)| self.check_strings(n, &format!("{key}[{i}]"), check)),
            NodeKind::Object(m) => m
                .iter()
                .try_for_each(|(k, n)| self.check_strings(n, &format!("{key}.{}", k.name), check)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let t = Template::parse("a{{b}}{env}-{version}").unwrap();
        let vars = TagVars {
            fields: TagFields {
                env: Some("dev".into()),
                version: Some("1.0".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(t.render(&vars), "a{b}dev-1.0");
        assert!(Template::parse("{nope}").is_err());
        assert!(Template::parse("{env").is_err());
        assert!(Template::parse("x}").is_err());
    }

    #[test]
    fn keys() {
        assert_eq!(parse_key("/a~1b/c").unwrap(), vec!["a/b", "c"]);
        assert_eq!(parse_key("a.b").unwrap(), vec!["a", "b"]);
        assert!(parse_key("a..b").is_err());
    }
}
