"""Registering results: a finished LoRA run (or a LoRA file an admin gives) becomes a new variant of its parent
through generation's registry (kind fine-tune, parent recorded, LoRA attached, a card saying how it was made), and a
generation job renders the parent's fixed prompts with the parent's settings, so the child meets its parent in
fixed-prompt duels at once."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from generation import services as generation
from generation.models import ModelVariant
from training.models import TrainingRun

MAX_UPLOAD_BYTES = 2 * 1024**3


def _unique_name(base: str) -> str:
    name, n = base[:120], 2
    while ModelVariant.objects.filter(name=name).exists():
        suffix = f" ({n})"
        name, n = base[:120 - len(suffix)] + suffix, n + 1
    return name


def _first_error(exc: ValidationError) -> str:
    return "; ".join(exc.messages)


def variant_enroll(*, parent: ModelVariant, lora_path: str, name: str, card: dict, description: str = "",
                   created_by=None) -> tuple[ModelVariant, object]:
    """The one registration path: the fine-tune variant, then the job that renders the parent's fixed prompts
    for it (None when the parent has no fixed-prompt images yet). ValidationError for a bad parent or file."""
    with transaction.atomic():
        child = generation.variant_register_lora(parent=parent, lora_path=lora_path, name=_unique_name(name),
                                                 card=card, description=description)
        job = generation.job_create_matching(variant=child, like=parent, created_by=created_by)
    return child, job


def run_card(run: TrainingRun) -> dict:
    keys = ("learning_rate", "network_dim", "network_alpha", "lr_scheduler", "train_batch_size", "resolution",
            "beta_dpo", "min_snr_gamma", "seed")
    return {"source": "training run", "run_id": run.pk, "method": run.method, "method_label": run.get_method_display(),
            "dataset_id": run.dataset_id, "dataset_sha256": run.dataset.sha256, "vote_log_hash": run.dataset.vote_log_hash,
            "dataset_rows": run.dataset.rows, "steps": run.step, "metrics": dict(run.result or {}),
            "settings": {k: run.config[k] for k in keys if k in run.config}}


def run_register_result(*, run: TrainingRun) -> str:
    """Enrol a finished LoRA run's result; "" on success, else why it could not be (the run stays done)."""
    lora = (run.output_files or {}).get("lora_file", "")
    name = f"{run.parent.name} · {run.method.upper()} run {run.pk}"
    try:
        child, job = variant_enroll(parent=run.parent, lora_path=lora, name=name, card=run_card(run),
                                    description=f"{run.get_method_display()} of {run.parent.name} on dataset "
                                                f"{run.dataset.sha256[:12]}, {run.step} steps.",
                                    created_by=run.started_by)
    except ValidationError as exc:
        return f"the LoRA could not be registered: {_first_error(exc)}"
    TrainingRun.objects.filter(id=run.pk).update(result_variant=child, registration_job_id=job.pk if job else None)
    return ""


def run_register_reward_judge(*, run: TrainingRun) -> str:
    """Make a finished reward run's model the reward judge of the scorers (its agreement with people then shows on
    the stats page; every image is queued for its score); "" on success, else why not (the run stays done)."""
    from generation.scoring.services import ScoringError, reward_judge_register

    path = (run.output_files or {}).get("model_file", "")
    try:
        reward_judge_register(path=path, name=f"reward run {run.pk} (dataset {run.dataset.sha256[:12]})")
    except ScoringError as exc:
        return f"the reward model could not be registered as a judge: {exc}"
    return ""


def _stored_upload(upload) -> str:
    """An uploaded .safetensors under TRAINING_DIR/uploads, named by its content hash."""
    if not upload.name.lower().endswith(".safetensors"):
        raise ValidationError({"upload": f"{upload.name}: a LoRA file is a .safetensors file"})
    if upload.size > MAX_UPLOAD_BYTES:
        raise ValidationError({"upload": f"{upload.name} is larger than {MAX_UPLOAD_BYTES // 1024**3} GiB"})
    folder = Path(settings.TRAINING_DIR) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    tmp = folder / f".upload-{os.getpid()}-{os.urandom(4).hex()}"
    with open(tmp, "wb") as fh:
        for chunk in upload.chunks():
            h.update(chunk)
            fh.write(chunk)
    final = folder / f"{h.hexdigest()[:16]}.safetensors"
    os.replace(tmp, final)
    return str(final)


def lora_enroll(*, parent: ModelVariant | None, name: str, path: str = "", upload=None, note: str = "",
                created_by=None) -> tuple[ModelVariant, object]:
    """An admin's LoRA file (a path on the server or an upload) enrolled as a fine-tune of ``parent`` through the
    same path as a training run's result. ValidationError by field, with a clear reason for a bad file."""
    errors: dict[str, list[str]] = {}
    if parent is None:
        errors["parent"] = ["pick the model the LoRA was trained on"]
    if not (name or "").strip():
        errors["name"] = ["give the new model a name"]
    if bool(path.strip()) == bool(upload):
        errors["path"] = ["give a LoRA file: a path on the server or an upload (one of them)"]
    if errors:
        raise ValidationError(errors)
    if upload is not None:
        lora_path = _stored_upload(upload)
    else:
        lora_path = str(Path(path.strip()).expanduser())
        if not os.path.exists(lora_path):  # os.path: False, not an OSError, for an unusable name
            raise ValidationError({"path": f"{lora_path}: no such file or folder"})
    card = {"source": "LoRA file given by an admin", "file": Path(lora_path).name,
            "sha256": _sha256(lora_path) if os.path.isfile(lora_path) else "", "note": (note or "").strip()[:500]}
    try:
        return variant_enroll(parent=parent, lora_path=lora_path, name=name.strip(), card=card,
                              description=(note or "").strip(), created_by=created_by)
    except ValidationError as exc:
        if hasattr(exc, "error_dict") and "lora_path" in exc.error_dict:
            raise ValidationError({"path" if upload is None else "upload": exc.error_dict["lora_path"]}) from None
        raise


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
