"""Reads for analytics: every answer combines rollups (before the fold boundary) with the ledger
tail (after it), so numbers are exact and fresh whatever the fold's schedule.

All functions take the organization ids to read (a key sees its own; staff may name one, or None for
the Prometheus all-organization totals). Periods are bucket-aligned: `since` is a whole hour (or a
day/month start), and the answer reports it so callers can check against the ledger.
"""

# SQL is assembled only from module constants and validated choices; values are parameters.
# ruff: noqa: S608

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection
from django.utils import timezone

from analytics.rollup import (
    LATENCY_IDX_SQL,
    floor_day,
    floor_hour,
    percentile_from_histogram,
    rollup_boundary,
)
from asahi_project.errors import InvalidRequest

PERIODS = ("24h", "7d", "30d", "day", "month")
INTERVALS = ("hour", "day")
TIER_NAMES = {0: "miss", 1: "exact", 2: "semantic", 3: "intermediate"}
QUANTILES = (("p50", 0.50), ("p75", 0.75), ("p90", 0.90), ("p95", 0.95), ("p99", 0.99))
ZERO = Decimal(0)


def period_since(period: str, *, now: datetime | None = None) -> datetime:
    """Start of a named period, aligned to a rollup bucket; 400 for an unknown name."""
    now = now or timezone.now()
    if period == "day":
        return floor_day(now)
    if period == "month":
        return floor_day(now).replace(day=1)
    spans = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
    if period not in spans:
        raise InvalidRequest(f"period must be one of: {', '.join(PERIODS)}", param="period")
    return floor_hour(now - spans[period])


def choice(value: str | None, *, allowed: tuple[str, ...], default: str, param: str) -> str:
    value = value or default
    if value not in allowed:
        raise InvalidRequest(f"{param} must be one of: {', '.join(allowed)}", param=param)
    return value


# --- the combined source ------------------------------------------------------------------------

_ROLLUP_SELECT = (
    "SELECT bucket_start AS bucket, organization_id, api_key_id, model, task_type, cache_tier, "
    "status, requests, errors, input_tokens, cached_input_tokens, cache_write_tokens, "
    "output_tokens, reasoning_tokens, cost_usd, baseline_cost_usd, latency_sum_ms, latency_idx, "
    "latency_cnt FROM analytics_usagerollup WHERE granularity = %s AND bucket_start >= %s "
    "AND bucket_start < %s"
)
_LEDGER_SELECT = (
    "SELECT date_trunc('hour', created_at) AS bucket, organization_id, "
    "COALESCE(api_key_id, 0) AS api_key_id, model, task_type, cache_tier, status, "
    "1::bigint AS requests, (status = 'error')::int::bigint AS errors, "
    "input_tokens::bigint, cached_input_tokens::bigint, cache_write_tokens::bigint, "
    "output_tokens::bigint, reasoning_tokens::bigint, cost_usd, baseline_cost_usd, "
    "latency_ms AS latency_sum_ms, "
    f"ARRAY[{LATENCY_IDX_SQL.format(col='latency_ms')}] AS latency_idx, "
    "ARRAY[1::bigint] AS latency_cnt FROM inference_inferenceevent WHERE created_at >= %s"
)


@dataclass(frozen=True)
class Segment:
    source: str  # "hour" | "day" | "ledger"
    start: datetime
    end: datetime | None  # None = open (ledger tail up to now)


def plan_segments(*, since: datetime, until: datetime | None, boundary: datetime,
                  hourly_only: bool = False) -> list[Segment]:
    """Split [since, until) into daily rollups, hourly rollups and the ledger tail (pure)."""
    segments: list[Segment] = []
    roll_end = boundary if until is None else min(until, boundary)
    if since < roll_end:
        first_day = floor_day(since)
        if first_day < since:
            first_day += timedelta(days=1)
        last_day = floor_day(roll_end)
        if hourly_only or first_day >= last_day:
            segments.append(Segment("hour", since, roll_end))
        else:
            if since < first_day:
                segments.append(Segment("hour", since, first_day))
            segments.append(Segment("day", first_day, last_day))
            if last_day < roll_end:
                segments.append(Segment("hour", last_day, roll_end))
    tail_start = max(since, boundary)
    if until is None or tail_start < until:
        segments.append(Segment("ledger", tail_start, until))
    return segments


def _org_filter(org_ids: list[uuid.UUID] | None, params: list[Any]) -> str:
    if org_ids is None:
        return ""
    params.append([str(o) for o in org_ids])
    return " AND organization_id = ANY(%s::uuid[])"


def source_sql(*, org_ids: list[uuid.UUID] | None, since: datetime, until: datetime | None = None,
               hourly_only: bool = False) -> tuple[str, list[Any]]:
    """A UNION ALL of rollup and ledger rows with one shape, for the range [since, until)."""
    parts: list[str] = []
    params: list[Any] = []
    for seg in plan_segments(since=since, until=until, boundary=rollup_boundary(),
                             hourly_only=hourly_only):
        if seg.source == "ledger":
            sql = _LEDGER_SELECT
            params.append(seg.start)
            if seg.end is not None:
                sql += " AND created_at < %s"
                params.append(seg.end)
        else:
            sql = _ROLLUP_SELECT
            params.extend([seg.source, seg.start, seg.end])
        parts.append(sql + _org_filter(org_ids, params))
    return " UNION ALL ".join(f"({p})" for p in parts), params


def _fetch(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


# --- totals -------------------------------------------------------------------------------------

@dataclass
class Totals:
    requests: int = 0
    ok_requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal = ZERO
    baseline_cost_usd: Decimal = ZERO
    hits_by_tier: dict[int, int] = field(default_factory=dict)
    saved_by_tier: dict[int, Decimal] = field(default_factory=dict)
    # Every request (any status) and its cost per cache tier, 0 = miss: the dashboard's tier table.
    requests_by_tier: dict[int, int] = field(default_factory=dict)
    cost_by_tier: dict[int, Decimal] = field(default_factory=dict)
    latency_sum_ms: float = 0.0

    @property
    def cache_hits(self) -> int:
        return sum(self.hits_by_tier.values())

    @property
    def cache_cost_saved(self) -> Decimal:
        return sum(self.saved_by_tier.values(), ZERO)

    @property
    def cache_hit_rate(self) -> float:
        return self.cache_hits / self.ok_requests if self.ok_requests else 0.0

    @property
    def savings_usd(self) -> Decimal:
        return self.baseline_cost_usd - self.cost_usd


_TOTALS_SQL = """
SELECT cache_tier, status = 'ok' AS ok, sum(requests), sum(errors), sum(input_tokens),
       sum(cached_input_tokens), sum(output_tokens), sum(reasoning_tokens), sum(cost_usd),
       sum(baseline_cost_usd), sum(latency_sum_ms)
FROM ({src}) s GROUP BY 1, 2
"""


def totals(*, org_ids: list[uuid.UUID] | None, since: datetime,
           until: datetime | None = None) -> Totals:
    """Request, token, cost and cache sums; savings count over served (status ok) requests."""
    src, params = source_sql(org_ids=org_ids, since=since, until=until)
    return _totals_of(_fetch(_TOTALS_SQL.format(src=src), params))


def _totals_of(rows: list[tuple[Any, ...]]) -> Totals:
    """Totals from (tier, ok, requests, errors, input, cached input, output, reasoning tokens,
    cost, baseline, latency sum) rows grouped by tier and ok."""
    out = Totals()
    for tier, ok, req, err, inp, cin, outp, reas, cost, base, lat in rows:
        out.requests += int(req)
        out.errors += int(err)
        out.input_tokens += int(inp)
        out.cached_input_tokens += int(cin)
        out.output_tokens += int(outp)
        out.reasoning_tokens += int(reas)
        out.cost_usd += cost or ZERO
        out.latency_sum_ms += float(lat or 0)
        out.requests_by_tier[tier] = out.requests_by_tier.get(tier, 0) + int(req)
        out.cost_by_tier[tier] = out.cost_by_tier.get(tier, ZERO) + (cost or ZERO)
        if ok:
            out.ok_requests += int(req)
            out.baseline_cost_usd += base or ZERO
            if tier:
                out.hits_by_tier[tier] = out.hits_by_tier.get(tier, 0) + int(req)
                out.saved_by_tier[tier] = out.saved_by_tier.get(tier, ZERO) + (base or ZERO)
        else:
            # Refused/failed requests have no baseline to save against, but cost still counts.
            out.baseline_cost_usd += cost or ZERO
    return out


# --- breakdowns and series ----------------------------------------------------------------------

BREAKDOWNS = ("model", "task_type", "key", "period", "tier", "provider")


@dataclass(frozen=True)
class BreakdownRow:
    key: str
    requests: int
    cost_usd: Decimal
    baseline_cost_usd: Decimal
    input_tokens: int
    output_tokens: int
    cache_hits: int


def breakdown(*, org_ids: list[uuid.UUID] | None, by: str, since: datetime,
              interval: str = "day") -> list[BreakdownRow]:
    if by == "provider":  # rollups keep the model, whose provider the catalogue knows
        return _by_provider(breakdown(org_ids=org_ids, by="model", since=since))
    column = {"model": "model", "task_type": "task_type", "key": "api_key_id",
              "period": f"date_trunc('{interval}', bucket)", "tier": "cache_tier"}[by]
    src, params = source_sql(org_ids=org_ids, since=since, hourly_only=interval == "hour")
    sql = (f"SELECT {column} AS k, sum(requests), sum(cost_usd), "
           "sum(CASE WHEN status = 'ok' THEN baseline_cost_usd ELSE cost_usd END), "
           "sum(input_tokens), sum(output_tokens), "
           "sum(requests) FILTER (WHERE cache_tier > 0 AND status = 'ok') "
           f"FROM ({src}) s GROUP BY 1 ORDER BY 1")
    return _breakdown_rows(_fetch(sql, params), by)


def _breakdown_rows(rows: list[tuple[Any, ...]], by: str) -> list[BreakdownRow]:
    """BreakdownRows from (key, requests, cost, baseline, input, output, hits) rows."""
    labels: dict[Any, str] = {}
    if by == "key":
        from governance.models import ApiKey

        ids = [r[0] for r in rows if r[0]]
        labels = dict(ApiKey.objects.filter(pk__in=ids).values_list("pk", "prefix"))
    result = []
    for k, req, cost, base, inp, outp, hits in rows:
        if by == "key":
            label = labels.get(k, "(none)" if not k else f"key-{k}")
        elif by == "period":
            label = k.astimezone(UTC).isoformat()
        elif by == "tier":
            label = TIER_NAMES.get(k, str(k))
        else:
            label = k or "(none)"
        result.append(BreakdownRow(key=label, requests=int(req), cost_usd=cost or ZERO,
                                   baseline_cost_usd=base or ZERO, input_tokens=int(inp or 0),
                                   output_tokens=int(outp or 0), cache_hits=int(hits or 0)))
    if by != "period":
        result.sort(key=lambda r: (-r.cost_usd, -r.requests, r.key))
    return result


@dataclass(frozen=True)
class DashboardSummary:
    totals: Totals
    by_model: list[BreakdownRow]
    by_period: list[BreakdownRow]


def dashboard_summary(*, org_ids: list[uuid.UUID] | None, since: datetime,
                      interval: str) -> DashboardSummary:
    """`totals`, `breakdown(by="model")` and `breakdown(by="period", interval)` in one pass over
    the source (GROUPING SETS): the dashboard's three reads for the price of one scan."""
    src, params = source_sql(org_ids=org_ids, since=since, hourly_only=interval == "hour")
    sql = (
        "SELECT GROUPING(cache_tier, ok), GROUPING(model), cache_tier, ok, model, b, "
        "sum(requests), sum(errors), sum(input_tokens), sum(cached_input_tokens), "
        "sum(output_tokens), sum(reasoning_tokens), sum(cost_usd), sum(baseline_cost_usd), "
        "sum(latency_sum_ms), sum(CASE WHEN ok THEN baseline_cost_usd ELSE cost_usd END), "
        "sum(requests) FILTER (WHERE cache_tier > 0 AND ok) "
        f"FROM (SELECT s0.*, status = 'ok' AS ok, date_trunc('{interval}', bucket) AS b "
        f"FROM ({src}) s0) s GROUP BY GROUPING SETS ((cache_tier, ok), (model), (b)) ORDER BY b"
    )
    tiers, models, periods = [], [], []
    for g_tier, g_model, tier, ok, model, b, req, err, inp, cin, outp, reas, cost, base, lat, \
            base_all, hits in _fetch(sql, params):
        if g_tier == 0:
            tiers.append((tier, ok, req, err, inp, cin, outp, reas, cost, base, lat))
        elif g_model == 0:
            models.append((model, req, cost, base_all, inp, outp, hits))
        else:
            periods.append((b, req, cost, base_all, inp, outp, hits))
    return DashboardSummary(totals=_totals_of(tiers), by_model=_breakdown_rows(models, "model"),
                            by_period=_breakdown_rows(periods, "period"))


def _by_provider(rows: list[BreakdownRow]) -> list[BreakdownRow]:
    from inference.selectors import get_catalogue

    catalogue = get_catalogue()
    merged: dict[str, BreakdownRow] = {}
    for r in rows:
        info = catalogue.get(r.key)
        name = info.provider if info is not None else "(unknown)"
        m = merged.get(name)
        merged[name] = r if m is None else BreakdownRow(
            key=name, requests=m.requests + r.requests, cost_usd=m.cost_usd + r.cost_usd,
            baseline_cost_usd=m.baseline_cost_usd + r.baseline_cost_usd,
            input_tokens=m.input_tokens + r.input_tokens,
            output_tokens=m.output_tokens + r.output_tokens,
            cache_hits=m.cache_hits + r.cache_hits)
    out = [BreakdownRow(**{**vars(r), "key": name}) for name, r in merged.items()]
    return sorted(out, key=lambda r: (-r.cost_usd, -r.requests, r.key))


TREND_METRICS = ("cost", "requests", "cache_hit_rate", "latency")


def trend(*, org_ids: list[uuid.UUID] | None, metric: str, since: datetime,
          interval: str, now: datetime | None = None) -> list[tuple[datetime, float]]:
    """One value per bucket from `since` to now, empty buckets included (zero / 0.0)."""
    src, params = source_sql(org_ids=org_ids, since=since, hourly_only=interval == "hour")
    sql = (f"SELECT date_trunc('{interval}', bucket), sum(requests), sum(cost_usd), "
           "sum(requests) FILTER (WHERE status = 'ok'), "
           "sum(requests) FILTER (WHERE status = 'ok' AND cache_tier > 0), sum(latency_sum_ms) "
           f"FROM ({src}) s GROUP BY 1")
    found = {b.astimezone(UTC): row for b, *row in _fetch(sql, params)}
    step = timedelta(hours=1) if interval == "hour" else timedelta(days=1)
    at = floor_hour(since) if interval == "hour" else floor_day(since)
    end = now or timezone.now()
    points: list[tuple[datetime, float]] = []
    while at <= end:
        req, cost, ok, hits, lat = found.get(at, (0, ZERO, 0, 0, 0.0))
        req, ok, hits = int(req or 0), int(ok or 0), int(hits or 0)
        value = {
            "cost": float(cost or 0),
            "requests": float(req),
            "cache_hit_rate": hits / ok if ok else 0.0,
            "latency": float(lat or 0) / req if req else 0.0,
        }[metric]
        points.append((at, value))
        at += step
    return points


@dataclass(frozen=True)
class LatencyStats:
    count: int
    mean_ms: float | None
    percentiles: dict[str, float | None]


def latency_percentiles(*, org_ids: list[uuid.UUID] | None, since: datetime,
                        ) -> tuple[LatencyStats, dict[str, LatencyStats]]:
    """(overall, per model) percentiles from the merged log-spaced histograms (served requests)."""
    src, params = source_sql(org_ids=org_ids, since=since)
    sql = ("SELECT model, u.idx, sum(u.cnt) FROM "
           f"(SELECT * FROM ({src}) s0 WHERE status = 'ok') s, "
           "unnest(s.latency_idx, s.latency_cnt) AS u(idx, cnt) GROUP BY 1, 2")
    sums_sql = (f"SELECT model, sum(requests), sum(latency_sum_ms) FROM ({src}) s "
                "WHERE status = 'ok' GROUP BY 1")
    per_model: dict[str, dict[int, int]] = defaultdict(dict)
    overall: dict[int, int] = defaultdict(int)
    for model, idx, cnt in _fetch(sql, params):
        per_model[model][int(idx)] = int(cnt)
        overall[int(idx)] += int(cnt)
    sums = {m: (int(n), float(s or 0)) for m, n, s in _fetch(sums_sql, params)}

    def stats(counts: dict[int, int], n: int, total_ms: float) -> LatencyStats:
        return LatencyStats(
            count=n, mean_ms=total_ms / n if n else None,
            percentiles={name: percentile_from_histogram(counts, q) for name, q in QUANTILES})

    n_all = sum(n for n, _ in sums.values())
    ms_all = sum(s for _, s in sums.values())
    return stats(dict(overall), n_all, ms_all), {
        (m or "(none)"): stats(per_model[m], *sums.get(m, (0, 0.0))) for m in sorted(per_model)
    }


def daily_spend(*, org_ids: list[uuid.UUID] | None, since: datetime,
                api_key_id: int | None = None) -> list[tuple[datetime, Decimal]]:
    src, params = source_sql(org_ids=org_ids, since=since)
    where = ""
    if api_key_id is not None:
        where = " WHERE api_key_id = %s"
        params = [*params, api_key_id]
    sql = f"SELECT date_trunc('day', bucket), sum(cost_usd) FROM ({src}) s{where} GROUP BY 1"
    return sorted((d.astimezone(UTC), c or ZERO) for d, c in _fetch(sql, params))


@dataclass(frozen=True)
class HourBucket:
    start: datetime
    api_key_id: int
    requests: int
    errors: int
    cost_usd: float
    latency_sum_ms: float


def hourly_usage(*, org_ids: list[uuid.UUID] | None, since: datetime,
                 by_key: bool = True) -> list[HourBucket]:
    """Per hour and key: requests, errors, cost, latency sum (for anomaly detection).

    `by_key=False` sums the keys (api_key_id 0): the organization-level series only.
    """
    src, params = source_sql(org_ids=org_ids, since=since, hourly_only=True)
    key = "api_key_id" if by_key else "0"
    sql = (f"SELECT bucket, {key}, sum(requests), sum(errors), sum(cost_usd), "
           f"sum(latency_sum_ms) FROM ({src}) s GROUP BY 1, 2")
    return [HourBucket(start=b.astimezone(UTC), api_key_id=int(k), requests=int(r),
                       errors=int(e), cost_usd=float(c or 0), latency_sum_ms=float(lat or 0))
            for b, k, r, e, c, lat in _fetch(sql, params)]


def model_task_usage(*, org_ids: list[uuid.UUID] | None, since: datetime,
                     ) -> list[tuple[str, str, int, Decimal, int, int]]:
    """(task_type, model, requests, cost, input, output tokens) of served, uncached requests."""
    src, params = source_sql(org_ids=org_ids, since=since)
    sql = ("SELECT task_type, model, sum(requests), sum(cost_usd), sum(input_tokens), "
           f"sum(output_tokens) FROM ({src}) s WHERE status = 'ok' AND cache_tier = 0 "
           "AND model <> '' GROUP BY 1, 2")
    return [(t, m, int(r), c or ZERO, int(i), int(o)) for t, m, r, c, i, o in _fetch(sql, params)]


def key_spend(*, org_ids: list[uuid.UUID] | None, since: datetime) -> dict[int, Decimal]:
    src, params = source_sql(org_ids=org_ids, since=since)
    sql = f"SELECT api_key_id, sum(cost_usd) FROM ({src}) s GROUP BY 1"
    return {int(k): c or ZERO for k, c in _fetch(sql, params)}


def org_totals_all(*, org_ids: list[uuid.UUID] | None) -> list[tuple[Any, ...]]:
    """All-time (org, model, status, requests, input, output, cost, baseline) for Prometheus."""
    from analytics.rollup import EPOCH

    src, params = source_sql(org_ids=org_ids, since=EPOCH)
    sql = ("SELECT organization_id, model, status, sum(requests), sum(input_tokens), "
           "sum(output_tokens), sum(cost_usd), sum(baseline_cost_usd), "
           "sum(requests) FILTER (WHERE cache_tier > 0 AND status = 'ok') "
           f"FROM ({src}) s GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
    return _fetch(sql, params)


# --- ledger reads -------------------------------------------------------------------------------

def recent_inferences(*, org_id: uuid.UUID, limit: int) -> list[dict[str, Any]]:
    from inference.models import InferenceEvent

    rows = (InferenceEvent.objects.filter(organization_id=org_id)
            .order_by("-created_at", "-id")
            .values("request_id", "model", "cost_usd", "cache_tier", "created_at", "latency_ms",
                    "status", "task_type", "input_tokens", "output_tokens", "baseline_cost_usd",
                    "endpoint", "routing_reason")[:limit])
    return [{
        "request_id": r["request_id"], "model_used": r["model"], "cost": float(r["cost_usd"]),
        "cost_original": float(r["baseline_cost_usd"]), "cache_hit": r["cache_tier"] > 0,
        "cache_tier": r["cache_tier"], "timestamp": r["created_at"].isoformat(),
        "latency_ms": r["latency_ms"], "status": r["status"], "task_type": r["task_type"],
        "tokens_input": r["input_tokens"], "tokens_output": r["output_tokens"],
        "endpoint": r["endpoint"], "routing_reason": r["routing_reason"],
    } for r in rows]


def semantic_cache_size(*, org_id: uuid.UUID) -> int:
    from caching.models import SemanticEntry

    return SemanticEntry.objects.filter(organization_id=org_id,
                                        expires_at__gt=timezone.now()).count()
