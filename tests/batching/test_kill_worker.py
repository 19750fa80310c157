"""kill -9 of a real Celery worker while a batch is being submitted, polled or written back: a
restarted worker resumes, no item is lost, none is charged twice, and each item settles its
share of the budget once."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

import pytest
from django.db.models import Count, Sum

from batching.choices import ItemState
from batching.models import BatchItem, ProviderJob
from governance.enforcement import org_day_spend
from inference import pricing
from inference.models import InferenceEvent
from tests.batching.conftest import client_for, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _jsonl(n_openai: int, n_anthropic: int) -> bytes:
    lines = []
    for i in range(n_openai + n_anthropic):
        model = "gpt-4o-mini" if i < n_openai else "claude-haiku-4-5"
        lines.append(json.dumps({"custom_id": f"r{i}", "method": "POST",
                                 "url": "/v1/chat/completions",
                                 "body": {"model": model, "max_tokens": 40, "cache": "no-store",
                                          "messages": [{"role": "user",
                                                        "content": f"kill test question {i}"}]}}))
    return "\n".join(lines).encode()


def _spend(org_id: str) -> tuple[int, int]:
    return asyncio.run(org_day_spend(org_id))


@pytest.mark.parametrize("pause", ["submit", "submit_anthropic", "poll", "writeback:2", "settle_parts"])
def test_killed_worker_loses_nothing_and_charges_once(workers, live_tenant, fake_upstream,
                                                      tmp_path: Path, same_utc_day,
                                                      pause: str) -> None:
    fake_upstream.config.batch_delay_s = 0.3
    known = {b["id"] for b in fake_upstream.batches()}
    client = client_for(workers.url, live_tenant.infer.raw)
    f = client.files.create(file=("kill.jsonl", _jsonl(4, 2)), purpose="batch")
    marker = tmp_path / "paused"
    first = workers.start(ASAHI_BATCH_PAUSE_AT=pause, ASAHI_BATCH_PAUSE_FILE=str(marker),
                          ASAHI_BATCH_CHUNK="2")
    batch = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    wait_for(marker.exists, what=f"the worker to reach {pause}", workers=workers)
    workers.kill(first)

    items = BatchItem.objects.filter(batch_id=batch.id)
    if pause.startswith("submit"):
        # The provider has the batch, but the worker died before recording it (before the
        # Anthropic job's, the OpenAI job may or may not have been submitted and recorded).
        created = [b for b in fake_upstream.batches() if b["id"] not in known]
        stored = ProviderJob.objects.filter(batch_id=batch.id).exclude(upstream_id="")
        assert stored.count() == len(created) - 1
        if pause == "submit_anthropic":
            assert "anthropic" in {b["kind"] for b in created}
            assert not stored.filter(provider_kind="anthropic").exists()
    if pause == "writeback:2":
        # The first chunk committed; the second (ledger rows inserted) rolled back with the kill.
        assert items.filter(state=ItemState.DONE).count() == 2
    assert InferenceEvent.objects.filter(request_id__startswith=batch.id).count() == \
        items.filter(state=ItemState.DONE).count()

    workers.start(ASAHI_BATCH_CHUNK="2")
    done = wait_for(lambda: (b := client.batches.retrieve(batch.id)).status == "completed" and b,
                    what="the restarted worker to finish the batch", workers=workers)
    assert done.request_counts.completed == 6 and done.request_counts.failed == 0
    out = client.files.content(done.output_file_id).text.splitlines()
    assert sorted(json.loads(x)["custom_id"] for x in out) == [f"r{i}" for i in range(6)]

    rows = InferenceEvent.objects.filter(request_id__startswith=batch.id)
    per_item = rows.values("request_id").annotate(n=Count("id"))
    assert len(per_item) == 6 and {r["n"] for r in per_item} == {1}  # nobody charged twice
    total = rows.aggregate(s=Sum("cost_usd"))["s"]
    assert total == items.aggregate(s=Sum("cost_usd"))["s"] > Decimal(0)
    # A lost submission was found again (OpenAI's by its metadata, Anthropic's by its requests'
    # custom_ids once it ended), not submitted a second time: the provider bills each job once.
    new = [b for b in fake_upstream.batches() if b["id"] not in known]
    assert sorted(b["kind"] for b in new) == ["anthropic", "openai"]
    spent, reserved = _spend(str(live_tenant.org.id))
    assert spent == pricing.to_nano(total) and reserved == 0  # settled once, nothing held
