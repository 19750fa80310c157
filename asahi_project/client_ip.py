"""The client's address: the socket's peer, unless that peer is a proxy Asahi was told to trust.

X-Forwarded-For is whatever the client wants it to be unless a proxy in front of Asahi wrote it, so
it is read only when ``TRUST_X_FORWARDED_FOR`` is set (every peer is the proxy) or the peer is in
``ASAHI_TRUSTED_PROXIES``. Then the header is read from the right, skipping trusted proxies, and
the first address that is not one of them is the client: entries further left were written by
the client itself and prove nothing.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _parse(value: Any) -> _Address | None:
    try:
        return ipaddress.ip_address(str(value).strip())
    except ValueError:
        return None


def _trusted(address: _Address) -> bool:
    return any(address in network for network in settings.ASAHI_TRUSTED_PROXIES)


def client_ip(request: Any) -> str | None:
    """The address to throttle and audit by; None when the peer's address is not an IP (a Unix
    socket, or no request)."""
    meta = getattr(request, "META", None) or {}
    peer = _parse(meta.get("REMOTE_ADDR"))
    if peer is None:
        return None
    if not (settings.TRUST_X_FORWARDED_FOR or _trusted(peer)):
        return str(peer)
    current = peer
    hops = [h for h in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    for hop in reversed(hops):
        address = _parse(hop)
        if address is None:  # garbage: keep the last hop that a trusted party vouched for
            break
        current = address
        if not _trusted(address):
            break
    return str(current)
