"""Through the live gateway and the openai SDK: cached answers never cross organizations."""

from __future__ import annotations

import uuid

import pytest

from tests.caching.live import stream_answer, wait_for_semantic_entries
from tests.conftest import make_tenant
from tests.inference.conftest import client_for

pytestmark = [pytest.mark.redis]


def _ask(base: str, key: str, text: str, cache: str = "default"):  # type: ignore[no-untyped-def]
    client = client_for(base, key)
    return client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}],
        extra_body={"cache": cache})


def test_identical_request_twice_is_exact(gateway, live_tenant, fake_upstream) -> None:
    prompt = f"Name three uses of a cache ({uuid.uuid4().hex[:8]})"
    before = fake_upstream.stats()["total"]
    first = _ask(gateway, live_tenant.infer.raw, prompt)
    second = _ask(gateway, live_tenant.infer.raw, prompt)
    assert first.headers["x-asahi-cache"] == "miss"
    assert second.headers["x-asahi-cache"] == "exact"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert fake_upstream.stats()["total"] - before == 1


def test_other_organization_never_gets_the_exact_answer(gateway, live_tenant, fake_upstream) -> None:
    other = make_tenant("live-globex")
    prompt = f"What is the boiling point of water? ({uuid.uuid4().hex[:8]})"
    a1 = _ask(gateway, live_tenant.infer.raw, prompt)
    a2 = _ask(gateway, live_tenant.infer.raw, prompt)
    before = fake_upstream.stats()["total"]
    b1 = _ask(gateway, other.infer.raw, prompt)
    assert (a1.headers["x-asahi-cache"], a2.headers["x-asahi-cache"]) == ("miss", "exact")
    assert b1.headers["x-asahi-cache"] == "miss"
    assert fake_upstream.stats()["total"] - before == 1  # org B really went upstream
    assert _ask(gateway, other.infer.raw, prompt).headers["x-asahi-cache"] == "exact"


@pytest.mark.usefixtures("warm_embedder")
def test_other_organization_never_gets_the_semantic_answer(gateway, live_tenant) -> None:
    other = make_tenant("live-initech")
    tag = uuid.uuid4().hex[:6]
    stored = f"How do I reset my password on the portal {tag}?"
    paraphrase = f"How can I reset my password on the portal {tag}?"
    assert _ask(gateway, live_tenant.infer.raw, stored).headers["x-asahi-cache"] == "miss"
    wait_for_semantic_entries(live_tenant.org.pk, 1)
    own = _ask(gateway, live_tenant.infer.raw, paraphrase)
    # The paraphrase is a semantic hit for the organization that stored the answer...
    assert own.headers["x-asahi-cache"] == "semantic", own.headers
    # ...and a miss for another organization, with the same paraphrase (plain or streamed) or the
    # stored prompt (no-store, so B's own answer to the paraphrase cannot serve B's next question).
    assert _ask(gateway, other.infer.raw, paraphrase, "no-store").headers["x-asahi-cache"] == "miss"
    streamed, _, _, _ = stream_answer(gateway, other.infer.raw, paraphrase,
                                      extra_headers={"Cache-Control": "no-store"})
    assert streamed["x-asahi-cache"] == "miss"
    assert _ask(gateway, other.infer.raw, stored).headers["x-asahi-cache"] == "miss"


@pytest.mark.parametrize(("body", "header", "mode"), [
    ({}, "", "default"),
    ({"cache": "no-cache"}, "", "no-cache"),
    ({}, "no-store", "no-store"),
    ({"cache": "no-store"}, "no-cache", "no-store"),  # the stricter of the two wins
    ({"cache": "no-cache"}, "max-age=0, NO-STORE", "no-store"),
    ({"cache": "default"}, "max-age=60, private", "default"),
])
def test_cache_mode_takes_the_stricter_of_body_and_cache_control(body, header, mode) -> None:
    from inference.validation import cache_mode

    assert cache_mode(body, header) == mode
