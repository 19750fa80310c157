"""GET /cache/stats and POST /cache/invalidate: counts per tier, scoped deletes, isolation, audit."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import orjson
import pytest
from django.utils import timezone

from caching import exact, keys
from caching.models import IntermediateResult, SemanticEntry
from governance.models import AuditEvent

pytestmark = [pytest.mark.redis, pytest.mark.django_db, pytest.mark.urls("tests.caching.urls")]


def _answer(model: str, created: float) -> exact.CachedAnswer:
    return exact.CachedAnswer(content="hi", tool_calls=[], finish_reason="stop", model=model,
                              input_tokens=3, output_tokens=1, cost_usd="0", created=created)


def seed(org_id: uuid.UUID, redis_client) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Two exact answers (one old, other model), two semantic rows, one tier-3 digest."""
    old = time.time() - 7200
    digests = {"new": uuid.uuid4().hex * 2, "old": uuid.uuid4().hex * 2}

    async def put() -> None:
        await exact.put(org_id, digests["new"], _answer("gpt-4o-mini", time.time()), 600)
        await exact.put(org_id, digests["old"], _answer("claude-haiku-4-5", old), 600)

    asyncio.run(put())
    vec = [0.0] * 384
    vec[0] = 1.0
    for model in ("gpt-4o-mini", "claude-haiku-4-5"):
        SemanticEntry.objects.create(organization_id=org_id, model=model, task_type="qa",
                                     embedder="t:1", embedding=vec, prompt="p", answer={},
                                     expires_at=timezone.now() + timedelta(hours=1))
    doc_hash = uuid.uuid4().hex * 2
    redis_client.set(keys.intermediate_key(org_id, doc_hash, "digest", "auto"),
                     orjson.dumps({"text": "d", "model": "gpt-4o-mini", "chunks": 1,
                                   "document_tokens": 900, "created": time.time()}), ex=600)
    IntermediateResult.objects.create(organization_id=org_id, document_hash=doc_hash,
                                      step="digest", model="auto", hit_count=2, tokens_saved=500)
    return {**digests, "doc": doc_hash}


def test_stats_count_each_tier(client, tenant, redis_client) -> None:
    seed(tenant.org.pk, redis_client)
    resp = client.get("/cache/stats", **tenant.headers("analytics"))
    assert resp.status_code == 200, resp.content
    data = resp.json()
    assert data["org_id"] == str(tenant.org.pk)
    assert (data["exact_entries"], data["semantic_entries"], data["intermediate_entries"]) == \
        (2, 2, 1)
    assert data["intermediate_hits"] == 2 and data["intermediate_tokens_saved"] == 500


def test_stats_are_org_scoped(client, tenant, outsider, redis_client) -> None:
    seed(tenant.org.pk, redis_client)
    mine = client.get("/cache/stats", **outsider.headers("analytics")).json()
    assert (mine["exact_entries"], mine["semantic_entries"], mine["intermediate_entries"]) == \
        (0, 0, 0)
    forbidden = client.get(f"/cache/stats?org_id={tenant.org.pk}", **outsider.headers("admin"))
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "organization_forbidden"


def test_invalidate_all_only_touches_the_callers_org(client, tenant, outsider,
                                                     redis_client) -> None:
    seed(tenant.org.pk, redis_client)
    seed(outsider.org.pk, redis_client)
    resp = client.post("/cache/invalidate", {"scope": "all"}, content_type="application/json",
                       **tenant.headers("admin"))
    assert resp.status_code == 200, resp.content
    assert resp.json() == {"scope": "all", "exact_keys": 2, "semantic_rows": 2,
                           "intermediate_keys": 1, "intermediate_rows": 1}
    theirs = client.get("/cache/stats", **outsider.headers("analytics")).json()
    assert (theirs["exact_entries"], theirs["semantic_entries"]) == (2, 2)
    audit = AuditEvent.objects.get(organization_id=tenant.org.pk, action="cache_invalidated")
    assert audit.details["exact_keys"] == 2 and audit.actor.startswith("key:")


def test_invalidate_by_model(client, tenant, redis_client) -> None:
    digests = seed(tenant.org.pk, redis_client)
    resp = client.post("/cache/invalidate", {"scope": "model", "model": "claude-haiku-4-5"},
                       content_type="application/json", **tenant.headers("admin"))
    assert resp.json()["exact_keys"] == 1 and resp.json()["semantic_rows"] == 1
    assert redis_client.exists(keys.exact_key(tenant.org.pk, digests["old"])) == 0
    assert redis_client.exists(keys.exact_key(tenant.org.pk, digests["new"])) == 1
    assert list(SemanticEntry.objects.filter(organization_id=tenant.org.pk)
                .values_list("model", flat=True)) == ["gpt-4o-mini"]


def test_invalidate_by_age(client, tenant, redis_client) -> None:
    digests = seed(tenant.org.pk, redis_client)
    resp = client.post("/cache/invalidate", {"scope": "age", "older_than_seconds": 3600},
                       content_type="application/json", **tenant.headers("admin"))
    assert resp.json()["exact_keys"] == 1 and resp.json()["semantic_rows"] == 0
    assert redis_client.exists(keys.exact_key(tenant.org.pk, digests["old"])) == 0


def test_invalidate_one_entry(client, tenant, redis_client) -> None:
    digests = seed(tenant.org.pk, redis_client)
    entry = SemanticEntry.objects.filter(organization_id=tenant.org.pk).first()
    one = client.post("/cache/invalidate", {"scope": "entry", "entry_id": str(entry.pk)},
                      content_type="application/json", **tenant.headers("admin")).json()
    assert one["semantic_rows"] == 1 and one["exact_keys"] == 0
    doc = client.post("/cache/invalidate", {"scope": "entry", "entry_id": digests["doc"]},
                      content_type="application/json", **tenant.headers("admin")).json()
    assert doc["intermediate_keys"] == 1 and doc["intermediate_rows"] == 1


def test_invalidate_validation_and_scope(client, tenant, outsider, redis_client) -> None:
    seed(tenant.org.pk, redis_client)
    bad = client.post("/cache/invalidate", {"scope": "model"}, content_type="application/json",
                      **tenant.headers("admin"))
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "model"
    unknown = client.post("/cache/invalidate", {"scope": "everything"},
                          content_type="application/json", **tenant.headers("admin"))
    assert unknown.status_code == 400
    # Another org's semantic entry id is simply not found in the caller's scope.
    entry = SemanticEntry.objects.filter(organization_id=tenant.org.pk).first()
    other = client.post("/cache/invalidate", {"scope": "entry", "entry_id": str(entry.pk)},
                        content_type="application/json", **outsider.headers("admin")).json()
    assert other["semantic_rows"] == 0
    assert SemanticEntry.objects.filter(pk=entry.pk).exists()
    analytics_only = client.post("/cache/invalidate", {"scope": "all"},
                                 content_type="application/json", **tenant.headers("analytics"))
    assert analytics_only.status_code == 403


def test_evict_expired_task(tenant, redis_client) -> None:
    from caching.tasks import evict_expired

    digests = seed(tenant.org.pk, redis_client)
    SemanticEntry.objects.filter(model="gpt-4o-mini").update(
        expires_at=timezone.now() - timedelta(seconds=1))
    redis_client.delete(keys.intermediate_key(tenant.org.pk, digests["doc"], "digest", "auto"))
    assert evict_expired() == {"semantic_rows": 1, "intermediate_rows": 1}
    assert SemanticEntry.objects.filter(organization_id=tenant.org.pk).count() == 1
    assert not IntermediateResult.objects.filter(organization_id=tenant.org.pk).exists()
