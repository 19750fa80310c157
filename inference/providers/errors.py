"""The single exception type adapters raise, whatever SDK produced the failure."""

from __future__ import annotations

from typing import Literal

ErrorKind = Literal[
    "rate_limit",
    "server",
    "timeout",
    "bad_request",
    "auth",
    "not_found",
    "malformed",
    "stream_broken",
]


class ProviderError(Exception):
    """An upstream call failed.

    ``retryable`` tells the router whether trying again (same or another deployment) can help;
    ``retry_after`` is the provider's requested back-off in seconds, when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        provider: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind: ErrorKind = kind
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.provider = provider

    def __repr__(self) -> str:
        return (
            f"ProviderError(kind={self.kind!r}, status={self.status}, retryable={self.retryable}, "
            f"retry_after={self.retry_after}, provider={self.provider!r}, message={self.message!r})"
        )


def kind_for_status(status: int) -> tuple[ErrorKind, bool]:
    """Map an HTTP status to (kind, retryable)."""
    if status == 429:
        return "rate_limit", True
    if status in (401, 403):
        return "auth", False
    if status == 404:
        return "not_found", False
    if status == 408:
        return "timeout", True
    if status >= 500:
        # 529 is Anthropic's "overloaded"; all 5xx are worth retrying elsewhere.
        return "server", True
    return "bad_request", False


def parse_retry_after(headers: object) -> float | None:
    """Seconds from ``retry-after-ms`` / ``retry-after`` headers (numeric form only)."""
    get = getattr(headers, "get", None)
    if get is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except (TypeError, ValueError):
            continue
        if seconds >= 0:
            return seconds
    return None


def from_status(
    status: int, message: str, *, headers: object = None, provider: str = ""
) -> ProviderError:
    kind, retryable = kind_for_status(status)
    return ProviderError(
        message,
        kind=kind,
        status=status,
        retryable=retryable,
        retry_after=parse_retry_after(headers),
        provider=provider,
    )
