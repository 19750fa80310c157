"""Reads for routing, cached per process: folded quality estimates and enrichment contexts.

Both are read on the hot path, so each is one query per process per TTL (the catalogue works the
same way, see `inference.selectors`). A stale value for up to the TTL is acceptable: quality moves
slowly, and an edited enrichment context taking 30 s to apply is fine for an operator.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

QUALITY_TTL_SECONDS = 30.0
ENRICHMENT_TTL_SECONDS = 30.0


# --- Quality estimates ------------------------------------------------------------------------------

@dataclass(frozen=True)
class QualitySnapshot:
    # model -> task type -> posterior mean
    estimates: Mapping[str, Mapping[str, float]]
    loaded_at: float


_quality: QualitySnapshot | None = None


def load_quality_estimates() -> QualitySnapshot:
    from routing.models import QualityEstimate

    out: dict[str, dict[str, float]] = {}
    for model, task, mean in QualityEstimate.objects.values_list("model", "task_type", "mean"):
        out.setdefault(model, {})[task] = float(mean)
    return QualitySnapshot(estimates=out, loaded_at=time.monotonic())


def quality_estimates() -> QualitySnapshot:
    """The folded estimates, reloaded at most every QUALITY_TTL_SECONDS."""
    global _quality
    snap = _quality
    if snap is None or time.monotonic() - snap.loaded_at > QUALITY_TTL_SECONDS:
        snap = _quality = load_quality_estimates()
    return snap


async def aquality_estimates() -> QualitySnapshot:
    snap = _quality
    if snap is not None and time.monotonic() - snap.loaded_at <= QUALITY_TTL_SECONDS:
        return snap
    from asgiref.sync import sync_to_async

    return await sync_to_async(quality_estimates, thread_sensitive=False)()


def invalidate_quality_estimates() -> None:
    global _quality
    _quality = None


def effective_quality(*, model: str, catalogue_quality: Mapping[str, float],
                      snapshot: QualitySnapshot) -> dict[str, float]:
    """The catalogue's per-task quality with folded estimates for this model laid over it."""
    merged = {k: float(v) for k, v in catalogue_quality.items()}
    merged.update(snapshot.estimates.get(model, {}))
    return merged


# --- Enrichment contexts ----------------------------------------------------------------------------

@dataclass(frozen=True)
class ContextEntry:
    instructions: str = ""
    glossary: Mapping[str, Any] = field(default_factory=dict)
    preferences: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OrgContexts:
    """The enabled contexts of one organization: org-wide (user "") and per user."""

    by_user: Mapping[str, ContextEntry]
    loaded_at: float

    def for_user(self, user: str | None) -> list[ContextEntry]:
        """Organization-wide first, then the user's own (so the user's entries win on merge)."""
        out = [self.by_user[""]] if "" in self.by_user else []
        if user and user in self.by_user:
            out.append(self.by_user[user])
        return out


_contexts: dict[uuid.UUID, OrgContexts] = {}
_contexts_lock = threading.Lock()


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def load_org_contexts(org_id: uuid.UUID) -> OrgContexts:
    """Query an organization's enabled contexts and store them in the per-process cache."""
    from routing.models import EnrichmentContext

    rows = EnrichmentContext.objects.filter(organization_id=org_id, enabled=True).values_list(
        "user_id", "instructions", "glossary", "preferences")
    by_user = {user: ContextEntry(instructions=instr or "", glossary=_mapping(glossary),
                                  preferences=_mapping(prefs))
               for user, instr, glossary, prefs in rows}
    snap = OrgContexts(by_user=by_user, loaded_at=time.monotonic())
    with _contexts_lock:
        _contexts[org_id] = snap
    return snap


def cached_org_contexts(org_id: uuid.UUID) -> OrgContexts | None:
    """The cached contexts if fresh, else None (the caller decides whether to wait for a load)."""
    snap = _contexts.get(org_id)
    if snap is None or time.monotonic() - snap.loaded_at > ENRICHMENT_TTL_SECONDS:
        return None
    return snap


def invalidate_org_contexts(org_id: uuid.UUID | None = None) -> None:
    with _contexts_lock:
        if org_id is None:
            _contexts.clear()
        else:
            _contexts.pop(org_id, None)
