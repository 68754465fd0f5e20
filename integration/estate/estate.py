#!/usr/bin/env python3
"""The reference estate in the local AWS emulator (moto server): seed it, show it.

Usage (with the interpreter of integration/emulator/setup.sh):

    AWS_ENDPOINT_URL=http://127.0.0.1:PORT .emu/venv/bin/python \\
        integration/estate/estate.py seed [--external] [--suffix S] [--region R] [--image IMAGE]
    ... integration/estate/estate.py show [--suffix S] [--region R]

What `seed` makes, in the region (default $AWS_REGION, else us-east-1), with
names ending in `-S` when --suffix is given (so that several estates share
one server):

- ECS cluster `product`; for each service (dashboard, renderer, scheduler,
  pirana) a Fargate task definition family of the same name (awsvpc
  networking, cpu 256, memory 512, container `web` with memory 512, port 80,
  image IMAGE, default registry.example/product/SERVICE:0.9, DB_HOST=product-db)
  and a service as Terraform would make it: the default `ECS` deployment
  controller, launch type FARGATE, desired count 2, awsvpc network
  configuration (the default VPC's first two default subnets, its default
  security group), deploymentConfiguration strategy ROLLING with the
  deployment circuit breaker on (rollback), maximumPercent 200,
  minimumHealthyPercent 100 (the deployer picks the strategy of each release),
  and one load balancer entry: the primary target group, container `web`
  port 80, and advancedConfiguration (alternate target group, production and
  test listener rules, a made-up infrastructure role
  arn:aws:iam::123456789012:role/ecsInfrastructureRoleForLoadBalancers);
- an Application Load Balancer `product` in the default VPC with a
  production listener (HTTP 80) and a test listener (HTTP 8080), both
  answering 404 by default; per service a primary and an alternate target
  group (`SERVICE-primary`, `SERVICE-alternate`, target type ip, one IP
  target each: moto reports registered targets healthy), a production
  listener rule (path /SERVICE/*, weighted forward primary 100 / alternate
  0) and a test listener rule on the test listener (the same);
- RDS MariaDB 10.11.8 instance `product-db` and a manual snapshot of it
  (`product-db-seed`), for the restore workflow;
- an EFS file system tagged Name=product-files.

awsvpc and FARGATE: moto 5.2.5 accepts both for services (given subnets and
security groups); only its task sets and run_task refuse awsvpc.

`seed --external` makes instead the estate of the task-set driver, as before:
services dashboard, renderer, scheduler with the EXTERNAL deployment
controller, desired count 0, one PRIMARY (blue) task set each (bridge
networking: moto answers 500 to task sets with awsvpc), one listener per
service (ports 80, 81, 82) whose default action is a weighted forward blue
100 / green 0, and the same RDS and EFS. An ECS estate and an external one
cannot share a suffix (the script says so).

It prints the estate as JSON on stdout:

    {"region", "cluster", "load_balancer", "dns_name", "controller": "ECS",
     "services": {NAME: {"service", "service_arn", "task_definition", "image",
                         "container": "web", "target_group",
                         "alternate_target_group", "production_listener_rule",
                         "test_listener_rule", "listener"}},
     "database": {"instance", "snapshot"}, "file_system": ID}

("listener" is the production listener). With --external the keys are the
ones the task-set driver's tests read: services NAME: {"service",
"listener", "blue_target_group", "green_target_group", "task_definition"},
and "controller": "EXTERNAL".

`show` prints, for either estate, a table: service, controller, task
definition, image, the last service deployment's status and lifecycle stage
(for an EXTERNAL service: one row per task set and its status), and the
production traffic weights.

It refuses to run against anything but a loopback endpoint: it is for the
emulator, never for a real account. Run twice with the same suffix, it
reuses what exists.
"""

import argparse
import json
import os
import sys
import urllib.parse

import boto3
from botocore.exceptions import ClientError

SERVICES = ["dashboard", "renderer", "scheduler"]
ECS_SERVICES = ["dashboard", "renderer", "scheduler", "pirana"]
ROLE = "arn:aws:iam::123456789012:role/ecsInfrastructureRoleForLoadBalancers"
PRODUCTION_PORT = 80
TEST_PORT = 8080


def die(message):
    print("seed.py: " + message, file=sys.stderr)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["seed", "show"])
    ap.add_argument("--suffix", default="", help="appended to every name as -SUFFIX")
    ap.add_argument("--region", default=os.environ.get("AWS_REGION") or "us-east-1")
    ap.add_argument("--image", default=None, help="image of the services (default registry.example/product/SERVICE:0.9)")
    ap.add_argument(
        "--external", action="store_true",
        help="seed the task-set driver's estate (EXTERNAL deployment controller, task sets) instead",
    )
    args = ap.parse_args()

    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    host = urllib.parse.urlparse(endpoint).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        die("AWS_ENDPOINT_URL must point at the local emulator (http://127.0.0.1:PORT), not %r" % endpoint)

    sfx = "-" + args.suffix if args.suffix else ""
    session = boto3.session.Session(region_name=args.region)
    if args.command == "show":
        show(session, sfx)
    elif args.external:
        seed_external(session, sfx, args)
    else:
        seed_ecs(session, sfx, args)


def show(session, sfx):
    """Every service of either estate, as a table: controller, task
    definition, image, last deployment (or task sets) and production traffic."""
    ecs = session.client("ecs")
    elb = session.client("elbv2")
    cluster = "product" + sfx
    try:
        lb = elb.describe_load_balancers(Names=["product" + sfx])["LoadBalancers"][0]
    except ClientError:
        die("no load balancer product%s: seed the estate first" % sfx)
    listener_weights = {}
    for l in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]:
        for tg in l["DefaultActions"][0].get("ForwardConfig", {}).get("TargetGroups", []):
            listener_weights[tg["TargetGroupArn"]] = tg.get("Weight", 0)
    images = {}

    def image_of(td):
        if td not in images:
            images[td] = ecs.describe_task_definition(taskDefinition=td)["taskDefinition"]["containerDefinitions"][0]["image"]
        return images[td]

    row = "%-10s %-10s %-22s %-42s %-36s %s"
    print(row % ("service", "controller", "task definition", "image", "deployment", "production traffic"))
    try:
        found = ecs.describe_services(cluster=cluster, services=[n + sfx for n in ECS_SERVICES])["services"]
    except ClientError as e:
        die("cannot describe the services of cluster %s: %s" % (cluster, e))
    for svc in found:
        if svc.get("status") != "ACTIVE":
            continue
        name = svc["serviceName"][: len(svc["serviceName"]) - len(sfx)] if sfx else svc["serviceName"]
        controller = (svc.get("deploymentController") or {}).get("type", "ECS")
        if controller != "ECS":
            for ts in svc.get("taskSets", []):
                td = ts["taskDefinition"]
                tg = (ts.get("loadBalancers") or [{}])[0].get("targetGroupArn", "")
                print(row % (name, controller, td.split("/")[-1], image_of(td), "task set " + ts["status"],
                             "%s%%" % listener_weights.get(tg, "?")))
            continue
        td = svc["taskDefinition"]
        deployment = "-"
        listed = ecs.list_service_deployments(cluster=cluster, service=svc["serviceName"], maxResults=1)["serviceDeployments"]
        if listed:
            d = ecs.describe_service_deployments(serviceDeploymentArns=[listed[0]["serviceDeploymentArn"]])["serviceDeployments"][0]
            deployment = "%s %s" % (d["status"], d.get("lifecycleStage", "")) if d.get("lifecycleStage") else d["status"]
        traffic = "-"
        lbs = [x for x in svc.get("loadBalancers", []) if x.get("advancedConfiguration")]
        if lbs:
            adv = lbs[0]["advancedConfiguration"]
            labels = {lbs[0]["targetGroupArn"]: "primary", adv["alternateTargetGroupArn"]: "alternate"}
            try:
                rule = elb.describe_rules(RuleArns=[adv["productionListenerRule"]])["Rules"][0]
                groups = [a for a in rule["Actions"] if a["Type"] == "forward"][0]["ForwardConfig"]["TargetGroups"]
                traffic = " ".join("%s %s" % (labels.get(g["TargetGroupArn"], g["TargetGroupArn"].split("/")[-2]), g.get("Weight"))
                                   for g in groups)
            except (ClientError, IndexError, KeyError):
                traffic = "?"
        print(row % (name, controller, td.split("/")[-1], image_of(td), deployment, traffic))


def default_network(ec2):
    """The default VPC, its first two default subnets and its default security group."""
    subnets = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    if len(subnets) < 2:
        die("the emulator's default VPC has fewer than two subnets")
    vpc = subnets[0]["VpcId"]
    subnet_ids = [s["SubnetId"] for s in subnets if s["VpcId"] == vpc][:2]
    groups = ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "group-name", "Values": ["default"]}]
    )["SecurityGroups"]
    return vpc, subnet_ids, groups[0]["GroupId"] if groups else None


def seed_data(session, sfx, out):
    """The RDS instance with its snapshot and the EFS file system (both estates)."""
    rds = session.client("rds")
    efs = session.client("efs")
    db = "product-db" + sfx
    try:
        rds.describe_db_instances(DBInstanceIdentifier=db)
    except ClientError:
        rds.create_db_instance(
            DBInstanceIdentifier=db,
            DBInstanceClass="db.t3.micro",
            Engine="mariadb",
            EngineVersion="10.11.8",
            MasterUsername="product",
            MasterUserPassword="emulator-only-password",
            AllocatedStorage=20,
            BackupRetentionPeriod=7,
        )
    snapshot = "product-db-seed" + sfx
    try:
        rds.describe_db_snapshots(DBSnapshotIdentifier=snapshot)
    except ClientError:
        rds.create_db_snapshot(DBInstanceIdentifier=db, DBSnapshotIdentifier=snapshot)
    out["database"] = {"instance": db, "snapshot": snapshot}

    fs_name = "product-files" + sfx
    fs = [f for f in efs.describe_file_systems()["FileSystems"] if f.get("Name") == fs_name]
    if not fs:
        fs = [efs.create_file_system(CreationToken=fs_name, Encrypted=True, Tags=[{"Key": "Name", "Value": fs_name}])]
    out["file_system"] = fs[0]["FileSystemId"]


def existing_service(ecs, cluster, service, want):
    """The ACTIVE service of that name, or None; dies if it has another
    deployment controller (the other estate under the same suffix)."""
    found = [s for s in ecs.describe_services(cluster=cluster, services=[service])["services"] if s.get("status") == "ACTIVE"]
    if not found:
        return None
    controller = (found[0].get("deploymentController") or {}).get("type", "ECS")
    if controller != want:
        die(
            "service %s in cluster %s has the %s deployment controller: it belongs to the %s estate; "
            "seed this one with another --suffix" % (service, cluster, controller, "external" if controller == "EXTERNAL" else "ECS")
        )
    return found[0]


def seed_ecs(session, sfx, args):
    """The estate under the ECS deployment controller (see the docstring)."""
    ecs = session.client("ecs")
    elb = session.client("elbv2")
    ec2 = session.client("ec2")
    vpc, subnet_ids, security_group = default_network(ec2)

    cluster = "product" + sfx
    ecs.create_cluster(clusterName=cluster)

    lb_name = "product" + sfx
    try:
        lb = elb.describe_load_balancers(Names=[lb_name])["LoadBalancers"][0]
    except ClientError:
        lb = elb.create_load_balancer(Name=lb_name, Subnets=subnet_ids, Type="application")["LoadBalancers"][0]
    lb_arn = lb["LoadBalancerArn"]
    listeners = {l["Port"]: l for l in elb.describe_listeners(LoadBalancerArn=lb_arn)["Listeners"]}
    for port in (PRODUCTION_PORT, TEST_PORT):
        if port in listeners and listeners[port]["DefaultActions"][0]["Type"] == "forward":
            die("load balancer %s has the external estate's listeners: seed this one with another --suffix" % lb_name)

    def listener(port):
        if port in listeners:
            return listeners[port]["ListenerArn"]
        return elb.create_listener(
            LoadBalancerArn=lb_arn, Protocol="HTTP", Port=port,
            DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404", "ContentType": "text/plain"}}],
        )["Listeners"][0]["ListenerArn"]

    production_listener, test_listener = listener(PRODUCTION_PORT), listener(TEST_PORT)
    rules = {
        arn: elb.describe_rules(ListenerArn=arn)["Rules"] for arn in (production_listener, test_listener)
    }

    def rule(listener_arn, priority, path, primary, alternate):
        for r in rules[listener_arn]:
            for c in r.get("Conditions", []):
                values = c.get("Values") or (c.get("PathPatternConfig") or {}).get("Values") or []
                if c.get("Field") == "path-pattern" and values == [path]:
                    return r["RuleArn"]
        return elb.create_rule(
            ListenerArn=listener_arn, Priority=priority,
            Conditions=[{"Field": "path-pattern", "Values": [path]}],
            Actions=[{"Type": "forward", "ForwardConfig": {"TargetGroups": [
                {"TargetGroupArn": primary, "Weight": 100}, {"TargetGroupArn": alternate, "Weight": 0}]}}],
        )["Rules"][0]["RuleArn"]

    out = {
        "region": args.region,
        "cluster": cluster,
        "load_balancer": lb_arn,
        "dns_name": lb.get("DNSName"),
        "controller": "ECS",
        "services": {},
    }
    for i, name in enumerate(ECS_SERVICES):
        service = name + sfx
        image = args.image or "registry.example/product/%s:0.9" % name

        def target_group(role, ip):
            tg_name = "%s-%s%s" % (name[:10], role, sfx)[:32]
            try:
                return elb.describe_target_groups(Names=[tg_name])["TargetGroups"][0]["TargetGroupArn"]
            except ClientError:
                arn = elb.create_target_group(
                    Name=tg_name, Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip"
                )["TargetGroups"][0]["TargetGroupArn"]
                elb.register_targets(TargetGroupArn=arn, Targets=[{"Id": ip, "Port": 80}])
                return arn

        primary = target_group("primary", "10.0.%d.10" % (2 * i + 1))
        alternate = target_group("alternate", "10.0.%d.10" % (2 * i + 2))
        path = "/%s/*" % name
        production_rule = rule(production_listener, 10 * (i + 1), path, primary, alternate)
        test_rule = rule(test_listener, 10 * (i + 1), path, primary, alternate)

        svc = existing_service(ecs, cluster, service, "ECS")
        if svc is None:
            td = ecs.register_task_definition(
                family=service,
                networkMode="awsvpc",
                requiresCompatibilities=["FARGATE"],
                cpu="256",
                memory="512",
                containerDefinitions=[
                    {
                        "name": "web",
                        "image": image,
                        "memory": 512,
                        "essential": True,
                        "portMappings": [{"containerPort": 80, "protocol": "tcp"}],
                        "environment": [{"name": "DB_HOST", "value": "product-db"}],
                    }
                ],
            )["taskDefinition"]["taskDefinitionArn"]
            svc = ecs.create_service(
                cluster=cluster,
                serviceName=service,
                taskDefinition=td,
                desiredCount=2,
                launchType="FARGATE",
                deploymentController={"type": "ECS"},
                networkConfiguration={"awsvpcConfiguration": {
                    "subnets": subnet_ids, "securityGroups": [security_group], "assignPublicIp": "DISABLED"}},
                loadBalancers=[{
                    "targetGroupArn": primary,
                    "containerName": "web",
                    "containerPort": 80,
                    "advancedConfiguration": {
                        "alternateTargetGroupArn": alternate,
                        "productionListenerRule": production_rule,
                        "testListenerRule": test_rule,
                        "roleArn": ROLE,
                    },
                }],
                deploymentConfiguration={
                    "strategy": "ROLLING",
                    "deploymentCircuitBreaker": {"enable": True, "rollback": True},
                    "maximumPercent": 200,
                    "minimumHealthyPercent": 100,
                },
            )["service"]
        td = svc["taskDefinition"]
        out["services"][name] = {
            "service": service,
            "service_arn": svc["serviceArn"],
            "task_definition": td,
            "image": ecs.describe_task_definition(taskDefinition=td)["taskDefinition"]["containerDefinitions"][0]["image"],
            "container": "web",
            "target_group": primary,
            "alternate_target_group": alternate,
            "production_listener_rule": production_rule,
            "test_listener_rule": test_rule,
            "listener": production_listener,
        }
    seed_data(session, sfx, out)
    json.dump(out, sys.stdout, indent=2)
    print()


def seed_external(session, sfx, args):
    """The task-set driver's estate (EXTERNAL deployment controller), as before."""
    ecs = session.client("ecs")
    elb = session.client("elbv2")
    ec2 = session.client("ec2")

    subnets = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    if len(subnets) < 2:
        die("the emulator's default VPC has fewer than two subnets")
    vpc = subnets[0]["VpcId"]
    subnet_ids = [s["SubnetId"] for s in subnets if s["VpcId"] == vpc][:2]

    cluster = "product" + sfx
    ecs.create_cluster(clusterName=cluster)

    lb_name = "product" + sfx
    try:
        lb = elb.describe_load_balancers(Names=[lb_name])["LoadBalancers"][0]
    except ClientError:
        lb = elb.create_load_balancer(Name=lb_name, Subnets=subnet_ids, Type="application")["LoadBalancers"][0]
    lb_arn = lb["LoadBalancerArn"]
    listeners = {l["Port"]: l for l in elb.describe_listeners(LoadBalancerArn=lb_arn)["Listeners"]}
    if TEST_PORT in listeners or any(l["DefaultActions"][0]["Type"] != "forward" for l in listeners.values()):
        die("load balancer %s has the ECS estate's listeners: seed this one with another --suffix" % lb_name)

    out = {
        "region": args.region,
        "cluster": cluster,
        "load_balancer": lb_arn,
        "dns_name": lb.get("DNSName"),
        "controller": "EXTERNAL",
        "services": {},
    }
    for i, name in enumerate(SERVICES):
        service = name + sfx
        image = args.image or "registry.example/product/%s:0.9" % name

        def target_group(colour):
            tg_name = "%s-%s%s" % (name[:10], colour, sfx)[:32]
            try:
                return elb.describe_target_groups(Names=[tg_name])["TargetGroups"][0]["TargetGroupArn"]
            except ClientError:
                return elb.create_target_group(
                    Name=tg_name, Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip"
                )["TargetGroups"][0]["TargetGroupArn"]

        blue_tg, green_tg = target_group("blue"), target_group("green")
        port = 80 + i
        if port in listeners:
            listener = listeners[port]["ListenerArn"]
        else:
            listener = elb.create_listener(
                LoadBalancerArn=lb_arn,
                Protocol="HTTP",
                Port=port,
                DefaultActions=[
                    {
                        "Type": "forward",
                        "ForwardConfig": {
                            "TargetGroups": [
                                {"TargetGroupArn": blue_tg, "Weight": 100},
                                {"TargetGroupArn": green_tg, "Weight": 0},
                            ]
                        },
                    }
                ],
            )["Listeners"][0]["ListenerArn"]
            for tg, ip in ((blue_tg, "10.0.%d.10" % (2 * i + 1)), (green_tg, "10.0.%d.10" % (2 * i + 2))):
                elb.register_targets(TargetGroupArn=tg, Targets=[{"Id": ip, "Port": 80}])

        live = existing_service(ecs, cluster, service, "EXTERNAL")
        if live:
            svc = live
        else:
            td = ecs.register_task_definition(
                family=service,
                networkMode="bridge",
                containerDefinitions=[
                    {
                        "name": "web",
                        "image": image,
                        "memory": 512,
                        "essential": True,
                        "portMappings": [{"containerPort": 80, "hostPort": 0, "protocol": "tcp"}],
                        "environment": [{"name": "DB_HOST", "value": "product-db"}],
                    }
                ],
            )["taskDefinition"]["taskDefinitionArn"]
            ecs.create_service(
                cluster=cluster,
                serviceName=service,
                desiredCount=0,
                deploymentController={"type": "EXTERNAL"},
            )
            ts = ecs.create_task_set(
                cluster=cluster,
                service=service,
                taskDefinition=td,
                externalId="seed-blue",
                loadBalancers=[{"targetGroupArn": blue_tg, "containerName": "web", "containerPort": 80}],
            )["taskSet"]["taskSetArn"]
            ecs.update_service_primary_task_set(cluster=cluster, service=service, primaryTaskSet=ts)
            svc = ecs.describe_services(cluster=cluster, services=[service])["services"][0]
        primary = [t for t in svc.get("taskSets", []) if t.get("status") == "PRIMARY"]
        out["services"][name] = {
            "service": service,
            "listener": listener,
            "blue_target_group": blue_tg,
            "green_target_group": green_tg,
            "task_definition": primary[0]["taskDefinition"] if primary else None,
        }

    seed_data(session, sfx, out)

    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
