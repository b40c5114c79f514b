"""``manage.py train RUN_ID``: the single entry point of a training run.

* By default it runs the run to its end here (claimed like the ``train`` queue's task, progress written to the run
  row, the result registered): in this process, or -- with ``TRAIN_LAUNCHER=accelerate`` -- as
  ``accelerate launch --num_processes TRAIN_NUM_PROCESSES manage.py train RUN_ID --process`` slices.
* ``--process`` is what each process under ``accelerate launch`` runs: it reads the run's settings, trains (or
  resumes) until done or ``--time-slice`` seconds, prints the trainer's JSON progress lines (main process only) and
  exits 0 done, 2 error, 3 paused. It writes nothing to the database: the launching task relays the lines.
"""

from __future__ import annotations

import os

from django.core.management.base import BaseCommand, CommandError

from generation.fields import cli_float, cli_int
from training import services
from training.models import TrainingRun


class Command(BaseCommand):
    help = "Run a training run (see the module docstring)."

    def add_arguments(self, parser):
        parser.add_argument("run_id", type=cli_int(minimum=1))
        parser.add_argument("--process", action="store_true", help="one process of a launched slice (no database writes)")
        parser.add_argument("--time-slice", type=cli_float(minimum=0.001, maximum=10**9), default=None, help="pause at a checkpoint before this many s")

    def handle(self, *args, run_id: int, process: bool, time_slice: float | None, **options):
        run = TrainingRun.objects.select_related("parent", "dataset").filter(pk=run_id).first()
        if run is None:
            raise CommandError(f"no training run {run_id}")
        if process:
            raise SystemExit(self._process(run, time_slice))
        token = f"manage-{os.getpid()}-{os.urandom(4).hex()}"
        # without --time-slice the run trains to its end here; with one, later slices go to the train queue
        outcome = services.run_execute(run_id=run_id, token=token, worker=services.worker_name(),
                                       time_slice_s=time_slice if time_slice is not None else 10**9)
        run.refresh_from_db()
        if outcome.status == "skipped":
            raise CommandError(f"{run} is {run.get_status_display()} (held by another worker, or not queued)")
        if run.status == TrainingRun.Status.FAILED:
            raise CommandError(f"{run} failed: {run.error}")
        self.stdout.write(f"{run}: {run.get_status_display()} at step {run.step}/{run.max_steps}")

    @staticmethod
    def _process(run: TrainingRun, time_slice: float | None) -> int:
        from training.trainers.cli import EXIT_DONE, EXIT_ERROR, EXIT_PAUSED
        from training.trainers.errors import TrainingError
        from training.trainers.run import print_progress

        try:
            status = services.slice_train(run=run, on_progress=print_progress, time_slice_s=time_slice)
        except (TrainingError, OSError, ValueError) as exc:
            print_progress({"event": "error", "message": " ".join(str(exc).split())})
            return EXIT_ERROR
        return EXIT_PAUSED if status == "paused" else EXIT_DONE
