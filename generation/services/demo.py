"""The demo (``manage.py seed_generation_demo``, run by ``make run``): four tiny-model variants, a prompt set naming
three characters and one generation job over them, and its upgrade from random-weight to pre-trained models.

A fresh clone has no pre-trained tiny models (``generation.tiny``: about 12 minutes on 2 cores), so the first run
seeds the demo on the seeded random-weight build (seconds) in ``TINY_RANDOM_MODELS_DIR``, its variants named
"… · random weights". ``demo_upgrade`` (the ``generation.demo_upgrade`` task, on the ``train`` queue that the
local train worker of ``manage.py serve`` consumes) then builds the pre-trained models into ``TINY_MODELS_DIR``,
registers the four variants on them under the plain names (the names a demo seeded on a pre-trained build has
from the start, so a name always says which weights it runs), schedules their images (one job, one set of
settings) and, once that job is done, disables the random-weight variants: new polls use the pre-trained
models, while old polls and votes stay in the log. Every step keeps what exists, so running it again does
nothing new."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from kombu.exceptions import OperationalError as BrokerUnavailable

from generation.models import Character, GenerationJob, GenerationTask, ModelVariant, PromptSet
from generation.services.jobs import job_create, job_retry_failed, tasks_enqueue
from generation.services.prompts import prompt_set_import
from generation.services.registry import variant_register

logger = logging.getLogger(__name__)

JOB_NAME = "Demo: tiny models × Demo characters"
SET_NAME = "Demo characters"
RANDOM_SUFFIX = " · random weights"  # the random-weight variants' names and job name end with it
NEGATIVE = "worst quality, low quality, lowres, bad anatomy"
QUALITY = "masterpiece, best quality, newest, general"
CHARACTERS = {
    "Hatsune Miku": "hatsune miku",
    "Hakurei Reimu": "hakurei reimu",
    "Frieren": "frieren",
}
PROMPTS = [
    ("Hatsune Miku", f"{QUALITY}, 1girl, hatsune miku, vocaloid, twintails, aqua hair, smile, upper body"),
    ("Hatsune Miku", f"{QUALITY}, 1girl, hatsune miku, vocaloid, singing, microphone, stage lights, dynamic angle"),
    ("Hakurei Reimu", f"{QUALITY}, 1girl, hakurei reimu, touhou, red bow, miko, shrine, cherry blossoms"),
    ("Hakurei Reimu", f"{QUALITY}, 1girl, hakurei reimu, touhou, gohei, flying, night sky BREAK watercolor (medium)"),
    ("Frieren", f"{QUALITY}, 1girl, frieren, sousou no frieren, elf, white hair, twintails, grimoire, forest"),
    ("Frieren", f"{QUALITY}, 1girl, frieren, sousou no frieren, (smile:1.2), sitting, field of flowers, sunset"),
]
SEEDS = [1, 2]
SIZE = 256
STEPS = 4
CFG = 5.0
# The random-weight demo is the first run's, which must seed in under a minute on 2 cores: fewer images (their
# pictures are noise anyway): one prompt per character, one seed, 2 steps. The pre-trained demo, built in the
# background, makes the full set.
RANDOM_PROMPTS_PER_CHARACTER = 1
RANDOM_SEEDS = [1]
RANDOM_SIZE = 256
RANDOM_STEPS = 2
# The four variants (four are needed for 4-way polls): name, the TinyModels field of the checkpoint, and the rest.
VARIANTS = [
    ("Tiny Illustrious v0.1 (eps)", "eps_file", {"version": "v0.1", "kind": "base"}),
    ("Tiny Illustrious v1.0 (v-pred)", "v_file", {"version": "v1.0", "kind": "base", "prediction": "v"}),
    ("Tiny Illustrious v0.1 + style LoRA", "eps_file",
     {"version": "v0.1", "kind": "finetune", "lora": ("lora_kohya", 0.8),
      "description": "the kohya-format style LoRA at weight 0.8"}),
    ("Tiny Illustrious v0.1 aesthetic", "eps_dir",
     {"version": "v0.1", "kind": "aesthetic", "lora": ("lora_diffusers", -0.6),
      "description": "aesthetic-tuned stand-in: the diffusers folder with a LoRA at -0.6"}),
]
UPGRADE_NOTE = ("the demo runs on random-weight tiny models (noise images); pre-trained ones are being built in the "
                "background (~12 min on 2 cores), then they replace them")

Log = Callable[[str], None]


@dataclass(frozen=True)
class DemoSeed:
    variants: list[ModelVariant]
    prompt_set: PromptSet
    job: GenerationJob
    retired: int  # random-weight variants disabled by this call


def tiny_models_ready(root: str | os.PathLike, *, pretrained: bool = True) -> bool:
    """Whether ``root`` holds a complete tiny-model build of the current key (``pretrained`` or the seeded random
    weights), so that ``make_tiny_models`` returns at once. Builds nothing, imports no torch."""
    from generation.tiny import build_key
    from generation.tiny.build import read_manifest

    manifest = read_manifest(root)
    if not manifest or manifest.get("key") != build_key(pretrained=pretrained):
        return False
    return all(Path(root, rel).exists() for rel in (manifest.get("files") or {}).values()) and bool(manifest.get("files"))


def demo_variant_names(*, pretrained: bool) -> list[str]:
    suffix = "" if pretrained else RANDOM_SUFFIX
    return [name + suffix for name, _, _ in VARIANTS]


def demo_settings(*, pretrained: bool) -> dict:
    """The demo job's seeds, side and steps: the full set on the pre-trained build, fewer on random weights."""
    if pretrained:
        return {"seeds": SEEDS, "size": SIZE, "steps": STEPS}
    return {"seeds": RANDOM_SEEDS, "size": RANDOM_SIZE, "steps": RANDOM_STEPS}


def _variants(tiny, *, pretrained: bool, log: Log) -> list[ModelVariant]:
    config = demo_settings(pretrained=pretrained)
    variants: list[ModelVariant] = []
    for (_, field, spec), name in zip(VARIANTS, demo_variant_names(pretrained=pretrained)):
        existing = ModelVariant.objects.filter(name=name).first()
        if existing is not None:
            variants.append(existing)
            continue
        spec = dict(spec)
        lora = spec.pop("lora", None)
        description = spec.pop("description", "")
        if not pretrained:
            description = (description + "; " if description else "") + "seeded random weights (noise images)"
        try:
            variant = variant_register(
                path=tiny[field], name=name, family="Tiny Illustrious", description=description,
                parent=variants[0] if spec["kind"] != ModelVariant.Kind.BASE else None,
                loras=[(tiny[lora[0]], lora[1])] if lora else [],
                defaults={"width": config["size"], "height": config["size"], "steps": config["steps"],
                          "sampler": "Euler a"}, **spec)
        except ValidationError as exc:
            raise ValidationError(f"cannot register {name}: {' '.join(exc.messages)}") from None
        log(f"registered {variant.name}")
        variants.append(variant)
    return variants


def demo_prompts_import() -> PromptSet:
    for name, tags in CHARACTERS.items():
        Character.objects.get_or_create(name=name, defaults={"tags": tags})
    rows = ["prompt,negative_prompt,character"] + [
        ",".join((_csv_field(text), _csv_field(NEGATIVE), _csv_field(character))) for character, text in PROMPTS
    ]
    return prompt_set_import(name=SET_NAME, data="\n".join(rows) + "\n", filename="demo.csv",
                             description="Danbooru-style prompts naming three characters")


def _csv_field(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _job(variants: list[ModelVariant], prompt_set: PromptSet, *, pretrained: bool, resume: bool, log: Log) -> GenerationJob:
    name = JOB_NAME + ("" if pretrained else RANDOM_SUFFIX)
    job = GenerationJob.objects.filter(name=name).order_by("-id").first()
    if job is None:
        # One set of settings for every model (not each model's defaults: the v-prediction model's CFG differs),
        # so all four images of a prompt and seed share a settings key and can meet in polls.
        c = demo_settings(pretrained=pretrained)
        prompts = None  # the whole set
        if not pretrained:
            per_character: dict[int, list] = {}
            for prompt in prompt_set.prompts.order_by("id"):
                per_character.setdefault(prompt.character_id, []).append(prompt)
            prompts = [p for group in per_character.values() for p in group[:RANDOM_PROMPTS_PER_CHARACTER]]
        job = job_create(name=name, variants=variants, prompt_set=None if prompts else prompt_set, prompts=prompts,
                         seeds=c["seeds"], sampler="Euler a", steps=c["steps"], cfg_scale=CFG, width=c["size"],
                         height=c["size"])
        log(f"scheduled {job} ({job.tasks.count()} images at {c['size']}×{c['size']}, {c['steps']} steps, "
            f"CFG {CFG:g}, seeds {c['seeds']})"
            + ("" if settings.CELERY_TASK_ALWAYS_EAGER else "; the gpu workers will make them"))
    elif resume and job.tasks.filter(status=GenerationTask.Status.FAILED).exists():
        job_retry_failed(job=job)
    elif resume and job.tasks.filter(status=GenerationTask.Status.PENDING).exists():  # an interrupted earlier run
        tasks_enqueue(task_ids=list(job.tasks.filter(status=GenerationTask.Status.PENDING).values_list("id", flat=True)))
    job.refresh_from_db()
    return job


def demo_seed(*, tiny, pretrained: bool, resume: bool = True, log: Log | None = None) -> DemoSeed:
    """Register the demo's four variants on ``tiny`` (a ``generation.tiny.TinyModels``; ``pretrained`` says which
    build it is, and names them), import the prompt set and schedule the job of their images (``resume``: send
    again what an interrupted earlier run left pending or failed). On the pre-trained build, once its job is done,
    the random-weight variants are disabled. What exists is kept. ValidationError for a checkpoint that fails
    its check."""
    say = log or (lambda msg: None)
    variants = _variants(tiny, pretrained=pretrained, log=say)
    prompt_set = demo_prompts_import()
    job = _job(variants, prompt_set, pretrained=pretrained, resume=resume, log=say)
    retired = demo_random_retire(job=job) if pretrained else 0
    if retired:
        say(f"disabled the {retired} random-weight demo models: new polls use the pre-trained ones")
    return DemoSeed(variants=variants, prompt_set=prompt_set, job=job, retired=retired)


def demo_random_retire(*, job: GenerationJob) -> int:
    """Disable the random-weight demo variants once the pre-trained demo ``job`` is done (its images are there
    to draw polls from); their polls and votes stay. Returns how many were disabled."""
    if job.status != GenerationJob.Status.DONE:
        return 0
    return ModelVariant.objects.filter(name__in=demo_variant_names(pretrained=False), enabled=True).update(enabled=False)


def demo_upgrade_needed() -> bool:
    """Whether the demo still runs on enabled random-weight variants (the upgrade has not finished)."""
    return ModelVariant.objects.filter(name__in=demo_variant_names(pretrained=False), enabled=True).exists()


def demo_upgrade(*, resume: bool = True, log: Log | None = None) -> str:
    """Move a demo seeded on random weights to the pre-trained tiny models: build them into ``TINY_MODELS_DIR``
    (minutes, once; locked and content-keyed, so a second build is a no-op), register the four variants on them,
    schedule their job, and disable the random-weight ones when it is done. Returns "nothing" (no random-weight
    demo is enabled), "waiting" (the pre-trained job is still running: call again later), "done" or "failed"
    (the pre-trained job failed or was cancelled; the random-weight models stay). ``resume``: send again what
    an interrupted earlier run of the job left pending or failed (not when merely looking again)."""
    if not demo_upgrade_needed():
        return "nothing"
    from generation.tiny import make_tiny_models

    tiny = make_tiny_models(settings.TINY_MODELS_DIR, log=log)
    seeded = demo_seed(tiny=tiny, pretrained=True, resume=resume, log=log)
    if seeded.job.status == GenerationJob.Status.DONE:
        return "done"
    if seeded.job.status in (GenerationJob.Status.FAILED, GenerationJob.Status.CANCELLED):
        logger.warning("demo upgrade: %s is %s; the random-weight demo models stay enabled", seeded.job,
                       seeded.job.get_status_display())
        return "failed"
    return "waiting"


def demo_upgrade_enqueue() -> bool:
    """Send ``generation.demo_upgrade`` to the ``train`` queue when the demo runs on random weights and tasks go to
    a broker (never in eager mode: the build would take minutes in process). Returns whether it was sent."""
    if settings.CELERY_TASK_ALWAYS_EAGER or not demo_upgrade_needed():
        return False
    from generation.tasks import demo_upgrade as task  # generation.tasks imports these services

    try:
        task.apply_async()  # to the train queue (config/celery.py routes it)
    except BrokerUnavailable as exc:
        logger.warning("the task queue is unreachable (%s): the demo upgrade was not sent", exc)
        return False
    return True
