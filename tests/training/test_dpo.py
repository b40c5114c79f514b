"""Diffusion-DPO on the tiny SDXL models (eps and v-prediction): our step's loss against the diffusers research
example's step written out here, on the same UNet, batch, noise and timesteps."""

import math

import pytest
import torch
import torch.nn.functional as F

from training.trainers.errors import TrainingError

from .conftest import parent, small


def build(tiny_models, dataset, config, kind="eps"):
    from training.trainers.dataset import read_dataset
    from training.trainers.dpo import DpoMethod
    from training.trainers.loop import make_accelerator
    from training.trainers.parent import load_parent

    accelerator = make_accelerator(config)
    method = DpoMethod(config, load_parent(parent(tiny_models, kind)), read_dataset(dataset), accelerator)
    return method, accelerator


def perturb_lora(method, seed=0, std=0.02):
    from training.trainers.parent import lora_parameters

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in lora_parameters(method.parent.unet).items():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * std)


def example_step_loss(unet, latents, noise_w, timesteps, prompt_embeds, pooled, add_time_ids, scheduler, beta,
                      v_scale):
    """train_diffusion_dpo_sdxl.py's step, from latents on: the same noise and timestep for both halves."""
    noise = noise_w.repeat(2, 1, 1, 1)
    timesteps = timesteps.repeat(2)
    noisy_model_input = scheduler.add_noise(latents, noise, timesteps)
    prompt_embeds, pooled, add_time_ids = prompt_embeds.repeat(2, 1, 1), pooled.repeat(2, 1), add_time_ids.repeat(2, 1)
    cond = {"time_ids": add_time_ids, "text_embeds": pooled}
    model_pred = unet(noisy_model_input, timesteps, prompt_embeds, added_cond_kwargs=cond).sample
    if scheduler.config.prediction_type == "epsilon":
        target = noise
    else:
        target = scheduler.get_velocity(latents, noise, timesteps)
    model_losses = F.mse_loss(model_pred.float(), target.float(), reduction="none")
    model_losses = model_losses.mean(dim=list(range(1, len(model_losses.shape))))
    unet.disable_adapters()
    with torch.no_grad():
        ref_preds = unet(noisy_model_input, timesteps, prompt_embeds, added_cond_kwargs=cond).sample
        ref_loss = F.mse_loss(ref_preds.float(), target.float(), reduction="none")
        ref_loss = ref_loss.mean(dim=list(range(1, len(ref_loss.shape))))
    unet.enable_adapters()
    if v_scale:  # the v-pred scaling, written from its definition: SNR / (SNR + 1)
        ac = scheduler.alphas_cumprod[timesteps].double()
        snr = ac / (1 - ac)
        scale = (snr / (snr + 1)).float()
        model_losses, ref_loss = model_losses * scale, ref_loss * scale
    model_losses_w, model_losses_l = model_losses.chunk(2)
    ref_losses_w, ref_losses_l = ref_loss.chunk(2)
    inside_term = -0.5 * beta * ((model_losses_w - model_losses_l) - (ref_losses_w - ref_losses_l))
    loss = -1 * F.logsigmoid(inside_term).mean()
    implicit_acc = (inside_term > 0).sum().float() / inside_term.size(0)
    implicit_acc += 0.5 * (inside_term == 0).sum().float() / inside_term.size(0)
    return loss, implicit_acc


@pytest.mark.parametrize("kind", ["eps", "v"])
def test_step_loss_equals_the_diffusers_example_on_the_same_batch(tiny_models, datasets, kind):
    config = small(beta_dpo=500.0)
    method, accelerator = build(tiny_models, datasets["pairs"], config, kind)
    assert method.parent.v_prediction == (kind == "v")
    perturb_lora(method, std=0.1)  # the pre-trained tiny model: 0.02 moved this loss by only ~1e-4
    wrapped = [method.parent.unet]
    loss, metrics = method.loss(wrapped, step=1, micro=0, accelerator=accelerator)

    # the same inputs, gathered independently of the loss code: winner / loser latents, the draws, conditioning
    pos = method.positions(1, 0)
    pairs = [method.pairs[method.order[k]] for k in pos]
    gens, t, noise = method.draws("dpo", pos)
    latents = torch.cat([method.store.latents([(p.row, p.first) for p in pairs], gens),
                         method.store.latents([(p.row, 1 - p.first) for p in pairs], gens)])
    embeds, pooled = method.store.embeds([p.row for p in pairs])
    time_ids = method.store.time_ids([(p.row, p.first) for p in pairs])
    expected, expected_acc = example_step_loss(method.parent.unet, latents, noise, t, embeds, pooled, time_ids,
                                               method.parent.noise_scheduler, 500.0, v_scale=kind == "v")
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
    assert float(metrics["implicit_acc"]) == pytest.approx(float(expected_acc))
    assert loss.item() != pytest.approx(math.log(2), abs=1e-3)  # the perturbed LoRA differs from the reference
    if kind == "v":
        assert method.parent.noise_scheduler.config.rescale_betas_zero_snr


def test_an_untrained_lora_is_the_reference_loss_log_2_accuracy_one_half(tiny_models, datasets):
    method, accelerator = build(tiny_models, datasets["pairs"], small())
    loss, metrics = method.loss([method.parent.unet], step=0, micro=0, accelerator=accelerator)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-6)
    assert float(metrics["implicit_acc"]) == 0.5
    assert float(metrics["model_mse"]) == pytest.approx(float(metrics["ref_mse"]), abs=1e-6)


def test_the_reference_is_the_same_unet_with_adapters_disabled(tiny_models, datasets):
    from training.trainers.parent import adapters_disabled

    method, _ = build(tiny_models, datasets["pairs"], small())
    unet = method.parent.unet
    x = torch.randn(1, 4, 8, 8)
    cond = dict(encoder_hidden_states=torch.randn(1, 77, 96),
                added_cond_kwargs={"time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]]), "text_embeds": torch.randn(1, 64)})
    with torch.no_grad():
        base = unet(x, torch.tensor([500]), **cond).sample
        perturb_lora(method)
        adapted = unet(x, torch.tensor([500]), **cond).sample
        with adapters_disabled(unet):
            disabled = unet(x, torch.tensor([500]), **cond).sample
    assert torch.equal(base, disabled) and not torch.allclose(base, adapted)
    assert all(p.requires_grad for n, p in unet.named_parameters() if "lora_" in n)  # re-enabled for training


def test_a_dataset_of_only_ties_and_both_bad_gives_dpo_nothing(tiny_models, tmp_path):
    from training.trainers.synthetic import synthetic_rows
    from training.trainers.dataset import write_dataset

    rows = [r for r in synthetic_rows(1, ties=2, both_bad=2, seed=5) if r.kind != "pair"]
    write_dataset(rows, tmp_path / "d.parquet", vote_log_hash="h")
    with pytest.raises(TrainingError, match="no preference pairs"):
        build(tiny_models, tmp_path / "d.parquet", small())


def test_kto_term_on_both_bad_rows(tiny_models, datasets):
    config = small(kto_weight=0.5)
    method, accelerator = build(tiny_models, datasets["mixed"], config)
    assert len(method.bad) == 6  # 3 both-bad rows, two undesirable images each
    perturb_lora(method, seed=3)
    loss, metrics = method.loss([method.parent.unet], step=0, micro=0, accelerator=accelerator)
    assert loss.item() == pytest.approx(float(metrics["dpo_loss"]) + 0.5 * float(metrics["kto_loss"]), abs=1e-6)
    # the KTO term from its definition, on the same images, noise and timesteps
    pos = method.positions(0, 0)
    items = [method.bad[method.bad_order[k]] for k in pos]
    gens, t, noise = method.draws("kto", pos)
    latents = method.store.latents([(r, j) for r, j, _ in items], gens)
    embeds, pooled = method.store.embeds([r for r, _, _ in items])
    cond = {"time_ids": method.store.time_ids([(r, j) for r, j, _ in items]), "text_embeds": pooled}
    sched, unet = method.parent.noise_scheduler, method.parent.unet
    noisy = sched.add_noise(latents, noise, t)
    with torch.no_grad():
        model = ((unet(noisy, t, embeds, added_cond_kwargs=cond).sample - noise) ** 2).mean(dim=(1, 2, 3))
        unet.disable_adapters()
        ref = ((unet(noisy, t, embeds, added_cond_kwargs=cond).sample - noise) ** 2).mean(dim=(1, 2, 3))
        unet.enable_adapters()
    expected = torch.sigmoid(0.5 * config.beta_dpo * (ref - model)).mean()
    assert float(metrics["kto_loss"]) == pytest.approx(float(expected), abs=1e-5)


def test_kto_weight_without_both_bad_rows_is_refused(tiny_models, datasets):
    with pytest.raises(TrainingError, match="kto_weight is set but the dataset has no both-bad rows"):
        build(tiny_models, datasets["pairs"], small(kto_weight=1.0))
