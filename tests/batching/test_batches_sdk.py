"""The official openai SDK's files and batches, unchanged, against Asahi with a real Celery worker:
cache hits answered free, misses through the providers' batch APIs at half price, Cohere run by the
worker at full price, bad lines reported per line."""

from __future__ import annotations

import json
from decimal import Decimal

import openai
import pytest
from django.db.models import Sum

from batching.models import BatchItem
from governance.models import AuditEvent
from inference import pricing
from inference.models import InferenceEvent
from tests.batching.conftest import batch_line, client_for, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def test_sdk_batch_round_trip(workers, live_tenant, outsider, fake_upstream) -> None:
    fake_upstream.config.batch_delay_s = 0.5
    client = client_for(workers.url, live_tenant.infer.raw)
    # Answered synchronously first: the batch's identical request is an exact-cache hit.
    client.chat.completions.create(model="gpt-4o-mini", max_tokens=50,
                                   messages=[{"role": "user", "content": "cached question"}])
    lines = [
        batch_line("a1", "gpt-4o-mini", "first openai question"),
        batch_line("a2", "gpt-4o-mini", "second openai question"),
        batch_line("b1", "claude-haiku-4-5", "an anthropic question"),
        batch_line("c1", "command-r-08-2024", "a cohere question"),
        batch_line("hit", "gpt-4o-mini", "cached question"),
        "{not json",
        batch_line("bad-model", "gpt-9-imaginary", "x"),
        json.dumps({"custom_id": "emb", "method": "POST", "url": "/v1/embeddings",
                    "body": {"model": "text-embedding-3-small", "input": "x"}}),
        batch_line("a1", "gpt-4o-mini", "duplicate id"),
    ]
    uploaded = client.files.create(file=("in.jsonl", "\n".join(lines).encode()), purpose="batch")
    assert uploaded.object == "file" and uploaded.purpose == "batch"
    assert client.files.retrieve(uploaded.id).bytes == len("\n".join(lines).encode())

    workers.start()
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                  completion_window="24h", metadata={"run": "sdk"})
    assert batch.status == "validating" and batch.metadata == {"run": "sdk"}
    done = wait_for(lambda: (b := client.batches.retrieve(batch.id)).status == "completed" and b,
                    what="batch completed", workers=workers)
    assert done.request_counts.total == 9
    assert done.request_counts.completed == 5 and done.request_counts.failed == 4
    assert done.completed_at and done.in_progress_at and done.output_file_id and done.error_file_id

    out = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    assert {o["custom_id"] for o in out} == {"a1", "a2", "b1", "c1", "hit"}
    for o in out:
        assert o["response"]["status_code"] == 200
        assert o["response"]["body"]["choices"][0]["message"]["content"].startswith("Fake answer")
    errors = {json.loads(x)["line"]: json.loads(x)["error"]["code"]
              for x in client.files.content(done.error_file_id).text.splitlines()}
    assert errors == {6: "invalid_json", 7: "model_not_found", 8: "invalid_url",
                      9: "duplicate_custom_id"}

    items = {i.custom_id: i for i in BatchItem.objects.filter(batch_id=batch.id, rejected=False)}
    assert items["hit"].cache_tier == 1 and items["hit"].cost_usd == 0
    for cid in ("a1", "a2", "b1"):  # provider batch APIs: half the synchronous price
        item = items[cid]
        assert item.sync_cost_usd > 0
        assert item.cost_usd == (item.sync_cost_usd / 2).quantize(pricing.NANO)
        assert "batch_discount" in item.techniques
    assert items["c1"].cost_usd == items["c1"].sync_cost_usd > 0  # no batch API: full price
    assert "batch_worker" in items["c1"].techniques

    rows = InferenceEvent.objects.filter(organization_id=live_tenant.org.id, endpoint="batch")
    assert rows.count() == 5  # one per answered item, none twice
    assert set(rows.values_list("request_id", flat=True)) == {i.request_id for i in items.values()}
    total = rows.aggregate(s=Sum("cost_usd"))["s"]
    assert total == sum((i.cost_usd for i in items.values()), Decimal(0))
    extension = done.model_extra["asahi"]  # Asahi's extension of the Batch object
    assert Decimal(extension["cost_usd"]) == total and extension["cache_hits"] == 1
    assert Decimal(extension["synchronous_cost_usd"]) == sum(
        (i.sync_cost_usd for i in items.values()), Decimal(0))
    by_path = fake_upstream.stats()["by_path"]
    assert by_path.get("/v2/chat") == 1  # the Cohere item, run by the worker
    assert AuditEvent.objects.filter(action="batch_created", target_id=batch.id).count() == 1

    listed = client.batches.list(limit=10)
    assert [b.id for b in listed.data] == [batch.id]
    with pytest.raises(openai.BadRequestError):
        client.batches.cancel(batch.id)  # completed: nothing to cancel

    other = client_for(workers.url, outsider.infer.raw)
    with pytest.raises(openai.NotFoundError):
        other.batches.retrieve(batch.id)
    with pytest.raises(openai.NotFoundError):
        other.files.content(done.output_file_id)
    assert other.batches.list().data == []

