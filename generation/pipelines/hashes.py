"""A1111's short hashes of checkpoints and LoRAs (the PNG record's ``Model hash`` and ``Lora hashes``), and the
variant a prompt's LoRA tags make. Pure Python (hashlib): the web tier computes hashes once, at registration.

* ``Model hash``: the first 10 hex digits of the sha256 of the whole file (A1111's ``CheckpointInfo.shorthash``;
  civitai's "AutoV2");
* ``Lora hashes``: for a .safetensors LoRA, its ``sshs_model_hash`` metadata if it has one, else the sha256 of the
  bytes after the header (kohya's "addnet" hash, A1111's ``addnet_hash_safetensors``); the first 12 hex digits.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from .types import GenerationError, LoraSpec, VariantSpec

BLOCK = 1024 * 1024
MODEL_HASH_LENGTH = 10
LORA_HASH_LENGTH = 12


def file_sha256(path: str | Path, *, skip_safetensors_header: bool = False) -> str:
    """Hex sha256 of a file, or of what follows its safetensors header."""
    p = Path(path)
    digest = hashlib.sha256()
    try:
        with open(p, "rb") as fh:
            if skip_safetensors_header:
                head = fh.read(8)
                if len(head) < 8:
                    raise GenerationError(f"{p.name} is not a safetensors file (too short)")
                fh.seek(8 + struct.unpack("<Q", head)[0])
            for block in iter(lambda: fh.read(BLOCK), b""):
                digest.update(block)
    except OSError as exc:
        raise GenerationError(f"cannot read {p.name} to hash it: {exc.strerror or exc}") from None
    return digest.hexdigest()


def model_short_hash(path: str | Path) -> str | None:
    """A1111's ``Model hash`` of a single-file checkpoint; None for a diffusers folder (A1111 has no hash for one)."""
    p = Path(path)
    if p.is_dir():
        return None
    return file_sha256(p)[:MODEL_HASH_LENGTH]


def _lora_file(path: str | Path) -> Path:
    p = Path(path)
    if p.is_dir():
        candidates = [p / "pytorch_lora_weights.safetensors"] + sorted(p.glob("*.safetensors"))
        files = [c for c in candidates if c.is_file()]
        if not files:
            raise GenerationError(f"no .safetensors LoRA file in folder {p}")
        return files[0]
    return p


def _safetensors_metadata(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            length = struct.unpack("<Q", fh.read(8))[0]
            return json.loads(fh.read(length)).get("__metadata__") or {}
    except (OSError, ValueError, struct.error):
        return {}


def lora_short_hash(path: str | Path) -> str:
    """A1111's short hash of a LoRA as written in ``Lora hashes``."""
    p = _lora_file(path)
    if p.suffix.lower() != ".safetensors":
        return file_sha256(p)[:LORA_HASH_LENGTH]
    own = str(_safetensors_metadata(p).get("sshs_model_hash") or "")
    return (own or file_sha256(p, skip_safetensors_header=True))[:LORA_HASH_LENGTH]


def with_prompt_loras(spec: VariantSpec, loras: Sequence[LoraSpec]) -> VariantSpec:
    """The variant with a prompt's LoRAs fused on top of its own (its key says which), e.g. for
    ``<lora:name:0.8>`` tags the web tier resolved to files. Equal LoRA lists give equal specs (one cache entry)."""
    loras = tuple(loras)
    if not loras:
        return spec
    digest = hashlib.sha256(json.dumps([(l.path, l.weight, l.unet_weight) for l in loras]).encode()).hexdigest()[:12]
    return replace(spec, key=f"{spec.key}+loras-{digest}", loras=spec.loras + loras)
