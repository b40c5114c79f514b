"""``manage.py seed_generation_demo``: the demo's models, prompts, characters and images (used by ``make run``).

With a complete pre-trained tiny-model build in ``TINY_MODELS_DIR`` the demo's four variants run on it. Otherwise
(a fresh clone: the pre-training takes ~12 minutes) they run on the seeded random-weight build in
``TINY_RANDOM_MODELS_DIR`` (seconds), and the pre-trained models are built in the background, replacing them when
they are ready (``generation.services.demo``): this command sends that task when a broker is configured, and
``manage.py serve`` sends it when it starts its workers. Then the "Demo characters" prompt set, a job over them at
256×256 with few steps through the real queue path (in process when no broker is configured), and reference
images for each character made from its generated images. Safe to run again: what exists is kept."""

from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from generation import services
from generation.models import Character, GenerationTask, Image, PromptSet
from generation.services.demo import CHARACTERS, UPGRADE_NOTE


class Command(BaseCommand):
    help = "Seed the generation demo: tiny models, four variants, a prompt set with characters, and their images."

    def add_arguments(self, parser):
        parser.add_argument("--no-pretrain-upgrade", action="store_true",
                            help="on random weights, do not send the background build of the pre-trained models")

    def handle(self, *args, no_pretrain_upgrade: bool = False, **options):
        started = time.perf_counter()
        try:
            from generation.tiny import make_tiny_models
        except ImportError as exc:  # the worker extra (torch, diffusers, ...) is not installed
            raise CommandError(f"cannot build tiny models: {exc} (install the project's [gpu] extra)") from None
        pretrained = services.tiny_models_ready(settings.TINY_MODELS_DIR, pretrained=True)
        tiny_dir = Path(settings.TINY_MODELS_DIR if pretrained else settings.TINY_RANDOM_MODELS_DIR)
        try:
            tiny = make_tiny_models(tiny_dir, pretrained=pretrained, log=self.stdout.write)  # seconds when random
        except OSError as exc:
            raise CommandError(f"cannot write tiny models to {tiny_dir}: {exc}") from None
        try:
            seeded = services.demo_seed(tiny=tiny, pretrained=pretrained, log=self.stdout.write)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        failed = seeded.job.tasks.filter(status=GenerationTask.Status.FAILED).first()
        if failed is not None:
            self.stderr.write(f"some demo images failed, e.g. {failed.variant.name}: {failed.error}")
        self._references(seeded.prompt_set)
        prompt_set = seeded.prompt_set
        done = Image.objects.filter(prompt__prompt_set=prompt_set, job=seeded.job).count()
        self.stdout.write(f"generation demo: {len(seeded.variants)} models ({'pre-trained' if pretrained else 'random weights'}), "
                          f"{prompt_set.prompts.count()} prompts, {done} images ({seeded.job.get_status_display()}) "
                          f"in {time.perf_counter() - started:.0f} s")
        if not pretrained and not no_pretrain_upgrade and services.demo_upgrade_enqueue():
            self.stdout.write("sent the build of the pre-trained tiny models to the train queue")
        if services.demo_upgrade_needed():
            self.stdout.write(UPGRADE_NOTE)

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
