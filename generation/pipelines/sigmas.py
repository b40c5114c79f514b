"""Noise schedules as A1111 computes them: k-diffusion's discretisation of SDXL's training betas.

Pure numpy (scipy for the Beta schedule), no torch: the web tier and the tests can compute the exact sigmas a
worker will sample with. Everything here follows stable-diffusion-webui (modules/sd_schedulers.py,
sd_samplers_kdiffusion.py, sd_models.py) and k-diffusion (external.DiscreteSchedule, sampling.get_sigmas_*):

* the training schedule: SDXL's "scaled linear" betas, ``alphas_cumprod = cumprod(1 - betas)``; for zero terminal
  SNR (v-prediction checkpoints) A1111's ``rescale_zero_terminal_snr_abar``, whose last value is 4.897e-8;
* ``SigmaTable``: k-diffusion's mapping between the 1000 discrete noise levels and continuous t (log-sigma
  interpolation);
* the schedule types (Uniform, Karras, Exponential, SGM Uniform, Beta), each n sigmas followed by a 0;
* "discard penultimate sigma" (A1111's DPM2, DPM2 a, DPM++ 3M SDE): n+1 sigmas, the next-to-last dropped.
"""

from __future__ import annotations

import math

import numpy as np

NUM_TRAIN_TIMESTEPS = 1000
BETA_START, BETA_END = 0.00085, 0.012
ZTSNR_LAST_ALPHA_BAR = 4.8973451890853435e-08  # what A1111 puts at the terminal step (sigma 4518.8)
KARRAS_RHO = 7.0
BETA_ALPHA = BETA_BETA = 0.6  # A1111's beta_dist_alpha / beta_dist_beta defaults
LCM_ORIGINAL_STEPS = 50

# schedule type label -> internal name (A1111's Scheduler.label / .name)
SCHEDULE_LABELS = {
    "Uniform": "uniform",
    "Karras": "karras",
    "Exponential": "exponential",
    "SGM Uniform": "sgm_uniform",
    "Beta": "beta",
}


def train_alphas_cumprod(
    *,
    num_train_timesteps: int = NUM_TRAIN_TIMESTEPS,
    beta_start: float = BETA_START,
    beta_end: float = BETA_END,
    beta_schedule: str = "scaled_linear",
    zero_terminal_snr: bool = False,
) -> np.ndarray:
    """``alphas_cumprod`` of the training schedule (float64), zero-terminal-SNR-rescaled as A1111 does when asked."""
    if beta_schedule == "scaled_linear":
        betas = np.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=np.float64) ** 2
    elif beta_schedule == "linear":
        betas = np.linspace(beta_start, beta_end, num_train_timesteps, dtype=np.float64)
    else:
        raise ValueError(f"unsupported beta schedule {beta_schedule!r}: use scaled_linear or linear")
    alphas_cumprod = np.cumprod(1.0 - betas)
    return rescale_zero_terminal_snr(alphas_cumprod) if zero_terminal_snr else alphas_cumprod


def rescale_zero_terminal_snr(alphas_cumprod: np.ndarray) -> np.ndarray:
    """A1111's ``rescale_zero_terminal_snr_abar`` (Lin et al. 2023): shift and scale sqrt(alpha_bar) so the last
    step has zero signal, then put 4.897e-8 at the end so its sigma stays finite."""
    root = np.sqrt(np.asarray(alphas_cumprod, dtype=np.float64))
    first, last = root[0], root[-1]
    root = (root - last) * (first / (first - last))
    out = root**2
    out[-1] = ZTSNR_LAST_ALPHA_BAR
    return out


def betas_from_alphas_cumprod(alphas_cumprod: np.ndarray) -> list[float]:
    """The betas whose cumulative product is ``alphas_cumprod`` (to hand a schedule to a diffusers scheduler)."""
    ac = np.asarray(alphas_cumprod, dtype=np.float64)
    previous = np.concatenate([[1.0], ac[:-1]])
    return (1.0 - ac / previous).tolist()


def sigmas_of(alphas_cumprod: np.ndarray) -> np.ndarray:
    ac = np.asarray(alphas_cumprod, dtype=np.float64)
    return np.sqrt((1.0 - ac) / ac)


class SigmaTable:
    """k-diffusion's ``DiscreteSchedule``: noise levels ``sigmas`` (ascending, index = discrete timestep) and the
    continuous t <-> sigma maps (linear interpolation of log sigma between neighbouring timesteps)."""

    def __init__(self, sigmas: np.ndarray):
        self.sigmas = np.asarray(sigmas, dtype=np.float64)
        if self.sigmas.ndim != 1 or len(self.sigmas) < 2 or np.any(np.diff(self.sigmas) <= 0):
            raise ValueError("a sigma table needs at least two strictly increasing noise levels")
        self.log_sigmas = np.log(self.sigmas)

    @classmethod
    def from_alphas_cumprod(cls, alphas_cumprod: np.ndarray) -> SigmaTable:
        return cls(sigmas_of(alphas_cumprod))

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    def t_to_sigma(self, t) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        low = np.floor(t).astype(np.int64)
        high = np.ceil(t).astype(np.int64)
        w = t - low
        return np.exp((1 - w) * self.log_sigmas[low] + w * self.log_sigmas[high])

    def sigma_to_t(self, sigma) -> np.ndarray:
        sigma = np.asarray(sigma, dtype=np.float64)
        log_sigma = np.log(np.maximum(sigma.reshape(-1), 1e-10))
        dists = log_sigma[None, :] - self.log_sigmas[:, None]
        low = np.minimum(np.cumsum(dists >= 0, axis=0).argmax(axis=0), len(self.log_sigmas) - 2)
        high = low + 1
        lo, hi = self.log_sigmas[low], self.log_sigmas[high]
        w = np.clip((lo - log_sigma) / (lo - hi), 0, 1)
        return ((1 - w) * low + w * high).reshape(sigma.shape)


def _append_zero(sigmas) -> np.ndarray:
    return np.concatenate([np.asarray(sigmas, dtype=np.float64), [0.0]])


def uniform(n: int, table: SigmaTable) -> np.ndarray:
    """k-diffusion's ``get_sigmas(n)``: n timesteps evenly spaced from the last to the first (A1111 "Uniform")."""
    return _append_zero(table.t_to_sigma(np.linspace(len(table.sigmas) - 1, 0, n)))


def sgm_uniform(n: int, table: SigmaTable) -> np.ndarray:
    start, end = table.sigma_to_t(table.sigma_max), table.sigma_to_t(table.sigma_min)
    return _append_zero(table.t_to_sigma(np.linspace(float(start), float(end), n + 1)[:-1]))


def karras(n: int, table: SigmaTable, rho: float = KARRAS_RHO) -> np.ndarray:
    ramp = np.linspace(0, 1, n)
    min_inv, max_inv = table.sigma_min ** (1 / rho), table.sigma_max ** (1 / rho)
    return _append_zero((max_inv + ramp * (min_inv - max_inv)) ** rho)


def exponential(n: int, table: SigmaTable) -> np.ndarray:
    return _append_zero(np.exp(np.linspace(math.log(table.sigma_max), math.log(table.sigma_min), n)))


def beta(n: int, table: SigmaTable, alpha: float = BETA_ALPHA, beta_: float = BETA_BETA) -> np.ndarray:
    from scipy import stats

    ppf = stats.beta.ppf(1 - np.linspace(0, 1, n), alpha, beta_)
    return _append_zero(table.sigma_min + ppf * (table.sigma_max - table.sigma_min))


SCHEDULES = {"uniform": uniform, "karras": karras, "exponential": exponential, "sgm_uniform": sgm_uniform, "beta": beta}


def schedule_sigmas(schedule: str, steps: int, table: SigmaTable, *, discard_penultimate: bool = False) -> np.ndarray:
    """The ``steps + 1`` sigmas (last one 0) A1111 samples with for ``schedule`` (an internal name, e.g. "karras")."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; one of: {', '.join(SCHEDULES)}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a whole number of at least 1, got {steps!r}")
    if discard_penultimate:
        sigmas = SCHEDULES[schedule](steps + 1, table)
        return np.concatenate([sigmas[:-2], sigmas[-1:]])
    return SCHEDULES[schedule](steps, table)


# -- LCM: A1111's LCMCompVisDenoiser works on 50 of the 1000 noise levels ---------------------------------------


def lcm_grid(alphas_cumprod: np.ndarray, original_steps: int = LCM_ORIGINAL_STEPS) -> tuple[SigmaTable, np.ndarray]:
    """(the table of the ``original_steps`` noise levels LCM was distilled on, their discrete timesteps): with 1000
    training steps and 50 original steps, timesteps 19, 39, ..., 999."""
    n = len(alphas_cumprod)
    skip = n // original_steps
    timesteps = np.arange(original_steps) * skip + (skip - 1)
    return SigmaTable(sigmas_of(np.asarray(alphas_cumprod)[timesteps])), timesteps


def lcm_model_timesteps(sigmas: np.ndarray, grid: SigmaTable, grid_timesteps: np.ndarray) -> np.ndarray:
    """The timestep the model sees for each nonzero sigma: the nearest grid level (A1111's LCM ``sigma_to_t``)."""
    log = np.log(np.asarray(sigmas, dtype=np.float64))
    return grid_timesteps[np.abs(log[None, :] - grid.log_sigmas[:, None]).argmin(axis=0)]


# -- UniPC: A1111 runs its own UniPC with "time uniform" steps over continuous t in (0, 1] ------------------------


def unipc_time_points(steps: int, alphas_cumprod: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(model timesteps, sigmas) of A1111's UniPC: ``steps + 1`` points evenly spaced in t from 1 to 1/N, i.e.
    discrete timesteps 999 ... 0, with log(alpha) interpolated linearly in t (uni_pc's ``NoiseScheduleVP``). The
    last point is where sampling stops (sigma of timestep 0, not zero)."""
    ac = np.asarray(alphas_cumprod, dtype=np.float64)
    n = len(ac)
    timesteps = np.linspace(n - 1, 0, steps + 1)
    log_alpha = np.interp(timesteps, np.arange(n), 0.5 * np.log(ac))
    alpha = np.exp(log_alpha)
    return timesteps, np.sqrt(1.0 - alpha**2) / alpha
