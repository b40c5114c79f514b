"""PNG handling: A1111 ``parameters`` text chunks (write and parse), ComfyUI prompt graphs (parse), voter
copies without any metadata, WebP thumbnails. Pure Pillow; no Django, no torch. The text formats themselves
are in generation/pipelines/infotext.py (A1111 settings line), records.py and comfyui.py (readers)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Mapping

from PIL import Image as PILImage
from PIL import PngImagePlugin

from .pipelines import infotext
from .pipelines.comfyui import parse_comfyui_prompt
from .pipelines.records import GenerationRecord, MetadataError, parse_a1111_parameters

__all__ = ["EncodedImage", "GenerationRecord", "MetadataError", "a1111_parameters", "a1111_parameters_for_request",
           "encode_for_storage",
           "parse_a1111_parameters", "parse_comfyui_prompt", "png_text_chunks", "png_with_parameters",
           "png_without_metadata", "read_generation_record", "webp_thumbnail"]

THUMB_MAX_SIDE = 320


# --- writing ------------------------------------------------------------------------------------------------


def a1111_parameters(
    *,
    prompt: str,
    negative_prompt: str,
    steps: int,
    sampler: str,
    cfg_scale: float,
    seed: int,
    width: int,
    height: int,
    model: str,
    clip_skip: int = 1,
    schedule_type: str = "Automatic",
    model_hash: str | None = None,
    lora_hashes: Mapping[str, str] | None = None,
    guidance_rescale: float = 0.0,
    enable_hr: bool = False,
    hr_scale: float = 2.0,
    hr_second_pass_steps: int = 0,
    denoising_strength: float = 0.7,
    hr_upscaler: str = "Latent",
    zero_terminal_snr: bool = False,
    version: str = infotext.VERSION,
) -> str:
    """The ``parameters`` text A1111 1.10 writes for these settings, which A1111's ``parse_generation_parameters``,
    Forge, ComfyUI loaders and civitai read back as what was done.

    ``prompt`` is the prompt as written, ``<lora:...>`` tags included (A1111 keeps them in the record and lists
    the LoRAs in ``Lora hashes``: name -> ``pipelines.lora_short_hash``). ``model_hash`` is
    ``pipelines.model_short_hash`` of the checkpoint; ``width``/``height`` the first-pass size when ``enable_hr``.
    ``RNG: CPU`` is always written: images are made from per-image CPU generators. ``zero_terminal_snr`` (v-pred
    models) writes ``Noise Schedule: Zero Terminal SNR``; ``guidance_rescale`` writes Forge's ``Rescale CFG``.
    """
    lines = [prompt]
    if negative_prompt:
        lines.append(f"Negative prompt: {negative_prompt}")
    lines.append(infotext.settings_line(
        steps=steps, sampler=sampler, schedule_type=schedule_type, cfg_scale=cfg_scale, seed=seed, width=width,
        height=height, model=str(model), model_hash=model_hash, clip_skip=clip_skip, enable_hr=enable_hr,
        hr_scale=hr_scale, hr_second_pass_steps=hr_second_pass_steps, denoising_strength=denoising_strength,
        hr_upscaler=hr_upscaler, guidance_rescale=guidance_rescale, zero_terminal_snr=zero_terminal_snr,
        lora_hashes=lora_hashes, version=version))
    return "\n".join(lines)


def a1111_parameters_for_request(request, *, model: str, model_hash: str | None = None,
                                 lora_hashes: Mapping[str, str] | None = None, prompt: str | None = None,
                                 zero_terminal_snr: bool = False) -> str:
    """``a1111_parameters`` for a ``pipelines.GenerationRequest`` (every setting it ran with): ``prompt`` is the
    prompt as written when it differs from the request's (``<lora:...>`` tags the request no longer has)."""
    return a1111_parameters(
        prompt=request.prompt if prompt is None else prompt, negative_prompt=request.negative_prompt,
        steps=request.steps, sampler=request.sampler, schedule_type=request.schedule_type,
        cfg_scale=request.cfg_scale, seed=request.seed, width=request.width, height=request.height, model=model,
        clip_skip=request.clip_skip, model_hash=model_hash, lora_hashes=lora_hashes,
        guidance_rescale=request.guidance_rescale, enable_hr=request.enable_hr, hr_scale=request.hr_scale,
        hr_second_pass_steps=request.hr_second_pass_steps, denoising_strength=request.denoising_strength,
        hr_upscaler=request.hr_upscaler, zero_terminal_snr=zero_terminal_snr)


def _rgb(image: PILImage.Image) -> PILImage.Image:
    if image.mode in ("RGB", "RGBA"):
        return image
    has_alpha = "A" in image.getbands() or (image.mode == "P" and "transparency" in image.info)
    return image.convert("RGBA" if has_alpha else "RGB")


def png_with_parameters(image: PILImage.Image, parameters: str) -> bytes:
    """The original: pixel data plus one ``parameters`` text chunk and nothing else."""
    clean = _reencoded(image)
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", parameters)  # tEXt, or iTXt when the text is not latin-1 (as A1111 does)
    buffer = io.BytesIO()
    clean.save(buffer, format="PNG", pnginfo=info, compress_level=4)
    return buffer.getvalue()


def _reencoded(image: PILImage.Image) -> PILImage.Image:
    """A new image built from the pixel data alone: no text chunks, EXIF, ICC profile or other ``info``."""
    source = _rgb(image)
    return PILImage.frombytes(source.mode, source.size, source.tobytes())


def png_without_metadata(image: PILImage.Image) -> bytes:
    """The voter copy: re-encoded pixels, no metadata at all."""
    buffer = io.BytesIO()
    _reencoded(image).save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def webp_thumbnail(image: PILImage.Image, max_side: int = THUMB_MAX_SIDE) -> bytes:
    thumb = _reencoded(image)
    thumb.thumbnail((max_side, max_side), PILImage.Resampling.LANCZOS)
    buffer = io.BytesIO()
    thumb.save(buffer, format="WEBP", quality=80, method=4)
    return buffer.getvalue()


@dataclass(frozen=True)
class EncodedImage:
    """The three files stored for one image, encoded (CPU work that can overlap the next batch on the GPU)."""

    size: tuple[int, int]
    original: bytes
    voter: bytes
    thumb: bytes


def encode_for_storage(image: PILImage.Image, parameters: str) -> EncodedImage:
    return EncodedImage(size=image.size, original=png_with_parameters(image, parameters),
                        voter=png_without_metadata(image), thumb=webp_thumbnail(image))


def png_text_chunks(data: bytes | PILImage.Image) -> dict[str, str]:
    """The text chunks (tEXt, zTXt, iTXt) of a PNG."""
    image = data if isinstance(data, PILImage.Image) else PILImage.open(io.BytesIO(data))
    text = getattr(image, "text", None)
    if text is None:
        return {}
    return {str(k): str(v) for k, v in dict(text).items()}


# --- reading (the record parsers live in generation/pipelines/records.py and comfyui.py) -----------------------


def read_generation_record(data: bytes) -> tuple[PILImage.Image, GenerationRecord]:
    """Open a PNG made by A1111 or ComfyUI and read its record; raise MetadataError when it has none."""
    try:
        image = PILImage.open(io.BytesIO(data))
        image.load()
    except Exception as exc:  # Pillow raises many types for broken files
        raise MetadataError(f"not a readable image: {exc}") from None
    chunks = png_text_chunks(image)
    if chunks.get("parameters"):
        record = parse_a1111_parameters(chunks["parameters"])
    elif chunks.get("prompt"):
        record = parse_comfyui_prompt(chunks["prompt"])
    else:
        raise MetadataError("no A1111 'parameters' or ComfyUI 'prompt' chunk")
    if not record.width or not record.height:
        record.width, record.height = image.size
    return image, record
