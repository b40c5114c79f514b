"""Celery tasks of the generation app (queue ``gpu`` by the ``generation.*`` route; the demo upgrade on ``train``).
Thin: ids in, one service call. Claiming (a conditional update keyed by the Celery task id) makes a redelivered message harmless, and
``acks_late`` + ``reject_on_worker_lost`` make a worker killed mid-batch hand its message to another worker."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError

from generation import services

logger = logging.getLogger(__name__)

SOFT_TIME_LIMIT = settings.GENERATION_TASK_SOFT_TIME_LIMIT
TIME_LIMIT = settings.GENERATION_TASK_TIME_LIMIT
MAX_RETRIES = 4


def _backoff(retries: int) -> int:
    return min(300, 5 * 2**retries)


@shared_task(
    name="generation.run_tasks",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=SOFT_TIME_LIMIT,
    time_limit=TIME_LIMIT,
    max_retries=MAX_RETRIES,
)
def run_tasks(self, task_ids: list[int], batch_size: int | None = None) -> dict:
    """Generate the images of ``task_ids`` (one model and settings), in batches of ``batch_size``."""
    token = self.request.id or ""
    worker = self.request.hostname or services.worker_name()
    try:
        result = services.tasks_run(task_ids=task_ids, token=token, worker=worker, batch_size=batch_size)
    except services.TransientGenerationFault as exc:
        current = int(batch_size or settings.GENERATION_BATCH_SIZE)
        if self.request.retries >= MAX_RETRIES:
            services.tasks_fail(task_ids=task_ids, error=f"{exc} (gave up after {MAX_RETRIES} retries)")
            return {"failed": len(task_ids)}
        smaller = max(1, current // 2) if exc.out_of_memory else current
        logger.warning("generation.run_tasks %s: %s; retrying with batch size %s", token, exc, smaller)
        if self.request.is_eager:  # in process (embedded setup): retry at once, in process
            return run_tasks.apply(kwargs={"task_ids": task_ids, "batch_size": smaller}, task_id=token,
                                   retries=self.request.retries + 1).get(disable_sync_subtasks=False)
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries),
                         kwargs={"task_ids": task_ids, "batch_size": smaller}) from None
    except SoftTimeLimitExceeded:
        services.tasks_fail_claimed(task_ids=task_ids, token=token, error=f"timed out after {SOFT_TIME_LIMIT} s")
        return {"failed": len(task_ids)}
    except DatabaseError as exc:  # a database hiccup: give the tasks back and try again later
        if self.request.retries >= MAX_RETRIES or self.request.is_eager:
            raise
        try:
            services.tasks_release(task_ids=task_ids, token=token)
        except DatabaseError:
            pass  # the same delivery id takes them back on retry
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from None
    return {"claimed": result.claimed, "stored": result.stored, "reused": result.reused, "failed": result.failed,
            "seconds": round(result.seconds, 3)}


@shared_task(name="generation.requeue_unsent")
def requeue_unsent() -> int:
    """Send the tasks whose job was made while the broker was unreachable (the beat schedule runs this)."""
    return services.tasks_requeue_unsent()


DEMO_UPGRADE_WAIT_SECONDS = 15
DEMO_UPGRADE_MAX_WAITS = 240  # an hour of waiting for the pre-trained demo job


@shared_task(name="generation.demo_upgrade", bind=True, acks_late=True, reject_on_worker_lost=True,
             max_retries=DEMO_UPGRADE_MAX_WAITS)
def demo_upgrade(self) -> str:
    """Build the pre-trained tiny models and move the demo onto them (``services.demo_upgrade``; minutes, on the
    ``train`` queue so the ``gpu`` worker keeps making images); while their job runs, look again later."""
    status = services.demo_upgrade(resume=self.request.retries == 0)  # a first delivery resumes a killed run's job
    if status == "waiting" and not self.request.is_eager:
        raise self.retry(countdown=DEMO_UPGRADE_WAIT_SECONDS)
    return status
