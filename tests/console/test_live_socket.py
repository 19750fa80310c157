"""The dashboard's websocket against the live ASGI server (uvicorn: origin check, session auth, the
consumer, the Redis channel layer), with a real websocket client: a user receives their own
organization's flushes and nothing else."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from analytics.live import publisher
from inference.ledger import LedgerRow, ledger
from tests.console.conftest import ConsoleOrg
from tests.fakeup import fake_upstream  # noqa: F401
from tests.inference.conftest import asahi_url, gateway, upstream_env  # noqa: F401

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def cookie_for(user) -> str:
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


def socket(base: str, cookie: str | None, origin: str | None = None) -> ClientConnection:
    headers = {"Origin": origin or base}
    if cookie:
        headers["Cookie"] = cookie
    return connect(base.replace("http://", "ws://") + "/ws/dashboard",
                   additional_headers=headers, open_timeout=5)


def flush(*orgs: ConsoleOrg) -> None:
    for i, o in enumerate(orgs):
        ledger.append(LedgerRow(request_id=f"ws-{o.org.pk.hex[:8]}-{i}", organization_id=o.org.pk,
                                api_key_id=None, endpoint="chat", model="gpt-4o-mini",
                                routing_reason="because", cost_usd=Decimal("0.002"),
                                latency_ms=5.0))
    ledger.flush()
    publisher.drain()


def test_each_user_hears_only_their_organization(gateway, org_a: ConsoleOrg,  # noqa: F811
                                                 org_b: ConsoleOrg) -> None:
    with socket(gateway, cookie_for(org_a.users["viewer"])) as ws_a, \
            socket(gateway, cookie_for(org_b.users["owner"])) as ws_b:
        flush(org_a)  # only A has traffic
        got_a = json.loads(ws_a.recv(timeout=3))
        with pytest.raises(TimeoutError):
            ws_b.recv(timeout=0.5)
    assert got_a["count"] == 1
    assert got_a["rows"][0]["request_id"].startswith(f"ws-{org_a.org.pk.hex[:8]}")
    assert got_a["rows"][0]["routing_reason"] == "because"


def test_no_session_no_feed(gateway) -> None:  # noqa: F811
    # Closed with an application code, so the page stops retrying and polls (and is sent to login).
    with socket(gateway, None) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=3)
    assert closed.value.rcvd.code == 4401


def test_a_user_without_an_organization_is_refused(gateway, org_a: ConsoleOrg) -> None:  # noqa: F811
    from django.contrib.auth import get_user_model

    loner = get_user_model().objects.create_user("loner", password="x")
    with socket(gateway, cookie_for(loner)) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=3)
    assert closed.value.rcvd.code == 4403


def test_another_sites_page_cannot_open_the_socket(gateway, org_a: ConsoleOrg) -> None:  # noqa: F811
    with pytest.raises(InvalidStatus) as refused:
        socket(gateway, cookie_for(org_a.users["owner"]), origin="https://evil.example")
    assert refused.value.response.status_code == 403
