"""Training runs: scheduling (validated before anything is queued), claims, progress relayed from the trainer's
events, cancel and resume. Running a slice is in ``training.services.execute``; registering a result in
``training.services.registration``."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from generation.models import ModelVariant
from training.models import PreferenceDataset, TrainingRun

MAX_ATTEMPTS = 5  # deliveries of one slice (a worker killed each time) before the run fails
METRICS_KEPT = 5000  # step entries kept on the row (the plot reads them)


def _one_line(text: Any, limit: int = 1000) -> str:
    return " ".join(str(text).split())[:limit]


# --- settings -------------------------------------------------------------------------------------------------


def method_defaults(method: str) -> dict:
    """The settings a schedule form starts from, per method (the trainers' defaults)."""
    from training.trainers import config as tc

    if method == TrainingRun.Method.REWARD:
        return {f.name: f.default for f in dataclasses.fields(tc.RewardConfig) if f.init and f.name != "open_clip_dir"} | {
            "open_clip_dir": str(settings.TRAIN_OPEN_CLIP_DIR)}
    return dataclasses.asdict(tc.defaults(method))


def config_for(method: str, changes: dict | None) -> object:
    """The trainer's config of ``method``: its defaults with ``changes``; ValidationError for an unknown setting."""
    from training.trainers import config as tc
    from training.trainers.errors import TrainingError

    if method not in TrainingRun.Method.values:
        raise ValidationError({"method": f"unknown method {method!r}: use one of {', '.join(TrainingRun.Method.values)}"})
    values = {**method_defaults(method), **{k: v for k, v in (changes or {}).items() if v is not None}}
    values["method"] = method
    try:
        if method == TrainingRun.Method.REWARD:
            return tc.from_json(tc.RewardConfig, values)
        return tc.from_json(tc.TrainConfig, values)
    except TrainingError as exc:
        raise ValidationError({"config": str(exc)}) from None


def parent_model(variant: ModelVariant):
    from training.trainers.config import ParentModel

    return ParentModel(path=variant.source_path, prediction_type=variant.prediction_type, config_path=variant.config_path)


def run_errors(*, method: str, parent: ModelVariant | None, dataset: PreferenceDataset | None, config,
               allow_finetune_parent: bool = False) -> dict[str, list[str]]:
    """Every reason this run cannot be queued, by field (empty: it can)."""
    from training.trainers import config as tc
    from training.trainers.dataset import dataset_errors

    errors: dict[str, list[str]] = {}

    def add(key: str, message: str) -> None:
        errors.setdefault(key, []).append(message)

    lora = method in tc.LORA_METHODS
    if dataset is None:
        add("dataset", "pick a preference dataset")
    elif not os.path.isfile(dataset.path):  # os.path: False, not an OSError, for an unusable name
        add("dataset", f"the dataset file {dataset.path} is missing: build the dataset again")
    elif dataset.rows == 0:
        add("dataset", "the dataset is empty")
    else:
        kto = float(getattr(config, "kto_weight", 0.0) or 0.0)
        need = max(settings.TRAIN_MIN_DATASET_ROWS, 2 if method == "reward" else 1)
        for message in dataset_errors(dataset.path, method, kto_weight=kto, min_examples=need):
            add("dataset", message + " (TRAIN_MIN_DATASET_ROWS)" if "needs at least" in message else message)
    if lora:
        if parent is None:
            add("parent", f"a {method} run needs a parent model (a base or aesthetic variant)")
        else:
            if parent.health == ModelVariant.Health.FAILING:
                add("parent", f"{parent.name} is failing: {parent.health_message or 'see its model page'}; fix it first")
            if parent.source_type == ModelVariant.SourceType.NONE or not parent.source_path:
                add("parent", f"{parent.name} has no local weights (imported images only)")
            elif not os.path.exists(parent.source_path):
                add("parent", f"{parent.name}: {parent.source_path}: no such file or folder")
            else:
                for message in tc.parent_errors(parent_model(parent)):
                    add("parent", message)
            if parent.loras.exists():
                add("parent", f"{parent.name} is a checkpoint with LoRAs: a trainer trains on the checkpoint alone, "
                              "so a LoRA of a LoRA would ignore them; merge them into a checkpoint first")
            elif parent.kind == ModelVariant.Kind.FINETUNE and not allow_finetune_parent:
                add("parent", f"{parent.name} is a fine-tune: fine-tuning starts from a base or aesthetic variant "
                              "(tick 'allow a fine-tuned parent' to train on it anyway)")
            for message in tc.config_errors(config, parent.prediction_type):
                add("config", message)
    else:
        open_clip = str(getattr(config, "open_clip_dir", "") or "")
        if not os.path.isdir(open_clip):
            add("config", f"open_clip_dir {open_clip[:200]}: no such folder (the reward model embeds images with it)")
        if not 0 <= float(config.heldout_fraction) < 1:
            add("config", f"heldout_fraction must be from 0 to below 1, got {config.heldout_fraction}")
        if not 1 <= int(config.epochs) <= 1_000_000:
            add("config", f"epochs must be a whole number from 1 to 1,000,000, got {config.epochs}")
        if not 0 <= int(config.seed) < 2**63:
            add("config", f"seed must be a whole number from 0 to 2^63-1, got {config.seed}")
    return errors


def run_create(*, method: str, dataset: PreferenceDataset | None, parent: ModelVariant | None = None,
               config: dict | None = None, started_by=None, allow_finetune_parent: bool = False) -> TrainingRun:
    """Check and queue a run (the ``train`` queue, once the transaction commits); ValidationError by field."""
    from training.trainers.config import to_json

    cfg = config_for(method, config)
    if errors := run_errors(method=method, parent=parent, dataset=dataset, config=cfg,
                            allow_finetune_parent=allow_finetune_parent):
        raise ValidationError(errors)
    max_steps = cfg.epochs if method == TrainingRun.Method.REWARD else cfg.max_train_steps
    if method != TrainingRun.Method.REWARD and not cfg.sample_prompts:  # the watch page shows samples by default
        from training.trainers.dataset import first_caption
        from training.trainers.samples import sample_errors

        caption = first_caption(dataset.path)  # unless generation would refuse it (a fixed prompt's <lora:> tag)
        if caption and not sample_errors(cfg.replace(sample_prompts=caption)):
            cfg = cfg.replace(sample_prompts=caption)
    with transaction.atomic():
        run = TrainingRun.objects.create(
            method=method, parent=parent if method != TrainingRun.Method.REWARD else None, dataset=dataset,
            config=json.loads(to_json(cfg)), max_steps=max_steps,
            started_by=started_by if getattr(started_by, "pk", None) else None)
        transaction.on_commit(lambda: run_enqueue(run_id=run.pk))
    return run


def run_enqueue(*, run_id: int) -> None:
    from training.tasks import train_run  # training.tasks imports these services

    train_run.apply_async(args=[run_id])


# --- files --------------------------------------------------------------------------------------------------------


def run_dir(run: TrainingRun) -> Path:
    return Path(settings.TRAINING_DIR) / "runs" / f"run-{run.pk}"


def run_spec(run: TrainingRun) -> dict:
    """The trainer's RUN.json (training.trainers.cli): config, parent and paths of ``run``."""
    root = run_dir(run)
    spec = {"config": dict(run.config), "paths": {"dataset": run.dataset.path, "work_dir": str(root / "work"),
                                                  "output_dir": str(root / "out")}}
    if run.method != TrainingRun.Method.REWARD:
        spec["parent"] = dataclasses.asdict(parent_model(run.parent))
        spec["config"]["output_name"] = f"arena-run-{run.pk}"
    return spec


# --- claims ---------------------------------------------------------------------------------------------------------


def run_claim(*, run_id: int, token: str, worker: str = "") -> TrainingRun | None:
    """Take a queued run, or one still marked running by an earlier delivery of this same message (a worker killed
    mid-slice); None when another message holds it, or it is finished or cancelled. A slice delivered too often
    fails the run instead."""
    claimable = Q(status=TrainingRun.Status.QUEUED) | Q(status=TrainingRun.Status.RUNNING, claim_token=token)
    now = timezone.now()
    TrainingRun.objects.filter(claimable, id=run_id, attempts__gte=MAX_ATTEMPTS).update(
        status=TrainingRun.Status.FAILED, finished_at=now,
        error=f"gave up after {MAX_ATTEMPTS} attempts at one slice (the worker died or timed out each time)")
    claimed = TrainingRun.objects.filter(claimable, id=run_id).update(
        status=TrainingRun.Status.RUNNING, claim_token=token, worker=worker[:200], attempts=F("attempts") + 1)
    if not claimed:
        return None
    TrainingRun.objects.filter(id=run_id, started_at__isnull=True).update(started_at=now)
    TrainingRun.objects.filter(id=run_id, attempts=1).update(slices=F("slices") + 1)
    return TrainingRun.objects.select_related("parent", "dataset").get(id=run_id)


def _held(run_id: int, token: str):
    return TrainingRun.objects.filter(id=run_id, status=TrainingRun.Status.RUNNING, claim_token=token)


def run_progress(*, run_id: int, token: str, event: dict) -> bool:
    """Relay one of the trainer's progress events into the row; False when the run is no longer held by ``token``
    (cancelled), which tells the relay to stop the trainer."""
    kind = event.get("event")
    run = TrainingRun.objects.filter(id=run_id).only("id", "status", "claim_token", "metrics", "step").first()
    if run is None or run.status != TrainingRun.Status.RUNNING or run.claim_token != token:
        return False
    changes: dict[str, Any] = {"last_event": event}
    if kind in ("step", "resumed", "paused", "checkpoint") and "step" in event:
        changes["step"] = int(event["step"])
    if "max_steps" in event:
        changes["max_steps"] = int(event["max_steps"])
    if kind == "step":
        point = {k: v for k, v in event.items() if k not in ("event", "max_steps", "elapsed_s", "eta_s")}
        metrics = [m for m in run.metrics if m.get("step", 0) < point.get("step", 0)] + [point]
        changes["metrics"] = metrics[-METRICS_KEPT:]
        changes["eta_seconds"] = event.get("eta_s")
    elif kind == "resumed":  # steps after the checkpoint are trained again: their old points go
        changes["metrics"] = [m for m in run.metrics if m.get("step", 0) <= int(event.get("step", 0))]
    elif kind == "sample" and event.get("path"):  # a resumed run may render a step's samples again: kept once
        sample = {k: event.get(k) for k in ("step", "index", "path", "prompt")}
        kept = TrainingRun.objects.values_list("samples", flat=True).get(id=run_id)
        changes["samples"] = [s for s in kept if not isinstance(s, dict) or s.get("path") != sample["path"]] + [sample]
    return bool(_held(run_id, token).update(**changes))


def run_pause(*, run_id: int, token: str) -> bool:
    """The slice ended at a checkpoint: queue the run again (a new message, a new claim) once this commits."""
    with transaction.atomic():
        done = _held(run_id, token).update(status=TrainingRun.Status.QUEUED, claim_token="", attempts=0)
        if done:
            transaction.on_commit(lambda: run_enqueue(run_id=run_id))
    return bool(done)


def run_fail(*, run_id: int, token: str | None, error: str) -> bool:
    runs = TrainingRun.objects.filter(id=run_id, status__in=TrainingRun.ACTIVE)
    if token is not None:
        runs = runs.filter(claim_token=token)
    return bool(runs.update(status=TrainingRun.Status.FAILED, error=_one_line(error), finished_at=timezone.now(),
                            eta_seconds=None))


def run_cancel(*, run: TrainingRun) -> TrainingRun:
    """Stop a queued or running run (a running slice stops at its next progress event); it may be resumed."""
    if not TrainingRun.objects.filter(id=run.pk, status__in=TrainingRun.ACTIVE).update(
            status=TrainingRun.Status.CANCELLED, claim_token="", finished_at=timezone.now(), eta_seconds=None):
        raise ValidationError(f"{run} is {run.get_status_display()}: only a queued or running run can be cancelled")
    run.refresh_from_db()
    return run


def run_resume(*, run: TrainingRun) -> TrainingRun:
    """Queue a cancelled or failed run again: it continues from its latest checkpoint with its own settings (the
    trainer refuses a resume whose schedule differs from the checkpoint's)."""
    if run.status not in (TrainingRun.Status.CANCELLED, TrainingRun.Status.FAILED):
        raise ValidationError(f"{run} is {run.get_status_display()}: only a cancelled or failed run can be resumed")
    cfg = config_for(run.method, run.config)
    if errors := run_errors(method=run.method, parent=run.parent, dataset=run.dataset, config=cfg,
                            allow_finetune_parent=True):
        raise ValidationError(errors)
    with transaction.atomic():
        TrainingRun.objects.filter(id=run.pk, status=run.status).update(
            status=TrainingRun.Status.QUEUED, error="", claim_token="", attempts=0, finished_at=None)
        transaction.on_commit(lambda: run_enqueue(run_id=run.pk))
    run.refresh_from_db()
    return run


def worker_name() -> str:
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"
