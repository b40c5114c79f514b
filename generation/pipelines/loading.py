"""Loading SDXL pipelines from local files only (never a hub), with LoRAs, and running batches on them."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from .checkpoints import inspect_checkpoint
from .offline import force_offline
from .samplers import resolve_sampler
from .types import GenerationError, GenerationRequest, OutOfMemory, VariantSpec

log = logging.getLogger(__name__)

force_offline()  # workers never talk to a model hub (see offline.py: setting the environment alone is not enough)


def resolve_device(device: str | None = None) -> str:
    """None -> GENERATION_DEVICE (auto|cpu|cuda|cuda:N) -> "cuda" when available, else "cpu"."""
    import torch

    choice = (device or os.environ.get("GENERATION_DEVICE") or "auto").strip().lower()
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cpu":
        return "cpu"
    if choice == "cuda" or (choice.startswith("cuda:") and choice[5:].isdigit()):
        if not torch.cuda.is_available():
            raise GenerationError(f"device {choice} requested but CUDA is not available")
        if ":" in choice and int(choice[5:]) >= torch.cuda.device_count():
            raise GenerationError(f"device {choice} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
        return choice
    raise GenerationError(f"unknown device {choice!r}: use auto, cpu, cuda or cuda:N")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def _load_lora_state_dict(path: str) -> dict:
    from safetensors.torch import load_file

    p = Path(path)
    if not p.exists():
        raise GenerationError(f"LoRA not found: {path}")
    if p.is_dir():
        candidates = [p / "pytorch_lora_weights.safetensors"] + sorted(p.glob("*.safetensors"))
        files = [c for c in candidates if c.is_file()]
        if not files:
            raise GenerationError(f"no .safetensors LoRA file in folder {path}")
        p = files[0]
    elif p.suffix.lower() != ".safetensors":
        raise GenerationError(f"LoRA must be a .safetensors file or a diffusers LoRA folder: {p.name}")
    try:
        return load_file(str(p))
    except Exception as exc:  # safetensors raises its own error types
        raise GenerationError(f"unreadable LoRA {p.name}: {_one_line(exc)}") from None


def _single_file_config(spec: VariantSpec) -> str:
    from .checkpoints import read_safetensors_header
    from .configs import bundled_config_dir, guess_bundled_config

    if spec.config_path:
        if not (Path(spec.config_path) / "model_index.json").is_file():
            raise GenerationError(f"config folder has no model_index.json: {spec.config_path}")
        return spec.config_path
    shapes, _ = read_safetensors_header(spec.source_path)
    name = guess_bundled_config(shapes)
    if name is None:
        raise GenerationError(
            f"cannot infer the SDXL config of {Path(spec.source_path).name}; set its config path to a local diffusers folder"
        )
    return str(bundled_config_dir(name))


def _diffusers_variant(path: Path) -> str | None:
    unet = path / "unet"
    if any(unet.glob("diffusion_pytorch_model.safetensors")) or any(unet.glob("diffusion_pytorch_model.bin")):
        return None
    return "fp16" if any(unet.glob("*.fp16.safetensors")) else None


def load_pipeline(spec: VariantSpec, device: str):
    """A LoadedPipeline for ``spec`` on ``device`` (float16 on CUDA, float32 on CPU). GenerationError if it cannot."""
    force_offline()
    import torch
    from diffusers import StableDiffusionXLPipeline

    force_offline()  # again, now that diffusers has copied the hub's switches
    if spec.source_type not in ("single_file", "diffusers"):
        raise GenerationError(f"unknown source type {spec.source_type!r}: use single_file or diffusers")
    if spec.prediction_type not in ("eps", "v"):
        raise GenerationError(f"unknown prediction type {spec.prediction_type!r}: use eps or v")
    info = inspect_checkpoint(spec.source_path)
    if info.source_type != spec.source_type:
        raise GenerationError(f"{spec.source_path} is a {info.source_type} checkpoint, registered as {spec.source_type}")
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    try:
        if spec.source_type == "diffusers":
            path = Path(spec.source_path)
            pipe = StableDiffusionXLPipeline.from_pretrained(
                str(path), dtype=dtype, local_files_only=True, variant=_diffusers_variant(path)
            )
        else:
            pipe = StableDiffusionXLPipeline.from_single_file(
                spec.source_path, config=_single_file_config(spec), dtype=dtype, local_files_only=True
            )
    except GenerationError:
        raise
    except torch.OutOfMemoryError:
        raise OutOfMemory(f"out of memory loading {Path(spec.source_path).name}") from None
    except Exception as exc:  # diffusers/transformers raise many types; the admin needs one line
        raise GenerationError(f"cannot load {Path(spec.source_path).name}: {_one_line(exc)}") from None

    if spec.loras:
        _apply_loras(pipe, spec)
    try:
        if device != "cpu":
            pipe.to(device)
    except torch.OutOfMemoryError:
        raise OutOfMemory(f"out of memory moving {Path(spec.source_path).name} to {device}") from None
    pipe.set_progress_bar_config(disable=True)
    return LoadedPipeline(spec, pipe, device)


def _apply_loras(pipe, spec: VariantSpec) -> None:
    """Load each LoRA as a peft adapter with its weight, then fuse them into the base weights.

    Fusing (W + sum_i w_i * scale_i * B_i A_i) makes a LoRA variant cost nothing per step; the adapters are then
    unloaded. The cache keys include the LoRA set, so a fused pipeline is never reused for another set.
    """
    names, weights = [], []
    for i, lora in enumerate(spec.loras):
        name = f"lora{i}"
        state_dict = _load_lora_state_dict(lora.path)
        try:
            pipe.load_lora_weights(state_dict, adapter_name=name)
        except Exception as exc:
            raise GenerationError(f"cannot apply LoRA {Path(lora.path).name}: {_one_line(exc)}") from None
        names.append(name)
        weights.append(_adapter_weight(lora))
    pipe.set_adapters(names, adapter_weights=weights)
    pipe.fuse_lora(adapter_names=names, lora_scale=1.0)
    pipe.unload_lora_weights()


def _adapter_weight(lora):
    """A float, or per-component weights for A1111's ``<lora:name:te:unet>`` (text encoders vs UNet)."""
    if lora.unet_weight is None or float(lora.unet_weight) == float(lora.weight):
        return float(lora.weight)
    te = float(lora.weight)
    return {"unet": float(lora.unet_weight), "text_encoder": te, "text_encoder_2": te}


def _param_bytes(pipe) -> int:
    total = 0
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        module = getattr(pipe, name, None)
        if module is not None:
            total += sum(p.numel() * p.element_size() for p in module.parameters())
    return total


class LoadedPipeline:
    """A pipeline on a device plus what generating with it needs (prompt encoder, base scheduler config)."""

    def __init__(self, spec: VariantSpec, pipe, device: str):
        from .prompts import PromptEncoder

        self.spec = spec
        self.pipe = pipe
        self.device = device
        self.dtype = pipe.unet.dtype
        self.base_scheduler_config = dict(pipe.scheduler.config)
        self.encoder = PromptEncoder(pipe)
        self.nbytes = _param_bytes(pipe)
        self._embeds: dict[tuple[str, str, int], tuple] = {}
        self._img2img = None

    @property
    def img2img(self):
        """The image-to-image pipeline on the same modules (no extra memory), for the hires pass."""
        if self._img2img is None:
            from diffusers import StableDiffusionXLImg2ImgPipeline

            self._img2img = StableDiffusionXLImg2ImgPipeline.from_pipe(self.pipe)
            self._img2img.set_progress_bar_config(disable=True)
        return self._img2img

    # prompt embeddings are memoised per (prompt, negative, clip skip): a job's S seeds encode once
    def encode(self, prompt: str, negative: str, clip_skip: int):
        key = (prompt, negative, clip_skip)
        hit = self._embeds.get(key)
        if hit is None:
            if len(self._embeds) > 256:
                self._embeds.clear()
            hit = self._embeds[key] = self.encoder.encode_pair(prompt, negative, clip_skip=clip_skip)
        return hit

    def batch_key(self, req: GenerationRequest) -> tuple:
        """Requests with equal keys can share a batch without changing any image."""
        chunks = self.encoder.count_chunks(req.prompt, req.negative_prompt)
        hires = None
        if req.enable_hr:
            hires = (float(req.hr_scale), req.hr_second_pass_steps, float(req.denoising_strength), req.hr_upscaler)
        return (resolve_sampler(req.sampler, req.schedule_type), req.steps, float(req.cfg_scale), req.width, req.height,
                float(req.guidance_rescale), chunks, hires)

    def generate_arrays(self, requests: list[GenerationRequest], *, batch_size: int = 4):
        """float images [H, W, 3] in 0..1, in request order; batches requests that share settings.

        Checks only what the model itself needs (sides multiples of 8); the size limits of
        ``validate_request`` are for callers (``generate`` applies them).
        """
        if batch_size < 1:
            raise GenerationError(f"batch size must be at least 1, got {batch_size}")
        for req in requests:
            if req.width % 8 or req.height % 8 or req.width < 8 or req.height < 8:
                raise GenerationError(f"width and height must be multiples of 8, got {req.width}x{req.height}")
        groups: dict[tuple, list[int]] = {}
        for i, req in enumerate(requests):
            groups.setdefault(self.batch_key(req), []).append(i)
        results: list = [None] * len(requests)
        for indices in groups.values():
            for start in range(0, len(indices), batch_size):
                part = indices[start : start + batch_size]
                for i, image in zip(part, self.run_batch([requests[i] for i in part])):
                    results[i] = image
        return results

    def run_batch(self, reqs: list[GenerationRequest]):
        """One diffusers call (two with the hires fix) for requests that share a batch key; float arrays [H, W, 3]."""
        import numpy as np
        import torch

        from . import runner

        first = reqs[0]
        encoded = [self.encode(r.prompt, r.negative_prompt, r.clip_skip) for r in reqs]

        def stack(i):
            return torch.cat([e[i] for e in encoded]).to(self.device, self.dtype)

        embeds = dict(
            prompt_embeds=stack(0),
            pooled_prompt_embeds=stack(1),
            negative_prompt_embeds=stack(2),
            negative_pooled_prompt_embeds=stack(3),
            guidance_scale=float(first.cfg_scale),
            guidance_rescale=float(first.guidance_rescale),
        )
        try:
            with torch.inference_mode(), warnings.catch_warnings():
                # torchsde's Brownian tree complains about float rounding at the interval ends; harmless
                warnings.filterwarnings("ignore", message=r"Should have (tb<=t1|ta>=t0)")
                # diffusers' KDPM2 schedulers hand torch tensors to numpy when setting timesteps; harmless
                warnings.filterwarnings("ignore", message=r"__array_wrap__", category=DeprecationWarning)
                with runner.masked_cross_attention(self.pipe.unet, runner.cross_attention_mask(self, reqs)):
                    latents = runner.first_pass(self, reqs, embeds)
                    if first.enable_hr:
                        latents = runner.hires_pass(self, reqs, embeds, latents)
                images = runner.decode(self.pipe, latents)
        except torch.OutOfMemoryError:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            width, height = first.output_size()
            raise OutOfMemory(f"out of GPU memory generating {len(reqs)} image(s) at {width}x{height}") from None
        if not np.isfinite(images).all():
            raise GenerationError("the model produced NaN/inf values (try another sampler or fewer steps)")
        return [np.asarray(img, dtype=np.float32) for img in images]


def to_pil(array):
    """An 8-bit RGB image, converted as A1111 does (``(255 * x).astype(uint8)``, truncating)."""
    from PIL import Image

    from .runner import to_uint8

    return Image.fromarray(to_uint8(array))
