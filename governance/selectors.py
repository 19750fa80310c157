"""Reads for governance: key authentication (cached per process), policies, usage, audit queries."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.db.models import Count, QuerySet, Sum
from django.utils import timezone

from asahi_project.errors import AuthenticationFailed, NotFound
from governance.keys import hashes_match, split_prefix
from governance.models import ApiKey, AuditEvent, Membership, Organization, Policy
from governance.types import AuthContext, PolicySnapshot

logger = logging.getLogger("asahi.governance")


def policy_snapshot(policy: Policy | None) -> PolicySnapshot:
    if policy is None:
        return PolicySnapshot()
    return PolicySnapshot(
        daily_budget_usd=policy.daily_budget_usd,
        monthly_budget_usd=policy.monthly_budget_usd,
        max_cost_per_request_usd=policy.max_cost_per_request_usd,
        allowed_models=frozenset(policy.allowed_models),
        allowed_providers=frozenset(policy.allowed_providers),
        rpm_limit=policy.rpm_limit,
        tpm_limit=policy.tpm_limit,
        cache_enabled=policy.cache_enabled,
        cache_ttl_seconds=policy.cache_ttl_seconds,
        cache_max_temperature=policy.cache_max_temperature,
        semantic_cache_enabled=policy.semantic_cache_enabled,
        semantic_threshold=policy.semantic_threshold,
        pii_redaction=policy.pii_redaction,
        retention_days=policy.retention_days,
        redis_failure_mode=policy.redis_failure_mode,
        reference_model=policy.reference_model,
    )


@dataclass
class _Cached:
    context: AuthContext
    key_hash: str
    until: float
    # The cross-process stamp seen when the load began (see _AuthCache).
    stamp: bytes | None = None


# Bumped (INCR) on every revocation, rotation, freeze or policy change, in whichever process made it.
STAMP_KEY = "asahi:auth:stamp"
STAMP_POLL_SECONDS = 0.5


class _AuthCache:
    """Per-process cache of key lookups: the hot path does no database query for a known key.

    Entries live ASAHI_KEY_CACHE_SECONDS (default 5 s). In the process that changes a key or a
    policy, `invalidate` applies at once; it also bumps a stamp in Redis, which a daemon thread in
    every serving process reads every STAMP_POLL_SECONDS and, when it moved, empties the cache: a
    revocation reaches every process within about half a second, and a cached check stays a dict
    lookup (no Redis on the request path). Without REDIS_URL (one process) there is no stamp.
    """

    def __init__(self) -> None:
        self._entries: dict[str, _Cached] = {}
        self._lock = threading.Lock()
        self._stamp: bytes | None = None
        self._watcher_pid = 0

    def get(self, prefix: str) -> _Cached | None:
        entry = self._entries.get(prefix)
        if entry is None or entry.until < time.monotonic():
            return None
        return entry

    def get_stale(self, prefix: str) -> _Cached | None:
        """An expired entry, within ASAHI_KEY_STALE_SECONDS: for when the database is down."""
        entry = self._entries.get(prefix)
        if entry is None or entry.until + settings.ASAHI_KEY_STALE_SECONDS < time.monotonic():
            return None
        return entry

    @property
    def stamp(self) -> bytes | None:
        return self._stamp

    def put(self, prefix: str, entry: _Cached) -> None:
        self._ensure_watcher()
        with self._lock:
            # Loaded before a change the watcher has seen since: it may predate the change.
            if entry.stamp != self._stamp:
                return
            if len(self._entries) > 50_000:
                self._entries.clear()
            self._entries[prefix] = entry

    def invalidate(self, *, prefix: str | None = None, org_id: uuid.UUID | None = None) -> None:
        with self._lock:
            if prefix is not None:
                self._entries.pop(prefix, None)
            if org_id is not None:
                for p in [p for p, e in self._entries.items() if e.context.org_id == org_id]:
                    self._entries.pop(p, None)
        self._publish()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _publish(self) -> None:
        if not settings.REDIS_URL:
            return
        from asahi_project.redis_client import get_sync_redis

        try:
            get_sync_redis().incr(STAMP_KEY)
        except Exception as exc:  # other processes then see the change when their entries expire
            logger.warning("auth_stamp_publish_failed", extra={"error": type(exc).__name__})

    def _ensure_watcher(self) -> None:
        pid = os.getpid()
        if self._watcher_pid == pid or not settings.REDIS_URL:
            return
        with self._lock:
            if self._watcher_pid == pid:
                return
            self._watcher_pid = pid  # per process: a forked child starts its own
            threading.Thread(target=self._watch, name="auth-stamp", daemon=True).start()

    def _watch(self) -> None:
        from asahi_project.redis_client import get_sync_redis

        redis = get_sync_redis()
        failing = False
        while True:
            try:
                stamp = redis.get(STAMP_KEY)
            except Exception as exc:  # Redis down: entries still expire on their own
                if not failing:  # once per outage, not twice a second
                    logger.warning("auth_stamp_read_failed", extra={"error": type(exc).__name__})
                failing = True
            else:
                failing = False
                # Any difference, a vanished key included (a flushed Redis counts from 1 again).
                if stamp != self._stamp:
                    with self._lock:
                        self._stamp = stamp
                        self._entries.clear()
            time.sleep(STAMP_POLL_SECONDS)


auth_cache = _AuthCache()


def _load_context(prefix: str) -> tuple[AuthContext, str] | None:
    key = (
        ApiKey.objects.select_related("organization", "organization__policy")
        .filter(prefix=prefix)
        .first()
    )
    if key is None:
        return None
    org = key.organization
    policy = getattr(org, "policy", None)
    ctx = AuthContext(
        key_id=key.pk,
        key_prefix=key.prefix,
        org_id=org.id,
        org_name=org.name,
        scopes=frozenset(key.scopes),
        expires_at=key.expires_at,
        frozen=key.frozen_at is not None,
        key_daily_budget_usd=key.daily_budget_usd,
        key_monthly_budget_usd=key.monthly_budget_usd,
        key_rpm_limit=key.rpm_limit,
        key_tpm_limit=key.tpm_limit,
        key_allowed_models=frozenset(key.allowed_models),
        policy=policy_snapshot(policy),
    )
    if key.revoked_at is not None or not org.is_active:
        ctx = _Revoked(ctx)  # type: ignore[assignment]
    return ctx, key.key_hash


class _Revoked:
    """Marker wrapper so revoked keys are cached too (repeated bad calls cost no query)."""

    def __init__(self, ctx: AuthContext) -> None:
        self.ctx = ctx

    @property
    def org_id(self) -> uuid.UUID:
        return self.ctx.org_id


def key_context(prefix: str) -> AuthContext:
    """The context of a key the server itself holds, by prefix (the console's playground key, whose
    secret nobody keeps): the checks of `authenticate_key` except the secret's. Not cached: one
    query per playground request."""
    loaded = _load_context(prefix)
    if loaded is None:
        raise AuthenticationFailed("invalid API key")
    ctx_any: Any = loaded[0]
    if isinstance(ctx_any, _Revoked):
        raise AuthenticationFailed("API key has been revoked", code="revoked_api_key")
    context: AuthContext = ctx_any
    if context.expires_at is not None and context.expires_at <= timezone.now():
        raise AuthenticationFailed("API key has expired", code="expired_api_key")
    return context


def auth_context_for_key(*, key_id: int) -> AuthContext | None:
    """The context of a key for work done later on its behalf (batches): None when the key is
    gone, revoked, expired or its organization inactive, so that work stops with it."""
    prefix = ApiKey.objects.filter(pk=key_id).values_list("prefix", flat=True).first()
    loaded = _load_context(prefix) if prefix else None
    if loaded is None or isinstance(loaded[0], _Revoked):
        return None
    ctx = loaded[0]
    if ctx.expires_at is not None and ctx.expires_at <= timezone.now():
        return None
    return ctx


def authenticate_key(raw: str) -> AuthContext:
    """Resolve a raw bearer key to its AuthContext or raise AuthenticationFailed (401)."""
    prefix = split_prefix(raw)
    if prefix is None:
        raise AuthenticationFailed("invalid API key format")
    entry = auth_cache.get(prefix)
    if entry is None:
        stamp = auth_cache.stamp  # before the query: a change after it must win over this load
        try:
            loaded = _load_context(prefix)
        except (OperationalError, InterfaceError):
            # PostgreSQL unreachable: a key this process checked lately is still served (revocations
            # and policy changes need the database, so none can have happened meanwhile; one made
            # just before the outage emptied the cache through the stamp). Any other key: a 503.
            stale = auth_cache.get_stale(prefix)
            if stale is None:
                raise
            logger.debug("auth_served_stale", extra={"key_prefix": prefix})
            loaded = None
            entry = stale
    if entry is None:
        if loaded is None:
            raise AuthenticationFailed("invalid API key")
        ctx, key_hash = loaded
        entry = _Cached(context=ctx, key_hash=key_hash,
                        until=time.monotonic() + settings.ASAHI_KEY_CACHE_SECONDS, stamp=stamp)
        auth_cache.put(prefix, entry)
    return _verified(raw, entry)


def authenticate_cached(raw: str) -> AuthContext | None:
    """`authenticate_key` from this process's cache only, never a query (safe on the event loop):
    None when the key is not cached, the caller then loads it off the loop. One lookup: checking
    the cache and then calling `authenticate_key` could find the entry gone in between (expired,
    or cleared by the revocation watcher) and query from the loop."""
    prefix = split_prefix(raw)
    entry = auth_cache.get(prefix) if prefix is not None else None
    return None if entry is None else _verified(raw, entry)


def _verified(raw: str, entry: _Cached) -> AuthContext:
    if not hashes_match(raw, entry.key_hash):
        raise AuthenticationFailed("invalid API key")
    ctx_any: Any = entry.context
    if isinstance(ctx_any, _Revoked):
        raise AuthenticationFailed("API key has been revoked", code="revoked_api_key")
    context: AuthContext = ctx_any
    if context.expires_at is not None and context.expires_at <= timezone.now():
        raise AuthenticationFailed("API key has expired", code="expired_api_key")
    return context


def organization_get(*, org_id: Any) -> Organization:
    try:
        return Organization.objects.get(pk=uuid.UUID(str(org_id)))
    except (ValueError, Organization.DoesNotExist) as exc:
        raise NotFound(f"organization {org_id} not found", code="organization_not_found") from exc


def period_start(period: str, now: datetime | None = None) -> datetime:
    now = now or timezone.now()
    if period == "day":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "month":
        return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if period.endswith("h") and period[:-1].isdigit():
        return now - timedelta(hours=int(period[:-1]))
    if period.endswith("d") and period[:-1].isdigit():
        return now - timedelta(days=int(period[:-1]))
    raise ValueError(period)


def usage_for_org(*, org: Organization, period: str) -> dict[str, Any]:
    from inference.models import InferenceEvent

    since = period_start(period)
    agg = InferenceEvent.objects.filter(organization=org, created_at__gte=since).aggregate(
        request_count=Count("id"), total_cost=Sum("cost_usd"),
        input_tokens=Sum("input_tokens"), output_tokens=Sum("output_tokens"),
    )
    policy = policy_snapshot(getattr(org, "policy", None))
    return {
        "org_id": str(org.id),
        "period": period,
        "since": since.isoformat(),
        "request_count": agg["request_count"] or 0,
        "total_cost_usd": float(agg["total_cost"] or Decimal(0)),
        "input_tokens": agg["input_tokens"] or 0,
        "output_tokens": agg["output_tokens"] or 0,
        "policy_limits": {
            "daily_budget_usd": _f(policy.daily_budget_usd),
            "monthly_budget_usd": _f(policy.monthly_budget_usd),
            "max_cost_per_request_usd": _f(policy.max_cost_per_request_usd),
            "rpm_limit": policy.rpm_limit,
            "tpm_limit": policy.tpm_limit,
        },
    }


def _f(value: Decimal | None) -> float | None:
    return float(value) if value is not None else None


def audit_events(*, org_ids: list[uuid.UUID] | None, action: str | None = None,
                 actor: str | None = None, since: datetime | None = None,
                 until: datetime | None = None) -> QuerySet[AuditEvent]:
    qs = AuditEvent.objects.all()
    if org_ids is not None:
        qs = qs.filter(organization_id__in=org_ids)
    if action:
        qs = qs.filter(action=action)
    if actor:
        qs = qs.filter(actor=actor)
    if since:
        qs = qs.filter(created_at__gte=since)
    if until:
        qs = qs.filter(created_at__lt=until)
    return qs.order_by("-created_at", "-id")


def api_keys_for_org(*, organization: Organization, limit: int = 500) -> QuerySet[ApiKey]:
    return (ApiKey.objects.filter(organization=organization).select_related("created_by")
            .order_by("-created_at")[:limit])


def api_key_in_org(*, organization: Organization, prefix: str) -> ApiKey:
    """One of the organization's keys; another organization's key is reported as missing."""
    key = ApiKey.objects.filter(organization=organization, prefix=prefix).first()
    if key is None:
        raise NotFound(f"API key {prefix} not found", code="api_key_not_found")
    return key


def members_of(*, organization: Organization) -> QuerySet[Membership]:
    return (Membership.objects.filter(organization=organization).select_related("user")
            .order_by("user__username"))
