"""Builds the limit lists for one request from the caller's ``AuthContext`` (pure).

All four budgets are always passed, capped or not, so spend is tracked for the usage API even
when a budget is unlimited; rate limits are passed only when set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from governance.types import AuthContext

from .types import NANO_PER_USD, BudgetLimit, RateKind, RateLimit, Scope


def usd_to_nano(usd: Decimal | float | str) -> int:
    """Decimal USD -> integer nano-USD, rounded up (a reservation must never undershoot)."""
    return math.ceil(Decimal(str(usd)) * NANO_PER_USD)


def _nano(usd: Decimal | None) -> int | None:
    return None if usd is None else usd_to_nano(usd)


@dataclass(frozen=True, slots=True)
class RequestLimits:
    org_id: str
    budgets: tuple[BudgetLimit, ...]
    rate_limits: tuple[RateLimit, ...]
    fail_open: bool  # what to do on LimitsUnavailable (organization policy)


def request_limits(*, auth: AuthContext) -> RequestLimits:
    org, key, policy = str(auth.org_id), str(auth.key_id), auth.policy
    budgets = (
        BudgetLimit("key", key, "day", _nano(auth.key_daily_budget_usd)),
        BudgetLimit("key", key, "month", _nano(auth.key_monthly_budget_usd)),
        BudgetLimit("org", org, "day", _nano(policy.daily_budget_usd)),
        BudgetLimit("org", org, "month", _nano(policy.monthly_budget_usd)),
    )
    candidates: tuple[tuple[Scope, str, RateKind, int | None], ...] = (
        ("key", key, "rpm", auth.key_rpm_limit),
        ("key", key, "tpm", auth.key_tpm_limit),
        ("org", org, "rpm", policy.rpm_limit),
        ("org", org, "tpm", policy.tpm_limit),
    )
    rates = [
        RateLimit(scope, scope_id, kind, limit)
        for scope, scope_id, kind, limit in candidates
        if limit is not None and limit > 0
    ]
    return RequestLimits(
        org_id=org,
        budgets=budgets,
        rate_limits=tuple(rates),
        fail_open=policy.redis_failure_mode == "open",
    )
