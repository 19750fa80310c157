"""The pure router: pick the cheapest model expected to answer this prompt well enough.

Expected quality. A catalogue quality q (0-5, per task type) describes a model on a prompt of
*average* difficulty. A prompt's predicted difficulty d (probability the strong model is needed, see
routing.difficulty) shifts that: a model loses (or gains) part of its headroom to a perfect 5 in
proportion to how much harder (or easier) than average the prompt is:

    expected_quality = clip(q - GAMMA * (d - d_ref) * (5 - q), 0, 5)

d_ref is the predictor's base rate on its training data. Strong models (q near 5) barely move;
weak ones drop fast on hard prompts, which is exactly when routing should escalate.

Selection. Candidates are filtered (allowed, healthy = circuit closed, context window fits). A
candidate is feasible if expected quality >= threshold, estimated cost <= cost_budget and typical
latency <= latency budget. The cheapest feasible one wins (ties: higher quality, then faster); the
other feasible ones by cost, then budget-respecting ones by quality, form the fallback chain. If none
is feasible: a soft (default) quality threshold degrades to the best model within budget; otherwise
InfeasibleConstraints names the constraint that cannot be met and the closest feasible model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from routing.constraints import Constraints, interpret
from routing.exceptions import (
    InfeasibleConstraints,
    InvalidRoutingInput,
    ModelNotAllowed,
    NoModelsAvailable,
)
from routing.task_detection import detect_task_type
from routing.types import Candidate, ConsideredModel, RoutingDecision, RoutingRequest

GAMMA = 2.0
DEFAULT_REFERENCE_DIFFICULTY = 0.18
MAX_FALLBACKS = 4
QUALITY_CAP = 5.0


def expected_quality(
    *, catalogue_quality: float, difficulty: float | None, reference: float
) -> float:
    """Catalogue quality adjusted for this prompt's difficulty (formula in the module docstring)."""
    if difficulty is None:
        return catalogue_quality
    q = catalogue_quality - GAMMA * (difficulty - reference) * (QUALITY_CAP - catalogue_quality)
    return min(QUALITY_CAP, max(0.0, q))


@dataclass(frozen=True)
class _Scored:
    cand: Candidate
    quality: float
    cost: float
    meets_quality: bool
    meets_cost: bool
    meets_latency: bool

    @property
    def feasible(self) -> bool:
        return self.meets_quality and self.meets_cost and self.meets_latency

    def why_not(self) -> str:
        parts = []
        if not self.meets_quality:
            parts.append("quality")
        if not self.meets_cost:
            parts.append("cost")
        if not self.meets_latency:
            parts.append("latency")
        return "+".join(parts)

    def as_considered(self) -> ConsideredModel:
        return ConsideredModel(
            name=self.cand.name,
            expected_quality=round(self.quality, 3),
            estimated_cost=self.cost,
            typical_latency_ms=self.cand.typical_latency_ms,
            feasible=self.feasible,
            rejected_because=self.why_not(),
        )


def route(
    *,
    request: RoutingRequest,
    candidates: Sequence[Candidate],
    predict_difficulty: Callable[[str], float] | None = None,
    reference_difficulty: float | None = None,
) -> RoutingDecision:
    """Choose a model for `request` among `candidates` (pure; no I/O once the predictor is loaded).

    `predict_difficulty` defaults to the shipped learned predictor; pass another callable (e.g. in
    tests, or `lambda p: 0.5`) to replace it.
    """
    cons = interpret(request)
    if cons.mode == "explicit":
        return _route_explicit(request=request, cons=cons, candidates=candidates)

    task = cons.task_type or detect_task_type(request.prompt).name
    predictor = ""  # names the shipped artifact in the reason; a caller's own predictor is unnamed
    if predict_difficulty is None or reference_difficulty is None:
        from routing.difficulty import default_model

        model = default_model()
        if predict_difficulty is None:
            predict_difficulty, predictor = model.predict, f" ({model.version})"
        if reference_difficulty is None:
            base = model.metadata.get("base_rate", DEFAULT_REFERENCE_DIFFICULTY)
            reference_difficulty = float(base) if isinstance(base, int | float) else 0.18
    difficulty = float(predict_difficulty(request.prompt))

    pool = _eligible(request=request, cons=cons, candidates=candidates)
    scored = [
        _score(
            c, task=task, difficulty=difficulty, ref=reference_difficulty, req=request, cons=cons
        )
        for c in pool
    ]
    feasible = sorted(
        (s for s in scored if s.feasible),
        key=lambda s: (s.cost, -s.quality, s.cand.typical_latency_ms, s.cand.name),
    )
    within_budget = sorted(
        (s for s in scored if s.meets_cost and s.meets_latency and not s.meets_quality),
        key=lambda s: (-s.quality, s.cost, s.cand.name),
    )
    if feasible:
        chosen, why = (
            feasible[0],
            (
                f"cheapest of {len(feasible)} candidate(s) expected to reach quality "
                f"{cons.quality_threshold:g}" + _budget_text(cons)
            ),
        )
        rest = feasible[1:] + within_budget
    elif within_budget and not cons.quality_is_hard:
        chosen, why = (
            within_budget[0],
            (
                f"no candidate is expected to reach the default quality {cons.quality_threshold:g}; "
                "took the highest expected quality" + _budget_text(cons)
            ),
        )
        rest = within_budget[1:]
    else:
        raise _infeasible(scored=scored, cons=cons)

    considered = tuple(s.as_considered() for s in scored)
    listing = ", ".join(
        f"{s.cand.name} (q~{s.quality:.2f}, ${s.cost:.6f}, {s.cand.typical_latency_ms} ms"
        + ("" if s.feasible else f", fails {s.why_not()}")
        + ")"
        for s in sorted(scored, key=lambda s: s.cost)
    )
    reason = (
        f"{cons.mode}: task type {task}, predicted difficulty {difficulty:.2f}{predictor}; "
        f"quality threshold "
        f"{cons.quality_threshold:g} ({cons.quality_source}). Considered {listing}. "
        f"Chose {chosen.cand.name}: {why}."
    )
    return RoutingDecision(
        model=chosen.cand.name,
        mode=cons.mode,
        task_type=task,
        difficulty=round(difficulty, 4),
        reason=reason,
        fallbacks=tuple(s.cand.name for s in rest[:MAX_FALLBACKS]),
        estimated_cost=chosen.cost,
        considered=considered,
    )


def _route_explicit(
    *, request: RoutingRequest, cons: Constraints, candidates: Sequence[Candidate]
) -> RoutingDecision:
    name = cons.model_override or ""
    if cons.allowed_models is not None and name not in cons.allowed_models:
        raise ModelNotAllowed(name)
    match = next((c for c in candidates if c.name == name), None)
    if match is None:
        raise InvalidRoutingInput(
            "model_override",
            f"Unknown model {name!r}.",
            tuple(sorted(c.name for c in candidates)),
        )
    if not match.healthy:
        # Explicit means explicit: never silently route elsewhere.
        raise NoModelsAvailable(
            f"{name} is unavailable (circuit open) and routing_mode is explicit."
        )
    cost = match.estimated_cost(
        input_tokens=request.input_tokens, output_tokens=request.max_output_tokens
    )
    task = cons.task_type or "unspecified"
    return RoutingDecision(
        model=name,
        mode="explicit",
        task_type=task,
        difficulty=None,
        reason=f"explicit: model_override={name}; no routing performed, no fallbacks.",
        fallbacks=(),
        estimated_cost=cost,
        considered=(),
    )


def _eligible(
    *, request: RoutingRequest, cons: Constraints, candidates: Sequence[Candidate]
) -> list[Candidate]:
    allowed = [
        c for c in candidates if cons.allowed_models is None or c.name in cons.allowed_models
    ]
    if not allowed:
        raise NoModelsAvailable("No catalogue model is allowed for this key.")
    healthy = [c for c in allowed if c.healthy]
    if not healthy:
        raise NoModelsAvailable(
            "Every allowed model is unavailable (circuit open): "
            + ", ".join(sorted(c.name for c in allowed))
        )
    need = request.input_tokens + request.max_output_tokens
    fits = [c for c in healthy if c.context_window >= need]
    if not fits:
        raise NoModelsAvailable(f"No healthy model has a context window of {need} tokens.")
    return fits


def _score(
    cand: Candidate,
    *,
    task: str,
    difficulty: float,
    ref: float,
    req: RoutingRequest,
    cons: Constraints,
) -> _Scored:
    q = expected_quality(
        catalogue_quality=cand.quality_for(task), difficulty=difficulty, reference=ref
    )
    cost = cand.estimated_cost(input_tokens=req.input_tokens, output_tokens=req.max_output_tokens)
    return _Scored(
        cand=cand,
        quality=q,
        cost=cost,
        meets_quality=q >= cons.quality_threshold,
        meets_cost=cons.cost_budget is None or cost <= cons.cost_budget,
        meets_latency=cons.latency_budget_ms is None
        or cand.typical_latency_ms <= cons.latency_budget_ms,
    )


def _budget_text(cons: Constraints) -> str:
    parts = []
    if cons.latency_budget_ms is not None:
        parts.append(f"latency <= {cons.latency_budget_ms} ms ({cons.latency_source})")
    if cons.cost_budget is not None:
        parts.append(f"cost <= ${cons.cost_budget:g}")
    return (" within " + " and ".join(parts)) if parts else ""


def _infeasible(*, scored: list[_Scored], cons: Constraints) -> InfeasibleConstraints:
    """Name the constraint whose relaxation alone would make some model feasible."""
    relax = [
        (
            "quality_threshold",
            [s for s in scored if s.meets_cost and s.meets_latency],
            lambda s: (-s.quality, s.cost),
            lambda s: f"best reachable expected quality is {s.quality:.2f} ({s.cand.name})",
        ),
        (
            "cost_budget",
            [s for s in scored if s.meets_quality and s.meets_latency],
            lambda s: (s.cost, -s.quality),
            lambda s: f"cheapest model meeting the rest costs ${s.cost:.6f} ({s.cand.name})",
        ),
        (
            "latency_budget_ms",
            [s for s in scored if s.meets_quality and s.meets_cost],
            lambda s: (s.cand.typical_latency_ms, s.cost),
            lambda s: (
                f"fastest model meeting the rest takes {s.cand.typical_latency_ms} ms "
                f"({s.cand.name})"
            ),
        ),
    ]
    for name, pool, key, describe in relax:
        if pool:
            best = min(pool, key=key)
            return InfeasibleConstraints(
                name,
                f"No model satisfies {name} together with the other constraints; {describe(best)}.",
                best.cand.name,
            )
    # Two or more constraints fail for every model: offer the best quality per dollar.
    best = max(scored, key=lambda s: (s.quality / max(s.cost, 1e-12), -s.cost))
    return InfeasibleConstraints(
        "combination",
        "No model satisfies more than one of quality_threshold, cost_budget and latency budget "
        f"at once; closest is {best.cand.name} (q~{best.quality:.2f}, ${best.cost:.6f}).",
        best.cand.name,
    )
