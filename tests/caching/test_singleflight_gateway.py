"""Single flight end to end: N concurrent identical misses make one upstream call.

`inference.pipeline.complete` joins a flight after a cache miss; followers read the leader's answer.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.caching.live import slow_upstream, stream_answer
from tests.inference.conftest import client_for

pytestmark = [pytest.mark.redis]


@pytest.mark.parametrize("stream", [False, True])
def test_concurrent_identical_requests_make_one_upstream_call(gateway, live_tenant, fake_upstream,
                                                             stream) -> None:
    """A streaming leader's followers wait for its whole answer and replay it."""
    prompt = f"Explain single flight in one line ({uuid.uuid4().hex[:8]})"
    key = live_tenant.infer.raw

    def ask(_: int) -> tuple[str, str]:
        if stream:
            headers, text, _, _ = stream_answer(gateway, key, prompt)
            return headers["x-asahi-cache"], text
        raw = client_for(gateway, key).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
        return raw.headers["x-asahi-cache"], raw.parse().choices[0].message.content or ""

    with slow_upstream(fake_upstream):
        before = fake_upstream.stats()["total"]
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, range(8)))
        calls = fake_upstream.stats()["total"] - before
    assert calls == 1, (calls, answers)
    assert sorted(tier for tier, _ in answers) == ["exact"] * 7 + ["miss"]
    assert len({text for _, text in answers}) == 1
