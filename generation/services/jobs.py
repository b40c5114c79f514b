"""Generation jobs (models × prompts × seeds), the live tasks of free-prompt duels, and sending tasks to the
``gpu`` queue. The worker side (claiming and running tasks) is in ``generation.services.worker``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from generation.models import GenerationJob, GenerationTask, Image, ModelVariant, Prompt, PromptSet
from generation.sampling import AUTOMATIC, MAX_SEED, SamplerSettings, size_errors
from generation.scoring import services as scoring
from generation.services.loras import lora_set_key, prompt_loras_resolve, prompts_check
from generation.services.prompts import PromptRow, prompt_rows_parse, prompts_from_text

logger = logging.getLogger(__name__)

MAX_JOB_TASKS = 20_000
# Batches per queue message: more overlap of encoding with generation, and a killed worker redoes at most this
# many batches (only their unfinished images).
BATCHES_PER_MESSAGE = 4


def variant_settings(variant: ModelVariant, **overrides: Any) -> SamplerSettings:
    """A variant's default sampler settings with ``overrides`` (None or "" keeps the variant's own); seed 0
    and no negative prompt until a task gives them."""
    chosen = {name: value for name, value in overrides.items() if value is not None and value != ""}
    return SamplerSettings.of(variant, seed=0, negative_prompt="", **chosen)


def _variant_errors(variants: Sequence[ModelVariant]) -> list[str]:
    errors = []
    if not variants:
        errors.append("pick at least one model")
    if len({v.pk for v in variants}) != len(variants):
        errors.append("a model is listed twice")
    for variant in variants:
        if not variant.enabled:
            errors.append(f"{variant.name} is disabled")
        if variant.source_type == ModelVariant.SourceType.NONE or not variant.source_path:
            errors.append(f"{variant.name} has no local weights (imported images only)")
    return errors


def _task_for(*, job: GenerationJob | None, variant: ModelVariant, prompt: Prompt,
              settings: SamplerSettings) -> GenerationTask:
    return GenerationTask(job=job, variant=variant, prompt=prompt, settings_key=settings.key, **settings.as_dict())


# --- jobs -------------------------------------------------------------------------------------------------------


@dataclass
class _JobPlan:
    """What ``job_create`` checked: the matrix to expand, before anything is written."""

    variants: list[ModelVariant]
    seeds: list[int]
    prompts: list[Prompt]  # chosen ones (a set or a list); pasted prompts are saved with the job
    pasted: list[PromptRow]
    settings: dict[int, SamplerSettings]  # by variant id: its defaults with the job's overrides


def _job_plan(*, variants: list[ModelVariant], seeds: Sequence[int], prompts: Sequence[Prompt] | None,
              prompt_set: PromptSet | None, prompt_text: str, overrides: dict[str, Any],
              negative_prompt: str | None) -> _JobPlan:
    errors: dict[str, list[str]] = {}
    if variant_errors := _variant_errors(variants):
        errors["variants"] = variant_errors
    seed_list = list(dict.fromkeys(int(s) for s in seeds))
    if not seed_list:
        errors.setdefault("seeds", []).append("give at least one seed")
    if any(not 0 <= s <= MAX_SEED for s in seed_list):
        errors.setdefault("seeds", []).append(f"seeds must be 0–{MAX_SEED}")
    sources = sum(bool(x) for x in (prompts, prompt_set, prompt_text.strip()))
    if sources != 1:
        errors.setdefault("prompts", []).append("pick a prompt set or paste prompts (one of them)")
    pasted: list[PromptRow] = []
    if prompt_text.strip() and sources == 1:
        try:
            pasted = prompt_rows_parse(data=prompt_text)
        except ValidationError as exc:
            errors.setdefault("prompts", []).extend(exc.messages)
    prompt_list = list(prompts or []) + (list(prompt_set.prompts.all()) if prompt_set is not None else [])
    if sources == 1 and (prompts or prompt_set is not None) and not prompt_list:
        errors.setdefault("prompts", []).append("the prompt set has no prompts")
    # LoRA tags name registered files, and the syntax is one the workers run: checked before anything is queued
    pairs = [(p.text, p.negative_prompt if negative_prompt is None else negative_prompt) for p in prompt_list] + [
        (row.text, row.negative_prompt or negative_prompt or "") for row in pasted]
    if prompt_errors := prompts_check(prompts=pairs):
        errors.setdefault("prompts", []).extend(prompt_errors)
    per_variant = {variant.pk: variant_settings(variant, **overrides) for variant in variants}
    for defaults in per_variant.values():  # models that share a bad setting say so once
        for field_name, messages in defaults.errors().items():
            for message in messages:
                if message not in errors.get(field_name, []):
                    errors.setdefault(field_name, []).append(message)
    count = len(variants) * max(1, len(prompt_list) or len(pasted)) * len(seed_list)
    if count > MAX_JOB_TASKS:
        errors.setdefault("seeds", []).append(f"{count} images is more than {MAX_JOB_TASKS} in one job")
    if errors:
        raise ValidationError(errors)
    return _JobPlan(variants=variants, seeds=seed_list, prompts=prompt_list, pasted=pasted, settings=per_variant)


def _job_cells(job: GenerationJob, plan: _JobPlan, negative_prompt: str | None) -> list[GenerationTask]:
    """One task per distinct cell, model-major (a worker meets each model in one run)."""
    tasks: list[GenerationTask] = []
    seen: set[tuple[int, int, str]] = set()
    for variant in plan.variants:
        for prompt in plan.prompts:
            negative = prompt.negative_prompt if negative_prompt is None else negative_prompt
            for seed in plan.seeds:
                cell_settings = replace(plan.settings[variant.pk], seed=seed, negative_prompt=negative)
                task = _task_for(job=job, variant=variant, prompt=prompt, settings=cell_settings)
                cell = (variant.pk, prompt.pk, task.settings_key)
                if cell not in seen:
                    seen.add(cell)
                    tasks.append(task)
    return tasks


def _without_images(tasks: list[GenerationTask], plan: _JobPlan) -> list[GenerationTask]:
    """The tasks whose image does not exist yet (made by an earlier job, or imported)."""
    existing = set(
        Image.objects.filter(variant__in=plan.variants, prompt__in=plan.prompts,
                             settings_key__in={t.settings_key for t in tasks})
        .values_list("variant_id", "prompt_id", "settings_key")
    )
    return [t for t in tasks if (t.variant_id, t.prompt_id, t.settings_key) not in existing]


def job_create(
    *,
    variants: Sequence[ModelVariant],
    seeds: Sequence[int],
    prompts: Sequence[Prompt] | None = None,
    prompt_set: PromptSet | None = None,
    prompt_text: str = "",
    name: str = "",
    sampler: str | None = None,
    steps: int | None = None,
    cfg_scale: float | None = None,
    width: int | None = None,
    height: int | None = None,
    clip_skip: int | None = None,
    schedule_type: str | None = None,
    enable_hr: bool | None = None,
    hr_scale: float | None = None,
    hr_second_pass_steps: int | None = None,
    denoising_strength: float | None = None,
    hr_upscaler: str | None = None,
    negative_prompt: str | None = None,
    created_by: Any = None,
) -> GenerationJob:
    """Schedule models × prompts × seeds. Settings left as None come from each model's defaults (A1111's names:
    ``schedule_type``, and the hires pass ``enable_hr``, ``hr_scale``, ``hr_second_pass_steps``,
    ``denoising_strength``, ``hr_upscaler``); a negative prompt left as None comes from each prompt. The prompts'
    ``<lora:NAME:WEIGHT>`` tags must name registered LoRAs. Images that exist already are not made again. The
    tasks are enqueued on the ``gpu`` queue once the transaction commits, grouped by model and settings.
    A sampler given without a schedule type samples on its own default schedule ("Automatic"), not the model's."""
    if sampler not in (None, "") and schedule_type in (None, ""):
        schedule_type = AUTOMATIC  # a sampler picked for the job comes with its own default schedule
    overrides = {"sampler": sampler, "schedule_type": schedule_type, "steps": steps, "cfg_scale": cfg_scale,
                 "width": width, "height": height, "clip_skip": clip_skip, "enable_hr": enable_hr,
                 "hr_scale": hr_scale, "hr_second_pass_steps": hr_second_pass_steps,
                 "denoising_strength": denoising_strength, "hr_upscaler": hr_upscaler}
    plan = _job_plan(variants=list(variants), seeds=seeds, prompts=prompts, prompt_set=prompt_set,
                     prompt_text=prompt_text, overrides=overrides, negative_prompt=negative_prompt)
    with transaction.atomic():
        if plan.pasted:
            plan.prompts = prompts_from_text(text=prompt_text, negative_prompt=negative_prompt or "")
        job = GenerationJob.objects.create(
            name=(name or "").strip()[:200], created_by=created_by if getattr(created_by, "pk", None) else None,
            prompt_set=prompt_set,
            settings={"seeds": plan.seeds, "variants": [v.pk for v in plan.variants],
                      **{k: v for k, v in overrides.items() if v not in (None, "")},
                      **({"negative_prompt": negative_prompt} if negative_prompt is not None else {})},
        )
        tasks = _job_cells(job, plan, negative_prompt)
        fresh = _without_images(tasks, plan)
        GenerationTask.objects.bulk_create(fresh, batch_size=500)
        job.settings["skipped_existing"] = len(tasks) - len(fresh)
        if not fresh:
            job.status = GenerationJob.Status.DONE
            job.finished_at = timezone.now()
        job.save(update_fields=["settings", "status", "finished_at"])
        task_ids = list(job.tasks.order_by("id").values_list("id", flat=True))
        transaction.on_commit(lambda: tasks_enqueue(task_ids=task_ids))
    return job


def job_create_matching(*, variant: ModelVariant, like: ModelVariant, name: str = "",
                        created_by: Any = None) -> GenerationJob | None:
    """Render ``variant`` on every fixed-set prompt ``like`` has images of, each with exactly the settings (seed
    and all) of ``like``'s image, so the two meet in fixed-prompt duels (a new fine-tune against its parent).
    None when ``like`` has no such images. The tasks go to the ``gpu`` queue once the transaction commits."""
    if variant_errors := _variant_errors([variant]):
        raise ValidationError({"variants": variant_errors})
    images = list(Image.objects.filter(variant=like, prompt__source=Prompt.Source.FIXED, prompt__prompt_set__isnull=False)
                  .select_related("prompt").order_by("prompt_id", "settings_key", "id"))
    if not images:
        return None
    if prompt_errors := prompts_check(prompts=sorted({(i.prompt.text, i.negative_prompt) for i in images})):
        raise ValidationError({"prompts": prompt_errors})
    cells: dict[tuple[int, str], GenerationTask] = {}
    for image in images:
        task = _task_for(job=None, variant=variant, prompt=image.prompt, settings=SamplerSettings.of(image))
        cells.setdefault((image.prompt_id, task.settings_key), task)
    sets = sorted({i.prompt.prompt_set_id for i in images})
    with transaction.atomic():
        job = GenerationJob.objects.create(
            name=(name or f"{variant.name}: {like.name}'s fixed prompts")[:200],
            created_by=created_by if getattr(created_by, "pk", None) else None,
            prompt_set_id=sets[0] if len(sets) == 1 else None,
            settings={"variants": [variant.pk], "matching": like.pk, "prompt_sets": sets},
        )
        tasks = list(cells.values())
        for task in tasks:
            task.job = job
        existing = set(Image.objects.filter(variant=variant, prompt_id__in={t.prompt_id for t in tasks})
                       .values_list("prompt_id", "settings_key"))
        fresh = [t for t in tasks if (t.prompt_id, t.settings_key) not in existing]
        GenerationTask.objects.bulk_create(fresh, batch_size=500)
        job.settings["skipped_existing"] = len(tasks) - len(fresh)
        if not fresh:
            job.status, job.finished_at = GenerationJob.Status.DONE, timezone.now()
        job.save(update_fields=["settings", "status", "finished_at"])
        task_ids = list(job.tasks.order_by("id").values_list("id", flat=True))
        transaction.on_commit(lambda: tasks_enqueue(task_ids=task_ids))
    return job


def job_cancel(*, job: GenerationJob) -> int:
    """Cancel what has not started; a batch already on a GPU finishes. Returns the number of tasks cancelled."""
    with transaction.atomic():
        job = GenerationJob.objects.select_for_update().get(pk=job.pk)
        if job.status in (GenerationJob.Status.DONE, GenerationJob.Status.CANCELLED):
            raise ValidationError(f"{job} is already {job.get_status_display()}")
        cancelled = job.tasks.filter(status=GenerationTask.Status.PENDING).update(
            status=GenerationTask.Status.CANCELLED, finished_at=timezone.now()
        )
        job.status = GenerationJob.Status.CANCELLED
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "finished_at"])
    return cancelled


def _stale_after() -> timedelta:
    return timedelta(seconds=settings.GENERATION_TASK_TIME_LIMIT + 120)


def job_retry_failed(*, job: GenerationJob) -> int:
    """Put the failed tasks of a job back in the queue (and any left running by a lost message, long after a
    worker could still be on them). Returns how many."""
    with transaction.atomic():
        job = GenerationJob.objects.select_for_update().get(pk=job.pk)
        stale = Q(status=GenerationTask.Status.RUNNING, started_at__lt=timezone.now() - _stale_after())
        ids = list(job.tasks.filter(Q(status=GenerationTask.Status.FAILED) | stale).values_list("id", flat=True))
        if not ids:
            raise ValidationError(f"{job} has no failed images to retry")
        GenerationTask.objects.filter(id__in=ids).update(
            status=GenerationTask.Status.PENDING, error="", attempts=0, claim_token="", started_at=None, finished_at=None
        )
        job.status = GenerationJob.Status.RUNNING if job.started_at else GenerationJob.Status.PENDING
        job.finished_at = None
        job.save(update_fields=["status", "finished_at"])
        transaction.on_commit(lambda: tasks_enqueue(task_ids=ids))
    return len(ids)


def _job_finished_hook(job_id: int) -> None:
    image_ids = list(Image.objects.filter(job_id=job_id).values_list("id", flat=True))
    if not image_ids:
        return
    try:
        scoring.scores_enqueue_for_images(image_ids)
    except Exception:  # scoring must never fail a finished generation job
        logger.exception("could not enqueue scoring for job %s", job_id)


def job_refresh_status(*, job_id: int) -> str:
    """Derive a job's status from its tasks; the first caller that sees it finish enqueues the scorers."""
    open_statuses = (GenerationTask.Status.PENDING, GenerationTask.Status.RUNNING)
    tasks = GenerationTask.objects.filter(job_id=job_id)
    if tasks.filter(status__in=open_statuses).exists():
        return GenerationJob.objects.filter(id=job_id).values_list("status", flat=True).first() or ""
    status = GenerationJob.Status.FAILED if tasks.filter(status=GenerationTask.Status.FAILED).exists() else GenerationJob.Status.DONE
    finished = GenerationJob.objects.filter(
        id=job_id, status__in=(GenerationJob.Status.PENDING, GenerationJob.Status.RUNNING)
    ).update(status=status, finished_at=timezone.now())
    if finished:
        transaction.on_commit(lambda: _job_finished_hook(job_id))
    return status


# --- live tasks for free-prompt duels ---------------------------------------------------------------------------


def tasks_create_live(*, prompt: Prompt, variants: list[ModelVariant], seed: int, width: int, height: int) -> list[GenerationTask]:
    """One task per model for a free-prompt duel (or free-for-all): each model's default sampler, schedule type,
    steps, CFG and clip skip at one common size, the prompt's negative prompt, one seed. No hires pass (the
    voter waits, and the images must come out the same size). The prompt is a voter's: ``<lora:...>`` tags are
    refused (voters may not apply LoRAs), as is syntax the workers do not run. Enqueued on the ``gpu`` queue on
    commit, one message per model so several workers can share the poll."""
    errors = _variant_errors(list(variants))
    if len(variants) < 2:
        errors.append("a duel needs at least two models")
    errors += size_errors(width=int(width), height=int(height))
    if not 0 <= int(seed) <= MAX_SEED:
        errors.append(f"seed must be 0–{MAX_SEED}")
    if not prompt.pk or not prompt.text.strip():
        errors.append("the prompt is empty or unsaved")
    else:
        try:
            prompt_loras_resolve(text=prompt.text, negative_prompt=prompt.negative_prompt, loras_allowed=False)
        except ValidationError as exc:
            errors.extend(exc.messages)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        tasks = []
        for variant in variants:
            task_settings = SamplerSettings.of(variant, seed=seed, negative_prompt=prompt.negative_prompt,
                                               width=width, height=height, enable_hr=False)
            task = _task_for(job=None, variant=variant, prompt=prompt, settings=task_settings)
            task.save()
            tasks.append(task)
        ids = [t.pk for t in tasks]
        transaction.on_commit(lambda: [tasks_enqueue(task_ids=[i]) for i in ids])
    return tasks


def tasks_cancel(*, task_ids: Sequence[int], error: str) -> int:
    """Cancel those of these tasks that have not started (a free-prompt duel that gave up on its images);
    one already on a GPU finishes. Returns the number cancelled."""
    return GenerationTask.objects.filter(id__in=list(task_ids), status=GenerationTask.Status.PENDING).update(
        status=GenerationTask.Status.CANCELLED, error=error
    )


# --- queueing -----------------------------------------------------------------------------------------------------


def tasks_enqueue(*, task_ids: Sequence[int], batch_size: int | None = None) -> int:
    """Send pending tasks to the ``gpu`` queue: grouped by model, settings and the LoRA set the prompt's tags ask
    for (model-major: each pipeline a worker loads serves a whole group), a few batches per message (so a worker
    encodes one batch while it generates the next). Returns the number of messages."""
    from generation.tasks import run_tasks  # generation.tasks imports these services

    batch = max(1, int(batch_size or settings.GENERATION_BATCH_SIZE)) * BATCHES_PER_MESSAGE
    shared = SamplerSettings.batch_fields()
    rows = (GenerationTask.objects.filter(id__in=list(task_ids), status=GenerationTask.Status.PENDING)
            .order_by("variant_id", *shared, "id")
            .values_list("id", "prompt__text", "variant_id", *shared))
    groups: dict[tuple, list[int]] = {}
    for task_id, text, *group in rows:
        groups.setdefault((*group, lora_set_key(text)), []).append(task_id)
    messages = 0
    for ids in groups.values():
        for start in range(0, len(ids), batch):
            run_tasks.apply_async(args=[ids[start:start + batch]])
            messages += 1
    return messages
