"""python manage.py make_tiny_models DIR: tiny SDXL-shaped models pre-trained here on procedural pictures (never
downloaded; a few minutes once, then cached in DIR, content-keyed)."""

import os

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Build tiny SDXL-shaped models into DIR, pre-trained on procedural captioned pictures (a few minutes "
        "once): an epsilon and a v-prediction variant, each as a diffusers folder and a single .safetensors file, "
        "plus a kohya-format LoRA. Cached: a build with the same content key is kept."
    )

    def add_arguments(self, parser):
        parser.add_argument("dir", help="output folder (created if missing)")
        parser.add_argument("--force", action="store_true", help="rebuild even if a complete build is there")
        parser.add_argument("--random", action="store_true", help="seeded random weights, no pre-training (fast)")

    def handle(self, *args, **options):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from generation.tiny import make_tiny_models
        except ImportError as exc:  # the worker extra (torch, diffusers, ...) is not installed
            raise CommandError(f"cannot build tiny models: {exc} (install the project's [gpu] extra)") from None
        try:
            models = make_tiny_models(options["dir"], force=options["force"], log=self.stdout.write,
                                      pretrained=not options["random"])
        except OSError as exc:
            raise CommandError(f"cannot write tiny models to {options['dir']}: {exc}") from None
        for key, path in models.as_dict().items():
            if key != "root":
                self.stdout.write(f"{key}: {path}")
