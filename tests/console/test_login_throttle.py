"""Failed logins are counted in Redis per username and per client address, for the console login
and the Django admin login alike; past the limit even the right password is refused until the
window ends."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from django.contrib.auth import get_user_model
from django.test import Client

from governance import login_throttle
from tests.console.conftest import PASSWORD, ConsoleOrg

pytestmark = [pytest.mark.django_db, pytest.mark.redis]


@pytest.fixture(autouse=True)
def _clean_counters(settings: Any) -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter("asahi:login:fail:*"):
        client.delete(key)
    client.close()


def _login(username: str, password: str, ip: str = "10.0.0.1", path: str = "/login/",
           **extra: Any) -> tuple[Client, Any]:
    client = Client(REMOTE_ADDR=ip)
    return client, client.post(path, {"username": username, "password": password}, **extra)


def _logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_a_username_is_locked_after_five_failures(org_a: ConsoleOrg) -> None:
    for i in range(5):
        # From different addresses: the username's own counter is what locks it.
        _, response = _login("owner@acme.test", "wrong", ip=f"10.0.1.{i}")
        assert response.status_code == 200 and "correct username" in response.content.decode()
    client, response = _login("owner@acme.test", PASSWORD, ip="10.0.2.1")
    assert response.status_code == 429
    assert "Too many failed logins. Try again in 15 minutes." in response.content.decode()
    assert not _logged_in(client)
    # The same spelled differently is the same account.
    _, response = _login("OWNER@acme.test", PASSWORD, ip="10.0.2.2")
    assert response.status_code == 429
    # Other accounts are not affected.
    client, response = _login("admin@acme.test", PASSWORD, ip="10.0.2.1")
    assert response.status_code == 302 and _logged_in(client)


def test_an_address_is_locked_after_its_limit_across_usernames(org_a: ConsoleOrg,
                                                               settings: Any) -> None:
    settings.ASAHI_LOGIN_FAILURES_PER_IP = 3
    for name in ("a@x.test", "b@x.test", "c@x.test"):
        # X-Forwarded-For is not trusted unless configured: it cannot dodge the address counter.
        _login(name, "wrong", ip="10.0.3.1", HTTP_X_FORWARDED_FOR=f"192.0.2.{len(name)}")
    client, response = _login("member@acme.test", PASSWORD, ip="10.0.3.1")
    assert response.status_code == 429 and not _logged_in(client)
    client, response = _login("member@acme.test", PASSWORD, ip="10.0.3.2")
    assert response.status_code == 302 and _logged_in(client)


def test_a_successful_login_clears_the_usernames_count(org_a: ConsoleOrg) -> None:
    for _ in range(4):
        _login("viewer@acme.test", "wrong")
    client, response = _login("viewer@acme.test", PASSWORD)
    assert response.status_code == 302
    for _ in range(4):
        _login("viewer@acme.test", "wrong")
    client, response = _login("viewer@acme.test", PASSWORD)
    assert response.status_code == 302 and _logged_in(client)


def test_the_lock_ends_with_the_window(org_a: ConsoleOrg, settings: Any) -> None:
    settings.ASAHI_LOGIN_WINDOW_SECONDS = 1
    for _ in range(5):
        _login("member@acme.test", "wrong")
    assert _login("member@acme.test", PASSWORD)[1].status_code == 429
    time.sleep(1.2)
    client, response = _login("member@acme.test", PASSWORD)
    assert response.status_code == 302 and _logged_in(client)


def test_the_admin_login_is_throttled_too(db: None) -> None:
    get_user_model().objects.create_user("ops", password=PASSWORD, is_staff=True)
    for _ in range(5):
        _, response = _login("ops", "wrong", path="/admin/login/")
        assert response.status_code == 200
    client, response = _login("ops", PASSWORD, path="/admin/login/")
    assert "Too many failed logins" in response.content.decode()
    assert not _logged_in(client)
    # Below the limit the admin login works as before (staff only).
    client, response = _login("ops2", "wrong", path="/admin/login/")
    get_user_model().objects.create_user("ops2", password=PASSWORD, is_staff=True)
    client, response = _login("ops2", PASSWORD, path="/admin/login/")
    assert response.status_code == 302 and _logged_in(client)


def test_logins_are_refused_while_redis_is_unreachable(org_a: ConsoleOrg,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # A real client pointed at a port nothing listens on.
    monkeypatch.setattr(login_throttle, "_client",
                        redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2))
    client, response = _login("owner@acme.test", PASSWORD)
    assert response.status_code == 503 and not _logged_in(client)
    assert "unavailable right now" in response.content.decode()
