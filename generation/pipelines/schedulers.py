"""Diffusers schedulers that sample on A1111's noise schedules (imports diffusers; workers only).

Each A1111 sampler maps to a diffusers scheduler class (``samplers.SAMPLERS``); the subclasses here make it step
through the sigmas A1111 would use (``sigmas.schedule_sigmas``) instead of diffusers' own spacing:

* k-diffusion samplers: the class's own schedule hook (``_convert_to_exponential``) returns A1111's sigmas, so
  each class keeps its own step logic (Heun's and DPM2's interleaved steps included); the model sees the
  fractional timestep k-diffusion's ``sigma_to_t`` gives;
* Euler a (no schedule hook in diffusers) sets the sigmas directly;
* DDIM and UniPC follow A1111's timestep samplers (DDIM: ``steps - 1`` steps on 1, 1 + 1000 // steps, ...;
  UniPC: time-uniform points from t=1 to t=1/1000, variant bh1, order 3);
* the SDE samplers draw their noise from per-image Brownian trees seeded with the image's seed, generated on the
  CPU as A1111 does (so an image does not depend on its batch or its device); DPM++ 3M SDE uses k-diffusion's
  third-order update (diffusers 0.42's has the sign of the 0.5 in the D2 term flipped);
* v-prediction models sample with zero terminal SNR exactly as A1111 rescales it (last alpha_bar 4.897e-8).
"""

from __future__ import annotations

import inspect
from functools import lru_cache

import numpy as np
import torch
import diffusers

from . import sigmas as S
from .samplers import AUTOMATIC, SAMPLERS, SamplerSpec, effective_schedule, resolve_sampler
from .types import GenerationError


def schedule_alphas_cumprod(base_config: dict, prediction_type: str) -> np.ndarray:
    """The training ``alphas_cumprod`` of a pipeline's scheduler config (float64); for v-prediction rescaled to zero
    terminal SNR the way A1111 does it."""
    trained = base_config.get("trained_betas")
    if trained is not None and prediction_type != "v":
        return np.cumprod(1.0 - np.asarray(trained, dtype=np.float64))
    return S.train_alphas_cumprod(
        num_train_timesteps=int(base_config.get("num_train_timesteps", S.NUM_TRAIN_TIMESTEPS)),
        beta_start=float(base_config.get("beta_start", S.BETA_START)),
        beta_end=float(base_config.get("beta_end", S.BETA_END)),
        beta_schedule=str(base_config.get("beta_schedule", "scaled_linear")),
        zero_terminal_snr=prediction_type == "v",
    )


class A1111Schedule:
    """Mixin: where a scheduler comes from (set by ``build_scheduler``) and A1111's sigmas for n steps."""

    a1111_schedule: str = "uniform"
    a1111_discard: bool = False

    @property
    def a1111_table(self) -> S.SigmaTable:
        """k-diffusion's table of the scheduler's 1000 noise levels (from its own alphas_cumprod, i.e. our betas)."""
        table = self.__dict__.get("_a1111_table")
        if table is None:
            ac = getattr(self, "a1111_alphas_cumprod", None)
            if ac is None:  # some diffusers classes call set_timesteps in __init__, before build_scheduler sets it
                ac = self.alphas_cumprod.double().numpy()
            table = self.__dict__["_a1111_table"] = S.SigmaTable.from_alphas_cumprod(ac)
        return table

    def a1111_sigmas(self, steps: int) -> np.ndarray:
        return S.schedule_sigmas(self.a1111_schedule, int(steps), self.a1111_table, discard_penultimate=self.a1111_discard)

    def a1111_latent_scale_for(self, steps: int) -> float:
        """What to multiply unit Gaussian noise by so that, after the pipeline's ``init_noise_sigma``, sampling
        starts where A1111's does (k-diffusion: ``noise * sigmas[0]``; A1111's DDIM and UniPC: the noise itself)."""
        return 1.0


class _KSchedule(A1111Schedule):
    """k-diffusion samplers whose diffusers class has the ``use_exponential_sigmas`` hook."""

    def _convert_to_exponential(self, in_sigmas, num_inference_steps=None):
        return self.a1111_sigmas(num_inference_steps or self.num_inference_steps)[:-1]


class A1111EulerDiscrete(_KSchedule, diffusers.EulerDiscreteScheduler):
    pass


class A1111LMSDiscrete(_KSchedule, diffusers.LMSDiscreteScheduler):
    pass


class A1111HeunDiscrete(_KSchedule, diffusers.HeunDiscreteScheduler):
    pass


class A1111KDPM2Discrete(_KSchedule, diffusers.KDPM2DiscreteScheduler):
    pass


class _Float32Noise:
    """Ancestral samplers draw their per-step noise in float32, as A1111's CPU RNG does, whatever the model's
    dtype (diffusers draws it in the model output's dtype, and float16 draws differ from float32 ones)."""

    def step(self, model_output, timestep, sample, generator=None, return_dict=True):
        dtype = model_output.dtype
        out = super().step(model_output.float(), timestep, sample, generator=generator, return_dict=return_dict)
        if return_dict:
            out.prev_sample = out.prev_sample.to(dtype)
            return out
        return (out[0].to(dtype),) + tuple(out[1:])


class A1111KDPM2AncestralDiscrete(_Float32Noise, _KSchedule, diffusers.KDPM2AncestralDiscreteScheduler):
    pass


class A1111DPMSolverSDE(_KSchedule, diffusers.DPMSolverSDEScheduler):
    pass


class A1111EulerAncestralDiscrete(_Float32Noise, A1111Schedule, diffusers.EulerAncestralDiscreteScheduler):
    def set_timesteps(self, num_inference_steps: int, device=None):
        self.num_inference_steps = num_inference_steps
        sigmas = self.a1111_sigmas(num_inference_steps)
        self.sigmas = torch.from_numpy(sigmas.astype(np.float32))
        self.timesteps = torch.from_numpy(self.a1111_table.sigma_to_t(sigmas[:-1]).astype(np.float32)).to(device)
        self._step_index = None
        self._begin_index = None


class A1111DPMSolverMultistep(_KSchedule, diffusers.DPMSolverMultistepScheduler):
    """DPM++ 2M / 2M SDE / 2M SDE Heun / 3M SDE on A1111's sigmas, fractional model timesteps, Brownian SDE noise."""

    noise_sampler_seed: list[int] | None = None
    noise_sampler = None

    def a1111_latent_scale_for(self, steps: int) -> float:
        # diffusers' DPM-Solver works on x / sqrt(sigma^2 + 1) and starts from unit noise
        sigma = float(self.a1111_sigmas(steps)[0])
        return sigma / (sigma**2 + 1) ** 0.5

    def set_timesteps(self, num_inference_steps=None, device=None, **kwargs):
        super().set_timesteps(num_inference_steps, device=device, **kwargs)
        t = self.a1111_table.sigma_to_t(self.sigmas[:-1].numpy().astype(np.float64))
        self.timesteps = torch.from_numpy(t.astype(np.float32)).to(device)
        self.noise_sampler = None

    def step(self, model_output, timestep, sample, generator=None, variance_noise=None, return_dict=True):
        if self.config.algorithm_type == "sde-dpmsolver++" and variance_noise is None and self.noise_sampler_seed:
            if self.step_index is None:
                self._init_step_index(timestep)
            sigma, sigma_next = self.sigmas[self.step_index], self.sigmas[self.step_index + 1]
            if sigma_next > 0:
                if self.noise_sampler is None:
                    self.noise_sampler = brownian_noise_sampler(sample, self.sigmas, self.noise_sampler_seed)
                variance_noise = self.noise_sampler(sigma, sigma_next).to(sample.device, torch.float32)
            else:
                variance_noise = torch.zeros_like(sample, dtype=torch.float32)
        return super().step(model_output, timestep, sample, generator=generator, variance_noise=variance_noise,
                            return_dict=return_dict)

    def multistep_dpm_solver_third_order_update(self, model_output_list, *args, sample=None, noise=None, **kwargs):
        if self.config.algorithm_type != "sde-dpmsolver++":
            return super().multistep_dpm_solver_third_order_update(model_output_list, *args, sample=sample,
                                                                    noise=noise, **kwargs)
        return dpmpp_3m_sde_update(self, model_output_list, sample, noise)


def dpmpp_3m_sde_update(sched, model_output_list, sample, noise):
    """k-diffusion's DPM-Solver++(3M) SDE step (eta 1) in diffusers' scaled space (x / sqrt(sigma^2 + 1))."""
    i = sched.step_index
    alpha_sigma = [sched._sigma_to_alpha_sigma_t(sched.sigmas[j]) for j in (i + 1, i, i - 1, i - 2)]
    lambdas = [torch.log(a) - torch.log(s) for a, s in alpha_sigma]
    (alpha_t, sigma_t), (_, sigma_s0) = alpha_sigma[0], alpha_sigma[1]
    h, h_0, h_1 = lambdas[0] - lambdas[1], lambdas[1] - lambdas[2], lambdas[2] - lambdas[3]
    m0, m1, m2 = model_output_list[-1], model_output_list[-2], model_output_list[-3]
    r0, r1 = h_0 / h, h_1 / h
    d1_0, d1_1 = (m0 - m1) / r0, (m1 - m2) / r1
    d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
    d2 = (d1_0 - d1_1) / (r0 + r1)
    h_eta = 2.0 * h
    phi_2 = torch.expm1(-h_eta) / h_eta + 1.0
    phi_3 = phi_2 / h_eta - 0.5
    return (
        (sigma_t / sigma_s0 * torch.exp(-h)) * sample
        + alpha_t * (-torch.expm1(-h_eta)) * m0
        + alpha_t * phi_2 * d1
        - alpha_t * phi_3 * d2
        + sigma_t * torch.sqrt(-torch.expm1(-h_eta)) * noise
    )


class A1111DDIM(A1111Schedule, diffusers.DDIMScheduler):
    """A1111's DDIM (sd_samplers_timesteps): timesteps ``range(0, 1000, 1000 // steps) + 1``; it steps from the
    highest down to the lowest (timestep 1) and stops there, so it makes one model step fewer than it has
    timesteps (19 for 20 steps, 28 for 28: 1000 // 28 = 35 gives 29 timesteps)."""

    def set_timesteps(self, num_inference_steps: int, device=None):
        super().set_timesteps(num_inference_steps, device=device)
        n = self.config.num_train_timesteps
        a1111 = [min(n - 1, t + self.config.steps_offset) for t in range(0, n, n // num_inference_steps)]
        self.timesteps = torch.tensor(a1111[::-1][:-1], dtype=torch.int64, device=device)


class A1111UniPC(A1111Schedule, diffusers.UniPCMultistepScheduler):
    """A1111's UniPC time points: steps + 1 points from timestep 999 to 0, evenly spaced, fractional."""

    def set_timesteps(self, num_inference_steps=None, device=None, **kwargs):
        super().set_timesteps(num_inference_steps, device=device, **kwargs)
        timesteps, sigmas = S.unipc_time_points(int(num_inference_steps), self.a1111_alphas_cumprod)
        self.sigmas = torch.from_numpy(sigmas.astype(np.float32))
        self.timesteps = torch.from_numpy(timesteps[:-1].astype(np.float32)).to(device)


_CLASSES = {
    "EulerDiscreteScheduler": A1111EulerDiscrete,
    "EulerAncestralDiscreteScheduler": A1111EulerAncestralDiscrete,
    "LMSDiscreteScheduler": A1111LMSDiscrete,
    "HeunDiscreteScheduler": A1111HeunDiscrete,
    "KDPM2DiscreteScheduler": A1111KDPM2Discrete,
    "KDPM2AncestralDiscreteScheduler": A1111KDPM2AncestralDiscrete,
    "DPMSolverSDEScheduler": A1111DPMSolverSDE,
    "DPMSolverMultistepScheduler": A1111DPMSolverMultistep,
    "DDIMScheduler": A1111DDIM,
    "UniPCMultistepScheduler": A1111UniPC,
}


def _scheduler_class(spec: SamplerSpec):
    if spec.family == "lcm":
        from .lcm import A1111LCMScheduler

        return A1111LCMScheduler
    return _CLASSES[spec.scheduler]


@lru_cache(maxsize=None)
def _init_params(cls) -> frozenset[str]:
    return frozenset(inspect.signature(cls.__init__).parameters)


def _config_for(cls, spec: SamplerSpec, base_config: dict, alphas_cumprod: np.ndarray, prediction_type: str) -> dict:
    config = {k: v for k, v in dict(base_config).items() if not k.startswith("_")}
    config.update(spec.options)
    config["prediction_type"] = "v_prediction" if prediction_type == "v" else "epsilon"
    config["trained_betas"] = S.betas_from_alphas_cumprod(alphas_cumprod)
    config["rescale_betas_zero_snr"] = False  # the zero-SNR rescale is already in the betas, A1111's way
    config["num_train_timesteps"] = len(alphas_cumprod)
    if spec.family == "k":
        config.update(timestep_spacing="linspace", use_karras_sigmas=False, use_beta_sigmas=False,
                      use_exponential_sigmas=True, final_sigmas_type="zero", interpolation_type="linear")
    elif spec.family == "unipc":
        config.update(timestep_spacing="linspace")
    params = _init_params(cls)
    return {k: v for k, v in config.items() if k in params}


def build_scheduler(name: str, base_config: dict, *, schedule_type: str = AUTOMATIC, prediction_type: str = "eps",
                    seeds: list[int] | None = None):
    """A fresh scheduler that samples like A1111's ``name`` + ``schedule_type`` on the pipeline's training schedule.

    ``seeds``: one per image of the batch; SDE samplers draw Brownian noise from per-image trees seeded with them.
    """
    if prediction_type not in ("eps", "v"):
        raise GenerationError(f"unknown prediction type {prediction_type!r}: use eps or v")
    sampler, label = resolve_sampler(name, schedule_type)
    spec = SAMPLERS[sampler]
    if spec.needs:
        try:
            __import__(spec.needs)
        except ImportError:
            raise GenerationError(f"sampler {sampler!r} needs the {spec.needs} package, which is not installed") from None
    alphas_cumprod = schedule_alphas_cumprod(dict(base_config), prediction_type)
    cls = _scheduler_class(spec)
    scheduler = cls.from_config(_config_for(cls, spec, base_config, alphas_cumprod, prediction_type))
    scheduler.a1111_alphas_cumprod = alphas_cumprod
    scheduler.__dict__["_a1111_table"] = S.SigmaTable.from_alphas_cumprod(alphas_cumprod)
    scheduler.a1111_schedule = effective_schedule(sampler, label) or "uniform"
    scheduler.a1111_discard = spec.discard_penultimate
    if spec.brownian and seeds is not None:
        cpu_brownian_randn()
        scheduler.noise_sampler_seed = [int(s) % 2**63 for s in seeds]
    return scheduler


def brownian_noise_sampler(sample, sigmas, seeds):
    from diffusers.schedulers.scheduling_dpmsolver_sde import BrownianTreeNoiseSampler

    nonzero = sigmas[sigmas > 0]
    return BrownianTreeNoiseSampler(sample, float(nonzero.min()), float(sigmas.max()), seeds)


_PATCHED = False


def cpu_brownian_randn() -> None:
    """Make torchsde draw its Brownian-tree noise from a CPU generator in float32 (A1111's
    ``replace_torchsde_browinan``): the same seed gives the same SDE noise on any device and dtype."""
    global _PATCHED
    if _PATCHED:
        return
    import torchsde._brownian.brownian_interval as interval

    def cpu_randn(size, dtype, device, seed):
        generator = torch.Generator("cpu").manual_seed(int(seed))
        return torch.randn(size, generator=generator, dtype=torch.float32).to(device=device, dtype=dtype)

    interval._randn = cpu_randn
    _PATCHED = True
