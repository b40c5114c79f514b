"""The model registry: checking checkpoints and LoRA files, registering model variants, their health."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from generation import pipelines
from generation.models import ModelVariant, VariantLora
from generation.pipelines.checkpoints import read_safetensors_header
from generation.sampling import SamplerSettings
from generation.text import one_line

MIN_LORA_WEIGHT, MAX_LORA_WEIGHT = -4.0, 4.0
# The CFG scale a new variant gets when none is given, by prediction type.
DEFAULT_CFG_SCALE = {ModelVariant.Prediction.EPSILON: 6.0, ModelVariant.Prediction.V: 4.5}


@dataclass
class CheckpointCheck:
    source_type: str
    prediction_type: str
    has_ztsnr: bool
    notes: str


def checkpoint_check(*, path: str) -> CheckpointCheck:
    """Check a checkpoint file or diffusers folder with the pipelines' inspector; ValidationError (one line)
    when it is missing, unreadable or not an SDXL checkpoint."""
    if not path or not str(path).strip():
        raise ValidationError("no checkpoint path given")
    target = Path(path).expanduser()
    if not target.exists():
        raise ValidationError(f"{target}: no such file or folder")
    try:
        info = pipelines.inspect_checkpoint(str(target))
    except Exception as exc:  # CheckpointError carries a one-line message; anything else is made one line
        raise ValidationError(f"{target}: {one_line(exc, 400)}") from None
    source_type = info.source_type
    if source_type not in ModelVariant.SourceType.values or source_type == ModelVariant.SourceType.NONE:
        source_type = ModelVariant.SourceType.DIFFUSERS if target.is_dir() else ModelVariant.SourceType.SINGLE_FILE
    prediction = info.prediction_type
    if prediction not in ModelVariant.Prediction.values:
        prediction = ModelVariant.Prediction.EPSILON
    return CheckpointCheck(source_type=source_type, prediction_type=prediction, has_ztsnr=bool(info.has_ztsnr),
                           notes=one_line("; ".join(str(n) for n in info.notes), 500))


def lora_check(*, path: str) -> str:
    """The format of a LoRA file ('kohya' or 'diffusers'); ValidationError when it is not one."""
    target = Path(path).expanduser()
    weights = target
    if target.is_dir():  # a diffusers LoRA folder (save_lora_weights writes pytorch_lora_weights.safetensors)
        candidates = sorted(target.glob("*.safetensors"), key=lambda p: p.name != "pytorch_lora_weights.safetensors")
        if not candidates:
            raise ValidationError(f"LoRA {target}: the folder holds no .safetensors file")
        weights = candidates[0]
    elif not target.is_file():
        raise ValidationError(f"LoRA {target}: no such file or folder")
    try:
        keys = list(read_safetensors_header(weights)[0])
    except pipelines.CheckpointError as exc:
        raise ValidationError(f"LoRA {target}: {one_line(exc, 300)}") from None
    if any(k.startswith(("lora_unet_", "lora_te1_", "lora_te2_", "lora_te_")) for k in keys):
        return VariantLora.Format.KOHYA
    if any(("lora_A." in k or "lora.down." in k or "lora_linear_layer" in k or "lora_down." in k) for k in keys):
        return VariantLora.Format.DIFFUSERS
    raise ValidationError(f"LoRA {target}: no LoRA keys (neither kohya lora_unet_*/lora_te*_ nor diffusers lora_A/lora.down)")


def parse_lora_argument(value: str) -> tuple[str, float]:
    """``PATH:WEIGHT`` (weight optional, default 1.0) → (path, weight)."""
    path, sep, weight = value.rpartition(":")
    if sep and path and not path.endswith(("/", "\\")):
        try:
            return path, float(weight)
        except ValueError:
            pass
    return value, 1.0


# --- variants -----------------------------------------------------------------------------------------------


def variant_register(
    *,
    path: str,
    name: str,
    kind: str = ModelVariant.Kind.BASE,
    prediction: str | None = None,
    family: str = "Illustrious XL",
    version: str = "",
    parent: ModelVariant | None = None,
    loras: Sequence[tuple[str, float]] = (),
    config_path: str = "",
    description: str = "",
    enabled: bool = True,
    defaults: dict[str, Any] | None = None,
) -> ModelVariant:
    """Register a checkpoint (single .safetensors or diffusers folder) after checking it, with LoRAs."""
    name = (name or "").strip()
    if not name:
        raise ValidationError("a model needs a name")
    if kind not in ModelVariant.Kind.values:
        raise ValidationError(f"kind {kind!r} is not one of {', '.join(ModelVariant.Kind.values)}")
    if prediction is not None and prediction not in ModelVariant.Prediction.values:
        raise ValidationError(f"prediction {prediction!r} is not one of {', '.join(ModelVariant.Prediction.values)}")
    if config_path and not Path(config_path).expanduser().exists():
        raise ValidationError(f"config {config_path}: no such file or folder")
    check = checkpoint_check(path=path)
    if prediction == ModelVariant.Prediction.EPSILON and check.prediction_type == ModelVariant.Prediction.V:
        raise ValidationError(f"{path}: the checkpoint carries the v_pred marker; register it with --prediction v (or leave --prediction out)")
    prediction = prediction or check.prediction_type
    lora_rows = []
    for lora_path, weight in loras:
        if not MIN_LORA_WEIGHT <= float(weight) <= MAX_LORA_WEIGHT:
            raise ValidationError(f"LoRA {lora_path}: weight {weight} is outside -4–4")
        lora_rows.append((str(Path(lora_path).expanduser().resolve()), float(weight), lora_check(path=lora_path)))
    if len({p for p, _, _ in lora_rows}) != len(lora_rows):
        raise ValidationError("the same LoRA file is listed twice")
    if ModelVariant.objects.filter(name=name).exists():
        raise ValidationError(f"a model named {name!r} already exists")
    values: dict[str, Any] = {"cfg_scale": DEFAULT_CFG_SCALE[prediction]}
    values.update(defaults or {})
    errors = SamplerSettings.of(ModelVariant(**values), seed=0, negative_prompt="").errors()
    if errors:
        raise ValidationError("; ".join(m for ms in errors.values() for m in ms))
    with transaction.atomic():
        variant = ModelVariant.objects.create(
            name=name, family=family, version=version, kind=kind, prediction_type=prediction,
            source_type=check.source_type, source_path=str(Path(path).expanduser().resolve()),
            config_path=str(Path(config_path).expanduser().resolve()) if config_path else "",
            parent=parent, description=description, enabled=enabled, has_ztsnr=check.has_ztsnr,
            checkpoint_notes=check.notes, **values,
        )
        for position, (lora_path, weight, fmt) in enumerate(lora_rows):
            VariantLora.objects.create(variant=variant, path=lora_path, weight=weight, format=fmt, position=position)
    return variant


def variant_mark_failing(*, variant_id: int, message: str) -> None:
    ModelVariant.objects.filter(id=variant_id).update(health=ModelVariant.Health.FAILING, health_message=one_line(message, 500))


def variant_mark_healthy(*, variant_id: int) -> None:
    ModelVariant.objects.filter(id=variant_id).exclude(health=ModelVariant.Health.OK).update(
        health=ModelVariant.Health.OK, health_message=""
    )
