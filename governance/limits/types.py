"""Typed inputs and results of the Redis limits layer (budgets, rate limits, admissions)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Scope = Literal["org", "key"]
Period = Literal["day", "month"]
RateKind = Literal["rpm", "tpm"]
SettleOutcome = Literal[
    "settled",  # reservation held -> spent recorded, hold released
    "released",  # reservation held -> hold released, nothing spent
    "late_settled",  # reservation had expired (hold already swept); spend recorded anyway
    "late_released",  # reservation had expired; nothing to do
    "already_settled",  # idempotent repeat: nothing changed
    "already_released",  # idempotent repeat: nothing changed
    "unknown",  # no such reservation (never existed, or its tombstone was purged)
]

NANO_PER_USD = 1_000_000_000


@dataclass(frozen=True, slots=True)
class BudgetLimit:
    """A spending cap for one scope and period; ``limit_nanousd=None`` tracks spend without a cap."""

    scope: Scope
    scope_id: str
    period: Period
    limit_nanousd: int | None

    @property
    def label(self) -> str:
        return f"budget:{self.scope}:{self.period}"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Requests (rpm) or tokens (tpm) per minute for one scope."""

    scope: Scope
    scope_id: str
    kind: RateKind
    limit: int

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.scope}"


@dataclass(frozen=True, slots=True)
class BudgetState:
    """Spend of one budget in its current period bucket (also the denial detail of ``admit``)."""

    budget: BudgetLimit
    bucket: str  # e.g. "d:20261123" or "m:202611"
    spent_nanousd: int
    reserved_nanousd: int
    resets_at: datetime  # start of the next period, UTC

    @property
    def used_nanousd(self) -> int:
        return self.spent_nanousd + self.reserved_nanousd

    @property
    def remaining_nanousd(self) -> int | None:
        if self.budget.limit_nanousd is None:
            return None
        return max(0, self.budget.limit_nanousd - self.used_nanousd)


@dataclass(frozen=True, slots=True)
class Admission:
    """Result of the combined pre-check. ``denied_by`` is e.g. "rpm:key", "tpm:org",
    "budget:org:day"; ``retry_after`` is seconds until a retry can succeed (None: never, e.g. a
    request larger than the whole TPM limit)."""

    ok: bool
    reservation_id: str | None
    denied_by: str | None = None
    retry_after: float | None = None
    detail: str = ""
    budget: BudgetState | None = None  # set when a budget denied the request


@dataclass(frozen=True, slots=True)
class PartsResult:
    outcome: Literal["held", "expired", "closed", "unknown"]
    held_nanousd: int  # what the reservation still holds afterwards
    settled: int  # parts settled by this call (0 for a repeat)


@dataclass(frozen=True, slots=True)
class SettleResult:
    outcome: SettleOutcome
    reserved_nanousd: int  # what the reservation had held (0 when unknown)

    @property
    def changed(self) -> bool:
        return self.outcome in ("settled", "released", "late_settled")
