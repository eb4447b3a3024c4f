"""Multi-attribute exports (issue 24): num_labels = K with the attribute names, the gating beside
it; plain transformers (a subprocess without rewardlab) gives the same attribute scores and, with
the documented lines, the same gated reward, within 1e-5; rewardlab's own loading agrees."""

from __future__ import annotations

import json

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rewardlab.embed.extract import EmbedSpec, embed_texts
from rewardlab.heads.attributes import fit_gating
from rewardlab.models.attributes import export_attribute_model
from rewardlab.models.reward_model import RewardModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NAMES = ["helpful", "correct", "length"]
PROMPTS = ["What is 2 + 2?", "Name a colour.", "Capital of France?"]
RESPONSES = ["4", "Blue, like the sky.", "Paris is the capital."]

# The lines docs/attributes.md gives, run where rewardlab cannot be imported.
PLAIN = textwrap.dedent('''
    import json, sys, torch
    sys.modules["rewardlab"] = None  # any import of rewardlab fails
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    d, prompts, responses = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
    model = AutoModelForSequenceClassification.from_pretrained(d).eval()
    tok = AutoTokenizer.from_pretrained(d)
    with torch.no_grad():
        scores = model(**tok(prompts, responses, padding=True, return_tensors="pt")).logits      # [N, K]
        h = model.base_model(**tok(prompts, padding=True, return_tensors="pt")).pooler_output  # prompt alone
        g, v = load_file(f"{d}/gating.safetensors"), json.load(open(f"{d}/gating.json"))["verbosity_index"]
        x = h
        n = sum(k.endswith(".weight") for k in g)
        for i in range(n):
            x = x @ g[f"layer.{i}.weight"].T + g[f"layer.{i}.bias"]
            x = x.relu() if i < n - 1 else x
        w = torch.softmax(x.masked_fill(g["mask"] == 0, -torch.inf), -1)
        reward = g["scale"] * (w * (scores - scores[:, v:v + 1] * g["decorrelation"])).sum(-1)
    print(json.dumps({"labels": model.config.id2label, "scores": scores.tolist(), "reward": reward.tolist()}))
''')


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    rng = np.random.default_rng(0)
    d = 384
    coef, intercept = rng.normal(scale=0.1, size=(3, d)), rng.normal(size=3)
    P = rng.normal(size=(64, d))
    Ac, Ar = rng.normal(size=(64, 3)), rng.normal(size=(64, 3))
    gate = fit_gating(P, Ac, Ar, NAMES, hidden=(8,), temperature=0.5, decorrelate="length", epochs=20)
    out = tmp_path_factory.mktemp("attr") / "model"
    export_attribute_model("minilm", NAMES, coef, intercept, out, gating=gate.tensors(), temperature=0.5,
                           verbosity="length", max_length=64)
    return out, coef, intercept, gate


def test_plain_transformers_reads_attribute_scores_and_gated_reward(export):
    out, coef, intercept, gate = export
    proc = subprocess.run([sys.executable, "-c", PLAIN, str(out), json.dumps(PROMPTS), json.dumps(RESPONSES)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    plain = json.loads(proc.stdout.strip().splitlines()[-1])
    assert plain["labels"] == {"0": "helpful", "1": "correct", "2": "length"}
    # stage 1 on rewardlab's embeddings (the fast path's vectors) gives the same scores
    spec = EmbedSpec(model="minilm", max_length=64)
    X = embed_texts(PROMPTS, RESPONSES, spec, use_cache=False).embeddings
    np.testing.assert_allclose(plain["scores"], X @ coef.T + intercept, atol=1e-5)
    # and the gated reward on the prompt vectors equals the fitted gating's
    Pv = embed_texts(PROMPTS, [""] * 3, spec, use_cache=False).embeddings
    expected = gate.reward(Pv, np.asarray(plain["scores"]))
    np.testing.assert_allclose(plain["reward"], expected, atol=1e-5)
    # rewardlab's own loading: K columns, and the same gated scalar
    rm = RewardModel.from_pretrained(out)
    assert rm.attribute_names == NAMES and rm.num_labels == 3
    scores = rm.score(PROMPTS, RESPONSES)
    assert scores.shape == (3, 3)
    np.testing.assert_allclose(scores, plain["scores"], atol=1e-5)
    np.testing.assert_allclose(rm.gated(PROMPTS, scores), plain["reward"], atol=1e-5)


def test_export_refuses_mismatched_shapes(tmp_path):
    from rewardlab.errors import ConfigError

    with pytest.raises(ConfigError, match="columns"):
        export_attribute_model("minilm", NAMES, np.zeros((3, 10)), np.zeros(3), tmp_path / "m")
    with pytest.raises(ConfigError, match="distinct names"):
        export_attribute_model("minilm", ["a", "a", "b"], np.zeros((3, 384)), np.zeros(3), tmp_path / "m")


def test_score_writes_one_column_per_attribute_and_the_gated_reward(export, tmp_path):
    from cli_runs import invoke

    out, _, _, _ = export
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": p, "chosen": r, "rejected": r + " Maybe."}) + "\n"
                            for p, r in zip(PROMPTS, RESPONSES)))
    result = invoke("score", "--model", str(out), "--data", str(data), "--out", str(tmp_path / "s.jsonl"))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    rm = RewardModel.from_pretrained(out)
    chosen = rm.score(PROMPTS, RESPONSES)
    for k, name in enumerate(NAMES):
        np.testing.assert_allclose([r[f"reward_chosen_{name}"] for r in rows], chosen[:, k], atol=1e-5)
        assert all(f"reward_rejected_{name}" in r for r in rows)
    np.testing.assert_allclose([r["reward_chosen"] for r in rows], rm.gated(PROMPTS, chosen), atol=1e-5)


def test_serve_returns_attributes_in_score_and_the_gated_scalar_in_get_reward(export):
    import httpx
    from serving import ThreadServer

    from rewardlab.serve.app import create_app

    out, _, _, _ = export
    rm = RewardModel.from_pretrained(out)
    expected = rm.score(PROMPTS, RESPONSES)
    server = ThreadServer(create_app(rm, max_batch=4, max_wait_ms=5))
    try:
        with httpx.Client(base_url=server.url, timeout=120) as c:
            items = [{"prompt": p, "response": r} for p, r in zip(PROMPTS, RESPONSES)]
            body = c.post("/score", json={"items": items}).json()
            assert body["attribute_names"] == NAMES
            np.testing.assert_allclose(body["attributes"], expected, atol=1e-5)
            np.testing.assert_allclose(body["rewards"], rm.gated(PROMPTS, expected), atol=1e-5)
            # /get_reward: rendered texts; the gating reads the prompts OpenRLHF sends beside them
            queries = [rm.tokenizer.decode(rm.encode(p, r).input_ids, skip_special_tokens=True)
                       for p, r in zip(PROMPTS, RESPONSES)]
            r = c.post("/get_reward", json={"query": queries, "prompts": PROMPTS})
            assert r.status_code == 200, r.text
            got = r.json()
            assert got["attribute_names"] == NAMES and len(got["attributes"]) == 3
            attrs = np.asarray(got["attributes"])
            np.testing.assert_allclose(got["rewards"], rm.gated(PROMPTS, attrs), atol=1e-5)
            missing = c.post("/get_reward", json={"query": queries})
            assert missing.status_code == 422 and missing.json()["error"]["field"] == "prompts"
    finally:
        server.stop()


def test_eval_ranks_a_gated_export_by_its_gated_scalar(export, tmp_path):
    """`rewardlab eval` on a multi-attribute export: pairs ranked by the gated reward (the prompt
    features computed once per distinct prompt give the same numbers as rm.gated), pointwise
    items too; a K-output export without gating is refused before anything is scored."""
    from rewardlab.eval.runner import evaluate

    out, _, _, _ = export
    rm = RewardModel.from_pretrained(out)
    # repeated prompts: the per-distinct-prompt features must land on the right rows
    prompts = PROMPTS + PROMPTS[:2]
    chosen = RESPONSES + ["Four.", "Red."]
    rejected = [r + " Maybe." for r in RESPONSES] + ["Five.", "Green, I think."]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": p, "chosen": c, "rejected": r}) + "\n"
                            for p, c, r in zip(prompts, chosen, rejected)))
    ev = evaluate([out], data=[str(data)], n_boot=200)
    want = rm.gated(prompts, rm.score(prompts, chosen)) > rm.gated(prompts, rm.score(prompts, rejected))
    entry = next(iter(ev.results["models"].values()))
    assert entry["overall"]["accuracy"] == pytest.approx(want.mean())
    # without the gating files the export has no scalar: refused before scoring
    bare = tmp_path / "bare"
    import shutil

    shutil.copytree(out, bare)
    cfg = json.loads((bare / "config.json").read_text())
    cfg["rewardlab"]["attributes"]["gating"] = None
    (bare / "config.json").write_text(json.dumps(cfg))
    from rewardlab.errors import ConfigError

    with pytest.raises(ConfigError, match="without a gating"):
        evaluate([bare], data=[str(data)], n_boot=200)


def test_a_linear_head_on_frozen_embeddings_exports_as_a_plain_reward_model(tmp_path):
    """FittedHead.linear_map folds the head's standardisation and centring into (coef, intercept);
    export_attribute_model(names=None) writes it as a one-reward model whose scores equal the
    head's predictions on the same embeddings."""
    from rewardlab.heads import fit_head

    spec = EmbedSpec(model="minilm", max_length=64)
    prompts = PROMPTS * 4
    responses = [f"{r} (variant {i})" for i in range(4) for r in RESPONSES]
    X = embed_texts(prompts, responses, spec, use_cache=False).embeddings
    chosen = np.arange(0, 12, 2)
    rejected = chosen + 1
    head = fit_head(X, chosen, rejected, objective="bt",
                    config={"kind": "linear", "epochs": 5, "val_fraction": 0.0}, seed=0)
    coef, intercept = head.linear_map()
    np.testing.assert_allclose(X @ coef.T[:, 0] + intercept[0], head.predict(X), atol=1e-4)
    out = export_attribute_model("minilm", None, coef, intercept, tmp_path / "plain", max_length=64)
    rm = RewardModel.from_pretrained(out)
    assert rm.attribute_names is None and rm.num_labels == 1 and rm.gating is None
    np.testing.assert_allclose(rm.score(prompts, responses), head.predict(X), atol=1e-4)
    with pytest.raises(ValueError, match="one linear member"):
        fit_head(X, chosen, rejected, objective="bt", config={"kind": "mlp", "widths": [4], "epochs": 1,
                                                              "val_fraction": 0.0}, seed=0).linear_map()
