from django.urls import path

from caching import api

urlpatterns = [
    path("cache/stats", api.CacheStatsView.as_view(), name="cache-stats"),
    path("cache/invalidate", api.CacheInvalidateView.as_view(), name="cache-invalidate"),
]
