"""Local diffusers config folders for SDXL single-file checkpoints, built without any hub.

``from_single_file(path, config=<folder>)`` needs a diffusers folder with model_index.json, the component
configs, the tokenizers and the scheduler config (no weights). We ship two, as Python data:

* ``sdxl``: the configs of stable-diffusion-xl-base-1.0, which every Illustrious / NoobAI / Pony checkpoint
  shares, so a real single-file checkpoint loads with no config download;
* ``tiny``: the small SDXL-shaped model ``make_tiny_models`` builds.

Tokenizers are CLIPTokenizers built from the BPE vocabulary open_clip ships (the same vocabulary as OpenAI
CLIP / SDXL's two tokenizers), written as vocab.json / merges.txt.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

CLIP_VOCAB_SIZE = 49408
BOS, EOS = "<|startoftext|>", "<|endoftext|>"

SCHEDULER_SDXL = {
    "_class_name": "EulerDiscreteScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "sample_max_value": 1.0,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "trained_betas": None,
    "use_karras_sigmas": False,
}

SDXL = {
    "unet": {
        "_class_name": "UNet2DConditionModel",
        "act_fn": "silu",
        "addition_embed_type": "text_time",
        "addition_embed_type_num_heads": 64,
        "addition_time_embed_dim": 256,
        "attention_head_dim": [5, 10, 20],
        "block_out_channels": [320, 640, 1280],
        "center_input_sample": False,
        "cross_attention_dim": 2048,
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "downsample_padding": 1,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "in_channels": 4,
        "layers_per_block": 2,
        "mid_block_scale_factor": 1,
        "mid_block_type": "UNetMidBlock2DCrossAttn",
        "norm_eps": 1e-05,
        "norm_num_groups": 32,
        "out_channels": 4,
        "projection_class_embeddings_input_dim": 2816,
        "sample_size": 128,
        "transformer_layers_per_block": [1, 2, 10],
        "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        "use_linear_projection": True,
    },
    "vae": {
        "_class_name": "AutoencoderKL",
        "act_fn": "silu",
        "block_out_channels": [128, 256, 512, 512],
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "force_upcast": True,
        "in_channels": 3,
        "latent_channels": 4,
        "layers_per_block": 2,
        "norm_num_groups": 32,
        "out_channels": 3,
        "sample_size": 1024,
        "scaling_factor": 0.13025,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
    },
    "text_encoder": {
        "architectures": ["CLIPTextModel"],
        "bos_token_id": 0,
        "eos_token_id": 2,
        "pad_token_id": 1,
        "hidden_act": "quick_gelu",
        "hidden_size": 768,
        "intermediate_size": 3072,
        "max_position_embeddings": 77,
        "num_attention_heads": 12,
        "num_hidden_layers": 12,
        "projection_dim": 768,
        "vocab_size": CLIP_VOCAB_SIZE,
    },
    "text_encoder_2": {
        "architectures": ["CLIPTextModelWithProjection"],
        "bos_token_id": 0,
        "eos_token_id": 2,
        "pad_token_id": 1,
        "hidden_act": "gelu",
        "hidden_size": 1280,
        "intermediate_size": 5120,
        "max_position_embeddings": 77,
        "num_attention_heads": 20,
        "num_hidden_layers": 32,
        "projection_dim": 1280,
        "vocab_size": CLIP_VOCAB_SIZE,
    },
    "scheduler": SCHEDULER_SDXL,
}

# Tiny, SDXL-shaped: same classes and block layout (3 UNet levels, 2 layers per block, text_time added
# conditioning, 4 VAE levels = 8x downsampling), tiny widths. The two text encoders have different widths
# (as CLIP-L 768 / bigG 1280 do): diffusers tells them apart in a single file by that width.
TINY = {
    "unet": {
        **SDXL["unet"],
        "attention_head_dim": [2, 4, 4],
        "block_out_channels": [32, 64, 64],
        "cross_attention_dim": 96,
        # 8 groups (4-8 channels each), not SDXL's 32: GroupNorm(32, 32) is a per-channel instance norm, which
        # removes each channel's mean and left the pre-trained tiny model unable to say "red" everywhere
        "norm_num_groups": 8,
        "addition_time_embed_dim": 8,
        "projection_class_embeddings_input_dim": 64 + 6 * 8,
        "sample_size": 32,
        "transformer_layers_per_block": [1, 1, 2],
    },
    "vae": {
        **SDXL["vae"],
        "block_out_channels": [8, 16, 32, 32],
        "force_upcast": False,
        "layers_per_block": 1,
        # one group: with 8 groups on 8 channels the decoder's last norm removed every channel's mean (colour)
        "norm_num_groups": 1,
        "sample_size": 256,
    },
    "text_encoder": {
        **SDXL["text_encoder"],
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_attention_heads": 2,
        "num_hidden_layers": 3,
        "projection_dim": 32,
    },
    "text_encoder_2": {
        **SDXL["text_encoder_2"],
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_hidden_layers": 3,
        "projection_dim": 64,
    },
    "scheduler": SCHEDULER_SDXL,
}

BUNDLED = {"sdxl": SDXL, "tiny": TINY}

MODEL_INDEX = {
    "_class_name": "StableDiffusionXLPipeline",
    "force_zeros_for_empty_prompt": True,
    "feature_extractor": [None, None],
    "image_encoder": [None, None],
    "scheduler": ["diffusers", "EulerDiscreteScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "tokenizer_2": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}


def _bytes_to_unicode() -> dict[int, str]:
    # the reversible byte <-> unicode table of OpenAI CLIP's simple_tokenizer (also in open_clip)
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def _open_clip_bpe_path() -> Path:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("open_clip_torch is not installed: it ships the CLIP BPE vocabulary the tokenizers use")
    path = Path(list(spec.submodule_search_locations)[0]) / "bpe_simple_vocab_16e6.txt.gz"
    if not path.is_file():
        raise RuntimeError(f"open_clip's BPE vocabulary is missing: {path}")
    return path


@lru_cache(maxsize=1)
def clip_vocab_and_merges() -> tuple[dict[str, int], list[str]]:
    """OpenAI CLIP's vocab (49408 entries, same ids as SDXL's tokenizers) and merges, from open_clip's file."""
    lines = gzip.open(_open_clip_bpe_path()).read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    symbols = list(_bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges] + [BOS, EOS]
    assert len(vocab) == CLIP_VOCAB_SIZE, len(vocab)
    return {tok: i for i, tok in enumerate(vocab)}, merges


def write_tokenizer(folder: Path, *, pad_token: str) -> None:
    """A CLIPTokenizer in ``folder`` (vocab.json, merges.txt, configs). SDXL's tokenizer_2 pads with "!"."""
    from transformers import CLIPTokenizer

    vocab, merges = clip_vocab_and_merges()
    folder.mkdir(parents=True, exist_ok=True)
    tok = CLIPTokenizer(
        vocab=dict(vocab),
        merges=[tuple(m.split()) for m in merges],
        bos_token=BOS,
        eos_token=EOS,
        unk_token=EOS,
        pad_token=pad_token,
        model_max_length=77,
    )
    tok.save_pretrained(str(folder))


def write_config_folder(folder: str | os.PathLike, configs: dict, *, prediction_type: str = "epsilon") -> Path:
    """A diffusers SDXL folder without weights: what ``from_single_file(config=...)`` reads."""
    from diffusers import __version__ as diffusers_version
    from transformers import CLIPTextConfig

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model_index.json").write_text(
        json.dumps({**MODEL_INDEX, "_diffusers_version": diffusers_version}, indent=2)
    )
    for name in ("unet", "vae"):
        (folder / name).mkdir(exist_ok=True)
        cfg = {**configs[name], "_diffusers_version": diffusers_version}
        (folder / name / "config.json").write_text(json.dumps(cfg, indent=2))
    sched = {**configs["scheduler"], "_diffusers_version": diffusers_version}
    if prediction_type == "v_prediction":
        sched.update(prediction_type="v_prediction", rescale_betas_zero_snr=True, timestep_spacing="trailing")
    (folder / "scheduler").mkdir(exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(sched, indent=2))
    for name in ("text_encoder", "text_encoder_2"):
        cfg = dict(configs[name])
        cfg.pop("architectures", None)
        CLIPTextConfig(**cfg, architectures=configs[name]["architectures"]).save_pretrained(str(folder / name))
    write_tokenizer(folder / "tokenizer", pad_token=EOS)
    write_tokenizer(folder / "tokenizer_2", pad_token="!")
    return folder


def _fingerprint(configs: dict) -> str:
    return hashlib.sha256(json.dumps(configs, sort_keys=True).encode()).hexdigest()[:12]


def bundled_config_dir(name: str) -> Path:
    """Materialise the bundled config ``name`` ("sdxl" or "tiny") once per machine and return its folder.

    Written under ARENA_CONFIG_CACHE (default: <tmp>/arena-sdxl-configs), atomically, so concurrent workers
    never see half a folder.
    """
    configs = BUNDLED[name]
    root = Path(os.environ.get("ARENA_CONFIG_CACHE") or Path(tempfile.gettempdir()) / "arena-sdxl-configs")
    target = root / f"{name}-{_fingerprint(configs)}"
    if (target / "model_index.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        write_config_folder(staging, configs)
        try:
            os.replace(staging, target)
        except OSError:
            if not (target / "model_index.json").is_file():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def guess_bundled_config(shapes: dict[str, tuple[int, ...]]) -> str | None:
    """Which bundled config fits a single file, from its tensor shapes (None: neither)."""
    from .sgm import TE1_PREFIX, TE2_PREFIX, UNET_PREFIX

    conv_in = shapes.get(UNET_PREFIX + "input_blocks.0.0.weight")
    te1 = shapes.get(TE1_PREFIX + "text_model.embeddings.position_embedding.weight")
    te2 = shapes.get(TE2_PREFIX + "positional_embedding")
    if not (conv_in and te1 and te2):
        return None
    for name, cfg in BUNDLED.items():
        if (
            conv_in[0] == cfg["unet"]["block_out_channels"][0]
            and te1[-1] == cfg["text_encoder"]["hidden_size"]
            and te2[-1] == cfg["text_encoder_2"]["hidden_size"]
        ):
            return name
    return None
