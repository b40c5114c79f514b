"""Run the ratings consumer: place waiting votes in the log and apply them; ``--follow`` keeps running.

Following, a pass starts at most every ``--interval`` seconds, whatever it found. A pass costs about the same
whether it places one vote or twenty (measured on PostgreSQL: 7.7 ms of CPU for one vote, 11.6 ms for twenty);
passes started back to back under load placed one or two votes each, at 2-2.5 ms of CPU a vote. On a cadence a
pass takes what arrived since the last one. A full batch (a backlog) is followed at once by the next."""

import logging
import time

from django.core.management.base import BaseCommand
from django.db import DatabaseError, connection

from arena.services.ratings import BATCH, ratings_apply_all, ratings_apply_pending
from generation.fields import cli_float


logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Apply the votes waiting for the ratings consumer (the arena.apply_ratings task does the same)."

    def add_arguments(self, parser):
        parser.add_argument("--follow", action="store_true", help="keep applying new votes until interrupted")
        parser.add_argument("--interval", type=cli_float(minimum=0.001, maximum=3600), default=0.1, help="seconds from the start of one pass to the next (--follow)")

    def handle(self, *args, follow=False, interval=0.1, **options):
        placed = ratings_apply_all()
        if not follow:
            self.stdout.write(f"{placed} votes applied")
            return
        try:
            while True:
                started = time.monotonic()
                try:
                    while ratings_apply_pending() >= BATCH:  # a backlog: the next batch at once
                        pass
                except DatabaseError as exc:
                    # The database went away (a restart, a failover): each batch is one transaction, so nothing
                    # was half applied; drop the broken connection and look again once it is back.
                    logger.warning("ratings consumer: database unavailable (%s); retrying", exc)
                    connection.close()
                    time.sleep(max(interval, 0.5))
                    continue
                time.sleep(max(0.0, started + interval - time.monotonic()))
        except KeyboardInterrupt:
            pass
