"""Pure logic of the rollup read plan, the latency histogram and budget thresholds (no database)."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from analytics.rollup import (
    LATENCY_GROWTH,
    latency_bucket_bounds,
    latency_bucket_of,
    percentile_from_histogram,
)
from analytics.selectors import Segment, plan_segments
from analytics.services import crossed_thresholds

T = datetime(2025, 3, 10, 0, 0, tzinfo=UTC)


def _covered(segments: list[Segment], end: datetime) -> list[tuple[datetime, datetime]]:
    return [(s.start, s.end or end) for s in segments]


def test_plan_uses_days_for_whole_days_and_hours_at_the_edges() -> None:
    since = T - timedelta(days=3) + timedelta(hours=5)  # 7 Mar 05:00
    boundary = T + timedelta(hours=14)  # 10 Mar 14:00
    plan = plan_segments(since=since, until=None, boundary=boundary)
    assert [s.source for s in plan] == ["hour", "day", "hour", "ledger"]
    assert plan[0] == Segment("hour", since, T - timedelta(days=2))
    assert plan[1] == Segment("day", T - timedelta(days=2), T)
    assert plan[2] == Segment("hour", T, boundary)
    assert plan[3] == Segment("ledger", boundary, None)


def test_plan_segments_tile_the_range_without_gaps_or_overlap() -> None:
    rng = random.Random(7)
    for _ in range(500):
        since = T + timedelta(hours=rng.randint(-24 * 40, 0))
        boundary = T + timedelta(hours=rng.randint(-24 * 45, 48))
        until = None if rng.random() < 0.5 else since + timedelta(hours=rng.randint(1, 24 * 50))
        hourly_only = rng.random() < 0.3
        plan = plan_segments(since=since, until=until, boundary=boundary, hourly_only=hourly_only)
        end = until or T + timedelta(days=400)
        spans = _covered(plan, end)
        assert spans[0][0] == since
        assert spans[-1][1] == end
        for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False):
            assert a_end == b_start
        for s in plan:
            if s.source == "day":
                assert not hourly_only
                assert s.start.hour == 0 and s.end is not None and s.end.hour == 0
            if s.source != "ledger":
                assert s.end is not None and s.end <= boundary


def test_plan_with_the_fold_never_run_reads_only_the_ledger() -> None:
    plan = plan_segments(since=T, until=None, boundary=datetime(1970, 1, 1, tzinfo=UTC))
    assert plan == [Segment("ledger", T, None)]


def test_latency_bucket_contains_its_value() -> None:
    for ms in (0.0, 0.5, 1.0, 1.19, 1.2, 17.3, 250.0, 999.9, 12_345.0, 600_000.0):
        low, high = latency_bucket_bounds(latency_bucket_of(ms))
        assert low <= ms < high, ms


def test_histogram_percentiles_are_within_bucket_resolution() -> None:
    rng = random.Random(1)
    values = sorted(rng.lognormvariate(6.0, 0.8) for _ in range(20_000))
    counts: dict[int, int] = {}
    for v in values:
        idx = latency_bucket_of(v)
        counts[idx] = counts.get(idx, 0) + 1
    for q in (0.5, 0.9, 0.99):
        exact = values[math.ceil(q * len(values)) - 1]
        estimate = percentile_from_histogram(counts, q)
        assert estimate is not None
        # The geometric bucket midpoint is off by at most sqrt(growth) either way.
        assert exact / math.sqrt(LATENCY_GROWTH) <= estimate <= exact * math.sqrt(LATENCY_GROWTH)


def test_histogram_percentile_of_nothing_is_none() -> None:
    assert percentile_from_histogram({}, 0.5) is None


def test_crossed_thresholds() -> None:
    limit = Decimal("10")
    assert crossed_thresholds(spent=Decimal("4.99"), limit=limit) == []
    assert crossed_thresholds(spent=Decimal("5"), limit=limit) == [50]
    assert crossed_thresholds(spent=Decimal("8.5"), limit=limit) == [50, 80]
    assert crossed_thresholds(spent=Decimal("12"), limit=limit) == [50, 80, 100]
    assert crossed_thresholds(spent=Decimal("1"), limit=Decimal(0)) == []
