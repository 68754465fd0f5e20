//! Item shapes: attributes, conditions, write operations, chunked
//! record bodies and the keys of every record.

use super::*;

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(super) fn str_attr<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v),
        _ => None,
    }
}

pub(super) fn num_attr(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

pub(super) fn u64_attr(item: &Item, name: &str) -> Option<u64> {
    num_attr(item, name).and_then(|v| u64::try_from(v).ok())
}

pub(super) fn key(pk: &str, sk: &str) -> Item {
    HashMap::from([("PK".to_string(), s(pk)), ("SK".to_string(), s(sk))])
}

pub(super) fn non_empty(values: Item) -> Option<Item> {
    (!values.is_empty()).then_some(values)
}

/// An error and its sources, `: `-separated (without Debug dumps).
pub(super) fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = e.source();
    }
    out
}

pub(super) fn mentions_size(message: &str) -> bool {
    let m = message.to_lowercase();
    m.contains("size") || m.contains("too large") || m.contains("length")
}

/// The size an operation counts towards a transaction's limit.
pub(super) fn op_size(op: &Op) -> usize {
    match op {
        Op::Put { item, .. } => item_size(item),
        Op::Delete { key, .. } | Op::Check { key, .. } => item_size(key),
    }
}

/// DynamoDB's item size: attribute names plus values.
pub(super) fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

pub(super) fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.len().div_ceil(2) + 1,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
        AttributeValue::Ss(l) => l.iter().map(String::len).sum(),
        AttributeValue::Ns(l) => l.iter().map(|n| n.len()).sum(),
        AttributeValue::Bs(l) => l.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
    }
}

/// A condition expression with its names and values.
pub(super) struct Cond {
    pub(super) expr: String,
    pub(super) names: HashMap<String, String>,
    pub(super) values: Item,
}

impl Cond {
    pub(super) fn new(expr: &str) -> Cond {
        // DynamoDB refuses names and values an expression does not use.
        let mut names = HashMap::new();
        if expr.contains("#pk") {
            names.insert("#pk".to_string(), "PK".to_string());
        }
        Cond {
            expr: expr.to_string(),
            names,
            values: HashMap::new(),
        }
    }

    pub(super) fn name(mut self, placeholder: &str, attr: &str) -> Cond {
        self.names.insert(placeholder.into(), attr.into());
        self
    }

    pub(super) fn value(mut self, placeholder: &str, v: AttributeValue) -> Cond {
        self.values.insert(placeholder.into(), v);
        self
    }
}

/// `attribute_not_exists(PK)`: the item is new.
pub(super) fn is_new() -> Cond {
    Cond::new("attribute_not_exists(#pk)")
}

pub(super) enum Op {
    Put { item: Item, cond: Option<Cond> },
    Delete { key: Item, cond: Option<Cond> },
    Check { key: Item, cond: Cond },
}

pub(super) fn put(item: Item, cond: Option<Cond>) -> Op {
    Op::Put { item, cond }
}

/// Per operation of a refused write: whether its condition failed, and
/// the item as it was (when DynamoDB returned it).
pub(super) struct Reason {
    pub(super) failed: bool,
    pub(super) old: Option<Item>,
}

pub(super) enum WriteError {
    Refused(Vec<Reason>),
    Store(StoreError),
}

impl From<StoreError> for WriteError {
    fn from(e: StoreError) -> Self {
        WriteError::Store(e)
    }
}

impl WriteError {
    /// Whether operation `i`'s condition failed.
    pub(super) fn failed(&self, i: usize) -> bool {
        matches!(self, WriteError::Refused(r) if r.get(i).is_some_and(|r| r.failed))
    }

    pub(super) fn old(&self, i: usize) -> Option<&Item> {
        match self {
            WriteError::Refused(r) => r.get(i).and_then(|r| r.old.as_ref()),
            WriteError::Store(_) => None,
        }
    }

    /// A refusal as `Conflict(message)`; other errors as they are.
    pub(super) fn conflict(self, message: impl FnOnce() -> String) -> StoreError {
        match self {
            WriteError::Refused(_) => StoreError::Conflict(message()),
            WriteError::Store(e) => e,
        }
    }
}

/// A record's items: the main item (`pk`, `sk`, `attrs`, and `body` when it
/// fits) and, for a body above [`INLINE_MAX`], chunk items `sk#CHUNK#001`….
/// The main item's `chunks` says how many.
pub(super) fn record_items(pk: &str, sk: &str, body: &str, mut attrs: Item) -> Vec<Item> {
    attrs.insert("PK".into(), s(pk));
    attrs.insert("SK".into(), s(sk));
    if body.len() <= INLINE_MAX {
        attrs.insert("body".into(), s(body));
        attrs.insert("chunks".into(), n(0));
        return vec![attrs];
    }
    let parts = split_str(body, INLINE_MAX);
    attrs.insert("chunks".into(), n(parts.len()));
    let mut out = vec![attrs];
    for (i, part) in parts.into_iter().enumerate() {
        let mut c = key(pk, &chunk_sk(sk, i + 1));
        c.insert("body".into(), s(part));
        out.push(c);
    }
    out
}

pub(super) fn chunk_sk(sk: &str, i: usize) -> String {
    format!("{sk}#CHUNK#{i:03}")
}

/// Split at UTF-8 character boundaries into pieces of at most `max` bytes.
pub(super) fn split_str(text: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        let mut cut = max;
        while cut > 0 && !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if cut == 0 {
            break;
        }
        let (head, tail) = rest.split_at(cut);
        out.push(head);
        rest = tail;
    }
    out.push(rest);
    out
}

/// Puts for a record's items: the main item under `cond`, chunks plain.
pub(super) fn record_puts(items: Vec<Item>, cond: Option<Cond>) -> Vec<Op> {
    let mut ops = Vec::with_capacity(items.len());
    let mut cond = cond;
    for item in items {
        ops.push(put(item, cond.take()));
    }
    ops
}

/// Items of a query, in sort-key order, grouped: each main item with the
/// chunk items that follow it.
pub(super) fn group(items: Vec<Item>) -> Vec<(Item, Vec<Item>)> {
    let mut out: Vec<(Item, Vec<Item>)> = Vec::new();
    for item in items {
        let is_chunk = str_attr(&item, "SK").is_some_and(|sk| sk.contains("#CHUNK#"));
        match out.last_mut() {
            Some((_, chunks)) if is_chunk => chunks.push(item),
            _ if is_chunk => {} // a chunk without its record: ignore
            _ => out.push((item, Vec::new())),
        }
    }
    out
}

/// A record's JSON: the inline body or its chunks joined.
pub(super) fn body_of(what: &str, main: &Item, chunks: &[Item]) -> Result<String, StoreError> {
    let where_ = || {
        format!(
            "{what} ({} / {})",
            str_attr(main, "PK").unwrap_or("?"),
            str_attr(main, "SK").unwrap_or("?")
        )
    };
    let want = u64_attr(main, "chunks").unwrap_or(0);
    if want == 0 {
        return str_attr(main, "body")
            .map(str::to_string)
            .ok_or_else(|| StoreError::Corrupt(format!("{}: the item has no body", where_())));
    }
    let sk = str_attr(main, "SK").unwrap_or_default();
    let mut body = String::new();
    for i in 1..=want {
        let csk = chunk_sk(sk, i as usize);
        let part = chunks
            .iter()
            .find(|c| str_attr(c, "SK") == Some(csk.as_str()))
            .and_then(|c| str_attr(c, "body"))
            .ok_or_else(|| {
                StoreError::Corrupt(format!("{}: chunk {i} of {want} is missing", where_()))
            })?;
        body.push_str(part);
    }
    Ok(body)
}

pub(super) fn decode<T: DeserializeOwned>(
    what: &str,
    main: &Item,
    chunks: &[Item],
) -> Result<T, StoreError> {
    let body = body_of(what, main, chunks)?;
    crate::read_json(body.as_bytes()).map_err(|e| {
        StoreError::Corrupt(format!(
            "{what} ({} / {}): {e}",
            str_attr(main, "PK").unwrap_or("?"),
            str_attr(main, "SK").unwrap_or("?")
        ))
    })
}

pub(super) fn encode<T: Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A short random pause before a read-modify-write tries again after
/// losing a race (spreads contending writers): up to 5 ms × attempt, at
/// most 100 ms.
pub(super) async fn contention_pause(attempt: u32) {
    let cap = u128::from((5 * attempt).min(100)) + 1;
    let ms = (uuid::Uuid::new_v4().as_u128() % cap) as u64;
    tokio::time::sleep(StdDuration::from_millis(ms)).await;
}

/// Exponential back-off with jitter: 20 ms, 40 ms … capped at 1 s.
pub(super) fn backoff(attempt: u32) -> StdDuration {
    let base = 20u64.saturating_mul(1 << attempt.min(6)).min(1000);
    let jitter = (uuid::Uuid::new_v4().as_u128() % u128::from(base.max(1))) as u64;
    StdDuration::from_millis(base / 2 + jitter / 2)
}

// ----- keys -----------------------------------------------------------------

pub(super) fn wf_pk(workflow: &str) -> String {
    format!("WF#{workflow}")
}

pub(super) fn version_sk(version: u64) -> String {
    format!("V#{version:020}")
}

pub(super) fn exec_pk(id: &str) -> String {
    format!("EX#{id}")
}

pub(super) const EXEC_SK: &str = "EXEC";
pub(super) const EVENTS_HEAD_SK: &str = "EVHEAD";
pub(super) const HEAD_SK: &str = "HEAD";
pub(super) const WORKFLOW_CATALOG: &str = "CATALOG#WF";
pub(super) const ENV_CATALOG: &str = "CATALOG#ENV";

pub(super) fn event_sk(seq: u64) -> String {
    format!("EV#{seq:020}")
}

pub(super) fn audit_pk(env: &str) -> String {
    format!("AUDIT#{env}")
}

pub(super) fn audit_sk(seq: u64) -> String {
    format!("R#{seq:020}")
}

pub(super) fn lease_pk(key: &str) -> String {
    format!("LEASE#{key}")
}

pub(super) fn queue_pk(key: &str) -> String {
    format!("QUEUE#{key}")
}

pub(super) fn waiter_sk(ticket: u64) -> String {
    format!("W#{ticket:020}")
}

pub(super) fn task_pk(token: &str) -> String {
    format!("TASK#{token}")
}

/// Index sort key: the start time (fixed width, so text order is time
/// order) and the id.
pub(super) fn started_key(r: &ExecutionRecord) -> String {
    format!("{}#{}", r.started.format("%Y-%m-%dT%H:%M:%S%.9fZ"), r.id)
}

/// An execution record's items, with its index attributes.
pub(super) fn execution_items(r: &ExecutionRecord) -> Result<Vec<Item>, StoreError> {
    let body = encode(r)?;
    let sort = started_key(r);
    let attrs = HashMap::from([
        ("id".to_string(), s(&r.id)),
        ("rev".to_string(), n(r.revision)),
        ("status".to_string(), s(r.status.as_str())),
        ("GSI1PK".to_string(), s("EXECUTIONS")),
        ("GSI1SK".to_string(), s(&sort)),
        ("GSI2PK".to_string(), s(format!("STATUS#{}", r.status))),
        ("GSI2SK".to_string(), s(sort)),
    ]);
    Ok(record_items(&exec_pk(&r.id), EXEC_SK, &body, attrs))
}

pub(super) fn catalog_item(catalog: &str, name: &str) -> Item {
    let mut item = key(catalog, &format!("N#{name}"));
    item.insert("name".into(), s(name));
    item
}

pub(super) fn waiter_item(pk: &str, w: &Waiter) -> Result<Item, StoreError> {
    let mut item = key(pk, &waiter_sk(w.ticket));
    item.insert("holder".into(), s(&w.holder));
    item.insert("expires".into(), n(w.expires.timestamp_millis()));
    item.insert("body".into(), s(encode(w)?));
    item.insert("chunks".into(), n(0));
    Ok(item)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn bodies_split_at_character_boundaries_and_join_back() {
        let text = "é".repeat(400_000); // 800 000 bytes
        let items = record_items("EX#a", EXEC_SK, &text, HashMap::new());
        assert_eq!(items.len(), 4, "main item + 3 chunks");
        assert!(items.iter().all(|i| item_size(i) < ITEM_MAX));
        let (main, chunks) = items
            .split_first()
            .map(|(m, c)| (m.clone(), c.to_vec()))
            .unwrap_or_default();
        assert_eq!(body_of("t", &main, &chunks).ok(), Some(text));
        let small = record_items("EX#a", EXEC_SK, "{}", HashMap::new());
        assert_eq!(small.len(), 1);
    }

    #[test]
    pub(super) fn grouping_keeps_chunks_with_their_record() {
        let mut items = record_items(
            "P",
            &event_sk(1),
            &"x".repeat(INLINE_MAX + 10),
            HashMap::new(),
        );
        items.extend(record_items("P", &event_sk(2), "{}", HashMap::new()));
        let groups = group(items);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].1.len(), 2);
        assert_eq!(groups[1].1.len(), 0);
    }
}
