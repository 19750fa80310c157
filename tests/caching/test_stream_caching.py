"""Streaming requests read and fill the same tiers as plain ones, and join the single flight.

A cached answer, exact or semantic, replays as a stream through the official SDK.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from caching.models import SemanticEntry
from inference.ledger import ledger
from inference.models import InferenceEvent
from tests.inference.conftest import client_for

pytestmark = [pytest.mark.redis]


@pytest.fixture(scope="module", autouse=True)
def _warm_embedder() -> None:
    from caching.semantic.embedders import get_local_embedder

    get_local_embedder().embed(["warm up"])  # first load exceeds the lookup's time budget


def _stream(base: str, key: str, text: str) -> tuple[dict[str, str], str, str | None, int]:
    """Headers, text, finish reason and completion tokens of one streamed answer."""
    raw = client_for(base, key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}], stream=True,
        stream_options={"include_usage": True})
    body, finish, tokens = "", None, 0
    for chunk in raw.parse():
        if chunk.usage:
            tokens = chunk.usage.completion_tokens
        for choice in chunk.choices:
            body += choice.delta.content or ""
            finish = choice.finish_reason or finish
    return dict(raw.headers), body, finish, tokens


def _stored(org_id: uuid.UUID, n: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if SemanticEntry.objects.filter(organization_id=org_id).count() >= n:
            return
        time.sleep(0.05)
    raise AssertionError("the streamed answer was not stored in the semantic tier")


def test_streamed_answer_replays_as_a_stream_from_the_exact_tier(gateway, live_tenant,
                                                                fake_upstream) -> None:
    key = live_tenant.infer.raw
    prompt = f"Stream the history of tea in one line ({uuid.uuid4().hex[:8]})"
    before = fake_upstream.stats()["total"]
    headers, text, finish, tokens = _stream(gateway, key, prompt)
    assert headers["x-asahi-cache"] == "miss" and text and finish == "stop" and tokens > 0
    again, replayed, replay_finish, replay_tokens = _stream(gateway, key, prompt)
    assert again["x-asahi-cache"] == "exact"
    assert again["x-asahi-cost-usd"] == "0.000000000"
    assert (replayed, replay_finish, replay_tokens) == (text, finish, tokens)
    assert fake_upstream.stats()["total"] - before == 1
    plain = client_for(gateway, key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
    assert plain.headers["x-asahi-cache"] == "exact"  # one answer, however it was asked for
    assert plain.parse().choices[0].message.content == text


def test_streamed_paraphrase_is_a_semantic_hit(gateway, live_tenant) -> None:
    key = live_tenant.infer.raw
    headers, text, _, _ = _stream(gateway, key, "How do I renew my passport at the embassy?")
    assert headers["x-asahi-cache"] == "miss"
    _stored(live_tenant.org.pk, 1)  # the stream's answer went to the semantic tier too
    hit, replayed, finish, _ = _stream(gateway, key, "How can I renew my passport at the embassy?")
    assert hit["x-asahi-cache"] == "semantic", hit
    assert 0.8 < float(hit["x-asahi-cache-similarity"]) <= 1.0
    assert replayed == text and finish == "stop"
    ledger.flush()
    event = InferenceEvent.objects.get(request_id=hit["x-request-id"])
    assert event.cache_tier == 2 and event.cost_usd == 0 and event.stream


def test_streamed_negated_variant_is_a_miss(gateway, live_tenant) -> None:
    key = live_tenant.infer.raw
    _stream(gateway, key, "Is it safe to drink tap water in Lisbon?")
    _stored(live_tenant.org.pk, 1)
    headers, _, _, _ = _stream(gateway, key, "Is it not safe to drink tap water in Lisbon?")
    assert headers["x-asahi-cache"] == "miss"


def test_concurrent_identical_streams_make_one_upstream_call(gateway, live_tenant,
                                                            fake_upstream) -> None:
    prompt = f"Stream single flight in one line ({uuid.uuid4().hex[:8]})"

    def ask(_: int) -> tuple[str, str]:
        headers, text, _, _ = _stream(gateway, live_tenant.infer.raw, prompt)
        return headers["x-asahi-cache"], text

    old = fake_upstream.config.latency_ms
    fake_upstream.config.latency_ms = 400  # a slow upstream: all requests miss together
    try:
        before = fake_upstream.stats()["total"]
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(ask, range(6)))
        calls = fake_upstream.stats()["total"] - before
    finally:
        fake_upstream.config.latency_ms = old
    assert calls == 1, (calls, answers)
    assert sorted(tier for tier, _ in answers) == ["exact"] * 5 + ["miss"]
    assert len({text for _, text in answers}) == 1
