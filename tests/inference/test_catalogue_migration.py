"""`migrate` alone leaves the model catalogue seeded: no `seed_models` step before the first call.

The shared test database cannot show it (transactional tests truncate every table, the catalogue
included), so the first test builds a fresh database with `manage.py migrate` and calls the gateway
in a process of its own, as a deployment following Django's usual path would.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from django.conf import settings

from asahi_project.embedded import database_url
from inference.catalogue import MODELS, seed_catalogue
from inference.models import ModelEndpoint

_FIRST_CALL = """
import json
import django
django.setup()
from django.test import Client
from governance.services import api_key_issue, organization_create
from inference.models import ModelEndpoint

names = sorted(ModelEndpoint.objects.values_list("name", flat=True))
org = organization_create(name="fresh-deploy", actor="test")
key = api_key_issue(organization=org, actor="test", scopes=["infer"]).raw
r = Client().post("/v1/chat/completions", {
    "model": "gpt-4o-mini", "cache": "no-store",
    "messages": [{"role": "user", "content": "hello"}]},
    content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")
print(json.dumps({"names": names, "status": r.status_code, "body": r.content.decode()}))
"""


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """An empty database on the test server; yields its DATABASE_URL."""
    db = settings.DATABASES["default"]
    name = f"asahi_fresh_{uuid.uuid4().hex[:12]}"
    admin = {"host": db["HOST"], "user": db["USER"], "dbname": "postgres", "autocommit": True}
    if db["PORT"]:
        admin["port"] = db["PORT"]
    with psycopg.connect(**admin) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url({**db, "NAME": name})
    finally:
        with psycopg.connect(**admin) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.redis
def test_a_fresh_database_after_migrate_alone_serves_gpt_4o_mini(
        fresh_database: str, upstream_env) -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "asahi_project.settings",
           "DATABASE_URL": fresh_database}
    run = {"cwd": settings.BASE_DIR, "env": env, "capture_output": True, "text": True,
           "timeout": 300}
    migrate = subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], **run)
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    first = subprocess.run([sys.executable, "-c", _FIRST_CALL], **run)
    assert first.returncode == 0, first.stderr[-3000:]
    result = json.loads(first.stdout.strip().splitlines()[-1])
    assert result["names"] == sorted(m.name for m in MODELS)
    assert result["status"] == 200, result["body"]
    assert json.loads(result["body"])["model"] == "gpt-4o-mini"


@pytest.mark.django_db
def test_the_data_migration_and_seed_models_are_idempotent_on_each_other() -> None:
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    migration = importlib.import_module("inference.migrations.0006_seed_catalogue")
    historical = MigrationLoader(connection).project_state(("inference", "0006_seed_catalogue"))
    seed_catalogue()  # what the migration left, whatever earlier tests truncated
    before = list(ModelEndpoint.objects.order_by("name").values())
    migration.seed(historical.apps, None)  # the migration again, on its historical models
    assert seed_catalogue() == {"created": 0, "updated": 0, "total": len(MODELS)}
    assert list(ModelEndpoint.objects.order_by("name").values()) == before
