"""The parent model for training: loaded through generation.pipelines (the same loader and checks generation uses),
its training noise schedule, LoRA adapters in kohya's module choice, and A1111-style caption encoding.

Worker-only module: imports torch, diffusers and peft at the top.
"""

from __future__ import annotations

import dataclasses
import hashlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from generation.pipelines.prompts import ChunkTokenizer, _encode_chunks

from .config import ParentModel
from .errors import TrainingError

ADAPTER = "arena"
# kohya networks/lora.py: LoRA on every Linear (and 1x1 Conv2d) inside these module classes
UNET_TARGET_CLASSES = ("Transformer2DModel",)
TEXT_ENCODER_TARGET_CLASSES = ("CLIPAttention", "CLIPSdpaAttention", "CLIPMLP")


@dataclass
class LoadedParent:
    spec: ParentModel
    unet: object
    vae: object
    text_encoder: object
    text_encoder_2: object
    tokenizer: object
    tokenizer_2: object
    noise_scheduler: object  # DDPMScheduler with the parent's betas (zero terminal SNR for v)
    sha256: str  # of the checkpoint file (diffusers folder: of its component weight files, in order)
    scheduler: object = None  # the pipeline's own scheduler (its config is what generation samples from)

    @property
    def v_prediction(self) -> bool:
        return self.spec.prediction_type == "v"


_SHA_MEMO: dict = {}


def checkpoint_sha256(path: str) -> str:
    """sha256 of a single file; of a diffusers folder's weight files (sorted relative paths, then bytes).
    Remembered per (path, size, mtime) in this process: an SDXL file takes a while to hash."""
    p = Path(path)
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in (".safetensors", ".bin"))
    key = (str(p.resolve()), tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files))
    if key not in _SHA_MEMO:
        _SHA_MEMO[key] = _hash_files(p, files)
    return _SHA_MEMO[key]


def _hash_files(p: Path, files) -> str:
    h = hashlib.sha256()
    for f in files:
        if p.is_dir():
            h.update(str(f.relative_to(p)).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def training_noise_scheduler(scheduler_config: dict, prediction_type: str):
    """DDPMScheduler on the parent's betas: epsilon, or v-prediction with zero terminal SNR (as generation samples)."""
    from diffusers import DDPMScheduler

    config = {k: v for k, v in dict(scheduler_config).items() if not k.startswith("_")}
    config["prediction_type"] = "v_prediction" if prediction_type == "v" else "epsilon"
    config["rescale_betas_zero_snr"] = prediction_type == "v"
    return DDPMScheduler.from_config(config)


_KEPT: dict = {}  # (spec, mtime) -> a pristine LoadedParent, when keep_loaded_parents(True)


def keep_loaded_parents(enabled: bool) -> None:
    """Keep a pristine copy of each loaded parent in this process and hand out deep copies (off by default: an
    SDXL parent is ~7 GB; the tests, which load the same tiny parents many times, turn it on)."""
    _KEPT.clear()
    _KEPT[None] = enabled


def load_parent(spec: ParentModel) -> LoadedParent:
    """Load the parent's modules (float32, CPU, frozen); TrainingError (one line) if it cannot be loaded."""
    import copy

    def fresh(kept: LoadedParent) -> LoadedParent:  # the modules copied, the (read-only) tokenizers shared
        modules = {n: copy.deepcopy(getattr(kept, n)) for n in ("unet", "vae", "text_encoder", "text_encoder_2")}
        return dataclasses.replace(kept, **modules, noise_scheduler=copy.deepcopy(kept.noise_scheduler))

    key = (spec, Path(spec.path).stat().st_mtime_ns if Path(spec.path).exists() else None)
    if _KEPT.get(None) and key in _KEPT:
        return fresh(_KEPT[key])
    loaded = _load_parent(spec)
    if _KEPT.get(None):
        _KEPT[key] = fresh(loaded)
    return loaded


def _load_parent(spec: ParentModel) -> LoadedParent:
    from generation.pipelines.loading import load_pipeline
    from generation.pipelines.types import GenerationError, VariantSpec

    from .config import parent_errors

    errors = parent_errors(spec)
    if errors:
        raise TrainingError("; ".join(errors))
    variant = VariantSpec(key=f"train:{spec.path}", source_type=spec.source_type, source_path=spec.path,
                          config_path=spec.config_path, prediction_type=spec.prediction_type)
    from diffusers.utils import logging as diffusers_logging

    bars_were_on = diffusers_logging.is_progress_bar_enabled()
    diffusers_logging.disable_progress_bar()  # progress goes out as events, not as tqdm bars on stderr
    try:
        pipe = load_pipeline(variant, "cpu").pipe
    except GenerationError as exc:
        raise TrainingError(f"parent: {exc}") from None
    finally:
        if bars_were_on:
            diffusers_logging.enable_progress_bar()
    for module in (pipe.unet, pipe.vae, pipe.text_encoder, pipe.text_encoder_2):
        module.requires_grad_(False)
        module.eval()
    return LoadedParent(spec, pipe.unet, pipe.vae, pipe.text_encoder, pipe.text_encoder_2, pipe.tokenizer,
                        pipe.tokenizer_2, training_noise_scheduler(pipe.scheduler.config, spec.prediction_type),
                        checkpoint_sha256(spec.path), pipe.scheduler)


def place(module, device, dtype) -> None:
    """Move a frozen module only when it is not already there (diffusers warns on every ``.to(dtype)``)."""
    p = next(module.parameters())
    if p.device != torch.device(device) or p.dtype != dtype:
        module.to(device, dtype)


def lora_targets(module, target_classes) -> list[str]:
    """Full names of the Linear / 1x1 Conv2d layers inside modules of ``target_classes`` (kohya's choice)."""
    names = []
    for name, parent in module.named_modules():
        if type(parent).__name__ not in target_classes:
            continue
        for child_name, child in parent.named_modules():
            is_1x1 = isinstance(child, torch.nn.Conv2d) and child.kernel_size == (1, 1)
            if child_name and (isinstance(child, torch.nn.Linear) or is_1x1):
                names.append(f"{name}.{child_name}")
    return sorted(set(names))


def add_lora(module, target_classes, *, dim: int, alpha: float) -> list[str]:
    """Inject a peft LoRA adapter (kaiming-uniform down, zero up: kohya's and peft's initialisation); trainable
    parameters in float32 whatever the frozen weights' dtype. Returns the target module names."""
    from peft import LoraConfig

    targets = lora_targets(module, target_classes)
    if not targets:
        raise TrainingError(f"no LoRA target layers found in {type(module).__name__}")
    module.add_adapter(LoraConfig(r=dim, lora_alpha=alpha, target_modules=targets, init_lora_weights=True,
                                  lora_dropout=0.0), adapter_name=ADAPTER)
    for p in module.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    return targets


def lora_parameters(module) -> dict[str, torch.Tensor]:
    """The trainable (LoRA) parameters of ``module`` by name."""
    return {n: p for n, p in module.named_parameters() if p.requires_grad}


@contextmanager
def adapters_disabled(*modules):
    """The reference model of DPO: the same modules with their adapters switched off (as the diffusers example)."""
    for m in modules:
        m.disable_adapters()
    try:
        yield
    finally:
        for m in modules:
            m.enable_adapters()


class Wrapped:
    """A DDP-wrapped text encoder as generation's chunk encoder calls it (``.device``, ``.config`` and a call)."""

    def __init__(self, wrapped, module):
        self.wrapped, self.device, self.config = wrapped, module.device, module.config

    def __call__(self, *args, **kwargs):
        return self.wrapped(*args, **kwargs)


class CaptionEncoder:
    """Captions -> (prompt_embeds [B, 77n, D1+D2], pooled [B, P]) the way generation encodes prompts (A1111 chunks,
    weights and BREAK, clip skip, second encoder's pooled output of the first chunk), so a LoRA is trained on the
    conditioning it will be used with. Every caption is padded with the empty chunk's embedding to the dataset's
    longest caption (kohya pads every caption to max_token_length the same way), so a caption's conditioning
    never depends on its batch-mates. Gradients flow when the encoders are trained."""

    def __init__(self, parent: LoadedParent):
        self.parent = parent
        self.chunker = ChunkTokenizer(parent.tokenizer)
        self.pad_id_2 = (parent.tokenizer_2 or parent.tokenizer).pad_token_id
        self.eos_id = self.chunker.id_end
        self._empty: dict[int, torch.Tensor] = {}

    def encode_one(self, caption: str, clip_skip: int = 1, encoders=None) -> tuple[torch.Tensor, torch.Tensor]:
        """([77n, D], [P]) for one caption; ``encoders`` = (te1, te2) to call instead of the parent's own (the
        DDP-wrapped ones when the encoders are trained, so their gradients are averaged across processes)."""
        te1, te2 = encoders or (self.parent.text_encoder, self.parent.text_encoder_2)
        chunks = self.chunker(caption)
        z1, _ = _encode_chunks(te1, chunks, pad_id=None, eos_id=self.eos_id, clip_skip=clip_skip)
        z2, pooled = _encode_chunks(te2, chunks, pad_id=self.pad_id_2, eos_id=self.eos_id, clip_skip=clip_skip)
        return torch.cat([z1, z2.to(z1.dtype)], dim=-1)[0], pooled[0]

    def empty_chunk(self, clip_skip: int = 1) -> torch.Tensor:
        if clip_skip not in self._empty:
            with torch.no_grad():
                chunk = [self.chunker.empty_chunk()]
                z1, _ = _encode_chunks(self.parent.text_encoder, chunk, pad_id=None, eos_id=self.eos_id, clip_skip=clip_skip)
                z2, _ = _encode_chunks(self.parent.text_encoder_2, chunk, pad_id=self.pad_id_2, eos_id=self.eos_id,
                                       clip_skip=clip_skip)
                self._empty[clip_skip] = torch.cat([z1, z2.to(z1.dtype)], dim=-1)[0].detach()
        return self._empty[clip_skip]

    def chunk_count(self, captions) -> int:
        """The most chunks any of ``captions`` needs."""
        return max((len(self.chunker(c)) for c in set(captions)), default=1)

    def stack(self, encoded: list[tuple[torch.Tensor, torch.Tensor]], clip_skips: list[int], chunks: int = 1):
        """Pad each caption's embeds to ``chunks`` chunks (at least) and stack: ([B, 77n, D], [B, P])."""
        longest = max([e.shape[0] for e, _ in encoded] + [77 * chunks])
        rows = []
        for (embeds, _), skip in zip(encoded, clip_skips):
            missing = (longest - embeds.shape[0]) // 77
            pad = [self.empty_chunk(skip).to(embeds.device, embeds.dtype)] * missing
            rows.append(torch.cat([embeds, *pad], dim=0) if pad else embeds)
        return torch.stack(rows), torch.stack([p for _, p in encoded])
