"""``manage.py preference_dataset --out FILE.parquet [filters]``: write a preference dataset from the counted votes
(Pick-a-Pic's columns plus the settings; see training.services.datasets for the mapping). Same vote log and filters
give the same bytes. ``--record`` also keeps it as a dataset training runs can use (under TRAINING_DIR)."""

from __future__ import annotations

import datetime as dt
import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from training import services


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def _ids(value: str) -> list[int]:
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise CommandError(f"{value!r} is not a comma-separated list of ids") from None


class Command(BaseCommand):
    help = "Write a preference dataset (Parquet) from the counted votes."

    def add_arguments(self, parser):
        parser.add_argument("--out", required=True, help="the .parquet file to write")
        parser.add_argument("--modes", default="", help="comma-separated: fixed, free, ffa (default: all)")
        parser.add_argument("--from", dest="date_from", default="", help="first UTC day (YYYY-MM-DD)")
        parser.add_argument("--to", dest="date_to", default="", help="last UTC day (YYYY-MM-DD), inclusive")
        parser.add_argument("--models", default="", help="model ids: pairs of these models only")
        parser.add_argument("--prompt-sets", default="", help="prompt set ids: polls of these sets only")
        parser.add_argument("--keep-flagged", action="store_true", help="keep votes flagged as too fast")
        parser.add_argument("--exclude-flagged-voters", action="store_true",
                            help="leave out every vote of a voter who has a flagged vote")
        parser.add_argument("--record", default=None, metavar="NAME",
                            help="also record it as a dataset for training runs, with this name")

    def handle(self, *args, **options):
        try:
            filters = services.filters_clean(
                modes=[m.strip() for m in options["modes"].split(",") if m.strip()] or None,
                date_from=_date(options["date_from"]) if options["date_from"] else None,
                date_to=_date(options["date_to"]) if options["date_to"] else None,
                models=_ids(options["models"]), prompt_sets=_ids(options["prompt_sets"]),
                exclude_flagged=not options["keep_flagged"],
                exclude_flagged_voters=options["exclude_flagged_voters"])
            info, expansion, head = services.dataset_write(filters=filters, path=options["out"])
            recorded = None
            if options["record"] is not None:
                recorded = services.dataset_build(filters=filters, name=options["record"]).pk
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(json.dumps({"path": info.path, "rows": info.rows, "sha256": info.sha256,
                                      "vote_log_hash": head[1], "counts": info.counts,
                                      "skipped": dict(sorted(expansion.skipped.items())), "dataset_id": recorded},
                                     sort_keys=True))
