"""Request-id middleware: every response carries X-Request-ID, every error body repeats it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from asahi_project.request_id import new_request_id


class RequestIdMiddleware:
    """Sync and async capable, so the async hot-path views never hop threads for it."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        rid = new_request_id(request.headers.get("X-Request-ID"))
        request.request_id = rid  # type: ignore[attr-defined]
        response: HttpResponseBase = self.get_response(request)
        response["X-Request-ID"] = rid
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        rid = new_request_id(request.headers.get("X-Request-ID"))
        request.request_id = rid  # type: ignore[attr-defined]
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        response = await get_response(request)
        response["X-Request-ID"] = rid
        return response


class NulGuardMiddleware:
    """A 400 naming the parameter for NUL in the URL path or query string (`%00`), before any view
    passes it to PostgreSQL, which cannot hold it (bodies are checked by their parsers)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        refusal = self._refusal(request)
        if refusal is not None:
            if iscoroutinefunction(self.get_response):
                async def refuse() -> HttpResponseBase:
                    return refusal

                return refuse()
            return refusal
        return self.get_response(request)

    @staticmethod
    def _refusal(request: HttpRequest) -> HttpResponseBase | None:
        from asahi_project.errors import InvalidRequest, error_response

        param = None
        if "\x00" in request.path_info:
            param = "path"
        elif "%00" in request.META.get("QUERY_STRING", ""):
            param = next((k for k, values in request.GET.lists()
                          if "\x00" not in k and any("\x00" in v for v in values)), "query")
        if param is None:
            return None
        return error_response(InvalidRequest(
            f"{param} must not contain a NUL character (U+0000)", param=param,
            code="invalid_characters"))


# Middleware the hot path skips: the inference views are csrf_exempt and never read the session, the
# user or messages, and WhiteNoise only answers static URLs. Each of these is sync-only, so on an
# async view it costs a thread hop per request.
HOT_PATH_SKIPPED = frozenset({
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",  # console pages only
})


class InlineHooksMiddleware:
    """Runs the request/response hooks of old-style (MiddlewareMixin) middleware inline, in order.

    The kept hooks (security headers, X-Frame-Options, Content-Length) are pure CPU, so calling them
    on the event loop is cheaper than Django's sync_to_async adapter and gives the same response.
    """

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]],
                 hooks: list[Any]) -> None:
        self.get_response = get_response
        self.hooks = hooks
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response: HttpResponseBase | None = None
        ran: list[Any] = []
        for hook in self.hooks:
            ran.append(hook)
            process_request = getattr(hook, "process_request", None)
            if process_request is not None:
                response = process_request(request)
                if response is not None:
                    break
        if response is None:
            response = await self.get_response(request)
        for hook in reversed(ran):
            process_response = getattr(hook, "process_response", None)
            if process_response is not None:
                response = process_response(request, response)
        return response
