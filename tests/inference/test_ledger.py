"""The ledger writer: a row that cannot be written never holds back the rows after it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from governance.models import AuditEvent
from inference.ledger import AuditRow, LedgerRow, ledger
from inference.models import InferenceEvent, InferencePayload

pytestmark = pytest.mark.django_db(transaction=True)


def _row(org_id: uuid.UUID, request_id: str, **fields: Any) -> LedgerRow:
    return LedgerRow(request_id=request_id, organization_id=org_id, api_key_id=None,
                     endpoint="chat", model="gpt-4o-mini", provider="openai", **fields)


def _counted(kind: str) -> float:
    return REGISTRY.get_sample_value("asahi_ledger_dead_letters_total", {"kind": kind}) or 0.0


def _health_ledger(client: Client) -> dict[str, Any]:
    return client.get("/health").json()["components"].get("ledger", {})


def test_a_poisoned_buffer_writes_the_good_rows_and_sets_the_bad_ones_aside(
        client: Client, settings, tenant, outsider) -> None:
    acme, globex = tenant.org.id, outsider.org.id
    counted = {kind: _counted(kind) for kind in ("event", "payload", "audit")}
    dead_before = _health_ledger(client).get("dead_letters", 0)

    # Bad rows between good ones, from two organizations: the cases of issue 16 (a non-numeric
    # temperature, a NUL byte in a text) plus an audit row with a NUL and one whose details are
    # not JSON.
    ledger.append(_row(acme, "good-acme-1", prompt="hello", response="hi"))
    ledger.append(_row(acme, "bad-temperature", temperature={}))
    ledger.append(_row(globex, "good-globex-1"))
    ledger.append(_row(acme, "bad-nul-prompt", prompt="before\x00after", response="ok"))
    ledger.append(_row(acme, "good-acme-2", prompt="again", response="yes"))
    ledger.append(_row(globex, "bad-nul-user", user="a\x00b"))
    ledger.append(_row(globex, "good-globex-2"))
    ledger.audit(AuditRow(action="request_denied", actor="key:ok", organization_id=acme,
                          request_id="audit-good"))
    ledger.audit(AuditRow(action="request_denied", actor="key:\x00", organization_id=acme,
                          request_id="audit-bad-nul"))
    ledger.audit(AuditRow(action="request_denied", actor="key:x", organization_id=globex,
                          request_id="audit-bad-json", details={"seen": {1, 2}}))
    ledger.flush()

    assert set(InferenceEvent.objects.values_list("request_id", "organization_id")) == {
        ("good-acme-1", acme), ("good-globex-1", globex), ("good-acme-2", acme),
        ("good-globex-2", globex),
        ("bad-nul-prompt", acme),  # its cost is in the ledger; only the stored prompt is not
    }
    assert set(InferencePayload.objects.values_list("request_id", flat=True)) == {
        "good-acme-1", "good-acme-2"}
    assert list(AuditEvent.objects.filter(action="request_denied")
                .values_list("request_id", flat=True)) == ["audit-good"]
    assert ledger.pending() == 0

    from inference.models import LedgerDeadLetter

    letters = {d.request_id: d for d in LedgerDeadLetter.objects.all()}
    assert {(rid, d.kind, d.organization_id) for rid, d in letters.items()} == {
        ("bad-temperature", "event", acme), ("bad-nul-prompt", "payload", acme),
        ("bad-nul-user", "event", globex), ("audit-bad-nul", "audit", acme),
        ("audit-bad-json", "audit", globex),
    }
    assert "expected a number but got {}" in letters["bad-temperature"].error
    assert "NUL" in letters["bad-nul-prompt"].error and "NUL" in letters["bad-nul-user"].error
    assert "not JSON serializable" in letters["audit-bad-json"].error
    # The row as JSON, with what jsonb cannot hold made safe; no prompt text (retention).
    temperature = letters["bad-temperature"].row
    assert temperature["temperature"] == {} and temperature["cost_usd"] == "0"
    assert temperature["organization_id"] == str(acme) and temperature["prompt_chars"] is None
    assert letters["bad-nul-user"].row["user"] == "a\\x00b"
    assert letters["bad-nul-prompt"].row["prompt_chars"] == 12
    assert "prompt" not in letters["bad-nul-prompt"].row
    assert letters["audit-bad-json"].row["details"] == {"seen": [1, 2]}

    assert {kind: _counted(kind) - counted[kind] for kind in counted} == {
        "event": 2, "payload": 1, "audit": 2}
    health = _health_ledger(client)
    assert health["dead_letters"] - dead_before == 5
    assert health["status"] == "ok" and health["pending"] == 0
    assert health["last_error"]["kind"] == "row"
    settings.ASAHI_METRICS_SCRAPE_TOKEN = "scrape-secret"
    text = client.get("/analytics/prometheus",
                      HTTP_AUTHORIZATION="Bearer scrape-secret").content.decode()
    exposed = {s.labels["kind"]: s.value for f in text_string_to_metric_families(text)
               if f.name == "asahi_ledger_dead_letters" for s in f.samples
               if s.name.endswith("_total")}
    assert exposed["event"] >= 2 and exposed["payload"] >= 1 and exposed["audit"] >= 2

    # The bad rows are gone from the buffer: the next flush writes the next row and nothing else.
    ledger.append(_row(globex, "good-globex-3"))
    ledger.flush()
    assert InferenceEvent.objects.filter(request_id="good-globex-3").exists()
    assert LedgerDeadLetter.objects.count() == 5
    assert _counted("event") - counted["event"] == 2


def test_feedback_answers_normally_with_a_poisoned_buffer(client: Client, tenant) -> None:
    org = tenant.org.id
    ledger.append(_row(org, "poison-temperature", temperature={}))
    ledger.append(_row(org, "rated", task_type="chat"))
    ledger.append(_row(org, "poison-nul", user="\x00"))
    response = client.post("/feedback", {"request_id": "rated", "thumbs": "up"},
                           content_type="application/json", **tenant.headers("infer"))
    assert response.status_code == 201, response.content
    body = response.json()
    assert {k: body[k] for k in ("request_id", "model", "rating", "task_type")} == {
        "request_id": "rated", "model": "gpt-4o-mini", "rating": 5, "task_type": "chat"}
    assert ledger.pending() == 0


def test_dead_letters_are_shown_read_only_in_the_admin(client: Client, tenant) -> None:
    ledger.append(_row(tenant.org.id, "bad-for-admin", temperature=[]))
    ledger.flush()
    from inference.models import LedgerDeadLetter

    letter = LedgerDeadLetter.objects.get(request_id="bad-for-admin")
    client.force_login(get_user_model().objects.create_superuser("op", "op@example.com", "pw"))
    listing = client.get("/admin/inference/ledgerdeadletter/")
    assert listing.status_code == 200 and b"bad-for-admin" in listing.content
    detail = client.get(f"/admin/inference/ledgerdeadletter/{letter.pk}/change/")
    assert detail.status_code == 200 and b"expected a number" in detail.content
    assert b'type="submit"' not in detail.content.split(b'id="content-main"')[1]  # nothing to save
    assert client.get("/admin/inference/ledgerdeadletter/add/").status_code == 403


_UNREACHABLE = """
import json, time, uuid
import django
django.setup()
from django.test import Client
from inference.ledger import LedgerRow, ledger

org = uuid.uuid4()
with ledger._flush_lock:  # the writer thread must not take a batch before all five are in
    for i in range(5):  # the cap is 3: two are dropped
        ledger.append(LedgerRow(request_id=f"r{i}", organization_id=org, api_key_id=None,
                                endpoint="chat"))
try:
    ledger.flush()
    raised = None
except Exception as exc:
    raised = type(exc).__name__
cpu = time.process_time()
time.sleep(3.5)  # the writer thread retries in the background, with backoff
print(json.dumps({"raised": raised, "pending": ledger.pending(), "cpu": time.process_time() - cpu,
                  "health": Client().get("/health").json()["components"]["ledger"]}))
"""


def test_an_unreachable_database_keeps_rows_buffered_within_the_cap() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "asahi_project.settings",
           "DATABASE_URL": "postgresql://nobody:x@127.0.0.1:1/none", "DB_CONNECT_TIMEOUT": "1",
           "ASAHI_LEDGER_MAX_PENDING": "3", "ASAHI_LEDGER_BATCH": "3",
           "ASAHI_LEDGER_FLUSH_SECONDS": "0.05",
           # The in-memory buffer alone (the disk spool in front of it: test_ledger_spool).
           "ASAHI_LEDGER_SPOOL_MAX_MB": "0",
           "ASAHI_LOG_JSON": "true"}
    out = subprocess.run([sys.executable, "-c", _UNREACHABLE], cwd=django_settings.BASE_DIR,
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["raised"] == "OperationalError"
    assert result["pending"] == 3  # kept for the retry, not dead-lettered
    health = result["health"]
    assert health["status"] == "down" and health["pending"] == 3
    assert health["dead_letters"] == 0 and health["dropped"] == 2 and health["written"] == 0
    assert health["last_error"]["kind"] == "database"
    assert health["last_error"]["type"] == "OperationalError"
    # Backoff (1 s, 2 s, ...): a handful of attempts in 3.5 s, not a spin.
    assert 2 <= out.stderr.count("ledger_database_unavailable") <= 4, out.stderr[-3000:]
    assert result["cpu"] < 0.5
    assert out.stderr.count("ledger_buffer_full_dropping_rows") == 1
