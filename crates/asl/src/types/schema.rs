//! JSON Schema documents as [`Ty`]s.
//!
//! The language crate has no JSON Schema engine (inputs are checked
//! against their schema by the trigger service, with the `jsonschema`
//! crate); here a schema is read for the *shape* it promises: `type`,
//! `properties`, `required`, `additionalProperties`, `items` /
//! `prefixItems`, `enum`, `const`, `anyOf` / `oneOf` (joined), `allOf`
//! (merged), and `$ref`s inside the document (`#`, `#/$defs/…`,
//! `#/definitions/…`, any JSON pointer, or the document's own `$id`).
//! Other keywords (`pattern`, `minimum`, `if`/`then`, `not`, …) narrow
//! values, not shapes, and are not needed here.
//!
//! A schema that cannot be read for its shape is reported, every problem
//! with the schema file and the JSON pointer inside it: a keyword of the
//! wrong JSON type or an unknown `type` name (`schema-invalid`), a `$ref`
//! that does not resolve or a cycle of `$ref`s that never reaches a schema
//! (`schema-ref`). A reference that recurses through `properties` or
//! `items` (a tree) is a valid schema: below the recursion the type is
//! unknown.

use std::collections::BTreeMap;

use std::sync::Arc;

use serde_json::Value;

use super::{Arr, Obj, Ty};
use crate::diagnostics::{Code, Diagnostic};

/// How deep a schema is followed (nesting and `$ref`s together).
const MAX_DEPTH: usize = 64;

/// A JSON Schema document, as read from its file.
#[derive(Debug, Clone)]
pub struct SchemaFile {
    /// How the file is named in diagnostics (e.g. `schemas/upgrade.input.json`).
    pub file: String,
    pub root: Value,
}

/// A problem in a schema, with its pointer inside the file.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaProblem {
    pub code: Code,
    pub pointer: String,
    pub message: String,
}

impl SchemaFile {
    /// Read a schema file: a file that cannot be read or is not JSON is one
    /// `schema-invalid` diagnostic naming it.
    pub fn read(path: &std::path::Path) -> Result<SchemaFile, Diagnostic> {
        let file = path.display().to_string();
        let text = crate::file::read_text(path).map_err(|e| {
            Diagnostic::error(
                Code::SchemaInvalid,
                "",
                format!("schema {file} cannot be read: {e}"),
            )
        })?;
        let root: Value = serde_json::from_str(&text).map_err(|e| {
            Diagnostic::error(
                Code::SchemaInvalid,
                "",
                format!("schema {file} is not JSON: {e}"),
            )
        })?;
        Ok(SchemaFile { file, root })
    }

    /// The type the schema promises, and every problem found in it.
    pub fn to_ty(&self) -> (Ty, Vec<SchemaProblem>) {
        let mut r = Reader {
            root: &self.root,
            id: self.root.get("$id").and_then(Value::as_str),
            problems: Vec::new(),
            expanding: Vec::new(),
            direct: Vec::new(),
        };
        let t = r.ty(&self.root, "", 0);
        let mut seen = std::collections::HashSet::new();
        r.problems
            .retain(|p| seen.insert((p.pointer.clone(), p.message.clone())));
        (t, r.problems)
    }

    /// [`Self::to_ty`], with the problems as diagnostics naming the file
    /// and the pointer (the definition `pointer` they are reported at is
    /// given).
    pub fn to_ty_checked(&self, at: &str, out: &mut Vec<Diagnostic>) -> Ty {
        let (t, problems) = self.to_ty();
        for p in problems {
            out.push(Diagnostic::error(
                p.code,
                at,
                format!(
                    "schema {}#{}: {}",
                    self.file,
                    if p.pointer.is_empty() { "" } else { &p.pointer },
                    p.message
                ),
            ));
        }
        t
    }
}

struct Reader<'a> {
    root: &'a Value,
    id: Option<&'a str>,
    problems: Vec<SchemaProblem>,
    /// `$ref`s being expanded (for recursion through structure).
    expanding: Vec<String>,
    /// `$ref`s followed since the last structural step (a cycle here never
    /// reaches a schema).
    direct: Vec<String>,
}

fn escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

const TYPES: [&str; 7] = [
    "null", "boolean", "object", "array", "number", "string", "integer",
];

impl<'a> Reader<'a> {
    fn problem(&mut self, code: Code, pointer: &str, message: String) {
        self.problems.push(SchemaProblem {
            code,
            pointer: pointer.to_string(),
            message,
        });
    }

    fn resolve(&self, reference: &str) -> Option<&'a Value> {
        let fragment = match reference.split_once('#') {
            Some(("", f)) => f,
            Some((base, f)) if Some(base) == self.id => f,
            None if Some(reference) == self.id => "",
            _ => return None,
        };
        if fragment.is_empty() {
            return Some(self.root);
        }
        // Percent-encoding of pointers is rare in hand-written schemas;
        // the common `%25` and `%20` are decoded.
        let fragment = fragment.replace("%20", " ").replace("%25", "%");
        self.root.pointer(&fragment)
    }

    /// A sub-schema reached through structure (`properties`, `items`, …).
    fn sub(&mut self, schema: &'a Value, ptr: &str, depth: usize) -> Ty {
        let saved = std::mem::take(&mut self.direct);
        let t = self.ty(schema, ptr, depth + 1);
        self.direct = saved;
        t
    }

    fn ty(&mut self, schema: &'a Value, ptr: &str, depth: usize) -> Ty {
        if depth > MAX_DEPTH {
            return Ty::any();
        }
        let obj = match schema {
            Value::Bool(true) => return Ty::any(),
            Value::Bool(false) => return Ty::never(),
            Value::Object(o) => o,
            other => {
                self.problem(
                    Code::SchemaInvalid,
                    ptr,
                    format!(
                        "a schema must be an object or a boolean, not {}",
                        crate::path::json_type_article(other)
                    ),
                );
                return Ty::any();
            }
        };
        if let Some(r) = obj.get("$ref") {
            let rptr = format!("{ptr}/$ref");
            let Some(reference) = r.as_str() else {
                self.problem(Code::SchemaInvalid, &rptr, "$ref must be a string".into());
                return Ty::any();
            };
            if self.direct.iter().any(|d| d == reference) {
                let mut chain = self.direct.clone();
                chain.push(reference.to_string());
                self.problem(
                    Code::SchemaRef,
                    &rptr,
                    format!(
                        "$ref \"{reference}\" is a cycle of references that never reaches a schema: {}",
                        chain.join(" → ")
                    ),
                );
                return Ty::any();
            }
            if self.expanding.iter().any(|d| d == reference) {
                // A recursive structure (a tree): valid; unknown below.
                return Ty::any();
            }
            let Some(target) = self.resolve(reference) else {
                self.problem(
                    Code::SchemaRef,
                    &rptr,
                    format!(
                        "$ref \"{reference}\" does not resolve{}",
                        if reference.starts_with('#') {
                            ": no such pointer in the schema".to_string()
                        } else {
                            format!(
                                ": only references inside the schema file (\"#…\"{}) are followed",
                                self.id
                                    .map(|i| format!(" or its $id {i}"))
                                    .unwrap_or_default()
                            )
                        }
                    ),
                );
                return Ty::any();
            };
            self.direct.push(reference.to_string());
            self.expanding.push(reference.to_string());
            let target_ptr = match reference.split_once('#') {
                Some((_, f)) => f.to_string(),
                None => String::new(),
            };
            let t = self.ty(target, &target_ptr, depth + 1);
            self.expanding.pop();
            self.direct.pop();
            return t;
        }
        self.check_keywords(obj, ptr);

        // Combinators first: their join or merge is the base.
        let mut parts: Vec<Ty> = Vec::new();
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(alts)) = obj.get(key) {
                let mut joined = Ty::never();
                for (i, alt) in alts.iter().enumerate() {
                    let t = self.ty(alt, &format!("{ptr}/{key}/{i}"), depth + 1);
                    joined = joined.join(&t);
                }
                parts.push(joined);
            }
        }
        if let Some(Value::Array(all)) = obj.get("allOf") {
            let mut merged: Option<Ty> = None;
            for (i, s) in all.iter().enumerate() {
                let t = self.ty(s, &format!("{ptr}/allOf/{i}"), depth + 1);
                merged = Some(match merged {
                    None => t,
                    Some(m) => merge(&m, &t),
                });
            }
            if let Some(m) = merged {
                parts.push(m);
            }
        }

        let own = self.own(obj, ptr, depth);
        match (own, parts.is_empty()) {
            (Some(t), true) => t,
            (None, true) => Ty::any(),
            (Some(t), false) => parts.iter().fold(t, |acc, p| merge(&acc, p)),
            (None, false) => {
                let first = parts[0].clone();
                parts[1..].iter().fold(first, |acc, p| merge(&acc, p))
            }
        }
    }

    /// The type the schema's own keywords give (`None`: they say nothing
    /// about the shape).
    fn own(
        &mut self,
        obj: &'a serde_json::Map<String, Value>,
        ptr: &str,
        depth: usize,
    ) -> Option<Ty> {
        if let Some(c) = obj.get("const") {
            return Some(Ty::of_value(c));
        }
        if let Some(Value::Array(values)) = obj.get("enum") {
            return Some(
                values
                    .iter()
                    .fold(Ty::never(), |a, v| a.join(&Ty::of_value(v))),
            );
        }
        let names: Vec<&str> = match obj.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        // Unknown names are reported (check_keywords): read the rest as if
        // there were no `type`.
        let names: Vec<&str> = names.into_iter().filter(|n| TYPES.contains(n)).collect();
        let structural = obj.contains_key("properties")
            || obj.contains_key("required")
            || obj.contains_key("additionalProperties");
        let has_items = obj.contains_key("items") || obj.contains_key("prefixItems");
        if names.is_empty() && !structural && !has_items {
            return None;
        }
        let want = |n: &str| {
            names.contains(&n)
                || (names.is_empty() && n == "object" && structural)
                || (names.is_empty() && n == "array" && has_items)
        };
        let mut t = Ty::never();
        t.null = want("null");
        t.boolean = want("boolean");
        t.number = want("number") || want("integer");
        if want("string") {
            t.string = Some(None);
        }
        if want("array") {
            t.array = Some(Arc::new(self.array(obj, ptr, depth)));
        }
        if want("object") {
            t.object = Some(Arc::new(self.object(obj, ptr, depth)));
        }
        Some(t)
    }

    fn object(&mut self, obj: &'a serde_json::Map<String, Value>, ptr: &str, depth: usize) -> Obj {
        let required: Vec<&str> = match obj.get("required") {
            Some(Value::Array(r)) => r.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let mut fields = BTreeMap::new();
        if let Some(Value::Object(props)) = obj.get("properties") {
            for (k, s) in props {
                let t = self.sub(s, &format!("{ptr}/properties/{}", escape(k)), depth);
                fields.insert(
                    super::Key::from(k.as_str()),
                    (t, required.contains(&k.as_str())),
                );
            }
        }
        // Required fields the properties do not describe: present, unknown.
        for r in &required {
            fields
                .entry(super::Key::from(*r))
                .or_insert_with(|| (Ty::any(), true));
        }
        let rest = match obj.get("additionalProperties") {
            Some(Value::Bool(false)) if !obj.contains_key("patternProperties") => None,
            Some(s @ Value::Object(_)) if !obj.contains_key("patternProperties") => Some(Box::new(
                self.sub(s, &format!("{ptr}/additionalProperties"), depth),
            )),
            _ => Some(Box::new(Ty::any())),
        };
        Obj { fields, rest }
    }

    fn array(&mut self, obj: &'a serde_json::Map<String, Value>, ptr: &str, depth: usize) -> Arr {
        let mut tuple: Option<Vec<Ty>> = None;
        let mut items = Ty::any();
        let prefix = match (obj.get("prefixItems"), obj.get("items")) {
            (Some(Value::Array(p)), _) => Some(("prefixItems", p)),
            (None, Some(Value::Array(p))) => Some(("items", p)),
            _ => None,
        };
        if let Some((key, p)) = prefix {
            let ts: Vec<Ty> = p
                .iter()
                .enumerate()
                .map(|(i, s)| self.sub(s, &format!("{ptr}/{key}/{i}"), depth))
                .collect();
            items = ts.iter().fold(Ty::never(), |a, t| a.join(t));
            // More items may follow unless `items: false`: a tuple is only
            // known for the positions it lists.
            tuple = Some(ts);
        }
        match obj.get("items") {
            Some(s @ (Value::Object(_) | Value::Bool(_))) => {
                let t = self.sub(s, &format!("{ptr}/items"), depth);
                items = if tuple.is_some() { items.join(&t) } else { t };
            }
            _ if tuple.is_some() => items = items.join(&Ty::any()),
            _ => {}
        }
        Arr { items, tuple }
    }

    /// Keywords whose values have the wrong JSON type, or unknown `type`
    /// names: the schema is not a valid JSON Schema.
    fn check_keywords(&mut self, obj: &serde_json::Map<String, Value>, ptr: &str) {
        let at = |k: &str| format!("{ptr}/{}", escape(k));
        match obj.get("type") {
            None => {}
            Some(Value::String(t)) if TYPES.contains(&t.as_str()) => {}
            Some(Value::String(t)) => {
                self.problem(
                    Code::SchemaInvalid,
                    &at("type"),
                    format!(
                        "\"{t}\" is not a JSON Schema type (one of {})",
                        TYPES.join(", ")
                    ),
                );
            }
            Some(Value::Array(ts)) => {
                for (i, t) in ts.iter().enumerate() {
                    if !t.as_str().is_some_and(|t| TYPES.contains(&t)) {
                        self.problem(
                            Code::SchemaInvalid,
                            &format!("{}/{i}", at("type")),
                            format!(
                                "{t} is not a JSON Schema type (one of {})",
                                TYPES.join(", ")
                            ),
                        );
                    }
                }
            }
            Some(other) => self.problem(
                Code::SchemaInvalid,
                &at("type"),
                format!(
                    "type must be a string or an array of strings, not {}",
                    crate::path::json_type_article(other)
                ),
            ),
        }
        let expect = |v: &Value, kind: &str| match kind {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "schema" => v.is_object() || v.is_boolean(),
            "schemas" => v.is_object() || v.is_boolean() || v.is_array(),
            "strings" => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
            _ => true,
        };
        for (key, kind, what) in [
            ("properties", "object", "an object of schemas"),
            ("$defs", "object", "an object of schemas"),
            ("definitions", "object", "an object of schemas"),
            ("patternProperties", "object", "an object of schemas"),
            ("required", "strings", "an array of field names"),
            ("enum", "array", "an array"),
            ("anyOf", "array", "an array of schemas"),
            ("oneOf", "array", "an array of schemas"),
            ("allOf", "array", "an array of schemas"),
            ("prefixItems", "array", "an array of schemas"),
            ("additionalProperties", "schema", "a schema or a boolean"),
            ("items", "schemas", "a schema or a boolean"),
            ("not", "schema", "a schema or a boolean"),
        ] {
            if let Some(v) = obj.get(key)
                && !expect(v, kind)
            {
                self.problem(
                    Code::SchemaInvalid,
                    &at(key),
                    format!(
                        "{key} must be {what}, not {}",
                        crate::path::json_type_article(v)
                    ),
                );
            }
        }
        for key in ["anyOf", "oneOf", "allOf"] {
            if let Some(Value::Array(a)) = obj.get(key)
                && a.is_empty()
            {
                self.problem(
                    Code::SchemaInvalid,
                    &at(key),
                    format!("{key} must not be empty"),
                );
            }
        }
        for key in ["properties", "$defs", "definitions", "patternProperties"] {
            if let Some(Value::Object(m)) = obj.get(key) {
                for (k, v) in m {
                    if !(v.is_object() || v.is_boolean()) {
                        self.problem(
                            Code::SchemaInvalid,
                            &format!("{}/{}", at(key), escape(k)),
                            format!(
                                "a schema must be an object or a boolean, not {}",
                                crate::path::json_type_article(v)
                            ),
                        );
                    }
                }
            }
        }
        // Definitions no property uses are still checked.
        for key in ["$defs", "definitions"] {
            if let Some(Value::Object(m)) = obj.get(key) {
                for (k, v) in m {
                    if let Value::Object(inner) = v
                        && !inner.contains_key("$ref")
                    {
                        self.check_keywords(inner, &format!("{}/{}", at(key), escape(k)));
                    }
                }
            }
        }
    }
}

/// Both at once (an `allOf`, or a schema's own keywords with its
/// combinators), approximated: kinds both allow; objects with the fields
/// of both (present if either requires them).
fn merge(a: &Ty, b: &Ty) -> Ty {
    if a.any {
        return b.clone();
    }
    if b.any {
        return a.clone();
    }
    Ty {
        any: false,
        null: a.null && b.null,
        boolean: a.boolean && b.boolean,
        number: a.number && b.number,
        string: match (&a.string, &b.string) {
            (Some(Some(x)), Some(Some(y))) => {
                Some(Some(Arc::new(x.intersection(y).cloned().collect())))
            }
            (Some(Some(x)), Some(None)) | (Some(None), Some(Some(x))) => Some(Some(x.clone())),
            (Some(None), Some(None)) => Some(None),
            _ => None,
        },
        array: match (&a.array, &b.array) {
            (Some(x), Some(y)) => Some(Arc::new(Arr {
                items: merge(&x.items, &y.items),
                tuple: x.tuple.clone().or_else(|| y.tuple.clone()),
            })),
            _ => None,
        },
        object: match (&a.object, &b.object) {
            (Some(x), Some(y)) => {
                let mut fields = x.fields.clone();
                for (k, (t, req)) in &y.fields {
                    match fields.get_mut(k) {
                        Some((t0, r0)) => {
                            *t0 = merge(t0, t);
                            *r0 = *r0 || *req;
                        }
                        None => {
                            fields.insert(k.clone(), (t.clone(), *req));
                        }
                    }
                }
                let rest = match (&x.rest, &y.rest) {
                    (Some(p), Some(q)) => Some(Box::new(merge(p, q))),
                    _ => None,
                };
                Some(Arc::new(Obj { fields, rest }))
            }
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: Value) -> (Ty, Vec<SchemaProblem>) {
        SchemaFile {
            file: "s.json".into(),
            root: v,
        }
        .to_ty()
    }

    #[test]
    fn shapes_of_schemas() {
        let (t, p) = read(json!({
            "type": "object",
            "required": ["a"],
            "properties": {
                "a": {"$ref": "#/$defs/A"},
                "b": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "tree": {"$ref": "#/$defs/Tree"}
            },
            "additionalProperties": false,
            "$defs": {
                "A": {"type": "object", "properties": {"x": {"enum": ["p", "q"]}}},
                "Tree": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/Tree"}}}}
            }
        }));
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(t.shape(), "{a, b?, tree?}");
    }

    #[test]
    fn bad_schemas_are_reported_with_their_pointer() {
        let (_, p) = read(json!({
            "type": "objekt",
            "properties": {
                "a": {"$ref": "#/$defs/missing"},
                "b": {"$ref": "#/$defs/B"},
                "c": 3,
                "d": {"required": "x"}
            },
            "$defs": {"B": {"$ref": "#/$defs/C"}, "C": {"$ref": "#/$defs/B"}}
        }));
        let found: Vec<(Code, &str)> = p.iter().map(|p| (p.code, p.pointer.as_str())).collect();
        assert!(found.contains(&(Code::SchemaInvalid, "/type")), "{p:?}");
        assert!(
            found.contains(&(Code::SchemaRef, "/properties/a/$ref")),
            "{p:?}"
        );
        assert!(
            found
                .iter()
                .any(|(c, ptr)| *c == Code::SchemaRef && ptr.starts_with("/$defs/")),
            "{p:?}"
        );
        assert!(
            found.contains(&(Code::SchemaInvalid, "/properties/c")),
            "{p:?}"
        );
        assert!(
            found.contains(&(Code::SchemaInvalid, "/properties/d/required")),
            "{p:?}"
        );
    }
}
