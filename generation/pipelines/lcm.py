"""A1111's LCM sampler as a diffusers scheduler (imports diffusers; workers only).

stable-diffusion-webui (modules/sd_samplers_lcm.py) samples LCM / DMD2-style models in k-diffusion space on the
50 noise levels LCM was distilled on (timesteps 19, 39, ..., 999):

* the sigmas come from a schedule type over that 50-level table (Automatic = Uniform over it);
* the model sees the nearest of the 50 timesteps, its input scaled by 1 / sqrt(sigma^2 + 1);
* the prediction goes through LCM's boundary condition (c_skip, c_out at 10 x timestep, sigma_data 0.5);
* the next sample is that denoised image plus fresh noise at the next sigma (none at the end).

diffusers' own LCMScheduler picks other timesteps (e.g. 999, 759, 499, 259 for 4 steps, where A1111 uses 999, 679,
339, 19) and re-noises at grid levels, so it is not used.
"""

from __future__ import annotations

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin, SchedulerOutput
from diffusers.utils.torch_utils import randn_tensor

from . import sigmas as S
from .schedulers import A1111Schedule

SIGMA_DATA = 0.5
TIMESTEP_SCALING = 10.0


class A1111LCMScheduler(A1111Schedule, SchedulerMixin, ConfigMixin):
    order = 1

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012,
                 beta_schedule: str = "scaled_linear", trained_betas: list | None = None,
                 prediction_type: str = "epsilon", original_inference_steps: int = S.LCM_ORIGINAL_STEPS):
        if trained_betas is not None:
            alphas_cumprod = np.cumprod(1.0 - np.asarray(trained_betas, dtype=np.float64))
        else:
            alphas_cumprod = S.train_alphas_cumprod(num_train_timesteps=num_train_timesteps, beta_start=beta_start,
                                                    beta_end=beta_end, beta_schedule=beta_schedule)
        self.alphas_cumprod = torch.from_numpy(alphas_cumprod.astype(np.float32))
        self.grid, self.grid_timesteps = S.lcm_grid(alphas_cumprod, original_inference_steps)
        self.sigmas = torch.zeros(1)
        self.model_timesteps = np.zeros(0, dtype=np.int64)
        self.timesteps = torch.zeros(0)
        self.num_inference_steps = None
        self._step_index = None
        self._begin_index = None

    @property
    def init_noise_sigma(self):
        return self.sigmas.max()

    @property
    def step_index(self):
        return self._step_index

    @property
    def begin_index(self):
        return self._begin_index

    def set_begin_index(self, begin_index: int = 0) -> None:
        self._begin_index = begin_index

    def a1111_sigmas(self, steps: int) -> np.ndarray:
        return S.schedule_sigmas(self.a1111_schedule, int(steps), self.grid, discard_penultimate=self.a1111_discard)

    def set_timesteps(self, num_inference_steps: int, device=None):
        self.num_inference_steps = num_inference_steps
        sigmas = self.a1111_sigmas(num_inference_steps)
        self.sigmas = torch.from_numpy(sigmas.astype(np.float32))
        self.model_timesteps = S.lcm_model_timesteps(sigmas[:-1], self.grid, self.grid_timesteps)
        # the pipeline hands these to the model; it counts steps itself (set_begin_index), so repeats are fine
        self.timesteps = torch.from_numpy(self.model_timesteps.astype(np.float32)).to(device)
        self._step_index = None
        self._begin_index = None

    def _init_step_index(self, timestep) -> None:
        if self._begin_index is not None:
            self._step_index = self._begin_index
        else:
            self._step_index = int((self.timesteps.cpu() == float(timestep)).nonzero()[0])

    def scale_model_input(self, sample: torch.Tensor, timestep=None) -> torch.Tensor:
        if self._step_index is None:
            self._init_step_index(timestep)
        return sample / (self.sigmas[self._step_index] ** 2 + 1) ** 0.5

    def model_timestep(self) -> int:
        """The timestep the model is evaluated at for the current step (the nearest of LCM's 50 levels)."""
        return int(self.model_timesteps[self._step_index])

    def _denoised(self, model_output: torch.Tensor, sample: torch.Tensor, sigma: float) -> torch.Tensor:
        if self.config.prediction_type == "v_prediction":
            x0 = sample / (sigma**2 + 1) - model_output * (sigma / (sigma**2 + 1) ** 0.5)
        else:
            x0 = sample - sigma * model_output
        scaled = TIMESTEP_SCALING * self.model_timestep()
        c_skip = SIGMA_DATA**2 / (scaled**2 + SIGMA_DATA**2)
        c_out = scaled / (scaled**2 + SIGMA_DATA**2) ** 0.5
        return c_out * x0 + c_skip * sample

    def step(self, model_output, timestep, sample, generator=None, return_dict: bool = True):
        if self._step_index is None:
            self._init_step_index(timestep)
        sigma, sigma_next = float(self.sigmas[self._step_index]), float(self.sigmas[self._step_index + 1])
        sample = sample.to(torch.float32)
        prev = self._denoised(model_output.to(torch.float32), sample, sigma)
        if sigma_next > 0:
            noise = randn_tensor(model_output.shape, generator=generator, device=model_output.device, dtype=torch.float32)
            prev = prev + sigma_next * noise
        self._step_index += 1
        prev = prev.to(model_output.dtype)
        return SchedulerOutput(prev_sample=prev) if return_dict else (prev,)

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        index = self._begin_index if self._begin_index is not None else 0
        return original_samples + noise * self.sigmas[index].to(original_samples.device, original_samples.dtype)

    def __len__(self):
        return self.config.num_train_timesteps
