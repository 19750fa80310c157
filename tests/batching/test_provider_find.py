"""Finding a lost Anthropic submission (message batches carry no metadata): by the custom_ids of
its requests, readable only once it has ended; before that, the job waits instead of paying twice."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from batching.providers import WAIT, AnthropicBatches
from inference.providers.types import ChatMessage, ChatRequest
from inference.types import ModelInfo
from tests.fakeup import fake_upstream  # noqa: F401  (fixture)

BASE = ModelInfo(name="claude-haiku-4-5", upstream_name="claude-haiku-4-5", provider="anthropic",
                 provider_kind="anthropic", base_url="", api_key="sk-ant-test", kind="chat",
                 input_price_per_m=Decimal("1"), output_price_per_m=Decimal("5"),
                 cached_input_price_per_m=None, cache_write_price_per_m=None,
                 context_window=200_000, max_output_tokens=8_000, typical_latency_ms=500,
                 supports_tools=True)


def _req(text: str) -> ChatRequest:
    return ChatRequest(model="claude-haiku-4-5", messages=[ChatMessage(role="user", content=text)],
                       max_tokens=20)


def test_a_lost_message_batch_is_found_by_its_custom_ids_once_it_has_ended(fake_upstream) -> None:  # noqa: F811
    fake_upstream.config.batch_delay_s = 1.5
    try:
        api = AnthropicBatches(replace(BASE, base_url=fake_upstream.anthropic_base_url))
        since = datetime.now(UTC) - timedelta(minutes=10)
        mine = ["i101", "i102"]
        upstream_id = api.submit("job", [(cid, _req(cid)) for cid in mine])
        # Same size, still processing: it may be ours, so wait rather than submit again.
        assert api.find("job", custom_ids=mine, since=since) == WAIT
        time.sleep(2.0)
        assert api.find("job", custom_ids=mine, since=since) == upstream_id
        # Ended, same size, other requests: not ours.
        assert api.find("job", custom_ids=["i201", "i202"], since=since) is None
        # A different number of requests never matches, and older batches are not looked at.
        assert api.find("job", custom_ids=["i101"], since=since) is None
        assert api.find("job", custom_ids=mine, since=datetime.now(UTC) + timedelta(minutes=1)) \
            is None
    finally:
        fake_upstream.config.batch_delay_s = 0.0
