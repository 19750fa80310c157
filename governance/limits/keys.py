"""Redis key names and UTC period buckets (pure functions).

Every key an admission touches carries the organization's hash tag ``{org_id}`` so a single Lua
script may use them together on Redis Cluster; circuit-breaker keys are tagged by their name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .types import BudgetLimit, Period, RateLimit

PREFIX = "asahi"
# Buckets outlive their period so the usage API can still read yesterday / last month.
RETENTION = {"day": timedelta(days=2), "month": timedelta(days=35)}


@dataclass(frozen=True, slots=True)
class Bucket:
    label: str  # "d:20261123" / "m:202611"
    period: Period
    starts_at: datetime
    ends_at: datetime

    @property
    def expire_at(self) -> int:
        return int((self.ends_at + RETENTION[self.period]).timestamp())


def period_bucket(*, period: Period, now: datetime) -> Bucket:
    now = now.astimezone(UTC)
    if period == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return Bucket(f"d:{start:%Y%m%d}", "day", start, start + timedelta(days=1))
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return Bucket(f"m:{start:%Y%m}", "month", start, end)


def check_id(value: str) -> str:
    # Braces would change the hash tag and colons would make key names ambiguous.
    if not value or any(c in value for c in "{}: \n"):
        raise ValueError(f"invalid id for a Redis key: {value!r}")
    return value


def _scope_part(scope: str, scope_id: str) -> str:
    return "" if scope == "org" else f"k:{check_id(scope_id)}:"


def budget_key(*, org_id: str, budget: BudgetLimit, bucket: Bucket) -> str:
    return f"{PREFIX}:b:{{{org_id}}}:{_scope_part(budget.scope, budget.scope_id)}{bucket.label}"


def rate_key(*, org_id: str, rate: RateLimit) -> str:
    return f"{PREFIX}:rl:{{{org_id}}}:{_scope_part(rate.scope, rate.scope_id)}{rate.kind}"


def reservation_keys(*, org_id: str) -> tuple[str, str]:
    """The org's reservation records (hash) and their deadlines (sorted set)."""
    return f"{PREFIX}:r:{{{org_id}}}", f"{PREFIX}:rx:{{{org_id}}}"


def reservation_parts_key(*, reservation_id: str) -> str:
    """The ids of a reservation's parts already settled (same hash slot as the org's records)."""
    org_id, token = split_reservation_id(reservation_id)
    return f"{PREFIX}:rp:{{{org_id}}}:{token}"


def breaker_keys(*, name: str) -> tuple[str, str]:
    tag = name.replace("{", "(").replace("}", ")")
    return f"{PREFIX}:cb:{{{tag}}}", f"{PREFIX}:cb:{{{tag}}}:f"


def new_reservation_id(*, org_id: str, token: str) -> str:
    return f"{org_id}:{token}"


def split_reservation_id(reservation_id: str) -> tuple[str, str]:
    org_id, sep, token = reservation_id.rpartition(":")
    if not sep or not org_id or not token:
        raise ValueError(f"malformed reservation id: {reservation_id!r}")
    return org_id, token
