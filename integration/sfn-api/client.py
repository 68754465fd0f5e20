"""Drive piflow serve's Step Functions API with real AWS clients.

Usage: client.py ENDPOINT CHECK
Each CHECK prints one JSON object on stdout (what the client got back), so
the Rust tests (tests/it/sfn_api.rs) assert on it. Credentials come from the
standard AWS environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_DEFAULT_REGION), as for any boto3 program.
"""

import datetime
import json
import sys
import threading
import time
import urllib.error
import urllib.request
from unittest import mock

import boto3
import botocore
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config

VALID = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}
BROKEN = {
    "StartAt": "A",
    "States": {"A": {"Type": "Pass", "Nxt": "B", "End": True}},
}


def client(endpoint, **config):
    # TestState and StartSyncExecution go to host "sync-" + the endpoint's
    # host unless the prefix is turned off (docs/sfn-api.md).
    return boto3.client(
        "stepfunctions",
        endpoint_url=endpoint,
        config=Config(retries={"max_attempts": 1}, inject_host_prefix=False, **config),
    )


def error_of(call):
    try:
        return {"ok": call()}
    except botocore.exceptions.ClientError as e:
        return {
            "error": e.response["Error"]["Code"],
            "message": e.response["Error"].get("Message", ""),
            "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
        }


def signed_request(endpoint, body, when=None, target="ValidateStateMachineDefinition"):
    """A request signed as botocore signs it."""
    session = boto3.session.Session()
    creds = session.get_credentials()
    req = AWSRequest(
        method="POST",
        url=endpoint + "/",
        data=body,
        headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "AWSStepFunctions." + target,
        },
    )
    if when is None:
        SigV4Auth(creds, "states", session.region_name).add_auth(req)
    else:
        # botocore reads its clock through get_current_datetime (naive UTC).
        naive = when.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        with mock.patch(
            "botocore.auth.get_current_datetime", lambda remove_tzinfo=True: naive
        ):
            SigV4Auth(creds, "states", session.region_name).add_auth(req)
    return req


def send(req, body=None):
    """Send a signed request as it is (or with another body)."""
    r = urllib.request.Request(
        req.url,
        data=req.body if body is None else body,
        headers=dict(req.headers.items()),
        method="POST",
    )
    try:
        with urllib.request.urlopen(r) as res:
            return {"status": res.status, "body": json.loads(res.read())}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": json.loads(e.read())}


ROLE = "arn:aws:iam::123456789012:role/piflow-test"


def chain(n, tag):
    """n Pass states in a row; the output is {"tag", "input", "s1"…}."""
    states = {}
    for i in range(n):
        state = {"Type": "Pass"}
        if i == 0:
            state["Parameters"] = {"tag": tag, "input.$": "$"}
        else:
            state["Result"] = i
            state["ResultPath"] = f"$.s{i}"
        if i + 1 < n:
            state["Next"] = f"S{i + 1}"
        else:
            state["End"] = True
        states[f"S{i}"] = state
    return {"StartAt": "S0", "States": states}


GATE = {
    "StartAt": "Approve",
    "States": {
        "Approve": {
            "Type": "Task",
            "Resource": "piflow:approval.waitForTaskToken",
            "Parameters": {"environment": "dev", "message": "ship it?"},
            "ResultPath": "$.approval",
            "End": True,
        }
    },
}


def wait_done(sfn, arn, timeout=30):
    deadline = time.time() + timeout
    while True:
        d = sfn.describe_execution(executionArn=arn)
        if d["status"] != "RUNNING" or time.time() > deadline:
            return d
        time.sleep(0.05)


def history(sfn, arn, page=None):
    """Every event, paging as a client does."""
    events, token = [], None
    while True:
        kw = {"executionArn": arn}
        if page:
            kw["maxResults"] = page
        if token:
            kw["nextToken"] = token
        h = sfn.get_execution_history(**kw)
        events.extend(h["events"])
        token = h.get("nextToken")
        if not token:
            return events


def wait_token(sfn, arn, after=0, timeout=30):
    """The task token a waiting task handed out (its TaskSubmitted output)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for e in history(sfn, arn):
            if e["type"] == "TaskSubmitted" and e["id"] > after:
                out = json.loads(e["taskSubmittedEventDetails"]["output"])
                return e["id"], out["token"]
        time.sleep(0.05)
    raise SystemExit(f"{arn}: no task token within {timeout} s")


def lifecycle(endpoint):
    """create → start → describe → history → versions and aliases →
    task tokens → redrive → stop → tags → delete, as boto3 users write it."""
    sfn = client(endpoint)
    out = {}
    first = sfn.create_state_machine(
        name="hello", definition=json.dumps(chain(10, "v1")), roleArn=ROLE,
        publish=True, versionDescription="first", tags=[{"key": "team", "value": "research"}],
    )
    arn = first["stateMachineArn"]
    out["create"] = {k: first.get(k) for k in ("stateMachineArn", "stateMachineVersionArn")}
    again = sfn.create_state_machine(name="hello", definition=json.dumps(chain(10, "v1")), roleArn=ROLE)
    out["create_again_same_arn"] = again["stateMachineArn"] == arn
    out["create_other"] = error_of(lambda: sfn.create_state_machine(
        name="hello", definition=json.dumps(chain(2, "x")), roleArn=ROLE))
    d = sfn.describe_state_machine(stateMachineArn=arn)
    out["describe"] = {k: d[k] for k in ("name", "status", "type", "roleArn")}
    out["describe_definition_same"] = json.loads(d["definition"]) == chain(10, "v1")

    e1 = sfn.start_execution(stateMachineArn=arn, name="e1", input=json.dumps({"n": 1}))
    out["e1"] = e1["executionArn"]
    done = wait_done(sfn, e1["executionArn"])
    out["e1_status"] = done["status"]
    out["e1_output"] = json.loads(done["output"])
    out["e1_again_other_input"] = error_of(lambda: sfn.start_execution(
        stateMachineArn=arn, name="e1", input=json.dumps({"n": 2})))
    out["e1_again_closed"] = error_of(lambda: sfn.start_execution(
        stateMachineArn=arn, name="e1", input=json.dumps({"n": 1})))
    events = history(sfn, e1["executionArn"], page=3)
    out["history_types"] = [e["type"] for e in events]
    out["history_ids"] = [e["id"] for e in events]
    rev = sfn.get_execution_history(executionArn=e1["executionArn"], reverseOrder=True, maxResults=1)
    out["history_last"] = rev["events"][0]["type"]

    up = sfn.update_state_machine(stateMachineArn=arn, definition=json.dumps(chain(10, "v2")), publish=True)
    out["update_version"] = up.get("stateMachineVersionArn")
    versions = sfn.list_state_machine_versions(stateMachineArn=arn)["stateMachineVersions"]
    out["versions"] = [v["stateMachineVersionArn"] for v in versions]
    v1 = arn + ":1"
    out["describe_v1_tag"] = json.loads(sfn.describe_state_machine(stateMachineArn=v1)["definition"])["States"]["S0"]["Parameters"]["tag"]
    alias = sfn.create_state_machine_alias(
        name="prod", routingConfiguration=[{"stateMachineVersionArn": v1, "weight": 100}])
    alias_arn = alias["stateMachineAliasArn"]
    out["alias"] = alias_arn
    via = sfn.start_execution(stateMachineArn=alias_arn, name="via-alias", input="{}")
    dv = wait_done(sfn, via["executionArn"])
    out["via_alias"] = {
        "tag": json.loads(dv["output"])["tag"],
        "aliasArn": dv.get("stateMachineAliasArn"),
        "versionArn": dv.get("stateMachineVersionArn"),
    }
    sfn.update_state_machine_alias(
        stateMachineAliasArn=alias_arn,
        routingConfiguration=[{"stateMachineVersionArn": arn + ":2", "weight": 100}])
    out["alias_now"] = sfn.describe_state_machine_alias(stateMachineAliasArn=alias_arn)["routingConfiguration"]
    via2 = sfn.start_execution(stateMachineArn=alias_arn, name="via-alias-2", input="{}")
    out["via_alias_2_tag"] = json.loads(wait_done(sfn, via2["executionArn"])["output"])["tag"]
    out["alias_bad_weights"] = error_of(lambda: sfn.create_state_machine_alias(
        name="half", routingConfiguration=[{"stateMachineVersionArn": v1, "weight": 50}]))
    listed = sfn.list_executions(stateMachineArn=arn, maxResults=2)
    names = [e["name"] for e in listed["executions"]]
    while listed.get("nextToken"):
        listed = sfn.list_executions(stateMachineArn=arn, maxResults=2, nextToken=listed["nextToken"])
        names += [e["name"] for e in listed["executions"]]
    out["executions"] = sorted(names)
    out["executions_via_alias"] = sorted(
        e["name"] for e in sfn.list_executions(stateMachineArn=alias_arn)["executions"])

    # Task tokens, a failure, a redrive.
    gate = sfn.create_state_machine(name="gate", definition=json.dumps(GATE), roleArn=ROLE)["stateMachineArn"]
    g = sfn.start_execution(stateMachineArn=gate, name="g1", input="{}")["executionArn"]
    seen, token = wait_token(sfn, g)
    sfn.send_task_heartbeat(taskToken=token)
    sfn.send_task_failure(taskToken=token, error="Rejected", cause="not today")
    failed = wait_done(sfn, g)
    out["gate_failed"] = {k: failed.get(k) for k in ("status", "error", "cause", "redriveStatus")}
    out["answer_again"] = error_of(lambda: sfn.send_task_success(taskToken=token, output="{}"))
    out["heartbeat_after_end"] = error_of(lambda: sfn.send_task_heartbeat(taskToken=token))
    out["not_a_token"] = error_of(lambda: sfn.send_task_success(taskToken="nope", output="{}"))
    sfn.redrive_execution(executionArn=g)
    _, token2 = wait_token(sfn, g, after=seen)
    out["new_token"] = token2 != token
    sfn.send_task_success(taskToken=token2, output=json.dumps({"approved": True}))
    ok = wait_done(sfn, g)
    out["gate_redriven"] = {
        "status": ok["status"], "redriveCount": ok["redriveCount"],
        "approval": json.loads(ok["output"]).get("approval"),
    }
    out["redrive_succeeded"] = error_of(lambda: sfn.redrive_execution(executionArn=g))
    out["history_redriven"] = "ExecutionRedriven" in [e["type"] for e in history(sfn, g)]

    g2 = sfn.start_execution(stateMachineArn=gate, name="g2", input="{}")["executionArn"]
    wait_token(sfn, g2)
    sfn.stop_execution(executionArn=g2, error="Manual", cause="operator stopped it")
    stopped = wait_done(sfn, g2)
    aborted = [e for e in history(sfn, g2) if e["type"] == "ExecutionAborted"]
    out["stopped"] = {
        "status": stopped["status"], "error": stopped.get("error"), "cause": stopped.get("cause"),
        "event": aborted[0].get("executionAbortedEventDetails") if aborted else None,
    }
    for_exec = sfn.describe_state_machine_for_execution(executionArn=g2)
    out["machine_for_execution"] = json.loads(for_exec["definition"]) == GATE

    sfn.tag_resource(resourceArn=arn, tags=[{"key": "tier", "value": "gold"}])
    sfn.untag_resource(resourceArn=arn, tagKeys=["team"])
    out["tags"] = sfn.list_tags_for_resource(resourceArn=arn)["tags"]
    out["machines"] = sorted(m["name"] for m in sfn.list_state_machines()["stateMachines"])
    # One machine a page, through boto3's paginator: every page's rows carry
    # their type and creation date (a workflow without a record included).
    paged = [
        m
        for page in sfn.get_paginator("list_state_machines").paginate(PaginationConfig={"PageSize": 1})
        for m in page["stateMachines"]
    ]
    out["machines_paged"] = [
        [m["name"], m["type"], isinstance(m["creationDate"], datetime.datetime)] for m in paged
    ]
    sfn.delete_state_machine(stateMachineArn=gate)
    out["deleted"] = error_of(lambda: sfn.describe_state_machine(stateMachineArn=gate))
    out["machines_after_delete"] = sorted(m["name"] for m in sfn.list_state_machines()["stateMachines"])
    return out


def env_lease(endpoint):
    """Two executions whose input names the same environment run one after
    the other (its lease), as two `piflow run`s do."""
    sfn = client(endpoint)
    gate = sfn.create_state_machine(name="gate", definition=json.dumps(GATE), roleArn=ROLE)["stateMachineArn"]
    first = sfn.start_execution(stateMachineArn=gate, name="first", input=json.dumps({"environment": "dev"}))["executionArn"]
    _, token = wait_token(sfn, first)
    second = sfn.start_execution(stateMachineArn=gate, name="second", input=json.dumps({"environment": "dev"}))["executionArn"]
    # The second waits in the environment's queue: RUNNING, no event yet.
    time.sleep(1.0)
    waiting = {"status": sfn.describe_execution(executionArn=second)["status"],
               "events": len(history(sfn, second))}
    sfn.send_task_success(taskToken=token, output="{}")
    first_done = wait_done(sfn, first)
    _, token2 = wait_token(sfn, second)
    started_second = history(sfn, second)[0]["timestamp"]
    sfn.send_task_success(taskToken=token2, output="{}")
    return {
        "waiting": waiting,
        "first": first_done["status"],
        "second": wait_done(sfn, second)["status"],
        "second_started_after_first_stopped": started_second >= first_done["stopDate"],
    }


def bad_input(endpoint):
    """Every refusal names what and where; nothing is stored."""
    sfn = client(endpoint)
    sfn.create_state_machine(name="ok", definition=json.dumps(chain(2, "x")), roleArn=ROLE)
    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:ok"
    before = sfn.list_state_machines()["stateMachines"]
    big = json.dumps({"StartAt": "A", "Comment": "x" * 1_048_600, "States": {"A": {"Type": "Pass", "End": True}}})
    out = {
        "invalid_definition": error_of(lambda: sfn.create_state_machine(
            name="broken", definition=json.dumps(BROKEN), roleArn=ROLE)),
        "not_json_definition": error_of(lambda: sfn.create_state_machine(
            name="broken2", definition="{not json", roleArn=ROLE)),
        "oversized_definition": error_of(lambda: sfn.create_state_machine(
            name="big", definition=big, roleArn=ROLE)),
        "bad_name": error_of(lambda: sfn.create_state_machine(
            name="has space", definition=json.dumps(VALID), roleArn=ROLE)),
        "bad_role": error_of(lambda: sfn.create_state_machine(
            name="norole", definition=json.dumps(VALID), roleArn="piflow")),
        "other_region": error_of(lambda: sfn.describe_state_machine(
            stateMachineArn="arn:aws:states:eu-west-1:123456789012:stateMachine:ok")),
        "other_account": error_of(lambda: sfn.start_execution(
            stateMachineArn="arn:aws:states:us-east-1:999999999999:stateMachine:ok")),
        "missing_machine": error_of(lambda: sfn.start_execution(
            stateMachineArn="arn:aws:states:us-east-1:123456789012:stateMachine:nope")),
        "input_not_json": error_of(lambda: sfn.start_execution(stateMachineArn=arn, input="{oops")),
        "input_too_big": error_of(lambda: sfn.start_execution(
            stateMachineArn=arn, input=json.dumps({"x": "y" * 262_144}))),
        "bad_execution_name": error_of(lambda: sfn.start_execution(stateMachineArn=arn, name="a/b")),
        "missing_execution": error_of(lambda: sfn.describe_execution(
            executionArn="arn:aws:states:us-east-1:123456789012:execution:ok:nope")),
        "sync_on_standard": error_of(lambda: sfn.start_sync_execution(stateMachineArn=arn)),
        "bad_token": error_of(lambda: sfn.list_state_machines(nextToken="garbage")),
        "unknown_alias": error_of(lambda: sfn.describe_state_machine_alias(
            stateMachineAliasArn=arn + ":nope")),
    }
    # What an SDK would not send: raw signed requests.
    out["malformed_json"] = send(signed_request(endpoint, b'{"name": "x",', target="CreateStateMachine"))
    out["missing_field"] = send(signed_request(endpoint, b'{"definition": "{}"}', target="CreateStateMachine"))
    out["wrong_type"] = send(signed_request(endpoint, json.dumps(
        {"stateMachineArn": arn, "input": {"not": "text"}}).encode(), target="StartExecution"))
    out["machines_unchanged"] = sfn.list_state_machines()["stateMachines"] == before
    out["no_execution_stored"] = sfn.list_executions(stateMachineArn=arn)["executions"] == []
    return out


def activities(endpoint):
    """Activities and a worker: create, describe, list; an execution's
    activity task taken by get_activity_task (a poll waiting before the
    task exists, and one after), answered, heartbeaten, failed; a poll
    with no task; unknown and foreign activities; delete."""
    sfn = client(endpoint, read_timeout=70)
    out = {}
    created = sfn.create_activity(name="approve")
    again = sfn.create_activity(name="approve", tags=[{"key": "k", "value": "v"}])
    act = created["activityArn"]
    out["arn"] = act
    out["create_again_same"] = again["activityArn"] == act and again["creationDate"] == created["creationDate"]
    d = sfn.describe_activity(activityArn=act)
    out["describe"] = {"name": d["name"], "arn": d["activityArn"]}
    sfn.create_activity(name="other")
    out["listed"] = [a["name"] for a in sfn.list_activities()["activities"]]
    out["listed_paged"] = [
        a["name"]
        for page in sfn.get_paginator("list_activities").paginate(PaginationConfig={"PageSize": 1})
        for a in page["activities"]
    ]
    definition = {
        "StartAt": "Work",
        "States": {
            "Work": {
                "Type": "Task",
                "Resource": act,
                "TimeoutSeconds": 60,
                "HeartbeatSeconds": 30,
                "ResultPath": "$.work",
                "End": True,
            }
        },
    }
    machine = sfn.create_state_machine(
        name="worked", definition=json.dumps(definition), roleArn=ROLE
    )["stateMachineArn"]

    # A worker polls before the task exists: the task wakes its poll.
    taken = {}

    def poll():
        taken["task"] = client(endpoint, read_timeout=70).get_activity_task(
            activityArn=act, workerName="early-worker"
        )

    worker = threading.Thread(target=poll)
    worker.start()
    time.sleep(0.3)
    e1 = sfn.start_execution(stateMachineArn=machine, name="e1", input=json.dumps({"n": 1}))["executionArn"]
    worker.join(30)
    task = taken.get("task", {})
    out["early_input"] = json.loads(task.get("input", "null"))
    sfn.send_task_heartbeat(taskToken=task["taskToken"])
    sfn.send_task_success(taskToken=task["taskToken"], output=json.dumps({"done": True}))
    done = wait_done(sfn, e1)
    out["e1"] = {"status": done["status"], "output": json.loads(done.get("output", "null"))}
    out["e1_events"] = [e["type"] for e in history(sfn, e1)]
    out["answer_again"] = error_of(
        lambda: sfn.send_task_success(taskToken=task["taskToken"], output="{}")
    )

    # A task that exists before the poll; the worker fails it.
    e2 = sfn.start_execution(stateMachineArn=machine, name="e2", input=json.dumps({"n": 2}))["executionArn"]
    task2 = {}
    deadline = time.time() + 30
    while "taskToken" not in task2 and time.time() < deadline:
        task2 = sfn.get_activity_task(activityArn=act, workerName="late-worker")
    out["late_input"] = json.loads(task2.get("input", "null"))
    sfn.send_task_failure(taskToken=task2["taskToken"], error="Worker.Failed", cause="disk full")
    failed = wait_done(sfn, e2)
    out["e2"] = {k: failed.get(k) for k in ("status", "error", "cause")}

    # Two tasks, taken by two polls in a row (the same signed bytes within
    # one second: a worker polls again at once).
    e3 = sfn.start_execution(stateMachineArn=machine, name="e3", input=json.dumps({"n": 3}))["executionArn"]
    e4 = sfn.start_execution(stateMachineArn=machine, name="e4", input=json.dumps({"n": 4}))["executionArn"]
    deadline = time.time() + 30
    while time.time() < deadline and not all(
        any(ev["type"] == "ActivityScheduled" for ev in history(sfn, e)) for e in (e3, e4)
    ):
        time.sleep(0.05)
    twice = [sfn.get_activity_task(activityArn=act, workerName="fast") for _ in range(2)]
    out["twice_inputs"] = sorted(json.loads(t.get("input", "null"))["n"] for t in twice)
    for t in twice:
        sfn.send_task_success(taskToken=t["taskToken"], output="{}")
    out["twice_done"] = [wait_done(sfn, e)["status"] for e in (e3, e4)]

    # Nothing to do: the poll ends (after --activity-poll) without a task.
    began = time.time()
    empty = sfn.get_activity_task(activityArn=act)
    out["empty_has_token"] = "taskToken" in empty
    out["empty_waited"] = round(time.time() - began, 1)

    out["unknown"] = error_of(
        lambda: sfn.get_activity_task(activityArn=act.replace(":approve", ":nope"))
    )
    out["foreign"] = error_of(
        lambda: sfn.describe_activity(activityArn=act.replace("us-east-1", "eu-west-1"))
    )
    out["bad_name"] = error_of(lambda: sfn.create_activity(name="has space"))
    sfn.delete_activity(activityArn=act)
    out["deleted"] = error_of(lambda: sfn.describe_activity(activityArn=act))
    # The same request signed in the same second is a replay (refused);
    # a second later it is a new request.
    time.sleep(1.1)
    out["delete_again"] = error_of(lambda: sfn.delete_activity(activityArn=act))
    out["listed_after_delete"] = [a["name"] for a in sfn.list_activities()["activities"]]
    return out


def activity_scheduled(endpoint):
    """An execution whose activity task waits for a worker (the server is
    then killed: see activity_resumed)."""
    sfn = client(endpoint)
    act = sfn.create_activity(name="survivor")["activityArn"]
    definition = {"StartAt": "Work", "States": {"Work": {"Type": "Task", "Resource": act, "End": True}}}
    machine = sfn.create_state_machine(
        name="survives", definition=json.dumps(definition), roleArn=ROLE
    )["stateMachineArn"]
    e = sfn.start_execution(stateMachineArn=machine, name="s1", input=json.dumps({"n": 3}))["executionArn"]
    deadline = time.time() + 30
    while time.time() < deadline:
        if any(ev["type"] == "ActivityScheduled" for ev in history(sfn, e)):
            return {"execution": e, "activity": act}
        time.sleep(0.05)
    raise SystemExit(f"{e}: no ActivityScheduled within 30 s")


def activity_resumed(endpoint, execution, act):
    """After a restart: the resumed execution's task is queued again."""
    sfn = client(endpoint, read_timeout=70)
    task = {}
    deadline = time.time() + 30
    while "taskToken" not in task and time.time() < deadline:
        task = sfn.get_activity_task(activityArn=act, workerName="after-restart")
    if "taskToken" not in task:
        raise SystemExit("no task after the restart")
    sfn.send_task_success(taskToken=task["taskToken"], output=json.dumps({"resumed": True}))
    done = wait_done(sfn, execution)
    return {
        "input": json.loads(task["input"]),
        "status": done["status"],
        "output": json.loads(done.get("output", "null")),
        "scheduled": sum(1 for ev in history(sfn, execution) if ev["type"] == "ActivityScheduled"),
    }


def activity_poll(endpoint):
    """One worker's poll of an activity with no task (the server stops
    meanwhile: see the test)."""
    sfn = client(endpoint, read_timeout=70)
    act = sfn.create_activity(name="idle")["activityArn"]
    print(json.dumps({"polling": True}), flush=True)
    began = time.time()
    task = sfn.get_activity_task(activityArn=act, workerName="idle-worker")
    return {"has_token": "taskToken" in task, "waited": round(time.time() - began, 1)}


def main():
    endpoint, check = sys.argv[1], sys.argv[2]
    body = json.dumps({"definition": json.dumps(VALID)}).encode()
    if check == "validate-ok":
        out = error_of(
            lambda: client(endpoint).validate_state_machine_definition(
                definition=json.dumps(VALID)
            )
        )
    elif check == "validate-broken":
        out = error_of(
            lambda: client(endpoint).validate_state_machine_definition(
                definition=json.dumps(BROKEN), severity="WARNING", maxResults=100
            )
        )
    elif check == "unsigned":
        out = error_of(
            lambda: client(endpoint, signature_version=botocore.UNSIGNED)
            .validate_state_machine_definition(definition=json.dumps(VALID))
        )
    elif check == "unknown-operation":
        out = error_of(
            lambda: client(endpoint).list_map_runs(
                executionArn="arn:aws:states:us-east-1:123456789012:execution:m:e"
            )
        )
    elif check == "stale":
        old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=6)
        out = send(signed_request(endpoint, body, when=old))
    elif check == "replay":
        # A read may be sent again; a change may not.
        read = signed_request(endpoint, body)
        change = signed_request(
            endpoint,
            json.dumps({"stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:x"}).encode(),
            target="StartExecution",
        )
        out = {
            "read": [send(read), send(read)],
            "change": [send(change), send(change)],
        }
    elif check == "lifecycle":
        out = lifecycle(endpoint)
    elif check == "activities":
        out = activities(endpoint)
    elif check == "activity-poll":
        out = activity_poll(endpoint)
    elif check == "activity-scheduled":
        out = activity_scheduled(endpoint)
    elif check == "activity-resumed":
        out = activity_resumed(endpoint, sys.argv[3], sys.argv[4])
    elif check == "env-lease":
        out = env_lease(endpoint)
    elif check == "bad-input":
        out = bad_input(endpoint)
    elif check == "tampered":
        req = signed_request(endpoint, body)
        out = send(req, body=body.replace(b"Pass", b"Wait"))
    else:
        raise SystemExit(f"unknown check {check}")
    json.dump(out, sys.stdout, default=str)
    print()


if __name__ == "__main__":
    main()
