"""``manage.py register_lora PATH [--name NAME] [--description TEXT]``

Registers a LoRA file (kohya ``lora_unet_*``/``lora_te*_`` or diffusers keys; a .safetensors file or a diffusers
LoRA folder) under a name, so fixed prompts can apply it with ``<lora:NAME:WEIGHT>``, as in A1111. The name
defaults to the file's stem (A1111's). A bad file or name gets a one-line error and a non-zero exit; nothing is
saved."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from generation import services


class Command(BaseCommand):
    help = "Register a LoRA file by name for <lora:NAME:WEIGHT> tags in prompts."

    def add_arguments(self, parser):
        parser.add_argument("path", help="a LoRA .safetensors file (kohya or diffusers keys) or a diffusers LoRA folder")
        parser.add_argument("--name", default="", help="the NAME prompts use (default: the file's stem, as in A1111)")
        parser.add_argument("--description", default="")

    def handle(self, *args, **options):
        try:
            lora = services.lora_register(path=options["path"], name=options["name"],
                                          description=options["description"])
        except ValidationError as exc:
            raise CommandError(" ".join(" ".join(exc.messages).split())) from None
        self.stdout.write(f"registered LoRA {lora.name} ({lora.get_format_display()}, hash {lora.short_hash}): "
                          f"write <lora:{lora.name}:1> in a prompt to apply it")
