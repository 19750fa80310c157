"""The seeded model catalogue: OpenAI, Anthropic and Cohere list prices (USD per million tokens).

Prices are the providers' published list prices as of late 2025; operators correct them in the admin.
Quality is a 0-5 prior per task type, from public leaderboards and our own judgement; feedback refines it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.apps import apps as django_apps
from django.apps.registry import Apps
from django.db import transaction

TASKS = ("code", "math", "reasoning", "summarization", "extraction", "translation", "creative", "chat")


def _q(default: float, **over: float) -> dict[str, float]:
    out = {t: default for t in TASKS}
    out.update(over)
    out["default"] = default
    return out


@dataclass(frozen=True)
class CatalogueModel:
    name: str
    provider: str
    input: str
    output: str
    cached: str | None = None
    cache_write: str | None = None
    context: int = 128_000
    max_output: int = 16_384
    latency_ms: int = 800
    kind: str = "chat"
    quality: dict[str, float] = field(default_factory=dict)


PROVIDERS = {"openai": "openai", "anthropic": "anthropic", "cohere": "cohere"}

MODELS: tuple[CatalogueModel, ...] = (
    CatalogueModel("gpt-5", "openai", "1.25", "10.00", "0.125", context=400_000,
                   max_output=128_000, latency_ms=2500,
                   quality=_q(4.8, code=4.9, math=4.9, reasoning=4.9)),
    CatalogueModel("gpt-5-mini", "openai", "0.25", "2.00", "0.025", context=400_000,
                   max_output=128_000, latency_ms=1500,
                   quality=_q(4.4, code=4.5, math=4.6, reasoning=4.5)),
    CatalogueModel("gpt-5-nano", "openai", "0.05", "0.40", "0.005", context=400_000,
                   max_output=128_000, latency_ms=900,
                   quality=_q(3.7, math=3.9, creative=3.4)),
    CatalogueModel("gpt-4.1", "openai", "2.00", "8.00", "0.50", context=1_047_576,
                   max_output=32_768, latency_ms=900, quality=_q(4.4, code=4.5, math=4.2)),
    CatalogueModel("gpt-4.1-mini", "openai", "0.40", "1.60", "0.10", context=1_047_576,
                   max_output=32_768, latency_ms=600, quality=_q(4.0, math=3.9)),
    CatalogueModel("gpt-4.1-nano", "openai", "0.10", "0.40", "0.025", context=1_047_576,
                   max_output=32_768, latency_ms=400,
                   quality=_q(3.4, summarization=3.6, extraction=3.6, math=3.0, reasoning=3.0)),
    CatalogueModel("gpt-4o", "openai", "2.50", "10.00", "1.25", latency_ms=800,
                   quality=_q(4.3, math=4.0, reasoning=4.1)),
    CatalogueModel("gpt-4o-mini", "openai", "0.15", "0.60", "0.075", latency_ms=500,
                   quality=_q(3.7, summarization=3.9, extraction=3.9, math=3.3, reasoning=3.3,
                              code=3.6)),
    CatalogueModel("o4-mini", "openai", "1.10", "4.40", "0.275", context=200_000,
                   max_output=100_000, latency_ms=3000,
                   quality=_q(4.4, math=4.8, reasoning=4.7, code=4.6, creative=3.8)),
    CatalogueModel("claude-opus-4-1", "anthropic", "15.00", "75.00", "1.50", "18.75",
                   context=200_000, max_output=32_000, latency_ms=2500,
                   quality=_q(4.9, code=5.0, creative=4.9)),
    CatalogueModel("claude-sonnet-4-5", "anthropic", "3.00", "15.00", "0.30", "3.75",
                   context=200_000, max_output=64_000, latency_ms=1200,
                   quality=_q(4.7, code=4.9, reasoning=4.7)),
    CatalogueModel("claude-haiku-4-5", "anthropic", "1.00", "5.00", "0.10", "1.25",
                   context=200_000, max_output=64_000, latency_ms=600,
                   quality=_q(4.2, code=4.4)),
    CatalogueModel("claude-3-5-haiku", "anthropic", "0.80", "4.00", "0.08", "1.00",
                   context=200_000, max_output=8_192, latency_ms=600,
                   quality=_q(3.8, math=3.4, reasoning=3.5)),
    CatalogueModel("command-a-03-2025", "cohere", "2.50", "10.00", context=256_000,
                   max_output=8_000, latency_ms=1000, quality=_q(4.1, math=3.7)),
    CatalogueModel("command-r-plus-08-2024", "cohere", "2.50", "10.00", max_output=4_000,
                   latency_ms=1000, quality=_q(3.8, math=3.2)),
    CatalogueModel("command-r-08-2024", "cohere", "0.15", "0.60", max_output=4_000,
                   latency_ms=600, quality=_q(3.4, math=2.8, code=3.0)),
    CatalogueModel("command-r7b-12-2024", "cohere", "0.0375", "0.15", max_output=4_000,
                   latency_ms=400, quality=_q(2.9, math=2.4, code=2.6, reasoning=2.5)),
    CatalogueModel("text-embedding-3-small", "openai", "0.02", "0", kind="embedding",
                   context=8_191, max_output=0, latency_ms=200),
    CatalogueModel("text-embedding-3-large", "openai", "0.13", "0", kind="embedding",
                   context=8_191, max_output=0, latency_ms=250),
    CatalogueModel("embed-english-v3.0", "cohere", "0.10", "0", kind="embedding",
                   context=512, max_output=0, latency_ms=200),
    CatalogueModel("embed-v4.0", "cohere", "0.12", "0", kind="embedding", context=128_000,
                   max_output=0, latency_ms=250),
)


@transaction.atomic
def seed_catalogue(*, update_prices: bool = False, apps: Apps | None = None) -> dict[str, int]:
    """Create the providers and models that are missing; optionally reset prices to the list above.

    `apps` is a data migration's registry of historical models (inference 0006 seeds a fresh
    database this way); by default the current models are used.
    """
    registry = apps if apps is not None else django_apps
    Provider: Any = registry.get_model("inference", "Provider")
    ModelEndpoint: Any = registry.get_model("inference", "ModelEndpoint")
    # A historical model may predate a field set below; it then gets the field's default from
    # the migration that adds it (and the shipped value from `seed_models --update-prices`).
    known = {f.name for f in ModelEndpoint._meta.get_fields()}

    created = updated = 0
    providers = {}
    for name, kind in PROVIDERS.items():
        providers[name], _ = Provider.objects.get_or_create(name=name, defaults={"kind": kind})
    for m in MODELS:
        values: dict[str, Any] = {
            "provider": providers[m.provider],
            "kind": m.kind,
            "input_price_per_m": Decimal(m.input),
            "output_price_per_m": Decimal(m.output),
            "cached_input_price_per_m": Decimal(m.cached) if m.cached else None,
            "cache_write_price_per_m": Decimal(m.cache_write) if m.cache_write else None,
            "context_window": m.context,
            "max_output_tokens": m.max_output,
            "typical_latency_ms": m.latency_ms,
            "quality": m.quality,
            "supports_tools": m.kind == "chat",
        }
        values = {k: v for k, v in values.items() if k in known}
        obj, was_created = ModelEndpoint.objects.get_or_create(name=m.name, defaults=values)
        if was_created:
            created += 1
        elif update_prices:
            for key, value in values.items():
                setattr(obj, key, value)
            obj.save()
            updated += 1
    return {"created": created, "updated": updated, "total": ModelEndpoint.objects.count()}
