"""Image and prompt embeddings from a local open_clip folder, for the reward model. No Django, never a hub.

Reads the folder layouts the scorers read (generation.scoring.openclip): ``open_clip_config.json`` with
``model_cfg`` (open_clip's hub layout) or ``config.json`` naming a built-in architecture, plus a weights file,
and embeds exactly as the scorers do (RGB on white, the model's preprocessing, L2-normalised; ``BREAK`` as a
comma for CLIP), so a reward model trained here scores the same numbers when the scorers app passes its own
``OpenClipModel`` (any object with ``image_embeddings(images)`` and ``text_embeddings(texts)`` will do).
"""

from __future__ import annotations

import json
import logging
import re
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import TrainingError

CONFIG_NAMES = ("open_clip_config.json", "config.json")
WEIGHT_NAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors", "open_clip_pytorch_model.bin",
                "open_clip.safetensors", "open_clip.pt")


def weights_file(folder) -> Path:
    folder = Path(folder)
    found = next((folder / n for n in WEIGHT_NAMES if (folder / n).is_file()), None)
    if found is None:
        raise TrainingError(f"open_clip folder {folder} has no weights file (one of {', '.join(WEIGHT_NAMES)})")
    return found


def rgb_on_white(image):
    from PIL import Image

    if image.mode in ("RGBA", "LA", "RGBa", "La", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    return image.convert("RGB")


def prompt_for_clip(text: str) -> str:
    return re.sub(r"\s*\bBREAK\b\s*", ", ", text).strip(" ,")


@contextmanager
def _quiet():
    """open_clip logs each loading step, and "initialized randomly" before we load the weights ourselves."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


class OpenClipEmbedder:
    def __init__(self, folder, *, device: str = "cpu", batch_size: int = 32):
        import open_clip
        import torch

        folder = Path(folder)
        config_path = next((folder / n for n in CONFIG_NAMES if (folder / n).is_file()), None)
        if config_path is None:
            raise TrainingError(f"open_clip folder {folder} has no {' or '.join(CONFIG_NAMES)}")
        weights = weights_file(folder)
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise TrainingError(f"open_clip: {config_path} is not readable JSON ({exc})") from None
        name = f"local-dir:{folder}" if config_path.name == "open_clip_config.json" else config.get("model_name")
        if not isinstance(name, str):
            raise TrainingError(f"open_clip: {config_path} names no model")
        try:
            with _quiet():
                model, _, self.preprocess = open_clip.create_model_and_transforms(name, pretrained=None,
                                                                                  load_weights=False)
                open_clip.load_checkpoint(model, str(weights), strict=True)
                self.tokenizer = open_clip.get_tokenizer(name)
        except Exception as exc:
            raise TrainingError(f"open_clip: cannot load {weights.name} in {folder}: {exc}") from None
        self.model = model.eval().to(device)
        self.device, self.batch_size, self._torch = device, max(1, int(batch_size)), torch

    def image_embeddings(self, images) -> np.ndarray:
        torch, rows = self._torch, []
        for start in range(0, len(images), self.batch_size):
            batch = torch.stack([self.preprocess(rgb_on_white(im)) for im in images[start:start + self.batch_size]])
            with torch.inference_mode():
                rows.append(self.model.encode_image(batch.to(self.device), normalize=True).float().cpu().numpy())
        return np.concatenate(rows) if rows else np.zeros((0, 0), dtype=np.float32)

    def text_embeddings(self, texts) -> np.ndarray:
        torch, rows = self._torch, []
        for start in range(0, len(texts), self.batch_size):
            tokens = self.tokenizer([prompt_for_clip(t) for t in texts[start:start + self.batch_size]])
            with torch.inference_mode():
                rows.append(self.model.encode_text(tokens.to(self.device), normalize=True).float().cpu().numpy())
        return np.concatenate(rows) if rows else np.zeros((0, 0), dtype=np.float32)
