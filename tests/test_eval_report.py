"""The HTML report: headings, tables, embedded PNGs, no external resources, missing parts."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest

from rewardlab.data.lengths import length_diagnostics
from rewardlab.eval import metrics
from rewardlab.eval.report import (
    plot_length_bias,
    plot_model_comparison,
    plot_reward_distributions,
    write_report,
)
from rewardlab.eval.suites import load_suite, score_suite

PNG_SRC = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def _model(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    r_c, r_r = rng.normal(0.5, 1, 200), rng.normal(0, 1, 200)
    len_c, len_r = rng.integers(10, 500, 200), rng.integers(10, 500, 200)
    d = r_c - r_r
    suite = load_suite("shared")
    counts = {"alpacaeval-easy": (70 + seed, 100), "xstest-should-refuse": (50, 60), "hep-go": (100, 164),
              "llmbar-mtbench": (120, 200)}
    return {
        "suite": score_suite(counts, suite),
        "diagnostics": {
            "pairwise_accuracy": metrics.pairwise_accuracy(r_c, r_r),
            "margin": metrics.margin_summary(r_c, r_r),
            "length_bias": {**metrics.length_bias(r_c, r_r, len_c, len_r),
                            "by_set": {"alpacaeval-easy": length_diagnostics(r_c[:100], r_r[:100], len_c[:100], len_r[:100])}},
            "calibration": {"ece": metrics.expected_calibration_error(d),
                            "temperature": metrics.fit_temperature(d),
                            "reliability": metrics.reliability_curve(d)},
            "accuracy_by_quantile": {"value": "|h_c - h_r|",
                                     "bins": metrics.accuracy_by_quantile(r_c, r_r, np.abs(d), 4)},
            "rewards": {"Chat": {"chosen": metrics.reward_summary(r_c), "rejected": metrics.reward_summary(r_r)}},
            "agreement_with_reference": 0.9,
        },
    }


def test_full_report_is_self_contained(tmp_path):
    rng = np.random.default_rng(0)
    r_c, r_r = rng.normal(size=50), rng.normal(size=50)
    figures = {
        "Length bias (model A)": plot_length_bias(r_c, r_r, rng.integers(1, 99, 50), rng.integers(1, 99, 50)),
        "Rewards by category": plot_reward_distributions({"Chat": (r_c, r_r), "Safety": (r_r, r_c)}),
    }
    from_bundle = {"suite": _model(1)["suite"],
                   "diagnostics": metrics.diagnostics(r_c + 1, r_r, distance=np.abs(r_c - r_r), temperature=1.5)}
    results = {"models": {"model A": _model(0), "model <B>": _model(5), "bundle": from_bundle},
               "meta": {"seed": 0, "suite": "shared", "config": {"lr": 1e-3}}}
    path = write_report(results, tmp_path / "out" / "report.html", title="Eval & check", figures=figures)
    page = path.read_text(encoding="utf-8")

    for heading in ("<h2>Summary</h2>", "<h2>Diagnostics</h2>", "<h3>Calibration</h3>", "<h3>Length bias</h3>",
                    "<h3>Accuracy and margins</h3>", "<h3>Model comparison</h3>", "<h3>Reward distributions</h3>",
                    "<h3>Other diagnostics</h3>", "<h2>Figures</h2>", "<h2>Run information</h2>"):
        assert heading in page, heading
    assert page.index("<h2>Summary</h2>") < page.index("<h2>Diagnostics</h2>")
    assert "<table>" in page and "Chat Hard" in page and "120/200" in page
    assert "Eval &amp; check" in page and "model &lt;B&gt;" in page and "<B>" not in page
    assert "No data for Chat Hard, Prior Sets" in page  # the missing-section note
    assert "95% interval (Wilson)" in page and "gap: longer − shorter (points)" in page  # length intervals
    assert "model A, per subset (95% intervals)" in page and "acc. chosen longer (%)" in page
    images = PNG_SRC.findall(page)
    assert len(images) >= 5  # reliability, quantile, comparison + the two figures given
    assert all(base64.b64decode(img).startswith(b"\x89PNG") for img in images)
    assert "http://" not in page and "https://" not in page
    assert not re.search(r'(src|href)="(?!data:)', page) and "<script" not in page and "@import" not in page


def test_missing_optional_parts_are_skipped(tmp_path):
    bare = {"models": {"only": {"suite": score_suite({"hep-go": (1, 2)}, load_suite("shared"))}}}
    page = write_report(bare, tmp_path / "r.html", title="t").read_text(encoding="utf-8")
    assert "<h2>Summary</h2>" in page and "<table>" in page
    assert "<h2>Diagnostics</h2>" not in page and "data:image/png" not in page
    nothing = write_report({"models": {"m": {}}}, tmp_path / "n.html", title="t").read_text(encoding="utf-8")
    assert "No suite scores" in nothing


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="at least one model"):
        write_report({"models": {}}, "unused.html", title="t")
    with pytest.raises(ValueError, match="two or more models"):
        plot_model_comparison({"a": {"Chat": 0.5}})
