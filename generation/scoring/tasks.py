"""Celery tasks of the scoring app (names ``scoring.*`` are routed to the ``gpu`` queue). Thin: ids in,
call a service. Scoring writes only what is missing for the current scorer files, so redelivery is harmless."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from generation.scoring.files import ScoringError
from generation.scoring.services import scores_compute

logger = logging.getLogger(__name__)


@shared_task(
    name="scoring.score_images",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.SCORING_SOFT_TIME_LIMIT,
    time_limit=settings.SCORING_SOFT_TIME_LIMIT + 120,
)
def score_images(image_ids: list[int]) -> dict:
    try:
        report = scores_compute(image_ids=[int(i) for i in image_ids], missing_only=True)
    except ScoringError as exc:
        # Missing or broken scorer files: nothing was written for the failing batch; say so and stop here
        # (retrying cannot help until an admin fixes the files and runs score_images).
        logger.error("scoring: %s", exc)
        return {"error": str(exc)}
    return report.as_dict()
