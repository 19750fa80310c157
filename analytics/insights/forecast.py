"""Month-end spend forecast from a daily spend series (pure: plain values in, a dataclass out).

Method ladder (chosen by how many complete days of history exist; details in the insights docs):

* ``no_data``        — nothing observed: projection 0.
* ``zero_spend``     — history and month-to-date are all zero: projection 0, zero-width interval.
* ``run_rate``       — fewer than 7 days: mean daily spend * remaining days.
* ``robust_trend``   — 7+ days (or 14+ without a real weekly pattern): Theil-Sen line.
* ``seasonal_trend`` — 14+ days (2 per weekday) and a weekly pattern that cuts the residual spread
  per degree of freedom by >= 20%: Theil-Sen trend on the deseasonalised series plus additive
  day-of-week effects.

The interval is residual-based: robust residual sigma (degrees-of-freedom corrected), noise scaled
with the forecast level, OLS-style uncertainty of the fitted level/slope/weekday effects, an AR(1)
inflation for correlated residuals and a Student-t quantile; the budget risk is the tail
probability of the month total above the budget under the same spread.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum

import numpy as np

from ._stats import (
    FloatArray,
    lag1_autocorrelation,
    normal_quantile,
    normal_sf,
    robust_sigma,
    student_t_quantile,
    theil_sen,
)

MIN_TREND_DAYS = 7
MIN_SEASONAL_DAYS = 14  # two observations per weekday
# The weekly pattern must cut the robust residual sigma by at least this share to be used;
# otherwise seven extra parameters only add noise.
SEASONAL_MIN_IMPROVEMENT = 0.20
DEFAULT_MAX_HISTORY_DAYS = 56
# With < 3 days we cannot estimate spread; assume a coefficient of variation of 1 (wide on purpose).
FALLBACK_CV = 1.0
# AR(1) inflation is capped so one odd month cannot blow the interval up without bound.
MAX_AUTOCORRELATION = 0.9


class ForecastMethod(StrEnum):
    NO_DATA = "no_data"
    ZERO_SPEND = "zero_spend"
    RUN_RATE = "run_rate"
    ROBUST_TREND = "robust_trend"
    SEASONAL_TREND = "seasonal_trend"


class BudgetRisk(StrEnum):
    LOW = "low"  # P(exceed) < 20%
    MEDIUM = "medium"  # 20% <= P(exceed) < 50%
    HIGH = "high"  # P(exceed) >= 50%
    EXCEEDED = "exceeded"  # month-to-date spend is already above the budget


@dataclass(frozen=True)
class MonthEndForecast:
    """Projection of the month's total spend (USD) with a prediction interval and budget risk."""

    as_of: date
    month_start: date
    month_end: date
    month_to_date_usd: float
    projected_usd: float
    lower_usd: float
    upper_usd: float
    interval_level: float
    method: ForecastMethod
    method_reason: str
    history_days: int
    remaining_days: float
    # Forecast spend for each day still to come (as_of's remainder first when partial).
    projected_daily: tuple[tuple[date, float], ...]
    budget_usd: float | None
    exceed_probability: float | None
    budget_risk: BudgetRisk | None
    projected_overrun_usd: float | None


@dataclass(frozen=True)
class _Fit:
    """Daily model: forecast for day index t, residual sigma, and what the sum variance needs."""

    intercept: float
    slope: float
    weekday_effect: tuple[float, ...] | None  # additive, indexed by date.weekday()
    sigma: float
    t_mean: float
    sxx: float
    n: int
    autocorrelation: float
    method: ForecastMethod
    reason: str
    # Fitted parameters (for the residual degrees of freedom); None df = normal quantiles.
    df: int | None = None
    # Median-based level/effects are less efficient than means: variance factor pi/2.
    level_efficiency: float = 1.0
    weekday_counts: tuple[int, ...] | None = None
    # Mean fitted daily spend over the history: spend noise is roughly proportional to the level,
    # so a future day's noise is scaled by its forecast / this mean.
    fitted_mean: float = 0.0

    def predict(self, t: float, weekday: int) -> float:
        value = self.intercept + self.slope * t
        if self.weekday_effect is not None:
            value += self.weekday_effect[weekday]
        return max(value, 0.0)


def forecast_month_end(
    *,
    daily_spend: Iterable[tuple[date, float | Decimal]],
    as_of: date,
    budget_usd: float | Decimal | None = None,
    interval: float = 0.8,
    as_of_fraction: float = 1.0,
    max_history_days: int = DEFAULT_MAX_HISTORY_DAYS,
) -> MonthEndForecast:
    """Project as_of's month-end spend.

    ``daily_spend``: (day, cost) pairs, any order, duplicates summed; days after ``as_of`` ignored;
    missing days between the first observed day and ``as_of`` count as zero spend.
    ``as_of_fraction``: share of ``as_of`` already elapsed (1.0 = complete day). A partial day
    counts
    toward month-to-date but not toward the fit; its remainder is forecast.
    """
    if not 0 < interval < 1:
        raise ValueError("interval must be in (0, 1)")
    if not 0 <= as_of_fraction <= 1:
        raise ValueError("as_of_fraction must be in [0, 1]")
    budget = None if budget_usd is None else float(budget_usd)

    month_start = as_of.replace(day=1)
    month_end = as_of.replace(day=calendar.monthrange(as_of.year, as_of.month)[1])
    totals: dict[date, float] = {}
    for day, cost in daily_spend:
        if day <= as_of:
            totals[day] = totals.get(day, 0.0) + float(cost)
    month_to_date = float(sum(v for d, v in totals.items() if d >= month_start))

    # Future days as (day, weight): the remainder of a partial as_of, then every later day.
    future: list[tuple[date, float]] = []
    if as_of_fraction < 1:
        future.append((as_of, 1.0 - as_of_fraction))
    day = as_of + timedelta(days=1)
    while day <= month_end:
        future.append((day, 1.0))
        day += timedelta(days=1)
    remaining = sum(w for _, w in future)

    last_complete = as_of if as_of_fraction >= 1 else as_of - timedelta(days=1)
    history = _history(totals, last_complete=last_complete, max_days=max_history_days)
    if not history and as_of_fraction >= 0.05 and totals.get(as_of, 0.0) > 0:
        # Brand-new spender: extrapolate today's partial spend to a full day as the only sample.
        history = [(as_of, totals[as_of] / as_of_fraction)]

    fit = _choose_fit(history, has_any=bool(totals), month_to_date=month_to_date)
    origin = history[0][0] if history else as_of
    daily_forecast: list[tuple[date, float]] = []
    point = month_to_date
    for fday, weight in future:
        value = weight * fit.predict(float((fday - origin).days), fday.weekday())
        daily_forecast.append((fday, value))
        point += value

    sd = _sum_sd(fit, future=future, origin=origin)
    z = normal_quantile(0.5 + interval / 2)
    if fit.df is not None and sd > 0:
        # Few residual degrees of freedom: widen to the Student-t quantile; the budget probability
        # uses the same widened sd so interval and risk agree.
        sd *= student_t_quantile(0.5 + interval / 2, fit.df) / z
    lower = max(month_to_date, point - z * sd)
    upper = point + z * sd

    probability: float | None = None
    risk: BudgetRisk | None = None
    overrun: float | None = None
    if budget is not None:
        probability = _exceed_probability(
            budget=budget, point=point, sd=sd, month_to_date=month_to_date
        )
        risk = _risk_level(probability, exceeded=month_to_date > budget)
        overrun = max(point - budget, 0.0)

    return MonthEndForecast(
        as_of=as_of,
        month_start=month_start,
        month_end=month_end,
        month_to_date_usd=month_to_date,
        projected_usd=point,
        lower_usd=lower,
        upper_usd=upper,
        interval_level=interval,
        method=fit.method,
        method_reason=fit.reason,
        history_days=len(history),
        remaining_days=remaining,
        projected_daily=tuple(daily_forecast),
        budget_usd=budget,
        exceed_probability=probability,
        budget_risk=risk,
        projected_overrun_usd=overrun,
    )


def _history(
    totals: dict[date, float], *, last_complete: date, max_days: int
) -> list[tuple[date, float]]:
    """Complete days from the first observed day (or window start) to last_complete, gaps = 0."""
    observed = [d for d in totals if d <= last_complete]
    if not observed:
        return []
    start = max(min(observed), last_complete - timedelta(days=max_days - 1))
    days = (last_complete - start).days + 1
    return [
        (start + timedelta(days=i), totals.get(start + timedelta(days=i), 0.0)) for i in range(days)
    ]


def _constant_fit(
    level: float,
    *,
    sigma: float,
    n: int,
    method: ForecastMethod,
    reason: str,
    df: int | None = None,
) -> _Fit:
    return _Fit(
        intercept=level,
        slope=0.0,
        weekday_effect=None,
        sigma=sigma,
        t_mean=0.0,
        sxx=0.0,
        n=n,
        autocorrelation=0.0,
        method=method,
        reason=reason,
        df=df,
    )


def _choose_fit(history: list[tuple[date, float]], *, has_any: bool, month_to_date: float) -> _Fit:
    n = len(history)
    if n == 0:
        why = "no spend recorded yet" if not has_any else "no complete day of history yet"
        return _constant_fit(
            0.0, sigma=0.0, n=0, method=ForecastMethod.NO_DATA, reason=f"{why}; projecting 0"
        )
    y = np.array([v for _, v in history], dtype=np.float64)
    if not np.any(y) and month_to_date == 0:
        return _constant_fit(
            0.0,
            sigma=0.0,
            n=n,
            method=ForecastMethod.ZERO_SPEND,
            reason=f"all {n} days of history have zero spend",
        )
    if n < MIN_TREND_DAYS:
        mean = float(y.mean())
        sigma = float(y.std(ddof=1)) if n >= 3 else FALLBACK_CV * mean
        return _constant_fit(
            mean,
            sigma=sigma,
            n=n,
            df=n - 1 if n >= 3 else None,
            method=ForecastMethod.RUN_RATE,
            reason=(
                f"only {n} day(s) of history (< {MIN_TREND_DAYS}): mean daily spend "
                f"{_usd(mean)} * remaining days"
            ),
        )

    t = np.arange(n, dtype=np.float64)
    weekdays = np.array([d.weekday() for d, _ in history])
    intercept, slope = theil_sen(t, y)
    trend_resid = y - (intercept + slope * t)
    trend_sigma = robust_sigma(trend_resid)

    if n >= MIN_SEASONAL_DAYS:
        s_intercept, s_slope, effects = _seasonal_fit(t, y, weekdays)
        seasonal_resid = y - (s_intercept + s_slope * t + effects[weekdays])
        seasonal_sigma = robust_sigma(seasonal_resid)
        # Compare spreads per residual degree of freedom: seven medians fitted to 2-6 points each
        # always shrink in-sample residuals, weekly pattern or not.
        improvement = (
            1.0 - (seasonal_sigma * math.sqrt(n / (n - 8))) / (trend_sigma * math.sqrt(n / (n - 2)))
            if trend_sigma > 0
            else 0.0
        )
        if improvement >= SEASONAL_MIN_IMPROVEMENT:
            return _trend_fit(
                t,
                seasonal_resid,
                weekday_counts=tuple(int(np.sum(weekdays == wd)) for wd in range(7)),
                intercept=s_intercept,
                slope=s_slope,
                effects=tuple(float(e) for e in effects),
                sigma=seasonal_sigma,
                method=ForecastMethod.SEASONAL_TREND,
                reason=(
                    f"{n} days of history (>= {MIN_SEASONAL_DAYS}): robust trend with day-of-week "
                    f"effects; the weekly pattern cuts residual spread by {improvement:.0%}"
                ),
            )
        reason = (
            f"{n} days of history but no weekly pattern (it cuts residual spread by only "
            f"{max(improvement, 0.0):.0%}): robust linear trend"
        )
    else:
        reason = (
            f"{n} days of history ({MIN_TREND_DAYS}-{MIN_SEASONAL_DAYS - 1}): robust (Theil-Sen) "
            "linear trend, too short for weekly seasonality"
        )
    return _trend_fit(
        t,
        trend_resid,
        intercept=intercept,
        slope=slope,
        effects=None,
        sigma=trend_sigma,
        method=ForecastMethod.ROBUST_TREND,
        reason=reason,
    )


def _seasonal_fit(
    t: FloatArray, y: FloatArray, weekdays: np.ndarray
) -> tuple[float, float, FloatArray]:
    """Alternate Theil-Sen trend and median day-of-week effects (additive, centred to mean 0)."""
    intercept, slope = theil_sen(t, y)
    effects = np.zeros(7)
    for _ in range(3):
        resid = y - (intercept + slope * t)
        for wd in range(7):
            mask = weekdays == wd
            effects[wd] = float(np.median(resid[mask])) if np.any(mask) else 0.0
        effects -= effects.mean()
        intercept, slope = theil_sen(t, y - effects[weekdays])
    return intercept, slope, effects


def _trend_fit(
    t: FloatArray,
    resid: FloatArray,
    *,
    intercept: float,
    slope: float,
    effects: tuple[float, ...] | None,
    sigma: float,
    method: ForecastMethod,
    reason: str,
    weekday_counts: tuple[int, ...] | None = None,
) -> _Fit:
    if sigma == 0 and np.any(resid):
        sigma = float(resid.std(ddof=1))
    # In-sample residuals understate the error by the fitted parameters: scale by n/(n-p).
    params = 2 + (6 if effects is not None else 0)
    df = max(int(t.size) - params, 1)
    sigma *= math.sqrt(t.size / df)
    rho = min(max(lag1_autocorrelation(resid), 0.0), MAX_AUTOCORRELATION)
    t_mean = float(t.mean())
    fitted = y_fitted_mean(intercept, slope, t)
    return _Fit(
        intercept=intercept,
        slope=slope,
        weekday_effect=effects,
        sigma=sigma,
        t_mean=t_mean,
        sxx=float(np.sum((t - t_mean) ** 2)),
        n=int(t.size),
        autocorrelation=rho,
        method=method,
        reason=reason,
        df=df,
        level_efficiency=math.pi / 2,
        weekday_counts=weekday_counts,
        fitted_mean=fitted,
    )


def y_fitted_mean(intercept: float, slope: float, t: FloatArray) -> float:
    """Mean of the fitted trend over the history (weekday effects average to 0)."""
    return float(max(intercept + slope * float(t.mean()), 0.0))


def _sum_sd(fit: _Fit, *, future: list[tuple[date, float]], origin: date) -> float:
    """Standard deviation of the forecast remaining-month total.

    var = sigma² · [ AR(1)·Σw² + e·(Σw)²/n + (Σ w·(t-t̄))²/Sxx + e·Σ_d W_d²/n_d ]: new-day noise,
    then the uncertainty of the fitted level, slope and weekday effects (OLS formulas, used as an
    approximation for the robust fit; e = pi/2 is the variance cost of medians over means;
    W_d = future weight on weekday d, n_d = history days on weekday d).
    """
    if not future or fit.sigma == 0:
        return 0.0
    weights = np.array([w for _, w in future])
    noise_weights = weights
    if fit.fitted_mean > 0:
        ts_all = [float((d - origin).days) for d, _ in future]
        scale = np.array(
            [
                fit.predict(t, d.weekday()) / fit.fitted_mean
                for t, (d, _) in zip(ts_all, future, strict=True)
            ]
        )
        # Clipped: a trend heading to zero (or exploding) should not zero (or explode) the noise.
        noise_weights = weights * np.clip(scale, 0.5, 3.0)
    noise = float(np.sum(noise_weights**2)) * (1 + fit.autocorrelation) / (1 - fit.autocorrelation)
    level = fit.level_efficiency * float(weights.sum()) ** 2 / fit.n if fit.n else 0.0
    slope = 0.0
    if fit.sxx > 0:
        ts = np.array([(d - origin).days for d, _ in future], dtype=np.float64)
        slope = float(np.sum(weights * (ts - fit.t_mean))) ** 2 / fit.sxx
    effects = 0.0
    if fit.weekday_counts is not None:
        per_day = [0.0] * 7
        for (day, _), w in zip(future, weights, strict=True):
            per_day[day.weekday()] += float(w)
        effects = fit.level_efficiency * sum(
            per_day[wd] ** 2 / fit.weekday_counts[wd] for wd in range(7) if fit.weekday_counts[wd]
        )
    return fit.sigma * math.sqrt(noise + level + slope + effects)


def _exceed_probability(*, budget: float, point: float, sd: float, month_to_date: float) -> float:
    """P(month total > budget) under a normal forecast error; 1 once month-to-date is past it."""
    if month_to_date > budget:
        return 1.0
    if sd == 0:
        return 1.0 if point > budget else 0.0
    return normal_sf((budget - point) / sd)


def _risk_level(probability: float, *, exceeded: bool) -> BudgetRisk:
    if exceeded:
        return BudgetRisk.EXCEEDED
    if probability >= 0.5:
        return BudgetRisk.HIGH
    if probability >= 0.2:
        return BudgetRisk.MEDIUM
    return BudgetRisk.LOW


def _usd(amount: float) -> str:
    """Dollars for a sentence: cents, or two significant digits below a cent (a new organization's
    first day is often $0.00002, which cents would show as $0.00)."""
    if amount == 0 or abs(amount) >= 0.01:
        return f"${amount:,.2f}"
    decimals = 1 - math.floor(math.log10(abs(amount)))
    return f"${amount:.{decimals}f}"
