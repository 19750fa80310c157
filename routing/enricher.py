"""Feature enricher: prepend an organization's (and its user's) context as a system message.

Operators keep per-organization and per-user context in the admin (`EnrichmentContext`): standing
instructions, a glossary and preferences. When a request belongs to such an organization, the
gateway prepends one system message built from it, so every model sees the same house context.

The contexts come from a per-process cache (`routing.selectors`). On a miss the load runs on a
worker thread with a time budget (default 20 ms, setting ASAHI_ENRICHMENT_BUDGET_MS): if the
database is slower, the request goes on without enrichment (technique `enrichment_skipped`) and
the load still completes in the background and fills the cache for the next request.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from routing.selectors import (
    ContextEntry,
    OrgContexts,
    cached_org_contexts,
    load_org_contexts,
)

logger = logging.getLogger("asahi.routing")
DEFAULT_BUDGET_MS = 20.0
HEADER = "Context from your organization (apply it; do not mention it unless asked):"
APPLIED = "feature_enrichment"
SKIPPED = "enrichment_skipped"

# Loads in flight per organization, so a burst of misses waits on one query, not many.
_inflight: dict[uuid.UUID, asyncio.Future[OrgContexts]] = {}


@dataclass(frozen=True)
class Enrichment:
    """The outcome for one request: the system text to prepend (if any) and the technique."""

    text: str | None
    technique: str | None  # APPLIED, SKIPPED or None (nothing configured)


def _value(v: Any) -> str:
    return v if isinstance(v, str) else repr(v)


def render(entries: Sequence[ContextEntry]) -> str | None:
    """One system message from org-wide then user entries (later glossary/preferences win)."""
    instructions = [e.instructions.strip() for e in entries if e.instructions.strip()]
    glossary: dict[str, Any] = {}
    prefs: dict[str, Any] = {}
    for e in entries:
        glossary.update(e.glossary)
        prefs.update(e.preferences)
    if not (instructions or glossary or prefs):
        return None
    parts = [HEADER]
    if instructions:
        parts.append("Instructions:\n" + "\n".join(instructions))
    if glossary:
        parts.append("Glossary:\n" + "\n".join(f"- {k}: {_value(v)}"
                                                 for k, v in sorted(glossary.items())))
    if prefs:
        parts.append("Preferences:\n" + "\n".join(f"- {k}: {_value(v)}"
                                                    for k, v in sorted(prefs.items())))
    return "\n\n".join(parts)


def _budget_seconds() -> float:
    return float(getattr(settings, "ASAHI_ENRICHMENT_BUDGET_MS", DEFAULT_BUDGET_MS)) / 1000.0


def _start_load(org_id: uuid.UUID) -> asyncio.Future[OrgContexts]:
    """The load in flight for `org_id`, started now if none is (it runs on a worker thread)."""
    fut = _inflight.get(org_id)
    if fut is None:
        from asgiref.sync import sync_to_async

        fut = asyncio.ensure_future(
            sync_to_async(load_org_contexts, thread_sensitive=False)(org_id))
        _inflight[org_id] = fut

        def done(f: asyncio.Future[OrgContexts]) -> None:
            _inflight.pop(org_id, None)
            if not f.cancelled() and f.exception() is not None:  # retrieved: logged once, here
                logger.warning("enrichment load failed", extra={"org": str(org_id),
                                                                "error": repr(f.exception())})

        fut.add_done_callback(done)
    return fut


async def contexts_within_budget(org_id: uuid.UUID) -> OrgContexts | None:
    """The organization's contexts, or None if they could not be had within the time budget."""
    snap = cached_org_contexts(org_id)
    if snap is not None:
        return snap
    fut = _start_load(org_id)
    try:
        # shield: a timeout abandons the wait, not the load (it still fills the cache).
        return await asyncio.wait_for(asyncio.shield(fut), timeout=_budget_seconds())
    except TimeoutError:
        return None
    except Exception:  # a broken lookup must not fail the request; enrichment is best-effort
        logger.exception("enrichment lookup failed", extra={"org": str(org_id)})
        return None


async def enrich(*, org_id: uuid.UUID, user: str | None) -> Enrichment:
    """Decide what to prepend for a request of `org_id` by `user`."""
    snap = await contexts_within_budget(org_id)
    if snap is None:
        return Enrichment(text=None, technique=SKIPPED)
    text = render(snap.for_user(user))
    return Enrichment(text=text, technique=APPLIED if text else None)


