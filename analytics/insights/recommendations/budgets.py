"""Budget hygiene rules: keys without a budget, budgets close to exhaustion."""

from __future__ import annotations

import math

from .types import (
    Confidence,
    Recommendation,
    RecommendationConfig,
    RecommendationInputs,
    RecommendationKind,
    money,
    monthly,
)


def suggested_budget(monthly_spend: float, *, headroom: float) -> float:
    """Monthly spend * headroom, rounded up to $1 (< $100), $10 (< $1,000) or $100."""
    target = monthly_spend * headroom
    step = 1.0 if target < 100 else 10.0 if target < 1000 else 100.0
    return max(step, math.ceil(target / step) * step)


def budget_recommendations(
    *, inputs: RecommendationInputs, config: RecommendationConfig
) -> list[Recommendation]:
    """Keys without a budget, and budgets at >= 80% use or likely to be exceeded."""
    found: list[Recommendation] = []
    for key in inputs.keys:
        if key.has_budget:
            continue
        monthly_spend = monthly(key.period_spend_usd, inputs=inputs, config=config)
        suggestion = suggested_budget(monthly_spend, headroom=config.suggested_budget_headroom)
        found.append(
            Recommendation(
                id=f"{RecommendationKind.KEY_WITHOUT_BUDGET}:{key.key_prefix}",
                kind=RecommendationKind.KEY_WITHOUT_BUDGET,
                title=f"key {key.key_prefix} has no budget",
                detail=(
                    f"Key {key.key_prefix} ({key.name}) spent {money(key.period_spend_usd)} in "
                    f"{inputs.period_days:g} days (about {money(monthly_spend)} per month) with "
                    f"no spend limit: a leaked key or a runaway loop is unbounded. Suggested "
                    f"monthly budget: "
                    f"{money(suggestion)}."
                ),
                estimated_monthly_savings_usd=None,
                confidence=Confidence.HIGH,
                evidence={
                    "key_prefix": key.key_prefix,
                    "period_spend_usd": key.period_spend_usd,
                    "monthly_spend_usd": monthly_spend,
                    "suggested_monthly_budget_usd": suggestion,
                },
            )
        )
    for budget in inputs.budgets:
        if budget.limit_usd <= 0:
            continue
        utilization = budget.spent_usd / budget.limit_usd
        likely = (
            budget.exceed_probability is not None
            and budget.exceed_probability >= config.budget_warn_probability
        )
        if utilization < config.budget_warn_utilization and not likely:
            continue
        who = "organization" if budget.scope == "organization" else "key"
        verb = "has exhausted" if utilization >= 1 else "has used"
        title = (
            f"{who} {budget.scope_id} {verb} {utilization:.0%} of its {budget.period} budget "
            f"({money(budget.spent_usd)} of {money(budget.limit_usd)})"
        )
        projection = ""
        if budget.projected_usd is not None:
            projection = f" Projected for the period: {money(budget.projected_usd)}"
            if budget.exceed_probability is not None:
                projection += f" ({budget.exceed_probability:.0%} chance of exceeding)"
            projection += "."
        found.append(
            Recommendation(
                id=f"{RecommendationKind.BUDGET_NEAR_EXHAUSTION}:{budget.scope}:{budget.scope_id}:"
                f"{budget.period}",
                kind=RecommendationKind.BUDGET_NEAR_EXHAUSTION,
                title=title,
                detail=(
                    f"Raise the limit or move traffic to cheaper models before requests are "
                    f"refused.{projection}"
                ),
                estimated_monthly_savings_usd=None,
                confidence=Confidence.HIGH,
                evidence={
                    "scope": budget.scope,
                    "scope_id": budget.scope_id,
                    "period": budget.period,
                    "limit_usd": budget.limit_usd,
                    "spent_usd": budget.spent_usd,
                    "utilization": utilization,
                    "projected_usd": budget.projected_usd,
                    "exceed_probability": budget.exceed_probability,
                },
            )
        )
    return found
