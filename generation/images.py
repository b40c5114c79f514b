"""PNG handling: A1111 ``parameters`` text chunks (write and parse), ComfyUI prompt graphs (parse), voter
copies without any metadata, WebP thumbnails. Pure Pillow; no Django, no torch."""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

from PIL import Image as PILImage
from PIL import PngImagePlugin

THUMB_MAX_SIDE = 320


# --- writing ------------------------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    # The settings line is comma/line separated: keep a model name from breaking it.
    return " ".join(str(text).replace(",", " ").split())


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
) -> str:
    """The ``parameters`` text A1111 writes (and A1111, ComfyUI loaders and civitai read back)."""
    lines = [prompt]
    if negative_prompt:
        lines.append(f"Negative prompt: {negative_prompt}")
    settings = [
        f"Steps: {int(steps)}",
        f"Sampler: {sampler}",
        f"CFG scale: {float(cfg_scale):g}",
        f"Seed: {int(seed)}",
        f"Size: {int(width)}x{int(height)}",
        f"Model: {_one_line(model)}",
    ]
    if clip_skip and int(clip_skip) > 1:
        settings.append(f"Clip skip: {int(clip_skip)}")
    lines.append(", ".join(settings))
    return "\n".join(lines)


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


# --- reading ------------------------------------------------------------------------------------------------


@dataclass
class GenerationRecord:
    """What a PNG made elsewhere says about its generation."""

    prompt: str
    negative_prompt: str = ""
    seed: int = 0
    sampler: str = "Euler a"
    steps: int = 28
    cfg_scale: float = 7.0
    width: int = 0
    height: int = 0
    clip_skip: int = 1
    model: str = ""
    source: str = "a1111"
    extra: dict[str, Any] = field(default_factory=dict)


class MetadataError(ValueError):
    """A PNG's metadata cannot be read as a generation record."""


# The A1111 settings-line pattern (modules/infotext_utils.py): values may be quoted and contain commas.
_RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_RE_SIZE = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*$")


def _int(value: Any, name: str) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        raise MetadataError(f"{name} {value!r} is not a whole number") from None


def _float(value: Any, name: str) -> float:
    try:
        return float(str(value).strip())
    except (TypeError, ValueError):
        raise MetadataError(f"{name} {value!r} is not a number") from None


def parse_a1111_parameters(text: str) -> GenerationRecord:
    """Parse A1111's ``parameters`` text the way A1111's own ``parse_generation_parameters`` does."""
    if not text or not text.strip():
        raise MetadataError("empty parameters chunk")
    *lines, last = text.strip().split("\n")
    if len(_RE_PARAM.findall(last)) < 3:
        lines.append(last)
        last = ""
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    in_negative = False
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:"):].strip()
        (negative_lines if in_negative else prompt_lines).append(line)
    values: dict[str, str] = {}
    for key, value in _RE_PARAM.findall(last):
        value = value.strip()
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            try:
                value = json.loads(value)
            except ValueError:
                value = value[1:-1]
        values[key.strip()] = value
    if "Steps" not in values or "Seed" not in values:
        raise MetadataError("no 'Steps: …, Seed: …' settings line in the parameters chunk")
    record = GenerationRecord(
        prompt="\n".join(prompt_lines).strip(),
        negative_prompt="\n".join(negative_lines).strip(),
        seed=_int(values["Seed"], "Seed"),
        steps=_int(values["Steps"], "Steps"),
        sampler=values.get("Sampler", "Euler a") or "Euler a",
        cfg_scale=_float(values.get("CFG scale", "7"), "CFG scale"),
        clip_skip=_int(values.get("Clip skip", "1"), "Clip skip"),
        model=values.get("Model", ""),
        source="a1111",
        extra={k: v for k, v in values.items() if k not in {"Steps", "Seed", "Sampler", "CFG scale", "Size", "Clip skip", "Model"}},
    )
    schedule = values.get("Schedule type", "")
    if schedule.lower() == "karras" and not record.sampler.endswith("Karras"):
        record.sampler = f"{record.sampler} Karras"
    if "Size" in values:
        match = _RE_SIZE.match(values["Size"])
        if not match:
            raise MetadataError(f"Size {values['Size']!r} is not WxH")
        record.width, record.height = int(match.group(1)), int(match.group(2))
    if not record.prompt:
        raise MetadataError("the parameters chunk has no prompt")
    return record


# ComfyUI sampler_name (+ scheduler) → A1111 name.
_COMFY_SAMPLERS = {
    "euler_ancestral": "Euler a",
    "euler": "Euler",
    "dpmpp_2m": "DPM++ 2M",
    "dpmpp_sde": "DPM++ SDE",
    "dpmpp_2m_sde": "DPM++ 2M SDE",
    "ddim": "DDIM",
    "uni_pc": "UniPC",
    "uni_pc_bh2": "UniPC",
    "heun": "Heun",
    "lms": "LMS",
    "dpm_2": "DPM2",
    "dpm_2_ancestral": "DPM2 a",
}
_SAMPLER_CLASSES = {"KSampler", "KSamplerAdvanced", "KSampler (Efficient)", "SamplerCustom"}


def _comfy_sampler_name(name: str, scheduler: str) -> str:
    base = _COMFY_SAMPLERS.get(name, name)
    if scheduler == "karras" and base in {"DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE", "DPM2", "DPM2 a", "LMS"}:
        return f"{base} Karras"
    return base


def parse_comfyui_prompt(text: str) -> GenerationRecord:
    """Parse ComfyUI's ``prompt`` chunk (the API-format graph) for prompt, seed and settings."""
    try:
        graph = json.loads(text)
    except ValueError as exc:
        raise MetadataError(f"the ComfyUI prompt chunk is not JSON: {exc}") from None
    if not isinstance(graph, dict) or not graph:
        raise MetadataError("the ComfyUI prompt chunk is not a node graph")
    nodes = {str(k): v for k, v in graph.items() if isinstance(v, dict) and "class_type" in v}

    def node(ref: Any) -> dict | None:
        if isinstance(ref, list) and ref:
            return nodes.get(str(ref[0]))
        return None

    def resolve(value: Any, depth: int = 0) -> Any:
        """Follow links ([node_id, output]) to a literal (primitive nodes, text concat ...)."""
        if depth > 20:
            return None
        target = node(value)
        if target is None:
            return value
        inputs = target.get("inputs", {})
        for key in ("text", "value", "string", "seed", "noise_seed", "int", "float", "text_g"):
            if key in inputs:
                return resolve(inputs[key], depth + 1)
        return None

    def text_of(ref: Any, depth: int = 0) -> str:
        target = node(ref)
        if target is None or depth > 20:
            return ""
        inputs = target.get("inputs", {})
        for key in ("text", "text_g", "prompt"):
            if key in inputs:
                value = resolve(inputs[key])
                return value if isinstance(value, str) else ""
        for key in ("conditioning", "conditioning_1", "positive"):  # pass-through conditioning nodes
            if key in inputs:
                return text_of(inputs[key], depth + 1)
        return ""

    def clip_skip_of(ref: Any, depth: int = 0) -> int:
        target = node(ref)
        if target is None or depth > 20:
            return 1
        inputs = target.get("inputs", {})
        if target.get("class_type") == "CLIPSetLastLayer":
            try:
                return max(1, -int(inputs.get("stop_at_clip_layer", -1)))
            except (TypeError, ValueError):
                return 1
        if "clip" in inputs:
            return clip_skip_of(inputs["clip"], depth + 1)
        return 1

    def latent_size(ref: Any, depth: int = 0) -> tuple[int, int]:
        target = node(ref)
        if target is None or depth > 20:
            return 0, 0
        inputs = target.get("inputs", {})
        if "width" in inputs and "height" in inputs:
            width, height = resolve(inputs["width"]), resolve(inputs["height"])
            try:
                return int(width), int(height)
            except (TypeError, ValueError):
                return 0, 0
        for key in ("samples", "latent_image", "latent"):
            if key in inputs:
                return latent_size(inputs[key], depth + 1)
        return 0, 0

    def model_of(ref: Any, depth: int = 0) -> str:
        target = node(ref)
        if target is None or depth > 20:
            return ""
        inputs = target.get("inputs", {})
        if "ckpt_name" in inputs:
            return str(resolve(inputs["ckpt_name"]) or "")
        if "model" in inputs:
            return model_of(inputs["model"], depth + 1)
        return ""

    samplers = [n for _, n in sorted(nodes.items()) if n.get("class_type") in _SAMPLER_CLASSES]
    if not samplers:
        raise MetadataError("the ComfyUI graph has no KSampler node")
    sampler = samplers[0]
    inputs = sampler.get("inputs", {})
    seed = resolve(inputs.get("seed", inputs.get("noise_seed")))
    if seed is None:
        raise MetadataError("the ComfyUI KSampler has no seed")
    prompt = text_of(inputs.get("positive"))
    if not prompt.strip():
        raise MetadataError("the ComfyUI graph has no positive prompt text")
    negative = text_of(inputs.get("negative"))
    positive_node = node(inputs.get("positive")) or {}
    width, height = latent_size(inputs.get("latent_image"))
    return GenerationRecord(
        prompt=prompt.strip(),
        negative_prompt=negative.strip(),
        seed=_int(seed, "seed"),
        steps=_int(resolve(inputs.get("steps", 20)), "steps"),
        cfg_scale=_float(resolve(inputs.get("cfg", 7.0)), "cfg"),
        sampler=_comfy_sampler_name(str(resolve(inputs.get("sampler_name", "euler"))), str(resolve(inputs.get("scheduler", "normal")))),
        clip_skip=clip_skip_of(positive_node.get("inputs", {}).get("clip")),
        width=width,
        height=height,
        model=model_of(inputs.get("model")),
        source="comfyui",
    )


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
