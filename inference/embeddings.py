"""POST /v1/embeddings: pass-through to the provider's embeddings, cached exactly per organization."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from django.conf import settings

from asahi_project.errors import InvalidRequest, ModelNotFound
from caching import exact
from caching.keys import canonical_hash
from governance import enforcement
from governance.types import AuthContext
from inference import pricing
from inference.ledger import LedgerRow, ledger
from inference.pipeline import upstream_error
from inference.providers.errors import ProviderError
from inference.providers.registry import get_client
from inference.providers.types import Usage
from inference.selectors import aget_catalogue


async def create_embeddings(*, auth: AuthContext, body: dict[str, Any], request_id: str,
                            cache: str = "default") -> tuple[dict[str, Any], dict[str, str]]:
    started = time.perf_counter()
    model_name = body.get("model")
    raw = body.get("input")
    if not isinstance(model_name, str):
        raise InvalidRequest("model is required", param="model")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
        raise InvalidRequest("input must be a non-empty string or array of non-empty strings",
                             param="input")
    if len(texts) > 2048:
        raise InvalidRequest("input has more than 2048 items", param="input")
    catalogue = await aget_catalogue()
    model = catalogue.get(model_name)
    if model is None or model.kind != "embedding":
        names = sorted(m.name for m in catalogue.models.values() if m.kind == "embedding")
        raise ModelNotFound(f"embedding model {model_name!r} does not exist; available: "
                            f"{', '.join(names)}", param="model")
    digest = canonical_hash({"kind": "embeddings", "model": model.name, "input": texts})
    use_cache = auth.policy.cache_enabled and cache == "default"
    if use_cache:
        hit = await exact.get(auth.org_id, digest)
        if hit is not None and hit.content:
            import orjson

            data = orjson.loads(hit.content)
            ledger.append(LedgerRow(request_id=request_id, organization_id=auth.org_id,
                                    api_key_id=auth.key_id, endpoint="embeddings",
                                    model=model.name, provider=model.provider, cache_tier=1,
                                    input_tokens=hit.input_tokens,
                                    latency_ms=(time.perf_counter() - started) * 1000))
            return data, {"X-Asahi-Cache": "exact", "X-Asahi-Model": model.name,
                          "X-Asahi-Cost-USD": "0.000000000"}
    tokens_est = pricing.estimate_tokens(sum(map(len, texts)), len(texts))
    ticket = await enforcement.admit(auth=auth, chain=[model], input_tokens=tokens_est,
                                     max_output_tokens=0)
    try:
        result = await get_client(
            model.provider_kind, model.base_url or None, model.api_key or None,
            timeout_s=settings.ASAHI_UPSTREAM_TIMEOUT,
        ).embed(texts, model.upstream_name)
    except ProviderError as exc:
        await enforcement.release(ticket)
        raise upstream_error(exc, []) from exc
    cost = pricing.cost_of(model, Usage(input_tokens=result.input_tokens))
    await enforcement.settle(ticket, cost_usd=cost, tokens=result.input_tokens)
    data = {"object": "list", "model": model.name,
            "data": [{"object": "embedding", "index": i, "embedding": v}
                     for i, v in enumerate(result.vectors)],
            "usage": {"prompt_tokens": result.input_tokens, "total_tokens": result.input_tokens}}
    if auth.policy.cache_enabled and cache in ("default", "no-cache"):
        import orjson

        await exact.put(auth.org_id, digest, exact.CachedAnswer(
            content=orjson.dumps(data).decode(), tool_calls=[], finish_reason="stop",
            model=model.name, input_tokens=result.input_tokens, output_tokens=0,
            cost_usd=str(cost), created=time.time()), auth.policy.cache_ttl_seconds)
    ledger.append(LedgerRow(request_id=request_id, organization_id=auth.org_id,
                            api_key_id=auth.key_id, endpoint="embeddings", model=model.name,
                            provider=model.provider, input_tokens=result.input_tokens,
                            cost_usd=cost, baseline_cost_usd=Decimal(cost),
                            latency_ms=(time.perf_counter() - started) * 1000))
    return data, {"X-Asahi-Cache": "miss", "X-Asahi-Model": model.name,
                  "X-Asahi-Cost-USD": f"{cost:.9f}"}
