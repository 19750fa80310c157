"""Tier 3 through the live gateway: a document's digest is computed once and reused."""

from __future__ import annotations

import uuid

import httpx
import pytest

from caching.models import IntermediateResult
from inference.ledger import ledger
from inference.models import InferenceEvent

pytestmark = [pytest.mark.redis]

TOPICS = ["shipping", "payment", "warranty", "liability", "termination", "privacy", "support",
          "pricing", "delivery", "arbitration"]


def make_document(seed: str) -> str:
    paras = []
    for i, topic in enumerate(TOPICS):
        body = " ".join(f"Clause {i}.{j} on {topic} obliges party {seed} to act within {j + 3} "
                        f"days of notice concerning {topic} matters." for j in range(6))
        paras.append(f"Section {i + 1}: {topic.title()}.\n{body}")
    return "\n\n".join(paras)


def infer(base: str, key: str, **body):  # type: ignore[no-untyped-def]
    return httpx.post(f"{base}/infer", json=body, headers={"Authorization": f"Bearer {key}"},
                      timeout=30)


def test_second_question_reuses_the_digest(gateway, live_tenant, fake_upstream) -> None:
    doc = make_document(uuid.uuid4().hex[:6])
    key = live_tenant.infer.raw
    plain = infer(gateway, key, prompt=f"<document>\n{doc}\n</document>\nWho handles shipping?",
                  cache="no-store")
    assert plain.status_code == 200, plain.text
    full_tokens = plain.json()["tokens_input"]

    before = fake_upstream.stats()["total"]
    first = infer(gateway, key, document_id="contract-1",
                  prompt=f"<document>\n{doc}\n</document>\nWhat does the warranty section say?")
    first_calls = fake_upstream.stats()["total"] - before
    assert first.status_code == 200, first.text
    one = first.json()
    assert one["cache_tier"] == 0 and "intermediate_cache" in one["optimization_techniques"]
    assert first_calls >= 2  # extraction step(s) + the question step

    before = fake_upstream.stats()["total"]
    second = infer(gateway, key, document_id="contract-1",
                   prompt=f"<document>\n{doc}\n</document>\nWhen must payment happen?")
    two = second.json()
    assert second.status_code == 200, second.text
    assert fake_upstream.stats()["total"] - before == 1  # only the question step went upstream
    assert two["cache_tier"] == 3 and second.headers["x-asahi-cache"] == "intermediate"
    assert "intermediate_cache" in two["optimization_techniques"]
    # The question step read the digest and two sections, not the whole document.
    assert two["tokens_input"] < full_tokens / 2
    assert two["cost"] < plain.json()["cost"]
    row = IntermediateResult.objects.get(organization_id=live_tenant.org.pk)
    assert row.hit_count == 1 and row.tokens_saved > 0
    ledger.flush()
    event = InferenceEvent.objects.get(request_id=two["request_id"])
    assert event.input_tokens == two["tokens_input"]
    # The ledger tells analytics what the response told the client: tier 3, measured against
    # the reference model reading the whole document.
    assert event.cache_tier == 3
    assert float(event.baseline_cost_usd) == pytest.approx(two["cost_original"], abs=1e-9)
    assert event.baseline_cost_usd > event.cost_usd
    # Extraction steps are Asahi's own calls: their cost counts, they add no baseline.
    steps = InferenceEvent.objects.filter(request_id__startswith=f"{one['request_id']}.t3x")
    assert steps.exists()
    assert all(s.baseline_cost_usd == 0 and s.cost_usd > 0 for s in steps)


def test_full_text_question_falls_back_to_the_document(gateway, live_tenant) -> None:
    doc = make_document(uuid.uuid4().hex[:6])
    key = live_tenant.infer.raw
    infer(gateway, key, document_id="d", prompt=f"<document>{doc}</document>Who pays?")
    quoted = infer(gateway, key, document_id="d",
                   prompt=f"<document>{doc}</document>Quote the liability section verbatim.")
    data = quoted.json()
    assert quoted.status_code == 200
    assert data["cache_tier"] == 0
    assert any(t.startswith("intermediate_bypass") for t in data["optimization_techniques"])
    assert data["tokens_input"] >= len(doc) // 4  # the whole document was sent


def test_other_organization_does_not_reuse_the_digest(gateway, live_tenant, fake_upstream) -> None:
    from tests.conftest import make_tenant

    other = make_tenant("live-t3-other")
    doc = make_document(uuid.uuid4().hex[:6])
    prompt = f"<document>{doc}</document>What about privacy?"
    assert infer(gateway, live_tenant.infer.raw, document_id="x", prompt=prompt).status_code == 200
    before = fake_upstream.stats()["total"]
    theirs = infer(gateway, other.infer.raw, document_id="x",
                   prompt=f"<document>{doc}</document>What about support?")
    assert theirs.json()["cache_tier"] == 0
    assert fake_upstream.stats()["total"] - before >= 2  # built its own digest


def test_malformed_document_prompt_is_a_clear_400(gateway, live_tenant) -> None:
    resp = infer(gateway, live_tenant.infer.raw, document_id="d", prompt="no tags, what is it?")
    assert resp.status_code == 400
    err = resp.json()["error"]
    assert err["code"] == "invalid_document_prompt" and err["param"] == "prompt"
    assert "<document>" in err["message"]


def test_chat_completions_with_document_id_uses_tier_3(gateway, live_tenant, fake_upstream,
                                                       ) -> None:
    """The OpenAI SDK reaches tier 3 with `document_id` in the body; a stream replays the answer."""
    from tests.inference.conftest import client_for

    client = client_for(gateway, live_tenant.infer.raw)
    doc = make_document(uuid.uuid4().hex[:6])

    def ask(question: str, **kw):  # type: ignore[no-untyped-def]
        return client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", extra_body={"document_id": "contract-chat"}, messages=[
                {"role": "system", "content": "Answer from the contract."},
                {"role": "user", "content": f"<document>\n{doc}\n</document>\n{question}"}], **kw)

    first = ask("What does the warranty section say?")
    assert first.headers["x-asahi-cache"] == "miss"
    assert first.parse().choices[0].message.content
    before = fake_upstream.stats()["total"]
    second = ask("When must payment happen?", stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in second.parse() if c.choices)
    assert fake_upstream.stats()["total"] - before == 1  # only the question step went upstream
    assert second.headers["x-asahi-cache"] == "intermediate"
    assert text.startswith("Fake answer about: Notes condensed")  # asked from the digest
    ledger.flush()
    event = InferenceEvent.objects.get(request_id=second.headers["x-request-id"])
    assert event.cache_tier == 3 and event.endpoint == "chat"


@pytest.mark.parametrize(("body", "param"), [
    ({"document_id": 7}, "document_id"),
    ({"document_id": "d", "messages": [{"role": "user", "content": "<document>x</document> a?"},
                                       {"role": "assistant", "content": "b"},
                                       {"role": "user", "content": "c?"}]}, "document_id"),
])
def test_chat_completions_rejects_a_document_id_it_cannot_honour(gateway, live_tenant, body,
                                                                 param) -> None:
    payload = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], **body}
    response = httpx.post(f"{gateway}/v1/chat/completions", json=payload, timeout=30,
                          headers={"Authorization": f"Bearer {live_tenant.infer.raw}"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and response.headers["x-request-id"]
