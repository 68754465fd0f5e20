//! The reference estate (integration/estate/README.md) seeded in moto with
//! unique names, for tests of the ECS steps:
//!
//! - an ECS cluster `product-…` and a task definition family `dashboard-…`
//!   (bridge networking, one container `web` with memory and port 80,
//!   image [`BLUE_IMAGE`]);
//! - a service `dashboard-…` with the EXTERNAL deployment controller and one
//!   PRIMARY task set (blue) on the blue target group;
//! - an ALB in the default VPC with a listener whose default action is a
//!   weighted forward: blue 100, green 0;
//! - one IP target registered in each target group (moto reports registered
//!   targets healthy; ECS in moto registers none for task sets).
//!
//! Uses the standard AWS environment that `common::moto::moto()` set.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use aws_sdk_ecs::types as ecs_t;
use aws_sdk_elasticloadbalancingv2::types as elb_t;

use super::moto::Moto;

pub const BLUE_IMAGE: &str = "registry.example/dashboard:1.0";

/// Names and ARNs of one seeded estate.
#[derive(Debug, Clone)]
pub struct Estate {
    pub cluster: String,
    pub service: String,
    pub family: String,
    pub task_definition: String,
    pub blue_task_set: String,
    pub load_balancer: String,
    pub listener: String,
    pub blue_tg: String,
    pub green_tg: String,
}

pub struct Clients {
    pub ecs: aws_sdk_ecs::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
}

pub async fn clients() -> Clients {
    let sdk = piflow_aws_config::sdk_config().await;
    Clients {
        ecs: aws_sdk_ecs::Client::new(&sdk),
        elb: aws_sdk_elasticloadbalancingv2::Client::new(&sdk),
    }
}

/// A short unique suffix (target group and load balancer names are ≤ 32
/// characters).
fn short() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// The default VPC's id and two of its subnets, read from moto's EC2 API
/// with a plain query request (piflow has no EC2 SDK crate).
fn default_subnets(moto: &Moto) -> (String, Vec<String>) {
    let body = "Action=DescribeSubnets&Version=2016-11-15&Filter.1.Name=default-for-az&Filter.1.Value.1=true";
    let req = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\nAuthorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0\r\nX-Amz-Date: 20260101T000000Z\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{body}",
        port = moto.port(),
        len = body.len()
    );
    let mut s = TcpStream::connect(("127.0.0.1", moto.port())).expect("connect to moto");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.write_all(req.as_bytes()).expect("send DescribeSubnets");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read DescribeSubnets");
    let mut vpc = String::new();
    let mut subnets = Vec::new();
    for chunk in text.split("<subnetId>").skip(1) {
        let id = chunk.split('<').next().unwrap_or_default().to_string();
        let v = chunk
            .split("<vpcId>")
            .nth(1)
            .and_then(|c| c.split('<').next())
            .unwrap_or_default()
            .to_string();
        if vpc.is_empty() {
            vpc = v.clone();
        }
        if v == vpc && subnets.len() < 2 {
            subnets.push(id);
        }
    }
    assert!(
        !vpc.is_empty() && subnets.len() == 2,
        "moto's default VPC has no two subnets: {text}"
    );
    (vpc, subnets)
}

/// Seed a fresh estate.
pub async fn seed(moto: &Moto) -> Estate {
    let c = clients().await;
    let id = short();
    let cluster = format!("product-{id}");
    let service = format!("dashboard-{id}");
    let family = format!("dashboard-{id}");

    c.ecs
        .create_cluster()
        .cluster_name(&cluster)
        .send()
        .await
        .expect("create cluster");
    let td = c
        .ecs
        .register_task_definition()
        .family(&family)
        .network_mode(ecs_t::NetworkMode::Bridge)
        .container_definitions(
            ecs_t::ContainerDefinition::builder()
                .name("web")
                .image(BLUE_IMAGE)
                .memory(256)
                .essential(true)
                .port_mappings(
                    ecs_t::PortMapping::builder()
                        .container_port(80)
                        .host_port(0)
                        .protocol(ecs_t::TransportProtocol::Tcp)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("register task definition");
    let task_definition = td
        .task_definition()
        .and_then(|t| t.task_definition_arn())
        .expect("task definition arn")
        .to_string();

    let (vpc, subnets) = default_subnets(moto);
    let tg = |name: String| {
        let elb = c.elb.clone();
        let vpc = vpc.clone();
        async move {
            let out = elb
                .create_target_group()
                .name(name)
                .protocol(elb_t::ProtocolEnum::Http)
                .port(80)
                .vpc_id(vpc)
                .target_type(elb_t::TargetTypeEnum::Ip)
                .send()
                .await
                .expect("create target group");
            out.target_groups()[0]
                .target_group_arn()
                .expect("target group arn")
                .to_string()
        }
    };
    let blue_tg = tg(format!("blue-{id}")).await;
    let green_tg = tg(format!("green-{id}")).await;
    let lb = c
        .elb
        .create_load_balancer()
        .name(format!("alb-{id}"))
        .set_subnets(Some(subnets))
        .r#type(elb_t::LoadBalancerTypeEnum::Application)
        .send()
        .await
        .expect("create load balancer");
    let load_balancer = lb.load_balancers()[0]
        .load_balancer_arn()
        .expect("lb arn")
        .to_string();
    let listener = c
        .elb
        .create_listener()
        .load_balancer_arn(&load_balancer)
        .protocol(elb_t::ProtocolEnum::Http)
        .port(80)
        .default_actions(forward(&blue_tg, 100, &green_tg, 0))
        .send()
        .await
        .expect("create listener");
    let listener = listener.listeners()[0]
        .listener_arn()
        .expect("listener arn")
        .to_string();
    for (tg, ip) in [(&blue_tg, "10.0.1.10"), (&green_tg, "10.0.2.10")] {
        c.elb
            .register_targets()
            .target_group_arn(tg)
            .targets(elb_t::TargetDescription::builder().id(ip).port(80).build())
            .send()
            .await
            .expect("register target");
    }

    let blue_task_set = blue_service(&c, &cluster, &service, &task_definition, &blue_tg).await;

    Estate {
        cluster,
        service,
        family,
        task_definition,
        blue_task_set,
        load_balancer,
        listener,
        blue_tg,
        green_tg,
    }
}

/// An ECS service with the EXTERNAL deployment controller whose one task
/// set (external id `seed-blue`, container `web` on port 80 in
/// `target_group`) is PRIMARY: the task set's ARN.
pub async fn blue_service(
    c: &Clients,
    cluster: &str,
    service: &str,
    task_definition: &str,
    target_group: &str,
) -> String {
    c.ecs
        .create_service()
        .cluster(cluster)
        .service_name(service)
        .desired_count(0)
        .deployment_controller(
            ecs_t::DeploymentController::builder()
                .r#type(ecs_t::DeploymentControllerType::External)
                .build()
                .expect("deployment controller"),
        )
        .send()
        .await
        .expect("create service");
    let ts = c
        .ecs
        .create_task_set()
        .cluster(cluster)
        .service(service)
        .task_definition(task_definition)
        .external_id("seed-blue")
        .load_balancers(
            ecs_t::LoadBalancer::builder()
                .target_group_arn(target_group)
                .container_name("web")
                .container_port(80)
                .build(),
        )
        .send()
        .await
        .expect("create blue task set");
    let blue_task_set = ts
        .task_set()
        .and_then(|t| t.task_set_arn())
        .expect("task set arn")
        .to_string();
    c.ecs
        .update_service_primary_task_set()
        .cluster(cluster)
        .service(service)
        .primary_task_set(&blue_task_set)
        .send()
        .await
        .expect("make blue primary");
    blue_task_set
}

/// A MariaDB instance and a snapshot of it, in moto: (instance, snapshot).
pub async fn source_db() -> (String, String) {
    let rds = aws_sdk_rds::Client::new(&piflow_aws_config::sdk_config().await);
    let id = super::moto::unique("db");
    rds.create_db_instance()
        .db_instance_identifier(&id)
        .db_instance_class("db.t3.micro")
        .engine("mariadb")
        // moto has no default MariaDB version.
        .engine_version("10.11.8")
        .master_username("admin")
        .master_user_password("correct-horse-battery")
        .allocated_storage(20)
        .send()
        .await
        .expect("create db instance");
    let snap = format!("{id}-snap");
    rds.create_db_snapshot()
        .db_instance_identifier(&id)
        .db_snapshot_identifier(&snap)
        .send()
        .await
        .expect("create snapshot");
    (id, snap)
}

/// A weighted forward action.
pub fn forward(a: &str, wa: i32, b: &str, wb: i32) -> elb_t::Action {
    elb_t::Action::builder()
        .r#type(elb_t::ActionTypeEnum::Forward)
        .forward_config(
            elb_t::ForwardActionConfig::builder()
                .target_groups(
                    elb_t::TargetGroupTuple::builder()
                        .target_group_arn(a)
                        .weight(wa)
                        .build(),
                )
                .target_groups(
                    elb_t::TargetGroupTuple::builder()
                        .target_group_arn(b)
                        .weight(wb)
                        .build(),
                )
                .build(),
        )
        .build()
}

impl Estate {
    /// The listener's weights: (blue, green).
    pub async fn weights(&self) -> (i32, i32) {
        let c = clients().await;
        let out = c
            .elb
            .describe_listeners()
            .listener_arns(&self.listener)
            .send()
            .await
            .expect("describe listener");
        let fc = out.listeners()[0].default_actions()[0]
            .forward_config()
            .expect("forward config")
            .clone();
        let w = |arn: &str| {
            fc.target_groups()
                .iter()
                .find(|t| t.target_group_arn() == Some(arn))
                .and_then(|t| t.weight())
                .unwrap_or(-1)
        };
        (w(&self.blue_tg), w(&self.green_tg))
    }

    /// The service's task sets: (arn, status, external id, task definition).
    pub async fn task_sets(&self) -> Vec<(String, String, String, String)> {
        let c = clients().await;
        let out = c
            .ecs
            .describe_services()
            .cluster(&self.cluster)
            .services(&self.service)
            .send()
            .await
            .expect("describe service");
        out.services()[0]
            .task_sets()
            .iter()
            .map(|t| {
                (
                    t.task_set_arn().unwrap_or_default().to_string(),
                    t.status().unwrap_or_default().to_string(),
                    t.external_id().unwrap_or_default().to_string(),
                    t.task_definition().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// The image of the first container of a task definition.
    pub async fn image_of(&self, task_definition: &str) -> String {
        let c = clients().await;
        let out = c
            .ecs
            .describe_task_definition()
            .task_definition(task_definition)
            .send()
            .await
            .expect("describe task definition");
        out.task_definition().expect("td").container_definitions()[0]
            .image()
            .unwrap_or_default()
            .to_string()
    }

    /// The first container of a task definition.
    pub async fn container(&self, task_definition: &str) -> ecs_t::ContainerDefinition {
        let c = clients().await;
        let out = c
            .ecs
            .describe_task_definition()
            .task_definition(task_definition)
            .send()
            .await
            .expect("describe task definition");
        out.task_definition().expect("td").container_definitions()[0].clone()
    }

    /// How many revisions the family has.
    pub async fn revisions(&self) -> usize {
        let c = clients().await;
        c.ecs
            .list_task_definitions()
            .family_prefix(&self.family)
            .send()
            .await
            .expect("list task definitions")
            .task_definition_arns()
            .len()
    }

    /// A CloudWatch metric alarm `name` on a metric of this service, put in
    /// `OK` (moto never evaluates it: its state changes only through
    /// [`Estate::set_alarm`]).
    pub async fn put_alarm(&self, name: &str) {
        put_alarm(name, &self.service).await;
    }

    /// SetAlarmState: `state` is `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub async fn set_alarm(&self, name: &str, state: &str, reason: &str) {
        set_alarm(name, state, reason).await;
    }

    /// An Amazon ECR repository `name` in moto's account
    /// ([`Estate::ECR_ACCOUNT`]) in us-east-1.
    pub async fn ecr_repository(&self, name: &str) {
        Self::ecr_client()
            .await
            .create_repository()
            .repository_name(name)
            .send()
            .await
            .expect("create ECR repository");
    }

    /// PutImage `repository:tag` (a small manifest unique to this call):
    /// the image's URI with the tag, and its digest.
    pub async fn push_image(&self, repository: &str, tag: &str) -> (String, String) {
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 1234,
                "digest": format!("sha256:{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple()),
            },
            "layers": [],
        });
        let out = Self::ecr_client()
            .await
            .put_image()
            .repository_name(repository)
            .image_tag(tag)
            .image_manifest(manifest.to_string())
            .send()
            .await
            .expect("put image");
        let digest = out
            .image()
            .and_then(|i| i.image_id())
            .and_then(|i| i.image_digest())
            .expect("image digest")
            .to_string();
        (Self::ecr_uri(repository, &format!(":{tag}")), digest)
    }

    /// BatchDeleteImage `repository:tag`.
    pub async fn delete_image(&self, repository: &str, tag: &str) {
        let out = Self::ecr_client()
            .await
            .batch_delete_image()
            .repository_name(repository)
            .image_ids(
                aws_sdk_ecr::types::ImageIdentifier::builder()
                    .image_tag(tag)
                    .build(),
            )
            .send()
            .await
            .expect("batch delete image");
        assert!(out.failures().is_empty(), "{:?}", out.failures());
    }

    /// moto's default account id: the registry of its ECR repositories.
    pub const ECR_ACCOUNT: &str = "123456789012";

    /// `123456789012.dkr.ecr.us-east-1.amazonaws.com/REPOSITORY` + `suffix`
    /// (`:TAG`, `@sha256:…` or nothing).
    pub fn ecr_uri(repository: &str, suffix: &str) -> String {
        format!(
            "{}.dkr.ecr.us-east-1.amazonaws.com/{repository}{suffix}",
            Self::ECR_ACCOUNT
        )
    }

    async fn ecr_client() -> aws_sdk_ecr::Client {
        aws_sdk_ecr::Client::new(&piflow_aws_config::sdk_config().await)
    }
}

/// A CloudWatch metric alarm `name` on a service's 5xx count, in state
/// `OK` (moto never evaluates it: its state changes only through
/// [`set_alarm`]).
pub async fn put_alarm(name: &str, service: &str) {
    use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Statistic};
    let cw = aws_sdk_cloudwatch::Client::new(&piflow_aws_config::sdk_config().await);
    cw.put_metric_alarm()
        .alarm_name(name)
        .namespace("piflow/test")
        .metric_name("HTTPCode_Target_5XX_Count")
        .dimensions(Dimension::builder().name("Service").value(service).build())
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
        .send()
        .await
        .expect("put metric alarm");
    set_alarm(name, "OK", "test: no errors").await;
}

/// SetAlarmState: `state` is `OK`, `ALARM` or `INSUFFICIENT_DATA`.
pub async fn set_alarm(name: &str, state: &str, reason: &str) {
    let cw = aws_sdk_cloudwatch::Client::new(&piflow_aws_config::sdk_config().await);
    cw.set_alarm_state()
        .alarm_name(name)
        .state_value(aws_sdk_cloudwatch::types::StateValue::from(state))
        .state_reason(reason)
        .send()
        .await
        .expect("set alarm state");
}
