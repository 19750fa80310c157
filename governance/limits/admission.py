"""``Limits``: budget reservations and rate limits enforced atomically in Redis.

One ``admit`` = one Lua call (one round trip) that checks every rate limit and budget and either
commits all of them or nothing; one ``settle``/``release`` = one Lua call. See
``docs/_parts/limits.md`` for the key layout and semantics.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import redis.asyncio as aioredis

from .errors import unavailable_guard
from .keys import (
    Bucket,
    budget_key,
    check_id,
    new_reservation_id,
    period_bucket,
    rate_key,
    reservation_keys,
    reservation_parts_key,
    split_reservation_id,
)
from .scripts import lua_source
from .types import (
    Admission,
    BudgetLimit,
    BudgetState,
    PartsResult,
    RateLimit,
    SettleOutcome,
    SettleResult,
)

RATE_PERIOD_MS = 60_000


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Limits:
    """Shared (multi-process) budgets and rate limits on a ``redis.asyncio.Redis`` client.

    ``reservation_ttl_s``: a reservation not settled by then (crashed process) is released by the
    next script touching the org. ``tombstone_s``: how long settled/released/expired records are
    kept to make settle/release idempotent and to record late settles. ``op_timeout_s`` bounds
    every call regardless of the client's socket timeouts.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        reservation_ttl_s: float = 600.0,
        tombstone_s: float = 300.0,
        op_timeout_s: float = 0.5,
        sweep_max: int = 20,
    ) -> None:
        self._redis = redis
        self.reservation_ttl_s = reservation_ttl_s
        self.tombstone_s = tombstone_s
        self.op_timeout_s = op_timeout_s
        self.sweep_max = sweep_max
        self._admit = redis.register_script(lua_source("admit"))
        self._settle = redis.register_script(lua_source("settle"))
        self._spend = redis.register_script(lua_source("spend"))
        self._settle_parts = redis.register_script(lua_source("settle_parts"))

    async def admit(
        self,
        *,
        org_id: str,
        cost_nanousd: int,
        tokens: int = 0,
        budgets: Sequence[BudgetLimit] = (),
        rate_limits: Sequence[RateLimit] = (),
        ttl_s: float | None = None,
        now: datetime | None = None,
    ) -> Admission:
        """Check all rate limits (1 request for rpm, ``tokens`` for tpm) and reserve
        ``cost_nanousd`` (worst case) on all budgets; all-or-nothing, one round trip.

        ``now`` only selects the day/month buckets (tests); rate limits and expiries use the
        Redis server clock so every process agrees.
        """
        check_id(org_id)
        if cost_nanousd < 0 or tokens < 0:
            raise ValueError("cost_nanousd and tokens must be >= 0")
        for b in budgets:
            if b.scope == "org" and b.scope_id != org_id:
                raise ValueError(f"org budget for {b.scope_id!r} passed with org_id {org_id!r}")
        moment = now or datetime.now(UTC)
        buckets = [period_bucket(period=b.period, now=moment) for b in budgets]
        hkey, zkey = reservation_keys(org_id=org_id)
        rid = new_reservation_id(org_id=org_id, token=uuid.uuid4().hex)
        ttl_ms = int((self.reservation_ttl_s if ttl_s is None else ttl_s) * 1000)

        keys = [hkey, zkey]
        args: list[str | int] = [
            rid,
            str(int(cost_nanousd)),
            int(tokens),
            ttl_ms,
            int(self.tombstone_s * 1000),
            self.sweep_max,
            RATE_PERIOD_MS,
            len(rate_limits),
            len(budgets),
        ]
        for r in rate_limits:
            if r.limit <= 0:
                raise ValueError(f"rate limit must be positive: {r}")
            keys.append(rate_key(org_id=org_id, rate=r))
            args += [
                int(r.limit),
                1 if r.kind == "rpm" else int(tokens),
                1 if r.kind == "tpm" else 0,
            ]
        for b, bucket in zip(budgets, buckets, strict=True):
            keys.append(budget_key(org_id=org_id, budget=b, bucket=bucket))
            args += [-1 if b.limit_nanousd is None else int(b.limit_nanousd), bucket.expire_at]

        async with unavailable_guard(self.op_timeout_s):
            status, index, wait_ms, spent, reserved = await self._admit(keys=keys, args=args)

        if status == 1:
            return Admission(ok=True, reservation_id=rid)
        if status in (0, 3):
            rate = rate_limits[int(index) - 1]
            if status == 3:
                return Admission(
                    ok=False,
                    reservation_id=None,
                    denied_by=rate.label,
                    retry_after=None,
                    detail=f"request needs {tokens} tokens, more than the {rate.label} limit "
                    f"of {rate.limit} per minute",
                )
            wait_s = float(_text(wait_ms)) / 1000
            return Admission(
                ok=False,
                reservation_id=None,
                denied_by=rate.label,
                retry_after=wait_s,
                detail=f"{rate.label} limit of {rate.limit} per minute reached",
            )
        budget, bucket = budgets[int(index) - 1], buckets[int(index) - 1]
        state = BudgetState(
            budget=budget,
            bucket=bucket.label,
            spent_nanousd=int(_text(spent)),
            reserved_nanousd=int(_text(reserved)),
            resets_at=bucket.ends_at,
        )
        return Admission(
            ok=False,
            reservation_id=None,
            denied_by=budget.label,
            retry_after=max(0.0, (bucket.ends_at - moment).total_seconds()),
            detail=(
                f"{budget.label} limit {budget.limit_nanousd} nano-USD: spent "
                f"{state.spent_nanousd} + reserved {state.reserved_nanousd} + requested "
                f"{cost_nanousd} exceeds it"
            ),
            budget=state,
        )

    async def settle(
        self, *, reservation_id: str, actual_nanousd: int, actual_tokens: int | None = None
    ) -> SettleResult:
        """Replace the reservation by the actual cost (may exceed the reservation: it was spent).
        With ``actual_tokens`` the TPM buckets are corrected by (actual - estimated) tokens."""
        if actual_nanousd < 0 or (actual_tokens is not None and actual_tokens < 0):
            raise ValueError("actual amounts must be >= 0")
        return await self._finish(
            reservation_id=reservation_id,
            mode="settle",
            actual=str(int(actual_nanousd)),
            actual_tokens="" if actual_tokens is None else str(int(actual_tokens)),
        )

    async def settle_parts(
        self, *, reservation_id: str, parts: Sequence[tuple[str, int, int]]
    ) -> PartsResult:
        """Settle parts of a reservation, each ``(part_id, reserved_nanousd, actual_nanousd)``:
        the hold shrinks by the parts' reserved amounts and their actual cost is recorded as spent.
        Idempotent per part id; the rest of the hold stays until ``release``/``settle``."""
        org_id, _ = split_reservation_id(reservation_id)
        hkey, zkey = reservation_keys(org_id=org_id)
        args: list[str | int] = [reservation_id, int(self.tombstone_s * 1000), self.sweep_max,
                                 len(parts)]
        for part_id, reserved, actual in parts:
            if reserved < 0 or actual < 0:
                raise ValueError("part amounts must be >= 0")
            args += [part_id, str(int(reserved)), str(int(actual))]
        async with unavailable_guard(self.op_timeout_s):
            outcome, held, fresh = await self._settle_parts(
                keys=[hkey, zkey, reservation_parts_key(reservation_id=reservation_id)],
                args=args)
        return PartsResult(outcome=_text(outcome),  # type: ignore[arg-type]
                           held_nanousd=int(_text(held)), settled=int(fresh))

    async def release(self, *, reservation_id: str) -> SettleResult:
        """The request failed before spending anything: drop the hold (idempotent)."""
        return await self._finish(
            reservation_id=reservation_id, mode="release", actual="0", actual_tokens=""
        )

    async def _finish(
        self, *, reservation_id: str, mode: str, actual: str, actual_tokens: str
    ) -> SettleResult:
        org_id, _ = split_reservation_id(reservation_id)
        hkey, zkey = reservation_keys(org_id=org_id)
        args: list[str | int] = [
            reservation_id,
            mode,
            actual,
            actual_tokens,
            int(self.tombstone_s * 1000),
            self.sweep_max,
            RATE_PERIOD_MS,
        ]
        async with unavailable_guard(self.op_timeout_s):
            outcome, held = await self._settle(keys=[hkey, zkey], args=args)
        name: SettleOutcome = _text(outcome)  # type: ignore[assignment]
        return SettleResult(outcome=name, reserved_nanousd=int(_text(held)))

    async def get_spend(
        self, *, org_id: str, budgets: Sequence[BudgetLimit], now: datetime | None = None
    ) -> list[BudgetState]:
        """Spent and reserved amounts of each budget's current bucket (expired holds released
        first), in the order given. One round trip."""
        check_id(org_id)
        moment = now or datetime.now(UTC)
        buckets: list[Bucket] = [period_bucket(period=b.period, now=moment) for b in budgets]
        hkey, zkey = reservation_keys(org_id=org_id)
        keys = [hkey, zkey] + [
            budget_key(org_id=org_id, budget=b, bucket=k)
            for b, k in zip(budgets, buckets, strict=True)
        ]
        async with unavailable_guard(self.op_timeout_s):
            flat = await self._spend(keys=keys, args=[int(self.tombstone_s * 1000), self.sweep_max])
        return [
            BudgetState(
                budget=b,
                bucket=k.label,
                spent_nanousd=int(_text(flat[2 * i])),
                reserved_nanousd=int(_text(flat[2 * i + 1])),
                resets_at=k.ends_at,
            )
            for i, (b, k) in enumerate(zip(budgets, buckets, strict=True))
        ]
