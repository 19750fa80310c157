"""Measure the shipped semantic-cache decision procedure on labelled paraphrase pairs.

For each pair, text A plays the cached prompt and text B the new one: the local embedder gives
their cosine and :func:`caching.semantic.decision.decide` says hit or miss. A hit on a duplicate
is a true hit; a hit on a non-duplicate is a wrong answer served from cache.

Run: ``python -m caching.semantic.evaluation --pairs ../shared/eval/paraphrase/qqp_val.csv
--split heldout --mrpc ../shared/eval/paraphrase/mrpc_train.tsv`` (or ``python manage.py
eval_semantic_cache ...``): the held-out QQP half, the held-out MRPC part and issue 23's goal line.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from caching.semantic.data import (
    DEFAULT_QQP_PATH,
    LabelledPair,
    PairFormat,
    Split,
    read_pairs,
    select_split,
)
from caching.semantic.decision import Thresholds, decide
from caching.semantic.embedders import Embedder, get_local_embedder

# Issue 23's goal for the held-out parts: QQP this much recall at no less than this precision,
# and MRPC (news sentences, another annotation) no less than this precision.
GOAL_RECALL = 0.30
GOAL_PRECISION = 0.95
GOAL_MRPC_PRECISION = 0.95


def goal_applies(fmt: PairFormat, split: Split | None) -> bool:
    """The goal is stated for the held-out parts only; other splits and sets just report."""
    return fmt == "qqp" and (split or "heldout") == "heldout"


def goal_line(qqp: EvalResult, mrpc: EvalResult | None = None) -> str:
    """Issue 23's goal line: QQP recall and precision, and MRPC precision when measured."""
    met = qqp.recall >= GOAL_RECALL and qqp.precision >= GOAL_PRECISION
    goal = f"QQP recall >= {GOAL_RECALL:.2f} at precision >= {GOAL_PRECISION:.2f}"
    measured = f"recall {qqp.recall:.4f}, precision {qqp.precision:.4f}"
    if mrpc is not None:
        met = met and mrpc.precision >= GOAL_MRPC_PRECISION
        goal += f", MRPC precision >= {GOAL_MRPC_PRECISION:.2f}"
        measured = (
            f"QQP {measured}; MRPC precision {mrpc.precision:.4f} "
            f"(recall {mrpc.recall:.4f})"
        )
    return f"goal (issue 23): {goal}: {measured} -> {'met' if met else 'NOT met'}"


@dataclass(frozen=True)
class EvalResult:
    """Confusion counts and the rates derived from them."""

    n: int
    true_hits: int
    false_hits: int
    missed: int
    true_misses: int
    decide_ms_p50: float
    decide_ms_p99: float

    @property
    def precision(self) -> float:
        hits = self.true_hits + self.false_hits
        return self.true_hits / hits if hits else 1.0

    @property
    def recall(self) -> float:
        duplicates = self.true_hits + self.missed
        return self.true_hits / duplicates if duplicates else 0.0

    @property
    def false_hit_rate(self) -> float:
        negatives = self.false_hits + self.true_misses
        return self.false_hits / negatives if negatives else 0.0

    def summary(self) -> str:
        return (
            f"n={self.n} precision={self.precision:.4f} recall={self.recall:.4f} "
            f"false_hit_rate={self.false_hit_rate:.4f}\n"
            f"true_hits={self.true_hits} false_hits={self.false_hits} "
            f"missed={self.missed} true_misses={self.true_misses}\n"
            f"decide() ms p50={self.decide_ms_p50:.3f} p99={self.decide_ms_p99:.3f}"
        )

    def goal_line(self) -> str:
        return goal_line(self)


def similarities(embedder: Embedder, pairs: list[LabelledPair], *, batch: int = 64) -> np.ndarray:
    """Cosine of each pair's texts under ``embedder`` (batched by length for speed)."""
    texts = [p.text_a for p in pairs] + [p.text_b for p in pairs]
    order = np.argsort([len(t) for t in texts], kind="stable")
    vectors = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    for start in range(0, len(texts), batch):
        idx = order[start : start + batch]
        vectors[idx] = embedder.embed([texts[i] for i in idx])
    n = len(pairs)
    return (vectors[:n] * vectors[n:]).sum(axis=1)


def evaluate(
    pairs: list[LabelledPair],
    *,
    sims: np.ndarray,
    task_type: str = "default",
    thresholds: Thresholds | None = None,
) -> EvalResult:
    """Run :func:`decide` over ``pairs`` with precomputed similarities and count outcomes."""
    counts = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    timings = []
    for pair, sim in zip(pairs, sims, strict=True):
        started = time.perf_counter()
        hit = decide(
            query=pair.text_b,
            candidate=pair.text_a,
            similarity=float(sim),
            task_type=task_type,
            thresholds=thresholds,
        ).hit
        timings.append((time.perf_counter() - started) * 1000)
        key = ("t" if hit == pair.duplicate else "f") + ("p" if hit else "n")
        counts[key] += 1
    return EvalResult(
        n=len(pairs),
        true_hits=counts["tp"],
        false_hits=counts["fp"],
        missed=counts["fn"],
        true_misses=counts["tn"],
        decide_ms_p50=float(np.percentile(timings, 50)) if timings else 0.0,
        decide_ms_p99=float(np.percentile(timings, 99)) if timings else 0.0,
    )


def run(
    *,
    pairs_path: Path,
    fmt: PairFormat = "qqp",
    split: Split | None = None,
    task_type: str = "default",
) -> EvalResult:
    """Load pairs, embed them with the local embedder and evaluate the shipped procedure.

    Both formats default to the held-out split (the one training never saw).
    """
    split = split or "heldout"
    pairs = select_split(read_pairs(pairs_path, fmt=fmt), split=split)
    sims = similarities(get_local_embedder(), pairs)
    return evaluate(pairs, sims=sims, task_type=task_type)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Evaluate the semantic cache decision.")
    parser.add_argument("--pairs", type=Path, default=DEFAULT_QQP_PATH)
    parser.add_argument("--format", choices=["qqp", "mrpc"], default="qqp")
    parser.add_argument("--split", choices=["heldout", "tune", "all"], default=None)
    parser.add_argument("--task-type", default="default")
    parser.add_argument(
        "--mrpc", type=Path, default=None, help="also score this MRPC TSV's split (goal line)"
    )
    args = parser.parse_args(argv)
    for line in report(
        pairs_path=args.pairs, fmt=args.format, split=args.split, task_type=args.task_type,
        mrpc_path=args.mrpc,
    ):  # fmt: skip
        print(line)


def report(
    *,
    pairs_path: Path,
    fmt: PairFormat = "qqp",
    split: Split | None = None,
    task_type: str = "default",
    mrpc_path: Path | None = None,
) -> list[str]:
    """The lines ``eval_semantic_cache`` prints: each set's summary, then the goal line."""
    result = run(pairs_path=pairs_path, fmt=fmt, split=split, task_type=task_type)
    lines = [result.summary()]
    mrpc = None
    if mrpc_path is not None:
        mrpc = run(pairs_path=mrpc_path, fmt="mrpc", split=split, task_type=task_type)
        lines += [f"MRPC ({split or 'heldout'}):", mrpc.summary()]
    if goal_applies(fmt, split):
        lines.append(goal_line(result, mrpc))
    return lines


if __name__ == "__main__":
    main()
