"""ASGI entry point: HTTP through Django, websockets through Channels (dashboard live updates)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "asahi_project.settings")

from channels.routing import ProtocolTypeRouter, URLRouter
from django.core.asgi import get_asgi_application

django_asgi = get_asgi_application()

from asahi_project.ws import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {"http": django_asgi, "websocket": URLRouter(websocket_urlpatterns)}
)
