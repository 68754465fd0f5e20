//! `piflow events test`: the EventBridge pattern tester on the command line.

use assert_cmd::Command;
use serde_json::{Value, json};

/// The EC2 state-change event of the EventBridge user guide, in `state`.
fn ec2_event(state: &str) -> Value {
    let mut e = json!({"version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2",
        "account": "111122223333", "time": "2017-12-22T18:43:48Z", "region": "us-west-1",
        "resources": ["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"]});
    e["detail"] = json!({"instance-id": "i-1234567890abcdef0", "state": state});
    e
}

fn piflow() -> Command {
    let mut c = Command::cargo_bin("piflow").expect("the piflow binary is built");
    c.env("NO_COLOR", "1");
    c
}

#[test]
fn cli_events_test_match_and_no_match() {
    let p = r#"{"source": ["aws.ec2"], "detail": {"state": ["terminated"]}}"#;
    let out = piflow()
        .args([
            "events",
            "test",
            "--pattern",
            p,
            "--event",
            &ec2_event("terminated").to_string(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "match");

    let out = piflow()
        .args([
            "events",
            "test",
            "--pattern",
            p,
            "--event",
            &ec2_event("running").to_string(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no match");

    for (state, expected) in [("terminated", true), ("running", false)] {
        let out = piflow()
            .args(["events", "test", "--format", "json", "--pattern", p])
            .args(["--event", &ec2_event(state).to_string()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v, json!({"match": expected}));
    }
}

#[test]
fn cli_events_test_reads_files() {
    let dir = tempfile::tempdir().unwrap();
    let pf = dir.path().join("pattern.json");
    let ef = dir.path().join("event.json");
    std::fs::write(
        &pf,
        r#"{"detail": {"state": [{"anything-but": "running"}]}}"#,
    )
    .unwrap();
    std::fs::write(&ef, ec2_event("stopped").to_string()).unwrap();
    let out = piflow()
        .args(["events", "test"])
        .arg("--pattern")
        .arg(format!("@{}", pf.display()))
        .arg("--event")
        .arg(format!("@{}", ef.display()))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "match");
}

#[test]
fn cli_events_test_invalid_input_is_exit_2() {
    let ev = ec2_event("x").to_string();
    let out = piflow()
        .args([
            "events",
            "test",
            "--pattern",
            r#"{"detail": {"state": [{"anything-but": true}]}}"#,
        ])
        .args(["--event", &ev])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("detail.state: \"anything-but\" takes"),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    let out = piflow()
        .args([
            "events",
            "test",
            "--pattern",
            r#"{"a": ["x"]}"#,
            "--event",
            "{not json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--event is not valid JSON"));

    let out = piflow()
        .args([
            "events",
            "test",
            "--pattern",
            r#"{"a": ["x"]}"#,
            "--event",
            "[1]",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be a JSON object"));

    let out = piflow()
        .args([
            "events",
            "test",
            "--pattern",
            "@/nonexistent/p.json",
            "--event",
            &ev,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read it"));
}
