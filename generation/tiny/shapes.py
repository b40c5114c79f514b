"""Procedurally generated captioned pictures: what the tiny models are pre-trained on.

A picture is a background (a plain colour or a named scene: night sky, sunset, forest, ...), made brighter or
darker when the caption says "bright" / "dark", and one object (circle, square, triangle; or "hair", "bow",
"dress", "eyes", "flower", drawn as one of those shapes) of a named colour, small or large, at a named place
(left, right, top, bottom, center). The caption names these in Danbooru tag style, shuffled and mixed with
anime tags that say nothing about the picture ("1girl, masterpiece, smile"), so that the demo's prompts
("aqua hair, night sky") are read for what they name and the rest is ignored. Whatever a caption leaves
unnamed is drawn at random: seeds vary the picture, prompts steer it.

Pure numpy; ``sample(rng, size)`` gives (caption, float32 array H x W x 3 in 0..1).
"""

from __future__ import annotations

import numpy as np

COLOURS = {
    "red": (0.86, 0.10, 0.12), "orange": (0.97, 0.52, 0.08), "yellow": (0.97, 0.88, 0.15),
    "green": (0.15, 0.70, 0.20), "aqua": (0.10, 0.80, 0.80), "blue": (0.12, 0.25, 0.90),
    "purple": (0.55, 0.20, 0.75), "pink": (0.97, 0.55, 0.75), "white": (0.96, 0.96, 0.96),
    "black": (0.06, 0.06, 0.07), "brown": (0.50, 0.30, 0.14), "grey": (0.50, 0.50, 0.52),
}
# scene -> (top colour, bottom colour, speckle colour or None)
SCENES = {
    "night sky": ((0.02, 0.03, 0.15), (0.08, 0.10, 0.30), (0.95, 0.95, 0.80)),
    "sunset": ((0.55, 0.25, 0.55), (0.98, 0.55, 0.15), None),
    "forest": ((0.10, 0.35, 0.12), (0.05, 0.20, 0.06), (0.25, 0.55, 0.20)),
    "ocean": ((0.45, 0.70, 0.95), (0.05, 0.25, 0.60), None),
    "snow": ((0.85, 0.90, 0.97), (0.98, 0.98, 1.00), None),
    "cherry blossoms": ((0.98, 0.80, 0.88), (0.92, 0.60, 0.72), (1.0, 0.95, 0.97)),
    "field of flowers": ((0.55, 0.80, 0.95), (0.25, 0.60, 0.15), (0.98, 0.85, 0.20)),
    "stage lights": ((0.05, 0.02, 0.10), (0.15, 0.05, 0.25), (0.95, 0.40, 0.90)),
}
SHAPES = ("circle", "square", "triangle")
THINGS = {"hair": "triangle", "bow": "triangle", "dress": "square", "eyes": "circle", "flower": "circle"}
POSITIONS = {"left": (0.5, 0.28), "right": (0.5, 0.72), "top": (0.28, 0.5), "bottom": (0.72, 0.5),
             "center": (0.5, 0.5)}
SIZES = {"small": 0.13, "large": 0.30}
BRIGHTNESS = ("bright", "dark")
FILLER = ("1girl", "solo", "masterpiece", "best quality", "newest", "general", "smile", "looking at viewer",
          "upper body", "twintails", "long hair", "open mouth", "sitting", "standing", "outdoors", "simple",
          "highres", "absurdres", "blush", "holding", "from side", "portrait", "cowboy shot", "detailed")


def _soft(d: np.ndarray, px: float) -> np.ndarray:
    """1 inside (d < 0), 0 outside, a one-pixel linear edge (d in image units, px = one pixel)."""
    return np.clip(0.5 - d / px, 0.0, 1.0)


def render(spec: dict, size: int, rng: np.random.Generator) -> np.ndarray:
    h = w = size
    yy, xx = (np.mgrid[0:h, 0:w].astype(np.float32) + 0.5) / size
    px = 1.0 / size
    if "scene" in spec:
        top, bottom, speck = (np.array(c, np.float32) for c in (*SCENES[spec["scene"]][:2],
                                                                 SCENES[spec["scene"]][2] or (0, 0, 0)))
        img = top[None, None] * (1 - yy[..., None]) + bottom[None, None] * yy[..., None]
        if SCENES[spec["scene"]][2] is not None:
            for _ in range(int(rng.integers(6, 14))):
                cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.01, 0.035)
                m = _soft(np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) - r, px)
                img = img * (1 - m[..., None]) + speck[None, None] * m[..., None]
    else:
        base = np.array(COLOURS[spec["background"]], np.float32)
        tilt = rng.uniform(-0.08, 0.08, 3).astype(np.float32)
        img = base[None, None] + tilt[None, None] * (yy[..., None] - 0.5)
    if spec.get("brightness") == "bright":
        img = img * 0.45 + 0.55
    elif spec.get("brightness") == "dark":
        img = img * 0.35
    cy, cx = POSITIONS[spec["position"]]
    cy, cx = cy + rng.uniform(-0.06, 0.06), cx + rng.uniform(-0.06, 0.06)
    r = SIZES[spec["size"]] * rng.uniform(0.85, 1.15)
    dy, dx = yy - cy, xx - cx
    if spec["shape"] == "circle":
        d = np.sqrt(dy * dy + dx * dx) - r
    elif spec["shape"] == "square":
        d = np.maximum(np.abs(dy), np.abs(dx)) - r * 0.85
    else:  # triangle, point up
        d = np.maximum(dy - r * 0.7, np.maximum(-dy * 0.5 + dx * 0.866, -dy * 0.5 - dx * 0.866) - r * 0.45)
    m = _soft(d, px)[..., None]
    colour = np.array(COLOURS[spec["colour"]], np.float32) * rng.uniform(0.9, 1.05)
    img = img * (1 - m) + colour[None, None] * m
    img = img + rng.normal(0, 0.01, img.shape).astype(np.float32)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def random_spec(rng: np.random.Generator) -> dict:
    spec = {"colour": str(rng.choice(list(COLOURS))), "position": str(rng.choice(list(POSITIONS))),
            "size": str(rng.choice(list(SIZES)))}
    noun = str(rng.choice(SHAPES + tuple(THINGS))) if rng.uniform() < 0.3 else str(rng.choice(SHAPES))
    spec["noun"] = noun
    spec["shape"] = THINGS.get(noun, noun)
    if rng.uniform() < 0.35:
        spec["scene"] = str(rng.choice(list(SCENES)))
    else:
        spec["background"] = str(rng.choice([c for c in COLOURS if c != spec["colour"]]))
    if rng.uniform() < 0.4:
        spec["brightness"] = str(rng.choice(BRIGHTNESS))
    return spec


def caption(spec: dict, rng: np.random.Generator, *, drop: float = 0.1) -> str:
    """Danbooru-style tags for ``spec``; each descriptive tag is left out with probability ``drop`` (what is not
    named is then free), mixed with 0-3 filler tags, shuffled."""
    tags = [f"{spec['colour']} {spec['noun']}"]
    named = [f"{spec['size']}", f"{spec['position']}"]
    named.append(spec["scene"] if "scene" in spec else f"{spec['background']} background")
    if "brightness" in spec:
        named.append(spec["brightness"])
    tags += [t for t in named if rng.uniform() >= drop]
    tags += list(rng.choice(FILLER, size=int(rng.integers(0, 4)), replace=False))
    rng.shuffle(tags)
    return ", ".join(tags)


def sample(rng: np.random.Generator, size: int) -> tuple[str, np.ndarray]:
    spec = random_spec(rng)
    text = caption(spec, rng)
    return text, render(spec, size, rng)
