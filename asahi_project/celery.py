"""The Celery app. The beat schedule is declared here, in one place; each task calls one service."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "asahi_project.settings")

app = Celery("asahi")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    "analytics-rollup": {"task": "analytics.rollup", "schedule": 60.0},
    "analytics-alerts": {"task": "analytics.alerts", "schedule": 300.0},
    "inference-retention": {"task": "inference.retention", "schedule": 3600.0},
    "caching-evict-expired": {"task": "caching.evict_expired", "schedule": 600.0},
    "caching-sync-scope-indexes": {"task": "caching.sync_scope_indexes", "schedule": 600.0},
    "routing-fold-feedback": {"task": "routing.fold_feedback", "schedule": 300.0},
    # Polls provider batches and resumes any batch work a dead worker left (batching.engine).
    "batching-poll": {"task": "batching.poll",
                      "schedule": float(os.environ.get("ASAHI_BATCH_POLL_SECONDS", "10"))},
}
