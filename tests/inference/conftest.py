"""A real Asahi server (uvicorn, in a thread) in front of the fake upstream, for SDK-level tests."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.fakeup import fake_upstream  # noqa: F401  (fixture)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def upstream_env(fake_upstream):  # noqa: F811
    values = {
        "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": fake_upstream.openai_base_url,
        "ANTHROPIC_API_KEY": "sk-ant-test", "ANTHROPIC_BASE_URL": fake_upstream.anthropic_base_url,
        "COHERE_API_KEY": "co-test", "CO_API_URL": fake_upstream.cohere_base_url,
    }
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    yield fake_upstream
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def asahi_url(upstream_env, django_db_setup, django_db_blocker) -> Iterator[str]:
    import uvicorn

    from asahi_project.asgi import application

    port = _free_port()
    # proxy_headers=False as every launch of Asahi does (./asahi, Dockerfile, compose): client
    # addresses are Asahi's decision (asahi_project.client_ip), not the server's.
    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=port,
                                           proxy_headers=False,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    with django_db_blocker.unblock():
        thread.start()
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
        server.should_exit = True
        thread.join(timeout=5)
        # Worker threads of the server may still hold connections to the test database.
        from django.db import connection

        with connection.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                        "datname = current_database() AND pid <> pg_backend_pid()")


def reset_breakers() -> None:
    """Circuit state is shared through Redis (by design); each test starts with closed circuits."""
    from asahi_project.redis_client import get_sync_redis
    from governance import enforcement
    from governance.limits.keys import PREFIX

    redis = get_sync_redis()
    for key in redis.scan_iter(f"{PREFIX}:cb:*", count=1000):
        redis.delete(key)
    for _limits, breaker in list(enforcement._per_loop.values()):
        breaker.inner._seen.clear()


@pytest.fixture
def gateway(asahi_url, transactional_db, catalogue):
    """The live server plus a fresh catalogue snapshot; yields the base URL."""
    from inference.ledger import ledger
    from inference.selectors import invalidate_catalogue

    invalidate_catalogue()
    reset_breakers()
    yield asahi_url
    # Background writes of the server (semantic-cache inserts) must finish before the test
    # database is truncated, or TRUNCATE and the insert's foreign-key lock deadlock.
    from caching.bridge import store_writer

    store_writer.wait(timeout=10)
    ledger.flush()
    invalidate_catalogue()


@pytest.fixture
def live_tenant(gateway):
    from tests.conftest import make_tenant

    return make_tenant("live-acme")


def client_for(base_url: str, key: str, **kw):
    import openai

    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0, **kw)
