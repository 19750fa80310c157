"""/v1/embeddings passes through to the providers and is cached exactly; the model lists."""

from __future__ import annotations

import openai
import pytest

from tests.inference.conftest import client_for

pytestmark = [pytest.mark.redis]


@pytest.mark.parametrize("model", ["text-embedding-3-small", "embed-english-v3.0"])
def test_embeddings_round_trip_and_exact_cache(gateway, live_tenant, model: str) -> None:
    client = client_for(gateway, live_tenant.infer.raw)
    first = client.embeddings.with_raw_response.create(model=model, input=["hello", "world"])
    data = first.parse()
    assert len(data.data) == 2 and len(data.data[0].embedding) > 8
    assert first.headers["x-asahi-cache"] == "miss"
    assert float(first.headers["x-asahi-cost-usd"]) > 0
    second = client.embeddings.with_raw_response.create(model=model, input=["hello", "world"])
    assert second.headers["x-asahi-cache"] == "exact"
    assert second.parse().data[1].embedding == data.data[1].embedding


def test_embeddings_cache_control_header(gateway, live_tenant) -> None:
    client = client_for(gateway, live_tenant.infer.raw)
    text = ["cache control for embeddings"]
    stored = client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=text, extra_headers={"Cache-Control": "no-store"})
    assert stored.headers["x-asahi-cache"] == "miss"
    refresh = client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=text, extra_headers={"Cache-Control": "no-cache"})
    assert refresh.headers["x-asahi-cache"] == "miss"  # no-store above kept nothing to serve
    again = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input=text)
    assert again.headers["x-asahi-cache"] == "exact"  # no-cache stored its answer


def test_embeddings_errors(gateway, live_tenant) -> None:
    client = client_for(gateway, live_tenant.infer.raw)
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="gpt-4o-mini", input="chat models do not embed")
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="text-embedding-3-small", input=[])
    with pytest.raises(openai.BadRequestError) as bad_cache:
        client.embeddings.create(model="text-embedding-3-small", input="x",
                                 extra_body={"cache": "sometimes"})
    assert bad_cache.value.param == "cache"


def test_model_lists(gateway, live_tenant) -> None:
    client = client_for(gateway, live_tenant.infer.raw)
    ids = {m.id for m in client.models.list()}
    assert {"gpt-4o-mini", "claude-haiku-4-5", "command-r-08-2024", "auto"} <= ids
    import httpx

    models = httpx.get(f"{gateway}/models",
                       headers={"Authorization": f"Bearer {live_tenant.infer.raw}"}).json()["models"]
    mini = next(m for m in models if m["name"] == "gpt-4o-mini")
    assert mini["input_price_per_m"] == 0.15 and mini["output_price_per_m"] == 0.6
    assert mini["quality"]["default"] > 0
