"""``manage.py seed_generation_demo``: the demo's models, prompts, characters and images (used by ``make run``).

Builds the tiny models into ``TINY_MODELS_DIR`` if missing, registers four enabled variants (four are needed
for 4-way polls), imports the "Demo characters" prompt set, schedules a job over them at 256×256 with few
steps and two seeds through the real queue path (in process when no broker is configured), and gives each
character reference images made from its generated images. Safe to run again: what exists is kept."""

from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from generation import services
from generation.models import Character, GenerationJob, GenerationTask, Image, ModelVariant, PromptSet

JOB_NAME = "Demo: tiny models × Demo characters"
SET_NAME = "Demo characters"
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
DEFAULTS = {"width": SIZE, "height": SIZE, "steps": STEPS, "sampler": "Euler a"}


def _csv_field(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


class Command(BaseCommand):
    help = "Seed the generation demo: tiny models, four variants, a prompt set with characters, and their images."

    def handle(self, *args, **options):
        started = time.perf_counter()
        tiny_dir = Path(settings.TINY_MODELS_DIR)
        call_command("make_tiny_models", str(tiny_dir), stdout=self.stdout, stderr=self.stderr)
        from generation.tiny import make_tiny_models

        tiny = make_tiny_models(tiny_dir)  # a no-op now: just the paths
        variants = self._variants(tiny)
        prompt_set = self._prompts()
        job = self._job(variants, prompt_set)
        self._references(prompt_set)
        done = Image.objects.filter(prompt__prompt_set=prompt_set).count()
        self.stdout.write(f"generation demo: {len(variants)} models, {prompt_set.prompts.count()} prompts, "
                          f"{done} images ({job.get_status_display()}) in {time.perf_counter() - started:.0f} s")

    def _register(self, name: str, path: str, **kwargs) -> ModelVariant:
        existing = ModelVariant.objects.filter(name=name).first()
        if existing is not None:
            return existing
        try:
            variant = services.variant_register(path=path, name=name, family="Tiny Illustrious", defaults=DEFAULTS, **kwargs)
        except ValidationError as exc:
            raise CommandError(f"cannot register {name}: {' '.join(exc.messages)}") from None
        self.stdout.write(f"registered {variant.name}")
        return variant

    def _variants(self, tiny) -> list[ModelVariant]:
        base = self._register("Tiny Illustrious v0.1 (eps)", tiny.eps_file, version="v0.1", kind="base")
        v = self._register("Tiny Illustrious v1.0 (v-pred)", tiny.v_file, version="v1.0", kind="base", prediction="v")
        lora = self._register("Tiny Illustrious v0.1 + style LoRA", tiny.eps_file, version="v0.1", kind="finetune",
                              parent=base, loras=[(tiny.lora_kohya, 0.8)],
                              description="the kohya-format style LoRA at weight 0.8")
        aesthetic = self._register("Tiny Illustrious v0.1 aesthetic", tiny.eps_dir, version="v0.1", kind="aesthetic",
                                   parent=base, loras=[(tiny.lora_diffusers, -0.6)],
                                   description="aesthetic-tuned stand-in: the diffusers folder with a LoRA at -0.6")
        return [base, v, lora, aesthetic]

    def _prompts(self) -> PromptSet:
        for name, tags in CHARACTERS.items():
            Character.objects.get_or_create(name=name, defaults={"tags": tags})
        rows = ["prompt,negative_prompt,character"] + [
            ",".join((_csv_field(text), _csv_field(NEGATIVE), _csv_field(character))) for character, text in PROMPTS
        ]
        return services.prompt_set_import(name=SET_NAME, data="\n".join(rows) + "\n", filename="demo.csv",
                                          description="Danbooru-style prompts naming three characters")

    def _job(self, variants: list[ModelVariant], prompt_set: PromptSet) -> GenerationJob:
        job = GenerationJob.objects.filter(name=JOB_NAME).order_by("-id").first()
        if job is None:
            # One set of settings for every model (not each model's defaults: the v-prediction model's CFG
            # differs), so all four images of a prompt and seed share a settings key and can meet in polls.
            job = services.job_create(name=JOB_NAME, variants=variants, prompt_set=prompt_set, seeds=SEEDS,
                                      sampler="Euler a", steps=STEPS, cfg_scale=CFG, width=SIZE, height=SIZE)
            self.stdout.write(f"scheduled {job} ({job.tasks.count()} images at {SIZE}×{SIZE}, {STEPS} steps, CFG {CFG:g}, seeds {SEEDS})"
                              + ("" if settings.CELERY_TASK_ALWAYS_EAGER else "; the gpu workers will make them"))
        elif job.tasks.filter(status=GenerationTask.Status.FAILED).exists():
            services.job_retry_failed(job=job)
        elif job.tasks.filter(status=GenerationTask.Status.PENDING).exists():  # an interrupted earlier run
            services.tasks_enqueue(task_ids=list(job.tasks.filter(status="pending").values_list("id", flat=True)))
        job.refresh_from_db()
        failed = job.tasks.filter(status=GenerationTask.Status.FAILED).first()
        if failed is not None:
            self.stderr.write(f"some demo images failed, e.g. {failed.variant.name}: {failed.error}")
        return job

    def _references(self, prompt_set: PromptSet) -> None:
        for character in Character.objects.filter(name__in=CHARACTERS).prefetch_related("references"):
            if character.references.exists():
                continue
            image = (Image.objects.filter(prompt__prompt_set=prompt_set, prompt__character=character)
                     .order_by("variant__name", "seed").first())
            if image is None:
                continue
            with image.voter_file.open("rb") as handle:
                services.character_reference_add(character=character, data=handle.read())
