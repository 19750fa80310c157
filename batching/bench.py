"""The "done when" run of issue 13: the openai SDK uploads an N-line file to a running Asahi,
creates a batch, polls it to completed and downloads the results; then the money is checked three
ways: the ledger's total, the sum of the items' costs, and half the synchronous price recomputed
from the output file's own usage and the catalogue's prices (cache hits excluded, they are free).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, Sum

from batching.models import BatchItem
from inference import pricing
from inference.models import InferenceEvent
from inference.providers.openai_format import usage_from_openai
from inference.selectors import load_catalogue

MODELS = ("gpt-4o-mini", "claude-haiku-4-5")
_WORDS = ["river", "mountain", "budget", "invoice", "garden", "battery", "protein", "museum",
          "contract", "planet", "violin", "harbor", "kernel", "tariff", "glacier", "pension"]


@dataclass
class Report:
    lines: dict[str, Any]

    def text(self) -> str:
        return "\n".join(f"{k:<44} {v}" for k, v in self.lines.items())


def _prompt(i: int, rng: random.Random) -> str:
    return f"Item {i}: explain {' '.join(rng.sample(_WORDS, 4))} in one sentence."


def run(*, url: str, key: str, n: int, cached: int, poll_s: float, timeout_s: float,
        seed: int = 13) -> Report:
    import openai

    rng = random.Random(seed)
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=2, timeout=120)
    prompts = [_prompt(i, rng) for i in range(n)]
    # The first `cached` prompts are asked synchronously first, so the batch finds them cached.
    t0 = time.perf_counter()
    for i in range(cached):
        client.chat.completions.create(model=MODELS[i % 2], max_tokens=64,
                                       messages=[{"role": "user", "content": prompts[i]}])
    warm_s = time.perf_counter() - t0
    data = "\n".join(json.dumps({
        "custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions",
        "body": {"model": MODELS[i % 2], "max_tokens": 64,
                 "messages": [{"role": "user", "content": p}]}}) for i, p in enumerate(prompts))
    t1 = time.perf_counter()
    f = client.files.create(file=("bench.jsonl", data.encode()), purpose="batch")
    t2 = time.perf_counter()
    batch = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    t3 = time.perf_counter()
    statuses: list[str] = []
    while batch.status not in ("completed", "failed", "expired", "cancelled"):
        if time.perf_counter() - t3 > timeout_s:
            raise RuntimeError(f"batch {batch.id} still {batch.status} after {timeout_s} s")
        time.sleep(poll_s)
        batch = client.batches.retrieve(batch.id)
        if not statuses or statuses[-1] != batch.status:
            statuses.append(batch.status)
    t4 = time.perf_counter()
    out = client.files.content(batch.output_file_id).text.splitlines() \
        if batch.output_file_id else []
    t5 = time.perf_counter()

    catalogue = load_catalogue()
    items = BatchItem.objects.filter(batch_id=batch.id)
    by_id = {i.custom_id: i for i in items.only("custom_id", "cache_tier", "cost_usd")}
    sync_half = Decimal(0)
    for raw in out:
        line = json.loads(raw)
        item = by_id[line["custom_id"]]
        if item.cache_tier:
            continue
        body = line["response"]["body"]
        model = catalogue.get(body["model"])
        assert model is not None
        sync_half += pricing.cost_of(model, usage_from_openai(body["usage"])) / 2
    agg = items.aggregate(cost=Sum("cost_usd"), sync=Sum("sync_cost_usd"),
                          hits=Count("pk", filter=Q(cache_tier__gt=0)))
    ledger = InferenceEvent.objects.filter(request_id__startswith=f"{batch.id}-").aggregate(
        total=Sum("cost_usd"), rows=Count("pk"))
    item_total = agg["cost"] or Decimal(0)
    ledger_total = ledger["total"] or Decimal(0)
    spent, held, org_ledger = _budget(batch.id)
    return Report(lines={
        "batch": batch.id,
        "items (lines in the file)": n,
        "status": batch.status,
        "statuses seen while polling": " -> ".join(statuses),
        "request_counts": batch.request_counts.model_dump() if batch.request_counts else None,
        "output lines downloaded": len(out),
        "cache hits (answered at once, free)": agg["hits"],
        "warm-up (sync requests that fill the cache)": f"{cached} in {warm_s:.1f} s",
        "upload (files.create)": f"{t2 - t1:.2f} s ({len(data.encode()) / 1e6:.2f} MB)",
        "create (batches.create: parse + reserve)": f"{t3 - t2:.2f} s",
        "create -> completed": f"{t4 - t3:.1f} s",
        "download output": f"{t5 - t4:.2f} s",
        "ledger rows": ledger["rows"],
        "ledger total USD": f"{ledger_total:.9f}",
        "sum of item costs USD": f"{item_total:.9f}",
        "half the sync price of the misses USD": f"{sync_half:.9f}",
        "sync price of the misses USD": f"{agg['sync'] or 0:.9f}",
        "ledger == items": ledger_total == item_total,
        "|ledger - half sync| USD (per-item rounding)": f"{abs(ledger_total - sync_half):.9f}",
        "org budget today: spent USD": f"{spent:.9f}",
        "org ledger today (warm-up + batch) USD": f"{org_ledger:.9f}",
        "org budget today: still reserved USD": f"{held:.9f}",
    })


def _budget(batch_id: str) -> tuple[Decimal, Decimal, Decimal]:
    """The organization's daily budget after the run (each item settled its share of the batch's
    reservation) beside its whole ledger for the day; meaningful for an organization that had no
    other traffic today (the command's default: a new one)."""
    import asyncio

    from batching.models import Batch
    from governance.enforcement import org_day_spend
    from governance.selectors import period_start

    org = str(Batch.objects.values_list("organization_id", flat=True).get(pk=batch_id))
    spent, held = asyncio.run(org_day_spend(org))
    total = InferenceEvent.objects.filter(organization_id=org,
                                          created_at__gte=period_start("day")).aggregate(
        s=Sum("cost_usd"))["s"] or Decimal(0)
    return pricing.from_nano(spent), pricing.from_nano(held), total
