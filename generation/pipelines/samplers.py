"""A1111 sampler names -> diffusers schedulers, built from the pipeline's own scheduler config.

The data (``SAMPLERS``) and ``validate_request`` import nothing heavy, so the web tier can use them to
validate forms; ``build_scheduler`` imports diffusers when a worker calls it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

from .types import GenerationError, GenerationRequest


@dataclass(frozen=True)
class SamplerSpec:
    scheduler: str  # diffusers class name
    options: dict = field(default_factory=dict)  # config overrides
    needs: str = ""  # an optional package the scheduler needs
    batch_noise_seeded: bool = False  # SDE noise comes from a per-image seeded Brownian tree (see build_scheduler)


SAMPLERS: dict[str, SamplerSpec] = {
    "Euler a": SamplerSpec("EulerAncestralDiscreteScheduler"),
    "Euler": SamplerSpec("EulerDiscreteScheduler"),
    "DPM++ 2M": SamplerSpec("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "DPM++ 2M Karras": SamplerSpec(
        "DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}
    ),
    "DPM++ 2M SDE Karras": SamplerSpec(
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "sde-dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
    ),
    "DPM++ SDE Karras": SamplerSpec(
        "DPMSolverSDEScheduler", {"use_karras_sigmas": True}, needs="torchsde", batch_noise_seeded=True
    ),
    "DDIM": SamplerSpec("DDIMScheduler", {"set_alpha_to_one": False}),
    "UniPC": SamplerSpec("UniPCMultistepScheduler"),
}

MIN_SIDE, MAX_SIDE, MAX_PIXELS = 256, 2048, 4_200_000
MAX_STEPS = 150
MAX_CLIP_SKIP = 12
MAX_PROMPT_CHARS = 8000


def sampler_names() -> list[str]:
    return list(SAMPLERS)


def validate_request(req: GenerationRequest) -> None:
    """Raise GenerationError (one line) if the request's settings cannot be generated."""
    if not isinstance(req.prompt, str) or not isinstance(req.negative_prompt, str):
        raise GenerationError("prompt and negative prompt must be text")
    if len(req.prompt) > MAX_PROMPT_CHARS or len(req.negative_prompt) > MAX_PROMPT_CHARS:
        raise GenerationError(f"prompt too long: at most {MAX_PROMPT_CHARS} characters")
    spec = SAMPLERS.get(req.sampler)
    if spec is None:
        raise GenerationError(f"unknown sampler {req.sampler!r}; choose one of: {', '.join(SAMPLERS)}")
    if spec.needs and importlib.util.find_spec(spec.needs) is None:
        raise GenerationError(f"sampler {req.sampler!r} needs the {spec.needs} package, which is not installed")
    if not isinstance(req.steps, int) or not 1 <= req.steps <= MAX_STEPS:
        raise GenerationError(f"steps must be a whole number from 1 to {MAX_STEPS}, got {req.steps!r}")
    if not isinstance(req.cfg_scale, (int, float)) or not 0 <= req.cfg_scale <= 30:
        raise GenerationError(f"CFG scale must be between 0 and 30, got {req.cfg_scale!r}")
    if not isinstance(req.seed, int) or not 0 <= req.seed < 2**63:
        raise GenerationError(f"seed must be a whole number from 0 to 2^63-1, got {req.seed!r}")
    if not isinstance(req.clip_skip, int) or not 1 <= req.clip_skip <= MAX_CLIP_SKIP:
        raise GenerationError(f"clip skip must be from 1 to {MAX_CLIP_SKIP}, got {req.clip_skip!r}")
    if not isinstance(req.guidance_rescale, (int, float)) or not 0 <= req.guidance_rescale <= 1:
        raise GenerationError(f"guidance rescale must be between 0 and 1, got {req.guidance_rescale!r}")
    validate_size(req.width, req.height)
    if not isinstance(req.hires_scale, (int, float)) or not 1.0 <= req.hires_scale <= 4.0:
        raise GenerationError(f"hires scale must be from 1 (off) to 4, got {req.hires_scale!r}")
    if req.hires_scale != 1.0:
        if not isinstance(req.hires_steps, int) or not 0 <= req.hires_steps <= MAX_STEPS:
            raise GenerationError(f"hires steps must be from 0 (same as steps) to {MAX_STEPS}, got {req.hires_steps!r}")
        if not isinstance(req.hires_denoise, (int, float)) or not 0 < req.hires_denoise <= 1:
            raise GenerationError(f"hires denoising strength must be above 0 and at most 1, got {req.hires_denoise!r}")
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


def zero_snr_betas(config: dict):
    """Betas rescaled to zero terminal SNR (Lin et al. 2023), the last alpha_bar clamped to 2**-24 as diffusers'
    own schedulers do, for scheduler classes without a ``rescale_betas_zero_snr`` option."""
    import torch
    from diffusers.schedulers.scheduling_ddim import rescale_zero_terminal_snr

    n = int(config.get("num_train_timesteps", 1000))
    start, end = float(config.get("beta_start", 0.00085)), float(config.get("beta_end", 0.012))
    if config.get("beta_schedule", "scaled_linear") == "scaled_linear":
        betas = torch.linspace(start**0.5, end**0.5, n, dtype=torch.float64) ** 2
    else:
        betas = torch.linspace(start, end, n, dtype=torch.float64)
    alphas_cumprod = torch.cumprod(1.0 - rescale_zero_terminal_snr(betas), dim=0)
    alphas_cumprod[-1] = 2**-24
    prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
    return (1.0 - alphas_cumprod / prev).tolist()


def build_scheduler(name: str, base_config: dict, *, prediction_type: str = "eps", seeds: list[int] | None = None):
    """A fresh diffusers scheduler for A1111 sampler ``name`` from the pipeline's scheduler config.

    v-prediction: ``prediction_type="v_prediction"``, zero terminal SNR (``rescale_betas_zero_snr=True`` or, for
    classes without that option, rescaled betas) and ``timestep_spacing="trailing"``.
    ``seeds``: one per image of the batch; SDE samplers draw their Brownian noise from per-image trees seeded
    with them, so an image is the same whether generated alone or in a batch (as A1111 does).
    """
    import inspect

    import diffusers

    spec = SAMPLERS.get(name)
    if spec is None:
        raise GenerationError(f"unknown sampler {name!r}; choose one of: {', '.join(SAMPLERS)}")
    if spec.needs and importlib.util.find_spec(spec.needs) is None:
        raise GenerationError(f"sampler {name!r} needs the {spec.needs} package, which is not installed")
    cls = getattr(diffusers, spec.scheduler)
    config = {k: v for k, v in dict(base_config).items() if not k.startswith("_")}
    config.update(spec.options)
    params = inspect.signature(cls.__init__).parameters
    if prediction_type == "v":
        config["prediction_type"] = "v_prediction"
        config["timestep_spacing"] = "trailing"
        if "rescale_betas_zero_snr" in params:
            config["rescale_betas_zero_snr"] = True
        else:
            config["trained_betas"] = zero_snr_betas(config)
    else:
        config["prediction_type"] = "epsilon"
        if "rescale_betas_zero_snr" in params:
            config["rescale_betas_zero_snr"] = False
    if spec.batch_noise_seeded and seeds is not None:
        config["noise_sampler_seed"] = [int(s) % 2**63 for s in seeds]
    if "final_sigmas_type" in params and config.get("algorithm_type") in ("dpmsolver++", "sde-dpmsolver++"):
        config.setdefault("final_sigmas_type", "zero")
    return cls.from_config(config)
