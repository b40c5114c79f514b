"""Time a full recompute of every rating from a synthetic duel log; print one JSON line (ratings.bench)."""

import contextlib
import json

from django.core.management.base import BaseCommand, CommandError

from arena.inputs import cli_int
from ratings.bench import run_bench


class Command(BaseCommand):
    help = (
        "Build a synthetic duel log (with ties) and time a full recompute: online Elo, Bradley–Terry, its "
        "bootstrap and TrueSkill. Prints {votes, elo_s, bt_s, bootstrap_s, trueskill_s, total_s, peak_rss_mb}. "
        "Touches no database."
    )
    requires_system_checks = []
    requires_migrations_checks = False

    def add_arguments(self, parser):
        parser.add_argument("--votes", type=cli_int(minimum=None), default=1_000_000)
        parser.add_argument("--models", type=cli_int(minimum=None), default=50)
        parser.add_argument("--seed", type=cli_int(minimum=None), default=0)
        parser.add_argument("--rounds", type=cli_int(minimum=None), default=100, help="bootstrap rounds")
        parser.add_argument("--export-battles", metavar="FILE", help="also write the log in the clean-battle format")
        parser.add_argument("--out", metavar="FILE", help="also write the computed ratings and the parameters")

    def handle(self, *args, **opts):
        if opts["votes"] < 1 or opts["models"] < 2 or opts["rounds"] < 0:
            raise CommandError("need --votes >= 1, --models >= 2 and --rounds >= 0")
        with contextlib.ExitStack() as stack:
            battles = stack.enter_context(open(opts["export_battles"], "w", encoding="utf-8")) if opts["export_battles"] else None
            out = stack.enter_context(open(opts["out"], "w", encoding="utf-8")) if opts["out"] else None
            line = run_bench(
                votes=opts["votes"], models=opts["models"], seed=opts["seed"], rounds=opts["rounds"],
                export_battles=battles, out=out,
            )
        self.stdout.write(json.dumps(line))
