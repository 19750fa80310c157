"""Shared helpers for routing tests (a small catalogue built from real Candidate values)."""

from __future__ import annotations

import pytest

from routing.types import Candidate


def make_candidate(
    name: str,
    *,
    price_in: float,
    price_out: float,
    quality: float,
    latency: int = 500,
    healthy: bool = True,
    context: int = 128_000,
    per_task: dict[str, float] | None = None,
) -> Candidate:
    return Candidate(
        name=name,
        provider="openai",
        input_price_per_m=price_in,
        output_price_per_m=price_out,
        cached_input_price_per_m=price_in / 2,
        context_window=context,
        quality={"default": quality, **(per_task or {})},
        typical_latency_ms=latency,
        healthy=healthy,
    )


@pytest.fixture
def catalogue() -> list[Candidate]:
    return [
        make_candidate("tiny", price_in=0.05, price_out=0.2, quality=2.0, latency=200),
        make_candidate("small", price_in=0.15, price_out=0.6, quality=3.9, latency=400),
        make_candidate("large", price_in=2.5, price_out=10.0, quality=4.6, latency=900),
        make_candidate("frontier", price_in=15.0, price_out=60.0, quality=4.9, latency=2500),
    ]
