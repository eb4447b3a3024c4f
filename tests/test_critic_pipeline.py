"""Critic-RM data generation: score parsing, consistency filters, refinement selection (against
hand examples), and ``rewardlab critique`` end to end with a deterministic fake generator."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from rewardlab.critic.filters import FilterConfig, critique_consistent, filter_pair, instance_consistent, mean_score
from rewardlab.critic.pipeline import CritiqueConfig, run_critique
from rewardlab.critic.prompts import SCORE_PREFIX
from rewardlab.critic.refine import first_kept, top_k, with_score_line
from rewardlab.critic.scores import parse_score, score_histogram
from rewardlab.errors import ConfigError, DataError
from rewardlab.generate import Generator, Sample


# -- parsing -----------------------------------------------------------------------------------
@pytest.mark.parametrize("text,score", [
    ("Clear and correct.\nScore: 7", 7.0),
    ("**Score:** 7/10", 7.0),
    ("score = 8.5", 8.5),
    ("The score is 6", 6.0),
    ("I rate it 3/10 at first... Score: 8", 8.0),    # the last match wins
    ("Score: 8. Overall 4 out of 10.", 4.0),          # the last match wins, either pattern
    ("Final: 10/10", 10.0),
    ("Score: 8.", 8.0),
    ("Score: 7/10.", 7.0),
    ("Score: 0", None),                               # outside 1..10
    ("15/10", None),
    ("3/100", None),                                  # not out of 10
    ("Score: N", None),
    ("no number here", None),
    ("", None),
    (None, None),
])
def test_parse_score(text, score):
    assert parse_score(text) == score


def test_score_histogram():
    h = score_histogram([7.0, 7.4, 1.0, None, 10.0, 6.5])
    assert h["7"] == 2 and h["1"] == 1 and h["10"] == 1 and h["null"] == 1 and h["6"] == 1  # 6.5 -> 6 (half to even)
    assert sum(h.values()) == 6


# -- filters ------------------------------------------------------------------------------------
def test_instance_rule():
    assert mean_score([8, None, 6]) == 7 and mean_score([None]) is None
    assert instance_consistent(7.0, 5.0) == (True, "kept")
    assert instance_consistent(5.0, 7.0) == (False, "misranked")
    assert instance_consistent(6.0, 6.0) == (False, "tie")
    assert instance_consistent(6.0, 6.0, ties="keep") == (True, "kept")
    assert instance_consistent(6.5, 6.0, margin=1.0) == (False, "misranked")
    assert instance_consistent(None, 6.0) == (False, "unscored")


def test_critique_rules_by_hand():
    # means: chosen (8+7+4)/3 = 6.333, rejected (3+9)/2 = 6 (None left out)
    c, r = [8, 7, 4, None], [3, 9, None]
    assert critique_consistent(c, r) == ((True, True, False, False), (True, False, False))
    assert critique_consistent(c, r, FilterConfig(critique_margin=1.5)) == ((True, False, False, False),
                                                                             (True, False, False))
    assert critique_consistent(c, r, FilterConfig(critique_rule="threshold", chosen_min=7, rejected_max=3)) == (
        (True, True, False, False), (True, False, False))
    assert critique_consistent(c, r, FilterConfig(critique_rule="none")) == ((True, True, True, False),
                                                                              (True, True, False))


def test_filter_pair():
    d = filter_pair([8, 7, 4, None], [3, 9, None])
    assert d.keep and d.reason == "kept" and d.keep_chosen == (True, True, False, False)
    d = filter_pair([3, 4], [8, 8])
    assert not d.keep and d.reason == "misranked" and not any(d.keep_chosen + d.keep_rejected)
    d = filter_pair([7, 6], [6, 6], FilterConfig(critique_margin=1.0))  # ranked right, no critique clears 1.0
    assert not d.keep and d.reason == "no_consistent_critique"
    d = filter_pair([5, 4], [6, 9], FilterConfig(instance=False, critique_rule="none"))
    assert d.keep and d.keep_rejected == (True, True)
    with pytest.raises(ConfigError, match="ties"):
        FilterConfig(ties="maybe")


# -- refinement ---------------------------------------------------------------------------------
def test_refine_selection():
    keep = [False, True, True, True, False]
    assert first_kept(keep) == 1 and first_kept([False]) is None
    meta = [9.0, 4.0, None, 8.0, 10.0]     # 0 and 4 are not kept: never selected
    assert top_k(meta, keep, 1) == [3]
    assert top_k(meta, keep, 3) == [3, 1, 2]   # None ranks last
    assert top_k([5.0, 5.0, 5.0], [True] * 3, 2) == [0, 1]  # ties by sample order
    assert with_score_line("Good answer.\nScore: 8", [1.0]) == ("Good answer.\nScore: 8", False)
    assert with_score_line("Good answer.", [7.0, 8.0, None]) == ("Good answer.\nScore: 8", True)  # 7.5 -> 8
    assert with_score_line("x", [None]) == ("x", False)


# -- end to end ---------------------------------------------------------------------------------
class FakeCritic(Generator):
    """Deterministic: critique scores come from the response ('good' 8, 'bad' 3, 'meh' 5, sample 2
    unparseable); meta-judgements score a critique by its sample number; summaries say 'summary'."""

    model_id = "fake-critic"

    def __init__(self, cache_dir=None):
        super().__init__(cache_dir)
        self.calls = 0

    def _generate_batch(self, jobs, params):
        out = []
        for job in jobs:
            self.calls += 1
            text = job.messages[-1]["content"]
            if job.messages[-1]["role"] == "assistant":  # the score follow-up continues the critique
                assert text.endswith(SCORE_PREFIX) and job.messages[-1]["content"].startswith("critique #2")
                out.append(Sample(" 7.", 1))
            elif "[Critique]" in text:
                num = int(re.search(r"critique #(\d)", text).group(1))
                out.append(Sample(f"Accurate critique. Score: {num + 2}", 4))
            elif "[Critique 1]" in text:
                out.append(Sample("summary of the kept critiques", 5))
            else:
                resp = text.split("[Response]\n")[1].split("\n\n")[0]
                base = 8 if "good" in resp else 3 if "bad" in resp else 5
                s = job.sample_index
                tail = "no score given" if s == 2 else f"Score: {base + (s % 2)}"
                out.append(Sample(f"critique #{s} of {resp!r}. {tail}", 6))
        return out


def write_pairs(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


ROWS = [
    {"prompt": "p1", "chosen": "good answer", "rejected": "bad answer", "source": "A"},
    {"prompt": "p2", "chosen": "bad answer", "rejected": "good answer", "source": "A"},   # misranked
    {"prompt": "p3", "chosen": "meh answer", "rejected": "meh answer too", "source": "B"},  # tie
    {"prompt": "p4", "chosen": "good one", "rejected": "meh one", "source": "B"},
]


def test_pipeline_end_to_end(tmp_path):
    from rewardlab.data import load_preferences

    data = write_pairs(tmp_path / "pairs.jsonl", ROWS)
    gen = FakeCritic(tmp_path / "cache")
    s = run_critique(data, tmp_path / "out.jsonl", gen, CritiqueConfig(n=3), report_dir=tmp_path / "rep",
                     progress=False)
    t = s["totals"]
    assert t["pairs"] == 4 and t["critiques"] == 24 and t["parse_failures"] == 8  # sample 2 of 8 responses
    assert t["parse_failure_rate"] == round(8 / 24, 4)
    assert t["filter"] == {"kept": 2, "unscored": 0, "tie": 1, "misranked": 1, "no_consistent_critique": 0}
    assert s["by_source"]["A"]["kept_pairs"] == 1 and s["by_source"]["B"]["filter"]["tie"] == 1
    assert t["histogram"]["chosen"]["8"] == 2 and t["histogram"]["chosen"]["9"] == 2  # good: 8, 9 (+ None)
    assert t["judge_accuracy"] == 0.5  # p1, p4 right; p2 wrong; p3 a tie, counted wrong as in eval
    assert gen.calls == 24 and (tmp_path / "rep" / "summary.json").is_file()
    # every pair in all_pairs with its decision; only kept pairs in out, with the targets
    every = [json.loads(line) for line in (tmp_path / "rep" / "all_pairs.jsonl").read_text().splitlines()]
    assert [r["critic_filter"] for r in every] == ["kept", "misranked", "tie", "kept"]
    assert every[0]["critique_scores_chosen"] == [8.0, 9.0, None] and every[1]["critique_chosen"] is None
    kept = load_preferences(str(tmp_path / "out.jsonl"), keep_columns=["critique_chosen", "critique_rejected",
                                                                       "critiques_chosen"])
    assert kept["prompt"] == ["p1", "p4"]
    # cross_mean: chosen of p1 vs rejected mean 3.5: both parseable kept -> first is sample 0
    assert kept["critique_chosen"][0] == "critique #0 of 'good answer'. Score: 8"
    # rejected of p4 ('meh one' 5, 6) vs chosen mean 8.5: sample 0 first kept
    assert kept["critique_rejected"][1] == "critique #0 of 'meh one'. Score: 5"
    assert len(kept["critiques_chosen"][0]) == 3
    # a rerun with rank refinement reuses the cached critiques and only judges
    gen2 = FakeCritic(tmp_path / "cache")
    s2 = run_critique(str(data), tmp_path / "out_rank.jsonl", gen2, CritiqueConfig(n=3, refine="rank"),
                      report_dir=tmp_path / "rep2", progress=False)
    assert s2["generation"][0]["cached"] == 24 and s2["refine"]["meta_judgements"] == 8  # 2 pairs x 2 sides x 2
    assert gen2.calls == 8
    ranked = [json.loads(line) for line in (tmp_path / "out_rank.jsonl").read_text().splitlines()]
    assert ranked[0]["critique_chosen"].startswith("critique #1")  # meta-score 3 beats 2
    assert ranked[0]["critique_meta_scores_chosen"] == [2.0, 3.0, None]
    s3 = run_critique(str(data), tmp_path / "out_summ.parquet", FakeCritic(tmp_path / "cache"),
                      CritiqueConfig(n=3, refine="summ"), report_dir=tmp_path / "rep3", progress=False)
    assert s3["refine"] == {"summaries": 4, "score_line_appended": 4}
    summ = load_preferences(str(tmp_path / "out_summ.parquet"), keep_columns=["critique_chosen"])
    assert summ["critique_chosen"][0] == "summary of the kept critiques\nScore: 9"  # mean(8, 9) = 8.5 -> 9


def test_score_followup(tmp_path):
    data = write_pairs(tmp_path / "pairs.jsonl", ROWS[:2])
    gen = FakeCritic(tmp_path / "cache")
    s = run_critique(data, tmp_path / "out.jsonl", gen, CritiqueConfig(n=3, score_followup=True),
                     report_dir=tmp_path / "rep", progress=False)
    t = s["totals"]
    assert t["parse_failures_first_pass"] == 4 and t["parse_failures"] == 0  # sample 2 of 4 responses
    assert s["score_followup"] == {"asked": 4, "scored": 4} and gen.calls == 12 + 4
    every = [json.loads(line) for line in (tmp_path / "rep" / "all_pairs.jsonl").read_text().splitlines()]
    assert every[0]["critique_scores_chosen"] == [8.0, 9.0, 7.0]
    assert every[0]["critiques_chosen"][2] == "critique #2 of 'good answer'. no score given\nScore: 7"


def test_bad_input(tmp_path):
    gen = FakeCritic()
    empty = write_pairs(tmp_path / "e.jsonl", ROWS[:1] + [{"prompt": "p", "chosen": "ok", "rejected": "  "}])
    with pytest.raises(DataError, match=r"e\.jsonl:2: field 'rejected'.*empty response"):
        run_critique(str(empty), tmp_path / "o.jsonl", gen, progress=False)
    s = run_critique(str(empty), tmp_path / "o.jsonl", gen, CritiqueConfig(n=2, on_empty="skip"), progress=False)
    assert s["totals"]["skipped_empty_pairs"] == 1 and s["totals"]["pairs"] == 1
    bad = tmp_path / "b.jsonl"
    bad.write_bytes(b'{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": "p", "chosen": "\xff", "rejected": "b"}\n')
    with pytest.raises(DataError, match=r"b\.jsonl:2: expected UTF-8 text"):
        run_critique(str(bad), tmp_path / "o.jsonl", gen, progress=False)
    with pytest.raises(ConfigError, match=r"no \{response\}"):
        CritiqueConfig(template="Critique {prompt}")


def test_cli_critique_errors_and_openai_run(tmp_path, monkeypatch):
    """The CLI against a stub OpenAI server (no model needed); bad input exits 2 with 'error:'."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from rewardlab.cli import app

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            good = "good" in body["messages"][-1]["content"].split("[Response]")[1]
            data = json.dumps({"choices": [{"message": {"content": f"Fine. Score: {8 if good else 2}"},
                                            "finish_reason": "stop"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        data = write_pairs(tmp_path / "pairs.jsonl", ROWS[:2])
        runner = CliRunner()
        args = ["critique", "--data", str(data), "--out", str(tmp_path / "o.jsonl"), "--backend", "openai",
                "--model", "stub", "--base-url", f"http://127.0.0.1:{server.server_address[1]}/v1", "--n", "2",
                "--no-progress"]
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
        assert "kept 1 pairs" in res.output and "parse failures 0" in res.output
        tpl = tmp_path / "t.txt"
        tpl.write_text("Critique {prompt} please", encoding="utf-8")
        res = runner.invoke(app, args + ["--template", str(tpl)])
        assert res.exit_code == 2 and "error:" in res.output and "t.txt" in res.output and "{response}" in res.output
        assert "Traceback" not in res.output
    finally:
        server.shutdown()
        server.server_close()
