"""Celery tasks of the analytics app; each calls one service."""

from __future__ import annotations

from typing import Any

from celery import shared_task


@shared_task(name="analytics.rollup")
def rollup() -> dict[str, Any]:
    from analytics.rollup import run_rollup

    result = run_rollup()
    return {"from": result.recomputed_from.isoformat(), "hourly_rows": result.hourly_rows,
            "daily_rows": result.daily_rows, "ms": round(result.duration_ms, 1)}


@shared_task(name="analytics.alerts")
def alerts() -> dict[str, int]:
    from analytics.services import run_alerts

    report = run_alerts()
    return {"budget_alerts": report.budget_alerts, "frozen_keys": report.frozen_keys,
            "anomaly_scans": report.anomaly_scans, "anomalies": report.anomalies}
