"""Anomaly findings: detected by a periodic scan, read by `/analytics/anomalies`.

Running the detector for the organization and every key on each request costs seconds at scale (one
robust baseline per hour, metric and key), so the `analytics.alerts` task scans each organization
every few minutes and stores the episodes in `AnomalyFinding`; the endpoint reads them.

A scan recomputes every episode that ends at or after its `report_since` (the rescan window, or the
whole detection history on an organization's first scan) and replaces the stored findings of that
window in one transaction; older findings are final (their data is folded and immutable). Keys are
scanned in order of recent spend, at most `MAX_KEYS_PER_SCAN` per organization; the organization
series always covers all traffic.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from analytics import selectors
from analytics.insights import (
    Anomaly,
    AnomalyKind,
    Metric,
    Severity,
    most_severe_first,
)
from analytics.insights_bridge import ANOMALY_HISTORY, detect_org_and_keys
from analytics.models import AnomalyFinding, AnomalyScan
from analytics.rollup import EPOCH, floor_hour
from governance.models import Organization

# Findings ending in this window are recomputed by every scan: it covers the fold's lateness and a
# late ledger flush many times over, and a scan that was skipped for a while (see report_since).
RESCAN = timedelta(hours=24)
# Keys ranked by spend over this recent span; the most active are the ones worth watching.
KEY_RANK_SPAN = timedelta(hours=48)
MAX_KEYS_PER_SCAN = 200
# Findings are kept this long (the endpoint reports up to 30 days back).
RETENTION = timedelta(days=90)
STEP = timedelta(hours=1)


@dataclass(frozen=True)
class ScanResult:
    organization_id: str
    report_since: datetime
    findings: list[Anomaly]  # episodes ending at or after report_since, most severe first
    keys_scanned: int
    keys_skipped: int
    duration_ms: float


@dataclass(frozen=True)
class StoredAnomalies:
    scanned_at: datetime
    keys_skipped: int
    anomalies: list[Anomaly]


def episode_start(anomaly: Anomaly) -> datetime:
    """First hourly bucket of an episode (its identity across scans)."""
    end = anomaly.end or anomaly.at
    return end - (anomaly.points - 1) * STEP


def rank_keys(*, rows: list[selectors.HourBucket], since: datetime,
              limit: int) -> tuple[list[int], int]:
    """(key ids by spend since `since`, then requests, then total spend; dropped count) (pure)."""
    recent: dict[int, list[float]] = {}
    for r in rows:
        if not r.api_key_id:
            continue
        acc = recent.setdefault(r.api_key_id, [0.0, 0.0, 0.0])
        if r.start >= since:
            acc[0] += r.cost_usd
            acc[1] += r.requests
        acc[2] += r.cost_usd
    ranked = sorted(recent, key=lambda k: (-recent[k][0], -recent[k][1], -recent[k][2], k))
    return ranked[:limit], max(0, len(ranked) - limit)


def detect_org(*, org: Organization, rows: list[selectors.HourBucket], until: datetime,
               since: datetime, now: datetime,
               max_keys: int = MAX_KEYS_PER_SCAN) -> tuple[list[tuple[Anomaly, int | None]], int,
                                                           int]:
    """([(anomaly, api key id or None)], keys scanned, keys skipped) for one organization.

    `until` is the current (partial) hour: judged, but only for rises.
    """
    keys, skipped = rank_keys(rows=rows, since=floor_hour(now - KEY_RANK_SPAN), limit=max_keys)
    found = detect_org_and_keys(org=org, rows=rows, keys=keys, until=until, since=since)
    return found, len(keys), skipped


def scan_org_anomalies(*, org: Organization, now: datetime | None = None,
                       max_keys: int = MAX_KEYS_PER_SCAN) -> ScanResult:
    """Detect the organization's (and its busiest keys') anomalies and store them."""
    started = time.perf_counter()
    now = now or timezone.now()
    history_since = floor_hour(now - ANOMALY_HISTORY)
    with transaction.atomic():
        # One scan per organization at a time: a concurrent one waits, then rescans (harmlessly).
        scan, _ = AnomalyScan.objects.select_for_update().get_or_create(
            organization=org, defaults={"scanned_at": EPOCH, "report_since": EPOCH})
        if scan.scanned_at <= EPOCH:
            report_since = history_since  # first scan: everything the history can judge
        else:
            # Back to RESCAN before the previous scan, so a pause in scanning leaves no gap.
            report_since = max(history_since, floor_hour(min(scan.scanned_at, now) - RESCAN))
        rows = selectors.hourly_usage(org_ids=[org.id], since=history_since)
        found, scanned, skipped = detect_org(org=org, rows=rows, until=floor_hour(now),
                                             since=report_since, now=now, max_keys=max_keys)
        window = AnomalyFinding.objects.filter(organization=org, end__gte=report_since)
        first_seen = {(f.scope, f.scope_id, f.metric, f.started_at): f.detected_at
                      for f in window.only("scope", "scope_id", "metric", "started_at",
                                           "detected_at")}
        window.delete()
        AnomalyFinding.objects.filter(organization=org, end__lt=now - RETENTION).delete()
        rows_out = []
        for a, key_id in found:
            start = episode_start(a)
            rows_out.append(AnomalyFinding(
                organization=org, scope=a.scope, scope_id=a.scope_id, api_key_id=key_id,
                metric=a.metric.value, kind=a.kind.value, direction=a.direction,
                started_at=start, at=a.at, end=a.end or a.at, points=a.points, value=a.value,
                baseline=a.baseline, deviation=a.deviation, severity=a.severity.value,
                message=a.message,
                detected_at=first_seen.get((a.scope, a.scope_id, a.metric.value, start), now)))
        # A stored episode that ended before the window cannot reappear with the same start
        # unless late data extended it; then the newer computation wins.
        AnomalyFinding.objects.bulk_create(
            rows_out, update_conflicts=True,
            unique_fields=["organization", "scope", "scope_id", "metric", "started_at"],
            update_fields=["api_key_id", "kind", "direction", "at", "end", "points", "value",
                           "baseline", "deviation", "severity", "message", "detected_at"])
        duration = (time.perf_counter() - started) * 1000
        scan.scanned_at = now
        scan.report_since = report_since
        scan.keys_scanned = scanned
        scan.keys_skipped = skipped
        scan.duration_ms = duration
        scan.save()
    return ScanResult(organization_id=str(org.id), report_since=report_since,
                      findings=most_severe_first([a for a, _ in found]), keys_scanned=scanned,
                      keys_skipped=skipped, duration_ms=duration)


def to_anomaly(f: AnomalyFinding) -> Anomaly:
    return Anomaly(metric=Metric(f.metric), scope=f.scope, scope_id=f.scope_id, at=f.at,
                   value=f.value, baseline=f.baseline, deviation=f.deviation,
                   severity=Severity(f.severity), message=f.message, kind=AnomalyKind(f.kind),
                   direction=f.direction, end=f.end, points=f.points)


def stored_anomalies(*, org: Organization, since: datetime) -> StoredAnomalies | None:
    """Stored episodes ending at or after `since`, most severe first; None if never scanned."""
    scan = AnomalyScan.objects.filter(organization=org).exclude(scanned_at__lte=EPOCH).first()
    if scan is None:
        return None
    found = [to_anomaly(f) for f in AnomalyFinding.objects.filter(organization=org,
                                                                   end__gte=since)]
    return StoredAnomalies(scanned_at=scan.scanned_at, keys_skipped=scan.keys_skipped,
                           anomalies=most_severe_first(found))


@dataclass(frozen=True)
class AnomalyReport:
    anomalies: list[Anomaly]
    source: str  # "scan" (stored by the alerts task) or "on_demand"
    scanned_at: datetime | None
    keys_skipped: int


def recent_anomalies(*, org: Organization, hours: int) -> AnomalyReport:
    """Episodes ending in the last `hours`: the periodic scan's, or, for an organization never
    scanned yet (new, or the alerts task not running), its organization series detected on demand
    (one detector pass; keys wait for the scan)."""
    from analytics.insights_bridge import org_anomalies

    stored = stored_anomalies(org=org, since=timezone.now() - timedelta(hours=hours))
    if stored is not None:
        return AnomalyReport(anomalies=stored.anomalies, source="scan",
                             scanned_at=stored.scanned_at, keys_skipped=stored.keys_skipped)
    found = org_anomalies(org=org, report_hours=hours, include_keys=False)
    return AnomalyReport(anomalies=found, source="on_demand", scanned_at=None, keys_skipped=0)
