"""Supervised "aesthetic" LoRA on the preferred images, with kohya sd-scripts' knobs and their formulas
(train_network.py ``post_process_loss`` and library/train_util.py ``get_noise_noisy_latents_and_timesteps``):

* noise_offset: noise += noise_offset * N(0, 1) of shape (B, C, 1, 1);
* ip_noise_gamma (input perturbation, Ning et al. 2023): the UNet input is noised with noise + gamma * N(0, 1)
  while the target stays the unperturbed noise (or its velocity);
* min_snr_gamma: loss *= min(SNR, gamma) / SNR (eps) or min(SNR, gamma) / (SNR + 1) (v);
* scale_v_pred_loss_like_noise_pred (v only): loss *= SNR / (SNR + 1), SNR clamped at 1000;
* debiased_estimation_loss: loss *= 1 / sqrt(SNR) (eps) or 1 / (SNR + 1) (v), SNR clamped at 1000;
  applied in kohya's order (min-SNR, v scale, debiased), then the batch mean weighted by each image's weight.
"""

from __future__ import annotations

import torch

from .data import Order
from .errors import TrainingError
from .lora_method import LoraMethod
from .losses import all_snr, debiased_weight, kohya_snr_scale, min_snr_weight, per_sample_mse


def sft_loss_weights(snr_t, config, *, v_prediction: bool):
    """The product of the enabled kohya weights for each sample's SNR (1 when none is on)."""
    w = torch.ones_like(snr_t, dtype=torch.float32)
    if config.min_snr_gamma:
        w = w * min_snr_weight(snr_t, config.min_snr_gamma, v_prediction=v_prediction)
    if config.scale_v_pred_loss_like_noise_pred:
        w = w * kohya_snr_scale(snr_t)
    if config.debiased_estimation_loss:
        w = w * debiased_weight(snr_t, v_prediction=v_prediction)
    return w


class SftMethod(LoraMethod):
    name = "sft"

    def __init__(self, config, parent, dataset, accelerator, *, cache_dir=None):
        super().__init__(config, parent, dataset, accelerator, cache_dir=cache_dir)
        self.examples = dataset.preferred_images()
        if not self.examples:
            raise TrainingError("the dataset has no preferred images (no pair rows)")
        self.order = Order(config.seed, len(self.examples))
        self.snr = all_snr(parent.noise_scheduler).to(self.device)
        self.store.warm([(r, j) for r, j, _ in self.examples], [r for r, _, _ in self.examples])
        self.offload_frozen()

    def noise_and_input(self, gens, latents, noise, t):
        """(noise the target uses, noisy latents the UNet sees) with noise offset and input perturbation."""
        cfg = self.config
        if cfg.noise_offset:
            offset = torch.stack([torch.randn((noise.shape[1], 1, 1), generator=g) for g in gens]).to(noise.device)
            noise = noise + cfg.noise_offset * offset
        model_noise = noise
        if cfg.ip_noise_gamma:
            perturb = torch.stack([torch.randn(noise.shape[1:], generator=g) for g in gens]).to(noise.device)
            model_noise = noise + cfg.ip_noise_gamma * perturb
        return noise, self.parent.noise_scheduler.add_noise(latents, model_noise, t)

    def loss(self, wrapped, step: int, micro: int, accelerator):
        pos = self.positions(step, micro)
        items = [self.examples[self.order[k]] for k in pos]
        keys = [(r, j) for r, j, _ in items]
        gens, t, noise = self.draws("sft", pos)
        latents = self.store.latents(keys, gens).to(self.device)
        noise, noisy = self.noise_and_input(gens, latents, noise, t)
        sched = self.parent.noise_scheduler
        target = sched.get_velocity(latents, noise, t) if self.parent.v_prediction else noise
        unet = self.unwrapped(accelerator, wrapped)
        dtype = next(unet.parameters()).dtype
        with accelerator.autocast():
            cond = self.conditioning([r for r, _, _ in items], keys, dtype, wrapped)
            mse = per_sample_mse(wrapped[0](noisy.to(dtype), t, **cond).sample, target)
        w = sft_loss_weights(self.snr[t], self.config, v_prediction=self.parent.v_prediction)
        weights = torch.tensor([wt for _, _, wt in items], device=self.device)
        loss = (mse * w * weights).mean()
        return loss, {"mse": mse.mean().detach()}
