"""Critic-RM joint training, critique-averaged scoring and the dual-class export (issue #12, items 5-7).

Pure pieces against hand computations (λ schedule, labels, LM loss, joint loss, mean over
critiques); the loop end to end on a tiny tied Llama with SmolLM2's tokenizer: outputs, exact resume
after SIGKILL, 2-process DDP; the export loaded by plain transformers in a process that never
imports rewardlab; scoring with a deterministic fake critique writer; bad input.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from cli_runs import assert_bad_input, invoke, kill9_after_checkpoint, run_cli, train_env
from safetensors.torch import load_file

from rewardlab.config import CriticConfig, load_config
from rewardlab.critic.joint import JointLoss, lambda_at
from rewardlab.critic.model import (
    IGNORE,
    CriticRewardModel,
    JointEncoded,
    critique_labels,
    critique_lm_loss,
)
from rewardlab.critic.load import load_model
from rewardlab.critic.scoring import mean_over_critiques, score_with_critiques
from rewardlab.errors import ConfigError, DataError
from rewardlab.generate import Generator, Sample
from rewardlab.objectives import LossInputs, build_loss
from rewardlab.train.loop import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO = Path(__file__).resolve().parents[1]
KEEP = ("critique_chosen", "critique_rejected")


# ------------------------------------------------------------------ pure functions
def test_lambda_schedules_by_hand():
    assert lambda_at(0, 5, "constant", 0.7, 0.1) == 0.7 and lambda_at(4, 5, "constant", 0.7, 0.1) == 0.7
    # linear over steps 0..4: 0.8, 0.65, 0.5, 0.35, 0.2
    assert [round(lambda_at(s, 5, "linear", 0.8, 0.2), 10) for s in range(5)] == [0.8, 0.65, 0.5, 0.35, 0.2]
    # cosine: end + (start - end)/2 (1 + cos(pi t/(T-1))): 0.8, 0.2 + 0.3(1 + cos(pi/4)), 0.5, ..., 0.2
    assert lambda_at(0, 5, "cosine", 0.8, 0.2) == pytest.approx(0.8)
    assert lambda_at(1, 5, "cosine", 0.8, 0.2) == pytest.approx(0.2 + 0.3 * (1 + math.sqrt(0.5)))
    assert lambda_at(2, 5, "cosine", 0.8, 0.2) == pytest.approx(0.5)
    assert lambda_at(4, 5, "cosine", 0.8, 0.2) == pytest.approx(0.2)
    assert lambda_at(9, 5, "linear", 0.8, 0.2) == pytest.approx(0.2)  # past the end: stays at the end
    assert lambda_at(0, 1, "linear", 0.8, 0.2) == 0.8  # one step: the start
    assert lambda_at(3, 5, "linear", 0.1, 0.9) == pytest.approx(0.7)  # increasing works too
    with pytest.raises(ConfigError, match="constant, linear, cosine|one of"):
        lambda_at(0, 5, "step", 0.8, 0.2)


def _enc(ids, k, sft=True):
    return JointEncoded(list(ids), None, "ok", critique_len=k, sft=sft)


def test_critique_labels_right_and_left_padding():
    items = [_enc([5, 6, 7, 8], 2), _enc([1, 2], 1), _enc([3, 4, 9], 2, sft=False)]
    right = torch.tensor([[5, 6, 7, 8], [1, 2, 0, 0], [3, 4, 9, 0]])
    assert critique_labels(right, items, "right").tolist() == [[-100, -100, 7, 8], [-100, 2, -100, -100],
                                                                [-100, -100, -100, -100]]
    left = torch.tensor([[5, 6, 7, 8], [0, 0, 1, 2], [0, 3, 4, 9]])
    assert critique_labels(left, items, "left").tolist() == [[-100, -100, 7, 8], [-100, -100, -100, 2],
                                                              [-100, -100, -100, -100]]


def test_critique_lm_loss_is_next_token_ce_on_labelled_positions_only():
    torch.manual_seed(0)
    head = torch.nn.Linear(4, 7, bias=False)
    hidden = torch.randn(2, 5, 4)
    labels = torch.full((2, 5), IGNORE)
    labels[0, 3], labels[0, 4], labels[1, 2] = 3, 6, 1
    # hand: position t predicts label t+1 -> (row 0, t=2 -> 3), (row 0, t=3 -> 6), (row 1, t=1 -> 1)
    logp = torch.log_softmax(head(hidden), -1)
    want = -(logp[0, 2, 3] + logp[0, 3, 6] + logp[1, 1, 1]) / 3
    assert critique_lm_loss(hidden, labels, head).item() == pytest.approx(want.item(), abs=1e-6)
    none = critique_lm_loss(hidden, torch.full((2, 5), IGNORE), head)
    assert none.item() == 0.0 and none.requires_grad  # still in the graph (DDP)


def test_joint_loss_mixes_sft_and_registry_reward_loss():
    loss = JointLoss(build_loss({"name": "bt"}), schedule="linear", start=0.9, end=0.1)
    rc, rr, lm = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0]), torch.tensor(3.0)
    bt = (math.log1p(math.exp(-1.0)) + math.log1p(math.exp(2.0))) / 2
    loss.set_progress(1, 3)  # λ = 0.5
    total, logs = loss(LossInputs(rc, rr), lm)
    assert total.item() == pytest.approx(0.5 * 3.0 + 0.5 * bt)
    assert logs["critic/lambda"] == pytest.approx(0.5) and logs["loss/sft"] == pytest.approx(3.0)
    assert logs["loss/reward"] == pytest.approx(bt) and logs["loss/bt"] == pytest.approx(bt)
    with pytest.raises(ConfigError, match="lambda_start"):
        JointLoss(build_loss({"name": "bt"}), start=1.5)
    with pytest.raises(ValueError, match="language-model loss"):
        loss(LossInputs(rc, rr))


def test_mean_over_critiques_by_hand():
    per = np.array([[1.0, 3.0, 5.0, 7.0], [0.0, 0.0, 1.0, -1.0]])
    assert mean_over_critiques(per).tolist() == [4.0, 0.0]
    assert mean_over_critiques(per, 1).tolist() == [1.0, 0.0]
    assert mean_over_critiques(per, 2).tolist() == [2.0, 0.0]
    with pytest.raises(ValueError):
        mean_over_critiques(per, 5)


def test_fit_request_cuts_the_prompt_from_the_left_then_the_response(tiny_llama_dir):
    from transformers import AutoTokenizer

    from rewardlab.critic.prompts import joint_messages
    from rewardlab.critic.scoring import fit_request

    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)

    def size(p, r):
        text = tok.apply_chat_template(joint_messages(p, r, None), tokenize=False, add_generation_prompt=True)
        return len(tok(text, add_special_tokens=False)["input_ids"])

    base = size("", "ok")
    assert fit_request(tok, "Short question?", "ok", base + 50) == ("Short question?", "ok", False)
    long_prompt = " ".join(f"word{i}" for i in range(200)) + " FINAL QUESTION?"
    p, r, cut = fit_request(tok, long_prompt, "the answer", base + 40)
    assert cut and r == "the answer" and p.endswith("FINAL QUESTION?") and size(p, r) <= base + 40
    assert long_prompt.endswith(p.strip())  # a suffix of the prompt: cut from the left
    msgs = [{"role": "system", "content": "be brief " * 80}, {"role": "user", "content": "END?"}]
    p, r, cut = fit_request(tok, msgs, "yes", base + 30)
    assert cut and p[1]["content"] == "END?" and size(p, r) <= base + 30
    long_answer = "start " + " ".join(f"x{i}" for i in range(300))
    p, r, cut = fit_request(tok, "", long_answer, base + 20)
    assert cut and r.startswith("start") and size(p, r) <= base + 20
    with pytest.raises(ConfigError, match="tokens for the conversation"):
        fit_request(tok, "q", "a", 8)


# ------------------------------------------------------------------ data, config and runs
@pytest.fixture(scope="module")
def tied_llama_dir(tiny_llama_dir, tmp_path_factory) -> Path:
    """The tiny Llama with tied input/output embeddings, as SmolLM2 has them."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig.from_pretrained(tiny_llama_dir)
    cfg.tie_word_embeddings = True
    torch.manual_seed(1)
    d = tmp_path_factory.mktemp("tied_llama")
    LlamaForCausalLM(cfg).save_pretrained(d)
    AutoTokenizer.from_pretrained(tiny_llama_dir).save_pretrained(d)
    return d


def critique_rows(n: int = 40) -> list[dict]:
    rows = []
    for i in range(n):
        a, b = i % 7 + 1, i % 5 + 2
        rows.append({"prompt": f"What is {a} times {b}?", "chosen": f"{a} times {b} is {a * b}.",
                     "rejected": f"{a} times {b} is {a * b + 1 + i % 3}.", "source": ["math", "chat"][i % 2],
                     "critique_chosen": f"The product {a * b} is correct and stated plainly.\nScore: 9",
                     "critique_rejected": f"Wrong: {a} x {b} is {a * b}, not what was said.\nScore: 2"})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def critic_config(out: Path, model: Path, data: Path, **train_overrides) -> dict:
    train_cfg = {"max_steps": 8, "batch_size": 4, "lr": 1e-3, "eval_every": 4, "save_every": 2, "log_every": 2,
                 "progress": False, "reward_stats_max_pairs": 8, "eval_batch_size": 16}
    train_cfg.update(train_overrides)
    return {"output_dir": str(out), "model": {"name_or_path": str(model), "max_length": 192},
            "data": {"train": str(data), "val_fraction": 0.2}, "objective": {"name": "bt"},
            "train": train_cfg, "critic": {"lambda_schedule": "linear", "lambda_start": 0.8, "lambda_end": 0.2,
                       "max_new_tokens": 4}}


def write_config(tmp: Path, name: str, model: Path, data: Path, **overrides) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(critic_config(tmp / name, model, data, **overrides)))
    return path




@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("critic_data") / "pairs.jsonl", critique_rows())


@pytest.fixture(scope="module")
def trained(tied_llama_dir, data_file, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("critic_run")
    res = run_cli("train", str(write_config(tmp, "full", tied_llama_dir, data_file, max_steps=10)))
    assert res.returncode == 0, res.stdout + res.stderr
    return tmp / "full"


def test_pairs_encode_critique_tokens_as_the_labelled_suffix(tied_llama_dir, tmp_path):
    from rewardlab.critic.joint import encode_pairs
    from rewardlab.data import load_preferences

    table = load_preferences(str(write_jsonl(tmp_path / "p.jsonl", critique_rows(3))), keep_columns=KEEP)
    model = CriticRewardModel.from_backbone(str(tied_llama_dir), critic=CriticConfig(sft_on="chosen"), max_length=512)
    pairs = encode_pairs(model, table)
    assert [e.sft for e in pairs.chosen] == [True] * 3 and [e.sft for e in pairs.rejected] == [False] * 3
    e = pairs.chosen[0]
    turn = model.tokenizer.decode(e.input_ids[-e.critique_len:])
    assert turn.startswith(table["critique_chosen"][0]) and turn.strip().endswith("<|im_end|>")
    model.train()
    batch = model.collate([pairs.chosen[0], pairs.rejected[0]])
    labelled = batch["labels"][0][batch["labels"][0] != IGNORE].tolist()
    assert labelled == e.input_ids[-e.critique_len:] and bool((batch["labels"][1] == IGNORE).all())
    r, h, lm = model(**batch)
    assert r.shape == (2,) and h.shape == (2, model.feature_dim) and lm.item() > 0
    model.eval()
    assert "labels" not in model.collate([e])  # scoring reads rewards only
    short = CriticRewardModel.from_backbone(str(tied_llama_dir), max_length=64)
    cut = short.encode_joint("a long question " * 40, "answer", "the critique. Score: 3")
    assert cut.status == "prompt_truncated" and len(cut.input_ids) == 64
    assert short.tokenizer.decode(cut.input_ids[-cut.critique_len:]).startswith("the critique. Score: 3")


def test_joint_training_writes_outputs_and_logs_the_schedule(trained):
    records = [json.loads(x) for x in (trained / "metrics.jsonl").read_text().splitlines()]
    tr = [r for r in records if r["split"] == "train"]
    assert [r["step"] for r in tr] == [2, 4, 6, 8, 10]
    # the last micro-batch before each record is step index s-1 of 10: λ = 0.8 - 0.6 (s-1)/9
    assert [r["critic/lambda"] for r in tr] == pytest.approx([0.8 - 0.6 * (s - 1) / 9 for s in (2, 4, 6, 8, 10)])
    for r in tr:
        lam = r["critic/lambda"]
        assert r["loss/total"] == pytest.approx(lam * r["loss/sft"] + (1 - lam) * r["loss/reward"], rel=1e-5)
    assert tr[-1]["loss/sft"] < tr[0]["loss/sft"]  # the critiques are learnt
    val = [r for r in records if r["split"] == "validation"]
    assert [r["step"] for r in val] == [4, 8, 10] and all(r["n"] == 8 for r in val)
    cfg = json.loads((trained / "model" / "config.json").read_text())
    assert cfg["rewardlab"]["critic"]["lambda_start"] == 0.8 and cfg["rewardlab"]["render"] == "chat"
    assert cfg["architectures"] == ["LlamaForCausalLM", "LlamaForSequenceClassification"]
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["n_train"] == 32 and sum(v["n"] for v in summary["validation_by_source"].values()) == 8


def test_kill9_then_resume_equals_uninterrupted(trained, tied_llama_dir, data_file, tmp_path):
    cfg = write_config(tmp_path, "killed", tied_llama_dir, data_file, max_steps=10)
    ckpts = tmp_path / "killed" / "checkpoints"
    kill9_after_checkpoint(cfg, ckpts, 4)
    assert not (tmp_path / "killed" / "model").exists(), "the run finished before it could be killed"
    res = run_cli("train", str(cfg), "--resume")
    assert res.returncode == 0, res.stderr
    a = load_file(str(trained / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "killed" / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and "score.weight" in a
    assert max(float((a[k].double() - b[k].double()).abs().max()) for k in a) <= 1e-6


PLAIN = textwrap.dedent("""
    import json, sys
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    d, texts = sys.argv[1], json.loads(sys.argv[2])
    tok = AutoTokenizer.from_pretrained(d)
    seq = AutoModelForSequenceClassification.from_pretrained(d).eval()
    lm = AutoModelForCausalLM.from_pretrained(d).eval()
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        rewards = seq(**enc).logits[:, 0].tolist()
        one = tok(texts[:1], return_tensors="pt", add_special_tokens=False)
        logits = lm(**one).logits[0, -1].tolist()
        gen = lm.generate(**one, max_new_tokens=3, do_sample=False)
    print(json.dumps({"rewards": rewards, "last_logits": logits, "generated": gen.shape[1] - one["input_ids"].shape[1],
                      "rewardlab_imported": any(m.startswith("rewardlab") for m in sys.modules)}))
""")


def test_export_loads_in_plain_transformers_as_both_classes(trained, tmp_path):
    from rewardlab.models.reward_model import RewardModel

    with pytest.raises(ConfigError, match="Critic-RM"):  # no silent critique-less scoring
        RewardModel.from_pretrained(trained / "model")
    model = CriticRewardModel.from_pretrained(trained / "model")
    rows = critique_rows(3)
    items = [(r["prompt"], r[side], r["critique_" + side]) for r in rows for side in ("chosen", "rejected")]
    enc = [model.encode_joint(p, y, c) for p, y, c in items]
    ours = model.score_encoded(enc, padding_side="left")  # left padding here, right padding there
    texts = [model.tokenizer.apply_chat_template(_joint(p, y, c), tokenize=False) for p, y, c in items]
    assert [e.input_ids for e in enc] == [model.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    script = tmp_path / "plain.py"
    script.write_text(PLAIN)
    res = subprocess.run([sys.executable, str(script), str(trained / "model"), json.dumps(texts)],
                         capture_output=True, text=True, env={**train_env(), "PYTHONPATH": ""}, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    plain = json.loads(res.stdout.strip().splitlines()[-1])
    assert not plain["rewardlab_imported"]
    assert np.abs(np.array(plain["rewards"]) - ours).max() < 1e-5
    with torch.no_grad():
        ids = torch.tensor([enc[0].input_ids])
        hidden = model.model.model(input_ids=ids).last_hidden_state
        our_logits = model.model.lm_head(hidden[0, -1])
    assert np.abs(np.array(plain["last_logits"]) - our_logits.numpy()).max() < 1e-4  # the LM head (tied) survived
    assert plain["generated"] >= 1


def _joint(p, y, c):
    from rewardlab.critic.prompts import prompt_messages
    from rewardlab.critic.prompts import joint_messages

    return joint_messages(prompt_messages(p), y, c)


class FakeWriter(Generator):
    """Deterministic critiques: 'critique j of <response>'; records what it was asked."""

    model_id = "fake-writer"

    def __init__(self):
        super().__init__(None)
        self.calls = []

    def _generate_batch(self, jobs, params):
        self.calls.append(params)
        return [Sample(f"critique {j.sample_index} of {j.messages[1]['content']}", 4) for j in jobs]


def test_scoring_averages_rewards_over_m_critiques(trained):
    model = load_model(trained / "model", critiques=3, seed=5)
    model.generator = FakeWriter()
    prompts, responses = ["What is 2 times 3?", "What is 2 times 3?"], ["It is 6.", "It is 7."]
    out = score_with_critiques(model, prompts, responses, batch_size=4)
    assert out.per_critique.shape == (2, 3) and out.critiques[1][2] == "critique 2 of It is 7."
    params = model.generator.calls[0]
    assert params.seed == 5 and params.temperature == model.critic.temperature
    # each r(x, y, c_j) by hand, one item at a time
    by_hand = np.array([[model.score_encoded([model.encode_joint(p, y, c)])[0] for c in cs]
                        for p, y, cs in zip(prompts, responses, out.critiques)])
    assert np.abs(out.per_critique - by_hand).max() < 1e-5
    assert np.abs(out.rewards - by_hand.mean(axis=1)).max() < 1e-5
    assert len(set(out.per_critique[0].round(6))) == 3  # the critiques change the reward


def test_given_critiques_score_as_the_written_ones_and_bad_lists_are_errors(trained):
    from rewardlab.critic.scoring import score_given_critiques

    model = load_model(trained / "model", critiques=2, seed=3)
    model.generator = FakeWriter()
    prompts, responses = ["What is 2 times 3?", "What is 2 times 3?"], ["It is 6.", "It is 7."]
    written = score_with_critiques(model, prompts, responses, batch_size=4)
    given = score_given_critiques(model, prompts, responses, written.critiques, batch_size=4)
    assert np.abs(given.per_critique - written.per_critique).max() < 1e-5
    assert np.abs(given.rewards - written.rewards).max() < 1e-5
    other = score_given_critiques(model, prompts, responses, [["Correct. Score: 9"], ["Wrong. Score: 2"]])
    by_hand = [model.score_encoded([model.encode_joint(p, y, c)])[0]
               for p, y, c in zip(prompts, responses, ["Correct. Score: 9", "Wrong. Score: 2"])]
    assert other.per_critique.shape == (2, 1) and np.abs(other.rewards - np.array(by_hand)).max() < 1e-5
    with pytest.raises(ConfigError, match=r"critiques\[1\]: 1 critiques where item 0 has 2"):
        score_given_critiques(model, prompts, responses, [["a", "b"], ["c"]])
    with pytest.raises(ConfigError, match=r"critiques\[0\]: expected a non-empty list"):
        score_given_critiques(model, prompts, responses, ["a", ["c"]])
    with pytest.raises(ConfigError, match="one list of critiques per"):
        score_given_critiques(model, prompts, responses, [["a"]])


def test_score_pairs_goes_through_the_critiques_not_the_packed_path(trained):
    """A Critic-RM decoder must not take RewardModel's shared-prompt scoring (no critiques there)."""
    from rewardlab.data import PreferenceTable
    from rewardlab.models import packing

    model = load_model(trained / "model", critiques=2, seed=1)
    model.generator = FakeWriter()
    assert packing.resolve_mode(model, "auto") == "none"
    with pytest.raises(ConfigError, match="train.packing 'shared_prompt'"):
        packing.enable(model, "shared_prompt")
    table = PreferenceTable.from_records([{"prompt": "What is 2 times 3?", "chosen": "It is 6.", "rejected": "It is 7."}],
                                         origin=["t:1"], format="explicit")
    out = model.score_pairs(table, batch_size=4)
    assert out["critiques_chosen"][0] == ["critique 0 of It is 6.", "critique 1 of It is 6."]
    direct = score_with_critiques(model, ["What is 2 times 3?"] * 2, ["It is 6.", "It is 7."], batch_size=4)
    assert np.abs(np.array([out["reward_chosen"][0], out["reward_rejected"][0]]) - direct.rewards).max() < 1e-5


def test_eval_records_m_and_seed_and_cli_rejects_critiques_for_plain_models(trained, data_file, tmp_path):
    from rewardlab.eval.runner import evaluate

    model = load_model(trained / "model", critiques=2)
    model.generator = FakeWriter()
    ev = evaluate([model], data=[str(data_file)], max_pairs_per_subset=4)
    (entry,) = ev.results["models"].values()
    assert entry["settings"]["critiques"]["m"] == 2 and entry["settings"]["critiques"]["seed"] == 0
    assert entry["overall"]["n"] == 4
    res = run_cli("eval", "--model", str(trained / "model"), "--data", str(data_file), "--critiques", "0",
              "--out", str(tmp_path / "ev"))
    assert res.returncode == 2 and "--critiques must be >= 1" in res.stdout + res.stderr


def test_score_cli_writes_critiques_with_the_trained_model(trained, data_file, tmp_path):
    small = write_jsonl(tmp_path / "two.jsonl", critique_rows(2))
    out = tmp_path / "scored.jsonl"
    res = run_cli("score", "--model", str(trained / "model"), "--data", str(small), "--out", str(out),
              "--critiques", "2", "--critique-seed", "3", "--critique-cache", str(tmp_path / "cache"))
    assert res.returncode == 0, res.stdout + res.stderr
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 2 and all(len(r["critiques_chosen"]) == 2 for r in rows)
    assert all(isinstance(r["reward_chosen"], float) for r in rows)
    assert list((tmp_path / "cache").rglob("*.jsonl"))  # the generation cache (a rerun resumes from it)


def test_score_cli_with_the_datas_critiques_reproduces_the_written_ones(trained, tied_llama_dir, tmp_path):
    """Critiques written by the model, then read back from the data (--critiques-from-data), give the
    same rewards; a table's critiques that are missing, empty or uneven are errors naming the row."""
    from rewardlab.critic.scoring import given_critiques
    from rewardlab.data import load_preferences
    from rewardlab.models.reward_model import RewardModel

    small = write_jsonl(tmp_path / "three.jsonl", critique_rows(3))
    first, again = tmp_path / "written.jsonl", tmp_path / "again.jsonl"
    # the commands run in this process (Typer's runner): their startup is covered elsewhere
    res = invoke("score", "--model", trained / "model", "--data", small, "--out", first,
                 "--critiques", "2", "--critique-seed", "1")
    assert res.exit_code == 0, res.stdout + res.stderr
    res = invoke("score", "--model", trained / "model", "--data", first, "--out", again, "--critiques-from-data")
    assert res.exit_code == 0, res.stdout + res.stderr
    a, b = ([json.loads(x) for x in f.read_text().splitlines()] for f in (first, again))
    assert [r["critiques_chosen"] for r in a] == [r["critiques_chosen"] for r in b]
    for side in ("reward_chosen", "reward_rejected"):
        assert max(abs(x[side] - y[side]) for x, y in zip(a, b)) < 1e-5
    # one string per response (training data's columns) is read too
    table = load_preferences(str(small), keep_all_columns=True)
    crit_c, crit_r = given_critiques(table)
    assert crit_c[0] == [critique_rows(3)[0]["critique_chosen"]] and len(crit_r) == 3
    rows = a[:]
    rows[1] = {**rows[1], "critiques_rejected": rows[1]["critiques_rejected"][:1]}
    uneven = write_jsonl(tmp_path / "uneven.jsonl", rows)
    with pytest.raises(DataError, match=r"uneven.jsonl:2.*critiques_rejected.*2 critiques"):
        given_critiques(load_preferences(str(uneven), keep_all_columns=True))
    rows[1] = {**a[1], "critiques_chosen": ["fine", " "]}
    empty = write_jsonl(tmp_path / "empty.jsonl", rows)
    with pytest.raises(DataError, match=r"empty.jsonl:2.*critiques_chosen"):
        given_critiques(load_preferences(str(empty), keep_all_columns=True))
    res = invoke("score", "--model", trained / "model", "--data", tmp_path / "uneven.jsonl",
                 "--out", tmp_path / "x.jsonl", "--critiques-from-data")
    assert_bad_input(res, "uneven.jsonl:2")
    plain = tmp_path / "no_critiques.jsonl"
    write_jsonl(plain, [{"prompt": "p", "chosen": "a", "rejected": "b"}])
    with pytest.raises(DataError, match="critiques_chosen"):
        given_critiques(load_preferences(str(plain), keep_all_columns=True))
    res = invoke("score", "--model", trained / "model", "--data", first, "--out", tmp_path / "y.jsonl",
                 "--critiques-from-data", "--critiques", "2")
    assert res.exit_code == 2 and "--critiques-from-data" in res.stdout + res.stderr
    RewardModel.from_backbone(str(tied_llama_dir), max_length=32).save_pretrained(tmp_path / "plain")
    res = invoke("score", "--model", tmp_path / "plain", "--data", first, "--out", tmp_path / "z.jsonl",
                 "--critiques-from-data")
    said = " ".join((res.stdout + res.stderr).split())
    assert res.exit_code == 2 and "needs a Critic-RM" in said and "Traceback" not in said, said


# ------------------------------------------------------------------ bad input
def test_bad_critiques_are_clear_errors(tied_llama_dir, tmp_path):
    rows = critique_rows(6)
    rows[3]["critique_rejected"] = "  "
    bad = write_jsonl(tmp_path / "bad.jsonl", rows)
    cfg = load_config(None, [f"output_dir={tmp_path / 'o'}", f"data.train={bad}", f"model.name_or_path={tied_llama_dir}",
                             "critic={}", "train.max_steps=1", "train.progress=false", "data.val_fraction=0"])
    with pytest.raises(DataError, match=r"bad.jsonl:4.*critique_rejected|critique_rejected.*bad.jsonl:4"):
        train(cfg)
    for r in rows:
        r.pop("critique_chosen")
    missing = write_jsonl(tmp_path / "missing.jsonl", rows)
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"train": str(missing)})})
    with pytest.raises(DataError, match="critique_chosen"):
        train(cfg)
    rows = critique_rows(4)
    rows[1]["critique_chosen"] = ["a", "b"]
    listed = write_jsonl(tmp_path / "listed.jsonl", rows)
    cfg_path = tmp_path / "listed.yaml"
    cfg_path.write_text(yaml.safe_dump({**critic_config(tmp_path / "l", tied_llama_dir, listed), "data": {"train": str(listed)}}))
    res = run_cli("train", str(cfg_path))
    said = " ".join((res.stdout + res.stderr).split())  # errors go to stderr; rich wraps long lines
    assert res.returncode == 2 and "listed.jsonl:2" in said and "one critique per response" in said, said
    with pytest.raises(ConfigError, match="metarm"):
        train(load_config(None, [f"output_dir={tmp_path / 'm'}", f"data.train={listed}", "critic={}",
                                 f"model.name_or_path={tied_llama_dir}", f"metarm={{data: {listed}}}"]))


def test_plain_reward_model_refuses_critiques(tmp_path):
    from rewardlab.models.reward_model import RewardModel

    rm = RewardModel.from_backbone("minilm", max_length=32)
    rm.save_pretrained(tmp_path / "plain")
    with pytest.raises(ConfigError, match="Critic-RM models only"):
        load_model(tmp_path / "plain", critiques=2)
    assert isinstance(load_model(tmp_path / "plain"), RewardModel)
    assert CriticConfig().critiques == 1


@pytest.mark.distributed
def test_two_process_joint_training(tied_llama_dir, data_file, tmp_path):
    cfg = write_config(tmp_path, "ddp", tied_llama_dir, data_file, max_steps=4, save_every=2, eval_every=2)
    launcher = REPO / "configs" / "accelerate" / "cpu_ddp2.yaml"
    res = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(launcher),
                          "-m", "rewardlab.cli", "train", str(cfg)], capture_output=True, text=True, env=train_env(), timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["num_processes"] == 2 and summary["pairs_seen"] == 4 * 4 * 2
    val = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines() if '"validation"' in x]
    assert all(r["n"] == 8 for r in val)
    assert "score.weight" in load_file(str(tmp_path / "ddp" / "model" / "model.safetensors"))
