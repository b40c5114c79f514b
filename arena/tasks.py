"""Celery tasks of the arena (queue ``default``). Thin: one service call each."""

from __future__ import annotations

from celery import shared_task

from arena.services import ratings


@shared_task(name="arena.apply_ratings", acks_late=True, reject_on_worker_lost=True, soft_time_limit=600, time_limit=660)
def apply_ratings() -> int:
    """Place the votes waiting for the ratings consumer in the log and apply them (see arena.services.ratings)."""
    return ratings.ratings_consume()
