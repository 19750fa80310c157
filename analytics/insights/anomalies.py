"""Spend / request-rate / latency / error-rate anomalies on hourly or daily series (pure).

For every point, the baseline comes only from the points *before* it (a trailing window):

* seasonal baseline — the median of the same hour-of-day (hourly series) or the same weekday
  (daily series) once the window holds >= 3 prior samples of that slot;
* otherwise the median of the whole trailing window (only where a slot lacks data: points are
  judged from 72 prior hours / 21 prior days on, once the daily / weekly pattern is known).

The spread is the larger of the robust sigma (1.4826·MAD) of the window's residuals around their
slot baselines (pooled) and the relative residual sigma of slots at a similar level times the
baseline (busy hours are noisier in dollars than quiet ones), floored so a perfectly flat history
does not make every wiggle infinite: a relative floor (10% of the baseline), an absolute floor per
metric, Poisson noise sqrt(baseline) for request counts and binomial noise sqrt(p(1-p)/n) for
error rates (p at least the window's pooled error rate and 1%). deviation = (value - baseline) /
spread. An error-rate episode needs >= 5 errors in a bucket to open.

Points at or past |deviation| >= 3.5 (in a direction that matters for the metric) open an episode;
it continues while the same-signed deviation stays >= 2. Episodes of >= 6 hours (3 days) are level
shifts (one anomaly at the start, median value of the episode); shorter ones are spikes (one anomaly
at the peak). Severity cut-offs on |deviation|: low 3.5, medium 6, high 10, critical 20.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

import numpy as np

from ._stats import robust_sigma, slot_medians


class Metric(StrEnum):
    SPEND = "spend"
    REQUESTS = "requests"
    LATENCY = "latency"
    ERROR_RATE = "error_rate"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class AnomalyKind(StrEnum):
    SPIKE = "spike"
    LEVEL_SHIFT = "level_shift"


class Granularity(StrEnum):
    HOUR = "hour"
    DAY = "day"


# |deviation| lower bounds, checked from the top.
SEVERITY_CUTOFFS: tuple[tuple[float, Severity], ...] = (
    (20.0, Severity.CRITICAL),
    (10.0, Severity.HIGH),
    (6.0, Severity.MEDIUM),
    (3.5, Severity.LOW),
)
_SEVERITY_RANK = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}


@dataclass(frozen=True)
class MetricPolicy:
    """How one metric is judged: which directions matter and the spread floors."""

    up: bool = True
    down: bool = True
    relative_floor: float = 0.10
    absolute_floor: float = 0.0
    poisson: bool = False  # counts: spread >= sqrt(baseline)
    binomial: bool = False  # rates: spread >= sqrt(p(1-p)/n), n = the bucket's request count
    min_count: int = 0  # skip buckets with fewer requests (latency / error rate are noise there)
    # value * count must reach this to open an episode (3 errors in 30 requests is not an incident).
    min_events: float = 0.0


DEFAULT_POLICIES: dict[Metric, MetricPolicy] = {
    # A sudden drop in spend or traffic (integration broke, key revoked) matters as much as a rise.
    Metric.SPEND: MetricPolicy(absolute_floor=0.01),
    Metric.REQUESTS: MetricPolicy(absolute_floor=1.0, poisson=True),
    # Faster and fewer errors are good news, not anomalies.
    Metric.LATENCY: MetricPolicy(down=False, absolute_floor=10.0, min_count=5),
    Metric.ERROR_RATE: MetricPolicy(
        down=False,
        relative_floor=0.0,
        absolute_floor=0.005,
        binomial=True,
        min_count=20,
        min_events=5.0,
    ),
}


@dataclass(frozen=True)
class GranularityConfig:
    step: timedelta
    window: timedelta  # trailing baseline window
    min_history: int  # prior points needed before a point is judged
    seasonal_min_samples: int  # prior same-slot points needed for the seasonal baseline
    shift_min_points: int  # episode length that makes a level shift
    unit: str


GRANULARITIES: dict[Granularity, GranularityConfig] = {
    Granularity.HOUR: GranularityConfig(
        step=timedelta(hours=1),
        window=timedelta(days=14),
        # Three days: judging hours before the daily pattern is known flags every business day.
        min_history=72,
        seasonal_min_samples=3,
        shift_min_points=6,
        unit="hour",
    ),
    Granularity.DAY: GranularityConfig(
        step=timedelta(days=1),
        window=timedelta(days=56),
        # Three weeks: judging days before the weekday pattern is known flags every weekend.
        min_history=21,
        seasonal_min_samples=3,
        shift_min_points=3,
        unit="day",
    ),
}


@dataclass(frozen=True)
class DetectorConfig:
    threshold: float = 3.5
    continue_threshold: float = 2.0
    policies: dict[Metric, MetricPolicy] = field(default_factory=lambda: dict(DEFAULT_POLICIES))


DEFAULT_CONFIG = DetectorConfig()


@dataclass(frozen=True)
class Anomaly:
    metric: Metric
    scope: str  # "organization" | "key"
    scope_id: str
    at: datetime  # spike: the peak bucket; level shift: the first shifted bucket
    value: float  # spike: the peak value; level shift: median over the episode
    baseline: float
    deviation: float  # robust z-score (median over the episode for level shifts)
    severity: Severity
    message: str
    kind: AnomalyKind = AnomalyKind.SPIKE
    direction: str = "up"
    end: datetime | None = None  # last bucket of the episode
    points: int = 1  # buckets in the episode


@dataclass(frozen=True)
class UsageBucket:
    """One hourly/daily rollup row for an organization or key."""

    start: datetime
    requests: int = 0
    errors: int = 0
    cost_usd: float = 0.0
    # Whichever statistic the rollup keeps (mean or p95), as long as it is the same throughout.
    latency_ms: float | None = None


def severity_for(deviation: float, *, threshold: float = 3.5) -> Severity | None:
    """Severity for a deviation; None below the detection threshold."""
    magnitude = abs(deviation)
    if magnitude < threshold:
        return None
    for cutoff, severity in SEVERITY_CUTOFFS:
        if magnitude >= cutoff:
            return severity
    return Severity.LOW


@dataclass(frozen=True)
class _Scored:
    index: int
    baseline: float
    deviation: float
    can_open: bool = True  # enough events to start an episode


def detect_series_anomalies(
    *,
    points: Sequence[tuple[datetime, float]],
    metric: Metric,
    scope: str,
    scope_id: str,
    granularity: Granularity = Granularity.HOUR,
    counts: Sequence[float] | None = None,
    since: datetime | None = None,
    partial_from: datetime | None = None,
    config: DetectorConfig = DEFAULT_CONFIG,
) -> list[Anomaly]:
    """Anomalies in one regular series (one value per bucket, sorted or not).

    ``counts`` (requests per bucket, aligned with ``points``) feed the binomial floor and the
    ``min_count`` filter. ``since`` keeps only episodes that end at or after it. Buckets from
    ``partial_from`` on are still filling (the current hour): a partial sum only bounds the full one
    from below, so they can show a rise but not a fall and are judged upwards only.
    """
    metric = Metric(metric)
    granularity = Granularity(granularity)
    policy = config.policies[metric]
    gconf = GRANULARITIES[granularity]
    order = sorted(range(len(points)), key=lambda i: points[i][0])
    times = [points[i][0] for i in order]
    values = np.array([float(points[i][1]) for i in order], dtype=np.float64)
    n_arr = (
        np.array([float(counts[i]) for i in order], dtype=np.float64)
        if counts is not None
        else None
    )
    valid = np.isfinite(values)
    if n_arr is not None and policy.min_count:
        valid &= n_arr >= policy.min_count
    slots = np.array([_slot(t, granularity) for t in times])
    stamps = np.array([t.timestamp() for t in times], dtype=np.float64)
    window = gconf.window.total_seconds()

    # An episode cannot outlive half the window (the median has absorbed it by then), so with
    # ``since`` nothing earlier than that needs scoring.
    first = 0
    if since is not None:
        first = int(np.searchsorted(stamps, since.timestamp() - window / 2, side="left"))
    scored: list[_Scored] = []
    for i in range(first, len(times)):
        if not valid[i]:
            continue
        lo = int(np.searchsorted(stamps, stamps[i] - window, side="left"))
        prior = np.arange(lo, i)[valid[lo:i]]
        if prior.size < gconf.min_history:
            continue
        baseline, spread = _baseline(
            values[prior], slots[prior], slot=slots[i], min_samples=gconf.seasonal_min_samples
        )
        count = float(n_arr[i]) if n_arr is not None else None
        pooled_rate = None
        if policy.binomial and n_arr is not None and float(n_arr[prior].sum()) > 0:
            pooled_rate = float(np.dot(values[prior], n_arr[prior]) / n_arr[prior].sum())
        spread = _floored_spread(
            spread, baseline=baseline, policy=policy, count=count, pooled_rate=pooled_rate
        )
        if spread <= 0:
            continue
        can_open = count is None or values[i] * count >= policy.min_events
        deviation = float((values[i] - baseline) / spread)
        if deviation < 0 and partial_from is not None and times[i] >= partial_from:
            continue
        scored.append(_Scored(i, baseline, deviation, can_open))

    anomalies = [
        _to_anomaly(
            episode,
            times=times,
            values=values,
            metric=metric,
            scope=scope,
            scope_id=scope_id,
            gconf=gconf,
            config=config,
        )
        for episode in _episodes(scored, policy=policy, config=config)
    ]
    if since is not None:
        anomalies = [a for a in anomalies if (a.end or a.at) >= since]
    return anomalies


def detect_usage_anomalies(
    *,
    buckets: Sequence[UsageBucket],
    scope: str,
    scope_id: str,
    granularity: Granularity = Granularity.HOUR,
    until: datetime | None = None,
    since: datetime | None = None,
    partial_from: datetime | None = None,
    config: DetectorConfig = DEFAULT_CONFIG,
) -> list[Anomaly]:
    """All four metrics for one organization or key, most severe first.

    Missing buckets between the first bucket and ``until`` (default: the last bucket) mean no
    traffic: zero spend and requests, no latency or error rate. ``partial_from``: the first bucket
    still filling (see ``detect_series_anomalies``).
    """
    if not buckets:
        return []
    step = GRANULARITIES[Granularity(granularity)].step
    by_start = {b.start: b for b in buckets}
    first = min(by_start)
    last = max(max(by_start), until) if until is not None else max(by_start)
    grid: list[UsageBucket] = []
    at = first
    while at <= last:
        grid.append(by_start.get(at, UsageBucket(start=at)))
        at += step

    counts = [float(b.requests) for b in grid]
    series: dict[Metric, list[tuple[datetime, float]]] = {
        Metric.SPEND: [(b.start, float(b.cost_usd)) for b in grid],
        Metric.REQUESTS: [(b.start, float(b.requests)) for b in grid],
        Metric.LATENCY: [
            (b.start, float(b.latency_ms) if b.latency_ms is not None and b.requests else math.nan)
            for b in grid
        ],
        Metric.ERROR_RATE: [
            (b.start, b.errors / b.requests if b.requests else math.nan) for b in grid
        ],
    }
    found: list[Anomaly] = []
    for metric, points in series.items():
        found.extend(
            detect_series_anomalies(
                points=points,
                metric=metric,
                scope=scope,
                scope_id=scope_id,
                granularity=granularity,
                counts=counts,
                since=since,
                partial_from=partial_from,
                config=config,
            )
        )
    return most_severe_first(found)


def most_severe_first(anomalies: Sequence[Anomaly]) -> list[Anomaly]:
    """Severity, then |deviation| descending, then time: the order every report uses (scope and
    metric break ties, so the order does not depend on the input's)."""
    return sorted(anomalies, key=lambda a: (-_SEVERITY_RANK[a.severity], -abs(a.deviation), a.at,
                                            a.scope, a.scope_id, a.metric.value))


def _slot(at: datetime, granularity: Granularity) -> int:
    return at.hour if granularity is Granularity.HOUR else at.weekday()


def _baseline(
    values: np.ndarray, slots: np.ndarray, *, slot: int, min_samples: int
) -> tuple[float, float]:
    """(baseline, robust spread) from the prior window; seasonal when this slot has enough samples.

    Seasonal spread = max(absolute residual sigma pooled over all slots, relative residual sigma
    pooled over slots at a comparable level (0.25x-4x this slot's median) * baseline): busy hours
    are noisier in dollars than quiet ones, and a slot's own 3-14 samples are too few for a MAD.
    """
    same = slots == slot
    if int(same.sum()) < min_samples:
        return float(np.median(values)), robust_sigma(values)
    medians = slot_medians(values, slots)
    baseline = float(medians[same][0])
    residuals = values - medians
    spread = robust_sigma(residuals)
    if baseline > 0:
        comparable = (medians >= 0.25 * baseline) & (medians <= 4 * baseline)
        relative = residuals[comparable] / medians[comparable]
        spread = max(spread, robust_sigma(relative) * baseline)
    return baseline, spread


def _floored_spread(
    spread: float,
    *,
    baseline: float,
    policy: MetricPolicy,
    count: float | None,
    pooled_rate: float | None = None,
) -> float:
    floors = [spread, policy.relative_floor * abs(baseline), policy.absolute_floor]
    if policy.poisson:
        floors.append(math.sqrt(max(baseline, 1.0)))
    if policy.binomial and count:
        # Per-bucket medians of small-count rates are often 0; the pooled rate is not.
        p = min(max(baseline, pooled_rate or 0.0, 0.01), 0.99)
        floors.append(math.sqrt(p * (1 - p) / count))
    return max(floors)


def _episodes(
    scored: list[_Scored], *, policy: MetricPolicy, config: DetectorConfig
) -> list[list[_Scored]]:
    """Group consecutive judged points into episodes (open at threshold, continue at a lower)."""
    episodes: list[list[_Scored]] = []
    current: list[_Scored] = []
    for point in scored:
        sign = 1 if point.deviation > 0 else -1
        if current:
            current_sign = 1 if current[0].deviation > 0 else -1
            if sign == current_sign and abs(point.deviation) >= config.continue_threshold:
                current.append(point)
                continue
            episodes.append(current)
            current = []
        allowed = policy.up if sign > 0 else policy.down
        if allowed and point.can_open and abs(point.deviation) >= config.threshold:
            current = [point]
    if current:
        episodes.append(current)
    return episodes


_LABELS = {
    Metric.SPEND: "Spend",
    Metric.REQUESTS: "Request rate",
    Metric.LATENCY: "Latency",
    Metric.ERROR_RATE: "Error rate",
}


def _fmt(metric: Metric, value: float) -> str:
    if metric is Metric.SPEND:
        return f"${value:,.2f}"
    if metric is Metric.REQUESTS:
        return f"{value:,.0f} requests"
    if metric is Metric.LATENCY:
        return f"{value:,.0f} ms"
    return f"{value:.1%}"


def _change(value: float, baseline: float) -> str:
    if baseline == 0:
        return "from zero"
    return f"{(value - baseline) / abs(baseline):+.0%}"


def _to_anomaly(
    episode: list[_Scored],
    *,
    times: list[datetime],
    values: np.ndarray,
    metric: Metric,
    scope: str,
    scope_id: str,
    gconf: GranularityConfig,
    config: DetectorConfig,
) -> Anomaly:
    direction = "up" if episode[0].deviation > 0 else "down"
    end = times[episode[-1].index]
    label = _LABELS[metric]
    per = f" per {gconf.unit}" if metric in (Metric.SPEND, Metric.REQUESTS) else ""
    fmt = "%Y-%m-%d %H:%M" if gconf.unit == "hour" else "%Y-%m-%d"
    if len(episode) >= gconf.shift_min_points:
        start = episode[0]
        # Medians over the episode: with a seasonal baseline each bucket has its own baseline.
        value = float(np.median([values[p.index] for p in episode]))
        baseline = float(np.median([p.baseline for p in episode]))
        deviation = float(np.median([p.deviation for p in episode]))
        severity = severity_for(deviation, threshold=0.0) or Severity.LOW
        message = (
            f"{label} shifted {direction} since {times[start.index]:{fmt}}: median "
            f"{_fmt(metric, value)}{per} vs baseline {_fmt(metric, baseline)} "
            f"({_change(value, baseline)}, z={deviation:+.1f}) over {len(episode)} "
            f"{gconf.unit}s"
        )
        return Anomaly(
            metric=metric,
            scope=scope,
            scope_id=scope_id,
            at=times[start.index],
            value=value,
            baseline=baseline,
            deviation=deviation,
            severity=severity,
            message=message,
            kind=AnomalyKind.LEVEL_SHIFT,
            direction=direction,
            end=end,
            points=len(episode),
        )
    peak = max(episode, key=lambda p: abs(p.deviation))
    value = float(values[peak.index])
    severity = severity_for(peak.deviation, threshold=config.threshold) or Severity.LOW
    lasting = f", episode of {len(episode)} {gconf.unit}s" if len(episode) > 1 else ""
    message = (
        f"{label} {'spike' if direction == 'up' else 'drop'} at {times[peak.index]:{fmt}}: "
        f"{_fmt(metric, value)}{per} vs baseline {_fmt(metric, peak.baseline)} "
        f"({_change(value, peak.baseline)}, z={peak.deviation:+.1f}){lasting}"
    )
    return Anomaly(
        metric=metric,
        scope=scope,
        scope_id=scope_id,
        at=times[peak.index],
        value=value,
        baseline=peak.baseline,
        deviation=peak.deviation,
        severity=severity,
        message=message,
        kind=AnomalyKind.SPIKE,
        direction=direction,
        end=end,
        points=len(episode),
    )
