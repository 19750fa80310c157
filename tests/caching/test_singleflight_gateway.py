"""Single flight end to end: N concurrent identical misses make one upstream call.

`inference.pipeline.complete` joins a flight after a cache miss; followers read the leader's answer.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.inference.conftest import client_for

pytestmark = [pytest.mark.redis]


def test_concurrent_identical_requests_make_one_upstream_call(gateway, live_tenant,
                                                             fake_upstream) -> None:
    prompt = f"Explain single flight in one line ({uuid.uuid4().hex[:8]})"
    client = client_for(gateway, live_tenant.infer.raw)

    def ask(_: int) -> str:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
        return raw.headers["x-asahi-cache"]

    old = fake_upstream.config.latency_ms
    fake_upstream.config.latency_ms = 400  # a slow upstream: all requests miss together
    try:
        before = fake_upstream.stats()["total"]
        with ThreadPoolExecutor(8) as pool:
            tiers = list(pool.map(ask, range(8)))
        calls = fake_upstream.stats()["total"] - before
    finally:
        fake_upstream.config.latency_ms = old
    assert calls == 1, (calls, tiers)
    assert sorted(tiers) == ["exact"] * 7 + ["miss"]
