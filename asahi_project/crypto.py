"""Secrets at rest: Fernet (AES-128-CBC + HMAC) keyed by ASAHI_ENCRYPTION_KEY."""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


@lru_cache(maxsize=4)
def _fernet(raw_key: str, secret_key: str) -> Fernet:
    if raw_key:
        key = raw_key.strip()
        if len(key) == 64 and all(c in "0123456789abcdefABCDEF" for c in key):
            return Fernet(base64.urlsafe_b64encode(bytes.fromhex(key)))
        return Fernet(key.encode())
    # Development default: derived from SECRET_KEY (a deploy check warns when it is used in production).
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret_key.encode()).digest()))


def fernet() -> Fernet:
    return _fernet(settings.ASAHI_ENCRYPTION_KEY, settings.SECRET_KEY)


def encrypt(value: str) -> str:
    return fernet().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("cannot decrypt secret: wrong ASAHI_ENCRYPTION_KEY?") from exc
