"""Typed snapshots of the catalogue that the pipeline, router and cache read."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True)
class ModelInfo:
    name: str
    upstream_name: str
    provider: str
    provider_kind: str
    base_url: str
    api_key: str
    kind: str
    input_price_per_m: Decimal
    output_price_per_m: Decimal
    cached_input_price_per_m: Decimal | None
    cache_write_price_per_m: Decimal | None
    context_window: int
    max_output_tokens: int
    typical_latency_ms: int
    supports_tools: bool
    quality: dict[str, float] = field(default_factory=dict)

    def quality_for(self, task_type: str) -> float:
        return float(self.quality.get(task_type, self.quality.get("default", 3.0)))
