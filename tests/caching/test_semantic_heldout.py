"""Regression pins for the shipped semantic tier on the held-out QQP half and MRPC part.

The pairs are read from ../shared/eval/paraphrase at run time (never copied into the project:
licence terms); the pinned test is skipped with the reason when they are absent (e.g. a clone
without shared/). The pins are what `manage.py eval_semantic_cache --split heldout` printed for the
artefacts in this commit; retrained artefacts must update them and docs/cache.md in the same change.
"""

from __future__ import annotations

import pytest

from caching.semantic.data import DEFAULT_MRPC_PATH, DEFAULT_QQP_PATH, split_of
from caching.semantic.embedders import get_local_embedder
from caching.semantic.evaluation import (
    GOAL_MRPC_PRECISION,
    GOAL_PRECISION,
    GOAL_RECALL,
    EvalResult,
    goal_line,
    report,
    run,
)

# The int8 embedder's kernels differ a little between CPU instruction sets, which can move a
# pair across a threshold: one pair is 0.0004 of recall and about 0.003 of precision.
TOLERANCE = 0.01
# MRPC's held-out part has ~80 hits, so one pair moves its precision by ~0.012.
MRPC_TOLERANCE = 0.025
PINNED_EMBEDDER = "all-MiniLM-L6-v2+adapter-cf03cf722626+int8"
PINNED_PRECISION = 0.9233
PINNED_RECALL = 0.1553
PINNED_MRPC_PRECISION = 0.9103
PINNED_MRPC_RECALL = 0.0555


@pytest.mark.skipif(
    not DEFAULT_QQP_PATH.is_file(),
    reason=f"QQP pairs not found at {DEFAULT_QQP_PATH} (evaluation data is read from "
    "../shared/eval at run time, never shipped)",
)
def test_heldout_precision_and_recall_are_pinned() -> None:
    assert get_local_embedder().version == PINNED_EMBEDDER  # new artefacts: new pins
    result = run(pairs_path=DEFAULT_QQP_PATH, split="heldout")
    assert result.n == 6132
    assert result.precision == pytest.approx(PINNED_PRECISION, abs=TOLERANCE)
    assert result.recall == pytest.approx(PINNED_RECALL, abs=TOLERANCE)


@pytest.mark.skipif(
    not DEFAULT_MRPC_PATH.is_file(),
    reason=f"MRPC pairs not found at {DEFAULT_MRPC_PATH} (evaluation data is read from "
    "../shared/eval at run time, never shipped)",
)
def test_mrpc_heldout_precision_and_recall_are_pinned() -> None:
    # Issue 23 asks MRPC precision >= 0.95; the held-out part (by the same hash as QQP) was
    # never used for training or for choosing thresholds.
    assert get_local_embedder().version == PINNED_EMBEDDER
    result = run(pairs_path=DEFAULT_MRPC_PATH, fmt="mrpc", split="heldout")
    assert result.n == 1894
    assert result.precision == pytest.approx(PINNED_MRPC_PRECISION, abs=MRPC_TOLERANCE)
    assert result.recall == pytest.approx(PINNED_MRPC_RECALL, abs=MRPC_TOLERANCE)


def _result(*, true_hits: int, false_hits: int, missed: int) -> EvalResult:
    return EvalResult(n=1000, true_hits=true_hits, false_hits=false_hits, missed=missed,
                      true_misses=1000 - true_hits - false_hits - missed,
                      decide_ms_p50=0.1, decide_ms_p99=0.3)


def test_goal_line_says_met_only_when_both_recall_and_precision_reach_the_goal() -> None:
    assert (GOAL_RECALL, GOAL_PRECISION) == (0.30, 0.95)
    met = _result(true_hits=60, false_hits=3, missed=140)  # recall 0.30, precision 0.952
    assert met.goal_line().endswith("-> met")
    precise_but_short = _result(true_hits=59, false_hits=1, missed=141)  # recall 0.295
    assert precise_but_short.goal_line().endswith("-> NOT met")
    broad_but_wrong = _result(true_hits=100, false_hits=10, missed=100)  # precision 0.909
    line = broad_but_wrong.goal_line()
    assert line.endswith("-> NOT met")
    assert "recall 0.5000, precision 0.9091" in line


def test_goal_line_with_mrpc_needs_mrpc_precision_too() -> None:
    assert GOAL_MRPC_PRECISION == 0.95
    qqp_met = _result(true_hits=60, false_hits=3, missed=140)
    mrpc_precise = _result(true_hits=95, false_hits=5, missed=500)  # precision 0.95
    mrpc_loose = _result(true_hits=94, false_hits=6, missed=500)  # precision 0.94
    assert goal_line(qqp_met, mrpc_precise).endswith("-> met")
    line = goal_line(qqp_met, mrpc_loose)
    assert line.endswith("-> NOT met")
    assert "MRPC precision 0.9400" in line
    qqp_short = _result(true_hits=59, false_hits=1, missed=141)
    assert goal_line(qqp_short, mrpc_precise).endswith("-> NOT met")


def test_report_scores_the_mrpc_held_out_part_and_prints_the_goal_line_with_it(tmp_path) -> None:
    # Pairs with the same words hit by rule 1, so the counts below do not depend on the model.
    texts = [f"How do I cook rice number {i}?" for i in range(40)]
    held = [t for t in texts if split_of(text_a=t, text_b=t.upper()) == "heldout"][:3]
    tune = [t for t in texts if split_of(text_a=t, text_b=t.upper()) == "tune"][:2]
    qqp = tmp_path / "qqp.csv"
    qqp.write_text(
        "question1,question2,is_duplicate\n"
        + "".join(f"{t},{t.upper()},1\n" for t in held + tune)
    )
    mrpc = tmp_path / "mrpc.tsv"
    mrpc.write_text(
        "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
        + "".join(f"0\t1\t2\t{t}\t{t.upper()}\n" for t in held + tune)
    )
    lines = report(pairs_path=qqp, split="heldout", mrpc_path=mrpc)
    assert lines[0].startswith(f"n={len(held)} precision=1.0000 recall=1.0000")
    assert lines[1] == "MRPC (heldout):"
    # MRPC's held-out part only (its tune pairs are left out), all labelled not paraphrases.
    assert lines[2].startswith(f"n={len(held)} precision=0.0000")
    assert lines[-1].startswith("goal (issue 23):")
    assert "MRPC precision 0.0000" in lines[-1]
    assert lines[-1].endswith("-> NOT met")
