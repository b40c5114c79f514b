"""Synthetic preference datasets for tests and benchmarks: procedural pictures (``judge.synthetic_image``) voted by
the synthetic judge, written in the real dataset format. Every image has its own seed (no seed is reused)."""

from __future__ import annotations

import io

import numpy as np

from .dataset import PreferenceRow, write_dataset
from .judge import synthetic_image, vote

CAPTIONS = ("1girl, solo, smile, outdoors", "no humans, scenery, sunset, city", "1boy, armor, standing, night sky",
            "2girls, school uniform, cherry blossoms", "cat ears, library, sitting, BREAK masterpiece, best quality")


def png(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def synthetic_rows(pairs: int, *, seed: int = 0, size: int = 64, judge: str = "warmth", ties: int = 0,
                   both_bad: int = 0, source_mode: str = "fixed_duel") -> list[PreferenceRow]:
    """``pairs`` pair rows labelled by the judge, plus ``ties`` tie rows and ``both_bad`` both-bad rows."""
    rng = np.random.default_rng(seed)
    rows: list[PreferenceRow] = []
    poll = 0

    def image(warm: float) -> tuple[bytes, object]:
        im = synthetic_image(int(rng.integers(0, 2**62)), size=size, warm=warm)
        return png(im), im

    def common(poll_id: int) -> dict:
        return dict(caption=CAPTIONS[poll_id % len(CAPTIONS)], poll_id=poll_id, seed=int(rng.integers(0, 2**31)),
                    width=size, height=size, source_mode=source_mode)

    while sum(r.kind == "pair" for r in rows) < pairs:
        poll += 1
        (b0, i0), (b1, i1) = image(float(rng.uniform(-1, 1))), image(float(rng.uniform(-1, 1)))
        v = vote(i0, i1, judge=judge, margin=0.01)
        if v in ("left", "right"):
            labels = (1.0, 0.0) if v == "left" else (0.0, 1.0)
            rows.append(PreferenceRow(b0, b1, *labels, kind="pair", **common(poll)))
    for _ in range(ties):
        poll += 1
        w = float(rng.uniform(-1, 1))
        rows.append(PreferenceRow(image(w)[0], image(w)[0], 0.5, 0.5, kind="tie", **common(poll)))
    for _ in range(both_bad):
        poll += 1
        rows.append(PreferenceRow(image(-1.0)[0], image(-0.9)[0], 0.0, 0.0, kind="both_bad", **common(poll)))
    return rows


def write_synthetic(path, pairs: int, **kwargs):
    """Write a synthetic dataset to ``path``; returns its DatasetInfo."""
    return write_dataset(synthetic_rows(pairs, **kwargs), path, vote_log_hash=f"synthetic-{kwargs.get('seed', 0)}")
