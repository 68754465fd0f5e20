#!/usr/bin/env python3
"""Checks of the emulator's ECS service deployments (ecs_deployments.py), with boto3.

    .emu/venv/bin/python integration/emulator/test_ecs_deployments.py [-v] [NAME ...]

Starts its own moto_server.py on a free loopback port with
PIFLOW_EMU_MINUTE_SECONDS=1 and PIFLOW_EMU_STAGE_SECONDS=0.1, runs the checks
(several at once, each on its own cluster, load balancer and services), prints
a summary and exits 1 if any failed. NAME runs only the checks whose names
contain it. Takes about 12 s (20 s on a busy machine).
"""

import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import time
import traceback
import urllib.request

import boto3
from botocore.exceptions import ClientError

HERE = os.path.dirname(os.path.abspath(__file__))
REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/ecsInfrastructureRoleForLoadBalancers"
FINAL = ("SUCCESSFUL", "STOPPED", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED")
VERBOSE = "-v" in sys.argv


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self):
        self.port = free_port()
        env = dict(os.environ, MOTO_PORT=str(self.port), PIFLOW_EMU_MINUTE_SECONDS="1", PIFLOW_EMU_STAGE_SECONDS="0.1")
        self.log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), "test_ecs_deployments.%d.log" % self.port), "w+")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "moto_server.py"), "-H", "127.0.0.1", "-p", str(self.port)],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        self.url = "http://127.0.0.1:%d" % self.port
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                self.control("GET", "config")
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        self.stop()
        self.log.seek(0)
        raise SystemExit("moto_server.py did not start:\n" + self.log.read())

    def control(self, method, what, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + "/piflow-emulator/ecs/" + what, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Estate:
    """One cluster, ALB (production listener 80, test listener 8080), task
    definition family with three revisions, for one check."""

    def __init__(self, server, name):
        kw = dict(endpoint_url=server.url, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
        self.server = server
        self.name = name
        self.ecs = boto3.client("ecs", **kw)
        self.elb = boto3.client("elbv2", **kw)
        self.cw = boto3.client("cloudwatch", **kw)
        ec2 = boto3.client("ec2", **kw)
        subnets = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
        self.vpc = subnets[0]["VpcId"]
        self.subnets = [s["SubnetId"] for s in subnets if s["VpcId"] == self.vpc][:2]
        self.sg = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["default"]}])["SecurityGroups"][0]["GroupId"]
        self.cluster = self.ecs.create_cluster(clusterName="c-" + name)["cluster"]["clusterArn"]
        lb = self.elb.create_load_balancer(Name="lb-" + name, Subnets=self.subnets, Type="application")["LoadBalancers"][0]
        fixed = [{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}]
        self.prod_listener = self.elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=80,
                                                      DefaultActions=fixed)["Listeners"][0]["ListenerArn"]
        self.test_listener = self.elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=8080,
                                                      DefaultActions=fixed)["Listeners"][0]["ListenerArn"]
        self.tds = []
        for version in (1, 2, 3):
            self.tds.append(self.ecs.register_task_definition(
                family="td-" + name, networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
                containerDefinitions=[{"name": "web", "image": "registry.example/%s:%d" % (name, version), "memory": 512,
                                       "portMappings": [{"containerPort": 80}]}],
            )["taskDefinition"]["taskDefinitionArn"])
        self.primary = self.target_group("p")
        self.alternate = self.target_group("a")
        forward = [{"Type": "forward", "ForwardConfig": {"TargetGroups": [
            {"TargetGroupArn": self.primary, "Weight": 100}, {"TargetGroupArn": self.alternate, "Weight": 0}]}}]
        cond = [{"Field": "path-pattern", "Values": ["/%s/*" % name]}]
        self.prod_rule = self.elb.create_rule(ListenerArn=self.prod_listener, Priority=10, Conditions=cond,
                                              Actions=forward)["Rules"][0]["RuleArn"]
        self.test_rule = self.elb.create_rule(ListenerArn=self.test_listener, Priority=10, Conditions=cond,
                                              Actions=forward)["Rules"][0]["RuleArn"]

    def target_group(self, colour):
        return self.elb.create_target_group(Name=("%s-%s" % (self.name, colour))[:32], Protocol="HTTP", Port=80,
                                            VpcId=self.vpc, TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]

    def load_balancers(self, test=True, **override):
        adv = {"alternateTargetGroupArn": self.alternate, "productionListenerRule": self.prod_rule, "roleArn": ROLE}
        if test:
            adv["testListenerRule"] = self.test_rule
        adv.update(override)
        return [{"targetGroupArn": self.primary, "containerName": "web", "containerPort": 80, "advancedConfiguration": adv}]

    def create_service(self, config, service="svc", load_balancers=None, **extra):
        return self.ecs.create_service(
            cluster=self.cluster, serviceName=service, taskDefinition=self.tds[0], desiredCount=2, launchType="FARGATE",
            networkConfiguration={"awsvpcConfiguration": {"subnets": self.subnets, "securityGroups": [self.sg]}},
            loadBalancers=self.load_balancers() if load_balancers is None else load_balancers,
            deploymentConfiguration=config, **extra,
        )["service"]

    def update(self, td_index, service="svc", **extra):
        return self.ecs.update_service(cluster=self.cluster, service=service, taskDefinition=self.tds[td_index], **extra)["service"]

    def latest(self, service="svc"):
        arns = self.ecs.list_service_deployments(cluster=self.cluster, service=service)["serviceDeployments"]
        return arns[0]["serviceDeploymentArn"]

    def describe(self, arn):
        return self.ecs.describe_service_deployments(serviceDeploymentArns=[arn])["serviceDeployments"][0]

    def weights(self, rule=None):
        r = self.elb.describe_rules(RuleArns=[rule or self.prod_rule])["Rules"][0]
        groups = r["Actions"][0]["ForwardConfig"]["TargetGroups"]
        w = {g["TargetGroupArn"]: g.get("Weight") for g in groups}
        return w.get(self.primary), w.get(self.alternate)

    def service(self, service="svc"):
        return self.ecs.describe_services(cluster=self.cluster, services=[service])["services"][0]

    def watch(self, arn, until=FINAL, timeout=25, stop_when=None):
        """Poll the deployment until its status is in `until` (or stop_when(d)
        is true); returns (deployment, stages seen, production weights seen)."""
        stages, weights = [], []
        deadline = time.time() + timeout
        while True:
            d = self.describe(arn)
            if d.get("lifecycleStage") and (not stages or stages[-1] != d["lifecycleStage"]):
                stages.append(d["lifecycleStage"])
            w = self.weights()
            if not weights or weights[-1] != w:
                weights.append(w)
            if d["status"] in until or (stop_when and stop_when(d)):
                return d, stages, weights
            if time.time() > deadline:
                raise AssertionError("deployment still %s at %s after %ss (stages %s)" % (
                    d["status"], d.get("lifecycleStage"), timeout, stages))
            time.sleep(0.04)


def history(server, arn):
    """The stages a deployment went through, from the control endpoint (the
    stages of 0.1 s are too short to be sure to see them by polling)."""
    for d in server.control("GET", "deployments")["deployments"]:
        if d["serviceDeploymentArn"] == arn:
            stages = []
            for h in d["history"]:
                if h["lifecycleStage"] and (not stages or stages[-1] != h["lifecycleStage"]):
                    stages.append(h["lifecycleStage"])
            return stages, [h["status"] for h in d["history"] if h["status"]]
    raise AssertionError("no deployment %s at the control endpoint" % arn)


def expect_error(kind, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        code = e.response["Error"]["Code"]
        assert code == kind, "expected %s, got %s: %s" % (kind, code, e)
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400, e.response["ResponseMetadata"]
        return e.response["Error"].get("Message", "")
    raise AssertionError("expected %s, got success" % kind)


def log(*args):
    if VERBOSE:
        print(*args, flush=True)


# ---------------------------------------------------------------------------
# the checks


def check_blue_green_and_back(server):
    e = Estate(server, "bg")
    created = e.create_service({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 1,
                                "deploymentCircuitBreaker": {"enable": True, "rollback": True}})
    assert created["deploymentConfiguration"]["strategy"] == "BLUE_GREEN", created["deploymentConfiguration"]
    assert created["loadBalancers"][0]["advancedConfiguration"]["alternateTargetGroupArn"] == e.alternate
    assert created["deployments"][0]["rolloutState"] == "COMPLETED" and created["runningCount"] == 2, created["deployments"]
    first = e.latest()
    assert e.describe(first)["status"] == "SUCCESSFUL"

    updated = e.update(1)
    assert updated["taskDefinition"] == e.tds[1], updated["taskDefinition"]
    assert updated["deploymentConfiguration"]["bakeTimeInMinutes"] == 1
    arn = e.latest()
    assert arn != first and "service-deployment/c-bg/svc/" in arn, arn
    d, stages, weights = e.watch(arn)
    log("blue/green stages", stages, "weights", weights)
    assert d["status"] == "SUCCESSFUL", d
    expected = ["PRE_SCALE_UP", "SCALE_UP", "POST_SCALE_UP", "TEST_TRAFFIC_SHIFT", "POST_TEST_TRAFFIC_SHIFT",
                "PRE_PRODUCTION_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT",
                "BAKE_TIME", "CLEAN_UP"]
    assert "BAKE_TIME" in stages and all(s in expected for s in stages), stages
    stages, statuses = history(server, arn)
    assert stages == expected, stages
    assert statuses[0] == "PENDING" and statuses[1] == "IN_PROGRESS" and statuses[-1] == "SUCCESSFUL", statuses
    assert weights[0] == (100, 0) and weights[-1] == (0, 100), weights
    assert e.weights(e.test_rule) == (0, 100), e.weights(e.test_rule)
    assert d["startedAt"] <= d["finishedAt"] and d["targetServiceRevision"]["runningTaskCount"] == 2, d
    assert d["targetServiceRevision"]["requestedProductionTrafficWeight"] == 100.0, d["targetServiceRevision"]
    assert d["sourceServiceRevisions"][0]["runningTaskCount"] == 0, d["sourceServiceRevisions"]
    assert d["deploymentCircuitBreaker"]["status"] == "MONITORING_COMPLETE", d["deploymentCircuitBreaker"]
    svc = e.service()
    assert svc["taskDefinition"] == e.tds[1] and svc["deployments"][0]["status"] == "PRIMARY", svc["deployments"]
    assert svc["deployments"][0]["rolloutState"] == "COMPLETED" and len(svc["deployments"]) == 1, svc["deployments"]
    revisions = e.ecs.describe_service_revisions(serviceRevisionArns=[d["targetServiceRevision"]["arn"], "arn:aws:ecs:us-east-1:123456789012:service-revision/c-bg/svc/1"])
    rev = revisions["serviceRevisions"][0]
    assert rev["taskDefinition"] == e.tds[1] and rev["containerImages"][0]["image"] == "registry.example/bg:2", rev
    assert rev["resolvedConfiguration"]["loadBalancers"][0]["targetGroupArn"] == e.alternate, rev
    assert revisions["failures"][0]["reason"] == "MISSING", revisions["failures"]

    # The next deployment goes back to the first target group.
    e.update(2)
    arn2 = e.latest()
    d2, _, weights2 = e.watch(arn2)
    assert d2["status"] == "SUCCESSFUL", d2
    assert weights2[0] == (0, 100) and weights2[-1] == (100, 0), weights2
    assert e.weights(e.test_rule) == (100, 0)
    listed = e.ecs.list_service_deployments(cluster=e.cluster, service="svc")["serviceDeployments"]
    assert [x["serviceDeploymentArn"] for x in listed] == [arn2, arn, first], listed
    page = e.ecs.list_service_deployments(cluster=e.cluster, service="svc", maxResults=2)
    assert len(page["serviceDeployments"]) == 2 and page.get("nextToken"), page
    rest = e.ecs.list_service_deployments(cluster=e.cluster, service="svc", maxResults=2, nextToken=page["nextToken"])
    assert [x["serviceDeploymentArn"] for x in rest["serviceDeployments"]] == [first], rest
    only = e.ecs.list_service_deployments(cluster=e.cluster, service="svc", status=["SUCCESSFUL"],
                                          createdAt={"after": d["finishedAt"]})["serviceDeployments"]
    assert [x["serviceDeploymentArn"] for x in only] == [arn2], only


def check_canary(server):
    e = Estate(server, "canary")
    e.create_service({"strategy": "CANARY", "bakeTimeInMinutes": 0,
                      "canaryConfiguration": {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 1}})
    e.update(1)
    d, stages, weights = e.watch(e.latest())
    log("canary stages", stages, "weights", weights)
    assert d["status"] == "SUCCESSFUL", d
    assert (90, 10) in weights and weights[-1] == (0, 100), weights
    assert weights.index((90, 10)) < weights.index((0, 100)), weights
    stages, _ = history(server, e.latest())
    assert stages[5:] == ["PRE_PRODUCTION_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT", "PRE_PRODUCTION_TRAFFIC_SHIFT",
                          "PRODUCTION_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT", "BAKE_TIME", "CLEAN_UP"], stages


def check_linear(server):
    e = Estate(server, "linear")
    e.create_service({"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 34.0, "stepBakeTimeInMinutes": 1}})
    e.update(1)
    d, stages, weights = e.watch(e.latest())
    log("linear stages", stages, "weights", weights)
    assert d["status"] == "SUCCESSFUL", d
    assert weights == [(100, 0), (66, 34), (32, 68), (0, 100)], weights
    stages, _ = history(server, e.latest())
    assert stages[5:] == ["PRE_PRODUCTION_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT"] * 3 + [
        "POST_PRODUCTION_TRAFFIC_SHIFT", "BAKE_TIME", "CLEAN_UP"], stages


def check_stop_rollback(server):
    e = Estate(server, "stop")
    e.create_service({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 10})
    e.update(1)
    arn = e.latest()
    d, _, weights = e.watch(arn, stop_when=lambda d: d.get("lifecycleStage") == "BAKE_TIME")
    assert e.weights() == (0, 100) and e.service()["taskDefinition"] == e.tds[1], (e.weights(), weights)
    source = d["sourceServiceRevisions"][0]["arn"]
    assert e.ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")["serviceDeploymentArn"] == arn
    assert e.describe(arn)["status"] == "ROLLBACK_REQUESTED"
    assert e.service()["deployments"][0]["taskDefinition"] == e.tds[0]
    d, _, _ = e.watch(arn)
    assert d["status"] == "ROLLBACK_SUCCESSFUL", d
    assert d["rollback"]["serviceRevisionArn"] == source and d["rollback"]["startedAt"], d["rollback"]
    assert e.weights() == (100, 0) and e.weights(e.test_rule) == (100, 0), e.weights()
    svc = e.service()
    assert svc["taskDefinition"] == e.tds[0], svc["taskDefinition"]
    assert svc["deployments"][0]["taskDefinition"] == e.tds[0] and svc["deployments"][0]["rolloutState"] == "COMPLETED"
    # A finished deployment cannot be stopped.
    expect_error("ConflictException", e.ecs.stop_service_deployment, serviceDeploymentArn=arn, stopType="ROLLBACK")


def check_alarm_rollback(server):
    e = Estate(server, "alarm")
    e.cw.put_metric_alarm(AlarmName="alarm-5xx", MetricName="HTTPCode_Target_5XX_Count", Namespace="AWS/ApplicationELB",
                          Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold")
    e.create_service({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 10,
                      "alarms": {"alarmNames": ["alarm-5xx"], "enable": True, "rollback": True}})
    e.update(1)
    arn = e.latest()
    d, _, _ = e.watch(arn, stop_when=lambda d: d.get("lifecycleStage") == "BAKE_TIME")
    assert d["alarms"]["status"] == "MONITORING", d["alarms"]
    e.cw.set_alarm_state(AlarmName="alarm-5xx", StateValue="ALARM", StateReason="test")
    d, _, _ = e.watch(arn)
    assert d["status"] == "ROLLBACK_SUCCESSFUL", d
    assert d["alarms"]["status"] == "TRIGGERED" and d["alarms"]["triggeredAlarmNames"] == ["alarm-5xx"], d["alarms"]
    assert "alarm-5xx" in d["statusReason"] and "alarm-5xx" in d["rollback"]["reason"], d
    assert e.weights() == (100, 0) and e.service()["taskDefinition"] == e.tds[0]
    # Already in ALARM when a deployment starts: ignored for that deployment
    # (AWS). The merged configuration keeps the alarms.
    e.update(2, deploymentConfiguration={"bakeTimeInMinutes": 1})
    d, _, _ = e.watch(e.latest())
    assert d["status"] == "SUCCESSFUL" and d["alarms"]["status"] == "MONITORING_COMPLETE", d
    assert d["deploymentConfiguration"]["alarms"]["alarmNames"] == ["alarm-5xx"], d["deploymentConfiguration"]


def check_circuit_breaker(server):
    e = Estate(server, "cb")
    e.create_service({"strategy": "ROLLING", "deploymentCircuitBreaker": {"enable": True, "rollback": True}})
    e.create_service({"strategy": "ROLLING", "deploymentCircuitBreaker": {"enable": True, "rollback": False}}, service="norb")
    e.create_service({"strategy": "ROLLING"}, service="off")
    for service in ("svc", "norb", "off"):
        server.control("POST", "fail-tasks", {"cluster": "c-cb", "service": service, "taskDefinition": e.tds[1],
                                              "reason": "CannotPullContainerError: pull access denied"})
        e.update(1, service=service)
    d, stages, _ = e.watch(e.latest())
    assert d["status"] == "ROLLBACK_SUCCESSFUL", d
    cb = d["deploymentCircuitBreaker"]
    assert cb["status"] == "TRIGGERED" and cb["threshold"] == 3 and cb["failureCount"] >= 3, cb
    assert "circuit breaker" in d["statusReason"], d["statusReason"]
    assert e.service()["taskDefinition"] == e.tds[0] and stages[-1] == "SCALE_UP", stages
    d, _, _ = e.watch(e.latest("norb"))
    assert d["status"] == "STOPPED" and d.get("stoppedAt"), d
    assert e.service("norb")["deployments"][0]["rolloutState"] == "FAILED", e.service("norb")["deployments"]
    arn = e.latest("off")
    time.sleep(1.0)
    d = e.describe(arn)
    assert d["status"] == "IN_PROGRESS" and d["lifecycleStage"] == "SCALE_UP", d
    assert d["deploymentCircuitBreaker"]["status"] == "DISABLED", d["deploymentCircuitBreaker"]
    assert e.service("off")["deployments"][0]["failedTasks"] > 0
    server.control("DELETE", "fail-tasks", {"cluster": "c-cb", "service": "off"})
    d, _, _ = e.watch(arn)
    assert d["status"] == "SUCCESSFUL", d


def check_pause_hook(server):
    e = Estate(server, "pause")
    e.create_service({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0, "lifecycleHooks": [
        {"targetType": "PAUSE", "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
         "timeoutConfiguration": {"timeoutInMinutes": 30, "action": "ROLLBACK"}},
        {"targetType": "AWS_LAMBDA", "hookTargetArn": "arn:aws:lambda:us-east-1:123456789012:function:check",
         "roleArn": ROLE, "lifecycleStages": ["PRE_SCALE_UP"]}]})
    e.update(1)
    arn = e.latest()
    d, _, _ = e.watch(arn, stop_when=lambda d: any(h["status"] == "AWAITING_ACTION" for h in d.get("lifecycleHookDetails", [])))
    hook = d["lifecycleHookDetails"][0]
    assert d["lifecycleStage"] == "POST_TEST_TRAFFIC_SHIFT" and hook["targetType"] == "PAUSE", d
    assert hook["hookId"].startswith("ecs-pause-") and hook["timeoutAction"] == "ROLLBACK" and hook["expiresAt"], hook
    time.sleep(0.8)
    d = e.describe(arn)
    assert d["status"] == "IN_PROGRESS" and d["lifecycleStage"] == "POST_TEST_TRAFFIC_SHIFT", d
    assert e.weights() == (100, 0) and e.weights(e.test_rule) == (0, 100)
    expect_error("InvalidParameterException", e.ecs.continue_service_deployment,
                 serviceDeploymentArn=arn, hookId="ecs-pause-nope", action="CONTINUE")
    e.ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook["hookId"], action="CONTINUE")
    d, _, _ = e.watch(arn)
    assert d["status"] == "SUCCESSFUL" and e.weights() == (0, 100), d
    # ROLLBACK through the hook.
    e.update(2)
    arn = e.latest()
    d, _, _ = e.watch(arn, stop_when=lambda d: any(h["status"] == "AWAITING_ACTION" for h in d.get("lifecycleHookDetails", [])))
    e.ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=d["lifecycleHookDetails"][0]["hookId"], action="ROLLBACK")
    d, _, _ = e.watch(arn)
    assert d["status"] == "ROLLBACK_SUCCESSFUL" and e.weights() == (0, 100) and e.weights(e.test_rule) == (0, 100), d
    assert e.service()["taskDefinition"] == e.tds[1]
    # A hook that times out takes its timeout action (CONTINUE here) on the
    # emulated clock (1 minute = 1 s).
    e.ecs.update_service(cluster=e.cluster, service="svc", taskDefinition=e.tds[2], deploymentConfiguration={"lifecycleHooks": [
        {"targetType": "PAUSE", "lifecycleStages": ["PRE_PRODUCTION_TRAFFIC_SHIFT"],
         "timeoutConfiguration": {"timeoutInMinutes": 1, "action": "CONTINUE"}}]})
    arn = e.latest()
    d, _, _ = e.watch(arn, stop_when=lambda d: any(h["status"] == "AWAITING_ACTION" for h in d.get("lifecycleHookDetails", [])))
    assert d["lifecycleStage"] == "PRE_PRODUCTION_TRAFFIC_SHIFT", d
    d, _, _ = e.watch(arn)
    assert d["status"] == "SUCCESSFUL" and e.weights() == (100, 0), d


def check_rolling(server):
    e = Estate(server, "rolling")
    e.create_service({"strategy": "ROLLING", "deploymentCircuitBreaker": {"enable": True, "rollback": True}})
    e.update(1)
    d, stages, weights = e.watch(e.latest())
    assert d["status"] == "SUCCESSFUL", d
    assert history(server, e.latest())[0] == ["PRE_SCALE_UP", "SCALE_UP", "POST_SCALE_UP", "CLEAN_UP"], stages
    assert weights == [(100, 0)] and e.weights(e.test_rule) == (100, 0), weights
    assert "requestedProductionTrafficWeight" not in d["targetServiceRevision"], d["targetServiceRevision"]
    svc = e.service()
    assert svc["taskDefinition"] == e.tds[1] and svc["runningCount"] == 2, svc
    # A desiredCount change alone makes no deployment; forceNewDeployment does.
    e.ecs.update_service(cluster=e.cluster, service="svc", desiredCount=3)
    assert len(e.ecs.list_service_deployments(cluster=e.cluster, service="svc")["serviceDeployments"]) == 2
    e.ecs.update_service(cluster=e.cluster, service="svc", forceNewDeployment=True)
    d, _, _ = e.watch(e.latest())
    assert d["status"] == "SUCCESSFUL" and d["targetServiceRevision"]["runningTaskCount"] == 3, d


def check_supersede(server):
    e = Estate(server, "super")
    e.create_service({"strategy": "CANARY", "bakeTimeInMinutes": 0,
                      "canaryConfiguration": {"canaryPercent": 20.0, "canaryBakeTimeInMinutes": 10}})
    e.update(1)
    first = e.latest()
    e.watch(first, stop_when=lambda d: e.weights() == (80, 20))
    # A configuration change alone makes no deployment (the one in progress
    # keeps its own); the next release is blue/green, paused at
    # RECONCILE_SERVICE so that the check sees that stage.
    e.ecs.update_service(cluster=e.cluster, service="svc", deploymentConfiguration={
        "strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0, "lifecycleHooks": [
            {"targetType": "PAUSE", "lifecycleStages": ["RECONCILE_SERVICE"], "timeoutConfiguration": {"timeoutInMinutes": 30}}]})
    assert e.describe(first)["status"] == "IN_PROGRESS"
    e.update(2)
    second = e.latest()
    d = e.describe(first)
    assert d["status"] == "STOPPED" and "superseded" in d["statusReason"], d
    d, _, _ = e.watch(second, stop_when=lambda d: d.get("lifecycleHookDetails"))
    assert d["lifecycleStage"] == "RECONCILE_SERVICE" and len(d["sourceServiceRevisions"]) == 2, d
    assert e.weights() == (100, 0), e.weights()
    e.ecs.continue_service_deployment(serviceDeploymentArn=second, hookId=d["lifecycleHookDetails"][0]["hookId"])
    d, stages, weights = e.watch(second)
    assert d["status"] == "SUCCESSFUL", d
    assert weights[-1] == (0, 100) and e.service()["taskDefinition"] == e.tds[2], weights
    assert [r["runningTaskCount"] for r in d["sourceServiceRevisions"]] == [0, 0], d["sourceServiceRevisions"]


def check_errors(server):
    e = Estate(server, "errors")
    missing = "arn:aws:ecs:us-east-1:123456789012:service-deployment/c-errors/svc/nope"
    out = e.ecs.describe_service_deployments(serviceDeploymentArns=[missing])
    assert out["serviceDeployments"] == [] and out["failures"] == [{"arn": missing, "reason": "MISSING"}], out
    expect_error("ServiceDeploymentNotFoundException", e.ecs.stop_service_deployment, serviceDeploymentArn=missing)
    expect_error("ServiceDeploymentNotFoundException", e.ecs.continue_service_deployment, serviceDeploymentArn=missing, hookId="x")
    expect_error("InvalidParameterException", e.ecs.stop_service_deployment, serviceDeploymentArn="not-an-arn")
    bad_tg = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/nope/0123456789abcdef"
    msg = expect_error("InvalidParameterException", e.create_service, {"strategy": "BLUE_GREEN"},
                       load_balancers=e.load_balancers(alternateTargetGroupArn=bad_tg))
    assert "alternateTargetGroupArn" in msg, msg
    msg = expect_error("InvalidParameterException", e.create_service, {"strategy": "BLUE_GREEN"},
                       load_balancers=e.load_balancers(productionListenerRule=e.prod_rule + "0"))
    assert "productionListenerRule" in msg, msg
    msg = expect_error("InvalidParameterException", e.create_service, {"strategy": "LINEAR"},
                       load_balancers=[{"targetGroupArn": e.primary, "containerName": "web", "containerPort": 80}])
    assert "advancedConfiguration" in msg, msg
    msg = expect_error("InvalidParameterException", e.create_service, {"strategy": "CANARY"}, load_balancers=[])
    assert "load balancer" in msg, msg
    msg = expect_error("InvalidParameterException", e.create_service, {"strategy": "BLUE_GREEN", "lifecycleHooks": [
        {"targetType": "PAUSE", "lifecycleStages": ["PRODUCTION_TRAFFIC_SHIFT"]}]})
    assert "PAUSE" in msg, msg
    e.create_service({"strategy": "ROLLING"})
    msg = expect_error("InvalidParameterException", e.ecs.update_service, cluster=e.cluster, service="svc",
                       deploymentConfiguration={"strategy": "BLUE_GREEN"},
                       loadBalancers=[dict(e.load_balancers()[0], advancedConfiguration={
                           "alternateTargetGroupArn": e.alternate, "productionListenerRule": e.prod_rule})])
    assert "roleArn" in msg, msg
    expect_error("ServiceNotFoundException", e.ecs.list_service_deployments, cluster=e.cluster, service="nope")
    expect_error("ClusterNotFoundException", e.ecs.list_service_deployments, cluster="nope", service="svc")
    # The production rule must forward to both target groups: rolled back at start.
    other = e.target_group("o")
    rule = e.elb.create_rule(ListenerArn=e.prod_listener, Priority=20, Conditions=[{"Field": "path-pattern", "Values": ["/x/*"]}],
                             Actions=[{"Type": "forward", "TargetGroupArn": other}])["Rules"][0]["RuleArn"]
    e.create_service({"strategy": "BLUE_GREEN"}, service="net", load_balancers=e.load_balancers(test=False, productionListenerRule=rule))
    e.update(1, service="net")
    d, _, _ = e.watch(e.latest("net"))
    assert d["status"] == "ROLLBACK_SUCCESSFUL" and "invalid networking configuration" in d["statusReason"], d


def check_external_untouched(server):
    e = Estate(server, "ext")
    td = e.ecs.register_task_definition(family="ext-bridge", networkMode="bridge", containerDefinitions=[
        {"name": "web", "image": "registry.example/ext:1", "memory": 256}])["taskDefinition"]["taskDefinitionArn"]
    e.ecs.create_service(cluster=e.cluster, serviceName="ext", desiredCount=0, deploymentController={"type": "EXTERNAL"})
    ts = e.ecs.create_task_set(cluster=e.cluster, service="ext", taskDefinition=td, externalId="blue",
                               loadBalancers=[{"targetGroupArn": e.primary, "containerName": "web", "containerPort": 80}])["taskSet"]
    e.ecs.update_service_primary_task_set(cluster=e.cluster, service="ext", primaryTaskSet=ts["taskSetArn"])
    svc = e.service("ext")
    assert svc["deploymentController"]["type"] == "EXTERNAL" and svc["taskSets"][0]["status"] == "PRIMARY", svc
    assert e.ecs.list_service_deployments(cluster=e.cluster, service="ext")["serviceDeployments"] == []


def check_control(server):
    config = server.control("GET", "config")
    assert config == {"minute_seconds": 1.0, "stage_seconds": 0.1}, config
    everything = server.control("GET", "deployments")["deployments"]
    assert everything and all("strategy" in d and "status" in d for d in everything), everything[:1]


CHECKS = [
    check_blue_green_and_back, check_canary, check_linear, check_stop_rollback, check_alarm_rollback,
    check_circuit_breaker, check_pause_hook, check_rolling, check_supersede, check_errors, check_external_untouched,
]


def main():
    wanted = [a for a in sys.argv[1:] if not a.startswith("-")]
    checks = [c for c in CHECKS if not wanted or any(w in c.__name__ for w in wanted)]
    began = time.time()
    server = Server()
    results = {}
    try:
        def run(check):
            t = time.time()
            try:
                check(server)
                return check.__name__, None, time.time() - t
            except Exception:
                return check.__name__, traceback.format_exc(), time.time() - t

        with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
            for name, failure, took in pool.map(run, checks):
                results[name] = failure
                print("%-28s %s (%.1f s)" % (name, "ok" if failure is None else "FAILED", took), flush=True)
                if failure:
                    print(failure, flush=True)
        name, failure, took = run(check_control)
        results[name] = failure
        print("%-28s %s (%.1f s)" % (name, "ok" if failure is None else "FAILED", took))
        if failure:
            print(failure)
    finally:
        server.stop()
    failed = [n for n, f in results.items() if f]
    print("%d checks, %d failed, %.1f s" % (len(results), len(failed), time.time() - began))
    if failed:
        server.log.seek(0)
        tail = server.log.read()[-3000:]
        print("server log (tail):\n" + tail)
    server.log.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
