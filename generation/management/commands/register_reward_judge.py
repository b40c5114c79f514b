"""Register a reward model (a reward training run's ``reward_model.safetensors``) as the reward judge:

    python manage.py register_reward_judge var/training/runs/7/out/reward_model.safetensors --name "votes v1"

It is checked (a reward model of our format, trained on the installed open_clip weights), copied into
``SCORERS_DIR/reward/`` and every image is queued for its score (``--no-score`` to skip). Its agreement with
people then shows on the stats page, and the scorer status page ranks the models by it (pre-screening).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from generation.scoring.files import ScoringError


class Command(BaseCommand):
    help = "Register a trained reward model file as the reward judge of the automatic scorers."

    def add_arguments(self, parser):
        parser.add_argument("path", help="the reward_model.safetensors a reward training run wrote")
        parser.add_argument("--name", default="", help="how the stats page names it (default: the first digits of its dataset's sha256)")
        parser.add_argument("--no-score", action="store_true", help="do not queue the images for its score")

    def handle(self, *args, **options):
        from generation.scoring.services import reward_judge_register

        try:
            judge = reward_judge_register(path=options["path"], name=options["name"],
                                          score_existing=not options["no_score"])
        except ScoringError as exc:
            raise CommandError(f"not registered: {exc}") from None
        acc = judge.get("heldout_acc")
        self.stdout.write(f"reward judge {judge.get('name')!r} registered ({judge['state']}); held-out accuracy "
                          + (f"{acc:.3f}" if acc is not None else "not measured"))
