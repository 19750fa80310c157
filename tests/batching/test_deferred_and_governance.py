"""Deferred /infer with a signed webhook, SSRF refusal, the budget reservation at creation,
rate limits and expiry on the worker-run path, and cancellation — over HTTP, with real workers."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import openai
import pytest
from django.db.models import Sum
from django.utils import timezone

from batching.choices import ItemState
from batching.models import Batch, BatchItem, ProviderJob
from batching.webhooks import SIGNATURE_HEADER, verify
from governance.models import AuditEvent
from governance.services import api_key_issue, policy_update
from inference import pricing
from inference.models import InferenceEvent
from tests.batching.conftest import batch_line, client_for, wait_for
from tests.batching.test_kill_worker import _spend

pytestmark = [pytest.mark.redis, pytest.mark.slow]


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver():  # type: ignore[no-untyped-def]
    _Receiver.received = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def test_deferrable_infer_answers_202_then_signed_webhook(workers, live_tenant, receiver,
                                                          settings) -> None:
    # The local receiver is on loopback: allowed only because the operator setting says so.
    settings.ASAHI_WEBHOOK_ALLOW_PRIVATE = True
    headers = {"Authorization": f"Bearer {live_tenant.infer.raw}"}
    r = httpx.post(f"{workers.url}/infer", headers=headers, timeout=30, json={
        "prompt": "Summarise deferred work in one line", "deferrable": True,
        "model_override": "gpt-4o-mini", "max_tokens": 60, "webhook_url": receiver})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] == "validating" and job["status_url"] == f"/infer/jobs/{job['job_id']}"
    assert r.headers["Location"] == job["status_url"] and job["webhook_secret"]
    assert AuditEvent.objects.filter(action="deferred_request_created",
                                     target_id=job["job_id"]).exists()

    workers.start()
    wait_for(lambda: _Receiver.received, what="the webhook", workers=workers)
    hook_headers, body = _Receiver.received[0]
    assert verify(job["webhook_secret"], body, hook_headers[SIGNATURE_HEADER])
    assert not verify(job["webhook_secret"], body + b" ", hook_headers[SIGNATURE_HEADER])
    assert not verify("another-secret", body, hook_headers[SIGNATURE_HEADER])
    payload = json.loads(body)
    assert payload["job_id"] == job["job_id"] and payload["status"] == "completed"
    result = payload["result"]
    assert result["response"].startswith("Fake answer") and result["model_used"] == "gpt-4o-mini"
    assert Decimal(str(result["cost"])) == (Decimal(str(result["cost_synchronous"])) / 2
                                            ).quantize(Decimal("0.000000001"))
    assert "batch_discount" in result["optimization_techniques"]

    status = httpx.get(f"{workers.url}{job['status_url']}", headers=headers, timeout=10).json()
    assert status == payload
    assert Batch.objects.get(pk=job["job_id"]).webhook_delivered_at is not None


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "http://169.254.169.254/latest",
                                 "http://10.1.2.3/x", "http://[::1]/x", "ftp://example.com/x"])
def test_webhook_to_internal_address_is_refused(gateway, live_tenant, settings, url) -> None:
    settings.ASAHI_WEBHOOK_ALLOW_PRIVATE = False
    r = httpx.post(f"{gateway}/infer", timeout=10,
                   headers={"Authorization": f"Bearer {live_tenant.infer.raw}"},
                   json={"prompt": "hi", "deferrable": True, "webhook_url": url})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == "webhook_url" and r.headers["X-Request-ID"]
    assert err["code"] in ("webhook_forbidden_address", "invalid_request_error", "invalid_request")
    assert not Batch.objects.exists()


def test_batch_refused_when_its_worst_case_does_not_fit_the_budget(gateway, live_tenant,
                                                                    same_utc_day) -> None:
    policy_update(organization=live_tenant.org, actor="test",
                  changes={"daily_budget_usd": Decimal("0.0001")})
    client = client_for(gateway, live_tenant.infer.raw)
    lines = "\n".join(batch_line(f"r{i}", "gpt-4o", "x", max_tokens=1000) for i in range(5))
    f = client.files.create(file=("b.jsonl", lines.encode()), purpose="batch")
    with pytest.raises(openai.RateLimitError) as caught:
        client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                              completion_window="24h")
    err = caught.value.response.json()["error"]
    assert err["code"] == "budget_exceeded" and "this batch" in err["message"]
    assert caught.value.response.headers["X-Request-ID"]
    assert not Batch.objects.exists()
    assert not AuditEvent.objects.filter(action="batch_created").exists()


def test_rate_limited_fallback_then_expiry_keeps_partial_results(workers, live_tenant,
                                                                  same_utc_day) -> None:
    slow = api_key_issue(organization=live_tenant.org, actor="test", scopes=["infer"],
                         rpm_limit=1)
    client = client_for(workers.url, slow.raw)
    lines = "\n".join(batch_line(f"c{i}", "command-r-08-2024", f"cohere item {i}", max_tokens=40)
                      for i in range(2))
    f = client.files.create(file=("c.jsonl", lines.encode()), purpose="batch")
    workers.start()
    batch = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    items = BatchItem.objects.filter(batch_id=batch.id)
    wait_for(lambda: items.filter(state=ItemState.DONE).count() == 1, what="one item answered",
             workers=workers)
    # One request per minute: the second item waits in the queue, tick after tick.
    import time

    time.sleep(1.5)
    assert items.filter(state=ItemState.QUEUED).count() == 1
    Batch.objects.filter(pk=batch.id).update(expires_at=timezone.now() - timedelta(seconds=1))
    done = wait_for(lambda: (b := client.batches.retrieve(batch.id)).status == "expired" and b,
                    what="expiry", workers=workers)
    assert done.expired_at and done.request_counts.completed == 1
    assert done.request_counts.failed == 1
    out = client.files.content(done.output_file_id).text.splitlines()
    errs = [json.loads(x) for x in client.files.content(done.error_file_id).text.splitlines()]
    assert len(out) == 1 and [e["error"]["code"] for e in errs] == ["batch_expired"]
    rows = InferenceEvent.objects.filter(request_id__startswith=batch.id)
    assert rows.count() == 1
    assert rows.aggregate(s=Sum("cost_usd"))["s"] == items.aggregate(s=Sum("cost_usd"))["s"]


def test_cancel_stops_the_provider_batch_and_keeps_what_finished(workers, live_tenant,
                                                                  fake_upstream) -> None:
    fake_upstream.config.batch_delay_s = 600  # the provider would take ten minutes
    client = client_for(workers.url, live_tenant.infer.raw)
    lines = "\n".join(batch_line(f"o{i}", "gpt-4o-mini", f"cancel me {i}", max_tokens=30)
                      for i in range(3))
    f = client.files.create(file=("o.jsonl", lines.encode()), purpose="batch")
    workers.start()
    batch = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    wait_for(lambda: ProviderJob.objects.filter(batch_id=batch.id, state="submitted").exists(),
             what="submission", workers=workers)
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at
    assert AuditEvent.objects.filter(action="batch_cancelled", target_id=batch.id).count() == 1
    done = wait_for(lambda: (b := client.batches.retrieve(batch.id)).status == "cancelled" and b,
                    what="cancelled", workers=workers)
    assert done.cancelled_at and done.request_counts.total == 3
    # The provider had answered them before the cancel: kept, and charged at the batch price.
    assert done.request_counts.completed == 3
    assert InferenceEvent.objects.filter(request_id__startswith=batch.id).count() == 3
    fake_upstream.config.batch_delay_s = 0


def test_each_finished_item_settles_its_share_while_the_batch_runs(workers, live_tenant,
                                                                    fake_upstream,
                                                                    same_utc_day) -> None:
    """The Cohere items (run by the worker) finish while the OpenAI ones wait on the provider:
    their cost is charged and their worst case leaves the hold before the batch ends."""
    fake_upstream.config.batch_delay_s = 600
    client = client_for(workers.url, live_tenant.infer.raw)
    lines = "\n".join(batch_line(f"{p}{i}", model, f"share {p} {i}", cache="no-store")
                      for p, model in (("o", "gpt-4o-mini"), ("c", "command-r-08-2024"))
                      for i in range(2))
    f = client.files.create(file=("s.jsonl", lines.encode()), purpose="batch")
    workers.start()
    batch = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    items = BatchItem.objects.filter(batch_id=batch.id)
    cohere = items.filter(custom_id__startswith="c")
    wait_for(lambda: cohere.filter(budget_settled=True).count() == 2,
             what="the worker-run items to settle", workers=workers)
    held = Batch.objects.get(pk=batch.id).reserved_usd
    spent, reserved = _spend(str(live_tenant.org.id))
    assert items.filter(custom_id__startswith="o", state=ItemState.SUBMITTED).count() == 2
    assert spent == pricing.to_nano(cohere.aggregate(s=Sum("cost_usd"))["s"]) > 0
    assert reserved == pricing.to_nano(held - cohere.aggregate(s=Sum("reserved_usd"))["s"]) > 0

    client.batches.cancel(batch.id)
    wait_for(lambda: client.batches.retrieve(batch.id).status == "cancelled", what="cancelled",
             workers=workers)
    spent, reserved = _spend(str(live_tenant.org.id))
    total = InferenceEvent.objects.filter(request_id__startswith=batch.id).aggregate(
        s=Sum("cost_usd"))["s"]
    assert reserved == 0 and spent == pricing.to_nano(total)
