//! Static types of the data that flows through a state machine, and how
//! JSON Schemas become them.
//!
//! A [`Ty`] is the set of JSON values a point of the graph may hold: a
//! union of kinds (null, boolean, number, string, array, object), or
//! unknown ([`Ty::any`]: anything, nothing is checked below it). Objects
//! know their fields, each always or only maybe present, and whether other
//! fields may appear (a schema's `additionalProperties`). Where edges meet,
//! types [`Ty::join`]: a field present on one edge only becomes maybe
//! present. Strings may carry the set of values they can take (a schema's
//! `enum`, the errors a Catch can receive), so a Choice that compares with
//! a value outside the set is found.
//!
//! [`infer`] follows the data through the graph and reports what does not
//! fit; [`schema`] reads JSON Schema documents into types.

pub mod infer;
pub mod schema;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::Value;

use crate::path::Step;

/// At most this many string values are tracked; more is any string.
const MAX_ENUM: usize = 64;

/// A set of JSON values. Cheap to clone: objects, arrays and string sets
/// are shared (`Arc`) and copied only where a state writes into them, so
/// following a large input through thousands of states costs little.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ty {
    /// Unknown: any value, and nothing is checked below it.
    pub any: bool,
    pub null: bool,
    pub boolean: bool,
    pub number: bool,
    /// `Some(None)`: any string; `Some(Some(set))`: one of these.
    pub string: Option<Option<Arc<BTreeSet<String>>>>,
    pub array: Option<Arc<Arr>>,
    pub object: Option<Arc<Obj>>,
}

/// An array's items: one type for all, and per position where known
/// (a Parallel state's result, a literal array).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Arr {
    pub items: Ty,
    pub tuple: Option<Vec<Ty>>,
}

/// A field name, shared by every type that has the field.
pub type Key = Arc<str>;

/// An object's fields.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Obj {
    /// Field name → (type, always present).
    pub fields: BTreeMap<Key, (Ty, bool)>,
    /// The type of any other field (`additionalProperties`); `None`: no
    /// other field.
    pub rest: Option<Box<Ty>>,
}

/// What reading a field or an index gives.
#[derive(Debug, Clone, PartialEq)]
pub enum Read {
    /// The value's type, and whether it is always there.
    Found(Ty, bool),
    /// No type here has this field (the fields it does have, for a
    /// suggestion).
    Missing(Vec<String>),
}

impl Ty {
    /// Nothing (no value reaches here yet).
    pub fn never() -> Ty {
        Ty::default()
    }

    /// Unknown.
    pub fn any() -> Ty {
        Ty {
            any: true,
            ..Ty::default()
        }
    }

    pub fn is_never(&self) -> bool {
        *self == Ty::default()
    }

    pub fn string() -> Ty {
        Ty {
            string: Some(None),
            ..Ty::default()
        }
    }

    pub fn string_of(values: impl IntoIterator<Item = String>) -> Ty {
        let set: BTreeSet<String> = values.into_iter().collect();
        Ty {
            string: Some((set.len() <= MAX_ENUM).then(|| Arc::new(set))),
            ..Ty::default()
        }
    }

    pub fn number() -> Ty {
        Ty {
            number: true,
            ..Ty::default()
        }
    }

    pub fn boolean() -> Ty {
        Ty {
            boolean: true,
            ..Ty::default()
        }
    }

    pub fn array(items: Ty) -> Ty {
        Ty {
            array: Some(Arc::new(Arr { items, tuple: None })),
            ..Ty::default()
        }
    }

    pub fn tuple(items: Vec<Ty>) -> Ty {
        let joined = items.iter().fold(Ty::never(), |a, t| a.join(t));
        Ty {
            array: Some(Arc::new(Arr {
                items: joined,
                tuple: Some(items),
            })),
            ..Ty::default()
        }
    }

    pub fn object(obj: Obj) -> Ty {
        Ty {
            object: Some(Arc::new(obj)),
            ..Ty::default()
        }
    }

    /// An object with exactly these fields, all present.
    pub fn record(fields: impl IntoIterator<Item = (String, Ty)>) -> Ty {
        Ty::object(Obj {
            fields: fields
                .into_iter()
                .map(|(k, t)| (Key::from(k), (t, true)))
                .collect(),
            rest: None,
        })
    }

    /// The type of one JSON value.
    pub fn of_value(v: &Value) -> Ty {
        match v {
            Value::Null => Ty {
                null: true,
                ..Ty::default()
            },
            Value::Bool(_) => Ty::boolean(),
            Value::Number(_) => Ty::number(),
            Value::String(s) => Ty::string_of([s.clone()]),
            Value::Array(items) => Ty::tuple(items.iter().map(Ty::of_value).collect()),
            Value::Object(m) => Ty::record(m.iter().map(|(k, v)| (k.clone(), Ty::of_value(v)))),
        }
    }

    /// The values of either.
    pub fn join(&self, other: &Ty) -> Ty {
        if self.is_never() {
            return other.clone();
        }
        if other.is_never() {
            return self.clone();
        }
        if self.any || other.any {
            return Ty::any();
        }
        if self == other {
            return self.clone();
        }
        Ty {
            any: false,
            null: self.null || other.null,
            boolean: self.boolean || other.boolean,
            number: self.number || other.number,
            string: match (&self.string, &other.string) {
                (None, s) | (s, None) => s.clone(),
                (Some(Some(a)), Some(Some(b))) if Arc::ptr_eq(a, b) => Some(Some(a.clone())),
                (Some(Some(a)), Some(Some(b))) => {
                    let u: BTreeSet<String> = a.union(b).cloned().collect();
                    Some((u.len() <= MAX_ENUM).then(|| Arc::new(u)))
                }
                _ => Some(None),
            },
            array: match (&self.array, &other.array) {
                (None, a) | (a, None) => a.clone(),
                (Some(a), Some(b)) if Arc::ptr_eq(a, b) => Some(a.clone()),
                (Some(a), Some(b)) => Some(Arc::new(Arr {
                    items: a.items.join(&b.items),
                    tuple: match (&a.tuple, &b.tuple) {
                        (Some(x), Some(y)) if x.len() == y.len() => {
                            Some(x.iter().zip(y).map(|(p, q)| p.join(q)).collect())
                        }
                        _ => None,
                    },
                })),
            },
            object: match (&self.object, &other.object) {
                (None, o) | (o, None) => o.clone(),
                (Some(a), Some(b)) if Arc::ptr_eq(a, b) => Some(a.clone()),
                (Some(a), Some(b)) => Some(Arc::new(a.join(b))),
            },
        }
    }

    /// Is every value of this type also one of `other`'s (so joining it
    /// into `other` changes nothing)? Checked without building the join.
    pub fn leq(&self, other: &Ty) -> bool {
        if other.any || self.is_never() {
            return true;
        }
        if self.any {
            return false;
        }
        if (self.null && !other.null)
            || (self.boolean && !other.boolean)
            || (self.number && !other.number)
        {
            return false;
        }
        let strings = match (&self.string, &other.string) {
            (None, _) | (Some(_), Some(None)) => true,
            (Some(_), None) | (Some(None), Some(Some(_))) => false,
            (Some(Some(a)), Some(Some(b))) => Arc::ptr_eq(a, b) || a.is_subset(b),
        };
        let arrays = match (&self.array, &other.array) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => {
                Arc::ptr_eq(a, b)
                    || (a.items.leq(&b.items)
                        && match (&a.tuple, &b.tuple) {
                            (_, None) => true,
                            (None, Some(_)) => false,
                            (Some(x), Some(y)) => {
                                x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.leq(q))
                            }
                        })
            }
        };
        let objects = match (&self.object, &other.object) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a.leq(b),
        };
        strings && arrays && objects
    }

    /// Read one step (a field or an index) of a value of this type.
    /// `None`: unknown, nothing to check below.
    pub fn read(&self, step: &Step) -> Option<Read> {
        if self.any {
            return None;
        }
        match step {
            Step::Field(name) => {
                let obj = self.object.as_ref()?;
                let other_kinds = self.null
                    || self.boolean
                    || self.number
                    || self.string.is_some()
                    || self.array.is_some();
                match obj.fields.get(name.as_str()) {
                    Some((t, always)) => Some(Read::Found(t.clone(), *always && !other_kinds)),
                    None => match &obj.rest {
                        Some(r) => Some(Read::Found((**r).clone(), false)),
                        None => Some(Read::Missing(
                            obj.fields.keys().map(|k| k.to_string()).collect(),
                        )),
                    },
                }
            }
            Step::Index(i) => {
                let arr = self.array.as_ref()?;
                let t = match &arr.tuple {
                    Some(items) => items.get(*i).cloned().unwrap_or_else(Ty::never),
                    None => arr.items.clone(),
                };
                if t.is_never() {
                    return None;
                }
                // An index may be out of range: never "always" by itself.
                Some(Read::Found(
                    t,
                    arr.tuple.as_ref().is_some_and(|t| *i < t.len()),
                ))
            }
        }
    }

    /// This type with the value at `steps` replaced by `value` (a
    /// ResultPath): objects are made on the way as needed.
    pub fn write(&self, steps: &[Step], value: Ty) -> Ty {
        let Some((first, rest)) = steps.split_first() else {
            return value;
        };
        match first {
            Step::Field(name) => {
                let mut obj = match (&self.object, self.any) {
                    (Some(o), _) => (**o).clone(),
                    // Writing into an unknown value: the others stay unknown.
                    (None, true) => Obj {
                        fields: BTreeMap::new(),
                        rest: Some(Box::new(Ty::any())),
                    },
                    (None, false) => Obj::default(),
                };
                let inner = obj
                    .fields
                    .get(name.as_str())
                    .map(|(t, _)| t.clone())
                    .or_else(|| obj.rest.as_ref().map(|r| (**r).clone()))
                    .unwrap_or_else(Ty::never);
                obj.fields
                    .insert(Key::from(name.as_str()), (inner.write(rest, value), true));
                Ty::object(obj)
            }
            Step::Index(i) => match &self.array {
                Some(arr) => {
                    let mut arr = (**arr).clone();
                    if let Some(items) = &mut arr.tuple
                        && let Some(slot) = items.get_mut(*i)
                    {
                        *slot = slot.write(rest, value.clone());
                    }
                    arr.items = arr.items.join(&arr.items.write(rest, value));
                    Ty {
                        array: Some(Arc::new(arr)),
                        ..Ty::default()
                    }
                }
                None => Ty::any(),
            },
        }
    }

    /// This type where the value at `steps` is known to be present
    /// (`true`) or absent (`false`), as a Choice rule decides.
    pub fn refine(&self, steps: &[Step], present: bool) -> Ty {
        let Some((first, rest)) = steps.split_first() else {
            return self.clone();
        };
        let (Step::Field(name), Some(obj)) = (first, &self.object) else {
            return self.clone();
        };
        if self.any {
            return self.clone();
        }
        // Already known: nothing to copy.
        if present
            && let Some((t, true)) = obj.fields.get(name.as_str())
            && (rest.is_empty() || t.refine(rest, true) == *t)
        {
            return Ty {
                object: self.object.clone(),
                ..Ty::default()
            };
        }
        let mut obj = (**obj).clone();
        match obj.fields.get_mut(name.as_str()) {
            Some((t, always)) => {
                if rest.is_empty() {
                    if present {
                        *always = true;
                    } else {
                        obj.fields.remove(name.as_str());
                    }
                } else if present {
                    *t = t.refine(rest, true);
                    *always = true;
                }
            }
            None if present => {
                if let Some(r) = &obj.rest {
                    let t = (**r).refine(rest, true);
                    obj.fields.insert(Key::from(name.as_str()), (t, true));
                }
            }
            None => {}
        }
        // Present: the value was an object; absent: it may still be another kind.
        if present {
            Ty::object(obj)
        } else {
            Ty {
                object: Some(Arc::new(obj)),
                ..self.clone()
            }
        }
    }

    /// Can a value of this type be of the JSON type `name` (a schema's
    /// `type`)? Unknown types can be anything.
    pub fn may_be(&self, name: &str) -> bool {
        self.any
            || match name {
                "null" => self.null,
                "boolean" => self.boolean,
                "number" | "integer" => self.number,
                "string" => self.string.is_some(),
                "array" => self.array.is_some(),
                "object" => self.object.is_some(),
                _ => true,
            }
    }

    /// The string values this type is limited to, if it is only strings of
    /// a known set.
    pub fn string_values(&self) -> Option<&BTreeSet<String>> {
        if self.any
            || self.null
            || self.boolean
            || self.number
            || self.array.is_some()
            || self.object.is_some()
        {
            return None;
        }
        self.string.as_ref()?.as_deref()
    }

    /// A short description: the top-level fields of an object (`?` marks
    /// the maybe present), else the kinds.
    pub fn shape(&self) -> String {
        if self.any {
            return "any".into();
        }
        if self.is_never() {
            return "nothing".into();
        }
        let mut kinds: Vec<String> = Vec::new();
        if let Some(o) = &self.object {
            let mut s = String::from("{");
            for (i, (k, (_, always))) in o.fields.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                s.push_str(k);
                if !always {
                    s.push('?');
                }
            }
            if o.rest.is_some() {
                s.push_str(if o.fields.is_empty() { "…" } else { ", …" });
            }
            s.push('}');
            kinds.push(s);
        }
        if let Some(a) = &self.array {
            match &a.tuple {
                Some(t) => kinds.push(format!("array[{}]", t.len())),
                None => kinds.push("array".into()),
            }
        }
        if let Some(s) = &self.string {
            match s {
                Some(set) if set.len() <= 3 => {
                    let mut t = String::new();
                    for (i, v) in set.iter().enumerate() {
                        if i > 0 {
                            t.push('|');
                        }
                        let _ = write!(t, "\"{v}\"");
                    }
                    kinds.push(t);
                }
                _ => kinds.push("string".into()),
            }
        }
        if self.number {
            kinds.push("number".into());
        }
        if self.boolean {
            kinds.push("boolean".into());
        }
        if self.null {
            kinds.push("null".into());
        }
        kinds.join(" | ")
    }
}

impl Obj {
    fn leq(&self, other: &Obj) -> bool {
        for (k, (t, always)) in &self.fields {
            match other.fields.get(k) {
                Some((u, must)) => {
                    if (*must && !always) || !t.leq(u) {
                        return false;
                    }
                }
                None => match &other.rest {
                    Some(r) if t.leq(r) => {}
                    _ => return false,
                },
            }
        }
        for (k, (_, must)) in &other.fields {
            if *must && !self.fields.contains_key(k) {
                return false;
            }
        }
        match (&self.rest, &other.rest) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(r), Some(q)) => r.leq(q),
        }
    }

    fn join(&self, other: &Obj) -> Obj {
        let mut fields = BTreeMap::new();
        for (k, (t, always)) in &self.fields {
            match other.fields.get(k) {
                Some((u, a2)) => {
                    fields.insert(k.clone(), (t.join(u), *always && *a2));
                }
                None => {
                    let t = match &other.rest {
                        Some(r) => t.join(r),
                        None => t.clone(),
                    };
                    fields.insert(k.clone(), (t, false));
                }
            }
        }
        for (k, (t, _)) in &other.fields {
            if !self.fields.contains_key(k) {
                let t = match &self.rest {
                    Some(r) => t.join(r),
                    None => t.clone(),
                };
                fields.insert(k.clone(), (t, false));
            }
        }
        let rest = match (&self.rest, &other.rest) {
            (None, None) => None,
            (Some(r), None) | (None, Some(r)) => Some(r.clone()),
            (Some(a), Some(b)) => Some(Box::new(a.join(b))),
        };
        Obj { fields, rest }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(t: &Ty, name: &str) -> Option<Read> {
        t.read(&Step::Field(name.into()))
    }

    #[test]
    fn joins_make_one_sided_fields_maybe_present() {
        let a = Ty::of_value(&json!({"x": 1, "y": "a"}));
        let b = Ty::of_value(&json!({"x": 2, "z": true}));
        let j = a.join(&b);
        assert_eq!(field(&j, "x"), Some(Read::Found(Ty::number(), true)));
        assert!(matches!(field(&j, "y"), Some(Read::Found(_, false))));
        assert!(matches!(field(&j, "w"), Some(Read::Missing(f)) if f.len() == 3));
        assert_eq!(j.shape(), "{x, y?, z?}");
        assert!(a.leq(&j) && b.leq(&j) && !j.leq(&a));
        assert!(j.leq(&j.join(&a)) && j.join(&a).leq(&j));
        assert!(j.join(&Ty::any()).any);
    }

    #[test]
    fn writes_and_refinements() {
        let t = Ty::of_value(&json!({"a": {"b": 1}}));
        let w = t.write(
            &[Step::Field("a".into()), Step::Field("c".into())],
            Ty::string(),
        );
        assert_eq!(w.shape(), "{a}");
        let a = match field(&w, "a") {
            Some(Read::Found(t, true)) => t,
            other => panic!("{other:?}"),
        };
        assert_eq!(a.shape(), "{b, c}");
        let maybe = t.join(&Ty::of_value(&json!({})));
        let sure = maybe.refine(&[Step::Field("a".into())], true);
        assert!(matches!(field(&sure, "a"), Some(Read::Found(_, true))));
        let gone = maybe.refine(&[Step::Field("a".into())], false);
        assert!(matches!(field(&gone, "a"), Some(Read::Missing(_))));
        assert_eq!(
            Ty::string_of(["b".into(), "a".into()])
                .string_values()
                .map(|s| s.len()),
            Some(2)
        );
    }
}
