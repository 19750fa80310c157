"""Server-rendered dashboard: the same selectors as the API, for staff or organization members."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render

from analytics import selectors
from analytics.api import summary_payload
from analytics.templatetags.money import format_usd
from governance.models import Membership, Organization


def _orgs_for(request: HttpRequest) -> list[Organization]:
    user = request.user
    if user.is_staff:
        return list(Organization.objects.order_by("name"))
    ids = Membership.objects.filter(user=user).values_list(  # type: ignore[misc]
        "organization_id", flat=True)
    return list(Organization.objects.filter(pk__in=ids).order_by("name"))


def _bars(points: Sequence[tuple[Any, float]], *, width: int = 720, height: int = 140,
          ) -> list[dict[str, Any]]:
    """Bar geometry for an inline SVG chart (no JavaScript, no CDN)."""
    top = max((v for _, v in points), default=0.0) or 1.0
    step = width / max(len(points), 1)
    bars = []
    for i, (at, value) in enumerate(points):
        h = value / top * (height - 10)
        bars.append({"x": round(i * step, 2), "y": round(height - h, 2),
                     "w": round(max(step - 1, 1), 2), "h": round(h, 2),
                     "label": f"{at:%Y-%m-%d %H:00}: {format_usd(value)}"})  # type: ignore[str-format]
    return bars


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    orgs = _orgs_for(request)
    if not orgs:
        raise PermissionDenied("you are not a member of any organization")
    wanted = request.GET.get("org_id")
    if not wanted:  # open on the organization with traffic, not the alphabetically first one
        active = selectors.most_recently_active_org(org_ids=[o.id for o in orgs])
        wanted = str(active or orgs[0].id)
    org = next((o for o in orgs if str(o.id) == wanted), None)
    if org is None:
        raise PermissionDenied("you cannot view this organization")
    period = request.GET.get("period") or "7d"
    if period not in selectors.PERIODS:
        return HttpResponseBadRequest(f"period must be one of: {', '.join(selectors.PERIODS)}")
    since = selectors.period_since(period)
    summary = summary_payload(org=org, period=period, since=since)
    interval = "hour" if period in ("24h", "day") else "day"
    points = selectors.trend(org_ids=[org.id], metric="cost", since=since, interval=interval)
    by_model = selectors.breakdown(org_ids=[org.id], by="model", since=since)
    total = sum(float(r.cost_usd) for r in by_model) or 1.0
    context = {
        "org": org, "orgs": orgs, "period": period, "periods": selectors.PERIODS,
        "summary": summary, "bars": _bars(points), "interval": interval,
        "by_model": [{"model": r.key, "requests": r.requests, "cost": float(r.cost_usd),
                      "share": round(float(r.cost_usd) / total * 100, 1)} for r in by_model],
        "recent": selectors.recent_inferences(org_id=org.id, limit=25),
    }
    return render(request, "analytics/dashboard.html", context)
