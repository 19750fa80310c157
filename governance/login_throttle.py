"""Login throttling for the console and the Django admin: Redis counters of failed logins per
username and per client address, in a fixed window.

A username is locked after ``ASAHI_LOGIN_FAILURES_PER_USER`` failures in the window (slows password
guessing against one account from many addresses); an address after ``ASAHI_LOGIN_FAILURES_PER_IP``
(slows one address trying many accounts). A successful login clears its username's counter. When
Redis cannot be reached, logins are refused: a throttle that silently disappears during an outage
would be the easiest way around it.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from redis.exceptions import RedisError

from asahi_project.client_ip import client_ip
from asahi_project.redis_client import get_sync_redis

logger = logging.getLogger("asahi.governance")
_client: Any = None


def _redis() -> Any:
    global _client
    if _client is None:
        _client = get_sync_redis()
    return _client


def _keys(username: str, ip: str | None) -> list[str]:
    # Hashed so that typed usernames (sometimes a password typed in the wrong field) never sit in
    # Redis in clear text.
    user = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    keys = [f"asahi:login:fail:user:{user}"]
    if ip:
        keys.append(f"asahi:login:fail:ip:{ip}")
    return keys


class LoginThrottled(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class ThrottleUnavailable(Exception):
    pass


def check(*, username: str, ip: str | None) -> None:
    """Raise LoginThrottled if this username or address has failed too often in the window."""
    keys = _keys(username, ip)
    limits = [settings.ASAHI_LOGIN_FAILURES_PER_USER, settings.ASAHI_LOGIN_FAILURES_PER_IP]
    try:
        pipe = _redis().pipeline(transaction=False)
        for key in keys:
            pipe.get(key)
            pipe.ttl(key)
        replies = pipe.execute()
    except RedisError as exc:
        raise ThrottleUnavailable() from exc
    for i, key in enumerate(keys):
        count, ttl = replies[2 * i], replies[2 * i + 1]
        if count is not None and int(count) >= limits[i]:
            logger.warning("login_throttled", extra={"kind": key.split(":")[3]})
            raise LoginThrottled(retry_after=max(int(ttl), 1))


def record_failure(*, username: str, ip: str | None) -> None:
    window = settings.ASAHI_LOGIN_WINDOW_SECONDS
    try:
        pipe = _redis().pipeline(transaction=True)
        for key in _keys(username, ip):
            pipe.set(key, 0, ex=window, nx=True)  # the window starts at the first failure
            pipe.incr(key)
        pipe.execute()
    except RedisError:
        logger.warning("login_throttle_unavailable")


def record_success(*, username: str) -> None:
    try:
        _redis().delete(_keys(username, None)[0])
    except RedisError:
        logger.warning("login_throttle_unavailable")


class ThrottledLoginMixin:
    """For AuthenticationForm subclasses: check the counters before the password is tested."""

    request: Any

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = self.cleaned_data  # type: ignore[attr-defined]
        username = data.get("username") or ""
        ip = client_ip(self.request) if self.request is not None else None
        try:
            check(username=username, ip=ip)
        except LoginThrottled as exc:
            minutes = (exc.retry_after + 59) // 60
            raise forms.ValidationError(
                f"Too many failed logins. Try again in {minutes} minute{'s' if minutes > 1 else ''}.",
                code="throttled") from exc
        except ThrottleUnavailable as exc:
            raise forms.ValidationError(
                "Logging in is unavailable right now; try again in a minute.",
                code="throttle_unavailable") from exc
        try:
            cleaned: dict[str, Any] = super().clean()  # type: ignore[misc]
        except forms.ValidationError:
            if username:
                record_failure(username=username, ip=ip)
            raise
        record_success(username=username)
        return cleaned


class ThrottledAuthenticationForm(ThrottledLoginMixin, AuthenticationForm):
    """The console's login form (console users sign up with their email as username)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["username"].label = "Email"


class ThrottledAdminAuthenticationForm(ThrottledLoginMixin, AdminAuthenticationForm):
    """The Django admin's login form (staff only, as before), with the same counters."""
