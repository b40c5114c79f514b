"""The pre-trained tiny models follow their prompt and vary with the seed; the build is cached and content-keyed.

Every image below has its own seed (no seed is shared between the two sides of a comparison), except in the
same-seed tests, whose point is that only the prompt differs."""

import json
from pathlib import Path

import numpy as np
import pytest

from generation.pipelines.types import GenerationRequest, VariantSpec

SIZE, STEPS, CFG = 64, 4, 5.0
NEGATIVE = "worst quality, low quality"


@pytest.fixture(scope="module")
def pipes(tiny_models):
    from generation.pipelines.loading import load_pipeline

    return {
        "eps": load_pipeline(VariantSpec("tiny-pre-eps", "single_file", tiny_models.eps_file), "cpu"),
        "v": load_pipeline(VariantSpec("tiny-pre-v", "single_file", tiny_models.v_file, prediction_type="v"), "cpu"),
    }


def _images(loaded, prompt: str, seeds, size: int = SIZE):
    reqs = [GenerationRequest(prompt, negative_prompt=NEGATIVE, seed=s, steps=STEPS, cfg_scale=CFG, width=size,
                              height=size) for s in seeds]
    return [np.asarray(a, dtype=np.float64) for a in loaded.generate_arrays(reqs)]


def _warmth(img) -> float:
    return float((img[..., 0] - img[..., 2]).mean())


def _luma(img) -> float:
    return float((0.299 * img[..., 0] + 0.587 * img[..., 1] + 0.114 * img[..., 2]).mean())


def _welch_t(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float((a.mean() - b.mean()) / np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)))


@pytest.mark.parametrize("kind", ["eps", "v"])
def test_colour_named_in_the_prompt_is_drawn(pipes, kind):
    # Eight distinct seeds per side; "red" images warmer (R - B) than "blue" ones by a margin measured against
    # the seeds' own spread: Welch's t above 2 (one-sided p < 0.05). Measured: eps t ~ 2-3, v far above.
    red = [_warmth(i) for i in _images(pipes[kind], "red circle, red background", range(100, 108))]
    blue = [_warmth(i) for i in _images(pipes[kind], "blue circle, blue background", range(200, 208))]
    assert _welch_t(red, blue) > 2.0, (red, blue)


@pytest.mark.parametrize("kind", ["eps", "v"])
def test_brightness_named_in_the_prompt(pipes, kind):
    bright = [_luma(i) for i in _images(pipes[kind], "white square, bright", range(300, 308))]
    dark = [_luma(i) for i in _images(pipes[kind], "black square, dark", range(400, 408))]
    assert _welch_t(bright, dark) > 2.0, (bright, dark)


def _same_seed_shift(loaded) -> tuple[float, float, list[float]]:
    """At each of eight seeds, the warmth of "red ..." minus that of "blue ..." drawn from the same noise: (mean,
    paired t, the differences). Only the prompt differs between the two sides."""
    from scipy import stats

    seeds = range(7, 15)
    red = [_warmth(i) for i in _images(loaded, "red circle, red background", seeds)]
    blue = [_warmth(i) for i in _images(loaded, "blue circle, blue background", seeds)]
    diffs = [r - b for r, b in zip(red, blue)]
    return float(np.mean(diffs)), float(stats.ttest_1samp(diffs, 0.0).statistic), diffs


def _prompt_moves_the_picture(loaded) -> bool:
    mean, t, _ = _same_seed_shift(loaded)
    return mean > 0.05 and t > 2.0


@pytest.mark.parametrize("kind", ["eps", "v"])
def test_at_one_seed_the_picture_moves_the_way_the_prompt_says(pipes, kind):
    # Not a pixel correlation: how far the layout moves with the prompt differs from one build of the tiny models to
    # the next (their pre-training is not bit-reproducible across machines; builds gave eps 0.07 and 0.96, v 0.76 and
    # -0.47), and a threshold on it passed or failed by build. What the prompt must do at a fixed seed is move the
    # picture the way it names: redder for "red" than for "blue", paired over eight seeds.
    mean, t, diffs = _same_seed_shift(pipes[kind])
    assert mean > 0.05 and t > 2.0, (mean, t, diffs)


def test_the_same_seed_check_fails_on_random_weights(tmp_path_factory):
    """The control: the seeded random-weight models ignore their prompt, and the check above must say so."""
    from generation.pipelines.loading import load_pipeline
    from generation.tiny import make_tiny_models

    random_models = make_tiny_models(tmp_path_factory.mktemp("tiny-random"), pretrained=False)
    for kind, path, prediction in (("eps", random_models.eps_file, "eps"), ("v", random_models.v_file, "v")):
        loaded = load_pipeline(VariantSpec(f"tiny-random-{kind}", "single_file", path, prediction_type=prediction), "cpu")
        assert not _prompt_moves_the_picture(loaded), (kind, _same_seed_shift(loaded))


def test_images_vary_with_the_seed(pipes):
    images = _images(pipes["eps"], "circle", range(500, 504))
    diffs = [np.abs(images[i] - images[j]).mean() for i in range(4) for j in range(i + 1, 4)]
    assert min(diffs) > 0.02, diffs


def test_the_demo_size_follows_the_prompt_too(pipes):
    red, = _images(pipes["eps"], "1girl, red hair, red background, smile", [600], size=256)
    blue, = _images(pipes["eps"], "1girl, blue hair, blue background, smile", [601], size=256)
    assert _warmth(red) > _warmth(blue)


def test_build_is_cached_and_content_keyed(tiny_models, monkeypatch):
    from generation.tiny import build, build_key, make_tiny_models

    manifest = json.loads(Path(tiny_models.root, "manifest.json").read_text())
    assert manifest["key"] == build_key() and manifest["pretrained"] is True
    assert manifest["training"]["eps_loss"] > 0 and manifest["training"]["v_loss"] > 0

    def no_rebuild(*args, **kwargs):
        raise AssertionError("a complete build with the same key was rebuilt")

    monkeypatch.setattr(build, "_build", no_rebuild)
    mtime = Path(tiny_models.eps_file).stat().st_mtime_ns
    assert make_tiny_models(tiny_models.root) == tiny_models
    assert Path(tiny_models.eps_file).stat().st_mtime_ns == mtime

    calls = []
    monkeypatch.setattr(build, "build_key", lambda **kw: "changed-source")
    monkeypatch.setattr(build, "_build", lambda root, key, **kw: calls.append(key))
    make_tiny_models(tiny_models.root)
    assert calls == ["changed-source"]  # a changed key (source, configs, library versions) rebuilds
