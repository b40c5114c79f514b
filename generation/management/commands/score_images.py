"""Score generated images with the automatic judges (CCIP, aesthetic, prompt alignment, the reward model).

    python manage.py score_images                      # every image, every installed scorer
    python manage.py score_images --missing-only       # only images without a score of the current scorer files
    python manage.py score_images --model "Illustrious XL v2.0" --scorer ccip

Scorers load before anything is written: missing or broken scorer files stop the command with a clear message
and a non-zero exit. Each batch is written in one transaction.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from generation.fields import cli_int
from generation.models import ModelVariant
from generation.scoring.files import KINDS, ScoringError


class Command(BaseCommand):
    help = "Compute automatic scores (CCIP, aesthetic, alignment, reward model) for generated images."

    def add_arguments(self, parser):
        parser.add_argument("--model", dest="model", default=None, help="only the images of this model variant (by name)")
        parser.add_argument("--missing-only", action="store_true",
                            help="only images without a score from the current scorer files")
        parser.add_argument("--scorer", action="append", choices=KINDS, default=None,
                            help="which judge (repeatable; default: every installed one)")
        parser.add_argument("--batch-size", type=cli_int(minimum=1, maximum=10_000), default=None, help="images per batch (default SCORING_BATCH_SIZE)")
        parser.add_argument("--scorers-dir", default=None, help="scorer folder (default settings.SCORERS_DIR)")

    def handle(self, *args, **options):
        from generation.scoring.services import scores_compute

        name = options["model"]
        if name is not None and not ModelVariant.objects.filter(name=name).exists():
            raise CommandError(f"no model variant named {name!r}")
        if options["batch_size"] is not None and options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        try:
            report = scores_compute(
                variant_name=name,
                kinds=options["scorer"],
                missing_only=options["missing_only"],
                batch_size=options["batch_size"],
                root=Path(options["scorers_dir"]) if options["scorers_dir"] else None,
                log=self.stdout.write,
            )
        except ScoringError as exc:
            raise CommandError(f"scoring stopped: {exc}") from None
        if report.failed:
            for what, pk, message in report.failed:
                self.stderr.write(f"{what} {pk}: {message}")
            raise CommandError(f"{len(report.failed)} file(s) could not be read; the other images were scored")
