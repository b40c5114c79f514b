"""``manage.py upgrade_demo``: move a demo seeded on random-weight tiny models onto pre-trained ones (built here,
~12 minutes on 2 cores, then their images, then the random-weight models are disabled). ``--enqueue`` sends it to
the ``train`` queue instead, as ``manage.py serve`` does at start-up. Nothing to do once the demo is upgraded."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from generation import services


class Command(BaseCommand):
    help = "Build the pre-trained tiny models and move the demo onto them (or, with --enqueue, send that to a worker)."

    def add_arguments(self, parser):
        parser.add_argument("--enqueue", action="store_true", help="send it to the train queue's worker")

    def handle(self, *args, enqueue: bool = False, **options):
        if not services.demo_upgrade_needed():
            self.stdout.write("the demo does not run on random-weight models: nothing to upgrade")
            return
        if enqueue:
            if settings.CELERY_TASK_ALWAYS_EAGER:
                raise CommandError("no broker is configured (tasks run in process): run it without --enqueue")
            if not services.demo_upgrade_enqueue():
                raise CommandError("the task queue is unreachable: the demo upgrade was not sent")
            self.stdout.write("sent the demo upgrade (the pre-trained tiny models' build) to the train queue")
            return
        try:
            status = services.demo_upgrade(log=self.stdout.write)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(f"demo upgrade: {status}")
