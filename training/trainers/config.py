"""What a training run is given: the parent, the paths, the hyper-parameters. Plain data, no torch.

Names follow kohya sd-scripts (``network_dim``, ``network_alpha``, ``lr_scheduler``, ``min_snr_gamma`` ...) so
users' settings carry over; DPO's ``beta_dpo`` is the diffusers research example's name. ``defaults(method)``
gives the per-method defaults a scheduling form shows, ``validate`` the one-line errors to show before anything
is queued, ``to_json`` / ``from_json`` the form a TrainingRun stores.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from .errors import TrainingError

LORA_METHODS = ("dpo", "sft")
PREDICTION_TYPES = ("eps", "v")
LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial")
MIXED_PRECISION = ("no", "bf16", "fp16")
MAX_COUNT = 1_000_000_000  # steps, batch sizes, ranks ...: far beyond any run, and within every database's integer

# Changing any of these between a checkpoint and its resume would give a run that neither schedule describes
# (kohya users lost step counts and hit LR 0 that way): a resume with other values is refused.
RESUME_LOCKED = (
    "method", "max_train_steps", "learning_rate", "text_encoder_lr", "lr_scheduler", "lr_warmup_steps",
    "lr_scheduler_num_cycles", "lr_scheduler_power", "train_batch_size", "gradient_accumulation_steps",
    "network_dim", "network_alpha", "network_train_unet_only", "seed", "resolution", "beta_dpo",
)


@dataclass(frozen=True)
class ParentModel:
    """The model a LoRA is trained on: a diffusers folder or a single .safetensors (+ local config folder)."""

    path: str
    prediction_type: str = "eps"  # "eps" | "v" (v = v-prediction with zero terminal SNR)
    config_path: str = ""  # diffusers config folder for a single file ("" = bundled, inferred from shapes)

    @property
    def source_type(self) -> str:
        return "diffusers" if Path(self.path).is_dir() else "single_file"


@dataclass(frozen=True)
class RunPaths:
    dataset: str  # the preference dataset (.parquet, training.trainers.dataset's schema)
    work_dir: str  # checkpoints/ and cache/ live here; the same folder resumes the run
    output_dir: str  # final files (the LoRA .safetensors, training_result.json)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of a LoRA run (Diffusion-DPO or supervised); see ``defaults`` for each method's."""

    method: str = "dpo"  # "dpo" | "sft"
    max_train_steps: int = 1000  # optimizer steps
    train_batch_size: int = 1  # pairs (dpo) or images (sft) per process and micro-step
    gradient_accumulation_steps: int = 1
    learning_rate: float = 5e-4
    text_encoder_lr: float | None = None  # None = learning_rate (text encoder LoRA only)
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 0
    lr_scheduler_num_cycles: int = 1  # cosine_with_restarts: number of hard restarts
    lr_scheduler_power: float = 1.0  # polynomial
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_weight_decay: float = 1e-2
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0  # 0 = no clipping
    network_dim: int = 4
    network_alpha: float = 4.0
    network_train_unet_only: bool = True  # False: also LoRA on both text encoders (sft only)
    resolution: int = 1024  # square training size (shorter side resized, centre crop)
    mixed_precision: str = "no"
    gradient_checkpointing: bool = False
    cache_latents: bool = True
    cache_text_encoder_outputs: bool = True
    seed: int = 0
    # the supervised loss (kohya's knobs)
    min_snr_gamma: float = 0.0  # 0 = off
    noise_offset: float = 0.0
    ip_noise_gamma: float = 0.0  # input perturbation noise
    debiased_estimation_loss: bool = False
    scale_v_pred_loss_like_noise_pred: bool = False  # sft on v-pred; dpo on v-pred always scales (see losses)
    # Diffusion-DPO
    beta_dpo: float = 5000.0
    kto_weight: float = 0.0  # weight of the Diffusion-KTO-style term for both-bad rows (0 = both-bad unused)
    # sample images (kohya's names; training.trainers.samples): one per prompt line, at the training resolution
    sample_prompts: str = ""  # "" = none (a run scheduled from the site gets its dataset's first caption)
    sample_every_n_steps: int = 0  # 0 = at every checkpoint (and the last step)
    sample_sampler: str = "Euler a"
    sample_steps: int = 20
    sample_cfg_scale: float = 5.0
    # machinery
    checkpointing_steps: int = 50
    checkpoints_total_limit: int = 2
    log_every: int = 1
    output_name: str = "lora"

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class RewardConfig:
    """A Bradley-Terry head on frozen open_clip embeddings (see training.trainers.reward)."""

    open_clip_dir: str
    use_prompt: bool = True  # features include image x prompt embedding products
    epochs: int = 300  # full-batch Adam epochs
    learning_rate: float = 5e-2
    weight_decay: float = 1e-3  # L2 on the head's weights
    heldout_fraction: float = 0.2  # of polls (a poll's pairs stay together)
    seed: int = 0
    method: str = field(default="reward", init=False)


_DEFAULTS = {
    # the diffusers research example's defaults (train_diffusion_dpo_sdxl.py), alpha = rank as it sets
    "dpo": dict(method="dpo", learning_rate=5e-4, network_dim=4, network_alpha=4.0, lr_scheduler="constant",
                beta_dpo=5000.0, train_batch_size=4, max_train_steps=2000),
    # kohya train_network.py + the seeds' Illustrious guide: rank 32 / alpha 16, cosine with restarts, min-SNR 5
    "sft": dict(method="sft", learning_rate=1e-4, network_dim=32, network_alpha=16.0, lr_scheduler="cosine_with_restarts",
                min_snr_gamma=5.0, train_batch_size=4, max_train_steps=2000),
}


def defaults(method: str) -> TrainConfig:
    if method not in _DEFAULTS:
        raise TrainingError(f"unknown method {method!r}: use one of {', '.join(LORA_METHODS)}")
    return TrainConfig(**_DEFAULTS[method])


def _check(errors: list[str], ok: bool, message: str) -> None:
    if not ok:
        errors.append(message)


def config_errors(config: TrainConfig, prediction_type: str) -> list[str]:
    """Every problem with ``config`` for a parent of ``prediction_type``, each a one-line message."""
    e: list[str] = []
    c = config
    _check(e, c.method in LORA_METHODS, f"unknown method {c.method!r}: use one of {', '.join(LORA_METHODS)}")
    _check(e, prediction_type in PREDICTION_TYPES, f"unknown prediction type {prediction_type!r}: use eps or v")
    for name in ("max_train_steps", "train_batch_size", "gradient_accumulation_steps", "network_dim",
                 "checkpointing_steps", "checkpoints_total_limit", "log_every", "lr_scheduler_num_cycles"):
        value = getattr(c, name)
        _check(e, isinstance(value, int) and 1 <= value <= MAX_COUNT,
               f"{name} must be a whole number from 1 to {MAX_COUNT:,}, got {value!r}")
    _check(e, 0 <= c.lr_warmup_steps <= MAX_COUNT, f"lr_warmup_steps must be from 0 to {MAX_COUNT:,}, got {c.lr_warmup_steps}")
    _check(e, 0 <= c.seed < 2**63, f"seed must be a whole number from 0 to 2^63-1, got {c.seed}")
    _check(e, c.resolution <= 8192, f"resolution must be at most 8192, got {c.resolution}")
    _check(e, c.lr_warmup_steps < c.max_train_steps or c.lr_scheduler == "constant",
           f"lr_warmup_steps ({c.lr_warmup_steps}) must be below max_train_steps ({c.max_train_steps})")
    _check(e, c.learning_rate > 0, f"learning_rate must be above 0, got {c.learning_rate}")
    _check(e, c.text_encoder_lr is None or c.text_encoder_lr >= 0, "text_encoder_lr must be 0 or more")
    _check(e, c.lr_scheduler in LR_SCHEDULERS, f"unknown lr_scheduler {c.lr_scheduler!r}: use one of {', '.join(LR_SCHEDULERS)}")
    _check(e, c.lr_scheduler != "constant" or c.lr_warmup_steps == 0,
           "lr_scheduler constant takes no warm-up: use constant_with_warmup")
    _check(e, c.network_alpha > 0, f"network_alpha must be above 0, got {c.network_alpha}")
    _check(e, c.resolution >= 64 and c.resolution % 64 == 0, f"resolution must be a multiple of 64, got {c.resolution}")
    _check(e, c.mixed_precision in MIXED_PRECISION, f"mixed_precision must be one of {', '.join(MIXED_PRECISION)}")
    _check(e, c.max_grad_norm >= 0, "max_grad_norm must be 0 (off) or more")
    _check(e, c.min_snr_gamma >= 0 and c.noise_offset >= 0 and c.ip_noise_gamma >= 0,
           "min_snr_gamma, noise_offset and ip_noise_gamma must be 0 (off) or more")
    _check(e, not (c.cache_text_encoder_outputs and not c.network_train_unet_only),
           "cache_text_encoder_outputs needs frozen text encoders: set network_train_unet_only or turn caching off")
    if c.method == "dpo":
        _check(e, c.beta_dpo > 0, f"beta_dpo must be above 0, got {c.beta_dpo}")
        _check(e, c.kto_weight >= 0, f"kto_weight must be 0 (off) or more, got {c.kto_weight}")
        _check(e, c.network_train_unet_only, "dpo trains the UNet LoRA only (as the diffusers reference does)")
        for name in ("min_snr_gamma", "noise_offset", "ip_noise_gamma"):
            _check(e, not getattr(c, name), f"{name} is a supervised-loss setting; dpo does not use it")
        _check(e, not c.debiased_estimation_loss, "debiased_estimation_loss is a supervised-loss setting; dpo does not use it")
    if c.method == "sft":
        _check(e, not c.kto_weight, "kto_weight applies to dpo only")
    from .samples import sample_errors

    e.extend(sample_errors(c))
    if prediction_type == "v":
        # Offset noise is epsilon's workaround for a schedule whose last step is not pure noise; a zero-terminal-SNR
        # v-pred parent already samples from pure noise (Lin et al. 2023), and adding it shifts the training
        # distribution away from the one the parent samples from.
        _check(e, not c.noise_offset, "noise_offset is an epsilon-only setting: a v-prediction parent uses zero "
                                      "terminal SNR, set noise_offset to 0")
    else:
        _check(e, not c.scale_v_pred_loss_like_noise_pred,
               "scale_v_pred_loss_like_noise_pred is for v-prediction parents; this parent is epsilon")
    return e


def validate(config: TrainConfig, parent: ParentModel) -> None:
    """Raise TrainingError with every problem of ``config`` for ``parent`` (joined on one line)."""
    errors = config_errors(config, parent.prediction_type)
    if errors:
        raise TrainingError("; ".join(errors))


def parent_errors(parent: ParentModel) -> list[str]:
    """Problems with the parent files (missing, not SDXL, prediction type contradicting its own markers)."""
    from generation.pipelines.checkpoints import inspect_checkpoint
    from generation.pipelines.types import CheckpointError

    try:
        info = inspect_checkpoint(parent.path)
    except CheckpointError as exc:
        return [str(exc)]
    if info.prediction_type == "v" and parent.prediction_type == "eps":
        return [f"{Path(parent.path).name} marks itself v-prediction but the parent is given as eps: "
                "training it as epsilon would teach it the wrong target"]
    return []


def resume_fingerprint(config: TrainConfig, *, num_processes: int, dataset_sha256: str) -> dict:
    """What a checkpoint records so a resume with another schedule, data or process count is refused."""
    out = {name: getattr(config, name) for name in RESUME_LOCKED}
    out["num_processes"] = num_processes
    out["dataset_sha256"] = dataset_sha256
    return out


def to_json(obj) -> str:
    return json.dumps(dataclasses.asdict(obj), sort_keys=True)


def from_json(cls, text: str | dict):
    """A config dataclass from JSON (or a dict); unknown keys are an error, missing keys take defaults."""
    data = json.loads(text) if isinstance(text, str) else dict(text)
    names = {f.name for f in fields(cls) if f.init}
    unknown = sorted(set(data) - names - {"method"} if cls is RewardConfig else set(data) - names)
    if unknown:
        raise TrainingError(f"unknown {cls.__name__} setting(s): {', '.join(unknown)}")
    data = {k: v for k, v in data.items() if k in names}
    try:
        return cls(**data)
    except TypeError as exc:
        raise TrainingError(f"bad {cls.__name__}: {exc}") from None
