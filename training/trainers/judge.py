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

**A poll's winner.** ``choose(images)`` is the free-for-all form of the same voter: the highest score without
temperature; with it, image k wins with probability softmax(score / temperature)_k (Plackett-Luce's first choice,
which for two images is the Bradley-Terry vote above), the draw seeded by (seed, every image's bytes).

**The voter's temperature** (``VOTER_TEMPERATURE``, what the closed loop uses). A deterministic judge sees any
drift, however small: with it, the closed loop's shuffled-label controls (children a few thousandths warmer than
their parents) beat their parents in up to 67% of paired held-out polls -- a difference no voter could see. People
are noisy voters, and the noise is what decides how small a change an arena can detect, so the loop's voter is a
noisy one, set by one criterion fixed before any loop ran with it: on the parent's own duels (tiny v parent, the
loop's training prompts and seeds, 192 duels of seeds 0-2; median |difference| 0.092) the voter sides with the
warmer picture about four times in five -- 0.82 at temperature 0.05 (0.91 at 0.02, 0.74 at 0.1) -- so two such
voters agree on about 70% of pairs, a crowd's rate rather than a meter's. At 0.05 a warmth difference of 0.005 wins
52.5% of votes, 0.05 wins 73%, 0.15 (a plain colour cast) 95%.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

JUDGES = ("warmth", "brightness")
VOTER_TEMPERATURE = 0.05  # see "The voter's temperature" above


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


def _coin(*images, seed) -> float:
    """A number in [0, 1) fixed by ``seed`` (anything with a str) and the images' pixels."""
    h = hashlib.sha256(str(seed).encode())
    for im in images:
        h.update(np.ascontiguousarray(_rgb(im).astype(np.float32)).tobytes())
    return int.from_bytes(h.digest()[:8], "little") / 2**64


def vote(a, b, *, judge: str = "warmth", margin: float = 0.0, temperature: float = 0.0, seed=0,
         both_bad_below: float | None = None) -> str:
    """"left" | "right" | "tie" | "both_bad" for images ``a`` (left) and ``b`` (right); see the module docstring."""
    sa, sb = score(a, judge), score(b, judge)
    if both_bad_below is not None and sa < both_bad_below and sb < both_bad_below:
        return "both_bad"
    diff = sa - sb
    if temperature > 0:
        p_left = 1.0 / (1.0 + math.exp(-diff / temperature))
        return "left" if _coin(a, b, seed=seed) < p_left else "right"
    if diff > margin:
        return "left"
    if diff < -margin:
        return "right"
    return "tie"


def choose(images, *, judge: str = "warmth", temperature: float = 0.0, seed=0, lowest: bool = False,
           scores=None) -> int:
    """The index of a poll's winner among ``images`` (see the module docstring); ``lowest``: the voter who likes
    the opposite (the reversed-label control), i.e. the scores negated. Without temperature an exact tie for the
    top goes to the first. ``scores``: the images' judge scores when the caller has them already (in order)."""
    if len(images) < 2:
        raise ValueError("a poll needs at least 2 images")
    if scores is None:
        scores = [score(im, judge) for im in images]
    elif len(scores) != len(images):
        raise ValueError("one score per image")
    scores = np.asarray(scores, dtype=float) * (-1.0 if lowest else 1.0)
    if temperature <= 0:
        return int(np.argmax(scores))
    weights = np.exp((scores - scores.max()) / temperature)
    cumulative = np.cumsum(weights / weights.sum())
    return min(int(np.searchsorted(cumulative, _coin(*images, seed=seed), side="right")), len(images) - 1)


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
