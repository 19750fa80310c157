"""API key format and hashing. Keys are high-entropy random strings, so SHA-256 is the right hash:
a slow password KDF would only add latency to every request without adding security."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string

_ALPHABET = string.ascii_letters + string.digits
PREFIX_LEN = 10
SECRET_LEN = 40
KEY_PREFIX = "ask_"


def generate_raw_key() -> tuple[str, str]:
    """Return (raw key, public prefix). The raw key is `ask_<prefix>_<secret>`."""
    public = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(PREFIX_LEN))
    secret = "".join(secrets.choice(_ALPHABET) for _ in range(SECRET_LEN))
    prefix = f"{KEY_PREFIX}{public}"
    return f"{prefix}_{secret}", prefix


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def split_prefix(raw: str) -> str | None:
    """The public prefix of a raw key, or None when the string is not shaped like an Asahi key."""
    if not raw.startswith(KEY_PREFIX):
        return None
    body = raw[len(KEY_PREFIX):]
    public, sep, secret = body.partition("_")
    if not sep or len(public) != PREFIX_LEN or len(secret) != SECRET_LEN:
        return None
    return f"{KEY_PREFIX}{public}"


def hashes_match(raw: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(raw), stored_hash)
