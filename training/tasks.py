"""Celery tasks of the training app (queue ``train`` by the ``training.*`` route). Thin: an id in, one service call.
A run trains in time slices shorter than the broker's visibility timeout; each slice is one message, claimed with a
conditional update keyed by its Celery task id (a redelivery after a killed worker takes the claim back and resumes
from the run's latest checkpoint), and a slice that ends at a checkpoint queues the next one."""

from __future__ import annotations

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from training import services

SOFT_TIME_LIMIT = settings.TRAIN_TIME_SLICE_SECONDS + settings.TRAIN_SLICE_GRACE_SECONDS
TIME_LIMIT = SOFT_TIME_LIMIT + 60


@shared_task(name="training.train_run", bind=True, acks_late=True, reject_on_worker_lost=True,
             soft_time_limit=SOFT_TIME_LIMIT, time_limit=TIME_LIMIT)
def train_run(self, run_id: int) -> dict:
    token = self.request.id or f"direct-{run_id}"
    worker = self.request.hostname or services.worker_name()
    try:
        outcome = services.run_execute(run_id=run_id, token=token, worker=worker)
    except SoftTimeLimitExceeded:
        services.run_fail(run_id=run_id, token=token,
                          error=f"the slice ran past its time limit ({SOFT_TIME_LIMIT} s): raise TRAIN_SLICE_GRACE_SECONDS")
        return {"run": run_id, "status": "failed"}
    return {"run": run_id, "status": outcome.status, "message": outcome.message}
