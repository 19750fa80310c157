"""Router evaluation as RouteLLM defines it: APGR and CPT over a strong/weak model pair.

For a router that sends a share c of prompts to the strong model, quality(c) is the mean correctness
of the answers it gets; PGR(c) = (quality(c) - weak) / (strong - weak); APGR is the area under PGR
over c in [0, 1]; CPT(x%) is the smallest share of strong calls whose PGR reaches x%.

A router is a score per prompt; sweeping its threshold from +inf down to -inf traces the curve.
RouteLLM samples 11 quantile thresholds and integrates with the trapezoid rule; we evaluate every
distinct threshold (the exact curve, `points=None`) and offer `points=10` to reproduce RouteLLM's
coarser sampling. Ties are treated as a block (linear between block ends), which is the expected
curve under random tie-breaking, so a constant router scores exactly like random (0.5).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class RouterCurve:
    strong_share: tuple[float, ...]  # c, ascending from 0 to 1
    quality: tuple[float, ...]
    weak_quality: float
    strong_quality: float

    def pgr(self) -> list[float]:
        gap = self.strong_quality - self.weak_quality
        if gap == 0:
            raise ValueError("strong and weak models have equal quality; PGR is undefined")
        return [(q - self.weak_quality) / gap for q in self.quality]


@dataclass(frozen=True)
class RouterMetrics:
    apgr: float
    cpt50: float
    cpt80: float
    n: int


def router_curve(
    *,
    scores: Sequence[float],
    weak: Sequence[float],
    strong: Sequence[float],
    points: int | None = None,
) -> RouterCurve:
    """Quality as a function of the share of prompts sent to the strong model."""
    s = np.asarray(scores, dtype=float)
    w = np.asarray(weak, dtype=float)
    st = np.asarray(strong, dtype=float)
    n = len(s)
    if n == 0 or len(w) != n or len(st) != n:
        raise ValueError("scores, weak and strong must be non-empty and of equal length")
    order = np.argsort(-s, kind="stable")
    ss = s[order]
    gain = np.cumsum((st - w)[order])
    base = float(w.mean())
    if points is None:
        ends = np.nonzero(np.r_[ss[1:] != ss[:-1], True])[0]
        share = np.r_[0.0, (ends + 1) / n]
        quality = base + np.r_[0.0, gain[ends]] / n
    else:
        # RouteLLM: thresholds at the score quantiles; route strong if score >= threshold
        # (strictly > for the top one, which yields the all-weak point).
        thresholds = np.quantile(s, np.linspace(0, 1, points + 1))
        share_l, qual_l = [], []
        for i, t in enumerate(thresholds):
            sel = s > t if i == len(thresholds) - 1 else s >= t
            share_l.append(sel.mean())
            qual_l.append(float(np.where(sel, st, w).mean()))
        idx = np.argsort(share_l, kind="stable")
        share = np.asarray(share_l)[idx]
        quality = np.asarray(qual_l)[idx]
    return RouterCurve(
        strong_share=tuple(float(x) for x in share),
        quality=tuple(float(x) for x in quality),
        weak_quality=base,
        strong_quality=float(st.mean()),
    )


def apgr(curve: RouterCurve) -> float:
    """Area under PGR over the strong-call share (trapezoid rule)."""
    return float(np.trapezoid(curve.pgr(), curve.strong_share))


def cpt(curve: RouterCurve, *, target: float) -> float:
    """Smallest strong-call share whose PGR reaches `target` (0.5 = CPT(50%)), interpolated."""
    pgr = curve.pgr()
    c = curve.strong_share
    if pgr[0] >= target:
        return c[0]
    for i in range(1, len(c)):
        if pgr[i] >= target:
            lo, hi = pgr[i - 1], pgr[i]
            return c[i - 1] + (target - lo) / (hi - lo) * (c[i] - c[i - 1])
    return 1.0


def evaluate_scores(
    *,
    scores: Sequence[float],
    weak: Sequence[float],
    strong: Sequence[float],
    points: int | None = None,
) -> RouterMetrics:
    curve = router_curve(scores=scores, weak=weak, strong=strong, points=points)
    return RouterMetrics(
        apgr=apgr(curve),
        cpt50=cpt(curve, target=0.5),
        cpt80=cpt(curve, target=0.8),
        n=len(scores),
    )


def baseline_scores(
    *,
    name: str,
    prompts: Sequence[str],
    weak: Sequence[bool],
    strong: Sequence[bool],
    seed: int = 0,
) -> list[float]:
    """Scores of the reference routers: random (expected), random-sample, length, oracle."""
    if name == "random":
        # One tie block = the expectation over random routers (exactly 0.5 APGR).
        return [0.0 for _ in prompts]
    if name == "random-sample":
        rng = random.Random(seed)
        return [rng.random() for _ in prompts]
    if name == "length":
        return [float(len(p)) for p in prompts]
    if name == "oracle":
        # Strong first where only it is right, then where both agree, last where only weak is right.
        return [float(int(s) - int(w)) for w, s in zip(weak, strong, strict=True)]
    raise ValueError(f"unknown baseline {name!r}")


GOAL_APGR = 0.65
GOAL_CPT50 = 0.30


@dataclass(frozen=True)
class FamilyResult:
    """Router vs the length baseline on one task family."""

    family: str
    seen: bool  # the predictor trained on (other rows of) this family
    subjects: tuple[str, ...]
    n: int
    router: RouterMetrics
    length: RouterMetrics


@dataclass(frozen=True)
class EvalReport:
    n: int
    split: str
    weak_quality: float
    strong_quality: float
    rows: tuple[tuple[str, RouterMetrics], ...]  # (router name, metrics)
    version: str = ""
    families: tuple[FamilyResult, ...] = ()
    unseen: tuple[tuple[str, RouterMetrics], ...] = ()  # pooled unseen rows: router, length
    # (family, router, length) from the artifact's training-time check, if it was run
    leave_one_out: tuple[tuple[str, dict[str, float], dict[str, float]], ...] = ()

    def format(self) -> str:
        lines = [
            f"predictor: {self.version}",
            f"prompts: {self.n} (split={self.split})  weak quality {self.weak_quality:.3f}  "
            f"strong quality {self.strong_quality:.3f}",
            f"{'router':<22}{'APGR':>8}{'CPT(50%)':>11}{'CPT(80%)':>11}",
        ]
        for name, m in self.rows:
            lines.append(f"{name:<22}{m.apgr:>8.3f}{m.cpt50:>10.1%} {m.cpt80:>10.1%}")
        if self.families:
            lines += [
                "",
                "per task family (unseen = never trained on: every row; seen = "
                + ("held-out rows only)" if self.split == "heldout" else "all rows, incl. training)"),
                f"{'family':<18}{'':<7}{'n':>6}{'router APGR':>13}{'length APGR':>13}"
                f"{'router CPT50':>14}{'length CPT50':>14}",
            ]
            for f in self.families:
                lines.append(
                    f"{f.family:<18}{'seen' if f.seen else 'UNSEEN':<7}{f.n:>6}"
                    f"{f.router.apgr:>13.3f}{f.length.apgr:>13.3f}"
                    f"{f.router.cpt50:>13.1%} {f.length.cpt50:>13.1%}"
                )
            for f in self.families:
                if not f.seen:
                    lines.append(f"  unseen {f.family} subjects: {', '.join(f.subjects)}")
        if self.leave_one_out:
            lines += [
                "",
                "leave-one-family-out (same recipe trained on the other seven families; recorded in",
                "the artifact by `python -m routing.training --check-generalization`)",
                f"{'held-out family':<20}{'router APGR':>13}{'length APGR':>13}"
                f"{'router CPT50':>14}{'length CPT50':>14}",
            ]
            for family, router, length in self.leave_one_out:
                lines.append(
                    f"{family:<20}{router['apgr']:>13.3f}{length['apgr']:>13.3f}"
                    f"{router['cpt50']:>13.1%} {length['cpt50']:>13.1%}"
                )
        lines += ["", *self.goal_lines()]
        return "\n".join(lines)

    def goal_lines(self) -> list[str]:
        unseen_families = [f for f in self.families if not f.seen]
        if self.unseen:
            router = dict(self.unseen)["router"]
            length = dict(self.unseen)["length"]
        else:
            router, length = dict(self.rows)["asahi-autopilot"], dict(self.rows)["length"]
        below = [f.family for f in self.families if f.router.apgr < f.length.apgr]
        if not self.families and router.apgr < length.apgr:
            below = ["(all prompts)"]

        def mark(ok: bool) -> str:
            return "met" if ok else "NOT met"

        return [
            f"goals (issue 15) on prompts of families the predictor never trained on"
            f" ({', '.join(f.family for f in unseen_families) or 'all prompts'}):",
            f"  APGR >= {GOAL_APGR:.2f}: {router.apgr:.3f} (length {length.apgr:.3f}) "
            f"-> {mark(router.apgr >= GOAL_APGR)}",
            f"  CPT(50%) <= {GOAL_CPT50:.0%}: {router.cpt50:.1%} (length {length.cpt50:.1%}) "
            f"-> {mark(router.cpt50 <= GOAL_CPT50)}",
            f"  router APGR >= length APGR on every family: "
            f"{'yes' if not below else 'below on ' + ', '.join(below)} -> {mark(not below)}",
        ]


def _metrics_pair(
    records: Sequence[Any], scores: dict[str, float], points: int | None
) -> tuple[RouterMetrics, RouterMetrics]:
    prompts = [r.prompt for r in records]
    w = [r.weak for r in records]
    s = [r.strong for r in records]
    router = evaluate_scores(scores=[scores[p] for p in prompts], weak=w, strong=s, points=points)
    length = evaluate_scores(
        scores=baseline_scores(name="length", prompts=prompts, weak=w, strong=s),
        weak=w,
        strong=s,
        points=points,
    )
    return router, length


def evaluate_responses(
    *,
    path: str,
    strong: str,
    weak: str,
    split: str | None = None,
    contaminated: str | None = None,
    points: int | None = None,
) -> EvalReport:
    """Score every prompt with the shipped predictor and the baselines (reads files: not hot path).

    `split`: "heldout" keeps the prompts the predictor never trained on: every row of an unseen
    task family (the artifact's `heldout_families`, or any file outside MMLU) and, of the families
    it trained on, the rows in held-out hash buckets; "all" keeps everything. Default: heldout for
    a directory, all for a single file. MMLU rows are also reported per task family.
    """
    from pathlib import Path

    from routing.datasets import (
        EXCLUDED_SUBJECTS,
        TASK_FAMILIES,
        family_of,
        is_heldout,
        load_contaminated,
        load_responses,
        subject_of,
    )
    from routing.difficulty import default_model

    model = default_model()
    raw_unseen = model.metadata.get("heldout_families", [])
    unseen_families = set(raw_unseen) if isinstance(raw_unseen, list) else set()

    def seen(source: str) -> bool:
        family = family_of(source)
        return family is not None and family not in unseen_families

    resolved = split or ("heldout" if Path(path).is_dir() else "all")
    if resolved not in ("heldout", "all"):
        raise ValueError("split must be 'heldout' or 'all'")
    exclude = load_contaminated(contaminated) if contaminated else frozenset()
    records = [
        r
        for r in load_responses(path=path, strong=strong, weak=weak, exclude=exclude)
        if subject_of(r.source) not in EXCLUDED_SUBJECTS
    ]
    if resolved == "heldout":
        records = [r for r in records if not seen(r.source) or is_heldout(r.prompt)]
    if not records:
        raise ValueError("no prompts to evaluate")
    prompts = [r.prompt for r in records]
    w = [r.weak for r in records]
    s = [r.strong for r in records]
    router_scores = [model.raw_score(p) for p in prompts]
    scored = [("asahi-autopilot", router_scores)]
    for name in ("random", "length", "oracle"):
        scored.append((name, baseline_scores(name=name, prompts=prompts, weak=w, strong=s)))
    rows = tuple(
        (name, evaluate_scores(scores=sc, weak=w, strong=s, points=points)) for name, sc in scored
    )

    by_prompt = dict(zip(prompts, router_scores, strict=True))
    families = []
    for family, subjects in TASK_FAMILIES.items():
        fam = [r for r in records if family_of(r.source) == family]
        # A family needs both outcomes present for PGR to be defined.
        if fam and sum(r.strong for r in fam) != sum(r.weak for r in fam):
            router, length = _metrics_pair(fam, by_prompt, points)
            present = sorted({subject_of(r.source) for r in fam})
            families.append(
                FamilyResult(
                    family=family,
                    seen=family not in unseen_families,
                    subjects=tuple(x for x in subjects if x in present),
                    n=len(fam),
                    router=router,
                    length=length,
                )
            )
    unseen_rows = [r for r in records if not seen(r.source)]
    unseen: tuple[tuple[str, RouterMetrics], ...] = ()
    if families and unseen_rows:
        router, length = _metrics_pair(unseen_rows, by_prompt, points)
        unseen = (("router", router), ("length", length))
    recorded = model.metadata.get("metrics")
    leave_one_out = []
    if isinstance(recorded, dict) and families:
        for key, value in recorded.items():
            if key.startswith("leave_out_") and isinstance(value, dict):
                leave_one_out.append((key.removeprefix("leave_out_"), value["router"],
                                      value["length"]))
    return EvalReport(
        n=len(records),
        split=resolved,
        weak_quality=sum(w) / len(w),
        strong_quality=sum(s) / len(s),
        rows=rows,
        version=model.version,
        families=tuple(families),
        unseen=unseen,
        leave_one_out=tuple(leave_one_out),
    )


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    from routing.datasets import DEFAULT_CONTAMINATED, DEFAULT_MMLU_DIR, STRONG_MMLU, WEAK_MMLU

    parser = argparse.ArgumentParser(description="Evaluate the autopilot router (APGR / CPT).")
    add_eval_arguments(
        parser,
        default_responses=str(DEFAULT_MMLU_DIR),
        default_strong=STRONG_MMLU,
        default_weak=WEAK_MMLU,
        default_contaminated=str(DEFAULT_CONTAMINATED),
    )
    args = parser.parse_args(argv)
    report = evaluate_responses(
        path=args.responses,
        strong=args.strong,
        weak=args.weak,
        split=args.split,
        contaminated=args.contaminated or None,
        points=args.points,
    )
    print(report.format())
    return 0


def add_eval_arguments(
    parser: Any,
    *,
    default_responses: str,
    default_strong: str,
    default_weak: str,
    default_contaminated: str,
) -> None:
    """Shared by `python -m routing.evaluation` and `manage.py eval_router`."""
    parser.add_argument("--responses", default=default_responses, help="CSV or directory of CSVs")
    parser.add_argument("--strong", default=default_strong, help="column of the strong model")
    parser.add_argument("--weak", default=default_weak, help="column of the weak model")
    parser.add_argument("--split", choices=("heldout", "all"), default=None)
    parser.add_argument(
        "--contaminated",
        default=default_contaminated,
        help="JSONL of prompts to drop (eval_prompt field); '' for none",
    )
    parser.add_argument(
        "--points",
        type=int,
        default=None,
        help="sample N quantile thresholds like RouteLLM (10) instead of the exact curve",
    )


if __name__ == "__main__":
    import sys

    sys.exit(main())
