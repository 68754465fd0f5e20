#!/usr/bin/env bash
# piflow's main job, on a fresh machine: start the local AWS emulator, seed
# the reference estate in it, run the real `upgrade` workflow against it with
# a live progress display, then show the estate and the audit trail.
#
#     integration/main-job.sh
#
# 1. integration/emulator/setup.sh makes .emu/venv (moto server, cfn-lint,
#    checkov; about 30 s the first time).
# 2. A moto server starts on a free loopback port (or the one in MOTO_PORT
#    is used) and serves ECS, ELBv2, RDS, EFS, ... and AWS Health (answered
#    by integration/emulator/moto_server.py: no open issue).
# 3. integration/estate/estate.py seed makes the reference estate as teams
#    build it: cluster `product`, services dashboard, renderer, scheduler and
#    pirana under the default ECS deployment controller behind one ALB
#    (production listener rule and an alternate target group each), running
#    0.9; RDS MariaDB, EFS.
# 4. `piflow run upgrade --input @integration/inputs/upgrade-dev.json`:
#    piflow.yaml's product: and environments.dev complete the input (the
#    services and waves, the lint and scan policy, a canary rollout, the
#    gates). cfn-lint and checkov on integration/estate/infra/, the AWS
#    Health gate, then release 1.0 of the whole product: dashboard first,
#    then renderer, scheduler and pirana together, each an ECS-native
#    canary deployment (25% of production traffic, bake, 100%, bake)
#    followed to its end, with AWS Health watched throughout.
# 5. Every service before and after, `piflow audit --env dev` and
#    `piflow audit verify`.
#
# The emulator runs time fast: one emulated minute (a bake) lasts a
# second (PIFLOW_EMU_MINUTE_SECONDS), and piflow reads deployments every
# half second (PIFLOW_POLL_SECONDS).
#
# The piflow store of this job is .emu/main-job (made anew on every run).
# Every AWS call goes through the standard configuration: AWS_ENDPOINT_URL
# points at the emulator and the credentials are the emulator's dummies,
# so nothing reaches a real account. Exit status: piflow's.
#
# PIFLOW_PROFILE=dev runs the debug build instead of the release build.
# PIFLOW_BIN=PATH runs that piflow binary and builds none (CI gives it the
# debug binary `cargo test` built: `cargo build -p piflow` alone resolves
# the shared crates' features without the other workspace members' and the
# tests' and would compile 27 crates again, 2 min 40 s on two cores).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }

say "emulator (moto server, cfn-lint, checkov in .emu/venv)"
integration/emulator/setup.sh

if [ -n "${PIFLOW_BIN:-}" ]; then
  if [ ! -f "$PIFLOW_BIN" ] || [ ! -x "$PIFLOW_BIN" ]; then
    echo "PIFLOW_BIN=$PIFLOW_BIN is not an executable file" >&2
    exit 2
  fi
  piflow="$(cd "$(dirname "$PIFLOW_BIN")" && pwd)/$(basename "$PIFLOW_BIN")"
  say "piflow: $piflow (PIFLOW_BIN)"
else
  case "${PIFLOW_PROFILE:-release}" in
    release)
      say "building piflow (release)"
      cargo build --release --quiet -p piflow --bin piflow
      piflow="$PWD/target/release/piflow"
      ;;
    dev)
      say "building piflow (debug: PIFLOW_PROFILE=dev)"
      cargo build --quiet -p piflow --bin piflow
      piflow="$PWD/target/debug/piflow"
      ;;
    *)
      echo "PIFLOW_PROFILE must be release or dev, not ${PIFLOW_PROFILE}" >&2
      exit 2
      ;;
  esac
fi

moto_pid=""
cleanup() {
  if [ -n "$moto_pid" ]; then
    kill "$moto_pid" 2>/dev/null || true
    wait "$moto_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

py=.emu/venv/bin/python
if [ -n "${MOTO_PORT:-}" ]; then
  port="$MOTO_PORT"
  echo "using the moto server on 127.0.0.1:$port (MOTO_PORT)"
  # A fresh estate on a shared server: unique names.
  suffix="mj$$"
else
  port="$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  MOTO_PORT="$port" PIFLOW_EMU_MINUTE_SECONDS="${PIFLOW_EMU_MINUTE_SECONDS:-1}" "$py" integration/emulator/moto_server.py -H 127.0.0.1 -p "$port" >.emu/main-job-moto.log 2>&1 &
  moto_pid=$!
  suffix=""
fi
for _ in $(seq 1 300); do
  if "$py" -c 'import sys, urllib.request; urllib.request.urlopen("http://127.0.0.1:%s/moto-api/" % sys.argv[1], timeout=2)' "$port" >/dev/null 2>&1; then
    break
  fi
  if [ -n "$moto_pid" ] && ! kill -0 "$moto_pid" 2>/dev/null; then
    echo "the moto server did not start; its log (.emu/main-job-moto.log):"
    tail -n 20 .emu/main-job-moto.log
    exit 1
  fi
  sleep 0.1
done
echo "moto server on 127.0.0.1:$port"

export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE
# cfn-lint and checkov of .emu/venv, for piflow:lint and piflow:security-scan.
export PATH="$PWD/.emu/venv/bin:$PATH"
export PIFLOW_HOME="$PWD/.emu/main-job"
export PIFLOW_POLL_SECONDS="${PIFLOW_POLL_SECONDS:-0.5}"
rm -rf "$PIFLOW_HOME"

say "seeding the reference estate"
sfx_args=()
input=integration/inputs/upgrade-dev.json
if [ -n "$suffix" ]; then
  # A shared server: the estate's names end in -SUFFIX, and so do the
  # cluster and services of a piflow.yaml made for this run.
  sfx_args=(--suffix "$suffix")
  "$py" - "$suffix" >.emu/main-job-piflow.yaml <<'PY'
import json, sys, yaml
sfx = sys.argv[1]
c = yaml.safe_load(open("piflow.yaml"))
c["environments"]["dev"]["cluster"] += "-" + sfx
c["product"]["services"] = [{"name": s, "service": s + "-" + sfx} for s in c["product"]["services"]]
c.pop("tags", None)
c.pop("events", None)
print(json.dumps(c, indent=2))
PY
  export PIFLOW_CONFIG="$PWD/.emu/main-job-piflow.yaml"
fi
"$py" integration/estate/estate.py seed "${sfx_args[@]}" >.emu/main-job-estate.json
echo "estate: .emu/main-job-estate.json"
"$py" integration/estate/estate.py show "${sfx_args[@]}"

say "piflow run upgrade --input @$input --env dev"
status=0
"$piflow" run upgrade --input "@$input" --env dev || status=$?

say "the estate afterwards"
"$py" integration/estate/estate.py show "${sfx_args[@]}"

say "piflow audit --env dev"
"$piflow" audit --env dev
"$piflow" audit verify

exit "$status"
