"""Routing rule: the same tokens on a cheaper model of comparable quality."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .types import (
    CatalogueModel,
    Confidence,
    ModelUsage,
    Recommendation,
    RecommendationConfig,
    RecommendationInputs,
    RecommendationKind,
    money,
    monthly,
)


@dataclass(frozen=True)
class _Quality:
    value: float
    measured: bool
    samples: int


def route_recommendations(
    *, inputs: RecommendationInputs, config: RecommendationConfig
) -> list[Recommendation]:
    """Per (task type, model): the catalogue model saving most within the quality tolerance.

    Savings reprice the pair's actual tokens at the alternative's prices (assumes a similar output
    length). Quality is the measured feedback mean once it has ``min_feedback`` votes for that pair,
    else the catalogue's score for the task type.
    """
    catalogue = {m.name: m for m in inputs.catalogue}
    usage_by_pair = {(u.task_type, u.model): u for u in inputs.usage}
    found: list[Recommendation] = []
    for usage in inputs.usage:
        if usage.requests < config.min_route_requests or usage.cost_usd <= 0:
            continue
        current_q = _quality(usage.task_type, usage.model, usage_by_pair, catalogue, config)
        if current_q is None:
            continue
        best: tuple[float, CatalogueModel, _Quality, float] | None = None
        for alt in inputs.catalogue:
            if alt.name == usage.model:
                continue
            alt_q = _quality(usage.task_type, alt.name, usage_by_pair, catalogue, config)
            if alt_q is None or alt_q.value < current_q.value - config.quality_tolerance:
                continue
            alt_cost = alt.cost(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
            saving = monthly(usage.cost_usd - alt_cost, inputs=inputs, config=config)
            if best is None or (saving, alt_q.value) > (best[0], best[2].value):
                best = (saving, alt, alt_q, alt_cost)
        if best is None or best[0] < config.min_monthly_savings_usd:
            continue
        saving, alt, alt_q, alt_cost = best
        found.append(
            _route_recommendation(
                usage,
                alt,
                current_q=current_q,
                alt_q=alt_q,
                alt_cost=alt_cost,
                saving=saving,
                inputs=inputs,
                config=config,
            )
        )
    return found


def _quality(
    task_type: str,
    model: str,
    usage_by_pair: Mapping[tuple[str, str], ModelUsage],
    catalogue: Mapping[str, CatalogueModel],
    config: RecommendationConfig,
) -> _Quality | None:
    usage = usage_by_pair.get((task_type, model))
    if (
        usage is not None
        and usage.measured_quality is not None
        and usage.feedback_count >= config.min_feedback
    ):
        return _Quality(float(usage.measured_quality), measured=True, samples=usage.feedback_count)
    entry = catalogue.get(model)
    score = entry.quality_for(task_type) if entry is not None else None
    return None if score is None else _Quality(score, measured=False, samples=0)


def _quality_phrase(alt_q: _Quality, current_q: _Quality) -> str:
    if alt_q.measured and current_q.measured:
        return f"measured quality {alt_q.value:.1f} vs {current_q.value:.1f}"
    if not alt_q.measured and not current_q.measured:
        return f"catalogue quality {alt_q.value:.1f} vs {current_q.value:.1f}"

    def src(q: _Quality) -> str:
        return "measured" if q.measured else "catalogue"

    return f"quality {alt_q.value:.1f} ({src(alt_q)}) vs {current_q.value:.1f} ({src(current_q)})"


def _route_recommendation(
    usage: ModelUsage,
    alt: CatalogueModel,
    *,
    current_q: _Quality,
    alt_q: _Quality,
    alt_cost: float,
    saving: float,
    inputs: RecommendationInputs,
    config: RecommendationConfig,
) -> Recommendation:
    measured = int(current_q.measured) + int(alt_q.measured)
    enough = min(current_q.samples, alt_q.samples) >= config.high_confidence_feedback
    confidence = (
        Confidence.HIGH
        if measured == 2 and enough
        else Confidence.MEDIUM
        if measured >= 1
        else Confidence.LOW
    )
    title = (
        f"route {usage.task_type} from {usage.model} to {alt.name}: {money(-saving)} per month "
        f"at {_quality_phrase(alt_q, current_q)}"
    )
    detail = (
        f"{usage.task_type} on {usage.model} cost {money(usage.cost_usd)} for {usage.requests:,} "
        f"requests over {inputs.period_days:g} days. The same {usage.input_tokens:,} input and "
        f"{usage.output_tokens:,} output tokens on {alt.name} would cost {money(alt_cost)} "
        f"({money(alt.input_price_per_m)}/{money(alt.output_price_per_m)} per million tokens), "
        f"saving about {money(saving)} per {config.days_per_month:g}-day month. Assumes similar "
        f"output length; quality stays within {config.quality_tolerance:g} points."
    )
    return Recommendation(
        id=f"{RecommendationKind.ROUTE_CHEAPER_MODEL}:{usage.task_type}:{usage.model}:{alt.name}",
        kind=RecommendationKind.ROUTE_CHEAPER_MODEL,
        title=title,
        detail=detail,
        estimated_monthly_savings_usd=saving,
        confidence=confidence,
        evidence={
            "task_type": usage.task_type,
            "from_model": usage.model,
            "to_model": alt.name,
            "requests": usage.requests,
            "period_cost_usd": usage.cost_usd,
            "alternative_period_cost_usd": alt_cost,
            "current_quality": current_q.value,
            "current_quality_source": "measured" if current_q.measured else "catalogue",
            "current_feedback_count": current_q.samples,
            "alternative_quality": alt_q.value,
            "alternative_quality_source": "measured" if alt_q.measured else "catalogue",
            "alternative_feedback_count": alt_q.samples,
            "period_days": inputs.period_days,
        },
    )
