"""Export the counted vote log, or a stored leaderboard, to a file (or stdout)."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from arena import exports, selectors
from arena.errors import ReportError
from arena.inputs import SCOPES, scope_clean
from arena.services.leaderboards import leaderboard_fresh


class Command(BaseCommand):
    help = (
        "Write the counted votes of a scope in Chatbot Arena's clean-battle format (--format battles) or as JSONL "
        "(--format jsonl), or the scope's leaderboard (--format csv|json|md). Voters appear as salted hashes only."
    )

    def add_arguments(self, parser):
        parser.add_argument("--format", default="battles", choices=["battles", "jsonl", *exports.EXPORT_FORMATS])
        parser.add_argument("--scope", default="overall", help=f"one of {', '.join(SCOPES)}")
        parser.add_argument("--out", default="-", help="file to write (default: stdout)")

    def handle(self, *args, format: str, scope: str, out: str, **options):
        try:
            scope = scope_clean(scope)
        except ReportError as exc:
            raise CommandError(exc.message) from None
        if format in exports.EXPORT_FORMATS:
            chunks = [exports.leaderboard_export(leaderboard_fresh(scope=scope), format)]
        else:
            log = selectors.vote_log(scope)
            chunks = exports.battles_stream(log) if format == "battles" else exports.jsonl_stream(log)
        fp = sys.stdout if out == "-" else open(out, "w", encoding="utf-8")
        try:
            for chunk in chunks:
                fp.write(chunk)
        finally:
            if fp is not sys.stdout:
                fp.close()
        if out != "-":
            self.stderr.write(f"wrote {format} of scope {scope} to {out}")
