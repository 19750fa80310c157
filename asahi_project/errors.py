"""One error shape for every endpoint: {"error": {"type", "message", "code", "param"}, "request_id"}.

The shape is a superset of OpenAI's error body, so the official SDKs raise their usual classes
(401 AuthenticationError, 429 RateLimitError, ...) with our message. Exceptions map to statuses as in the
seed's table; the issue texts override it where they differ (an unknown model is 404 model_not_found).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

from asahi_project.request_id import current_request_id

logger = logging.getLogger("asahi.errors")


class AsahiError(Exception):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.param = param
        self.headers = headers or {}
        self.details = details


class InvalidRequest(AsahiError):
    pass


class AuthenticationFailed(AsahiError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(AsahiError):
    status = 403
    type = "permission_error"
    code = "permission_denied"


class NotFound(AsahiError):
    status = 404
    type = "not_found_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class PayloadTooLarge(AsahiError):
    status = 413
    code = "payload_too_large"


class RateLimited(AsahiError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after
        if retry_after is not None:
            self.headers["Retry-After"] = str(max(1, int(retry_after + 0.999)))


class BudgetExceeded(RateLimited):
    code = "budget_exceeded"


class UpstreamError(AsahiError):
    status = 502
    type = "api_error"
    code = "upstream_error"


class ServiceUnavailable(AsahiError):
    status = 503
    type = "api_error"
    code = "service_unavailable"


class NoModelsAvailable(ServiceUnavailable):
    code = "no_models_available"


def error_body(
    *, status: int, message: str, type_: str, code: str, param: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    err: dict[str, Any] = {"type": type_, "message": message, "code": code, "param": param}
    if details:
        err["details"] = details
    return {"error": err, "request_id": current_request_id()}


def error_response(exc: AsahiError) -> HttpResponse:
    """A plain Django response (used by the async hot-path views, which bypass DRF)."""
    body = error_body(
        status=exc.status, message=exc.message, type_=exc.type, code=exc.code, param=exc.param,
        details=exc.details,
    )
    response = HttpResponse(
        orjson.dumps(body), status=exc.status, content_type="application/json"
    )
    for key, value in exc.headers.items():
        response[key] = value
    return response


def _flatten(detail: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(detail, dict):
        out: list[tuple[str, str]] = []
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors":
                name = prefix
            out.extend(_flatten(value, name))
        return out
    if isinstance(detail, list):
        out = []
        for i, value in enumerate(detail):
            name = f"{prefix}[{i}]" if isinstance(value, dict | list) and prefix else prefix
            out.extend(_flatten(value, name))
        return out
    return [(prefix, str(detail))]


def _from_drf(exc: drf.APIException) -> AsahiError:
    if isinstance(exc, drf.ValidationError):
        pairs = _flatten(exc.detail)
        message = "; ".join(f"{field}: {msg}" if field else msg for field, msg in pairs)
        return InvalidRequest(message or "invalid request", code="invalid_request",
                              param=pairs[0][0] if pairs and pairs[0][0] else None)
    if isinstance(exc, drf.ParseError):
        return InvalidRequest(f"malformed request body: {exc.detail}", code="invalid_json")
    if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
        return AuthenticationFailed(str(exc.detail))
    if isinstance(exc, drf.PermissionDenied):
        return PermissionDenied(str(exc.detail))
    if isinstance(exc, drf.NotFound):
        return NotFound(str(exc.detail))
    if isinstance(exc, drf.Throttled):
        return RateLimited(str(exc.detail), retry_after=getattr(exc, "wait", None))
    if isinstance(exc, drf.MethodNotAllowed):
        return AsahiError(str(exc.detail), status=405, code="method_not_allowed")
    if isinstance(exc, drf.UnsupportedMediaType):
        return AsahiError(str(exc.detail), status=415, code="unsupported_media_type")
    return AsahiError(str(exc.detail), status=exc.status_code, code=str(exc.default_code))


def to_asahi_error(exc: BaseException) -> AsahiError | None:
    if isinstance(exc, AsahiError):
        return exc
    if isinstance(exc, drf.APIException):
        return _from_drf(exc)
    if isinstance(exc, Http404):
        return NotFound(str(exc) or "not found")
    if isinstance(exc, DjangoPermissionDenied):
        return PermissionDenied(str(exc) or "permission denied")
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge("request body exceeds the maximum size")
    if isinstance(exc, OperationalError | InterfaceError):
        # PostgreSQL unreachable: what needs it fails clearly (and may be retried), never a 500.
        return ServiceUnavailable("the database is unreachable; retry shortly",
                                  code="database_unavailable", headers={"Retry-After": "5"})
    return None


def drf_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    err = to_asahi_error(exc)
    if err is None:
        logger.exception("unhandled_error", exc_info=exc)
        err = AsahiError("internal server error", status=500, code="internal_error")
        err.type = "api_error"
    request = context.get("request")
    if err.status == 401 and request is not None:
        from governance.services import audit_auth_failure

        audit_auth_failure(request=request, reason=err.message)
    body = error_body(status=err.status, message=err.message, type_=err.type, code=err.code,
                      param=err.param, details=err.details)
    return Response(body, status=err.status, headers=err.headers)


def wants_html(request: HttpRequest) -> bool:
    """Browsers get the console's error pages; API clients keep the JSON shape. Only an Accept
    header that names text/html counts (the SDKs send application/json, curl sends */*), and
    /v1/ is always JSON."""
    accept = request.headers.get("Accept", "") if hasattr(request, "headers") else ""
    return "text/html" in accept and not request.path.startswith("/v1/")


def _html_error(request: HttpRequest | None, status: int, title: str, message: str) -> HttpResponse:
    from django.template import loader

    context = {"status": status, "title": title, "message": message,
               "request_id": current_request_id()}
    body: str
    try:
        # Without the request for a 500: its context processors may be what failed.
        body = loader.render_to_string("console/error.html", context, request=request)
    except Exception:
        logger.exception("error_page_failed")
        body = f"<h1>{status} {title}</h1><p>Request id: {context['request_id']}</p>"
    return HttpResponse(body, status=status, content_type="text/html; charset=utf-8")


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if wants_html(request):
        return _html_error(request, 404, "Page not found",
                           "There is nothing here, or it belongs to another organization.")
    return error_response(NotFound(f"no route for {request.method} {request.path}"))


def handler500(request: HttpRequest) -> HttpResponse:
    if wants_html(request):
        return _html_error(None, 500, "Something went wrong",
                           "The error was logged. Try again; if it persists, quote the request id.")
    err = AsahiError("internal server error", status=500, code="internal_error")
    err.type = "api_error"
    return error_response(err)


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if isinstance(exception, RequestDataTooBig):
        return error_response(PayloadTooLarge("request body exceeds the maximum size"))
    from django.core.exceptions import DisallowedHost

    if isinstance(exception, DisallowedHost):
        return error_response(InvalidRequest("invalid Host header (not in ALLOWED_HOSTS)",
                                             code="disallowed_host"))
    return error_response(InvalidRequest(str(exception) or "bad request"))


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if wants_html(request):
        return _html_error(request, 403, "Not allowed",
                           str(exception) if isinstance(exception, DjangoPermissionDenied)
                           and str(exception) else "You do not have access to this page.")
    return error_response(PermissionDenied("permission denied"))


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF rejections in the same two shapes (Django's default is a bare yellow page)."""
    if wants_html(request):
        return _html_error(request, 403, "Form expired",
                           "The form was missing its security token or it expired. "
                           "Go back, reload the page and submit again.")
    return error_response(PermissionDenied(f"CSRF verification failed: {reason}",
                                           code="csrf_failed"))
