"""Sample images at checkpoints (training.trainers.samples): rendered at the steps they are due, by generation's
own pipeline code (a sample of the untrained LoRA is the parent's picture for that prompt and seed, generated
independently from its files), changed by training, without changing the training itself; bad settings refused
before anything runs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from training.trainers.config import config_errors
from training.trainers.run import train_lora

from .conftest import Events, parent, paths, small
from .test_loop import assert_same_lora

PROMPTS = "red circle, small, top left\nblue square, large"


def _levels(path) -> np.ndarray:
    """A PNG's 8-bit levels, as integers: comparisons in levels are exact, where a float32 picture's levels / 255
    are off by ~2e-8 and made "one level apart" fail by that much."""
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int64)


def _as_levels(array) -> np.ndarray:
    """A generated float picture in [0, 1] as the 8-bit levels a PNG of it holds."""
    return (np.clip(np.asarray(array, dtype=np.float64), 0, 1) * 255).round().astype(np.int64)


@pytest.mark.parametrize("kind", ["eps", "v"])
def test_samples_are_due_at_checkpoints_and_the_end_and_leave_the_training_unchanged(tiny_models, datasets,
                                                                                       tmp_path, kind):
    config = small(max_train_steps=4, checkpointing_steps=2, sample_prompts=PROMPTS, sample_steps=4)
    events = Events()
    with_samples = train_lora(config, parent(tiny_models, kind), paths(tmp_path, datasets["pairs"], "a"),
                              on_progress=events)
    shown = events.of("sample")
    assert [(e["step"], e["index"]) for e in shown] == [(2, 0), (2, 1), (4, 0), (4, 1)]
    assert [e["prompt"] for e in shown[:2]] == PROMPTS.splitlines()
    for e in shown:
        image = Image.open(e["path"])
        assert image.format == "PNG" and image.size == (64, 64)
    # the same settings without samples train the same adapter: sampling draws from its own generators
    plain = train_lora(dataclasses.replace(config, sample_prompts=""), parent(tiny_models, kind),
                       paths(tmp_path, datasets["pairs"], "b"), on_progress=Events())
    assert_same_lora(with_samples.lora_file, plain.lora_file)
    assert not (tmp_path / "b" / "work" / "samples").exists()


def test_a_sample_is_generations_picture_of_the_model_as_trained_so_far(tiny_models, datasets, tmp_path):
    """At step 0 the LoRA's up weights are zero, so its sample must be the parent's own picture of that prompt and
    seed, rendered from the parent's files by generation.pipelines; at the last step it must be the child's: the
    parent with the run's LoRA file, loaded the way the arena loads it."""
    import torch

    from generation.pipelines.loading import load_pipeline
    from generation.pipelines.types import GenerationRequest, VariantSpec
    from training.trainers.lora_method import LoraMethod
    from training.trainers.loop import make_accelerator
    from training.trainers.parent import load_parent
    from training.trainers.dataset import read_dataset
    from training.trainers.samples import render_samples

    spec = parent(tiny_models, "eps")
    config = small(max_train_steps=4, sample_prompts=PROMPTS, sample_steps=4, sample_sampler="Euler a", seed=3,
                   learning_rate=1e-2)
    accelerator = make_accelerator(config)
    method = LoraMethod(config, load_parent(spec), read_dataset(datasets["pairs"]), accelerator)
    untrained = render_samples(method.parent, config, step=0, work_dir=tmp_path, device="cpu", dtype=torch.float32)

    reference = load_pipeline(VariantSpec(key="ref", source_type=spec.source_type, source_path=spec.path,
                                          prediction_type="eps"), "cpu")
    expected = reference.generate_arrays([GenerationRequest(p, seed=3 + k, sampler="Euler a", steps=4, cfg_scale=5.0,
                                                            width=64, height=64)
                                          for k, p in enumerate(PROMPTS.splitlines())])
    for path, array in zip(untrained, expected):
        assert np.abs(_levels(path) - _as_levels(array)).max() <= 1

    trained = train_lora(config, spec, paths(tmp_path, datasets["pairs"], "t"), on_progress=Events())
    assert trained.status == "done"
    last = sorted((tmp_path / "t" / "work" / "samples").glob("step-00000004-*.png"))
    assert len(last) == 2
    # the last samples are the child's pictures: the parent with the LoRA file the run wrote, loaded by generation
    from generation.pipelines.types import LoraSpec

    child = load_pipeline(VariantSpec(key="child", source_type=spec.source_type, source_path=spec.path,
                                      prediction_type="eps", loras=(LoraSpec(trained.lora_file, 1.0),)), "cpu")
    of_child = child.generate_arrays([GenerationRequest(p, seed=3 + k, sampler="Euler a", steps=4, cfg_scale=5.0,
                                                        width=64, height=64)
                                      for k, p in enumerate(PROMPTS.splitlines())])
    for path, array, before in zip(last, of_child, untrained):
        assert np.abs(_levels(path) - _as_levels(array)).max() <= 2
        assert np.abs(_levels(path) - _levels(before)).max() >= 4, "training did not show in the samples"


@pytest.mark.parametrize("changes, message", [
    (dict(sample_prompts="a\n" * 9), "at most 8 prompts"),
    (dict(sample_prompts="1girl <lora:style:0.8>"), "LoRA tags"),
    (dict(sample_prompts="[cat:dog:0.5]"), "prompt editing"),
    (dict(sample_sampler="Warp Drive"), "sample settings"),
    (dict(sample_steps=0), "steps must be"),
    (dict(sample_cfg_scale=99.0), "CFG scale"),
    (dict(sample_every_n_steps=-1), "sample_every_n_steps must be 0"),
])
def test_bad_sample_settings_are_refused_in_one_line(changes, message):
    errors = config_errors(small(**{"sample_prompts": "a cat", **changes}), "eps")
    assert any(message.lower() in e.lower() for e in errors), errors
    assert all("\n" not in e for e in errors)


def test_good_sample_settings_pass():
    assert config_errors(small(sample_prompts=PROMPTS, sample_every_n_steps=10, sample_sampler="DPM++ 2M"), "eps") == []
