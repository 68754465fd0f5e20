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

Who starts it: tests/common/moto.rs (once per test binary, on a free port,
when MOTO_PORT is not set) and .ci/run (once for the whole run, exporting
MOTO_PORT so that the tests use that one).

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

Requests to other services (Step Functions, EventBridge, ...) stay
concurrent. If moto's internals differ from what the patches expect, they
are skipped with a warning on stderr and plain moto runs.
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
    """Apply the two patches described at the top of this file."""
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

    def serialised(self, environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with lock:
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
    from moto.server import main as moto_main

    moto_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
