//! AWS's paging of the `List…` operations: `maxResults` (0 or absent:
//! 100; at most 1000) and an opaque `nextToken` that names the operation
//! and the position it continues from. A token of another operation, a
//! garbled one, or one past the end is `InvalidToken`.

use serde_json::{Map, Value};

use crate::api::{ApiError, fields};

/// The default page size.
pub const DEFAULT_PAGE: usize = 100;

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<String> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect();
    String::from_utf8(bytes?).ok()
}

/// The token that continues `op` at `position`.
pub fn token(op: &str, position: usize) -> String {
    hex(&format!("piflow:{op}:{position}"))
}

/// The position a request's `nextToken` continues `op` from (0 without
/// one).
pub fn position(op: &str, body: &Map<String, Value>) -> Result<usize, ApiError> {
    let Some(t) = fields::string(body, "nextToken", false, 1024)? else {
        return Ok(0);
    };
    let bad = || {
        ApiError::new(
            "InvalidToken",
            format!("Invalid Token: '{t}' is not a nextToken this server gave for {op}"),
        )
    };
    let text = unhex(t).ok_or_else(bad)?;
    let rest = text
        .strip_prefix("piflow:")
        .and_then(|r| r.strip_prefix(op))
        .and_then(|r| r.strip_prefix(':'))
        .ok_or_else(bad)?;
    rest.parse::<usize>().map_err(|_| bad())
}

/// Where the page a request asks for starts, and how many items it holds
/// at most.
pub fn window(op: &str, body: &Map<String, Value>) -> Result<(usize, usize), ApiError> {
    Ok((position(op, body)?, page_size(body)?))
}

/// `maxResults`: 0 to 1000, 0 or absent meaning [`DEFAULT_PAGE`] (every
/// paged operation, GetExecutionHistory's own tokens included).
pub fn page_size(body: &Map<String, Value>) -> Result<usize, ApiError> {
    Ok(match fields::integer(body, "maxResults", 0, 1000)? {
        None | Some(0) => DEFAULT_PAGE,
        Some(n) => n as usize,
    })
}

/// One page of `items` (in the order given) for the request `body`: the
/// items and the token of the next page, if any remain. `items` may stop
/// one past the page's end ([`window`]): that is enough to know that more
/// remain.
pub fn page<T>(
    op: &str,
    body: &Map<String, Value>,
    items: Vec<T>,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let (start, size) = window(op, body)?;
    if start > items.len() {
        return Err(ApiError::new(
            "InvalidToken",
            format!(
                "Invalid Token: the nextToken continues {op} at item {start}, past its end ({} items now)",
                items.len()
            ),
        ));
    }
    let end = start.saturating_add(size).min(items.len());
    let next = (end < items.len()).then(|| token(op, end));
    let out = items.into_iter().skip(start).take(end - start).collect();
    Ok((out, next))
}

/// A List operation's answer: the page under `key`, and `nextToken`
/// when more remain.
pub fn answer(key: &str, page: Vec<Value>, next: Option<String>) -> Value {
    let mut out = Map::new();
    out.insert(key.to_string(), Value::Array(page));
    if let Some(n) = next {
        out.insert("nextToken".into(), Value::String(n));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::api::body_of as body;

    #[test]
    fn pages_cover_every_item_once_and_tokens_are_checked() {
        let items: Vec<u32> = (0..7).collect();
        let mut seen = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let mut b = json!({"maxResults": 3});
            if let Some(t) = &next {
                b["nextToken"] = json!(t);
            }
            let (got, n) = page("ListX", &body(b), items.clone()).unwrap();
            seen.extend(got);
            next = n;
            if next.is_none() {
                break;
            }
        }
        assert_eq!(seen, items);
        let (all, none) = page("ListX", &body(json!({})), items.clone()).unwrap();
        assert_eq!((all.len(), none), (7, None));
        for bad in [
            "zz".to_string(),
            "abc".to_string(),
            token("ListY", 1),
            token("ListX", 99),
            hex("piflow:ListX:-1"),
        ] {
            let e = page("ListX", &body(json!({"nextToken": bad})), items.clone()).unwrap_err();
            assert_eq!(e.kind, "InvalidToken", "{bad}");
        }
        let e = page("ListX", &body(json!({"maxResults": 1001})), items).unwrap_err();
        assert_eq!(e.kind, "ValidationException");
    }
}
