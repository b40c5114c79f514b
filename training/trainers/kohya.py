"""The trained LoRA as a kohya-format ``.safetensors`` that A1111, Forge and ComfyUI apply.

Keys are what kohya sd-scripts' networks/lora.py writes for SDXL: ``lora_unet_<SGM module path>`` (the original
UNet's ``input_blocks.4.1.transformer_blocks.0.attn1.to_q`` with dots as underscores -- diffusers'
``convert_state_dict_to_kohya`` keeps diffusers' ``down_blocks_1_attentions_0`` names, which those UIs do not
apply), ``lora_te1_text_model_...`` / ``lora_te2_text_model_...`` for the two text encoders, each with
``.lora_down.weight`` (peft's lora_A), ``.lora_up.weight`` (lora_B) and ``.alpha`` = the real network alpha (the
UIs scale by alpha / rank). Metadata are kohya's ``ss_*`` keys (as strings), the SAI model spec keys kohya adds,
and ``sshs_model_hash`` / ``sshs_legacy_hash`` computed the way kohya's ``precalculate_safetensors_hashes`` does.
"""

from __future__ import annotations

import hashlib
import io
import time
from pathlib import Path

from generation.pipelines.sgm import unet_module_to_kohya

from .parent import ADAPTER

PREFIXES = {"text_encoder": "lora_te1_", "text_encoder_2": "lora_te2_"}


def kohya_name(component: str, module_name: str, unet_config: dict) -> str:
    if component == "unet":
        return unet_module_to_kohya(module_name, unet_config)
    full = module_name if module_name.startswith("text_model.") else "text_model." + module_name
    return PREFIXES[component] + full.replace(".", "_")


def kohya_state_dict(modules: dict, *, alpha: float, unet_config: dict) -> dict:
    """{component: module with a peft adapter} -> kohya tensors (float32, CPU)."""
    import torch

    out = {}
    for component, module in modules.items():
        for name, layer in module.named_modules():
            lora_a = getattr(layer, "lora_A", None)
            if lora_a is None or ADAPTER not in lora_a:
                continue
            key = kohya_name(component, name, unet_config)
            if key in out:
                raise ValueError(f"two modules map to the kohya name {key}")
            out[f"{key}.lora_down.weight"] = lora_a[ADAPTER].weight.detach().float().cpu().contiguous()
            out[f"{key}.lora_up.weight"] = layer.lora_B[ADAPTER].weight.detach().float().cpu().contiguous()
            out[f"{key}.alpha"] = torch.tensor(float(alpha))
    return out


def addnet_hashes(tensors: dict, metadata: dict) -> tuple[str, str]:
    """kohya train_util.precalculate_safetensors_hashes: sha256 of the tensor bytes after the header (with only
    the ss_* metadata in the header), and the legacy hash of 64 KiB at 1 MiB."""
    from safetensors.torch import save

    data = save(tensors, {k: v for k, v in metadata.items() if k.startswith("ss_")})
    n = int.from_bytes(data[:8], "little")
    new = hashlib.sha256(data[8 + n:]).hexdigest()
    buf = io.BytesIO(data)
    buf.seek(0x100000)
    legacy = hashlib.sha256(buf.read(0x10000)).hexdigest()[:8]
    return new, legacy


def legacy_model_hash(path: str) -> str:
    """kohya train_util.model_hash (A1111's old hash): sha256 of 64 KiB at 1 MiB, 8 hex digits."""
    p = Path(path)
    if p.is_dir():
        return "IsADirectory"  # what kohya writes for a diffusers folder
    with open(p, "rb") as fh:
        fh.seek(0x100000)
        return hashlib.sha256(fh.read(0x10000)).hexdigest()[:8]


def kohya_metadata(config, *, parent, dataset_info, steps: int, num_images: int, started_at: float,
                   num_processes: int, extra: dict | None = None) -> dict[str, str]:
    c = config
    v = parent.v_prediction
    meta = {
        "ss_training_started_at": started_at, "ss_training_finished_at": time.time(),
        "ss_output_name": c.output_name, "ss_learning_rate": c.learning_rate, "ss_unet_lr": c.learning_rate,
        "ss_text_encoder_lr": None if c.network_train_unet_only else (c.text_encoder_lr or c.learning_rate),
        "ss_num_train_images": num_images, "ss_max_train_steps": c.max_train_steps, "ss_steps": steps,
        "ss_gradient_checkpointing": c.gradient_checkpointing,
        "ss_gradient_accumulation_steps": c.gradient_accumulation_steps,
        "ss_lr_warmup_steps": c.lr_warmup_steps, "ss_lr_scheduler": c.lr_scheduler,
        "ss_network_module": "networks.lora", "ss_network_dim": c.network_dim, "ss_network_alpha": c.network_alpha,
        "ss_network_dropout": None, "ss_mixed_precision": c.mixed_precision, "ss_full_fp16": False, "ss_v2": False,
        "ss_base_model_version": "sdxl_base_v1-0", "ss_cache_latents": c.cache_latents, "ss_seed": c.seed,
        "ss_noise_offset": c.noise_offset or None, "ss_ip_noise_gamma": c.ip_noise_gamma or None,
        "ss_min_snr_gamma": c.min_snr_gamma or None, "ss_debiased_estimation": c.debiased_estimation_loss,
        "ss_zero_terminal_snr": v, "ss_v_parameterization": v,
        "ss_scale_v_pred_loss_like_noise_pred": bool(v and (c.method == "dpo" or c.scale_v_pred_loss_like_noise_pred)),
        "ss_optimizer": f"torch.optim.adamw.AdamW(weight_decay={c.adam_weight_decay},betas=({c.adam_beta1}, "
                        f"{c.adam_beta2}),eps={c.adam_epsilon})",
        "ss_max_grad_norm": c.max_grad_norm, "ss_resolution": f"({c.resolution}, {c.resolution})",
        "ss_batch_size_per_device": c.train_batch_size,
        "ss_total_batch_size": c.train_batch_size * c.gradient_accumulation_steps * num_processes,
        "ss_sd_model_name": Path(parent.spec.path).name, "ss_sd_model_hash": legacy_model_hash(parent.spec.path),
        "ss_new_sd_model_hash": parent.sha256,
        "ss_dataset_hash": dataset_info.sha256, "ss_vote_log_hash": dataset_info.vote_log_hash,
        "ss_training_method": "diffusion-dpo" if c.method == "dpo" else "supervised",
        "ss_beta_dpo": c.beta_dpo if c.method == "dpo" else None,
        "ss_training_comment": f"arena {c.method} LoRA from preference dataset {dataset_info.sha256[:12]}",
        "modelspec.sai_model_spec": "1.0.1", "modelspec.architecture": "stable-diffusion-xl-v1-base/lora",
        "modelspec.implementation": "https://github.com/Stability-AI/generative-models",
        "modelspec.title": c.output_name, "modelspec.resolution": f"{c.resolution}x{c.resolution}",
        "modelspec.prediction_type": "v" if v else "epsilon",
    }
    meta.update(extra or {})
    return {k: str(val) for k, val in meta.items()}


def save_kohya_lora(path, modules: dict, *, alpha: float, unet_config: dict, metadata: dict) -> dict:
    """Write the kohya file atomically; returns its tensors (for the caller's checks)."""
    import os

    from safetensors.torch import save_file

    tensors = kohya_state_dict(modules, alpha=alpha, unet_config=unet_config)
    meta = dict(metadata)
    meta["sshs_model_hash"], meta["sshs_legacy_hash"] = addnet_hashes(tensors, meta)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.chmod(tmp, 0o644)  # safetensors writes 0600; the web tier and other workers read this file
    os.replace(tmp, path)
    return tensors


def read_metadata(path) -> dict:
    from generation.pipelines.checkpoints import read_safetensors_header

    return read_safetensors_header(path)[1]
