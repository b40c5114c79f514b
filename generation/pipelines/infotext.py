"""A1111's infotext (the PNG ``parameters`` chunk): the settings line as A1111 1.10 writes and reads it.

Pure Python. Follows stable-diffusion-webui modules/processing.py ``create_infotext`` (keys, order, which keys
appear when) and modules/infotext_utils.py (``quote``, ``unquote``, ``re_param``, ``parse_generation_parameters``'s
defaults), plus A1111's "Schedule type" rules: the key follows the sampler and names the schedule actually used
(``DPM++ 2M`` with Automatic is written ``Schedule type: Karras``; ``Euler a`` with Automatic stays ``Automatic``).
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

from .samplers import AUTOMATIC, SAMPLERS, SCHEDULE_TYPES, resolve_sampler
from .types import GenerationError

VERSION = "arena"  # not A1111: A1111's readers find no version to apply old-version workarounds to
RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')  # infotext_utils.re_param_code


def quote(value: Any) -> str:
    """A1111's ``quote``: JSON-quoted when the value holds a comma, a newline or a colon."""
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(text: str) -> str:
    if len(text) == 0 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _number(value: float) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def written_schedule_type(sampler: str, schedule_type: str) -> str:
    """The ``Schedule type`` A1111 writes: Automatic resolved to the sampler's default when that is not Uniform."""
    name, label = resolve_sampler(sampler, schedule_type)
    if label != AUTOMATIC:
        return label
    spec = SAMPLERS[name]
    default = spec.default_schedule
    if spec.family == "k" and default and default != "uniform":
        return next(lab for lab, internal in SCHEDULE_TYPES.items() if internal == default)
    return AUTOMATIC


def lora_hashes_text(lora_hashes: Mapping[str, str]) -> str:
    """A1111's ``Lora hashes`` value: ``name: hash, ...`` with ``:`` and ``,`` removed from names."""
    return ", ".join(f"{str(name).translate(str.maketrans('', '', ':,'))}: {h}" for name, h in lora_hashes.items())


def settings(*, steps: int, sampler: str, schedule_type: str = AUTOMATIC, cfg_scale: float, seed: int, width: int,
             height: int, model: str = "", model_hash: str | None = None, clip_skip: int = 1,
             enable_hr: bool = False, hr_scale: float = 2.0, hr_second_pass_steps: int = 0,
             denoising_strength: float = 0.7, hr_upscaler: str = "Latent", guidance_rescale: float = 0.0,
             zero_terminal_snr: bool = False, lora_hashes: Mapping[str, str] | None = None,
             version: str = VERSION) -> list[tuple[str, str]]:
    """(key, value) pairs in the order A1111 writes them; values as they appear (quoted where A1111 quotes)."""
    name, _ = resolve_sampler(sampler, schedule_type)
    pairs: list[tuple[str, Any]] = [
        ("Steps", int(steps)), ("Sampler", name), ("Schedule type", written_schedule_type(sampler, schedule_type)),
        ("CFG scale", _number(cfg_scale)), ("Seed", int(seed)), ("Size", f"{int(width)}x{int(height)}"),
    ]
    if model_hash:
        pairs.append(("Model hash", model_hash))
    if model:
        pairs.append(("Model", model))
    if enable_hr:
        pairs.append(("Denoising strength", _number(denoising_strength)))
    if int(clip_skip) > 1:
        pairs.append(("Clip skip", int(clip_skip)))
    pairs.append(("RNG", "CPU"))  # one CPU generator per image (A1111's "RNG: CPU")
    if enable_hr:
        pairs.append(("Hires upscale", _number(hr_scale)))
        if hr_second_pass_steps:
            pairs.append(("Hires steps", int(hr_second_pass_steps)))
        pairs.append(("Hires upscaler", hr_upscaler))
    if zero_terminal_snr:
        pairs.append(("Noise Schedule", "Zero Terminal SNR"))
    if guidance_rescale:
        pairs.append(("Rescale CFG", _number(guidance_rescale)))  # Forge's key, ComfyUI's RescaleCFG formula
    if lora_hashes:
        pairs.append(("Lora hashes", lora_hashes_text(lora_hashes)))
    if version:
        pairs.append(("Version", version))
    return [(key, quote(value)) for key, value in pairs]


def settings_line(**kwargs) -> str:
    """The last line of the parameters chunk (see ``settings``)."""
    return ", ".join(f"{key}: {value}" for key, value in settings(**kwargs))


def parse_settings_line(line: str) -> dict[str, str]:
    """The settings line as A1111 reads it (values unquoted; sizes kept as ``WxH``)."""
    return {key.strip(): unquote(value.strip()) for key, value in RE_PARAM.findall(line)}


def parse_lora_hashes(text: str) -> dict[str, str]:
    out = {}
    for part in str(text).split(","):
        name, sep, value = part.rpartition(":")
        if sep and name.strip():
            out[name.strip()] = value.strip()
    return out


def canonical_pair(sampler: str, schedule_type: str) -> tuple[str, str]:
    """(sampler, schedule type) of a record, canonical where the names are known; as written otherwise. DDIM and
    UniPC ignore the schedule type, as A1111 does."""
    try:
        name, _ = resolve_sampler(sampler)
    except GenerationError:
        return sampler, schedule_type or AUTOMATIC
    if SAMPLERS[name].family in ("ddim", "unipc"):
        return name, AUTOMATIC
    try:
        return resolve_sampler(sampler, schedule_type or AUTOMATIC)
    except GenerationError:
        return name, schedule_type
