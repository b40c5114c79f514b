"""The sampler settings of one image as one frozen value, with the settings key and the checks a worker
needs them to pass. Pure Python: the models, the services and the worker all pass a ``SamplerSettings``.

The sampler names and the size, step and clip-skip limits are the pipelines' own (``generation.pipelines``
imports nothing heavy), so the web tier refuses exactly what a worker could not run.

Adding a setting (a schedule type, a hires pass) is one field here, with a default, plus its column on
``generation.models.SamplerFields``: the key, the rows' ``sampler_settings``, the tasks, the stored images,
the batches a worker groups and the pipelines' ``GenerationRequest`` all take the fields from this class.
A field at its default is left out of the key, so the keys of images made before it existed stay the same.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

from generation.pipelines.samplers import MAX_CLIP_SKIP, MAX_PIXELS, MAX_SIDE, MAX_STEPS, MIN_SIDE, SAMPLERS

MAX_SEED = 2**32 - 1  # what a job or a duel may ask for
MAX_STORED_SEED = 2**63 - 1  # what an image (imported from elsewhere too) may carry
MIN_CFG_SCALE, MAX_CFG_SCALE = 0, 30

__all__ = [
    "MAX_CFG_SCALE", "MAX_CLIP_SKIP", "MAX_PIXELS", "MAX_SEED", "MAX_SIDE", "MAX_STEPS", "MAX_STORED_SEED",
    "MIN_CFG_SCALE", "MIN_SIDE", "SamplerSettings", "sampler_names", "settings_key_for", "size_errors",
]


def sampler_names() -> tuple[str, ...]:
    """A1111 sampler names the workers can run (the pipelines' table)."""
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


_COERCE = {"int": int, "float": float, "str": str}
_WHITESPACE_FOLDED = frozenset({"negative_prompt"})  # in the key, runs of whitespace count as one space
_PER_IMAGE = ("seed", "negative_prompt")  # what may differ between the images of one batch


@dataclass(frozen=True)
class SamplerSettings:
    """Everything an image is made with but the model and the prompt. Images of one prompt with the same
    ``key`` were made the same way and may meet in a fixed-prompt duel."""

    seed: int
    sampler: str
    steps: int
    cfg_scale: float
    width: int
    height: int
    clip_skip: int
    negative_prompt: str
    # New fields go here, each with a default (see the module's docstring).

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, _COERCE[str(f.type)](getattr(self, f.name)))

    @classmethod
    def of(cls, source: Any, **given: Any) -> SamplerSettings:
        """The settings held by ``source``'s attributes of the same names (an image or task row, a model's
        defaults, an imported PNG's generation record), with ``given`` values first; a field added later
        that ``source`` lacks takes its default."""
        values = {}
        for f in fields(cls):
            if f.name in given:
                values[f.name] = given[f.name]
            elif f.default is MISSING or hasattr(source, f.name):
                values[f.name] = getattr(source, f.name)
        return cls(**values)

    @classmethod
    def batch_fields(cls) -> tuple[str, ...]:
        """The fields that the images of one batch share (all but the seed and the negative prompt)."""
        return tuple(f.name for f in fields(cls) if f.name not in _PER_IMAGE)

    def batch_key(self) -> tuple:
        return tuple(getattr(self, name) for name in self.batch_fields())

    def as_dict(self) -> dict[str, Any]:
        """Field name → value: the columns of a row, the keyword arguments of a ``GenerationRequest``."""
        return asdict(self)

    @property
    def key(self) -> str:
        """sha256 of a canonical form of the settings (the ``settings_key`` of images and tasks)."""
        canonical: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.default is not MISSING and value == f.default:
                continue
            if isinstance(value, float):
                value = round(value, 4)
            elif isinstance(value, str):
                value = " ".join(value.split()) if f.name in _WHITESPACE_FOLDED else value.strip()
            canonical[f.name] = value
        text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def errors(self) -> dict[str, list[str]]:
        """What a worker could not run, by field (size errors under ``width``); empty when all is well."""
        errors: dict[str, list[str]] = {}
        if self.sampler not in SAMPLERS:
            errors.setdefault("sampler", []).append(
                f"unknown sampler {self.sampler!r}; use one of: {', '.join(sampler_names())}")
        if not 1 <= self.steps <= MAX_STEPS:
            errors.setdefault("steps", []).append(f"steps must be 1–{MAX_STEPS}")
        if not MIN_CFG_SCALE <= self.cfg_scale <= MAX_CFG_SCALE:
            errors.setdefault("cfg_scale", []).append(f"CFG scale must be {MIN_CFG_SCALE:g}–{MAX_CFG_SCALE:g}")
        if not 1 <= self.clip_skip <= MAX_CLIP_SKIP:
            errors.setdefault("clip_skip", []).append(f"clip skip must be 1–{MAX_CLIP_SKIP}")
        size = size_errors(width=self.width, height=self.height)
        if size:
            errors.setdefault("width", []).extend(size)
        return errors


def settings_key_for(**settings: Any) -> str:
    """The settings key of loose settings (keyword arguments named as ``SamplerSettings``' fields)."""
    return SamplerSettings(**settings).key
