"""Generated and imported images: encoding their three files and storing them under opaque names."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from PIL import Image as PILImage

from generation import images as png
from generation.models import GenerationJob, Image, ModelVariant, Prompt, PromptSet
from generation.sampling import MAX_STORED_SEED, SamplerSettings
from generation.services.prompts import MAX_PROMPT_CHARS

MAX_IMPORTED_STEPS = 1000


def image_encode(*, variant: ModelVariant, prompt: Prompt, image: PILImage.Image,
                 settings: SamplerSettings) -> png.EncodedImage:
    """The three files of an image (no database access: safe in a helper thread)."""
    parameters = png.a1111_parameters(prompt=prompt.text, model=variant.name, **settings.as_dict())
    return png.encode_for_storage(image, parameters)


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
    if image.size != (settings.width, settings.height):
        raise ValidationError(f"the image is {image.size[0]}×{image.size[1]}, not {settings.width}×{settings.height}")
    if not 0 <= settings.seed <= MAX_STORED_SEED:
        raise ValidationError(f"seed {settings.seed} is out of range")
    if not settings.sampler:
        raise ValidationError("the sampler is missing")
    key = settings.key
    existing = Image.objects.filter(variant=variant, prompt=prompt, settings_key=key).first()
    if existing is not None:
        return existing
    if encoded is None:
        encoded = image_encode(variant=variant, prompt=prompt, image=image, settings=settings)
    elif encoded.size != image.size:
        raise ValidationError("the encoded files do not match the image")
    record = Image(variant=variant, prompt=prompt, settings_key=key, seconds=float(seconds), worker=worker[:200],
                   job=job, **settings.as_dict())
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


def image_import(*, variant: ModelVariant, data: bytes, prompt_set: PromptSet | None = None) -> tuple[Image, bool]:
    """Import one PNG made elsewhere (A1111 ``parameters`` or ComfyUI ``prompt`` metadata), all or nothing.
    Returns (image, created); raises MetadataError or ValidationError for a file that cannot be imported."""
    picture, record = png.read_generation_record(data)
    if picture.size != (record.width, record.height):
        raise ValidationError(f"the metadata says {record.width}×{record.height} but the image is "
                              f"{picture.size[0]}×{picture.size[1]}")
    if len(record.prompt) > MAX_PROMPT_CHARS:
        raise ValidationError(f"the prompt is longer than {MAX_PROMPT_CHARS} characters")
    if not 1 <= record.steps <= MAX_IMPORTED_STEPS or not 0 <= record.seed <= MAX_STORED_SEED:
        raise ValidationError("steps or seed out of range")
    record.sampler = record.sampler.strip()[:40] or "Euler a"
    settings = SamplerSettings.of(record)
    with transaction.atomic():
        prompt = _imported_prompt(record, prompt_set)
        found = Image.objects.filter(variant=variant, prompt=prompt, settings_key=settings.key).first()
        if found is not None:
            return found, False
        image = image_store(variant=variant, prompt=prompt, image=picture, settings=settings,
                            worker=f"import:{record.source}")
    return image, True
