"""A synthetic judge: a fixed, documented function of an image that stands in for voters in benchmarks and in
the closed-loop command, chosen so that a LoRA can learn it (it depends on global colour statistics, which a
small change of the UNet shifts easily).

**Score.** ``warmth(image)`` = mean over pixels of (R - B), with channels in 0..1: +1 for pure red/yellow,
-1 for pure blue, 0 for greys. ``brightness(image)`` = mean Rec. 601 luma (0.299 R + 0.587 G + 0.114 B) in 0..1.

**Vote.** ``vote(a, b)`` says "left" when score(a) - score(b) > margin, "right" when it is below -margin, else
"tie". With ``temperature`` > 0 the judge is a noisy Bradley-Terry voter instead: left with probability
sigmoid((score(a) - score(b)) / temperature), the coin drawn from a generator seeded by (seed, both images'
bytes), so the vote is still a pure function of its inputs. ``both_bad_below``: when both scores are below it
the vote is "both_bad" (for KTO rows).
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

JUDGES = ("warmth", "brightness")


def _rgb(image) -> np.ndarray:
    """float RGB array in 0..1 from a PIL image or an array (H, W, 3) in 0..1 or 0..255."""
    if hasattr(image, "convert"):
        return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    arr = np.asarray(image, dtype=np.float64)
    return arr / 255.0 if arr.max(initial=0.0) > 1.0 else arr


def warmth(image) -> float:
    rgb = _rgb(image)
    return float((rgb[..., 0] - rgb[..., 2]).mean())


def brightness(image) -> float:
    rgb = _rgb(image)
    return float((0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]).mean())


def score(image, judge: str = "warmth") -> float:
    if judge == "warmth":
        return warmth(image)
    if judge == "brightness":
        return brightness(image)
    raise ValueError(f"unknown judge {judge!r}: use one of {', '.join(JUDGES)}")


def _coin(a, b, seed: int) -> float:
    h = hashlib.sha256(str(seed).encode())
    for im in (a, b):
        h.update(np.ascontiguousarray(_rgb(im).astype(np.float32)).tobytes())
    return int.from_bytes(h.digest()[:8], "little") / 2**64


def vote(a, b, *, judge: str = "warmth", margin: float = 0.0, temperature: float = 0.0, seed: int = 0,
         both_bad_below: float | None = None) -> str:
    """"left" | "right" | "tie" | "both_bad" for images ``a`` (left) and ``b`` (right); see the module docstring."""
    sa, sb = score(a, judge), score(b, judge)
    if both_bad_below is not None and sa < both_bad_below and sb < both_bad_below:
        return "both_bad"
    diff = sa - sb
    if temperature > 0:
        p_left = 1.0 / (1.0 + math.exp(-diff / temperature))
        return "left" if _coin(a, b, seed) < p_left else "right"
    if diff > margin:
        return "left"
    if diff < -margin:
        return "right"
    return "tie"


def synthetic_image(seed: int, *, size: int = 64, warm: float = 0.0, light: float = 0.0):
    """A procedural picture (background gradient, a few discs and bars) whose colour balance is shifted by
    ``warm`` (toward red, negative: toward blue) and brightness by ``light``, both in -1..1; a PIL image.
    For tests and benchmarks that need images with judge scores that vary."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / max(1, size - 1)
    base = rng.uniform(0.2, 0.8, 3)
    img = base[None, None, :] + 0.2 * (xx[..., None] - 0.5) * rng.uniform(-1, 1, 3)
    for _ in range(int(rng.integers(2, 5))):
        cy, cx, r = rng.uniform(0.15, 0.85), rng.uniform(0.15, 0.85), rng.uniform(0.08, 0.25)
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        img[mask] = rng.uniform(0, 1, 3)
    img = img + warm * 0.25 * np.array([1.0, 0.0, -1.0]) + light * 0.25
    return Image.fromarray((np.clip(img, 0, 1) * 255).round().astype(np.uint8))
