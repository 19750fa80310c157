"""Outbound requests to addresses a tenant chose (alert webhooks): public addresses only.

A tenant's URL must not make the gateway call its own network (SSRF): loopback, private, link-local
(cloud metadata at 169.254.169.254), CGNAT, multicast, reserved and unspecified addresses are refused,
IPv4-mapped IPv6 included, unless the operator allows a network (ASAHI_OUTBOUND_ALLOWED_NETWORKS,
e.g. an internal alert receiver). The check runs when the URL is saved and again when it is used:
the name is resolved at send time, every address must pass, and the request is sent to the address
that was checked (Host header and TLS SNI keep the name), so a DNS answer that changes between the
check and the connection (rebinding) cannot redirect it. Redirects are not followed.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeURL(ValueError):
    """The URL may not be called: why, in words fit for the API's error message."""


def _allowed(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in net for net in settings.ASAHI_OUTBOUND_ALLOWED_NETWORKS):
        return True
    return ip.is_global and not ip.is_multicast


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeURL("only http and https URLs are allowed")
    if not parts.hostname:
        raise UnsafeURL("the URL has no host")
    if parts.username or parts.password:
        raise UnsafeURL("credentials in the URL are not allowed")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeURL("the URL's port is not valid") from exc
    return parts.hostname, port


def resolve_public(url: str) -> list[IPAddress]:
    """The addresses the URL's host resolves to, all of them allowed; else UnsafeURL."""
    host, port = _host_port(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeURL(f"the host {host!r} does not resolve") from exc
    addresses = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0])
                                   for info in infos))
    refused = [a for a in addresses if not _allowed(a)]
    if refused or not addresses:
        raise UnsafeURL(f"the host {host!r} resolves to a private, loopback, link-local or "
                        f"reserved address ({refused[0] if refused else 'none'}); only public "
                        "addresses are allowed")
    return addresses


def post_public(url: str, *, content: bytes, headers: dict[str, str], timeout: float) -> Any:
    """POST to `url` after checking it, connecting to the address that was checked."""
    import httpx

    address = resolve_public(url)[0]
    parts = urlsplit(url)
    host = parts.hostname or ""
    literal = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    pinned = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    host_header = parts.netloc.rsplit("@", 1)[-1]
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        return client.post(pinned, content=content, headers={**headers, "Host": host_header},
                           extensions={"sni_hostname": host})
