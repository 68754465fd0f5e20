"""ECS-native service deployments for piflow's moto server (moto 5.2.5 has none).

Installed by moto_server.py (`serve_ecs_deployments()`) as a WSGI layer over
moto's `DomainDispatcherApplication.__call__`, like AWS Health. It answers
the ECS JSON 1.1 requests (`X-Amz-Target: AmazonEC2ContainerServiceV20141113.*`)
that moto cannot, post-processes the service requests moto answers, and lets
moto answer everything else untouched. boto3 and the Rust aws-sdk-ecs both
work against it: answers are `application/x-amz-json-1.1`, errors
`{"__type": ..., "message": ...}` with HTTP 400 and `X-Amzn-Errortype`,
timestamps epoch seconds.

What is emulated
================

Services under the `ECS` deployment controller (the default):

- CreateService / UpdateService / DescribeServices keep, in a side table keyed
  by service ARN, what moto drops: `deploymentConfiguration` in full
  (strategy ROLLING | BLUE_GREEN | LINEAR | CANARY, bakeTimeInMinutes,
  linearConfiguration, canaryConfiguration, alarms, deploymentCircuitBreaker
  with thresholdConfiguration, lifecycleHooks, maximumPercent,
  minimumHealthyPercent) and `loadBalancers[].advancedConfiguration`, and
  splice them back into every Service they return, with `taskDefinition`,
  `runningCount`/`pendingCount` and `deployments` (PRIMARY / ACTIVE entries:
  id, status, taskDefinition, desiredCount, runningCount, pendingCount,
  failedTasks, rolloutState IN_PROGRESS | COMPLETED | FAILED) kept coherent
  with the service deployments below. UpdateService merges the given
  `deploymentConfiguration` into the stored one member by member (a member
  it names replaces the stored one; the others stay), so a deployer can set
  the strategy of one release and keep the circuit breaker Terraform set.
  `loadBalancers`, when given, replace the stored list.
- Validation as AWS documents it (InvalidParameterException naming the
  field): LINEAR and CANARY need a load balancer; with BLUE_GREEN, LINEAR or
  CANARY every load balancer needs `advancedConfiguration` with
  alternateTargetGroupArn (a target group that exists in moto's ELBv2 and is
  not the primary one), productionListenerRule (a listener rule, a
  listener's default rule or, for an NLB, a listener that exists), roleArn,
  and testListenerRule when given must exist; BLUE_GREEN without any load
  balancer is accepted (AWS: "headless" blue/green, no traffic shifting);
  stepPercent 3.0-100.0, canaryPercent 0.1-100.0, the bake times 0-1440
  (linearConfiguration and canaryConfiguration are kept but unused under
  another strategy, so that a merged configuration can change strategy);
  lifecycle hooks need lifecycleStages, AWS_LAMBDA hooks a hookTargetArn,
  and PAUSE hooks cannot be at TEST_TRAFFIC_SHIFT or PRODUCTION_TRAFFIC_SHIFT.
  A production rule that does not forward to both target groups (nor does
  the test rule) is found when a deployment starts and rolls it back, with
  AWS's documented reason ("Service deployment rolled back because of
  invalid networking configuration. Both targetGroup and
  alternateTargetGroup must be associated with the productionListenerRule
  or testListenerRule.").
- Service deployments and service revisions. CreateService makes the first
  revision and deployment (SUCCESSFUL at once, its tasks running). An
  UpdateService that changes the task definition, the load balancers, the
  network configuration or the platform version, or that has
  forceNewDeployment, makes a service revision
  (`arn:aws:ecs:R:A:service-revision/CLUSTER/SERVICE/ID`) for the target and
  a service deployment (`arn:aws:ecs:R:A:service-deployment/CLUSTER/SERVICE/ID`);
  the service's taskDefinition becomes the new one at once (a desiredCount
  change alone makes no deployment). A deployment is PENDING for one stage,
  then IN_PROGRESS through its lifecycle stages, then SUCCESSFUL. It moves
  on a clock: a background thread advances every deployment every 50 ms
  (and each ECS request advances them first), so it progresses with nobody
  asking.
- Lifecycle stages (`lifecycleStage`), after AWS's "Amazon ECS blue/green
  service deployments workflow", "Amazon ECS linear deployments", "Amazon
  ECS canary deployments" and "Lifecycle hooks for Amazon ECS service
  deployments" pages (RECONCILE_SERVICE only when more than one service
  revision is active, i.e. when the deployment superseded one that had
  started tasks):

      BLUE_GREEN  [RECONCILE_SERVICE] PRE_SCALE_UP SCALE_UP POST_SCALE_UP
                  TEST_TRAFFIC_SHIFT POST_TEST_TRAFFIC_SHIFT
                  PRE_PRODUCTION_TRAFFIC_SHIFT PRODUCTION_TRAFFIC_SHIFT (0 -> 100)
                  POST_PRODUCTION_TRAFFIC_SHIFT BAKE_TIME CLEAN_UP
      CANARY      as BLUE_GREEN, but PRE_PRODUCTION_TRAFFIC_SHIFT +
                  PRODUCTION_TRAFFIC_SHIFT twice: to canaryPercent (default
                  5), then canaryBakeTimeInMinutes (default 10) still in
                  PRODUCTION_TRAFFIC_SHIFT, then to 100
      LINEAR      as BLUE_GREEN, but PRE_PRODUCTION_TRAFFIC_SHIFT +
                  PRODUCTION_TRAFFIC_SHIFT once per step of stepPercent
                  (default 10: 10, 20 ... 100), each step below 100 followed
                  by stepBakeTimeInMinutes (default 6) in
                  PRODUCTION_TRAFFIC_SHIFT
      ROLLING     [RECONCILE_SERVICE] PRE_SCALE_UP SCALE_UP (old tasks
                  replaced by new ones progressively) POST_SCALE_UP
                  [BAKE_TIME when bakeTimeInMinutes > 0] CLEAN_UP; no
                  listener changes (new tasks go to the target group that
                  serves production)

  PRE_PRODUCTION_TRAFFIC_SHIFT is not in the pinned model's
  ServiceDeploymentLifecycleStage enum, but the model's own documentation of
  `lifecycleStage` lists it ("For linear and canary deployments, this stage
  is invoked before every traffic shift step"), so it is reported; SDKs map
  it to their "unknown" enum value. Whether AWS reports lifecycle stages for
  ROLLING deployments is not documented; the emulator reports the stages
  above so that PAUSE hooks (which AWS supports on rolling deployments) have
  somewhere to stop.
- Traffic, in moto's ELBv2 (modify_rule / modify_listener on moto's backend,
  so describe_rules through boto3 shows it). The production listener rule
  forwards to the primary and the alternate target group; the green target
  group is the one with weight 0 in that rule when the deployment starts
  (the other is blue). TEST_TRAFFIC_SHIFT makes the test listener rule (if
  any) forward 100 to green; PRODUCTION_TRAFFIC_SHIFT moves the production
  weights as the strategy says (integer ELB weights: green =
  round(percent), at least 1 when percent > 0; blue = 100 - green; the
  exact percentages are in requestedProductionTrafficWeight). After
  success green keeps 100 and is blue for the next deployment. Only the
  first load balancer with advancedConfiguration is shifted (AWS supports
  one target group pair for blue/green).
- Source and target revision summaries carry requested / running / pending
  task counts and, for BLUE_GREEN/LINEAR/CANARY with a load balancer,
  requestedProductionTrafficWeight / requestedTestTrafficWeight.
- StopServiceDeployment. stopType ROLLBACK (the default, the one value AWS
  documents): PENDING or IN_PROGRESS -> ROLLBACK_REQUESTED (one stage) ->
  ROLLBACK_IN_PROGRESS (traffic back: production blue 100 / green 0, test
  rule back to blue; the service's taskDefinition back to the source's)
  (one stage) -> ROLLBACK_SUCCESSFUL; `rollback` {reason, startedAt,
  serviceRevisionArn} is filled. STOP_REQUESTED, ROLLBACK_REQUESTED and
  ROLLBACK_IN_PROGRESS deployments carry on (AWS: "continues"). stopType
  ABORT (in the model's enum, not in AWS's prose) stops the deployment
  where it is: STOP_REQUESTED -> STOPPED, traffic left as it is. A
  finished deployment (SUCCESSFUL, STOPPED, ROLLBACK_SUCCESSFUL,
  ROLLBACK_FAILED) -> ConflictException; an ARN that is not a service
  deployment ARN -> InvalidParameterException; an unknown one ->
  ServiceDeploymentNotFoundException.
- CloudWatch alarms (deploymentConfiguration.alarms with enable true): while
  a deployment is IN_PROGRESS (every stage, the bakes included), any named
  alarm in state ALARM in moto's CloudWatch (same account and region;
  `set_alarm_state` puts it there) makes alarms.status TRIGGERED with
  triggeredAlarmNames, then (rollback true) an automatic rollback as above,
  statusReason naming the alarm, or (rollback false) the deployment
  STOPPED. As AWS documents, an alarm already in ALARM when the deployment
  starts is ignored for that deployment. alarms.status is DISABLED,
  MONITORING, MONITORING_COMPLETE or TRIGGERED.
- Circuit breaker (deploymentConfiguration.deploymentCircuitBreaker, applied
  to every strategy as AWS's "deployment failure detection" page says):
  threshold after thresholdConfiguration (default BOUNDED_PERCENT 50:
  ceil(desired x 50%) clamped to 3..200, as the pinned model documents;
  UNBOUNDED_PERCENT unclamped; COUNT the value). Tasks fail only when told
  to (below); such a deployment stays in SCALE_UP counting failureCount up
  (max(1, threshold // 10) per 50 ms tick); at the threshold the circuit
  breaker is TRIGGERED and (rollback true) the deployment rolls back
  ("Service deployment rolled back because the circuit breaker threshold
  was exceeded.") or (rollback false) is STOPPED with rolloutState FAILED
  (AWS: a deployment stops when the failure detection has no rollback). Not
  enabled: it keeps trying (IN_PROGRESS, failedTasks counting).
- Lifecycle hooks: a PAUSE hook at a stage stops the deployment there with a
  lifecycleHookDetails entry (hookId `ecs-pause-...`, targetType PAUSE,
  status AWAITING_ACTION, expiresAt, timeoutAction) until
  ContinueServiceDeployment (action CONTINUE, the default -> SUCCEEDED and
  on; ROLLBACK -> roll back) or until expiresAt
  (timeoutConfiguration.timeoutInMinutes on the emulated clock, default
  1440; then TIMED_OUT and the timeout action, default ROLLBACK). At
  PRE_PRODUCTION_TRAFFIC_SHIFT a LINEAR or CANARY deployment pauses before
  every step, each time with a new hookId. lifecycleHookDetails shows the
  hooks of the current stage. AWS_LAMBDA hooks cannot run here: they are
  reported SUCCEEDED at once (no Lambda is invoked). ContinueServiceDeployment
  on a deployment that is not IN_PROGRESS, or with a hookId that is not
  awaiting action, -> InvalidParameterException.
- ListServiceDeployments (cluster, service, status, createdAt {before,
  after}, maxResults 1-100 default 20, nextToken; newest first),
  DescribeServiceDeployments (at most 20 ARNs; unknown ones in `failures`
  with reason MISSING), DescribeServiceRevisions (the same; a revision has
  taskDefinition, containerImages with a made-up but stable imageDigest,
  loadBalancers, networkConfiguration, launchType, createdAt and
  resolvedConfiguration.loadBalancers: the target group the revision's
  tasks are in).
- A second deployment while one is PENDING or IN_PROGRESS supersedes it: the
  older one becomes STOPPED ("superseded"), its target revision stays active
  if its tasks had started, and the new deployment begins with
  RECONCILE_SERVICE, which puts production traffic back on the revision that
  serves most of it. (AWS documents RECONCILE_SERVICE for "more than 1
  service revision in an ACTIVE state" but not the fate of the older
  deployment; STOPPED is the emulator's choice.) One being rolled back
  finishes its rollback at once first.
- DeleteService drops the service's deployments and revisions (AWS deletes
  them with the service).

EXTERNAL and CODE_DEPLOY services are moto's alone (task sets keep working;
no service deployments: ListServiceDeployments answers an empty list).

Not emulated: real tasks (counts are bookkeeping), Lambda hooks, Service
Connect and VPC Lattice traffic, EventBridge events, the 24 h stage timeout,
early success criteria, ROLLBACK_FAILED (a rollback always succeeds; failing
tasks do not affect it).

Time scale
==========

One emulated minute (bakeTimeInMinutes, canary and linear bake times, hook
timeouts) lasts `PIFLOW_EMU_MINUTE_SECONDS` real seconds (default 1); every
other stage (and PENDING, ROLLBACK_REQUESTED, ROLLBACK_IN_PROGRESS,
STOP_REQUESTED) lasts `PIFLOW_EMU_STAGE_SECONDS` (default 0.3). Timestamps
(expiresAt included) are real clock times. A changed scale applies from the
next stage on.

Control endpoints (same port)
=============================

    GET  /piflow-emulator/ecs/config          {"minute_seconds": 1.0, "stage_seconds": 0.3}
    POST /piflow-emulator/ecs/config          the same keys (either): change them
    GET  /piflow-emulator/ecs/deployments     every service deployment, as
                                              DescribeServiceDeployments shows it,
                                              plus "strategy", "service", "cluster",
                                              "blueTargetGroup", "greenTargetGroup" and
                                              "history" (every status and stage
                                              it went through, with times)
    POST /piflow-emulator/ecs/fail-tasks      {"cluster": NAME_OR_ARN, "service":
                                              NAME_OR_ARN, "taskDefinition": ARN or
                                              null, "reason": "..."}: the new tasks
                                              of that service's deployments (of that
                                              task definition only, when given) fail
                                              to start; {"clear": true} (with or
                                              without cluster/service) undoes it
    DELETE /piflow-emulator/ecs/fail-tasks    undoes it (all, or the service a
                                              JSON body names)

POST /moto-api/reset also wipes this layer's state. Thread safety: one lock
around the layer's state (held while moto answers the ECS service requests
it post-processes, never for other services' requests).
"""

import base64
import copy
import datetime
import hashlib
import io
import json
import math
import os
import random
import re
import secrets
import sys
import threading
import time

TARGET_PREFIX = "AmazonEC2ContainerServiceV20141113."
CONTROL_PREFIX = "/piflow-emulator/ecs/"
JSON_TYPE = "application/x-amz-json-1.1"
TICK_SECONDS = 0.05

OWN_OPERATIONS = {
    "ListServiceDeployments",
    "DescribeServiceDeployments",
    "DescribeServiceRevisions",
    "StopServiceDeployment",
    "ContinueServiceDeployment",
}
SPLICED_OPERATIONS = {"CreateService", "UpdateService", "DescribeServices", "DeleteService"}

SHIFTING = ("BLUE_GREEN", "LINEAR", "CANARY")
STRATEGIES = ("ROLLING",) + SHIFTING
HOOK_STAGES = (
    "RECONCILE_SERVICE",
    "PRE_SCALE_UP",
    "POST_SCALE_UP",
    "TEST_TRAFFIC_SHIFT",
    "POST_TEST_TRAFFIC_SHIFT",
    "PRE_PRODUCTION_TRAFFIC_SHIFT",
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
)
ONGOING = ("PENDING", "IN_PROGRESS", "STOP_REQUESTED", "ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS")
FINISHED = ("SUCCESSFUL", "STOPPED", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED")
INVALID_NETWORKING = (
    "Service deployment rolled back because of invalid networking configuration. "
    "Both targetGroup and alternateTargetGroup must be associated with the "
    "productionListenerRule or testListenerRule."
)


class EcsError(Exception):
    def __init__(self, kind, message, status=400):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status


def invalid(message):
    return EcsError("InvalidParameterException", message)


def _num(t):
    """An epoch-seconds timestamp as JSON 1.1 sends it (milliseconds kept)."""
    return None if t is None else round(t, 3)


def _epoch(value):
    """A timestamp from a JSON 1.1 request: epoch seconds (or ISO 8601 text)."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        pass
    try:
        return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise invalid("Invalid timestamp %r." % (value,))


def _prune(d):
    return {k: v for k, v in d.items() if v is not None}


# ---------------------------------------------------------------------------
# moto's backends (in-process)


def _ecs_backend(account, region):
    from moto.ecs.models import ecs_backends

    return ecs_backends[account][region]


def _elb_backend(account, region):
    from moto.elbv2.models import elbv2_backends

    return elbv2_backends[account][region]


def _alarm_state(account, region, name):
    from moto.cloudwatch.models import cloudwatch_backends

    alarm = cloudwatch_backends[account][region].alarms.get(name)
    return None if alarm is None else alarm.state_value


def _target_group_exists(account, region, arn):
    return arn in _elb_backend(account, region).target_groups


class ListenerRef:
    """A production or test 'listener rule' of advancedConfiguration: a rule,
    a listener's default rule, or (NLB) a listener."""

    def __init__(self, kind, listener, rule):
        self.kind = kind  # "rule" | "default" | "listener"
        self.listener = listener
        self.rule = rule

    def actions(self):
        if self.kind == "rule":
            return self.rule.actions
        return self.listener.default_actions

    def forward_weights(self):
        """{target group ARN: weight} of the first forward action."""
        for action in self.actions():
            data = getattr(action, "data", {}) or {}
            if data.get("Type") != "forward":
                continue
            groups = (data.get("ForwardConfig") or {}).get("TargetGroups")
            if groups:
                return {g["TargetGroupArn"]: int(g.get("Weight", 1)) for g in groups}
            if data.get("TargetGroupArn"):
                return {data["TargetGroupArn"]: 1}
        return {}


def _find_listener_ref(account, region, arn):
    if not arn:
        return None
    backend = _elb_backend(account, region)
    for lb in list(backend.load_balancers.values()):
        for listener in list(lb.listeners.values()):
            if listener.arn == arn:
                return ListenerRef("listener", listener, None)
            for rule in list(listener.rules.values()):
                if rule.arn == arn:
                    return ListenerRef("default" if getattr(rule, "is_default", False) else "rule", listener, rule)
    return None


def _set_weights(account, region, ref_arn, weights):
    """Make the rule's forward action send `weights` ({tg: weight}); other
    target groups it names keep their weights."""
    ref = _find_listener_ref(account, region, ref_arn)
    if ref is None:
        return False
    new_actions = []
    done = False
    for action in ref.actions():
        data = copy.deepcopy(getattr(action, "data", {}) or {})
        if not done and data.get("Type") == "forward":
            forward = data.setdefault("ForwardConfig", {})
            groups = forward.get("TargetGroups")
            if not groups:
                groups = [{"TargetGroupArn": data["TargetGroupArn"], "Weight": 1}] if data.get("TargetGroupArn") else []
            seen = set()
            for g in groups:
                if g["TargetGroupArn"] in weights:
                    g["Weight"] = int(weights[g["TargetGroupArn"]])
                seen.add(g["TargetGroupArn"])
            for tg, w in weights.items():
                if tg not in seen:
                    groups.append({"TargetGroupArn": tg, "Weight": int(w)})
            forward["TargetGroups"] = groups
            data.pop("TargetGroupArn", None)
            done = True
        new_actions.append(data)
    if not done:
        return False
    backend = _elb_backend(account, region)
    if ref.kind == "rule":
        backend.modify_rule(ref.rule.arn, [], new_actions)
    else:
        backend.modify_listener(ref.listener.arn, actions=new_actions)
    return True


# ---------------------------------------------------------------------------
# state


class Service:
    def __init__(self, arn, name, cluster_name, cluster_arn, account, region):
        self.arn = arn
        self.name = name
        self.cluster_name = cluster_name
        self.cluster_arn = cluster_arn
        self.account = account
        self.region = region
        self.controller = "ECS"
        self.config = {}
        self.load_balancers = []
        self.desired = 0
        self.launch_type = None
        self.platform_version = None
        self.network_configuration = None
        self.task_definition = None
        self.deployments = []  # Deployment, oldest first
        self.production_revision = None
        self.active_revisions = []  # revisions with tasks, production first
        self.tg_of = {}  # revision ARN -> target group ARN its tasks are in
        self.prod_tg = None
        self.ecs_ids = {}  # revision ARN -> "ecs-svc/..." id of service.deployments

    def strategy(self):
        return self.config.get("strategy") or "ROLLING"

    def shifting_lb(self):
        for lb in self.load_balancers:
            if lb.get("advancedConfiguration") and lb.get("targetGroupArn"):
                return lb
        return None


class Deployment:
    def __init__(self, svc, arn, target, sources, created):
        self.arn = arn
        self.svc = svc
        self.target = target
        self.sources = sources
        self.created = created
        self.started = None
        self.finished = None
        self.stopped = None
        self.updated = created
        self.status = "PENDING"
        self.status_reason = None
        self.stage = None
        self.config = copy.deepcopy(svc.config)
        self.strategy = svc.strategy()
        self.plan = []
        self.index = -1
        self.step_start = None
        self.step_end = None
        self.next_at = None
        self.hooks = []
        self.rollback = None
        self.rollback_revision = None
        self.blue = None
        self.green = None
        self.prod_rule = None
        self.test_rule = None
        self.invalid_networking = False
        self.counts = {}  # revision -> [requested, running, pending]
        self.weights = {}  # revision -> [production, test]
        self.failures = 0
        self.cb_status = "DISABLED"
        self.alarm_status = "DISABLED"
        self.alarm_names = []
        self.ignored_alarms = set()
        self.triggered = []
        self.rollout_failed = None  # rolloutStateReason when the target failed
        self.scale_started = False
        self.history = []  # [{"at", "status", "lifecycleStage"}], for the control endpoint

    def note(self, t):
        entry = {"at": round(t, 3), "status": self.status, "lifecycleStage": self.stage}
        if not self.history or (self.history[-1]["status"], self.history[-1]["lifecycleStage"]) != (self.status, self.stage):
            self.history.append(entry)


class Emulator:
    def __init__(self, dispatch, minute_seconds=1.0, stage_seconds=0.3):
        self.dispatch = dispatch
        self.lock = threading.RLock()
        self.minute_seconds = float(minute_seconds)
        self.stage_seconds = float(stage_seconds)
        self.reset()

    def reset(self):
        with self.lock:
            self.services = {}  # service ARN -> Service
            self.deployments = {}  # deployment ARN -> Deployment
            self.revisions = {}  # revision ARN -> dict (ServiceRevision)
            self.fail_rules = []

    # -- clock -------------------------------------------------------------

    def start_ticker(self):
        def loop():
            while True:
                time.sleep(TICK_SECONDS)
                try:
                    with self.lock:
                        self.tick(time.time())
                except Exception as e:  # keep ticking whatever one deployment did
                    print("ecs_deployments: tick failed: %r" % (e,), file=sys.stderr)

        t = threading.Thread(target=loop, name="piflow-ecs-deployments", daemon=True)
        t.start()

    def tick(self, now):
        for d in list(self.deployments.values()):
            if d.status in ONGOING:
                for _ in range(200):
                    if not self.advance(d, now):
                        break

    # -- WSGI --------------------------------------------------------------

    def __call__(self, app, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL_PREFIX):
            return self.control(path[len(CONTROL_PREFIX):], environ, start_response)
        if path == "/moto-api/reset":
            result = list(self.dispatch(app, environ, start_response))
            self.reset()
            return result
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith(TARGET_PREFIX):
            return self.dispatch(app, environ, start_response)
        operation = target[len(TARGET_PREFIX):]
        if operation not in OWN_OPERATIONS and operation not in SPLICED_OPERATIONS:
            return self.dispatch(app, environ, start_response)
        body = _body_of(environ)
        try:
            request = json.loads(body or b"{}")
            if not isinstance(request, dict):
                raise ValueError("not an object")
        except ValueError as e:
            return _error(start_response, EcsError("SerializationException", "Invalid JSON: %s" % e))
        context = _context(environ)
        with self.lock:
            now = time.time()
            self.tick(now)
            try:
                if operation in OWN_OPERATIONS:
                    answer = getattr(self, "op_" + operation)(request, context, now)
                    return _json(start_response, "200 OK", answer)
                return getattr(self, "op_" + operation)(app, environ, body, request, context, start_response, now)
            except EcsError as e:
                return _error(start_response, e)
            except Exception as e:  # a bug here, or a request no SDK sends
                import traceback

                traceback.print_exc()
                return _error(start_response, EcsError("ServerException", "piflow emulator: %r" % (e,), 500))

    def moto(self, app, environ, body):
        """moto's answer to the request: (status, headers, body bytes)."""
        env = dict(environ)
        env["wsgi.input"] = io.BytesIO(body)
        env["CONTENT_LENGTH"] = str(len(body))
        captured = {}

        def start(status, headers, exc_info=None):
            captured["status"] = status
            captured["headers"] = headers
            return lambda data: None

        chunks = self.dispatch(app, env, start)
        try:
            data = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        return captured.get("status", "500 INTERNAL SERVER ERROR"), captured.get("headers", []), data

    # -- control endpoints -------------------------------------------------

    def control(self, what, environ, start_response):
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            given = json.loads(_body_of(environ) or b"{}")
            if not isinstance(given, dict):
                raise ValueError("expected a JSON object")
        except ValueError as e:
            return _plain(start_response, "400 Bad Request", "invalid JSON: %s" % e)
        with self.lock:
            now = time.time()
            self.tick(now)
            if what == "config":
                if method == "POST":
                    try:
                        for key in ("minute_seconds", "stage_seconds"):
                            if key in given:
                                value = float(given[key])
                                if value < 0 or math.isnan(value) or math.isinf(value):
                                    raise ValueError("%s must be a number >= 0" % key)
                                setattr(self, key, value)
                    except (TypeError, ValueError) as e:
                        return _plain(start_response, "400 Bad Request", str(e))
                return _json(
                    start_response, "200 OK", {"minute_seconds": self.minute_seconds, "stage_seconds": self.stage_seconds}, "application/json"
                )
            if what == "deployments":
                out = []
                for d in self.deployments.values():
                    view = self.deployment_view(d)
                    view.update(
                        {"service": d.svc.name, "cluster": d.svc.cluster_name, "strategy": d.strategy,
                         "blueTargetGroup": d.blue, "greenTargetGroup": d.green, "history": d.history}
                    )
                    out.append(view)
                out.sort(key=lambda v: v["createdAt"])
                return _json(start_response, "200 OK", {"deployments": out}, "application/json")
            if what == "fail-tasks":
                cluster = _short(given.get("cluster")) if given.get("cluster") else None
                service = _short(given.get("service")) if given.get("service") else None
                if method == "DELETE" or given.get("clear"):
                    self.fail_rules = [
                        r for r in self.fail_rules
                        if not ((cluster is None or r["cluster"] == cluster) and (service is None or r["service"] == service))
                    ]
                elif method == "POST":
                    if not service:
                        return _plain(start_response, "400 Bad Request", "fail-tasks needs \"service\" (and \"cluster\", default \"default\")")
                    self.fail_rules.append(
                        {"cluster": cluster or "default", "service": service,
                         "taskDefinition": given.get("taskDefinition"),
                         "reason": given.get("reason") or "CannotPullContainerError: emulated task failure"}
                    )
                return _json(start_response, "200 OK", {"rules": self.fail_rules}, "application/json")
        return _plain(start_response, "404 Not Found", "unknown endpoint %s%s" % (CONTROL_PREFIX, what))

    # -- CreateService / UpdateService / DescribeServices / DeleteService ---

    def op_CreateService(self, app, environ, body, request, context, start_response, now):
        controller = (request.get("deploymentController") or {}).get("type") or "ECS"
        if controller == "ECS":
            account, region = context
            config = copy.deepcopy(request.get("deploymentConfiguration") or {})
            self.validate(config, request.get("loadBalancers") or [], account, region)
        status, headers, data = self.moto(app, environ, body)
        if not status.startswith("200"):
            return _raw(start_response, status, headers, data)
        answer = json.loads(data)
        service = answer.get("service") or {}
        account, region = _arn_account_region(service.get("serviceArn"), context)
        svc = Service(
            service["serviceArn"], service["serviceName"], _short(service["clusterArn"]),
            service["clusterArn"], account, region,
        )
        svc.controller = (service.get("deploymentController") or {}).get("type") or controller
        self.services[svc.arn] = svc
        if svc.controller != "ECS":
            return _raw(start_response, status, headers, data)
        svc.config = copy.deepcopy(request.get("deploymentConfiguration") or {})
        svc.load_balancers = copy.deepcopy(request.get("loadBalancers") or [])
        svc.desired = int(service.get("desiredCount") or 0)
        svc.launch_type = service.get("launchType")
        svc.platform_version = request.get("platformVersion")
        svc.network_configuration = copy.deepcopy(request.get("networkConfiguration"))
        svc.task_definition = service.get("taskDefinition")
        lb = svc.shifting_lb() or (svc.load_balancers[0] if svc.load_balancers else None)
        svc.prod_tg = lb.get("targetGroupArn") if lb else None
        # The first revision and deployment: complete at once.
        revision = self.new_revision(svc, now, svc.prod_tg)
        d = Deployment(svc, self.deployment_arn(svc), revision, [], now)
        d.status = "SUCCESSFUL"
        d.started = d.finished = now
        d.note(now)
        d.counts[revision] = [svc.desired, svc.desired, 0]
        if svc.strategy() in SHIFTING and svc.shifting_lb():
            d.weights[revision] = [100.0, 100.0 if svc.shifting_lb()["advancedConfiguration"].get("testListenerRule") else 0.0]
        self.init_monitors(d, now)
        d.cb_status = "MONITORING_COMPLETE" if d.cb_status != "DISABLED" else "DISABLED"
        d.alarm_status = "MONITORING_COMPLETE" if d.alarm_status != "DISABLED" else "DISABLED"
        svc.deployments.append(d)
        self.deployments[d.arn] = d
        svc.production_revision = revision
        svc.active_revisions = [revision]
        answer["service"] = self.splice(svc, service)
        return _json(start_response, "200 OK", answer)

    def op_UpdateService(self, app, environ, body, request, context, start_response, now):
        account, region = context
        svc = self.lookup_service(account, region, request.get("cluster"), request.get("service"))
        if svc is None or svc.controller != "ECS":
            status, headers, data = self.moto(app, environ, body)
            if svc is not None and status.startswith("200"):
                self.refresh_controller(svc, json.loads(data).get("service") or {})
            return _raw(start_response, status, headers, data)
        config = copy.deepcopy(svc.config)
        if "deploymentConfiguration" in request and request["deploymentConfiguration"] is not None:
            config.update(copy.deepcopy(request["deploymentConfiguration"]))
        lbs = copy.deepcopy(request["loadBalancers"]) if request.get("loadBalancers") is not None else svc.load_balancers
        self.validate(config, lbs, svc.account, svc.region)
        status, headers, data = self.moto(app, environ, body)
        if not status.startswith("200"):
            return _raw(start_response, status, headers, data)
        answer = json.loads(data)
        service = answer.get("service") or {}
        if self.refresh_controller(svc, service) != "ECS":
            return _raw(start_response, status, headers, data)
        changed = bool(request.get("forceNewDeployment"))
        backend = _ecs_backend(svc.account, svc.region)
        moto_service = self.moto_service(svc)
        if request.get("taskDefinition"):
            td = backend.describe_task_definition(request["taskDefinition"]).arn
            if moto_service is not None:
                moto_service.task_definition = td  # moto keeps the string as given
            if td != svc.task_definition:
                changed = True
            svc.task_definition = td
        if request.get("loadBalancers") is not None and lbs != svc.load_balancers:
            changed = True
        if request.get("networkConfiguration") is not None and request["networkConfiguration"] != svc.network_configuration:
            changed = True
            svc.network_configuration = copy.deepcopy(request["networkConfiguration"])
        if request.get("platformVersion") is not None and request["platformVersion"] != svc.platform_version:
            changed = True
            svc.platform_version = request["platformVersion"]
        svc.config = config
        svc.load_balancers = lbs
        if service.get("desiredCount") is not None:
            svc.desired = int(service["desiredCount"])
        if changed:
            self.start_deployment(svc, now)
        else:
            self.resize(svc)
        answer["service"] = self.splice(svc, service)
        return _json(start_response, "200 OK", answer)

    def op_DescribeServices(self, app, environ, body, request, context, start_response, now):
        status, headers, data = self.moto(app, environ, body)
        if not status.startswith("200"):
            return _raw(start_response, status, headers, data)
        answer = json.loads(data)
        services = []
        for service in answer.get("services") or []:
            svc = self.services.get(service.get("serviceArn"))
            if svc is not None and svc.controller == "ECS" and service.get("status") != "INACTIVE":
                service = self.splice(svc, service)
            services.append(service)
        answer["services"] = services
        return _json(start_response, "200 OK", answer)

    def op_DeleteService(self, app, environ, body, request, context, start_response, now):
        status, headers, data = self.moto(app, environ, body)
        if status.startswith("200"):
            service = json.loads(data).get("service") or {}
            svc = self.services.pop(service.get("serviceArn"), None)
            if svc is not None:
                for d in svc.deployments:
                    self.deployments.pop(d.arn, None)
                for arn in [a for a, r in self.revisions.items() if r["serviceArn"] == svc.arn]:
                    del self.revisions[arn]
        return _raw(start_response, status, headers, data)

    def refresh_controller(self, svc, service):
        controller = (service.get("deploymentController") or {}).get("type")
        if controller:
            svc.controller = controller
        return svc.controller

    def moto_service(self, svc):
        backend = _ecs_backend(svc.account, svc.region)
        return backend.services.get("%s:%s" % (svc.cluster_name, svc.name))

    def lookup_service(self, account, region, cluster, service):
        if not service:
            return None
        if service.startswith("arn:"):
            svc = self.services.get(service)
            if svc is not None:
                return svc
            parts = service.split(":", 5)[-1].split("/")
            if len(parts) == 3:
                cluster = cluster or parts[1]
            service = parts[-1]
        cluster = _short(cluster or "default")
        for svc in self.services.values():
            if svc.account == account and svc.region == region and svc.cluster_name == cluster and svc.name == service:
                return svc
        return None

    # -- validation --------------------------------------------------------

    def validate(self, config, lbs, account, region):
        try:
            self.check(config, lbs, account, region)
        except (TypeError, ValueError, AttributeError, KeyError) as e:
            raise invalid("deploymentConfiguration or loadBalancers is not valid: %s" % (e,))

    def check(self, config, lbs, account, region):
        strategy = config.get("strategy") or "ROLLING"
        if strategy not in STRATEGIES:
            raise invalid("deploymentConfiguration.strategy must be one of %s." % ", ".join(STRATEGIES))
        for key in ("bakeTimeInMinutes",):
            if config.get(key) is not None and not 0 <= int(config[key]) <= 1440:
                raise invalid("deploymentConfiguration.bakeTimeInMinutes must be between 0 and 1440.")
        linear = config.get("linearConfiguration")
        if linear:
            if linear.get("stepPercent") is not None and not 3.0 <= float(linear["stepPercent"]) <= 100.0:
                raise invalid("deploymentConfiguration.linearConfiguration.stepPercent must be between 3.0 and 100.0.")
            if linear.get("stepBakeTimeInMinutes") is not None and not 0 <= int(linear["stepBakeTimeInMinutes"]) <= 1440:
                raise invalid("deploymentConfiguration.linearConfiguration.stepBakeTimeInMinutes must be between 0 and 1440.")
        canary = config.get("canaryConfiguration")
        if canary:
            if canary.get("canaryPercent") is not None and not 0.1 <= float(canary["canaryPercent"]) <= 100.0:
                raise invalid("deploymentConfiguration.canaryConfiguration.canaryPercent must be between 0.1 and 100.0.")
            if canary.get("canaryBakeTimeInMinutes") is not None and not 0 <= int(canary["canaryBakeTimeInMinutes"]) <= 1440:
                raise invalid("deploymentConfiguration.canaryConfiguration.canaryBakeTimeInMinutes must be between 0 and 1440.")
        for i, hook in enumerate(config.get("lifecycleHooks") or []):
            where = "deploymentConfiguration.lifecycleHooks[%d]" % i
            target_type = hook.get("targetType") or "AWS_LAMBDA"
            stages = hook.get("lifecycleStages") or []
            if not stages:
                raise invalid("%s.lifecycleStages must name at least one lifecycle stage." % where)
            for stage in stages:
                if stage not in HOOK_STAGES:
                    raise invalid("%s.lifecycleStages: %s is not a stage a lifecycle hook can use." % (where, stage))
                if target_type == "PAUSE" and stage in ("TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT"):
                    raise invalid(
                        "%s: PAUSE hooks cannot be configured at TEST_TRAFFIC_SHIFT or PRODUCTION_TRAFFIC_SHIFT stages." % where
                    )
            if target_type == "AWS_LAMBDA" and not hook.get("hookTargetArn"):
                raise invalid("%s.hookTargetArn is required for an AWS_LAMBDA lifecycle hook." % where)
        if strategy not in SHIFTING:
            return
        if not lbs:
            if strategy != "BLUE_GREEN":
                raise invalid(
                    "deploymentConfiguration.strategy %s requires a load balancer with advancedConfiguration "
                    "(loadBalancers) or Service Connect." % strategy
                )
            return
        for i, lb in enumerate(lbs):
            where = "loadBalancers[%d]" % i
            adv = lb.get("advancedConfiguration")
            if not adv:
                raise invalid(
                    "%s.advancedConfiguration is required when deploymentConfiguration.strategy is %s." % (where, strategy)
                )
            tg = lb.get("targetGroupArn")
            if not tg:
                raise invalid("%s.targetGroupArn is required when deploymentConfiguration.strategy is %s." % (where, strategy))
            alt = adv.get("alternateTargetGroupArn")
            if not alt:
                raise invalid("%s.advancedConfiguration.alternateTargetGroupArn is required." % where)
            if alt == tg:
                raise invalid("%s.advancedConfiguration.alternateTargetGroupArn must differ from targetGroupArn." % where)
            for arn, field in ((tg, "targetGroupArn"), (alt, "advancedConfiguration.alternateTargetGroupArn")):
                if not _target_group_exists(account, region, arn):
                    raise invalid("%s.%s: the target group %s does not exist." % (where, field, arn))
            if not adv.get("productionListenerRule"):
                raise invalid("%s.advancedConfiguration.productionListenerRule is required." % where)
            for field in ("productionListenerRule", "testListenerRule"):
                arn = adv.get(field)
                if arn and _find_listener_ref(account, region, arn) is None:
                    raise invalid("%s.advancedConfiguration.%s: the listener rule %s does not exist." % (where, field, arn))
            if not adv.get("roleArn"):
                raise invalid("%s.advancedConfiguration.roleArn is required." % where)

    # -- revisions and deployments -----------------------------------------

    def deployment_arn(self, svc):
        return "arn:aws:ecs:%s:%s:service-deployment/%s/%s/%s" % (
            svc.region, svc.account, svc.cluster_name, svc.name, secrets.token_urlsafe(16))

    def new_revision(self, svc, now, tg):
        arn = "arn:aws:ecs:%s:%s:service-revision/%s/%s/%d" % (
            svc.region, svc.account, svc.cluster_name, svc.name, random.randint(10**18, 10**19 - 1))
        images = []
        try:
            td = _ecs_backend(svc.account, svc.region).describe_task_definition(svc.task_definition)
            for c in td.container_definitions or []:
                image = c.get("image") or ""
                images.append({"containerName": c.get("name"), "image": image,
                               "imageDigest": "sha256:" + hashlib.sha256(image.encode()).hexdigest()})
        except Exception:
            pass
        revision = {
            "serviceRevisionArn": arn,
            "serviceArn": svc.arn,
            "clusterArn": svc.cluster_arn,
            "taskDefinition": svc.task_definition,
            "launchType": svc.launch_type,
            "platformVersion": svc.platform_version,
            "loadBalancers": copy.deepcopy(svc.load_balancers),
            "networkConfiguration": copy.deepcopy(svc.network_configuration),
            "containerImages": images,
            "guardDutyEnabled": False,
            "createdAt": now,
        }
        self.revisions[arn] = revision
        svc.ecs_ids[arn] = "ecs-svc/%d" % random.randint(10**18, 10**19 - 1)
        self.place(svc, arn, tg)
        return arn

    def place(self, svc, revision, tg):
        svc.tg_of[revision] = tg
        lb = svc.shifting_lb()
        rule = (lb or {}).get("advancedConfiguration", {}).get("productionListenerRule")
        self.revisions[revision]["resolvedConfiguration"] = {
            "loadBalancers": [_prune({"targetGroupArn": tg, "productionListenerRule": rule})] if tg else []
        }

    def start_deployment(self, svc, now):
        last = svc.deployments[-1] if svc.deployments else None
        if last is not None and last.status in ("ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS"):
            self.enter_rollback_progress(last, now)
            self.finish_rollback(last, now)
        elif last is not None and last.status in ("PENDING", "IN_PROGRESS", "STOP_REQUESTED"):
            if last.scale_started and last.target not in svc.active_revisions:
                svc.active_revisions.append(last.target)
            last.hooks = []
            self.set_status(last, "STOPPED", now, "Service deployment stopped: superseded by a newer service deployment.")
            last.stopped = last.finished = now
            self.close_monitors(last)
        strategy = svc.strategy()
        lb = svc.shifting_lb() if strategy in SHIFTING else None
        blue = green = None
        prod_rule = test_rule = None
        invalid_networking = False
        if lb is not None:
            adv = lb["advancedConfiguration"]
            primary, alternate = lb["targetGroupArn"], adv["alternateTargetGroupArn"]
            prod_rule, test_rule = adv.get("productionListenerRule"), adv.get("testListenerRule")
            pref = _find_listener_ref(svc.account, svc.region, prod_rule)
            tref = _find_listener_ref(svc.account, svc.region, test_rule) if test_rule else None
            weights = pref.forward_weights() if pref else {}
            test_weights = tref.forward_weights() if tref else {}
            if pref is None or not (
                (primary in weights and alternate in weights) or (primary in test_weights and alternate in test_weights)
            ):
                invalid_networking = True
            wp, wa = weights.get(primary, 0), weights.get(alternate, 0)
            if wa == 0 and wp > 0:
                green = alternate
            elif wp == 0 and wa > 0:
                green = primary
            elif wp != wa:
                green = primary if wp < wa else alternate
            else:
                green = alternate if svc.prod_tg != alternate else primary
            blue = alternate if green == primary else primary
        else:
            blue = svc.prod_tg
        # The revision that serves production (in blue) is the one to roll back to.
        serving = [r for r, tg in svc.tg_of.items() if tg == blue and r in svc.active_revisions] if blue else []
        if svc.production_revision in serving or not serving:
            rollback_revision = svc.production_revision
        else:
            rollback_revision = serving[-1]
        sources = [r for r in svc.active_revisions]
        if rollback_revision in sources:
            sources.remove(rollback_revision)
            sources.insert(0, rollback_revision)
        elif rollback_revision:
            sources.insert(0, rollback_revision)
        target = self.new_revision(svc, now, green if lb is not None else blue)
        d = Deployment(svc, self.deployment_arn(svc), target, sources, now)
        d.blue, d.green, d.prod_rule, d.test_rule = blue, green, prod_rule, test_rule
        d.invalid_networking = invalid_networking
        d.rollback_revision = rollback_revision
        d.next_at = now + self.stage_seconds
        for r in sources:
            n = svc.desired if r == rollback_revision else self.running_of(svc, r)
            d.counts[r] = [n, n, 0]
            if lb is not None:
                d.weights[r] = [100.0 if r == rollback_revision else 0.0,
                                100.0 if (r == rollback_revision and test_rule) else 0.0]
        d.counts[target] = [0, 0, 0]
        d.note(now)
        if lb is not None:
            d.weights[target] = [0.0, 0.0]
        d.plan = self.plan(d, reconcile=len(svc.active_revisions) > 1, shifting=lb is not None)
        self.init_monitors(d, now)
        svc.deployments.append(d)
        self.deployments[d.arn] = d
        return d

    def running_of(self, svc, revision):
        for d in reversed(svc.deployments):
            if revision in d.counts:
                return d.counts[revision][1]
        return 0

    def resize(self, svc):
        if not svc.deployments:
            return
        d = svc.deployments[-1]
        if d.status in FINISHED:
            serving = d.rollback_revision if d.status == "ROLLBACK_SUCCESSFUL" else d.target
            if d.status == "STOPPED" and serving not in svc.active_revisions:
                serving = svc.production_revision
            if serving in d.counts:
                d.counts[serving] = [svc.desired, svc.desired, 0]
        elif d.scale_started and d.target in d.counts:
            d.counts[d.target][0] = svc.desired

    def init_monitors(self, d, now):
        cb = d.config.get("deploymentCircuitBreaker") or {}
        d.cb_status = "MONITORING" if cb.get("enable") else "DISABLED"
        alarms = d.config.get("alarms") or {}
        d.alarm_names = list(alarms.get("alarmNames") or [])
        d.alarm_status = "MONITORING" if alarms.get("enable") else "DISABLED"
        if alarms.get("enable"):
            # AWS: an alarm already in ALARM when the deployment starts is ignored.
            d.ignored_alarms = {n for n in d.alarm_names if _alarm_state(d.svc.account, d.svc.region, n) == "ALARM"}

    def close_monitors(self, d):
        if d.cb_status == "MONITORING":
            d.cb_status = "MONITORING_COMPLETE"
        if d.alarm_status == "MONITORING":
            d.alarm_status = "MONITORING_COMPLETE"

    def threshold(self, d):
        cb = d.config.get("deploymentCircuitBreaker") or {}
        tc = cb.get("thresholdConfiguration") or {}
        kind = tc.get("type") or "BOUNDED_PERCENT"
        value = tc.get("value")
        value = 50 if value is None else int(value)
        desired = d.svc.desired
        if kind == "COUNT":
            return max(1, value)
        n = math.ceil(desired * value / 100.0)
        if kind == "UNBOUNDED_PERCENT":
            return max(1, n)
        return min(200, max(3, n))

    # -- the plan ----------------------------------------------------------

    def plan(self, d, reconcile, shifting):
        cfg = d.config
        steps = []
        if reconcile:
            steps.append(("RECONCILE_SERVICE", "stage", "reconcile"))
        steps += [("PRE_SCALE_UP", "stage", None), ("SCALE_UP", "scale", None), ("POST_SCALE_UP", "stage", None)]
        if d.strategy == "ROLLING":
            bake = int(cfg.get("bakeTimeInMinutes") or 0)
            if bake > 0:
                steps.append(("BAKE_TIME", "minutes", bake))
            steps.append(("CLEAN_UP", "stage", "clean_up"))
            return steps
        steps += [("TEST_TRAFFIC_SHIFT", "stage", "test_shift"), ("POST_TEST_TRAFFIC_SHIFT", "stage", None)]
        if d.strategy == "BLUE_GREEN":
            shifts = [(100.0, 0)]
        elif d.strategy == "CANARY":
            canary = cfg.get("canaryConfiguration") or {}
            pct = float(canary.get("canaryPercent") if canary.get("canaryPercent") is not None else 5.0)
            wait = int(canary.get("canaryBakeTimeInMinutes") if canary.get("canaryBakeTimeInMinutes") is not None else 10)
            shifts = [(pct, wait), (100.0, 0)] if pct < 100.0 else [(100.0, 0)]
        else:
            linear = cfg.get("linearConfiguration") or {}
            step = float(linear.get("stepPercent") if linear.get("stepPercent") is not None else 10.0)
            wait = int(linear.get("stepBakeTimeInMinutes") if linear.get("stepBakeTimeInMinutes") is not None else 6)
            shifts = []
            k = 1
            while True:
                pct = min(100.0, round(k * step, 6))
                shifts.append((pct, wait if pct < 100.0 else 0))
                if pct >= 100.0:
                    break
                k += 1
        for pct, wait in shifts:
            steps.append(("PRE_PRODUCTION_TRAFFIC_SHIFT", "stage", None))
            steps.append(("PRODUCTION_TRAFFIC_SHIFT", "stage", ("shift", pct)))
            if wait > 0:
                steps.append(("PRODUCTION_TRAFFIC_SHIFT", "minutes", wait))
        steps.append(("POST_PRODUCTION_TRAFFIC_SHIFT", "stage", None))
        steps.append(("BAKE_TIME", "minutes", int(cfg.get("bakeTimeInMinutes") or 0)))
        steps.append(("CLEAN_UP", "stage", "clean_up"))
        return steps

    # -- the state machine -------------------------------------------------

    def advance(self, d, now):
        """One transition of d if one is due at `now`; True when it moved."""
        if d.status == "PENDING":
            if now < d.next_at:
                return False
            t = d.next_at
            self.set_status(d, "IN_PROGRESS", t)
            d.started = t
            if d.invalid_networking:
                self.start_rollback(d, t, INVALID_NETWORKING)
                return True
            self.enter_step(d, 0, t)
            return True
        if d.status == "IN_PROGRESS":
            if self.check_alarms(d, now):
                return True
            stage, kind, arg = d.plan[d.index]
            if kind == "scale":
                failing = self.failing_rule(d)
                if failing is not None:
                    return self.count_failures(d, now, failing)
                self.scale_progress(d, now)
            for hook in d.hooks:
                if hook["status"] == "AWAITING_ACTION" and now >= hook["_expires"]:
                    hook["status"] = "TIMED_OUT"
                    d.updated = hook["_expires"]
                    if hook["timeoutAction"] == "ROLLBACK":
                        self.start_rollback(
                            d, hook["_expires"],
                            "Service deployment rolled back because the lifecycle hook %s timed out." % hook["hookId"],
                        )
                        return True
                    d.step_end = max(d.step_end, hook["_expires"])
            if any(h["status"] == "AWAITING_ACTION" for h in d.hooks):
                return False
            if now < d.step_end:
                return False
            t = d.step_end
            self.exit_step(d, t)
            if d.index + 1 >= len(d.plan):
                self.succeed(d, t)
            else:
                self.enter_step(d, d.index + 1, t)
            return True
        if d.status == "ROLLBACK_REQUESTED":
            if now < d.next_at:
                return False
            self.enter_rollback_progress(d, d.next_at)
            return True
        if d.status == "ROLLBACK_IN_PROGRESS":
            if now < d.next_at:
                return False
            self.finish_rollback(d, d.next_at)
            return True
        if d.status == "STOP_REQUESTED":
            if now < d.next_at:
                return False
            self.set_status(d, "STOPPED", d.next_at)
            d.stopped = d.finished = d.next_at
            self.close_monitors(d)
            return True
        return False

    def set_status(self, d, status, t, reason=None):
        d.status = status
        d.updated = t
        if reason is not None:
            d.status_reason = reason
        d.note(t)

    def duration(self, kind, arg):
        if kind == "minutes":
            return max(0.0, float(arg)) * self.minute_seconds
        return self.stage_seconds

    def enter_step(self, d, index, t):
        d.index = index
        stage, kind, arg = d.plan[index]
        d.stage = stage
        d.updated = t
        d.note(t)
        d.step_start = t
        d.step_end = t + self.duration(kind, arg)
        svc = d.svc
        if arg == "reconcile" and d.blue and d.green:
            self.shift(d, 100.0, test_too=True, to_blue=True)
        if kind == "scale":
            d.scale_started = True
            d.counts[d.target] = [svc.desired, 0, svc.desired]
            if d.target not in svc.active_revisions:
                svc.active_revisions.append(d.target)
        if arg == "test_shift" and d.test_rule and d.green:
            _set_weights(svc.account, svc.region, d.test_rule, {d.green: 100, d.blue: 0})
            for r in d.weights:
                d.weights[r][1] = 100.0 if r == d.target else 0.0
        if isinstance(arg, tuple) and arg[0] == "shift":
            self.shift(d, arg[1])
        d.hooks = []
        if kind != "minutes":
            for i, hook in enumerate(d.config.get("lifecycleHooks") or []):
                if stage not in (hook.get("lifecycleStages") or []):
                    continue
                target_type = hook.get("targetType") or "AWS_LAMBDA"
                if target_type == "PAUSE":
                    timeout = hook.get("timeoutConfiguration") or {}
                    minutes = timeout.get("timeoutInMinutes") or 1440
                    d.hooks.append({
                        "hookId": "ecs-pause-" + secrets.token_urlsafe(32),
                        "targetType": "PAUSE",
                        "status": "AWAITING_ACTION",
                        "expiresAt": t + float(minutes) * self.minute_seconds,
                        "timeoutAction": timeout.get("action") or "ROLLBACK",
                        "_expires": t + float(minutes) * self.minute_seconds,
                    })
                else:
                    # AWS_LAMBDA: no Lambda runs in the emulator; it succeeds at once.
                    d.hooks.append({
                        "hookId": "ecs-lambda-" + secrets.token_urlsafe(32),
                        "targetType": "AWS_LAMBDA",
                        "targetArn": hook.get("hookTargetArn"),
                        "status": "SUCCEEDED",
                        "timeoutAction": (hook.get("timeoutConfiguration") or {}).get("action") or "ROLLBACK",
                        "_expires": t,
                    })

    def exit_step(self, d, t):
        stage, kind, arg = d.plan[d.index]
        svc = d.svc
        if arg == "reconcile":
            # The revisions beside the one serving production are replaced.
            for r in list(d.sources):
                if r != d.rollback_revision:
                    d.counts[r] = [0, 0, 0]
                    if r in svc.active_revisions:
                        svc.active_revisions.remove(r)
        if kind == "scale":
            d.counts[d.target] = [svc.desired, svc.desired, 0]
            if d.strategy == "ROLLING":
                for r in d.sources:
                    d.counts[r] = [0, 0, 0]
        if arg == "clean_up":
            for r in d.sources:
                d.counts[r] = [0, 0, 0]

    def scale_progress(self, d, now):
        if d.strategy != "ROLLING" or not d.step_end or d.step_end <= d.step_start:
            return
        f = min(1.0, max(0.0, (now - d.step_start) / (d.step_end - d.step_start)))
        desired = d.svc.desired
        new = int(f * desired)
        d.counts[d.target] = [desired, new, desired - new]
        if d.rollback_revision in d.counts:
            d.counts[d.rollback_revision] = [desired - new, desired - new, 0]

    def shift(self, d, pct, test_too=False, to_blue=False):
        """Production traffic: pct percent to green (or, to_blue, back to blue)."""
        svc = d.svc
        if not (d.blue and d.green and d.prod_rule):
            return
        if to_blue:
            green_w, blue_w = 0, 100
        else:
            green_w = 0 if pct <= 0 else max(1, int(round(pct)))
            green_w = min(100, green_w)
            blue_w = 100 - green_w
        _set_weights(svc.account, svc.region, d.prod_rule, {d.green: green_w, d.blue: blue_w})
        if test_too and d.test_rule:
            _set_weights(svc.account, svc.region, d.test_rule, {d.green: 0, d.blue: 100})
        for r in d.weights:
            if to_blue:
                d.weights[r][0] = 100.0 if r == d.rollback_revision else 0.0
                if test_too:
                    d.weights[r][1] = 100.0 if (r == d.rollback_revision and d.test_rule) else 0.0
            elif r == d.target:
                d.weights[r][0] = float(pct)
            elif r == d.rollback_revision:
                d.weights[r][0] = 100.0 - float(pct)
            else:
                d.weights[r][0] = 0.0

    def succeed(self, d, t):
        svc = d.svc
        self.set_status(d, "SUCCESSFUL", t)
        d.finished = t
        d.hooks = []
        self.close_monitors(d)
        svc.production_revision = d.target
        svc.active_revisions = [d.target]
        if d.green:
            svc.prod_tg = d.green

    def failing_rule(self, d):
        svc = d.svc
        for rule in self.fail_rules:
            if rule["service"] != svc.name or rule["cluster"] != svc.cluster_name:
                continue
            td = rule.get("taskDefinition")
            if td and td != self.revisions[d.target]["taskDefinition"]:
                continue
            return rule
        return None

    def count_failures(self, d, now, rule):
        threshold = self.threshold(d)
        d.failures += max(1, threshold // 10)
        d.counts[d.target] = [d.svc.desired, 0, d.svc.desired]
        d.updated = now
        cb = d.config.get("deploymentCircuitBreaker") or {}
        if not cb.get("enable") or d.failures < threshold:
            return False
        d.failures = max(d.failures, threshold)
        d.cb_status = "TRIGGERED"
        d.rollout_failed = "ECS deployment circuit breaker: tasks failed to start. (%s)" % rule["reason"]
        if cb.get("rollback"):
            self.start_rollback(d, now, "Service deployment rolled back because the circuit breaker threshold was exceeded.")
        else:
            self.stop_failed(d, now, "Service deployment failed because the circuit breaker threshold was exceeded.")
        return True

    def check_alarms(self, d, now):
        if d.alarm_status != "MONITORING":
            return False
        fired = [n for n in d.alarm_names
                 if n not in d.ignored_alarms and _alarm_state(d.svc.account, d.svc.region, n) == "ALARM"]
        if not fired:
            return False
        d.alarm_status = "TRIGGERED"
        d.triggered = fired
        names = ", ".join(fired)
        d.rollout_failed = "ECS deployment detected triggered alarm(s) %s." % names
        if (d.config.get("alarms") or {}).get("rollback"):
            self.start_rollback(d, now, "Service deployment rolled back because the CloudWatch alarm(s) %s went into the ALARM state." % names)
        else:
            self.stop_failed(d, now, "Service deployment failed because the CloudWatch alarm(s) %s went into the ALARM state." % names)
        return True

    def stop_failed(self, d, t, reason):
        self.set_status(d, "STOPPED", t, reason)
        d.stopped = d.finished = t
        d.hooks = []
        self.close_monitors(d)

    def start_rollback(self, d, t, reason):
        d.hooks = [h for h in d.hooks if h["status"] != "AWAITING_ACTION"]
        self.set_status(d, "ROLLBACK_REQUESTED", t, reason)
        d.rollback = {"reason": reason, "startedAt": t, "serviceRevisionArn": d.rollback_revision}
        d.next_at = t + self.stage_seconds
        for monitor in ("cb_status", "alarm_status"):
            if getattr(d, monitor) == "MONITORING":
                setattr(d, monitor, "MONITORING_COMPLETE")

    def enter_rollback_progress(self, d, t):
        svc = d.svc
        self.set_status(d, "ROLLBACK_IN_PROGRESS", t)
        d.next_at = t + self.stage_seconds
        d.hooks = []
        self.shift(d, 0.0, test_too=True, to_blue=True)
        source_td = self.revisions.get(d.rollback_revision, {}).get("taskDefinition")
        if source_td:
            svc.task_definition = source_td
            moto_service = self.moto_service(svc)
            if moto_service is not None:
                moto_service.task_definition = source_td
        if d.rollback_revision:
            d.counts[d.rollback_revision] = [svc.desired, svc.desired, 0]
        d.counts[d.target] = [0, d.counts.get(d.target, [0, 0, 0])[1], 0]

    def finish_rollback(self, d, t):
        svc = d.svc
        self.set_status(d, "ROLLBACK_SUCCESSFUL", t)
        d.finished = t
        d.counts[d.target] = [0, 0, 0]
        for r in d.sources:
            if r != d.rollback_revision:
                d.counts[r] = [0, 0, 0]
        if d.rollback_revision:
            svc.production_revision = d.rollback_revision
            svc.active_revisions = [d.rollback_revision]
        if d.blue:
            svc.prod_tg = d.blue

    # -- the new operations ------------------------------------------------

    def deployment_by_arn(self, arn):
        if not isinstance(arn, str) or not re.match(r"^arn:aws[a-z-]*:ecs:[^:]+:\d{12}:service-deployment/[^/]+/[^/]+/[^/]+$", arn):
            raise invalid("Invalid service deployment ARN: %s" % (arn,))
        d = self.deployments.get(arn)
        if d is None:
            raise EcsError("ServiceDeploymentNotFoundException", "The service deployment %s does not exist." % arn)
        return d

    def op_StopServiceDeployment(self, request, context, now):
        d = self.deployment_by_arn(request.get("serviceDeploymentArn"))
        stop_type = request.get("stopType") or "ROLLBACK"
        if stop_type not in ("ROLLBACK", "ABORT"):
            raise invalid("stopType must be ROLLBACK or ABORT.")
        if d.status in FINISHED:
            raise EcsError(
                "ConflictException",
                "The service deployment %s is %s and cannot be stopped." % (d.arn, d.status),
            )
        if d.status in ("PENDING", "IN_PROGRESS"):
            if stop_type == "ROLLBACK":
                if not d.started:
                    d.started = now
                self.start_rollback(d, now, "Service deployment rolled back by a StopServiceDeployment request.")
            else:
                d.hooks = [h for h in d.hooks if h["status"] != "AWAITING_ACTION"]
                self.set_status(d, "STOP_REQUESTED", now, "Service deployment stopped by a StopServiceDeployment request.")
                d.next_at = now + self.stage_seconds
        # STOP_REQUESTED, ROLLBACK_REQUESTED, ROLLBACK_IN_PROGRESS: it carries on.
        return {"serviceDeploymentArn": d.arn}

    def op_ContinueServiceDeployment(self, request, context, now):
        d = self.deployment_by_arn(request.get("serviceDeploymentArn"))
        hook_id = request.get("hookId")
        if not hook_id:
            raise invalid("hookId is required.")
        action = request.get("action") or "CONTINUE"
        if action not in ("CONTINUE", "ROLLBACK"):
            raise invalid("action must be CONTINUE or ROLLBACK.")
        if d.status != "IN_PROGRESS":
            raise invalid("The service deployment %s is %s; only an IN_PROGRESS deployment can be continued." % (d.arn, d.status))
        hook = next((h for h in d.hooks if h["hookId"] == hook_id), None)
        if hook is None or hook["status"] != "AWAITING_ACTION":
            raise invalid("The lifecycle hook %s is not awaiting action in the service deployment %s." % (hook_id, d.arn))
        hook["status"] = "SUCCEEDED"
        d.updated = now
        if action == "ROLLBACK":
            self.start_rollback(d, now, "Service deployment rolled back by ContinueServiceDeployment (hook %s, action ROLLBACK)." % hook_id)
        else:
            d.step_end = max(d.step_end, now)
            self.advance(d, now)
        return {"serviceDeploymentArn": d.arn}

    def service_for_listing(self, request, context):
        account, region = context
        service = request.get("service")
        if not service:
            raise invalid("service is required.")
        cluster = request.get("cluster")
        if service.startswith("arn:"):
            _, _, _, region, account, rest = (service.split(":", 5) + [""] * 6)[:6]
            parts = rest.split("/")
            if len(parts) == 3 and not cluster:
                cluster = parts[1]
            service = parts[-1]
        cluster = _short(cluster or "default")
        backend = _ecs_backend(account, region)
        if cluster not in backend.clusters:
            raise EcsError("ClusterNotFoundException", "Cluster not found.")
        svc = self.lookup_service(account, region, cluster, service)
        if svc is None:
            if not any(s.cluster_name == cluster and s.name == service and s.status == "ACTIVE" for s in backend.services.values()):
                raise EcsError("ServiceNotFoundException", "Service not found.")
        return svc

    def op_ListServiceDeployments(self, request, context, now):
        svc = self.service_for_listing(request, context)
        statuses = request.get("status") or []
        created = request.get("createdAt") or {}
        before, after = _epoch(created.get("before")), _epoch(created.get("after"))
        max_results = request.get("maxResults")
        if max_results is None:
            max_results = 20
        max_results = int(max_results)
        if not 1 <= max_results <= 100:
            raise invalid("maxResults must be between 1 and 100.")
        chosen = []
        for d in reversed(svc.deployments if svc else []):
            if statuses and d.status not in statuses:
                continue
            if before is not None and not d.created < before:
                continue
            if after is not None and not d.created > after:
                continue
            chosen.append(d)
        chosen.sort(key=lambda d: d.created, reverse=True)
        start = 0
        token = request.get("nextToken")
        if token:
            try:
                start = int(json.loads(base64.urlsafe_b64decode(token.encode()))["offset"])
            except Exception:
                raise invalid("Invalid nextToken.")
        page = chosen[start:start + max_results]
        answer = {"serviceDeployments": [self.brief(d) for d in page]}
        if start + max_results < len(chosen):
            answer["nextToken"] = base64.urlsafe_b64encode(json.dumps({"offset": start + max_results}).encode()).decode()
        return answer

    def op_DescribeServiceDeployments(self, request, context, now):
        arns = request.get("serviceDeploymentArns")
        if not isinstance(arns, list) or not arns:
            raise invalid("serviceDeploymentArns must name at least one service deployment.")
        if len(arns) > 20:
            raise invalid("serviceDeploymentArns can name at most 20 service deployments.")
        found, failures = [], []
        for arn in arns:
            d = self.deployments.get(arn)
            if d is None:
                failures.append({"arn": arn, "reason": "MISSING"})
            else:
                found.append(self.deployment_view(d))
        return {"serviceDeployments": found, "failures": failures}

    def op_DescribeServiceRevisions(self, request, context, now):
        arns = request.get("serviceRevisionArns")
        if not isinstance(arns, list) or not arns:
            raise invalid("serviceRevisionArns must name at least one service revision.")
        if len(arns) > 20:
            raise invalid("serviceRevisionArns can name at most 20 service revisions.")
        found, failures = [], []
        for arn in arns:
            r = self.revisions.get(arn)
            if r is None:
                failures.append({"arn": arn, "reason": "MISSING"})
            else:
                view = _prune(copy.deepcopy(r))
                view["createdAt"] = _num(r["createdAt"])
                found.append(view)
        return {"serviceRevisions": found, "failures": failures}

    # -- views -------------------------------------------------------------

    def summary(self, d, revision):
        requested, running, pending = d.counts.get(revision, [0, 0, 0])
        out = {"arn": revision, "requestedTaskCount": requested, "runningTaskCount": running, "pendingTaskCount": pending}
        if revision in d.weights:
            out["requestedProductionTrafficWeight"] = float(d.weights[revision][0])
            out["requestedTestTrafficWeight"] = float(d.weights[revision][1])
        return out

    def deployment_view(self, d):
        svc = d.svc
        view = {
            "serviceDeploymentArn": d.arn,
            "serviceArn": svc.arn,
            "clusterArn": svc.cluster_arn,
            "createdAt": _num(d.created),
            "startedAt": _num(d.started),
            "finishedAt": _num(d.finished),
            "stoppedAt": _num(d.stopped),
            "updatedAt": _num(d.updated),
            "sourceServiceRevisions": [self.summary(d, r) for r in d.sources],
            "targetServiceRevision": self.summary(d, d.target),
            "status": d.status,
            "statusReason": d.status_reason,
            "lifecycleStage": d.stage,
            "deploymentConfiguration": self.config_view(d.config),
            "deploymentCircuitBreaker": {"status": d.cb_status, "failureCount": d.failures, "threshold": self.threshold(d)},
            "alarms": _prune({
                "status": d.alarm_status,
                "alarmNames": d.alarm_names or None,
                "triggeredAlarmNames": d.triggered or None,
            }),
        }
        if d.hooks:
            view["lifecycleHookDetails"] = [
                _prune({k: (_num(v) if k == "expiresAt" else v) for k, v in h.items() if not k.startswith("_")})
                for h in d.hooks
            ]
        if d.rollback:
            view["rollback"] = _prune({
                "reason": d.rollback["reason"],
                "startedAt": _num(d.rollback["startedAt"]),
                "serviceRevisionArn": d.rollback["serviceRevisionArn"],
            })
        return _prune(view)

    def brief(self, d):
        return _prune({
            "serviceDeploymentArn": d.arn,
            "serviceArn": d.svc.arn,
            "clusterArn": d.svc.cluster_arn,
            "startedAt": _num(d.started),
            "createdAt": _num(d.created),
            "finishedAt": _num(d.finished),
            "targetServiceRevisionArn": d.target,
            "status": d.status,
            "statusReason": d.status_reason,
        })

    def config_view(self, config):
        out = {
            "deploymentCircuitBreaker": {"enable": False, "rollback": False},
            "maximumPercent": 200,
            "minimumHealthyPercent": 100,
            "strategy": "ROLLING",
        }
        out.update(copy.deepcopy(config))
        return out

    def splice(self, svc, service):
        service = dict(service)
        service["deploymentConfiguration"] = self.config_view(svc.config)
        service["loadBalancers"] = copy.deepcopy(svc.load_balancers)
        if svc.task_definition:
            service["taskDefinition"] = svc.task_definition
        entries = self.ecs_deployments(svc)
        service["deployments"] = entries
        service["runningCount"] = sum(e["runningCount"] for e in entries)
        service["pendingCount"] = sum(e["pendingCount"] for e in entries)
        return service

    def ecs_deployments(self, svc):
        """The service's `deployments` (PRIMARY / ACTIVE), from its service deployments."""
        if not svc.deployments:
            return []
        d = svc.deployments[-1]
        rows = []  # (revision, status, rolloutState, reason)
        if d.status in ("PENDING", "IN_PROGRESS", "STOP_REQUESTED"):
            rows.append((d.target, "PRIMARY", "IN_PROGRESS", None))
            rows += [(r, "ACTIVE", "COMPLETED", None) for r in d.sources if d.counts.get(r, [0, 0, 0])[1] > 0]
        elif d.status in ("ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS"):
            rows.append((d.rollback_revision, "PRIMARY", "IN_PROGRESS", None))
            rows.append((d.target, "ACTIVE", "FAILED", d.rollout_failed or d.status_reason))
        elif d.status == "ROLLBACK_SUCCESSFUL":
            rows.append((d.rollback_revision, "PRIMARY", "COMPLETED", None))
        elif d.status == "STOPPED":
            state = "FAILED" if d.rollout_failed or d.stopped else "COMPLETED"
            rows.append((d.target, "PRIMARY", state, d.rollout_failed or d.status_reason))
            rows += [(r, "ACTIVE", "COMPLETED", None) for r in d.sources if d.counts.get(r, [0, 0, 0])[1] > 0]
        else:
            rows.append((d.target, "PRIMARY", "COMPLETED", None))
        out = []
        for revision, status, rollout, reason in rows:
            if not revision or revision not in self.revisions:
                continue
            r = self.revisions[revision]
            requested, running, pending = d.counts.get(revision, [0, 0, 0])
            ecs_id = svc.ecs_ids.get(revision, "ecs-svc/0")
            if reason is None:
                reason = "ECS deployment %s %s." % (ecs_id, "completed" if rollout == "COMPLETED" else "in progress")
            out.append(_prune({
                "id": ecs_id,
                "status": status,
                "taskDefinition": r["taskDefinition"],
                "desiredCount": svc.desired if status == "PRIMARY" else requested,
                "pendingCount": pending,
                "runningCount": running,
                "failedTasks": d.failures if revision == d.target else 0,
                "createdAt": _num(r["createdAt"]),
                "updatedAt": _num(d.updated),
                "launchType": svc.launch_type,
                "platformVersion": svc.platform_version,
                "networkConfiguration": copy.deepcopy(svc.network_configuration),
                "rolloutState": rollout,
                "rolloutStateReason": reason,
            }))
        return out


# ---------------------------------------------------------------------------
# WSGI helpers


def _body_of(environ):
    try:
        n = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        n = 0
    return environ["wsgi.input"].read(n) if n > 0 else b""


def _json(start_response, status, value, content_type=JSON_TYPE):
    body = json.dumps(value).encode()
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def _plain(start_response, status, text):
    body = text.encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _error(start_response, e):
    body = json.dumps({"__type": e.kind, "message": e.message}).encode()
    start_response(
        "%d %s" % (e.status, "Bad Request" if e.status == 400 else "Error"),
        [("Content-Type", JSON_TYPE), ("X-Amzn-Errortype", e.kind), ("Content-Length", str(len(body)))],
    )
    return [body]


def _raw(start_response, status, headers, data):
    headers = [(k, v) for k, v in headers if k.lower() != "content-length"] + [("Content-Length", str(len(data)))]
    start_response(status, headers)
    return [data]


def _short(name_or_arn):
    return str(name_or_arn).split("/")[-1]


def _context(environ):
    """(account, region) of a request, as moto decides them."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    m = re.search(r"Credential=([^/,\s]+)/[^/]+/([^/]+)/", auth)
    region = m.group(2) if m else (os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1")
    if os.environ.get("MOTO_ACCOUNT_ID"):
        return os.environ["MOTO_ACCOUNT_ID"], region
    if environ.get("HTTP_X_MOTO_ACCOUNT_ID"):
        return environ["HTTP_X_MOTO_ACCOUNT_ID"], region
    try:
        from moto.iam.models import get_account_id_from

        return get_account_id_from(m.group(1) if m else "AKIAEXAMPLE"), region
    except Exception:
        from moto.core import DEFAULT_ACCOUNT_ID

        return DEFAULT_ACCOUNT_ID, region


def _arn_account_region(arn, context):
    parts = (arn or "").split(":")
    if len(parts) >= 6:
        return parts[4], parts[3]
    return context


def install():
    """Wrap moto's DomainDispatcherApplication.__call__ with the layer and
    start its clock. Returns the Emulator (for tests)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    def number(name, default):
        try:
            value = float(os.environ.get(name, default))
            return value if value >= 0 else float(default)
        except ValueError:
            return float(default)

    emulator = Emulator(
        DomainDispatcherApplication.__call__,
        minute_seconds=number("PIFLOW_EMU_MINUTE_SECONDS", 1.0),
        stage_seconds=number("PIFLOW_EMU_STAGE_SECONDS", 0.3),
    )

    def layered(self, environ, start_response):
        return emulator(self, environ, start_response)

    DomainDispatcherApplication.__call__ = layered
    emulator.start_ticker()
    return emulator
