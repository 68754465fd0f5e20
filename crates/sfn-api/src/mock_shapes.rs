//! TestState's `mock.fieldValidationMode`: a mocked result checked against
//! the response shape of the integration it stands for. piflow knows the
//! shapes of the integrations below; a mock for any other resource is not
//! checked (as with `NONE`).
//!
//! `STRICT`: every required field is present and every present field has
//! its type; `PRESENT`: present fields have their type; `NONE`: nothing.
//! Fields the shape does not know are accepted (AWS accepts them too).

use serde_json::Value;

/// A response shape, as much of it as the check needs.
enum Shape {
    Str,
    Num,
    /// Anything (a Lambda payload, a DynamoDB attribute value).
    Any,
    List(&'static Shape),
    Struct(&'static [Member]),
}

/// A structure's member: name, shape, required.
type Member = (&'static str, Shape, bool);

const ATTRIBUTES: Shape = Shape::Any;
const CONSUMED_CAPACITY: Shape = Shape::Struct(&[
    ("TableName", Shape::Str, false),
    ("CapacityUnits", Shape::Num, false),
    ("ReadCapacityUnits", Shape::Num, false),
    ("WriteCapacityUnits", Shape::Num, false),
]);
const DYNAMODB_ITEM_OUTPUT: Shape = Shape::Struct(&[
    ("Attributes", ATTRIBUTES, false),
    ("Item", ATTRIBUTES, false),
    ("ConsumedCapacity", CONSUMED_CAPACITY, false),
]);
const LAMBDA_INVOKE: Shape = Shape::Struct(&[
    ("StatusCode", Shape::Num, false),
    ("FunctionError", Shape::Str, false),
    ("LogResult", Shape::Str, false),
    ("Payload", Shape::Any, false),
    ("ExecutedVersion", Shape::Str, false),
]);
const START_EXECUTION: Shape = Shape::Struct(&[
    ("ExecutionArn", Shape::Str, true),
    ("StartDate", Shape::Str, true),
]);
const PUT_EVENTS_ENTRY: Shape = Shape::Struct(&[
    ("EventId", Shape::Str, false),
    ("ErrorCode", Shape::Str, false),
    ("ErrorMessage", Shape::Str, false),
]);
const PUT_EVENTS: Shape = Shape::Struct(&[
    ("FailedEntryCount", Shape::Num, false),
    ("Entries", Shape::List(&PUT_EVENTS_ENTRY), false),
]);
const SQS_SEND_MESSAGE: Shape = Shape::Struct(&[
    ("MD5OfMessageBody", Shape::Str, false),
    ("MD5OfMessageAttributes", Shape::Str, false),
    ("MD5OfMessageSystemAttributes", Shape::Str, false),
    ("MessageId", Shape::Str, false),
    ("SequenceNumber", Shape::Str, false),
]);
const SNS_PUBLISH: Shape = Shape::Struct(&[
    ("MessageId", Shape::Str, false),
    ("SequenceNumber", Shape::Str, false),
]);
const ECS_RUN_TASK: Shape = Shape::Struct(&[
    ("Tasks", Shape::List(&Shape::Any), false),
    ("Failures", Shape::List(&Shape::Any), false),
]);

/// The response shape of `service:action` (an optimized integration, or an
/// `aws-sdk` one), when piflow knows it.
fn shape_of(service: &str, action: &str) -> Option<&'static Shape> {
    Some(match (service, action) {
        ("lambda", "invoke") => &LAMBDA_INVOKE,
        ("states", "startExecution") => &START_EXECUTION,
        ("events", "putEvents") | ("eventbridge", "putEvents") => &PUT_EVENTS,
        ("sqs", "sendMessage") => &SQS_SEND_MESSAGE,
        ("sns", "publish") => &SNS_PUBLISH,
        ("dynamodb", "putItem" | "getItem" | "deleteItem" | "updateItem") => &DYNAMODB_ITEM_OUTPUT,
        ("ecs", "runTask") => &ECS_RUN_TASK,
        _ => return None,
    })
}

/// How strictly a mocked result is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Strict,
    Present,
    None,
}

/// Check a mocked result of `service:action`; `Err` is AWS's message.
pub fn check(service: &str, action: &str, mode: Mode, result: &Value) -> Result<(), String> {
    if mode == Mode::None {
        return Ok(());
    }
    let Some(shape) = shape_of(service, action) else {
        return Ok(());
    };
    walk(shape, result, "", mode == Mode::Strict)
        .map_err(|m| format!("Mock result schema validation error: {m}"))
}

fn walk(shape: &Shape, v: &Value, field: &str, strict: bool) -> Result<(), String> {
    let wrong = |what: &str| Err(format!("Field '{field}' must be {what}"));
    match (shape, v) {
        (Shape::Any, _) => Ok(()),
        (Shape::Str, Value::String(_)) | (Shape::Num, Value::Number(_)) => Ok(()),
        (Shape::Str, _) => wrong("a string"),
        (Shape::Num, _) => wrong("a number"),
        (Shape::List(item), Value::Array(a)) => {
            a.iter().try_for_each(|i| walk(item, i, field, strict))
        }
        (Shape::List(_), _) => wrong("an array"),
        (Shape::Struct(members), Value::Object(o)) => {
            for (name, s, required) in members.iter() {
                match o.get(*name) {
                    Some(x) => walk(s, x, name, strict)?,
                    None if strict && *required => {
                        return Err(format!("Field '{name}' is required"));
                    }
                    None => {}
                }
            }
            Ok(())
        }
        (Shape::Struct(_), _) if field.is_empty() => Err("the result must be a JSON object".into()),
        (Shape::Struct(_), _) => wrong("an object"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn checks_types_and_required_fields_as_the_mode_asks() {
        let ok = json!({"ExecutionArn": "arn", "StartDate": "2025-01-01T00:00:00Z"});
        assert_eq!(check("states", "startExecution", Mode::Strict, &ok), Ok(()));
        let e = check("states", "startExecution", Mode::Strict, &json!({})).unwrap_err();
        assert!(e.contains("'ExecutionArn' is required"), "{e}");
        assert_eq!(
            check("states", "startExecution", Mode::Present, &json!({})),
            Ok(())
        );
        let bad = json!({"ExecutionArn": "a", "StartDate": true});
        assert_eq!(
            check("states", "startExecution", Mode::Present, &bad),
            Err("Mock result schema validation error: Field 'StartDate' must be a string".into())
        );
        assert_eq!(check("states", "startExecution", Mode::None, &bad), Ok(()));
        let nested = json!({"Entries": [{"EventId": "a"}, {"EventId": 1}]});
        let e = check("events", "putEvents", Mode::Strict, &nested).unwrap_err();
        assert!(e.ends_with("Field 'EventId' must be a string"), "{e}");
        let e = check("events", "putEvents", Mode::Strict, &json!({"Entries": {}})).unwrap_err();
        assert!(e.ends_with("Field 'Entries' must be an array"), "{e}");
        // Unknown fields and unknown integrations pass.
        assert_eq!(
            check("events", "putEvents", Mode::Strict, &json!({"random": 1})),
            Ok(())
        );
        assert_eq!(
            check("glue", "startJobRun", Mode::Strict, &json!(3)),
            Ok(())
        );
    }
}
