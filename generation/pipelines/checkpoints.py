"""Checking a checkpoint before it is registered or loaded. Reads only file headers: no torch, cheap, safe."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from .sgm import SDXL_REQUIRED_KEYS
from .types import CheckpointError, CheckpointInfo

MAX_HEADER_BYTES = 100 * 1024 * 1024
SINGLE_FILE_SUFFIXES = (".safetensors", ".sft")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
DIFFUSERS_COMPONENTS = ("unet", "vae", "text_encoder", "text_encoder_2")


def read_safetensors_header(path: str | os.PathLike) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """(tensor name -> shape, metadata) from a .safetensors file's header; CheckpointError if unreadable."""
    name = Path(path).name
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise CheckpointError(f"unreadable checkpoint {name}: file is empty or truncated")
            (length,) = struct.unpack("<Q", head)
            if length <= 1 or length > MAX_HEADER_BYTES or 8 + length > size:
                raise CheckpointError(f"unreadable checkpoint {name}: not a safetensors file (bad header length)")
            header = json.loads(fh.read(length).decode("utf-8"))
    except CheckpointError:
        raise
    except PermissionError:
        raise CheckpointError(f"unreadable checkpoint {name}: permission denied") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"unreadable checkpoint {name}: {type(exc).__name__}: {exc}") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"unreadable checkpoint {name}: header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    shapes: dict[str, tuple[int, ...]] = {}
    end = 0
    for key, entry in header.items():
        try:
            shapes[key] = tuple(int(d) for d in entry["shape"])
            end = max(end, int(entry["data_offsets"][1]))
        except (KeyError, TypeError, ValueError, IndexError):
            raise CheckpointError(f"unreadable checkpoint {name}: malformed entry for tensor {key!r}") from None
    if 8 + length + end > size:
        raise CheckpointError(f"unreadable checkpoint {name}: file is truncated ({size} bytes, needs {8 + length + end})")
    return shapes, {str(k): str(v) for k, v in metadata.items()}


def _inspect_single_file(path: Path) -> CheckpointInfo:
    from .configs import guess_bundled_config

    shapes, metadata = read_safetensors_header(path)
    missing = [what for what, key in SDXL_REQUIRED_KEYS.items() if key not in shapes]
    if missing:
        if len(missing) == len(SDXL_REQUIRED_KEYS):
            raise CheckpointError(f"not an SDXL checkpoint: {path.name} has none of the SDXL UNet/VAE/text encoder keys")
        raise CheckpointError(f"not a complete SDXL checkpoint: {path.name} lacks the {', '.join(missing)} weights")
    notes = []
    v_pred = "v_pred" in shapes
    ztsnr = "ztsnr" in shapes
    if v_pred:
        notes.append("v_pred marker key: v-prediction")
    if ztsnr:
        notes.append("ztsnr marker key: zero terminal SNR")
    if metadata.get("modelspec.prediction_type") in ("v", "v_prediction") and not v_pred:
        v_pred = True
        notes.append("metadata says v-prediction")
    bundled = guess_bundled_config(shapes)
    if bundled:
        notes.append(f"loads with the bundled {bundled} config")
    else:
        notes.append("no bundled config fits its shapes: give a local diffusers config folder")
    return CheckpointInfo("single_file", "v" if v_pred else "eps", ztsnr, tuple(notes))


def _has_weights(folder: Path) -> bool:
    return any(
        p.suffix in (".safetensors", ".bin") or p.name.endswith(".index.json") for p in folder.iterdir() if p.is_file()
    )


def _inspect_diffusers_folder(path: Path) -> CheckpointInfo:
    index = path / "model_index.json"
    if not index.is_file():
        raise CheckpointError(f"not a diffusers folder: {path} has no model_index.json")
    try:
        model_index = json.loads(index.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"unreadable model_index.json in {path}: {exc}") from None
    missing = []
    for name in DIFFUSERS_COMPONENTS:
        sub = path / name
        if name not in model_index or not (sub / "config.json").is_file() or not _has_weights(sub):
            missing.append(name)
    if missing:
        raise CheckpointError(f"not a complete SDXL diffusers folder: {path.name} lacks {', '.join(missing)} (config and weights)")
    for name in ("tokenizer", "tokenizer_2", "scheduler"):
        if not (path / name).is_dir():
            raise CheckpointError(f"not a complete SDXL diffusers folder: {path.name} lacks {name}/")
    notes = [f"pipeline class {model_index.get('_class_name', '?')}"]
    scheduler = {}
    try:
        scheduler = json.loads((path / "scheduler" / "scheduler_config.json").read_text())
    except (OSError, ValueError):
        notes.append("no readable scheduler config: prediction type assumed epsilon")
    v_pred = scheduler.get("prediction_type") == "v_prediction"
    ztsnr = bool(scheduler.get("rescale_betas_zero_snr"))
    if v_pred:
        notes.append("scheduler config: v-prediction")
    if ztsnr:
        notes.append("scheduler config: zero terminal SNR")
    return CheckpointInfo("diffusers", "v" if v_pred else "eps", ztsnr, tuple(notes))


def inspect_checkpoint(path: str) -> CheckpointInfo:
    """What a checkpoint is (single file or diffusers folder; epsilon or v; zero terminal SNR), or CheckpointError.

    Detects the ``v_pred`` / ``ztsnr`` marker keys of single files. Errors are one line: missing path, not a
    safetensors file / diffusers folder, unreadable, missing SDXL keys (UNet, VAE, both text encoders).
    """
    if not path or not str(path).strip():
        raise CheckpointError("no checkpoint path given")
    p = Path(str(path).strip()).expanduser()
    if not p.exists():
        raise CheckpointError(f"checkpoint not found: {p}")
    if p.is_dir():
        return _inspect_diffusers_folder(p)
    if p.suffix.lower() in PICKLE_SUFFIXES:
        raise CheckpointError(f"{p.name}: pickled checkpoints are not loaded (unsafe); convert it to .safetensors")
    if p.suffix.lower() not in SINGLE_FILE_SUFFIXES:
        raise CheckpointError(f"not a .safetensors file or a diffusers folder: {p.name}")
    return _inspect_single_file(p)
