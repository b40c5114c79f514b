"""Samplers against k-diffusion's algorithms: the built scheduler, driven the way the SDXL pipeline drives it,
and k-diffusion's sampler written out here, both denoise with the same exact model of Gaussian data, from the
same initial noise and the same per-step noise; the results must agree.

The model stands in for the UNet: it sees only the scaled input and the timestep (as a UNet does), turns the
timestep back into a noise level with k-diffusion's t_to_sigma, and returns the eps of the exact denoiser of
N(0, 0.5^2) data. The references follow k-diffusion's sampling.py (euler, euler_ancestral, heun, dpm_2,
dpm_2_ancestral, lms, dpmpp_2m, dpmpp_sde, dpmpp_2m_sde, dpmpp_3m_sde) and A1111's ddim (sd_samplers_timesteps_
impl.py) and sample_lcm (sd_samplers_lcm.py).
"""

import inspect
import math

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")]

from generation.pipelines import build_scheduler  # noqa: E402
from generation.pipelines.configs import SCHEDULER_SDXL  # noqa: E402

from .a1111_reference import ref_a1111_sigmas, ref_alphas_cumprod, ref_t_to_sigma, ref_table  # noqa: E402

S_DATA = 0.5
SHAPE = (1, 4, 6, 6)
TABLE = ref_table(False)


def denoised(x, sigma):
    return x * S_DATA**2 / (sigma**2 + S_DATA**2)


def eps_of(x_k, sigma):
    return (x_k - denoised(x_k, sigma)) / sigma


def noise_for(sigma, sigma_next):
    """Deterministic noise for the interval (sigma, sigma_next): both sides draw the same for the same interval."""
    key = (round(math.log(float(sigma)) * 1e4), round(math.log(float(sigma_next)) * 1e4))
    gen = torch.Generator().manual_seed(hash(key) % 2**31)
    return torch.randn(SHAPE[1:], generator=gen).unsqueeze(0).double()


class FixedNoise:
    def __call__(self, sigma, sigma_next):
        return noise_for(sigma, sigma_next).float()


def run_ours(sampler: str, schedule: str, steps: int, z: torch.Tensor, *, lcm: bool = False) -> torch.Tensor:
    sched = build_scheduler(sampler, SCHEDULER_SDXL, schedule_type=schedule, seeds=[7])
    sched.set_timesteps(steps)
    if hasattr(sched, "set_begin_index"):
        sched.set_begin_index(0)  # as the SDXL pipeline does
    if hasattr(sched, "noise_sampler"):
        sched.noise_sampler = FixedNoise()
    x = z.float() * sched.a1111_latent_scale_for(steps) * sched.init_noise_sigma
    gen = torch.Generator().manual_seed(123)
    takes_generator = "generator" in inspect.signature(sched.step).parameters
    for t in sched.timesteps:
        x_in = sched.scale_model_input(x, t)
        if lcm:
            sigma = float(sched.sigmas[sched.step_index])
        else:
            sigma = float(ref_t_to_sigma(TABLE, float(t)))
        x_k = x_in.double() * math.sqrt(sigma**2 + 1)
        out = eps_of(x_k, sigma).float()
        x = sched.step(out, t, x, **({"generator": gen} if takes_generator else {})).prev_sample
    return x.double()


# -- k-diffusion, written out (float64) --------------------------------------------------------------------------


def ancestral(s, s_next):
    up = min(s_next, (s_next**2 * (s**2 - s_next**2) / s**2) ** 0.5)
    return (s_next**2 - up**2) ** 0.5, up


def gen_noise(gen):
    return torch.randn(SHAPE, generator=gen, dtype=torch.float32).double()


def k_euler(x, sigmas, gen, ancestral_noise=False):
    for i in range(len(sigmas) - 1):
        s, sn = sigmas[i], sigmas[i + 1]
        d = (x - denoised(x, s)) / s
        down, up = ancestral(s, sn) if ancestral_noise else (sn, 0.0)
        x = x + d * (down - s)
        if ancestral_noise:
            noise = gen_noise(gen)
            if sn > 0:
                x = x + noise * up
    return x


def k_heun(x, sigmas, gen):
    for i in range(len(sigmas) - 1):
        s, sn = sigmas[i], sigmas[i + 1]
        d = (x - denoised(x, s)) / s
        if sn == 0:
            x = x + d * (sn - s)
        else:
            x2 = x + d * (sn - s)
            d2 = (x2 - denoised(x2, sn)) / sn
            x = x + (d + d2) / 2 * (sn - s)
    return x


def k_dpm_2(x, sigmas, gen, ancestral_noise=False):
    for i in range(len(sigmas) - 1):
        s, sn = sigmas[i], sigmas[i + 1]
        d = (x - denoised(x, s)) / s
        down, up = ancestral(s, sn) if ancestral_noise else (sn, 0.0)
        if down == 0:
            x = x + d * (down - s)
        else:
            mid = math.exp((math.log(s) + math.log(down)) / 2)
            x2 = x + d * (mid - s)
            d2 = (x2 - denoised(x2, mid)) / mid
            x = x + d2 * (down - s)
            if ancestral_noise:
                x = x + gen_noise(gen) * up
    return x


def k_lms(x, sigmas, gen, order=4):
    from scipy import integrate

    ds = []
    for i in range(len(sigmas) - 1):
        ds.append((x - denoised(x, sigmas[i])) / sigmas[i])
        ds = ds[-order:]
        cur = min(i + 1, order)

        def coeff(j):
            def fn(tau):
                prod = 1.0
                for k in range(cur):
                    if k != j:
                        prod *= (tau - sigmas[i - k]) / (sigmas[i - j] - sigmas[i - k])
                return prod
            return integrate.quad(fn, sigmas[i], sigmas[i + 1], epsrel=1e-4)[0]

        x = x + sum(coeff(j) * d for j, d in enumerate(reversed(ds)))
    return x


def k_dpmpp_2m(x, sigmas, gen):
    old = None
    for i in range(len(sigmas) - 1):
        den = denoised(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = den
        else:
            t, tn = -math.log(sigmas[i]), -math.log(sigmas[i + 1])
            h = tn - t
            if old is None:
                x = (sigmas[i + 1] / sigmas[i]) * x - math.expm1(-h) * den
            else:
                r = (t + math.log(sigmas[i - 1])) / h
                dd = (1 + 1 / (2 * r)) * den - (1 / (2 * r)) * old
                x = (sigmas[i + 1] / sigmas[i]) * x - math.expm1(-h) * dd
        old = den
    return x


def k_dpmpp_sde(x, sigmas, gen):
    for i in range(len(sigmas) - 1):
        s, sn = sigmas[i], sigmas[i + 1]
        den = denoised(x, s)
        if sn == 0:
            x = x + (x - den) / s * (sn - s)
            continue
        t, tn = -math.log(s), -math.log(sn)
        sm = math.exp(-(t + (tn - t) / 2))
        down, up = ancestral(s, sm)
        x2 = (down / s) * x - math.expm1(math.log(down / s)) * den + noise_for(s, sm) * up
        den2 = denoised(x2, sm)
        down, up = ancestral(s, sn)
        x = (down / s) * x - math.expm1(math.log(down / s)) * den2 + noise_for(s, sn) * up
    return x


def k_dpmpp_2m_sde(x, sigmas, gen, solver="midpoint"):
    old, h_last = None, None
    for i in range(len(sigmas) - 1):
        den = denoised(x, sigmas[i])
        h = None
        if sigmas[i + 1] == 0:
            x = den
        else:
            h = math.log(sigmas[i]) - math.log(sigmas[i + 1])
            x = sigmas[i + 1] / sigmas[i] * math.exp(-h) * x - math.expm1(-2 * h) * den
            if old is not None:
                r = h_last / h
                if solver == "heun":
                    x = x + (-math.expm1(-2 * h) / (-2 * h) + 1) * (1 / r) * (den - old)
                else:
                    x = x + 0.5 * -math.expm1(-2 * h) * (1 / r) * (den - old)
            x = x + noise_for(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * math.sqrt(-math.expm1(-2 * h))
        old, h_last = den, h
    return x


def k_dpmpp_3m_sde(x, sigmas, gen):
    d1_, d2_, h1, h2 = None, None, None, None
    for i in range(len(sigmas) - 1):
        den = denoised(x, sigmas[i])
        h = None
        if sigmas[i + 1] == 0:
            x = den
        else:
            h = math.log(sigmas[i]) - math.log(sigmas[i + 1])
            he = 2 * h
            x = math.exp(-he) * x - math.expm1(-he) * den
            if h2 is not None:
                r0, r1 = h1 / h, h2 / h
                a, b = (den - d1_) / r0, (d1_ - d2_) / r1
                dd1 = a + (a - b) * r0 / (r0 + r1)
                dd2 = (a - b) / (r0 + r1)
                phi2 = math.expm1(-he) / he + 1
                phi3 = phi2 / he - 0.5
                x = x + phi2 * dd1 - phi3 * dd2
            elif h1 is not None:
                x = x + (math.expm1(-he) / he + 1) * (den - d1_) / (h1 / h)
            x = x + noise_for(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * math.sqrt(-math.expm1(-2 * h))
        d1_, d2_, h1, h2 = den, d1_, h, h1
    return x


K_SAMPLERS = {
    "Euler": k_euler,
    "Euler a": lambda x, s, g: k_euler(x, s, g, ancestral_noise=True),
    "Heun": k_heun,
    "DPM2": k_dpm_2,
    "DPM2 a": lambda x, s, g: k_dpm_2(x, s, g, ancestral_noise=True),
    "LMS": k_lms,
    "DPM++ 2M": k_dpmpp_2m,
    "DPM++ SDE": k_dpmpp_sde,
    "DPM++ 2M SDE": k_dpmpp_2m_sde,
    "DPM++ 2M SDE Heun": lambda x, s, g: k_dpmpp_2m_sde(x, s, g, solver="heun"),
    "DPM++ 3M SDE": k_dpmpp_3m_sde,
}


def initial_noise():
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(5), dtype=torch.float32).double()


@pytest.mark.parametrize("steps", [8, 20])
@pytest.mark.parametrize("schedule", ["Automatic", "Karras"])
@pytest.mark.parametrize("sampler", list(K_SAMPLERS))
def test_sampler_steps_like_k_diffusion(sampler, schedule, steps):
    z = initial_noise()
    sigmas = [float(s) for s in ref_a1111_sigmas(sampler, schedule, steps, False)]
    expected = K_SAMPLERS[sampler](z * sigmas[0], sigmas, torch.Generator().manual_seed(123))
    ours = run_ours(sampler, schedule, steps, z)
    scale = float(expected.abs().max())
    assert scale > 0.1  # a real image-sized result, not an all-zero one
    torch.testing.assert_close(ours, expected, atol=2e-5 * scale, rtol=0)


def test_ddim_steps_like_a1111s_ddim():
    z = initial_noise()
    ac = ref_alphas_cumprod(False)
    n = 20
    ts = [t + 1 for t in range(0, 1000, 1000 // n)]
    x = z.clone()
    for index in range(len(ts) - 1, 0, -1):  # ddim(): index = len - 1 - i for i in range(len - 1)
        a_t, a_prev = ac[ts[index]], ac[ts[index - 1]]
        sigma = math.sqrt((1 - a_t) / a_t)
        e = eps_of(x * math.sqrt(sigma**2 + 1), sigma)
        pred_x0 = (x - math.sqrt(1 - a_t) * e) / math.sqrt(a_t)
        x = math.sqrt(a_prev) * pred_x0 + math.sqrt(1 - a_prev) * e
    torch.testing.assert_close(run_ours("DDIM", "Automatic", n, z), x, atol=2e-5 * float(x.abs().max()), rtol=0)


def test_lcm_steps_like_a1111s_sample_lcm():
    z = initial_noise()
    ac = ref_alphas_cumprod(False)
    grid_t = np.arange(50) * 20 + 19
    grid = np.sqrt((1 - ac[grid_t]) / ac[grid_t])
    sigmas = list(ref_t_to_sigma(grid, np.linspace(49, 0, 4))) + [0.0]
    gen = torch.Generator().manual_seed(123)
    x = z * sigmas[0]
    for i in range(4):
        s = sigmas[i]
        t = grid_t[np.abs(np.log(s) - np.log(grid)).argmin()]
        x0 = x - s * eps_of(x, s)
        scaled = 10.0 * t
        den = scaled / math.sqrt(scaled**2 + 0.25) * x0 + 0.25 / (scaled**2 + 0.25) * x
        noise = gen_noise(gen)
        x = den + (sigmas[i + 1] * noise if sigmas[i + 1] > 0 else 0)
    ours = run_ours("LCM", "Automatic", 4, z, lcm=True)
    torch.testing.assert_close(ours, x, atol=2e-5 * float(x.abs().max()), rtol=0)


def test_diffusers_own_3m_sde_update_would_differ_from_k_diffusion():
    """Why A1111DPMSolverMultistep overrides the third-order SDE update: diffusers 0.42's D2 term has the sign of
    its 0.5 flipped. With the stock update the same run drifts far from k-diffusion's."""
    import diffusers

    z = initial_noise()
    sigmas = [float(s) for s in ref_a1111_sigmas("DPM++ 3M SDE", "Automatic", 20, False)]
    expected = k_dpmpp_3m_sde(z * sigmas[0], sigmas, None)
    original = diffusers.DPMSolverMultistepScheduler.multistep_dpm_solver_third_order_update
    from generation.pipelines import schedulers

    stock = schedulers.A1111DPMSolverMultistep.multistep_dpm_solver_third_order_update
    try:
        schedulers.A1111DPMSolverMultistep.multistep_dpm_solver_third_order_update = original
        drifted = run_ours("DPM++ 3M SDE", "Automatic", 20, z)
    finally:
        schedulers.A1111DPMSolverMultistep.multistep_dpm_solver_third_order_update = stock
    assert float((drifted - expected).abs().max()) > 100 * 2e-5 * float(expected.abs().max())


@pytest.mark.parametrize("sampler", ["Euler a", "DPM2 a"])
def test_ancestral_noise_is_drawn_in_float32_whatever_the_model_dtype(sampler):
    """A float16 UNet (a GPU worker) must not change the seed's noise: CPU float16 draws differ from float32 ones
    for tensors whose size is not a multiple of 16, e.g. 4 x 5 x 5."""
    results = []
    for dtype in (torch.float32, torch.float16):
        sched = build_scheduler(sampler, SCHEDULER_SDXL, seeds=[1])
        sched.set_timesteps(4)
        sched.set_begin_index(0)
        out = (torch.ones(1, 4, 5, 5) * float(sched.init_noise_sigma)).to(dtype)
        gen = torch.Generator().manual_seed(3)
        for t in sched.timesteps[:2]:  # DPM2 a draws its noise in the second half of a step
            sched.scale_model_input(out, t)
            out = sched.step(torch.full((1, 4, 5, 5), 0.25).to(dtype), t, out, generator=gen, return_dict=False)[0]
        assert out.dtype == dtype
        results.append(out.float())
    torch.testing.assert_close(results[1], results[0], atol=float(results[0].abs().max()) * 2e-3, rtol=0)
