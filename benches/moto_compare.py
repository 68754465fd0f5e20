#!/usr/bin/env python3
"""Run the same state machines on moto's Step Functions interpreter and on
piflow, and print piflow's speed as a ratio.

moto (PyPI `moto`, in process, `mock_aws(config={"stepfunctions":
{"execute_state_machine": True}})`) carries an ASL interpreter derived from
LocalStack's. piflow runs the same definitions with `piflow bench`.

Usage (from the project root; the venv is the one .ci/run makes):
    .emu/venv/bin/python benches/moto_compare.py [--piflow target/release/piflow]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def pass_chain(n):
    states = {}
    for i in range(n):
        s = {"Type": "Pass"}
        if i + 1 == n:
            s["End"] = True
        else:
            s["Next"] = f"S{i + 1}"
        states[f"S{i}"] = s
    return {"StartAt": "S0", "States": states}


def choice_loop():
    return {
        "StartAt": "Init",
        "States": {
            "Init": {"Type": "Pass", "Parameters": {"i": 0, "n.$": "$.n"}, "Next": "Check"},
            "Check": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.i", "NumericLessThanPath": "$.n", "Next": "Inc"}],
                "Default": "Done",
            },
            "Inc": {
                "Type": "Pass",
                "Parameters": {"i.$": "States.MathAdd($.i, 1)", "n.$": "$.n"},
                "Next": "Check",
            },
            "Done": {"Type": "Succeed"},
        },
    }


CASES = [
    ("pass_chain_100", pass_chain(100), {"order": 42}, 100),
    ("choice_loop_50", choice_loop(), {"n": 50}, 1 + 2 * 50 + 2),
]


def run_moto(definition, payload, executions):
    import boto3
    from moto import mock_aws

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        arn = sfn.create_state_machine(
            name="compare",
            definition=json.dumps(definition),
            roleArn="arn:aws:iam::123456789012:role/piflow",
        )["stateMachineArn"]
        started = time.perf_counter()
        for i in range(executions):
            ex = sfn.start_execution(stateMachineArn=arn, name=f"e{i}", input=json.dumps(payload))
            while True:
                d = sfn.describe_execution(executionArn=ex["executionArn"])
                if d["status"] != "RUNNING":
                    break
                time.sleep(0.001)
            if d["status"] != "SUCCEEDED":
                raise SystemExit(f"moto execution ended {d['status']}: {d}")
        return (time.perf_counter() - started) / executions


def run_piflow(binary, definition, payload, executions):
    with tempfile.NamedTemporaryFile("w", suffix=".asl.json", delete=False) as f:
        json.dump(definition, f)
        path = f.name
    try:
        out = subprocess.run(
            [binary, "bench", path, "--executions", str(executions), "--input", json.dumps(payload)],
            check=True,
            capture_output=True,
            text=True,
        )
    finally:
        os.unlink(path)
    return json.loads(out.stdout)["seconds_per_execution"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--piflow", default="target/release/piflow")
    ap.add_argument("--moto-executions", type=int, default=20)
    ap.add_argument("--piflow-executions", type=int, default=2000)
    args = ap.parse_args()
    rows = []
    for name, definition, payload, transitions in CASES:
        moto_s = run_moto(definition, payload, args.moto_executions)
        piflow_s = run_piflow(args.piflow, definition, payload, args.piflow_executions)
        rows.append((name, transitions, moto_s, piflow_s, moto_s / piflow_s))
    print(f"{'definition':<16} {'transitions':>11} {'moto s/exec':>12} {'piflow s/exec':>14} {'ratio':>9}")
    for name, t, m, p, r in rows:
        print(f"{name:<16} {t:>11} {m:>12.5f} {p:>14.7f} {r:>8.0f}x")
    worst = min(r for *_, r in rows)
    print(f"piflow is {worst:.0f}x faster than moto on the slowest comparison (goal: 1000x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
