"""Insights on constructed series/inputs where the right answer is known (pure, no database)."""

from __future__ import annotations

import math
import random
from datetime import UTC, date, datetime, timedelta

import pytest

from analytics.insights import (
    AnomalyKind,
    BudgetRisk,
    BudgetStatus,
    CacheTierStats,
    CacheTraffic,
    CatalogueModel,
    Confidence,
    ForecastMethod,
    Granularity,
    KeyInfo,
    Metric,
    ModelUsage,
    RecommendationInputs,
    RecommendationKind,
    Severity,
    UsageBucket,
    build_recommendations,
    detect_series_anomalies,
    detect_usage_anomalies,
    forecast_month_end,
    severity_for,
)

# ---------------------------------------------------------------------------------------------
# Forecast
# ---------------------------------------------------------------------------------------------


def _days(start: date, count: int) -> list[date]:
    return [start + timedelta(days=i) for i in range(count)]


def _linear(i: int) -> float:
    return 10.0 + 0.5 * i


def test_linear_series_projects_the_known_month_end() -> None:
    start = date(2025, 4, 1)
    days = _days(start, 91)  # April 1 .. June 30
    as_of = date(2025, 6, 14)
    series = [(d, _linear(i)) for i, d in enumerate(days) if d <= as_of]
    truth = sum(_linear(i) for i, d in enumerate(days) if d.month == 6)

    forecast = forecast_month_end(daily_spend=series, as_of=as_of)

    assert forecast.method is ForecastMethod.ROBUST_TREND
    assert forecast.projected_usd == pytest.approx(truth, rel=1e-9)
    assert forecast.month_to_date_usd == pytest.approx(
        sum(_linear(i) for i, d in enumerate(days) if d.month == 6 and d <= as_of)
    )
    assert forecast.lower_usd <= truth <= forecast.upper_usd
    assert forecast.remaining_days == 16
    assert len(forecast.projected_daily) == 16
    assert forecast.projected_daily[0][0] == date(2025, 6, 15)


def test_short_history_uses_trend_and_says_why() -> None:
    days = _days(date(2025, 6, 1), 30)
    as_of = date(2025, 6, 10)
    series = [(d, _linear(i)) for i, d in enumerate(days) if d <= as_of]
    truth = sum(_linear(i) for i in range(30))

    forecast = forecast_month_end(daily_spend=series, as_of=as_of)

    assert forecast.method is ForecastMethod.ROBUST_TREND
    assert "10 days" in forecast.method_reason
    assert forecast.projected_usd == pytest.approx(truth, rel=1e-9)


def test_run_rate_with_few_days() -> None:
    as_of = date(2025, 6, 3)
    series = [(date(2025, 6, 1), 8.0), (date(2025, 6, 2), 12.0), (date(2025, 6, 3), 10.0)]

    forecast = forecast_month_end(daily_spend=series, as_of=as_of)

    assert forecast.method is ForecastMethod.RUN_RATE
    assert forecast.projected_usd == pytest.approx(30.0 + 10.0 * 27)
    assert forecast.lower_usd < forecast.projected_usd < forecast.upper_usd


def test_run_rate_reason_shows_a_new_organizations_tiny_spend() -> None:
    forecast = forecast_month_end(daily_spend=[(date(2025, 6, 1), 0.000018)], as_of=date(2025, 6, 1))
    assert "mean daily spend $0.000018 *" in forecast.method_reason
    assert "$0.00 " not in forecast.method_reason


PATTERN = (120.0, 130.0, 125.0, 120.0, 110.0, 30.0, 20.0)  # Mon..Sun


def _seasonal_series(seed: int) -> tuple[list[tuple[date, float]], date, float]:
    rng = random.Random(seed)
    start, as_of, month_end = date(2025, 4, 1), date(2025, 6, 12), date(2025, 6, 30)
    series: list[tuple[date, float]] = []
    expected_rest = 0.0
    for i, d in enumerate(_days(start, (month_end - start).days + 1)):
        mean = PATTERN[d.weekday()] + 0.2 * i
        if d <= as_of:
            series.append((d, mean + rng.gauss(0, 4)))
        else:
            expected_rest += mean
    mtd = sum(v for d, v in series if d.month == 6)
    return series, as_of, mtd + expected_rest


def test_weekly_seasonal_series_uses_seasonal_method_and_lands_near_truth() -> None:
    series, as_of, truth = _seasonal_series(seed=7)

    forecast = forecast_month_end(daily_spend=series, as_of=as_of)

    assert forecast.method is ForecastMethod.SEASONAL_TREND
    assert forecast.projected_usd == pytest.approx(truth, rel=0.02)
    # Weekend days are forecast low, weekdays high: the pattern is really used.
    by_day = dict(forecast.projected_daily)
    assert by_day[date(2025, 6, 14)] < 0.5 * by_day[date(2025, 6, 16)]  # Sat vs Mon


def test_seasonal_beats_a_plain_trend_on_a_weekly_series() -> None:
    """Dropping the weekday pattern (a 10-day history) gives a visibly worse estimate."""
    series, as_of, truth = _seasonal_series(seed=11)
    full = forecast_month_end(daily_spend=series, as_of=as_of)
    short = forecast_month_end(daily_spend=series, as_of=as_of, max_history_days=10)
    assert short.method is ForecastMethod.ROBUST_TREND
    assert abs(full.projected_usd - truth) < abs(short.projected_usd - truth)


def test_budget_risk_is_monotonic_in_budget() -> None:
    series, as_of, _ = _seasonal_series(seed=3)
    base = forecast_month_end(daily_spend=series, as_of=as_of)
    budgets = [base.month_to_date_usd * f for f in (0.5, 1.01, 1.5, 2.0)] + [
        base.projected_usd * f for f in (0.9, 0.97, 1.0, 1.03, 1.1, 2.0)
    ]
    probabilities = [
        forecast_month_end(daily_spend=series, as_of=as_of, budget_usd=b).exceed_probability
        for b in sorted(budgets)
    ]
    assert all(p is not None for p in probabilities)
    assert all(a >= b for a, b in zip(probabilities, probabilities[1:], strict=False))
    assert probabilities[0] == 1.0
    assert probabilities[-1] < 0.01
    at_point = forecast_month_end(daily_spend=series, as_of=as_of, budget_usd=base.projected_usd)
    assert at_point.exceed_probability == pytest.approx(0.5, abs=1e-9)
    assert at_point.budget_risk is BudgetRisk.HIGH


def test_budget_already_exceeded_and_no_budget() -> None:
    series = [(date(2025, 6, d), 50.0) for d in range(1, 11)]
    over = forecast_month_end(daily_spend=series, as_of=date(2025, 6, 10), budget_usd=400)
    assert over.budget_risk is BudgetRisk.EXCEEDED
    assert over.exceed_probability == 1.0
    assert over.projected_overrun_usd == pytest.approx(over.projected_usd - 400)
    none = forecast_month_end(daily_spend=series, as_of=date(2025, 6, 10))
    assert none.exceed_probability is None and none.budget_risk is None


def test_empty_series() -> None:
    forecast = forecast_month_end(daily_spend=[], as_of=date(2025, 6, 1), budget_usd=100)
    assert forecast.method is ForecastMethod.NO_DATA
    assert forecast.projected_usd == 0.0
    assert forecast.exceed_probability == 0.0
    assert forecast.budget_risk is BudgetRisk.LOW


def test_all_zero_history() -> None:
    series = [(d, 0.0) for d in _days(date(2025, 5, 1), 40)]
    forecast = forecast_month_end(daily_spend=series, as_of=date(2025, 6, 9), budget_usd=10)
    assert forecast.method is ForecastMethod.ZERO_SPEND
    assert (forecast.projected_usd, forecast.lower_usd, forecast.upper_usd) == (0.0, 0.0, 0.0)
    assert forecast.exceed_probability == 0.0


def test_first_day_of_month_uses_previous_month_history() -> None:
    series = [(d, 20.0) for d in _days(date(2025, 5, 1), 31)] + [(date(2025, 6, 1), 5.0)]
    forecast = forecast_month_end(daily_spend=series, as_of=date(2025, 6, 1), as_of_fraction=0.25)
    assert forecast.month_to_date_usd == 5.0
    # Constant $20/day history: 3/4 of today plus 29 full days.
    assert forecast.projected_usd == pytest.approx(5.0 + 0.75 * 20.0 + 29 * 20.0)
    assert forecast.remaining_days == pytest.approx(29.75)
    assert forecast.history_days == 31


def test_brand_new_spender_extrapolates_partial_day() -> None:
    forecast = forecast_month_end(
        daily_spend=[(date(2025, 6, 1), 5.0)], as_of=date(2025, 6, 1), as_of_fraction=0.25
    )
    assert forecast.method is ForecastMethod.RUN_RATE
    assert forecast.projected_usd == pytest.approx(5.0 + 0.75 * 20.0 + 29 * 20.0)


def test_days_after_as_of_are_ignored_and_duplicates_summed() -> None:
    series = [(date(2025, 6, d), 10.0) for d in range(1, 8)]
    series += [(date(2025, 6, 3), 10.0), (date(2025, 6, 20), 1e6)]
    forecast = forecast_month_end(daily_spend=series, as_of=date(2025, 6, 7))
    assert forecast.month_to_date_usd == pytest.approx(80.0)
    assert forecast.projected_usd < 1e5


# ---------------------------------------------------------------------------------------------
# Anomalies
# ---------------------------------------------------------------------------------------------

T0 = datetime(2025, 6, 1, tzinfo=UTC)


def _hourly(values: list[float]) -> list[tuple[datetime, float]]:
    return [(T0 + timedelta(hours=h), v) for h, v in enumerate(values)]


@pytest.mark.parametrize(
    ("deviation", "expected"),
    [
        (3.0, None),
        (3.5, Severity.LOW),
        (-5.9, Severity.LOW),
        (6.0, Severity.MEDIUM),
        (10.0, Severity.HIGH),
        (19.9, Severity.HIGH),
        (20.0, Severity.CRITICAL),
    ],
)
def test_severity_cutoffs(deviation: float, expected: Severity | None) -> None:
    assert severity_for(deviation) == expected


def test_spike_on_flat_series_has_right_baseline_deviation_and_severity() -> None:
    values = [100.0] * 120
    values[100] = 250.0  # spread is the 10% floor (10): deviation (250-100)/10 = 15 -> high

    found = detect_series_anomalies(
        points=_hourly(values), metric=Metric.SPEND, scope="organization", scope_id="org-1"
    )

    assert len(found) == 1
    anomaly = found[0]
    assert anomaly.kind is AnomalyKind.SPIKE
    assert anomaly.at == T0 + timedelta(hours=100)
    assert anomaly.value == 250.0
    assert anomaly.baseline == 100.0
    assert anomaly.deviation == pytest.approx(15.0)
    assert anomaly.severity is Severity.HIGH
    assert anomaly.direction == "up"
    assert (anomaly.scope, anomaly.scope_id) == ("organization", "org-1")
    assert "$250.00" in anomaly.message and "$100.00" in anomaly.message


def test_small_bump_is_not_an_anomaly() -> None:
    values = [100.0] * 120
    values[100] = 130.0  # deviation 3 < 3.5
    assert not detect_series_anomalies(
        points=_hourly(values), metric=Metric.SPEND, scope="organization", scope_id="o"
    )


def _seasonal_hourly(days: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [
        100 + 60 * math.sin(2 * math.pi * (h % 24) / 24) + 0.1 * h / 24 + rng.gauss(0, 3)
        for h in range(24 * days)
    ]


def test_flat_and_smoothly_seasonal_series_give_no_anomaly() -> None:
    rng = random.Random(1)
    flat = [50 + rng.gauss(0, 2) for _ in range(24 * 14)]
    for values in (flat, _seasonal_hourly(21, seed=2)):
        assert not detect_series_anomalies(
            points=_hourly(values), metric=Metric.SPEND, scope="organization", scope_id="o"
        )


def test_business_hours_pattern_gives_no_anomaly() -> None:
    """A sharp day/night step (x20) is normal traffic, not a daily level shift."""
    rng = random.Random(6)
    values = [
        (100.0 if 9 <= h % 24 < 17 else 5.0) * (1 + rng.gauss(0, 0.05)) for h in range(24 * 14)
    ]
    assert not detect_series_anomalies(
        points=_hourly(values), metric=Metric.SPEND, scope="organization", scope_id="o"
    )


def test_spike_in_seasonal_series_measured_against_the_same_hour() -> None:
    values = _seasonal_hourly(14, seed=4)
    hour = 24 * 12 + 6  # 06:00, the daily peak (~160)
    values[hour] += 120.0

    found = detect_series_anomalies(
        points=_hourly(values), metric=Metric.SPEND, scope="key", scope_id="ak_12ab"
    )

    assert [a.at for a in found] == [T0 + timedelta(hours=hour)]
    # The seasonal baseline is the 06:00 level (~160), not the daily median (~100).
    assert found[0].baseline == pytest.approx(160, abs=6)
    assert found[0].severity in (Severity.MEDIUM, Severity.HIGH)


def test_level_shift_is_reported_once_at_its_start() -> None:
    rng = random.Random(5)
    values = [100 + rng.gauss(0, 3) for _ in range(24 * 10)]
    shift_at = 24 * 9
    values[shift_at:] = [v + 80 for v in values[shift_at:]]

    found = detect_series_anomalies(
        points=_hourly(values), metric=Metric.REQUESTS, scope="organization", scope_id="o"
    )

    assert len(found) == 1
    shift = found[0]
    assert shift.kind is AnomalyKind.LEVEL_SHIFT
    assert shift.at == T0 + timedelta(hours=shift_at)
    assert shift.end == T0 + timedelta(hours=len(values) - 1)
    assert shift.points == 24
    assert shift.value == pytest.approx(180, abs=5)
    assert shift.baseline == pytest.approx(100, abs=3)
    assert shift.direction == "up"


def test_drop_matters_for_requests_but_not_for_latency() -> None:
    values = [400.0] * 120
    values[100] = 40.0
    drops = detect_series_anomalies(
        points=_hourly(values), metric=Metric.REQUESTS, scope="organization", scope_id="o"
    )
    assert [(a.direction, a.at) for a in drops] == [("down", T0 + timedelta(hours=100))]
    assert not detect_series_anomalies(
        points=_hourly(values), metric=Metric.LATENCY, scope="organization", scope_id="o"
    )


def test_daily_series_with_weekly_pattern_and_spike() -> None:
    days = 70
    base = [PATTERN[(T0 + timedelta(days=i)).weekday()] for i in range(days)]
    points = [(T0 + timedelta(days=i), v) for i, v in enumerate(base)]
    assert not detect_series_anomalies(
        points=points,
        metric=Metric.SPEND,
        scope="organization",
        scope_id="o",
        granularity=Granularity.DAY,
    )
    spike_day = 64
    points[spike_day] = (points[spike_day][0], base[spike_day] * 3)
    found = detect_series_anomalies(
        points=points,
        metric=Metric.SPEND,
        scope="organization",
        scope_id="o",
        granularity=Granularity.DAY,
    )
    assert [a.at for a in found] == [T0 + timedelta(days=spike_day)]
    assert found[0].baseline == base[spike_day]  # same weekday's level
    assert found[0].severity is Severity.CRITICAL  # (3x - x) / 0.1x = 20


def test_usage_buckets_error_rate_and_latency_spikes() -> None:
    rng = random.Random(8)
    buckets = [
        UsageBucket(
            start=T0 + timedelta(hours=h),
            requests=1000,
            errors=10 + rng.randint(-3, 3),
            cost_usd=10 + rng.gauss(0, 0.5),
            latency_ms=800 + rng.gauss(0, 30),
        )
        for h in range(24 * 7)
    ]
    bad = 24 * 6 + 3
    buckets[bad] = UsageBucket(
        start=buckets[bad].start, requests=1000, errors=150, cost_usd=10, latency_ms=2400
    )

    found = detect_usage_anomalies(buckets=buckets, scope="key", scope_id="ak_1")

    by_metric = {a.metric: a for a in found}
    assert set(by_metric) == {Metric.ERROR_RATE, Metric.LATENCY}
    assert by_metric[Metric.ERROR_RATE].at == buckets[bad].start
    assert by_metric[Metric.ERROR_RATE].value == pytest.approx(0.15)
    assert by_metric[Metric.ERROR_RATE].baseline == pytest.approx(0.01, abs=0.002)
    assert by_metric[Metric.ERROR_RATE].severity is Severity.CRITICAL
    assert found[0].severity is Severity.CRITICAL


def test_error_rate_on_tiny_buckets_is_ignored() -> None:
    buckets = [
        UsageBucket(start=T0 + timedelta(hours=h), requests=500, errors=5, cost_usd=5.0)
        for h in range(96)
    ]
    buckets.append(UsageBucket(start=T0 + timedelta(hours=96), requests=4, errors=2, cost_usd=0.04))
    found = detect_usage_anomalies(buckets=buckets, scope="organization", scope_id="o")
    assert Metric.ERROR_RATE not in {a.metric for a in found}
    assert Metric.REQUESTS in {a.metric for a in found}  # traffic collapsed: that is real


def test_since_keeps_only_recent_episodes() -> None:
    values = [100.0] * 160
    values[80] = 300.0
    values[150] = 300.0
    points = _hourly(values)
    everything = detect_series_anomalies(
        points=points, metric=Metric.SPEND, scope="organization", scope_id="o"
    )
    assert [a.at for a in everything] == [T0 + timedelta(hours=h) for h in (80, 150)]
    found = detect_series_anomalies(
        points=points,
        metric=Metric.SPEND,
        scope="organization",
        scope_id="o",
        since=T0 + timedelta(hours=120),
    )
    assert [a.at for a in found] == [T0 + timedelta(hours=150)]


# ---------------------------------------------------------------------------------------------
# Recommendations
# ---------------------------------------------------------------------------------------------

GPT4O = CatalogueModel("gpt-4o", 2.5, 10.0, {"default": 4.5, "summarization": 4.4})
MINI = CatalogueModel("gpt-4o-mini", 0.15, 0.6, {"default": 4.0, "summarization": 4.2})
TINY = CatalogueModel("tiny-1b", 0.02, 0.04, {"default": 2.5})


def _route_inputs(*, mini_feedback: int) -> RecommendationInputs:
    return RecommendationInputs(
        period_days=10,
        usage=[
            ModelUsage(
                "summarization",
                "gpt-4o",
                requests=8000,
                cost_usd=200.0,
                input_tokens=40_000_000,
                output_tokens=10_000_000,
                measured_quality=4.4,
                feedback_count=150,
            ),
            ModelUsage(
                "summarization",
                "gpt-4o-mini",
                requests=900,
                cost_usd=2.0,
                input_tokens=4_000_000,
                output_tokens=1_000_000,
                measured_quality=4.3,
                feedback_count=mini_feedback,
            ),
        ],
        catalogue=[GPT4O, MINI, TINY],
    )


def test_route_recommendation_text_and_exact_savings() -> None:
    recs = build_recommendations(inputs=_route_inputs(mini_feedback=120))

    routes = [r for r in recs if r.kind is RecommendationKind.ROUTE_CHEAPER_MODEL]
    assert len(routes) == 1
    rec = routes[0]
    # gpt-4o-mini on the same tokens: 40M*0.15/1M + 10M*0.6/1M = 6 + 6 = 12; (200-12)*30/10 = 564.
    assert rec.estimated_monthly_savings_usd == pytest.approx(564.0)
    assert rec.title == (
        "route summarization from gpt-4o to gpt-4o-mini: \u2212$564.00 per month "
        "at measured quality 4.3 vs 4.4"
    )
    assert rec.confidence is Confidence.HIGH
    assert rec.evidence["alternative_period_cost_usd"] == pytest.approx(12.0)
    assert rec.evidence["to_model"] == "gpt-4o-mini"  # tiny-1b is cheaper but fails quality


def test_route_recommendation_falls_back_to_catalogue_quality() -> None:
    recs = build_recommendations(inputs=_route_inputs(mini_feedback=5))
    rec = next(r for r in recs if r.kind is RecommendationKind.ROUTE_CHEAPER_MODEL)
    assert rec.title.endswith("at quality 4.2 (catalogue) vs 4.4 (measured)")
    assert rec.confidence is Confidence.MEDIUM


def test_no_route_when_every_cheaper_model_is_too_weak() -> None:
    inputs = RecommendationInputs(
        period_days=30,
        usage=[
            ModelUsage(
                "code",
                "gpt-4o",
                requests=500,
                cost_usd=50.0,
                input_tokens=10_000_000,
                output_tokens=2_500_000,
            )
        ],
        catalogue=[
            CatalogueModel("gpt-4o", 2.5, 10.0, {"code": 4.6}),
            CatalogueModel("gpt-4o-mini", 0.15, 0.6, {"code": 3.9}),
        ],
    )
    assert not build_recommendations(inputs=inputs)


def _cache_inputs(**overrides: int) -> RecommendationInputs:
    traffic = dict(
        total_requests=10_000,
        eligible_requests=5_000,
        cache_hits=1_000,
        high_temperature_requests=3_800,
        no_cache_requests=1_200,
    )
    traffic.update(overrides)
    return RecommendationInputs(
        period_days=30,
        cache_tiers=[
            CacheTierStats("exact", lookups=5_000, hits=900),
            CacheTierStats("semantic", lookups=5_000, hits=100, near_misses=300),
        ],
        cache_traffic=CacheTraffic(
            temperature_limit=0.7,
            avg_miss_cost_usd=0.01,
            semantic_threshold=0.92,
            near_miss_floor=0.88,
            **traffic,
        ),
    )


def test_cache_temperature_and_near_miss_recommendations() -> None:
    recs = {r.kind: r for r in build_recommendations(inputs=_cache_inputs())}

    temp = recs[RecommendationKind.CACHE_TEMPERATURE]
    assert temp.title == (
        "semantic cache hit rate is low (2%) because 38% of requests have temperature > 0.7"
    )
    # 3,800 bypassing requests * 20% eligible hit rate * $0.01 per miss, 30-day period.
    assert temp.estimated_monthly_savings_usd == pytest.approx(7.60)

    near = recs[RecommendationKind.SEMANTIC_NEAR_MISSES]
    assert near.estimated_monthly_savings_usd == pytest.approx(3.00)
    assert "0.92" in near.title and near.evidence["upper_bound"] is True
    # 12% opt-out is under the 20% bar.
    assert RecommendationKind.CACHE_OPT_OUT not in recs


def test_cache_opt_out_recommendation() -> None:
    recs = {r.kind: r for r in build_recommendations(inputs=_cache_inputs(no_cache_requests=2_500))}
    opt = recs[RecommendationKind.CACHE_OPT_OUT]
    assert opt.title == "25% of requests opt out of the cache (no-cache)"
    assert opt.estimated_monthly_savings_usd == pytest.approx(2_500 * 0.2 * 0.01)


def test_budget_recommendations() -> None:
    inputs = RecommendationInputs(
        period_days=10,
        keys=[
            KeyInfo("ak_12ab", "batch jobs", period_spend_usd=50.0, has_budget=False),
            KeyInfo("ak_77ff", "web", period_spend_usd=80.0, has_budget=True),
        ],
        budgets=[
            BudgetStatus("key", "ak_9f", "monthly", limit_usd=1000, spent_usd=920),
            BudgetStatus(
                "organization",
                "acme",
                "monthly",
                limit_usd=1000,
                spent_usd=500,
                projected_usd=1100,
                exceed_probability=0.7,
            ),
            BudgetStatus(
                "organization",
                "calm",
                "monthly",
                limit_usd=1000,
                spent_usd=300,
                projected_usd=700,
                exceed_probability=0.05,
            ),
        ],
    )
    recs = build_recommendations(inputs=inputs)
    titles = [r.title for r in recs]
    assert "key ak_12ab has no budget" in titles
    assert "key ak_9f has used 92% of its monthly budget ($920.00 of $1,000.00)" in titles
    assert "organization acme has used 50% of its monthly budget ($500.00 of $1,000.00)" in titles
    assert not any("ak_77ff" in t or "calm" in t for t in titles)
    no_budget = next(r for r in recs if r.kind is RecommendationKind.KEY_WITHOUT_BUDGET)
    # $50 in 10 days = $150/month; * 1.25 = 187.5 -> rounded up to $190.
    assert no_budget.evidence["suggested_monthly_budget_usd"] == 190.0
    assert all(r.estimated_monthly_savings_usd is None for r in recs)


def test_recommendations_sorted_by_savings_with_none_last() -> None:
    route = _route_inputs(mini_feedback=120)
    cache = _cache_inputs()
    inputs = RecommendationInputs(
        period_days=10,
        usage=route.usage,
        catalogue=route.catalogue,
        cache_tiers=cache.cache_tiers,
        cache_traffic=cache.cache_traffic,
        keys=[KeyInfo("ak_12ab", "batch", period_spend_usd=5.0, has_budget=False)],
    )
    recs = build_recommendations(inputs=inputs)
    savings = [r.estimated_monthly_savings_usd for r in recs]
    assert savings[-1] is None
    numeric = [s for s in savings if s is not None]
    assert numeric == sorted(numeric, reverse=True)
    assert recs[0].kind is RecommendationKind.ROUTE_CHEAPER_MODEL
    assert len({r.id for r in recs}) == len(recs)
