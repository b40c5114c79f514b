"""generate(): the entry point GPU workers call, and bare_generate() for the benchmark."""

from __future__ import annotations

from .cache import pipeline_cache
from .samplers import validate_request
from .types import GenerationError, GenerationRequest, VariantSpec


def generate(
    spec: VariantSpec, requests: list[GenerationRequest], *, batch_size: int = 4, device: str | None = None
) -> list:
    """PIL images for ``requests`` (same order) from the variant ``spec``.

    Validates every request first (GenerationError, one line), takes the pipeline from the process-wide
    cache (loading it at most once), and batches requests that share sampler and schedule type (as the
    canonical pair of ``resolve_sampler``), steps, CFG, size, guidance rescale, hires settings and number of
    prompt chunks. Each image is sampled as A1111 would (its schedules, its CPU noise per seed, its hires
    arithmetic: see samplers.py, runner.py), so it does not depend on what it was batched with. CUDA out of
    memory raises OutOfMemory: retry with a smaller ``batch_size``. LoRAs named by ``<lora:...>`` tags go in
    ``spec`` (``with_prompt_loras``), not in the prompt.
    """
    from .loading import resolve_device, to_pil

    requests = list(requests)
    if not requests:
        return []
    for req in requests:
        validate_request(req)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise GenerationError(f"batch size must be at least 1, got {batch_size!r}")
    loaded = pipeline_cache().get(spec, resolve_device(device))
    return [to_pil(a) for a in loaded.generate_arrays(requests, batch_size=batch_size)]


def bare_generate(spec: VariantSpec, requests: list[GenerationRequest], *, device: str | None = None) -> list:
    """The same images through plain diffusers calls: its own pipeline load, no cache, one image per call.

    For the benchmark's baseline. It shares only what decides what the image is, not how fast it is made: the A1111
    prompt encoding, the A1111 schedulers and the initial noise (diffusers decodes).
    """
    import torch

    from .loading import load_pipeline, resolve_device, to_pil
    from .runner import cross_attention_mask, initial_noise, make_scheduler, masked_cross_attention

    requests = list(requests)
    for req in requests:
        validate_request(req)
        if req.enable_hr:
            raise GenerationError("bare_generate makes base images only: no hires pass")
    loaded = load_pipeline(spec, resolve_device(device))
    pipe, images = loaded.pipe, []
    for req in requests:
        embeds, pooled, neg, neg_pooled = loaded.encoder.encode_pair(
            req.prompt, req.negative_prompt, clip_skip=req.clip_skip
        )
        pipe.scheduler = make_scheduler(loaded, req, [req.seed])
        shape = (pipe.unet.config.in_channels, req.height // pipe.vae_scale_factor, req.width // pipe.vae_scale_factor)
        noise, generators = initial_noise([req.seed], shape)
        with torch.inference_mode(), masked_cross_attention(pipe.unet, cross_attention_mask(loaded, [req])):
            out = pipe(
                prompt_embeds=embeds.to(loaded.device, loaded.dtype),
                pooled_prompt_embeds=pooled.to(loaded.device, loaded.dtype),
                negative_prompt_embeds=neg.to(loaded.device, loaded.dtype),
                negative_pooled_prompt_embeds=neg_pooled.to(loaded.device, loaded.dtype),
                latents=(noise * pipe.scheduler.a1111_latent_scale_for(req.steps)).to(loaded.device, loaded.dtype),
                num_inference_steps=req.steps,
                guidance_scale=float(req.cfg_scale),
                guidance_rescale=float(req.guidance_rescale),
                width=req.width,
                height=req.height,
                generator=generators,
                output_type="np",
            )
        images.append(to_pil(out.images[0]))
    return images
