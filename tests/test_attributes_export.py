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
import torch

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
