"""Diffusers -> original SGM/A1111 single-file key layout for SDXL.

The inverse of diffusers' ``from_single_file`` conversion (diffusers/loaders/single_file_utils.py:
``convert_ldm_unet_checkpoint``, ``convert_ldm_vae_checkpoint``, ``convert_ldm_clip_checkpoint`` and
``convert_open_clip_checkpoint``). It is generic over the UNet/VAE configs, so the tiny models are written in
exactly the layout real Illustrious / SDXL checkpoints use, and loading them exercises the real conversion code.

Also: the names of the SDXL keys a usable single file must carry, used by ``inspect_checkpoint``.
"""

from __future__ import annotations

import re

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TE1_PREFIX = "conditioner.embedders.0.transformer."
TE2_PREFIX = "conditioner.embedders.1.model."

# one representative key per SDXL component (what a single file needs to be loadable as SDXL)
SDXL_REQUIRED_KEYS = {
    "UNet": UNET_PREFIX + "input_blocks.0.0.weight",
    "UNet added conditioning (SDXL label_emb)": UNET_PREFIX + "label_emb.0.0.weight",
    "VAE": VAE_PREFIX + "encoder.conv_in.weight",
    "first text encoder (CLIP-L)": TE1_PREFIX + "text_model.embeddings.position_embedding.weight",
    "second text encoder (OpenCLIP bigG)": TE2_PREFIX + "positional_embedding",
}

_UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "time_emb_proj": "emb_layers.1",
    "conv_shortcut": "skip_connection",
}


def _resnet(rest: str, table: dict[str, str]) -> str:
    head, _, tail = rest.partition(".")
    return f"{table.get(head, head)}.{tail}"


def unet_to_sgm(state_dict: dict, config: dict) -> dict:
    """Diffusers UNet2DConditionModel state dict -> ``model.diffusion_model.*`` keys."""
    per_block = int(config["layers_per_block"]) + 1
    up_has_attn = ["CrossAttn" in t for t in config["up_block_types"]]
    out = {}
    for key, value in state_dict.items():
        new = None
        module, _, param = key.rpartition(".")
        if module in _UNET_TOP:
            new = f"{_UNET_TOP[module]}.{param}"
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            b, j, rest = int(m[1]), int(m[2]), m[3]
            new = f"input_blocks.{1 + b * per_block + j}.0.{_resnet(rest, _UNET_RESNET)}"
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
            b, j, rest = int(m[1]), int(m[2]), m[3]
            new = f"input_blocks.{1 + b * per_block + j}.1.{rest}"
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
            b, rest = int(m[1]), m[2]
            new = f"input_blocks.{(b + 1) * per_block}.0.op.{rest}"
        elif m := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", key):
            j, rest = int(m[1]), m[2]
            new = f"middle_block.{0 if j == 0 else 2}.{_resnet(rest, _UNET_RESNET)}"
        elif m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", key):
            new = f"middle_block.1.{m[1]}"
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            b, j, rest = int(m[1]), int(m[2]), m[3]
            new = f"output_blocks.{b * per_block + j}.0.{_resnet(rest, _UNET_RESNET)}"
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
            b, j, rest = int(m[1]), int(m[2]), m[3]
            new = f"output_blocks.{b * per_block + j}.1.{rest}"
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
            b, rest = int(m[1]), m[2]
            slot = 2 if up_has_attn[b] else 1
            new = f"output_blocks.{b * per_block + per_block - 1}.{slot}.conv.{rest}"
        if new is None:
            raise ValueError(f"no SGM name for UNet key {key}")
        out[UNET_PREFIX + new] = value
    return out


_VAE_TOP = {
    "encoder.conv_norm_out": "encoder.norm_out",
    "decoder.conv_norm_out": "decoder.norm_out",
}
_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def vae_to_sgm(state_dict: dict, config: dict) -> dict:
    """Diffusers AutoencoderKL state dict -> ``first_stage_model.*`` keys (attention as 1x1 convs)."""
    n_up = len(config["up_block_types"])
    out = {}
    for key, value in state_dict.items():
        module, _, param = key.rpartition(".")
        new = None
        if module in _VAE_TOP:
            new = f"{_VAE_TOP[module]}.{param}"
        elif re.fullmatch(r"(encoder|decoder)\.(conv_in|conv_out)|quant_conv|post_quant_conv", module):
            new = key
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            new = f"encoder.down.{m[1]}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
            new = f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            new = f"decoder.up.{n_up - 1 - int(m[1])}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
            new = f"decoder.up.{n_up - 1 - int(m[1])}.upsample.conv.{m[2]}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key):
            new = f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)", key):
            new = f"{m[1]}.mid.attn_1.{_VAE_ATTN[m[2]]}.{m[3]}"
            if m[3] == "weight" and m[2] != "group_norm" and value.ndim == 2:
                value = value[:, :, None, None]
        if new is None:
            raise ValueError(f"no SGM name for VAE key {key}")
        out[VAE_PREFIX + new] = value
    return out


def clip_l_to_sgm(state_dict: dict) -> dict:
    """transformers CLIPTextModel -> ``conditioner.embedders.0.transformer.text_model.*``."""
    out = {}
    for key, value in state_dict.items():
        if key.endswith("position_ids"):
            continue
        name = key if key.startswith("text_model.") else "text_model." + key
        out[TE1_PREFIX + name] = value
    return out


_OPENCLIP_LAYER = [
    ("layer_norm1", "ln_1"),
    ("layer_norm2", "ln_2"),
    ("mlp.fc1", "mlp.c_fc"),
    ("mlp.fc2", "mlp.c_proj"),
    ("self_attn.out_proj", "attn.out_proj"),
]


def clip_g_to_sgm(state_dict: dict) -> dict:
    """transformers CLIPTextModelWithProjection -> open_clip layout under ``conditioner.embedders.1.model.``."""
    import torch

    sd = {k.removeprefix("text_model."): v for k, v in state_dict.items() if not k.endswith("position_ids")}
    out = {}
    qkv: dict[tuple[int, str], dict[str, object]] = {}
    for key, value in sd.items():
        new = None
        if key == "embeddings.token_embedding.weight":
            new = "token_embedding.weight"
        elif key == "embeddings.position_embedding.weight":
            new = "positional_embedding"
        elif key.startswith("final_layer_norm."):
            new = "ln_final." + key.rpartition(".")[2]
        elif key == "text_projection.weight":
            new, value = "text_projection", value.T.contiguous()
        elif m := re.fullmatch(r"encoder\.layers\.(\d+)\.self_attn\.(q|k|v)_proj\.(weight|bias)", key):
            qkv.setdefault((int(m[1]), m[3]), {})[m[2]] = value
            continue
        elif m := re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)", key):
            rest = m[2]
            for old, repl in _OPENCLIP_LAYER:
                if rest.startswith(old + "."):
                    rest = repl + rest[len(old):]
                    break
            new = f"transformer.resblocks.{m[1]}.{rest}"
        if new is None:
            raise ValueError(f"no open_clip name for text encoder key {key}")
        out[TE2_PREFIX + new] = value
    for (layer, kind), parts in qkv.items():
        out[TE2_PREFIX + f"transformer.resblocks.{layer}.attn.in_proj_{kind}"] = torch.cat(
            [parts["q"], parts["k"], parts["v"]], dim=0
        )
    return out


def pipeline_to_sgm(pipe) -> dict:
    """A StableDiffusionXLPipeline -> one SGM/A1111 state dict (UNet, VAE, both text encoders)."""
    sd = {}
    sd.update(unet_to_sgm(pipe.unet.state_dict(), dict(pipe.unet.config)))
    sd.update(vae_to_sgm(pipe.vae.state_dict(), dict(pipe.vae.config)))
    sd.update(clip_l_to_sgm(pipe.text_encoder.state_dict()))
    sd.update(clip_g_to_sgm(pipe.text_encoder_2.state_dict()))
    return {k: v.detach().contiguous() for k, v in sd.items()}


def unet_module_to_kohya(module: str, config: dict) -> str:
    """Diffusers UNet module path -> kohya LoRA name (``lora_unet_`` + SGM path with underscores)."""
    sgm = unet_to_sgm({module + ".weight": None}, config)
    (key,) = sgm
    return "lora_unet_" + key.removeprefix(UNET_PREFIX).removesuffix(".weight").replace(".", "_")
