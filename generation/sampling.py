"""The sampler settings of one image as one frozen value, with the settings key and the checks a worker
needs them to pass. Pure Python: the models, the services and the worker all pass a ``SamplerSettings``.

The sampler names and the size, step and clip-skip limits are the pipelines' own (``generation.pipelines``
imports nothing heavy), so the web tier refuses exactly what a worker could not run.

Settings are canonical from the start: (sampler, schedule type) as ``resolve_sampler`` gives them (an old combined
name such as "DPM++ 2M Karras" becomes "DPM++ 2M" with "Automatic", the schedule A1111 >= 1.6 gives it by
default); names no table knows (an imported PNG's) stay as written, and ``errors`` refuses them for new work.
With the hires pass off its four settings take their defaults, and second-pass steps equal to the steps are 0
(A1111's "same as steps"), so equal settings have one key.

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

from generation.pipelines.hires import HR_UPSCALERS, hires_size, hires_steps
from generation.pipelines.samplers import (
    AUTOMATIC,
    MAX_CLIP_SKIP,
    MAX_HR_SCALE,
    MAX_PIXELS,
    MAX_SIDE,
    MAX_STEPS,
    MIN_SIDE,
    SAMPLERS,
    resolve_sampler,
    schedule_type_names,
)
from generation.pipelines.types import GenerationError

MAX_SEED = 2**32 - 1  # what a job or a duel may ask for
MAX_STORED_SEED = 2**63 - 1  # what an image (imported from elsewhere too) may carry
MIN_CFG_SCALE, MAX_CFG_SCALE = 0, 30
MIN_HR_SCALE = 1.0
# A1111's DDIM takes the timesteps range(0, 1000, 1000 // steps): its hires schedule (steps / denoising strength)
# cannot be longer than the model's 1000 training steps.
MAX_DDIM_SCHEDULE = 1000

__all__ = [
    "AUTOMATIC", "HR_UPSCALERS", "MAX_CFG_SCALE", "MAX_CLIP_SKIP", "MAX_HR_SCALE", "MAX_PIXELS", "MAX_SEED",
    "MAX_SIDE", "MAX_STEPS", "MAX_STORED_SEED", "MIN_CFG_SCALE", "MIN_HR_SCALE", "MIN_SIDE", "SamplerSettings",
    "hr_upscaler_names", "sampler_names", "schedule_type_names", "settings_key_for", "size_errors",
]


def sampler_names() -> tuple[str, ...]:
    """A1111 sampler names the workers can run (the pipelines' table)."""
    return tuple(SAMPLERS)


def hr_upscaler_names() -> tuple[str, ...]:
    """A1111's hires upscalers the workers run (latent modes, then Lanczos and Nearest)."""
    return tuple(HR_UPSCALERS)


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


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


_COERCE = {"int": int, "float": float, "str": str, "bool": _bool}
_WHITESPACE_FOLDED = frozenset({"negative_prompt"})  # in the key, runs of whitespace count as one space
_PER_IMAGE = ("seed", "negative_prompt")  # what may differ between the images of one batch
HIRES_FIELDS = ("hr_scale", "hr_second_pass_steps", "denoising_strength", "hr_upscaler")  # used when enable_hr


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
    schedule_type: str = AUTOMATIC  # A1111 >= 1.6: "Automatic" is the sampler's own default schedule
    enable_hr: bool = False  # A1111's "Hires. fix": upscale, then image-to-image
    hr_scale: float = 2.0  # "Upscale by"
    hr_second_pass_steps: int = 0  # "Hires steps"; 0 = as many as ``steps``
    denoising_strength: float = 0.7
    hr_upscaler: str = "Latent"

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, _COERCE[str(f.type)](getattr(self, f.name)))
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        set_("sampler", " ".join(self.sampler.split()))
        set_("schedule_type", " ".join(self.schedule_type.split()) or AUTOMATIC)
        try:
            sampler, schedule_type = resolve_sampler(self.sampler, self.schedule_type)
        except GenerationError:
            pass  # kept as written: ``errors`` says why a worker cannot run it
        else:
            set_("sampler", sampler)
            set_("schedule_type", schedule_type)
        if not self.enable_hr:
            for f in fields(self):
                if f.name in HIRES_FIELDS:
                    set_(f.name, f.default)
        elif self.hr_second_pass_steps == self.steps:
            set_("hr_second_pass_steps", 0)

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

    def output_size(self) -> tuple[int, int]:
        """(width, height) of the image made: the hires size (A1111's) when the hires pass is on."""
        if not self.enable_hr:
            return self.width, self.height
        return hires_size(self.width, self.hr_scale), hires_size(self.height, self.hr_scale)

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
        """What a worker could not run, by field (size errors under ``width``, the hires size's under
        ``hr_scale``); empty when all is well. One line each."""
        errors: dict[str, list[str]] = {}
        add = lambda name, message: errors.setdefault(name, []).append(message)  # noqa: E731
        spec = None
        try:
            sampler, _ = resolve_sampler(self.sampler)
        except GenerationError:
            add("sampler", f"unknown sampler {self.sampler!r}; use one of: {', '.join(sampler_names())}")
        else:
            spec = SAMPLERS[sampler]
            try:
                resolve_sampler(self.sampler, self.schedule_type)
            except GenerationError as exc:
                add("schedule_type", str(exc))
        low = max(1, spec.min_steps) if spec is not None else 1
        if not low <= self.steps <= MAX_STEPS:
            add("steps", f"steps must be {low}–{MAX_STEPS}" + (f" for {self.sampler}" if low > 1 else ""))
        if not MIN_CFG_SCALE <= self.cfg_scale <= MAX_CFG_SCALE:
            add("cfg_scale", f"CFG scale must be {MIN_CFG_SCALE:g}–{MAX_CFG_SCALE:g}")
        if not 1 <= self.clip_skip <= MAX_CLIP_SKIP:
            add("clip_skip", f"clip skip must be 1–{MAX_CLIP_SKIP}")
        size = size_errors(width=self.width, height=self.height)
        if size:
            errors.setdefault("width", []).extend(size)
        if self.enable_hr:
            self._hires_errors(add, spec, first_pass_ok=not size)
        return errors

    def _hires_errors(self, add, spec, *, first_pass_ok: bool) -> None:
        if not MIN_HR_SCALE <= self.hr_scale <= MAX_HR_SCALE:
            add("hr_scale", f"hires upscale must be {MIN_HR_SCALE:g}–{MAX_HR_SCALE:g}")
        elif first_pass_ok:
            width, height = self.output_size()
            if problems := size_errors(width=width, height=height):
                add("hr_scale", f"upscaled ×{self.hr_scale:g} the image would be {width}×{height}: {'; '.join(problems)}")
        steps_ok = 0 <= self.hr_second_pass_steps <= MAX_STEPS and 1 <= self.steps <= MAX_STEPS
        if not 0 <= self.hr_second_pass_steps <= MAX_STEPS:
            add("hr_second_pass_steps", f"hires steps must be 0 (as many as steps)–{MAX_STEPS}")
        strength_ok = 0 < self.denoising_strength <= 1
        if not strength_ok:
            add("denoising_strength", "denoising strength must be above 0 and at most 1")
        if self.hr_upscaler not in HR_UPSCALERS:
            add("hr_upscaler", f"unknown hires upscaler {self.hr_upscaler!r}; use one of: {', '.join(HR_UPSCALERS)}")
        if spec is not None and spec.family == "ddim" and steps_ok and strength_ok:
            plan = hires_steps(self.steps, self.hr_second_pass_steps, self.denoising_strength)
            if plan.total > MAX_DDIM_SCHEDULE:
                add("denoising_strength", f"DDIM's hires pass would sample from a schedule of {plan.total} steps "
                                          f"(hires steps / denoising strength); at most {MAX_DDIM_SCHEDULE}: raise the "
                                          "denoising strength or lower the hires steps")


def settings_key_for(**settings: Any) -> str:
    """The settings key of loose settings (keyword arguments named as ``SamplerSettings``' fields)."""
    return SamplerSettings(**settings).key
