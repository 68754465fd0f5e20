//! The server's identity (partition, region, account) and the ARNs of its
//! resources: state machines (with a version or alias qualifier) and
//! executions, as Step Functions writes them.

use piflow_runner::NameProblem;

use crate::api::ApiError;

/// The default account of a server that is given none (the account AWS's
/// documentation writes).
pub const DEFAULT_ACCOUNT: &str = "123456789012";

/// The region and account the server answers for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub region: String,
    pub account: String,
}

/// What a state machine ARN names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MachineRef {
    Machine(String),
    /// `…:stateMachine:NAME:N`
    Version(String, u64),
    /// `…:stateMachine:NAME:ALIAS`
    Alias(String, String),
}

impl MachineRef {
    /// The state machine's name.
    pub fn name(&self) -> &str {
        match self {
            MachineRef::Machine(n) | MachineRef::Version(n, _) | MachineRef::Alias(n, _) => n,
        }
    }
}

impl Identity {
    /// `PIFLOW_API_REGION` (else `AWS_REGION`, `AWS_DEFAULT_REGION`,
    /// `us-east-1`) and `PIFLOW_API_ACCOUNT_ID` (else 123456789012).
    pub fn from_env() -> Identity {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        Identity {
            region: var("PIFLOW_API_REGION")
                .or_else(|| var("AWS_REGION"))
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".into()),
            account: var("PIFLOW_API_ACCOUNT_ID").unwrap_or_else(|| DEFAULT_ACCOUNT.into()),
        }
    }

    fn prefix(&self) -> String {
        format!("arn:aws:states:{}:{}", self.region, self.account)
    }

    pub fn machine_arn(&self, name: &str) -> String {
        format!("{}:stateMachine:{name}", self.prefix())
    }

    pub fn version_arn(&self, name: &str, version: u64) -> String {
        format!("{}:stateMachine:{name}:{version}", self.prefix())
    }

    pub fn alias_arn(&self, name: &str, alias: &str) -> String {
        format!("{}:stateMachine:{name}:{alias}", self.prefix())
    }

    /// An activity's ARN (with an empty name: the prefix of them all).
    pub fn activity_arn(&self, name: &str) -> String {
        format!("{}:activity:{name}", self.prefix())
    }

    /// The name an activity ARN of this server names.
    pub fn parse_activity(&self, field: &str, arn: &str) -> Result<String, ApiError> {
        match self.parts(field, arn, "activity")?.as_slice() {
            [name] => Ok((*name).to_string()),
            _ => Err(ApiError::new(
                "InvalidArn",
                format!("Invalid Arn: '{arn}' ({field}): an activity ARN ends with its name"),
            )),
        }
    }

    pub fn execution_arn(&self, machine: &str, name: &str) -> String {
        format!("{}:execution:{machine}:{name}", self.prefix())
    }

    /// The ARN of a [`MachineRef`].
    pub fn arn_of(&self, r: &MachineRef) -> String {
        match r {
            MachineRef::Machine(n) => self.machine_arn(n),
            MachineRef::Version(n, v) => self.version_arn(n, *v),
            MachineRef::Alias(n, a) => self.alias_arn(n, a),
        }
    }

    /// The parts after `arn:aws:states:REGION:ACCOUNT:KIND:`, checked to be
    /// this server's.
    fn parts<'a>(&self, field: &str, arn: &'a str, kind: &str) -> Result<Vec<&'a str>, ApiError> {
        let parts: Vec<&str> = arn.split(':').collect();
        let bad = |why: String| {
            ApiError::new(
                "InvalidArn",
                format!("Invalid Arn: '{arn}' ({field}): {why}"),
            )
        };
        if parts.len() < 7 || parts[0] != "arn" || parts[2] != "states" {
            return Err(bad(format!(
                "not a Step Functions ARN (arn:aws:states:REGION:ACCOUNT:{kind}:NAME…)"
            )));
        }
        if parts[1] != "aws" {
            return Err(bad(format!("partition {:?} is not aws", parts[1])));
        }
        if parts[3] != self.region {
            return Err(bad(format!(
                "it names region {:?}; this server answers for region {:?} (PIFLOW_API_REGION)",
                parts[3], self.region
            )));
        }
        if parts[4] != self.account {
            return Err(bad(format!(
                "it names account {:?}; this server answers for account {:?} (PIFLOW_API_ACCOUNT_ID)",
                parts[4], self.account
            )));
        }
        if parts[5] != kind {
            return Err(bad(format!(
                "Resource type not valid in this context: {:?} (a {kind} ARN is expected)",
                parts[5]
            )));
        }
        if parts[6..].iter().any(|p| p.is_empty()) {
            return Err(bad("an empty name".into()));
        }
        Ok(parts[6..].to_vec())
    }

    /// A state machine ARN, with or without a version or alias qualifier.
    pub fn parse_machine(&self, field: &str, arn: &str) -> Result<MachineRef, ApiError> {
        let parts = self.parts(field, arn, "stateMachine")?;
        match parts.as_slice() {
            [name] => Ok(MachineRef::Machine((*name).to_string())),
            [name, q] if q.chars().all(|c| c.is_ascii_digit()) => match q.parse::<u64>() {
                Ok(v) if v > 0 => Ok(MachineRef::Version((*name).to_string(), v)),
                _ => Err(ApiError::new(
                    "InvalidArn",
                    format!(
                        "Invalid Arn: '{arn}' ({field}): version {q:?} is not a version number"
                    ),
                )),
            },
            [name, alias] => Ok(MachineRef::Alias((*name).to_string(), (*alias).to_string())),
            _ => Err(ApiError::new(
                "InvalidArn",
                format!("Invalid Arn: '{arn}' ({field}): too many parts after stateMachine"),
            )),
        }
    }

    /// An execution ARN: the state machine's name and the execution's.
    pub fn parse_execution(&self, field: &str, arn: &str) -> Result<(String, String), ApiError> {
        match self.parts(field, arn, "execution")?.as_slice() {
            [machine, name] => Ok(((*machine).to_string(), (*name).to_string())),
            _ => Err(ApiError::new(
                "InvalidArn",
                format!(
                    "Invalid Arn: '{arn}' ({field}): an execution ARN ends in :execution:MACHINE:NAME"
                ),
            )),
        }
    }
}

/// A name as Step Functions allows it (state machines, executions,
/// aliases): 1–80 characters, none of whitespace, `< > { } [ ] ? * " # %
/// \ ^ | ~ ` $ & , ; : /` or controls. Else `InvalidName`.
pub fn check_name(what: &str, name: &str) -> Result<(), ApiError> {
    let message = match piflow_runner::name_problem(name) {
        None => return Ok(()),
        Some(NameProblem::Length(n)) => {
            format!("Invalid Name: '{name}' ({what} names are 1 to 80 characters; it has {n})")
        }
        Some(NameProblem::Char(c)) => format!(
            "Invalid Name: '{name}' ({what} names may not contain {c:?}: no whitespace, control characters or any of < > {{ }} [ ] ? * \" # % \\ ^ | ~ ` $ & , ; : /)"
        ),
    };
    Err(ApiError::new("InvalidName", message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> Identity {
        Identity {
            region: "us-east-1".into(),
            account: "123456789012".into(),
        }
    }

    #[test]
    fn arns_round_trip_and_foreign_ones_are_refused_naming_why() {
        let i = id();
        for r in [
            MachineRef::Machine("m".into()),
            MachineRef::Version("m".into(), 7),
            MachineRef::Alias("m".into(), "prod".into()),
        ] {
            assert_eq!(i.parse_machine("f", &i.arn_of(&r)).unwrap(), r);
        }
        assert_eq!(
            i.parse_execution("f", &i.execution_arn("m", "e1")).unwrap(),
            ("m".to_string(), "e1".to_string())
        );
        let cases = [
            (
                "arn:aws:states:eu-west-1:123456789012:stateMachine:m",
                "region \"eu-west-1\"",
            ),
            (
                "arn:aws:states:us-east-1:999999999999:stateMachine:m",
                "account \"999999999999\"",
            ),
            (
                "arn:aws:states:us-east-1:123456789012:activity:m",
                "Resource type",
            ),
            (
                "arn:aws:lambda:us-east-1:123456789012:function:m",
                "not a Step Functions ARN",
            ),
            ("m", "not a Step Functions ARN"),
            (
                "arn:aws:states:us-east-1:123456789012:stateMachine:m:0",
                "not a version number",
            ),
            (
                "arn:aws:states:us-east-1:123456789012:stateMachine:",
                "empty name",
            ),
            (
                "arn:aws:states:us-east-1:123456789012:stateMachine:m:a:b",
                "too many parts",
            ),
        ];
        for (arn, says) in cases {
            let e = i.parse_machine("stateMachineArn", arn).unwrap_err();
            assert_eq!(e.kind, "InvalidArn", "{arn}");
            assert!(e.message.contains(says), "{arn}: {}", e.message);
            assert!(e.message.contains("stateMachineArn"), "{}", e.message);
        }
        let e = i
            .parse_execution("executionArn", &i.machine_arn("m"))
            .unwrap_err();
        assert!(e.message.contains("Resource type"), "{}", e.message);
    }

    #[test]
    fn names_follow_aws_rules() {
        assert!(check_name("execution", "deploy-2026_12.05").is_ok());
        for bad in ["", "a b", "a:b", "a/b", "x\u{7}", &"n".repeat(81)] {
            let e = check_name("execution", bad).unwrap_err();
            assert_eq!(e.kind, "InvalidName", "{bad:?}");
        }
    }
}
