//! EventBridge event patterns: `triggers::Pattern::parse` on arbitrary JSON,
//! and `matches` of each compiled pattern (alone and through a `PatternSet`)
//! against fixed events and against the input itself.
//!
//! The input is one JSON document, or two separated by a NUL byte: the
//! pattern, then an event to match it against.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use piflow_triggers::{Pattern, PatternSet};
use serde_json::{Value, json};

static EVENTS: LazyLock<Vec<Value>> = LazyLock::new(|| {
    vec![
        json!({
            "version": "0", "id": "6a7e8feb", "detail-type": "EC2 Instance State-change Notification",
            "source": "aws.ec2", "account": "111122223333", "time": "2017-12-22T18:43:48Z",
            "region": "us-west-1", "resources": ["arn:aws:ec2:us-west-1:123456789012:instance/i-1"],
            "detail": {"instance-id": "i-1", "state": "terminated", "c-count": 5, "x-limit": 301.8,
                       "sourceIPAddress": "10.0.0.255", "v6": "2001:db8::1", "n": null, "e": "",
                       "items": [{"a": 1, "b": "x"}, {"a": 2, "b": [true, null, "Y*Z"]}], "empty": []}
        }),
        json!({"a": [[["deep"]]], "b": {"c": {"d": {"e": -1e300}}}, "ünï": "İSTANBUL"}),
        // Dotted keys: EventBridge names fields by their joined paths.
        json!({"detail.state": "running", "a.b": {"c.d": [1, null, "x"]}, "a": [{"b": {"c": "y"}}],
               "": {"": "e"}, ".": ".", "b.c": [{"d.e": true}]}),
        json!({}),
    ]
});

fuzz_target!(|data: &[u8]| {
    let (pattern_bytes, event_bytes) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let Ok(pattern_json) = serde_json::from_slice::<Value>(pattern_bytes) else {
        return;
    };
    let pattern = match Pattern::parse(&pattern_json) {
        Ok(p) => p,
        Err(e) => {
            // Every error names a code and renders.
            assert!(e.code().starts_with("pattern."));
            let _ = e.to_string();
            return;
        }
    };
    let extra = event_bytes.and_then(|b| serde_json::from_slice::<Value>(b).ok());
    let set = PatternSet::new(vec![pattern.clone()]);
    for event in EVENTS
        .iter()
        .chain(extra.iter())
        .chain(std::iter::once(&pattern_json))
    {
        let one = pattern.matches(event);
        let via_set = !set.matching(event).is_empty();
        assert_eq!(one, via_set, "PatternSet disagrees with Pattern::matches");
    }
});
