"""The model registry: checking checkpoints and LoRA files, and the one write path of a model variant.

``register_model`` (through ``variant_register``) and Django admin (``variant_save``, ``variant_loras_set``,
``variant_lora_save``) save variants here, so both check a checkpoint the same way before anything is saved.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
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
# An edit of any of these fields reads the checkpoint again.
CHECKPOINT_FIELDS = frozenset({"source_type", "source_path", "prediction_type"})
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


def variant_check(*, variant: ModelVariant, changed: Collection[str] | None = None) -> None:
    """Check a new or edited variant before it is saved and fill in what its checkpoint says: the source
    type, the resolved path, the zero-terminal-SNR marker and notes (and healthy again once it checks out).

    ``changed``: the fields an edit changed (None: a new variant); the checkpoint is read again only when
    its path, type or prediction changed. An empty ``prediction_type`` is taken from the checkpoint and a
    ``cfg_scale`` of None from the prediction type. Raises ValidationError by field; writes nothing."""
    errors: dict[str, list[str]] = {}
    variant.name = (variant.name or "").strip()
    if not variant.name:
        errors.setdefault("name", []).append("a model needs a name")
    if variant.kind not in ModelVariant.Kind.values:
        errors.setdefault("kind", []).append(
            f"kind {variant.kind!r} is not one of {', '.join(ModelVariant.Kind.values)}")
    if variant.prediction_type and variant.prediction_type not in ModelVariant.Prediction.values:
        errors.setdefault("prediction_type", []).append(
            f"prediction {variant.prediction_type!r} is not one of {', '.join(ModelVariant.Prediction.values)}")
    if variant.config_path:
        if Path(variant.config_path).expanduser().exists():
            variant.config_path = str(Path(variant.config_path).expanduser().resolve())
        else:
            errors.setdefault("config_path", []).append(f"config {variant.config_path}: no such file or folder")
    if errors:
        raise ValidationError(errors)
    if changed is None or CHECKPOINT_FIELDS & set(changed):
        _checkpoint_fill(variant)  # the files first: a bad path is found before the database is asked
    if ModelVariant.objects.filter(name=variant.name).exclude(pk=variant.pk).exists():
        raise ValidationError({"name": f"a model named {variant.name!r} already exists"})
    variant.prediction_type = variant.prediction_type or ModelVariant.Prediction.EPSILON
    if variant.cfg_scale is None:
        variant.cfg_scale = DEFAULT_CFG_SCALE[variant.prediction_type]
    defaults = SamplerSettings.of(variant, seed=0, negative_prompt="")
    errors = defaults.errors()
    if not 0 <= float(variant.guidance_rescale) <= 1:
        errors.setdefault("guidance_rescale", []).append("CFG rescale must be 0–1 (0 = off)")
    if errors:
        raise ValidationError(errors)
    # one spelling of equal settings: "DPM++ 2M Karras" is stored as "DPM++ 2M" with "Automatic", as jobs store it
    variant.sampler, variant.schedule_type = defaults.sampler, defaults.schedule_type


def _checkpoint_fill(variant: ModelVariant) -> None:
    path = (variant.source_path or "").strip()
    if variant.source_type == ModelVariant.SourceType.NONE and not path:
        return  # a model known by imported images only
    try:
        check = checkpoint_check(path=path)
    except ValidationError as exc:
        raise ValidationError({"source_path": exc.messages}) from None
    if variant.prediction_type == ModelVariant.Prediction.EPSILON and check.prediction_type == ModelVariant.Prediction.V:
        raise ValidationError({"prediction_type": f"{path}: the checkpoint carries the v_pred marker: make it a "
                                                  "v-prediction model (or leave the prediction out to detect it)"})
    variant.source_type = check.source_type
    variant.source_path = str(Path(path).expanduser().resolve())
    variant.prediction_type = variant.prediction_type or check.prediction_type
    variant.has_ztsnr, variant.checkpoint_notes = check.has_ztsnr, check.notes
    variant.model_hash = _model_hash(variant.source_path)
    variant.health, variant.health_message = ModelVariant.Health.OK, ""


_HASHES: dict[tuple, str] = {}  # (path, mtime, size) -> hash: admin checks a form, then saves it (one read of the file)


def _model_hash(path: str) -> str:
    """A1111's ``Model hash`` of a single-file checkpoint ("" for a diffusers folder, which A1111 has none for)."""
    try:
        stat = os.stat(path)
        key = (path, stat.st_mtime_ns, stat.st_size)
        if key not in _HASHES:
            _HASHES.clear()
            _HASHES[key] = pipelines.model_short_hash(path) or ""
        return _HASHES[key]
    except (OSError, pipelines.GenerationError) as exc:
        raise ValidationError({"source_path": one_line(exc, 400)}) from None


def variant_hash_refresh(*, variant: ModelVariant) -> str:
    """Hash a variant's checkpoint again (a variant registered before hashes were stored, or a file replaced in
    place) and save it; returns the hash ("" for a diffusers folder). ValidationError when the file is unreadable."""
    if variant.source_type == ModelVariant.SourceType.NONE or not variant.source_path:
        raise ValidationError(f"{variant.name} has no local weights to hash")
    if not Path(variant.source_path).exists():
        raise ValidationError(f"{variant.name}: {variant.source_path}: no such file or folder")
    variant.model_hash = _model_hash(variant.source_path)
    ModelVariant.objects.filter(pk=variant.pk).update(model_hash=variant.model_hash)
    return variant.model_hash


def variant_save(*, variant: ModelVariant, changed: Collection[str] | None = None) -> ModelVariant:
    """Check (``variant_check``) and save a new or edited variant; ``changed`` as for ``variant_check``."""
    variant_check(variant=variant, changed=changed)
    variant.save()
    return variant


def _lora_checked(path: str, weight: float) -> tuple[str, float, str]:
    if not MIN_LORA_WEIGHT <= float(weight) <= MAX_LORA_WEIGHT:
        raise ValidationError(f"LoRA {path}: weight {weight} is outside {MIN_LORA_WEIGHT:g}–{MAX_LORA_WEIGHT:g}")
    return str(Path(path).expanduser().resolve()), float(weight), lora_check(path=path)


def variant_loras_set(*, variant: ModelVariant, loras: Sequence[tuple[str, float]]) -> list[VariantLora]:
    """Give a saved variant exactly these (path, weight) LoRAs, in this order, after checking every file
    (kohya or diffusers keys, a weight within -4–4, no file twice)."""
    rows = [_lora_checked(path, weight) for path, weight in loras]
    if len({path for path, _, _ in rows}) != len(rows):
        raise ValidationError("the same LoRA file is listed twice")
    with transaction.atomic():
        existing = {lora.path: lora for lora in variant.loras.all()}
        variant.loras.exclude(path__in=[path for path, _, _ in rows]).delete()
        saved = []
        for position, (path, weight, fmt) in enumerate(rows):
            lora = existing.get(path) or VariantLora(variant=variant, path=path)
            lora.weight, lora.format, lora.position = weight, fmt, position
            lora.save()
            saved.append(lora)
    return saved


def variant_lora_save(*, lora: VariantLora) -> VariantLora:
    """Check one LoRA row's file and weight (its format comes from the file) and save it."""
    lora.path, lora.weight, lora.format = _lora_checked(lora.path, lora.weight)
    lora.save()
    return lora


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
    """Register a checkpoint (single .safetensors or diffusers folder) after checking it, with LoRAs, all or
    nothing. ``prediction`` None: detected from the checkpoint's v_pred marker. ``defaults``: the model's
    default sampler settings (the CFG scale, when not given, suits the prediction type)."""
    variant = ModelVariant(
        name=name, family=family, version=version, kind=kind, prediction_type=prediction or "", source_type="",
        source_path=path, config_path=config_path, parent=parent, description=description, enabled=enabled,
        **{"cfg_scale": None, **(defaults or {})},
    )
    with transaction.atomic():
        variant_save(variant=variant)
        variant_loras_set(variant=variant, loras=loras)
    return variant


def variant_mark_failing(*, variant_id: int, message: str) -> None:
    ModelVariant.objects.filter(id=variant_id).update(health=ModelVariant.Health.FAILING, health_message=one_line(message, 500))


def variant_mark_healthy(*, variant_id: int) -> None:
    ModelVariant.objects.filter(id=variant_id).exclude(health=ModelVariant.Health.OK).update(
        health=ModelVariant.Health.OK, health_message=""
    )


def variant_register_lora(
    *,
    parent: ModelVariant,
    lora_path: str,
    name: str,
    weight: float = 1.0,
    card: dict[str, Any] | None = None,
    description: str = "",
    enabled: bool = True,
) -> ModelVariant:
    """Register a LoRA fine-tune of ``parent`` as a new variant: kind fine-tune, the parent recorded, the parent's
    checkpoint and LoRAs plus ``lora_path`` (checked: a kohya or diffusers LoRA file), the parent's prediction type
    and default sampler settings (so its images share settings keys with the parent's), and ``card`` (how it was
    made) for its model page. ValidationError (by field) for a parent without weights or a bad file."""
    if parent is None or parent.pk is None:
        raise ValidationError({"parent": "a fine-tune needs a registered parent model"})
    if parent.source_type == ModelVariant.SourceType.NONE or not parent.source_path:
        raise ValidationError({"parent": f"{parent.name} has no local weights (imported images only): nothing to "
                                         "apply a LoRA to"})
    if not Path(parent.source_path).exists():
        raise ValidationError({"parent": f"{parent.name}: {parent.source_path}: no such file or folder"})
    try:
        lora_check(path=lora_path)
    except ValidationError as exc:
        raise ValidationError({"lora_path": exc.messages}) from None
    inherited = [(lora.path, lora.weight) for lora in parent.loras.all()]
    defaults = {f: getattr(parent, f) for f in ("sampler", "steps", "cfg_scale", "width", "height", "clip_skip",
                                                 "guidance_rescale", "schedule_type", "enable_hr", "hr_scale",
                                                 "hr_second_pass_steps", "denoising_strength", "hr_upscaler")}
    variant = ModelVariant(
        name=name, family=parent.family, version=parent.version, kind=ModelVariant.Kind.FINETUNE,
        prediction_type=parent.prediction_type, source_type="", source_path=parent.source_path,
        config_path=parent.config_path, parent=parent, description=description, enabled=enabled,
        card=dict(card or {}), **defaults,
    )
    with transaction.atomic():
        variant_save(variant=variant)
        variant_loras_set(variant=variant, loras=[*inherited, (lora_path, weight)])
    return variant
