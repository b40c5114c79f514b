"""Run the ratings consumer: place waiting votes in the log and apply them; ``--follow`` keeps running."""

import time

from django.core.management.base import BaseCommand

from arena.services.ratings import ratings_apply_all


class Command(BaseCommand):
    help = "Apply the votes waiting for the ratings consumer (the arena.apply_ratings task does the same)."

    def add_arguments(self, parser):
        parser.add_argument("--follow", action="store_true", help="keep applying new votes until interrupted")
        parser.add_argument("--interval", type=float, default=0.1, help="seconds between looks when idle (--follow)")

    def handle(self, *args, follow=False, interval=0.1, **options):
        placed = ratings_apply_all()
        if not follow:
            self.stdout.write(f"{placed} votes applied")
            return
        try:
            while True:
                if not ratings_apply_all():
                    time.sleep(interval)
        except KeyboardInterrupt:
            pass
