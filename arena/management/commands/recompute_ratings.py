from django.core.management.base import BaseCommand, CommandError

from arena.services import ratings_recompute


class Command(BaseCommand):
    help = ("Compare every live rating with a replay of the vote log in its order (seq) and verify the log's hash "
            "chain; without --check, apply waiting votes and rebuild ratings and chain from the log.")

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="only compare and verify; write nothing")

    def handle(self, *args, check: bool = False, **options):
        report = ratings_recompute(write=not check)
        verb = "would change" if check else "changed"
        self.stdout.write(
            f"{report.ratings} ratings checked; {report.changed} {verb}; "
            f"largest Elo difference {report.max_elo_difference:.3g}, largest TrueSkill mu difference {report.max_mu_difference:.3g}; "
            f"vote-log chain {'intact' if report.chain_ok else f'BROKEN at seq {report.chain_broken_at}'}; "
            f"{report.pending} votes waiting for the consumer"
        )
        if check and (report.changed or not report.chain_ok):
            raise CommandError("the live ratings or the vote-log chain differ from the log")
