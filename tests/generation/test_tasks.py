"""The worker path with a stand-in for diffusers: claims, batches, retries, failures, redelivery, job status.
(The same path on the real tiny models is in test_real_generation.py.)"""

import pytest

from generation import selectors, services
from generation.scoring import services as scoring_services
from generation.models import GenerationJob, GenerationTask, Image, ModelVariant, Prompt
from generation.tasks import run_tasks
from tests.generation.helpers import fake_pipelines, make_prompt_set, make_variant  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def scored(monkeypatch):
    """A stand-in for the scorers' enqueue function, recording what it was given."""
    calls: list[list[int]] = []
    monkeypatch.setattr(scoring_services, "scores_enqueue_for_images", lambda image_ids: calls.append(sorted(image_ids)))
    return calls


def _job(django_capture_on_commit_callbacks, *, models=2, prompts=2, seeds=(1, 2), execute=True, **kwargs):
    variants = [make_variant(f"M{i}") for i in range(models)]
    with django_capture_on_commit_callbacks(execute=execute):
        job = services.job_create(variants=variants, prompt_set=make_prompt_set(n=prompts), seeds=list(seeds), **kwargs)
    job.refresh_from_db()
    return job, variants


def test_job_matrix_generates_every_image_once_and_loads_each_model_once(fake_pipelines, scored, settings,
                                                                          django_capture_on_commit_callbacks):
    settings.GENERATION_BATCH_SIZE = 2
    fake_pipelines.device = "cuda"  # batches are encoded in a helper thread while the next one generates
    job, variants = _job(django_capture_on_commit_callbacks, models=2, prompts=3, seeds=(1, 2))
    assert job.status == GenerationJob.Status.DONE and job.finished_at is not None
    assert job.tasks.filter(status=GenerationTask.Status.DONE, image__isnull=False).count() == 12
    assert Image.objects.filter(job=job).count() == 12
    assert fake_pipelines.loads == {services.variant_spec(v).key: 1 for v in variants}
    assert all(size <= 2 for _, size, _ in fake_pipelines.calls)  # batches of the configured size
    assert [name for name, *_ in fake_pipelines.calls] == sorted(name for name, *_ in fake_pipelines.calls)  # model-major
    assert scored == [sorted(Image.objects.values_list("id", flat=True))]
    image = Image.objects.select_related("task").first()
    assert image.task.settings_key == image.settings_key and image.worker


def test_calling_the_task_again_stores_no_duplicate(fake_pipelines, django_capture_on_commit_callbacks):
    job, _ = _job(django_capture_on_commit_callbacks, models=1, prompts=1, seeds=(1, 2))
    ids = list(job.tasks.values_list("id", flat=True))
    made = fake_pipelines.images_made
    result = run_tasks.apply(args=[ids]).get()
    assert result["claimed"] == 0
    assert Image.objects.count() == 2 and fake_pipelines.images_made == made


def test_a_claim_is_taken_once(fake_pipelines, django_capture_on_commit_callbacks):
    job, _ = _job(django_capture_on_commit_callbacks, execute=False, models=1, prompts=1, seeds=(1,))
    ids = list(job.tasks.values_list("id", flat=True))
    assert len(services.tasks_claim(task_ids=ids, token="message-1")) == 1
    assert services.tasks_claim(task_ids=ids, token="message-2") == []
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.RUNNING
    task = job.tasks.get()
    assert (task.status, task.claim_token, task.attempts) == ("running", "message-1", 1)


def test_a_redelivered_message_finishes_what_its_dead_worker_claimed_exactly_once(fake_pipelines, django_capture_on_commit_callbacks):
    job, _ = _job(django_capture_on_commit_callbacks, execute=False, models=1, prompts=1, seeds=(1, 2))
    ids = list(job.tasks.values_list("id", flat=True))
    services.tasks_claim(task_ids=ids, token="message-1")  # the worker claimed them, then was killed
    assert run_tasks.apply(args=[ids], task_id="message-2").get()["claimed"] == 0  # another message may not take them
    result = run_tasks.apply(args=[ids], task_id="message-1").get()  # the broker redelivers the same message
    assert result["stored"] == 2
    assert run_tasks.apply(args=[ids], task_id="message-1").get()["claimed"] == 0  # and once more: nothing
    assert Image.objects.count() == 2 and fake_pipelines.images_made == 2
    assert set(GenerationTask.objects.values_list("status", "attempts")) == {("done", 2)}
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.DONE


def test_a_worker_that_stored_the_image_but_died_before_the_ack_makes_nothing_new(fake_pipelines, django_capture_on_commit_callbacks):
    job, _ = _job(django_capture_on_commit_callbacks, execute=False, models=1, prompts=1, seeds=(1,))
    task = job.tasks.get()
    run_tasks.apply(args=[[task.pk]], task_id="message-1").get()
    GenerationTask.objects.filter(pk=task.pk).update(status="running", image=None)  # as if the commit raced the kill
    run_tasks.apply(args=[[task.pk]], task_id="message-1").get()
    task.refresh_from_db()
    assert task.status == "done" and task.image_id == Image.objects.get().pk
    assert fake_pipelines.images_made == 1


def test_a_task_that_keeps_killing_workers_is_failed(fake_pipelines, django_capture_on_commit_callbacks):
    job, _ = _job(django_capture_on_commit_callbacks, execute=False, models=1, prompts=1, seeds=(1,))
    task = job.tasks.get()
    GenerationTask.objects.filter(pk=task.pk).update(status="running", claim_token="m", attempts=services.MAX_TASK_ATTEMPTS)
    run_tasks.apply(args=[[task.pk]], task_id="m").get()
    task.refresh_from_db()
    assert task.status == "failed" and "gave up" in task.error
    assert fake_pipelines.images_made == 0


def test_a_failing_batch_is_marked_with_its_error(fake_pipelines, django_capture_on_commit_callbacks, settings):
    settings.GENERATION_BATCH_SIZE = 1
    fake_pipelines.fail_prompt = "prompt 1"
    job, _ = _job(django_capture_on_commit_callbacks, models=1, prompts=2, seeds=(1,))
    failed = job.tasks.get(status="failed")
    assert failed.prompt.text.endswith("prompt 1") and failed.error == "NaN latents" and failed.image is None
    assert job.tasks.filter(status="done").count() == 1
    assert job.status == GenerationJob.Status.FAILED


def test_a_checkpoint_that_fails_to_load_marks_the_model_failing(fake_pipelines, django_capture_on_commit_callbacks):
    variants = [make_variant("Good"), make_variant("Broken")]
    fake_pipelines.fail_load = {services.variant_spec(variants[1]).key}
    with django_capture_on_commit_callbacks(execute=True):
        job = services.job_create(variants=variants, prompt_set=make_prompt_set(n=1), seeds=[1])
    broken = ModelVariant.objects.get(name="Broken")
    assert broken.health == ModelVariant.Health.FAILING and "truncated file" in broken.health_message
    task = job.tasks.get(variant=broken)
    assert task.status == "failed" and "Broken failed to load" in task.error
    assert job.tasks.get(variant__name="Good").status == "done"
    assert ModelVariant.objects.get(name="Good").health == ModelVariant.Health.OK


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_out_of_memory_retries_with_smaller_batches(fake_pipelines, django_capture_on_commit_callbacks, settings, device):
    settings.GENERATION_BATCH_SIZE = 4
    fake_pipelines.device = device
    fake_pipelines.oom_above_batch = 1
    job, _ = _job(django_capture_on_commit_callbacks, models=1, prompts=2, seeds=(1, 2))
    assert [size for _, _, size in fake_pipelines.calls] == [4, 2, 1, 1, 1, 1]
    assert job.status == GenerationJob.Status.DONE and Image.objects.count() == 4


def test_batches_made_before_running_out_of_memory_are_kept(fake_pipelines, django_capture_on_commit_callbacks, settings):
    settings.GENERATION_BATCH_SIZE = 2
    fake_pipelines.device = "cuda"
    seen = []

    def oom_on_third_batch(spec, requests):
        seen.append(len(requests))
        if len(seen) == 3:
            raise fake_pipelines.OutOfMemory("CUDA out of memory")

    fake_pipelines.before_generate = oom_on_third_batch
    job, _ = _job(django_capture_on_commit_callbacks, models=1, prompts=4, seeds=(1, 2))
    assert job.status == GenerationJob.Status.DONE and Image.objects.count() == 8
    assert fake_pipelines.images_made == 8  # the two batches stored before the fault were not made again


def test_out_of_memory_at_batch_one_gives_up_with_a_clear_error(fake_pipelines, django_capture_on_commit_callbacks, settings):
    settings.GENERATION_BATCH_SIZE = 1
    fake_pipelines.oom_above_batch = 0
    job, _ = _job(django_capture_on_commit_callbacks, models=1, prompts=1, seeds=(1,))
    task = job.tasks.get()
    assert task.status == "failed" and "out of GPU memory" in task.error and "gave up" in task.error
    assert job.status == GenerationJob.Status.FAILED


def test_cancelled_tasks_are_not_generated(fake_pipelines, django_capture_on_commit_callbacks):
    job, _ = _job(django_capture_on_commit_callbacks, execute=False, models=1, prompts=1, seeds=(1, 2))
    services.job_cancel(job=job)
    run_tasks.apply(args=[list(job.tasks.values_list("id", flat=True))]).get()
    assert fake_pipelines.images_made == 0 and not Image.objects.exists()


def test_live_tasks_for_a_free_duel_produce_same_size_images(fake_pipelines, django_capture_on_commit_callbacks):
    a = make_variant("A", width=832, height=1216, steps=3)
    b = make_variant("B", width=1024, height=1024, steps=4, sampler="DPM++ 2M Karras")
    prompt = Prompt.objects.create(text="general, 1girl, fox ears", negative_prompt="lowres", source=Prompt.Source.FREE)
    with django_capture_on_commit_callbacks(execute=True):
        tasks = services.tasks_create_live(prompt=prompt, variants=[a, b], seed=5, width=256, height=320)
    state = selectors.tasks_live_state(task_ids=[t.pk for t in tasks])
    assert state.ready and not state.failed
    assert [(i.variant_id, i.width, i.height, i.seed) for i in state.images] == [(a.pk, 256, 320, 5), (b.pk, 256, 320, 5)]
    assert state.images[0].settings_key != state.images[1].settings_key  # each model's own sampler settings
    assert {i.voter_file.size > 0 for i in state.images} == {True}
