#!/usr/bin/env python3
"""moto server for piflow's tests and CI, with DynamoDB made linearizable.

Usage (with the interpreter of the environment integration/emulator/setup.sh
makes):

    .emu/venv/bin/python integration/emulator/moto_server.py [-H 127.0.0.1] -p PORT

Any other option is moto_server's own (`moto_server --help`). The server
listens on 127.0.0.1 unless -H says otherwise; keep it on the loopback
address. `MOTO_PORT` is set to the port when it is not set already: moto's
Step Functions interpreter calls the other services at
localhost:$MOTO_PORT, so it must be the real port. Stop the server with
SIGTERM or SIGINT.

Who starts it: tests/it/common/moto.rs (once per test binary, on a free port,
when MOTO_PORT is not set; and one more for a test whose load would hold
up the others' requests, `common::moto::own`) and .ci/run (once for the
whole run, exporting MOTO_PORT so that the tests use that one).

Why the patches. Written for moto 5.2.5 (the version setup.sh pins); stock
moto's threaded server is not linearizable for DynamoDB:

1. DynamoDB requests are served one at a time (a lock around every request
   whose X-Amz-Target is DynamoDB_*). Threaded moto applies a
   TransactWriteItems item by item without isolation, so a concurrent
   request can see half of a transaction; and it rolls a cancelled
   transaction back by restoring a copy of the whole table taken when the
   transaction began, which erases whatever other clients wrote meanwhile.
   piflow saw that as lost history events when 50 processes shared a table.
   DynamoDB itself never loses an acknowledged write.

2. A cancelled transaction is rolled back by putting back the items it
   touched (saved just before it runs). Stock moto instead deep-copies
   every table the transaction names, on every transaction, to restore the
   copy if it is cancelled: that makes each write as slow as the table is
   big (a history table grows with every event), and restoring a whole
   table is what erased other clients' writes in 1.

3. A Query reads only the partition it asks for. Stock moto's Query builds
   and sorts a list of every item of the table (`Table.all_items`, sorted
   with Python comparisons of DynamoType), then keeps the items of the one
   partition: each Query costs as much as the whole table, however small
   its answer. In piflow's crash-and-resume test (50 executions, one
   table) moto spent most of its time there. The patch hands Query the
   partition's items (a base-table Query) or the unsorted items (a Query
   of an index, which moto sorts by the index's keys afterwards anyway):
   the same answers, in the same order.

Step Functions and EventBridge requests are served one at a time as well
(each service under its own lock): their backends are not thread-safe.
Requests to other services stay concurrent. If moto's internals differ from what the patches expect, they
are skipped with a warning on stderr and plain moto runs.

AWS Health. moto does not emulate AWS Health, which `piflow:health-gate`
asks before every change. This server answers its `DescribeEvents`
(Smithy RPC v2 CBOR, as aws-sdk-health sends it) on the same port, so a
client configured with `AWS_ENDPOINT_URL` reaches it like any other
service. It reports the events a caller put there, filtered as AWS filters
them (regions, services, event type categories, status codes), and none
by default (no open issue):

    POST /piflow-emulator/health/events   {"events": [EVENT, ...]}  (replace)
    GET  /piflow-emulator/health/events                             (read)

An EVENT has AWS's fields: arn, service, eventTypeCode,
eventTypeCategory (issue | accountNotification | scheduledChange),
region, startTime and lastUpdatedTime (ISO 8601), statusCode (open |
closed | upcoming), eventScopeCode. The main job's `--incident` uses it to
show the gate closing. Tests of the gate itself use wiremock, which can
also inject the API's faults.

ECS service deployments. moto 5.2.5 has none of ECS's native deployments
(its UpdateService only sets the given properties). ecs_deployments.py,
beside this file, adds them as a layer over moto's ECS (its docstring has
the details), for services under the default `ECS` deployment controller:

- CreateService / UpdateService / DescribeServices keep and return the whole
  `deploymentConfiguration` (strategy ROLLING | BLUE_GREEN | LINEAR |
  CANARY, bake times, linear/canary configuration, alarms, circuit breaker,
  lifecycle hooks) and `loadBalancers[].advancedConfiguration`, validate
  them as AWS does (InvalidParameterException naming the field) and keep
  `service.deployments` coherent;
- an UpdateService that changes the task definition (or forces a new
  deployment) makes a service revision and a service deployment that moves
  on its own clock through the lifecycle stages of its strategy (PENDING ->
  IN_PROGRESS -> SUCCESSFUL), shifting the weights of the production and
  test listener rules in moto's ELBv2 from the blue target group to the
  green one (the one with weight 0 when the deployment starts);
- ListServiceDeployments, DescribeServiceDeployments,
  DescribeServiceRevisions, StopServiceDeployment (ROLLBACK ->
  ROLLBACK_SUCCESSFUL, traffic and task definition back) and
  ContinueServiceDeployment (PAUSE lifecycle hooks) are answered;
- CloudWatch alarms in ALARM (moto's CloudWatch) and the circuit breaker
  (with tasks made to fail through the endpoint below) fail a deployment
  and roll it back (or stop it, without rollback); AWS_LAMBDA hooks succeed
  at once (no Lambda runs).

EXTERNAL and CODE_DEPLOY services stay moto's (task sets). Time scale: one
emulated minute (bake times, hook timeouts) lasts PIFLOW_EMU_MINUTE_SECONDS
real seconds (default 1), every other stage PIFLOW_EMU_STAGE_SECONDS
(default 0.3). Endpoints on the same port:

    GET|POST /piflow-emulator/ecs/config       {"minute_seconds": .., "stage_seconds": ..}
    GET      /piflow-emulator/ecs/deployments  every service deployment (JSON)
    POST     /piflow-emulator/ecs/fail-tasks   {"cluster", "service", "taskDefinition"
                                               (or null), "reason"}: that service's new
                                               tasks fail to start; {"clear": true} or
    DELETE   /piflow-emulator/ecs/fail-tasks   undoes it

integration/emulator/test_ecs_deployments.py checks all of it with boto3
(about 15 s).
"""

import copy
import os
import sys
import threading

TESTED_MOTO_VERSION = "5.2.5"


def _port_from(argv):
    """The value of -p/--port in moto_server's arguments, or None."""
    for i, arg in enumerate(argv):
        if arg in ("-p", "--port") and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--port="):
            return arg.split("=", 1)[1]
        if arg.startswith("-p") and len(arg) > 2:
            return arg[2:]
    return None


def patch_dynamodb():
    """Apply the three patches described at the top of this file."""
    import moto
    import moto.dynamodb.models as ddb
    from moto.dynamodb.models.table import Table
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    if getattr(moto, "__version__", None) != TESTED_MOTO_VERSION:
        print(
            "moto_server.py: written for moto %s, running %s: the DynamoDB patches may not fit"
            % (TESTED_MOTO_VERSION, getattr(moto, "__version__", "?")),
            file=sys.stderr,
        )

    lock = threading.RLock()
    state = threading.local()

    # Patch 1: one DynamoDB request at a time. The response is materialised
    # inside the lock, so the request is complete before the next starts.
    dispatch = DomainDispatcherApplication.__call__

    # Step Functions and EventBridge too (each under its own lock): their
    # backends keep plain dicts and lists that concurrent requests corrupt
    # (piflow's deploy tests saw 500s and then a retried CreateStateMachine
    # refused as a duplicate). A state machine's execution runs in moto's
    # own thread after StartExecution has answered, so nothing waits on a
    # held lock.
    other_locks = {"AWSStepFunctions.": threading.RLock(), "AWSEvents.": threading.RLock()}

    def serialised(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith("DynamoDB_"):
            with lock:
                return list(dispatch(self, environ, start_response))
        for prefix, other in other_locks.items():
            if target.startswith(prefix):
                with other:
                    return list(dispatch(self, environ, start_response))
        return dispatch(self, environ, start_response)

    DomainDispatcherApplication.__call__ = serialised

    # Patch 2: inside a transaction, moto's "backup" deepcopy of each table
    # returns the table itself (no copy, so its restore is a no-op) ...
    class _Copy:
        def __getattr__(self, name):
            return getattr(copy, name)

        @staticmethod
        def deepcopy(x, memo=None):
            if isinstance(x, Table) and getattr(state, "in_tx", False):
                return x
            return copy.deepcopy(x, memo)

    ddb.copy = _Copy()
    transact = ddb.DynamoDBBackend.transact_write_items

    # ... and the items the transaction touches are saved first and put
    # back, in reverse order, when it is cancelled.
    def transact_write_items(self, transact_items):
        with lock:
            saved = []
            try:
                for item in transact_items:
                    op_type, op = next(iter(item.items()))
                    table = self.get_table(op["TableName"])
                    if op_type == "Put":
                        attrs = op["Item"]
                        key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                        if table.range_key_attr is not None:
                            key[table.range_key_attr] = attrs[table.range_key_attr]
                    else:
                        key = op["Key"]
                    h, r = self.get_keys_value(table, key)
                    saved.append((table, h, r, copy.deepcopy(table.get_item(h, r))))
            except Exception:
                # A request moto will refuse anyway (unknown table, bad
                # key ...): let moto answer it as it would.
                return transact(self, transact_items)
            state.in_tx = True
            try:
                return transact(self, transact_items)
            except Exception:
                for table, h, r, old in reversed(saved):
                    if r is not None:
                        bucket = table.items[h]
                        if old is None:
                            bucket.pop(r, None)
                            if not bucket:
                                table.items.pop(h, None)
                        else:
                            bucket[r] = old
                    elif old is None:
                        table.items.pop(h, None)
                    else:
                        table.items[h] = old
                raise
            finally:
                state.in_tx = False

    ddb.DynamoDBBackend.transact_write_items = transact_write_items

    # Patch 3: a Query reads its partition, not the sorted whole table.
    import inspect

    query = Table.query
    all_items = Table.all_items
    query_signature = inspect.signature(query)

    def scoped_query(self, *args, **kwargs):
        bound = query_signature.bind(self, *args, **kwargs)
        scope = (self, bound.arguments.get("hash_key"), bound.arguments.get("index_name"))
        outer = getattr(state, "query", None)
        state.query = scope
        try:
            return query(self, *args, **kwargs)
        finally:
            state.query = outer

    def scoped_all_items(self):
        scope = getattr(state, "query", None)
        if scope is None or scope[0] is not self:
            return all_items(self)
        _, hash_key, index_name = scope
        if index_name is not None:
            # Every item (an index may hold any of them), unsorted: moto
            # sorts the matches by the index's keys and the table's keys.
            items = []
            for bucket in self.items.values():
                if self.range_key_attr:
                    items.extend(bucket.values())
                else:
                    items.append(bucket)
            return items
        if hash_key is None:
            return all_items(self)
        bucket = self.items.get(hash_key)
        if bucket is None:
            return []
        if self.range_key_attr:
            return list(bucket.values())
        return [bucket]

    Table.query = scoped_query
    Table.all_items = scoped_all_items


HEALTH_PATH = "/service/AWSHealth_20160804/operation/"
HEALTH_CONTROL = "/piflow-emulator/health/events"


def serve_health():
    """Answer AWS Health's DescribeEvents and the control endpoint."""
    import datetime
    import json

    import cbor2
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    lock = threading.Lock()
    events = []
    dispatch = DomainDispatcherApplication.__call__

    def body_of(environ):
        try:
            n = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            n = 0
        return environ["wsgi.input"].read(n) if n > 0 else b""

    def reply(start_response, status, body, content_type):
        start_response(
            status,
            [("Content-Type", content_type), ("Content-Length", str(len(body)))]
            + ([("smithy-protocol", "rpc-v2-cbor")] if content_type == "application/cbor" else []),
        )
        return [body]

    def cbor_reply(start_response, status, value):
        return reply(
            start_response, status, cbor2.dumps(value, datetime_as_timestamp=True), "application/cbor"
        )

    def when(text):
        try:
            return datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
        except ValueError:
            return datetime.datetime.now(datetime.timezone.utc)

    def matches(event, flt):
        for field, key in (
            ("regions", "region"),
            ("services", "service"),
            ("eventTypeCategories", "eventTypeCategory"),
            ("eventStatusCodes", "statusCode"),
            ("eventArns", "arn"),
            ("eventTypeCodes", "eventTypeCode"),
        ):
            wanted = flt.get(field)
            if wanted and event.get(key) not in wanted:
                return False
        return True

    def health(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == HEALTH_CONTROL:
            if environ.get("REQUEST_METHOD") == "POST":
                try:
                    given = json.loads(body_of(environ) or b"{}").get("events", [])
                    if not isinstance(given, list) or not all(isinstance(e, dict) for e in given):
                        raise ValueError("events must be a list of objects")
                except ValueError as e:
                    return reply(start_response, "400 Bad Request", str(e).encode(), "text/plain")
                with lock:
                    events[:] = given
            with lock:
                text = json.dumps({"events": events}).encode()
            return reply(start_response, "200 OK", text, "application/json")
        if not path.startswith(HEALTH_PATH):
            return dispatch(self, environ, start_response)
        operation = path[len(HEALTH_PATH):]
        if operation != "DescribeEvents":
            return cbor_reply(
                start_response,
                "400 Bad Request",
                {"__type": "com.amazonaws.health#UnsupportedOperation",
                 "message": "the piflow emulator answers only DescribeEvents of AWS Health"},
            )
        try:
            request = cbor2.loads(body_of(environ) or cbor2.dumps({}))
        except Exception as e:  # a body the SDK would never send
            return cbor_reply(
                start_response,
                "400 Bad Request",
                {"__type": "com.amazonaws.health#ValidationException", "message": str(e)},
            )
        flt = request.get("filter") or {}
        with lock:
            chosen = [dict(e) for e in events if matches(e, flt)]
        for e in chosen:
            for key in ("startTime", "endTime", "lastUpdatedTime"):
                if key in e and e[key] is not None:
                    e[key] = when(e[key])
        return cbor_reply(start_response, "200 OK", {"events": chosen})

    DomainDispatcherApplication.__call__ = health


def serve_ecs_deployments():
    """Answer ECS's service deployment operations (ecs_deployments.py)."""
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    import ecs_deployments

    return ecs_deployments.install()


def main(argv):
    port = _port_from(argv)
    if port and not os.environ.get("MOTO_PORT"):
        os.environ["MOTO_PORT"] = port
    try:
        patch_dynamodb()
    except Exception as e:  # moto's internals changed: run it unpatched
        print(
            "moto_server.py: moto's DynamoDB was not patched (%r): plain moto runs" % (e,),
            file=sys.stderr,
        )
    try:
        serve_health()
    except Exception as e:  # cbor2 missing: AWS Health is not served
        print("moto_server.py: AWS Health is not served (%r)" % (e,), file=sys.stderr)
    try:
        serve_ecs_deployments()
    except Exception as e:  # moto's internals changed: plain moto ECS
        print("moto_server.py: ECS service deployments are not served (%r)" % (e,), file=sys.stderr)
    from moto.server import main as moto_main

    moto_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
