"""Security mitigations of docs/security.md: SSRF through alert webhooks, key comparison.

Webhook URLs that reach the gateway's own network are refused when saved (the API answers 400 in
the error shape) and again when the alert is sent (the name is resolved then: a URL saved before,
or a name that points elsewhere since, is not called). The operator may allow a network.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.test import Client

from analytics.services import post_webhook
from asahi_project.netguard import UnsafeURL, resolve_public
from governance.models import ApiKey, AuditEvent, Policy
from governance.selectors import authenticate_key

pytestmark = pytest.mark.django_db


class _Receiver(BaseHTTPRequestHandler):
    hits: list[dict[str, str]] = []

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.hits.append({"host": self.headers["Host"], "path": self.path})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[int]:
    """A webhook receiver on loopback: what an attacker would point the gateway at."""
    _Receiver.hits = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()


def _set_webhook(client: Client, tenant, url: str):  # type: ignore[no-untyped-def]
    return client.post(f"/governance/policies/{tenant.org.pk}",
                       data=json.dumps({"alert_webhook_url": url}),
                       content_type="application/json", **tenant.headers("admin"))


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8000/hook",            # loopback
    "http://localhost/hook",                  # a name resolving to loopback
    "http://10.0.0.5/hook",                   # private
    "http://192.168.1.1/hook",
    "http://172.16.0.1/hook",
    "http://169.254.169.254/latest/meta-data/",  # link-local: cloud metadata
    "http://100.64.0.1/hook",                 # carrier-grade NAT
    "http://0.0.0.0/hook",                    # unspecified
    "http://[::1]/hook",                      # IPv6 loopback
    "http://[fe80::1]/hook",                  # IPv6 link-local
    "http://[fd00::1]/hook",                  # IPv6 unique local
    "http://[::ffff:127.0.0.1]/hook",         # IPv4-mapped loopback
    "http://user:pw@93.184.216.34/hook",      # credentials in the URL
])
def test_webhook_urls_to_the_gateways_network_are_refused_when_saved(client: Client, tenant,
                                                                     url: str) -> None:
    audits = AuditEvent.objects.filter(action="policy_updated").count()
    r = _set_webhook(client, tenant, url)
    assert r.status_code == 400, r.content
    body = r.json()
    assert body["error"]["param"] == "alert_webhook_url" and body["request_id"]
    assert body["error"]["code"] == "unsafe_url"
    assert Policy.objects.get(organization=tenant.org).alert_webhook_url == ""
    assert AuditEvent.objects.filter(action="policy_updated").count() == audits


@pytest.mark.parametrize("url", ["http://2130706433/", "http://0x7f.1/", "http://017700000001/",
                                 "ftp://93.184.216.34/", "http:///nohost"])
def test_other_spellings_of_loopback_and_other_schemes_are_refused(url: str) -> None:
    # The API's URL field rejects some of these first; the guard must refuse them on its own.
    with pytest.raises(UnsafeURL):
        resolve_public(url)


def test_a_public_webhook_address_is_accepted(client: Client, tenant) -> None:
    r = _set_webhook(client, tenant, "https://93.184.216.34/hook")  # a literal: no DNS needed
    assert r.status_code == 200, r.content
    assert r.json()["alert_webhook_url"] == "https://93.184.216.34/hook"


def test_the_webhook_is_checked_again_when_sent(receiver: int, caplog) -> None:
    # Saved before the check existed, or its name resolves elsewhere now: resolved at send time.
    with caplog.at_level(logging.WARNING, logger="asahi.alerts"):
        assert post_webhook(url=f"http://localhost:{receiver}/hook", payload={"x": 1}) is None
    assert _Receiver.hits == []
    assert "alert_webhook_refused" in [r.getMessage() for r in caplog.records]


def test_the_operator_may_allow_an_internal_receiver(client: Client, tenant, receiver: int,
                                                     settings) -> None:
    settings.ASAHI_OUTBOUND_ALLOWED_NETWORKS = [ipaddress.ip_network("127.0.0.0/8")]
    url = f"http://localhost:{receiver}/hook"
    assert _set_webhook(client, tenant, url).status_code == 200
    assert post_webhook(url=url, payload={"x": 1}) == 204
    # Sent to the address that was checked, with the name the tenant gave as Host.
    assert _Receiver.hits == [{"host": f"localhost:{receiver}", "path": "/hook"}]


def test_api_keys_are_stored_hashed_and_compared_in_constant_time(tenant, monkeypatch) -> None:
    raw = tenant.infer.raw
    stored = ApiKey.objects.get(pk=tenant.infer.key.pk)
    assert stored.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in json.dumps(list(ApiKey.objects.filter(pk=stored.pk).values())[0],
                                 default=str)
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a, b):  # type: ignore[no-untyped-def]
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("governance.keys.hmac.compare_digest", spy)
    assert authenticate_key(raw).key_id == stored.pk
    # Same prefix, wrong secret: refused, through the same constant-time comparison of hashes.
    forged = raw[:-4] + ("AAAA" if not raw.endswith("AAAA") else "BBBB")
    from asahi_project.errors import AuthenticationFailed

    with pytest.raises(AuthenticationFailed):
        authenticate_key(forged)
    assert calls == [(hashlib.sha256(raw.encode()).hexdigest(), stored.key_hash),
                     (hashlib.sha256(forged.encode()).hexdigest(), stored.key_hash)]


def test_log_lines_cannot_be_forged_through_logged_values() -> None:
    from asahi_project.logging import JsonFormatter

    record = logging.makeLogRecord({
        "name": "asahi.test", "levelname": "WARNING", "msg": "auth_failure",
        "key_prefix": 'ask_x\n{"level":"INFO","event":"admin_login_ok"}', "path": "/v1\r\nX: y"})
    line = JsonFormatter().format(record)
    assert "\n" not in line and "\r" not in line  # one record, one line
    parsed = json.loads(line)
    assert parsed["event"] == "auth_failure" and parsed["level"] == "WARNING"
    assert parsed["key_prefix"].startswith("ask_x\n")  # kept as data, escaped in the line


def test_a_forged_request_id_is_replaced(client: Client) -> None:
    r = client.get("/health", HTTP_X_REQUEST_ID="abc\r\nSet-Cookie: x=1")
    assert r["X-Request-ID"].startswith("req_") and "\n" not in r["X-Request-ID"]
