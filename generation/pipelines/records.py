"""Generation records read from PNGs made elsewhere: A1111's ``parameters`` text and ComfyUI's prompt graph.

Pure Python (no Pillow, torch or Django); ``generation.images`` reads the PNG chunks and calls these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from . import infotext


@dataclass
class GenerationRecord:
    """What a PNG made elsewhere says about its generation.

    ``sampler_name`` / ``schedule_type`` are the canonical A1111 >= 1.6 pair where the names are known (as
    ``pipelines.resolve_sampler`` gives it), as written otherwise; ``sampler`` is the older single name that
    also says the schedule type ("DPM++ 2M Karras"), for callers that store one field. ``rng`` is "GPU" when the
    record does not say (A1111's reading)."""

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
    sampler_name: str = "Euler a"
    schedule_type: str = "Automatic"
    model_hash: str = ""
    lora_hashes: dict[str, str] = field(default_factory=dict)
    guidance_rescale: float = 0.0
    rng: str = "GPU"
    version: str = ""
    enable_hr: bool = False
    hr_scale: float = 2.0
    hr_second_pass_steps: int = 0
    denoising_strength: float = 0.7
    hr_upscaler: str = "Latent"


class MetadataError(ValueError):
    """A PNG's metadata cannot be read as a generation record."""


_RE_SIZE = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*$")
_CORE = {"Steps", "Seed", "Sampler", "CFG scale", "Size", "Clip skip", "Model"}  # the rest also stays in ``extra``


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


def _combined(sampler: str, schedule_type: str) -> str:
    if not schedule_type or schedule_type == "Automatic" or sampler.endswith(f" {schedule_type}"):
        return sampler
    return f"{sampler} {schedule_type}"


def _legacy_name(sampler: str, schedule_type: str) -> str:
    """One name that also says the schedule type (A1111 < 1.6 style), for callers that store a single field:
    the sampler alone when the schedule is Automatic or the sampler's default Uniform."""
    _, canonical = infotext.canonical_pair(sampler, schedule_type)
    if canonical == "Automatic" and schedule_type in ("", "Automatic", "Uniform"):
        return sampler
    return _combined(sampler, schedule_type)


def _split_prompt(lines: list[str]) -> tuple[str, str]:
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    in_negative = False
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:"):].strip()
        (negative_lines if in_negative else prompt_lines).append(line)
    return "\n".join(prompt_lines).strip(), "\n".join(negative_lines).strip()


def _apply_settings(record: GenerationRecord, values: dict[str, str]) -> None:
    record.model_hash = values.get("Model hash", "")
    record.lora_hashes = infotext.parse_lora_hashes(values["Lora hashes"]) if "Lora hashes" in values else {}
    rescale = values.get("Rescale CFG") or values.get("CFG Rescale") or values.get("CFG Rescale φ") or "0"
    record.guidance_rescale = _float(rescale, "Rescale CFG")
    record.rng = values.get("RNG", "GPU")
    record.version = values.get("Version", "")
    record.enable_hr = "Hires upscale" in values or "Hires upscaler" in values
    if record.enable_hr:
        record.hr_scale = _float(values.get("Hires upscale", "2"), "Hires upscale")
        record.hr_second_pass_steps = _int(values.get("Hires steps", "0"), "Hires steps")
        record.denoising_strength = _float(values.get("Denoising strength", "0.7"), "Denoising strength")
        record.hr_upscaler = values.get("Hires upscaler", "Latent")


def parse_a1111_parameters(text: str) -> GenerationRecord:
    """Parse A1111's ``parameters`` text the way A1111's own ``parse_generation_parameters`` does."""
    if not text or not text.strip():
        raise MetadataError("empty parameters chunk")
    *lines, last = text.strip().split("\n")
    if len(infotext.RE_PARAM.findall(last)) < 3:
        lines.append(last)
        last = ""
    prompt, negative = _split_prompt(lines)
    values = infotext.parse_settings_line(last)
    if "Steps" not in values or "Seed" not in values:
        raise MetadataError("no 'Steps: …, Seed: …' settings line in the parameters chunk")
    written = values.get("Sampler", "Euler a") or "Euler a"
    sampler_name, schedule_type = infotext.canonical_pair(written, values.get("Schedule type", "Automatic"))
    schedule = values.get("Schedule type", "")
    record = GenerationRecord(
        prompt=prompt,
        negative_prompt=negative,
        seed=_int(values["Seed"], "Seed"),
        steps=_int(values["Steps"], "Steps"),
        sampler=_legacy_name(written, "Automatic" if schedule.lower() in ("", "automatic") else schedule),
        cfg_scale=_float(values.get("CFG scale", "7"), "CFG scale"),
        clip_skip=_int(values.get("Clip skip", "1"), "Clip skip"),
        model=values.get("Model", ""),
        source="a1111",
        extra={k: v for k, v in values.items() if k not in _CORE},
        sampler_name=sampler_name,
        schedule_type=schedule_type,
    )
    _apply_settings(record, values)
    if "Size" in values:
        match = _RE_SIZE.match(values["Size"])
        if not match:
            raise MetadataError(f"Size {values['Size']!r} is not WxH")
        record.width, record.height = int(match.group(1)), int(match.group(2))
    if not record.prompt:
        raise MetadataError("the parameters chunk has no prompt")
    return record
