"""Aesthetic score: an MLP on L2-normalised open_clip image embeddings, LAION aesthetic-predictor style.

The weights file is the predictor's state dict: ``layers.N.weight`` / ``layers.N.bias`` for its Linear layers
(the original is 768→1024→128→64→16→1 with dropout between and no activations, keys layers.0, 2, 4, 6, 7; any
chain of Linear layers ending in one output loads, sized to the embedding dimension). The LAION file
``sac+logos+ava1-l14-linearMSE.pth`` loads as ``aesthetic_mlp.pth`` beside a ViT-L-14 checkpoint.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from generation.scoring.files import ScorerBroken

_KEY = re.compile(r"^(?:layers\.)?(\d+)\.weight$")


def _load_state(path: Path) -> dict:
    try:
        if path.suffix == ".safetensors":
            from safetensors.numpy import load_file

            state = load_file(str(path))
        else:
            import torch

            state = torch.load(str(path), map_location="cpu", weights_only=True)
            if isinstance(state, dict) and "state_dict" in state:
                state = state["state_dict"]
            state = {k: v.detach().float().numpy() for k, v in state.items()}
    except Exception as exc:
        raise ScorerBroken(f"Aesthetic MLP: cannot read {path}: {exc}") from None
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


class AestheticMlp:
    """The Linear chain of the predictor, applied with numpy (no activations, as in the LAION predictor)."""

    def __init__(self, path: Path | str, *, embed_dim: int | None = None):
        path = Path(path)
        state = _load_state(path)
        layers = sorted((int(m.group(1)), k) for k in state if (m := _KEY.match(k)))
        if not layers:
            raise ScorerBroken(f"Aesthetic MLP: {path} has no layers.N.weight tensors")
        self.weights: list[tuple[np.ndarray, np.ndarray]] = []
        for _, key in layers:
            w = np.asarray(state[key], dtype=np.float32)
            b = np.asarray(state.get(key[: -len("weight")] + "bias", np.zeros(w.shape[0])), dtype=np.float32)
            if w.ndim != 2 or b.shape != (w.shape[0],):
                raise ScorerBroken(f"Aesthetic MLP: {path}: {key} has shape {w.shape}, bias {b.shape}")
            if self.weights and self.weights[-1][0].shape[0] != w.shape[1]:
                raise ScorerBroken(f"Aesthetic MLP: {path}: {key} takes {w.shape[1]} inputs but the layer before "
                                   f"gives {self.weights[-1][0].shape[0]}")
            self.weights.append((w, b))
        if self.weights[-1][0].shape[0] != 1:
            raise ScorerBroken(f"Aesthetic MLP: {path}: the last layer must give one output")
        self.input_dim = self.weights[0][0].shape[1]
        if embed_dim is not None and embed_dim != self.input_dim:
            raise ScorerBroken(f"Aesthetic MLP: {path} takes {self.input_dim}-dim embeddings but the open_clip "
                               f"model gives {embed_dim}")

    def __call__(self, embeddings: np.ndarray) -> np.ndarray:
        x = np.asarray(embeddings, dtype=np.float32)
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.maximum(norm, 1e-12)
        for w, b in self.weights:
            x = x @ w.T + b
        return x[:, 0]


def tiny_aesthetic_mlp_write(path: Path | str, *, embed_dim: int, seed: int = 0) -> Path:
    """A random predictor in the LAION key layout (layers.0, 2, 4, 6, 7), sized to ``embed_dim``."""
    from safetensors.numpy import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sizes = [embed_dim, 64, 32, 16, 8, 1]
    state = {}
    for index, (n_in, n_out) in zip((0, 2, 4, 6, 7), zip(sizes[:-1], sizes[1:])):
        state[f"layers.{index}.weight"] = (rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(np.float32)
        state[f"layers.{index}.bias"] = np.zeros(n_out, dtype=np.float32)
    state["layers.7.bias"] = np.array([5.0], dtype=np.float32)  # centred near the LAION scale's middle
    save_file(state, str(path))
    return path
