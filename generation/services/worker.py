"""The worker runtime: claim tasks, generate them in batches of one model and settings, store each image
exactly once, and release or fail what cannot be done. Torch and diffusers come with the pipelines' heavy
functions (``generate``, the pipeline cache's loads), which import them when first called."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from PIL import Image as PILImage

from generation import images as png
from generation.models import GenerationJob, GenerationTask, Image, ModelVariant, Prompt
from generation.pipelines.prompt_syntax import parse_lora_tags
from generation.pipelines.types import GenerationError
from generation.services.images import ImageWriteError, image_encode, image_store
from generation.services.jobs import job_refresh_status
from generation.services.loras import lora_set_key, prompt_loras_resolve
from generation.services.registry import variant_mark_failing, variant_mark_healthy
from generation.text import one_line

logger = logging.getLogger(__name__)

# A task whose worker died is taken back by its own redelivered message (same claim token). One still marked
# running long after any worker could be on it (its message was lost) is put back by job_retry_failed.
MAX_TASK_ATTEMPTS = 5


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pipelines():
    """The pipelines package (tests put a stand-in here)."""
    from generation import pipelines

    return pipelines


def generation_device() -> str | None:
    """The device of ``GENERATION_DEVICE``; None lets the pipelines choose."""
    device = settings.GENERATION_DEVICE
    return None if device in ("", "auto") else device


# --- claims -------------------------------------------------------------------------------------------------------


def tasks_claim(*, task_ids: Sequence[int], token: str = "", worker: str = "") -> list[GenerationTask]:
    """Claim tasks with a conditional update: pending ones, or ones still marked running by an earlier delivery
    of this same message (``token`` is the Celery task id; a worker killed mid-task left them running). Tasks
    that were tried too often are failed instead of being taken again."""
    token = token or f"direct-{os.urandom(8).hex()}"
    ids = list(task_ids)
    now = timezone.now()
    claimable = Q(status=GenerationTask.Status.PENDING) | Q(status=GenerationTask.Status.RUNNING, claim_token=token)
    GenerationTask.objects.filter(claimable, id__in=ids, attempts__gte=MAX_TASK_ATTEMPTS).update(
        status=GenerationTask.Status.FAILED, finished_at=now,
        error=f"gave up after {MAX_TASK_ATTEMPTS} attempts (the worker died or timed out each time)",
    )
    claimed = GenerationTask.objects.filter(claimable, id__in=ids).update(
        status=GenerationTask.Status.RUNNING, claim_token=token, worker=worker[:200], started_at=now,
        attempts=F("attempts") + 1,
    )
    if not claimed:
        return []
    tasks = list(GenerationTask.objects.filter(id__in=ids, status=GenerationTask.Status.RUNNING, claim_token=token)
                 .select_related("variant", "prompt", "job").order_by("id"))
    job_ids = {t.job_id for t in tasks if t.job_id}
    if job_ids:
        GenerationJob.objects.filter(id__in=job_ids, status=GenerationJob.Status.PENDING).update(
            status=GenerationJob.Status.RUNNING, started_at=now
        )
    return tasks


def tasks_release(*, task_ids: Sequence[int], token: str) -> int:
    """Give claimed, unfinished tasks back to the queue (before a retry)."""
    return GenerationTask.objects.filter(id__in=list(task_ids), status=GenerationTask.Status.RUNNING, claim_token=token).update(
        status=GenerationTask.Status.PENDING, claim_token="", started_at=None
    )


def tasks_fail(*, task_ids: Sequence[int], error: str) -> int:
    ids = list(task_ids)
    failed = GenerationTask.objects.filter(
        id__in=ids, status__in=(GenerationTask.Status.PENDING, GenerationTask.Status.RUNNING)
    ).update(status=GenerationTask.Status.FAILED, error=one_line(error), finished_at=timezone.now())
    for job_id in set(GenerationTask.objects.filter(id__in=ids, job__isnull=False).values_list("job_id", flat=True)):
        job_refresh_status(job_id=job_id)
    return failed


def tasks_fail_claimed(*, task_ids: Iterable[int], token: str, error: str) -> int:
    """Fail what this delivery still holds (time limit hit, retries exhausted)."""
    ids = list(GenerationTask.objects.filter(id__in=list(task_ids), claim_token=token,
                                             status=GenerationTask.Status.RUNNING).values_list("id", flat=True))
    return tasks_fail(task_ids=ids, error=error) if ids else 0


# --- storing --------------------------------------------------------------------------------------------------------


def task_encode(task: GenerationTask, image: PILImage.Image, *, lora_hashes: dict[str, str] | None = None) -> png.EncodedImage:
    """The task's three files; the original's A1111 record lists ``lora_hashes`` (the prompt's LoRAs, resolved
    by ``task_plan`` in the caller's thread: this one may run in a helper thread, without the database)."""
    return image_encode(variant=task.variant, prompt=task.prompt, image=image, settings=task.sampler_settings,
                        lora_hashes=lora_hashes, guidance_rescale=task.variant.guidance_rescale)


def task_complete(*, task: GenerationTask, image: PILImage.Image, seconds: float, worker: str,
                  encoded: png.EncodedImage | None = None) -> Image:
    """Store a task's image and mark the task done, in one transaction (a worker killed before the commit
    leaves no image row; one killed after it leaves a done task that no delivery takes again)."""
    with transaction.atomic():
        stored = image_store(variant=task.variant, prompt=task.prompt, image=image, settings=task.sampler_settings,
                             seconds=seconds, worker=worker, job=task.job, encoded=encoded)
        _task_link(task=task, image=stored)
    return stored


def _task_link(*, task: GenerationTask, image: Image) -> None:
    # An image belongs to the first task that made it; a later task for the same cell is done without one.
    taken = GenerationTask.objects.filter(image=image).exclude(id=task.pk).exists()
    GenerationTask.objects.filter(id=task.pk).update(
        status=GenerationTask.Status.DONE, image=None if taken else image, error="", finished_at=timezone.now()
    )


@dataclass
class RunResult:
    claimed: int = 0
    stored: int = 0
    reused: int = 0
    failed: int = 0
    seconds: float = 0.0
    job_ids: set[int] = field(default_factory=set)


class _OverlappedStore:
    """Stores batches one behind: batch k's files are encoded in a helper thread (Pillow releases the GIL while
    it compresses) during batch k+1's generation, then written here, in the caller's thread and transaction."""

    def __init__(self, *, worker: str, result: RunResult):
        self.worker, self.result = worker, result
        self.pool = None
        self.waiting: tuple | None = None

    def overlap(self, device: str) -> None:
        """Overlap only when the model runs on an accelerator: on CPU the encoder thread would take a core
        from torch's threads (which then wait for it), so there it encodes inline."""
        if self.pool is None and str(device).startswith("cuda"):
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generation-encode")

    def submit(self, chunk: list[GenerationTask], pictures: list, elapsed: float,
               lora_hashes: list[dict[str, str]] | None = None) -> None:
        hashes = lora_hashes or [{} for _ in chunk]
        work = lambda: [task_encode(t, p, lora_hashes=h) for t, p, h in zip(chunk, pictures, hashes)]  # noqa: E731
        if self.pool is None:
            from concurrent.futures import Future

            future: Future = Future()
            future.set_result(work())
        else:
            future = self.pool.submit(work)
        self.flush()
        self.waiting = (chunk, pictures, elapsed, future)
        if self.pool is None:
            self.flush()

    def flush(self) -> None:
        if self.waiting is None:
            return
        chunk, pictures, elapsed, future = self.waiting
        self.waiting = None
        encoded = future.result()
        for task, picture, files in zip(chunk, pictures, encoded):
            try:
                task_complete(task=task, image=picture, seconds=elapsed / len(chunk), worker=self.worker, encoded=files)
            except ImageWriteError as exc:  # the media storage is full or failing: nothing of the image was kept
                logger.warning("task %s: %s", task.pk, exc.strerror)
                self.result.failed += tasks_fail(task_ids=[task.pk], error=str(exc.strerror))
                continue
            self.result.stored += 1
        for job_id in {t.job_id for t in chunk if t.job_id}:
            job_refresh_status(job_id=job_id)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


# --- what the pipelines get -------------------------------------------------------------------------------------------


def variant_spec(variant: ModelVariant):
    """The pipelines' description of a model variant. The cache key changes when what is loaded changes
    (path, config, prediction type, LoRAs), so an edited variant is loaded afresh."""
    api = _pipelines()
    loras = tuple(api.LoraSpec(path=lora.path, weight=lora.weight) for lora in variant.loras.all())
    fingerprint = json.dumps([variant.source_type, variant.source_path, variant.config_path, variant.prediction_type,
                              [(lora.path, lora.weight) for lora in loras]])
    return api.VariantSpec(
        key=f"variant-{variant.pk}-{hashlib.sha256(fingerprint.encode()).hexdigest()[:12]}",
        source_type=variant.source_type,
        source_path=variant.source_path,
        config_path=variant.config_path or "",
        prediction_type=variant.prediction_type,
        loras=loras,
    )


def generation_request(task: GenerationTask, *, prompt_text: str | None = None, guidance_rescale: float | None = None):
    """The pipelines' request of a task: every one of its sampler settings (schedule type, hires pass, clip skip
    ...), the model's CFG rescale (or ``guidance_rescale``) and the prompt the encoders see: ``prompt_text``,
    else the task's prompt with its ``<lora:...>`` tags removed as A1111 removes them."""
    if prompt_text is None:
        prompt_text = parse_lora_tags(task.prompt.text).text
    rescale = task.variant.guidance_rescale if guidance_rescale is None else guidance_rescale
    return _pipelines().GenerationRequest(prompt=prompt_text, guidance_rescale=float(rescale),
                                          **task.sampler_settings.as_dict())


@dataclass(frozen=True)
class TaskPlan:
    """What the pipelines get for one task, and what its PNG record lists: the variant with the prompt's LoRAs
    on top (its own cache entry), the request, and ``Lora hashes``."""

    spec: object
    request: object
    lora_hashes: dict[str, str]


def task_plan(task: GenerationTask) -> TaskPlan:
    """Resolve a task's prompt against the LoRA registry (ValidationError, one line, for an unknown name: the
    LoRA was removed since the job was made) and build its spec and request. A voter's prompt applies no LoRA."""
    api = _pipelines()
    resolved = prompt_loras_resolve(text=task.prompt.text, negative_prompt=task.negative_prompt,
                                    loras_allowed=task.prompt.source != Prompt.Source.FREE)
    spec = variant_spec(task.variant)
    if resolved.loras:
        spec = api.with_prompt_loras(spec, resolved.specs(api))
    return TaskPlan(spec=spec, request=generation_request(task, prompt_text=resolved.text), lora_hashes=resolved.hashes)


def _pipeline_cache(api):
    """This process's pipeline cache: one installed already (by a test or the benchmark), else a new one
    holding ``PIPELINE_CACHE_SIZE`` pipelines."""
    cache = api.set_pipeline_cache(None)
    if cache is None:
        cache = api.PipelineCache(max_entries=settings.PIPELINE_CACHE_SIZE)
    api.set_pipeline_cache(cache)
    return cache


def _pipeline_load(api, spec) -> str:
    """Load ``spec`` into the worker's pipeline cache (a hit when it is there already); returns the device."""
    resolver = getattr(api, "resolve_device", None)
    if resolver is None:
        from generation.pipelines.loading import resolve_device as resolver
    device = resolver(generation_device())
    _pipeline_cache(api).get(spec, device)
    return device


# --- running tasks ------------------------------------------------------------------------------------------------------


class TransientGenerationFault(Exception):
    """The batch may succeed when tried again (out of GPU memory); the tasks were released."""

    def __init__(self, message: str, *, out_of_memory: bool = False):
        super().__init__(message)
        self.out_of_memory = out_of_memory


@dataclass
class _Run:
    """One delivery's state while it runs its tasks."""

    api: object  # the pipelines package
    generate: Callable
    batch: int
    result: RunResult
    store: _OverlappedStore


def _reuse_made(tasks: list[GenerationTask], result: RunResult) -> list[GenerationTask]:
    """Link the tasks whose cell was made already (by an earlier job or delivery); returns the others."""
    todo = []
    for task in tasks:
        existing = Image.objects.filter(variant_id=task.variant_id, prompt_id=task.prompt_id,
                                        settings_key=task.settings_key).first()
        if existing is not None:
            with transaction.atomic():
                _task_link(task=task, image=existing)
            result.reused += 1
        else:
            todo.append(task)
    return todo


def _load(run: _Run, variant: ModelVariant, spec, group: list[GenerationTask]) -> bool:
    """Load the group's model (or take it from the cache); a load failure marks the model failing and fails
    the group. Out of memory is transient."""
    pipelines = run.api
    try:
        run.store.overlap(_pipeline_load(pipelines, spec))
    except pipelines.OutOfMemory as exc:
        raise TransientGenerationFault(f"out of GPU memory loading {variant.name}: {one_line(exc, 300)}",
                                       out_of_memory=True) from exc
    except SoftTimeLimitExceeded:
        raise
    except Exception as exc:
        message = f"{variant.name} failed to load: {one_line(exc, 400)}"
        logger.warning("%s", message)
        variant_mark_failing(variant_id=variant.pk, message=message)
        variant.health = ModelVariant.Health.FAILING
        run.result.failed += tasks_fail(task_ids=[t.pk for t in group], error=message)
        return False
    return True


def _generate_chunk(run: _Run, spec, chunk: list[GenerationTask], requests: list) -> list | None:
    """The chunk's images, or None when the chunk failed (its tasks marked failed)."""
    pipelines = run.api
    ids = [t.pk for t in chunk]
    try:
        pictures = run.generate(spec, requests, batch_size=run.batch, device=generation_device())
    except pipelines.OutOfMemory as exc:
        raise TransientGenerationFault(f"out of GPU memory at batch size {run.batch}: {one_line(exc, 300)}",
                                       out_of_memory=True) from exc
    except pipelines.GenerationError as exc:
        run.result.failed += tasks_fail(task_ids=ids, error=one_line(exc))
        return None
    except SoftTimeLimitExceeded:
        raise
    except Exception as exc:  # a bug or an unexpected library error: fail clearly, never leave them running
        logger.exception("generation of tasks %s failed", ids)
        run.result.failed += tasks_fail(task_ids=ids, error=f"unexpected error: {type(exc).__name__}: {one_line(exc, 500)}")
        return None
    if len(pictures) != len(chunk):
        run.result.failed += tasks_fail(task_ids=ids, error=f"the pipeline returned {len(pictures)} images for {len(chunk)} requests")
        return None
    return pictures


def _plan_group(run: _Run, group: list[GenerationTask]) -> tuple[list[GenerationTask], list[TaskPlan]]:
    """The group's tasks that can be planned, with their plans; the others are failed, each with its reason."""
    planned, plans = [], []
    for task in group:
        try:
            plan = task_plan(task)
        except ValidationError as exc:
            run.result.failed += tasks_fail(task_ids=[task.pk], error=f"bad request: {' '.join(exc.messages)}")
        except (GenerationError, run.api.GenerationError) as exc:
            run.result.failed += tasks_fail(task_ids=[task.pk], error=f"bad request: {exc}")
        except SoftTimeLimitExceeded:
            raise
        except Exception as exc:
            run.result.failed += tasks_fail(task_ids=[task.pk], error=f"bad request: {type(exc).__name__}: {exc}")
        else:
            planned.append(task)
            plans.append(plan)
    return planned, plans


def _run_group(run: _Run, group: list[GenerationTask]) -> None:
    """Generate one model's tasks of one batch setting and one LoRA set, a batch at a time."""
    variant = group[0].variant
    group, plans = _plan_group(run, group)
    if not group:
        return
    spec = plans[0].spec  # one LoRA set per group: every plan has the same spec
    requests = [plan.request for plan in plans]
    if not _load(run, variant, spec, group):
        return
    for start in range(0, len(group), run.batch):
        chunk = group[start:start + run.batch]
        started = time.perf_counter()
        pictures = _generate_chunk(run, spec, chunk, requests[start:start + run.batch])
        if pictures is None:
            continue
        elapsed = time.perf_counter() - started
        run.result.seconds += elapsed
        # Encode this batch's files in a helper thread while the next batch generates; store the
        # previous batch (database and storage writes stay in this thread).
        run.store.submit(chunk, pictures, elapsed, [plan.lora_hashes for plan in plans[start:start + run.batch]])
        if variant.health != ModelVariant.Health.OK:
            variant_mark_healthy(variant_id=variant.pk)
            variant.health = ModelVariant.Health.OK


def tasks_run(
    *,
    task_ids: Sequence[int],
    token: str = "",
    worker: str = "",
    batch_size: int | None = None,
    generate_fn: Callable | None = None,
) -> RunResult:
    """Claim tasks, generate them in batches of one model and settings, store each image exactly once.
    Raises TransientGenerationFault (tasks released) when the batch ran out of GPU memory."""
    pipelines = _pipelines()
    worker = worker or worker_name()
    token = token or f"direct-{os.urandom(8).hex()}"
    result = RunResult()
    tasks = tasks_claim(task_ids=task_ids, token=token, worker=worker)
    result.claimed = len(tasks)
    result.job_ids = {t.job_id for t in tasks if t.job_id}
    groups: dict[tuple, list[GenerationTask]] = {}
    for task in _reuse_made(tasks, result):
        key = (task.variant_id, lora_set_key(task.prompt.text), *task.sampler_settings.batch_key())
        groups.setdefault(key, []).append(task)
    run = _Run(api=pipelines, generate=generate_fn or pipelines.generate,
               batch=max(1, int(batch_size or settings.GENERATION_BATCH_SIZE)), result=result,
               store=_OverlappedStore(worker=worker, result=result))
    try:
        for group in groups.values():
            _run_group(run, group)
        run.store.flush()
    except TransientGenerationFault:
        run.store.flush()  # what was made is kept
        tasks_release(task_ids=[t.pk for t in tasks], token=token)
        raise
    finally:
        run.store.close()
    for job_id in result.job_ids:
        job_refresh_status(job_id=job_id)
    return result
