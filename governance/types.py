"""Typed snapshots other apps read (never the ORM rows themselves)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True)
class PolicySnapshot:
    daily_budget_usd: Decimal | None = None
    monthly_budget_usd: Decimal | None = None
    max_cost_per_request_usd: Decimal | None = None
    allowed_models: frozenset[str] = frozenset()
    allowed_providers: frozenset[str] = frozenset()
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    cache_enabled: bool = True
    cache_ttl_seconds: int = 86_400
    cache_max_temperature: float = 0.7
    semantic_cache_enabled: bool = True
    semantic_threshold: float | None = None
    pii_redaction: bool = False
    retention_days: int = 30
    redis_failure_mode: str = "closed"
    reference_model: str = "gpt-4o"


@dataclass(frozen=True)
class AuthContext:
    """Who is calling: the key, its organization and the policy in force, loaded once per key."""

    key_id: int
    key_prefix: str
    org_id: uuid.UUID
    org_name: str
    scopes: frozenset[str]
    expires_at: datetime | None
    frozen: bool
    key_daily_budget_usd: Decimal | None
    key_monthly_budget_usd: Decimal | None
    key_rpm_limit: int | None
    key_tpm_limit: int | None
    key_allowed_models: frozenset[str]
    policy: PolicySnapshot = field(default_factory=PolicySnapshot)

    def has_scope(self, *accepted: str) -> bool:
        if not self.scopes or "all" in self.scopes or "*" in self.scopes:
            return True
        return any(s in self.scopes for s in accepted)

    @property
    def actor(self) -> str:
        return f"key:{self.key_prefix}"
