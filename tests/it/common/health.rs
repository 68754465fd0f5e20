//! AWS Health for wiremock: aws-sdk-health 1.x speaks Smithy RPC v2 CBOR
//! (`POST /service/AWSHealth_20160804/operation/DescribeEvents`), so the
//! mocks translate JSON to CBOR and back.

use serde_json::{Value, json};
use wiremock::{Request, ResponseTemplate};

/// The DescribeEvents path.
pub const OP_PATH: &str = "/service/AWSHealth_20160804/operation/DescribeEvents";

pub fn cbor_to_json(v: &ciborium::Value) -> Value {
    use ciborium::Value as C;
    match v {
        C::Text(s) => Value::String(s.clone()),
        C::Integer(i) => json!(i128::from(*i) as i64),
        C::Float(f) => json!(f),
        C::Bool(b) => json!(b),
        C::Null => Value::Null,
        C::Array(a) => Value::Array(a.iter().map(cbor_to_json).collect()),
        C::Map(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let k = match k {
                        C::Text(s) => s.clone(),
                        other => format!("{other:?}"),
                    };
                    (k, cbor_to_json(v))
                })
                .collect(),
        ),
        C::Tag(_, inner) => cbor_to_json(inner),
        other => Value::String(format!("{other:?}")),
    }
}

/// JSON to CBOR; strings under a key ending in `Time` that parse as
/// RFC 3339 become CBOR timestamps (tag 1, epoch seconds).
pub fn json_to_cbor(v: &Value, key: &str) -> ciborium::Value {
    use ciborium::Value as C;
    match v {
        Value::String(s) if key.ends_with("Time") => {
            match chrono::DateTime::parse_from_rfc3339(s) {
                Ok(t) => C::Tag(1, Box::new(C::Float(t.timestamp() as f64))),
                Err(_) => C::Text(s.clone()),
            }
        }
        Value::String(s) => C::Text(s.clone()),
        Value::Number(n) => match n.as_i64() {
            Some(i) => C::Integer(i.into()),
            None => C::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::Bool(b) => C::Bool(*b),
        Value::Null => C::Null,
        Value::Array(a) => C::Array(a.iter().map(|x| json_to_cbor(x, "")).collect()),
        Value::Object(m) => C::Map(
            m.iter()
                .map(|(k, v)| (C::Text(k.clone()), json_to_cbor(v, k)))
                .collect(),
        ),
    }
}

pub fn body_json(req: &Request) -> Value {
    let v: ciborium::Value =
        ciborium::from_reader(&req.body[..]).expect("the request body is CBOR");
    cbor_to_json(&v)
}

pub fn cbor(status: u16, body: Value) -> ResponseTemplate {
    let mut bytes = Vec::new();
    ciborium::into_writer(&json_to_cbor(&body, ""), &mut bytes).expect("CBOR encodes");
    ResponseTemplate::new(status)
        .insert_header("content-type", "application/cbor")
        .insert_header("smithy-protocol", "rpc-v2-cbor")
        .set_body_bytes(bytes)
}

pub fn events(list: Vec<Value>, next: Option<&str>) -> ResponseTemplate {
    let mut body = json!({ "events": list });
    if let Some(t) = next {
        body["nextToken"] = json!(t);
    }
    cbor(200, body)
}

pub fn ecs_issue(region: &str, n: u32) -> Value {
    json!({
        "arn": format!("arn:aws:health:{region}::event/ECS/AWS_ECS_OPERATIONAL_ISSUE/AWS_ECS_OPERATIONAL_ISSUE_{n}"),
        "service": "ECS",
        "eventTypeCode": "AWS_ECS_OPERATIONAL_ISSUE",
        "eventTypeCategory": "issue",
        "region": region,
        "startTime": "2026-11-22T02:15:00Z",
        "lastUpdatedTime": "2026-11-22T02:45:00Z",
        "statusCode": "open",
        "eventScopeCode": "PUBLIC"
    })
}
