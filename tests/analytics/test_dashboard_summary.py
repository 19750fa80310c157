"""`dashboard_summary` (one GROUPING SETS pass) answers exactly what `totals` and the two
breakdowns answer separately, over rollups plus the ledger tail."""

from __future__ import annotations

from dataclasses import replace

import pytest

from analytics import selectors
from analytics.rollup import run_rollup

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("period", "interval"), [("24h", "hour"), ("7d", "day"), ("30d", "day")])
def test_one_pass_equals_the_three_reads(seeded, outsider, period: str, interval: str) -> None:
    run_rollup()  # older hours folded; the last ones stay in the ledger tail
    org_ids = [seeded.org.id]
    since = selectors.period_since(period)
    got = selectors.dashboard_summary(org_ids=org_ids, since=since, interval=interval)
    want = selectors.totals(org_ids=org_ids, since=since)
    # Float latency sums differ in the last bit with the order of addition; everything else exact.
    assert got.totals.latency_sum_ms == pytest.approx(want.latency_sum_ms, rel=1e-12)
    assert replace(got.totals, latency_sum_ms=0.0) == replace(want, latency_sum_ms=0.0)
    assert got.by_model == selectors.breakdown(org_ids=org_ids, by="model", since=since)
    assert got.by_period == selectors.breakdown(org_ids=org_ids, by="period", since=since,
                                                interval=interval)
    assert got.totals.requests > 0 and len(got.by_model) == 3
