"""Benchmark the voter's full cycle (poll page, images, vote, reveal) through gunicorn; prints one JSON line.

Open loop (``--rate R``): cycles arrive as a Poisson process at R per second with a human think time between the
images and the vote. Closed loop (``--clients N``, the default when no rate is given): N voters back to back.
See arena/benchmarks/votes.py for what is measured and checked.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from arena.benchmarks import votes


class Command(BaseCommand):
    help = "Benchmark full vote cycles through gunicorn (open loop with --rate, closed loop with --clients)."

    def add_arguments(self, parser):
        from arena.inputs import cli_float, cli_int

        parser.add_argument("--rate", type=cli_float(minimum=0), default=0.0, help="open loop: cycles (votes) per second")
        parser.add_argument("--clients", type=cli_int(minimum=1), default=16, help="closed loop: voters back to back")
        parser.add_argument("--seconds", type=cli_float(minimum=0.1), default=20.0)
        parser.add_argument("--think", type=cli_float(minimum=0), default=2.0, help="open loop: median think time in seconds")
        parser.add_argument("--ffa-share", type=cli_float(minimum=0, maximum=1), default=0.25,
                            help="share of cycles that are free-for-all")
        parser.add_argument("--voters", type=cli_int(minimum=1), default=2000, help="open loop: distinct voters")
        parser.add_argument("--models", type=cli_int(minimum=2), default=12)
        parser.add_argument("--prompts", type=cli_int(minimum=1), default=30)
        parser.add_argument("--workers", type=cli_int(minimum=1), default=2, help="gunicorn workers")
        parser.add_argument("--threads", type=cli_int(minimum=1), default=4, help="gunicorn threads per worker")
        parser.add_argument("--generators", type=cli_int(minimum=1), default=1, help="load-generator processes")
        parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
        parser.add_argument("--seed-only", action="store_true", help="(internal: seed the bench database)")
        parser.add_argument("--check-only", metavar="TOKENS_FILE", help="(internal: check the bench database)")

    def handle(self, *args, **opts):
        if opts["seed_only"]:
            return votes.seed(opts["models"], opts["prompts"])
        if opts["check_only"]:
            return self.stdout.write(json.dumps(votes.check(Path(opts["check_only"]))))
        if opts["rate"] < 0 or opts["clients"] < 1 or opts["seconds"] <= 0 or not 0 <= opts["ffa_share"] <= 1:
            raise CommandError("--rate must be ≥ 0, --clients ≥ 1, --seconds > 0 and --ffa-share within 0–1")
        options = votes.Options(
            rate=opts["rate"], clients=opts["clients"], seconds=opts["seconds"], think=opts["think"],
            ffa_share=opts["ffa_share"], voters=opts["voters"], models=opts["models"], prompts=opts["prompts"],
            workers=opts["workers"], threads=opts["threads"], generators=opts["generators"], keep=opts["keep"],
        )
        try:
            line = votes.run_bench(options)
        except votes.BenchError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps(line))
