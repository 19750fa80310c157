"""Value types shared by Asahi's routing logic (pure, no Django)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_QUALITY_KEY = "default"


@dataclass(frozen=True)
class Candidate:
    """One model the router may pick, as described by the model catalogue."""

    name: str
    provider: str
    input_price_per_m: float
    output_price_per_m: float
    cached_input_price_per_m: float
    context_window: int
    # 0-5 per task type; the key "default" is the fallback for unlisted task types.
    quality: Mapping[str, float]
    typical_latency_ms: int
    healthy: bool = True

    def quality_for(self, task_type: str) -> float:
        """Catalogue quality for a task type, falling back to "default" (then 0)."""
        if task_type in self.quality:
            return float(self.quality[task_type])
        return float(self.quality.get(DEFAULT_QUALITY_KEY, 0.0))

    def estimated_cost(self, *, input_tokens: int, output_tokens: int) -> float:
        """USD cost of one call: uncached input plus the full output budget."""
        return (
            input_tokens * self.input_price_per_m + output_tokens * self.output_price_per_m
        ) / 1_000_000


@dataclass(frozen=True)
class RoutingRequest:
    """The routing-relevant part of an /infer request."""

    prompt: str
    mode: str = "autopilot"
    task_type: str | None = None
    latency_budget_ms: int | None = None
    quality_threshold: float | None = None
    cost_budget: float | None = None
    quality_preference: str | None = None
    latency_preference: str | None = None
    model_override: str | None = None
    input_tokens: int = 0
    max_output_tokens: int = 512
    allowed_models: frozenset[str] | None = None


@dataclass(frozen=True)
class ConsideredModel:
    """One candidate as the router saw it (for the decision's audit trail)."""

    name: str
    expected_quality: float
    estimated_cost: float
    typical_latency_ms: int
    feasible: bool
    rejected_because: str = ""


@dataclass(frozen=True)
class RoutingDecision:
    """What the router chose and why."""

    model: str
    mode: str
    task_type: str
    difficulty: float | None
    reason: str
    fallbacks: tuple[str, ...]
    estimated_cost: float
    considered: tuple[ConsideredModel, ...] = field(default_factory=tuple)
