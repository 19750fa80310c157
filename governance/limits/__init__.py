"""Redis primitives for governance: budget reservations, rate limits, circuit breaker.

All state lives in Redis so every server process enforces the same limits. Typical use::

    limits = Limits(redis)
    adm = await limits.admit(org_id=org, cost_nanousd=worst_case, tokens=est_tokens,
                             budgets=[...], rate_limits=[...])
    if not adm.ok: -> 429/402 with adm.denied_by / adm.retry_after
    ... call upstream ...
    await limits.settle(reservation_id=adm.reservation_id, actual_nanousd=cost, actual_tokens=n)
    # or, if nothing was spent: await limits.release(reservation_id=adm.reservation_id)

Every call raises ``LimitsUnavailable`` (and nothing else) when Redis cannot answer in time.
"""

from .admission import Limits
from .breaker import BreakerState, CircuitBreaker, circuit_name
from .client import limits_client
from .errors import LimitsUnavailable
from .keys import period_bucket
from .policy import RequestLimits, request_limits, usd_to_nano
from .types import (
    NANO_PER_USD,
    Admission,
    BudgetLimit,
    BudgetState,
    RateLimit,
    SettleResult,
)

__all__ = [
    "NANO_PER_USD",
    "Admission",
    "BreakerState",
    "BudgetLimit",
    "BudgetState",
    "CircuitBreaker",
    "Limits",
    "LimitsUnavailable",
    "RateLimit",
    "RequestLimits",
    "SettleResult",
    "circuit_name",
    "limits_client",
    "period_bucket",
    "request_limits",
    "usd_to_nano",
]
