//! Building the typed model from a [`Node`] tree, reporting every problem.
//!
//! The loader never stops at the first problem: each field is checked on its
//! own and a state with problems still yields as much model as possible, so
//! that the graph rules in [`super::check`] also run. A definition is valid
//! when no error-severity diagnostic was produced.

use std::collections::HashMap;

use indexmap::IndexMap;
use serde_json::Value;

use super::diagnostics::{Code, Diagnostic, child_pointer};
use super::intrinsic::{PayloadExpr, parse_payload_expr};
use super::jsonata::{JsonataExpr, parse_jsonata_string};
use super::model::*;
use super::path::{PathRoot, ReferencePath, parse_json_path, parse_reference_path};
use super::source::{Key, Node, NodeKind, Span};

/// Longest state name AWS accepts.
pub const MAX_STATE_NAME: usize = 80;
/// Longest Map label AWS accepts.
pub const MAX_LABEL: usize = 40;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Lang {
    Both,
    Path,
    Ata,
}

use Lang::{Ata, Both, Path};

const STATE_TYPES: &[&str] = &[
    "Pass", "Task", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map",
];

/// The fields each state type allows, with the query language they belong to.
fn fields_of(state_type: &str) -> &'static [(&'static str, Lang)] {
    match state_type {
        "Pass" => &[
            ("Type", Both),
            ("Comment", Both),
            ("QueryLanguage", Both),
            ("InputPath", Path),
            ("OutputPath", Path),
            ("Next", Both),
            ("End", Both),
            ("Parameters", Path),
            ("Result", Path),
            ("ResultPath", Path),
            ("Assign", Both),
            ("Output", Ata),
        ],
        "Task" => &[
            ("Type", Both),
            ("Comment", Both),
            ("QueryLanguage", Both),
            ("InputPath", Path),
            ("OutputPath", Path),
            ("Next", Both),
            ("End", Both),
            ("Resource", Both),
            ("Parameters", Path),
            ("Arguments", Ata),
            ("ResultSelector", Path),
            ("ResultPath", Path),
            ("Retry", Both),
            ("Catch", Both),
            ("TimeoutSeconds", Both),
            ("TimeoutSecondsPath", Path),
            ("HeartbeatSeconds", Both),
            ("HeartbeatSecondsPath", Path),
            ("Credentials", Both),
            ("Assign", Both),
            ("Output", Ata),
        ],
        "Choice" => &[
            ("Type", Both),
            ("Comment", Both),
            ("QueryLanguage", Both),
            ("InputPath", Path),
            ("OutputPath", Path),
            ("Choices", Both),
            ("Default", Both),
            ("Assign", Both),
            ("Output", Ata),
        ],
        "Wait" => &[
            ("Type", Both),
            ("Comment", Both),
            ("QueryLanguage", Both),
            ("InputPath", Path),
            ("OutputPath", Path),
            ("Next", Both),
            ("End", Both),
            ("Seconds", Both),
            ("SecondsPath", Path),
            ("Timestamp", Both),
            ("TimestampPath", Path),
            ("Assign", Both),
            ("Output", Ata),
        ],
        "Succeed" => &[
            ("Type", Both),
            ("Comment", Both),
            ("QueryLanguage", Both),
            ("InputPath", Path),
            ("OutputPath", Path),
            ("Output", Ata),
        ],
        "Fail" => &[
            ("Type", Both),
            ("Comment", Both),
            ("QueryLanguage", Both),
            ("Error", Both),
            ("ErrorPath", Path),
            ("Cause", Both),
            ("CausePath", Path),
        ],
        "Parallel" => &[
            ("Type", Both),
            ("Comment", Both),
            ("QueryLanguage", Both),
            ("InputPath", Path),
            ("OutputPath", Path),
            ("Next", Both),
            ("End", Both),
            ("Branches", Both),
            ("Parameters", Path),
            ("Arguments", Ata),
            ("ResultSelector", Path),
            ("ResultPath", Path),
            ("Retry", Both),
            ("Catch", Both),
            ("Assign", Both),
            ("Output", Ata),
        ],
        "Map" => &[
            ("Type", Both),
            ("Comment", Both),
            ("QueryLanguage", Both),
            ("InputPath", Path),
            ("OutputPath", Path),
            ("Next", Both),
            ("End", Both),
            ("ItemProcessor", Both),
            ("Iterator", Both),
            ("ItemsPath", Path),
            ("Items", Ata),
            ("ItemSelector", Both),
            ("Parameters", Path),
            ("ItemReader", Both),
            ("ItemBatcher", Both),
            ("ResultWriter", Both),
            ("MaxConcurrency", Both),
            ("MaxConcurrencyPath", Path),
            ("ToleratedFailureCount", Both),
            ("ToleratedFailureCountPath", Path),
            ("ToleratedFailurePercentage", Both),
            ("ToleratedFailurePercentagePath", Path),
            ("Label", Both),
            ("ResultSelector", Path),
            ("ResultPath", Path),
            ("Retry", Both),
            ("Catch", Both),
            ("Assign", Both),
            ("Output", Ata),
        ],
        _ => &[],
    }
}

/// Every field name any state may have (for "did you mean" suggestions).
fn all_state_fields() -> impl Iterator<Item = &'static str> {
    STATE_TYPES
        .iter()
        .flat_map(|t| fields_of(t).iter().map(|(f, _)| *f))
}

/// The nearest candidate to `word`, if any is close enough to be a typo.
pub fn suggest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    let mut best: Option<(&str, f64)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(&lower, &c.to_ascii_lowercase());
        let contains = lower.contains(&c.to_ascii_lowercase()) && c.len() >= 4;
        let score = if contains { score.max(0.9) } else { score };
        if score >= 0.85 && best.is_none_or(|(_, s)| score > s) {
            best = Some((c, score));
        }
    }
    best.map(|(c, _)| c)
}

fn did_you_mean(s: Option<&str>) -> String {
    s.map(|s| format!("; did you mean \"{s}\"?"))
        .unwrap_or_default()
}

/// Options that change what is valid.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    pub machine_type: MachineType,
}

pub struct Loader {
    pub diagnostics: Vec<Diagnostic>,
    options: LoadOptions,
    /// Every state name seen, with its pointer (names are unique machine-wide).
    names: HashMap<String, String>,
}

impl Loader {
    pub fn new(options: LoadOptions) -> Self {
        Loader {
            diagnostics: Vec::new(),
            options,
            names: HashMap::new(),
        }
    }

    fn error(&mut self, code: Code, ptr: &str, span: Span, msg: impl Into<String>) {
        self.diagnostics
            .push(Diagnostic::error(code, ptr, msg).at(span));
    }

    fn warn(&mut self, code: Code, ptr: &str, span: Span, msg: impl Into<String>) {
        self.diagnostics
            .push(Diagnostic::warning(code, ptr, msg).at(span));
    }

    fn wrong_type(&mut self, ptr: &str, node: &Node, field: &str, want: &str) {
        self.error(
            Code::WrongType,
            ptr,
            node.span,
            format!("{field} must be {want}, not {}", node.type_name()),
        );
    }

    // ----- the machine and its scopes -----------------------------------

    /// Load a whole state machine.
    pub fn machine(&mut self, node: &Node) -> Option<StateMachine> {
        let Some(fields) = node.as_object() else {
            self.error(
                Code::WrongType,
                "",
                node.span,
                format!(
                    "a state machine definition must be a JSON object, not {}",
                    node.type_name()
                ),
            );
            return None;
        };
        const TOP: &[&str] = &[
            "Comment",
            "StartAt",
            "States",
            "Version",
            "TimeoutSeconds",
            "QueryLanguage",
        ];
        self.unknown_keys(fields, "", TOP, "at the top level of a state machine");
        let query_language = self
            .query_language(node, "")
            .unwrap_or(QueryLanguage::JsonPath);
        let comment = self.opt_string(node, "", "Comment");
        let version = self.opt_string(node, "", "Version");
        if let Some(v) = &version
            && v != "1.0"
            && let Some(n) = node.get("Version")
        {
            self.warn(
                Code::InvalidValue,
                "/Version",
                n.span,
                format!("Version {v:?}: the only ASL version is \"1.0\""),
            );
        }
        let timeout_seconds = node
            .get("TimeoutSeconds")
            .and_then(|n| self.positive_int(n, "/TimeoutSeconds", "TimeoutSeconds", 0));
        let scope = self.scope(node, "", query_language, "state machine");
        Some(StateMachine {
            comment,
            version,
            timeout_seconds,
            query_language,
            scope: scope?,
        })
    }

    /// Load one state on its own (as the TestState API takes it).
    pub fn single_state(&mut self, node: &Node, name: &str) -> Option<State> {
        self.state(name, node, "", QueryLanguage::JsonPath)
    }

    fn scope(&mut self, node: &Node, ptr: &str, lang: QueryLanguage, what: &str) -> Option<Scope> {
        let start_at = node.get("StartAt");
        let states = node.get("States");
        let mut missing = Vec::new();
        if states.is_none() {
            missing.push("States");
        }
        if start_at.is_none() {
            missing.push("StartAt");
        }
        if !missing.is_empty() {
            self.error(
                Code::MissingField,
                ptr,
                node.span,
                format!("the {what} needs {}", missing.join(" and ")),
            );
        }
        let start = match start_at {
            Some(n) => match n.as_str() {
                Some(s) => Some(s.to_string()),
                None => {
                    self.wrong_type(&child_pointer(ptr, "StartAt"), n, "StartAt", "a string");
                    None
                }
            },
            None => None,
        };
        let states_ptr = child_pointer(ptr, "States");
        let mut map =
            IndexMap::with_capacity(states.and_then(Node::as_object).map_or(0, <[_]>::len));
        let mut broken = Vec::new();
        if let Some(n) = states {
            match n.as_object() {
                Some(entries) => {
                    if entries.is_empty() {
                        self.error(
                            Code::MissingField,
                            &states_ptr,
                            n.span,
                            format!("States of the {what} is empty: it needs at least one state"),
                        );
                    }
                    for (key, value) in entries {
                        let sptr = child_pointer(&states_ptr, &key.name);
                        self.state_name(key, &sptr);
                        match self.state(&key.name, value, &sptr, lang) {
                            Some(state) => {
                                map.insert(key.name.clone(), state);
                            }
                            None => broken.push(key.name.clone()),
                        }
                    }
                }
                None => self.wrong_type(&states_ptr, n, "States", "an object of states"),
            }
        }
        Some(Scope {
            comment: node
                .get("Comment")
                .and_then(|c| c.as_str())
                .map(str::to_string),
            start_at: start?,
            states: map,
            broken,
            pointer: ptr.to_string(),
        })
    }

    fn state_name(&mut self, key: &Key, ptr: &str) {
        let name = &key.name;
        let len = name.chars().count();
        if len == 0 {
            self.error(
                Code::InvalidName,
                ptr,
                key.span,
                "a state name cannot be empty",
            );
        } else if len > MAX_STATE_NAME {
            self.error(
                Code::InvalidName,
                ptr,
                key.span,
                format!("state name is {len} characters long; the limit is {MAX_STATE_NAME}"),
            );
        }
        if let Some(c) = name.chars().find(|c| c.is_control()) {
            self.error(
                Code::InvalidName,
                ptr,
                key.span,
                format!("state name contains the control character {c:?}"),
            );
        }
        if let Some(first) = self.names.get(name) {
            let msg = format!(
                "state name {name:?} is already used at {first}: names must be unique in the whole state machine, including branches and Map processors"
            );
            self.error(Code::DuplicateState, ptr, key.span, msg);
        } else {
            self.names.insert(name.clone(), ptr.to_string());
        }
    }

    // ----- field bookkeeping ---------------------------------------------

    fn unknown_keys(&mut self, fields: &[(Key, Node)], ptr: &str, allowed: &[&str], place: &str) {
        for (k, _) in fields {
            if !allowed.contains(&k.name.as_str()) {
                let hint = did_you_mean(suggest(&k.name, allowed.iter().copied()));
                self.error(
                    Code::UnknownField,
                    &child_pointer(ptr, &k.name),
                    k.span,
                    format!("unknown field \"{}\" {place}{hint}", k.name),
                );
            }
        }
    }

    /// [`Self::unknown_keys`] for an object that takes its payload as
    /// `Parameters` (JSONPath) or `Arguments` (JSONata), besides `common`:
    /// the payload field of the other query language is a `query-language`
    /// error.
    fn payload_keys(
        &mut self,
        fields: &[(Key, Node)],
        ptr: &str,
        common: &[&str],
        lang: QueryLanguage,
        place: &str,
    ) {
        let (own, other, instead) = match lang {
            QueryLanguage::JsonPath => (
                "Parameters",
                "Arguments",
                "set \"QueryLanguage\": \"JSONata\" on the state or the machine",
            ),
            QueryLanguage::Jsonata => ("Arguments", "Parameters", "use Arguments"),
        };
        let allowed: Vec<&str> = common.iter().copied().chain([own]).collect();
        for (k, _) in fields {
            if allowed.contains(&k.name.as_str()) {
                continue;
            }
            let kptr = child_pointer(ptr, &k.name);
            if k.name == other {
                self.error(
                    Code::QueryLanguage,
                    &kptr,
                    k.span,
                    format!(
                        "{other} {place} is a {} field, but this state uses {}: {instead}",
                        if lang == QueryLanguage::JsonPath {
                            "JSONata"
                        } else {
                            "JSONPath"
                        },
                        lang.as_str()
                    ),
                );
            } else {
                let hint = did_you_mean(suggest(&k.name, allowed.iter().copied()));
                self.error(
                    Code::UnknownField,
                    &kptr,
                    k.span,
                    format!("unknown field \"{}\" {place}{hint}", k.name),
                );
            }
        }
    }

    fn query_language(&mut self, node: &Node, ptr: &str) -> Option<QueryLanguage> {
        let n = node.get("QueryLanguage")?;
        match n.as_str() {
            Some("JSONPath") => Some(QueryLanguage::JsonPath),
            Some("JSONata") => Some(QueryLanguage::Jsonata),
            Some(other) => {
                self.error(
                    Code::InvalidValue,
                    &child_pointer(ptr, "QueryLanguage"),
                    n.span,
                    format!("QueryLanguage must be \"JSONPath\" or \"JSONata\", not {other:?}"),
                );
                None
            }
            None => {
                self.wrong_type(
                    &child_pointer(ptr, "QueryLanguage"),
                    n,
                    "QueryLanguage",
                    "a string",
                );
                None
            }
        }
    }

    fn opt_string(&mut self, node: &Node, ptr: &str, field: &str) -> Option<String> {
        let n = node.get(field)?;
        match n.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                self.wrong_type(&child_pointer(ptr, field), n, field, "a string");
                None
            }
        }
    }

    fn positive_int(&mut self, n: &Node, ptr: &str, field: &str, min: u64) -> Option<u64> {
        match &n.kind {
            NodeKind::Number(num) => {
                if let Some(u) = num.as_u64() {
                    if u >= min && u <= 99_999_999 {
                        return Some(u);
                    }
                    self.error(
                        Code::InvalidValue,
                        ptr,
                        n.span,
                        format!("{field} must be between {min} and 99999999, not {u}"),
                    );
                    return None;
                }
                self.error(
                    Code::InvalidValue,
                    ptr,
                    n.span,
                    format!("{field} must be a whole number ≥ {min}, not {num}"),
                );
                None
            }
            _ => {
                self.wrong_type(ptr, n, field, "a whole number");
                None
            }
        }
    }

    fn boolean(&mut self, n: &Node, ptr: &str, field: &str) -> Option<bool> {
        match n.kind {
            NodeKind::Bool(b) => Some(b),
            _ => {
                self.wrong_type(ptr, n, field, "a boolean");
                None
            }
        }
    }

    // ----- expressions --------------------------------------------------

    fn jsonata(&mut self, s: &str, ptr: &str, span: Span) -> Option<Option<JsonataExpr>> {
        match parse_jsonata_string(s)? {
            Ok(e) => Some(Some(e)),
            Err(e) => {
                self.error(e.code(), ptr, span, format!("{e}"));
                Some(None)
            }
        }
    }

    fn json_path_field(
        &mut self,
        n: &Node,
        ptr: &str,
        field: &str,
    ) -> Option<Nullable<super::path::JsonPath>> {
        match &n.kind {
            NodeKind::Null => Some(Nullable::Null),
            NodeKind::String(s) => match parse_json_path(s) {
                Ok(p) => Some(Nullable::Value(p)),
                Err(e) => {
                    self.error(
                        Code::InvalidPath,
                        ptr,
                        n.span,
                        format!("{field} {s:?} is not a valid JSONPath: {e}"),
                    );
                    None
                }
            },
            _ => {
                self.wrong_type(ptr, n, field, "a JSONPath string or null");
                None
            }
        }
    }

    fn result_path(&mut self, n: &Node, ptr: &str) -> Option<Nullable<ReferencePath>> {
        match &n.kind {
            NodeKind::Null => Some(Nullable::Null),
            NodeKind::String(s) => match parse_reference_path(s) {
                Ok(p) => {
                    if !matches!(p.root, PathRoot::Input) {
                        self.error(
                            Code::InvalidPath,
                            ptr,
                            n.span,
                            format!("ResultPath {s:?} must start with \"$\": it cannot write to the context object or a variable (use Assign for variables)"),
                        );
                        return None;
                    }
                    Some(Nullable::Value(p))
                }
                Err(e) => {
                    self.error(
                        Code::InvalidPath,
                        ptr,
                        n.span,
                        format!("ResultPath {s:?} is not a valid reference path: {e}"),
                    );
                    None
                }
            },
            _ => {
                self.wrong_type(ptr, n, "ResultPath", "a reference path string or null");
                None
            }
        }
    }

    fn reference_path(&mut self, n: &Node, ptr: &str, field: &str) -> Option<ReferencePath> {
        match n.as_str() {
            Some(s) => match parse_reference_path(s) {
                Ok(p) => Some(p),
                Err(e) => {
                    self.error(
                        Code::InvalidPath,
                        ptr,
                        n.span,
                        format!("{field} {s:?} is not a valid reference path: {e}"),
                    );
                    None
                }
            },
            None => {
                self.wrong_type(ptr, n, field, "a reference path string");
                None
            }
        }
    }

    fn payload_expr(&mut self, s: &str, ptr: &str, span: Span, field: &str) -> Option<PayloadExpr> {
        self.payload_expr_at(s, &|| ptr.to_string(), span, field)
    }

    fn payload_expr_at(
        &mut self,
        s: &str,
        ptr: &dyn Fn() -> String,
        span: Span,
        field: &str,
    ) -> Option<PayloadExpr> {
        match parse_payload_expr(s) {
            Ok(e) => Some(e),
            Err(e) => {
                let code = if s.trim_start().starts_with("States.") {
                    Code::InvalidIntrinsic
                } else {
                    Code::InvalidPath
                };
                self.error(
                    code,
                    &ptr(),
                    span,
                    format!("{field}: {s:?} is not a valid path or intrinsic function: {e}"),
                );
                None
            }
        }
    }

    /// A JSONPath payload template (`key.$` fields hold expressions).
    fn payload_template(&mut self, n: &Node, ptr: &str) -> Template {
        self.payload_template_at(n, &|| ptr.to_string())
    }

    /// The pointer is built only when a diagnostic needs it: templates are
    /// the bulk of a definition, and most have no problem.
    fn payload_template_at(&mut self, n: &Node, ptr: &dyn Fn() -> String) -> Template {
        match &n.kind {
            NodeKind::Object(entries) => {
                let mut out = Vec::with_capacity(entries.len());
                let mut any_expr = false;
                // Large payload objects (rare) get a map; small ones a scan.
                let mut seen: Option<HashMap<&str, &str>> = (entries.len() > 32).then(HashMap::new);
                for (i, (k, v)) in entries.iter().enumerate() {
                    let kptr = || child_pointer(&ptr(), &k.name);
                    let (name, is_expr) = match k.name.strip_suffix(".$") {
                        Some(stripped) => (stripped, true),
                        None => (k.name.as_str(), false),
                    };
                    // `x` and `x.$` set the same field. Payload objects are
                    // small: a scan of the keys before this one.
                    let earlier = match seen.as_mut() {
                        Some(map) => map.insert(name, k.name.as_str()),
                        None => entries[..i]
                            .iter()
                            .map(|(e, _)| e.name.as_str())
                            .find(|e| e.strip_suffix(".$").unwrap_or(e) == name),
                    };
                    if let Some(other) = earlier {
                        self.error(
                            Code::DuplicateKey,
                            &kptr(),
                            k.span,
                            format!(
                                "fields \"{other}\" and \"{}\" both set \"{name}\" in the payload",
                                k.name
                            ),
                        );
                    }
                    if is_expr {
                        any_expr = true;
                        match v.as_str() {
                            Some(s) => {
                                if let Some(e) = self.payload_expr_at(s, &kptr, v.span, &k.name) {
                                    out.push((name.to_string(), Template::Path(e)));
                                }
                            }
                            None => self.wrong_type(
                                &kptr(),
                                v,
                                &format!("field \"{}\"", k.name),
                                "a string holding a path or intrinsic function (a key ending in \".$\")",
                            ),
                        }
                    } else {
                        let t = self.payload_template_at(v, &kptr);
                        any_expr |= !matches!(t, Template::Literal(_));
                        out.push((name.to_string(), t));
                    }
                }
                object_template(out, any_expr)
            }
            NodeKind::Array(items) => {
                let ts: Vec<Template> = items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        self.payload_template_at(v, &|| child_pointer(&ptr(), &i.to_string()))
                    })
                    .collect();
                array_template(ts)
            }
            _ => Template::Literal(n.to_value()),
        }
    }

    /// A JSONata template (`"{% ... %}"` strings hold expressions).
    fn jsonata_template(&mut self, n: &Node, ptr: &str) -> Template {
        self.jsonata_template_at(n, &|| ptr.to_string())
    }

    fn jsonata_template_at(&mut self, n: &Node, ptr: &dyn Fn() -> String) -> Template {
        match &n.kind {
            NodeKind::String(s) => match parse_jsonata_string(s) {
                Some(Ok(e)) => Template::Jsonata(e),
                Some(Err(e)) => {
                    self.error(e.code(), &ptr(), n.span, format!("{e}"));
                    Template::Literal(Value::Null)
                }
                None => Template::Literal(n.to_value()),
            },
            NodeKind::Object(entries) => {
                let mut any_expr = false;
                let out: Vec<(String, Template)> = entries
                    .iter()
                    .map(|(k, v)| {
                        let t = self.jsonata_template_at(v, &|| child_pointer(&ptr(), &k.name));
                        any_expr |= !matches!(t, Template::Literal(_));
                        (k.name.clone(), t)
                    })
                    .collect();
                object_template(out, any_expr)
            }
            NodeKind::Array(items) => {
                let ts: Vec<Template> = items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        self.jsonata_template_at(v, &|| child_pointer(&ptr(), &i.to_string()))
                    })
                    .collect();
                array_template(ts)
            }
            _ => Template::Literal(n.to_value()),
        }
    }

    fn template(&mut self, n: &Node, ptr: &str, lang: QueryLanguage) -> Template {
        match lang {
            QueryLanguage::JsonPath => self.payload_template(n, ptr),
            QueryLanguage::Jsonata => self.jsonata_template(n, ptr),
        }
    }

    /// Assign: an object of variable names.
    fn assign(&mut self, n: &Node, ptr: &str, lang: QueryLanguage) -> Option<Template> {
        let Some(entries) = n.as_object() else {
            self.wrong_type(ptr, n, "Assign", "an object of variable names");
            return None;
        };
        for (k, _) in entries {
            let name = k.name.strip_suffix(".$").unwrap_or(&k.name);
            if name.is_empty() || name.starts_with('$') {
                self.error(
                    Code::InvalidValue,
                    &child_pointer(ptr, &k.name),
                    k.span,
                    format!(
                        "\"{}\" is not a valid variable name: write the name without \"$\"",
                        k.name
                    ),
                );
            }
        }
        Some(self.template(n, ptr, lang))
    }

    /// A number that may be written literally, by a `...Path` field, or
    /// (JSONata) as an expression.
    #[allow(clippy::too_many_arguments)]
    fn number_source(
        &mut self,
        node: &Node,
        ptr: &str,
        field: &str,
        path_field: Option<&str>,
        lang: QueryLanguage,
        check: NumberCheck,
    ) -> Option<NumberSource> {
        let direct = node.get(field);
        let via_path = path_field.and_then(|p| node.get(p).map(|n| (p, n)));
        if let (Some(d), Some((pf, _))) = (direct, via_path) {
            self.error(
                Code::ExclusiveFields,
                &child_pointer(ptr, pf),
                d.span,
                format!("{field} and {pf} cannot be used together"),
            );
            return None;
        }
        if let Some(n) = direct {
            let fptr = child_pointer(ptr, field);
            if let (QueryLanguage::Jsonata, Some(s)) = (lang, n.as_str()) {
                return match self.jsonata(s, &fptr, n.span) {
                    Some(Some(e)) => Some(NumberSource::Jsonata(e)),
                    Some(None) => None,
                    None => {
                        self.wrong_type(&fptr, n, field, "a number or a JSONata expression");
                        None
                    }
                };
            }
            let NodeKind::Number(num) = &n.kind else {
                let want = if lang == QueryLanguage::Jsonata {
                    "a number or a JSONata expression"
                } else {
                    "a number"
                };
                self.wrong_type(&fptr, n, field, want);
                return None;
            };
            let v = num.as_f64().unwrap_or(f64::NAN);
            let ok = match check {
                NumberCheck::Int { min, max } => num.as_u64().is_some_and(|u| u >= min && u <= max),
                NumberCheck::Range { min, max } => v >= min && v <= max,
            };
            if !ok {
                let want = match check {
                    NumberCheck::Int { min, max } => format!("a whole number from {min} to {max}"),
                    NumberCheck::Range { min, max } => format!("a number from {min} to {max}"),
                };
                self.error(
                    Code::InvalidValue,
                    &fptr,
                    n.span,
                    format!("{field} must be {want}, not {num}"),
                );
                return None;
            }
            return Some(NumberSource::Value(v));
        }
        if let Some((pf, n)) = via_path {
            let fptr = child_pointer(ptr, pf);
            return self.reference_path(n, &fptr, pf).map(NumberSource::Path);
        }
        None
    }

    fn exclusive(&mut self, node: &Node, ptr: &str, a: &str, b: &str) -> bool {
        if node.get(a).is_some()
            && let Some(nb) = node.get(b)
        {
            self.error(
                Code::ExclusiveFields,
                &child_pointer(ptr, b),
                nb.span,
                format!("{a} and {b} cannot be used together"),
            );
            return true;
        }
        false
    }

    // ----- states ------------------------------------------------------

    fn state(
        &mut self,
        name: &str,
        node: &Node,
        ptr: &str,
        parent_lang: QueryLanguage,
    ) -> Option<State> {
        let Some(fields) = node.as_object() else {
            self.error(
                Code::WrongType,
                ptr,
                node.span,
                format!("state {name:?} must be an object, not {}", node.type_name()),
            );
            return None;
        };
        let type_name = match node.get("Type") {
            None => {
                self.error(
                    Code::MissingField,
                    ptr,
                    node.span,
                    format!("state {name:?} has no Type"),
                );
                return None;
            }
            Some(t) => match t.as_str() {
                Some(s) if STATE_TYPES.contains(&s) => s,
                Some(s) => {
                    let hint = did_you_mean(suggest(s, STATE_TYPES.iter().copied()));
                    self.error(
                        Code::InvalidValue,
                        &child_pointer(ptr, "Type"),
                        t.span,
                        format!(
                            "state {name:?} has unknown Type {s:?} (one of Pass, Task, Choice, Wait, Succeed, Fail, Parallel, Map){hint}"
                        ),
                    );
                    return None;
                }
                None => {
                    self.wrong_type(&child_pointer(ptr, "Type"), t, "Type", "a string");
                    return None;
                }
            },
        };
        let own_lang = self.query_language(node, ptr);
        if parent_lang == QueryLanguage::Jsonata
            && own_lang == Some(QueryLanguage::JsonPath)
            && let Some(n) = node.get("QueryLanguage")
        {
            self.error(
                Code::QueryLanguage,
                &child_pointer(ptr, "QueryLanguage"),
                n.span,
                "QueryLanguage cannot be \"JSONPath\" when the state machine is set to \"JSONata\"",
            );
        }
        let lang = own_lang.unwrap_or(parent_lang);
        self.check_fields(fields, ptr, type_name, lang);

        let comment = self.opt_string(node, ptr, "Comment");
        let input_path = node
            .get("InputPath")
            .and_then(|n| self.json_path_field(n, &child_pointer(ptr, "InputPath"), "InputPath"));
        let output_path = node
            .get("OutputPath")
            .and_then(|n| self.json_path_field(n, &child_pointer(ptr, "OutputPath"), "OutputPath"));
        let output = node
            .get("Output")
            .map(|n| self.jsonata_template(n, &child_pointer(ptr, "Output")));
        let assign = node
            .get("Assign")
            .and_then(|n| self.assign(n, &child_pointer(ptr, "Assign"), lang));
        let transition = self.transition(node, ptr, type_name);

        let kind = match type_name {
            "Pass" => StateKind::Pass(Pass {
                result: node.get("Result").map(Node::to_value),
                result_path: node
                    .get("ResultPath")
                    .and_then(|n| self.result_path(n, &child_pointer(ptr, "ResultPath"))),
                parameters: node
                    .get("Parameters")
                    .map(|n| self.payload_template(n, &child_pointer(ptr, "Parameters"))),
            }),
            "Task" => StateKind::Task(Box::new(self.task(node, ptr, lang)?)),
            "Choice" => StateKind::Choice(self.choice(node, ptr, lang)),
            "Wait" => StateKind::Wait(self.wait(node, ptr, lang)?),
            "Succeed" => StateKind::Succeed,
            "Fail" => StateKind::Fail(self.fail(node, ptr, lang)),
            "Parallel" => StateKind::Parallel(self.parallel(node, ptr, lang)?),
            "Map" => StateKind::Map(Box::new(self.map(node, ptr, lang)?)),
            _ => return None,
        };
        Some(State {
            name: name.to_string(),
            pointer: ptr.to_string(),
            comment,
            query_language: lang,
            input_path,
            output_path,
            output,
            assign,
            transition,
            kind,
        })
    }

    fn check_fields(
        &mut self,
        fields: &[(Key, Node)],
        ptr: &str,
        type_name: &str,
        lang: QueryLanguage,
    ) {
        let allowed = fields_of(type_name);
        for (k, _) in fields {
            match allowed.iter().find(|(f, _)| *f == k.name) {
                Some((_, Both)) => continue,
                Some((_, Path)) if lang == QueryLanguage::JsonPath => continue,
                Some((_, Ata)) if lang == QueryLanguage::Jsonata => continue,
                _ => {}
            }
            let kptr = child_pointer(ptr, &k.name);
            match allowed.iter().find(|(f, _)| *f == k.name) {
                Some((_, Both)) => {}
                Some((_, Path)) if lang == QueryLanguage::JsonPath => {}
                Some((_, Ata)) if lang == QueryLanguage::Jsonata => {}
                Some((f, l)) => {
                    let (belongs, instead) = match l {
                        Path => ("JSONPath", jsonata_alternative(f)),
                        _ => (
                            "JSONata",
                            "set \"QueryLanguage\": \"JSONata\" on the state or the machine"
                                .to_string(),
                        ),
                    };
                    self.error(
                        Code::QueryLanguage,
                        &kptr,
                        k.span,
                        format!(
                            "{f} is a {belongs} field, but this state uses {}: {instead}",
                            lang.as_str()
                        ),
                    );
                }
                None => {
                    if all_state_fields().any(|f| f == k.name) {
                        self.error(
                            Code::FieldNotAllowed,
                            &kptr,
                            k.span,
                            format!("field \"{}\" is not allowed in a {type_name} state", k.name),
                        );
                    } else {
                        let hint = did_you_mean(suggest(&k.name, allowed.iter().map(|(f, _)| *f)));
                        self.error(
                            Code::UnknownField,
                            &kptr,
                            k.span,
                            format!("unknown field \"{}\" in a {type_name} state{hint}", k.name),
                        );
                    }
                }
            }
        }
    }

    fn transition(&mut self, node: &Node, ptr: &str, type_name: &str) -> Transition {
        let terminal_type = matches!(type_name, "Choice" | "Succeed" | "Fail");
        let next = node.get("Next");
        let end = node.get("End");
        if terminal_type {
            return Transition::Terminal;
        }
        match (next, end) {
            (Some(n), Some(e)) => {
                let ends = matches!(e.kind, NodeKind::Bool(true));
                if ends {
                    self.error(
                        Code::ExclusiveFields,
                        &child_pointer(ptr, "End"),
                        e.span,
                        "Next and End cannot be used together",
                    );
                } else {
                    self.boolean(e, &child_pointer(ptr, "End"), "End");
                }
                match n.as_str() {
                    Some(s) => Transition::Next(s.to_string()),
                    None => {
                        self.wrong_type(&child_pointer(ptr, "Next"), n, "Next", "a state name");
                        Transition::End
                    }
                }
            }
            (Some(n), None) => match n.as_str() {
                Some(s) => Transition::Next(s.to_string()),
                None => {
                    self.wrong_type(&child_pointer(ptr, "Next"), n, "Next", "a state name");
                    Transition::End
                }
            },
            (None, Some(e)) => match self.boolean(e, &child_pointer(ptr, "End"), "End") {
                Some(true) => Transition::End,
                Some(false) => {
                    self.error(
                        Code::MissingField,
                        ptr,
                        e.span,
                        format!("a {type_name} state with \"End\": false needs Next"),
                    );
                    Transition::End
                }
                None => Transition::End,
            },
            (None, None) => {
                self.error(
                    Code::MissingField,
                    ptr,
                    node.span,
                    format!("a {type_name} state needs Next or \"End\": true"),
                );
                Transition::End
            }
        }
    }

    fn result_handling(&mut self, node: &Node, ptr: &str, lang: QueryLanguage) -> ResultHandling {
        let parameters = node
            .get("Parameters")
            .map(|n| self.payload_template(n, &child_pointer(ptr, "Parameters")));
        let arguments = node.get("Arguments").map(|n| {
            let aptr = child_pointer(ptr, "Arguments");
            self.jsonata_template(n, &aptr)
        });
        let result_selector = node.get("ResultSelector").map(|n| {
            let sptr = child_pointer(ptr, "ResultSelector");
            if n.as_object().is_none() {
                self.wrong_type(&sptr, n, "ResultSelector", "an object");
            }
            self.payload_template(n, &sptr)
        });
        let result_path = node
            .get("ResultPath")
            .and_then(|n| self.result_path(n, &child_pointer(ptr, "ResultPath")));
        let retry = match node.get("Retry") {
            Some(n) => self.retriers(n, &child_pointer(ptr, "Retry")),
            None => Vec::new(),
        };
        let catch = match node.get("Catch") {
            Some(n) => self.catchers(n, &child_pointer(ptr, "Catch"), lang),
            None => Vec::new(),
        };
        ResultHandling {
            parameters,
            arguments,
            result_selector,
            result_path,
            retry,
            catch,
        }
    }

    fn error_equals(&mut self, node: &Node, ptr: &str) -> Vec<String> {
        let Some(n) = node.get("ErrorEquals") else {
            self.error(
                Code::MissingField,
                ptr,
                node.span,
                "ErrorEquals is required",
            );
            return Vec::new();
        };
        let eptr = child_pointer(ptr, "ErrorEquals");
        let Some(items) = n.as_array() else {
            self.wrong_type(&eptr, n, "ErrorEquals", "an array of error names");
            return Vec::new();
        };
        if items.is_empty() {
            self.error(
                Code::InvalidValue,
                &eptr,
                n.span,
                "ErrorEquals needs at least one error name",
            );
        }
        let mut out = Vec::new();
        // The first States.ALL, by its index in the source array.
        let mut states_all = None;
        for (i, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(s) => {
                    if s == "States.ALL" && states_all.is_none() {
                        states_all = Some((i, item.span));
                    }
                    out.push(s.to_string());
                }
                None => self.wrong_type(
                    &child_pointer(&eptr, &i.to_string()),
                    item,
                    "an ErrorEquals entry",
                    "a string",
                ),
            }
        }
        if let Some((i, span)) = states_all
            && items.len() > 1
        {
            self.error(
                Code::StatesAll,
                &child_pointer(&eptr, &i.to_string()),
                span,
                "States.ALL must appear alone in ErrorEquals",
            );
        }
        out
    }

    fn retriers(&mut self, n: &Node, ptr: &str) -> Vec<Retrier> {
        let Some(items) = n.as_array() else {
            self.wrong_type(ptr, n, "Retry", "an array of retriers");
            return Vec::new();
        };
        const FIELDS: &[&str] = &[
            "ErrorEquals",
            "IntervalSeconds",
            "MaxAttempts",
            "BackoffRate",
            "MaxDelaySeconds",
            "JitterStrategy",
            "Comment",
        ];
        let mut out = Vec::new();
        let mut catch_all = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let iptr = child_pointer(ptr, &i.to_string());
            let Some(fields) = item.as_object() else {
                self.wrong_type(&iptr, item, "a retrier", "an object");
                continue;
            };
            self.unknown_keys(fields, &iptr, FIELDS, "in a retrier");
            let mut r = Retrier {
                error_equals: self.error_equals(item, &iptr),
                ..Retrier::default()
            };
            if r.error_equals.iter().any(|e| e == "States.ALL") {
                catch_all.push((i, item.span));
            }
            if let Some(v) = item.get("IntervalSeconds")
                && let Some(u) = self.positive_int(
                    v,
                    &child_pointer(&iptr, "IntervalSeconds"),
                    "IntervalSeconds",
                    1,
                )
            {
                r.interval_seconds = u;
            }
            if let Some(v) = item.get("MaxAttempts")
                && let Some(u) =
                    self.positive_int(v, &child_pointer(&iptr, "MaxAttempts"), "MaxAttempts", 0)
            {
                r.max_attempts = u;
            }
            if let Some(v) = item.get("MaxDelaySeconds") {
                r.max_delay_seconds = self.positive_int(
                    v,
                    &child_pointer(&iptr, "MaxDelaySeconds"),
                    "MaxDelaySeconds",
                    1,
                );
            }
            if let Some(v) = item.get("BackoffRate") {
                let bptr = child_pointer(&iptr, "BackoffRate");
                match &v.kind {
                    NodeKind::Number(num) => match num.as_f64() {
                        Some(f) if f >= 1.0 => r.backoff_rate = f,
                        _ => self.error(
                            Code::InvalidValue,
                            &bptr,
                            v.span,
                            format!("BackoffRate must be ≥ 1.0, not {num}"),
                        ),
                    },
                    _ => self.wrong_type(&bptr, v, "BackoffRate", "a number"),
                }
            }
            if let Some(v) = item.get("JitterStrategy") {
                match v.as_str() {
                    Some("FULL") => r.jitter = Jitter::Full,
                    Some("NONE") => r.jitter = Jitter::None,
                    _ => self.error(
                        Code::InvalidValue,
                        &child_pointer(&iptr, "JitterStrategy"),
                        v.span,
                        "JitterStrategy must be \"FULL\" or \"NONE\"",
                    ),
                }
            }
            out.push(r);
        }
        self.states_all_last(&catch_all, items.len(), ptr, "Retry");
        out
    }

    /// `catch_all`: the index in the source array and the span of each
    /// retrier or catcher whose ErrorEquals holds States.ALL; `count`: the
    /// length of that array.
    fn states_all_last(
        &mut self,
        catch_all: &[(usize, Span)],
        count: usize,
        ptr: &str,
        what: &str,
    ) {
        for &(i, span) in catch_all {
            if i + 1 != count {
                self.error(
                    Code::StatesAll,
                    &child_pointer(ptr, &i.to_string()),
                    span,
                    format!("a {what} entry with States.ALL must be the last one"),
                );
            }
        }
    }

    fn catchers(&mut self, n: &Node, ptr: &str, lang: QueryLanguage) -> Vec<Catcher> {
        let Some(items) = n.as_array() else {
            self.wrong_type(ptr, n, "Catch", "an array of catchers");
            return Vec::new();
        };
        let fields: &[&str] = match lang {
            QueryLanguage::JsonPath => &["ErrorEquals", "Next", "ResultPath", "Assign", "Comment"],
            QueryLanguage::Jsonata => &["ErrorEquals", "Next", "Output", "Assign", "Comment"],
        };
        let mut out = Vec::new();
        let mut catch_all = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let iptr = child_pointer(ptr, &i.to_string());
            let Some(entries) = item.as_object() else {
                self.wrong_type(&iptr, item, "a catcher", "an object");
                continue;
            };
            for (k, _) in entries {
                if !fields.contains(&k.name.as_str()) {
                    let kptr = child_pointer(&iptr, &k.name);
                    if matches!(k.name.as_str(), "ResultPath" | "Output") {
                        self.error(
                            Code::QueryLanguage,
                            &kptr,
                            k.span,
                            format!(
                                "{} is not available in a catcher of a {} state",
                                k.name,
                                lang.as_str()
                            ),
                        );
                    } else {
                        let hint = did_you_mean(suggest(&k.name, fields.iter().copied()));
                        self.error(
                            Code::UnknownField,
                            &kptr,
                            k.span,
                            format!("unknown field \"{}\" in a catcher{hint}", k.name),
                        );
                    }
                }
            }
            let error_equals = self.error_equals(item, &iptr);
            if error_equals.iter().any(|e| e == "States.ALL") {
                catch_all.push((i, item.span));
            }
            let next = match item.get("Next") {
                Some(nn) => match nn.as_str() {
                    Some(s) => s.to_string(),
                    None => {
                        self.wrong_type(&child_pointer(&iptr, "Next"), nn, "Next", "a state name");
                        continue;
                    }
                },
                None => {
                    self.error(Code::MissingField, &iptr, item.span, "a catcher needs Next");
                    continue;
                }
            };
            let result_path = if lang == QueryLanguage::JsonPath {
                item.get("ResultPath")
                    .and_then(|r| self.result_path(r, &child_pointer(&iptr, "ResultPath")))
            } else {
                None
            };
            let output = if lang == QueryLanguage::Jsonata {
                item.get("Output")
                    .map(|o| self.jsonata_template(o, &child_pointer(&iptr, "Output")))
            } else {
                None
            };
            let assign = item
                .get("Assign")
                .and_then(|a| self.assign(a, &child_pointer(&iptr, "Assign"), lang));
            out.push(Catcher {
                error_equals,
                next,
                result_path,
                output,
                assign,
                pointer: iptr,
            });
        }
        self.states_all_last(&catch_all, items.len(), ptr, "Catch");
        out
    }

    fn task(&mut self, node: &Node, ptr: &str, lang: QueryLanguage) -> Option<Task> {
        let io = self.result_handling(node, ptr, lang);
        let resource = match node.get("Resource") {
            Some(r) => match r.as_str() {
                Some(s) => Some((s.to_string(), r.span)),
                None => {
                    self.wrong_type(
                        &child_pointer(ptr, "Resource"),
                        r,
                        "Resource",
                        "an ARN string",
                    );
                    None
                }
            },
            None => {
                self.error(
                    Code::MissingField,
                    ptr,
                    node.span,
                    "a Task state needs Resource",
                );
                None
            }
        };
        let timeout_seconds = self.number_source(
            node,
            ptr,
            "TimeoutSeconds",
            Some("TimeoutSecondsPath"),
            lang,
            NumberCheck::Int {
                min: 1,
                max: 99_999_999,
            },
        );
        let heartbeat_seconds = self.number_source(
            node,
            ptr,
            "HeartbeatSeconds",
            Some("HeartbeatSecondsPath"),
            lang,
            NumberCheck::Int {
                min: 1,
                max: 99_999_999,
            },
        );
        if let (Some(NumberSource::Value(h)), Some(NumberSource::Value(t))) =
            (&heartbeat_seconds, &timeout_seconds)
            && h >= t
            && let Some(n) = node.get("HeartbeatSeconds")
        {
            self.error(
                Code::InvalidValue,
                &child_pointer(ptr, "HeartbeatSeconds"),
                n.span,
                format!("HeartbeatSeconds ({h}) must be smaller than TimeoutSeconds ({t})"),
            );
        }
        let credentials = node
            .get("Credentials")
            .and_then(|c| self.credentials(c, &child_pointer(ptr, "Credentials"), lang));
        let (resource, span) = resource?;
        let resource_kind = self.resource(&resource, &child_pointer(ptr, "Resource"), span, lang);
        Some(Task {
            resource,
            resource_kind,
            io,
            timeout_seconds,
            heartbeat_seconds,
            credentials,
        })
    }

    fn credentials(&mut self, n: &Node, ptr: &str, lang: QueryLanguage) -> Option<Template> {
        let Some(entries) = n.as_object() else {
            self.wrong_type(ptr, n, "Credentials", "an object with RoleArn");
            return None;
        };
        let has_role = entries.iter().any(|(k, _)| {
            k.name == "RoleArn" || (lang == QueryLanguage::JsonPath && k.name == "RoleArn.$")
        });
        if !has_role {
            self.error(
                Code::MissingField,
                ptr,
                n.span,
                "Credentials needs the field RoleArn",
            );
        }
        for (k, _) in entries {
            let allowed =
                k.name == "RoleArn" || (lang == QueryLanguage::JsonPath && k.name == "RoleArn.$");
            if !allowed {
                self.error(
                    Code::UnknownField,
                    &child_pointer(ptr, &k.name),
                    k.span,
                    format!(
                        "unknown field \"{}\" in Credentials: only RoleArn is allowed",
                        k.name
                    ),
                );
            }
        }
        Some(self.template(n, ptr, lang))
    }

    fn resource(
        &mut self,
        resource: &str,
        ptr: &str,
        span: Span,
        lang: QueryLanguage,
    ) -> ResourceKind {
        let express = self.options.machine_type == MachineType::Express;
        if lang == QueryLanguage::Jsonata && parse_jsonata_string(resource).is_some() {
            self.error(
                Code::InvalidResource,
                ptr,
                span,
                "Resource cannot be a JSONata expression",
            );
            return ResourceKind::Other;
        }
        if let Some(step) = resource.strip_prefix("piflow:") {
            if step.is_empty() {
                self.error(
                    Code::InvalidResource,
                    ptr,
                    span,
                    "\"piflow:\" must name a built-in step, e.g. piflow:lint",
                );
            }
            return ResourceKind::Piflow(step.to_string());
        }
        if resource.contains("${") {
            if placeholder_well_formed(resource) {
                self.warn(
                    Code::Substitution,
                    ptr,
                    span,
                    format!("Resource {resource:?} holds a ${{placeholder}}: it is checked only after DefinitionSubstitutions are applied"),
                );
                return ResourceKind::Other;
            }
            self.error(
                Code::InvalidResource,
                ptr,
                span,
                format!("Resource {resource:?} has an unclosed ${{placeholder}}"),
            );
            return ResourceKind::Other;
        }
        let parts: Vec<&str> = resource.splitn(6, ':').collect();
        if parts.len() < 3 || parts[0] != "arn" || parts[1].is_empty() {
            self.error(
                Code::InvalidResource,
                ptr,
                span,
                format!("Resource {resource:?} is not an ARN (arn:partition:service:...) or a piflow: step"),
            );
            return ResourceKind::Other;
        }
        let service = parts[2];
        let kind = if service == "states"
            && parts.len() == 6
            && parts[3].is_empty()
            && parts[4].is_empty()
        {
            self.integration(parts[5], ptr, span)
        } else if service == "states" && parts.len() == 6 && parts[5].starts_with("activity:") {
            ResourceKind::Activity
        } else if service == "lambda" {
            if parts.len() == 6 {
                self.lambda_function(parts[5], resource, ptr, span);
            }
            ResourceKind::Lambda
        } else {
            ResourceKind::Other
        };
        if express {
            let reason = match &kind {
                ResourceKind::Activity | ResourceKind::Other => Some("Activity ARN".to_string()),
                ResourceKind::Integration { pattern, .. }
                | ResourceKind::AwsSdk { pattern, .. } => match pattern {
                    IntegrationPattern::Sync | IntegrationPattern::Sync2 => {
                        Some("'.sync' service integration".to_string())
                    }
                    IntegrationPattern::WaitForTaskToken => {
                        Some("'.waitForTaskToken' service integration".to_string())
                    }
                    IntegrationPattern::RequestResponse => None,
                },
                _ => None,
            };
            if let Some(r) = reason {
                self.error(
                    Code::ExpressUnsupported,
                    ptr,
                    span,
                    format!("an EXPRESS state machine does not support {r} ({resource})"),
                );
            }
        }
        kind
    }

    fn lambda_function(&mut self, rest: &str, resource: &str, ptr: &str, span: Span) {
        // rest = "function:NAME[:QUALIFIER]"
        let Some(spec) = rest.strip_prefix("function:") else {
            return;
        };
        let mut it = spec.splitn(2, ':');
        let name = it.next().unwrap_or("");
        let qualifier = it.next();
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        let qual_ok = qualifier.is_none_or(|q| {
            q == "$LATEST"
                || (!q.is_empty()
                    && q.len() <= 128
                    && q.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        });
        if !name_ok || !qual_ok {
            self.error(
                Code::InvalidResource,
                ptr,
                span,
                format!(
                    "Resource {resource:?} is not a valid Lambda function ARN: the function name and the optional version or alias may hold only letters, digits, '-' and '_'"
                ),
            );
        }
    }

    fn integration(&mut self, spec: &str, ptr: &str, span: Span) -> ResourceKind {
        let (base, pattern) = if let Some(b) = spec.strip_suffix(".waitForTaskToken") {
            (b, IntegrationPattern::WaitForTaskToken)
        } else if let Some(b) = spec.strip_suffix(".sync:2") {
            (b, IntegrationPattern::Sync2)
        } else if let Some(b) = spec.strip_suffix(".sync") {
            (b, IntegrationPattern::Sync)
        } else {
            (spec, IntegrationPattern::RequestResponse)
        };
        if let Some(sdk) = base.strip_prefix("aws-sdk:") {
            let mut it = sdk.splitn(2, ':');
            let service = it.next().unwrap_or("").to_string();
            let action = it.next().unwrap_or("").to_string();
            if service.is_empty() || action.is_empty() {
                self.error(
                    Code::InvalidResource,
                    ptr,
                    span,
                    format!("arn:aws:states:::aws-sdk:{sdk} must name a service and an action (aws-sdk:SERVICE:ACTION)"),
                );
            }
            return ResourceKind::AwsSdk {
                service,
                action,
                pattern,
            };
        }
        let mut it = base.splitn(2, ':');
        let service = it.next().unwrap_or("").to_string();
        let action = it.next().unwrap_or("").to_string();
        if let Some(known) = known_actions(&service) {
            if !known.contains(&action.as_str()) {
                let hint = did_you_mean(suggest(&action, known.iter().copied()));
                self.error(
                    Code::InvalidResource,
                    ptr,
                    span,
                    format!(
                        "the resource arn:<partition>:states:::{base} is not a known {service} integration (known: {}){hint}; for other actions use arn:aws:states:::aws-sdk:{service}:ACTION",
                        known.join(", ")
                    ),
                );
            }
        } else if service.is_empty() || action.is_empty() {
            self.error(
                Code::InvalidResource,
                ptr,
                span,
                format!(
                    "arn:aws:states:::{base} must name a service and an action (SERVICE:ACTION)"
                ),
            );
        }
        ResourceKind::Integration {
            service,
            action,
            pattern,
        }
    }

    fn choice(&mut self, node: &Node, ptr: &str, lang: QueryLanguage) -> Choice {
        let default = match node.get("Default") {
            Some(d) => match d.as_str() {
                Some(s) => Some(s.to_string()),
                None => {
                    self.wrong_type(&child_pointer(ptr, "Default"), d, "Default", "a state name");
                    None
                }
            },
            None => None,
        };
        let mut choices = Vec::new();
        let cptr = child_pointer(ptr, "Choices");
        match node.get("Choices") {
            None => self.error(
                Code::MissingField,
                ptr,
                node.span,
                "a Choice state needs Choices",
            ),
            Some(n) => match n.as_array() {
                None => self.wrong_type(&cptr, n, "Choices", "an array of choice rules"),
                Some(items) => {
                    if items.is_empty() {
                        self.error(
                            Code::InvalidValue,
                            &cptr,
                            n.span,
                            "Choices needs at least one rule",
                        );
                    }
                    for (i, item) in items.iter().enumerate() {
                        let iptr = child_pointer(&cptr, &i.to_string());
                        if let Some(b) = self.choice_branch(item, &iptr, lang) {
                            choices.push(b);
                        }
                    }
                }
            },
        }
        Choice { choices, default }
    }

    fn choice_branch(
        &mut self,
        item: &Node,
        ptr: &str,
        lang: QueryLanguage,
    ) -> Option<ChoiceBranch> {
        if item.as_object().is_none() {
            self.wrong_type(ptr, item, "a choice rule", "an object");
            return None;
        }
        if let Some(e) = item.get("End") {
            self.error(
                Code::FieldNotAllowed,
                &child_pointer(ptr, "End"),
                e.span,
                "a choice rule cannot end the state machine: it needs Next (use a Succeed state)",
            );
        }
        let next = match item.get("Next") {
            Some(n) => match n.as_str() {
                Some(s) => Some(s.to_string()),
                None => {
                    self.wrong_type(&child_pointer(ptr, "Next"), n, "Next", "a state name");
                    None
                }
            },
            None => {
                self.error(
                    Code::MissingField,
                    ptr,
                    item.span,
                    "a top-level choice rule needs Next",
                );
                None
            }
        };
        let rule = self.choice_rule(item, ptr, lang, true);
        let assign = item
            .get("Assign")
            .and_then(|a| self.assign(a, &child_pointer(ptr, "Assign"), lang));
        let output = item
            .get("Output")
            .map(|o| self.jsonata_template(o, &child_pointer(ptr, "Output")));
        Some(ChoiceBranch {
            rule: rule?,
            next: next?,
            assign,
            output,
            comment: item
                .get("Comment")
                .and_then(Node::as_str)
                .map(str::to_string),
            pointer: ptr.to_string(),
        })
    }

    fn choice_rule(
        &mut self,
        item: &Node,
        ptr: &str,
        lang: QueryLanguage,
        top: bool,
    ) -> Option<ChoiceRule> {
        let Some(entries) = item.as_object() else {
            self.wrong_type(ptr, item, "a choice rule", "an object");
            return None;
        };
        let mut allowed: Vec<&str> = vec!["Comment"];
        if top {
            allowed.extend(["Next", "Assign", "End"]);
            if lang == QueryLanguage::Jsonata {
                allowed.push("Output");
            }
        }
        if lang == QueryLanguage::Jsonata {
            allowed.push("Condition");
            for (k, _) in entries {
                if !allowed.contains(&k.name.as_str()) {
                    let kptr = child_pointer(ptr, &k.name);
                    if k.name == "Variable"
                        || k.name == "And"
                        || k.name == "Or"
                        || k.name == "Not"
                        || comparison_of(&k.name).is_some()
                    {
                        self.error(
                            Code::QueryLanguage,
                            &kptr,
                            k.span,
                            format!("{} is a JSONPath choice field; a JSONata choice rule uses Condition", k.name),
                        );
                    } else {
                        let hint = did_you_mean(suggest(&k.name, allowed.iter().copied()));
                        self.error(
                            Code::UnknownField,
                            &kptr,
                            k.span,
                            format!("unknown field \"{}\" in a choice rule{hint}", k.name),
                        );
                    }
                }
            }
            if !top {
                return None;
            }
            let Some(c) = item.get("Condition") else {
                self.error(
                    Code::MissingField,
                    ptr,
                    item.span,
                    "a JSONata choice rule needs Condition",
                );
                return None;
            };
            let cptr = child_pointer(ptr, "Condition");
            return match &c.kind {
                NodeKind::Bool(b) => Some(ChoiceRule::Condition(ConditionExpr::Literal(*b))),
                NodeKind::String(s) => match self.jsonata(s, &cptr, c.span) {
                    Some(Some(e)) => Some(ChoiceRule::Condition(ConditionExpr::Jsonata(e))),
                    Some(None) => None,
                    None => {
                        self.error(
                            Code::InvalidJsonata,
                            &cptr,
                            c.span,
                            "Condition must be a JSONata expression \"{% ... %}\" or a boolean",
                        );
                        None
                    }
                },
                _ => {
                    self.wrong_type(&cptr, c, "Condition", "a JSONata expression or a boolean");
                    None
                }
            };
        }
        // JSONPath rules.
        allowed.extend(["Variable", "And", "Or", "Not"]);
        let mut ops: Vec<(&Key, &Node, Comparison, OperandType, bool)> = Vec::new();
        for (k, v) in entries {
            if allowed.contains(&k.name.as_str()) {
                continue;
            }
            if let Some((op, ty, is_path)) = comparison_of(&k.name) {
                ops.push((k, v, op, ty, is_path));
                continue;
            }
            let kptr = child_pointer(ptr, &k.name);
            if k.name == "Condition" || k.name == "Output" {
                self.error(
                    Code::QueryLanguage,
                    &kptr,
                    k.span,
                    format!("{} is a JSONata field; this state uses JSONPath", k.name),
                );
            } else {
                let cands = allowed
                    .iter()
                    .copied()
                    .chain(Comparison::ALL.iter().map(|(n, _, _, _)| *n));
                let hint = did_you_mean(suggest(&k.name, cands));
                self.error(
                    Code::UnknownField,
                    &kptr,
                    k.span,
                    format!("unknown field \"{}\" in a choice rule{hint}", k.name),
                );
            }
        }
        let combinators: Vec<&str> = ["And", "Or", "Not"]
            .into_iter()
            .filter(|c| item.get(c).is_some())
            .collect();
        let variable = item.get("Variable");
        if combinators.len() + usize::from(!ops.is_empty()) > 1 || ops.len() > 1 {
            self.error(
                Code::ExclusiveFields,
                ptr,
                item.span,
                "a choice rule holds exactly one of And, Or, Not or a single comparison",
            );
            return None;
        }
        if let Some(c) = combinators.first() {
            if let Some(v) = variable {
                self.error(
                    Code::FieldNotAllowed,
                    &child_pointer(ptr, "Variable"),
                    v.span,
                    format!("Variable cannot be used with {c}"),
                );
            }
            let n = item.get(c)?;
            let cptr = child_pointer(ptr, c);
            if *c == "Not" {
                if n.as_object().is_none() {
                    self.wrong_type(&cptr, n, "Not", "a choice rule object");
                    return None;
                }
                return self
                    .choice_rule(n, &cptr, lang, false)
                    .map(|r| ChoiceRule::Not(Box::new(r)));
            }
            let Some(items) = n.as_array() else {
                self.wrong_type(&cptr, n, c, "an array of choice rules");
                return None;
            };
            if items.is_empty() {
                self.error(
                    Code::InvalidValue,
                    &cptr,
                    n.span,
                    format!("{c} needs at least one rule"),
                );
            }
            let rules: Vec<ChoiceRule> = items
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    self.choice_rule(r, &child_pointer(&cptr, &i.to_string()), lang, false)
                })
                .collect();
            if rules.len() != items.len() {
                return None;
            }
            return Some(if *c == "And" {
                ChoiceRule::And(rules)
            } else {
                ChoiceRule::Or(rules)
            });
        }
        let Some((k, v, op, ty, is_path)) = ops.into_iter().next() else {
            self.error(
                Code::MissingField,
                ptr,
                item.span,
                "a choice rule needs a comparison (e.g. StringEquals), And, Or or Not",
            );
            return None;
        };
        let Some(var) = variable else {
            self.error(
                Code::MissingField,
                ptr,
                item.span,
                format!("the comparison {} needs Variable", k.name),
            );
            return None;
        };
        let vptr = || child_pointer(ptr, "Variable");
        let variable = match var.as_str() {
            Some(s) => match parse_json_path(s) {
                Ok(p) => Some(p),
                Err(e) => {
                    self.error(
                        Code::InvalidPath,
                        &vptr(),
                        var.span,
                        format!("Variable {s:?} is not a valid path: {e}"),
                    );
                    None
                }
            },
            None => {
                self.wrong_type(&vptr(), var, "Variable", "a path string");
                None
            }
        };
        let kptr = || child_pointer(ptr, &k.name);
        let operand = if is_path {
            match v.as_str() {
                Some(s) => match parse_json_path(s) {
                    Ok(p) => Some(Operand::Path(p)),
                    Err(e) => {
                        self.error(
                            Code::InvalidPath,
                            &kptr(),
                            v.span,
                            format!("{} {s:?} is not a valid path: {e}", k.name),
                        );
                        None
                    }
                },
                None => {
                    self.wrong_type(&kptr(), v, &k.name, "a path string");
                    None
                }
            }
        } else {
            let ok = match ty {
                OperandType::Boolean => matches!(v.kind, NodeKind::Bool(_)),
                OperandType::Number => matches!(v.kind, NodeKind::Number(_)),
                OperandType::String => matches!(v.kind, NodeKind::String(_)),
                OperandType::Timestamp => match v.as_str() {
                    Some(s) => {
                        if !is_rfc3339(s) {
                            self.error(
                                Code::InvalidTimestamp,
                                &kptr(),
                                v.span,
                                format!("{} {s:?} is not an RFC 3339 timestamp", k.name),
                            );
                        }
                        true
                    }
                    None => false,
                },
            };
            if !ok {
                let want = match ty {
                    OperandType::Boolean => "a boolean",
                    OperandType::Number => "a number",
                    OperandType::String => "a string",
                    OperandType::Timestamp => "a timestamp string",
                };
                self.wrong_type(&kptr(), v, &k.name, want);
                None
            } else {
                Some(Operand::Literal(v.to_value()))
            }
        };
        Some(ChoiceRule::Compare {
            variable: variable?,
            op,
            operand: operand?,
        })
    }

    fn wait(&mut self, node: &Node, ptr: &str, lang: QueryLanguage) -> Option<Wait> {
        let present: Vec<&str> = ["Seconds", "SecondsPath", "Timestamp", "TimestampPath"]
            .into_iter()
            .filter(|f| node.get(f).is_some())
            .collect();
        if present.is_empty() {
            self.error(
                Code::MissingField,
                ptr,
                node.span,
                "a Wait state needs one of Seconds, SecondsPath, Timestamp or TimestampPath",
            );
            return None;
        }
        if present.len() > 1 {
            let second = node.get(present[1]).map(|n| n.span).unwrap_or(node.span);
            self.error(
                Code::ExclusiveFields,
                &child_pointer(ptr, present[1]),
                second,
                format!("a Wait state takes exactly one of Seconds, SecondsPath, Timestamp and TimestampPath; it has {}", present.join(" and ")),
            );
            return None;
        }
        let field = present[0];
        let n = node.get(field)?;
        let fptr = child_pointer(ptr, field);
        let until = match field {
            "Seconds" | "SecondsPath" => WaitUntil::Seconds(self.number_source(
                node,
                ptr,
                "Seconds",
                Some("SecondsPath"),
                lang,
                NumberCheck::Int {
                    min: 0,
                    max: 99_999_999,
                },
            )?),
            "TimestampPath" => WaitUntil::TimestampPath(self.reference_path(n, &fptr, field)?),
            _ => match n.as_str() {
                Some(s) => {
                    if lang == QueryLanguage::Jsonata
                        && let Some(r) = self.jsonata(s, &fptr, n.span)
                    {
                        return r.map(|e| Wait {
                            until: WaitUntil::TimestampJsonata(e),
                        });
                    }
                    if !is_rfc3339(s) {
                        self.error(
                            Code::InvalidTimestamp,
                            &fptr,
                            n.span,
                            format!("Timestamp {s:?} is not an RFC 3339 timestamp (e.g. \"2016-03-14T01:59:00Z\")"),
                        );
                        return None;
                    }
                    WaitUntil::Timestamp(s.to_string())
                }
                None => {
                    self.wrong_type(&fptr, n, field, "an RFC 3339 timestamp string");
                    return None;
                }
            },
        };
        Some(Wait { until })
    }

    fn fail(&mut self, node: &Node, ptr: &str, lang: QueryLanguage) -> Fail {
        let field = |this: &mut Self, name: &str, path_name: &str| -> Option<StringSource> {
            this.exclusive(node, ptr, name, path_name);
            if let Some(n) = node.get(name) {
                let fptr = child_pointer(ptr, name);
                let Some(s) = n.as_str() else {
                    this.wrong_type(&fptr, n, name, "a string");
                    return None;
                };
                if lang == QueryLanguage::Jsonata
                    && let Some(r) = this.jsonata(s, &fptr, n.span)
                {
                    return r.map(StringSource::Jsonata);
                }
                return Some(StringSource::Literal(s.to_string()));
            }
            if let Some(n) = node.get(path_name) {
                let fptr = child_pointer(ptr, path_name);
                let Some(s) = n.as_str() else {
                    this.wrong_type(&fptr, n, path_name, "a path or intrinsic function string");
                    return None;
                };
                return this
                    .payload_expr(s, &fptr, n.span, path_name)
                    .map(StringSource::Path);
            }
            None
        };
        let error = field(self, "Error", "ErrorPath");
        let cause = field(self, "Cause", "CausePath");
        Fail { error, cause }
    }

    fn parallel(&mut self, node: &Node, ptr: &str, lang: QueryLanguage) -> Option<Parallel> {
        let io = self.result_handling(node, ptr, lang);
        let bptr = child_pointer(ptr, "Branches");
        let Some(n) = node.get("Branches") else {
            self.error(
                Code::MissingField,
                ptr,
                node.span,
                "a Parallel state needs Branches",
            );
            return None;
        };
        let Some(items) = n.as_array() else {
            self.wrong_type(&bptr, n, "Branches", "an array of branches");
            return None;
        };
        if items.is_empty() {
            self.error(
                Code::InvalidValue,
                &bptr,
                n.span,
                "Branches needs at least one branch",
            );
        }
        let mut branches = Vec::new();
        for (i, b) in items.iter().enumerate() {
            let iptr = child_pointer(&bptr, &i.to_string());
            let Some(fields) = b.as_object() else {
                self.wrong_type(&iptr, b, "a branch", "an object with StartAt and States");
                continue;
            };
            self.unknown_keys(
                fields,
                &iptr,
                &["StartAt", "States", "Comment"],
                "in a Parallel branch",
            );
            if let Some(s) = self.scope(b, &iptr, lang, "Parallel branch") {
                branches.push(s);
            }
        }
        Some(Parallel { branches, io })
    }

    fn map(&mut self, node: &Node, ptr: &str, lang: QueryLanguage) -> Option<Map> {
        let mut io = self.result_handling(node, ptr, lang);
        // A Map's Parameters is the legacy name of ItemSelector (read below).
        io.parameters = None;
        // The processor.
        let (proc_field, legacy) = match (node.get("ItemProcessor"), node.get("Iterator")) {
            (Some(_), Some(it)) => {
                self.error(
                    Code::ExclusiveFields,
                    &child_pointer(ptr, "Iterator"),
                    it.span,
                    "ItemProcessor and the legacy Iterator cannot be used together",
                );
                ("ItemProcessor", false)
            }
            (Some(_), None) => ("ItemProcessor", false),
            (None, Some(_)) => ("Iterator", true),
            (None, None) => {
                self.error(
                    Code::MissingField,
                    ptr,
                    node.span,
                    "a Map state needs ItemProcessor (or the legacy Iterator)",
                );
                return None;
            }
        };
        let pnode = node.get(proc_field)?;
        let pptr = child_pointer(ptr, proc_field);
        let Some(pfields) = pnode.as_object() else {
            self.wrong_type(
                &pptr,
                pnode,
                proc_field,
                "an object with StartAt and States",
            );
            return None;
        };
        self.unknown_keys(
            pfields,
            &pptr,
            &["StartAt", "States", "Comment", "ProcessorConfig"],
            &format!("in {proc_field}"),
        );
        let mut mode = ProcessorMode::Inline;
        let mut execution_type = None;
        if let Some(cfg) = pnode.get("ProcessorConfig") {
            let cptr = child_pointer(&pptr, "ProcessorConfig");
            match cfg.as_object() {
                None => self.wrong_type(&cptr, cfg, "ProcessorConfig", "an object"),
                Some(cf) => {
                    self.unknown_keys(cf, &cptr, &["Mode", "ExecutionType"], "in ProcessorConfig");
                    if let Some(m) = cfg.get("Mode") {
                        match m.as_str() {
                            Some("INLINE") => mode = ProcessorMode::Inline,
                            Some("DISTRIBUTED") => mode = ProcessorMode::Distributed,
                            _ => self.error(
                                Code::InvalidValue,
                                &child_pointer(&cptr, "Mode"),
                                m.span,
                                "Mode must be \"INLINE\" or \"DISTRIBUTED\"",
                            ),
                        }
                    }
                    if let Some(e) = cfg.get("ExecutionType") {
                        match e.as_str() {
                            Some("STANDARD") => execution_type = Some(MachineType::Standard),
                            Some("EXPRESS") => execution_type = Some(MachineType::Express),
                            _ => self.error(
                                Code::InvalidValue,
                                &child_pointer(&cptr, "ExecutionType"),
                                e.span,
                                "ExecutionType must be \"STANDARD\" or \"EXPRESS\"",
                            ),
                        }
                    }
                }
            }
        }
        let processor = self.scope(pnode, &pptr, lang, proc_field);

        self.exclusive(node, ptr, "Items", "ItemsPath");
        let items_path = node.get("ItemsPath").and_then(|n| {
            match self.json_path_field(n, &child_pointer(ptr, "ItemsPath"), "ItemsPath")? {
                Nullable::Value(p) => Some(p),
                Nullable::Null => {
                    self.wrong_type(
                        &child_pointer(ptr, "ItemsPath"),
                        n,
                        "ItemsPath",
                        "a path string",
                    );
                    None
                }
            }
        });
        let items = node.get("Items").map(|n| {
            let iptr = child_pointer(ptr, "Items");
            let t = self.jsonata_template(n, &iptr);
            if !matches!(n.kind, NodeKind::Array(_) | NodeKind::String(_))
                || matches!(t, Template::Literal(Value::String(_)))
            {
                self.wrong_type(&iptr, n, "Items", "an array or a JSONata expression");
            }
            t
        });
        self.exclusive(node, ptr, "ItemSelector", "Parameters");
        let item_selector = match (node.get("ItemSelector"), node.get("Parameters")) {
            (Some(n), _) => Some(self.template(n, &child_pointer(ptr, "ItemSelector"), lang)),
            (None, Some(n)) => Some(self.payload_template(n, &child_pointer(ptr, "Parameters"))),
            _ => None,
        };
        let item_reader = node
            .get("ItemReader")
            .and_then(|n| self.item_reader(n, &child_pointer(ptr, "ItemReader"), lang));
        let item_batcher = node
            .get("ItemBatcher")
            .and_then(|n| self.item_batcher(n, &child_pointer(ptr, "ItemBatcher"), lang));
        let result_writer = node
            .get("ResultWriter")
            .and_then(|n| self.result_writer(n, &child_pointer(ptr, "ResultWriter"), lang));
        let max_concurrency = self.number_source(
            node,
            ptr,
            "MaxConcurrency",
            Some("MaxConcurrencyPath"),
            lang,
            NumberCheck::Int {
                min: 0,
                max: 99_999_999,
            },
        );
        let tolerated_failure_count = self.number_source(
            node,
            ptr,
            "ToleratedFailureCount",
            Some("ToleratedFailureCountPath"),
            lang,
            NumberCheck::Int {
                min: 0,
                max: 99_999_999,
            },
        );
        let tolerated_failure_percentage = self.number_source(
            node,
            ptr,
            "ToleratedFailurePercentage",
            Some("ToleratedFailurePercentagePath"),
            lang,
            NumberCheck::Range {
                min: 0.0,
                max: 100.0,
            },
        );
        let label = node.get("Label").and_then(|n| {
            let lptr = child_pointer(ptr, "Label");
            match n.as_str() {
                Some(s) => {
                    self.label(s, &lptr, n.span);
                    Some(s.to_string())
                }
                None => {
                    self.wrong_type(&lptr, n, "Label", "a string");
                    None
                }
            }
        });
        Some(Map {
            processor: processor?,
            mode,
            execution_type,
            legacy_iterator: legacy,
            items_path,
            items,
            item_selector,
            item_reader,
            item_batcher,
            result_writer,
            max_concurrency,
            tolerated_failure_count,
            tolerated_failure_percentage,
            label,
            io,
        })
    }

    fn label(&mut self, s: &str, ptr: &str, span: Span) {
        if s.is_empty() {
            self.error(Code::InvalidName, ptr, span, "Label cannot be empty");
            return;
        }
        let len = s.chars().count();
        if len > MAX_LABEL {
            self.error(
                Code::InvalidName,
                ptr,
                span,
                format!("Label is {len} characters long; the limit is {MAX_LABEL}"),
            );
        }
        if let Some(c) = s.chars().find(|c| is_forbidden_label_char(*c)) {
            self.error(
                Code::InvalidName,
                ptr,
                span,
                format!("Label contains the invalid character {c:?}: no white space, brackets, wildcards, special characters (\" # % \\ ^ | ~ ` $ & , ; : /) or control characters"),
            );
        }
    }

    fn item_reader(&mut self, n: &Node, ptr: &str, lang: QueryLanguage) -> Option<ItemReader> {
        let Some(fields) = n.as_object() else {
            self.wrong_type(ptr, n, "ItemReader", "an object");
            return None;
        };
        self.payload_keys(
            fields,
            ptr,
            &["Resource", "ReaderConfig"],
            lang,
            "in ItemReader",
        );
        let resource = self.opt_string(n, ptr, "Resource");
        if resource.is_none() && n.get("Resource").is_none() {
            self.error(Code::MissingField, ptr, n.span, "ItemReader needs Resource");
        }
        let parameters = n
            .get("Parameters")
            .map(|p| self.payload_template(p, &child_pointer(ptr, "Parameters")));
        let arguments = n
            .get("Arguments")
            .map(|p| self.jsonata_template(p, &child_pointer(ptr, "Arguments")));
        let mut max_items = None;
        let reader_config = n.get("ReaderConfig").map(|rc| {
            let rptr = child_pointer(ptr, "ReaderConfig");
            if let Some(rf) = rc.as_object() {
                const RC: &[&str] = &[
                    "InputType",
                    "CSVHeaderLocation",
                    "CSVHeaders",
                    "CSVDelimiter",
                    "MaxItems",
                    "MaxItemsPath",
                    "ManifestType",
                    "Transformation",
                ];
                self.unknown_keys(rf, &rptr, RC, "in ReaderConfig");
                max_items = self.number_source(
                    rc,
                    &rptr,
                    "MaxItems",
                    Some("MaxItemsPath"),
                    lang,
                    NumberCheck::Int {
                        min: 0,
                        max: 100_000_000,
                    },
                );
            } else {
                self.wrong_type(&rptr, rc, "ReaderConfig", "an object");
            }
            rc.to_value()
        });
        Some(ItemReader {
            resource: resource?,
            parameters,
            arguments,
            reader_config,
            max_items,
        })
    }

    fn item_batcher(&mut self, n: &Node, ptr: &str, lang: QueryLanguage) -> Option<ItemBatcher> {
        let Some(fields) = n.as_object() else {
            self.wrong_type(ptr, n, "ItemBatcher", "an object");
            return None;
        };
        const IB: &[&str] = &[
            "MaxItemsPerBatch",
            "MaxItemsPerBatchPath",
            "MaxInputBytesPerBatch",
            "MaxInputBytesPerBatchPath",
            "BatchInput",
        ];
        self.unknown_keys(fields, ptr, IB, "in ItemBatcher");
        let max_items_per_batch = self.number_source(
            n,
            ptr,
            "MaxItemsPerBatch",
            Some("MaxItemsPerBatchPath"),
            lang,
            NumberCheck::Int {
                min: 1,
                max: 100_000_000,
            },
        );
        let max_input_bytes_per_batch = self.number_source(
            n,
            ptr,
            "MaxInputBytesPerBatch",
            Some("MaxInputBytesPerBatchPath"),
            lang,
            NumberCheck::Int {
                min: 1,
                max: 262_144,
            },
        );
        let batch_input = n
            .get("BatchInput")
            .map(|b| self.template(b, &child_pointer(ptr, "BatchInput"), lang));
        Some(ItemBatcher {
            max_items_per_batch,
            max_input_bytes_per_batch,
            batch_input,
        })
    }

    fn result_writer(&mut self, n: &Node, ptr: &str, lang: QueryLanguage) -> Option<ResultWriter> {
        let Some(fields) = n.as_object() else {
            self.wrong_type(ptr, n, "ResultWriter", "an object");
            return None;
        };
        self.payload_keys(
            fields,
            ptr,
            &["Resource", "WriterConfig"],
            lang,
            "in ResultWriter",
        );
        Some(ResultWriter {
            resource: self.opt_string(n, ptr, "Resource"),
            parameters: n
                .get("Parameters")
                .map(|p| self.payload_template(p, &child_pointer(ptr, "Parameters"))),
            arguments: n
                .get("Arguments")
                .map(|p| self.jsonata_template(p, &child_pointer(ptr, "Arguments"))),
            writer_config: n.get("WriterConfig").map(Node::to_value),
        })
    }
}

/// An object template: literal (one JSON value built from the children's
/// literals, without walking the source again) when nothing below is an
/// expression.
fn object_template(entries: Vec<(String, Template)>, any_expr: bool) -> Template {
    if any_expr {
        return Template::Object(entries);
    }
    let mut m = serde_json::Map::with_capacity(entries.len());
    for (k, t) in entries {
        if let Template::Literal(v) = t {
            m.insert(k, v);
        }
    }
    Template::Literal(Value::Object(m))
}

fn array_template(items: Vec<Template>) -> Template {
    if !items.iter().all(|t| matches!(t, Template::Literal(_))) {
        return Template::Array(items);
    }
    Template::Literal(Value::Array(
        items
            .into_iter()
            .filter_map(|t| match t {
                Template::Literal(v) => Some(v),
                _ => None,
            })
            .collect(),
    ))
}

#[derive(Clone, Copy)]
enum NumberCheck {
    Int { min: u64, max: u64 },
    Range { min: f64, max: f64 },
}

fn jsonata_alternative(field: &str) -> String {
    let alt = match field {
        "Parameters" => "use Arguments",
        "ResultSelector" | "ResultPath" | "OutputPath" | "InputPath" => "use Output (and Assign)",
        "ItemsPath" => "use Items",
        "Result" => "use Output",
        _ => "use the field without \"Path\" with a JSONata expression",
    };
    format!("in JSONata states {alt}")
}

fn comparison_of(field: &str) -> Option<(Comparison, OperandType, bool)> {
    for (name, op, ty, has_path) in Comparison::ALL {
        if field == *name {
            return Some((*op, *ty, false));
        }
        if *has_path && field.strip_suffix("Path") == Some(name) {
            return Some((*op, *ty, true));
        }
    }
    None
}

fn is_forbidden_label_char(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || ('\u{7f}'..='\u{9f}').contains(&c)
        || matches!(
            c,
            '<' | '>'
                | '{'
                | '}'
                | '['
                | ']'
                | '?'
                | '*'
                | '"'
                | '#'
                | '%'
                | '\\'
                | '^'
                | '|'
                | '~'
                | '`'
                | '$'
                | '&'
                | ','
                | ';'
                | ':'
                | '/'
        )
}

fn placeholder_well_formed(s: &str) -> bool {
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(j) if j > 0 => rest = &after[j + 1..],
            _ => return false,
        }
    }
    true
}

/// The request-response actions of the optimized integrations whose action
/// list piflow knows exactly; other services are accepted as written.
fn known_actions(service: &str) -> Option<&'static [&'static str]> {
    Some(match service {
        "lambda" => &["invoke"],
        "dynamodb" => &["getItem", "putItem", "updateItem", "deleteItem"],
        "sqs" => &["sendMessage"],
        "sns" => &["publish"],
        "events" => &["putEvents"],
        "states" => &["startExecution"],
        "ecs" => &["runTask"],
        "batch" => &["submitJob"],
        "glue" => &["startJobRun"],
        "apigateway" => &["invoke"],
        "http" => &["invoke"],
        "s3" => &["getObject", "listObjectsV2", "putObject"],
        "codebuild" => &[
            "startBuild",
            "stopBuild",
            "batchDeleteBuilds",
            "batchGetReports",
            "startBuildBatch",
            "stopBuildBatch",
            "retryBuild",
            "retryBuildBatch",
            "batchGetBuilds",
        ],
        _ => return None,
    })
}

/// Is `s` an RFC 3339 date-time with a `T` separator and an explicit offset?
pub fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r.clone())
            .is_some_and(|x| x.iter().all(u8::is_ascii_digit))
    };
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || b[10] != b'T'
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    let zone_ok = match b.get(i) {
        Some(b'Z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            i + 6 == b.len() && digits(i + 1..i + 3) && b[i + 3] == b':' && digits(i + 4..i + 6)
        }
        _ => false,
    };
    zone_ok && chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        for ok in [
            "2016-03-14T01:59:00Z",
            "2016-03-14T01:59:00.123Z",
            "2016-03-14T01:59:00+05:30",
        ] {
            assert!(is_rfc3339(ok), "{ok}");
        }
        for bad in [
            "2016-13-05T21:29:29Z",
            "05-12-2016T21:29:29Z",
            "2016-12-05T25:29:29Z",
            "2016-12-05 21:29:29Z",
            "2016-12-05T21:29:29",
            "{% '2016-03-14T01:59:00Z' %}",
            "",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            suggest("bugInputPath", all_state_fields()),
            Some("InputPath")
        );
        assert_eq!(suggest("Nxt", ["Next", "End"].into_iter()), Some("Next"));
        assert_eq!(suggest("zzzz", ["Next", "End"].into_iter()), None);
    }

    #[test]
    fn labels() {
        for c in ['*', ' ', ']', '\\', '}', '\u{8}', '\u{7f}', '\u{85}'] {
            assert!(is_forbidden_label_char(c), "{c:?}");
        }
        assert!(!is_forbidden_label_char('a'));
        assert!(!is_forbidden_label_char('-'));
    }
}
