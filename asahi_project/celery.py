"""The Celery app. The beat schedule is declared here, in one place."""

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "asahi_project.settings")

app = Celery("asahi")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {}


def register_beat(name: str, task: str, schedule: float | crontab) -> None:
    app.conf.beat_schedule[name] = {"task": task, "schedule": schedule}
