"""Fault drills: voters (and generation) while a server they depend on goes away; prints one JSON line of figures
per scenario (votes sent, acknowledged, stored, lost, doubled ...). See arena/benchmarks/faults.py.

    python manage.py fault_drill --scenario pg-restart|redis-stop|redis-stop-generation|disk-full|all
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

SCENARIOS = ("pg-restart", "redis-stop", "redis-stop-generation", "disk-full")
ROOT = Path(__file__).resolve().parents[3]
SUITE_DRILLS = {"disk-full": "tests/faults/test_disk_full.py",
                "redis-stop-generation": "tests/faults/test_redis_generation.py"}


def _suite_drill(scenario: str) -> dict:
    """The disk-full and worker drills are the suite's tests (they need a test database, the generation test
    stand-ins or the tiny models): run the test and pass its figures line on."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", SUITE_DRILLS[scenario]],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    lines = [line for line in done.stdout.splitlines() if line.startswith(f'{{"scenario": "{scenario}"')]
    if done.returncode or not lines:
        raise CommandError(f"the {scenario} drill failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    return json.loads(lines[-1])


class Command(BaseCommand):
    help = "Run fault drills against servers of their own and print a line of figures for each."

    def add_arguments(self, parser):
        from arena.inputs import cli_float, cli_int

        parser.add_argument("--scenario", choices=(*SCENARIOS, "all"), default="all")
        parser.add_argument("--clients", type=cli_int(minimum=1, maximum=256), default=16, help="voters at once")
        parser.add_argument("--seconds", type=cli_float(minimum=1, maximum=600), default=8.0, help="voting time")
        parser.add_argument("--check-only", metavar="TALLY_FILE", help="(internal: check the drill database)")

    def handle(self, *args, **opts):
        from arena.benchmarks import faults
        from arena.benchmarks.servers import ServiceMissing

        if opts["check_only"]:
            return self.stdout.write(json.dumps(faults.check(Path(opts["check_only"]))))
        chosen = SCENARIOS if opts["scenario"] == "all" else (opts["scenario"],)
        drill = faults.DrillOptions(clients=opts["clients"], seconds=opts["seconds"],
                                    fault_at=min(2.5, opts["seconds"] / 3))
        for scenario in chosen:
            try:
                if scenario == "pg-restart":
                    line = faults.pg_restart(drill)
                elif scenario == "redis-stop":
                    line = faults.redis_stop(drill)
                else:
                    line = _suite_drill(scenario)
            except ServiceMissing as exc:
                raise CommandError(f"{scenario}: {exc} (scripts/test-services.sh installs them)") from None
            self.stdout.write(json.dumps(line))
