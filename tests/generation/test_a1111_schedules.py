"""Noise schedules against A1111: the sigmas each built scheduler steps through, compared with k-diffusion's
formulas written out here (not with generation.pipelines.sigmas), for SDXL's betas, eps and zero-terminal-SNR v.

References: k-diffusion external.DiscreteSchedule (get_sigmas, t_to_sigma) and sampling.get_sigmas_karras /
get_sigmas_exponential; A1111 modules/sd_schedulers.py (sgm_uniform, beta_scheduler), sd_models.py
(rescale_zero_terminal_snr_abar), sd_samplers_kdiffusion.py (each sampler's default scheduler,
discard_next_to_last_sigma), sd_samplers_timesteps.py (DDIM), sd_samplers_lcm.py (LCM).
"""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")]

from generation.pipelines import GenerationError, SAMPLERS, resolve_sampler  # noqa: E402
from generation.pipelines.configs import SCHEDULER_SDXL  # noqa: E402

from .a1111_reference import ref_a1111_sigmas, ref_alphas_cumprod, ref_sigmas, ref_t_to_sigma, ref_table  # noqa: E402

# -- what the built schedulers step through ----------------------------------------------------------------------


def stepped_sigmas(sampler: str, schedule: str, n: int, ztsnr: bool) -> np.ndarray:
    from generation.pipelines import build_scheduler

    sched = build_scheduler(sampler, SCHEDULER_SDXL, schedule_type=schedule, prediction_type="v" if ztsnr else "eps",
                            seeds=[1])
    sched.set_timesteps(n)
    sigmas = sched.sigmas.numpy().astype(np.float64)
    # second-order schedulers repeat each sigma for their two evaluations: keep one of each
    keep = np.concatenate([[True], np.abs(np.diff(sigmas)) > 0])
    return sigmas[keep]


ISSUE_SAMPLERS = ["Euler", "Euler a", "DPM++ 2M", "DPM++ SDE"]


@pytest.mark.parametrize("steps", [20, 28, 40])
@pytest.mark.parametrize("schedule", ["Automatic", "Karras"])
@pytest.mark.parametrize("sampler", ISSUE_SAMPLERS)
@pytest.mark.parametrize("ztsnr", [False, True], ids=["eps", "v-ztsnr"])
def test_first_and_every_sigma_within_one_percent_of_a1111(sampler, schedule, steps, ztsnr):
    ours = stepped_sigmas(sampler, schedule, steps, ztsnr)
    ref = ref_a1111_sigmas(sampler, schedule, steps, ztsnr)
    assert ours.shape == ref.shape == (steps + 1,)
    assert ours[0] == pytest.approx(ref[0], rel=0.01)
    np.testing.assert_allclose(ours[:-1], ref[:-1], rtol=0.01)
    assert ours[-1] == ref[-1] == 0.0


def test_euler_a_at_28_steps_starts_at_14_61_as_in_a1111():
    ours = stepped_sigmas("Euler a", "Automatic", 28, False)
    assert round(float(ours[0]), 2) == 14.61
    # diffusers' SDXL default ("leading" spacing) started at 10.72 and was up to 42% off; now every step is close
    np.testing.assert_allclose(ours, ref_a1111_sigmas("Euler a", "Automatic", 28, False), rtol=1e-4)


@pytest.mark.parametrize("sampler", ["Euler", "Euler a", "LMS", "Heun", "DPM2", "DPM2 a", "DPM++ 2M", "DPM++ SDE",
                                     "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 3M SDE"])
@pytest.mark.parametrize("schedule", ["Automatic", "Uniform", "Karras", "Exponential", "SGM Uniform", "Beta"])
def test_every_k_diffusion_sampler_and_schedule_type_matches_a1111(sampler, schedule):
    for steps, ztsnr in ((20, False), (28, True)):
        np.testing.assert_allclose(stepped_sigmas(sampler, schedule, steps, ztsnr),
                                   ref_a1111_sigmas(sampler, schedule, steps, ztsnr), rtol=1e-3)


@pytest.mark.parametrize("steps", [20, 28, 40])
def test_v_prediction_keeps_zero_terminal_snr_and_ends_like_a1111_uniform_ztsnr(steps):
    ours = stepped_sigmas("Euler", "Uniform", steps, True)
    ref = ref_sigmas("uniform", steps, ref_table(True))
    # the schedule starts at the terminal step, where A1111's rescale leaves sigma sqrt((1 - 4.9e-8) / 4.9e-8)
    assert ours[0] == pytest.approx(math.sqrt((1 - 4.8973451890853435e-08) / 4.8973451890853435e-08), rel=1e-3)
    assert ours[0] > 4000  # zero terminal SNR: practically pure noise
    np.testing.assert_allclose(ours, ref, rtol=1e-3)
    assert ours[-2] == pytest.approx(ref_table(True)[0], rel=1e-4)  # and ends at timestep 0 before the final 0


def test_model_timesteps_are_k_diffusions_fractional_ones():
    from generation.pipelines import build_scheduler

    for sampler in ("Euler", "Euler a", "DPM++ 2M"):
        sched = build_scheduler(sampler, SCHEDULER_SDXL, schedule_type="Uniform")
        sched.set_timesteps(28)
        # Uniform: t = linspace(999, 0, n), fractional (k-diffusion's sigma_to_t of each sigma)
        np.testing.assert_allclose(sched.timesteps.numpy(), np.linspace(999, 0, 28), atol=2e-3)


def test_ddim_uses_a1111s_timesteps_and_steps_one_fewer():
    from generation.pipelines import build_scheduler

    sched = build_scheduler("DDIM", SCHEDULER_SDXL)
    sched.set_timesteps(28)
    a1111 = list(range(0, 1000, 1000 // 28))  # sd_samplers_timesteps.get_timesteps: range(0, 1000, 1000 // n) + 1
    expected = [t + 1 for t in a1111][::-1][:-1]  # ddim() steps from the last down to timesteps[1] -> timesteps[0]
    assert sched.timesteps.tolist() == expected


def test_unipc_uses_a1111s_time_uniform_points():
    from generation.pipelines import build_scheduler

    sched = build_scheduler("UniPC", SCHEDULER_SDXL)
    sched.set_timesteps(20)
    # uni_pc.sample(skip_type="time_uniform"): t = linspace(1, 1/1000, n + 1); model time (t - 1/1000) * 1000
    t = np.linspace(1.0, 1 / 1000, 21)
    np.testing.assert_allclose(sched.timesteps.numpy(), ((t - 1 / 1000) * 1000)[:-1], atol=1e-3)
    assert sched.config.solver_type == "bh1" and sched.config.solver_order == 3 and sched.config.lower_order_final
    # it stops at the noise level of timestep 0, not at 0 (A1111's UniPC does not denoise to zero)
    assert float(sched.sigmas[-1]) == pytest.approx(ref_table(False)[0], rel=1e-3)


def test_lcm_uses_a1111s_50_level_grid():
    from generation.pipelines import build_scheduler

    sched = build_scheduler("LCM", SCHEDULER_SDXL)
    sched.set_timesteps(4)
    ac = ref_alphas_cumprod(False)
    grid_t = np.arange(50) * 20 + 19  # LCMCompVisDenoiser: timesteps 19, 39, ..., 999
    grid = np.sqrt((1 - ac[grid_t]) / ac[grid_t])
    ref = np.append(ref_t_to_sigma(grid, np.linspace(49, 0, 4)), 0.0)  # its get_sigmas(n)
    np.testing.assert_allclose(sched.sigmas.numpy(), ref, rtol=1e-4)
    nearest = [int(grid_t[np.abs(np.log(s) - np.log(grid)).argmin()]) for s in ref[:-1]]  # its sigma_to_t
    assert sched.timesteps.tolist() == nearest == [999, 679, 339, 19]


# -- the table: defaults, names, refusals ------------------------------------------------------------------------


@pytest.mark.parametrize("given, canonical", [
    (("DPM++ 2M", "Automatic"), ("DPM++ 2M", "Automatic")),
    (("DPM++ 2M", "Karras"), ("DPM++ 2M", "Automatic")),  # A1111: DPM++ 2M + Automatic is Karras
    (("DPM++ 2M Karras", "Automatic"), ("DPM++ 2M", "Automatic")),
    (("DPM++ SDE Karras", "Automatic"), ("DPM++ SDE", "Automatic")),
    (("DPM++ 2M SDE Karras", "Automatic"), ("DPM++ 2M SDE", "Karras")),  # its default is Exponential
    (("DPM++ 2M SDE", "exponential"), ("DPM++ 2M SDE", "Automatic")),
    (("Euler a", "Uniform"), ("Euler a", "Automatic")),
    (("euler a", "karras"), ("Euler a", "Karras")),
    (("k_dpmpp_2m", "sgm_uniform"), ("DPM++ 2M", "SGM Uniform")),
    (("DPM++ 2M SGM Uniform", "Automatic"), ("DPM++ 2M", "SGM Uniform")),
    (("DPM++ 2M SDE Heun", "Beta"), ("DPM++ 2M SDE Heun", "Beta")),
])
def test_sampler_and_schedule_type_resolve_to_one_canonical_pair(given, canonical):
    assert resolve_sampler(*given) == canonical


@pytest.mark.parametrize("given, message", [
    (("Euler z", "Automatic"), "unknown sampler 'Euler z'"),
    (("Euler", "Karras Exponential"), "unknown schedule type 'Karras Exponential'"),
    (("Euler", "Align Your Steps"), "schedule type 'Align Your Steps' is not supported"),
    (("DDIM", "Karras"), "DDIM uses its own timesteps"),
    (("DPM++ 2M Karras", "Exponential"), "names schedule type Karras, but schedule type Exponential"),
    (("", "Automatic"), "no sampler given"),
])
def test_unknown_or_contradictory_names_are_refused_in_one_line(given, message):
    with pytest.raises(GenerationError, match=message) as info:
        resolve_sampler(*given)
    assert "\n" not in str(info.value)


def test_the_table_has_the_samplers_issue_11_asks_for_with_a1111s_defaults():
    from generation.pipelines import effective_schedule

    for name in ("DPM++ 2M SDE", "DPM++ SDE", "DPM++ 3M SDE", "Heun", "LMS", "DPM2", "DPM2 a", "DDIM", "UniPC", "LCM"):
        assert name in SAMPLERS
    defaults = {name: effective_schedule(name, "Automatic") for name in SAMPLERS}
    assert defaults["DPM++ 2M"] == "karras" and defaults["DPM++ SDE"] == "karras"
    assert defaults["DPM++ 2M SDE"] == defaults["DPM++ 3M SDE"] == "exponential"
    assert defaults["Euler a"] == defaults["Euler"] == defaults["LMS"] == defaults["Heun"] == "uniform"


def test_the_table_imports_without_torch():
    code = (
        "import sys; from generation.pipelines import SAMPLERS, SCHEDULE_TYPES, resolve_sampler, sampler_names, "
        "schedule_type_names, parse_lora_tags, hires_steps, validate_request, GenerationRequest;"
        "from generation.pipelines import sigmas; sigmas.schedule_sigmas('karras', 28, "
        "sigmas.SigmaTable.from_alphas_cumprod(sigmas.train_alphas_cumprod()));"
        "resolve_sampler('DPM++ 2M Karras'); validate_request(GenerationRequest('x', sampler='DPM++ SDE'));"
        "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'huggingface_hub') if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
