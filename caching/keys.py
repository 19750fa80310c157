"""Every cache key is built here: versioned and always namespaced by organization.

An organization id is part of every key and of every vector lookup's WHERE clause, so one tenant can never
read another's entries, whatever the prompt.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import orjson

VERSION = "v1"


def canonical_hash(payload: dict[str, Any]) -> str:
    """A stable digest of everything that changes the answer (keys sorted, None dropped)."""
    clean = {k: v for k, v in payload.items() if v is not None}
    return hashlib.sha256(orjson.dumps(clean, option=orjson.OPT_SORT_KEYS)).hexdigest()


def exact_key(org_id: uuid.UUID, digest: str) -> str:
    # The hash tag {org} keeps one organization's keys in one Redis Cluster slot.
    return f"asahi:{VERSION}:{{{org_id}}}:exact:{digest}"


def exact_pattern(org_id: uuid.UUID | None = None) -> str:
    return f"asahi:{VERSION}:{{{org_id}}}:exact:*" if org_id else f"asahi:{VERSION}:*:exact:*"


def stats_key(org_id: uuid.UUID) -> str:
    return f"asahi:{VERSION}:{{{org_id}}}:cachestats"


def singleflight_key(org_id: uuid.UUID, digest: str) -> str:
    return f"asahi:{VERSION}:{{{org_id}}}:sf:{digest}"


def intermediate_key(org_id: uuid.UUID, doc_hash: str, step: str, model: str) -> str:
    return f"asahi:{VERSION}:{{{org_id}}}:t3:{doc_hash}:{step}:{model}"


def intermediate_pattern(org_id: uuid.UUID | None = None) -> str:
    return f"asahi:{VERSION}:{{{org_id}}}:t3:*" if org_id else f"asahi:{VERSION}:*:t3:*"
