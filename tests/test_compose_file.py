"""docker-compose.yml, read as Compose reads it (no Docker engine on the test machines): the
processes that share batch files and state get the same volumes and settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

COMPOSE = Path(__file__).resolve().parents[1] / "docker-compose.yml"


def _services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services


def test_web_and_worker_share_the_batch_files_volume() -> None:
    # Web writes uploaded batch input files, the worker writes output files, both read both.
    services = _services()
    for name in ("web", "worker"):
        assert "asahidata:/data" in services[name]["volumes"], name
        assert services[name]["environment"]["ASAHI_DATA_DIR"] == "/data", name


def test_every_asahi_process_talks_to_the_same_database_and_redis() -> None:
    services = _services()
    envs = [services[name]["environment"] for name in ("web", "worker", "beat")]
    assert len({(e["DATABASE_URL"], e["REDIS_URL"]) for e in envs}) == 1
    assert all(e["DJANGO_SECRET_KEY"] and e["ASAHI_ENCRYPTION_KEY"] for e in envs)
