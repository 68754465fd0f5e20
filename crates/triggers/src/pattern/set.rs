//! Many patterns at once: [`PatternSet`] and its index.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::{Leaf, Matcher, ObjNode, Pattern};

/// Many compiled patterns, matched against an event at once.
///
/// Each pattern is indexed, where it can be, by a condition it cannot match
/// without: a field it requires to hold one of some exact strings or to start
/// with one of some prefixes (case-sensitive), or, for a `$or`, such a
/// condition in each branch. Among a pattern's conditions the most selective
/// is chosen, estimated by how many distinct values the field has across the
/// whole set. An event is then checked only against the patterns its own
/// values at the indexed fields select, plus the few patterns with no such
/// condition (`exists`, `numeric` or `anything-but` alone, …).
#[derive(Debug, Default)]
pub struct PatternSet {
    patterns: Vec<Pattern>,
    indexes: Vec<Index>,
    unindexed: Vec<u32>,
}

#[derive(Debug)]
struct Index {
    path: Vec<Box<str>>,
    exact: HashMap<Box<str>, Vec<u32>>,
    prefixes: HashMap<Box<str>, Vec<u32>>,
    /// The lengths (bytes) of the keys of `prefixes`, ascending.
    prefix_lens: Vec<usize>,
}

/// A necessary condition: the event has, at `path`, a string equal to (or
/// starting with, for `prefix`) one of `values`.
#[derive(Clone, Debug)]
struct Key<'a> {
    path: Vec<&'a str>,
    prefix: bool,
    values: Vec<&'a str>,
}

type Stats<'a> = HashMap<(Vec<&'a str>, bool), HashSet<&'a str>>;

/// The index keys a leaf offers: its exact strings and its prefixes, when it
/// has nothing else.
fn leaf_keys<'a>(leaf: &'a Leaf, path: &[&'a str]) -> Option<Vec<Key<'a>>> {
    let mut exact = Vec::new();
    let mut prefixes = Vec::new();
    for m in &leaf.matchers {
        match m {
            Matcher::Str(s) => exact.push(&**s),
            Matcher::Prefix(p) => prefixes.push(&**p),
            _ => return None,
        }
    }
    let mut keys = Vec::new();
    for (prefix, values) in [(false, exact), (true, prefixes)] {
        if !values.is_empty() {
            keys.push(Key {
                path: path.to_vec(),
                prefix,
                values,
            });
        }
    }
    Some(keys)
}

/// Every leaf key of `node`, `$or` branches included (for the statistics).
fn all_keys<'a>(node: &'a ObjNode, path: &mut Vec<&'a str>, out: &mut Vec<Key<'a>>) {
    for (k, f) in &node.fields {
        path.push(k);
        if let Some(l) = &f.leaf {
            out.extend(leaf_keys(l, path).into_iter().flatten());
        }
        if let Some(n) = &f.nested {
            all_keys(n, path, out);
        }
        path.pop();
    }
    for branch in node.ors.iter().flatten() {
        all_keys(branch, path, out);
    }
}

/// Estimated share of events that pass `keys`: for each key, its number of
/// values over the field's distinct values across the set.
fn cost(keys: &[Key], stats: &Stats) -> f64 {
    keys.iter()
        .map(|k| {
            let distinct = stats
                .get(&(k.path.clone(), k.prefix))
                .map_or(1, |d| d.len().max(1));
            k.values.len() as f64 / distinct as f64
        })
        .sum()
}

/// The most selective necessary condition of `node` (a disjunction of keys).
fn best_keys<'a>(
    node: &'a ObjNode,
    path: &mut Vec<&'a str>,
    stats: &Stats<'a>,
) -> Option<(f64, Vec<Key<'a>>)> {
    let mut best: Option<(f64, Vec<Key<'a>>)> = None;
    let mut consider = |c: Option<(f64, Vec<Key<'a>>)>| {
        if let Some((cost, keys)) = c
            && best.as_ref().is_none_or(|(b, _)| cost < *b)
        {
            best = Some((cost, keys));
        }
    };
    for (k, f) in &node.fields {
        path.push(k);
        if let Some(l) = &f.leaf {
            consider(leaf_keys(l, path).map(|keys| (cost(&keys, stats), keys)));
        }
        if let Some(n) = &f.nested {
            consider(best_keys(n, path, stats));
        }
        path.pop();
    }
    for branches in &node.ors {
        let mut total = 0.0;
        let mut keys = Vec::new();
        let mut all = true;
        for b in branches {
            match best_keys(b, path, stats) {
                Some((c, k)) => {
                    total += c;
                    keys.extend(k);
                }
                None => {
                    all = false;
                    break;
                }
            }
        }
        if all {
            consider(Some((total, keys)));
        }
    }
    best
}

impl PatternSet {
    /// Builds the set and its index.
    pub fn new(patterns: Vec<Pattern>) -> Self {
        let mut indexes: Vec<Index> = Vec::new();
        let mut unindexed = Vec::new();
        {
            let mut stats: Stats = HashMap::new();
            let mut keys = Vec::new();
            for p in &patterns {
                all_keys(&p.root, &mut Vec::new(), &mut keys);
            }
            for k in &keys {
                stats
                    .entry((k.path.clone(), k.prefix))
                    .or_default()
                    .extend(k.values.iter().copied());
            }
            for (i, p) in patterns.iter().enumerate() {
                let id = i as u32;
                let Some((_, keys)) = best_keys(&p.root, &mut Vec::new(), &stats) else {
                    unindexed.push(id);
                    continue;
                };
                for key in keys {
                    let pos = match indexes
                        .iter()
                        .position(|ix| ix.path.iter().map(|s| &**s).eq(key.path.iter().copied()))
                    {
                        Some(p) => p,
                        None => {
                            indexes.push(Index {
                                path: key.path.iter().map(|s| (*s).into()).collect(),
                                exact: HashMap::new(),
                                prefixes: HashMap::new(),
                                prefix_lens: Vec::new(),
                            });
                            indexes.len() - 1
                        }
                    };
                    let ix = &mut indexes[pos];
                    for v in key.values {
                        let map = if key.prefix {
                            if !ix.prefix_lens.contains(&v.len()) {
                                ix.prefix_lens.push(v.len());
                            }
                            &mut ix.prefixes
                        } else {
                            &mut ix.exact
                        };
                        let list = map.entry(v.into()).or_default();
                        if list.last() != Some(&id) {
                            list.push(id);
                        }
                    }
                }
            }
        }
        for ix in &mut indexes {
            ix.prefix_lens.sort_unstable();
        }
        Self {
            patterns,
            indexes,
            unindexed,
        }
    }

    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<&Pattern> {
        self.patterns.get(i)
    }

    /// How many patterns no index covers (they are tried on every event).
    pub fn unindexed(&self) -> usize {
        self.unindexed.len()
    }

    /// Positions (in the order given to [`PatternSet::new`]) of the patterns
    /// that match `event`, ascending.
    pub fn matching(&self, event: &Value) -> Vec<usize> {
        let mut out = Vec::new();
        self.matching_into(event, &mut out);
        out
    }

    /// Like [`PatternSet::matching`], into a reused buffer (cleared first):
    /// no allocation once `out` has grown.
    pub fn matching_into(&self, event: &Value, out: &mut Vec<usize>) {
        out.clear();
        for &i in &self.unindexed {
            if self.patterns[i as usize].matches(event) {
                out.push(i as usize);
            }
        }
        let try_list = |list: &[u32], out: &mut Vec<usize>| {
            for &i in list {
                let i = i as usize;
                if !out.contains(&i) && self.patterns[i].matches(event) {
                    out.push(i);
                }
            }
        };
        for ix in &self.indexes {
            walk_strings(event, &ix.path, &mut |s| {
                if let Some(list) = ix.exact.get(s) {
                    try_list(list, out);
                }
                for &n in &ix.prefix_lens {
                    if n > s.len() {
                        break;
                    }
                    if let Some(head) = s.get(..n)
                        && let Some(list) = ix.prefixes.get(head)
                    {
                        try_list(list, out);
                    }
                }
            });
        }
        out.sort_unstable();
    }
}

/// Calls `f` on each string leaf at `path` in `v` (through arrays), the
/// path's segments spelled out by nested keys or by dotted ones as
/// `Pattern::matches` reads them (`{"a": {"b": "x"}}` and `{"a.b": "x"}`
/// both hold `x` at `a`, `b`).
fn walk_strings(v: &Value, path: &[Box<str>], f: &mut impl FnMut(&str)) {
    match v {
        Value::Array(items) => {
            for i in items {
                walk_strings(i, path, f);
            }
        }
        Value::Object(map) => {
            let Some((first, rest)) = path.split_first() else {
                return;
            };
            if let Some(next) = map.get(&**first) {
                walk_strings(next, rest, f);
            }
            if rest.is_empty() {
                return;
            }
            for (key, next) in map {
                if let Some(n) = dotted_prefix(key, path) {
                    walk_strings(next, &path[n..], f);
                }
            }
        }
        Value::String(s) if path.is_empty() => f(s),
        _ => {}
    }
}

/// How many (two or more) segments of `path` the dotted `key` spells out.
fn dotted_prefix(key: &str, path: &[Box<str>]) -> Option<usize> {
    let mut rest = key.as_bytes();
    for (i, seg) in path.iter().enumerate() {
        rest = rest.strip_prefix(seg.as_bytes())?;
        if rest.is_empty() {
            return (i > 0).then_some(i + 1);
        }
        rest = rest.strip_prefix(b".")?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_index_picks_selective_path() {
        let ps: Vec<Pattern> = (0..10)
            .map(|i| {
                Pattern::parse(&json!({"source": ["s"], "detail-type": [format!("t{i}")]})).unwrap()
            })
            .collect();
        let set = PatternSet::new(ps);
        assert_eq!(set.indexes.len(), 1);
        assert_eq!(&*set.indexes[0].path[0], "detail-type");
        assert_eq!(
            set.matching(&json!({"source": "s", "detail-type": "t3"})),
            vec![3]
        );
    }

    #[test]
    fn index_finds_strings_under_dotted_keys() {
        let path: Vec<Box<str>> = ["a", "b", "c"].into_iter().map(Into::into).collect();
        let mut found = Vec::new();
        let event = json!({"a": {"b": {"c": "1"}, "b.c": ["2"]}, "a.b": {"c": "3"}, "a.b.c": "4", "a.bc": "5"});
        walk_strings(&event, &path, &mut |s| found.push(s.to_string()));
        found.sort();
        assert_eq!(found, ["1", "2", "3", "4"]);
        assert_eq!(dotted_prefix("a.b", &path), Some(2));
        assert_eq!(dotted_prefix("a", &path), None);
        assert_eq!(dotted_prefix("a.b.c.d", &path), None);
    }
}
