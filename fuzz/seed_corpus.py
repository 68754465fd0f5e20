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

print(f"definition: {n_def} files, paths: {len(paths)}, intrinsic: {len(intrinsics)}, jsonata: {len(jsonatas)}")
