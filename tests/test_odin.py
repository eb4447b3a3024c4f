"""ODIN (objectives/odin.py, models/odin.py, train/methods/odin.py): the loss against a hand
computation, correlations on the global batch (a gather with gradient, in process and under a
2-process launch), the export that plain transformers scores with the quality head alone, the
length head beside it, resume, and the fields that refuse ODIN."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from scipy import stats

from rewardlab.config import parse_config
from rewardlab.data import sample_path
from rewardlab.errors import ConfigError
from rewardlab.objectives import LossInputs, build_loss
from rewardlab.objectives.odin import OdinLoss, length_penalties, orthogonality, pearson

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ----------------------------------------------------------------------------- the math
def test_pearson_equals_scipy_and_is_zero_on_a_constant_side():
    rng = np.random.default_rng(0)
    for n in (2, 3, 17, 200):
        x, y = rng.normal(size=n), rng.normal(size=n) + 0.3 * np.arange(n)
        assert float(pearson(torch.tensor(x), torch.tensor(y))) == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)
    r = torch.tensor([0.3, -1.0, 2.0], requires_grad=True)
    rho = pearson(r, torch.tensor([5.0, 5.0, 5.0]))  # all one length: no information, no NaN
    rho.backward()
    assert float(rho.detach()) == 0.0 and torch.isfinite(r.grad).all()


def _hand_odin(h_c, h_r, w_q, w_l, b_l, len_c, len_r, lam_len, lam_o):
    """ODIN's loss written out with numpy (the paper's terms; see objectives/odin.py)."""
    rq_c, rq_r = h_c @ w_q, h_r @ w_q
    rl_c, rl_r = h_c @ w_l + b_l, h_r @ w_l + b_l
    d = (rq_c + rl_c) - (rq_r + rl_r)
    bt = np.mean(np.log1p(np.exp(-d)))
    rq, rl, ln = np.r_[rq_c, rq_r], np.r_[rl_c, rl_r], np.r_[len_c, len_r]
    rho_q, rho_l = np.corrcoef(rq, ln)[0, 1], np.corrcoef(rl, ln)[0, 1]
    cos = abs(w_q @ w_l) / (np.linalg.norm(w_q) * np.linalg.norm(w_l))
    return bt + lam_len * (abs(rho_q) + 1 - rho_l) + lam_o * cos, rho_q


def _odin(w_q, length_head, gather=None, lam_len=0.7, lam_o=0.3):
    return OdinLoss(build_loss("bt"), length_head=length_head, quality_weight=lambda: w_q,
                    length_weight_vector=lambda: length_head.weight, length_weight=lam_len, ortho_weight=lam_o,
                    gather=gather)


def test_odin_loss_equals_a_hand_computation():
    h_c = np.array([[1.0, 0.5], [0.2, -0.4], [2.0, 1.0]])
    h_r = np.array([[0.1, 0.3], [0.5, 0.5], [-1.0, 0.2]])
    w_q, w_l, b_l = np.array([0.8, -0.3]), np.array([0.4, 0.9]), 0.1
    len_c, len_r = np.array([12.0, 3.0, 40.0]), np.array([7.0, 9.0, 2.0])
    head = torch.nn.Linear(2, 1).double()
    with torch.no_grad():
        head.weight.copy_(torch.tensor(w_l[None])), head.bias.fill_(b_l)
    wq = torch.tensor(w_q[None])
    t = {k: torch.tensor(v) for k, v in dict(h_c=h_c, h_r=h_r, len_c=len_c, len_r=len_r).items()}
    inputs = LossInputs(t["h_c"] @ wq[0], t["h_r"] @ wq[0], t["h_c"], t["h_r"],
                        {"length_chosen": t["len_c"], "length_rejected": t["len_r"]})
    loss, logs = _odin(wq, head)(inputs)
    expected, rho_q = _hand_odin(h_c, h_r, w_q, w_l, b_l, len_c, len_r, 0.7, 0.3)
    assert float(loss.detach()) == pytest.approx(expected, abs=1e-9)
    assert logs["loss/total"] == pytest.approx(expected) and logs["odin/rho_quality_length"] == pytest.approx(rho_q)
    # the preference term is on the sum of the heads: without the length head's rewards it differs
    d_quality_only = h_c @ w_q - h_r @ w_q
    assert logs["loss/odin_preference"] != pytest.approx(np.mean(np.log1p(np.exp(-d_quality_only))))
    loss.backward()
    assert head.weight.grad is not None and torch.isfinite(head.weight.grad).all()

    # A gather that appends another process's responses: the penalties are over all of them
    other = {"r_q": np.array([0.5, -2.0]), "r_l": np.array([1.0, 0.0]), "len": np.array([30.0, 1.0])}
    parts = iter([torch.tensor(other["r_q"]), torch.tensor(other["r_l"]), torch.tensor(other["len"])])
    loss_g, logs_g = _odin(wq, head, gather=lambda x: torch.cat([x.double(), next(parts)]))(inputs)
    rq = np.r_[h_c @ w_q, h_r @ w_q, other["r_q"]]
    rl = np.r_[h_c @ w_l + b_l, h_r @ w_l + b_l, other["r_l"]]
    ln = np.r_[len_c, len_r, other["len"]]
    bt = np.mean(np.log1p(np.exp(-((h_c - h_r) @ (w_q + w_l)))))
    cos = abs(w_q @ w_l) / (np.linalg.norm(w_q) * np.linalg.norm(w_l))
    want = bt + 0.7 * (abs(np.corrcoef(rq, ln)[0, 1]) + 1 - np.corrcoef(rl, ln)[0, 1]) + 0.3 * cos
    assert float(loss_g.detach()) == pytest.approx(want, abs=1e-9) and float(loss_g.detach()) != pytest.approx(expected)


def test_penalty_terms_and_orthogonality_by_hand():
    lengths = torch.tensor([1.0, 2.0, 3.0, 4.0])
    decor, corr = length_penalties(torch.tensor([4.0, 3.0, 2.0, 1.0]), torch.tensor([2.0, 4.0, 6.0, 8.0]), lengths)
    assert float(decor) == pytest.approx(1.0) and float(corr) == pytest.approx(0.0, abs=1e-7)
    assert float(orthogonality(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 3.0]]))) == 0.0
    assert float(orthogonality(torch.tensor([[1.0, 1.0]]), torch.tensor([[-2.0, -2.0]]))) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=">= 0"):
        OdinLoss(build_loss("bt"), length_head=None, quality_weight=None, length_weight_vector=None,
                 length_weight=-0.1)


_GATHER = r"""
import json, sys, torch, torch.distributed as dist
sys.path.insert(0, sys.argv[1])
from rewardlab.objectives.odin import length_penalties
from rewardlab.train.methods.odin import gather_with_grad
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
g = torch.Generator().manual_seed(0)
r_all, l_all = torch.randn(8, generator=g, dtype=torch.float64), torch.rand(8, generator=g, dtype=torch.float64) * 50
mine = r_all[rank * 4:(rank + 1) * 4].clone().requires_grad_(True)
decor, corr = length_penalties(gather_with_grad(mine), gather_with_grad(mine) * 0.5, gather_with_grad(l_all[rank * 4:(rank + 1) * 4]))
(decor + corr).backward()
full = r_all.clone().requires_grad_(True)
d1, c1 = length_penalties(full, full * 0.5, l_all)
(d1 + c1).backward()
# one file per rank: two processes printing to one pipe can interleave their lines
with open(f"{sys.argv[2]}/rank{rank}.json", "w") as f:
    json.dump({"rank": rank, "value": float(decor + corr), "full_value": float(d1 + c1),
               "grad": mine.grad.tolist(), "full_grad": (world * full.grad[rank * 4:(rank + 1) * 4]).tolist()}, f)
# leave together: a process exiting while the other's gloo pair is still up can abort ("terminate
# called without an active exception", exit -6) after its result was written
dist.barrier()
dist.destroy_process_group()
"""


@pytest.mark.distributed
def test_gather_with_grad_gives_the_global_batch_gradient(tmp_path):
    """Each of 2 processes holds half the responses; the penalty is the full batch's, and each
    process's gradient is world × the full-batch gradient of its half, so DDP's mean over processes
    of the parameter gradients is the full-batch loss's gradient."""
    script = tmp_path / "gather.py"
    script.write_text(_GATHER)
    src = str(Path(__file__).resolve().parents[1] / "src")
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          str(script), src, str(tmp_path)], capture_output=True, text=True, timeout=300, env={**_env()})
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("rank*.json"))]
    assert sorted(r["rank"] for r in rows) == [0, 1]
    for r in rows:
        assert r["value"] == pytest.approx(r["full_value"], abs=1e-12)
        np.testing.assert_allclose(r["grad"], r["full_grad"], atol=1e-12)


def _env() -> dict:
    import os

    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


# ----------------------------------------------------------------------------- training runs
def _tree(out: Path, backbone, **train) -> dict:
    tc = {"max_steps": 4, "batch_size": 4, "lr": 1e-2, "scheduler": "constant", "warmup_ratio": 0.0,
          "eval_every": 4, "save_every": 2, "log_every": 1, "progress": False, "reward_stats_max_pairs": 8}
    tc.update(train)
    return {"output_dir": str(out), "model": {"name_or_path": str(backbone), "max_length": 48},
            "data": {"train": str(sample_path()), "val_fraction": 0.2, "max_train_pairs": 16, "max_val_pairs": 8},
            "objective": {"name": "bt"}, "train": tc, "odin": {"length_weight": 1.0, "ortho_weight": 0.5}}


@pytest.fixture(scope="module")
def odin_run(tiny_llama_dir, tmp_path_factory) -> Path:
    from rewardlab.train.loop import train

    out = tmp_path_factory.mktemp("odin") / "run"
    train(parse_config(_tree(out, tiny_llama_dir)))
    return out


_PLAIN = r"""
import json, sys
import torch
from transformers import AutoModelForSequenceClassification
directory, batch = sys.argv[1], json.loads(sys.argv[2])
with torch.no_grad():
    model = AutoModelForSequenceClassification.from_pretrained(directory).eval()
    r = model(input_ids=torch.tensor(batch["input_ids"]), attention_mask=torch.tensor(batch["attention_mask"])).logits[:, 0]
print(json.dumps({"rewards": r.tolist(), "imported": sorted(m for m in sys.modules if m.split(".")[0] in ("rewardlab", "peft"))}))
"""


def test_export_scores_with_the_quality_head_in_plain_transformers(odin_run):
    from rewardlab.models.odin import length_head_rewards, length_rewards, load_length_head
    from rewardlab.models.reward_model import RewardModel

    summary = json.loads((odin_run / "summary.json").read_text())
    assert summary["odin"]["length_head"] == "odin_length_head.safetensors"
    assert summary["odin"]["length_weight"] == 1.0 and summary["odin"]["ortho_weight"] == 0.5
    records = [json.loads(x) for x in (odin_run / "metrics.jsonl").read_text().splitlines()]
    train_recs = [r for r in records if r["split"] == "train"]
    assert all("odin/rho_quality_length" in r and "loss/odin_preference" in r for r in train_recs)

    model = RewardModel.from_pretrained(odin_run / "model")
    prompts = ["What is 2+2?", "Name a colour."] * 2
    responses = ["4", "Blue, like the sky on a clear summer day.", "It is four, of course.", "Red"]
    expected = model.score(prompts, responses)
    batch = model.collate([model.encode(p, r) for p, r in zip(prompts, responses)], padding_side="right")
    res = subprocess.run([sys.executable, "-c", _PLAIN, str(odin_run / "model"),
                          json.dumps({k: v.tolist() for k, v in batch.items()})],
                         capture_output=True, text=True, timeout=300, env=_env())
    assert res.returncode == 0, res.stderr[-3000:]
    plain = json.loads(res.stdout.strip().splitlines()[-1])
    assert plain["imported"] == []
    np.testing.assert_allclose(plain["rewards"], expected, atol=1e-5)

    # the length head beside the model: the checkpoint's trained head, and it scores
    head = load_length_head(odin_run / "model")
    last = sorted((odin_run / "checkpoints").glob("step-*"))[-1]
    state = load_file(str(last / "model.safetensors"))
    key = next(k for k in state if k.endswith("odin_length_head.weight"))
    np.testing.assert_allclose(head.weight.detach().numpy(), state[key].numpy(), atol=0)
    r_len = length_rewards(model, head, prompts, responses)
    assert r_len.shape == (4,) and np.isfinite(r_len).all() and not np.allclose(r_len, expected)
    # on features already computed: w . h + b by hand
    _, feats = model.score(prompts, responses, return_features=True)
    w, b = head.weight.detach().double().numpy()[0], float(head.bias.detach()[0])
    np.testing.assert_allclose(length_head_rewards(head, feats), np.asarray(feats, dtype=float) @ w + b, atol=1e-5)
    np.testing.assert_allclose(length_head_rewards(head, feats), r_len, atol=1e-6)


def test_resume_restores_the_length_head(odin_run, tiny_llama_dir, tmp_path):
    """2 steps, then --resume to 4: the length head equals the uninterrupted 4-step run's (with a
    fresh head after resuming it would not: it is drawn again at start)."""
    from rewardlab.train.loop import train

    out = tmp_path / "resumed"
    train(parse_config(_tree(out, tiny_llama_dir, max_steps=2)))
    after_two = load_file(str(out / "model" / "odin_length_head.safetensors"))
    train(parse_config(_tree(out, tiny_llama_dir)), resume=True)
    full = load_file(str(odin_run / "model" / "odin_length_head.safetensors"))
    resumed = load_file(str(out / "model" / "odin_length_head.safetensors"))
    assert float((after_two["weight"] - full["weight"]).abs().max()) > 1e-4  # the last two steps moved it
    for k in ("weight", "bias"):
        np.testing.assert_allclose(resumed[k].numpy(), full[k].numpy(), atol=1e-6)


def test_odin_refuses_a_pooling_without_two_linear_heads(tiny_llama_dir, tmp_path):
    from rewardlab.train.loop import train

    tree = _tree(tmp_path / "native", tiny_llama_dir)
    tree["model"]["pooling"] = "native"
    with pytest.raises(ConfigError, match="model.pooling 'native'"):
        train(parse_config(tree))
    assert not (tmp_path / "native").exists()  # refused before anything was written
    with pytest.raises(ConfigError, match="odin.length_weight"):
        parse_config({**_tree(tmp_path / "x", tiny_llama_dir), "odin": {"length_weight": -1}})
    with pytest.raises(ConfigError, match="odin.ortho_weight"):
        parse_config({**_tree(tmp_path / "x", tiny_llama_dir), "odin": {"ortho_weight": -0.5}})


def test_quality_head_is_the_trained_lora_copy(tiny_llama_dir, tmp_path):
    """With LoRA the reward head is a peft modules_to_save copy: ODIN's orthogonality reads that one."""
    from rewardlab.models.odin import quality_head
    from rewardlab.models.reward_model import RewardModel
    from rewardlab.models import lora
    from rewardlab.config import LoraConfig

    model = RewardModel.from_backbone(str(tiny_llama_dir), max_length=32)
    original = model.model.score
    lora.apply(model, LoraConfig(r=2, dropout=0.0))
    head = quality_head(model)
    assert isinstance(head, torch.nn.Linear) and head is not original and head.weight.requires_grad
    r, h = model(**model.collate([model.encode("q", "a")]))
    assert torch.allclose(r, head(h).squeeze(-1))


@pytest.mark.distributed
def test_two_processes_compute_the_penalties_on_the_global_batch(odin_run, tiny_llama_dir, tmp_path):
    """2 processes × 2 pairs under `accelerate launch` log the same loss and ρ's as one process × 4
    pairs (the same global batches): the correlations are the global batch's (each process logs its
    own values, and rank 0's equal the whole batch's), and after one update the heads agree too
    (the gradient is the global loss's)."""
    import yaml

    cfg = tmp_path / "ddp.yaml"
    cfg.write_text(yaml.safe_dump(_tree(tmp_path / "ddp", tiny_llama_dir, batch_size=2, max_steps=2)))
    launcher = Path(__file__).resolve().parents[1] / "configs" / "accelerate" / "cpu_ddp2.yaml"
    res = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(launcher),
                          "-m", "rewardlab.cli", "train", str(cfg)], capture_output=True, text=True, env=_env(),
                         timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert json.loads((tmp_path / "ddp" / "summary.json").read_text())["num_processes"] == 2

    def train_records(run):
        return {r["step"]: r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
                if r["split"] == "train"}

    one, two = train_records(odin_run), train_records(tmp_path / "ddp")
    # step 1: the same global batch and weights; loss is reduced over processes, the ρ's are global
    keys = ("loss", "odin/rho_quality_length", "odin/rho_length_length", "odin/abs_cos_heads")
    diffs = {k: two[1][k] - one[1][k] for k in keys}
    assert all(abs(d) <= 1e-5 for d in diffs.values()), diffs
    # step 2, after one update: the heads moved alike (their cosine); the backbone's update differs in
    # float noise only (Adam's first step divides tiny gradients by their own size), so the ρ's agree
    # to 1e-3 (measured: 2.5e-4), not to the last bit
    assert two[2]["odin/abs_cos_heads"] == pytest.approx(one[2]["odin/abs_cos_heads"], abs=1e-6)
    for k in keys[:3]:
        assert two[2][k] == pytest.approx(one[2][k], abs=1e-3), k


def test_pairs_carry_response_lengths_in_tokens(tiny_llama_dir):
    from rewardlab.data.table import PreferenceTable
    from rewardlab.models.reward_model import RewardModel
    from rewardlab.train.methods.odin import Odin

    model = RewardModel.from_backbone(str(tiny_llama_dir), max_length=80, overlength="drop")
    rows = [{"prompt": "Hi", "chosen": "Hello there, friend.", "rejected": "Hey"},
            {"prompt": "Long " * 200, "chosen": "dropped by the drop policy", "rejected": "x"},
            {"prompt": [{"role": "user", "content": "Q"}], "chosen": "Yes indeed", "rejected": "No"}]
    table = PreferenceTable.from_records(rows, [f"t:{i}" for i in range(3)], "mixed")
    method = Odin(parse_config({"data": {"train": "x"}, "odin": {}}))
    pairs = method.encode_pairs(model, table)
    assert pairs.rows.tolist() == [0, 2]  # the over-long pair dropped, as without ODIN
    tok = model.tokenizer
    n = lambda text: len(tok(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    assert pairs.columns["length_chosen"].tolist() == [n("Hello there, friend."), n("Yes indeed")]
    assert pairs.columns["length_rejected"].tolist() == [n("Hey"), n("No")]
