from django.core.management.base import BaseCommand

from arena.services import ratings_recompute


class Command(BaseCommand):
    help = "Rebuild every rating from the append-only vote log (in its stable order) and report the differences."

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="only compare with the live ratings; write nothing")

    def handle(self, *args, check: bool = False, **options):
        report = ratings_recompute(write=not check)
        verb = "would change" if check else "changed"
        self.stdout.write(
            f"{report.ratings} ratings checked; {report.changed} {verb}; "
            f"largest Elo difference {report.max_elo_difference:.3g}, largest TrueSkill mu difference {report.max_mu_difference:.3g}"
        )
