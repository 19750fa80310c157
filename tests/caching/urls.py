"""The project URLconf plus the cache management API, for tests that run before the lead wires it."""

from django.urls import include, path

from asahi_project.urls import urlpatterns as project_patterns

urlpatterns = [*project_patterns, path("", include("caching.urls"))]
