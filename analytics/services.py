"""Analytics side effects: budget alerts (email + webhook), the anomaly scan that feeds
`/analytics/anomalies`, and freezing keys on spend anomalies.

Each budget threshold (50/80/100 % of the organization's daily or monthly budget) is recorded in
`SentAlert` under a unique constraint, so it fires at most once per period even when two alert
workers race. Webhooks are POSTed after the transaction commits, with a short timeout.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from analytics import selectors
from analytics.models import SentAlert
from asahi_project.netguard import UnsafeURL, post_public
from asahi_project.textrules import escape_unsafe
from governance.models import ApiKey, Organization, Policy
from governance.services import audit_log

logger = logging.getLogger("asahi.alerts")

THRESHOLDS = (50, 80, 100)
WEBHOOK_TIMEOUT_SECONDS = 5.0
FREEZE_SEVERITIES = ("high", "critical")
# Anomalies ending this recently are acted on (the task runs every 5 minutes).
FREEZE_LOOKBACK = timedelta(hours=2)


@dataclass
class AlertReport:
    budget_alerts: int = 0
    frozen_keys: int = 0
    anomaly_scans: int = 0
    anomalies: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)


def crossed_thresholds(*, spent: Decimal, limit: Decimal,
                       thresholds: tuple[int, ...] = THRESHOLDS) -> list[int]:
    """Thresholds (percent) reached by spent/limit (pure)."""
    if limit <= 0:
        return []
    return [t for t in thresholds if spent * 100 >= limit * t]


def post_webhook(*, url: str, payload: dict[str, Any],
                 timeout: float = WEBHOOK_TIMEOUT_SECONDS) -> int | None:
    """POST JSON; returns the HTTP status, None when the receiver is unreachable or refused
    (logged). The URL is checked again here, resolved now: it may have been saved before the
    check existed, or its name may point elsewhere since (asahi_project.netguard)."""
    import httpx

    try:
        resp = post_public(url, content=json.dumps(payload, default=str).encode(),
                           headers={"Content-Type": "application/json",
                                    "User-Agent": "asahi-alerts"}, timeout=timeout)
        return int(resp.status_code)
    except UnsafeURL as exc:
        logger.warning("alert_webhook_refused", extra={"url": url, "error": str(exc)})
        return None
    except httpx.HTTPError as exc:  # an unreachable receiver must not break the alert run
        logger.warning("alert_webhook_failed", extra={"url": url, "error": str(exc)})
        return None


def notify(*, policy: Policy, subject: str, payload: dict[str, Any]) -> None:
    """Email the policy's recipients now; POST its webhook once the transaction commits."""
    if policy.alert_emails:
        try:
            # Names stored before the identifier rules may still hold a newline or a bidi
            # override; Django refuses the first in a header, and neither belongs there.
            send_mail(subject=escape_unsafe(subject),
                      message=json.dumps(payload, indent=2, default=str),
                      from_email=settings.DEFAULT_FROM_EMAIL,
                      recipient_list=list(policy.alert_emails))
        except Exception as exc:
            logger.warning("alert_email_failed", extra={"error": str(exc)})
    if policy.alert_webhook_url:
        url = policy.alert_webhook_url
        transaction.on_commit(lambda: post_webhook(url=url, payload=payload))


def _record(*, org: Organization, kind: str, period_start: datetime, threshold: int,
            spent: Decimal, limit: Decimal | None, api_key: ApiKey | None = None,
            details: dict[str, Any] | None = None) -> bool:
    """Insert the SentAlert; False when it was already sent (unique constraint)."""
    try:
        with transaction.atomic():
            SentAlert.objects.create(organization=org, api_key=api_key, kind=kind,
                                     period_start=period_start, threshold=threshold,
                                     spent_usd=spent, limit_usd=limit, details=details or {})
    except IntegrityError:
        return False
    return True


def check_budgets(*, policy: Policy, now: datetime | None = None) -> list[dict[str, Any]]:
    """Send newly crossed budget thresholds of one organization; returns the alerts sent."""
    from analytics import metrics

    now = now or timezone.now()
    org = policy.organization
    sent: list[dict[str, Any]] = []
    for period, limit in (("daily", policy.daily_budget_usd),
                          ("monthly", policy.monthly_budget_usd)):
        if not limit:
            continue
        start = selectors.period_since("day" if period == "daily" else "month", now=now)
        spent = selectors.totals(org_ids=[org.id], since=start).cost_usd
        metrics.set_budget_utilization(org=str(org.id), period=period, spent_usd=float(spent),
                                       limit_usd=float(limit))
        new = [t for t in crossed_thresholds(spent=spent, limit=limit)
               if _record(org=org, kind=f"budget_{period}", period_start=start, threshold=t,
                          spent=spent, limit=limit)]
        if not new:
            continue
        payload = {
            "type": "budget_alert", "org_id": str(org.id), "org_name": org.name,
            "period": period, "period_start": start.isoformat(), "threshold_percent": max(new),
            "thresholds": new, "spent_usd": float(spent), "limit_usd": float(limit),
            "utilization": float(spent / limit),
        }
        audit_log(action="budget.alert", actor="system", organization=org,
                  target_type="organization", target_id=str(org.id), details=payload)
        notify(policy=policy, subject=f"[Asahi] {org.name}: {max(new)}% of the {period} budget "
               f"used (${spent:.2f} of ${limit:.2f})", payload=payload)
        sent.append(payload)
    return sent


def freeze_anomalous_keys(*, policy: Policy, now: datetime | None = None) -> list[str]:
    """Freeze keys with a severe upward spend anomaly (policy.freeze_keys_on_anomaly), as found by
    the organization's latest anomaly scan (scanned now when it never was)."""
    from analytics.anomaly_findings import scan_org_anomalies, stored_anomalies
    from governance.selectors import auth_cache

    now = now or timezone.now()
    org = policy.organization
    frozen: list[str] = []
    stored = stored_anomalies(org=org, since=now - FREEZE_LOOKBACK)
    if stored is None:
        scan_org_anomalies(org=org, now=now)
        stored = stored_anomalies(org=org, since=now - FREEZE_LOOKBACK)
    for a in stored.anomalies if stored else []:
        if (a.scope != "key" or a.metric.value != "spend" or a.direction != "up"
                or a.severity.value not in FREEZE_SEVERITIES):
            continue
        key = ApiKey.objects.filter(organization=org, prefix=a.scope_id).first()
        if key is None or key.frozen_at is not None or key.revoked_at is not None:
            continue
        # Once per anomaly episode: an admin who unfreezes the key is not overruled.
        if not _record(org=org, api_key=key, kind="anomaly_freeze", period_start=a.at,
                       threshold=0, spent=Decimal(str(a.value)), limit=None,
                       details={"message": a.message, "severity": a.severity.value}):
            continue
        reason = f"spend anomaly ({a.severity.value}): {a.message}"[:255]
        ApiKey.objects.filter(pk=key.pk).update(frozen_at=now, frozen_reason=reason)
        auth_cache.invalidate(prefix=key.prefix)
        payload = {"type": "key_frozen", "org_id": str(org.id), "key_prefix": key.prefix,
                   "severity": a.severity.value, "value": a.value, "baseline": a.baseline,
                   "at": a.at.isoformat(), "message": a.message}
        audit_log(action="api_key.frozen", actor="system", organization=org,
                  target_type="api_key", target_id=key.prefix, details=payload)
        notify(policy=policy, subject=f"[Asahi] {org.name}: key {key.prefix} frozen",
               payload=payload)
        frozen.append(key.prefix)
    return frozen


def scan_anomalies(*, now: datetime | None = None, report: AlertReport | None = None,
                   ) -> AlertReport:
    """Scan every active organization for anomalies (stored for `/analytics/anomalies`)."""
    from analytics.anomaly_findings import scan_org_anomalies

    report = report or AlertReport()
    now = now or timezone.now()
    for org in Organization.objects.filter(is_active=True).order_by("created_at"):
        try:
            result = scan_org_anomalies(org=org, now=now)
        except Exception:  # one organization's failure must not stop the others' scans
            logger.exception("anomaly_scan_failed", extra={"org_id": str(org.id)})
            continue
        report.anomaly_scans += 1
        report.anomalies += len(result.findings)
    return report


def run_alerts(*, now: datetime | None = None) -> AlertReport:
    """The `analytics.alerts` task: anomaly scan first (freezing reads it), then budgets."""
    now = now or timezone.now()
    report = scan_anomalies(now=now)
    policies = Policy.objects.select_related("organization").filter(organization__is_active=True)
    for policy in policies:
        try:
            sent = check_budgets(policy=policy, now=now)
            report.budget_alerts += len(sent)
            report.messages += sent
            if policy.freeze_keys_on_anomaly:
                report.frozen_keys += len(freeze_anomalous_keys(policy=policy, now=now))
        except Exception:  # one organization's failure must not stop the others' alerts
            logger.exception("alerts_failed", extra={"org_id": str(policy.organization_id)})
    return report
