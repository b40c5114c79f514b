"""The one table of A1111 samplers and schedule types, and the validation of generation settings.

Pure Python (no torch, numpy or diffusers): the web tier imports it to offer and check choices. A1111 >= 1.6 has
sampler and schedule type as separate choices; "Automatic" means the sampler's own default (A1111's
``samplers_k_diffusion`` options: "DPM++ 2M" + Automatic is Karras, "Euler a" + Automatic is Uniform). Names from
older PNGs ("DPM++ 2M Karras") are resolved by ``resolve_sampler`` as A1111's ``get_sampler_and_scheduler`` does.
The worker side (``schedulers.build_scheduler``) turns a canonical pair into a diffusers scheduler.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

from .types import GenerationError, GenerationRequest

AUTOMATIC = "Automatic"
# A1111's schedule type labels we run (sd_schedulers.schedulers), and their internal names
SCHEDULE_TYPES: dict[str, str] = {
    "Automatic": "automatic",
    "Uniform": "uniform",
    "Karras": "karras",
    "Exponential": "exponential",
    "SGM Uniform": "sgm_uniform",
    "Beta": "beta",
}
_SCHEDULE_ALIASES = {"sgmuniform": "SGM Uniform"}
# A1111 schedule types not offered here (refused with a clear message rather than run as something else)
UNSUPPORTED_SCHEDULE_TYPES = ("Polyexponential", "KL Optimal", "Align Your Steps", "Simple", "Normal", "DDIM")


@dataclass(frozen=True)
class SamplerSpec:
    scheduler: str  # the diffusers class our scheduler derives from
    options: dict = field(default_factory=dict)  # config overrides
    default_schedule: str = "uniform"  # what "Automatic" means for this sampler (A1111's 'scheduler' option)
    family: str = "k"  # "k": k-diffusion sigmas (any schedule type); "ddim" / "unipc": A1111's own timesteps; "lcm"
    discard_penultimate: bool = False  # A1111's discard_next_to_last_sigma
    brownian: bool = False  # SDE noise from per-image Brownian trees seeded with the image's seed
    needs: str = ""  # an optional package the scheduler needs
    aliases: tuple[str, ...] = ()
    min_steps: int = 1


_DPMPP = {"algorithm_type": "dpmsolver++", "solver_order": 2, "solver_type": "midpoint", "lower_order_final": False,
          "euler_at_final": False, "final_sigmas_type": "zero"}
_SDE = {**_DPMPP, "algorithm_type": "sde-dpmsolver++"}

SAMPLERS: dict[str, SamplerSpec] = {
    "Euler a": SamplerSpec("EulerAncestralDiscreteScheduler", aliases=("k_euler_a", "k_euler_ancestral")),
    "Euler": SamplerSpec("EulerDiscreteScheduler", aliases=("k_euler",)),
    "LMS": SamplerSpec("LMSDiscreteScheduler", aliases=("k_lms",)),
    "Heun": SamplerSpec("HeunDiscreteScheduler", aliases=("k_heun",)),
    "DPM2": SamplerSpec("KDPM2DiscreteScheduler", default_schedule="karras", discard_penultimate=True,
                        aliases=("k_dpm_2",)),
    "DPM2 a": SamplerSpec("KDPM2AncestralDiscreteScheduler", default_schedule="karras", discard_penultimate=True,
                          aliases=("k_dpm_2_a",)),
    "DPM++ 2M": SamplerSpec("DPMSolverMultistepScheduler", _DPMPP, default_schedule="karras", aliases=("k_dpmpp_2m",)),
    "DPM++ SDE": SamplerSpec("DPMSolverSDEScheduler", default_schedule="karras", brownian=True, needs="torchsde",
                             aliases=("k_dpmpp_sde",)),
    "DPM++ 2M SDE": SamplerSpec("DPMSolverMultistepScheduler", _SDE, default_schedule="exponential", brownian=True,
                                needs="torchsde", aliases=("k_dpmpp_2m_sde",)),
    "DPM++ 2M SDE Heun": SamplerSpec("DPMSolverMultistepScheduler", {**_SDE, "solver_type": "heun"},
                                     default_schedule="exponential", brownian=True, needs="torchsde",
                                     aliases=("k_dpmpp_2m_sde_heun",)),
    "DPM++ 3M SDE": SamplerSpec("DPMSolverMultistepScheduler", {**_SDE, "solver_order": 3, "solver_type": "heun"},
                                default_schedule="exponential", discard_penultimate=True, brownian=True,
                                needs="torchsde", aliases=("k_dpmpp_3m_sde",)),
    # A1111's DDIM (eta 0): timesteps range(0, 1000, 1000 // steps) + 1, one model step fewer than timesteps
    "DDIM": SamplerSpec("DDIMScheduler", {"set_alpha_to_one": False, "steps_offset": 1, "timestep_spacing": "leading",
                                          "clip_sample": False}, default_schedule="", family="ddim",
                        aliases=("ddim",), min_steps=2),
    # A1111's UniPC: variant bh1, order 3, lower order final, time-uniform steps from t=1 to t=1/1000
    "UniPC": SamplerSpec("UniPCMultistepScheduler", {"solver_type": "bh1", "solver_order": 3, "lower_order_final": True,
                                                     "predict_x0": True, "final_sigmas_type": "sigma_min"},
                         default_schedule="", family="unipc", aliases=("unipc",)),
    "LCM": SamplerSpec("LCMScheduler", family="lcm", aliases=("k_lcm",)),
}

# Combined names written by A1111 before 1.6, still found in imported PNGs (resolved by suffix, like any other).
LEGACY_SAMPLER_NAMES = ("DPM++ 2M Karras", "DPM++ SDE Karras", "DPM++ 2M SDE Karras", "DPM++ 2M SDE Exponential",
                        "DPM++ 3M SDE Karras", "DPM++ 3M SDE Exponential", "DPM++ 2M SDE Heun Karras",
                        "DPM++ 2M SDE Heun Exponential", "LMS Karras", "DPM2 Karras", "DPM2 a Karras")

_BY_LOWER = {name.lower(): name for name in SAMPLERS} | {
    alias.lower(): name for name, spec in SAMPLERS.items() for alias in spec.aliases}


def sampler_names() -> list[str]:
    return list(SAMPLERS)


def schedule_type_names() -> list[str]:
    return list(SCHEDULE_TYPES)


def _schedule_label(text: str) -> str | None:
    key = " ".join(str(text).split()).lower()
    for label, name in SCHEDULE_TYPES.items():
        if key in (label.lower(), name):
            return label
    return _SCHEDULE_ALIASES.get(key.replace(" ", "").replace("_", ""))


def _schedule_error(text: str) -> GenerationError:
    if any(str(text).strip().lower() == u.lower() for u in UNSUPPORTED_SCHEDULE_TYPES):
        return GenerationError(f"schedule type {text!r} is not supported here; use one of: {', '.join(SCHEDULE_TYPES)}")
    return GenerationError(f"unknown schedule type {text!r}; use one of: {', '.join(SCHEDULE_TYPES)}")


def _split_suffix(name: str) -> tuple[str, str | None]:
    """("DPM++ 2M", "Karras") for "DPM++ 2M Karras"; (name, None) when it names no schedule type."""
    words = name.split()
    for cut in (2, 1):  # "SGM Uniform" is two words
        if len(words) > cut:
            label = _schedule_label(" ".join(words[-cut:]))
            base = " ".join(words[:-cut])
            if label is not None and label != AUTOMATIC and base.lower() in _BY_LOWER:
                return base, label
    return name, None


def effective_schedule(sampler: str, schedule_type: str) -> str:
    """The internal schedule name a canonical pair samples with ("karras", ...; "" for DDIM/UniPC's own steps)."""
    spec = SAMPLERS[sampler]
    if schedule_type == AUTOMATIC:
        return spec.default_schedule
    return SCHEDULE_TYPES[schedule_type]


def resolve_sampler(sampler: str, schedule_type: str = AUTOMATIC) -> tuple[str, str]:
    """(sampler, schedule type) in canonical form, or GenerationError (one line).

    Accepts A1111's labels and aliases (case-insensitive), old combined names ("DPM++ 2M Karras") and schedule
    names ("karras", "sgm_uniform"). The schedule type becomes "Automatic" when it is what the sampler does by
    default, so equal settings have one spelling: ("DPM++ 2M Karras", "Automatic") -> ("DPM++ 2M", "Automatic").
    """
    if not isinstance(sampler, str) or not sampler.strip():
        raise GenerationError("no sampler given")
    if not isinstance(schedule_type, str):
        raise GenerationError(f"schedule type must be text, got {schedule_type!r}")
    name = " ".join(sampler.split())
    base, suffix = _split_suffix(name) if name.lower() not in _BY_LOWER else (name, None)
    canonical = _BY_LOWER.get(base.lower())
    if canonical is None:
        raise GenerationError(f"unknown sampler {sampler!r}; choose one of: {', '.join(SAMPLERS)}")
    label = _schedule_label(schedule_type or AUTOMATIC)
    if label is None:
        raise _schedule_error(schedule_type)
    if suffix is not None:
        if label not in (AUTOMATIC, suffix):
            raise GenerationError(f"sampler {sampler!r} names schedule type {suffix}, but schedule type {label} was given")
        label = suffix
    spec = SAMPLERS[canonical]
    if spec.family in ("ddim", "unipc") and label != AUTOMATIC:
        raise GenerationError(f"{canonical} uses its own timesteps (as in A1111): its schedule type must be Automatic")
    if label != AUTOMATIC and SCHEDULE_TYPES[label] == spec.default_schedule:
        label = AUTOMATIC
    return canonical, label


MIN_SIDE, MAX_SIDE, MAX_PIXELS = 256, 2048, 4_200_000
MAX_STEPS = 150
MAX_CLIP_SKIP = 12
MAX_PROMPT_CHARS = 8000
MAX_HR_SCALE = 4.0


def validate_request(req: GenerationRequest) -> None:
    """Raise GenerationError (one line) if the request's settings cannot be generated."""
    from .prompt_syntax import check_prompt_syntax

    if not isinstance(req.prompt, str) or not isinstance(req.negative_prompt, str):
        raise GenerationError("prompt and negative prompt must be text")
    if len(req.prompt) > MAX_PROMPT_CHARS or len(req.negative_prompt) > MAX_PROMPT_CHARS:
        raise GenerationError(f"prompt too long: at most {MAX_PROMPT_CHARS} characters")
    check_prompt_syntax(req.prompt, what="prompt")
    check_prompt_syntax(req.negative_prompt, what="negative prompt")
    sampler, _ = resolve_sampler(req.sampler, req.schedule_type)
    spec = SAMPLERS[sampler]
    if spec.needs and importlib.util.find_spec(spec.needs) is None:
        raise GenerationError(f"sampler {sampler!r} needs the {spec.needs} package, which is not installed")
    if not isinstance(req.steps, int) or not max(1, spec.min_steps) <= req.steps <= MAX_STEPS:
        raise GenerationError(f"steps must be a whole number from {spec.min_steps} to {MAX_STEPS} for {sampler}, "
                              f"got {req.steps!r}" + (" (A1111's DDIM makes no model step at 1)" if spec.min_steps > 1 else ""))
    _check_number("CFG scale", req.cfg_scale, 0, 30)
    if not isinstance(req.seed, int) or not 0 <= req.seed < 2**63:
        raise GenerationError(f"seed must be a whole number from 0 to 2^63-1, got {req.seed!r}")
    if not isinstance(req.clip_skip, int) or not 1 <= req.clip_skip <= MAX_CLIP_SKIP:
        raise GenerationError(f"clip skip must be from 1 to {MAX_CLIP_SKIP}, got {req.clip_skip!r}")
    _check_number("guidance rescale", req.guidance_rescale, 0, 1)
    validate_size(req.width, req.height)
    if req.enable_hr:
        _validate_hires(req)


def _check_number(name: str, value, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise GenerationError(f"{name} must be between {low:g} and {high:g}, got {value!r}")


def _validate_hires(req: GenerationRequest) -> None:
    from .hires import HR_UPSCALERS

    if isinstance(req.hr_scale, bool) or not isinstance(req.hr_scale, (int, float)) or not 1.0 <= req.hr_scale <= MAX_HR_SCALE:
        raise GenerationError(f"hires upscale must be from 1 to {MAX_HR_SCALE:g}, got {req.hr_scale!r}")
    if not isinstance(req.hr_second_pass_steps, int) or not 0 <= req.hr_second_pass_steps <= MAX_STEPS:
        raise GenerationError(f"hires steps must be from 0 (same as steps) to {MAX_STEPS}, got {req.hr_second_pass_steps!r}")
    strength = req.denoising_strength
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 < strength <= 1:
        raise GenerationError(f"hires denoising strength must be above 0 and at most 1, got {strength!r}")
    if req.hr_upscaler not in HR_UPSCALERS:
        raise GenerationError(f"unknown hires upscaler {req.hr_upscaler!r}; use one of: {', '.join(HR_UPSCALERS)}")
    width, height = req.output_size()
    try:
        validate_size(width, height)
    except GenerationError as exc:
        raise GenerationError(f"hires size {width}x{height} is out of range: {exc}") from None


def validate_size(width: int, height: int) -> None:
    for name, side in (("width", width), ("height", height)):
        if not isinstance(side, int) or side % 8:
            raise GenerationError(f"{name} must be a multiple of 8, got {side!r}")
        if not MIN_SIDE <= side <= MAX_SIDE:
            raise GenerationError(f"{name} must be from {MIN_SIDE} to {MAX_SIDE} pixels, got {side}")
    if width * height > MAX_PIXELS:
        raise GenerationError(
            f"size {width}x{height} is {width * height / 1e6:.2f} MP; at most {MAX_PIXELS / 1e6:.1f} MP"
        )


def build_scheduler(name: str, base_config: dict, *, schedule_type: str = AUTOMATIC, prediction_type: str = "eps",
                    seeds: list[int] | None = None):
    """A fresh diffusers scheduler for A1111 sampler ``name`` (see ``schedulers.build_scheduler``; imports diffusers)."""
    from .schedulers import build_scheduler as build

    return build(name, base_config, schedule_type=schedule_type, prediction_type=prediction_type, seeds=seeds)
