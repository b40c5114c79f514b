"""The closed loop at the trainer level (training.trainers.closed_loop) on a cheap setting: the steps chain, the
JSON has its fields, every image and held-out poll has its own seed, and the label controls do what they say."""

import json
import math

import pytest

from training.trainers import closed_loop as cl

from .conftest import parent


def test_wilson_interval_matches_the_formula():
    lo, hi = cl.wilson_interval(40, 50)
    assert lo < 0.8 < hi
    # the textbook value for 40/50: 0.6696 .. 0.8876
    assert math.isclose(lo, 0.6696, abs_tol=1e-3) and math.isclose(hi, 0.8876, abs_tol=1e-3)
    assert cl.wilson_interval(25, 50)[0] < 0.5 < cl.wilson_interval(25, 50)[1]


def test_train_and_heldout_prompts_are_independent_streams():
    train, held = cl.prompts(20, seed=0, stream="train"), cl.prompts(20, seed=0, stream="heldout")
    assert train == cl.prompts(20, seed=0, stream="train")
    assert len(set(train) & set(held)) < 3 and train != cl.prompts(20, seed=1, stream="train")


@pytest.fixture(scope="module")
def judged(tiny_models, tmp_path_factory):
    settings = cl.LoopSettings(pairs=8, heldout_polls=6, train_steps=2, train_batch_size=2, seed=3)
    out = tmp_path_factory.mktemp("closed-loop")
    pairs = cl.generate_pairs(parent(tiny_models, "eps"), cl.prompts(8, seed=3, stream="train"), out / "images",
                              settings)
    return settings, pairs, out


def test_every_image_has_its_own_seed(judged):
    _, pairs, _ = judged
    seeds = [s for p in pairs for s in (p.seed_0, p.seed_1)]
    assert len(set(seeds)) == len(seeds) == 16
    assert all(p.seed_0 >= cl.TRAIN_SEED_BASE and p.seed_1 < cl.HELDOUT_SEED_BASE for p in pairs)


def test_labels_follow_the_judge_and_the_controls_transform_them(judged):
    from PIL import Image

    from training.trainers.judge import warmth

    settings, pairs, _ = judged
    true = cl.judge_pairs(pairs, settings)
    for p in true:
        w0, w1 = (warmth(Image.open(x)) for x in (p.image_0, p.image_1))
        assert (p.label_0 == 1.0) == (w0 > w1) and p.label_0 + p.label_1 == 1.0
    reversed_ = cl.judge_pairs(pairs, cl.LoopSettings(**{**settings.__dict__, "labels": "reversed"}))
    assert [p.label_0 for p in reversed_] == [1.0 - p.label_0 for p in true]
    shuffled = cl.judge_pairs(pairs, cl.LoopSettings(**{**settings.__dict__, "labels": "shuffled"}))
    assert sorted(p.label_0 for p in shuffled) == sorted(p.label_0 for p in true)
    with pytest.raises(Exception, match="labels must be one of"):
        cl.judge_pairs(pairs, cl.LoopSettings(labels="inverted"))


@pytest.mark.parametrize("method", ["dpo", "sft"])
def test_the_loop_runs_end_to_end_and_reports_its_json(tiny_models, tmp_path, method):
    settings = cl.LoopSettings(method=method, pairs=6, heldout_polls=6, train_steps=2, train_batch_size=2, seed=5)
    out = cl.run_closed_loop(settings, parent(tiny_models, "eps"), tmp_path)
    json.dumps(out)  # one JSON line
    for key in ("pairs", "train_steps", "train_s", "implicit_acc", "child_win_rate", "ci_low", "ci_high",
                "heldout_polls", "mse_ratio", "lora_file"):
        assert key in out
    assert out["train_steps"] == 2 and out["heldout_polls"] == 6 and 0 < out["pairs"] <= 6
    assert out["ci_low"] <= out["child_win_rate"] <= out["ci_high"]
    assert (out["implicit_acc"] is not None) == (method == "dpo")
    # two steps of a zero-initialised-up LoRA barely move the model: its held-out MSE stays the parent's
    assert abs(out["mse_ratio"] - 1.0) < 0.05
    from safetensors import safe_open

    with safe_open(out["lora_file"], "pt") as f:
        assert any(k.startswith("lora_unet_") for k in f.keys())
