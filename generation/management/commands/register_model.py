"""``manage.py register_model PATH --name NAME --kind base|aesthetic|finetune [--prediction eps|v] ...``

Checks the checkpoint (exists, readable, the SDXL keys it needs, v_pred/ztsnr markers) and the LoRA files
before saving; a bad path or file gets a one-line error and a non-zero exit, and nothing is saved."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from generation import sampling, services
from generation.fields import cli_float, cli_int
from generation.models import ModelVariant


class Command(BaseCommand):
    help = "Register a local SDXL checkpoint (.safetensors file or diffusers folder) as a model variant."

    def create_parser(self, prog_name, subcommand, **kwargs):
        # --version names the model's version here (Illustrious XL v2.0), replacing Django's --version flag.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("path", help="a single .safetensors checkpoint or a diffusers folder")
        parser.add_argument("--name", required=True)
        parser.add_argument("--kind", choices=ModelVariant.Kind.values, default=ModelVariant.Kind.BASE)
        parser.add_argument("--prediction", choices=ModelVariant.Prediction.values, default=None,
                            help="eps or v (default: detected from the v_pred marker key)")
        parser.add_argument("--family", default="Illustrious XL")
        parser.add_argument("--version", default="", help="the model's version, e.g. v2.0")
        parser.add_argument("--parent", default=None, help="name of the variant this one was tuned from")
        parser.add_argument("--lora", action="append", default=[], metavar="PATH[:WEIGHT]",
                            help="a LoRA file (kohya or diffusers keys) and its weight; repeatable")
        parser.add_argument("--config", default="", help="local diffusers config folder for a single file")
        parser.add_argument("--description", default="")
        parser.add_argument("--disabled", action="store_true", help="register without entering the arena")
        parser.add_argument("--sampler", default=None, help="A1111's sampling method, e.g. 'Euler a', 'DPM++ 2M'")
        parser.add_argument("--schedule-type", default=None, help="A1111's schedule type (default Automatic)")
        # The bounds of the staff form's fields (generation.forms, from generation.sampling); what a sampler or a
        # size allows beyond them (a sampler's minimum steps, multiples of 8, the pixel cap) the service checks.
        steps = cli_int(minimum=1, maximum=sampling.MAX_STEPS)
        side = cli_int(minimum=sampling.MIN_SIDE, maximum=sampling.MAX_SIDE)
        parser.add_argument("--steps", type=steps, default=None)
        parser.add_argument("--cfg", type=cli_float(minimum=sampling.MIN_CFG_SCALE, maximum=sampling.MAX_CFG_SCALE),
                            default=None)
        parser.add_argument("--width", type=side, default=None)
        parser.add_argument("--height", type=side, default=None)
        parser.add_argument("--clip-skip", type=cli_int(minimum=1, maximum=sampling.MAX_CLIP_SKIP), default=None)
        parser.add_argument("--enable-hr", action="store_true", default=None, help="hires. fix on by default")
        parser.add_argument("--hr-scale", type=cli_float(minimum=sampling.MIN_HR_SCALE, maximum=sampling.MAX_HR_SCALE),
                            default=None, help="hires upscale by")
        parser.add_argument("--hr-second-pass-steps", type=cli_int(minimum=0, maximum=sampling.MAX_STEPS), default=None,
                            help="hires steps (0 = as many as steps)")
        parser.add_argument("--denoising-strength", type=cli_float(minimum=0.01, maximum=1.0), default=None, help="of the hires pass")
        parser.add_argument("--hr-upscaler", default=None, help="e.g. Latent, Lanczos")

    def handle(self, *args, **options):
        parent = None
        if options["parent"]:
            parent = ModelVariant.objects.filter(name=options["parent"]).first()
            if parent is None:
                raise CommandError(f"no model named {options['parent']!r} to use as --parent")
        names = (("sampler", "sampler"), ("schedule_type", "schedule_type"), ("steps", "steps"), ("cfg_scale", "cfg"),
                 ("width", "width"), ("height", "height"), ("clip_skip", "clip_skip"), ("enable_hr", "enable_hr"),
                 ("hr_scale", "hr_scale"), ("hr_second_pass_steps", "hr_second_pass_steps"),
                 ("denoising_strength", "denoising_strength"), ("hr_upscaler", "hr_upscaler"))
        defaults = {key: options[opt] for key, opt in names if options[opt] is not None}
        try:
            variant = services.variant_register(
                path=options["path"], name=options["name"], kind=options["kind"], prediction=options["prediction"],
                family=options["family"], version=options["version"], parent=parent,
                loras=[services.parse_lora_argument(value) for value in options["lora"]],
                config_path=options["config"], description=options["description"], enabled=not options["disabled"],
                defaults=defaults,
            )
        except ValidationError as exc:
            raise CommandError(" ".join(" ".join(exc.messages).split())) from None
        loras = ", ".join(str(lora) for lora in variant.loras.all())
        self.stdout.write(
            f"registered {variant.name} (id {variant.pk}): {variant.get_source_type_display()}, "
            f"{variant.get_prediction_type_display()}{', ztsnr' if variant.has_ztsnr else ''}"
            f"{', model hash ' + variant.model_hash if variant.model_hash else ''}"
            f"{', LoRAs ' + loras if loras else ''}"
        )
