#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the test suite. FRESH=1 rebuilds the environment first.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
export EXTRAS="${EXTRAS:-dev,gbdt,ray,serve,lora,rl}"  # the tests cover LightGBM heads, Ray, the server, LoRA and TRL
[ "${FRESH:-0}" = "1" ] && rm -rf "$VENV"
VENV="$VENV" bash scripts/setup.sh
# pytest's default output: one line of progress per test file (tests/test_x.py ....  [ 12%])
"$VENV/bin/python" -m pytest -p no:cacheprovider "$@"
