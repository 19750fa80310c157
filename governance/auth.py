"""DRF authentication and scope permissions.

Callers authenticate with `Authorization: Bearer <key>`. Platform staff may also use a Django admin session
or the `X-Admin-Secret` header (ASAHI_ADMIN_SECRET); those principals see every organization.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from asahi_project.errors import AuthenticationFailed, PermissionDenied
from governance.selectors import authenticate_key
from governance.types import AuthContext


@dataclass(frozen=True)
class Principal:
    """request.user for API calls. `context` is None for platform staff."""

    context: AuthContext | None
    staff_name: str | None = None
    is_authenticated: bool = True
    is_active: bool = True

    @property
    def is_platform_staff(self) -> bool:
        return self.context is None

    @property
    def actor(self) -> str:
        return self.context.actor if self.context else f"staff:{self.staff_name}"


def bearer_token(header: str) -> str | None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Principal, Any] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if header:
            token = bearer_token(header)
            if token is None:
                raise AuthenticationFailed("Authorization header must be 'Bearer <api key>'")
            ctx = authenticate_key(token)
            return Principal(context=ctx), ctx
        admin_secret = request.META.get("HTTP_X_ADMIN_SECRET")
        if admin_secret is not None:
            expected = settings.ASAHI_ADMIN_SECRET
            if expected and hmac.compare_digest(admin_secret.encode(), expected.encode()):
                return Principal(context=None, staff_name="admin-secret"), None
            raise AuthenticationFailed("invalid X-Admin-Secret")
        return None

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="asahi"'


class StaffSessionAuthentication(SessionAuthentication):
    """A logged-in Django staff user (the admin console) acts as platform staff on the API."""

    def authenticate(self, request: Request) -> tuple[Principal, Any] | None:
        result = super().authenticate(request)
        if result is None:
            return None
        user, _ = result
        if not user.is_staff:
            return None
        return Principal(context=None, staff_name=user.get_username()), None


def _principal(request: Request) -> Principal:
    user = request.user
    if not isinstance(user, Principal):
        raise AuthenticationFailed("authentication required: send 'Authorization: Bearer <api key>'")
    return user


class _ScopePermission(BasePermission):
    scopes: tuple[str, ...] = ()
    label = ""

    def has_permission(self, request: Request, view: Any) -> bool:
        principal = _principal(request)
        if principal.context is None or principal.context.has_scope(*self.scopes):
            return True
        raise PermissionDenied(
            f"this API key lacks the scope for {self.label}; needs one of: "
            f"{', '.join((*self.scopes, 'all'))}",
            code="insufficient_scope",
        )


class InferScope(_ScopePermission):
    scopes = ("infer",)
    label = "inference"


class AnalyticsScope(_ScopePermission):
    scopes = ("analytics", "admin")
    label = "analytics"


class AdminScope(_ScopePermission):
    scopes = ("admin",)
    label = "governance"


def principal_of(request: Request) -> Principal:
    return _principal(request)
