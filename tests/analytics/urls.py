"""The project URLs plus the analytics app's, for tests that run before the lead wires them in."""

from django.urls import include, path

from asahi_project.urls import urlpatterns as project_urlpatterns

urlpatterns = [*project_urlpatterns]
if not any(getattr(getattr(p, "urlconf_name", None), "__name__", None) == "analytics.urls"
           for p in project_urlpatterns):
    urlpatterns.append(path("", include("analytics.urls")))

handler400 = "asahi_project.errors.handler400"
handler403 = "asahi_project.errors.handler403"
handler404 = "asahi_project.errors.handler404"
handler500 = "asahi_project.errors.handler500"
