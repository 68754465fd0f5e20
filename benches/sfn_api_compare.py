#!/usr/bin/env python3
"""StartExecution + DescribeExecution round trips per second on loopback,
through the Step Functions API: a running `piflow serve` against moto's
Step Functions server (PyPI `moto[server]`, the pinned one), the same
10-state definition, the same boto3 client code, in one run.

One round trip is a StartExecution followed by a DescribeExecution of the
execution it started (boto3 signs both with SigV4, as against AWS). A
second figure, for each server, is how long an execution takes from its
StartExecution to the DescribeExecution that first shows it SUCCEEDED.

Usage (from the project root; the venv is the one .ci/run makes):
    cargo build --release
    .emu/venv/bin/python benches/sfn_api_compare.py [--piflow target/release/piflow] [--seconds 10]
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3
from botocore.config import Config

ACCESS_KEY = "AKIDPIFLOWBENCH"
SECRET = "piflow-bench-secret"
ROLE = "arn:aws:iam::123456789012:role/bench"


def pass_chain(n):
    states = {}
    for i in range(n):
        s = {"Type": "Pass", "Result": i, "ResultPath": f"$.s{i}"}
        if i + 1 == n:
            s["End"] = True
        else:
            s["Next"] = f"S{i + 1}"
        states[f"S{i}"] = s
    return {"StartAt": "S0", "States": states}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def client(endpoint):
    return boto3.client(
        "stepfunctions",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET,
        config=Config(retries={"max_attempts": 1}, inject_host_prefix=False),
    )


def measure(sfn, arn, seconds, prefix):
    """Round trips for `seconds`; then the latency to SUCCEEDED of 50."""
    n = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        e = sfn.start_execution(stateMachineArn=arn, name=f"{prefix}-{n}", input="{}")
        sfn.describe_execution(executionArn=e["executionArn"])
        n += 1
    elapsed = time.perf_counter() - started
    done = []
    for i in range(50):
        t0 = time.perf_counter()
        e = sfn.start_execution(stateMachineArn=arn, name=f"{prefix}-done-{i}", input="{}")
        while True:
            d = sfn.describe_execution(executionArn=e["executionArn"])
            if d["status"] != "RUNNING":
                break
        if d["status"] != "SUCCEEDED":
            raise SystemExit(f"{prefix}: an execution ended {d['status']}: {d}")
        done.append(time.perf_counter() - t0)
    return n / elapsed, n, statistics.median(done) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--piflow", default="target/release/piflow")
    ap.add_argument("--seconds", type=float, default=10)
    args = ap.parse_args()
    definition = json.dumps(pass_chain(10))
    procs = []
    try:
        with tempfile.TemporaryDirectory() as home:
            pport, mport = free_port(), free_port()
            env = dict(os.environ,
                       PIFLOW_API_ACCESS_KEY_ID=ACCESS_KEY,
                       PIFLOW_API_SECRET_ACCESS_KEY=SECRET,
                       RUST_LOG="warn")
            procs.append(subprocess.Popen(
                [os.path.abspath(args.piflow), "serve", "--listen", f"127.0.0.1:{pport}"],
                cwd=home, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            procs.append(subprocess.Popen(
                [sys.executable, "integration/emulator/moto_server.py", "-H", "127.0.0.1", "-p", str(mport)],
                env=dict(os.environ, MOTO_PORT=str(mport)),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            piflow_url, moto_url = f"http://127.0.0.1:{pport}", f"http://127.0.0.1:{mport}"
            wait_http(piflow_url + "/healthz")
            wait_http(moto_url + "/moto-api/")
            # Make moto's Step Functions really run the definitions.
            urllib.request.urlopen(urllib.request.Request(
                moto_url + "/moto-api/config", method="POST",
                data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
                headers={"Content-Type": "application/json"}))
            rows = []
            for label, url in (("piflow serve", piflow_url), ("moto server", moto_url)):
                sfn = client(url)
                arn = sfn.create_state_machine(name="bench10", definition=definition, roleArn=ROLE)[
                    "stateMachineArn"]
                sfn.start_execution(stateMachineArn=arn, name="warm-up", input="{}")
                rate, n, latency = measure(sfn, arn, args.seconds, "b")
                rows.append((label, rate, n, latency))
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=30)
    print(f"StartExecution + DescribeExecution round trips, 10-state Pass chain, one boto3 client, {args.seconds:.0f} s each:")
    print(f"{'server':14} {'round trips/s':>14} {'round trips':>12} {'start→SUCCEEDED (median of 50)':>32}")
    for label, rate, n, latency in rows:
        print(f"{label:14} {rate:14.1f} {n:12d} {latency:29.1f} ms")
    print(f"piflow / moto: {rows[0][1] / rows[1][1]:.2f}x round trips per second")


if __name__ == "__main__":
    main()
