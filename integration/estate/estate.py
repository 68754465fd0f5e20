#!/usr/bin/env python3
"""The reference estate in the local AWS emulator (moto server): seed it, show it.

Usage (with the interpreter of integration/emulator/setup.sh):

    AWS_ENDPOINT_URL=http://127.0.0.1:PORT .emu/venv/bin/python \\
        integration/estate/estate.py seed [--suffix S] [--region R] [--image IMAGE]
    ... integration/estate/estate.py show [--suffix S] [--region R]

`show` prints, for each service, its task sets (status, task definition,
image) and the weights of its listener, as a table.

What `seed` makes, in the region (default $AWS_REGION, else us-east-1), with
names ending in `-S` when --suffix is given (so that several estates share
one server):

- ECS cluster `product`; for each service (dashboard, renderer, scheduler) a
  task definition family of the same name (bridge networking: moto refuses
  task sets with awsvpc), a service with the EXTERNAL deployment controller
  and one PRIMARY (blue) task set running IMAGE (default
  registry.example/product/SERVICE:0.9);
- an Application Load Balancer `product` in the default VPC with one
  listener per service (ports 80, 81, 82) whose default action is a
  weighted forward: blue target group 100, green 0; one registered target
  in each target group (moto reports registered targets healthy);
- RDS MariaDB 10.11.8 instance `product-db` and a manual snapshot of it
  (`product-db-seed`), for the restore workflow;
- an EFS file system tagged Name=product-files.

It refuses to run against anything but a loopback endpoint: it is for the
emulator, never for a real account. Prints the estate as JSON on stdout.
Run twice with the same suffix, it reuses what exists.
"""

import argparse
import json
import os
import sys
import urllib.parse

import boto3
from botocore.exceptions import ClientError

SERVICES = ["dashboard", "renderer", "scheduler"]


def die(message):
    print("seed.py: " + message, file=sys.stderr)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["seed", "show"])
    ap.add_argument("--suffix", default="", help="appended to every name as -SUFFIX")
    ap.add_argument("--region", default=os.environ.get("AWS_REGION") or "us-east-1")
    ap.add_argument("--image", default=None, help="blue image (default registry.example/product/SERVICE:0.9)")
    args = ap.parse_args()

    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    host = urllib.parse.urlparse(endpoint).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        die("AWS_ENDPOINT_URL must point at the local emulator (http://127.0.0.1:PORT), not %r" % endpoint)

    sfx = "-" + args.suffix if args.suffix else ""
    session = boto3.session.Session(region_name=args.region)
    if args.command == "show":
        show(session, sfx)
    else:
        seed(session, sfx, args)


def show(session, sfx):
    """Task sets and listener weights of every service, as a table."""
    ecs = session.client("ecs")
    elb = session.client("elbv2")
    cluster = "product" + sfx
    try:
        lb = elb.describe_load_balancers(Names=["product" + sfx])["LoadBalancers"][0]
    except ClientError:
        die("no load balancer product%s: seed the estate first" % sfx)
    weights = {}
    for l in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]:
        for tg in l["DefaultActions"][0].get("ForwardConfig", {}).get("TargetGroups", []):
            weights[tg["TargetGroupArn"]] = tg.get("Weight", 0)
    print("%-10s %-8s %-28s %-45s %s" % ("service", "status", "task definition", "image", "traffic"))
    for name in SERVICES:
        found = ecs.describe_services(cluster=cluster, services=[name + sfx])["services"]
        if not found:
            continue
        for ts in found[0].get("taskSets", []):
            td = ts["taskDefinition"]
            image = ecs.describe_task_definition(taskDefinition=td)["taskDefinition"]["containerDefinitions"][0]["image"]
            tg = (ts.get("loadBalancers") or [{}])[0].get("targetGroupArn", "")
            print(
                "%-10s %-8s %-28s %-45s %s%%"
                % (name, ts["status"], td.split("/")[-1], image, weights.get(tg, "?"))
            )


def seed(session, sfx, args):
    ecs = session.client("ecs")
    elb = session.client("elbv2")
    ec2 = session.client("ec2")
    rds = session.client("rds")
    efs = session.client("efs")

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

    out = {
        "region": args.region,
        "cluster": cluster,
        "load_balancer": lb_arn,
        "dns_name": lb.get("DNSName"),
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

        existing = ecs.describe_services(cluster=cluster, services=[service])["services"]
        live = [s for s in existing if s.get("status") == "ACTIVE"]
        if live:
            svc = live[0]
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

    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
