//! Path evaluation with Jayway's semantics, and writing a ResultPath.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Map, Number, Value};

use super::*;

/// The most nodes one evaluation step may select before giving up.
const MAX_NODES: usize = 1_000_000;

// ---------------------------------------------------------------------------
// Public evaluation API
// ---------------------------------------------------------------------------

fn root_value<'a>(
    root: &PathRoot,
    cx: &PathContext<'a>,
    source: &str,
) -> Result<Cow<'a, Value>, PathError> {
    match root {
        PathRoot::Input => Ok(Cow::Borrowed(cx.input)),
        PathRoot::Context => Ok(Cow::Borrowed(cx.context)),
        PathRoot::Variable(name) => match (cx.variables)(name) {
            Some(v) => Ok(Cow::Owned(v)),
            None => Err(PathError::UndefinedVariable {
                path: source.to_string(),
                name: name.clone(),
            }),
        },
    }
}

impl JsonPath {
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when the path names at most one node (no wildcard, filter,
    /// slice, index list or `..`): such a path fails when it selects nothing.
    pub fn is_definite(&self) -> bool {
        self.query.is_definite()
    }

    /// True for `$`, `$$` or `$name` alone.
    pub fn is_root_only(&self) -> bool {
        self.query.segments.is_empty() && self.query.function.is_none()
    }

    /// Evaluate: a definite path gives its node (or [`PathError::NotFound`]),
    /// an indefinite one a JSON array of all matches (possibly empty), a
    /// path ending in a function the function's result.
    pub fn select(&self, cx: &PathContext) -> Result<Value, PathError> {
        let root = root_value(&self.root, cx, &self.source)?;
        self.select_in(&root)
    }

    /// Evaluate the query part against `document`, whatever the root.
    pub fn select_in(&self, document: &Value) -> Result<Value, PathError> {
        match resolve(&self.query, document, document) {
            Ok(v) => Ok(v.into_owned()),
            Err(f) => {
                let e = f.into_error(&self.source);
                // Jayway: an indefinite path (wildcard, slice, filter, `..`)
                // that finds nothing is an empty list, not an error.
                if !self.is_definite() && matches!(e, PathError::NotFound { .. }) {
                    Ok(Value::Array(Vec::new()))
                } else {
                    Err(e)
                }
            }
        }
    }
}

impl ReferencePath {
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Always true: a reference path names one node.
    pub fn is_definite(&self) -> bool {
        true
    }

    /// True for `$`, `$$` or `$name` alone.
    pub fn is_root_only(&self) -> bool {
        self.steps.is_empty()
    }

    /// The value the path names, or [`PathError::NotFound`].
    pub fn get(&self, cx: &PathContext) -> Result<Value, PathError> {
        let root = root_value(&self.root, cx, &self.source)?;
        self.get_in(&root)
    }

    /// Evaluate the steps against `document`, whatever the root.
    pub fn get_in(&self, document: &Value) -> Result<Value, PathError> {
        resolve(&self.query, document, document)
            .map(Cow::into_owned)
            .map_err(|f| f.into_error(&self.source))
    }

    /// ResultPath: put `value` into `target` at this path and return the
    /// result. `$` replaces the whole target; missing members on the way are
    /// created as objects; a step through a non-object (for a name) or a
    /// non-array / out-of-range index fails.
    pub fn set(&self, target: Value, value: Value) -> Result<Value, PathError> {
        let fail = |message: String| PathError::Set {
            path: self.source.clone(),
            message,
        };
        if self.root != PathRoot::Input {
            return Err(fail(format!(
                "a ResultPath must be rooted at '$', not '{}'",
                self.root
            )));
        }
        let Some((last, parents)) = self.steps.split_last() else {
            return Ok(value);
        };
        let mut target = target;
        let mut node = &mut target;
        let mut at = String::from("$");
        for step in parents {
            node = match step {
                Step::Field(name) => match node {
                    Value::Object(map) => map
                        .entry(name.clone())
                        .or_insert_with(|| Value::Object(Map::new())),
                    other => {
                        return Err(fail(format!(
                            "cannot set member '{name}' of {at}: it is {}, not an object",
                            json_type_article(other)
                        )));
                    }
                },
                Step::Index(i) => match node {
                    Value::Array(items) => {
                        let len = items.len();
                        match items.get_mut(*i) {
                            Some(item) => item,
                            None => {
                                return Err(fail(format!(
                                    "index {i} is out of range for {at}, an array of {len} items"
                                )));
                            }
                        }
                    }
                    other => {
                        return Err(fail(format!(
                            "cannot index {at} with [{i}]: it is {}, not an array",
                            json_type_article(other)
                        )));
                    }
                },
            };
            match step {
                Step::Field(name) => at.push_str(&format!("['{name}']")),
                Step::Index(i) => at.push_str(&format!("[{i}]")),
            }
        }
        match last {
            Step::Field(name) => match node {
                Value::Object(map) => {
                    map.insert(name.clone(), value);
                }
                other => {
                    return Err(fail(format!(
                        "cannot set member '{name}' of {at}: it is {}, not an object",
                        json_type_article(other)
                    )));
                }
            },
            Step::Index(i) => match node {
                Value::Array(items) => {
                    let len = items.len();
                    match items.get_mut(*i) {
                        Some(slot) => *slot = value,
                        None => {
                            return Err(fail(format!(
                                "index {i} is out of range for {at}, an array of {len} items"
                            )));
                        }
                    }
                }
                other => {
                    return Err(fail(format!(
                        "cannot index {at} with [{i}]: it is {}, not an array",
                        json_type_article(other)
                    )));
                }
            },
        }
        Ok(target)
    }
}

// ---------------------------------------------------------------------------
// Evaluator (Jayway semantics)
// ---------------------------------------------------------------------------

enum Fail {
    /// PathNotFoundException
    NotFound(String),
    /// Other evaluation failures.
    Invalid(String),
}

impl Fail {
    fn into_error(self, path: &str) -> PathError {
        match self {
            Fail::NotFound(detail) => PathError::NotFound {
                path: path.to_string(),
                detail,
            },
            Fail::Invalid(message) => PathError::Evaluation {
                path: path.to_string(),
                message,
            },
        }
    }
}

/// A JSON value's type as error messages name it: "null", "a boolean",
/// "a number", "a string", "an array", "an object".
pub fn json_type_article(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The Java class name Jayway's messages show for a value.
fn java_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "java.lang.Boolean",
        Value::Number(n) if n.is_f64() => "java.lang.Double",
        Value::Number(_) => "java.lang.Integer",
        Value::String(_) => "java.lang.String",
        Value::Array(_) => "java.util.ArrayList",
        Value::Object(_) => "java.util.LinkedHashMap",
    }
}

/// Evaluate a query to one value: a definite path's node, an indefinite
/// path's array of matches, or a function's result.
fn resolve<'a>(q: &'a Query, start: &'a Value, root: &'a Value) -> Result<Cow<'a, Value>, Fail> {
    let nodes = collect(q, start, root)?;
    let definite = q.is_definite();
    let input = if definite {
        match nodes.into_iter().next() {
            Some(v) => v,
            None => {
                return Err(Fail::NotFound(format!(
                    "No results for path: {}",
                    q.normalized("$")
                )));
            }
        }
    } else {
        Cow::Owned(Value::Array(
            nodes.into_iter().map(Cow::into_owned).collect(),
        ))
    };
    match q.function {
        Some(f) => apply_function(f, &input).map(Cow::Owned),
        None => Ok(input),
    }
}

/// All nodes a query selects, in Jayway's order.
fn collect<'a>(
    q: &'a Query,
    start: &'a Value,
    root: &'a Value,
) -> Result<Vec<Cow<'a, Value>>, Fail> {
    let n = q.segments.len();
    let mut current: Vec<&'a Value> = vec![start];
    let mut walk = Walk {
        root,
        budget: MAX_NODES,
    };
    let mut upstream_definite = true;
    let mut prefix = String::from("$");
    for (i, seg) in q.segments.iter().enumerate() {
        let leaf = i + 1 == n && q.function.is_none();
        if leaf {
            // Several names as the last step: merged into one object each.
            match seg {
                Segment::Child(Selector::Names(names)) => {
                    let mut out = Vec::new();
                    for node in current {
                        match node {
                            Value::Object(map) => out.push(Cow::Owned(merge_names(map, names))),
                            other => {
                                if upstream_definite {
                                    return Err(Fail::NotFound(expected_object(
                                        seg, &prefix, other,
                                    )));
                                }
                            }
                        }
                    }
                    return Ok(out);
                }
                Segment::Descendant(Selector::Names(names)) => {
                    let mut out = Vec::new();
                    for node in current {
                        for d in descendants(node, &mut walk.budget)? {
                            if let Value::Object(map) = d
                                && names.iter().all(|k| map.contains_key(k))
                            {
                                out.push(Cow::Owned(merge_names(map, names)));
                            }
                        }
                    }
                    return Ok(out);
                }
                _ => {}
            }
        }
        let mut next = Vec::new();
        for node in current {
            apply_segment(
                seg,
                node,
                &mut walk,
                upstream_definite,
                leaf,
                &prefix,
                &mut next,
            )?;
            if next.len() > MAX_NODES {
                return Err(Fail::Invalid(format!(
                    "the path selects more than {MAX_NODES} nodes"
                )));
            }
        }
        if upstream_definite {
            seg.write_normalized(&mut prefix);
        }
        upstream_definite = upstream_definite && seg.is_definite(leaf);
        current = next;
    }
    Ok(current.into_iter().map(Cow::Borrowed).collect())
}

fn merge_names(map: &Map<String, Value>, names: &[String]) -> Value {
    let mut merged = Map::new();
    for name in names {
        if let Some(v) = map.get(name) {
            merged.insert(name.clone(), v.clone());
        }
    }
    Value::Object(merged)
}

fn expected_object(seg: &Segment, prefix: &str, found: &Value) -> String {
    let fragment = match seg {
        Segment::Child(sel) | Segment::Descendant(sel) => sel.normalized(),
    };
    format!(
        "Expected to find an object with property {fragment} in path {prefix} but found '{}'. This is not a json object according to the JsonProvider: 'com.jayway.jsonpath.spi.json.JacksonJsonProvider'.",
        java_type(found)
    )
}

/// The node and everything below it, in document (pre-)order.
fn descendants<'a>(v: &'a Value, budget: &mut usize) -> Result<Vec<&'a Value>, Fail> {
    let mut out = Vec::new();
    let mut stack = vec![v];
    while let Some(n) = stack.pop() {
        out.push(n);
        *budget = budget.saturating_sub(1);
        if *budget == 0 {
            return Err(Fail::Invalid(format!(
                "the path selects more than {MAX_NODES} nodes"
            )));
        }
        match n {
            Value::Object(map) => stack.extend(map.values().rev()),
            Value::Array(items) => stack.extend(items.iter().rev()),
            _ => {}
        }
    }
    Ok(out)
}

/// Evaluation state shared by the steps of one query.
struct Walk<'a> {
    root: &'a Value,
    /// How many more nodes deep scans may visit.
    budget: usize,
}

fn apply_segment<'a>(
    seg: &'a Segment,
    node: &'a Value,
    walk: &mut Walk<'a>,
    upstream_definite: bool,
    leaf: bool,
    prefix: &str,
    out: &mut Vec<&'a Value>,
) -> Result<(), Fail> {
    let sel = match seg {
        Segment::Descendant(sel) => {
            for d in descendants(node, &mut walk.budget)? {
                scan_select(sel, d, walk.root, out);
            }
            return Ok(());
        }
        Segment::Child(sel) => sel,
    };
    match sel {
        Selector::Name(name) => match node {
            Value::Object(map) => match map.get(name) {
                Some(v) => out.push(v),
                None => {
                    if !leaf && upstream_definite {
                        return Err(Fail::NotFound(format!(
                            "Missing property in path {prefix}['{name}']"
                        )));
                    }
                }
            },
            other => {
                if upstream_definite {
                    return Err(Fail::NotFound(expected_object(seg, prefix, other)));
                }
            }
        },
        Selector::Names(names) => match node {
            Value::Object(map) => out.extend(names.iter().filter_map(|n| map.get(n))),
            other => {
                if upstream_definite {
                    return Err(Fail::NotFound(expected_object(seg, prefix, other)));
                }
            }
        },
        Selector::Index(_) | Selector::Indices(_) | Selector::Slice(..) => match node {
            Value::Array(items) => select_indexes(sel, items, out),
            Value::Null => {
                if upstream_definite {
                    return Err(Fail::NotFound(format!("The path {prefix} is null")));
                }
            }
            other => {
                if upstream_definite {
                    return Err(Fail::NotFound(format!(
                        "Filter: {} can only be applied to arrays. Current context is: {other}",
                        sel.normalized()
                    )));
                }
            }
        },
        Selector::Wildcard => match node {
            Value::Object(map) => out.extend(map.values()),
            Value::Array(items) => out.extend(items.iter()),
            _ => {}
        },
        Selector::Filter(f) => match node {
            Value::Object(_) => {
                if test(f, node, walk.root) {
                    out.push(node);
                }
            }
            Value::Array(items) => {
                let root = walk.root;
                out.extend(items.iter().filter(|item| test(f, item, root)));
            }
            other => {
                if upstream_definite {
                    return Err(Fail::Invalid(format!(
                        "Filter: [?] can not be applied to primitives. Current context is: {other}"
                    )));
                }
            }
        },
    }
    Ok(())
}

/// A selector after `..`, applied to one visited node.
fn scan_select<'a>(sel: &'a Selector, node: &'a Value, root: &'a Value, out: &mut Vec<&'a Value>) {
    match (sel, node) {
        (Selector::Name(name), Value::Object(map)) => out.extend(map.get(name)),
        (Selector::Names(names), Value::Object(map)) => {
            out.extend(names.iter().filter_map(|n| map.get(n)));
        }
        (Selector::Index(_) | Selector::Indices(_) | Selector::Slice(..), Value::Array(items)) => {
            select_indexes(sel, items, out);
        }
        (Selector::Wildcard, Value::Object(map)) => out.extend(map.values()),
        (Selector::Wildcard, Value::Array(items)) => out.extend(items.iter()),
        (Selector::Filter(f), Value::Object(_)) if test(f, node, root) => out.push(node),
        _ => {}
    }
}

fn array_get(items: &[Value], i: i64) -> Option<&Value> {
    let len = i64::try_from(items.len()).ok()?;
    let effective = if i < 0 { len.checked_add(i)? } else { i };
    items.get(usize::try_from(effective).ok()?)
}

/// Index, index list and slice, with Jayway's slice rules.
fn select_indexes<'a>(sel: &Selector, items: &'a [Value], out: &mut Vec<&'a Value>) {
    let Ok(len) = i64::try_from(items.len()) else {
        return;
    };
    match sel {
        Selector::Index(i) => out.extend(array_get(items, *i)),
        Selector::Indices(is) => out.extend(is.iter().filter_map(|i| array_get(items, *i))),
        Selector::Slice(Some(from), None) => {
            let from = if *from < 0 {
                len.saturating_add(*from)
            } else {
                *from
            }
            .max(0);
            for i in from..len {
                out.extend(array_get(items, i));
            }
        }
        Selector::Slice(None, Some(to)) => {
            let to = if *to < 0 {
                len.saturating_add(*to)
            } else {
                *to
            }
            .min(len);
            for i in 0..to {
                out.extend(array_get(items, i));
            }
        }
        Selector::Slice(Some(from), Some(to)) => {
            let to = (*to).min(len);
            if *from >= to || len == 0 {
                return;
            }
            // Jayway does not normalise a negative start here; indexes below
            // -len select nothing, so start there at the earliest.
            for i in (*from).max(-len)..to {
                out.extend(array_get(items, i));
            }
        }
        _ => {}
    }
}

fn apply_function(f: PathFunction, v: &Value) -> Result<Value, Fail> {
    let numbers = || -> Result<Vec<f64>, Fail> {
        let nums: Vec<f64> = match v {
            Value::Array(items) => items
                .iter()
                .filter_map(|i| i.as_number().and_then(Number::as_f64))
                .collect(),
            _ => Vec::new(),
        };
        if nums.is_empty() {
            Err(Fail::Invalid(
                "Aggregation function attempted to calculate value using empty array".to_string(),
            ))
        } else {
            Ok(nums)
        }
    };
    let float = |x: f64| Number::from_f64(x).map_or(Value::Null, Value::Number);
    Ok(match f {
        PathFunction::Length | PathFunction::Size => match v {
            Value::Array(items) => Value::from(items.len()),
            Value::Object(map) => Value::from(map.len()),
            _ => Value::Null,
        },
        PathFunction::Sum => float(numbers()?.iter().sum()),
        PathFunction::Min => float(numbers()?.iter().copied().fold(f64::INFINITY, f64::min)),
        PathFunction::Max => float(numbers()?.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
        PathFunction::Avg => {
            let n = numbers()?;
            float(n.iter().sum::<f64>() / n.len() as f64)
        }
        PathFunction::Stddev => {
            let n = numbers()?;
            let count = n.len() as f64;
            let sum: f64 = n.iter().sum();
            let sum_sq: f64 = n.iter().map(|x| x * x).sum();
            float((sum_sq / count - sum * sum / count / count).sqrt())
        }
        PathFunction::Keys => match v {
            Value::Object(map) => Value::Array(map.keys().cloned().map(Value::String).collect()),
            _ => Value::Null,
        },
        PathFunction::First => match v {
            Value::Array(items) => items.first().cloned().unwrap_or(Value::Null),
            _ => Value::Null,
        },
        PathFunction::Last => match v {
            Value::Array(items) => items.last().cloned().unwrap_or(Value::Null),
            _ => Value::Null,
        },
    })
}

// ----- filter evaluation ----------------------------------------------------

/// A filter operand's value: Jayway's UNDEFINED for a path that resolves to
/// nothing.
enum FVal<'a> {
    Undefined,
    Val(Cow<'a, Value>),
    Regex(&'a Regex),
}

impl FVal<'_> {
    fn value(&self) -> Option<&Value> {
        match self {
            FVal::Val(v) => Some(v),
            _ => None,
        }
    }
}

fn test<'a>(f: &'a Filter, current: &'a Value, root: &'a Value) -> bool {
    match f {
        Filter::Or(items) => items.iter().any(|i| test(i, current, root)),
        Filter::And(items) => items.iter().all(|i| test(i, current, root)),
        Filter::Not(inner) => !test(inner, current, root),
        Filter::Exists { path, expect } => exists(path, current, root) == *expect,
        Filter::Compare { left, op, right } => {
            let l = operand_value(left, current, root);
            let r = operand_value(right, current, root);
            compare(*op, &l, &r)
        }
    }
}

fn filter_path_start<'a>(p: &FilterPath, current: &'a Value, root: &'a Value) -> &'a Value {
    if p.absolute { root } else { current }
}

fn exists(p: &FilterPath, current: &Value, root: &Value) -> bool {
    let start = filter_path_start(p, current, root);
    if p.query.is_definite() || p.query.function.is_some() {
        resolve(&p.query, start, root).is_ok()
    } else {
        collect(&p.query, start, root).is_ok_and(|nodes| !nodes.is_empty())
    }
}

fn operand_value<'a>(o: &'a Operand, current: &'a Value, root: &'a Value) -> FVal<'a> {
    match o {
        Operand::Literal(v) => FVal::Val(Cow::Borrowed(v)),
        Operand::Regex(r) => FVal::Regex(r),
        Operand::Path(p) => {
            let start = filter_path_start(p, current, root);
            match resolve(&p.query, start, root) {
                Ok(v) => FVal::Val(v),
                Err(_) => FVal::Undefined,
            }
        }
    }
}

#[derive(PartialEq, Eq)]
enum Kind {
    Number,
    String,
    Bool,
    Null,
    Json,
}

fn kind(v: &Value) -> Kind {
    match v {
        Value::Number(_) => Kind::Number,
        Value::String(_) => Kind::String,
        Value::Bool(_) => Kind::Bool,
        Value::Null => Kind::Null,
        Value::Array(_) | Value::Object(_) => Kind::Json,
    }
}

fn compare(op: RelOp, l: &FVal, r: &FVal) -> bool {
    let (lv, rv) = (l.value(), r.value());
    let in_list = |needle: &Value, list: &Value| -> bool {
        match list {
            Value::Array(items) => items.iter().any(|e| jayway_eq(needle, e)),
            _ => false,
        }
    };
    match op {
        RelOp::Eq => matches!((lv, rv), (Some(a), Some(b)) if jayway_eq(a, b)),
        RelOp::Ne => !matches!((lv, rv), (Some(a), Some(b)) if jayway_eq(a, b)),
        RelOp::StrictEq => {
            matches!((lv, rv), (Some(a), Some(b)) if kind(a) == kind(b) && jayway_eq(a, b))
        }
        RelOp::StrictNe => {
            !matches!((lv, rv), (Some(a), Some(b)) if kind(a) == kind(b) && jayway_eq(a, b))
        }
        RelOp::Lt | RelOp::Le | RelOp::Gt | RelOp::Ge => {
            let Some(ord) = lv.zip(rv).and_then(|(a, b)| ordering(a, b)) else {
                return false;
            };
            match op {
                RelOp::Lt => ord == Ordering::Less,
                RelOp::Le => ord != Ordering::Greater,
                RelOp::Gt => ord == Ordering::Greater,
                _ => ord != Ordering::Less,
            }
        }
        RelOp::Match => {
            let (regex, input) = match (l, r) {
                (FVal::Regex(re), other) | (other, FVal::Regex(re)) => (re, other),
                _ => return false,
            };
            let text = match input.value() {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::Bool(b)) => b.to_string(),
                _ => String::new(),
            };
            !regex
                .matcher
                .query(&Value::Array(vec![Value::String(text)]))
                .is_empty()
        }
        RelOp::In => matches!((lv, rv), (Some(a), Some(list)) if in_list(a, list)),
        RelOp::Nin => !matches!((lv, rv), (Some(a), Some(list)) if in_list(a, list)),
        RelOp::Contains => match (lv, rv) {
            (Some(Value::String(a)), Some(Value::String(b))) => a.contains(b.as_str()),
            (Some(list @ Value::Array(_)), Some(b)) => in_list(b, list),
            _ => false,
        },
        RelOp::SubsetOf => match (lv, rv) {
            (Some(Value::Array(a)), Some(list @ Value::Array(_))) => {
                a.iter().all(|x| in_list(x, list))
            }
            _ => false,
        },
        RelOp::AnyOf => match (lv, rv) {
            (Some(Value::Array(a)), Some(list @ Value::Array(_))) => {
                a.iter().any(|x| in_list(x, list))
            }
            _ => false,
        },
        RelOp::NoneOf => match (lv, rv) {
            (Some(Value::Array(a)), Some(list @ Value::Array(_))) => {
                !a.iter().any(|x| in_list(x, list))
            }
            _ => false,
        },
        RelOp::All => match (lv, rv) {
            (Some(list @ Value::Array(_)), Some(Value::Array(b))) => {
                b.iter().all(|x| in_list(x, list))
            }
            (Some(list @ Value::Array(_)), Some(b)) => in_list(b, list),
            _ => false,
        },
        RelOp::Size => {
            let Some(expected) = rv.and_then(Value::as_number).and_then(Number::as_f64) else {
                return false;
            };
            let expected = expected.trunc();
            let len = match lv {
                Some(Value::String(s)) => s.encode_utf16().count(),
                Some(Value::Array(a)) => a.len(),
                Some(Value::Object(m)) => m.len(),
                _ => return false,
            };
            len as f64 == expected
        }
        RelOp::Empty => {
            let Some(Value::Bool(want)) = rv else {
                return false;
            };
            let empty = match lv {
                Some(Value::String(s)) => s.is_empty(),
                Some(Value::Array(a)) => a.is_empty(),
                Some(Value::Object(m)) => m.is_empty(),
                _ => return false,
            };
            empty == *want
        }
        RelOp::Exists => {
            let Some(Value::Bool(want)) = rv else {
                return false;
            };
            lv.is_some() == *want
        }
    }
}

fn num_cmp(a: &Number, b: &Number) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

fn ordering(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y),
        // Java compares strings by UTF-16 code units.
        (Value::String(x), Value::String(y)) => Some(x.encode_utf16().cmp(y.encode_utf16())),
        _ => None,
    }
}

/// A string as Java's BigDecimal would read it (no leading/trailing space,
/// no NaN/Infinity).
fn string_as_number(s: &str) -> Option<f64> {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    if body.is_empty()
        || !body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
    {
        return None;
    }
    s.parse::<f64>().ok()
}

/// Jayway's `==` between two values: numbers compare numerically, a number
/// on the left equals a string that reads as the same number, a string on
/// the left equals a number written the same way; arrays and objects compare
/// structurally.
fn jayway_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y) == Some(Ordering::Equal),
        (Value::Number(x), Value::String(s)) => match (x.as_f64(), string_as_number(s)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
        (Value::String(s), Value::Number(y)) => *s == y.to_string(),
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Null, Value::Null) => true,
        (Value::Array(_) | Value::Object(_), Value::Array(_) | Value::Object(_)) => {
            json_equal(a, b)
        }
        _ => false,
    }
}

/// Structural JSON equality where numbers compare by value (`1 == 1.0`).
pub(crate) fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| json_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}
