"""Running one batch the way A1111 does: its noise, its schedules, its hires fix, then decoding (workers only).

* Initial noise: one CPU generator per image seeded with the image's seed, a float32 ``randn`` of the latent's
  shape (A1111's "RNG: CPU"), scaled so sampling starts at ``noise * sigmas[0]`` as in k-diffusion. The same
  generator then feeds the sampler's per-step noise, so an image does not depend on its batch or device.
* Hires fix: the latent is upscaled (A1111's "Latent" modes) or decoded, resized as an 8-bit image (Lanczos,
  Nearest) and encoded again; fresh generators seeded with the same seeds give the second pass's noise; the
  second pass samples the last ``run`` of ``total`` steps of the schedule (hires.hires_steps).
* Decoding: the VAE in float32 when its config asks (SDXL's does); one image at a time above 2 MP; VAE tiling as
  a fallback when decoding still runs out of memory.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

from .hires import LATENT_UPSCALERS, hires_steps
from .samplers import resolve_sampler
from .schedulers import build_scheduler
from .types import GenerationRequest

SLICED_DECODE_PIXELS = 2_000_000


def cross_attention_mask(loaded, reqs: list[GenerationRequest]) -> torch.Tensor | None:
    """1 for real prompt chunks, 0 for the empty chunks that pad the shorter of prompt and negative prompt;
    rows ``[negatives..., prompts...]`` as diffusers stacks them for CFG. None when nothing is padded."""
    counts = [loaded.encoder.chunk_counts(r.prompt, r.negative_prompt) for r in reqs]
    n = max(max(pair) for pair in counts)
    if all(p == n and q in (0, n) for p, q in counts):
        return None
    chunk = loaded.encoder.chunker.chunk_length + 2

    def row(k: int) -> torch.Tensor:
        m = torch.zeros(chunk * n)
        m[: chunk * k] = 1
        return m

    # an empty negative prompt is zeros, which attend the same at any length: nothing to mask
    return torch.stack([row(q or n) for _, q in counts] + [row(p) for p, _ in counts])


@contextmanager
def masked_cross_attention(unet, mask: torch.Tensor | None):
    """Hand ``mask`` to every UNet call as ``encoder_attention_mask`` (its prompt half when CFG is off)."""
    if mask is None:
        yield
        return

    def pre(module, args, kwargs):
        hidden = kwargs["encoder_hidden_states"]
        rows = mask if hidden.shape[0] == mask.shape[0] else mask[mask.shape[0] - hidden.shape[0]:]
        kwargs["encoder_attention_mask"] = rows.to(hidden.device, hidden.dtype)
        return args, kwargs

    handle = unet.register_forward_pre_hook(pre, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


def initial_noise(seeds: list[int], shape: tuple[int, ...]) -> tuple[torch.Tensor, list[torch.Generator]]:
    """(float32 CPU noise [B, *shape], the generators, advanced past it): A1111's per-image CPU RNG."""
    generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
    noise = torch.stack([torch.randn(shape, generator=g, dtype=torch.float32) for g in generators])
    return noise, generators


def make_scheduler(loaded, req: GenerationRequest, seeds: list[int]):
    sampler, schedule = resolve_sampler(req.sampler, req.schedule_type)
    return build_scheduler(sampler, loaded.base_scheduler_config, schedule_type=schedule,
                           prediction_type=loaded.spec.prediction_type, seeds=seeds)


def first_pass(loaded, reqs: list[GenerationRequest], embeds: dict) -> torch.Tensor:
    """Latents (model space) of the base images."""
    first = reqs[0]
    seeds = [int(r.seed) for r in reqs]
    pipe = loaded.pipe
    pipe.scheduler = make_scheduler(loaded, first, seeds)
    scale = pipe.scheduler.a1111_latent_scale_for(first.steps)
    shape = (pipe.unet.config.in_channels, first.height // pipe.vae_scale_factor, first.width // pipe.vae_scale_factor)
    noise, generators = initial_noise(seeds, shape)
    out = pipe(**embeds, latents=(noise * scale).to(loaded.device, loaded.dtype), generator=generators,
               width=first.width, height=first.height, num_inference_steps=first.steps, output_type="latent")
    return out.images


def upscale(loaded, latents: torch.Tensor, req: GenerationRequest) -> torch.Tensor:
    """The first pass's latents at the hires size, with A1111's upscaler ``req.hr_upscaler``."""
    width, height = req.output_size()
    f = loaded.pipe.vae_scale_factor
    if req.hr_upscaler in LATENT_UPSCALERS:
        mode, antialias = LATENT_UPSCALERS[req.hr_upscaler]
        return torch.nn.functional.interpolate(latents.float(), size=(height // f, width // f), mode=mode,
                                               antialias=antialias).to(latents.dtype)
    from PIL import Image

    resample = {"Lanczos": Image.Resampling.LANCZOS, "Nearest": Image.Resampling.NEAREST}[req.hr_upscaler]
    pixels = decode(loaded.pipe, latents)
    resized = [np.asarray(Image.fromarray(to_uint8(p)).resize((width, height), resample=resample), dtype=np.float32) / 255
               for p in pixels]
    return encode(loaded.pipe, torch.from_numpy(np.stack(resized)).permute(0, 3, 1, 2)).to(latents.dtype)


def hires_pass(loaded, reqs: list[GenerationRequest], embeds: dict, latents: torch.Tensor) -> torch.Tensor:
    first = reqs[0]
    seeds = [int(r.seed) for r in reqs]
    plan = hires_steps(first.steps, first.hr_second_pass_steps, float(first.denoising_strength))
    pipe = loaded.img2img
    pipe.scheduler = make_scheduler(loaded, first, seeds)
    generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
    out = pipe(**embeds, image=upscale(loaded, latents, first), strength=plan.diffusers_strength(),
               num_inference_steps=plan.total, generator=generators, output_type="latent")
    return out.images


def _vae_float32(pipe) -> bool:
    return pipe.vae.dtype == torch.float16 and bool(getattr(pipe.vae.config, "force_upcast", False))


def _latent_stats(pipe, latents):
    config = pipe.vae.config
    if getattr(config, "latents_mean", None) is not None and getattr(config, "latents_std", None) is not None:
        mean = torch.tensor(config.latents_mean).view(1, -1, 1, 1).to(latents.device, latents.dtype)
        std = torch.tensor(config.latents_std).view(1, -1, 1, 1).to(latents.device, latents.dtype)
        return mean, std
    return None, None


@torch.inference_mode()
def decode(pipe, latents: torch.Tensor) -> np.ndarray:
    """float32 images [B, H, W, 3] in 0..1 from model-space latents (as the SDXL pipeline decodes them)."""
    upcast = _vae_float32(pipe)
    vae = pipe.vae
    if upcast:
        vae.to(dtype=torch.float32)
    try:
        latents = latents.to(next(vae.post_quant_conv.parameters()).dtype)
        mean, std = _latent_stats(pipe, latents)
        latents = latents * std / vae.config.scaling_factor + mean if mean is not None else latents / vae.config.scaling_factor
        pixels = latents.shape[-1] * latents.shape[-2] * pipe.vae_scale_factor**2
        parts = [latents[i:i + 1] for i in range(len(latents))] if pixels > SLICED_DECODE_PIXELS else [latents]
        images = torch.cat([_decode_or_tile(vae, part) for part in parts])
    finally:
        if upcast:
            vae.to(dtype=torch.float16)
    return (images / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).float().cpu().numpy()


def _decode_or_tile(vae, latents: torch.Tensor) -> torch.Tensor:
    try:
        return vae.decode(latents, return_dict=False)[0]
    except torch.OutOfMemoryError:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        vae.enable_tiling()
        try:
            return vae.decode(latents, return_dict=False)[0]
        finally:
            vae.disable_tiling()


@torch.inference_mode()
def encode(pipe, images: torch.Tensor) -> torch.Tensor:
    """Model-space latents of images [B, 3, H, W] in 0..1 (the posterior's mean: deterministic)."""
    vae = pipe.vae
    upcast = bool(getattr(vae.config, "force_upcast", False)) and vae.dtype == torch.float16
    dtype = torch.float32 if upcast else vae.dtype
    if upcast:
        vae.to(dtype=torch.float32)
    try:
        x = (images * 2 - 1).to(vae.device, dtype)
        latents = torch.cat([vae.encode(x[i:i + 1]).latent_dist.mode() for i in range(len(x))])
        mean, std = _latent_stats(pipe, latents)
        return (latents - mean) * vae.config.scaling_factor / std if mean is not None else latents * vae.config.scaling_factor
    finally:
        if upcast:
            vae.to(dtype=torch.float16)


def to_uint8(array: np.ndarray) -> np.ndarray:
    """A1111's conversion to 8 bits: ``(255 * x).astype(uint8)`` on values clamped to 0..1 (truncation)."""
    return (np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)
