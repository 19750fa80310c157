"""Dashboard: what the organization spends and saves, live.

Everything is read through the analytics selectors (rollups plus the ledger tail since the last
fold), never by scanning the ledger. The page opens a websocket (console.consumers) and, while it is
down, polls the `live` fragment with htmx instead.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from analytics import selectors
from console.access import current_organization, role_required

RECENT = 25


class PeriodForm(forms.Form):
    period = forms.ChoiceField(choices=[(p, p) for p in selectors.PERIODS], required=False)

    def chosen(self) -> str:
        return (self.cleaned_data.get("period") if self.is_valid() else None) or "7d"


def dashboard_context(org_id: Any, period: str) -> dict[str, Any]:
    since = selectors.period_since(period)
    interval = "hour" if period in ("24h", "day") else "day"
    summary = selectors.dashboard_summary(org_ids=[org_id], since=since, interval=interval)
    t = summary.totals
    tiers = [{"tier": tier, "name": name, "requests": t.requests_by_tier.get(tier, 0),
              "cost": t.cost_by_tier.get(tier, Decimal(0)),
              "avoided": t.saved_by_tier.get(tier, Decimal(0))}
             for tier, name in selectors.TIER_NAMES.items()]
    by_model = summary.by_model
    total_cost = sum((r.cost_usd for r in by_model), Decimal(0))
    hits = summary.by_period
    baseline = t.baseline_cost_usd
    return {
        "period": period, "since": since, "interval": interval, "totals": t,
        "savings_percent": float(t.savings_usd / baseline * 100) if baseline else 0.0,
        "avg_latency_ms": t.latency_sum_ms / t.requests if t.requests else None,
        "tiers": tiers,
        "by_model": [{"model": r.key, "requests": r.requests, "cost": r.cost_usd,
                      "share": float(r.cost_usd / total_cost * 100) if total_cost else 0.0}
                     for r in by_model],
        # uPlot series: bucket start (unix seconds), cache hits, requests.
        "hits_chart": {"t": [int(_ts(r.key)) for r in hits], "hits": [r.cache_hits for r in hits],
                       "requests": [r.requests for r in hits]},
        "recent": [{**e, "tier_name": selectors.TIER_NAMES.get(e["cache_tier"], "")}
                   for e in selectors.recent_inferences(org_id=org_id, limit=RECENT)],
    }


def _ts(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


@role_required("viewer")
def dashboard(request: HttpRequest) -> HttpResponse:
    form = PeriodForm(request.GET)
    org = current_organization(request)
    context = {"form": form, "periods": selectors.PERIODS, "org": org,
               **dashboard_context(org.id, form.chosen())}
    return render(request, "console/dashboard.html", context,
                  status=200 if form.is_valid() else 400)


@role_required("viewer")
def dashboard_live(request: HttpRequest) -> HttpResponse:
    """The refreshable part of the dashboard (htmx: after a websocket message, or polled)."""
    form = PeriodForm(request.GET)
    if not form.is_valid():  # htmx keeps the current fragment on a 4xx; the text is for people
        return HttpResponse(f"period: {' '.join(str(e) for e in form.errors['period'])}", status=400,
                            content_type="text/plain; charset=utf-8")
    org = current_organization(request)
    return render(request, "console/_dashboard_live.html",
                  {"org": org, **dashboard_context(org.id, form.chosen())})
