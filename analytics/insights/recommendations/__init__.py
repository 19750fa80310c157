"""Concrete, quantified cost recommendations from usage, catalogue, cache and budget facts (pure).

Every rule turns plain dataclasses into ``Recommendation`` objects whose savings are computed from
the inputs (never guessed constants); the result is sorted by estimated monthly savings, rules
without a dollar figure (budget hygiene) last. Monthly figures scale the observed period linearly:
``monthly = period value * days_per_month / period_days``.
"""

from __future__ import annotations

from .budgets import budget_recommendations, suggested_budget
from .cache import cache_recommendations
from .routing import route_recommendations
from .types import (
    DEFAULT_QUALITY_KEY,
    BudgetStatus,
    CacheTierStats,
    CacheTraffic,
    CatalogueModel,
    Confidence,
    KeyInfo,
    ModelUsage,
    Recommendation,
    RecommendationConfig,
    RecommendationInputs,
    RecommendationKind,
    money,
)

__all__ = [
    "DEFAULT_QUALITY_KEY",
    "BudgetStatus",
    "CacheTierStats",
    "CacheTraffic",
    "CatalogueModel",
    "Confidence",
    "KeyInfo",
    "ModelUsage",
    "Recommendation",
    "RecommendationConfig",
    "RecommendationInputs",
    "RecommendationKind",
    "budget_recommendations",
    "build_recommendations",
    "cache_recommendations",
    "money",
    "route_recommendations",
    "suggested_budget",
]


def build_recommendations(
    *, inputs: RecommendationInputs, config: RecommendationConfig | None = None
) -> list[Recommendation]:
    """All recommendations, biggest estimated monthly savings first (None last)."""
    if inputs.period_days <= 0:
        raise ValueError("period_days must be positive")
    config = config or RecommendationConfig()
    found: list[Recommendation] = [
        *route_recommendations(inputs=inputs, config=config),
        *cache_recommendations(inputs=inputs, config=config),
        *budget_recommendations(inputs=inputs, config=config),
    ]
    kind_order = {kind: i for i, kind in enumerate(RecommendationKind)}
    found.sort(
        key=lambda r: (
            r.estimated_monthly_savings_usd is None,
            -(r.estimated_monthly_savings_usd or 0.0),
            kind_order[r.kind],
            r.id,
        )
    )
    return found
