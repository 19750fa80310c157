"""The enrichment message (pure): org-wide context first, the user's own entries win."""

from __future__ import annotations

import time

from routing.enricher import HEADER, render
from routing.selectors import ContextEntry, OrgContexts


def test_nothing_configured_renders_nothing() -> None:
    assert render([]) is None
    assert render([ContextEntry()]) is None


def test_org_then_user_with_user_entries_winning() -> None:
    org = ContextEntry(instructions="Use metric units.", glossary={"ARR": "annual recurring revenue",
                                                                    "GA": "general availability"},
                       preferences={"tone": "formal"})
    user = ContextEntry(instructions="I work in finance.", glossary={"GA": "general assembly"},
                        preferences={"tone": "brief"})
    text = render([org, user])
    assert text is not None and text.startswith(HEADER)
    assert text.index("Use metric units.") < text.index("I work in finance.")
    assert "- GA: general assembly" in text and "general availability" not in text
    assert "- ARR: annual recurring revenue" in text
    assert "- tone: brief" in text and "formal" not in text


def test_for_user_picks_org_wide_and_own_context_only() -> None:
    snap = OrgContexts(by_user={"": ContextEntry(instructions="org"),
                                "alice": ContextEntry(instructions="alice"),
                                "bob": ContextEntry(instructions="bob")},
                       loaded_at=time.monotonic())
    assert [e.instructions for e in snap.for_user("alice")] == ["org", "alice"]
    assert [e.instructions for e in snap.for_user(None)] == ["org"]
    assert [e.instructions for e in snap.for_user("carol")] == ["org"]
    only_users = OrgContexts(by_user={"bob": ContextEntry(instructions="bob")}, loaded_at=0.0)
    assert only_users.for_user("alice") == []
