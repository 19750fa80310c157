"""Asahi's Prometheus metrics, defined once, plus the helpers the request pipeline calls.

Process model: ``prometheus_client`` keeps counters in process memory, so with several server
processes (uvicorn/gunicorn workers) each ``/metrics`` scrape sees one worker's numbers. Two
answers, both supported:

* ``/analytics/prometheus`` also exports ledger-derived totals (requests, tokens, cost per
  organization/model), exact across processes and restarts: the source of truth for money.
* For the live in-process series, set ``PROMETHEUS_MULTIPROC_DIR`` (an empty, writable directory,
  wiped at deploy) *before* the process starts: ``prometheus_client`` then writes values to mmap
  files and :func:`render_latest` merges all workers with ``MultiProcessCollector``. Gauges
  declare a multiprocess mode: budget utilisation ``mostrecent`` (the latest write wins), circuit
  state ``max`` (the most pessimistic breaker view).

Importing this module twice (autoreload, ``importlib.reload``, two import paths) must not raise
"Duplicated timeseries": ``_metric`` returns the collector already registered under that name.
"""

from __future__ import annotations

import atexit
import os
from typing import Any, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = [
    "BUDGET_UTILIZATION",
    "CACHE_HITS",
    "CIRCUIT_STATE",
    "CONTENT_TYPE_LATEST",
    "COST_USD",
    "LEDGER_DEAD_LETTERS",
    "LEDGER_DROPPED",
    "LOOP_LAG",
    "LOOP_LAG_MAX",
    "REQUESTS",
    "TOKENS",
    "UPSTREAM_LATENCY",
    "CircuitState",
    "count_ledger_dead_letter",
    "count_ledger_dropped",
    "observe_request",
    "observe_upstream",
    "render_latest",
    "set_budget_utilization",
    "set_circuit_state",
]

# LLM calls run from ~100 ms (small model, cached prefix) to minutes (long reasoning outputs).
LATENCY_BUCKETS: tuple[float, ...] = (
    0.05,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    3.0,
    5.0,
    7.5,
    10.0,
    15.0,
    20.0,
    30.0,
    60.0,
    120.0,
    300.0,
)

_M = TypeVar("_M", Counter, Gauge, Histogram)


def _metric(
    cls: type[_M], name: str, documentation: str, labelnames: tuple[str, ...], **kwargs: Any
) -> _M:
    """Create the collector in the default registry, or return the one registered before."""
    # The registry maps every exposed sample name ("x_total", "x_bucket", ...) to its collector;
    # there is no public lookup API.
    existing = REGISTRY._names_to_collectors.get(name)
    if existing is not None:
        if not isinstance(existing, cls):
            raise TypeError(f"metric {name!r} already registered as {type(existing).__name__}")
        return existing
    return cls(name, documentation, labelnames, **kwargs)


REQUESTS = _metric(
    Counter,
    "asahi_requests_total",
    "Gateway requests by organization, served model, outcome status and cache tier.",
    ("org", "model", "status", "cache_tier"),
)
TOKENS = _metric(
    Counter,
    "asahi_tokens_total",
    "Tokens billed by direction (input, cached_input, output, reasoning).",
    ("org", "model", "direction"),
)
COST_USD = _metric(
    Counter,
    "asahi_cost_usd_total",
    "Upstream cost in US dollars (cache hits cost 0).",
    ("org", "model"),
)
CACHE_HITS = _metric(
    Counter,
    "asahi_cache_hits_total",
    "Cache hits by tier (exact, semantic, intermediate).",
    ("tier",),
)
UPSTREAM_LATENCY = _metric(
    Histogram,
    "asahi_upstream_latency_seconds",
    "Latency of upstream LLM calls (until the full response).",
    ("provider", "model"),
    buckets=LATENCY_BUCKETS,
)
BUDGET_UTILIZATION = _metric(
    Gauge,
    "asahi_budget_utilization_ratio",
    "Spent / limit of an organization budget for the period (1.0 = exhausted).",
    ("org", "period"),
    multiprocess_mode="mostrecent",
)
CIRCUIT_STATE = _metric(
    Gauge,
    "asahi_circuit_state",
    "Circuit breaker per upstream: 0 closed, 1 half-open, 2 open.",
    ("provider", "model"),
    multiprocess_mode="max",
)

LEDGER_DEAD_LETTERS = _metric(
    Counter,
    "asahi_ledger_dead_letters_total",
    "Buffered rows the ledger writer could not insert and set aside (kind: event, payload, audit).",
    ("kind",),
)
LEDGER_DROPPED = _metric(
    Counter,
    "asahi_ledger_dropped_total",
    "Rows dropped because the ledger buffer was full while the database was unreachable.",
    ("kind",),
)

# Loop lag: a healthy loop is late by well under a millisecond; a stall shows up in the tail.
LOOP_LAG_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)
LOOP_LAG = _metric(
    Histogram,
    "asahi_event_loop_lag_seconds",
    "How late the web process's event loop ran a periodic timer (sampled every 0.2 s).",
    (),
    buckets=LOOP_LAG_BUCKETS,
)
LOOP_LAG_MAX = _metric(
    Gauge,
    "asahi_event_loop_lag_max_seconds",
    "Largest event-loop lag over the last 5 s, per web process (a pid label in multiprocess mode).",
    (),
    multiprocess_mode="liveall",
)
# A collection stops every thread of the process, the event loop included.
GC_PAUSE = _metric(
    Histogram,
    "asahi_gc_pause_seconds",
    "Wall time of each garbage collection in a web process, by generation (2 = full pass).",
    ("generation",),
    buckets=LOOP_LAG_BUCKETS,
)


class CircuitState:
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2

    _BY_NAME = {"closed": CLOSED, "half_open": HALF_OPEN, "half-open": HALF_OPEN, "open": OPEN}

    @classmethod
    def value_of(cls, state: int | str) -> int:
        if isinstance(state, str):
            return cls._BY_NAME[state.lower()]
        if state not in (cls.CLOSED, cls.HALF_OPEN, cls.OPEN):
            raise ValueError(f"unknown circuit state {state!r}")
        return state


def observe_request(
    *,
    org: str,
    model: str,
    status: str,
    cache_tier: str = "miss",
    input_tokens: int = 0,
    cached_input_tokens: int = 0,
    output_tokens: int = 0,
    reasoning_tokens: int = 0,
    cost_usd: float = 0.0,
) -> None:
    """Count one finished gateway request (call once per request, after the ledger row is built).

    ``model`` is empty for requests that never reached a model (auth/budget refusals): keep it "".
    """
    REQUESTS.labels(org=org, model=model, status=status, cache_tier=cache_tier).inc()
    for direction, tokens in (
        ("input", input_tokens),
        ("cached_input", cached_input_tokens),
        ("output", output_tokens),
        ("reasoning", reasoning_tokens),
    ):
        if tokens:
            TOKENS.labels(org=org, model=model, direction=direction).inc(tokens)
    if cost_usd:
        COST_USD.labels(org=org, model=model).inc(float(cost_usd))
    if cache_tier not in ("miss", ""):
        CACHE_HITS.labels(tier=cache_tier).inc()


def observe_upstream(*, provider: str, model: str, seconds: float) -> None:
    """Record one upstream call's latency (successful or not)."""
    UPSTREAM_LATENCY.labels(provider=provider, model=model).observe(seconds)


def set_budget_utilization(*, org: str, period: str, spent_usd: float, limit_usd: float) -> float:
    """Publish spent/limit for an organization budget; returns the ratio (0 if no limit)."""
    ratio = float(spent_usd) / float(limit_usd) if limit_usd else 0.0
    BUDGET_UTILIZATION.labels(org=org, period=period).set(ratio)
    return ratio


def set_circuit_state(*, provider: str, model: str, state: int | str) -> None:
    """Publish a breaker transition (0/"closed", 1/"half_open", 2/"open")."""
    CIRCUIT_STATE.labels(provider=provider, model=model).set(CircuitState.value_of(state))


def count_ledger_dead_letter(*, kind: str) -> None:
    """Count one row the ledger writer set aside (see inference.models.LedgerDeadLetter)."""
    LEDGER_DEAD_LETTERS.labels(kind=kind).inc()


def count_ledger_dropped(*, kind: str, rows: int = 1) -> None:
    """Count rows lost because the ledger buffer hit its cap (ASAHI_LEDGER_MAX_PENDING)."""
    LEDGER_DROPPED.labels(kind=kind).inc(rows)


def _mark_dead() -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(os.getpid())


if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # A worker that exits drops its live gauges (loop lag) from the merged view; its counters stay.
    atexit.register(_mark_dead)


def render_latest() -> tuple[bytes, str]:
    """(exposition text, content type) — merged over worker processes in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
