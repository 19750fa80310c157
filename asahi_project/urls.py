from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import (
    SpectacularJSONAPIView,
    SpectacularRedocView,
    SpectacularSwaggerView,
)

from asahi_project.health import health
from governance.login_throttle import ThrottledAdminAuthenticationForm

admin.site.site_header = "Asahi operator console"
admin.site.site_title = "Asahi"
admin.site.index_title = "Organizations, keys, models and the ledger"
admin.site.login_form = ThrottledAdminAuthenticationForm

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health", health, name="health"),
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="openapi"),
    path("docs", SpectacularSwaggerView.as_view(url_name="openapi"), name="swagger-ui"),
    path("redoc", SpectacularRedocView.as_view(url_name="openapi"), name="redoc"),
    path("", include("governance.urls")),
    # Before inference: it answers /infer's deferrable requests and hands the rest to inference.
    path("", include("batching.urls")),
    path("", include("inference.urls")),
    path("", include("analytics.urls")),
    path("", include("caching.urls")),
    path("", include("console.urls")),
]

handler400 = "asahi_project.errors.handler400"
handler403 = "asahi_project.errors.handler403"
handler404 = "asahi_project.errors.handler404"
handler500 = "asahi_project.errors.handler500"
