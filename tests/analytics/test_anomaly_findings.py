"""The anomaly scan (run by the alerts task) and the stored findings `/analytics/anomalies` reads:
the same answer as detecting on demand, replaced within the rescan window, kept before it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.utils import timezone

from analytics.anomaly_findings import (
    RESCAN,
    RETENTION,
    episode_start,
    rank_keys,
    scan_org_anomalies,
    stored_anomalies,
)
from analytics.insights import (
    Anomaly,
    AnomalyKind,
    Metric,
    Severity,
    UsageBucket,
    detect_usage_anomalies,
    most_severe_first,
)
from analytics.insights._stats import slot_medians
from analytics.insights_bridge import org_anomalies
from analytics.models import AnomalyFinding, AnomalyScan
from analytics.rollup import floor_hour, run_rollup
from analytics.selectors import HourBucket
from inference.models import InferenceEvent

T0 = datetime(2026, 3, 2, 12, tzinfo=UTC)


# --- pure ---------------------------------------------------------------------------------------

def _anomaly(*, at: datetime, end: datetime, points: int) -> Anomaly:
    return Anomaly(metric=Metric.SPEND, scope="key", scope_id="k", at=at, value=1.0,
                   baseline=0.1, deviation=9.0, severity=Severity.MEDIUM, message="m",
                   kind=AnomalyKind.SPIKE, end=end, points=points)


def test_episode_start_is_the_first_bucket_whatever_the_peak() -> None:
    # A spike's `at` is its peak; the episode (its identity across scans) starts earlier.
    a = _anomaly(at=T0 + timedelta(hours=2), end=T0 + timedelta(hours=4), points=5)
    assert episode_start(a) == T0
    assert episode_start(_anomaly(at=T0, end=T0, points=1)) == T0


def _row(key: int, hours_ago: int, cost: float, requests: int = 10) -> HourBucket:
    return HourBucket(start=T0 - timedelta(hours=hours_ago), api_key_id=key, requests=requests,
                      errors=0, cost_usd=cost, latency_sum_ms=0.0)


def test_rank_keys_orders_by_recent_spend_and_counts_the_rest() -> None:
    rows = [
        _row(1, 200, 500.0),  # big spender, but only long ago
        _row(2, 3, 2.0), _row(2, 4, 2.0),
        _row(3, 1, 3.0),
        _row(0, 1, 99.0),  # keyless traffic is the organization's, not a key's
    ]
    keys, skipped = rank_keys(rows=rows, since=T0 - timedelta(hours=48), limit=2)
    assert keys == [2, 3] and skipped == 1
    keys, skipped = rank_keys(rows=rows, since=T0 - timedelta(hours=48), limit=10)
    assert keys == [2, 3, 1] and skipped == 0


@pytest.mark.parametrize("seed", range(5))
def test_slot_medians_equal_numpy_median_per_slot(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    # Rounded values make ties; uneven slot sizes give odd and even counts.
    values = np.round(rng.lognormal(0.0, 1.0, n), 2)
    slots = rng.integers(0, 24, n) if seed % 2 else rng.integers(0, 7, n)
    expected = np.empty_like(values)
    for s in np.unique(slots):
        expected[slots == s] = np.median(values[slots == s])
    assert np.array_equal(slot_medians(values, slots), expected)


def _week_then(current_requests: int) -> list[UsageBucket]:
    """A steady week of hourly traffic, then the current hour with the given request count."""
    week = [UsageBucket(start=T0 - timedelta(hours=h), requests=100 + h % 5, errors=0,
                        cost_usd=(100 + h % 5) / 100, latency_ms=500.0)
            for h in range(1, 7 * 24)]
    now = UsageBucket(start=T0, requests=current_requests, errors=0,
                      cost_usd=current_requests / 100, latency_ms=500.0)
    return [*week, now]


def _at_current_hour(found: list[Anomaly], direction: str) -> set[Metric]:
    return {a.metric for a in found if (a.end or a.at) == T0 and a.direction == direction}


def test_the_filling_hour_is_judged_for_rises_only() -> None:
    since = T0 - timedelta(hours=6)
    # 20 minutes into the hour a third of the usual traffic has arrived: not a drop...
    filling = _week_then(35)
    assert _at_current_hour(detect_usage_anomalies(
        buckets=filling, scope="organization", scope_id="o", since=since),
        "down") == {Metric.SPEND, Metric.REQUESTS}  # (what judging it as complete would say)
    assert _at_current_hour(detect_usage_anomalies(
        buckets=filling, scope="organization", scope_id="o", since=since, partial_from=T0),
        "down") == set()
    # ...but four times the usual traffic already is a spike, however early in the hour.
    surge = _week_then(400)
    assert _at_current_hour(detect_usage_anomalies(
        buckets=surge, scope="organization", scope_id="o", since=since, partial_from=T0),
        "up") == {Metric.SPEND, Metric.REQUESTS}


# --- against the database -----------------------------------------------------------------------

def _seed_spike(*, org_id, spiking_key: int, quiet_key: int, now: datetime) -> None:  # type: ignore[no-untyped-def]
    """A week of steady hourly spend on two keys, then a spend spike on one key last hour."""
    start = floor_hour(now) - timedelta(days=7)
    rows = []
    for h in range(7 * 24 - 1):
        at = start + timedelta(hours=h, minutes=5)
        for key, base in ((spiking_key, Decimal("0.010")), (quiet_key, Decimal("0.004"))):
            rows.append(InferenceEvent(
                created_at=at, request_id=f"base-{org_id}-{key}-{h}", organization_id=org_id,
                api_key_id=key, model="gpt-4o-mini", status="ok", latency_ms=500,
                cost_usd=base + Decimal(h % 5) / 1000))
    spike_at = floor_hour(now) - timedelta(hours=1) + timedelta(minutes=5)
    rows += [InferenceEvent(created_at=spike_at, request_id=f"spike-{org_id}-{i}",
                            organization_id=org_id, api_key_id=spiking_key, model="gpt-4o",
                            status="ok", latency_ms=500, cost_usd=Decimal("1.0"))
             for i in range(20)]
    InferenceEvent.objects.bulk_create(rows)


@pytest.fixture
def spiking(tenant):  # type: ignore[no-untyped-def]
    now = timezone.now()
    _seed_spike(org_id=tenant.org.id, spiking_key=tenant.infer.key.pk,
                quiet_key=tenant.admin.key.pk, now=now)
    run_rollup()
    return tenant, now


def _facts(found: list[Anomaly]) -> list[tuple]:
    # Floats go through a FloatField (float8) unchanged; compare them exactly.
    return [(a.scope, a.scope_id, a.metric, a.kind, a.direction, a.at, a.end, a.points, a.value,
             a.baseline, a.deviation, a.severity, a.message) for a in found]


@pytest.mark.django_db
def test_stored_findings_equal_on_demand_detection(spiking) -> None:  # type: ignore[no-untyped-def]
    tenant, now = spiking
    assert stored_anomalies(org=tenant.org, since=now) is None  # never scanned
    result = scan_org_anomalies(org=tenant.org, now=now)
    assert result.keys_scanned == 2 and result.keys_skipped == 0
    for hours in (2, 6, 48, 24 * 30):
        stored = stored_anomalies(org=tenant.org, since=now - timedelta(hours=hours))
        assert stored is not None and stored.scanned_at == now
        expected = org_anomalies(org=tenant.org, now=now, report_hours=hours)
        # On demand lists the organization first, then each key; the store, most severe first.
        assert sorted(_facts(stored.anomalies)) == sorted(_facts(expected)), hours
        assert _facts(stored.anomalies) == _facts(most_severe_first(expected))
    spikes = [a for a in stored_anomalies(org=tenant.org, since=now - timedelta(hours=6))
              .anomalies if a.metric is Metric.SPEND and a.direction == "up"]
    assert {(a.scope, a.scope_id) for a in spikes} >= {
        ("organization", str(tenant.org.id)), ("key", tenant.infer.key.prefix)}
    assert all(a.scope_id != tenant.admin.key.prefix for a in spikes)


@pytest.mark.django_db
def test_rescan_replaces_the_window_and_keeps_older_findings(spiking) -> None:  # type: ignore[no-untyped-def]
    tenant, now = spiking
    scan_org_anomalies(org=tenant.org, now=now)
    before = {(f.scope, f.scope_id, f.metric, f.started_at): f.detected_at
              for f in AnomalyFinding.objects.filter(organization=tenant.org)}
    assert before and set(before.values()) == {now}

    def ghost(scope_id: str, end: datetime) -> AnomalyFinding:
        return AnomalyFinding.objects.create(
            organization=tenant.org, scope="key", scope_id=scope_id, metric="spend",
            kind="spike", direction="up", started_at=end, at=end, end=end, points=1,
            value=1.0, baseline=0.1, deviation=9.0, severity="medium", message="ghost",
            detected_at=end)

    later = now + timedelta(minutes=5)
    # Ended well before the next scan's window: final, kept. Inside it: recomputed, so an
    # episode the data does not support (any more) goes.
    old = ghost("old", floor_hour(later - RESCAN) - timedelta(days=2))
    stale = ghost("stale", floor_hour(now) - timedelta(hours=2))
    expired = ghost("expired", floor_hour(later - RETENTION) - timedelta(hours=1))
    result = scan_org_anomalies(org=tenant.org, now=later)
    assert result.report_since == floor_hour(now - RESCAN)
    assert AnomalyFinding.objects.filter(pk=old.pk).exists()
    assert not AnomalyFinding.objects.filter(pk=stale.pk).exists()
    assert not AnomalyFinding.objects.filter(pk=expired.pk).exists()
    after = {(f.scope, f.scope_id, f.metric, f.started_at): f.detected_at
             for f in AnomalyFinding.objects.filter(organization=tenant.org)
             .exclude(pk=old.pk)}
    # The same episodes, first seen by the first scan.
    assert after == before
    assert AnomalyScan.objects.get(organization=tenant.org).scanned_at == later


@pytest.mark.django_db
def test_key_cap_scans_the_busiest_keys_first(spiking) -> None:  # type: ignore[no-untyped-def]
    tenant, now = spiking
    result = scan_org_anomalies(org=tenant.org, now=now, max_keys=1)
    assert (result.keys_scanned, result.keys_skipped) == (1, 1)
    key_scopes = {a.scope_id for a in result.findings if a.scope == "key"}
    assert key_scopes == {tenant.infer.key.prefix}
    stored = stored_anomalies(org=tenant.org, since=now - timedelta(hours=6))
    assert stored is not None and stored.keys_skipped == 1


@pytest.mark.urls("tests.analytics.urls")
@pytest.mark.django_db
def test_endpoint_shows_only_the_callers_findings(client, spiking, outsider) -> None:  # type: ignore[no-untyped-def]
    from analytics.services import run_alerts

    tenant, now = spiking
    _seed_spike(org_id=outsider.org.id, spiking_key=outsider.infer.key.pk,
                quiet_key=outsider.admin.key.pk, now=now)
    run_rollup(full=True)  # these rows are older than the fold's lateness window
    report = run_alerts()
    assert report.anomaly_scans >= 2 and report.anomalies > 0
    assert AnomalyFinding.objects.filter(organization=outsider.org).exists()
    body = client.get("/analytics/anomalies", {"hours": 6}, **tenant.headers("analytics")).json()
    assert body["source"] == "scan" and body["count"] == len(body["anomalies"]) > 0
    own = {str(tenant.org.id), tenant.infer.key.prefix, tenant.admin.key.prefix,
           tenant.analytics.key.prefix}
    assert {a["scope_id"] for a in body["anomalies"]} <= own
