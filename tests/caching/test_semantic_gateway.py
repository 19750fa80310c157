"""Tier 2 end to end: a paraphrase is a semantic hit; a negated or number-changed variant is a miss."""

from __future__ import annotations

import pytest

from tests.caching.live import wait_for_semantic_entries
from tests.inference.conftest import client_for

pytestmark = [pytest.mark.redis, pytest.mark.usefixtures("warm_embedder")]


def _ask(base: str, key: str, text: str):  # type: ignore[no-untyped-def]
    return client_for(base, key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}])


def test_paraphrase_is_semantic_hit_with_similarity_header(gateway, live_tenant) -> None:
    key = live_tenant.infer.raw
    first = _ask(gateway, key, "How do I reset my password on the customer portal?")
    assert first.headers["x-asahi-cache"] == "miss"
    # Where the miss spent its time, per stage (W3C Server-Timing).
    stages = dict(part.split(";dur=") for part in first.headers["server-timing"].split(", "))
    assert {"plan", "exact", "embed", "lookup", "admit", "upstream", "settle", "store",
            "ledger"} <= set(stages) and all(float(ms) >= 0 for ms in stages.values())
    wait_for_semantic_entries(live_tenant.org.pk, 1)
    hit = _ask(gateway, key, "How can I reset my password on the customer portal?")
    assert hit.headers["x-asahi-cache"] == "semantic", hit.headers
    assert 0.8 < float(hit.headers["x-asahi-cache-similarity"]) <= 1.0
    assert hit.headers["x-asahi-cost-usd"] == "0.000000000"
    assert "similarity" in hit.headers["x-asahi-cache-reason"]  # e.g. "verifier accepted (p=0.97)"
    assert hit.parse().choices[0].message.content == first.parse().choices[0].message.content


@pytest.mark.parametrize(("stored", "variant", "why"), [
    ("Is it safe to eat raw eggs during pregnancy?",
     "Is it not safe to eat raw eggs during pregnancy?", "guard rejected (similarity 0.9"),
    ("What is the total price of 3 tickets at 25 dollars each?",
     "What is the total price of 5 tickets at 25 dollars each?", "miss: similarity 0."),
    ("How do I convert Celsius to Fahrenheit?", "How do I convert Fahrenheit to Celsius?",
     "direction swapped: fahrenheit -> celsius vs celsius -> fahrenheit"),
])
def test_negated_or_changed_variant_is_a_miss(gateway, live_tenant, stored, variant, why) -> None:
    """And the miss says why, in `X-Asahi-Cache-Reason`."""
    key = live_tenant.infer.raw
    assert _ask(gateway, key, stored).headers["x-asahi-cache"] == "miss"
    wait_for_semantic_entries(live_tenant.org.pk, 1)
    missed = _ask(gateway, key, variant)
    assert missed.headers["x-asahi-cache"] == "miss"
    assert why in missed.headers["x-asahi-cache-reason"]


def test_infer_reports_the_semantic_decision(gateway, live_tenant) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {live_tenant.infer.raw}"}
    body = {"prompt": "What are the opening hours of the Louvre museum?",
            "model_override": "gpt-4o-mini"}
    first = httpx.post(f"{gateway}/infer", json=body, headers=headers, timeout=30).json()
    assert first["cache_tier"] == 0
    wait_for_semantic_entries(live_tenant.org.pk, 1)
    body["prompt"] = "What are the opening hours for the Louvre museum?"
    second = httpx.post(f"{gateway}/infer", json=body, headers=headers, timeout=30).json()
    assert second["cache_tier"] == 2 and second["cache_hit"] is True
    assert "semantic_cache" in second["optimization_techniques"]
    assert "similarity" in second["cache_reason"]
    # A reason is not a technique: the list names only what saved money.
    assert not any("similarity" in t for t in second["optimization_techniques"])
    assert second["cost"] == 0 and second["cost_savings_percent"] == 100.0


def test_infer_reports_why_the_semantic_tier_refused(gateway, live_tenant) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {live_tenant.infer.raw}"}
    body = {"prompt": "How do I convert kilometres to miles?", "model_override": "gpt-4o-mini"}
    httpx.post(f"{gateway}/infer", json=body, headers=headers, timeout=30).raise_for_status()
    wait_for_semantic_entries(live_tenant.org.pk, 1)
    body["prompt"] = "How do I convert miles to kilometres?"
    response = httpx.post(f"{gateway}/infer", json=body, headers=headers, timeout=30)
    data = response.json()
    assert data["cache_tier"] == 0
    assert data["cache_reason"].startswith("guard rejected"), data
    assert not any("guard" in t or t.startswith("miss") for t in data["optimization_techniques"])
    assert response.headers["x-asahi-cache-reason"].startswith("guard rejected")
    from inference.ledger import ledger
    from inference.models import InferenceEvent

    ledger.flush()
    event = InferenceEvent.objects.get(request_id=response.json()["request_id"])
    assert event.cache_tier == 0 and event.cache_reason.startswith("guard rejected")


def test_cache_reason_header_is_printable_ascii() -> None:
    from inference.api import header_safe

    reason = "guard rejected (similarity 0.990): names differ: zürich\r\nx-evil: 1 vs 東京"
    safe = header_safe(reason)
    assert safe.isascii() and "\n" not in safe and "\r" not in safe
    assert safe.startswith("guard rejected (similarity 0.990): names differ: z\\xfcrich")
    assert len(header_safe("x" * 1000)) == 300
