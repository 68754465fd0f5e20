#!/usr/bin/env python3
"""Build the seed corpora under fuzz/corpus/ (git-ignored) from the shared
conformance corpus and the repository's workflows.

    python3 fuzz/seed_corpus.py [/work/shared/conformance]
"""
import glob
import hashlib
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CONF = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/conformance"
MAX_DEF = 65536
MAX_STR = 8192


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def strings(v):
    if isinstance(v, str):
        yield v
    elif isinstance(v, list):
        for x in v:
            yield from strings(x)
    elif isinstance(v, dict):
        for k, x in v.items():
            yield k
            yield from strings(x)


INTRINSIC = re.compile(r"^States\.[A-Za-z0-9]+\(")
PATH_KEYS = {"InputPath", "OutputPath", "ResultPath", "ItemsPath", "Variable",
             "TimeoutSecondsPath", "HeartbeatSecondsPath", "SecondsPath",
             "TimestampPath", "ErrorPath", "CausePath", "MaxConcurrencyPath"}

paths, intrinsics, jsonatas = set(), set(), set()


def classify(v, key=None):
    if isinstance(v, dict):
        for k, x in v.items():
            classify(x, k)
    elif isinstance(v, list):
        for x in v:
            classify(x, key)
    elif isinstance(v, str) and len(v) <= MAX_STR:
        if v.startswith("{%"):
            jsonatas.add(v)
            inner = v[2:-2].strip() if v.endswith("%}") else v[2:]
            if inner:
                jsonatas.add(inner)
        elif INTRINSIC.match(v):
            intrinsics.add(v)
            for m in re.finditer(r"\$\$?[A-Za-z0-9_.\[\]*@?()'\"=<>!&|:-]*", v):
                paths.add(m.group(0))
        elif v.startswith("$"):
            paths.add(v)
            if key and key.endswith(".$"):
                intrinsics.add(v)  # a payload expression may be a plain path
        elif key in PATH_KEYS or (key and key.endswith("Path")):
            paths.add(v)


n_def = 0
for f in sorted(glob.glob(os.path.join(CONF, "cases", "*.json"))):
    case = json.load(open(f))
    d = case.get("definition")
    if d is None:
        continue
    text = json.dumps(d, indent=1)
    if len(text) <= MAX_DEF:
        put("definition", text)
        n_def += 1
    classify(d)
    for k in ("input",):
        if k in case:
            classify(case[k])

for f in sorted(glob.glob(os.path.join(CONF, "invalid", "*.json"))):
    case = json.load(open(f))
    t = case.get("definition_text")
    if isinstance(t, str) and len(t) <= MAX_DEF:
        put("definition", t)
        n_def += 1
    if "definition" in case:
        classify(case["definition"])

for f in sorted(glob.glob(os.path.join(ROOT, "workflows", "*.yaml"))
                + glob.glob(os.path.join(ROOT, "workflows", "*.yml"))):
    put("definition", open(f, "rb").read())
    n_def += 1

# Hand-written seeds covering syntax the corpus may miss.
paths |= {"$", "$$", "$.a.b", "$.a['b']", "$.items[0].name", "$.items[*].id",
          "$..name", "$.items[?(@.price > 10)].name", "$.items[-1:]",
          "$.items[0:2:1]", "$.items[0,2]", "$.items.length()", "$$.Execution.Input",
          "$x.y[1]", "$.a.b[2].c", "$['weird key']['with.dot']"}
intrinsics |= {"States.Format('{} and {}', $.a.n, 'x')", "States.ArrayRange(1, 9, 2)",
               "States.ArrayPartition($.nums, 3)", "States.JsonMerge($.obj, $.other, false)",
               "States.Hash($.str, 'SHA-256')", "States.StringSplit($.a.s, ',')",
               "States.MathAdd($.a.n, -1)", "States.Base64Decode($.b64)",
               "States.StringToJson($.json)", "States.JsonToString($.obj)",
               "States.ArrayGetItem(States.Array(1, 2, 3), 1)", "States.UUID()",
               "States.Format('\\{\\}{}', States.ArrayLength($.arr))"}
jsonatas |= {"{% $states.input.a %}", "{% $count($states.input.items) > 2 ? 'x' : 'y' %}",
             "$map([1,2,3], function($v) { $v * 2 })", "{% $sum($states.input.nums) %}"}

for p in paths:
    put("paths", p)
for i in intrinsics:
    put("intrinsic", i)
for j in jsonatas:
    put("jsonata", j)

# EventBridge event patterns (the `event_pattern` target): one of each
# operator of the user guide, alone and combined; some followed by a NUL
# and an event to match them against.
EVENT = {"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification",
         "region": "us-west-1", "resources": ["arn:aws:ec2:us-west-1:1:instance/i-1"],
         "detail": {"state": "terminated", "c-count": 5, "ip": "10.0.0.9", "n": None,
                    "items": [{"a": 1, "b": "x"}], "e": ""}}
patterns = [
    {"source": ["aws.ec2"], "detail": {"state": ["terminated", "stopped"]}},
    {"detail": {"state": [{"prefix": "term"}]}},
    {"detail": {"state": [{"prefix": {"equals-ignore-case": "TERM"}}]}},
    {"detail": {"state": [{"suffix": "ated"}]}},
    {"detail": {"state": [{"suffix": {"equals-ignore-case": "ATED"}}]}},
    {"detail": {"state": [{"equals-ignore-case": "TERMINATED"}]}},
    {"detail": {"state": [{"wildcard": "t*r*d"}]}},
    {"detail": {"state": [{"anything-but": ["running", "pending"]}]}},
    {"detail": {"state": [{"anything-but": {"prefix": "run"}}]}},
    {"detail": {"state": [{"anything-but": {"suffix": ["ing", "ped"]}}]}},
    {"detail": {"state": [{"anything-but": {"wildcard": ["r*", "*p"]}}]}},
    {"detail": {"state": [{"anything-but": {"equals-ignore-case": ["RUNNING"]}}]}},
    {"detail": {"c-count": [{"numeric": [">", 0, "<=", 5]}]}},
    {"detail": {"c-count": [{"anything-but": [1, 2, 3]}]}},
    {"detail": {"ip": [{"cidr": "10.0.0.0/24"}]}},
    {"detail": {"state": [{"exists": True}], "missing": [{"exists": False}]}},
    {"detail": {"n": [None], "e": [""]}},
    {"detail": {"items": {"a": [1], "b": ["x"]}}},
    {"$or": [{"detail": {"state": ["terminated"]}}, {"detail": {"c-count": [{"numeric": [">", 3]}]}}]},
    {"detail": {"$or": [{"state": [{"prefix": "t"}]}, {"n": [None]}]}},
    {"detail.state": ["terminated"]},
    {"resources": [{"wildcard": "arn:aws:ec2:*:instance/*"}]},
]
n_pat = 0
for i, pat in enumerate(patterns):
    put("event_pattern", json.dumps(pat))
    put("event_pattern", json.dumps(pat) + "\0" + json.dumps(EVENT))
    n_pat += 2

print(f"definition: {n_def} files, paths: {len(paths)}, intrinsic: {len(intrinsics)}, jsonata: {len(jsonatas)}, event_pattern: {n_pat}")
