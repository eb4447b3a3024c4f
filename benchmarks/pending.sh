#!/usr/bin/env bash
# The fidelity experiments still to finish (issues 21-23), one after another, niced: CPU is the
# scarce resource, so one heavy run at a time. An experiment whose results file exists is skipped;
# one in progress resumes from its committed per-cell records in benchmarks/results/ (a machine
# replaced between sessions loses at most the cell in progress), so commit those records as
# cells finish.
#
# Run it from a worktree pinned at a commit, so that editing the main tree meanwhile does not
# change a running experiment (every cell starts a new process that imports rewardlab):
#
#   git worktree add --detach ../q HEAD
#   cd ../q && PYTHONPATH=$PWD/src setsid nohup nice -n 10 bash benchmarks/pending.sh ../runs \
#       >> ../runs/pending.log 2>&1 < /dev/null &
#   # later: cp -r ../q/benchmarks/results/. benchmarks/results/ in the main tree, and commit
#
# Argument: the work folder (models, logs; never committed). Environment: PY (the Python that has
# rewardlab's dependencies; default .venv/bin/python, then the main tree's).
set -u
WORK=$(realpath -m "${1:-runs}")  # relative to where it is called from
cd "$(dirname "$0")/.."
mkdir -p "$WORK"
PY=${PY:-}
if [ -z "$PY" ]; then
  for p in .venv/bin/python "$(git rev-parse --path-format=absolute --git-common-dir 2>/dev/null)/../.venv/bin/python"; do
    if [ -x "$p" ]; then PY=$p; break; fi
  done
fi
: "${PY:?no .venv found: set PY}"
export TOKENIZERS_PARALLELISM=false

# the optional extras the queue needs, installed up front (scripts/setup.sh installs dev,serve only):
# TRL for focal_grpo (rewardlab[rl]), LightGBM for order_consistency_full's gbdt arm (rewardlab[gbdt]);
# a missing one would fail its experiment hours into the queue
for need in "trl:trl>=1.0" "lightgbm:lightgbm>=4.0"; do
  "$PY" -c "import ${need%%:*}" 2>/dev/null || "$PY" -m pip install -q "${need#*:}" \
    || echo "$(date '+%F %T') could not install ${need#*:}: the experiment that needs it will fail"
done

step() {  # step NAME RESULT_JSON SCRIPT ARGS...
  local name=$1 result=$2
  shift 2
  if [ -f "benchmarks/results/$result" ]; then
    echo "$(date '+%F %T') $name: done before (benchmarks/results/$result)"
    return 0
  fi
  echo "$(date '+%F %T') $name: running ($*), log $WORK/$name.log"
  if "$PY" "$@" >> "$WORK/$name.log" 2>&1; then
    echo "$(date '+%F %T') $name: finished"
  else
    echo "$(date '+%F %T') $name: FAILED (exit $?), see $WORK/$name.log; going on with the next"
  fi
}

# in the order of the issues' priorities: what closes an issue first. The hours are the scripts'
# estimates from an earlier machine; on an AVX2-only one (MiniLM training at 1.6 pairs/s, not 5)
# expect two to three times as long.
step robust_length robust_length.json benchmarks/robust_length.py --work "$WORK/robust_length"              # 23, ~3 h
step fidelity_strength fidelity_strength.json benchmarks/fidelity_strength.py --work "$WORK/fidelity_strength"  # 21, ~2.3 h
step fidelity_metarm fidelity_metarm.json benchmarks/fidelity_metarm.py --work "$WORK/fidelity_metarm"      # 21, ~2 h
step critic_control critic_control.json benchmarks/critic_control.py --work "$WORK/critic_control"         # 22, measured 2026-12-03: ~8 h on one machine, 2.5 h on a faster (AVX-512) one
step focal_grpo focal_grpo.json benchmarks/focal_grpo.py --work "$WORK/focal_grpo"                       # 22, done 2026-12-04 (about 15 min a cell on an AVX-512 machine)
step critic_precondition critic_precondition.json benchmarks/critic_precondition.py --work "$WORK/critic_pre"  # 22, done 2026-12-04 (about 25 min on an AVX-512 machine)
# order_consistency_full's cells are single-threaded head fits (its studies set threads_per_worker 1):
# two workers use both cores. Done 2026-12-04 on an AVX-512 machine: golden, pool and embeddings
# 46 min, a dense MLP cell about 64 s and a sparse one about 16 s with two workers (420 cells in
# about 2 h); its epochs check after it (40 sparse cells at 300 epochs, about 225 s each)
step order_consistency_full order_consistency_full.json benchmarks/order_consistency_full.py --work "$WORK/oc_full" --workers 2  # 22, done 2026-12-04
step order_consistency_epochs order_consistency_epochs.json benchmarks/order_consistency_epochs.py --work "$WORK/oc_full" --workers 2  # 22, done 2026-12-05 (75 min)
