#!/usr/bin/env python3
"""SIGKILL soak of whole-product releases: kill `piflow run upgrade` at a
random moment, resume it, and check that the release ended whole.

Usage (from the repository root, after `cargo build` and
integration/emulator/setup.sh):

    .emu/venv/bin/python integration/soak/release_sigkill.py [--runs 20]
        [--piflow target/debug/piflow] [--seed N] [--kills 2]

For each run it seeds a fresh product estate (integration/estate/estate.py,
four services under the ECS controller, names ending in -soakN) on a moto
server of its own (integration/emulator/moto_server.py, one emulated minute
= 1 s), writes a piflow.yaml for the run's environment (canary 25%, bakes of
one minute), starts `piflow run upgrade` for version 1.0, and SIGKILLs it
after a random delay drawn over the length of an uninterrupted release;
then `piflow resume` (itself killed again up to --kills - 1 times), until
the execution ends. Then it checks, against the emulator:

- every service runs 1.0 (the release ended whole: released) or every
  service runs 0.9 (rolled back whole) — never a mix;
- each service had exactly one UpdateService from the release (the
  emulator lists two service deployments: the seed's and the release's);
- each task definition family has exactly two revisions (no second
  revision registered after a crash);
- one release record (`release.recorded`), and `piflow audit verify`
  passes.

It prints one line per run and a summary (kill times, resume times,
outcomes); exit status 1 if any check failed. It takes about 30 s a run.
"""

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PY = os.path.join(ROOT, ".emu/venv/bin/python")
SERVICES = ["dashboard", "renderer", "scheduler", "pirana"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_moto(port):
    env = dict(os.environ, MOTO_PORT=str(port), PIFLOW_EMU_MINUTE_SECONDS="1")
    log = open(os.path.join(ROOT, ".emu/soak-moto.log"), "w")
    p = subprocess.Popen(
        [PY, os.path.join(ROOT, "integration/emulator/moto_server.py"), "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    for _ in range(300):
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/moto-api/" % port, timeout=2)
            return p
        except Exception:
            time.sleep(0.1)
    p.kill()
    sys.exit("moto did not start (see .emu/soak-moto.log)")


def aws_env(port, home):
    env = dict(os.environ)
    env.update(
        AWS_ENDPOINT_URL="http://127.0.0.1:%d" % port,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        PIFLOW_HOME=home,
        PIFLOW_POLL_SECONDS="0.3",
        NO_COLOR="1",
        PATH=os.path.join(ROOT, ".emu/venv/bin") + ":" + os.environ.get("PATH", ""),
    )
    for k in ("AWS_PROFILE", "PIFLOW_STORE", "PIFLOW_HEALTH_ENDPOINTS"):
        env.pop(k, None)
    return env


def seed(port, suffix):
    env = aws_env(port, "/nonexistent")
    out = subprocess.run(
        [PY, os.path.join(ROOT, "integration/estate/estate.py"), "seed", "--suffix", suffix],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def config(home, env_name, estate, suffix):
    c = {
        "product": {
            "image": "registry.example/product/{service}:{version}",
            "container": "web",
            "services": [{"name": s, "service": "%s-%s" % (s, suffix)} for s in SERVICES],
            "waves": [["dashboard"], ["renderer", "scheduler", "pirana"]],
        },
        "environments": {
            env_name: {
                "region": "us-east-1",
                "cluster": estate["cluster"],
                "policy": {
                    "lint": {"fail_on": "error"},
                    "scan": {
                        "fail_on": "high",
                        "suppressions": [
                            {"check": "CKV_AWS_118", "reason": "soak estate", "expires": "2099-01-01"}
                        ],
                    },
                },
                "rollout": {"strategy": "canary", "percent": 25, "step_minutes": 1, "bake_minutes": 1},
                "gates": {"health_services": ["ECS"]},
            }
        },
    }
    path = os.path.join(home, "piflow.yaml")
    with open(path, "w") as f:
        json.dump(c, f)
    return path


def state(port, suffix, cluster):
    """{service: (task definition, image, deployments, revisions)} from the emulator."""
    import boto3

    ecs = boto3.client(
        "ecs",
        endpoint_url="http://127.0.0.1:%d" % port,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    out = {}
    for s in SERVICES:
        name = "%s-%s" % (s, suffix)
        svc = ecs.describe_services(cluster=cluster, services=[name])["services"][0]
        td = svc["taskDefinition"]
        image = [
            c["image"]
            for c in ecs.describe_task_definition(taskDefinition=td)["taskDefinition"]["containerDefinitions"]
            if c["name"] == "web"
        ][0]
        deps = ecs.list_service_deployments(cluster=cluster, service=name)["serviceDeployments"]
        revs = [a for a in ecs.list_task_definitions(familyPrefix=name)["taskDefinitionArns"] if a.rsplit("/", 1)[1].rsplit(":", 1)[0] == name]
        out[s] = (td, image, len(deps), len(revs), [d["status"] for d in deps])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--kills", type=int, default=2, help="SIGKILLs per run at most (the run, then resumes)")
    ap.add_argument("--piflow", default=os.path.join(ROOT, "target/debug/piflow"))
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    piflow = os.path.abspath(args.piflow)
    if not os.access(piflow, os.X_OK):
        sys.exit("no piflow binary at %s: cargo build first, or give --piflow" % piflow)
    port = free_port()
    moto = start_moto(port)
    workdir = os.path.join(ROOT, ".emu/soak")
    subprocess.run(["rm", "-rf", workdir], check=True)
    os.makedirs(workdir)
    failures = []
    kills, resumes, outcomes, whole = [], [], {}, 0
    killed_runs = []
    try:
        # One uninterrupted release: how long the window for kills is.
        t0 = time.time()
        span = run_one(args, rng, piflow, port, workdir, "base", None, kills, resumes, outcomes, failures)
        base = time.time() - t0
        print("uninterrupted release: %.1f s (%s)" % (base, span))
        for i in range(args.runs):
            before = len(failures)
            n = len(kills)
            run_one(args, rng, piflow, port, workdir, "soak%d" % i, base, kills, resumes, outcomes, failures)
            killed_runs.append(len(kills) > n)
            if len(failures) == before:
                whole += 1
    finally:
        moto.send_signal(signal.SIGTERM)
        moto.wait()
    print()
    print("runs: %d, ended whole: %d, killed at least once: %d, failed checks: %d" % (args.runs, whole, sum(1 for k in killed_runs if k), len(failures)))
    print("outcomes: %s" % json.dumps(outcomes, sort_keys=True))
    if kills:
        print("kill at: min %.2f s, median %.2f s, max %.2f s after the start (%d kills)" % (min(kills), sorted(kills)[len(kills) // 2], max(kills), len(kills)))
    if resumes:
        print("resume to the end: min %.1f s, median %.1f s, max %.1f s" % (min(resumes), sorted(resumes)[len(resumes) // 2], max(resumes)))
    for f in failures:
        print("FAILED: " + f)
    return 1 if failures else 0


def run_one(args, rng, piflow, port, workdir, tag, window, kills, resumes, outcomes, failures):
    home = os.path.join(workdir, tag)
    os.makedirs(home)
    estate = seed(port, tag)
    env_name = "dev-" + tag
    env = aws_env(port, home)
    env["PIFLOW_CONFIG"] = config(home, env_name, estate, tag)
    name = "release-" + tag
    inp = json.dumps({
        "target": {"environment": env_name, "region": "us-east-1", "team": "research"},
        "release": {"version": "1.0"},
        "infrastructure": {"path": "integration/estate/infra/"},
    })
    cmd = [piflow, "run", "upgrade", "--input", inp, "--name", name, "--format", "json"]
    log = open(os.path.join(home, "piflow.log"), "w")
    killed_at = []
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    if window is not None:
        # Kill the run (and then maybe its resume) after a random delay
        # within an uninterrupted release's length; resume after each kill.
        for k in range(rng.randint(1, args.kills)):
            # The first kill always lands inside the release (the last
            # tenth of a run is its record and end states).
            delay = rng.uniform(0.2, window * (0.9 if k == 0 else 1.0))
            try:
                p.wait(timeout=delay)
                break
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                killed_at.append(delay)
                kills.append(delay)
            p = subprocess.Popen(
                [piflow, "resume", "upgrade:" + name, "--format", "json"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
    t = time.time()
    p.wait()
    if killed_at:
        resumes.append(time.time() - t)
    desc = subprocess.run(
        [piflow, "executions", "--workflow", "upgrade", "--format", "json"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    status = "?"
    try:
        status = [e for e in json.loads(desc.stdout) if e.get("execution") == "upgrade:" + name][0].get("status", "?")
    except Exception:
        pass
    s = state(port, tag, estate["cluster"])
    images = {v[1].rsplit(":", 1)[1] for v in s.values()}
    problems = []
    if len(images) != 1:
        problems.append("mixed versions: %s" % {k: v[1] for k, v in s.items()})
    version = images.pop() if len(images) == 1 else "mixed"
    for svc, (td, image, deps, revs, statuses) in s.items():
        if deps != 2:
            problems.append("%s: %d service deployments %s (one UpdateService expected)" % (svc, deps, statuses))
        if revs != 2:
            problems.append("%s: %d task definition revisions (2 expected)" % (svc, revs))
    audit = subprocess.run([piflow, "audit", "--env", env_name, "--format", "json"], cwd=ROOT, env=env, capture_output=True, text=True)
    records = json.loads(audit.stdout or "[]")
    rel = [r for r in records if r.get("action") == "release.recorded"]
    if len(rel) != 1:
        problems.append("%d release records" % len(rel))
    outcome = rel[0]["result"] if rel else "none"
    if outcome == "released" and version != "1.0" or outcome == "rolled-back" and version != "0.9":
        problems.append("record says %s, the services run %s" % (outcome, version))
    verify = subprocess.run([piflow, "audit", "verify", "--env", env_name], cwd=ROOT, env=env, capture_output=True, text=True)
    if verify.returncode != 0:
        problems.append("audit verify: " + verify.stdout + verify.stderr)
    outcomes[outcome] = outcomes.get(outcome, 0) + 1
    print(
        "%-8s status %-9s outcome %-11s services on %-5s killed at %s%s"
        % (tag, status, outcome, version, ", ".join("%.2f s" % k for k in killed_at) or "-", "" if not problems else "  PROBLEMS: " + "; ".join(problems)),
        flush=True,
    )
    for pr in problems:
        failures.append("%s: %s" % (tag, pr))
    return outcome


if __name__ == "__main__":
    sys.exit(main())
