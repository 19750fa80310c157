"""Webhooks of deferred /infer requests: SSRF checks and HMAC signatures.

The signature header (docs/batching.md): ``X-Asahi-Signature: t=<unix seconds>,v1=<hex>`` where
hex = HMAC-SHA256(secret, "<t>." + raw body). The secret is returned once, when the request is
accepted; Asahi keeps it encrypted.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import time
from urllib.parse import urlsplit

from django.conf import settings

from asahi_project.errors import InvalidRequest

SIGNATURE_HEADER = "X-Asahi-Signature"


def sign(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, body: bytes, header: str, *, tolerance_s: int = 300) -> bool:
    """What a receiver does (shown in docs/batching.md); used by the tests."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - t) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp=t).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def _forbidden(addr: str) -> bool:
    ip = ipaddress.ip_address(addr.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved
            or ip.is_multicast or ip.is_unspecified)


def check_webhook_url(url: str) -> None:
    """Refuse URLs that are not http(s) or that resolve to a private, loopback, link-local or
    otherwise internal address (SSRF), unless ASAHI_WEBHOOK_ALLOW_PRIVATE is set."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest("webhook_url must be an http(s) URL", param="webhook_url")
    if parts.username or parts.password:
        raise InvalidRequest("webhook_url must not contain credentials", param="webhook_url")
    if settings.ASAHI_WEBHOOK_ALLOW_PRIVATE:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise InvalidRequest(f"webhook_url host does not resolve: {parts.hostname}",
                             param="webhook_url", code="webhook_unresolvable") from exc
    if any(_forbidden(str(info[4][0])) for info in infos):
        raise InvalidRequest("webhook_url resolves to a private, loopback or link-local address; "
                             "an operator can allow that with ASAHI_WEBHOOK_ALLOW_PRIVATE",
                             param="webhook_url", code="webhook_forbidden_address")
