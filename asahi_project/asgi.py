"""ASGI entry point: HTTP through Django, websockets through Channels (dashboard live updates).

The inference hot paths (HOT_PATHS) go to a lean Django handler: same URLconf, views, error handlers
and response headers, but no thread hop per request. Django's stock async handler runs sync-only
middleware (sessions, CSRF, auth, messages, WhiteNoise) and the request_started/request_finished
signal receivers through `sync_to_async`, which on an async view costs several thread hops plus a
per-request executor thread; at gateway rates that was most of the server's CPU.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "asahi_project.settings")

import asyncio
import contextlib
from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.core.asgi import get_asgi_application

django_asgi = get_asgi_application()

from django.conf import settings  # noqa: E402
from django.core import signals  # noqa: E402
from django.core.exceptions import RequestAborted  # noqa: E402
from django.core.handlers.asgi import ASGIHandler, get_script_prefix  # noqa: E402
from django.core.handlers.exception import convert_exception_to_response  # noqa: E402
from django.urls import set_script_prefix  # noqa: E402
from django.utils.deprecation import MiddlewareMixin  # noqa: E402
from django.utils.module_loading import import_string  # noqa: E402

from analytics import loop_lag  # noqa: E402
from asahi_project.gc_tuning import freeze_after_startup  # noqa: E402
from asahi_project.middleware import HOT_PATH_SKIPPED, InlineHooksMiddleware  # noqa: E402
from asahi_project.ws import websocket_urlpatterns  # noqa: E402
from routing.difficulty import warm as warm_difficulty  # noqa: E402

# Exact paths of the async, csrf-exempt inference views.
HOT_PATHS = frozenset({"/v1/chat/completions", "/v1/embeddings", "/infer"})


class LeanASGIHandler(ASGIHandler):
    """Django's ASGI handler for the hot views, without thread hops.

    Middleware: settings.MIDDLEWARE minus HOT_PATH_SKIPPED; async-capable ones run as usual, the
    old-style ones' hooks run inline (InlineHooksMiddleware), in the same order. The connection
    housekeeping signals are sent inline: on the event-loop thread there is never a database
    connection (Django forbids it there), so their receivers have nothing to wait for.
    """

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        handler: Any = convert_exception_to_response(getattr(self, "_get_response_async"))  # noqa: B009
        hooks: list[Any] = []  # old-style middleware, innermost first, waiting to be wrapped
        for path in reversed(settings.MIDDLEWARE):
            if path in HOT_PATH_SKIPPED:
                continue
            cls = import_string(path)
            if issubclass(cls, MiddlewareMixin):
                hooks.insert(0, cls(lambda request: None))
                continue
            if hooks:
                handler = convert_exception_to_response(InlineHooksMiddleware(handler, hooks))
                hooks = []
            handler = convert_exception_to_response(cls(handler))
        if hooks:
            handler = convert_exception_to_response(InlineHooksMiddleware(handler, hooks))
        self._middleware_chain = handler

    async def handle(self, scope: Any, receive: Any, send: Any) -> None:
        """Django's `ASGIHandler.handle`, with the signals and `response.close()` inline."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=ASGIHandler, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            assert error_response is not None  # Django returns one or the other
            body_file.close()
            await self.send_response(error_response, send)
            error_response.close()
            return

        async def process_request(request: Any, send: Any) -> Any:
            response = await self.run_get_response(request)
            with contextlib.suppress(asyncio.CancelledError):  # client went away mid-send
                await self.send_response(response, send)
            return response

        tasks = [
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(process_request(request, send)),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            response = tasks[1].result()
        except asyncio.CancelledError:
            signals.request_finished.send(sender=ASGIHandler)
        else:
            response.close()
        body_file.close()


lean_asgi = LeanASGIHandler()


async def http_app(scope: Any, receive: Any, send: Any) -> None:
    loop_lag.ensure_started()
    app = lean_asgi if scope["path"] in HOT_PATHS else django_asgi
    await app(scope, receive, send)


# Websockets: the session's user (AuthMiddlewareStack), and only from pages of an allowed host, so
# another site cannot open a socket with the visitor's session cookie (cross-site hijacking).
application = ProtocolTypeRouter({
    "http": http_app,
    "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
})

# The router's difficulty predictor reads wordfreq's table (~0.6 s) on first use: load it before
# the first request, so that no routed request stalls the event loop on it, and before the freeze,
# so that its objects are frozen with the rest.
warm_difficulty()
loop_lag.watch_gc_pauses()
if settings.ASAHI_GC_FREEZE:
    freeze_after_startup()
