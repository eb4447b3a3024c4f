"""benchmarks/order_consistency_full.py, order_consistency_epochs.py, order_ablations.py,
critic_precondition.py: their pure parts."""

from __future__ import annotations

import importlib.util
import sys
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from rewardlab.errors import DataError

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


full = _load("order_consistency_full")
ablations = _load("order_ablations")
epochs = _load("order_consistency_epochs")
critic = _load("critic_precondition")


def _t(regime, beta, low, high, arm="cls_mlp"):
    return {"regime": regime, "beta": beta, "arm": arm, "low": low, "high": high, "mean": (low + high) / 2}


def test_full_design_verdict_follows_fidelity_rule():
    confirm = [_t("dense", 0.5, 0.01, 0.05), _t("dense", 10.0, -0.05, -0.01), _t("dense", -1.0, -0.04, 0.01)]
    refute = [_t("dense", 0.5, -0.05, -0.01), _t("dense", 1.0, -0.03, 0.01), _t("dense", 10.0, -0.05, -0.02)]
    neither = [_t("dense", 0.5, -0.01, 0.02), _t("dense", 10.0, -0.02, 0.01)]
    mixed = [_t("dense", 0.5, 0.01, 0.05), _t("dense", 1.0, -0.05, -0.01, arm="cls_gbdt")]
    assert full.verdict(confirm)["dense"].startswith("confirms")
    assert full.verdict(refute)["dense"].startswith("refutes")
    assert full.verdict(neither)["dense"].startswith("inconclusive")
    assert full.verdict(mixed)["dense"].startswith("inconclusive")
    assert full.verdict(confirm)["sparse"] == "not run"


def test_full_design_summary_pairs_arms_by_seed_and_reports_means(tmp_path):
    import json

    # one regime, one beta, 3 seeds: BT-MLP, classification-MLP and -LightGBM best-of-7 gains by hand
    bon = {"bt_mlp": [0.70, 0.72, 0.74], "cls_mlp": [0.71, 0.74, 0.77], "cls_gbdt": [0.60, 0.61, 0.65]}
    configs = {}
    for name, arms in (("dense_mlp", {"bt_mlp": ("bt", "mlp"), "cls_mlp": ("classification", "mlp")}),
                       ("dense_gbdt", {"cls_gbdt": ("classification", "gbdt")})):
        out = tmp_path / name
        out.mkdir()
        rows = [{"cell_id": f"{arm}{s}", "objective": obj, "head": head, "beta": 0.5, "seed": s,
                 "bon_7": bon[arm][s], "bon_oracle_7": 1.15, "spearman": 0.5, "pairwise_accuracy": 0.7}
                for arm, (obj, head) in arms.items() for s in range(3)]
        (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        configs[name] = {"output_dir": str(out), "grid": {"objective": sorted({o for o, _ in arms.values()}),
                                                          "beta": [0.5], "seed": [0, 1, 2]}}
    args = Namespace(betas=[0.5], seeds=3, quantity=5000, embed_model="smollm2-135m", embed_max_length=512)
    res = full.summarize(tmp_path, configs, args)
    assert res["n_cells"] == 9 and res["cells_planned"] == 9 and res["bon_oracle_7"] == pytest.approx(1.15)
    tests = {(t["regime"], t["arm"]): t for t in res["metrics"]["bon"]}
    d = np.array(bon["cls_mlp"]) - np.array(bon["bt_mlp"])  # 0.01, 0.02, 0.03
    assert tests[("dense", "cls_mlp")]["mean"] == pytest.approx(d.mean())
    assert tests[("dense", "cls_mlp")]["p"] == pytest.approx(stats.ttest_1samp(d, 0).pvalue)
    assert tests[("dense", "cls_gbdt")]["mean"] == pytest.approx(np.mean(np.array(bon["cls_gbdt"]) - bon["bt_mlp"]))
    assert tests[("sparse", "cls_mlp")]["low"] is None  # the sparse studies did not run
    scale = {"train_prompts": 640, "test_prompts": 164, "fixed_scale": 1.155, "global_std": 1.0}
    md_path = tmp_path / "r.md"
    full.write_markdown(res, {"text": "power."}, scale, args, md_path, "python x")
    md = md_path.read_text()
    assert "(the golden's own pick gains 1.1500)" in md
    assert "| dense | 0.5 | 0.7200 (0.0200) | 0.7400 (0.0300) | 0.6200 (0.0265) |" in md
    assert "| sparse | 0.5 | – | – | – |" in md
    assert "- sparse: not run" in md and "Observed median SD of paired best-of-7 differences: 0.0100." in md


def _mlp_rows(acc: dict[str, list[float]], beta: float, err: float = 0.3) -> list[dict]:
    obj = {"bt_mlp": "bt", "cls_mlp": "classification"}
    return [{"objective": obj[arm], "head": "mlp", "beta": beta, "seed": s, "pairwise_accuracy": v, "bon_7": v,
             "spearman": v, "label_error_rate": err + s / 100} for arm, vals in acc.items() for s, v in enumerate(vals)]


def test_epochs_check_pairs_the_change_by_seed_and_follows_its_rule():
    # 30 epochs: classification behind by 0.03-0.05; 300 epochs: the gap closes (0.00-0.01 either way)
    short = _mlp_rows({"bt_mlp": [0.70, 0.72, 0.71, 0.73], "cls_mlp": [0.66, 0.68, 0.67, 0.68]}, 1.0)
    long = _mlp_rows({"bt_mlp": [0.71, 0.72, 0.72, 0.73], "cls_mlp": [0.71, 0.73, 0.71, 0.73]}, 1.0)
    res = epochs.summarize(short, long, [1.0], 4)
    t = res["metrics"]["pairwise_accuracy"][0]
    d_short = np.array([-0.04, -0.04, -0.04, -0.05])
    d_long = np.array([0.00, 0.01, -0.01, 0.00])
    assert t["short"]["mean"] == pytest.approx(d_short.mean()) and t["long"]["mean"] == pytest.approx(d_long.mean())
    assert t["change"]["p"] == pytest.approx(stats.ttest_1samp(d_long - d_short, 0).pvalue)
    assert t["change"]["p_holm"] == pytest.approx(t["change"]["p"])  # one beta: Holm changes nothing
    assert t["means"]["cls_mlp_long"] == pytest.approx(0.72)
    assert res["verdict"].startswith("the deficit is undertraining")
    # the same deficit at 300 epochs: it stands
    assert epochs.summarize(short, [dict(r) for r in short], [1.0], 4)["verdict"].startswith("the deficit stands")
    # the same seed and beta drawn on other pairs (another label error rate) is refused, naming the record
    other = _mlp_rows({"bt_mlp": [0.7] * 4, "cls_mlp": [0.7] * 4}, 1.0, err=0.2)
    with pytest.raises(DataError, match="r.jsonl.*label_error_rate"):
        epochs.summarize(short, other, [1.0], 4, source="r.jsonl")
    md = epochs.markdown({**res, "power": {"text": "power."}}, Namespace(epochs=300, betas=[1.0]), "python x")
    assert "| 1 | 4 | 0.7150 | 0.6725 | 0.7200 | 0.7200 |" in md


def test_golden_record_rebuilds_the_pool_without_its_text(tmp_path):
    import pyarrow.parquet as pq

    from rewardlab.data import load_preferences
    from rewardlab.study.golden import pool_from_table

    if not all((full.DATA / f).is_file() for f in full.POOL_DATA):
        pytest.skip("needs ../shared/data")
    pool = pool_from_table(load_preferences([str(full.DATA / f) for f in full.POOL_DATA]), min_responses=3)
    pool = pool.select(np.flatnonzero(pool.prompt_id < 5))
    pool = pool.with_golden(np.arange(len(pool)) / 7.0, {"golden": "reward_model", "golden_model": "m"})
    path = tmp_path / "golden.parquet"
    full.record_golden(pool, path)
    assert pq.read_table(path).column_names == ["golden"]  # no prompt or response text in the record
    back = full.pool_from_record(path, Namespace(pool_prompts=5))
    assert back.response == pool.response and back.prompt == pool.prompt and back.info == pool.info
    assert np.array_equal(back.golden, pool.golden) and np.array_equal(back.prompt_id, pool.prompt_id)
    with pytest.raises(DataError) as e:  # other items than the recorded ones: refused, the record named
        full.pool_from_record(path, Namespace(pool_prompts=4))
    assert str(path) in str(e.value) and "items_sha256" in str(e.value)


def test_judge_accuracy_counts_by_hand():
    chosen = [[7, 8], [5, None], [None, None], [3, 3], [9, 1]]
    rejected = [[6, 6], [5, 5], [4, 4], [8, 8], [5, 5]]
    # pair 0: 7.5 > 6 right; 1: 5 = 5 tie; 2: chosen unscored; 3: 3 < 8 wrong; 4: 5 = 5 tie
    res = critic.judge_accuracy(chosen, rejected)
    assert (res["right"], res["tied"], res["unscored"], res["wrong"]) == (1, 2, 1, 1)
    assert res["half_tie"]["value"] == pytest.approx((1 + 0.5 + 0.5 + 0 + 0.5) / 5)
    assert res["strict"]["estimate"] == pytest.approx(1 / 5) and res["strict"]["n"] == 5


def test_power_thresholds_match_the_binomial():
    p = critic.binomial_power_threshold(100)
    k_crit = int(stats.binom.ppf(0.95, 100, 0.5)) + 1
    assert stats.binom.sf(k_crit - 1, 100, p) >= 0.8 > stats.binom.sf(k_crit - 1, 100, p - 0.002)
    assert 0.6 < p < 0.66
    assert critic.mcnemar_detectable(100, 0.3) > critic.mcnemar_detectable(1000, 0.3)


def test_precondition_decision_reads_mcnemar_p_value():
    from rewardlab.eval.stats import mcnemar_exact

    heads = {"critique": {"p_vs_chance_one_sided": 0.01, "accuracy_half_tie": 0.6},
             "response": {"p_vs_chance_one_sided": 0.01, "accuracy_half_tie": 0.6},
             "both": {"p_vs_chance_one_sided": 0.001, "accuracy_half_tie": 0.7}}
    both = [1] * 30 + [0] * 10
    resp = [0] * 15 + [1] * 15 + [0] * 10  # both right where response is wrong on 15 pairs, never the reverse
    m = mcnemar_exact([b == 1 for b in both], [r == 1 for r in resp])
    assert m["p_value"] < 0.05
    assert critic.decision({"cv_heads": heads, "both_vs_response_mcnemar": m}).startswith("testable")
    weak = {**heads, "critique": {**heads["critique"], "p_vs_chance_one_sided": 0.2}}
    assert critic.decision({"cv_heads": weak, "both_vs_response_mcnemar": m}).startswith("untestable")
    same = mcnemar_exact([r == 1 for r in resp], [r == 1 for r in resp])
    assert critic.decision({"cv_heads": heads, "both_vs_response_mcnemar": same}).startswith("untestable")


def test_precondition_score_counts_and_report_by_hand():
    counts = critic.score_counts([[10, None], [10.0, 3]], [[10, 10], [None, 9.5]])
    assert counts == {"10": 4, "none": 2, "3": 1, "9.5": 1}
    assert list(counts)[0] == "10"  # the most frequent first
    wil = {"estimate": 0.1, "low": 0.05, "high": 0.2}
    judge = {"right": 8, "tied": 80, "unscored": 2, "wrong": 12, "strict": wil,
             "half_tie": {"value": 0.48, "low": 0.44, "high": 0.52}}
    head = {"accuracy_half_tie": 0.559, "strict": wil, "p_vs_chance_one_sided": 0.138}
    res = {"command": "python benchmarks/critic_precondition.py", "critic": "smollm2-135m", "m": 2,
           "max_new_tokens": 128, "n_pairs": 102, "folds": 5, "by_source": {"a": 51, "b": 51},
           "power": {"n_pairs": 102, "judge_accuracy_80pct_power_above": 0.624,
                     "mcnemar_detectable_difference_at_30pct_discordant": 0.157},
           "passes": {"first": {"critiques": 408, "parse_failures": 406, "parse_failure_rate": 406 / 408,
                                "score_counts": {"none": 406, "1": 2}},
                      "followup": {"critiques": 408, "parse_failures": 37, "parse_failure_rate": 37 / 408,
                                   "score_counts": counts}},
           "judge_first_pass": judge, "judge_after_followup": judge,
           "cv_heads": {"critique": head, "response": head, "both": head},
           "both_vs_response_mcnemar": {"b": 25, "c": 18, "p_value": 0.36}, "decision": "untestable offline"}
    md = critic.markdown(res)
    assert "406 (99.5%)" in md and "10: 4, none: 2" in md
    assert "| the critique alone | 0.559 | 0.100 [0.050, 0.200] | 0.138 |" in md
    assert "right only with the critique 25, only without 18, p 0.36" in md
    assert "**Decision by the rule stated before the run: untestable offline.**" in md


def _refused_before_any_work(tmp_path, script: str, *args: str) -> str:
    """Run a benchmark script that must refuse its arguments: exit 2, no traceback, nothing under
    --work; returns stderr's last line."""
    import subprocess

    proc = subprocess.run([sys.executable, str(BENCH / script), "--work", str(tmp_path / "w"), *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert not (tmp_path / "w").exists()  # nothing generated, nothing written
    return proc.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("args", [["--per-source", "0"], ["--m", "0"], ["--folds", "1"]])
def test_precondition_refuses_sizes_before_any_work(tmp_path, args):
    last = _refused_before_any_work(tmp_path, "critic_precondition.py", *args)
    assert last.endswith("must be >= 1, --folds >= 2")


@pytest.mark.parametrize("args, named", [(["--seeds", "1"], "--seeds"), (["--members", "0"], "--members"),
                                         (["--betas", "1", "nan"], "--betas 1 nan")])
def test_full_design_refuses_bad_sizes_before_any_work(tmp_path, args, named):
    last = _refused_before_any_work(tmp_path, "order_consistency_full.py", "--records", str(tmp_path / "r"), *args)
    assert last.startswith(f"order_consistency_full.py: error: {named}:")


@pytest.mark.parametrize("args, named", [(["--epochs", "0"], "--epochs, --workers"), (["--betas", "0"], "--betas 0"),
                                         ([], "/w/pool.parquet")])
def test_epochs_check_refuses_bad_sizes_and_a_missing_design(tmp_path, args, named):
    last = _refused_before_any_work(tmp_path, "order_consistency_epochs.py", *args)
    assert last.startswith("order_consistency_epochs.py: error: ") and named in last


def test_ablation_design_pairs_objectives_on_seeds():
    class A:
        heads, betas, seeds, quantity, pairing = ["mlp"], [1.0], 3, 100, "cross_prompt"

    cells = ablations.design(A)
    assert len(cells) == len(ablations.TRAINED) * 1 * 1 * 3 * 2
    keys = {ablations.cell_key(c) for c in cells}
    assert len(keys) == len(cells)  # every cell has its own resume key
    # the two objectives of a (condition, seed) share everything else: the same simulated pairs
    by = {}
    for c in cells:
        by.setdefault((c["condition"], c["seed"]), []).append(c["objective"])
    assert all(sorted(v) == ["bt", "classification"] for v in by.values())


control = _load("critic_control")


def test_program_critiques_state_the_verdict_with_reliability_q():
    from rewardlab.critic.scores import parse_score
    from rewardlab.data import load_preferences, sample_path

    rows = load_preferences(str(sample_path()), keep_columns=["meta"]).records()
    assert parse_score(control.program_critique(True)) == 8 and parse_score(control.program_critique(False)) == 3
    assert all(c.startswith(control.TAG) for pair in control.critiques_for(rows[:5], 0.8, 0, "train") for c in pair)
    exact = control.critiques_for(rows, 1.0, 0, "train")  # every chosen is right, every rejected wrong
    assert all(c == control.program_critique(True) and r == control.program_critique(False) for c, r in exact)
    flipped = control.critiques_for(rows, 0.0, 0, "train")
    assert all(c == control.program_critique(False) and r == control.program_critique(True) for c, r in flipped)
    noisy = control.critiques_for(rows, 0.8, 0, "train")
    true_share = sum((c == exact[i][0]) + (r == exact[i][1]) for i, (c, r) in enumerate(noisy)) / (2 * len(rows))
    assert stats.binomtest(round(true_share * 2 * len(rows)), 2 * len(rows), 0.8).pvalue > 0.001
    assert noisy != control.critiques_for(rows, 0.8, 0, "test")  # test critiques are drawn apart
    assert noisy == control.critiques_for(rows, 0.8, 0, "train")  # and the draw is stable
    with pytest.raises(ValueError, match="no 'meta'"):
        control.critiques_for([{k: v for k, v in rows[0].items() if k != "meta"}], 0.8, 0, "train")


def test_critique_alone_ranks_by_written_score_with_half_ties():
    t, f = control.program_critique(True), control.program_critique(False)
    assert control.critique_alone([(t, f), (t, t), (f, t), (f, f)]).tolist() == [1.0, 0.5, 0.0, 0.5]


def test_control_split_keeps_prompts_on_one_side():
    train, test = control.split_rows(0.4, tiny=False)
    assert len(train) + len(test) == 805 and 250 < len(test) < 400
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in test}


focal_grpo = _load("focal_grpo")


def _seed(estimate, focal_worst, static_worst):
    return {"difference": {"estimate": estimate}, "focal_worst": focal_worst, "static_worst": static_worst}


def test_focal_grpo_verdict_follows_the_stated_rule():
    ahead = [_seed(0.03, 0.2, 0.3)] * 3
    assert focal_grpo.verdict(ahead, {"low": 0.001, "high": 0.05}) == "reproduced"  # 3/3 on the mean, interval > 0
    assert focal_grpo.verdict(ahead, {"low": -0.01, "high": 0.05}) == "inconclusive"  # interval reaches 0, not < 0.04
    two_of_three = [_seed(0.03, 0.2, 0.3)] * 2 + [_seed(-0.01, 0.2, 0.3)]
    assert focal_grpo.verdict(two_of_three, {"low": 0.001, "high": 0.05}) == "inconclusive"
    worst = [_seed(-0.005, 0.4, 0.3)] * 3  # ahead on the worst criterion in every seed
    assert focal_grpo.verdict(worst, {"low": -0.019, "high": 0.01}) == "reproduced"  # at no loss of mean
    assert focal_grpo.verdict(worst, {"low": -0.021, "high": 0.01}) == "not reproduced in this setting"
    assert focal_grpo.verdict(two_of_three, {"low": -0.03, "high": 0.0399}) == "not reproduced in this setting"
    assert focal_grpo.verdict(two_of_three, {"low": -0.03, "high": 0.04}) == "inconclusive"
    assert focal_grpo.verdict(two_of_three, {"low": -0.03, "high": -0.001}) == "inconclusive"  # worse: 0 outside


def test_focal_grpo_markdown_shows_holm_adjusted_per_seed_p_values():
    from rewardlab.eval.stats import holm

    per_seed = [{"seed": s, "focal_mean": 0.5, "static_mean": 0.45, "focal_worst": 0.2, "static_worst": 0.1,
                 "difference": {"estimate": 0.05, "low": 0.0, "high": 0.1, "p_value": p}}
                for s, p in zip((0, 1, 2), (0.01, 0.04, 0.03))]
    for r, q in zip(per_seed, holm([r["difference"]["p_value"] for r in per_seed])["p_adjusted"]):
        r["difference"]["p_holm"] = q
    assert [r["difference"]["p_holm"] for r in per_seed] == pytest.approx([0.03, 0.06, 0.06])  # by hand: 3p, 2p, 1p
    res = {"n_prompts": {"train": 100, "pilot": 32, "test": 64}, "steps": 60, "completion_tokens": 40, "lr": 5e-6,
           "pilot": {"seed": 100, "uniform_mean": {"static_x1": 0.4}, "best_static": "static_x1"}, "per_seed": per_seed,
           "pooled_mean_difference": {"estimate": 0.05, "low": 0.01, "high": 0.09}, "seeds_focal_ahead_on_mean": 3,
           "seeds_focal_ahead_on_worst": 3, "verdict": "reproduced"}
    md = focal_grpo.markdown(res, "cmd")
    assert "| 0 | 0.500 | 0.450 | +0.050 [+0.000, +0.100] | 0.01 (0.03) |" in md
    assert "| 1 | 0.500 | 0.450 | +0.050 [+0.000, +0.100] | 0.04 (0.06) |" in md


strength = _load("fidelity_strength")
metarm = _load("fidelity_metarm")


def _det(weak_precision, weak_low, weak_high, strong_precision, base=0.2):
    return {"weakest_10": {"precision": weak_precision, "interval": {"low": weak_low, "high": weak_high}},
            "strongest_10": {"precision": strong_precision}, "weakest_20": {"base_rate": base}}


def _arms(**pooled):
    return {"arms": {arm: {"pooled_difference": d} for arm, d in pooled.items()}}


def test_strength_verdicts_follow_the_stated_rule():
    lost = _arms(clean={"estimate": 0.04, "low": 0.01, "high": 0.07})  # the swaps cost 4 points
    rec = _arms(flip20={"estimate": 0.02, "low": 0.001, "high": 0.04, "reject": True},  # half the gap, significant
                margin={"estimate": 0.019, "low": 0.001, "high": 0.04, "reject": True})  # just under half
    v = strength.verdicts(_det(0.55, 0.46, 0.63, 0.04), rec, lost)
    assert v["detection"] == "reproduced"
    assert v["flip20"].startswith("reproduced") and v["margin"] == "not reproduced in this setting"
    assert strength.verdicts(_det(0.55, 0.46, 0.63, 0.06), rec, lost)["detection"].startswith("partly")
    assert strength.verdicts(_det(0.28, 0.21, 0.36, 0.1), rec, lost)["detection"].startswith("partly")
    assert strength.verdicts(_det(0.25, 0.18, 0.33, 0.1), rec, lost)["detection"].startswith("refuted")
    no_cost = _arms(clean={"estimate": 0.01, "low": -0.01, "high": 0.03})
    assert strength.verdicts(_det(0.25, 0.18, 0.33, 0.1), rec, no_cost)["flip20"].startswith("untestable")
    unsure = _arms(flip20={"estimate": 0.03, "low": -0.001, "high": 0.06, "reject": False})
    assert strength.verdicts(_det(0.25, 0.18, 0.33, 0.1), unsure, lost)["flip20"] == "not reproduced in this setting"


def test_metarm_verdict_follows_the_stated_rule():
    learned = {"low": 0.55, "high": 0.7}
    assert metarm.metarm_verdict({"low": 0.49, "high": 0.6}, {"low": 0.01, "high": 0.05}, 0.8).startswith(
        "inconclusive: BT learned nothing")
    assert metarm.metarm_verdict(learned, {"low": 0.001, "high": 0.05}, 0.97) == "reproduced"
    assert metarm.metarm_verdict(learned, {"low": -0.01, "high": 0.01}, 0.95).startswith("inconclusive (ceiling")
    assert metarm.metarm_verdict(learned, {"low": -0.01, "high": 0.019}, 0.9) == "not reproduced in this setting"
    assert metarm.metarm_verdict(learned, {"low": -0.01, "high": 0.02}, 0.9) == "inconclusive (interval too wide)"


def test_metarm_length_diagnostic_by_hand():
    """Five pairs (lengths chosen/rejected): 3>1, 1>3, 2>4, 5>2, 2=2 (equal: no longer side).
    Two seeds; BT always picks the chosen side, MetaRM always the longer one (chosen on ties)."""
    table = {"prompt": ["p1", "p2", "p3", "p4", "p5"], "chosen": ["aaa", "a", "aa", "aaaaa", "aa"],
             "rejected": ["b", "bbb", "bbbb", "bb", "bb"]}
    bt = np.array([1.0, 1.0, 1.0, 1.0, 1.0])
    longer = np.array([1.0, -1.0, -1.0, 1.0, 1.0])
    out = metarm.length_diagnostic({"bt": {0: bt, 1: bt}, "metarm": {0: longer, 1: longer}}, table, [0, 1])
    assert (out["n"], out["n_unequal"], out["n_chosen_shorter"]) == (5, 4, 2)
    # BT prefers the longer side on pairs 1 and 4 of the four unequal ones; MetaRM on all four
    assert out["prefers_longer"]["bt"]["estimate"] == 0.5
    assert out["prefers_longer"]["metarm"]["estimate"] == 1.0
    assert out["prefers_longer_difference"]["metarm"]["estimate"] == 0.5
    # where the shorter response was preferred (pairs 2 and 3): BT right on both, MetaRM on neither
    assert out["acc_chosen_shorter"]["bt"]["estimate"] == 1.0
    assert out["acc_chosen_shorter"]["metarm"]["estimate"] == 0.0
    assert out["acc_all"]["metarm"]["estimate"] == 3 / 5
    # the length rule: longer wins on pairs 1 and 4, the tie counts half: (1 + 0 + 0 + 1 + 0.5) / 5
    assert out["length_rule"]["estimate"] == 2.5 / 5


robust = _load("robust_length")


def test_robust_length_goal_halves_the_gap_at_a_cost_of_at_most_one_point():
    assert robust.goal({"estimate": 0.3, "high": 0.5}, {"estimate": 0.0, "low": -0.01}) == "shown"
    assert robust.goal({"estimate": 0.3, "high": 0.51}, {"estimate": 0.0, "low": -0.01}) == "met (point estimates)"
    assert robust.goal({"estimate": 0.3, "high": None}, {"estimate": 0.0, "low": -0.01}) == "met (point estimates)"
    assert robust.goal({"estimate": 0.3, "high": 0.4}, {"estimate": -0.005, "low": -0.02}) == "met (point estimates)"
    assert robust.goal({"estimate": 0.3, "high": 0.4}, {"estimate": -0.011, "low": -0.03}) == "not met"  # costs > 1 point
    assert robust.goal({"estimate": 0.51, "high": 0.6}, {"estimate": 0.01, "low": 0.0}) == "not met"  # gap not halved


def test_critic_control_verdicts_follow_the_stated_rules():
    pos = {"estimate": 0.05, "low": 0.01, "high": 0.09, "reject": True}
    neg = {"estimate": -0.03, "low": -0.06, "high": -0.001}
    add = {"estimate": 0.02, "low": 0.001, "high": 0.04}
    v = control.control_verdicts(pos, neg, add)
    assert v == {"positive_control": "passes", "adds_to_critique": True, "negative_control": "cost accuracy"}
    assert control.control_verdicts({**pos, "reject": False}, neg, add)["positive_control"] == "does not pass"
    assert control.control_verdicts({**pos, "low": -0.001}, neg, add)["positive_control"] == "does not pass"
    assert control.control_verdicts(pos, {**neg, "high": 0.01}, add)["negative_control"] == "cost nothing detectable"
    assert control.control_verdicts(pos, {**neg, "low": 0.001, "high": 0.02}, add)["negative_control"].startswith("gain")
    assert control.control_verdicts(pos, neg, {**add, "low": 0.0})["adds_to_critique"] is False
    assert control.control_verdicts(pos, {}, add) == {}  # a partial run states no verdict


def test_robust_length_within_gap_pools_per_dataset_gaps_with_mantel_haenszel_weights():
    # set a: 2 longer (1 right), 2 shorter (0 right): gap 0.5, w = 2*2/4 = 1
    # set b: 3 longer (3 right), 1 shorter (1 right): gap 0.0, w = 3*1/4 = 0.75; a tie is ignored
    # set c: longer only: left out
    correct = np.array([1, 0, 0, 0, 1, 1, 1, 1, 0, 1, 1], float)
    side = np.array([1, 1, -1, -1, 1, 1, 1, -1, 0, 1, 1])
    datasets = np.array(["a"] * 4 + ["b"] * 5 + ["c"] * 2)
    assert robust.within_gap(correct, side, datasets) == pytest.approx((1 * 0.5 + 0.75 * 0.0) / 1.75)
    # a length-blind reward on mixed sets: no gap within either set, a large pooled one
    correct = np.array([1] * 9 + [1] * 1 + [0] * 5 + [0] * 5)  # easy set all right, hard set all wrong
    side = np.array([1] * 9 + [-1] * 1 + [1] * 1 + [-1] * 4 + [1] * 1 + [-1] * 4)
    datasets = np.array(["easy"] * 10 + ["hard"] * 10)
    assert robust.within_gap(correct, side, datasets) == 0.0
    assert robust.gap_of(correct, side, np.arange(20)) > 0.5
    assert np.isnan(robust.within_gap(correct, side, datasets, rows=np.arange(9)))  # no shorter pair left


def test_robust_length_check_records_names_a_record_scored_on_other_pairs():
    import types

    import pytest

    args = types.SimpleNamespace(cells="cells")
    files = {"test": "test.jsonl"}
    robust.check_records({"bt_s0": {"test_sha256": "abc"}}, "abc", files, args)  # same pairs: passes
    with pytest.raises(DataError, match=r"cells/odin_s1\.json: field 'test_sha256': scored on other held-out pairs"):
        robust.check_records({"bt_s0": {"test_sha256": "abc"}, "odin_s1": {"test_sha256": "xyz"}}, "abc", files, args)
    with pytest.raises(DataError, match=r"cells/bt_s0\.json: field 'test_sha256'"):
        robust.check_records({"bt_s0": {}}, "abc", files, args)  # a record without the fingerprint
