//! Matching an event against a compiled pattern.
//!
//! The event is walked along the pattern's tree. Because EventBridge names
//! fields by their dotted paths (see the module docs of `pattern`), the
//! values of the field `b` of the pattern object at `a` can come from
//! several places of the event: the key `b` of the object at the key `a`,
//! the key `a.b` of the object above, and so on. The places a pattern
//! object draws its fields from are its *sources*: a linked list of event
//! objects kept on the stack, each with the part of the object's dotted path
//! its keys still have to spell out. A plain event (no dots in its keys)
//! gives every pattern object exactly one source, the event object at its
//! path, and costs one key lookup per pattern field, plus, for a nested
//! pattern field, one look over the keys of the object it descends from
//! for a dotted spelling of the field.
//!
//! Array consistency is event-ruler's: two values that come from different
//! elements of one event array never match together
//! (`rulesForJSONEvent`, aws/event-ruler README.md, "JSON Array Matching").
//! A pattern object reached through an array is matched against one element
//! at a time; values from other sources (other arrays, dotted keys higher
//! up) combine with any element.

use serde_json::{Map, Value};

use super::values::{ends_with_ignore_case, eq_ignore_case, starts_with_ignore_case};
use super::{AnythingBut, Leaf, Matcher, ObjNode};

impl Matcher {
    /// Does this alternative match one leaf value of the event?
    fn matches(&self, v: &Value) -> bool {
        match self {
            Matcher::Str(s) => v.as_str() == Some(s),
            Matcher::Num(n) => v.as_f64() == Some(*n),
            Matcher::Bool(b) => v.as_bool() == Some(*b),
            Matcher::Null => v.is_null(),
            Matcher::Prefix(p) => v.as_str().is_some_and(|s| s.starts_with(&**p)),
            Matcher::PrefixIgnoreCase(p) => {
                v.as_str().is_some_and(|s| starts_with_ignore_case(s, p))
            }
            Matcher::Suffix(p) => v.as_str().is_some_and(|s| s.ends_with(&**p)),
            Matcher::SuffixIgnoreCase(p) => v.as_str().is_some_and(|s| ends_with_ignore_case(s, p)),
            Matcher::EqualsIgnoreCase(p) => v.as_str().is_some_and(|s| eq_ignore_case(s, p)),
            Matcher::Wildcard(w) => v.as_str().is_some_and(|s| w.matches(s)),
            Matcher::Numeric(r) => v.is_number() && v.as_f64().is_some_and(|x| r.contains(x)),
            Matcher::Exists(b) => *b,
            Matcher::Cidr(c) => v.as_str().is_some_and(|s| c.contains(s)),
            Matcher::AnythingBut(a) => a.matches(v),
        }
    }
}

impl AnythingBut {
    /// Does `anything-but` match one leaf value of the event?
    ///
    /// event-ruler assumes an `anything-but` matches every value of the field
    /// and only records a failure when the value, as its byte machine reads
    /// it, hits one of the excluded values (aws/event-ruler
    /// src/main/software/amazon/event/ruler/ByteMachine.java, `doTransitionOn`
    /// and `addSuffixMatch`: "For anything-but patterns, we assume they've
    /// matched unless we can prove they didn't"). The machine reads a string
    /// in quotes and a number, `true`, `false` or `null` as its bare JSON
    /// text, and the excluded values are stored quoted (`"init` for a
    /// prefix, `.png"` for a suffix, `"x"` for the others; JsonRuleCompiler.java
    /// `generateValueBasedOnMatchType`). So:
    ///
    /// - a string matches unless it is (starts with, ends with, equals ignoring
    ///   case, matches) one of the values;
    /// - a number, `true`, `false` or `null` matches every string form — no
    ///   unquoted text starts or ends with a quote — and matches a number
    ///   list unless it is one of the numbers (compared as numbers: both
    ///   sides are `ComparableNumber`s, and the failure needs
    ///   `anythingBut.isNumeric() == fieldValueIsNumeric`);
    /// - a field with no leaf value (missing, an object, an empty array) is
    ///   never handed to the byte machine, so `anything-but` does not match
    ///   it: see `Leaf::matches_in`.
    fn matches(&self, v: &Value) -> bool {
        let Some(s) = v.as_str() else {
            return match self {
                AnythingBut::Numbers(list) => match v.as_f64() {
                    Some(x) if v.is_number() => !list.contains(&x),
                    _ => true,
                },
                _ => true,
            };
        };
        match self {
            AnythingBut::Strings(list) => !list.iter().any(|x| &**x == s),
            AnythingBut::Numbers(_) => true,
            AnythingBut::Prefix(list) => !list.iter().any(|p| s.starts_with(&**p)),
            AnythingBut::Suffix(list) => !list.iter().any(|p| s.ends_with(&**p)),
            AnythingBut::EqualsIgnoreCase(list) => !list.iter().any(|x| eq_ignore_case(s, x)),
            AnythingBut::Wildcard(list) => !list.iter().any(|w| w.matches(s)),
        }
    }
}

/// Calls `f` on every leaf value of `v` (a scalar is its own leaf; arrays are
/// flattened; objects have none) until `f` returns true.
fn any_leaf(v: &Value, f: &mut impl FnMut(&Value) -> bool) -> bool {
    match v {
        Value::Array(items) => items.iter().any(|i| any_leaf(i, f)),
        Value::Object(_) => false,
        scalar => f(scalar),
    }
}

/// One event object the fields of a pattern object are looked up in.
///
/// Seen from a pattern object whose `path` is `P` (`.a.b` for the object
/// `a.b`), the key `k` of `map` names the field `k` when `rel` is past the
/// end of `P` (`map` is the event object at `P` itself), and otherwise the
/// field `R.k` where `R` is `P` from byte `rel` on: an event object higher
/// up still has part of the name to spell out in its keys. Seen from `.a.b`,
/// the top of the event `{"a.b.c": 1}` has `R` = `a.b`, and its key `a.b.c`
/// names the field `c`. `R` can be empty (the name's first segment is `""`:
/// seen from `.`, the key `.c` names `c`).
#[derive(Clone, Copy)]
struct Src<'a> {
    map: &'a Map<String, Value>,
    rel: usize,
    next: Option<&'a Src<'a>>,
}

/// Is `key` the name `rel.seg` (`seg` when there is no `rel`; `rel` may be
/// empty, for an empty first segment: `.seg`)?
fn names(key: &str, rel: Option<&str>, seg: &str) -> bool {
    let Some(rel) = rel else {
        return key == seg;
    };
    let (k, r, s) = (key.as_bytes(), rel.as_bytes(), seg.as_bytes());
    k.len() == r.len() + 1 + s.len()
        && k.starts_with(r)
        && k.get(r.len()) == Some(&b'.')
        && k.ends_with(s)
}

/// Does `key` name a field below `rel.seg` (start with `rel.seg.`)?
fn names_below(key: &str, rel: Option<&str>, seg: &str) -> bool {
    let (k, s) = (key.as_bytes(), seg.as_bytes());
    let Some(rel) = rel else {
        return k.len() > s.len() && k.get(s.len()) == Some(&b'.') && k.starts_with(s);
    };
    let r = rel.as_bytes();
    let head = r.len() + 1 + s.len();
    k.len() > head
        && k.get(head) == Some(&b'.')
        && k.starts_with(r)
        && k.get(r.len()) == Some(&b'.')
        && k.get(r.len() + 1..head) == Some(s)
}

impl<'a> Src<'a> {
    /// The part of the name the keys of `map` still have to spell out
    /// before the field names of the pattern object at `path`: `None` when
    /// `map` is the event object at `path` itself.
    fn rel<'p>(&self, path: &'p str) -> Option<&'p str> {
        path.get(self.rel..)
    }

    /// The value of the field `seg` of the pattern object at `path`.
    fn exact(&self, path: &str, seg: &str) -> Option<&'a Value> {
        match self.rel(path) {
            None => self.map.get(seg),
            rel => self
                .map
                .iter()
                .find(|(k, _)| names(k, rel, seg))
                .map(|(_, v)| v),
        }
    }

    /// Does this object hold fields below `seg` of the pattern object at
    /// `path` in dotted keys?
    fn has_below(&self, path: &str, seg: &str) -> bool {
        let rel = self.rel(path);
        self.map.keys().any(|k| names_below(k, rel, seg))
    }
}

fn sources<'a>(mut s: Option<&'a Src<'a>>) -> impl Iterator<Item = &'a Src<'a>> {
    std::iter::from_fn(move || {
        let cur = s?;
        s = cur.next;
        Some(cur)
    })
}

impl Leaf {
    /// Does the field `seg` of the pattern object at `path` match, its values
    /// taken from `srcs`? A field with no leaf value anywhere matches only
    /// `{"exists": false}`.
    fn matches_in(&self, path: &str, seg: &str, srcs: Option<&Src>) -> bool {
        let mut any = false;
        for src in sources(srcs) {
            if let Some(v) = src.exact(path, seg) {
                let hit = any_leaf(v, &mut |leaf| {
                    any = true;
                    self.matchers.iter().any(|m| m.matches(leaf))
                });
                if hit {
                    return true;
                }
            }
        }
        !any && self.exists_false
    }
}

impl ObjNode {
    /// Does the event value `v` (the whole event for the root) match?
    pub(super) fn matches_value(&self, v: &Value) -> bool {
        match v {
            Value::Object(map) => {
                // The root's path is empty, so the event's keys are the
                // names from the first byte after the leading dot on.
                let src = Src {
                    map,
                    rel: 1,
                    next: None,
                };
                self.matches_in(Some(&src))
            }
            Value::Array(items) if !items.is_empty() => items.iter().any(|i| self.matches_value(i)),
            // A scalar or an empty array has no fields below it.
            _ => self.matches_in(None),
        }
    }

    /// Do this object's fields and `$or`s match, their values taken from
    /// `srcs` (none: nothing below this path)?
    fn matches_in(&self, srcs: Option<&Src>) -> bool {
        self.fields.iter().all(|(seg, f)| {
            f.leaf
                .as_ref()
                .is_none_or(|l| l.matches_in(&self.path, seg, srcs))
                && f.nested
                    .as_ref()
                    .is_none_or(|n| n.descend(&self.path, seg, srcs, None))
        }) && self
            .ors
            .iter()
            .all(|branches| branches.iter().any(|b| b.matches_in(srcs)))
    }

    /// Matches this object, the field `seg` of the pattern object at
    /// `parent`, gathering its sources from the parent's sources `rest`
    /// into `acc`: a source with dotted keys below `seg` stays a source, and
    /// the value at `seg` becomes one (one element at a time for an array).
    fn descend(&self, parent: &str, seg: &str, rest: Option<&Src>, acc: Option<&Src>) -> bool {
        let Some(src) = rest else {
            return self.matches_in(acc);
        };
        let carried;
        let acc = if src.has_below(parent, seg) {
            carried = Src {
                map: src.map,
                rel: src.rel,
                next: acc,
            };
            Some(&carried)
        } else {
            acc
        };
        match src.exact(parent, seg) {
            Some(Value::Object(map)) => {
                let here = Src {
                    map,
                    rel: self.path.len() + 1,
                    next: acc,
                };
                self.descend(parent, seg, src.next, Some(&here))
            }
            Some(Value::Array(items)) => self.descend_array(parent, seg, items, src.next, acc),
            _ => self.descend(parent, seg, src.next, acc),
        }
    }

    /// `descend` for an array at `seg`: each object element in turn (nested
    /// arrays flattened); a scalar element, or an empty array, offers no
    /// fields, as if the value were missing.
    fn descend_array(
        &self,
        parent: &str,
        seg: &str,
        items: &[Value],
        rest: Option<&Src>,
        acc: Option<&Src>,
    ) -> bool {
        if items.is_empty() {
            return self.descend(parent, seg, rest, acc);
        }
        let mut tried_without = false;
        items.iter().any(|item| match item {
            Value::Object(map) => {
                let here = Src {
                    map,
                    rel: self.path.len() + 1,
                    next: acc,
                };
                self.descend(parent, seg, rest, Some(&here))
            }
            Value::Array(inner) => self.descend_array(parent, seg, inner, rest, acc),
            _ if tried_without => false,
            _ => {
                tried_without = true;
                self.descend(parent, seg, rest, acc)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_names() {
        assert!(names("b", None, "b"));
        assert!(!names("b.c", None, "b"));
        assert!(names("a.b", Some("a"), "b"));
        assert!(names("x.y.b", Some("x.y"), "b"));
        assert!(!names("a.bb", Some("a"), "b"));
        assert!(!names("ab.b", Some("a"), "b"));
        assert!(names(".b", Some(""), "b"));
        assert!(!names("b", Some(""), "b"));
        assert!(names(".", Some(""), ""));
        assert!(names_below("b.c", None, "b"));
        assert!(!names_below("b", None, "b"));
        assert!(!names_below("bc.d", None, "b"));
        assert!(names_below("a.b.c", Some("a"), "b"));
        assert!(!names_below("a.b", Some("a"), "b"));
        assert!(!names_below("a.bc.d", Some("a"), "b"));
        assert!(names_below("é.b.c", Some("é"), "b"));
        assert!(names_below(".b.c", Some(""), "b"));
        assert!(!names_below("b.c", Some(""), "b"));
    }
}
