"""A local open_clip model for the aesthetic score and the prompt alignment. Never reaches a model hub.

The folder holds either open_clip's hub layout (``open_clip_config.json`` with ``model_cfg`` and optional
``preprocess_cfg``) or ``config.json`` naming a built-in architecture (``{"model_name": "ViT-L-14"}``), plus a
state-dict weights file (see :mod:`generation.scoring.files`). torch and open_clip are imported lazily.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from generation.scoring.ccip import to_rgb_on_white
from generation.scoring.files import OPEN_CLIP_CONFIGS, OPEN_CLIP_WEIGHTS, ScorerBroken, ScorerUnavailable


class _QuietOpenClip(logging.Filter):
    """open_clip logs every loading step to the root logger, and warns "initialized randomly" before we load
    the weights ourselves; keep its INFO and that warning out of the worker log."""

    def filter(self, record: logging.LogRecord) -> bool:
        from_open_clip = "/open_clip/" in record.pathname.replace("\\", "/")
        return not (from_open_clip and record.levelno <= logging.WARNING)


@contextmanager
def _quiet_open_clip():
    quiet = _QuietOpenClip()
    root = logging.getLogger()
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)


def resolve_device(device: str) -> str:
    import torch

    if device in ("", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class OpenClipModel:
    """Image and text embeddings (L2-normalised) from a local open_clip checkpoint."""

    def __init__(self, folder: Path | str, *, device: str = "cpu", batch_size: int = 16):
        folder = Path(folder)
        config_path = next((folder / n for n in OPEN_CLIP_CONFIGS if (folder / n).is_file()), None)
        weights = next((folder / n for n in OPEN_CLIP_WEIGHTS if (folder / n).is_file()), None)
        if config_path is None or weights is None:
            raise ScorerUnavailable(f"open_clip folder {folder} needs a config ({' or '.join(OPEN_CLIP_CONFIGS)}) "
                                    f"and weights (one of {', '.join(OPEN_CLIP_WEIGHTS)})")
        try:
            import open_clip
            import torch
        except ImportError:  # pragma: no cover - workers install the gpu extra
            raise ScorerUnavailable("open_clip scorers need torch and open_clip_torch (the package's gpu extra)") from None
        self.folder = folder
        self.batch_size = max(1, int(batch_size))
        self.device = resolve_device(device)
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ScorerBroken(f"open_clip: {config_path} is not readable JSON ({exc})") from None
        if config_path.name == "open_clip_config.json":
            if not isinstance(config, dict) or not isinstance(config.get("model_cfg"), dict):
                raise ScorerBroken(f"open_clip: {config_path} has no \"model_cfg\"")
            name = f"local-dir:{folder}"
            model_cfg = config["model_cfg"]
        else:
            name = config.get("model_name") if isinstance(config, dict) else None
            if not isinstance(name, str) or name not in open_clip.list_models():
                raise ScorerBroken(f"open_clip: {config_path} must name a built-in architecture as \"model_name\" "
                                   f"(got {name!r})")
            model_cfg = open_clip.get_model_config(name) or {}
        try:
            with _quiet_open_clip():
                model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=None, load_weights=False)
                open_clip.load_checkpoint(model, str(weights), strict=True)
                self.tokenizer = open_clip.get_tokenizer(name)
        except Exception as exc:
            raise ScorerBroken(f"open_clip: cannot load {weights.name} with {config_path.name} in {folder}: {exc}") from None
        model.eval()
        self.model = model.to(self.device)
        self.preprocess = preprocess
        self.embed_dim = int(model_cfg["embed_dim"]) if "embed_dim" in model_cfg else None
        self._torch = torch

    def image_embeddings(self, images: Sequence[PILImage.Image]) -> np.ndarray:
        torch = self._torch
        rows = []
        for start in range(0, len(images), self.batch_size):
            batch = torch.stack([self.preprocess(to_rgb_on_white(im)) for im in images[start:start + self.batch_size]])
            try:
                with torch.inference_mode():
                    emb = self.model.encode_image(batch.to(self.device), normalize=True)
            except Exception as exc:
                raise ScorerBroken(f"open_clip: encoding images failed: {exc}") from None
            rows.append(emb.float().cpu().numpy())
        return np.concatenate(rows) if rows else np.zeros((0, 0), dtype=np.float32)

    def text_embeddings(self, texts: Sequence[str]) -> np.ndarray:
        torch = self._torch
        rows = []
        for start in range(0, len(texts), self.batch_size):
            tokens = self.tokenizer([prompt_for_clip(t) for t in texts[start:start + self.batch_size]])
            try:
                with torch.inference_mode():
                    emb = self.model.encode_text(tokens.to(self.device), normalize=True)
            except Exception as exc:
                raise ScorerBroken(f"open_clip: encoding prompts failed: {exc}") from None
            rows.append(emb.float().cpu().numpy())
        return np.concatenate(rows) if rows else np.zeros((0, 0), dtype=np.float32)


def prompt_for_clip(text: str) -> str:
    """The prompt as CLIP should read it: A1111 ``BREAK`` separators become commas (CLIP reads one 77-token
    chunk; the tokenizer truncates longer prompts)."""
    return re.sub(r"\s*\bBREAK\b\s*", ", ", text).strip(" ,")


# --- tiny open_clip model, for the demo and the tests -----------------------------------------------------------

TINY_OPEN_CLIP_CONFIG = {
    "model_cfg": {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
        "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    },
    "preprocess_cfg": {
        "mean": [0.48145466, 0.4578275, 0.40821073],
        "std": [0.26862954, 0.26130258, 0.27577711],
        "interpolation": "bicubic",
        "resize_mode": "shortest",
    },
}


def tiny_open_clip_write(folder: Path | str, *, seed: int = 0) -> Path:
    """Write a tiny open_clip model (random weights, open_clip's own BPE tokenizer) in the hub layout."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "open_clip_config.json"
    config_path.write_text(json.dumps(TINY_OPEN_CLIP_CONFIG, indent=2) + "\n")
    torch.manual_seed(seed)
    with _quiet_open_clip():
        model = open_clip.create_model(f"local-dir:{folder}", pretrained=None, load_weights=False)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "open_clip_model.safetensors"))
    return folder
