"""Folding the ledger into hourly and daily rollups, idempotently (Zulip's FillState pattern).

Each run recomputes *whole* buckets with `INSERT ... SELECT ... GROUP BY ... ON CONFLICT DO UPDATE`
that replaces the stored values, for every hourly bucket from (watermark - lateness) on, then the
daily buckets of the days it touched from those hourly rows. Because a bucket is always rebuilt from
all of its ledger rows, a re-run or a late-arriving event can never double count.

Readers (`analytics.selectors`) trust hourly rollups only before `floor_hour(watermark)` and read
the ledger from there on, so answers are exact regardless of when the fold last ran.
"""

# SQL is assembled only from module constants and validated choices; values are parameters.
# ruff: noqa: S608

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from analytics.models import RollupState

STATE_NAME = "usage"
LATENESS = timedelta(minutes=10)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Latency histogram: bucket 0 holds < 1 ms; bucket k >= 1 holds [G**(k-1), G**k) ms. G = 1.2 keeps
# the percentile estimate (geometric bucket midpoint) within ~10 % of the true value.
LATENCY_GROWTH = 1.2
LATENCY_MAX_IDX = 100
LATENCY_IDX_SQL = (
    f"LEAST({LATENCY_MAX_IDX}, CASE WHEN {{col}} < 1 THEN 0 "
    f"ELSE floor(ln({{col}}) / ln({LATENCY_GROWTH}))::int + 1 END)::smallint"
)

_SUM_COLS = ("requests", "errors", "input_tokens", "cached_input_tokens", "cache_write_tokens",
             "output_tokens", "reasoning_tokens", "cost_usd", "baseline_cost_usd",
             "latency_sum_ms")
_DIMS = ("organization_id", "api_key_id", "model", "task_type", "cache_tier", "status")
_CONFLICT = "(granularity, organization_id, bucket_start, api_key_id, model, task_type, " \
            "cache_tier, status)"
_UPDATE = ", ".join(f"{c} = EXCLUDED.{c}" for c in (*_SUM_COLS, "latency_idx", "latency_cnt"))
_INSERT_COLS = ", ".join(("bucket_start", "granularity", *_DIMS, *_SUM_COLS, "latency_idx",
                          "latency_cnt"))


def latency_bucket_bounds(idx: int) -> tuple[float, float]:
    """[low, high) milliseconds of a histogram bucket."""
    if idx <= 0:
        return 0.0, 1.0
    return LATENCY_GROWTH ** (idx - 1), LATENCY_GROWTH**idx


def latency_bucket_of(ms: float) -> int:
    """The bucket index of one latency, the same formula as LATENCY_IDX_SQL."""
    if ms < 1:
        return 0
    return min(LATENCY_MAX_IDX, math.floor(math.log(ms) / math.log(LATENCY_GROWTH)) + 1)


def percentile_from_histogram(counts: dict[int, int], q: float) -> float | None:
    """The q-quantile (0-1) estimated as the geometric midpoint of the bucket that holds it."""
    total = sum(counts.values())
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for idx in sorted(counts):
        seen += counts[idx]
        if seen >= rank:
            low, high = latency_bucket_bounds(idx)
            return high / 2 if low == 0 else math.sqrt(low * high)
    low, high = latency_bucket_bounds(max(counts))
    return math.sqrt(low * high) if low else high / 2


def floor_hour(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def floor_day(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


_HOURLY_SQL = f"""
INSERT INTO analytics_usagerollup ({_INSERT_COLS})
SELECT b, 'hour', organization_id, api_key_id, model, task_type, cache_tier, status,
       {", ".join(f"sum({c})" for c in _SUM_COLS)},
       array_agg(idx ORDER BY idx), array_agg(requests ORDER BY idx)
FROM (
    SELECT date_trunc('hour', created_at) AS b, organization_id,
           COALESCE(api_key_id, 0) AS api_key_id, model, task_type, cache_tier, status,
           {LATENCY_IDX_SQL.format(col="latency_ms")} AS idx,
           count(*) AS requests,
           count(*) FILTER (WHERE status = 'error') AS errors,
           sum(input_tokens) AS input_tokens, sum(cached_input_tokens) AS cached_input_tokens,
           sum(cache_write_tokens) AS cache_write_tokens, sum(output_tokens) AS output_tokens,
           sum(reasoning_tokens) AS reasoning_tokens, sum(cost_usd) AS cost_usd,
           sum(baseline_cost_usd) AS baseline_cost_usd, sum(latency_ms) AS latency_sum_ms
    FROM inference_inferenceevent
    WHERE created_at >= %s
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
) per_latency_bucket
GROUP BY b, organization_id, api_key_id, model, task_type, cache_tier, status
ON CONFLICT {_CONFLICT} DO UPDATE SET {_UPDATE}
"""

_DIM_LIST = ", ".join(_DIMS)
_DAILY_SQL = f"""
WITH h AS (
    SELECT * FROM analytics_usagerollup WHERE granularity = 'hour' AND bucket_start >= %s
), sums AS (
    SELECT date_trunc('day', bucket_start) AS d, {_DIM_LIST},
           {", ".join(f"sum({c}) AS {c}" for c in _SUM_COLS)}
    FROM h GROUP BY 1, 2, 3, 4, 5, 6, 7
), hist AS (
    SELECT d, {_DIM_LIST}, array_agg(idx ORDER BY idx) AS li, array_agg(c ORDER BY idx) AS lc
    FROM (
        SELECT date_trunc('day', bucket_start) AS d, {_DIM_LIST}, u.idx, sum(u.cnt) AS c
        FROM h, unnest(h.latency_idx, h.latency_cnt) AS u(idx, cnt)
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
    ) x GROUP BY 1, 2, 3, 4, 5, 6, 7
)
INSERT INTO analytics_usagerollup ({_INSERT_COLS})
SELECT sums.d, 'day', {", ".join(f"sums.{c}" for c in _DIMS)},
       {", ".join(f"sums.{c}" for c in _SUM_COLS)},
       COALESCE(hist.li, '{{}}'), COALESCE(hist.lc, '{{}}')
FROM sums LEFT JOIN hist USING (d, {_DIM_LIST})
ON CONFLICT {_CONFLICT} DO UPDATE SET {_UPDATE}
"""


@dataclass(frozen=True)
class RollupResult:
    recomputed_from: datetime
    watermark: datetime
    hourly_rows: int
    daily_rows: int
    duration_ms: float


def current_watermark() -> datetime:
    """Hourly rollups are complete before floor_hour(this); EPOCH when the fold never ran."""
    state = RollupState.objects.filter(name=STATE_NAME).only("watermark").first()
    return state.watermark if state else EPOCH


def rollup_boundary() -> datetime:
    """The instant before which readers use rollups and from which they read the ledger."""
    return floor_hour(current_watermark())


def run_rollup(*, now: datetime | None = None, lateness: timedelta = LATENESS,
               full: bool = False) -> RollupResult:
    """Fold the ledger from (watermark - lateness) on; `full` rebuilds everything."""
    started = time.perf_counter()
    now = now or timezone.now()
    with transaction.atomic():
        # One fold at a time: a second worker waits here, then recomputes (harmlessly).
        state, _ = RollupState.objects.select_for_update().get_or_create(
            name=STATE_NAME, defaults={"watermark": EPOCH, "last_run_at": now})
        if full or state.watermark <= EPOCH:
            start = _first_event_hour() or floor_hour(now)
        else:
            start = floor_hour(min(state.watermark, now) - lateness)
        # The ledger is append-only, so ledger rows visible now stay visible; events stamped
        # before `now` but flushed later are caught by the next run's lateness window.
        with connection.cursor() as cur:
            cur.execute(_HOURLY_SQL, [start])
            hourly = cur.rowcount
            cur.execute(_DAILY_SQL, [floor_day(start)])
            daily = cur.rowcount
        duration = (time.perf_counter() - started) * 1000
        state.watermark = now
        state.last_run_at = now
        state.last_duration_ms = duration
        state.save(update_fields=["watermark", "last_run_at", "last_duration_ms"])
    return RollupResult(recomputed_from=start, watermark=now, hourly_rows=hourly,
                        daily_rows=daily, duration_ms=duration)


def _first_event_hour() -> datetime | None:
    with connection.cursor() as cur:
        cur.execute("SELECT min(created_at) FROM inference_inferenceevent")
        (first,) = cur.fetchone()
    return floor_hour(first) if first else None
