"""/health reports every component; it answers 503 when the database is down."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.test import Client


@pytest.mark.django_db
def test_health_ok(client: Client) -> None:
    body = client.get("/health").json()
    assert body["status"] in ("ok", "degraded")
    assert body["components"]["database"] == {"status": "ok", "pgvector": "0.6.2"}
    assert {"redis", "broker", "providers", "ledger"} <= set(body["components"])
    ledger = body["components"]["ledger"]
    assert set(ledger) == {"status", "pending", "written", "dead_letters", "dropped", "spool",
                           "last_error"}
    assert ledger["status"] == "ok"
    assert body["version"] and body["uptime_seconds"] >= 0


def test_health_is_503_when_the_database_is_down() -> None:
    script = ("import django, json; django.setup(); from django.test import Client; "
              "r = Client().get('/health'); print(r.status_code); print(r.content.decode())")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "asahi_project.settings",
           "DATABASE_URL": "postgresql://nobody:x@127.0.0.1:1/none", "DB_CONNECT_TIMEOUT": "1"}
    out = subprocess.run([sys.executable, "-c", script], cwd=settings.BASE_DIR, env=env,
                         capture_output=True, text=True, timeout=60)
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "503", out.stdout + out.stderr
    body = json.loads(lines[1])
    assert body["status"] == "down" and body["components"]["database"]["status"] == "down"
