//! Expressions in fields: JSONPath and reference paths, intrinsic
//! functions, JSONata, payload templates, Assign, and numbers that may be
//! given by a path or an expression.

use std::collections::HashMap;

use serde_json::Value;

use crate::diagnostics::{Code, child_pointer};
use crate::intrinsic::{PayloadExpr, parse_payload_expr};
use crate::jsonata::{JsonataExpr, parse_jsonata_string};
use crate::model::*;
use crate::path::{self, PathRoot, ReferencePath, parse_json_path, parse_reference_path};
use crate::source::{Node, NodeKind, Span};

use super::Loader;

impl Loader {
    pub(super) fn jsonata(
        &mut self,
        s: &str,
        ptr: &str,
        span: Span,
    ) -> Option<Option<JsonataExpr>> {
        match parse_jsonata_string(s)? {
            Ok(e) => Some(Some(e)),
            Err(e) => {
                self.error(e.code(), ptr, span, format!("{e}"));
                Some(None)
            }
        }
    }

    pub(super) fn json_path_field(
        &mut self,
        n: &Node,
        ptr: &str,
        field: &str,
    ) -> Option<Nullable<path::JsonPath>> {
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

    pub(super) fn result_path(&mut self, n: &Node, ptr: &str) -> Option<Nullable<ReferencePath>> {
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

    pub(super) fn reference_path(
        &mut self,
        n: &Node,
        ptr: &str,
        field: &str,
    ) -> Option<ReferencePath> {
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

    pub(super) fn payload_expr(
        &mut self,
        s: &str,
        ptr: &str,
        span: Span,
        field: &str,
    ) -> Option<PayloadExpr> {
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
    pub(super) fn payload_template(&mut self, n: &Node, ptr: &str) -> Template {
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
    pub(super) fn jsonata_template(&mut self, n: &Node, ptr: &str) -> Template {
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

    pub(super) fn template(&mut self, n: &Node, ptr: &str, lang: QueryLanguage) -> Template {
        match lang {
            QueryLanguage::JsonPath => self.payload_template(n, ptr),
            QueryLanguage::Jsonata => self.jsonata_template(n, ptr),
        }
    }

    /// Assign: an object of variable names.
    pub(super) fn assign(&mut self, n: &Node, ptr: &str, lang: QueryLanguage) -> Option<Template> {
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
    pub(super) fn number_source(
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
pub(super) enum NumberCheck {
    Int { min: u64, max: u64 },
    Range { min: f64, max: f64 },
}
