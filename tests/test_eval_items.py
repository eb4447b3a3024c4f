"""Item-shape metrics (rewardlab.eval.items) on hand-computed fixtures."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rewardlab.eval.items import (
    best_of_k_selection,
    best_of_n_accuracy,
    char_lengths,
    length_baselines_best_of_n,
    length_baselines_pairs,
    pair_accuracy,
    rm_bench_accuracy,
    ties_score,
)
from rewardlab.eval.stats import bootstrap_interval


# ----------------------------------------------------------------------------- pairs
def test_pair_accuracy_tie_policies():
    r_c, r_r = [2.0, 1.0, 0.5, np.nan], [1.0, 1.0, 0.7, 0.0]
    wrong = pair_accuracy(r_c, r_r)
    assert wrong["per_item"].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert (wrong["accuracy"], wrong["n"], wrong["tie"]) == (0.25, 4, "wrong")
    half = pair_accuracy(r_c, r_r, tie="half")
    assert half["per_item"].tolist() == [1.0, 0.5, 0.0, 0.0] and half["accuracy"] == 0.375


@pytest.mark.parametrize("r_c,r_r,tie", [([1.0], [1.0, 2.0], "wrong"), ([], [], "wrong"), ([1.0], [0.0], "split")])
def test_pair_accuracy_rejects_bad_input(r_c, r_r, tie):
    with pytest.raises(ValueError):
        pair_accuracy(r_c, r_r, tie)


# ----------------------------------------------------------------------------- best-of-N
def test_best_of_n_with_a_tie_at_the_top():
    chosen = [2.0, 1.0, 3.0, 0.0]
    rejected = [[1.0, 2.0, 0.0], [0.5, 0.9, 0.2], [3.0, 3.0, 1.0], [1.0]]
    out = best_of_n_accuracy(chosen, rejected)
    # item 0 ties the best rejected (wrong), item 1 is above all, item 2 ties two, item 3 is below
    assert out["per_item"].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert out["accuracy"] == 0.25 and out["tie"] == "wrong"
    assert out["chance_per_item"].tolist() == [0.25, 0.25, 0.25, 0.5]
    split = best_of_n_accuracy(chosen, rejected, tie="split")
    assert split["per_item"].tolist() == pytest.approx([1 / 2, 1.0, 1 / 3, 0.0])


def test_best_of_n_needs_every_rejected_below_not_just_one():
    # above the first and the mean of the rejected, below the last: wrong
    out = best_of_n_accuracy(np.array([1.0, 5.0]), np.array([[0.0, 0.0, 1.5], [4.9, 4.8, 4.7]]))
    assert out["per_item"].tolist() == [0.0, 1.0]


def test_best_of_n_nan_is_wrong():
    out = best_of_n_accuracy([np.nan, 2.0], [[1.0], [np.nan, 1.0]])
    assert out["per_item"].tolist() == [0.0, 0.0]


@pytest.mark.parametrize(
    "chosen,rejected,tie",
    [([1.0, 2.0], [[0.0]], "wrong"), ([1.0], [[]], "wrong"), ([1.0], [[0.0]], "half"), ([1.0], [[[0.0]]], "wrong")],
)
def test_best_of_n_rejects_bad_input(chosen, rejected, tie):
    with pytest.raises(ValueError):
        best_of_n_accuracy(chosen, rejected, tie)


# ----------------------------------------------------------------------------- Ties
TIES_IDS = ["ref:1", "tied:1", "ref:2", "tied:2", "ref:3", "tied:3"]
TIES_SCORES = [
    [2.0, 1.0, 0.5],  # ref 1: gap 2.0 - 1.0 = 1.0, accurate
    [3.0, 2.9, 1.0, 2.0],  # tied 1: spread 0.1, gap 2.9 - 2.0 = 0.9, accurate
    [1.0, 1.5, 0.0],  # ref 2: gap 1.0 - 1.5 = -0.5, wrong
    [2.0, 1.0, 0.5],  # tied 2: spread 1.0, gap 0.5, accurate
    [0.7, 0.2],  # ref 3: gap 0.5, accurate
    [1.0, 1.0, 0.4],  # tied 3: spread 0.0, gap 0.6, accurate
]
TIES_NUM_CORRECT = [1, 2, 1, 2, 1, 2]


def test_ties_score_on_three_prompts_by_hand():
    out = ties_score(TIES_IDS, TIES_SCORES, TIES_NUM_CORRECT)
    ref_acc, tied_acc = 2 / 3, 1.0
    # gap_tied > spread: 0.9 > 0.1 yes, 0.5 > 1.0 no, 0.6 > 0.0 yes
    preferred = 2 / 3
    # min(gap_ref, gap_tied) > spread: 0.9 > 0.1 yes, -0.5 > 1.0 no, 0.5 > 0.0 yes
    preferred_hard = 2 / 3
    # tanh(min gap / spread - 1): tanh(0.9/0.1 - 1), tanh(-0.5/1 - 1), 0.5/0 = inf -> tanh = 1
    margin = (math.tanh(8.0) + math.tanh(-1.5) + 1.0) / 3
    score = 0.3 * tied_acc + 0.3 * ref_acc + 0.2 * preferred + 0.2 * preferred_hard + 0.01 * margin
    assert out["ref_accuracy"] == pytest.approx(ref_acc)
    assert out["tied_accuracy"] == pytest.approx(tied_acc)
    assert out["correctness_preferred"] == pytest.approx(preferred)
    assert out["correctness_preferred_hard"] == pytest.approx(preferred_hard)
    assert out["margin_score"] == pytest.approx(margin)
    assert out["score"] == pytest.approx(score)
    assert score == pytest.approx(0.770316, abs=1e-6)
    assert (out["n_ref"], out["n_tied"], out["n_paired"], out["decomposes"]) == (3, 3, 3, True)
    assert out["per_prompt"]["prompt_id"].tolist() == ["1", "2", "3"]
    assert out["per_prompt"]["score"].mean() == pytest.approx(score)


def test_ties_score_zero_over_zero_counts_zero_and_rows_pool():
    # tied 9: correct 1, 1 and incorrect 1 -> spread 0, gap 0: 0/0 -> margin 0, not accurate
    out = ties_score(["ref:9", "ref:9", "tied:9"], [[0.7, 0.2], [0.6], [1.0, 1.0, 1.0]], [1, 0, 2])
    # the second ref row adds an incorrect 0.6: gap 0.7 - 0.6 = 0.1
    assert out["per_prompt"]["margin_score"].tolist() == [0.0]
    assert out["tied_accuracy"] == 0.0 and out["ref_accuracy"] == 1.0
    assert out["correctness_preferred"] == 0.0 and out["correctness_preferred_hard"] == 0.0
    assert out["score"] == pytest.approx(0.3)


def test_ties_score_without_pairs_is_undefined():
    out = ties_score(["ref:1", "tied:2"], [[1.0, 0.0], [2.0, 1.5, 0.0]], [1, 2])
    assert out["n_paired"] == 0 and out["score"] is None and out["decomposes"] is False
    assert out["ref_accuracy"] == 1.0 and out["tied_accuracy"] == 1.0


@pytest.mark.parametrize(
    "ids,scores,k",
    [
        (["other:1"], [[1.0, 0.0]], [1]),
        (["ref1"], [[1.0, 0.0]], [1]),
        (["ref:1"], [[1.0, 0.0]], [2]),  # no incorrect answer
        (["ref:1"], [[1.0, 0.0]], [0]),  # no correct answer
        (["tied:1", "ref:1"], [[1.0, 0.0], [1.0, 0.0]], [1, 1]),  # tied with one correct
        (["ref:1"], [[1.0, np.nan]], [1]),
        (["ref:1", "tied:1"], [[1.0, 0.0]], [1, 1]),
        ([], [], []),
    ],
)
def test_ties_score_rejects_bad_input(ids, scores, k):
    with pytest.raises(ValueError):
        ties_score(ids, scores, k)


# ----------------------------------------------------------------------------- RM-Bench
def test_rm_bench_matrix_on_two_items():
    chosen = [[3.0, 2.0, 1.0], [1.0, 2.0, 2.0]]
    rejected = [[2.5, 1.5, 0.5], [1.0, 3.0, 0.0]]
    out = rm_bench_accuracy(chosen, rejected)
    # item 1: rows [1,1,1], [0,1,1], [0,0,1]; item 2: [0 (tie),0,1], [1,0,1], [1,0,1]
    assert out["per_item"]["cells"].tolist() == [
        [[1, 1, 1], [0, 1, 1], [0, 0, 1]],
        [[0, 0, 1], [1, 0, 1], [1, 0, 1]],
    ]
    assert out["matrix"] == [[0.5, 0.5, 1.0], [0.5, 0.5, 1.0], [0.5, 0.0, 1.0]]
    assert out["per_item"]["hard"].tolist() == pytest.approx([1.0, 2 / 3])
    assert out["per_item"]["normal"].tolist() == pytest.approx([1.0, 1 / 3])
    assert out["per_item"]["easy"].tolist() == pytest.approx([0.0, 2 / 3])
    assert (out["hard"], out["normal"], out["easy"]) == pytest.approx((5 / 6, 2 / 3, 1 / 3))
    assert out["average"] == pytest.approx((5 / 6 + 2 / 3 + 1 / 3) / 3)
    half = rm_bench_accuracy(chosen, rejected, tie="half")
    assert half["matrix"][0][0] == 0.75 and half["normal"] == pytest.approx(0.75)
    # per-item hard scores feed the bootstrap like any per-item score
    assert bootstrap_interval(out["per_item"]["hard"], n_boot=50)["estimate"] == pytest.approx(5 / 6)


@pytest.mark.parametrize("chosen,rejected", [([[1.0, 2.0]], [[1.0, 2.0]]), ([[1, 2, 3]], [[1, 2, 3], [1, 2, 3]]),
                                             ([], [])])
def test_rm_bench_rejects_bad_shapes(chosen, rejected):
    with pytest.raises(ValueError):
        rm_bench_accuracy(chosen, rejected)


# ----------------------------------------------------------------------------- best-of-k
def test_best_of_4_selection():
    scores = [[0.1, 0.9, 0.3, 0.2], [0.5, 0.5, 0.1, 0.5], [1, 2, 3, 4], [4, 3, 2, 1]]
    correct = [[False, True, False, False], [True, False, True, False], [False] * 4, [True] * 4]
    out = best_of_k_selection(scores, correct)
    # item 2: three responses tie at the top, one of them correct -> expected 1/3
    assert out["per_item"]["selected"].tolist() == pytest.approx([1.0, 1 / 3, 0.0, 1.0])
    assert out["per_item"]["random"].tolist() == [0.25, 0.5, 0.0, 1.0]
    assert out["per_item"]["n_tied_top"].tolist() == [1, 3, 1, 1]
    assert out["per_item"]["mixed"].tolist() == [True, True, False, False]
    assert out["selected"] == pytest.approx(7 / 12)
    assert out["random"] == pytest.approx(0.4375)
    assert out["gain"] == pytest.approx(7 / 12 - 0.4375)
    assert out["oracle"] == 0.75 and out["n"] == 4 and out["n_mixed"] == 2
    assert out["selected_mixed"] == pytest.approx(2 / 3) and out["random_mixed"] == pytest.approx(0.375)


def test_best_of_k_constant_scorer_equals_random():
    out = best_of_k_selection(np.zeros((2, 3)), np.array([[True, False, False], [True, True, False]]))
    assert out["selected"] == pytest.approx(out["random"]) and out["gain"] == pytest.approx(0.0)


@pytest.mark.parametrize(
    "scores,correct",
    [
        ([[1.0, 2.0]], [[1, 0]]),  # not booleans
        ([[1.0, 2.0]], [[True]]),  # lengths differ
        ([[1.0, np.nan]], [[True, False]]),
        ([[1.0, 2.0]], [[True, False], [True, True]]),
        ([[]], [[]]),
    ],
)
def test_best_of_k_rejects_bad_input(scores, correct):
    with pytest.raises(ValueError):
        best_of_k_selection(scores, correct)


# ----------------------------------------------------------------------------- length baselines
def test_length_baselines_on_pairs():
    len_c = char_lengths(["aaaa", "bb", "ccc"])
    len_r = char_lengths(["aa", "bbbb", "ddd"])
    out = length_baselines_pairs(len_c, len_r)
    assert out["prefer_longer"]["per_item"].tolist() == [1.0, 0.0, 0.0]
    assert out["prefer_shorter"]["per_item"].tolist() == [0.0, 1.0, 0.0]
    assert out["chance"]["accuracy"] == 0.5
    half = length_baselines_pairs(len_c, len_r, tie="half")
    assert half["prefer_longer"]["accuracy"] == 0.5 and half["prefer_shorter"]["per_item"][2] == 0.5


def test_length_baselines_on_best_of_n():
    out = length_baselines_best_of_n([5, 2], [[3, 5], [1, 1, 1]])
    assert out["prefer_longer"]["per_item"].tolist() == [0.0, 1.0]
    assert out["prefer_shorter"]["per_item"].tolist() == [0.0, 0.0]
    assert out["chance"]["per_item"].tolist() == pytest.approx([1 / 3, 1 / 4])
    split = length_baselines_best_of_n([5, 2], [[3, 5], [1, 1, 1]], tie="split")
    assert split["prefer_longer"]["per_item"].tolist() == [0.5, 1.0]


def test_char_lengths_counts_characters_and_refuses_non_text():
    assert char_lengths(["é", "ab c"]).tolist() == [1.0, 4.0]
    with pytest.raises(ValueError):
        char_lengths(["ok", None])
