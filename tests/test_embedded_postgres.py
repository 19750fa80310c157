"""The embedded PostgreSQL is sized for the semantic cache, once, when its data directory is new."""

from __future__ import annotations

import pytest
from django.db import connection

from asahi_project import embedded


def test_memory_settings_scale_with_ram_and_honour_the_override(monkeypatch) -> None:
    monkeypatch.delenv("ASAHI_PG_SHARED_BUFFERS", raising=False)
    values = embedded._memory_settings()
    shared_mb = int(values["shared_buffers"].removesuffix("MB"))
    assert 128 <= shared_mb <= 4096
    assert set(values) == {"shared_buffers", "effective_cache_size", "maintenance_work_mem",
                           "work_mem"}
    monkeypatch.setenv("ASAHI_PG_SHARED_BUFFERS", "256MB")
    assert embedded._memory_settings()["shared_buffers"] == "256MB"


@pytest.mark.django_db
def test_embedded_server_runs_with_the_tuned_settings() -> None:
    pgdata = embedded.DATA_DIR / "pg"
    if str(connection.settings_dict["HOST"]) != str(pgdata):
        pytest.skip("DATABASE_URL points at an external server")
    conf = (pgdata / "postgresql.conf").read_text()
    assert conf.count(embedded._TUNING_MARK) == 1  # written once, not on every start
    with connection.cursor() as cur:
        cur.execute("SELECT setting::bigint * 8192 FROM pg_settings WHERE name = 'shared_buffers'")
        shared_bytes = cur.fetchone()[0]
    assert shared_bytes > 128 * 2**20  # above initdb's default: the restart took effect
