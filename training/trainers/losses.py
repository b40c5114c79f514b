"""Loss arithmetic shared by the trainers: SNR weights (kohya's knobs), the v-to-epsilon scale, Diffusion-DPO and
the Diffusion-KTO-style term. Tensors in, tensors out; torch is imported by the caller's tensors only.

Notation: the forward process is x_t = a_t x0 + s_t eps with a_t^2 = alphas_cumprod[t], s_t^2 = 1 - a_t^2, and
SNR(t) = a_t^2 / s_t^2. With zero terminal SNR (v-prediction parents) a_T = 0: SNR(T) = 0, pure noise.
"""

from __future__ import annotations

# kohya's get_snr_scale / apply_debiased_estimation clamp SNR at 1000 (SNR(0) is ~1175 for SDXL's schedule)
SNR_CLAMP = 1000.0


def all_snr(noise_scheduler):
    """SNR(t) for every training timestep, float64 (exactly 0 at a zero-terminal-SNR schedule's last step)."""
    import torch

    ac = noise_scheduler.alphas_cumprod.to(torch.float64)
    return ac / (1.0 - ac)


def per_sample_mse(pred, target):
    """Mean squared error of each sample (mean over all but the batch dimension), in float32."""
    err = (pred.float() - target.float()) ** 2
    return err.mean(dim=tuple(range(1, err.ndim)))


def v_to_eps_scale(noise_scheduler, timesteps):
    """a_t^2 = SNR/(SNR+1) for each timestep: multiply a v-prediction MSE by it to get the epsilon-space MSE.

    Derivation. v = a_t eps - s_t x0 (Salimans & Ho). Since a_t^2 + s_t^2 = 1, eps = s_t x_t + a_t v:
    s_t x_t + a_t v = s_t (a_t x0 + s_t eps) + a_t (a_t eps - s_t x0) = (s_t^2 + a_t^2) eps = eps. The model's
    v-hat implies eps-hat = s_t x_t + a_t v-hat, so eps-hat - eps = a_t (v-hat - v) and
    ||eps-hat - eps||^2 = a_t^2 ||v-hat - v||^2. And a_t^2 = SNR s_t^2 = SNR (1 - a_t^2) gives a_t^2 = SNR/(SNR+1).
    So the scaled v MSE *is* the epsilon MSE of the same prediction, and DPO's beta (tuned in epsilon space, 5000
    for SD-XL) keeps its meaning. kohya's scale_v_pred_loss_like_noise_pred is the same factor with SNR clamped
    at 1000 (a 1e-4 difference at t = 0 only); we use a_t^2 = alphas_cumprod[t] itself, exact and finite at t = T
    (where it is 0: at pure noise eps-hat = x_t exactly, whatever the model says).
    """
    import torch

    return noise_scheduler.alphas_cumprod.to(device=timesteps.device, dtype=torch.float64)[timesteps].float()


def min_snr_weight(snr_t, gamma: float, *, v_prediction: bool):
    """kohya ``apply_snr_weight`` (Hang et al. 2023): min(SNR, gamma)/SNR for eps, min(SNR, gamma)/(SNR+1) for v."""
    import torch

    clipped = torch.minimum(snr_t, torch.full_like(snr_t, gamma))
    return (clipped / (snr_t + 1.0) if v_prediction else clipped / snr_t).float()


def kohya_snr_scale(snr_t):
    """kohya ``get_snr_scale``: SNR/(SNR+1) with SNR clamped at 1000 (scale_v_pred_loss_like_noise_pred)."""
    import torch

    s = torch.minimum(snr_t, torch.full_like(snr_t, SNR_CLAMP))
    return (s / (s + 1.0)).float()


def debiased_weight(snr_t, *, v_prediction: bool):
    """kohya ``apply_debiased_estimation``: 1/sqrt(SNR) for eps, 1/(SNR+1) for v, SNR clamped at 1000."""
    import torch

    s = torch.minimum(snr_t, torch.full_like(snr_t, SNR_CLAMP))
    return (1.0 / (s + 1.0) if v_prediction else 1.0 / torch.sqrt(s)).float()


def dpo_loss(model_w, model_l, ref_w, ref_l, *, beta: float, weights=None):
    """Diffusion-DPO (Wallace et al. 2023; the diffusers research example's step), per-sample MSEs in.

    inside = -beta/2 * ((e_w - e_l) - (r_w - r_l)); loss = mean(-w log sigmoid(inside)); implicit accuracy counts
    inside > 0 as right and inside == 0 as half right (as the example does). Returns (loss, inside, accuracy).
    """
    import torch.nn.functional as F

    inside = -0.5 * beta * ((model_w - model_l) - (ref_w - ref_l))
    per_pair = -F.logsigmoid(inside)
    loss = (per_pair * weights).mean() if weights is not None else per_pair.mean()
    acc = (inside > 0).float().mean() + 0.5 * (inside == 0).float().mean()
    return loss, inside, acc


def kto_undesirable_loss(model_mse, ref_mse, *, beta: float, weights=None):
    """The Diffusion-KTO-style term for images voted "both bad" (Li et al. 2024, reference point z_ref = 0).

    The implicit reward of an image is r = beta/2 (ref MSE - model MSE), the same scale DPO's inside term uses
    (inside = r_w - r_l). KTO's loss for an undesirable example is 1 - sigmoid(z_ref - r) = sigmoid(r): it pushes
    the model to denoise that image worse than the reference, and saturates (bounded unlearning) once it does.
    """
    import torch

    reward = 0.5 * beta * (ref_mse - model_mse)
    per = torch.sigmoid(reward)
    return (per * weights).mean() if weights is not None else per.mean()
