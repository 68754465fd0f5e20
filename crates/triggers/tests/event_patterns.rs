//! EventBridge event patterns and input transformers: the examples of the
//! EventBridge user guide (event patterns, content filtering, null values,
//! arrays, input transformation), each with its documented matching and
//! non-matching events; validation errors. (`piflow events test` is tested in
//! the binary's tests/it/cli_events.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

use indexmap::IndexMap;
use piflow_triggers::{
    InputPath, InputTransformer, Pattern, PatternErrorKind, PatternSet, RuleContext,
};
use serde_json::{Value, json};

fn pattern(p: Value) -> Pattern {
    Pattern::parse(&p).unwrap_or_else(|e| panic!("{p} should compile: {e}"))
}

/// Asserts that `p` matches every event in `yes` and none in `no`.
fn check(p: Value, yes: &[Value], no: &[Value]) {
    let compiled = pattern(p.clone());
    for e in yes {
        assert!(compiled.matches(e), "{p} should match {e}");
    }
    for e in no {
        assert!(!compiled.matches(e), "{p} should not match {e}");
    }
}

fn invalid(p: Value, kind: PatternErrorKind, path: &str, needle: &str) {
    let e = Pattern::parse(&p).expect_err(&format!("{p} should be rejected"));
    assert_eq!(e.kind, kind, "{p}: {e}");
    assert_eq!(e.path, path, "{p}: {e}");
    assert!(
        e.to_string().contains(needle),
        "{p}: {e:?} should mention {needle:?}"
    );
    assert!(e.code().starts_with("pattern."));
}

/// The EC2 state-change event of the user guide's "Event patterns" page.
fn ec2_event(state: &str) -> Value {
    json!({
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2",
        "account": "111122223333",
        "time": "2017-12-22T18:43:48Z",
        "region": "us-west-1",
        "resources": ["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"],
        "detail": {"instance-id": "i-1234567890abcdef0", "state": state}
    })
}

fn detail(d: Value) -> Value {
    json!({"source": "aws.ec2", "detail-type": "x", "detail": d})
}

// --- Event patterns: the basics -------------------------------------------

#[test]
fn doc_ec2_terminated() {
    check(
        json!({
            "source": ["aws.ec2"],
            "detail-type": ["EC2 Instance State-change Notification"],
            "detail": {"state": ["terminated"]}
        }),
        &[ec2_event("terminated")],
        &[ec2_event("running"), json!({"source": "aws.ec2"})],
    );
}

#[test]
fn doc_match_one_of_several_values() {
    check(
        json!({"source": ["aws.ec2", "aws.fargate"]}),
        &[
            json!({"source": "aws.ec2"}),
            json!({"source": "aws.fargate"}),
        ],
        &[
            json!({"source": "aws.s3"}),
            json!({"detail": {"source": "aws.ec2"}}),
        ],
    );
}

#[test]
fn doc_null_and_empty_string() {
    let event = json!({
        "version": "0",
        "id": "3e3c153a-8339-4e30-8c35-687ebef853fe",
        "detail-type": "EC2 Instance Launch Successful",
        "source": "aws.autoscaling",
        "account": "123456789012",
        "time": "2015-11-11T21:31:47Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {"eventVersion": "", "responseElements": null}
    });
    check(
        json!({"detail": {"eventVersion": [""]}}),
        std::slice::from_ref(&event),
        &[],
    );
    check(
        json!({"detail": {"responseElements": [null]}}),
        std::slice::from_ref(&event),
        &[],
    );
    // Null and the empty string are not interchangeable.
    check(
        json!({"detail": {"responseElements": [""]}}),
        &[],
        std::slice::from_ref(&event),
    );
    check(json!({"detail": {"eventVersion": [null]}}), &[], &[event]);
}

#[test]
fn doc_arrays_intersect() {
    let p = json!({"resources": [
        "arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f",
        "arn:aws:ec2:us-east-1:111122223333:instance/i-b188560f",
        "arn:aws:ec2:us-east-1:444455556666:instance/i-b188560f"
    ]});
    check(
        p,
        &[json!({"resources": [
            "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:eb56d16b-bbf0-401d-b893-d5978ed4a025:autoScalingGroupName/ASGTerminate",
            "arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f"
        ]})],
        &[
            json!({"resources": ["arn:aws:ec2:us-east-1:999999999999:instance/i-b188560f"]}),
            json!({"resources": []}),
        ],
    );
}

#[test]
fn numbers_compare_numerically_and_types_do_not_mix() {
    check(
        json!({"detail": {"x": [300]}}),
        &[
            detail(json!({"x": 300})),
            detail(json!({"x": 300.0})),
            detail(json!({"x": 3.0e2})),
        ],
        &[detail(json!({"x": "300"})), detail(json!({"x": 301}))],
    );
    check(
        json!({"detail": {"b": [true]}}),
        &[detail(json!({"b": true}))],
        &[detail(json!({"b": "true"})), detail(json!({"b": false}))],
    );
}

#[test]
fn nested_fields_through_event_arrays_keep_array_consistency() {
    let p = json!({"detail": {"items": {"name": ["a"], "size": [{"numeric": [">", 10]}]}}});
    check(
        p,
        &[detail(
            json!({"items": [{"name": "b", "size": 1}, {"name": "a", "size": 11}]}),
        )],
        // name and size each match, but in different elements.
        &[detail(
            json!({"items": [{"name": "a", "size": 1}, {"name": "b", "size": 11}]}),
        )],
    );
}

// --- Content filtering ------------------------------------------------------

#[test]
fn doc_prefix() {
    check(
        json!({"time": [{"prefix": "2017-10-02"}]}),
        &[json!({"time": "2017-10-02T18:43:48Z"})],
        &[
            json!({"time": "2017-10-03T18:43:48Z"}),
            json!({"time": 20171002}),
        ],
    );
}

#[test]
fn doc_prefix_ignore_case() {
    check(
        json!({"detail": {"service": [{"prefix": {"equals-ignore-case": "EventB"}}]}}),
        &[
            detail(json!({"service": "EventBridge"})),
            detail(json!({"service": "EVENTBRIDGE"})),
            detail(json!({"service": "eventbridge"})),
        ],
        &[
            detail(json!({"service": "SNS"})),
            detail(json!({"service": "Event"})),
        ],
    );
}

#[test]
fn doc_suffix_and_ignore_case() {
    check(
        json!({"FileName": [{"suffix": ".png"}]}),
        &[json!({"FileName": "image.png"})],
        &[
            json!({"FileName": "image.PNG"}),
            json!({"FileName": "image.jpg"}),
        ],
    );
    check(
        json!({"detail": {"FileName": [{"suffix": {"equals-ignore-case": ".png"}}]}}),
        &[
            detail(json!({"FileName": "image.png"})),
            detail(json!({"FileName": "image.PNG"})),
        ],
        &[detail(json!({"FileName": "image.png.txt"}))],
    );
}

#[test]
fn doc_anything_but_string_and_number() {
    check(
        json!({"detail": {"state": [{"anything-but": "initializing"}]}}),
        &[detail(json!({"state": "running"}))],
        &[detail(json!({"state": "initializing"})), detail(json!({}))],
    );
    check(
        json!({"detail": {"x-limit": [{"anything-but": 123}]}}),
        &[
            detail(json!({"x-limit": 124})),
            detail(json!({"x-limit": 12.3})),
        ],
        &[
            detail(json!({"x-limit": 123})),
            detail(json!({"x-limit": 123.0})),
        ],
    );
}

#[test]
fn doc_anything_but_lists() {
    check(
        json!({"detail": {"state": [{"anything-but": ["stopped", "overloaded"]}]}}),
        &[detail(json!({"state": "running"}))],
        &[
            detail(json!({"state": "stopped"})),
            detail(json!({"state": "overloaded"})),
        ],
    );
    check(
        json!({"detail": {"x-limit": [{"anything-but": [100, 200, 300]}]}}),
        &[detail(json!({"x-limit": 301.8}))],
        &[detail(json!({"x-limit": 200}))],
    );
}

#[test]
fn doc_anything_but_prefix_suffix() {
    check(
        json!({"detail": {"state": [{"anything-but": {"prefix": "init"}}]}}),
        &[detail(json!({"state": "running"}))],
        &[detail(json!({"state": "initializing"}))],
    );
    check(
        json!({"Region": [{"anything-but": {"prefix": "us-"}}]}),
        &[json!({"Region": "eu-west-1"})],
        &[json!({"Region": "us-east-1"})],
    );
    check(
        json!({"detail": {"FileName": [{"anything-but": {"suffix": ".txt"}}]}}),
        &[detail(json!({"FileName": "notes.md"}))],
        &[detail(json!({"FileName": "notes.txt"}))],
    );
}

#[test]
fn doc_anything_but_ignore_case() {
    check(
        json!({"detail": {"state": [{"anything-but": {"equals-ignore-case": "initializing"}}]}}),
        &[detail(json!({"state": "running"}))],
        &[
            detail(json!({"state": "INITIALIZING"})),
            detail(json!({"state": "Initializing"})),
        ],
    );
    check(
        json!({"detail": {"state": [{"anything-but": {"equals-ignore-case": ["initializing", "stopped"]}}]}}),
        &[detail(json!({"state": "running"}))],
        &[
            detail(json!({"state": "STOPPED"})),
            detail(json!({"state": "initializing"})),
        ],
    );
}

#[test]
fn doc_anything_but_wildcard() {
    check(
        json!({"detail": {"FilePath": [{"anything-but": {"wildcard": "*/lib/*"}}]}}),
        &[detail(json!({"FilePath": "/usr/bin/cat"}))],
        &[detail(json!({"FilePath": "/usr/lib/libc.so"}))],
    );
    check(
        json!({"detail": {"FilePath": [{"anything-but": {"wildcard": ["*/lib/*", "*/bin/*"]}}]}}),
        &[detail(json!({"FilePath": "/etc/hosts"}))],
        &[
            detail(json!({"FilePath": "/usr/bin/cat"})),
            detail(json!({"FilePath": "/usr/lib/x"})),
        ],
    );
}

#[test]
fn doc_numeric() {
    let p = json!({"detail": {
        "c-count": [{"numeric": [">", 0, "<=", 5]}],
        "d-count": [{"numeric": ["<", 10]}],
        "x-limit": [{"numeric": ["=", 3.018e2]}]
    }});
    check(
        p,
        &[detail(
            json!({"c-count": 5, "d-count": 7, "x-limit": 301.8}),
        )],
        &[
            detail(json!({"c-count": 0, "d-count": 7, "x-limit": 301.8})),
            detail(json!({"c-count": 6, "d-count": 7, "x-limit": 301.8})),
            detail(json!({"c-count": 5, "d-count": 10, "x-limit": 301.8})),
            detail(json!({"c-count": 5, "d-count": 7, "x-limit": 301.9})),
            // Numeric matching takes JSON numbers only.
            detail(json!({"c-count": "5", "d-count": 7, "x-limit": 301.8})),
        ],
    );
    check(
        json!({"n": [{"numeric": [">=", 1, "<", 2]}]}),
        &[json!({"n": 1}), json!({"n": 1.999})],
        &[json!({"n": 2}), json!({"n": 0.999})],
    );
}

#[test]
fn doc_cidr_ipv4_and_ipv6() {
    check(
        json!({"detail": {"sourceIPAddress": [{"cidr": "10.0.0.0/24"}]}}),
        &[
            detail(json!({"sourceIPAddress": "10.0.0.255"})),
            detail(json!({"sourceIPAddress": "10.0.0.0"})),
        ],
        &[
            detail(json!({"sourceIPAddress": "10.0.1.1"})),
            detail(json!({"sourceIPAddress": "not an ip"})),
            detail(json!({"sourceIPAddress": "2001:db8::1"})),
        ],
    );
    check(
        json!({"detail": {"sourceIPAddress": [{"cidr": "2001:db8::/64"}]}}),
        &[detail(json!({"sourceIPAddress": "2001:db8::ff:1"}))],
        &[
            detail(json!({"sourceIPAddress": "2001:db9::1"})),
            detail(json!({"sourceIPAddress": "10.0.0.1"})),
        ],
    );
}

#[test]
fn doc_exists() {
    check(
        json!({"detail": {"state": [{"exists": true}]}}),
        &[ec2_event("terminated"), detail(json!({"state": null}))],
        &[detail(json!({"other": 1})), json!({"source": "x"})],
    );
    check(
        json!({"detail": {"state": [{"exists": false}]}}),
        &[detail(json!({"other": 1})), json!({"source": "x"})],
        &[ec2_event("terminated"), detail(json!({"state": null}))],
    );
}

#[test]
fn exists_works_on_leaf_nodes_only() {
    // An object is not a leaf: it does not "exist" for `exists`, and an empty
    // array (or one of objects) has no leaf value.
    let yes = json!({"detail": {"state": [{"exists": true}]}});
    let no = json!({"detail": {"state": [{"exists": false}]}});
    let object = detail(json!({"state": {"name": "running"}}));
    let empty = detail(json!({"state": []}));
    let list = detail(json!({"state": ["a"]}));
    check(
        yes.clone(),
        std::slice::from_ref(&list),
        &[object.clone(), empty.clone()],
    );
    check(no, &[object, empty], &[list]);
}

#[test]
fn doc_equals_ignore_case() {
    check(
        json!({"detail-type": [{"equals-ignore-case": "ec2 instance state-change notification"}]}),
        &[ec2_event("x")],
        &[json!({"detail-type": "EC2 Instance Launch Successful"})],
    );
    check(
        json!({"Name": [{"equals-ignore-case": "alice"}]}),
        &[json!({"Name": "Alice"}), json!({"Name": "ALICE"})],
        &[json!({"Name": "Alicia"})],
    );
}

#[test]
fn doc_wildcard() {
    check(
        json!({"EventBusArn": [{"wildcard": "arn:aws:events:us-east-1:*:event-bus/*"}]}),
        &[json!({"EventBusArn": "arn:aws:events:us-east-1:123456789012:event-bus/default"})],
        &[json!({"EventBusArn": "arn:aws:events:us-west-2:123456789012:event-bus/default"})],
    );
    check(
        json!({"FileName": [{"wildcard": "dir/*.png"}]}),
        &[
            json!({"FileName": "dir/a.png"}),
            json!({"FileName": "dir/sub/a.png"}),
        ],
        &[
            json!({"FileName": "dir/a.jpg"}),
            json!({"FileName": "other/a.png"}),
        ],
    );
    // `\*` is a literal star.
    check(
        json!({"k": [{"wildcard": "a\\*b*"}]}),
        &[json!({"k": "a*bc"})],
        &[json!({"k": "axbc"})],
    );
}

#[test]
fn doc_complex_example() {
    let p = json!({
        "time": [{"prefix": "2017-10-02"}],
        "detail": {
            "state": [{"anything-but": "initializing"}],
            "c-count": [{"numeric": [">", 0, "<=", 5]}],
            "d-count": [{"numeric": ["<", 10]}],
            "x-limit": [{"anything-but": [100, 200, 300]}]
        }
    });
    let event = |state: &str, x: f64| {
        json!({"time": "2017-10-02T18:43:48Z",
               "detail": {"state": state, "c-count": 5, "d-count": 7, "x-limit": x}})
    };
    check(
        p,
        &[event("running", 301.8)],
        &[event("initializing", 301.8), event("running", 300.0)],
    );
}

#[test]
fn doc_or_matching() {
    check(
        json!({"detail": {"$or": [
            {"c-count": [{"numeric": [">", 0, "<=", 5]}]},
            {"d-count": [{"numeric": ["<", 10]}]},
            {"x-limit": [{"numeric": ["=", 3.018e2]}]}
        ]}}),
        &[
            detail(json!({"c-count": 1})),
            detail(json!({"d-count": 3})),
            detail(json!({"x-limit": 301.8})),
        ],
        &[detail(json!({"c-count": 9, "d-count": 11, "x-limit": 1}))],
    );
    check(
        json!({"source": ["aws.ec2"], "$or": [
            {"detail-type": ["EC2 Instance State-change Notification"]},
            {"detail": {"state": ["stopped"]}}
        ]}),
        &[
            ec2_event("x"),
            json!({"source": "aws.ec2", "detail": {"state": "stopped"}}),
        ],
        &[
            json!({"source": "aws.s3", "detail-type": "EC2 Instance State-change Notification"}),
            json!({"source": "aws.ec2", "detail": {"state": "running"}}),
        ],
    );
}

// --- Validation -------------------------------------------------------------

#[test]
fn rejects_what_eventbridge_rejects() {
    use PatternErrorKind as K;
    invalid(
        json!({"source": []}),
        K::EmptyArray,
        "source",
        "empty arrays",
    );
    invalid(
        json!({"source": "aws.ec2"}),
        K::NotArray,
        "source",
        "must be an array",
    );
    invalid(
        json!({"detail": {"n": 5}}),
        K::NotArray,
        "detail.n",
        "must be an array",
    );
    invalid(json!([1]), K::NotObject, "", "must be a JSON object");
    invalid(json!({}), K::EmptyObject, "", "empty objects");
    invalid(
        json!({"detail": {}}),
        K::EmptyObject,
        "detail",
        "empty objects",
    );
    invalid(json!({"a": [[1]]}), K::NotArray, "a", "nested arrays");
    invalid(
        json!({"a": [{"contains": "x"}]}),
        K::UnknownOperator,
        "a",
        "unknown operator \"contains\"",
    );
    invalid(
        json!({"a": [{"prefix": "x", "suffix": "y"}]}),
        K::OperatorShape,
        "a",
        "exactly one key",
    );
    invalid(
        json!({"a": [{"prefix": 5}]}),
        K::WrongOperand,
        "a",
        "\"prefix\" takes a string",
    );
    invalid(
        json!({"a": [{"prefix": {"foo": "x"}}]}),
        K::UnknownOperator,
        "a",
        "equals-ignore-case",
    );
    invalid(
        json!({"a": [{"exists": "yes"}]}),
        K::WrongOperand,
        "a",
        "\"exists\" takes true or false",
    );
    invalid(
        json!({"a": [{"equals-ignore-case": 1}]}),
        K::WrongOperand,
        "a",
        "takes a string",
    );
    invalid(
        json!({"detail": {"state": {"value": [{"anything-but": true}]}}}),
        K::WrongOperand,
        "detail.state.value",
        "\"anything-but\" takes a string, number, array",
    );
    invalid(
        json!({"detail": {"state": {"value": [{"anything-but": {"numeric": [">", 1]}}]}}}),
        K::UnknownOperator,
        "detail.state.value",
        "not {\"numeric\": …}",
    );
    invalid(
        json!({"a": [{"anything-but": ["x", 1]}]}),
        K::WrongOperand,
        "a",
        "only strings or only numbers",
    );
    invalid(
        json!({"a": [{"anything-but": []}]}),
        K::EmptyArray,
        "a",
        "non-empty",
    );
    invalid(
        json!({"a": [{"anything-but": {"prefix": ""}}]}),
        K::WrongOperand,
        "a",
        "non-empty",
    );
    invalid(
        json!({"a": [{"numeric": [">", 5, "<", 1]}]}),
        K::NumericRange,
        "a",
        "out of order",
    );
    invalid(
        json!({"a": [{"numeric": [">", 5, ">", 1]}]}),
        K::NumericRange,
        "a",
        "two lower bounds",
    );
    invalid(
        json!({"a": [{"numeric": ["=", 5, "<", 6]}]}),
        K::NumericRange,
        "a",
        "\"=\" cannot be combined",
    );
    invalid(
        json!({"a": [{"numeric": [">", "5"]}]}),
        K::NumericRange,
        "a",
        "takes a number",
    );
    invalid(
        json!({"a": [{"numeric": ["!=", 5]}]}),
        K::NumericRange,
        "a",
        "unknown comparison",
    );
    invalid(
        json!({"a": [{"numeric": [">"]}]}),
        K::NumericRange,
        "a",
        "one or two comparisons",
    );
    invalid(
        json!({"a": [{"numeric": [">", 6e9]}]}),
        K::NumericRange,
        "a",
        "5.0e9",
    );
    invalid(
        json!({"a": [{"cidr": "10.0.0.0"}]}),
        K::Cidr,
        "a",
        "prefix-length",
    );
    invalid(
        json!({"a": [{"cidr": "10.0.0.0/33"}]}),
        K::Cidr,
        "a",
        "above 32",
    );
    invalid(
        json!({"a": [{"cidr": "300.0.0.0/8"}]}),
        K::Cidr,
        "a",
        "not an IP",
    );
    invalid(
        json!({"a": [{"wildcard": "a**b"}]}),
        K::Wildcard,
        "a",
        "consecutive wildcard",
    );
    invalid(
        json!({"a": [{"wildcard": "a\\b"}]}),
        K::Wildcard,
        "a",
        "invalid escape",
    );
    invalid(json!({"$or": [{"a": ["x"]}]}), K::Or, "$or", "at least 2");
    invalid(json!({"d": {"$or": []}}), K::Or, "d.$or", "at least 2");
    invalid(
        json!({"$or": [{"a": ["x"]}, {"b": []}]}),
        K::EmptyArray,
        "$or[1].b",
        "empty arrays",
    );
}

#[test]
fn error_display_names_path_and_problem() {
    let e = Pattern::parse(
        &json!({"detail": {"state": {"value": [{"anything-but": {"a": 1, "b": 2}}]}}}),
    )
    .unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("detail.state.value: \"anything-but\""),
        "{text}"
    );
    assert_eq!(e.code(), "pattern.operator-shape");
}

#[test]
fn deep_patterns_are_refused_not_overflowed() {
    let mut p = json!({"a": ["x"]});
    for _ in 0..200 {
        p = json!({"n": p});
    }
    let e = Pattern::parse(&p).unwrap_err();
    assert_eq!(e.kind, PatternErrorKind::TooDeep);
}

// --- Edges: where piflow follows AWS's matcher ------------------------------
//
// Sources, cited per test: the EventBridge user guide (docs.aws.amazon.com/
// eventbridge/latest/userguide/eb-create-pattern-operators.html; its 2023
// copy in awsdocs/amazon-eventbridge-user-guide), and aws/event-ruler, the
// matcher EventBridge runs (src/main/software/amazon/event/ruler/*.java, its
// tests and README.md). docs/triggers.md ("Event patterns") says the same.

/// Every `anything-but` form used below, with a value it excludes.
fn anything_but_forms() -> Vec<(Value, Value)> {
    vec![
        (json!({"anything-but": "x"}), json!("x")),
        (json!({"anything-but": ["x", "y"]}), json!("y")),
        (json!({"anything-but": 5}), json!(5)),
        (json!({"anything-but": [5, 6]}), json!(6.0)),
        (json!({"anything-but": {"prefix": "x"}}), json!("xa")),
        (json!({"anything-but": {"prefix": ["x", "y"]}}), json!("ya")),
        (json!({"anything-but": {"suffix": "x"}}), json!("ax")),
        (json!({"anything-but": {"suffix": ["x", "y"]}}), json!("ay")),
        (
            json!({"anything-but": {"equals-ignore-case": "x"}}),
            json!("X"),
        ),
        (
            json!({"anything-but": {"equals-ignore-case": ["x", "y"]}}),
            json!("Y"),
        ),
        (json!({"anything-but": {"wildcard": "x*"}}), json!("xa")),
        (
            json!({"anything-but": {"wildcard": ["x*", "*y"]}}),
            json!("ay"),
        ),
    ]
}

/// Area 1. `anything-but` takes a list under `prefix`, `suffix`,
/// `equals-ignore-case` and `wildcard`: event-ruler's
/// JsonRuleCompiler.java `processAnythingButValuesSetMatchExpression` (lists
/// for prefix and suffix since aws/event-ruler pull request #143, 2024); the
/// user guide shows the `equals-ignore-case` and `wildcard` lists. The event
/// value matches when it matches none of the values.
#[test]
fn edge_anything_but_lists_of_prefix_suffix_wildcard() {
    check(
        json!({"detail": {"Region": [{"anything-but": {"prefix": ["us-", "eu-"]}}]}}),
        &[
            detail(json!({"Region": "ap-south-1"})),
            detail(json!({"Region": "US-east-1"})),
        ],
        &[
            detail(json!({"Region": "us-east-1"})),
            detail(json!({"Region": "eu-west-1"})),
        ],
    );
    check(
        json!({"detail": {"FileName": [{"anything-but": {"suffix": [".png", ".jpg"]}}]}}),
        &[detail(json!({"FileName": "a.gif"}))],
        &[
            detail(json!({"FileName": "a.png"})),
            detail(json!({"FileName": "b.jpg"})),
        ],
    );
    check(
        json!({"detail": {"FileName": [{"anything-but": {"wildcard": ["*.png", "*.jpg"]}}]}}),
        &[
            detail(json!({"FileName": "a.gif"})),
            detail(json!({"FileName": "a.png.txt"})),
        ],
        &[
            detail(json!({"FileName": "dir/a.png"})),
            detail(json!({"FileName": ".jpg"})),
        ],
    );
    // A list of one is the single value.
    check(
        json!({"s": [{"anything-but": {"prefix": ["init"]}}]}),
        &[json!({"s": "running"})],
        &[json!({"s": "initializing"})],
    );
}

/// Area 1, what is refused. JsonRuleCompiler.java: "Null prefix/suffix not
/// allowed" for an empty prefix or suffix, "prefix/suffix match pattern must
/// be a string", "wildcard match pattern must be a string", "Inside
/// anything-but/equals-ignore-case list, number|start|null|boolean is not
/// supported", "Inside anything but list, start|null|boolean is not
/// supported" (an operator object inside the plain list), "Value of
/// anything-but must be an array or single string/number value" (an object
/// under `prefix`), "Unsupported anything-but pattern" (another operator).
/// An empty list is refused by piflow (event-ruler's parser lets it through;
/// see docs/triggers.md).
#[test]
fn edge_anything_but_lists_refused() {
    use PatternErrorKind as K;
    for op in ["prefix", "suffix"] {
        invalid(
            json!({"a": [{"anything-but": {op: ["x", ""]}}]}),
            K::WrongOperand,
            "a",
            "non-empty",
        );
        invalid(
            json!({"a": [{"anything-but": {op: ["x", 1]}}]}),
            K::WrongOperand,
            "a",
            "array of strings",
        );
    }
    for op in ["prefix", "suffix", "equals-ignore-case", "wildcard"] {
        invalid(
            json!({"a": [{"anything-but": {op: []}}]}),
            K::WrongOperand,
            "a",
            "non-empty array of strings",
        );
        invalid(
            json!({"a": [{"anything-but": {op: [null]}}]}),
            K::WrongOperand,
            "a",
            "array of strings",
        );
    }
    invalid(
        json!({"a": [{"anything-but": {"wildcard": ["*.png", "a**b"]}}]}),
        K::Wildcard,
        "a",
        "consecutive wildcard",
    );
    invalid(
        json!({"a": [{"anything-but": [{"prefix": "abc-"}, {"prefix": "xyz-"}]}]}),
        K::WrongOperand,
        "a",
        "only strings or only numbers",
    );
    invalid(
        json!({"a": [{"anything-but": {"prefix": {"equals-ignore-case": "x"}}}]}),
        K::WrongOperand,
        "a",
        "takes a string or a non-empty array of strings",
    );
    invalid(
        json!({"a": [{"anything-but": {"cidr": "10.0.0.0/8"}}]}),
        K::UnknownOperator,
        "a",
        "not {\"cidr\": …}",
    );
}

/// Area 2. In event-ruler an `anything-but` is matched unless a value of the
/// field proves it wrong (ByteMachine.java, `doTransitionOn`: "we assume
/// they've matched unless we can prove they didn't"), and only values of a
/// field the event has are tried. A number, `true`, `false` and `null` are
/// read as their bare JSON text while the excluded values are quoted
/// strings (`"x"`, `"x` for a prefix, `x"` for a suffix), so every string
/// form of `anything-but` matches them; a number list is compared as
/// numbers. RulerTest.java `WHEN_WeTryAnythingButRules_THEN_Theywork`:
/// `{"anything-but": [111, 222, 333]}` matches the string `"444"`.
#[test]
fn edge_anything_but_against_null_numbers_booleans_and_missing_fields() {
    for (op, excluded) in anything_but_forms() {
        let p = json!({"detail": {"f": [op]}});
        let yes = [
            detail(json!({"f": null})),
            detail(json!({"f": true})),
            detail(json!({"f": false})),
            detail(json!({"f": "other"})),
            // An array matches when one of its elements does.
            detail(json!({"f": [excluded.clone(), "other"]})),
            detail(json!({"f": 7})),
        ];
        // No leaf value at all: missing, under a missing parent, an object,
        // an empty array. `anything-but` never matches those.
        let no = [
            detail(json!({"f": excluded.clone()})),
            detail(json!({"f": [excluded.clone()]})),
            detail(json!({"g": "other"})),
            json!({"source": "x"}),
            detail(json!({"f": {"x": 1}})),
            detail(json!({"f": []})),
        ];
        check(p, &yes, &no);
    }
    // Numbers compare as numbers, and not with strings.
    check(
        json!({"n": [{"anything-but": [1, 2]}]}),
        &[
            json!({"n": "1"}),
            json!({"n": 3}),
            json!({"n": 1.5}),
            json!({"n": null}),
        ],
        &[json!({"n": 1}), json!({"n": 1.0}), json!({"n": 2e0})],
    );
    check(
        json!({"n": [{"anything-but": ["1"]}]}),
        &[json!({"n": 1})],
        &[json!({"n": "1"})],
    );
}

/// Area 2, numbers event-ruler cannot compare: an `anything-but` (and a
/// `numeric`) number beyond ±5.0e9 or with more than 6 decimals makes
/// `ComparableNumber.generate` throw, and the rule is refused
/// (ComparableNumber.java: "Value must be between -5000000000 and
/// 5000000000, inclusive", "Only values upto 6 decimals are supported").
#[test]
fn edge_anything_but_numbers_must_be_comparable() {
    use PatternErrorKind as K;
    invalid(
        json!({"a": [{"anything-but": 6e9}]}),
        K::NumericRange,
        "a",
        "-5.0e9 to 5.0e9",
    );
    invalid(
        json!({"a": [{"anything-but": [1, -5000000001i64]}]}),
        K::NumericRange,
        "a",
        "-5.0e9 to 5.0e9",
    );
    invalid(
        json!({"a": [{"anything-but": [1, 0.0000001]}]}),
        K::NumericRange,
        "a",
        "more than 6 decimals",
    );
    invalid(
        json!({"a": [{"numeric": [">", 0.1234567]}]}),
        K::NumericRange,
        "a",
        "more than 6 decimals",
    );
    check(
        json!({"a": [{"anything-but": [5e9, -5e9, 0.000001]}]}),
        &[json!({"a": 1})],
        &[json!({"a": 5000000000u64}), json!({"a": 0.000001})],
    );
}

/// Area 3. event-ruler joins the keys of a pattern and of an event with `.`
/// and matches the joined names, so a dot in a key is a level of nesting on
/// either side (aws/event-ruler README.md, "Caveat: Compiled rules and JSON
/// keys with dots": `{"detail": {"state": {"status": ["running"]}}}` and
/// `{"detail": {"state.status": ["running"]}}` compile alike and both match
/// `{"detail": {"state": {"status": "running"}}}` and `{"detail":
/// {"state.status": "running"}}`; Ruler.java's note on `matches` says
/// `matchesRule` matches the rule `"state.state"` against the nested event).
#[test]
fn edge_dotted_field_names_in_pattern_and_event() {
    let events_yes = [
        detail(json!({"state": {"status": "running"}})),
        detail(json!({"state.status": "running"})),
        json!({"detail.state": {"status": "running"}}),
        json!({"detail.state.status": "running"}),
        json!({"detail": [{"state": [{"status": "running"}]}]}),
    ];
    let events_no = [
        detail(json!({"state": {"status": "stopped"}})),
        detail(json!({"statestatus": "running"})),
        detail(json!({"state": "running"})),
        detail(json!({"state.status.x": "running"})),
        json!({"detail": {"state": {"status.": "running"}}}),
    ];
    for p in [
        json!({"detail": {"state": {"status": ["running"]}}}),
        json!({"detail": {"state.status": ["running"]}}),
        json!({"detail.state": {"status": ["running"]}}),
        json!({"detail.state.status": ["running"]}),
    ] {
        check(p, &events_yes, &events_no);
    }
    // A field named both as a value and as an object: two fields, both
    // required.
    check(
        json!({"a": [1], "a.b": [2]}),
        &[json!({"a": 1, "a.b": 2}), json!({"a.b": 2, "a": [1]})],
        &[json!({"a": 1}), json!({"a": {"b": 2}}), json!({"a.b": 2})],
    );
    // exists works on the joined name.
    check(
        json!({"a.b": [{"exists": false}]}),
        &[
            json!({"a": {"c": 1}}),
            json!({"a.c": 1}),
            json!({"a": {"b": {}}}),
        ],
        &[json!({"a": {"b": 1}}), json!({"a.b": null})],
    );
    // Empty segments are names too: "a..b" is a, "", b.
    check(
        json!({"a..b": ["x"]}),
        &[json!({"a": {"": {"b": "x"}}}), json!({"a.": {"b": "x"}})],
        &[json!({"a": {"b": "x"}})],
    );
    // The name "." is "", "": not the key "".
    check(
        json!({"": {"": [{"prefix": ""}]}}),
        &[json!({".": "z"}), json!({"": {"": "z"}})],
        &[json!({".": null, "": "y"}), json!({"": "y"})],
    );
}

/// Area 3, arrays. `rulesForJSONEvent` never combines values from
/// different elements of one array, whatever the spelling of the names
/// (README.md, "JSON Array Matching"); values outside that array (here under
/// a dotted key) combine with any element.
#[test]
fn edge_dotted_field_names_keep_array_consistency() {
    for p in [
        json!({"a": {"b": [1], "c": [4]}}),
        json!({"a.b": [1], "a.c": [4]}),
        json!({"a.b": [1], "a": {"c": [4]}}),
    ] {
        check(
            p,
            &[
                json!({"a": [{"b": 1, "c": 4}]}),
                json!({"a": [{"b": 3}, {"b": 1, "c": 4}]}),
                json!({"a": [{"b": 1}], "a.c": 4}),
                json!({"a": {"b": 1}, "a.c": [4]}),
            ],
            &[
                json!({"a": [{"b": 1, "c": 2}, {"b": 3, "c": 4}]}),
                json!({"a": [{"b": 1}, {"c": 4}]}),
            ],
        );
    }
}

/// Area 3, one name written twice. event-ruler keeps a rule as a map from
/// joined names to values and writes the leaves in document order, so the
/// last one written wins (JsonRuleCompiler.java `writeRules`,
/// `withOverriding` true by default; the user guide: "if you include a key
/// more than once the last reference will be the one used").
#[test]
fn edge_dotted_name_written_twice_last_wins() {
    check(
        json!({"a.b": ["1"], "a": {"b": ["2"]}}),
        &[json!({"a": {"b": "2"}})],
        &[json!({"a": {"b": "1"}})],
    );
    check(
        json!({"a": {"b": ["2"]}, "a.b": ["1"]}),
        &[json!({"a.b": "1"})],
        &[json!({"a": {"b": "2"}})],
    );
}

/// Area 4. Wildcards EventBridge refuses: consecutive `*` (event-ruler
/// WildcardParser: "Consecutive wildcard characters at pos"), an escape of
/// anything but `*` or `\`, and a field whose wildcards are too complex.
/// The user guide ("Wildcards and event pattern complexity") says rules past
/// a complexity limit are refused with InvalidEventPatternException without
/// giving the limit; the measure is event-ruler's MachineComplexityEvaluator
/// and piflow's limit is 10 (a rule of complexity 9 was seen accepted and
/// one of 12 refused: vals-ai/Valkyrie pull request #278; see
/// src/pattern/complexity.rs).
#[test]
fn edge_wildcard_complexity_and_syntax() {
    use PatternErrorKind as K;
    let stacks = |names: &[&str]| -> Value {
        let values: Vec<Value> = names
            .iter()
            .map(|n| json!({"wildcard": format!("*:stack/{n}/*")}))
            .collect();
        json!({"detail": {"stack-id": values}})
    };
    // Complexity 9: accepted.
    check(
        stacks(&["Shared", "Data", "Api"]),
        &[detail(
            json!({"stack-id": "arn:aws:cloudformation:us-east-1:1:stack/Data/x"}),
        )],
        &[detail(
            json!({"stack-id": "arn:aws:cloudformation:us-east-1:1:stack/Other/x"}),
        )],
    );
    // Complexity 12: "Rule is too complex".
    invalid(
        stacks(&["Shared", "Data", "Api", "Monitoring"]),
        K::TooComplex,
        "detail.stack-id",
        "too complex",
    );
    // The user guide's examples of what to do when a rule is too complex:
    // the ARN with five `*` it advises against is complexity 11 (after
    // `event-bus/`, more `:` keep all six `*` and five `:` alive) and is
    // refused; its Region-specific rewrite and the shortened file path are
    // accepted, and so is the long path (complexity 7).
    invalid(
        json!({"EventBusArn": [{"wildcard": "*:*:*:*:*:event-bus/*"}]}),
        K::TooComplex,
        "EventBusArn",
        "the limit is 10",
    );
    pattern(json!({"EventBusArn": [{"wildcard": "arn:aws:events:us-east-1:*:event-bus/*"}]}));
    pattern(json!({"FileName": [{"wildcard": "/Users/*/dir/dir/dir/dir/dir/doc.txt"}]}));
    pattern(json!({"FileName": [{"wildcard": "/Users/*/doc.txt"}]}));
    // event-ruler's "*a*a*a*" is 7; "*a*a*a*a*a*a*" is 13.
    pattern(json!({"a": [{"wildcard": "*a*a*a*"}]}));
    invalid(
        json!({"a": [{"wildcard": "*a*a*a*a*a*a*"}]}),
        K::TooComplex,
        "a",
        "complexity 11 or more",
    );
    // anything-but wildcards count too, and with plain wildcards of the
    // same field.
    invalid(
        json!({"a": [{"anything-but": {"wildcard": "*a*a*a*a*a*a*"}}]}),
        K::TooComplex,
        "a",
        "too complex",
    );
    invalid(
        json!({"x": {"a": [{"wildcard": "*a*a*a*"}, {"anything-but": {"wildcard": "*a*a*"}}]}}),
        K::TooComplex,
        "x.a",
        "too complex",
    );
    // Fields are measured one by one.
    pattern(json!({"a": [{"wildcard": "*a*a*a*"}], "b": [{"wildcard": "*a*a*a*"}]}));
    invalid(
        json!({"a": [{"wildcard": "a*\\b"}]}),
        K::Wildcard,
        "a",
        "invalid escape",
    );
    invalid(
        json!({"a": [{"wildcard": "a\\"}]}),
        K::Wildcard,
        "a",
        "invalid escape",
    );
    invalid(
        json!({"a": [{"wildcard": "**"}]}),
        K::Wildcard,
        "a",
        "consecutive wildcard",
    );
}

#[test]
fn pattern_set_agrees_with_matching_on_dotted_names() {
    let patterns = [
        json!({"detail.state": ["running"]}),
        json!({"detail": {"state": ["running", "stopped"]}}),
        json!({"detail": {"state.name": [{"prefix": "run"}]}}),
        json!({"a.b": ["1"], "a": {"b": ["2"]}}),
        json!({"$or": [{"a.b": ["x"]}, {"c": {"d.e": ["y"]}}]}),
    ];
    let compiled: Vec<Pattern> = patterns.iter().map(|p| pattern(p.clone())).collect();
    let set = PatternSet::new(compiled.clone());
    assert_eq!(set.unindexed(), 0);
    let events = [
        json!({"detail": {"state": "running"}}),
        json!({"detail.state": "running"}),
        json!({"detail": {"state.name": "running"}}),
        json!({"detail.state.name": "runner"}),
        json!({"detail": [{"state": {"name": "run"}}]}),
        json!({"a": {"b": "2"}}),
        json!({"a.b": "x"}),
        json!({"c.d.e": "y"}),
        json!({"c": {"d": {"e": ["y"]}}}),
    ];
    for e in &events {
        let expected: Vec<usize> = (0..compiled.len())
            .filter(|&i| compiled[i].matches(e))
            .collect();
        assert_eq!(set.matching(e), expected, "event {e}");
    }
    assert_eq!(set.matching(&events[1]), vec![0, 1]);
    assert_eq!(set.matching(&events[3]), vec![2]);
    assert_eq!(set.matching(&events[7]), vec![4]);
}

/// A small deterministic fuzzer over dotted names (cargo-fuzz's
/// `event_pattern` target checks the same property on arbitrary input):
/// compiling never panics, and `PatternSet` answers what `matches` answers.
#[test]
fn generated_dotted_patterns_and_events_agree_with_the_set() {
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 33) as usize) % n
        }
    }
    const KEYS: &[&str] = &["a", "b", "a.b", "b.a", "", ".", "a.", "a.b.a"];
    const STRINGS: &[&str] = &["x", "xy", "y", ""];
    fn value(r: &mut Lcg, depth: usize) -> Value {
        match r.next(if depth > 2 { 5 } else { 8 }) {
            0 => json!(null),
            1 => json!(r.next(3)),
            2 | 3 => json!(STRINGS[r.next(STRINGS.len())]),
            4 => json!(true),
            5 | 6 => {
                let mut m = serde_json::Map::new();
                for _ in 0..1 + r.next(3) {
                    m.insert(KEYS[r.next(KEYS.len())].into(), value(r, depth + 1));
                }
                Value::Object(m)
            }
            _ => Value::Array((0..r.next(3)).map(|_| value(r, depth + 1)).collect()),
        }
    }
    fn alternative(r: &mut Lcg) -> Value {
        let s = STRINGS[r.next(STRINGS.len())];
        match r.next(9) {
            0 => json!(s),
            1 => json!({"prefix": s}),
            2 => json!({"anything-but": s}),
            3 => json!({"anything-but": {"prefix": ["x", "y"]}}),
            4 => json!({"exists": r.next(2) == 0}),
            5 => json!({"wildcard": "*y"}),
            6 => json!(null),
            7 => json!(r.next(3)),
            _ => json!({"anything-but": [0, 1]}),
        }
    }
    fn pattern_value(r: &mut Lcg, depth: usize) -> Value {
        let mut m = serde_json::Map::new();
        for _ in 0..1 + r.next(2) {
            let key = KEYS[r.next(KEYS.len())];
            let v = if depth < 2 && r.next(3) == 0 {
                pattern_value(r, depth + 1)
            } else {
                Value::Array((0..1 + r.next(2)).map(|_| alternative(r)).collect())
            };
            m.insert(key.into(), v);
        }
        if depth == 0 && r.next(4) == 0 {
            m.insert(
                "$or".into(),
                json!([pattern_value(r, 1), pattern_value(r, 1)]),
            );
        }
        Value::Object(m)
    }
    let mut r = Lcg(5);
    let mut matched = 0;
    for _ in 0..300 {
        let sources: Vec<Value> = (0..6).map(|_| pattern_value(&mut r, 0)).collect();
        let sources: Vec<&Value> = sources
            .iter()
            .filter(|p| Pattern::parse(p).is_ok())
            .collect();
        let compiled: Vec<Pattern> = sources.iter().map(|p| pattern((*p).clone())).collect();
        let set = PatternSet::new(compiled.clone());
        for _ in 0..20 {
            let event = value(&mut r, 0);
            let expected: Vec<usize> = (0..compiled.len())
                .filter(|&i| compiled[i].matches(&event))
                .collect();
            matched += expected.len();
            assert_eq!(
                set.matching(&event),
                expected,
                "event {event}, patterns {sources:?}"
            );
        }
    }
    // The generator reaches matches, not only misses.
    assert!(matched > 100, "{matched}");
}

// --- PatternSet -------------------------------------------------------------

#[test]
fn pattern_set_agrees_with_one_by_one_matching() {
    let patterns = [
        json!({"source": ["aws.ec2"], "detail-type": ["A", "B"]}),
        json!({"source": ["aws.ec2"], "detail-type": ["C"]}),
        json!({"source": [{"prefix": "aws."}]}),
        json!({"detail": {"state": [{"exists": false}]}}),
        json!({"$or": [{"source": ["aws.s3"]}, {"detail-type": ["A"]}]}),
        json!({"resources": ["r1", "r2"], "source": ["aws.ec2"]}),
    ];
    let compiled: Vec<Pattern> = patterns.iter().map(|p| pattern(p.clone())).collect();
    let set = PatternSet::new(compiled.clone());
    // Only the `exists: false` pattern has no condition to index: prefixes and
    // `$or`s whose branches all have one are indexed.
    assert_eq!(set.unindexed(), 1);
    let events = [
        json!({"source": "aws.ec2", "detail-type": "A", "resources": ["r2", "r1"]}),
        json!({"source": "aws.ec2", "detail-type": "C", "detail": {"state": "x"}}),
        json!({"source": "aws.s3", "detail-type": "Z"}),
        json!({"source": "other"}),
        json!({"source": ["aws.ec2", "aws.s3"], "detail-type": ["A", "C"]}),
        json!({"source": "aws", "detail-type": "B"}),
        json!({"source": "aé.x", "detail-type": "A"}),
        json!({"source": "aws.ec2", "detail-type": "B", "resources": "r1"}),
    ];
    let mut buf = Vec::new();
    for e in &events {
        let expected: Vec<usize> = (0..compiled.len())
            .filter(|&i| compiled[i].matches(e))
            .collect();
        assert_eq!(set.matching(e), expected, "event {e}");
        set.matching_into(e, &mut buf);
        assert_eq!(buf, expected);
    }
    assert_eq!(set.matching(&events[0]), vec![0, 2, 3, 4, 5]);
}

// --- Input path and input transformer ---------------------------------------

/// The EC2 event of the user guide's "Input transformation" page.
fn transform_event() -> Value {
    json!({
        "version": "0",
        "id": "7bf73129-1428-4cd3-a780-95db273d1602",
        "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2",
        "account": "123456789012",
        "time": "2015-11-11T21:29:54Z",
        "region": "us-east-1",
        "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"],
        "detail": {"instance-id": "i-0123456789", "state": "RUNNING"}
    })
}

fn doc_paths() -> IndexMap<String, String> {
    [
        ("timestamp", "$.time"),
        ("instance", "$.detail.instance-id"),
        ("state", "$.detail.state"),
        ("resource", "$.resources[0]"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn ctx() -> RuleContext {
    RuleContext {
        rule_arn: "arn:aws:events:us-east-1:123456789012:rule/r".into(),
        rule_name: "r".into(),
        ingestion_time: "2015-11-11T21:29:55Z".into(),
    }
}

fn transform(paths: &IndexMap<String, String>, template: &str) -> Value {
    InputTransformer::new(paths, template)
        .unwrap_or_else(|e| panic!("{template}: {e}"))
        .apply(&transform_event(), &ctx())
        .unwrap_or_else(|e| panic!("{template}: {e}"))
}

#[test]
fn doc_transform_json_template() {
    let out = transform(
        &doc_paths(),
        r#"{
  "timestamp" : <timestamp>,
  "instance_id":<instance>,
  "instance_state": [<state>],
  "resource": <resource>
}"#,
    );
    assert_eq!(
        out,
        json!({
            "timestamp": "2015-11-11T21:29:54Z",
            "instance_id": "i-0123456789",
            "instance_state": ["RUNNING"],
            "resource": "arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"
        })
    );
}

#[test]
fn doc_transform_string_templates() {
    assert_eq!(
        transform(&doc_paths(), r#""instance <instance> is in <state>""#),
        json!("instance i-0123456789 is in RUNNING")
    );
    assert_eq!(
        transform(&doc_paths(), r#""instance \"<instance>\" is in <state>""#),
        json!("instance \"i-0123456789\" is in RUNNING")
    );
    assert_eq!(
        transform(
            &doc_paths(),
            r#"{"message": "instance <instance> is in <state>"}"#
        ),
        json!({"message": "instance i-0123456789 is in RUNNING"})
    );
}

#[test]
fn doc_transform_api_reference_example() {
    let paths: IndexMap<String, String> = [
        ("instance", "$.detail.instance-id"),
        ("status", "$.detail.state"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(
        transform(
            &paths,
            r#"{"myInstance": <instance>,"myStatus": "<instance> is in state \"<status>\""}"#
        ),
        json!({"myInstance": "i-0123456789", "myStatus": "i-0123456789 is in state \"RUNNING\""})
    );
    // Plain text is what EventBridge sends for "<instance> is in state <status>";
    // piflow needs JSON and says where the template stops being JSON.
    let t = InputTransformer::new(&paths, "<instance> is in state <status>").unwrap();
    let e = t.apply(&transform_event(), &ctx()).unwrap_err();
    assert_eq!(e.code(), "transform.not-json");
    assert!(e.to_string().contains("line 1 column"), "{e}");
}

#[test]
fn doc_transform_predefined_variables() {
    let out = transform(
        &IndexMap::new(),
        r#"{"event": <aws.events.event>, "full": <aws.events.event.json>,
            "arn": <aws.events.rule-arn>, "name": "rule <aws.events.rule-name>",
            "at": <aws.events.event.ingestion-time>}"#,
    );
    let mut without_detail = transform_event();
    without_detail.as_object_mut().unwrap().remove("detail");
    assert_eq!(out["event"], without_detail);
    assert_eq!(out["full"], transform_event());
    assert_eq!(
        out["arn"],
        json!("arn:aws:events:us-east-1:123456789012:rule/r")
    );
    assert_eq!(out["name"], json!("rule r"));
    assert_eq!(out["at"], json!("2015-11-11T21:29:55Z"));
    // The event can only be a JSON value, not text in a string.
    let e =
        InputTransformer::new(&IndexMap::new(), r#"{"e": "<aws.events.event.json>"}"#).unwrap_err();
    assert_eq!(e.code(), "transform.event-in-string");
}

#[test]
fn doc_transform_object_in_string_loses_inner_quotes() {
    let paths: IndexMap<String, String> = [("detail".to_string(), "$.detail".to_string())].into();
    assert_eq!(
        transform(&paths, r#""Detail is <detail>""#),
        json!("Detail is {instance-id:i-0123456789,state:RUNNING}")
    );
    assert_eq!(
        transform(&paths, r#"{"detail": <detail>}"#),
        json!({"detail": {"instance-id": "i-0123456789", "state": "RUNNING"}})
    );
}

#[test]
fn transform_missing_values_and_escaping() {
    let paths: IndexMap<String, String> = [
        ("gone".to_string(), "$.detail.nothing".to_string()),
        ("all".to_string(), "$.detail.*".to_string()),
    ]
    .into();
    assert_eq!(
        transform(&paths, r#"{"v": <gone>, "s": "[<gone>]", "all": <all>}"#),
        json!({"v": null, "s": "[]", "all": ["i-0123456789", "RUNNING"]})
    );
    // Text with quotes is escaped so the result stays JSON.
    let t = InputTransformer::new(
        &[("q".to_string(), "$.q".to_string())].into(),
        r#"{"s": "say <q>"}"#,
    )
    .unwrap();
    assert_eq!(
        t.apply(&json!({"q": "\"hi\"\n"}), &ctx()).unwrap(),
        json!({"s": "say \"hi\"\n"})
    );
}

#[test]
fn transform_validation() {
    let one =
        |k: &str, v: &str| -> IndexMap<String, String> { [(k.to_string(), v.to_string())].into() };
    assert_eq!(
        InputTransformer::new(&one("aws.x", "$.a"), "1")
            .unwrap_err()
            .code(),
        "transform.invalid-name"
    );
    assert_eq!(
        InputTransformer::new(&one("x", "detail"), "1")
            .unwrap_err()
            .code(),
        "transform.invalid-path"
    );
    assert_eq!(
        InputTransformer::new(&one("x", "$['detail']"), "1")
            .unwrap_err()
            .code(),
        "transform.invalid-path"
    );
    assert_eq!(
        InputTransformer::new(&one("x", "$.a"), "{<x>: 1}")
            .unwrap_err()
            .code(),
        "transform.placeholder-as-key"
    );
    let many: IndexMap<String, String> = (0..101)
        .map(|i| (format!("v{i}"), "$.a".to_string()))
        .collect();
    assert_eq!(
        InputTransformer::new(&many, "1").unwrap_err().code(),
        "transform.too-many-paths"
    );
    let t = InputTransformer::new(&one("x", "$.a"), "{\"a\": <x>,\n \"b\": oops}").unwrap();
    let e = t.apply(&json!({"a": 1}), &ctx()).unwrap_err();
    assert!(
        e.to_string().starts_with("InputTemplate line 2 column 7"),
        "{e}"
    );
    let t = InputTransformer::from_value(&json!({
        "InputPathsMap": {"s": "$.detail.state"}, "InputTemplate": "{\"s\": <s>}"
    }))
    .unwrap();
    assert_eq!(
        t.apply(&transform_event(), &ctx()).unwrap(),
        json!({"s": "RUNNING"})
    );
}

#[test]
fn input_path_selects() {
    let ev = transform_event();
    assert_eq!(
        InputPath::parse("$.detail").unwrap().apply(&ev),
        ev["detail"]
    );
    assert_eq!(
        InputPath::parse("$.detail.instance-id").unwrap().apply(&ev),
        json!("i-0123456789")
    );
    assert_eq!(
        InputPath::parse("$.resources[0]").unwrap().apply(&ev),
        ev["resources"][0]
    );
    assert_eq!(
        InputPath::parse("$.missing").unwrap().apply(&ev),
        Value::Null
    );
    assert!(InputPath::parse("$..x").is_err());
}
