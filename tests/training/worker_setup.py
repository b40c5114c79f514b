"""Run as a script by the worker tests (a Django process of its own on the test's SQLite file): register the tiny
parent, cast votes on images, build the dataset and schedule a DPO run. Prints {"run": id, "spec": RUN.json}."""

import json
import sys

import django

django.setup()

from config.celery import app  # noqa: E402

app.conf.task_routes = {"training.*": {"queue": sys.argv[1]}}

from django.db import transaction  # noqa: E402

from tests.training.runs_helpers import register_parent, voted_dataset  # noqa: E402
from training import services  # noqa: E402

config = json.loads(sys.argv[3])
with transaction.atomic():
    parent = register_parent(type("T", (), {"eps_dir": sys.argv[2]})(), "eps")
    dataset = voted_dataset(polls=6, parent=parent)
    run = services.run_create(method="dpo", dataset=dataset, parent=parent, config=config)  # queued on commit
print(json.dumps({"run": run.pk, "spec": services.run_spec(run)}))
