"""``rewardlab eval`` beyond pairwise accuracy: item shapes scored once, intervals on every
subset/section/overall, the length rules and their flag, and paired comparisons (``--compare``)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.stats import binomtest
from tiny_models import random_head_minilm
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.data.items import read_items, unique_inputs
from rewardlab.eval import assess
from rewardlab.eval.runner import evaluate
from rewardlab.eval.stats import StratifiedBootstrap
from rewardlab.eval.suites import combine, load_suite
from rewardlab.models.reward_model import RewardModel

WORDS = "apple river stone cloud paper garden window silver music orange yellow bridge candle forest".split()


def _text(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> list[Path]:
    return random_head_minilm(tmp_path_factory.mktemp("truth_models"), {"a": 3, "b": 4}, max_length=48)


@pytest.fixture(scope="module")
def item_files(tmp_path_factory) -> Path:
    """best_of_n.jsonl (one chosen, three rejected; one rejected repeated in a second row),
    rmbench.jsonl (three styles each), points.jsonl (GSM8K layout, some all-correct items),
    pairs.jsonl, and suite.yaml using all of them."""
    root = tmp_path_factory.mktemp("items")
    rng = random.Random(0)
    bon = [{"prompt": f"Q{i}: name a {rng.choice(WORDS)}", "chosen": [_text(rng, 1, 6)],
            "rejected": [_text(rng, 1, 6) for _ in range(3)], "source": "bon"} for i in range(10)]
    rmb = [{"prompt": f"R{i}: describe the {rng.choice(WORDS)}", "chosen": [_text(rng, 1, 3), _text(rng, 4, 8), "# " + _text(rng, 4, 8)],
            "rejected": [_text(rng, 1, 3), _text(rng, 4, 8), "# " + _text(rng, 4, 8)], "source": "rmb"} for i in range(6)]
    pts = []
    for i in range(12):
        correct = [rng.random() < 0.5 for _ in range(4)] if i < 9 else [True] * 4
        pts.append({"prompt": f"P{i}: add {i} and {i + 1}", "responses": [_text(rng, 2, 9) for _ in range(4)],
                    "correct": correct, "source": "gsm"})
    pairs = [{"prompt": f"C{i}: say {rng.choice(WORDS)}", "chosen": _text(rng, 1, 8), "rejected": _text(rng, 1, 8),
              "source": "chat/x"} for i in range(14)]
    _jsonl(root / "best_of_n.jsonl", bon)
    _jsonl(root / "rmbench.jsonl", rmb)
    _jsonl(root / "points.jsonl", pts)
    _jsonl(root / "pairs.jsonl", pairs)
    suite = {"name": "truth", "extra_sections": ["Best-of-N"], "subsets": [
        {"name": "chat", "section": "Chat", "data": "pairs.jsonl"},
        {"name": "bon", "section": "Best-of-N", "data": "best_of_n.jsonl", "kind": "best_of_n"},
        {"name": "rmb", "section": "Chat Hard", "data": "rmbench.jsonl", "kind": "rm_bench"},
        {"name": "gsm", "section": "Best-of-N", "data": "points.jsonl", "kind": "pointwise"},
    ]}
    (root / "suite.yaml").write_text(yaml.safe_dump(suite), encoding="utf-8")
    return root


def _rewards(model_dir: Path, spec: Path) -> list[np.ndarray]:
    """Each item's rewards computed directly with the model (not through the runner)."""
    items, _ = read_items(spec)
    rm = RewardModel.from_pretrained(model_dir)
    return items, [rm.score([it.prompt] * len(it.responses), list(it.responses)) for it in items]


def test_item_kinds_scored_once_and_recomputed_by_hand(models, item_files):
    ev = evaluate([models[0]], suite=item_files / "suite.yaml", data_root=item_files, n_boot=300)
    subsets = ev.results["models"]["a/model"]["suite"]["subsets"]
    items, rewards = _rewards(models[0], item_files / "best_of_n.jsonl")
    by_hand = np.mean([float(r[0] > r[1:].max()) for r in rewards])  # chosen is index 0, strictly above all
    assert subsets["bon"]["accuracy"] == pytest.approx(by_hand, abs=1e-9)
    items, rewards = _rewards(models[0], item_files / "rmbench.jsonl")
    cells = np.asarray([[[float(r[it.chosen_idx[i]] > r[it.rejected_idx[j]]) for j in range(3)] for i in range(3)]
                        for it, r in zip(items, rewards)])
    assert subsets["rmb"]["details"]["hard"] == pytest.approx(cells[:, [0, 0, 1], [1, 2, 2]].mean(), abs=1e-6)
    assert subsets["rmb"]["details"]["easy"] == pytest.approx(cells[:, [1, 2, 2], [0, 0, 1]].mean(), abs=1e-6)
    assert subsets["rmb"]["accuracy"] == pytest.approx(cells.mean(), abs=1e-6)
    items, rewards = _rewards(models[0], item_files / "points.jsonl")
    mixed = [(it, r) for it, r in zip(items, rewards) if 0 < sum(it.correct) < len(it.correct)]
    picked = [it.correct[int(np.argmax(r))] for it, r in mixed]
    assert subsets["gsm"]["n"] == len(mixed) and 0 < len(mixed) <= 9  # the 3 all-correct items are no units
    assert subsets["gsm"]["accuracy"] == pytest.approx(np.mean(picked), abs=1e-9)
    assert subsets["gsm"]["rules"]["chance"]["score"] == pytest.approx(np.mean([np.mean(it.correct) for it, _ in mixed]))
    cost = ev.results["models"]["a/model"]["item_scoring"]
    all_items = [it for f in ("best_of_n", "rmbench", "points") for it in read_items(item_files / f"{f}.jsonl")[0]]
    assert cost["distinct_responses"] == len(unique_inputs(all_items)[0]) and cost["items"] == 28


def test_every_subset_section_and_overall_has_an_interval(models, item_files):
    ev = evaluate([models[0]], suite=item_files / "suite.yaml", data_root=item_files, n_boot=300)
    s = ev.results["models"]["a/model"]["suite"]
    for name, sub in s["subsets"].items():
        assert sub["interval"]["low"] <= sub["accuracy"] <= sub["interval"]["high"], name
        assert set(sub["rules"]) == {"prefer_longer", "prefer_shorter", "chance"}
    for name, sec in s["sections"].items():
        assert sec["interval"]["low"] <= sec["score"] <= sec["interval"]["high"], name
    assert s["overall_interval"]["low"] <= s["overall"] <= s["overall_interval"]["high"]
    assert s["excluded_sections"] == ["Best-of-N"]  # scored, outside the RewardBench v1 overall
    assert s["overall"] == pytest.approx((2 * s["sections"]["Chat"]["score"] + 2 * s["sections"]["Chat Hard"]["score"]) / 4)


def test_compare_cli_end_to_end(models, item_files, tmp_path):
    out = tmp_path / "cmp"
    result = CliRunner().invoke(app, ["eval", "--compare", str(models[0]), str(models[1]), "--suite",
                                      str(item_files / "suite.yaml"), "--data-root", str(item_files),
                                      "--out", str(out), "--n-boot", "300"])
    assert result.exit_code == 0, result.output
    assert "a/model − b/model" in result.output and "significant after Holm" in result.output
    res = json.loads((out / "results.json").read_text())
    (cmp,) = res["comparisons"]
    assert cmp["models"] == ["a/model", "b/model"]
    rows = {r["subset"]: r for r in cmp["subsets"]}
    assert set(rows) == {"chat", "bon", "rmb", "gsm"}
    chat = rows["chat"]  # 0/1 items: exact McNemar on the discordant pairs, as scipy's binomial test
    b, c = chat["discordant"]
    expected = 1.0 if b + c == 0 else binomtest(b, b + c, 0.5).pvalue
    assert chat["test"] == "mcnemar_exact" and chat["p_value"] == pytest.approx(expected)
    assert rows["rmb"]["test"] == "paired_bootstrap"  # RM-Bench items score ninths: no McNemar
    ps = sorted(r["p_value"] for r in cmp["subsets"])
    holm = [min(1.0, max((4 - k) * ps[k] for k in range(j + 1))) for j in range(4)]
    assert sorted(r["p_holm"] for r in cmp["subsets"]) == pytest.approx(holm)
    assert cmp["overall"]["low"] <= cmp["overall"]["difference"] <= cmp["overall"]["high"]
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Paired comparisons" in page and "Length rules" in page


def test_compare_and_model_are_exclusive(models, item_files):
    result = CliRunner().invoke(app, ["eval", "--compare", str(models[0]), str(models[1]), "--model",
                                      str(models[0]), "--data", str(item_files / "pairs.jsonl")])
    assert result.exit_code == 2 and "replaces --model" in result.output
    result = CliRunner().invoke(app, ["eval", "--model", str(models[0])])
    assert result.exit_code == 2 and "nothing to evaluate on" in result.output


def test_data_mode_reads_item_files_and_skips_bad_rows(models, item_files, tmp_path):
    bad = _jsonl(tmp_path / "bad.jsonl", [json.loads(x) for x in (item_files / "best_of_n.jsonl").read_text().splitlines()]
                 + [{"prompt": "q", "chosen": ["a"], "rejected": []}])
    result = CliRunner().invoke(app, ["eval", "--model", str(models[0]), "--data", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "bad.jsonl:11" in result.output and "rejected" in result.output
    result = CliRunner().invoke(app, ["eval", "--model", str(models[0]), "--data", str(bad), "--skip-bad-rows",
                                      "--out", str(tmp_path / "o"), "--n-boot", "200"])
    assert result.exit_code == 0, result.output
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert res["data"]["bad"]["load"]["n_read"] == 11 and sum(res["data"]["bad"]["load"]["skipped"].values()) == 1
    assert res["models"]["a/model"]["datasets"]["bad"]["kind"] == "best_of_n"
    assert "skipped 1 bad row" in result.output


def test_length_rule_verdicts():
    rules_beat = {"prefer_longer": np.ones(20), "prefer_shorter": np.zeros(20), "chance": np.full(20, 0.5)}
    model = np.r_[np.ones(15), np.zeros(5)]
    blocks = assess.set_blocks(model, ["s"] * 20, list(range(20)), rules_beat, n_boot=300)
    assert blocks["s"]["length_rule"] == {"rule": "prefer_longer", "score": 1.0, "verdict": "beats"}
    rules_close = {"prefer_longer": np.r_[np.ones(14), np.zeros(6)], "prefer_shorter": np.zeros(20), "chance": np.full(20, 0.5)}
    assert assess.set_blocks(model, ["s"] * 20, list(range(20)), rules_close, n_boot=300)["s"]["length_rule"]["verdict"] == "matches"
    far = {"prefer_longer": np.zeros(200), "prefer_shorter": np.zeros(200), "chance": np.full(200, 0.5)}
    assert assess.set_blocks(np.ones(200), ["s"] * 200, list(range(200)), far, n_boot=300)["s"]["length_rule"]["verdict"] is None


def test_stratified_bootstrap_keeps_clusters_whole_and_applies_the_suite_formula(item_files):
    strata = ["a"] * 6 + ["b"] * 4
    clusters = ["p1", "p1", "p1", "p2", "p2", "p2", "q1", "q2", "q3", "q4"]
    values = np.asarray([1, 1, 1, 0, 0, 0, 1, 0, 1, 0], dtype=float)
    means = StratifiedBootstrap(strata, clusters, n_boot=400, seed=1).means(values)
    assert set(np.unique(means["a"])) <= {0.0, 0.5, 1.0}  # clusters of 3 identical values move together
    assert means["b"].shape == (400,) and set(np.round(means["b"] * 4)) <= {0, 1, 2, 3, 4}
    suite = load_suite(item_files / "suite.yaml", data_root=item_files)
    ns = {"chat": 10, "bon": 5, "rmb": 6, "gsm": 9}
    point = combine({"chat": 0.5, "bon": 0.2, "rmb": 0.4, "gsm": 0.6}, ns, suite)
    arrays = combine({"chat": np.array([0.5, 0.7]), "bon": np.array([0.2, 0.2]), "rmb": np.array([0.4, 0.0]),
                      "gsm": np.array([0.6, 0.6])}, ns, suite)
    assert arrays["overall"][0] == pytest.approx(point["overall"]) and arrays["overall"][1] == pytest.approx(0.35)
    assert point["sections"]["Best-of-N"] == pytest.approx((5 * 0.2 + 9 * 0.6) / 14) and point["excluded"] == ["Best-of-N"]


def test_builtin_suites_declare_their_item_sections():
    shared = load_suite("shared")
    (gsm,) = [s for s in shared.subsets if s.kind != "pairs"]
    assert (gsm.name, gsm.kind, gsm.section) == ("gsm8k-best-of-4", "pointwise", "Best-of-N")
    rb2 = load_suite("rewardbench2")
    assert rb2.scoring == "mean" and {s.kind for s in rb2.subsets} == {"best_of_n", "ties"}
    assert [s.name for s in rb2.subsets] == ["Factuality", "Precise IF", "Math", "Safety", "Focus", "Ties"]
