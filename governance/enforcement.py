"""Governance on the hot path: rate limits and budget reservation in one Redis script call before any
upstream spend, settle to the actual cost after, release on failure; the circuit breakers.

When Redis is unreachable the organization's policy decides: fail closed (deny, the default) or fail
open (serve, unmetered). Either way the event is logged and /health reports Redis as down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings

from asahi_project.errors import BudgetExceeded, RateLimited, ServiceUnavailable
from asahi_project.redis_client import get_async_redis
from governance.limits import (
    BudgetLimit,
    CircuitBreaker,
    Limits,
    LimitsUnavailable,
    RateLimit,
)
from governance.types import AuthContext
from inference import pricing
from inference.types import ModelInfo

logger = logging.getLogger("asahi.governance")


@dataclass
class Ticket:
    """A granted admission. `unmetered` marks one granted without a reservation because Redis was
    down and the organization's policy fails open: no budget or rate limit was checked."""

    reservation_id: str | None
    reserved_nanousd: int
    org_id: str
    unmetered: bool = False


class _SafeBreaker:
    """The breaker, degraded to 'always closed' when Redis cannot answer (never blocks a request)."""

    def __init__(self, inner: CircuitBreaker) -> None:
        self.inner = inner

    async def allow(self, name: str) -> bool:
        try:
            return await self.inner.allow(name)
        except LimitsUnavailable:
            return True

    async def record_success(self, name: str) -> None:
        with contextlib.suppress(LimitsUnavailable):
            await self.inner.record_success(name)

    async def record_failure(self, name: str) -> None:
        with contextlib.suppress(LimitsUnavailable):
            await self.inner.record_failure(name)

    async def open_names(self, names: list[str]) -> set[str]:
        try:
            states = await self.inner.states(names)
        except LimitsUnavailable:
            return set()
        return {n for n, s in states.items() if s == "open"}

    async def states(self, names: list[str]) -> dict[str, str]:
        try:
            return dict(await self.inner.states(names))
        except LimitsUnavailable:
            return {}


_per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Limits, _SafeBreaker]] = (
    weakref.WeakKeyDictionary()
)


def _tools() -> tuple[Limits, _SafeBreaker]:
    loop = asyncio.get_running_loop()
    pair = _per_loop.get(loop)
    if pair is None:
        redis = get_async_redis()
        pair = (Limits(redis, reservation_ttl_s=settings.ASAHI_RESERVATION_TTL_SECONDS),
                _SafeBreaker(CircuitBreaker(redis)))
        _per_loop[loop] = pair
    return pair


def limits() -> Limits:
    return _tools()[0]


def breaker() -> _SafeBreaker:
    return _tools()[1]


def _nano(usd: Decimal | None) -> int | None:
    return None if usd is None else pricing.to_nano(usd)


def budgets_for(auth: AuthContext) -> list[BudgetLimit]:
    org = str(auth.org_id)
    key = str(auth.key_id)
    p = auth.policy
    out = [
        BudgetLimit(scope="org", scope_id=org, period="day", limit_nanousd=_nano(p.daily_budget_usd)),
        BudgetLimit(scope="org", scope_id=org, period="month",
                    limit_nanousd=_nano(p.monthly_budget_usd)),
    ]
    # Key budgets only when set: keys without a budget are tracked through the org counters.
    if auth.key_daily_budget_usd is not None:
        out.append(BudgetLimit(scope="key", scope_id=key, period="day",
                               limit_nanousd=_nano(auth.key_daily_budget_usd)))
    if auth.key_monthly_budget_usd is not None:
        out.append(BudgetLimit(scope="key", scope_id=key, period="month",
                               limit_nanousd=_nano(auth.key_monthly_budget_usd)))
    return out


def rates_for(auth: AuthContext) -> list[RateLimit]:
    org, key, p = str(auth.org_id), str(auth.key_id), auth.policy
    out: list[RateLimit] = []
    if auth.key_rpm_limit:
        out.append(RateLimit(scope="key", scope_id=key, kind="rpm", limit=auth.key_rpm_limit))
    if auth.key_tpm_limit:
        out.append(RateLimit(scope="key", scope_id=key, kind="tpm", limit=auth.key_tpm_limit))
    if p.rpm_limit:
        out.append(RateLimit(scope="org", scope_id=org, kind="rpm", limit=p.rpm_limit))
    if p.tpm_limit:
        out.append(RateLimit(scope="org", scope_id=org, kind="tpm", limit=p.tpm_limit))
    return out


def _unavailable(auth: AuthContext, exc: Exception) -> Ticket:
    logger.error("limits_unavailable", extra={"org": str(auth.org_id), "error": str(exc),
                                              "mode": auth.policy.redis_failure_mode})
    if auth.policy.redis_failure_mode == "open":
        return Ticket(reservation_id=None, reserved_nanousd=0, org_id=str(auth.org_id),
                      unmetered=True)
    raise ServiceUnavailable(
        "budget and rate-limit store is unreachable; this organization's policy fails closed",
        code="limits_unavailable", headers={"Retry-After": "5"})


async def admit(*, auth: AuthContext, chain: list[ModelInfo], input_tokens: int,
                max_output_tokens: int) -> Ticket:
    """Reserve the worst case over the fallback chain, so a fallback can never overspend."""
    worst = max(pricing.worst_case_cost(m, input_tokens=input_tokens,
                                        max_output_tokens=max_output_tokens) for m in chain)
    cost = pricing.to_nano(worst)
    try:
        adm = await limits().admit(org_id=str(auth.org_id), cost_nanousd=cost,
                                   tokens=input_tokens + max_output_tokens,
                                   budgets=budgets_for(auth), rate_limits=rates_for(auth))
    except LimitsUnavailable as exc:
        return _unavailable(auth, exc)
    if adm.ok:
        return Ticket(reservation_id=adm.reservation_id, reserved_nanousd=cost,
                      org_id=str(auth.org_id))
    raise _denial(adm, worst)


def _denial(adm: Any, worst: Decimal, what: str = "this request") -> Exception:
    if adm.denied_by and adm.denied_by.startswith("budget"):
        state = adm.budget
        detail: dict[str, Any] = {"denied_by": adm.denied_by}
        if state is not None:
            detail.update({
                "limit_usd": float(pricing.from_nano(state.budget.limit_nanousd or 0)),
                "spent_usd": float(pricing.from_nano(state.spent_nanousd)),
                "reserved_usd": float(pricing.from_nano(state.reserved_nanousd)),
                "requested_usd": float(worst), "resets_at": state.resets_at.isoformat(),
            })
        scope, period = adm.denied_by.split(":")[1:3]
        return BudgetExceeded(
            f"{'organization' if scope == 'org' else 'API key'} {'daily' if period == 'day' else 'monthly'} "
            f"budget would be exceeded by {what} (worst case ${worst})",
            retry_after=adm.retry_after, details=detail)
    return RateLimited(f"rate limit exceeded ({adm.denied_by}): {adm.detail}",
                       retry_after=adm.retry_after, details={"denied_by": adm.denied_by})


async def reserve_batch(*, auth: AuthContext, worst_usd: Decimal, ttl_s: float) -> Ticket:
    """Reserve a whole batch's worst case on the budgets (no rate limit: its items are not
    synchronous requests), held for `ttl_s`; settled once with the sum of the items' costs."""
    cost = pricing.to_nano(worst_usd)
    try:
        adm = await limits().admit(org_id=str(auth.org_id), cost_nanousd=cost, tokens=0,
                                   budgets=budgets_for(auth), rate_limits=[], ttl_s=ttl_s)
    except LimitsUnavailable as exc:
        return _unavailable(auth, exc)
    if adm.ok:
        return Ticket(reservation_id=adm.reservation_id, reserved_nanousd=cost,
                      org_id=str(auth.org_id))
    raise _denial(adm, worst_usd, "this batch")


async def admit_rate(*, auth: AuthContext, tokens: int) -> Ticket | None:
    """The rate limits alone (budget already reserved by the batch), for a batch item run
    synchronously by a worker: a ticket, or None when a limit says wait."""
    try:
        adm = await limits().admit(org_id=str(auth.org_id), cost_nanousd=0, tokens=tokens,
                                   budgets=[], rate_limits=rates_for(auth))
    except LimitsUnavailable as exc:
        return _unavailable(auth, exc)
    if not adm.ok:
        return None
    return Ticket(reservation_id=adm.reservation_id, reserved_nanousd=0, org_id=str(auth.org_id))


async def settle(ticket: Ticket, *, cost_usd: Decimal, tokens: int) -> None:
    if ticket.reservation_id is None:
        return
    try:
        await limits().settle(reservation_id=ticket.reservation_id,
                              actual_nanousd=pricing.to_nano(cost_usd), actual_tokens=tokens)
    except LimitsUnavailable as exc:
        # The reservation expires on its own; the ledger still records the spend.
        logger.error("settle_failed", extra={"reservation": ticket.reservation_id,
                                             "error": str(exc)})


async def settle_parts(ticket: Ticket, *, parts: list[tuple[str, Decimal, Decimal]]) -> bool:
    """Settle finished parts of a batch reservation, each ``(part_id, reserved_usd, cost_usd)``;
    idempotent per part id. False when Redis could not be reached (the caller retries later)."""
    if ticket.reservation_id is None or not parts:
        return True
    try:
        await limits().settle_parts(
            reservation_id=ticket.reservation_id,
            parts=[(pid, pricing.to_nano(r), pricing.to_nano(c)) for pid, r, c in parts])
    except LimitsUnavailable as exc:
        logger.warning("settle_parts_failed", extra={"reservation": ticket.reservation_id,
                                                     "error": str(exc)})
        return False
    return True


async def org_day_spend(org_id: str) -> tuple[int, int]:
    """(spent, reserved) nano-USD on the organization's budget for today (UTC)."""
    state, = await limits().get_spend(
        org_id=org_id, budgets=[BudgetLimit(scope="org", scope_id=org_id, period="day",
                                            limit_nanousd=None)])
    return state.spent_nanousd, state.reserved_nanousd


async def release(ticket: Ticket) -> None:
    if ticket.reservation_id is None:
        return
    try:
        await limits().release(reservation_id=ticket.reservation_id)
    except LimitsUnavailable as exc:
        logger.error("release_failed", extra={"reservation": ticket.reservation_id,
                                              "error": str(exc)})
