#!/usr/bin/env bash
# Make the Python environment of piflow's emulator and linters: .emu/venv at
# the repository root, with moto's server (the project's AWS for tests,
# started through moto_server.py beside this file), boto3, cfn-lint (the
# `piflow:lint` step), checkov (the `piflow:security-scan` step) and cbor2
# (moto_server.py's AWS Health, which speaks CBOR) and the AWS CLI (a real
# client of piflow serve's Step Functions API, tests/it/sfn_api.rs), at the
# versions pinned below (the ones docs/store.md, docs/workflows.md and the
# tests were checked with). checkov 3.2.459 is the newest that accepts the
# pinned boto3 (3.3.x pulls boto3 back to 1.35).
#
# Idempotent: when .emu/venv already has these versions it says so and
# exits at once; a venv without them (or with other versions) is completed;
# a broken one is made anew. Run it from anywhere:
#
#     integration/emulator/setup.sh
#
# Needs python3 with its venv module (Debian and Ubuntu: apt-get install
# python3-venv) and PyPI (about 30 s the first time). Exit status 0: ready;
# 1: it could not be made, the reason on stderr.
#
# Who runs it: .ci/run, and the tests themselves (tests/it/common/moto.rs) when
# .emu/venv has no moto and python3 exists.
set -euo pipefail

MOTO=5.2.5
BOTO3=1.44.5
CFN_LINT=1.58.0
CHECKOV=3.2.459
CBOR2=5.7.1
# The AWS CLI release whose botocore is the one boto3 $BOTO3 brings.
AWSCLI=1.46.3
# The installer: uv (from PyPI, into the venv) installs the packages above
# in about 27 s where pip takes about 65 s (measured on the two-core
# project machine with a warm cache); pip does it when uv cannot.
UV=0.13.9

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/.emu/venv"
py="$venv/bin/python"

# The pinned packages import, at the pinned versions (moto's server needs
# flask and flask_cors, which its [server] extra brings).
ready() {
  [ -x "$py" ] || return 1
  "$py" - "$MOTO" "$BOTO3" "$CFN_LINT" "$CHECKOV" "$CBOR2" "$AWSCLI" >/dev/null 2>&1 <<'PY'
import sys
from importlib.metadata import version
import awscli, boto3, cbor2, cfnlint, checkov, flask, flask_cors, moto  # noqa: F401
want = {"moto": sys.argv[1], "boto3": sys.argv[2], "cfn-lint": sys.argv[3],
        "checkov": sys.argv[4], "cbor2": sys.argv[5], "awscli": sys.argv[6]}
sys.exit(0 if all(version(name) == v for name, v in want.items()) else 1)
PY
}

pinned="moto[server]==$MOTO boto3==$BOTO3 cfn-lint==$CFN_LINT checkov==$CHECKOV cbor2==$CBOR2 awscli==$AWSCLI"

if ready; then
  echo "emulator: .emu/venv is ready ($pinned)"
  exit 0
fi

if ! command -v python3 >/dev/null 2>&1; then
  echo "setup.sh: python3 is not installed, so .emu/venv cannot be made (install python3 and its venv module)" >&2
  exit 1
fi

if ! { [ -x "$py" ] && "$py" -m pip --version >/dev/null 2>&1; }; then
  echo "emulator: creating .emu/venv with $(python3 --version 2>&1)"
  rm -rf "$venv"
  mkdir -p "$root/.emu"
  if ! python3 -m venv "$venv"; then
    rm -rf "$venv"
    echo "setup.sh: 'python3 -m venv' failed (Debian and Ubuntu: apt-get install python3-venv)" >&2
    exit 1
  fi
fi

echo "emulator: installing $pinned into .emu/venv (about 30 s)"
packages=("moto[server]==$MOTO" "boto3==$BOTO3" "cfn-lint==$CFN_LINT" "checkov==$CHECKOV" "cbor2==$CBOR2" "awscli==$AWSCLI")
installed=""
if "$py" -m pip install --quiet --disable-pip-version-check --retries 3 "uv==$UV" >/dev/null 2>&1 \
  && [ -x "$venv/bin/uv" ]; then
  # uv reads its own settings, not pip's: pass on where pip finds packages.
  [ -n "${PIP_INDEX_URL:-}" ] && export UV_INDEX_URL="$PIP_INDEX_URL"
  [ -n "${PIP_EXTRA_INDEX_URL:-}" ] && export UV_EXTRA_INDEX_URL="$PIP_EXTRA_INDEX_URL"
  [ -n "${PIP_FIND_LINKS:-}" ] && export UV_FIND_LINKS="$PIP_FIND_LINKS"
  if "$venv/bin/uv" pip install --quiet --compile-bytecode --python "$py" "${packages[@]}"; then
    installed=1
  else
    echo "emulator: uv could not install them; trying pip"
  fi
fi
if [ -z "$installed" ] && ! "$py" -m pip install --quiet --disable-pip-version-check --retries 3 \
  "${packages[@]}"; then
  echo "setup.sh: pip could not install $pinned (is PyPI reachable?)" >&2
  exit 1
fi

if ! ready; then
  echo "setup.sh: $pinned were installed but do not import in .emu/venv" >&2
  exit 1
fi
echo "emulator: .emu/venv is ready ($pinned)"
