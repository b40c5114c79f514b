"""``manage.py import_images DIR --model NAME`` imports PNGs made elsewhere (A1111 ``parameters`` chunk or
ComfyUI ``prompt`` graph) so existing generations can enter the arena. Each file is imported whole or not at
all; unreadable files are reported and skipped."""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from generation import services
from generation.images import MetadataError
from generation.models import ModelVariant, PromptSet


class Command(BaseCommand):
    help = "Import PNGs with A1111 or ComfyUI metadata as images of a model."

    def add_arguments(self, parser):
        parser.add_argument("directory")
        parser.add_argument("--model", required=True, help="the model variant the images were made with")
        parser.add_argument("--create", action="store_true",
                            help="create the model as an images-only variant (no local weights) if it is missing")
        parser.add_argument("--prompt-set", default="", help="put the prompts in this prompt set (created if missing)")
        parser.add_argument("--recursive", action="store_true")

    def handle(self, *args, **options):
        folder = Path(options["directory"]).expanduser()
        if not folder.is_dir():
            raise CommandError(f"{folder}: no such folder")
        variant = ModelVariant.objects.filter(name=options["model"]).first()
        if variant is None:
            if not options["create"]:
                raise CommandError(f"no model named {options['model']!r}: register it first, or pass --create "
                                   "to add an images-only model")
            variant = ModelVariant.objects.create(name=options["model"], source_type=ModelVariant.SourceType.NONE)
            self.stdout.write(f"created images-only model {variant.name}")
        prompt_set = None
        if options["prompt_set"]:
            prompt_set, _ = PromptSet.objects.get_or_create(name=options["prompt_set"])
        pattern = "**/*" if options["recursive"] else "*"
        files = sorted(p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() == ".png")
        imported = existing = skipped = 0
        for path in files:
            try:
                image, created = services.image_import(variant=variant, data=path.read_bytes(), prompt_set=prompt_set)
            except (MetadataError, ValidationError, OSError) as exc:
                message = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
                self.stderr.write(f"skipped {path.name}: {' '.join(message.split())}")
                skipped += 1
                continue
            if created:
                imported += 1
            else:
                existing += 1
        self.stdout.write(f"imported {imported}, already there {existing}, skipped {skipped} (of {len(files)} PNG files)")
