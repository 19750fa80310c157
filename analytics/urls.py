from django.urls import path

from analytics import api

urlpatterns = [
    path("metrics", api.MetricsView.as_view(), name="metrics"),
    path("analytics/cost-summary", api.CostSummaryView.as_view(), name="analytics-cost-summary"),
    path("analytics/recent-inferences", api.RecentInferencesView.as_view(),
         name="analytics-recent-inferences"),
    path("analytics/cost-breakdown", api.CostBreakdownView.as_view(),
         name="analytics-cost-breakdown"),
    path("analytics/trends", api.TrendsView.as_view(), name="analytics-trends"),
    path("analytics/cache-performance", api.CachePerformanceView.as_view(),
         name="analytics-cache-performance"),
    path("analytics/latency-percentiles", api.LatencyPercentilesView.as_view(),
         name="analytics-latency-percentiles"),
    path("analytics/forecast", api.ForecastView.as_view(), name="analytics-forecast"),
    path("analytics/anomalies", api.AnomaliesView.as_view(), name="analytics-anomalies"),
    path("analytics/recommendations", api.RecommendationsView.as_view(),
         name="analytics-recommendations"),
    path("analytics/prometheus", api.PrometheusView.as_view(), name="analytics-prometheus"),
]
