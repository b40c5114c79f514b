"""Benchmarks of the LoRA trainers' step (``manage.py bench_training --method dpo|sft``), one JSON line each.

Each compares our step -- the real one, ``Loop``'s optimizer step through the method's data, caches and random
streams -- with a straight re-implementation, written here from the reference, of the same step on the same
UNet, LoRA, optimizer and batch:

* dpo: the diffusers research example's training step (examples/research_projects/diffusion_dpo/
  train_diffusion_dpo_sdxl.py): one noise tensor and one timestep per pair repeated for both halves, the UNet
  with adapters and with adapters disabled, F.mse_loss per image, -logsigmoid(-beta/2 (model_diff - ref_diff));
  for v-prediction the v target, and its per-image MSE times SNR/(SNR+1) (our documented deviation);
* sft: the plain supervised LoRA step (diffusers' train_text_to_image_lora_sdxl.py): MSE to the noise.

Both start from the same LoRA weights, set to random values so the LoRA model is not the reference (with the
zero-initialised up weights both DPO losses would be log 2 trivially). Loss equality is checked on the same batch
(our draws handed to the reference); timing alternates our step and the reference's, one each, after warm-up,
and reports the median over ``repeats`` rounds of each one's mean seconds per step. The reference steps read pre-stacked tensors, so the ratio includes
everything our step adds (cache lookups, per-example generators, stacking).
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .config import ParentModel, TrainConfig
from .errors import TrainingError


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reference_dpo_loss(unet, latents, noise, timesteps, prompt_embeds, pooled, time_ids, scheduler, beta):
    """The example's loss from VAE latents on; latents = [winners; losers], noise and timesteps per pair."""
    noise = noise.repeat(2, 1, 1, 1)
    timesteps = timesteps.repeat(2)
    noisy_model_input = scheduler.add_noise(latents, noise, timesteps)
    kwargs = {"time_ids": time_ids.repeat(2, 1), "text_embeds": pooled.repeat(2, 1)}
    prompt_embeds = prompt_embeds.repeat(2, 1, 1)
    model_pred = unet(noisy_model_input, timesteps, prompt_embeds, added_cond_kwargs=kwargs).sample
    v = scheduler.config.prediction_type == "v_prediction"
    target = scheduler.get_velocity(latents, noise, timesteps) if v else noise
    model_losses = F.mse_loss(model_pred.float(), target.float(), reduction="none")
    model_losses = model_losses.mean(dim=list(range(1, len(model_losses.shape))))
    unet.disable_adapters()
    with torch.no_grad():
        ref_preds = unet(noisy_model_input, timesteps, prompt_embeds, added_cond_kwargs=kwargs).sample
        ref_loss = F.mse_loss(ref_preds.float(), target.float(), reduction="none")
        ref_loss = ref_loss.mean(dim=list(range(1, len(ref_loss.shape))))
    unet.enable_adapters()
    if v:
        ac = scheduler.alphas_cumprod.to(timesteps.device)[timesteps].double()
        snr = ac / (1.0 - ac)
        scale = (snr / (snr + 1.0)).float()
        model_losses, ref_loss = model_losses * scale, ref_loss * scale
    model_losses_w, model_losses_l = model_losses.chunk(2)
    ref_losses_w, ref_losses_l = ref_loss.chunk(2)
    inside_term = -0.5 * beta * ((model_losses_w - model_losses_l) - (ref_losses_w - ref_losses_l))
    return -1 * F.logsigmoid(inside_term).mean()


def reference_sft_loss(unet, latents, noise, timesteps, prompt_embeds, pooled, time_ids, scheduler):
    noisy = scheduler.add_noise(latents, noise, timesteps)
    kwargs = {"time_ids": time_ids, "text_embeds": pooled}
    pred = unet(noisy, timesteps, prompt_embeds, added_cond_kwargs=kwargs).sample
    v = scheduler.config.prediction_type == "v_prediction"
    target = scheduler.get_velocity(latents, noise, timesteps) if v else noise
    return F.mse_loss(pred.float(), target.float(), reduction="mean")


def _batch(method, step: int):
    """The inputs our step draws at ``step``, for the reference: (latents, noise, t, embeds, pooled, time_ids)."""
    pos = method.positions(step, 0)
    gens, t, noise = method.draws(method.name, pos)
    if method.name == "dpo":
        pairs = [method.pairs[method.order[k]] for k in pos]
        win, lose = [(p.row, p.first) for p in pairs], [(p.row, 1 - p.first) for p in pairs]
        latents, rows, keys = method.store.latents(win + lose, gens + gens), [p.row for p in pairs], win
    else:
        items = [method.examples[method.order[k]] for k in pos]
        keys = [(r, j) for r, j, _ in items]
        latents, rows = method.store.latents(keys, gens), [r for r, _, _ in items]
    embeds, pooled = method.store.embeds(rows)
    dev = method.device
    return (latents.to(dev), noise, t, embeds.to(dev), pooled.to(dev), method.store.time_ids(keys).to(dev))


def _randomise_lora(method, seed: int) -> None:
    from .parent import lora_parameters

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in lora_parameters(method.parent.unet).items():
            if "lora_B" in name:
                p.copy_((torch.randn(p.shape, generator=g) * 0.02).to(p.device))


def bench(method_name: str, parent: ParentModel, *, steps: int = 10, repeats: int = 3, batch: int = 2,
          resolution: int = 64, pairs: int = 16, seed: int = 0, beta: float = 5000.0) -> dict:
    """Run the benchmark for ``method_name`` ("dpo" | "sft") on ``parent``; returns the JSON line's fields."""
    from .dataset import read_dataset
    from .dpo import DpoMethod
    from .loop import Loop, make_accelerator
    from .parent import load_parent
    from .sft import SftMethod
    from .synthetic import write_synthetic

    if method_name not in ("dpo", "sft"):
        raise TrainingError(f"no step benchmark for method {method_name!r}")
    config = TrainConfig(method=method_name, max_train_steps=10**6, train_batch_size=batch, resolution=resolution,
                         network_dim=4, network_alpha=4.0, learning_rate=1e-4, beta_dpo=beta, seed=seed,
                         checkpointing_steps=10**6)
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        data = write_synthetic(Path(tmp) / "data.parquet", pairs, seed=seed, size=resolution).path
        accelerator = make_accelerator(config)
        cls = DpoMethod if method_name == "dpo" else SftMethod
        method = cls(config, load_parent(parent), read_dataset(data), accelerator)
        _randomise_lora(method, seed)
        loop = Loop(method, config, accelerator, work_dir=Path(tmp) / "work", fingerprint={}, report=lambda e: None)
        unet, sched = loop.wrapped[0], method.parent.noise_scheduler
        ours = loop.method.loss(loop.wrapped, 0, 0, accelerator)[0].item()
        inputs = _batch(method, 0)
        with accelerator.autocast():
            if method_name == "dpo":
                theirs = reference_dpo_loss(unet, *inputs, sched, beta).item()
            else:
                theirs = reference_sft_loss(unet, *inputs, sched).item()
        timing = _time(loop, unet, sched, accelerator, inputs, method_name, beta, steps, repeats)
    ratio = timing["ours"] / timing["reference"]
    return {"method": method_name, "prediction_type": parent.prediction_type, "device": str(accelerator.device),
            "batch": batch, "resolution": resolution, "steps": steps, "repeats": repeats,
            "steps_per_s": round(1.0 / timing["ours"], 3), "s_per_step": round(timing["ours"], 4),
            "reference_s_per_step": round(timing["reference"], 4), "slowdown_ratio": round(ratio, 3),
            "loss": ours, "reference_loss": theirs, "loss_abs_diff": abs(ours - theirs),
            "loss_equal_1e-5": abs(ours - theirs) <= 1e-5, "within_10_percent": ratio <= 1.10,
            "peak_rss_mb": round(peak_rss_mb(), 1)}


def _time(loop, unet, sched, accelerator, inputs, method_name, beta, steps, repeats) -> dict:
    """Median over rounds of the mean seconds per optimizer step, ours and the reference's, after one warm-up each."""
    params = loop.trainable
    optimizer = loop.optimizer

    def reference_step():
        latents, _, t, embeds, pooled, time_ids = inputs
        bsz = t.shape[0]
        noise = torch.randn((bsz,) + tuple(latents.shape[1:]), device=latents.device)
        timesteps = torch.randint(0, sched.config.num_train_timesteps, (bsz,), device=latents.device)
        with accelerator.autocast():
            if method_name == "dpo":
                loss = reference_dpo_loss(unet, latents, noise, timesteps, embeds, pooled, time_ids, sched, beta)
            else:
                loss = reference_sft_loss(unet, latents, noise, timesteps, embeds, pooled, time_ids, sched)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad()

    def ours_step():
        loop._one_step()

    results = {"ours": [], "reference": []}
    ours_step(), reference_step()  # warm-up
    for _ in range(repeats):  # alternate single steps, so both see the same share of a busy machine's load
        spent = {"ours": 0.0, "reference": 0.0}
        for _ in range(steps):
            for name, fn in (("ours", ours_step), ("reference", reference_step)):
                start = time.perf_counter()
                fn()
                spent[name] += time.perf_counter() - start
        for name in results:
            results[name].append(spent[name] / steps)
    return {k: statistics.median(v) for k, v in results.items()}


def _mean_ci(values) -> list[float]:
    """[mean, low, high]: a 95% t-interval over ``values``."""
    import numpy as np
    from scipy import stats

    v = np.asarray(values, dtype=np.float64)
    half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("inf")
    return [float(v.mean()), float(v.mean()) - half, float(v.mean()) + half]


def _mse_gap(method, keys, rows, draws: int, seed: int) -> list[float]:
    """Per image: mean over ``draws`` fixed noise draws of (LoRA model MSE - reference MSE), epsilon space, x1e3."""
    from .data import stream_generator
    from .dpo import denoise_mse
    from .parent import adapters_disabled

    unet, sched = method.parent.unet, method.parent.noise_scheduler
    kw = dict(noise_scheduler=sched, v_prediction=method.parent.v_prediction)
    out = []
    with torch.no_grad():
        for key, row in zip(keys, rows):
            gens = [stream_generator(seed, f"eval:{key}", d) for d in range(draws)]
            t = torch.stack([torch.randint(0, 1000, (1,), generator=g)[0] for g in gens])
            noise = torch.stack([torch.randn(method.latent_shape, generator=g) for g in gens])
            latents = method.store.latents([key] * draws, gens)
            cond = method.conditioning([row] * draws, [key] * draws, torch.float32)
            model = denoise_mse(unet, latents, noise, t, cond, **kw)
            with adapters_disabled(unet):
                ref = denoise_mse(unet, latents, noise, t, cond, **kw)
            out.append(float((model - ref).mean()) * 1e3)
    return out


def kto_effect(parent: ParentModel, *, steps: int = 30, kto_weight: float = 1.0, seed: int = 0, draws: int = 8,
               resolution: int = 64) -> dict:
    """What the Diffusion-KTO-style term does: DPO runs with and without it from the same start on the same data
    (24 judged pairs, 8 both-bad rows of cold pictures), then the LoRA model's denoising MSE minus the
    reference's on the both-bad images and on the pairs' images (fixed noise draws), with 95% intervals over
    images. The term should raise the gap on both-bad images (the model unlearns them) and leave the pairs'."""
    from .dataset import read_dataset
    from .dpo import DpoMethod
    from .loop import Loop, make_accelerator
    from .parent import load_parent
    from .synthetic import write_synthetic

    out = {"measure": "kto", "steps": steps, "kto_weight": kto_weight, "seed": seed, "draws": draws}
    with tempfile.TemporaryDirectory(prefix="bench-kto-") as tmp:
        data = read_dataset(write_synthetic(Path(tmp) / "d.parquet", 24, both_bad=8, seed=seed, size=resolution).path)
        for weight in (0.0, kto_weight):
            config = TrainConfig(method="dpo", max_train_steps=steps, train_batch_size=2, resolution=resolution,
                                 learning_rate=1e-3, network_dim=4, network_alpha=4.0, kto_weight=weight, seed=seed,
                                 checkpointing_steps=10**6)
            accelerator = make_accelerator(config)
            method = DpoMethod(config, load_parent(parent), data, accelerator)
            Loop(method, config, accelerator, work_dir=Path(tmp) / f"w{weight}", fingerprint={},
                 report=lambda e: None).run()
            bad = [(r, j) for r, j, _ in data.undesirable_for()]
            pair = [(p.row, j) for p in data.pairs_for("dpo") for j in (0, 1)]
            out[f"gap_both_bad_kto{weight:g}"] = _mean_ci(_mse_gap(method, bad, [r for r, _ in bad], draws, seed))
            out[f"gap_pairs_kto{weight:g}"] = _mean_ci(_mse_gap(method, pair, [r for r, _ in pair], draws, seed))
    out["both_bad_images"], out["pair_images"] = len(bad), len(pair)
    return out


def _heldout_implicit_accuracy(method, data, draws: int, seed: int) -> tuple[float, int]:
    """Share of ``data``'s pairs whose DPO inside term, averaged over ``draws`` fixed noise draws, is positive."""
    from .data import ExampleStore, stream_generator
    from .dpo import denoise_mse
    from .parent import adapters_disabled

    store = ExampleStore(data, method.parent, method.encoder, resolution=method.config.resolution,
                         seed=method.config.seed, cache_latents=True, cache_text=True)
    unet, kw = method.parent.unet, dict(noise_scheduler=method.parent.noise_scheduler,
                                        v_prediction=method.parent.v_prediction)
    right = 0
    with torch.no_grad():
        for p in data.pairs_for("dpo"):
            gens = [stream_generator(seed, f"heldout:{p.row}", d) for d in range(draws)]
            t = torch.stack([torch.randint(0, 1000, (1,), generator=g)[0] for g in gens])
            noise = torch.stack([torch.randn(method.latent_shape, generator=g) for g in gens])
            embeds, pooled = store.embeds([p.row] * draws)
            cond = dict(encoder_hidden_states=embeds, added_cond_kwargs={
                "time_ids": store.time_ids([(p.row, p.first)] * draws), "text_embeds": pooled})
            gap = []
            for which in (p.first, 1 - p.first):
                latents = store.latents([(p.row, which)] * draws, [])
                model = denoise_mse(unet, latents, noise, t, cond, **kw)
                with adapters_disabled(unet):
                    ref = denoise_mse(unet, latents, noise, t, cond, **kw)
                gap.append(model - ref)
            right += int(float((gap[1] - gap[0]).mean()) > 0)  # inside term > 0: the winner got relatively easier
    n = len(data.pairs_for("dpo"))
    return right, n


def dpo_learning(parent: ParentModel, *, steps: int = 60, pairs: int = 64, seed: int = 0, draws: int = 4,
                 resolution: int = 64, learning_rate: float = 1e-3) -> dict:
    """Does the DPO LoRA learn the judge's preference beyond its training pairs? Held-out implicit accuracy
    (distinct pictures, fixed noise draws) with a Wilson interval, for labels as judged and, as the control,
    reversed -- the same pictures and schedule, so only the votes differ."""
    from .dataset import PreferenceRow, read_dataset, write_dataset
    from .dpo import DpoMethod
    from .loop import Loop, make_accelerator
    from .parent import load_parent
    from .reward import wilson_interval
    from .synthetic import synthetic_rows

    out = {"measure": "dpo_learning", "steps": steps, "pairs": pairs, "seed": seed, "draws": draws,
           "learning_rate": learning_rate}
    with tempfile.TemporaryDirectory(prefix="bench-dpo-") as tmp:
        rows = synthetic_rows(pairs, seed=seed, size=resolution)
        flipped = [PreferenceRow(**{**r.__dict__, "label_0": r.label_1, "label_1": r.label_0}) for r in rows]
        held = read_dataset(write_dataset(synthetic_rows(pairs, seed=seed + 1000, size=resolution),
                                          Path(tmp) / "held.parquet", vote_log_hash="held").path)
        for name, train_rows in (("judged", rows), ("reversed", flipped)):
            data = read_dataset(write_dataset(train_rows, Path(tmp) / f"{name}.parquet", vote_log_hash=name).path)
            config = TrainConfig(method="dpo", max_train_steps=steps, train_batch_size=4, resolution=resolution,
                                 learning_rate=learning_rate, network_dim=4, network_alpha=4.0, seed=seed,
                                 checkpointing_steps=10**6)
            accelerator = make_accelerator(config)
            method = DpoMethod(config, load_parent(parent), data, accelerator)
            result = Loop(method, config, accelerator, work_dir=Path(tmp) / name, fingerprint={},
                          report=lambda e: None).run()
            right, n = _heldout_implicit_accuracy(method, held, draws, seed)
            lo, hi = wilson_interval(right, n)
            out[name] = {"heldout_acc": right / n, "ci_low": lo, "ci_high": hi, "heldout_pairs": n,
                         "train_implicit_acc_last_step": result.metrics.get("implicit_acc")}
    return out
