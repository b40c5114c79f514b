"""The broker refusing a message when a job is made (the in-process half of the Redis test; the real worker and
Redis are in test_redis_generation.py): the job is saved, its tasks say why they wait, and the periodic requeue
sends them once the broker answers again; each image is made once."""

from __future__ import annotations

import pytest
from kombu.exceptions import OperationalError

from generation import services
from generation import tasks as generation_tasks
from generation.models import GenerationJob, GenerationTask, Image
from generation.services.jobs import NOT_QUEUED
from tests.generation.helpers import fake_pipelines, make_prompt_set, make_variant  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db


def test_a_job_made_while_the_broker_is_down_waits_and_is_sent_when_it_is_back(
        fake_pipelines, django_capture_on_commit_callbacks):
    variant = make_variant("Broker A")
    prompt_set = make_prompt_set("Broker set", n=2)
    sent = []

    def refused(*args, **kwargs):
        sent.append(args)
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    with pytest.MonkeyPatch.context() as broker_down:
        broker_down.setattr(generation_tasks.run_tasks, "apply_async", refused)
        with django_capture_on_commit_callbacks(execute=True):
            job = services.job_create(variants=[variant], prompt_set=prompt_set, seeds=[3])  # no error for the admin
        assert len(sent) == 1
        assert list(job.tasks.values_list("status", "error")) == [("pending", NOT_QUEUED)] * 2
        assert GenerationJob.objects.get(id=job.id).status == GenerationJob.Status.PENDING
        assert services.tasks_requeue_unsent() == 2  # still down: tried, marked again
        assert list(job.tasks.values_list("error", flat=True)) == [NOT_QUEUED] * 2
        assert len(sent) == 2
    # the broker is back (tasks run in process here)
    assert generation_tasks.requeue_unsent.apply().get() == 2
    assert services.tasks_requeue_unsent() == 0
    assert list(job.tasks.values_list("status", "attempts", "error")) == [("done", 1, "")] * 2
    assert Image.objects.filter(job=job).count() == 2 and fake_pipelines.images_made == 2
    assert GenerationJob.objects.get(id=job.id).status == GenerationJob.Status.DONE
    assert not GenerationTask.objects.filter(error=NOT_QUEUED).exists()
