"""Fault drills: voters (and generation) while a server they depend on goes away; prints one JSON line of figures
per scenario (votes sent, acknowledged, stored, lost, doubled ...). See arena/benchmarks/faults.py.

    python manage.py fault_drill --scenario pg-restart|redis-stop|disk-full|all
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

SCENARIOS = ("pg-restart", "redis-stop", "disk-full")
ROOT = Path(__file__).resolve().parents[3]


def _disk_full() -> dict:
    """The disk-full drill is the suite's test (it needs the generation test stand-ins and a test database): run it
    and pass its figures line on."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                           "tests/faults/test_disk_full.py"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith('{"scenario": "disk-full"')]
    if done.returncode or not lines:
        raise CommandError(f"the disk-full drill failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
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
                    line = _disk_full()
            except ServiceMissing as exc:
                raise CommandError(f"{scenario}: {exc} (scripts/test-services.sh installs them)") from None
            self.stdout.write(json.dumps(line))
