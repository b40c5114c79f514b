"""Writes of the generation app: keyword-only, typed ``<entity>_<action>`` functions that validate before they
write. Torch and diffusers are imported lazily, only by the worker-side functions (``tasks_run``)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import socket
import struct
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from PIL import Image as PILImage

from generation import images as png
from generation.models import (
    Character,
    CharacterReference,
    GenerationJob,
    GenerationTask,
    Image,
    ModelVariant,
    Prompt,
    PromptSet,
    VariantLora,
)

logger = logging.getLogger(__name__)

# A1111 sampler names the pipelines map to diffusers schedulers (the worker validates again).
SAMPLER_NAMES: tuple[str, ...] = (
    "Euler a",
    "Euler",
    "DPM++ 2M",
    "DPM++ 2M Karras",
    "DPM++ SDE Karras",
    "DDIM",
    "UniPC",
)
MIN_SIDE, MAX_SIDE, MAX_PIXELS = 256, 2048, 4_200_000
MAX_SEED = 2**32 - 1
MAX_STEPS = 150
MAX_JOB_TASKS = 20_000
MAX_PROMPTS_PER_IMPORT = 5_000
MAX_PROMPT_CHARS = 5_000
# A task whose worker died is taken back by its own redelivered message (same claim token). One still marked
# running long after any worker could be on it (its message was lost) is put back by job_retry_failed.
MAX_TASK_ATTEMPTS = 5
# Batches per queue message: more overlap of encoding with generation, and a killed worker redoes at most this
# many batches (only their unfinished images).
BATCHES_PER_MESSAGE = 4


def _now():
    return timezone.now()


def _one_line(message: object, limit: int = 900) -> str:
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# --- settings ---------------------------------------------------------------------------------------------


def sampler_names() -> tuple[str, ...]:
    """A1111 sampler names the workers can run (the pipelines' table; importing it is cheap)."""
    try:
        from generation.pipelines import SAMPLERS
    except ImportError:
        return SAMPLER_NAMES
    return tuple(SAMPLERS)


def size_errors(*, width: int, height: int) -> list[str]:
    errors = []
    for side_name, side in (("width", width), ("height", height)):
        if side % 8:
            errors.append(f"{side_name} {side} is not a multiple of 8")
        if not MIN_SIDE <= side <= MAX_SIDE:
            errors.append(f"{side_name} {side} is outside {MIN_SIDE}–{MAX_SIDE}")
    if width * height > MAX_PIXELS:
        errors.append(f"{width}×{height} is {width * height / 1e6:.2f} MP, above {MAX_PIXELS / 1e6:.1f} MP")
    return errors


def sampler_settings_errors(
    *, sampler: str, steps: int, cfg_scale: float, width: int, height: int, clip_skip: int
) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if sampler not in sampler_names():
        errors.setdefault("sampler", []).append(f"unknown sampler {sampler!r}; use one of: {', '.join(sampler_names())}")
    if not 1 <= int(steps) <= MAX_STEPS:
        errors.setdefault("steps", []).append(f"steps must be 1–{MAX_STEPS}")
    if not 0.0 <= float(cfg_scale) <= 30.0:
        errors.setdefault("cfg_scale", []).append("CFG scale must be 0–30")
    if not 1 <= int(clip_skip) <= 12:
        errors.setdefault("clip_skip", []).append("clip skip must be 1–12")
    size = size_errors(width=int(width), height=int(height))
    if size:
        errors.setdefault("width", []).extend(size)
    return errors


def settings_key_for(
    *,
    seed: int,
    sampler: str,
    steps: int,
    cfg_scale: float,
    width: int,
    height: int,
    clip_skip: int,
    negative_prompt: str,
) -> str:
    """sha256 of a canonical form of everything but the model and the prompt: images of one prompt with the
    same key were made the same way and may meet in a fixed-prompt duel."""
    canonical = {
        "seed": int(seed),
        "sampler": str(sampler).strip(),
        "steps": int(steps),
        "cfg_scale": round(float(cfg_scale), 4),
        "width": int(width),
        "height": int(height),
        "clip_skip": int(clip_skip),
        "negative_prompt": " ".join(str(negative_prompt).split()),
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- registry -----------------------------------------------------------------------------------------------


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
        inspect_checkpoint = _pipelines().inspect_checkpoint
    except (ImportError, AttributeError) as exc:  # the worker extra is not installed here
        raise ValidationError(f"cannot check checkpoints here: {_one_line(exc)}") from None
    try:
        info = inspect_checkpoint(str(target))
    except Exception as exc:  # CheckpointError carries a one-line message; anything else is made one line
        raise ValidationError(f"{target}: {_one_line(exc, 400)}") from None
    source_type = str(getattr(info, "source_type", "") or "")
    if source_type not in ModelVariant.SourceType.values or source_type == ModelVariant.SourceType.NONE:
        source_type = ModelVariant.SourceType.DIFFUSERS if target.is_dir() else ModelVariant.SourceType.SINGLE_FILE
    prediction = str(getattr(info, "prediction_type", "eps") or "eps")
    if prediction not in ModelVariant.Prediction.values:
        prediction = ModelVariant.Prediction.EPSILON
    notes = getattr(info, "notes", "") or ""
    if isinstance(notes, (list, tuple)):
        notes = "; ".join(str(n) for n in notes)
    return CheckpointCheck(source_type=source_type, prediction_type=prediction,
                           has_ztsnr=bool(getattr(info, "has_ztsnr", False)), notes=_one_line(notes, 500))


def _safetensors_keys(path: Path) -> list[str]:
    """Tensor names from a .safetensors header (8-byte length + JSON), read without loading any tensor."""
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) != 8:
            raise ValueError("file too short to be .safetensors")
        (length,) = struct.unpack("<Q", head)
        if length <= 1 or length > 100 * 1024 * 1024 or length > path.stat().st_size:
            raise ValueError("not a .safetensors file (bad header length)")
        try:
            header = json.loads(handle.read(length))
        except ValueError:
            raise ValueError("not a .safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise ValueError("not a .safetensors file (header is not a table)")
    return [key for key in header if key != "__metadata__"]


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
        keys = _safetensors_keys(weights)
    except (OSError, ValueError) as exc:
        raise ValidationError(f"LoRA {target}: {_one_line(exc, 300)}") from None
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
        if not -4.0 <= float(weight) <= 4.0:
            raise ValidationError(f"LoRA {lora_path}: weight {weight} is outside -4–4")
        lora_rows.append((str(Path(lora_path).expanduser().resolve()), float(weight), lora_check(path=lora_path)))
    if len({p for p, _, _ in lora_rows}) != len(lora_rows):
        raise ValidationError("the same LoRA file is listed twice")
    if ModelVariant.objects.filter(name=name).exists():
        raise ValidationError(f"a model named {name!r} already exists")
    values: dict[str, Any] = {"cfg_scale": 4.5 if prediction == ModelVariant.Prediction.V else 6.0}
    values.update(defaults or {})
    errors = sampler_settings_errors(
        sampler=values.get("sampler", "Euler a"), steps=values.get("steps", 28), cfg_scale=values["cfg_scale"],
        width=values.get("width", 832), height=values.get("height", 1216), clip_skip=values.get("clip_skip", 1),
    )
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
    ModelVariant.objects.filter(id=variant_id).update(health=ModelVariant.Health.FAILING, health_message=_one_line(message, 500))


def variant_mark_healthy(*, variant_id: int) -> None:
    ModelVariant.objects.filter(id=variant_id).exclude(health=ModelVariant.Health.OK).update(
        health=ModelVariant.Health.OK, health_message=""
    )


# --- prompts and characters -----------------------------------------------------------------------------------


@dataclass
class _PromptRow:
    text: str
    negative_prompt: str = ""
    character: str = ""


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError("the file is not UTF-8 text") from None


def _looks_like_csv(text: str, filename: str) -> bool:
    if filename.lower().endswith(".csv"):
        return True
    first = text.lstrip().split("\n", 1)[0].strip().lower()
    return first.split(",")[0].strip().strip('"') in {"prompt", "text"}


def prompt_rows_parse(*, data: bytes | str, filename: str = "") -> list[_PromptRow]:
    """Prompts from a text file (one a line; blank lines and # comments skipped) or a CSV file with a
    ``prompt`` (or ``text``) column and optional ``negative_prompt`` and ``character`` columns."""
    text = _decode(data)
    rows: list[_PromptRow] = []
    if _looks_like_csv(text, filename):
        reader = csv.DictReader(io.StringIO(text))
        columns = {c.strip().lower(): c for c in (reader.fieldnames or [])}
        prompt_column = columns.get("prompt") or columns.get("text")
        if not prompt_column:
            raise ValidationError("the CSV file needs a 'prompt' column")
        negative_column = columns.get("negative_prompt") or columns.get("negative")
        character_column = columns.get("character")
        try:
            for record in reader:
                prompt = (record.get(prompt_column) or "").strip()
                if not prompt:
                    continue
                rows.append(_PromptRow(
                    text=prompt,
                    negative_prompt=(record.get(negative_column) or "").strip() if negative_column else "",
                    character=(record.get(character_column) or "").strip() if character_column else "",
                ))
        except csv.Error as exc:
            raise ValidationError(f"the CSV file is malformed: {exc}") from None
    else:
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                rows.append(_PromptRow(text=line))
    if not rows:
        raise ValidationError("no prompts found")
    if len(rows) > MAX_PROMPTS_PER_IMPORT:
        raise ValidationError(f"{len(rows)} prompts; at most {MAX_PROMPTS_PER_IMPORT} at a time")
    for number, row in enumerate(rows, 1):
        if len(row.text) > MAX_PROMPT_CHARS:
            raise ValidationError(f"prompt {number} is longer than {MAX_PROMPT_CHARS} characters")
        for value in (row.text, row.negative_prompt, row.character):
            bad = next((ch for ch in value if ch != "\t" and unicodedata.category(ch) in ("Cc", "Cf", "Cs")), None)
            if bad is not None:  # NUL cannot be stored in PostgreSQL; the others are invisible or reorder text
                raise ValidationError(f"prompt {number} contains an invisible control or formatting character "
                                      f"(U+{ord(bad):04X})")
    return rows


def prompt_set_import(
    *, name: str, data: bytes | str, filename: str = "", description: str = "", negative_prompt: str = ""
) -> PromptSet:
    """Create a prompt set from a text or CSV file, or add the file's new prompts to the set of that name
    (prompts already in the set are skipped, so importing twice changes nothing)."""
    name = (name or "").strip()
    if not name:
        raise ValidationError("a prompt set needs a name")
    rows = prompt_rows_parse(data=data, filename=filename)
    with transaction.atomic():
        prompt_set, created = PromptSet.objects.get_or_create(name=name, defaults={"description": description})
        existing = set(prompt_set.prompts.values_list("text", "negative_prompt"))
        characters: dict[str, Character] = {}
        new = []
        for row in rows:
            negative = row.negative_prompt or negative_prompt
            if (row.text, negative) in existing:
                continue
            existing.add((row.text, negative))
            character = None
            if row.character:
                if row.character not in characters:
                    characters[row.character], _ = Character.objects.get_or_create(name=row.character[:200])
                character = characters[row.character]
            new.append(Prompt(prompt_set=prompt_set, text=row.text, negative_prompt=negative,
                              character=character, source=Prompt.Source.FIXED))
        Prompt.objects.bulk_create(new)
    return prompt_set


def prompts_from_text(*, text: str, negative_prompt: str = "") -> list[Prompt]:
    """Pasted prompts (one a line) as fixed prompts outside any set; an identical pasted prompt is reused so
    images of it from several jobs can meet in duels."""
    rows = prompt_rows_parse(data=text)
    prompts = []
    for row in rows:
        prompt = Prompt.objects.filter(prompt_set=None, source=Prompt.Source.FIXED, text=row.text,
                                       negative_prompt=negative_prompt).first()
        if prompt is None:
            prompt = Prompt.objects.create(text=row.text, negative_prompt=negative_prompt, source=Prompt.Source.FIXED)
        prompts.append(prompt)
    return prompts


def character_create(*, name: str, tags: str = "") -> Character:
    name = (name or "").strip()
    if not name:
        raise ValidationError("a character needs a name")
    if Character.objects.filter(name=name).exists():
        raise ValidationError(f"a character named {name!r} already exists")
    return Character.objects.create(name=name, tags=tags.strip())


def character_save(*, name: str, tags: str = "", reference: bytes | None = None) -> Character:
    """Create a character (or update its tags) and optionally add a reference image, all or nothing."""
    name = (name or "").strip()
    if not name:
        raise ValidationError("a character needs a name")
    with transaction.atomic():
        character, created = Character.objects.get_or_create(name=name[:200], defaults={"tags": tags.strip()})
        if not created and tags.strip() and tags.strip() != character.tags:
            character.tags = tags.strip()
            character.save(update_fields=["tags"])
        if reference is not None:
            character_reference_add(character=character, data=reference)
    return character


def character_reference_add(*, character: Character, data: bytes) -> CharacterReference:
    """Add a reference image (any format Pillow reads; stored as a metadata-free PNG under an opaque name)."""
    try:
        picture = PILImage.open(io.BytesIO(data))
        picture.load()
    except Exception as exc:
        raise ValidationError(f"not a readable image: {_one_line(exc, 200)}") from None
    reference = CharacterReference(character=character)
    reference.image.save("reference.png", ContentFile(png.png_without_metadata(picture)), save=False)
    reference.save()
    return reference


# --- images ---------------------------------------------------------------------------------------------------


def image_encode(*, variant: ModelVariant, prompt: Prompt, image: PILImage.Image, seed: int, sampler: str, steps: int,
                 cfg_scale: float, clip_skip: int = 1, negative_prompt: str = "") -> png.EncodedImage:
    """The three files of an image (no database access: safe in a helper thread)."""
    width, height = image.size
    parameters = png.a1111_parameters(prompt=prompt.text, negative_prompt=negative_prompt, steps=steps, sampler=sampler,
                                      cfg_scale=cfg_scale, seed=seed, width=width, height=height, model=variant.name,
                                      clip_skip=clip_skip)
    return png.encode_for_storage(image, parameters)


def image_store(
    *,
    variant: ModelVariant,
    prompt: Prompt,
    image: PILImage.Image,
    seed: int,
    sampler: str,
    steps: int,
    cfg_scale: float,
    width: int,
    height: int,
    clip_skip: int = 1,
    negative_prompt: str = "",
    seconds: float = 0.0,
    worker: str = "",
    job: GenerationJob | None = None,
    encoded: png.EncodedImage | None = None,
) -> Image:
    """Store a generated image: the original PNG with A1111's ``parameters`` chunk, a re-encoded voter copy
    with no metadata and a WebP thumbnail, through the storage API under opaque names. Idempotent: if the
    image of this (model, prompt, settings) is stored already, that one is returned and nothing is written.
    ``encoded`` passes the three files encoded beforehand (by ``image_encode``, e.g. in another thread)."""
    if image.size != (int(width), int(height)):
        raise ValidationError(f"the image is {image.size[0]}×{image.size[1]}, not {width}×{height}")
    if not 0 <= int(seed) <= 2**63 - 1:
        raise ValidationError(f"seed {seed} is out of range")
    if not sampler:
        raise ValidationError("the sampler is missing")
    key = settings_key_for(seed=seed, sampler=sampler, steps=steps, cfg_scale=cfg_scale, width=width,
                           height=height, clip_skip=clip_skip, negative_prompt=negative_prompt)
    existing = Image.objects.filter(variant=variant, prompt=prompt, settings_key=key).first()
    if existing is not None:
        return existing
    if encoded is None:
        encoded = image_encode(variant=variant, prompt=prompt, image=image, seed=seed, sampler=sampler, steps=steps,
                               cfg_scale=cfg_scale, clip_skip=clip_skip, negative_prompt=negative_prompt)
    elif encoded.size != image.size:
        raise ValidationError("the encoded files do not match the image")
    record = Image(variant=variant, prompt=prompt, negative_prompt=negative_prompt, seed=int(seed), sampler=sampler,
                   steps=int(steps), cfg_scale=float(cfg_scale), width=int(width), height=int(height),
                   clip_skip=int(clip_skip), settings_key=key, seconds=float(seconds), worker=worker[:200], job=job)
    record.file.save("original.png", ContentFile(encoded.original), save=False)
    record.voter_file.save("voter.png", ContentFile(encoded.voter), save=False)
    record.thumb.save("thumb.webp", ContentFile(encoded.thumb), save=False)
    try:
        with transaction.atomic():
            record.save()
    except Exception as exc:
        # No row, no files: another delivery may have stored this image between our check and our insert.
        for field_file in (record.file, record.voter_file, record.thumb):
            field_file.delete(save=False)
        if not isinstance(exc, IntegrityError):
            raise
        existing = Image.objects.filter(variant=variant, prompt=prompt, settings_key=key).first()
        if existing is None:
            raise
        return existing
    return record


def image_import(*, variant: ModelVariant, data: bytes, prompt_set: PromptSet | None = None) -> tuple[Image, bool]:
    """Import one PNG made elsewhere (A1111 ``parameters`` or ComfyUI ``prompt`` metadata), all or nothing.
    The prompt joins an identical fixed prompt when there is one (so the image can meet others in duels).
    Returns (image, created); raises MetadataError or ValidationError for a file that cannot be imported."""
    picture, record = png.read_generation_record(data)
    if picture.size != (record.width, record.height):
        raise ValidationError(f"the metadata says {record.width}×{record.height} but the image is "
                              f"{picture.size[0]}×{picture.size[1]}")
    if len(record.prompt) > MAX_PROMPT_CHARS:
        raise ValidationError(f"the prompt is longer than {MAX_PROMPT_CHARS} characters")
    if not 1 <= record.steps <= 1000 or not 0 <= record.seed <= 2**63 - 1:
        raise ValidationError("steps or seed out of range")
    record.sampler = record.sampler.strip()[:40] or "Euler a"
    with transaction.atomic():
        prompts = Prompt.objects.filter(text=record.prompt, negative_prompt=record.negative_prompt)
        if prompt_set is not None:
            prompt = prompts.filter(prompt_set=prompt_set).first() or Prompt.objects.create(
                prompt_set=prompt_set, text=record.prompt, negative_prompt=record.negative_prompt, source=Prompt.Source.FIXED)
        else:
            prompt = (prompts.filter(source=Prompt.Source.FIXED).order_by("id").first()
                      or prompts.filter(source=Prompt.Source.IMPORTED).order_by("id").first()
                      or Prompt.objects.create(text=record.prompt, negative_prompt=record.negative_prompt,
                                               source=Prompt.Source.IMPORTED))
        key = settings_key_for(seed=record.seed, sampler=record.sampler, steps=record.steps, cfg_scale=record.cfg_scale,
                               width=record.width, height=record.height, clip_skip=record.clip_skip,
                               negative_prompt=record.negative_prompt)
        found = Image.objects.filter(variant=variant, prompt=prompt, settings_key=key).first()
        if found is not None:
            return found, False
        image = image_store(variant=variant, prompt=prompt, image=picture, seed=record.seed, sampler=record.sampler,
                            steps=record.steps, cfg_scale=record.cfg_scale, width=record.width, height=record.height,
                            clip_skip=record.clip_skip, negative_prompt=record.negative_prompt,
                            worker=f"import:{record.source}")
    return image, True


# --- jobs -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Settings:
    sampler: str
    steps: int
    cfg_scale: float
    width: int
    height: int
    clip_skip: int


def _settings_for(variant: ModelVariant, overrides: dict[str, Any]) -> _Settings:
    def pick(name: str) -> Any:
        value = overrides.get(name)
        return getattr(variant, name) if value is None or value == "" else value

    return _Settings(sampler=str(pick("sampler")), steps=int(pick("steps")), cfg_scale=float(pick("cfg_scale")),
                     width=int(pick("width")), height=int(pick("height")), clip_skip=int(pick("clip_skip")))


def _variant_errors(variants: Sequence[ModelVariant]) -> list[str]:
    errors = []
    if not variants:
        errors.append("pick at least one model")
    if len({v.pk for v in variants}) != len(variants):
        errors.append("a model is listed twice")
    for variant in variants:
        if not variant.enabled:
            errors.append(f"{variant.name} is disabled")
        if variant.source_type == ModelVariant.SourceType.NONE or not variant.source_path:
            errors.append(f"{variant.name} has no local weights (imported images only)")
    return errors


def _task_for(*, job: GenerationJob | None, variant: ModelVariant, prompt: Prompt, seed: int, s: _Settings,
              negative_prompt: str) -> GenerationTask:
    return GenerationTask(
        job=job, variant=variant, prompt=prompt, negative_prompt=negative_prompt, seed=int(seed),
        sampler=s.sampler, steps=s.steps, cfg_scale=s.cfg_scale, width=s.width, height=s.height,
        clip_skip=s.clip_skip,
        settings_key=settings_key_for(seed=seed, sampler=s.sampler, steps=s.steps, cfg_scale=s.cfg_scale,
                                      width=s.width, height=s.height, clip_skip=s.clip_skip,
                                      negative_prompt=negative_prompt),
    )


def job_create(
    *,
    variants: Sequence[ModelVariant],
    seeds: Sequence[int],
    prompts: Sequence[Prompt] | None = None,
    prompt_set: PromptSet | None = None,
    prompt_text: str = "",
    name: str = "",
    sampler: str | None = None,
    steps: int | None = None,
    cfg_scale: float | None = None,
    width: int | None = None,
    height: int | None = None,
    clip_skip: int | None = None,
    negative_prompt: str | None = None,
    created_by: Any = None,
) -> GenerationJob:
    """Schedule models × prompts × seeds. Settings left as None come from each model's defaults; a negative
    prompt left as None comes from each prompt. Images that exist already are not made again. The tasks are
    enqueued on the ``gpu`` queue once the transaction commits, grouped by model and settings."""
    variants = list(variants)
    errors: dict[str, list[str]] = {}
    variant_errors = _variant_errors(variants)
    if variant_errors:
        errors["variants"] = variant_errors
    seed_list = list(dict.fromkeys(int(s) for s in seeds))
    if not seed_list:
        errors.setdefault("seeds", []).append("give at least one seed")
    if any(not 0 <= s <= MAX_SEED for s in seed_list):
        errors.setdefault("seeds", []).append(f"seeds must be 0–{MAX_SEED}")
    sources = sum(bool(x) for x in (prompts, prompt_set, prompt_text.strip()))
    if sources != 1:
        errors.setdefault("prompts", []).append("pick a prompt set or paste prompts (one of them)")
    prompt_rows: list[_PromptRow] = []
    if prompt_text.strip() and sources == 1:
        try:
            prompt_rows = prompt_rows_parse(data=prompt_text)
        except ValidationError as exc:
            errors.setdefault("prompts", []).extend(exc.messages)
    prompt_list = list(prompts or []) + (list(prompt_set.prompts.all()) if prompt_set is not None else [])
    if sources == 1 and (prompts or prompt_set is not None) and not prompt_list:
        errors.setdefault("prompts", []).append("the prompt set has no prompts")
    overrides = {"sampler": sampler, "steps": steps, "cfg_scale": cfg_scale, "width": width, "height": height,
                 "clip_skip": clip_skip}
    per_variant: dict[int, _Settings] = {}
    for variant in variants:
        s = _settings_for(variant, overrides)
        per_variant[variant.pk] = s
        for field_name, messages in sampler_settings_errors(**s.__dict__).items():
            for message in messages:
                if message not in errors.get(field_name, []):
                    errors.setdefault(field_name, []).append(message)
    count = len(variants) * max(1, len(prompt_list) or len(prompt_rows)) * len(seed_list)
    if count > MAX_JOB_TASKS:
        errors.setdefault("seeds", []).append(f"{count} images is more than {MAX_JOB_TASKS} in one job")
    if errors:
        raise ValidationError(errors)

    with transaction.atomic():
        if prompt_rows:
            prompt_list = prompts_from_text(text=prompt_text, negative_prompt=negative_prompt or "")
        job = GenerationJob.objects.create(
            name=(name or "").strip()[:200], created_by=created_by if getattr(created_by, "pk", None) else None,
            prompt_set=prompt_set,
            settings={"seeds": seed_list, "variants": [v.pk for v in variants],
                      **{k: v for k, v in overrides.items() if v not in (None, "")},
                      **({"negative_prompt": negative_prompt} if negative_prompt is not None else {})},
        )
        tasks: list[GenerationTask] = []
        seen: set[tuple[int, int, str]] = set()
        for variant in variants:  # model-major order: a worker meets each model in one run
            s = per_variant[variant.pk]
            for prompt in prompt_list:
                negative = prompt.negative_prompt if negative_prompt is None else negative_prompt
                for seed in seed_list:
                    task = _task_for(job=job, variant=variant, prompt=prompt, seed=seed, s=s, negative_prompt=negative)
                    cell = (variant.pk, prompt.pk, task.settings_key)
                    if cell not in seen:
                        seen.add(cell)
                        tasks.append(task)
        existing = set(
            Image.objects.filter(variant__in=variants, prompt__in=prompt_list, settings_key__in={t.settings_key for t in tasks})
            .values_list("variant_id", "prompt_id", "settings_key")
        )
        fresh = [t for t in tasks if (t.variant_id, t.prompt_id, t.settings_key) not in existing]
        GenerationTask.objects.bulk_create(fresh, batch_size=500)
        job.settings["skipped_existing"] = len(tasks) - len(fresh)
        if not fresh:
            job.status = GenerationJob.Status.DONE
            job.finished_at = _now()
        job.save(update_fields=["settings", "status", "finished_at"])
        task_ids = list(job.tasks.order_by("id").values_list("id", flat=True))
        transaction.on_commit(lambda: tasks_enqueue(task_ids=task_ids))
    return job


def job_cancel(*, job: GenerationJob) -> int:
    """Cancel what has not started; a batch already on a GPU finishes. Returns the number of tasks cancelled."""
    with transaction.atomic():
        job = GenerationJob.objects.select_for_update().get(pk=job.pk)
        if job.status in (GenerationJob.Status.DONE, GenerationJob.Status.CANCELLED):
            raise ValidationError(f"{job} is already {job.get_status_display()}")
        cancelled = job.tasks.filter(status=GenerationTask.Status.PENDING).update(
            status=GenerationTask.Status.CANCELLED, finished_at=_now()
        )
        job.status = GenerationJob.Status.CANCELLED
        job.finished_at = _now()
        job.save(update_fields=["status", "finished_at"])
    return cancelled


def _stale_after() -> timedelta:
    hard_limit = getattr(settings, "GENERATION_TASK_TIME_LIMIT", 16 * 60)
    return timedelta(seconds=int(hard_limit) + 120)


def job_retry_failed(*, job: GenerationJob) -> int:
    """Put the failed tasks of a job back in the queue (and any left running by a lost message, long after a
    worker could still be on them). Returns how many."""
    with transaction.atomic():
        job = GenerationJob.objects.select_for_update().get(pk=job.pk)
        stale = Q(status=GenerationTask.Status.RUNNING, started_at__lt=_now() - _stale_after())
        ids = list(job.tasks.filter(Q(status=GenerationTask.Status.FAILED) | stale).values_list("id", flat=True))
        if not ids:
            raise ValidationError(f"{job} has no failed images to retry")
        GenerationTask.objects.filter(id__in=ids).update(
            status=GenerationTask.Status.PENDING, error="", attempts=0, claim_token="", started_at=None, finished_at=None
        )
        job.status = GenerationJob.Status.RUNNING if job.started_at else GenerationJob.Status.PENDING
        job.finished_at = None
        job.save(update_fields=["status", "finished_at"])
        transaction.on_commit(lambda: tasks_enqueue(task_ids=ids))
    return len(ids)


def _job_finished_hook(job_id: int) -> None:
    image_ids = list(Image.objects.filter(job_id=job_id).values_list("id", flat=True))
    if not image_ids:
        return
    try:
        from generation.scoring.services import scores_enqueue_for_images
    except ImportError:  # the automatic scorers are optional
        logger.info("generation.scoring.services.scores_enqueue_for_images is not available; job %s not scored", job_id)
        return
    try:
        scores_enqueue_for_images(image_ids)
    except Exception:  # scoring must never fail a finished generation job
        logger.exception("could not enqueue scoring for job %s", job_id)


def job_refresh_status(*, job_id: int) -> str:
    """Derive a job's status from its tasks; the first caller that sees it finish enqueues the scorers."""
    open_statuses = (GenerationTask.Status.PENDING, GenerationTask.Status.RUNNING)
    tasks = GenerationTask.objects.filter(job_id=job_id)
    if tasks.filter(status__in=open_statuses).exists():
        return GenerationJob.objects.filter(id=job_id).values_list("status", flat=True).first() or ""
    status = GenerationJob.Status.FAILED if tasks.filter(status=GenerationTask.Status.FAILED).exists() else GenerationJob.Status.DONE
    finished = GenerationJob.objects.filter(
        id=job_id, status__in=(GenerationJob.Status.PENDING, GenerationJob.Status.RUNNING)
    ).update(status=status, finished_at=_now())
    if finished:
        transaction.on_commit(lambda: _job_finished_hook(job_id))
    return status


# --- live tasks for free-prompt duels ---------------------------------------------------------------------------


def tasks_create_live(*, prompt: Prompt, variants: list[ModelVariant], seed: int, width: int, height: int) -> list[GenerationTask]:
    """One task per model for a free-prompt duel (or free-for-all): each model's default sampler, steps, CFG and
    clip skip at one common size, the prompt's negative prompt, one seed. Enqueued on the ``gpu`` queue on
    commit, one message per model so several workers can share the poll."""
    errors = _variant_errors(list(variants))
    if len(variants) < 2:
        errors.append("a duel needs at least two models")
    errors += size_errors(width=int(width), height=int(height))
    if not 0 <= int(seed) <= MAX_SEED:
        errors.append(f"seed must be 0–{MAX_SEED}")
    if not prompt.pk or not prompt.text.strip():
        errors.append("the prompt is empty or unsaved")
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        tasks = []
        for variant in variants:
            s = _Settings(sampler=variant.sampler, steps=variant.steps, cfg_scale=variant.cfg_scale, width=int(width),
                          height=int(height), clip_skip=variant.clip_skip)
            task = _task_for(job=None, variant=variant, prompt=prompt, seed=seed, s=s, negative_prompt=prompt.negative_prompt)
            task.save()
            tasks.append(task)
        ids = [t.pk for t in tasks]
        transaction.on_commit(lambda: [tasks_enqueue(task_ids=[i]) for i in ids])
    return tasks


# --- queueing -----------------------------------------------------------------------------------------------------


def tasks_enqueue(*, task_ids: Sequence[int], batch_size: int | None = None) -> int:
    """Send pending tasks to the ``gpu`` queue: grouped by model and settings (model-major), a few batches per
    message (so a worker encodes one batch while it generates the next). Returns the number of messages."""
    from generation.tasks import run_tasks

    batch = max(1, int(batch_size or settings.GENERATION_BATCH_SIZE)) * BATCHES_PER_MESSAGE
    rows = (GenerationTask.objects.filter(id__in=list(task_ids), status=GenerationTask.Status.PENDING)
            .order_by("variant_id", "sampler", "steps", "cfg_scale", "width", "height", "clip_skip", "id")
            .values_list("id", "variant_id", "sampler", "steps", "cfg_scale", "width", "height", "clip_skip"))
    groups: dict[tuple, list[int]] = {}
    for task_id, *group in rows:
        groups.setdefault(tuple(group), []).append(task_id)
    messages = 0
    for ids in groups.values():
        for start in range(0, len(ids), batch):
            run_tasks.apply_async(args=[ids[start:start + batch]])
            messages += 1
    return messages


# --- the worker side ----------------------------------------------------------------------------------------------


def tasks_claim(*, task_ids: Sequence[int], token: str = "", worker: str = "") -> list[GenerationTask]:
    """Claim tasks with a conditional update: pending ones, or ones still marked running by an earlier delivery
    of this same message (``token`` is the Celery task id; a worker killed mid-task left them running). Tasks
    that were tried too often are failed instead of being taken again."""
    token = token or f"direct-{os.urandom(8).hex()}"
    ids = list(task_ids)
    now = _now()
    claimable = Q(status=GenerationTask.Status.PENDING) | Q(status=GenerationTask.Status.RUNNING, claim_token=token)
    GenerationTask.objects.filter(claimable, id__in=ids, attempts__gte=MAX_TASK_ATTEMPTS).update(
        status=GenerationTask.Status.FAILED, finished_at=now,
        error=f"gave up after {MAX_TASK_ATTEMPTS} attempts (the worker died or timed out each time)",
    )
    claimed = GenerationTask.objects.filter(claimable, id__in=ids).update(
        status=GenerationTask.Status.RUNNING, claim_token=token, worker=worker[:200], started_at=now,
        attempts=F("attempts") + 1,
    )
    if not claimed:
        return []
    tasks = list(GenerationTask.objects.filter(id__in=ids, status=GenerationTask.Status.RUNNING, claim_token=token)
                 .select_related("variant", "prompt", "job").order_by("id"))
    job_ids = {t.job_id for t in tasks if t.job_id}
    if job_ids:
        GenerationJob.objects.filter(id__in=job_ids, status=GenerationJob.Status.PENDING).update(
            status=GenerationJob.Status.RUNNING, started_at=now
        )
    return tasks


def tasks_release(*, task_ids: Sequence[int], token: str) -> int:
    """Give claimed, unfinished tasks back to the queue (before a retry)."""
    return GenerationTask.objects.filter(id__in=list(task_ids), status=GenerationTask.Status.RUNNING, claim_token=token).update(
        status=GenerationTask.Status.PENDING, claim_token="", started_at=None
    )


def tasks_fail(*, task_ids: Sequence[int], error: str) -> int:
    ids = list(task_ids)
    failed = GenerationTask.objects.filter(
        id__in=ids, status__in=(GenerationTask.Status.PENDING, GenerationTask.Status.RUNNING)
    ).update(status=GenerationTask.Status.FAILED, error=_one_line(error), finished_at=_now())
    for job_id in set(GenerationTask.objects.filter(id__in=ids, job__isnull=False).values_list("job_id", flat=True)):
        job_refresh_status(job_id=job_id)
    return failed


def task_encode(task: GenerationTask, image: PILImage.Image) -> png.EncodedImage:
    return image_encode(variant=task.variant, prompt=task.prompt, image=image, seed=task.seed, sampler=task.sampler,
                        steps=task.steps, cfg_scale=task.cfg_scale, clip_skip=task.clip_skip,
                        negative_prompt=task.negative_prompt)


def task_complete(*, task: GenerationTask, image: PILImage.Image, seconds: float, worker: str,
                  encoded: png.EncodedImage | None = None) -> Image:
    """Store a task's image and mark the task done, in one transaction (a worker killed before the commit
    leaves no image row; one killed after it leaves a done task that no delivery takes again)."""
    with transaction.atomic():
        stored = image_store(
            variant=task.variant, prompt=task.prompt, image=image, seed=task.seed, sampler=task.sampler,
            steps=task.steps, cfg_scale=task.cfg_scale, width=task.width, height=task.height,
            clip_skip=task.clip_skip, negative_prompt=task.negative_prompt, seconds=seconds, worker=worker,
            job=task.job, encoded=encoded,
        )
        _task_link(task=task, image=stored)
    return stored


def _task_link(*, task: GenerationTask, image: Image) -> None:
    # An image belongs to the first task that made it; a later task for the same cell is done without one.
    taken = GenerationTask.objects.filter(image=image).exclude(id=task.pk).exists()
    GenerationTask.objects.filter(id=task.pk).update(
        status=GenerationTask.Status.DONE, image=None if taken else image, error="", finished_at=_now()
    )


@dataclass
class RunResult:
    claimed: int = 0
    stored: int = 0
    reused: int = 0
    failed: int = 0
    seconds: float = 0.0
    job_ids: set[int] = field(default_factory=set)


class TransientGenerationFault(Exception):
    """The batch may succeed when tried again (out of GPU memory); the tasks were released."""

    def __init__(self, message: str, *, out_of_memory: bool = False):
        super().__init__(message)
        self.out_of_memory = out_of_memory


def _pipelines():
    """The worker-side pipelines package, imported lazily (torch and diffusers come with it)."""
    from generation import pipelines

    return pipelines


def variant_spec(variant: ModelVariant):
    """The pipelines' description of a model variant. The cache key changes when what is loaded changes
    (path, config, prediction type, LoRAs), so an edited variant is loaded afresh."""
    api = _pipelines()
    loras = tuple(api.LoraSpec(path=lora.path, weight=lora.weight) for lora in variant.loras.all())
    fingerprint = json.dumps([variant.source_type, variant.source_path, variant.config_path, variant.prediction_type,
                              [(lora.path, lora.weight) for lora in loras]])
    return api.VariantSpec(
        key=f"variant-{variant.pk}-{hashlib.sha256(fingerprint.encode()).hexdigest()[:12]}",
        source_type=variant.source_type,
        source_path=variant.source_path,
        config_path=variant.config_path or "",
        prediction_type=variant.prediction_type,
        loras=loras,
    )


def generation_request(task: GenerationTask, *, guidance_rescale: float = 0.0):
    return _pipelines().GenerationRequest(
        prompt=task.prompt.text, negative_prompt=task.negative_prompt, seed=task.seed, sampler=task.sampler,
        steps=task.steps, cfg_scale=task.cfg_scale, width=task.width, height=task.height, clip_skip=task.clip_skip,
        guidance_rescale=guidance_rescale,
    )


def _device() -> str | None:
    device = settings.GENERATION_DEVICE
    return None if device in ("", "auto") else device


def tasks_run(
    *,
    task_ids: Sequence[int],
    token: str = "",
    worker: str = "",
    batch_size: int | None = None,
    generate_fn: Callable | None = None,
) -> RunResult:
    """Claim tasks, generate them in batches of one model and settings, store each image exactly once.
    Raises TransientGenerationFault (tasks released) when the batch ran out of GPU memory."""
    pipelines = _pipelines()
    generate = generate_fn or pipelines.generate
    worker = worker or worker_name()
    token = token or f"direct-{os.urandom(8).hex()}"
    batch = max(1, int(batch_size or settings.GENERATION_BATCH_SIZE))
    result = RunResult()
    tasks = tasks_claim(task_ids=task_ids, token=token, worker=worker)
    result.claimed = len(tasks)
    result.job_ids = {t.job_id for t in tasks if t.job_id}
    todo: list[GenerationTask] = []
    for task in tasks:  # a cell made already (by an earlier job or delivery) is not made again
        existing = Image.objects.filter(variant_id=task.variant_id, prompt_id=task.prompt_id, settings_key=task.settings_key).first()
        if existing is not None:
            with transaction.atomic():
                _task_link(task=task, image=existing)
            result.reused += 1
        else:
            todo.append(task)
    store = _OverlappedStore(worker=worker, result=result)
    groups: dict[tuple, list[GenerationTask]] = {}
    for task in todo:
        groups.setdefault((task.variant_id, task.sampler, task.steps, task.cfg_scale, task.width, task.height, task.clip_skip), []).append(task)
    try:
        for group in groups.values():
            variant = group[0].variant
            try:
                spec = variant_spec(variant)
                requests = [generation_request(t, guidance_rescale=variant.guidance_rescale) for t in group]
            except Exception as exc:
                result.failed += tasks_fail(task_ids=[t.pk for t in group], error=f"bad request: {exc}")
                continue
            try:  # load first (or take it from the worker's cache): a load failure marks the model failing
                store.overlap(_pipeline_load(pipelines, spec))
            except pipelines.OutOfMemory as exc:
                raise TransientGenerationFault(f"out of GPU memory loading {variant.name}: {_one_line(exc, 300)}", out_of_memory=True) from exc
            except SoftTimeLimitExceeded:
                raise
            except Exception as exc:
                message = f"{variant.name} failed to load: {_one_line(exc, 400)}"
                logger.warning("%s", message)
                variant_mark_failing(variant_id=variant.pk, message=message)
                variant.health = ModelVariant.Health.FAILING
                result.failed += tasks_fail(task_ids=[t.pk for t in group], error=message)
                continue
            for start in range(0, len(group), batch):
                chunk, chunk_requests = group[start:start + batch], requests[start:start + batch]
                started = time.perf_counter()
                try:
                    pictures = generate(spec, chunk_requests, batch_size=batch, device=_device())
                except pipelines.OutOfMemory as exc:
                    raise TransientGenerationFault(f"out of GPU memory at batch size {batch}: {_one_line(exc, 300)}", out_of_memory=True) from exc
                except pipelines.GenerationError as exc:
                    result.failed += tasks_fail(task_ids=[t.pk for t in chunk], error=_one_line(exc))
                    continue
                except SoftTimeLimitExceeded:
                    raise
                except Exception as exc:  # a bug or an unexpected library error: fail clearly, never leave them running
                    logger.exception("generation of tasks %s failed", [t.pk for t in chunk])
                    result.failed += tasks_fail(task_ids=[t.pk for t in chunk], error=f"unexpected error: {type(exc).__name__}: {_one_line(exc, 500)}")
                    continue
                elapsed = time.perf_counter() - started
                result.seconds += elapsed
                if len(pictures) != len(chunk):
                    result.failed += tasks_fail(task_ids=[t.pk for t in chunk], error=f"the pipeline returned {len(pictures)} images for {len(chunk)} requests")
                    continue
                # Encode this batch's files in a helper thread while the next batch generates; store the
                # previous batch (database and storage writes stay in this thread).
                store.submit(chunk, pictures, elapsed)
                if variant.health != ModelVariant.Health.OK:
                    variant_mark_healthy(variant_id=variant.pk)
                    variant.health = ModelVariant.Health.OK
        store.flush()
    except TransientGenerationFault:
        store.flush()  # what was made is kept
        tasks_release(task_ids=[t.pk for t in tasks], token=token)
        raise
    finally:
        store.close()
    for job_id in result.job_ids:
        job_refresh_status(job_id=job_id)
    return result


class _OverlappedStore:
    """Stores batches one behind: batch k's files are encoded in a helper thread (Pillow releases the GIL while
    it compresses) during batch k+1's generation, then written here, in the caller's thread and transaction."""

    def __init__(self, *, worker: str, result: RunResult):
        self.worker, self.result = worker, result
        self.pool = None
        self.waiting: tuple | None = None

    def overlap(self, device: str) -> None:
        """Overlap only when the model runs on an accelerator: on CPU the encoder thread would take a core
        from torch's threads (which then wait for it), so there it encodes inline."""
        if self.pool is None and str(device).startswith("cuda"):
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generation-encode")

    def submit(self, chunk: list[GenerationTask], pictures: list, elapsed: float) -> None:
        work = lambda: [task_encode(t, p) for t, p in zip(chunk, pictures)]  # noqa: E731
        if self.pool is None:
            from concurrent.futures import Future

            future: Future = Future()
            future.set_result(work())
        else:
            future = self.pool.submit(work)
        self.flush()
        self.waiting = (chunk, pictures, elapsed, future)
        if self.pool is None:
            self.flush()

    def flush(self) -> None:
        if self.waiting is None:
            return
        chunk, pictures, elapsed, future = self.waiting
        self.waiting = None
        encoded = future.result()
        for task, picture, files in zip(chunk, pictures, encoded):
            task_complete(task=task, image=picture, seconds=elapsed / len(chunk), worker=self.worker, encoded=files)
            self.result.stored += 1
        for job_id in {t.job_id for t in chunk if t.job_id}:
            job_refresh_status(job_id=job_id)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _pipeline_load(api, spec) -> str:
    """Load ``spec`` into the worker's pipeline cache (a hit when it is there already); returns the device."""
    resolver = getattr(api, "resolve_device", None)
    if resolver is None:
        from generation.pipelines.loading import resolve_device as resolver
    device = resolver(_device())
    api.pipeline_cache().get(spec, device)
    return device


def tasks_fail_claimed(*, task_ids: Iterable[int], token: str, error: str) -> int:
    """Fail what this delivery still holds (time limit hit, retries exhausted)."""
    ids = list(GenerationTask.objects.filter(id__in=list(task_ids), claim_token=token,
                                             status=GenerationTask.Status.RUNNING).values_list("id", flat=True))
    return tasks_fail(task_ids=ids, error=error) if ids else 0
