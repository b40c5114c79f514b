"""Diffusion-DPO LoRA for SDXL (Wallace et al. 2023), matching the diffusers research example
(examples/research_projects/diffusion_dpo/train_diffusion_dpo_sdxl.py):

* the preferred and the rejected latent get the same noise and the same timestep;
* the per-image MSE of the LoRA model and of the reference, which is the same UNet with its adapters disabled;
* loss = -log sigmoid(-beta/2 ((e_w - e_l) - (r_w - r_l))), beta = ``beta_dpo`` (5000 for SD-XL in the paper);
  implicit accuracy = share of pairs with a positive inside term (a zero counts half);
* SDXL conditioning: both text encoders' hidden states, the second one's pooled embedding, the added time ids;
* v-prediction parents: the v target on the zero-terminal-SNR schedule, each per-image MSE times a_t^2 =
  SNR/(SNR+1), which makes it the epsilon-space MSE of the same prediction (derivation in
  ``losses.v_to_eps_scale``), so beta means what it means for epsilon models.

Differences from the example, on purpose: ties are never counted as wins (``dataset.pairs_for``); a row's poll
weight multiplies its term (1 for duels, so duels give the example's loss exactly); with ``kto_weight`` > 0,
both-bad rows add a Diffusion-KTO-style term (``losses.kto_undesirable_loss``) on their own batch of images.
"""

from __future__ import annotations

import torch

from .data import Order
from .errors import TrainingError
from .lora_method import LoraMethod
from .losses import dpo_loss, kto_undesirable_loss, per_sample_mse, v_to_eps_scale
from .parent import adapters_disabled


def dpo_terms(model, reference, latents_w, latents_l, noise, timesteps, cond, *, noise_scheduler, v_prediction: bool):
    """Per-pair (e_w, e_l, r_w, r_l): the MSEs of the model and of the reference (adapters disabled on
    ``reference``, which is the unwrapped ``model``) on the two latents noised with the same noise and timestep."""
    latents = torch.cat([latents_w, latents_l])
    noise2, t2 = noise.repeat(2, 1, 1, 1), timesteps.repeat(2)
    noisy = noise_scheduler.add_noise(latents, noise2, t2)
    target = noise_scheduler.get_velocity(latents, noise2, t2) if v_prediction else noise2
    cond2 = doubled(cond)
    dtype = next(reference.parameters()).dtype
    mse = per_sample_mse(model(noisy.to(dtype), t2, **cond2).sample, target)
    with torch.no_grad(), adapters_disabled(reference):
        ref = per_sample_mse(reference(noisy.to(dtype), t2, **cond2).sample, target)
    if v_prediction:
        scale = v_to_eps_scale(noise_scheduler, t2)
        mse, ref = mse * scale, ref * scale
    e_w, e_l = mse.chunk(2)
    r_w, r_l = ref.chunk(2)
    return e_w, e_l, r_w, r_l


def doubled(cond: dict) -> dict:
    extra = cond["added_cond_kwargs"]
    return dict(encoder_hidden_states=cond["encoder_hidden_states"].repeat(2, 1, 1),
                added_cond_kwargs={"time_ids": extra["time_ids"].repeat(2, 1),
                                   "text_embeds": extra["text_embeds"].repeat(2, 1)})


def denoise_mse(model, latents, noise, timesteps, cond, *, noise_scheduler, v_prediction: bool):
    """Per-image MSE (epsilon space for v: times a_t^2) of ``model`` on ``latents`` noised at ``timesteps``."""
    noisy = noise_scheduler.add_noise(latents, noise, timesteps)
    target = noise_scheduler.get_velocity(latents, noise, timesteps) if v_prediction else noise
    dtype = next(model.parameters()).dtype if isinstance(model, torch.nn.Module) else latents.dtype
    mse = per_sample_mse(model(noisy.to(dtype), timesteps, **cond).sample, target)
    return mse * v_to_eps_scale(noise_scheduler, timesteps) if v_prediction else mse


class DpoMethod(LoraMethod):
    name = "dpo"

    def __init__(self, config, parent, dataset, accelerator, *, cache_dir=None):
        super().__init__(config, parent, dataset, accelerator, cache_dir=cache_dir)
        self.pairs = dataset.pairs_for("dpo")
        if not self.pairs:
            raise TrainingError("the dataset has no preference pairs (DPO does not use tie or both-bad rows)")
        self.order = Order(config.seed, len(self.pairs))
        self.bad = dataset.undesirable_for() if config.kto_weight > 0 else []
        if config.kto_weight > 0 and not self.bad:
            raise TrainingError("kto_weight is set but the dataset has no both-bad rows")
        self.bad_order = Order(config.seed, len(self.bad), "kto-epoch") if self.bad else None
        keys = [(p.row, j) for p in self.pairs for j in (0, 1)] + [(r, j) for r, j, _ in self.bad]
        self.store.warm(keys, [p.row for p in self.pairs] + [r for r, _, _ in self.bad])
        self.offload_frozen()

    def loss(self, wrapped, step: int, micro: int, accelerator):
        pos = self.positions(step, micro)
        pairs = [self.pairs[self.order[k]] for k in pos]
        gens, t, noise = self.draws("dpo", pos)
        win = [(p.row, p.first) for p in pairs]
        lose = [(p.row, 1 - p.first) for p in pairs]
        latents = self.store.latents(win + lose, gens + gens).to(self.device)
        weights = torch.tensor([p.weight for p in pairs], device=self.device)
        reference = self.unwrapped(accelerator, wrapped)
        dtype = next(reference.parameters()).dtype
        with accelerator.autocast():
            cond = self.conditioning([p.row for p in pairs], win, dtype)
            e_w, e_l, r_w, r_l = dpo_terms(wrapped[0], reference, *latents.chunk(2), noise, t, cond,
                                           noise_scheduler=self.parent.noise_scheduler,
                                           v_prediction=self.parent.v_prediction)
            loss, inside, acc = dpo_loss(e_w, e_l, r_w, r_l, beta=self.config.beta_dpo, weights=weights)
            metrics = {"dpo_loss": loss.detach(), "implicit_acc": acc.detach(),
                       "model_mse": 0.5 * (e_w.mean() + e_l.mean()).detach(), "ref_mse": 0.5 * (r_w.mean() + r_l.mean()),
                       "reward_margin": (inside / self.config.beta_dpo).mean().detach()}
            if self.bad:
                kto = self._kto(wrapped, reference, pos, dtype)
                loss = loss + self.config.kto_weight * kto
                metrics["kto_loss"] = kto.detach()
        return loss, metrics

    def _kto(self, wrapped, reference, pos, dtype):
        items = [self.bad[self.bad_order[k]] for k in pos]
        gens, t, noise = self.draws("kto", pos)
        keys = [(r, j) for r, j, _ in items]
        latents = self.store.latents(keys, gens).to(self.device)
        cond = self.conditioning([r for r, _, _ in items], keys, dtype)
        kw = dict(noise_scheduler=self.parent.noise_scheduler, v_prediction=self.parent.v_prediction)
        model_mse = denoise_mse(wrapped[0], latents, noise, t, cond, **kw)
        with torch.no_grad(), adapters_disabled(reference):
            ref_mse = denoise_mse(reference, latents, noise, t, cond, **kw)
        weights = torch.tensor([w for _, _, w in items], device=self.device)
        return kto_undesirable_loss(model_mse, ref_mse, beta=self.config.beta_dpo, weights=weights)
