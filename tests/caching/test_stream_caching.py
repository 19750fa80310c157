"""Streaming requests read and fill the same tiers as plain ones (their single flight is in
`test_singleflight_gateway.py`).

A cached answer, exact or semantic, replays as a stream through the official SDK.
"""

from __future__ import annotations

import uuid

import pytest

from inference.ledger import ledger
from inference.models import InferenceEvent
from tests.caching.live import stream_answer, wait_for_semantic_entries
from tests.inference.conftest import client_for

pytestmark = [pytest.mark.redis, pytest.mark.usefixtures("warm_embedder")]


def test_streamed_answer_replays_as_a_stream_from_the_exact_tier(gateway, live_tenant,
                                                                fake_upstream) -> None:
    key = live_tenant.infer.raw
    prompt = f"Stream the history of tea in one line ({uuid.uuid4().hex[:8]})"
    before = fake_upstream.stats()["total"]
    headers, text, finish, tokens = stream_answer(gateway, key, prompt)
    assert headers["x-asahi-cache"] == "miss" and text and finish == "stop" and tokens > 0
    again, replayed, replay_finish, replay_tokens = stream_answer(gateway, key, prompt)
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
    headers, text, _, _ = stream_answer(gateway, key, "How do I renew my passport at the embassy?")
    assert headers["x-asahi-cache"] == "miss"
    wait_for_semantic_entries(live_tenant.org.pk, 1)  # the stream's answer went to the semantic tier too
    hit, replayed, finish, _ = stream_answer(gateway, key, "How can I renew my passport at the embassy?")
    assert hit["x-asahi-cache"] == "semantic", hit
    assert 0.8 < float(hit["x-asahi-cache-similarity"]) <= 1.0
    assert replayed == text and finish == "stop"
    ledger.flush()
    event = InferenceEvent.objects.get(request_id=hit["x-request-id"])
    assert event.cache_tier == 2 and event.cost_usd == 0 and event.stream
    assert event.cache_reason == hit["x-asahi-cache-reason"]  # the audit trail of the decision


def test_streamed_negated_variant_is_a_miss(gateway, live_tenant) -> None:
    key = live_tenant.infer.raw
    stream_answer(gateway, key, "Is it safe to drink tap water in Lisbon?")
    wait_for_semantic_entries(live_tenant.org.pk, 1)
    headers, _, _, _ = stream_answer(gateway, key, "Is it not safe to drink tap water in Lisbon?")
    assert headers["x-asahi-cache"] == "miss"
