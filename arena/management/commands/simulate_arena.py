"""Simulate the arena against voters with hidden true skills; print one JSON line (see ratings.simulate)."""

import json

from django.core.management.base import BaseCommand, CommandError

from arena.inputs import cli_float, cli_int
from ratings.matchmaking import STRATEGIES
from ratings.simulate import MODES, simulate_arena


class Command(BaseCommand):
    help = (
        "Run the real matchmaker and rating engine against simulated voters (Bradley–Terry duels, Plackett–Luce "
        "free-for-all picks) and print how many votes each setup needs before the ranking stays at Kendall "
        "tau >= 0.9: the chosen strategy, and uniform duels rated by online Elo (K=4) and by Bradley–Terry. "
        "Touches no database."
    )
    requires_system_checks = []
    requires_migrations_checks = False

    def add_arguments(self, parser):
        parser.add_argument("--models", type=cli_int(minimum=None), default=50)
        parser.add_argument("--mode", choices=sorted(MODES), default="ffa4")
        parser.add_argument("--strategy", choices=STRATEGIES, default="active")
        parser.add_argument("--seed", type=cli_int(minimum=None), default=0)
        parser.add_argument("--flip", type=cli_float(), default=0.0, help="probability that a voter answers at random")
        parser.add_argument("--votes", type=cli_int(minimum=None), default=3000, help="votes in the chosen strategy's run")
        parser.add_argument("--baseline-votes", type=cli_int(minimum=None), default=30000, help="votes in the uniform-duel baseline run")
        parser.add_argument("--spacing", type=cli_float(), default=40.0, help="Elo points between neighbouring true skills")
        parser.add_argument("--full-ranking", action="store_true", help="free-for-all voters rank all four images")
        parser.add_argument("--threshold", type=cli_float(), default=0.9, help="Kendall tau that counts as converged")
        parser.add_argument("--bt-every", type=cli_int(minimum=None), default=10, help="refit Bradley–Terry every N votes")
        parser.add_argument("--newcomer-warmup", type=cli_int(minimum=None), default=600,
                            help="votes before a new model joins, in the newcomer run")
        parser.add_argument("--newcomer-after", type=cli_int(minimum=None), default=300,
                            help="votes after the new model joins (0: skip the newcomer run)")

    def handle(self, *args, **opts):
        if opts["votes"] < 1 or opts["baseline_votes"] < 1 or opts["bt_every"] < 1:
            raise CommandError("--votes, --baseline-votes and --bt-every must be positive")
        if opts["newcomer_warmup"] < 0 or opts["newcomer_after"] < 0:
            raise CommandError("--newcomer-warmup and --newcomer-after must be >= 0")
        try:
            line = simulate_arena(
                models=opts["models"], mode=opts["mode"], strategy=opts["strategy"], seed=opts["seed"],
                flip=opts["flip"], votes=opts["votes"], baseline_votes=opts["baseline_votes"],
                spacing=opts["spacing"], full_ranking=opts["full_ranking"], threshold=opts["threshold"],
                bt_every=opts["bt_every"], newcomer_warmup=opts["newcomer_warmup"],
                newcomer_after=opts["newcomer_after"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps(line))
