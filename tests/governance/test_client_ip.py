"""Client addresses come from the socket; X-Forwarded-For counts only from a trusted proxy."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator

import pytest
from django.test import Client, RequestFactory

from asahi_project.client_ip import client_ip
from governance.models import AuditEvent

pytestmark = pytest.mark.django_db


def nets(*items: str) -> list:
    return [ipaddress.ip_network(i) for i in items]


def ip_of(settings, remote: str, xff: str | None = None, *, trust_all: bool = False,
          proxies: tuple[str, ...] = ()) -> str | None:
    settings.TRUST_X_FORWARDED_FOR = trust_all
    settings.ASAHI_TRUSTED_PROXIES = nets(*proxies)
    extra = {"REMOTE_ADDR": remote}
    if xff is not None:
        extra["HTTP_X_FORWARDED_FOR"] = xff
    return client_ip(RequestFactory().get("/", **extra))


def test_socket_address_by_default(settings) -> None:
    assert ip_of(settings, "203.0.113.9", "1.2.3.4") == "203.0.113.9"
    assert ip_of(settings, "2001:db8::1", "1.2.3.4") == "2001:db8::1"
    assert ip_of(settings, "") is None  # a Unix socket has no address


def test_trusted_proxy_takes_the_right_most_untrusted_hop(settings) -> None:
    proxies = ("10.0.0.0/8", "192.0.2.7")
    # The client may prepend anything; only what our proxies appended counts.
    assert ip_of(settings, "10.1.2.3", "6.6.6.6, 198.51.100.4, 192.0.2.7",
                 proxies=proxies) == "198.51.100.4"
    assert ip_of(settings, "10.1.2.3", "198.51.100.4", proxies=proxies) == "198.51.100.4"
    # A peer that is not a trusted proxy: its header is ignored.
    assert ip_of(settings, "203.0.113.9", "198.51.100.4", proxies=proxies) == "203.0.113.9"
    # Garbage where an address should be: stop at the last hop a trusted proxy vouched for.
    assert ip_of(settings, "10.1.2.3", "198.51.100.4, not-an-ip", proxies=proxies) == "10.1.2.3"
    assert ip_of(settings, "10.1.2.3", "", proxies=proxies) == "10.1.2.3"


def test_trust_x_forwarded_for_trusts_the_peer(settings) -> None:
    assert ip_of(settings, "127.0.0.1", "6.6.6.6, 198.51.100.4", trust_all=True) == "198.51.100.4"
    assert ip_of(settings, "127.0.0.1", None, trust_all=True) == "127.0.0.1"


def test_networks_setting_fails_loudly(monkeypatch) -> None:
    from asahi_project.env import ConfigError, env_networks

    monkeypatch.setenv("ASAHI_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.7 ,::1")
    assert [str(n) for n in env_networks("ASAHI_TRUSTED_PROXIES")] == [
        "10.0.0.0/8", "192.0.2.7/32", "::1/128"]
    monkeypatch.setenv("ASAHI_TRUSTED_PROXIES", "10.0.0.0/8,proxy.local")
    with pytest.raises(ConfigError, match="ASAHI_TRUSTED_PROXIES"):
        env_networks("ASAHI_TRUSTED_PROXIES")


@pytest.fixture
def signup_rate(settings) -> Iterator[str]:
    """A signup rate of 3/hour and a clean throttle cache."""
    from django.core.cache import cache
    from rest_framework.settings import api_settings
    from rest_framework.throttling import ScopedRateThrottle

    cache.clear()
    saved = ScopedRateThrottle.THROTTLE_RATES  # read once at import, so restored by hand
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"signup": "3/hour"}}
    api_settings.reload()
    ScopedRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
    yield "3/hour"
    cache.clear()
    ScopedRateThrottle.THROTTLE_RATES = saved


def signups(client: Client, n: int) -> list[int]:
    return [client.post("/signup", data=json.dumps({"org_name": f"Flood {i}", "user_id": f"f{i}"}),
                        content_type="application/json",
                        HTTP_X_FORWARDED_FOR=f"198.51.100.{i + 1}").status_code
            for i in range(n)]


def test_rotating_forwarded_for_flood_is_throttled(client: Client, settings, signup_rate) -> None:
    settings.TRUST_X_FORWARDED_FOR = False
    settings.ASAHI_TRUSTED_PROXIES = []
    assert signups(client, 8) == [201] * 3 + [429] * 5
    # Audited under the socket's address, not the header's.
    ips = set(AuditEvent.objects.filter(action="organization_created").values_list("ip",
                                                                                   flat=True))
    assert ips == {"127.0.0.1"}


def test_a_trusted_proxy_s_header_is_honoured(client: Client, settings, signup_rate) -> None:
    settings.TRUST_X_FORWARDED_FOR = False
    settings.ASAHI_TRUSTED_PROXIES = nets("127.0.0.0/8")
    assert signups(client, 5) == [201] * 5  # five clients behind one proxy, one signup each
    ips = set(AuditEvent.objects.filter(action="organization_created").values_list("ip",
                                                                                   flat=True))
    assert ips == {f"198.51.100.{i}" for i in range(1, 6)}
