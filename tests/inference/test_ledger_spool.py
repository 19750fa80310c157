"""The ledger's disk spool: bounded, reported when full, replayed in order, orphans included.

The entry point is the one a flush that cannot reach PostgreSQL uses (`_keep`); the database of
these tests is up, so what the spool holds is then written by a real flush. The outage itself,
end to end against a real server, is tests/inference/test_postgres_outage.py.
"""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db import OperationalError
from django.test import Client

from governance.models import AuditEvent
from inference import spool as spooling
from inference.ledger import AuditRow, LedgerBuffer, LedgerRow
from inference.models import InferenceEvent, InferencePayload

pytestmark = pytest.mark.django_db(transaction=True)


def _row(org_id: uuid.UUID, request_id: str, **fields: Any) -> LedgerRow:
    return LedgerRow(request_id=request_id, organization_id=org_id, api_key_id=None,
                     endpoint="chat", model="gpt-4o-mini", provider="openai", **fields)


def test_rows_round_trip_through_the_spool_format(tenant) -> None:
    row = _row(tenant.org.id, "r1", cost_usd=Decimal("0.000012345"), temperature=0.5,
               prompt="héllo\n", response="ok")
    audit = AuditRow(action="policy_updated", actor="key:x", organization_id=tenant.org.id,
                     details={"rpm_limit": [None, 5]})
    types = {"event": LedgerRow, "audit": AuditRow}
    assert spooling.decode(spooling.encode("event", row), types) == ("event", row)
    assert spooling.decode(spooling.encode("audit", audit), types) == ("audit", audit)


def test_a_full_spool_is_reported_and_everything_is_written_when_the_database_returns(
        client: Client, settings, tenant, tmp_path: Path, monkeypatch, caplog) -> None:
    settings.ASAHI_LEDGER_SPOOL_DIR = tmp_path
    settings.ASAHI_LEDGER_SPOOL_MAX_MB = 1
    buffer = LedgerBuffer()
    monkeypatch.setattr("inference.ledger.ledger", buffer)  # the one /health reads
    big = "x" * 300_000  # about 300 kB per spooled row: three fit in 1 MB
    rows = [_row(tenant.org.id, f"spool-{i}", prompt=big, response="r",
                 cost_usd=Decimal("0.001")) for i in range(5)]
    audits = [AuditRow(action="key_revoked", actor="test", organization_id=tenant.org.id,
                       request_id="spool-audit")]

    with caplog.at_level(logging.ERROR, logger="asahi.ledger"):
        buffer._keep(rows, audits, OperationalError("connection refused"))
    state = buffer.state()
    assert (state.spooled, state.pending, state.spool_full) == (3, 3, True)  # 2 rows + 1 audit
    assert state.dropped == 0  # what did not fit waits in memory
    assert "ledger_spool_full" in [r.getMessage() for r in caplog.records]
    health = client.get("/health").json()
    assert health["status"] == "degraded"
    ledger = health["components"]["ledger"]
    assert ledger["status"] == "full" and ledger["spool"]["full"] is True
    assert "spool is full" in ledger["detail"]

    assert buffer.flush() == 5
    assert list(InferenceEvent.objects.filter(organization=tenant.org).order_by("created_at")
                .values_list("request_id", flat=True)) == [f"spool-{i}" for i in range(5)]
    assert InferencePayload.objects.filter(organization_id=tenant.org.id).count() == 5
    assert AuditEvent.objects.filter(request_id="spool-audit").count() == 1
    state = buffer.state()
    assert (state.spooled, state.pending, state.spool_full, state.failures) == (0, 0, False, 0)
    assert client.get("/health").json()["components"]["ledger"]["status"] == "ok"


def test_the_spool_of_a_dead_process_is_replayed_by_another(settings, tenant,
                                                            tmp_path: Path) -> None:
    settings.ASAHI_LEDGER_SPOOL_DIR = tmp_path
    dead = spooling.Spool(tmp_path, 2**20)
    dead.write([spooling.encode("event", _row(tenant.org.id, f"orphan-{i}")) for i in range(3)]
               + [b'{"k":"event","r":{"request_id":"torn'])  # cut short by the crash
    dead._fh.close()  # the process is gone: its lock with it
    alive = spooling.Spool(tmp_path, 2**20)
    alive.write([spooling.encode("event", _row(tenant.org.id, "alive"))])

    buffer = LedgerBuffer()
    assert buffer.flush() == 3
    assert sorted(InferenceEvent.objects.filter(organization=tenant.org)
                  .values_list("request_id", flat=True)) == ["orphan-0", "orphan-1", "orphan-2"]
    # The dead process's file is gone; the living one's (still locked by it) is left alone.
    assert [p.name for p in tmp_path.glob("*.jsonl")] == [Path(alive._fh.name).name]
