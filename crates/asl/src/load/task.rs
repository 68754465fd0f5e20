//! The Task state: Resource (ARNs, optimized integrations, AWS SDK
//! integrations, Lambda functions, piflow steps), timeouts and Credentials.

use crate::diagnostics::{Code, child_pointer};
use crate::jsonata::parse_jsonata_string;
use crate::model::*;
use crate::source::{Node, Span};

use super::Loader;
use super::exprs::NumberCheck;
use super::fields::{did_you_mean, suggest};

impl Loader {
    pub(super) fn task(&mut self, node: &Node, ptr: &str, lang: QueryLanguage) -> Option<Task> {
        let io = self.result_handling(node, ptr, lang);
        let resource = match node.get("Resource") {
            Some(r) => match r.as_str() {
                Some(s) => Some((s.to_string(), r.span)),
                None => {
                    self.wrong_type(
                        &child_pointer(ptr, "Resource"),
                        r,
                        "Resource",
                        "an ARN string",
                    );
                    None
                }
            },
            None => {
                self.error(
                    Code::MissingField,
                    ptr,
                    node.span,
                    "a Task state needs Resource",
                );
                None
            }
        };
        let timeout_seconds = self.number_source(
            node,
            ptr,
            "TimeoutSeconds",
            Some("TimeoutSecondsPath"),
            lang,
            NumberCheck::Int {
                min: 1,
                max: 99_999_999,
            },
        );
        let heartbeat_seconds = self.number_source(
            node,
            ptr,
            "HeartbeatSeconds",
            Some("HeartbeatSecondsPath"),
            lang,
            NumberCheck::Int {
                min: 1,
                max: 99_999_999,
            },
        );
        if let (Some(NumberSource::Value(h)), Some(NumberSource::Value(t))) =
            (&heartbeat_seconds, &timeout_seconds)
            && h >= t
            && let Some(n) = node.get("HeartbeatSeconds")
        {
            self.error(
                Code::InvalidValue,
                &child_pointer(ptr, "HeartbeatSeconds"),
                n.span,
                format!("HeartbeatSeconds ({h}) must be smaller than TimeoutSeconds ({t})"),
            );
        }
        let credentials = node
            .get("Credentials")
            .and_then(|c| self.credentials(c, &child_pointer(ptr, "Credentials"), lang));
        let (resource, span) = resource?;
        let resource_kind = self.resource(&resource, &child_pointer(ptr, "Resource"), span, lang);
        Some(Task {
            resource,
            resource_kind,
            io,
            timeout_seconds,
            heartbeat_seconds,
            credentials,
        })
    }

    fn credentials(&mut self, n: &Node, ptr: &str, lang: QueryLanguage) -> Option<Template> {
        let Some(entries) = n.as_object() else {
            self.wrong_type(ptr, n, "Credentials", "an object with RoleArn");
            return None;
        };
        let has_role = entries.iter().any(|(k, _)| {
            k.name == "RoleArn" || (lang == QueryLanguage::JsonPath && k.name == "RoleArn.$")
        });
        if !has_role {
            self.error(
                Code::MissingField,
                ptr,
                n.span,
                "Credentials needs the field RoleArn",
            );
        }
        for (k, _) in entries {
            let allowed =
                k.name == "RoleArn" || (lang == QueryLanguage::JsonPath && k.name == "RoleArn.$");
            if !allowed {
                self.error(
                    Code::UnknownField,
                    &child_pointer(ptr, &k.name),
                    k.span,
                    format!(
                        "unknown field \"{}\" in Credentials: only RoleArn is allowed",
                        k.name
                    ),
                );
            }
        }
        Some(self.template(n, ptr, lang))
    }

    fn resource(
        &mut self,
        resource: &str,
        ptr: &str,
        span: Span,
        lang: QueryLanguage,
    ) -> ResourceKind {
        let express = self.options.machine_type == MachineType::Express;
        if lang == QueryLanguage::Jsonata && parse_jsonata_string(resource).is_some() {
            self.error(
                Code::InvalidResource,
                ptr,
                span,
                "Resource cannot be a JSONata expression",
            );
            return ResourceKind::Other;
        }
        if let Some(step) = resource.strip_prefix("piflow:") {
            if step.is_empty() {
                self.error(
                    Code::InvalidResource,
                    ptr,
                    span,
                    "\"piflow:\" must name a built-in step, e.g. piflow:lint",
                );
            }
            return ResourceKind::Piflow(step.to_string());
        }
        if resource.contains("${") {
            if placeholder_well_formed(resource) {
                self.warn(
                    Code::Substitution,
                    ptr,
                    span,
                    format!("Resource {resource:?} holds a ${{placeholder}}: it is checked only after DefinitionSubstitutions are applied"),
                );
                return ResourceKind::Other;
            }
            self.error(
                Code::InvalidResource,
                ptr,
                span,
                format!("Resource {resource:?} has an unclosed ${{placeholder}}"),
            );
            return ResourceKind::Other;
        }
        let parts: Vec<&str> = resource.splitn(6, ':').collect();
        if parts.len() < 3 || parts[0] != "arn" || parts[1].is_empty() {
            self.error(
                Code::InvalidResource,
                ptr,
                span,
                format!("Resource {resource:?} is not an ARN (arn:partition:service:...) or a piflow: step"),
            );
            return ResourceKind::Other;
        }
        let service = parts[2];
        let kind = if service == "states"
            && parts.len() == 6
            && parts[3].is_empty()
            && parts[4].is_empty()
        {
            self.integration(parts[5], ptr, span)
        } else if service == "states" && parts.len() == 6 && parts[5].starts_with("activity:") {
            ResourceKind::Activity
        } else if service == "lambda" {
            if parts.len() == 6 {
                self.lambda_function(parts[5], resource, ptr, span);
            }
            ResourceKind::Lambda
        } else {
            ResourceKind::Other
        };
        if express {
            let reason = match &kind {
                ResourceKind::Activity | ResourceKind::Other => Some("Activity ARN".to_string()),
                ResourceKind::Integration { pattern, .. }
                | ResourceKind::AwsSdk { pattern, .. } => match pattern {
                    IntegrationPattern::Sync | IntegrationPattern::Sync2 => {
                        Some("'.sync' service integration".to_string())
                    }
                    IntegrationPattern::WaitForTaskToken => {
                        Some("'.waitForTaskToken' service integration".to_string())
                    }
                    IntegrationPattern::RequestResponse => None,
                },
                _ => None,
            };
            if let Some(r) = reason {
                self.error(
                    Code::ExpressUnsupported,
                    ptr,
                    span,
                    format!("an EXPRESS state machine does not support {r} ({resource})"),
                );
            }
        }
        kind
    }

    fn lambda_function(&mut self, rest: &str, resource: &str, ptr: &str, span: Span) {
        // rest = "function:NAME[:QUALIFIER]"
        let Some(spec) = rest.strip_prefix("function:") else {
            return;
        };
        let mut it = spec.splitn(2, ':');
        let name = it.next().unwrap_or("");
        let qualifier = it.next();
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        let qual_ok = qualifier.is_none_or(|q| {
            q == "$LATEST"
                || (!q.is_empty()
                    && q.len() <= 128
                    && q.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        });
        if !name_ok || !qual_ok {
            self.error(
                Code::InvalidResource,
                ptr,
                span,
                format!(
                    "Resource {resource:?} is not a valid Lambda function ARN: the function name and the optional version or alias may hold only letters, digits, '-' and '_'"
                ),
            );
        }
    }

    fn integration(&mut self, spec: &str, ptr: &str, span: Span) -> ResourceKind {
        let (base, pattern) = if let Some(b) = spec.strip_suffix(".waitForTaskToken") {
            (b, IntegrationPattern::WaitForTaskToken)
        } else if let Some(b) = spec.strip_suffix(".sync:2") {
            (b, IntegrationPattern::Sync2)
        } else if let Some(b) = spec.strip_suffix(".sync") {
            (b, IntegrationPattern::Sync)
        } else {
            (spec, IntegrationPattern::RequestResponse)
        };
        if let Some(sdk) = base.strip_prefix("aws-sdk:") {
            let mut it = sdk.splitn(2, ':');
            let service = it.next().unwrap_or("").to_string();
            let action = it.next().unwrap_or("").to_string();
            if service.is_empty() || action.is_empty() {
                self.error(
                    Code::InvalidResource,
                    ptr,
                    span,
                    format!("arn:aws:states:::aws-sdk:{sdk} must name a service and an action (aws-sdk:SERVICE:ACTION)"),
                );
            }
            return ResourceKind::AwsSdk {
                service,
                action,
                pattern,
            };
        }
        let mut it = base.splitn(2, ':');
        let service = it.next().unwrap_or("").to_string();
        let action = it.next().unwrap_or("").to_string();
        if let Some(known) = known_actions(&service) {
            if !known.contains(&action.as_str()) {
                let hint = did_you_mean(suggest(&action, known.iter().copied()));
                self.error(
                    Code::InvalidResource,
                    ptr,
                    span,
                    format!(
                        "the resource arn:<partition>:states:::{base} is not a known {service} integration (known: {}){hint}; for other actions use arn:aws:states:::aws-sdk:{service}:ACTION",
                        known.join(", ")
                    ),
                );
            }
        } else if service.is_empty() || action.is_empty() {
            self.error(
                Code::InvalidResource,
                ptr,
                span,
                format!(
                    "arn:aws:states:::{base} must name a service and an action (SERVICE:ACTION)"
                ),
            );
        }
        ResourceKind::Integration {
            service,
            action,
            pattern,
        }
    }
}

fn placeholder_well_formed(s: &str) -> bool {
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(j) if j > 0 => rest = &after[j + 1..],
            _ => return false,
        }
    }
    true
}

/// The request-response actions of the optimized integrations whose action
/// list piflow knows exactly; other services are accepted as written.
fn known_actions(service: &str) -> Option<&'static [&'static str]> {
    Some(match service {
        "lambda" => &["invoke"],
        "dynamodb" => &["getItem", "putItem", "updateItem", "deleteItem"],
        "sqs" => &["sendMessage"],
        "sns" => &["publish"],
        "events" => &["putEvents"],
        "states" => &["startExecution"],
        "ecs" => &["runTask"],
        "batch" => &["submitJob"],
        "glue" => &["startJobRun"],
        "apigateway" => &["invoke"],
        "http" => &["invoke"],
        "s3" => &["getObject", "listObjectsV2", "putObject"],
        "codebuild" => &[
            "startBuild",
            "stopBuild",
            "batchDeleteBuilds",
            "batchGetReports",
            "startBuildBatch",
            "stopBuildBatch",
            "retryBuild",
            "retryBuildBatch",
            "batchGetBuilds",
        ],
        _ => return None,
    })
}
