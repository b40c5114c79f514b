"""The loss arithmetic against formulas written here: SDXL's schedule and zero terminal SNR (Lin et al. 2023,
Algorithm 1), the v-to-epsilon factor, kohya's SNR weights, the diffusers DPO example's loss."""

import math

import pytest
import torch
import torch.nn.functional as F

from training.trainers import losses
from training.trainers.parent import training_noise_scheduler

SDXL_SCHEDULER = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}


def alphas_cumprod(zero_terminal: bool) -> torch.Tensor:
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    a_bar_sqrt = torch.cumprod(1 - betas, 0).sqrt()
    if zero_terminal:  # Lin et al. 2023, Algorithm 1
        a0, aT = a_bar_sqrt[0].clone(), a_bar_sqrt[-1].clone()
        a_bar_sqrt = (a_bar_sqrt - aT) * a0 / (a0 - aT)
    return a_bar_sqrt**2


@pytest.mark.parametrize("prediction_type", ["eps", "v"])
def test_training_schedule_is_sdxls_with_zero_terminal_snr_for_v(prediction_type):
    sched = training_noise_scheduler(SDXL_SCHEDULER, prediction_type)
    expected = alphas_cumprod(zero_terminal=prediction_type == "v")
    assert torch.allclose(sched.alphas_cumprod.double(), expected, rtol=1e-5, atol=1e-7)
    assert sched.config.prediction_type == ("v_prediction" if prediction_type == "v" else "epsilon")
    if prediction_type == "v":
        assert float(losses.all_snr(sched)[-1]) == 0.0  # pure noise at t = T


def test_scaled_v_mse_is_the_epsilon_mse_of_the_same_prediction():
    sched = training_noise_scheduler(SDXL_SCHEDULER, "v")
    g = torch.Generator().manual_seed(0)
    x0, eps, v_hat = (torch.randn(6, 4, 8, 8, generator=g) for _ in range(3))
    t = torch.tensor([0, 10, 250, 500, 900, 999])
    a = sched.alphas_cumprod[t].double().sqrt().view(-1, 1, 1, 1)
    s = (1 - a**2).sqrt()
    x_t = a * x0 + s * eps
    v = a * eps - s * x0
    eps_hat = s * x_t + a * v_hat  # the epsilon a v-prediction implies
    eps_mse = ((eps_hat - eps) ** 2).mean(dim=(1, 2, 3))
    v_mse = losses.per_sample_mse(v_hat, v).double()
    scale = losses.v_to_eps_scale(sched, t).double()
    snr = sched.alphas_cumprod[t].double() / (1 - sched.alphas_cumprod[t].double())
    assert torch.allclose(scale, snr / (snr + 1), rtol=1e-6)
    assert torch.allclose(v_mse * scale, eps_mse, rtol=1e-5)
    assert torch.allclose(sched.get_velocity(x0, eps, t).double(), v, atol=1e-5)


def test_kohya_snr_weights():
    snr = torch.tensor([0.0, 0.04, 1.0, 5.0, 30.0, 1175.0], dtype=torch.float64)
    gamma = 5.0
    nz = snr[1:]
    assert torch.allclose(losses.min_snr_weight(nz, gamma, v_prediction=False).double(),
                          torch.tensor([min(x, gamma) / x for x in nz.tolist()], dtype=torch.float64), rtol=1e-6)
    assert torch.allclose(losses.min_snr_weight(snr, gamma, v_prediction=True).double(),
                          torch.tensor([min(x, gamma) / (x + 1) for x in snr.tolist()], dtype=torch.float64), rtol=1e-6)
    clamped = [min(x, 1000.0) for x in snr.tolist()]
    assert torch.allclose(losses.kohya_snr_scale(snr).double(),
                          torch.tensor([c / (c + 1) for c in clamped], dtype=torch.float64), rtol=1e-6)
    assert torch.allclose(losses.debiased_weight(nz, v_prediction=False).double(),
                          torch.tensor([1 / math.sqrt(c) for c in clamped[1:]], dtype=torch.float64), rtol=1e-6)
    assert torch.allclose(losses.debiased_weight(snr, v_prediction=True).double(),
                          torch.tensor([1 / (c + 1) for c in clamped], dtype=torch.float64), rtol=1e-6)


def test_dpo_loss_is_the_diffusers_examples():
    g = torch.Generator().manual_seed(1)
    model_losses = torch.rand(8, generator=g)  # [w..., l...] as the example chunks them
    ref_loss = torch.rand(8, generator=g)
    beta = 5000.0
    # train_diffusion_dpo_sdxl.py, written out
    model_losses_w, model_losses_l = model_losses.chunk(2)
    ref_losses_w, ref_losses_l = ref_loss.chunk(2)
    inside_term = -0.5 * beta * ((model_losses_w - model_losses_l) - (ref_losses_w - ref_losses_l))
    expected = -1 * F.logsigmoid(inside_term).mean()
    expected_acc = (inside_term > 0).sum().float() / 4 + 0.5 * (inside_term == 0).sum().float() / 4
    loss, inside, acc = losses.dpo_loss(model_losses_w, model_losses_l, ref_losses_w, ref_losses_l, beta=beta)
    assert torch.allclose(loss, expected) and torch.allclose(acc, expected_acc)
    same = losses.dpo_loss(ref_losses_w, ref_losses_l, ref_losses_w, ref_losses_l, beta=beta)
    assert float(same[0]) == pytest.approx(math.log(2)) and float(same[2]) == 0.5  # the model is the reference
    weighted = losses.dpo_loss(model_losses_w, model_losses_l, ref_losses_w, ref_losses_l, beta=beta,
                               weights=torch.tensor([1.0, 1 / 3, 1 / 3, 1 / 3]))
    per = -F.logsigmoid(inside_term)
    assert torch.allclose(weighted[0], (per * torch.tensor([1.0, 1 / 3, 1 / 3, 1 / 3])).mean())


def test_kto_term_rises_when_the_model_denoises_a_bad_image_better_than_the_reference():
    beta = 5000.0
    ref = torch.tensor([1.0, 1.0, 1.0])
    model = torch.tensor([1.0, 1.0 - 1e-4, 1.0 + 1e-4])
    loss = losses.kto_undesirable_loss(model, ref, beta=beta)
    expected = torch.sigmoid(0.5 * beta * (ref - model)).mean()
    assert torch.allclose(loss, expected)
    per = [float(losses.kto_undesirable_loss(model[i:i + 1], ref[i:i + 1], beta=beta)) for i in range(3)]
    assert per[0] == pytest.approx(0.5) and per[1] > 0.5 > per[2]
