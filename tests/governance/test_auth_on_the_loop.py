"""The API's async views authenticate from the process's key cache on the event loop and load a
key from PostgreSQL only off the loop. The soak found a race: the view checked the cache, then
`authenticate_key` looked again and found the entry gone (expired, or cleared by the revocation
watcher), and queried from the loop: SynchronousOnlyOperation, a 500."""

from __future__ import annotations

import asyncio
import threading

import pytest
from django.test import RequestFactory

from asahi_project.errors import AuthenticationFailed
from governance.selectors import auth_cache, authenticate_cached, authenticate_key
from inference.api import authenticate
from tests.conftest import make_tenant

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_the_cache_only_check_never_queries_and_verifies_the_secret() -> None:
    tenant = make_tenant("loop auth")
    raw = tenant.infer.raw

    async def on_the_loop() -> tuple[object, object]:
        # Not cached: None, with no query (a query here would raise SynchronousOnlyOperation).
        missing = authenticate_cached(raw)
        for _ in range(100):
            await asyncio.to_thread(authenticate_key, raw)  # loads and caches, off the loop
            # Issuing the key moved the revocation stamp; the watcher may clear the entry once
            # it notices, so load again until it stays.
            if (ctx := authenticate_cached(raw)) is not None:
                return missing, ctx
            await asyncio.sleep(0.05)
        return missing, None

    missing, ctx = asyncio.run(on_the_loop())
    assert missing is None
    assert ctx is not None and ctx.key_id == tenant.infer.key.pk  # type: ignore[attr-defined]
    with pytest.raises(AuthenticationFailed):
        authenticate_cached(raw[:-3] + "xyz")  # cached prefix, wrong secret: 401, not a pass


def test_entries_vanishing_under_the_view_never_query_from_the_loop() -> None:
    tenant = make_tenant("loop race")
    raw = tenant.infer.raw
    request = RequestFactory().post("/infer", HTTP_AUTHORIZATION=f"Bearer {raw}")
    stop = threading.Event()

    def watcher() -> None:  # what the revocation watcher does when the stamp moves
        while not stop.is_set():
            auth_cache.clear()

    async def many() -> None:
        for _ in range(3000):
            ctx = await authenticate(request, "infer")
            assert ctx.key_id == tenant.infer.key.pk

    clearer = threading.Thread(target=watcher, daemon=True)
    clearer.start()
    try:
        asyncio.run(many())
    finally:
        stop.set()
        clearer.join()
