"""Reads of the generation app: job progress, history, images, live task state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from django.db.models import Avg, Count, Max, Min, QuerySet

from generation.models import GenerationJob, GenerationTask, Image, ModelVariant, Prompt, PromptSet

_S = GenerationTask.Status


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


@dataclass
class Progress:
    total: int = 0
    done: int = 0
    failed: int = 0
    running: int = 0
    pending: int = 0
    cancelled: int = 0
    seconds_per_image: float | None = None
    eta_seconds: float | None = None

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.cancelled

    @property
    def percent(self) -> int:
        return int(round(100 * self.finished / self.total)) if self.total else 100

    @property
    def eta_display(self) -> str:
        return _duration(self.eta_seconds)

    @property
    def speed_display(self) -> str:
        return "—" if self.seconds_per_image is None else f"{self.seconds_per_image:.2f} s/image"

    @property
    def done_percent(self) -> int:
        return int(round(100 * self.done / self.total)) if self.total else 100

    @property
    def failed_percent(self) -> int:
        return int(round(100 * self.failed / self.total)) if self.total else 0


@dataclass
class ModelProgress(Progress):
    variant_id: int = 0
    variant_name: str = ""


@dataclass
class JobProgress(Progress):
    job: GenerationJob | None = None
    models: list[ModelProgress] = field(default_factory=list)

    @property
    def active(self) -> bool:
        """Still moving: the page keeps polling while this is true."""
        if self.running:
            return True
        return self.pending > 0 and (self.job is None or self.job.status != GenerationJob.Status.CANCELLED)


def _counts(rows) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = {}
    for row in rows:
        out.setdefault(row["variant_id"], {})[row["status"]] = row["n"]
    return out


def job_progress(*, job: GenerationJob) -> JobProgress:
    """Images done/total, seconds per image and ETA, for the job and for each model in it."""
    counts = _counts(job.tasks.values("variant_id", "status").annotate(n=Count("id")))
    speeds = {row["variant_id"]: row["s"] for row in
              Image.objects.filter(job=job).values("variant_id").annotate(s=Avg("seconds"))}
    names = dict(ModelVariant.objects.filter(id__in=list(counts)).values_list("id", "name"))
    progress = JobProgress(job=job)
    weighted_seconds = 0.0
    for variant_id in sorted(counts, key=lambda v: names.get(v, "")):
        c = counts[variant_id]
        model = ModelProgress(variant_id=variant_id, variant_name=names.get(variant_id, "?"),
                              total=sum(c.values()), done=c.get(_S.DONE, 0), failed=c.get(_S.FAILED, 0),
                              running=c.get(_S.RUNNING, 0), pending=c.get(_S.PENDING, 0),
                              cancelled=c.get(_S.CANCELLED, 0), seconds_per_image=speeds.get(variant_id))
        left = model.pending + model.running
        if model.seconds_per_image is not None:
            model.eta_seconds = left * model.seconds_per_image
        progress.models.append(model)
        for name in ("total", "done", "failed", "running", "pending", "cancelled"):
            setattr(progress, name, getattr(progress, name) + getattr(model, name))
    known = [m for m in progress.models if m.seconds_per_image is not None]
    if known:
        weighted_seconds = sum(m.seconds_per_image * m.done for m in known)
        done_known = sum(m.done for m in known)
        progress.seconds_per_image = weighted_seconds / done_known if done_known else None
        if progress.seconds_per_image is not None:
            # Models not started yet are assumed as fast as the average of those that have.
            progress.eta_seconds = sum(
                (m.pending + m.running) * (m.seconds_per_image or progress.seconds_per_image) for m in progress.models
            )
    if progress.pending + progress.running == 0:
        progress.eta_seconds = 0.0
    return progress


def job_last_progress_at(*, job: GenerationJob):
    """When the job last moved: its latest finished image, else when its first task started (None before that).
    The job page counts the ETA down from there, so it falls between two images instead of standing still."""
    latest = job.tasks.filter(finished_at__isnull=False).aggregate(m=Max("finished_at"))["m"]
    if latest is not None:
        return latest
    return job.tasks.filter(started_at__isnull=False).aggregate(m=Min("started_at"))["m"]


def jobs_recent(*, limit: int = 50) -> QuerySet[GenerationJob]:
    return GenerationJob.objects.select_related("created_by", "prompt_set").order_by("-created_at", "-id")[:limit]


def jobs_with_progress(*, limit: int = 50) -> list[JobProgress]:
    return [job_progress(job=job) for job in jobs_recent(limit=limit)]


def job_images(*, job: GenerationJob, limit: int = 60) -> QuerySet[Image]:
    return job.images.select_related("variant", "prompt").order_by("-id")[:limit]


def job_failures(*, job: GenerationJob, limit: int = 20) -> QuerySet[GenerationTask]:
    return job.tasks.filter(status=_S.FAILED).select_related("variant", "prompt").order_by("id")[:limit]


def variants_schedulable() -> QuerySet[ModelVariant]:
    return ModelVariant.objects.filter(enabled=True).exclude(source_type=ModelVariant.SourceType.NONE).order_by("name")


def prompt_sets_with_counts() -> QuerySet[PromptSet]:
    return PromptSet.objects.annotate(prompt_count=Count("prompts")).order_by("name")


def images_recent(*, limit: int = 60, variant: ModelVariant | None = None) -> QuerySet[Image]:
    qs = Image.objects.select_related("variant", "prompt")
    if variant is not None:
        qs = qs.filter(variant=variant)
    return qs.order_by("-id")[:limit]


@dataclass
class LiveState:
    """What a free-prompt duel page needs: all ready, any failed, and the images in task order."""

    ready: bool
    failed: bool
    errors: list[str]
    images: list[Image | None]


def tasks_live_state(*, task_ids: Sequence[int]) -> LiveState:
    tasks = {t.pk: t for t in GenerationTask.objects.filter(id__in=list(task_ids)).select_related("image", "image__variant")}
    ordered = [tasks.get(i) for i in task_ids]
    failed = any(t is None or t.status in (_S.FAILED, _S.CANCELLED) for t in ordered)
    images = [t.image if t is not None else None for t in ordered]
    ready = not failed and all(t.status == _S.DONE and t.image is not None for t in ordered if t is not None)
    errors = [t.error for t in ordered if t is not None and t.error]
    return LiveState(ready=ready, failed=failed, errors=errors, images=images)


def prompt_image_groups(*, min_variants: int = 2) -> QuerySet:
    """(prompt, settings_key) groups made by at least ``min_variants`` enabled models: the material of
    fixed-prompt duels."""
    return (Image.objects.filter(prompt__source=Prompt.Source.FIXED, variant__enabled=True)
            .values("prompt_id", "settings_key")
            .annotate(models=Count("variant", distinct=True))
            .filter(models__gte=min_variants)
            .order_by("prompt_id", "settings_key"))


def _written_schedule(sampler: str, schedule_type: str) -> str:
    """"Automatic (Karras)": the schedule type with what Automatic means for the sampler, as A1111 records it."""
    from generation.pipelines.infotext import written_schedule_type
    from generation.pipelines.types import GenerationError

    if not sampler or schedule_type != "Automatic":
        return schedule_type
    try:
        written = written_schedule_type(sampler, schedule_type)
    except GenerationError:
        return schedule_type
    return schedule_type if written == schedule_type else f"{schedule_type} ({written})"


def _seeds_words(seeds: list) -> str:
    if len(seeds) <= 8:
        return "seed " + ", ".join(str(s) for s in seeds) if len(seeds) == 1 else "seeds " + ", ".join(str(s) for s in seeds)
    return f"{len(seeds)} seeds ({', '.join(str(s) for s in seeds[:4])} … {seeds[-1]})"


def job_settings_words(*, job: GenerationJob) -> list[str]:
    """What an admin asked a job for, in A1111's words: the seeds, then each setting the job chose (the others
    are each model's default), e.g. ["seeds 1, 2", "DPM++ 2M", "schedule Automatic (Karras)", "28 steps", ...]."""
    s = job.settings or {}
    words = [_seeds_words(list(s.get("seeds") or []))] if s.get("seeds") else []
    chosen = len(words)
    if s.get("sampler"):
        words.append(str(s["sampler"]))
    if s.get("schedule_type") and (s.get("sampler") or s["schedule_type"] != "Automatic"):
        words.append(f"schedule {_written_schedule(s.get('sampler', ''), s['schedule_type'])}")
    if s.get("steps"):
        words.append(f"{s['steps']} steps")
    if s.get("cfg_scale") is not None:
        words.append(f"CFG scale {s['cfg_scale']:g}")
    if s.get("width") and s.get("height"):
        words.append(f"{s['width']}×{s['height']}")
    elif s.get("width") or s.get("height"):
        words.append(f"width {s['width']}" if s.get("width") else f"height {s['height']}")
    if s.get("clip_skip"):
        words.append(f"clip skip {s['clip_skip']}")
    if s.get("enable_hr") is False:
        words.append("no hires fix")
    hires = [f"upscale by {s['hr_scale']:g}" if s.get("hr_scale") is not None else "",
             str(s["hr_upscaler"]) if s.get("hr_upscaler") else "",
             (f"{s['hr_second_pass_steps']} hires steps" if s["hr_second_pass_steps"] else "hires steps as steps")
             if s.get("hr_second_pass_steps") is not None else "",
             f"denoising strength {s['denoising_strength']:g}" if s.get("denoising_strength") is not None else ""]
    hires = [part for part in hires if part]
    if s.get("enable_hr") or (hires and s.get("enable_hr") is None):
        prefix = "hires fix" if s.get("enable_hr") else "where hires fix is on"
        words.append(f"{prefix}: {', '.join(hires)}" if hires else prefix)
    if "negative_prompt" in s:
        words.append(f"negative prompt “{s['negative_prompt']}”" if s["negative_prompt"] else "no negative prompt")
    words.append("other settings: each model's default" if len(words) > chosen else "each model's default settings")
    if s.get("skipped_existing"):
        words.append(f"{s['skipped_existing']} images existed already")
    return words
