"""Celery application. Queues: ``default`` (web-side work), ``gpu`` (generation and scoring, one worker per
GPU with concurrency 1) and ``train`` (training runs). With no broker configured tasks run eagerly."""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("arena")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("default"), Queue("gpu"), Queue("train"))
app.conf.task_routes = {
    # Minutes of CPU training, beside the gpu worker rather than in front of it (an exact name wins over globs).
    "generation.demo_upgrade": {"queue": "train"},
    "generation.*": {"queue": "gpu"},
    "scoring.*": {"queue": "gpu"},
    "training.*": {"queue": "train"},
    "arena.*": {"queue": "default"},
}
app.autodiscover_tasks()
