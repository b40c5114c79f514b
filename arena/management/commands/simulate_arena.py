"""Compare matchmaking designs against simulated voters; one JSON line per design (see ratings.simulate)."""

import json

from django.core.management.base import BaseCommand, CommandError

from generation.fields import cli_float, cli_int
from ratings.design import DesignParams
from ratings.simulate import DESIGNS, SimConfig, late_models, simulate_arena
from ratings.simvoters import SKILLS


def _budgets(text: str) -> tuple[int, ...]:
    try:
        return tuple(sorted({int(x) for x in text.split(",") if x.strip()}))
    except ValueError:
        raise CommandError(f"--budgets takes comma-separated vote counts, not {text!r}") from None


class Command(BaseCommand):
    help = (
        "Run matchmaking designs against simulated voters with hidden true skills and judge them the same way: "
        "Bradley-Terry with poll-bootstrap 95% intervals, the same budgets and stopping rule, several seeds. "
        "Prints one JSON line per design: median votes to Kendall tau >= 0.9, tau and interval coverage at each "
        "budget, and the paired difference from uniform polls. Touches no database."
    )
    requires_system_checks = []
    requires_migrations_checks = False

    def add_arguments(self, parser):
        d, p = SimConfig(), DesignParams()
        parser.add_argument("--designs", default="uniform,info,active",
                            help=f"comma-separated, of {', '.join(DESIGNS)} (a '#tag' suffix reruns one on other streams)")
        parser.add_argument("--seeds", type=cli_int(minimum=1), default=10)
        parser.add_argument("--first-seed", type=cli_int(minimum=0, maximum=2**32 - 1), default=0)
        # 10 ** (skill / 400) is a voter's strength: at most 100 models spread at most 1000 apart stay finite
        parser.add_argument("--models", type=cli_int(minimum=2, maximum=100), default=d.models)
        parser.add_argument("--mode", choices=("duel", "ffa4"), default="ffa4", help="duels or 4-way free-for-all")
        parser.add_argument("--full-ranking", action="store_true", help="free-for-all voters rank all four images")
        parser.add_argument("--skills", choices=SKILLS, default=d.skills)
        parser.add_argument("--spread", type=cli_float(minimum=0.1, maximum=1000), default=d.spread,
                            help="Elo: the standard deviation (normal) or the gap between neighbours (spaced)")
        parser.add_argument("--flip", type=cli_float(minimum=0, maximum=1), default=d.flip, help="probability that a voter answers at random")
        parser.add_argument("--budgets", default=",".join(str(b) for b in d.budgets))
        parser.add_argument("--threshold", type=cli_float(minimum=0, maximum=1), default=d.threshold, help="Kendall tau that counts as converged")
        parser.add_argument("--bt-every", type=cli_int(minimum=1), default=d.bt_every, help="refit Bradley-Terry every N votes")
        parser.add_argument("--rounds", type=cli_int(minimum=0, maximum=100_000), default=d.rounds, help="bootstrap rounds per interval")
        parser.add_argument("--exploration", type=cli_float(minimum=0, maximum=1), default=p.exploration,
                            help="the info design's uniform share (default: by poll size, ratings.design.DEFAULTS)")
        parser.add_argument("--sharpness", type=cli_float(minimum=0.001, maximum=100), default=p.sharpness,
                            help="the info design's power on scores (default: by poll size)")
        parser.add_argument("--late", action="store_true",
                            help="also run the late-joining-models experiment (time-weighted Elo), one more line")

    def handle(self, *args, **opts):
        designs = tuple(x.strip() for x in opts["designs"].split(",") if x.strip())
        try:
            config = SimConfig(
                models=opts["models"], k=2 if opts["mode"] == "duel" else 4, skills=opts["skills"],
                spread=opts["spread"], full_ranking=opts["full_ranking"], flip=opts["flip"],
                budgets=_budgets(opts["budgets"]), threshold=opts["threshold"], bt_every=opts["bt_every"],
                rounds=opts["rounds"],
                design=DesignParams(exploration=opts["exploration"], sharpness=opts["sharpness"],
                                    outcome="ranking" if opts["full_ranking"] else "best"),
            )
            lines = simulate_arena(config, seeds=opts["seeds"], designs=designs, first_seed=opts["first_seed"])
            if opts["late"]:
                lines.append(late_models(config, seeds=opts["seeds"], join_after=config.votes // 2,
                                         first_seed=opts["first_seed"]))
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        for line in lines:
            self.stdout.write(json.dumps(line))
