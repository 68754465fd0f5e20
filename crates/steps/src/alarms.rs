//! CloudWatch alarms as the rollout steps read them: metric and composite
//! alarms by name, with their state.

use aws_sdk_cloudwatch::types::AlarmType;
use serde_json::{Value, json};

/// One CloudWatch alarm as DescribeAlarms reports it.
#[derive(Debug, Clone)]
pub(crate) struct Alarm {
    pub name: String,
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub state: String,
    pub reason: String,
}

impl Alarm {
    pub fn firing(&self) -> bool {
        self.state == "ALARM"
    }

    pub fn json(&self) -> Value {
        json!({"name": self.name, "state": self.state, "reason": self.reason})
    }
}

/// "CloudWatch alarm NAME is in ALARM (REASON)", joined.
pub(crate) fn describe_firing(firing: &[&Alarm]) -> String {
    firing
        .iter()
        .map(|a| format!("CloudWatch alarm {} is in ALARM ({})", a.name, a.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The named alarms as CloudWatch reports them (metric and composite); a
/// name CloudWatch does not know is absent from the result.
pub(crate) async fn read(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    names: &[String],
) -> Result<
    Vec<Alarm>,
    aws_sdk_cloudwatch::error::SdkError<
        aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsError,
    >,
> {
    let mut found = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let out = cloudwatch
            .describe_alarms()
            .set_alarm_names(Some(names.to_vec()))
            .alarm_types(AlarmType::MetricAlarm)
            .alarm_types(AlarmType::CompositeAlarm)
            .set_next_token(next.take())
            .send()
            .await?;
        let state = |s: Option<&aws_sdk_cloudwatch::types::StateValue>| {
            s.map(|v| v.as_str().to_string())
                .unwrap_or_else(|| "UNKNOWN".into())
        };
        for a in out.metric_alarms() {
            found.push(Alarm {
                name: a.alarm_name().unwrap_or_default().to_string(),
                state: state(a.state_value()),
                reason: a.state_reason().unwrap_or_default().to_string(),
            });
        }
        for a in out.composite_alarms() {
            found.push(Alarm {
                name: a.alarm_name().unwrap_or_default().to_string(),
                state: state(a.state_value()),
                reason: a.state_reason().unwrap_or_default().to_string(),
            });
        }
        match out.next_token() {
            Some(t) if !t.is_empty() => next = Some(t.to_string()),
            _ => break,
        }
    }
    found.retain(|a| names.contains(&a.name));
    Ok(found)
}

/// Names in `names` that CloudWatch does not know.
pub(crate) fn missing<'a>(names: &'a [String], found: &[Alarm]) -> Vec<&'a str> {
    names
        .iter()
        .filter(|n| !found.iter().any(|a| &a.name == *n))
        .map(String::as_str)
        .collect()
}
