"""Websocket routes. Consumers authenticate and join only their own organization's group."""

from django.urls import path

websocket_urlpatterns: list = []

try:  # the console adds the live dashboard consumer
    from console.consumers import DashboardConsumer

    websocket_urlpatterns.append(path("ws/dashboard", DashboardConsumer.as_asgi()))
except ImportError:  # pragma: no cover
    pass
