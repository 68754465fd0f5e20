#!/usr/bin/env python3
"""The shapes of GetExecutionHistory's events, from botocore's Step Functions
model, as a fixture for piflow-sfn-api's history tests
(crates/sfn-api/tests/history.rs).

Run with the botocore of /work/main/.emu/venv (the fixture names the
botocore version it came from):

    python integration/sfn-api/history_shapes.py \
        > crates/sfn-api/tests/fixtures/history-shapes.json

What it writes:

* ``botocore``: the version of botocore whose model was read.
* ``historyEvent``: the ``HistoryEvent`` structure: its required members and
  every member with its shape and type.
* ``eventTypes``: the ``HistoryEventType`` enum, in the model's order.
* ``detailsMemberOfType``: for each event type, the one ``...EventDetails``
  member of ``HistoryEvent`` that carries its details, or null when the
  model has none for it. The model does not pair types with members; the
  rule is the one AWS's own histories follow: the member named after the
  type (``TaskScheduled`` -> ``taskScheduledEventDetails``), except that
  every ``...StateEntered`` event carries ``stateEnteredEventDetails`` and
  every ``...StateExited`` event ``stateExitedEventDetails``.
* ``shapes``: every structure reachable from a details member (the details
  shapes and the structures inside them): required members, and each
  member's shape name and type (``string``, ``integer``, ``long``,
  ``boolean``, ``structure``, ``map``, ...), with ``max`` where the model
  limits a string's length.
"""

import gzip
import json
import os
import sys

import botocore


def model():
    path = os.path.join(
        os.path.dirname(botocore.__file__),
        "data", "stepfunctions", "2016-11-23", "service-2.json",
    )
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    with gzip.open(path + ".gz") as f:
        return json.load(f)


def lower_first(s):
    return s[0].lower() + s[1:]


def main():
    shapes = model()["shapes"]

    def member_info(m):
        target = shapes[m["shape"]]
        info = {"shape": m["shape"], "type": target["type"]}
        if target["type"] == "string" and "max" in target:
            info["max"] = target["max"]
        return info

    def structure(name):
        s = shapes[name]
        return {
            "required": sorted(s.get("required", [])),
            "members": {k: member_info(v) for k, v in s["members"].items()},
        }

    event = shapes["HistoryEvent"]
    details = {k: v["shape"] for k, v in event["members"].items() if k.endswith("EventDetails")}
    types = shapes["HistoryEventType"]["enum"]
    of_type = {}
    for t in types:
        if t.endswith("StateEntered"):
            member = "stateEnteredEventDetails"
        elif t.endswith("StateExited"):
            member = "stateExitedEventDetails"
        else:
            member = lower_first(t) + "EventDetails"
        of_type[t] = member if member in details else None

    out = {}
    todo = sorted(set(details.values()))
    while todo:
        name = todo.pop()
        if name in out:
            continue
        out[name] = structure(name)
        for m in shapes[name]["members"].values():
            if shapes[m["shape"]]["type"] == "structure":
                todo.append(m["shape"])

    json.dump(
        {
            "botocore": botocore.__version__,
            "historyEvent": structure("HistoryEvent"),
            "eventTypes": types,
            "detailsMemberOfType": of_type,
            "shapes": dict(sorted(out.items())),
        },
        sys.stdout,
        indent=1,
        sort_keys=False,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
