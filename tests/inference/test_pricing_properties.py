"""Properties of the cost arithmetic (inference/pricing.py) over arbitrary prices and usage."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from inference import pricing
from inference.providers.types import Usage
from inference.types import ModelInfo

SETTINGS = settings(max_examples=200, deadline=None)
NINE_PLACES = Decimal("0.000000001")

price = st.decimals(min_value=0, max_value=1000, places=4)
tokens = st.integers(0, 10_000_000)


@st.composite
def models(draw: st.DrawFn) -> ModelInfo:
    return ModelInfo(
        name="m", upstream_name="m", provider="p", provider_kind="openai", base_url="", api_key="",
        kind="chat", input_price_per_m=draw(price), output_price_per_m=draw(price),
        cached_input_price_per_m=draw(st.none() | price),
        cache_write_price_per_m=draw(st.none() | price),
        context_window=128_000, max_output_tokens=4096, typical_latency_ms=100,
        supports_tools=True)


@st.composite
def usages(draw: st.DrawFn) -> Usage:
    cached = draw(tokens)
    write = draw(tokens)
    return Usage(input_tokens=cached + write + draw(tokens), cached_input_tokens=cached,
                 cache_write_tokens=write, output_tokens=draw(tokens))


def _cache_reads_discounted(model: ModelInfo) -> ModelInfo:
    """A cache read priced at most the input price, as every provider bills it."""
    if model.cached_input_price_per_m is None:
        return model
    return replace(model, cached_input_price_per_m=min(model.cached_input_price_per_m,
                                                        model.input_price_per_m))


def _is_nano(value: Decimal) -> bool:
    return isinstance(value, Decimal) and value >= 0 and value.as_tuple().exponent == -9


@SETTINGS
@given(model=models(), usage=usages())
def test_costs_are_non_negative_nano_decimals(model: ModelInfo, usage: Usage) -> None:
    assert _is_nano(pricing.cost_of(model, usage))
    assert _is_nano(pricing.baseline_cost(model, usage))
    assert pricing.baseline_cost(None, usage) == 0
    assert _is_nano(pricing.worst_case_cost(model, input_tokens=usage.input_tokens,
                                            max_output_tokens=usage.output_tokens))


@SETTINGS
@given(model=models(), a=usages(), b=usages())
def test_cost_is_additive_over_token_counts(model: ModelInfo, a: Usage, b: Usage) -> None:
    both = Usage(input_tokens=a.input_tokens + b.input_tokens,
                 cached_input_tokens=a.cached_input_tokens + b.cached_input_tokens,
                 cache_write_tokens=a.cache_write_tokens + b.cache_write_tokens,
                 output_tokens=a.output_tokens + b.output_tokens)
    # Each part is rounded to the nano-dollar, so the sum of parts may differ by one per part.
    gap = abs(pricing.cost_of(model, both) - pricing.cost_of(model, a) - pricing.cost_of(model, b))
    assert gap <= 2 * NINE_PLACES


@SETTINGS
@given(model=models(), usage=usages())
def test_cached_input_never_costs_more_than_uncached(model: ModelInfo, usage: Usage) -> None:
    model = _cache_reads_discounted(model)
    plain = Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                  cache_write_tokens=usage.cache_write_tokens)
    assert pricing.cost_of(model, usage) <= pricing.cost_of(model, plain)


@SETTINGS
@given(model=models(), usage=usages())
def test_worst_case_bounds_the_billed_cost(model: ModelInfo, usage: Usage) -> None:
    worst = pricing.worst_case_cost(model, input_tokens=usage.input_tokens,
                                    max_output_tokens=usage.output_tokens)
    model = _cache_reads_discounted(model)
    assert pricing.cost_of(model, usage) <= worst


@SETTINGS
@given(usd=st.decimals(min_value=0, max_value=10**6, places=12))
def test_nano_round_trip_never_undercounts(usd: Decimal) -> None:
    nano = pricing.to_nano(usd)
    assert pricing.from_nano(nano) >= usd
    assert pricing.from_nano(nano) - usd < NINE_PLACES
