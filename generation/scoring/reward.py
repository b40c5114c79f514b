"""The reward model as an automatic judge: a Bradley-Terry head on open_clip embeddings, trained on votes by the
training app (``training.trainers.reward``, whose module docstring defines the file), read and applied here with
numpy so the scorers need nothing from the training app.

File ``reward_model.safetensors``: tensors ``weight`` [F], ``mean`` [F], ``scale`` [F]; metadata ``format`` =
"arena.reward.bradley_terry.v1", ``use_prompt``, ``embed_dim``, ``open_clip_weights_sha256`` (the open_clip
weights it was trained on: scoring with others is refused), and the training figures (``heldout_acc``,
``heldout_ci_low``, ``heldout_ci_high``, ``train_pairs``, ``heldout_pairs``, ``dataset_sha256``).

Features phi = [i] or, with ``use_prompt``, [i, i * p] (i, p the L2-normalised image and prompt embeddings);
score = weight . (phi - mean) / scale; higher = preferred by the voters it learned from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from generation.scoring.files import ScorerBroken

FORMAT = "arena.reward.bradley_terry.v1"
FIGURES = ("heldout_acc", "heldout_ci_low", "heldout_ci_high", "train_pairs", "heldout_pairs")


def reward_metadata(path: Path) -> dict[str, str]:
    """The file's safetensors metadata; ScorerBroken unless it is a reward model of our format."""
    from generation.pipelines.checkpoints import read_safetensors_header
    from generation.pipelines.types import CheckpointError

    path = Path(path)
    if not path.is_file():
        raise ScorerBroken(f"reward model file not found: {path}")
    try:
        header, meta = read_safetensors_header(path)
    except (CheckpointError, OSError, ValueError) as exc:
        raise ScorerBroken(f"{path.name} is not a readable .safetensors file: {exc}") from None
    if meta.get("format") != FORMAT:
        raise ScorerBroken(f"{path.name} is not a reward model (its metadata has no format {FORMAT!r}); "
                           "give the reward_model.safetensors a reward training run wrote")
    missing = [k for k in ("weight", "mean", "scale") if k not in header]
    if missing or not meta.get("open_clip_weights_sha256"):
        raise ScorerBroken(f"{path.name} lacks {', '.join(missing) or 'open_clip_weights_sha256'}")
    return dict(meta)


def figures(meta: dict[str, str]) -> dict:
    """The training figures a reward file records (floats and ints; None where absent or not a number)."""
    out = {}
    for key in FIGURES:
        try:
            value = float(meta[key])
        except (KeyError, ValueError):
            value = None
        out[key] = int(value) if value is not None and key.endswith("pairs") else value
    return out


class RewardHead:
    """A loaded reward file; ``score(image_embeddings, prompt_embeddings)`` -> float array."""

    def __init__(self, path: Path):
        from safetensors.numpy import load_file

        path = Path(path)
        self.metadata = reward_metadata(path)
        try:
            tensors = load_file(str(path))
        except Exception as exc:  # noqa: BLE001 - a truncated or corrupt file
            raise ScorerBroken(f"cannot load the reward model {path.name}: {exc}") from None
        self.weight, self.mean, self.scale = (np.asarray(tensors[k], dtype=np.float32) for k in ("weight", "mean", "scale"))
        self.use_prompt = self.metadata.get("use_prompt") == "true"
        if not (self.weight.shape == self.mean.shape == self.scale.shape) or self.weight.ndim != 1:
            raise ScorerBroken(f"{path.name}: weight, mean and scale must be vectors of one size")

    def score(self, image_embeddings: np.ndarray, prompt_embeddings: np.ndarray | None = None) -> np.ndarray:
        img = np.asarray(image_embeddings, dtype=np.float32)
        if self.use_prompt:
            if prompt_embeddings is None:
                raise ScorerBroken("this reward model scores images with their prompts")
            feats = np.concatenate([img, img * np.asarray(prompt_embeddings, dtype=np.float32)], axis=1)
        else:
            feats = img
        if feats.shape[1] != self.weight.shape[0]:
            raise ScorerBroken(f"the open_clip embeddings (size {img.shape[1]}) do not fit the reward model "
                               f"({self.weight.shape[0]} features)")
        return ((feats - self.mean) / self.scale) @ self.weight
