"""Prompt alignment: the CLIP score between a prompt and an image, 100 × cosine similarity, clipped at 0."""

from __future__ import annotations

import numpy as np


def clip_scores(image_embeddings: np.ndarray, text_embeddings: np.ndarray) -> np.ndarray:
    """Row-wise CLIP score of matching image and text embeddings (any scale; normalised here)."""
    img = np.asarray(image_embeddings, dtype=np.float64)
    txt = np.asarray(text_embeddings, dtype=np.float64)
    img = img / np.maximum(np.linalg.norm(img, axis=1, keepdims=True), 1e-12)
    txt = txt / np.maximum(np.linalg.norm(txt, axis=1, keepdims=True), 1e-12)
    return np.maximum(100.0 * np.sum(img * txt, axis=1), 0.0)
