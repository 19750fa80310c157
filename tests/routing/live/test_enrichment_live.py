"""Feature enrichment through the live gateway: applied from the cache, skipped when too slow."""

from __future__ import annotations

import time

import pytest

from inference.ledger import ledger
from inference.models import InferencePayload
from routing.models import EnrichmentContext
from routing.selectors import cached_org_contexts, load_org_contexts
from tests.routing.live.conftest import infer

pytestmark = [pytest.mark.redis]


def _sent_prompt(request_id: str) -> str:
    ledger.flush()
    return InferencePayload.objects.get(request_id=request_id).prompt


@pytest.fixture
def contexts(live_tenant):  # type: ignore[no-untyped-def]
    EnrichmentContext.objects.create(organization=live_tenant.org,
                                     instructions="Always answer in British English.",
                                     glossary={"ARR": "annual recurring revenue"})
    EnrichmentContext.objects.create(organization=live_tenant.org, user_id="alice",
                                     preferences={"format": "bullet points"})
    return live_tenant


def test_user_and_org_context_is_prepended(gateway, contexts) -> None:
    load_org_contexts(contexts.org.pk)  # warm the per-process cache: the budget path is below
    resp = infer(gateway, contexts.infer.raw, {"prompt": "What is our ARR target?",
                                               "user_id": "alice", "cache": "no-store"})
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert "feature_enrichment" in data["optimization_techniques"]
    assert "enriched with the organization's context" in data["routing_reason"]
    sent = _sent_prompt(data["request_id"])
    assert sent.index("British English") < sent.index("What is our ARR target?")
    assert "- ARR: annual recurring revenue" in sent and "- format: bullet points" in sent
    assert data["task_type"] != ""

    other = infer(gateway, contexts.infer.raw, {"prompt": "What is our ARR target?",
                                                "user_id": "bob", "cache": "no-store"}).json()
    sent_bob = _sent_prompt(other["request_id"])
    assert "British English" in sent_bob and "bullet points" not in sent_bob


def test_org_without_context_is_left_alone(gateway, live_tenant) -> None:
    load_org_contexts(live_tenant.org.pk)
    data = infer(gateway, live_tenant.infer.raw, {"prompt": "Hello there", "cache": "no-store"}
                 ).json()
    assert not {"feature_enrichment", "enrichment_skipped"} & set(data["optimization_techniques"])
    assert _sent_prompt(data["request_id"]) == "Hello there"


def test_slow_lookup_is_skipped_and_fills_the_cache_later(gateway, contexts, settings) -> None:
    settings.ASAHI_ENRICHMENT_BUDGET_MS = 0  # any lookup is "too slow"
    body = {"prompt": "Explain ARR briefly.", "user_id": "alice", "cache": "no-store"}
    skipped = infer(gateway, contexts.infer.raw, body).json()
    assert "enrichment_skipped" in skipped["optimization_techniques"]
    assert "feature_enrichment" not in skipped["optimization_techniques"]
    assert "British English" not in _sent_prompt(skipped["request_id"])
    # The abandoned load still completes and fills the cache; the next request uses it.
    deadline = time.monotonic() + 5
    while cached_org_contexts(contexts.org.pk) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    applied = infer(gateway, contexts.infer.raw, body).json()
    assert "feature_enrichment" in applied["optimization_techniques"]
    assert "British English" in _sent_prompt(applied["request_id"])
