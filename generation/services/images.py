"""Generated and imported images: encoding their three files and storing them under opaque names."""

from __future__ import annotations

from collections.abc import Mapping

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from PIL import Image as PILImage

from generation import images as png
from generation.models import GenerationJob, Image, Lora, ModelVariant, Prompt, PromptSet
from generation.pipelines.prompt_syntax import parse_lora_tags
from generation.pipelines.types import GenerationError, GenerationRequest
from generation.sampling import MAX_STORED_SEED, SamplerSettings
from generation.services.prompts import MAX_PROMPT_CHARS
from generation.text import one_line

MAX_IMPORTED_STEPS = 1000


def image_parameters(*, variant: ModelVariant, prompt: Prompt, settings: SamplerSettings,
                     lora_hashes: Mapping[str, str] | None = None, guidance_rescale: float | None = None) -> str:
    """A1111's ``parameters`` record of an image made here: every setting the request ran with, the prompt as
    written (its ``<lora:...>`` tags too), the model's name and short hash, the prompt's LoRAs in ``Lora hashes``,
    the model's CFG rescale and, for a v-prediction model, zero terminal SNR. ValidationError (one line) for
    settings A1111's record cannot name (an imported image's unknown sampler)."""
    rescale = variant.guidance_rescale if guidance_rescale is None else guidance_rescale
    request = GenerationRequest(prompt=prompt.text, guidance_rescale=float(rescale), **settings.as_dict())
    try:
        return png.a1111_parameters_for_request(
            request, model=variant.name, model_hash=variant.model_hash or None, lora_hashes=lora_hashes or None,
            prompt=prompt.text, zero_terminal_snr=variant.prediction_type == ModelVariant.Prediction.V)
    except GenerationError as exc:
        raise ValidationError(f"cannot write the image's A1111 record: {exc}") from None


def image_encode(*, variant: ModelVariant, prompt: Prompt, image: PILImage.Image, settings: SamplerSettings,
                 lora_hashes: Mapping[str, str] | None = None, guidance_rescale: float | None = None,
                 parameters: str | None = None) -> png.EncodedImage:
    """The three files of an image (no database access: safe in a helper thread). The original carries
    ``parameters`` when given (an imported PNG's own record), else ``image_parameters``."""
    if parameters is None:
        parameters = image_parameters(variant=variant, prompt=prompt, settings=settings, lora_hashes=lora_hashes,
                                      guidance_rescale=guidance_rescale)
    return png.encode_for_storage(image, parameters)


def _registered_lora_hashes(text: str) -> dict[str, str]:
    """``Lora hashes`` of the registered LoRAs a prompt's tags name (the ones it cannot resolve are left out)."""
    try:
        names = [tag.name for tag in parse_lora_tags(text).loras]
    except GenerationError:
        return {}
    if not names:
        return {}
    known = dict(Lora.objects.filter(name__in=names).values_list("name", "short_hash"))
    return {name: known[name] for name in names if name in known}


def image_store(
    *,
    variant: ModelVariant,
    prompt: Prompt,
    image: PILImage.Image,
    settings: SamplerSettings,
    seconds: float = 0.0,
    worker: str = "",
    job: GenerationJob | None = None,
    encoded: png.EncodedImage | None = None,
) -> Image:
    """Store a generated image: the original PNG with A1111's ``parameters`` chunk, a re-encoded voter copy
    with no metadata and a WebP thumbnail, through the storage API under opaque names. Idempotent: if the
    image of this (model, prompt, settings) is stored already, that one is returned and nothing is written.
    ``encoded`` passes the three files encoded beforehand (by ``image_encode``, e.g. in another thread)."""
    width, height = settings.output_size()
    if image.size != (width, height):
        raise ValidationError(f"the image is {image.size[0]}×{image.size[1]}, not {width}×{height}")
    if not 0 <= settings.seed <= MAX_STORED_SEED:
        raise ValidationError(f"seed {settings.seed} is out of range")
    if not settings.sampler:
        raise ValidationError("the sampler is missing")
    key = settings.key
    existing = Image.objects.filter(variant=variant, prompt=prompt, settings_key=key).first()
    if existing is not None:
        return existing
    if encoded is None:
        encoded = image_encode(variant=variant, prompt=prompt, image=image, settings=settings,
                               lora_hashes=_registered_lora_hashes(prompt.text))
    elif encoded.size != image.size:
        raise ValidationError("the encoded files do not match the image")
    record = Image(variant=variant, prompt=prompt, settings_key=key, seconds=float(seconds), worker=worker[:200],
                   job=job, **settings.as_dict())
    written = _write_files(record, encoded)
    try:
        with transaction.atomic():
            record.save()
    except Exception as exc:
        # No row, no files: another delivery may have stored this image between our check and our insert.
        _delete_names(record, written)
        if not isinstance(exc, IntegrityError):
            raise
        existing = Image.objects.filter(variant=variant, prompt=prompt, settings_key=key).first()
        if existing is None:
            raise
        return existing
    return record


class ImageWriteError(OSError):
    """The image's files could not be written (the media storage is full or failing); nothing of them is left."""


def _write_files(record: Image, encoded: png.EncodedImage) -> list[str]:
    """Write the three files under names chosen beforehand, so that a write that fails part-way (disk full) can
    be removed too: Django's ``FieldFile.save`` names the file only once the storage returns, and
    ``FileSystemStorage`` leaves what it had written of a failed file on disk. Returns the names written; on any
    failure, every file of this image is removed and ImageWriteError (one line) is raised."""
    names: list[str] = []
    try:
        for field_file, filename, data in ((record.file, "original.png", encoded.original),
                                           (record.voter_file, "voter.png", encoded.voter),
                                           (record.thumb, "thumb.webp", encoded.thumb)):
            name = field_file.field.generate_filename(record, filename)
            names.append(name)
            stored = field_file.storage.save(name, ContentFile(data), max_length=field_file.field.max_length)
            names[-1] = stored
            field_file.name = stored
            setattr(record, field_file.field.attname, stored)
            field_file._committed = True
    except Exception as exc:
        _delete_names(record, names)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ImageWriteError(getattr(exc, "errno", None),
                              one_line(f"could not write the image files: {reason}", 300)) from exc
    return names


def _delete_names(record: Image, names: list[str]) -> None:
    storage = record.file.storage
    for name in names:
        try:
            storage.delete(name)
        except Exception:  # noqa: BLE001 - best effort: the storage is failing already
            pass


def _imported_prompt(record: png.GenerationRecord, prompt_set: PromptSet | None) -> Prompt:
    """The prompt an imported image joins: the set's own (made if missing) or, outside a set, an identical
    fixed prompt first (so the image can meet others in duels), then an imported one, else a new one."""
    prompts = Prompt.objects.filter(text=record.prompt, negative_prompt=record.negative_prompt)
    if prompt_set is not None:
        return prompts.filter(prompt_set=prompt_set).first() or Prompt.objects.create(
            prompt_set=prompt_set, text=record.prompt, negative_prompt=record.negative_prompt, source=Prompt.Source.FIXED)
    return (prompts.filter(source=Prompt.Source.FIXED).order_by("id").first()
            or prompts.filter(source=Prompt.Source.IMPORTED).order_by("id").first()
            or Prompt.objects.create(text=record.prompt, negative_prompt=record.negative_prompt,
                                     source=Prompt.Source.IMPORTED))


def _import_settings(variant: ModelVariant, picture: PILImage.Image, record: png.GenerationRecord) -> SamplerSettings:
    """The settings an imported PNG says it was made with, checked against the file and the model."""
    if len(record.prompt) > MAX_PROMPT_CHARS:
        raise ValidationError(f"the prompt is longer than {MAX_PROMPT_CHARS} characters")
    if not 1 <= record.steps <= MAX_IMPORTED_STEPS or not 0 <= record.seed <= MAX_STORED_SEED:
        raise ValidationError("steps or seed out of range")
    if record.enable_hr and "Hires resize" in record.extra and "Hires upscale" not in record.extra:
        raise ValidationError(f"hires to a fixed size (Hires resize: {record.extra['Hires resize']}) is not "
                              "supported; only Hires upscale")
    if record.enable_hr and not (1 <= record.hr_scale <= 8 and 0 < record.denoising_strength <= 1):
        raise ValidationError("hires upscale or denoising strength out of range")
    if (len(record.model_hash) == len(variant.model_hash) == 10
            and record.model_hash.lower() != variant.model_hash.lower()):
        raise ValidationError(f"the PNG was made with model hash {record.model_hash}, but {variant.name}'s is "
                              f"{variant.model_hash}: is it the right model?")
    settings = SamplerSettings.of(record, sampler=(record.sampler_name.strip() or "Euler a")[:40],
                                  schedule_type=(record.schedule_type.strip() or "Automatic")[:40],
                                  hr_upscaler=record.hr_upscaler.strip()[:40])
    if picture.size != settings.output_size():
        width, height = settings.output_size()
        said = f"{record.width}×{record.height}" + (f" upscaled ×{settings.hr_scale:g} to {width}×{height}"
                                                     if settings.enable_hr else "")
        raise ValidationError(f"the metadata says {said} but the image is {picture.size[0]}×{picture.size[1]}")
    return settings


def image_import(*, variant: ModelVariant, data: bytes, prompt_set: PromptSet | None = None) -> tuple[Image, bool]:
    """Import one PNG made elsewhere (A1111 ``parameters`` or ComfyUI ``prompt`` metadata), all or nothing.
    Returns (image, created); raises MetadataError or ValidationError (one line) for a file that cannot be
    imported. The settings are read as A1111 reads them (schedule type, hires pass, clip skip; ComfyUI's
    ``CLIPSetLastLayer`` -2 is clip skip 2); the stored original keeps an A1111 PNG's own record, and a ComfyUI
    image gets A1111's record of what was read."""
    picture, record = png.read_generation_record(data)
    settings = _import_settings(variant, picture, record)
    own = png.png_text_chunks(picture).get("parameters") if record.source == "a1111" else None
    try:
        with transaction.atomic():
            prompt = _imported_prompt(record, prompt_set)
            found = Image.objects.filter(variant=variant, prompt=prompt, settings_key=settings.key).first()
            if found is not None:
                return found, False
            encoded = image_encode(variant=variant, prompt=prompt, image=picture, settings=settings,
                                   lora_hashes=record.lora_hashes, guidance_rescale=record.guidance_rescale,
                                   parameters=own)
            image = image_store(variant=variant, prompt=prompt, image=picture, settings=settings,
                                worker=f"import:{record.source}", encoded=encoded)
    except ValidationError as exc:
        raise ValidationError(one_line("; ".join(exc.messages), 500)) from None
    return image, True
