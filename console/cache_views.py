"""Cache page: entries, hits, hit rate and cost avoided per tier; the semantic threshold in force;
stored prompts; invalidation (admin and up) of one entry, one document's tier-3 entries or the whole
organization's cache, through `caching.services.cache_invalidate` (which audits it), after an explicit
confirmation step.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_POST

from analytics import selectors as analytics_selectors
from asahi_project.client_ip import client_ip
from asahi_project.errors import AsahiError
from asahi_project.textrules import validate_name
from caching import selectors, services
from console.access import current_organization, has_role, role_required
from governance.services import actor_for_user

PERIOD = "7d"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class SearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Search stored prompts",
                        validators=[validate_name])


class InvalidateForm(forms.Form):
    """What to invalidate. `entry`: a semantic entry id or an exact-cache digest; `document`: the
    SHA-256 of a tier-3 document; `all`: everything the organization has cached."""

    TARGETS = (("entry", "one entry"), ("document", "one document's tier-3 entries"),
               ("all", "the whole organization's cache"))
    target = forms.ChoiceField(choices=TARGETS)
    entry_id = forms.CharField(required=False, max_length=128, strip=True)
    document_hash = forms.CharField(required=False, max_length=64, strip=True)
    confirm = forms.BooleanField(required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        target = data.get("target")
        entry = (data.get("entry_id") or "").lower()
        doc = (data.get("document_hash") or "").lower()
        if target == "entry" and not ((entry.isascii() and entry.isdigit()) or _HEX64.match(entry)):
            self.add_error("entry_id", "Give a semantic entry id (a number) or a 64-hex "
                                       "exact-cache digest.")
        if target == "document" and not _HEX64.match(doc):
            self.add_error("document_hash", "Give the document's SHA-256 (64 hex characters).")
        data["entry_id"], data["document_hash"] = entry, doc
        return data

    def service_args(self) -> dict[str, Any]:
        d = self.cleaned_data
        if d["target"] == "all":
            return {"scope": "all"}
        return {"scope": "entry",
                "entry_id": d["entry_id"] if d["target"] == "entry" else d["document_hash"]}


def _page_context(request: HttpRequest, search: SearchForm) -> dict[str, Any]:
    org = current_organization(request)
    stats = selectors.cache_stats(organization_id=org.id, with_requests=False)
    since = analytics_selectors.period_since(PERIOD)
    t = analytics_selectors.totals(org_ids=[org.id], since=since)
    entries = {1: stats.exact_entries, 2: stats.semantic_entries, 3: stats.intermediate_entries}
    tiers = [{
        "tier": tier, "name": analytics_selectors.TIER_NAMES[tier], "entries": entries[tier],
        "hits": t.hits_by_tier.get(tier, 0),
        "hit_rate": t.hits_by_tier.get(tier, 0) / t.ok_requests * 100 if t.ok_requests else 0.0,
        "avoided": t.saved_by_tier.get(tier, Decimal(0)),
    } for tier in (1, 2, 3)]
    policy = getattr(org, "policy", None)
    query = search.cleaned_data.get("q", "") if search.is_valid() else ""
    return {
        "org": org, "period": PERIOD, "since": since, "tiers": tiers, "totals": t, "stats": stats,
        "policy": policy,
        "policy_threshold": policy.semantic_threshold if policy is not None else None,
        "thresholds": list(selectors.semantic_thresholds().items()),
        "search": search, "query": query,
        "prompts": selectors.search_prompts(organization_id=org.id, query=query),
        "documents": selectors.cached_documents(organization_id=org.id),
        "may_invalidate": has_role(request.membership, "admin"),  # type: ignore[attr-defined]
    }


@role_required("viewer")
def cache_page(request: HttpRequest) -> HttpResponse:
    search = SearchForm(request.GET)
    context = _page_context(request, search)
    return render(request, "console/cache.html", context, status=200 if search.is_valid() else 400)


@require_POST
@role_required("admin")
def cache_invalidate(request: HttpRequest) -> HttpResponse:
    form = InvalidateForm(request.POST)
    if not form.is_valid():
        context = _page_context(request, SearchForm({}))
        context["invalidate_form"] = form
        return render(request, "console/cache.html", context, status=400)
    if not form.cleaned_data["confirm"]:  # the confirmation step: nothing is deleted yet
        return render(request, "console/cache_confirm.html", {"form": form,
                                                              "args": form.service_args()})
    org = current_organization(request)
    try:
        result = services.cache_invalidate(organization_id=org.id, actor=actor_for_user(request.user),
                                           ip=client_ip(request), **form.service_args())
    except AsahiError as err:
        form.add_error(None, err.message)
        context = _page_context(request, SearchForm({}))
        context["invalidate_form"] = form
        return render(request, "console/cache.html", context, status=err.status)
    messages.success(request, (
        f"Invalidated: {result.exact_keys} exact, {result.semantic_rows} semantic, "
        f"{result.intermediate_keys} tier-3 entries ({result.intermediate_rows} tier-3 records)."))
    return HttpResponseRedirect("/cache/")
