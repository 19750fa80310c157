"""Inputs and outputs of the recommendation rules (plain frozen dataclasses)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

DEFAULT_QUALITY_KEY = "default"


class Confidence(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class RecommendationKind(StrEnum):
    ROUTE_CHEAPER_MODEL = "route_cheaper_model"
    CACHE_TEMPERATURE = "cache_temperature"
    CACHE_OPT_OUT = "cache_opt_out"
    SEMANTIC_NEAR_MISSES = "semantic_near_misses"
    KEY_WITHOUT_BUDGET = "key_without_budget"
    BUDGET_NEAR_EXHAUSTION = "budget_near_exhaustion"


# --- inputs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelUsage:
    """Spend of one (task type, model) pair over the analysed period."""

    task_type: str
    model: str
    requests: int
    cost_usd: float
    input_tokens: int
    output_tokens: int
    measured_quality: float | None = None  # mean user feedback, 0-5
    feedback_count: int = 0


@dataclass(frozen=True)
class CatalogueModel:
    name: str
    input_price_per_m: float
    output_price_per_m: float
    quality: Mapping[str, float]  # 0-5 per task type; "default" is the fallback

    def quality_for(self, task_type: str) -> float | None:
        if task_type in self.quality:
            return float(self.quality[task_type])
        if DEFAULT_QUALITY_KEY in self.quality:
            return float(self.quality[DEFAULT_QUALITY_KEY])
        return None

    def cost(self, *, input_tokens: int, output_tokens: int) -> float:
        return (
            input_tokens * self.input_price_per_m + output_tokens * self.output_price_per_m
        ) / 1_000_000


@dataclass(frozen=True)
class CacheTierStats:
    tier: str  # "exact" | "semantic" | "intermediate"
    lookups: int
    hits: int
    # Semantic tier: best candidate scored in [near_miss_floor, threshold) — almost a hit.
    near_misses: int = 0


@dataclass(frozen=True)
class CacheTraffic:
    """Request-level cache facts over the period."""

    total_requests: int
    # Requests that consulted the cache at all (not no-cache, temperature within the limit).
    eligible_requests: int
    cache_hits: int  # hits over all tiers
    high_temperature_requests: int  # temperature above the cache limit: never cached
    no_cache_requests: int  # explicit opt-out (Cache-Control: no-cache / cache=false)
    temperature_limit: float
    # Mean upstream cost of a request that missed the cache — what one extra hit saves.
    avg_miss_cost_usd: float
    semantic_threshold: float | None = None
    near_miss_floor: float | None = None


@dataclass(frozen=True)
class KeyInfo:
    key_prefix: str  # display id, e.g. "ak_12ab"
    name: str
    period_spend_usd: float
    has_budget: bool


@dataclass(frozen=True)
class BudgetStatus:
    scope: str  # "organization" | "key"
    scope_id: str  # display id (org slug or key prefix)
    period: str  # "daily" | "monthly"
    limit_usd: float
    spent_usd: float
    projected_usd: float | None = None  # e.g. MonthEndForecast.projected_usd
    exceed_probability: float | None = None


@dataclass(frozen=True)
class RecommendationInputs:
    period_days: float
    usage: Sequence[ModelUsage] = ()
    catalogue: Sequence[CatalogueModel] = ()
    cache_tiers: Sequence[CacheTierStats] = ()
    cache_traffic: CacheTraffic | None = None
    keys: Sequence[KeyInfo] = ()
    budgets: Sequence[BudgetStatus] = ()


@dataclass(frozen=True)
class RecommendationConfig:
    days_per_month: float = 30.0
    quality_tolerance: float = 0.2  # accept a cheaper model at most this much worse (0-5 scale)
    min_feedback: int = 20  # feedback count before measured quality replaces the catalogue's
    high_confidence_feedback: int = 100
    min_route_requests: int = 50
    min_monthly_savings_usd: float = 1.0
    low_semantic_hit_rate: float = 0.10
    high_temperature_share: float = 0.20
    no_cache_share: float = 0.20
    near_miss_share: float = 0.05
    budget_warn_utilization: float = 0.80
    budget_warn_probability: float = 0.50
    suggested_budget_headroom: float = 1.25


# --- output -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recommendation:
    id: str  # stable across runs (for dismissing in the UI)
    kind: RecommendationKind
    title: str
    detail: str
    estimated_monthly_savings_usd: float | None
    confidence: Confidence
    evidence: dict[str, Any] = field(default_factory=dict)


def money(value: float) -> str:
    """Dollar amount "$1,234.50"; negative amounts with a true minus sign (U+2212)."""
    sign = "\u2212" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"


def monthly(value: float, *, inputs: RecommendationInputs, config: RecommendationConfig) -> float:
    return value * config.days_per_month / inputs.period_days
