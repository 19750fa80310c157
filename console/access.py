"""Who may open a console page: a logged-in user, resolved to their one organization and role.

Every console view is wrapped in ``role_required(<least role>)``. It sets ``request.membership`` and
``request.organization`` so that views never take an organization from the URL or a form: a user can
only ever reach their own organization's data. Roles are ordered viewer < member < admin < owner.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponseBase

from asahi_project import errors
from governance.choices import ROLE_RANK
from governance.models import Membership, Organization

View = TypeVar("View", bound=Callable[..., Any])


def membership_for(user: Any) -> Membership | None:
    """The user's membership with its organization, or None (no membership or inactive org)."""
    if not getattr(user, "is_authenticated", False):
        return None
    membership = (Membership.objects.select_related("organization", "user")
                  .filter(user_id=user.pk, organization__is_active=True).first())
    return membership


def has_role(membership: Membership | None, role: str) -> bool:
    return membership is not None and ROLE_RANK[membership.role] >= ROLE_RANK[role]


def _check(request: HttpRequest, membership: Membership | None, role: str) -> None:
    if membership is None:
        raise PermissionDenied("Your account is not a member of an active organization.")
    request.membership = membership  # type: ignore[attr-defined]
    request.organization = membership.organization  # type: ignore[attr-defined]
    if not has_role(membership, role):
        raise PermissionDenied(f"This needs the {role} role or higher; you are {membership.role}.")


def _as_page_error(exc: errors.AsahiError) -> Exception:
    """Services raise the API's errors; a page answers them with the HTML error pages."""
    if exc.status == 404:
        return Http404(exc.message)
    if exc.status == 403:
        return PermissionDenied(exc.message)
    return exc


def role_required(role: str) -> Callable[[View], View]:
    """Decorator for console views (sync or async): login, then the least role the view needs."""
    if role not in ROLE_RANK:
        raise ValueError(f"unknown role {role!r}")

    def decorate(view: View) -> View:
        if iscoroutinefunction(view):
            async_view = cast(Callable[..., Awaitable[HttpResponseBase]], view)

            @functools.wraps(view)
            async def async_wrapped(request: HttpRequest, *args: Any, **kwargs: Any
                                    ) -> HttpResponseBase:
                user = await request.auser()
                if not user.is_authenticated:
                    return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
                _check(request, await sync_to_async(membership_for)(user), role)
                try:
                    return await async_view(request, *args, **kwargs)
                except errors.AsahiError as exc:
                    raise _as_page_error(exc) from exc

            return cast(View, async_wrapped)

        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
            _check(request, membership_for(request.user), role)
            try:
                return cast(HttpResponseBase, view(request, *args, **kwargs))
            except errors.AsahiError as exc:
                raise _as_page_error(exc) from exc

        return cast(View, wrapped)

    return decorate


class RoleRequiredMixin:
    """The same check for class-based views: set ``required_role``."""

    required_role = "viewer"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        parent = super().dispatch  # type: ignore[misc]
        return cast(HttpResponseBase,
                    role_required(self.required_role)(parent)(request, *args, **kwargs))


def current_membership(request: HttpRequest) -> Membership:
    """The membership ``role_required`` resolved (typed accessor for views)."""
    return cast(Membership, request.membership)  # type: ignore[attr-defined]


def current_organization(request: HttpRequest) -> Organization:
    return cast(Organization, request.organization)  # type: ignore[attr-defined]
