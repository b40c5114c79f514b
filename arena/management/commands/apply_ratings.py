"""Run the ratings consumer: place waiting votes in the log and apply them; ``--follow`` keeps running."""

import logging
import time

from django.core.management.base import BaseCommand
from django.db import DatabaseError, connection

from arena.services.ratings import ratings_apply_all
from generation.fields import cli_float


logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Apply the votes waiting for the ratings consumer (the arena.apply_ratings task does the same)."

    def add_arguments(self, parser):
        parser.add_argument("--follow", action="store_true", help="keep applying new votes until interrupted")
        parser.add_argument("--interval", type=cli_float(minimum=0.001, maximum=3600), default=0.1, help="seconds between looks when idle (--follow)")

    def handle(self, *args, follow=False, interval=0.1, **options):
        placed = ratings_apply_all()
        if not follow:
            self.stdout.write(f"{placed} votes applied")
            return
        try:
            while True:
                try:
                    if not ratings_apply_all():
                        time.sleep(interval)
                except DatabaseError as exc:
                    # The database went away (a restart, a failover): each batch is one transaction, so nothing
                    # was half applied; drop the broken connection and look again once it is back.
                    logger.warning("ratings consumer: database unavailable (%s); retrying", exc)
                    connection.close()
                    time.sleep(max(interval, 0.5))
        except KeyboardInterrupt:
            pass
