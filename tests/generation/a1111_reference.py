"""A1111 / k-diffusion reference formulas, written out for the parity tests (independent of
generation.pipelines): SDXL's training schedule, A1111's zero-terminal-SNR rescale, k-diffusion's
DiscreteSchedule and schedule types, and each A1111 sampler's default schedule."""

import math

import numpy as np


def ref_alphas_cumprod(ztsnr: bool) -> np.ndarray:
    # sgm's LegacyDDPMDiscretization for SDXL: betas = linspace(sqrt(0.00085), sqrt(0.012), 1000) ** 2
    betas = np.linspace(math.sqrt(0.00085), math.sqrt(0.012), 1000) ** 2
    ac = np.cumprod(1.0 - betas)
    if ztsnr:  # A1111's rescale_zero_terminal_snr_abar
        root = np.sqrt(ac)
        root0, root_t = root[0], root[-1]
        root = (root - root_t) * root0 / (root0 - root_t)
        ac = root**2
        ac[-1] = 4.8973451890853435e-08
    return ac


def ref_table(ztsnr: bool) -> np.ndarray:
    ac = ref_alphas_cumprod(ztsnr)
    return np.sqrt((1 - ac) / ac)


def ref_t_to_sigma(table, t):
    t = np.asarray(t, dtype=np.float64)
    lo, hi = np.floor(t).astype(int), np.ceil(t).astype(int)
    w = t - lo
    log = np.log(table)
    return np.exp((1 - w) * log[lo] + w * log[hi])


def ref_sigmas(schedule: str, n: int, table) -> np.ndarray:
    smin, smax = table[0], table[-1]
    if schedule == "uniform":  # DiscreteSchedule.get_sigmas(n)
        s = ref_t_to_sigma(table, np.linspace(len(table) - 1, 0, n))
    elif schedule == "karras":  # rho 7
        ramp = np.linspace(0, 1, n)
        s = (smax ** (1 / 7) + ramp * (smin ** (1 / 7) - smax ** (1 / 7))) ** 7
    elif schedule == "exponential":
        s = np.exp(np.linspace(math.log(smax), math.log(smin), n))
    elif schedule == "sgm_uniform":  # sigma_to_t(sigma_max) = 999, sigma_to_t(sigma_min) = 0
        s = ref_t_to_sigma(table, np.linspace(len(table) - 1, 0, n + 1)[:-1])
    elif schedule == "beta":  # alpha = beta = 0.6
        from scipy import stats

        s = smin + stats.beta.ppf(1 - np.linspace(0, 1, n), 0.6, 0.6) * (smax - smin)
    else:
        raise AssertionError(schedule)
    return np.append(s, 0.0)


def ref_a1111_sigmas(sampler: str, schedule: str, n: int, ztsnr: bool) -> np.ndarray:
    """A1111's KDiffusionSampler.get_sigmas: Automatic -> the sampler's default; discard_next_to_last_sigma."""
    automatic = {"DPM++ 2M": "karras", "DPM++ SDE": "karras", "DPM++ 2M SDE": "exponential",
                 "DPM++ 2M SDE Heun": "exponential", "DPM++ 3M SDE": "exponential", "DPM2": "karras",
                 "DPM2 a": "karras"}
    discard = sampler in ("DPM2", "DPM2 a", "DPM++ 3M SDE")
    name = automatic.get(sampler, "uniform") if schedule == "Automatic" else schedule.lower().replace(" ", "_")
    s = ref_sigmas(name, n + 1 if discard else n, ref_table(ztsnr))
    return np.concatenate([s[:-2], s[-1:]]) if discard else s
