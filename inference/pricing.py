"""Cost arithmetic in Decimal USD, exact to the nano-dollar, from provider-reported usage."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal

from inference.providers.types import Usage
from inference.types import ModelInfo

NANO = Decimal("0.000000001")
MILLION = Decimal(1_000_000)


def _q(value: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    return value.quantize(NANO, rounding=rounding)


def cost_of(model: ModelInfo, usage: Usage) -> Decimal:
    """What the provider bills: uncached input, cache reads and writes, and output at their prices."""
    cached_price = model.cached_input_price_per_m if model.cached_input_price_per_m is not None \
        else model.input_price_per_m
    write_price = model.cache_write_price_per_m if model.cache_write_price_per_m is not None \
        else model.input_price_per_m
    total = (
        Decimal(usage.uncached_input_tokens) * model.input_price_per_m
        + Decimal(usage.cached_input_tokens) * cached_price
        + Decimal(usage.cache_write_tokens) * write_price
        + Decimal(usage.output_tokens) * model.output_price_per_m
    ) / MILLION
    return _q(total)


def worst_case_cost(model: ModelInfo, *, input_tokens: int, max_output_tokens: int) -> Decimal:
    """The most a request can cost: every prompt token at the highest input price plus max output."""
    in_price = max(model.input_price_per_m, model.cache_write_price_per_m or Decimal(0))
    total = (Decimal(input_tokens) * in_price
             + Decimal(max_output_tokens) * model.output_price_per_m) / MILLION
    return _q(total, ROUND_CEILING)


def baseline_cost(reference: ModelInfo | None, usage: Usage) -> Decimal:
    """What the same tokens would have cost on the organization's reference model, uncached."""
    if reference is None:
        return Decimal(0)
    plain = Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
    return cost_of(reference, plain)


def to_nano(usd: Decimal) -> int:
    return int((usd / NANO).to_integral_value(rounding=ROUND_CEILING))


def from_nano(nano: int) -> Decimal:
    return Decimal(nano) * NANO


def estimate_tokens(text_chars: int, messages: int = 1) -> int:
    """A deliberately generous prompt-token estimate for reservations (about 3 chars per token)."""
    return text_chars // 3 + 4 * messages + 8
