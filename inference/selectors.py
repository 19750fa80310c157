"""Reads for the inference app: the catalogue snapshot (cached per process) and ledger queries."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from decimal import Decimal

from asgiref.sync import sync_to_async
from django.db import InterfaceError, OperationalError

from inference.types import ModelInfo

_TTL_SECONDS = 10.0
logger = logging.getLogger("asahi.catalogue")


@dataclass(frozen=True)
class Catalogue:
    models: dict[str, ModelInfo]
    loaded_at: float

    def chat_models(self) -> list[ModelInfo]:
        return [m for m in self.models.values() if m.kind == "chat"]

    def get(self, name: str) -> ModelInfo | None:
        return self.models.get(name)


_cache: Catalogue | None = None


def load_catalogue() -> Catalogue:
    from inference.models import ModelEndpoint

    models: dict[str, ModelInfo] = {}
    rows = ModelEndpoint.objects.select_related("provider").filter(enabled=True,
                                                                   provider__enabled=True)
    for row in rows:
        p = row.provider
        models[row.name] = ModelInfo(
            name=row.name,
            upstream_name=row.upstream_name or row.name,
            provider=p.name,
            provider_kind=p.kind,
            base_url=p.base_url,
            api_key=p.get_api_key(),
            kind=row.kind,
            input_price_per_m=Decimal(row.input_price_per_m),
            output_price_per_m=Decimal(row.output_price_per_m),
            cached_input_price_per_m=row.cached_input_price_per_m,
            cache_write_price_per_m=row.cache_write_price_per_m,
            context_window=row.context_window,
            max_output_tokens=row.max_output_tokens,
            typical_latency_ms=row.typical_latency_ms,
            supports_tools=row.supports_tools,
            quality=dict(row.quality or {}),
        )
    return Catalogue(models=models, loaded_at=time.monotonic())


def _reload() -> Catalogue:
    """A fresh snapshot; while PostgreSQL is unreachable the last one is kept (prices and models
    change only through the database, so it cannot be out of date) and retried after the TTL."""
    global _cache
    try:
        _cache = load_catalogue()
    except (OperationalError, InterfaceError):
        if _cache is None:
            raise
        logger.warning("catalogue_reload_failed_serving_last")
        _cache = replace(_cache, loaded_at=time.monotonic())
    return _cache


def get_catalogue() -> Catalogue:
    if _cache is None or time.monotonic() - _cache.loaded_at > _TTL_SECONDS:
        return _reload()
    return _cache


async def aget_catalogue() -> Catalogue:
    if _cache is None or time.monotonic() - _cache.loaded_at > _TTL_SECONDS:
        return await sync_to_async(_reload, thread_sensitive=False)()
    return _cache


def invalidate_catalogue() -> None:
    global _cache
    _cache = None
