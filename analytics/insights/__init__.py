"""Pure analytics computations: month-end forecast, anomalies, recommendations.

No ORM and no I/O here: the analytics views/selectors turn ledger rollups into these plain inputs.
"""

from .anomalies import (
    Anomaly,
    AnomalyKind,
    DetectorConfig,
    Granularity,
    Metric,
    Severity,
    UsageBucket,
    detect_series_anomalies,
    detect_usage_anomalies,
    most_severe_first,
    severity_for,
)
from .forecast import BudgetRisk, ForecastMethod, MonthEndForecast, forecast_month_end
from .recommendations import (
    BudgetStatus,
    CacheTierStats,
    CacheTraffic,
    CatalogueModel,
    Confidence,
    KeyInfo,
    ModelUsage,
    Recommendation,
    RecommendationConfig,
    RecommendationInputs,
    RecommendationKind,
    build_recommendations,
)

__all__ = [
    "Anomaly",
    "AnomalyKind",
    "BudgetRisk",
    "BudgetStatus",
    "CacheTierStats",
    "CacheTraffic",
    "CatalogueModel",
    "Confidence",
    "DetectorConfig",
    "ForecastMethod",
    "Granularity",
    "KeyInfo",
    "Metric",
    "ModelUsage",
    "MonthEndForecast",
    "Recommendation",
    "RecommendationConfig",
    "RecommendationInputs",
    "RecommendationKind",
    "Severity",
    "UsageBucket",
    "build_recommendations",
    "detect_series_anomalies",
    "detect_usage_anomalies",
    "forecast_month_end",
    "most_severe_first",
    "severity_for",
]
