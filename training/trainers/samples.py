"""Sample images at checkpoints: the model being trained (its LoRA active), rendered by generation's own pipeline
code on fixed prompts and seeds, so the watch page shows what the run is doing to the pictures as it goes.

kohya sd-scripts' knobs by their names: ``sample_prompts`` (here the prompts themselves, one per line, instead of
a file), ``sample_every_n_steps`` (0 = at every checkpoint) and ``sample_sampler``; ``sample_steps`` and
``sample_cfg_scale`` hold for every prompt (what kohya reads from each prompt line's ``--s`` and ``--l``). One image
per prompt, seed ``config.seed + k`` (the k-th prompt), at the training resolution: the same prompt and seed at
every checkpoint, so only the LoRA differs.

Sampling must not change the run: it draws from its own seeded generators, the global RNG state is restored
afterwards (a resumed run equals an uninterrupted one with or without samples), and the modules go back to
training mode and to the devices they were on.
"""

from __future__ import annotations

from pathlib import Path

import torch

SAMPLES_DIR = "samples"
MAX_PROMPTS = 8


def _lines(config) -> list[str]:
    return [line.strip() for line in str(config.sample_prompts or "").splitlines() if line.strip()]


def sample_prompts(config) -> list[str]:
    return _lines(config)[:MAX_PROMPTS]


def due(config, step: int) -> bool:
    """Whether the step that just finished gets samples (any checkpoint step when ``sample_every_n_steps`` is 0;
    the last step always, when there are prompts)."""
    if not sample_prompts(config):
        return False
    every = config.sample_every_n_steps or config.checkpointing_steps
    return step % every == 0 or step == config.max_train_steps


def sample_path(work_dir, step: int, k: int) -> Path:
    return Path(work_dir) / SAMPLES_DIR / f"step-{step:08d}-{k}.png"


def _requests(config, prompts: list[str], size: int):
    from generation.pipelines.types import GenerationRequest

    return [GenerationRequest(p, seed=int(config.seed) + k, sampler=str(config.sample_sampler),
                              steps=config.sample_steps, cfg_scale=config.sample_cfg_scale, width=size, height=size)
            for k, p in enumerate(prompts)]


def sample_errors(config) -> list[str]:
    """One-line problems with the sample settings (checked with the rest before a run is queued): what
    generation itself would refuse (sampler, steps, CFG, prompt syntax, LoRA tags: the run's own LoRA is what a
    sample shows)."""
    from generation.pipelines.samplers import validate_request
    from generation.pipelines.types import GenerationError

    errors = []
    if isinstance(config.sample_every_n_steps, bool) or not isinstance(config.sample_every_n_steps, int) \
            or config.sample_every_n_steps < 0:
        errors.append(f"sample_every_n_steps must be 0 (at each checkpoint) or more, got {config.sample_every_n_steps!r}")
    lines = _lines(config)
    if len(lines) > MAX_PROMPTS:
        errors.append(f"sample_prompts: at most {MAX_PROMPTS} prompts (one image each at every checkpoint)")
    # the size is the run's resolution, checked above; 1024 stands in for it (the tiny models' 64 px is below
    # generation's job limits)
    for req in _requests(config, sample_prompts(config) or ["a sample"], 1024):
        try:
            validate_request(req)
        except GenerationError as exc:
            errors.append(f"sample settings: {exc}")
            break
    return errors


def render_samples(parent, config, *, step: int, work_dir, device, dtype) -> list[Path]:
    """Render one image per sample prompt with ``parent``'s modules as they are now (LoRA included); the PNG
    paths, in prompt order."""
    from diffusers import StableDiffusionXLPipeline
    from PIL import Image

    from generation.pipelines.loading import LoadedPipeline
    from generation.pipelines.types import VariantSpec

    prompts = sample_prompts(config)
    modules = {n: getattr(parent, n) for n in ("unet", "vae", "text_encoder", "text_encoder_2")}
    was = {n: (m.training, next(m.parameters()).device) for n, m in modules.items()}
    cuda = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=cuda), torch.no_grad():
            for n, m in modules.items():
                m.eval()
                if n != "unet":  # frozen modules may have been offloaded once their outputs were cached
                    m.to(device)
            pipe = StableDiffusionXLPipeline(
                vae=parent.vae, text_encoder=parent.text_encoder, text_encoder_2=parent.text_encoder_2,
                tokenizer=parent.tokenizer, tokenizer_2=parent.tokenizer_2, unet=parent.unet,
                scheduler=parent.scheduler)
            pipe.set_progress_bar_config(disable=True)
            spec = VariantSpec(key=f"samples:{parent.spec.path}", source_type=parent.spec.source_type,
                               source_path=parent.spec.path, config_path=parent.spec.config_path,
                               prediction_type=parent.spec.prediction_type)
            loaded = LoadedPipeline(spec, pipe, str(device))
            requests = _requests(config, prompts, config.resolution)
            with torch.autocast(device_type=torch.device(device).type, dtype=dtype, enabled=dtype != torch.float32):
                arrays = loaded.generate_arrays(requests, batch_size=1)
    finally:
        for n, m in modules.items():
            training, where = was[n]
            m.train(training)
            m.to(where)
    paths = []
    for k, array in enumerate(arrays):
        path = sample_path(work_dir, step, k)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        Image.fromarray((array.clip(0, 1) * 255).round().astype("uint8")).save(tmp, format="PNG")
        tmp.replace(path)
        paths.append(path)
    return paths
