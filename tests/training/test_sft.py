"""The supervised LoRA and kohya's knobs, each against its formula written here: noise offset, input
perturbation, min-SNR (eps and v), debiased estimation, the v-pred scale, LR schedulers, gradient checkpointing,
mixed precision, cached and uncached latents and text embeddings, text encoder LoRA."""

import math

import pytest
import torch
import torch.nn.functional as F

from .conftest import Events, parent, paths, small


def build(tiny_models, dataset, config, kind="eps", cache_dir=None):
    from training.trainers.dataset import read_dataset
    from training.trainers.loop import make_accelerator
    from training.trainers.parent import load_parent
    from training.trainers.sft import SftMethod

    accelerator = make_accelerator(config)
    method = SftMethod(config, load_parent(parent(tiny_models, kind)), read_dataset(dataset), accelerator,
                       cache_dir=cache_dir)
    return method, accelerator


def perturb(modules, seed=0, std=0.02):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in modules:
            for name, p in m.named_parameters():
                if "lora_B" in name:
                    p.copy_(torch.randn(p.shape, generator=g) * std)


def gens(n, seed=7):
    return [torch.Generator().manual_seed(seed + i) for i in range(n)]


def test_noise_offset_and_input_perturbation_follow_kohya(tiny_models, datasets):
    config = small(method="sft", noise_offset=0.1, ip_noise_gamma=0.2)
    method, _ = build(tiny_models, datasets["pairs"], config)
    latents, noise = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    t = torch.tensor([100, 800])
    target_noise, noisy = method.noise_and_input(gens(2), latents, noise, t)
    g = gens(2)  # the same draws, in kohya's order: offset (B, C, 1, 1), then the perturbation
    offset = torch.stack([torch.randn((4, 1, 1), generator=x) for x in g])
    perturbation = torch.stack([torch.randn((4, 8, 8), generator=x) for x in g])
    expected_noise = noise + 0.1 * offset
    ac = method.parent.noise_scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
    expected_input = ac.sqrt() * latents + (1 - ac).sqrt() * (expected_noise + 0.2 * perturbation)
    assert torch.allclose(target_noise, expected_noise)  # the target keeps the unperturbed noise
    assert torch.allclose(noisy, expected_input, atol=1e-6)


@pytest.mark.parametrize("kind, knobs", [
    ("eps", dict(min_snr_gamma=5.0)),
    ("eps", dict(debiased_estimation_loss=True)),
    ("v", dict(min_snr_gamma=5.0, scale_v_pred_loss_like_noise_pred=True)),
    ("v", dict(debiased_estimation_loss=True)),
])
def test_loss_is_the_weighted_mse_kohya_writes(tiny_models, datasets, kind, knobs):
    config = small(method="sft", **knobs)
    method, accelerator = build(tiny_models, datasets["pairs"], config, kind)
    perturb([method.parent.unet])
    loss, _ = method.loss([method.parent.unet], step=0, micro=0, accelerator=accelerator)
    pos = method.positions(0, 0)
    items = [method.examples[method.order[k]] for k in pos]
    keys = [(r, j) for r, j, _ in items]
    g, t, noise = method.draws("sft", pos)
    latents = method.store.latents(keys, g)
    sched = method.parent.noise_scheduler
    noisy = sched.add_noise(latents, noise, t)
    target = sched.get_velocity(latents, noise, t) if kind == "v" else noise
    embeds, pooled = method.store.embeds([r for r, _, _ in items])
    cond = {"time_ids": method.store.time_ids(keys), "text_embeds": pooled}
    with torch.no_grad():
        pred = method.parent.unet(noisy, t, embeds, added_cond_kwargs=cond).sample
    mse = F.mse_loss(pred, target, reduction="none").mean(dim=(1, 2, 3))
    ac = sched.alphas_cumprod[t].double()
    snr = ac / (1 - ac)
    w = torch.ones_like(snr)
    if knobs.get("min_snr_gamma"):
        gamma = torch.full_like(snr, 5.0)
        w = w * (torch.minimum(snr, gamma) / (snr + 1 if kind == "v" else snr))
    if knobs.get("scale_v_pred_loss_like_noise_pred"):
        s = torch.clamp(snr, max=1000.0)
        w = w * s / (s + 1)
    if knobs.get("debiased_estimation_loss"):
        s = torch.clamp(snr, max=1000.0)
        w = w * (1 / (s + 1) if kind == "v" else 1 / s.sqrt())
    weights = torch.tensor([wt for _, _, wt in items], dtype=torch.float64)
    expected = (mse.double() * w * weights).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("scheduler, extra", [
    ("cosine_with_restarts", dict(lr_warmup_steps=2, lr_scheduler_num_cycles=2)),
    ("constant_with_warmup", dict(lr_warmup_steps=3)),
])
def test_lr_schedules_follow_their_formulas_step_by_step(tiny_models, datasets, tmp_path, scheduler, extra):
    from training.trainers.run import train_lora

    steps, base = 8, 1e-3
    config = small(method="sft", lr_scheduler=scheduler, max_train_steps=steps, train_batch_size=1,
                   checkpointing_steps=100, learning_rate=base, **extra)
    events = Events()
    train_lora(config, parent(tiny_models), paths(tmp_path, datasets["pairs"]), on_progress=events)
    lrs = [e["lr"] for e in events.of("step")]
    warm = extra["lr_warmup_steps"]

    def expected(s):  # the LR the optimizer used at step s (0-based)
        if s < warm:
            return base * s / warm
        if scheduler == "constant_with_warmup":
            return base
        progress = (s - warm) / (steps - warm)
        return base * 0.5 * (1 + math.cos(math.pi * ((extra["lr_scheduler_num_cycles"] * progress) % 1.0)))

    assert lrs == pytest.approx([expected(s) for s in range(steps)], rel=1e-6, abs=1e-12)  # 7 digits are reported


def test_gradient_checkpointing_gives_the_same_gradients(tiny_models, datasets):
    grads = []
    for checkpointing in (False, True):
        method, accelerator = build(tiny_models, datasets["pairs"], small(method="sft", gradient_checkpointing=checkpointing))
        perturb([method.parent.unet])
        method.parent.unet.train()
        loss, _ = method.loss([method.parent.unet], step=0, micro=0, accelerator=accelerator)
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in method.parent.unet.named_parameters() if p.requires_grad})
        assert method.parent.unet.is_gradient_checkpointing == checkpointing
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-7), name


def test_bf16_mixed_precision_keeps_lora_in_float32_and_trains(tiny_models, datasets, tmp_path):
    from training.trainers.run import train_lora

    events = Events()
    train_lora(small(method="sft", mixed_precision="bf16", max_train_steps=2), parent(tiny_models),
               paths(tmp_path, datasets["pairs"]), on_progress=events)
    assert all(math.isfinite(e["loss"]) for e in events.of("step"))
    method, _ = build(tiny_models, datasets["pairs"], small(method="sft", mixed_precision="bf16"))
    unet = method.parent.unet
    assert {p.dtype for n, p in unet.named_parameters() if p.requires_grad} == {torch.float32}
    assert {p.dtype for n, p in unet.named_parameters() if not p.requires_grad} == {torch.bfloat16}


def test_cached_and_live_text_embeddings_are_the_same(tiny_models, datasets):
    cached, _ = build(tiny_models, datasets["mixed"], small(method="sft"))
    live, _ = build(tiny_models, datasets["mixed"], small(method="sft", cache_text_encoder_outputs=False))
    rows = list(range(len(cached.dataset)))
    a, pa = cached.store.embeds(rows)
    with torch.no_grad():
        b, pb = live.store.embeds(rows)
    assert a.shape[1] == 154  # the BREAK caption needs two chunks: every caption is padded to two
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(pa, pb, atol=1e-5)


def test_cached_latents_are_one_posterior_sample_per_image_the_same_every_build(tiny_models, datasets, tmp_path,
                                                                              monkeypatch):
    one, _ = build(tiny_models, datasets["pairs"], small(method="sft"), cache_dir=tmp_path)
    assert len(list(tmp_path.glob("latents-*.safetensors"))) == 1
    import training.trainers.data as data

    def no_vae(*args, **kwargs):
        raise AssertionError("the VAE ran although the latents were cached on disk")

    monkeypatch.setattr(data, "encode_latents", no_vae)
    two, _ = build(tiny_models, datasets["pairs"], small(method="sft"), cache_dir=tmp_path)  # as a resumed run
    keys = [(r, j) for r, j, _ in one.examples]
    assert torch.equal(one.store.latents(keys, []), two.store.latents(keys, []))
    monkeypatch.undo()
    live, _ = build(tiny_models, datasets["pairs"], small(method="sft", cache_latents=False))
    fresh = live.store.latents(keys[:2], gens(2, seed=1))
    assert not torch.equal(fresh, one.store.latents(keys[:2], []))  # a new posterior sample each use


def test_text_encoder_lora_trains_and_is_exported_as_te1_te2(tiny_models, datasets, tmp_path):
    from safetensors.torch import load_file

    from training.trainers.run import train_lora

    config = small(method="sft", network_train_unet_only=False, cache_text_encoder_outputs=False, max_train_steps=2,
                   text_encoder_lr=5e-4)
    result = train_lora(config, parent(tiny_models), paths(tmp_path, datasets["pairs"]), on_progress=Events())
    tensors = load_file(result.lora_file)
    prefixes = {k.split("_")[1] for k in tensors}
    assert prefixes == {"unet", "te1", "te2"}
    for prefix in ("lora_te1_", "lora_te2_"):
        ups = [v for k, v in tensors.items() if k.startswith(prefix) and k.endswith("lora_up.weight")]
        assert ups and any(float(u.abs().max()) > 0 for u in ups)  # zero-initialised up weights moved
