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


def test_implicit_accuracy_is_read_over_the_last_quarter_of_training():
    steps = [{"event": "step", "step": k, "implicit_acc": a} for k, a in enumerate([0.0] * 6 + [0.5, 0.75], 1)]
    assert cl.late_mean(steps, "implicit_acc") == 0.625  # the last 2 of 8 steps
    assert cl.late_mean(steps[:1], "implicit_acc") == 0.0 and cl.late_mean([{"step": 1}], "implicit_acc") is None


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
    settings = cl.LoopSettings(**{**settings.__dict__, "judge_temperature": 0.0})  # the deterministic judge
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


def test_the_noisy_voter_labels_by_its_coin_the_same_on_a_rerun(judged):
    from PIL import Image

    from training.trainers.judge import vote

    settings, pairs, _ = judged
    assert settings.judge_temperature == cl.VOTER_TEMPERATURE > 0  # the loop's default voter is noisy
    noisy = cl.judge_pairs(pairs, settings)
    assert [p.label_0 for p in noisy] == [p.label_0 for p in cl.judge_pairs(pairs, settings)]
    assert len(noisy) == len(pairs)  # a coin never ties
    for p in noisy:  # each label is the Bradley-Terry voter's coin for that pair, under the run's seed
        with Image.open(p.image_0) as a, Image.open(p.image_1) as b:
            v = vote(a.convert("RGB"), b.convert("RGB"), temperature=settings.judge_temperature,
                     seed=f"train-{settings.seed}")
        assert p.label_0 == (1.0 if v == "left" else 0.0)
    hot = cl.judge_pairs(pairs, cl.LoopSettings(**{**settings.__dict__, "judge_temperature": 100.0}))
    assert [p.label_0 for p in hot] != [p.label_0 for p in noisy]  # a voter who barely looks: other labels


def test_a_free_for_all_poll_pairs_its_winner_with_each_other_image_and_the_controls_move_the_winner(tiny_models,
                                                                                                     tmp_path):
    from PIL import Image

    from training.trainers.judge import warmth

    # the defaults: duels for DPO, 8-image polls for SFT; an explicit count wins
    assert cl.LoopSettings(method="dpo").images_per_poll == 2 and cl.LoopSettings(method="sft").images_per_poll == 8
    assert cl.LoopSettings(method="sft").heldout == 256 and cl.LoopSettings(method="dpo", heldout_polls=9).heldout == 9
    assert cl.LoopSettings(method="sft").polls == 128 and cl.LoopSettings(method="dpo").polls == 64
    settings = cl.LoopSettings(method="sft", pairs=6, seed=4, candidates=4, judge_temperature=0.0)
    assert settings.images_per_poll == 4
    polls = cl.generate_polls(parent(tiny_models, "eps"), cl.prompts(6, seed=4, stream="train"), tmp_path, settings)
    seeds = [s for p in polls for s in p.seeds]
    assert len(set(seeds)) == len(seeds) == 24 and all(len(p.images) == 4 for p in polls)
    scores = {path: warmth(Image.open(path)) for p in polls for path in p.images}
    winners = {}
    for labels in cl.LABELS:
        rows = cl.judge_polls(polls, cl.LoopSettings(**{**settings.__dict__, "labels": labels}))
        assert len(rows) == 18 and all(r.label_0 == 1.0 and r.label_1 == 0.0 for r in rows)
        for p in polls:
            mine = [r for r in rows if r.poll_id == p.poll_id]
            (winner,) = {r.image_0 for r in mine}
            assert sorted(r.image_1 for r in mine) == sorted(set(p.images) - {winner})
            winners.setdefault(labels, []).append(winner)
    for p, best, worst in zip(polls, winners["true"], winners["reversed"]):
        assert scores[best] == max(scores[i] for i in p.images) and scores[worst] == min(scores[i] for i in p.images)
    # the shuffled control's winner is a seeded draw: not the judge's pick in every poll, the same on a rerun
    assert winners["shuffled"] != winners["true"]
    again = cl.judge_polls(polls, cl.LoopSettings(**{**settings.__dict__, "labels": "shuffled"}))
    assert [r.image_0 for r in again][::3] == winners["shuffled"]
    # the noisy voter: each poll's winner is judge.choose's Plackett-Luce draw under the run's seed
    from training.trainers.judge import choose

    noisy = cl.LoopSettings(**{**settings.__dict__, "judge_temperature": cl.VOTER_TEMPERATURE})
    rows = cl.judge_polls(polls, noisy)
    assert len(rows) == 18
    for p in polls:
        (winner,) = {r.image_0 for r in rows if r.poll_id == p.poll_id}
        images = [Image.open(x).convert("RGB") for x in p.images]
        assert winner == p.images[choose(images, temperature=noisy.judge_temperature, seed="train-4")]
    with pytest.raises(Exception, match="at least 2 images"):
        cl.generate_polls(parent(tiny_models, "eps"), ["a"], tmp_path, cl.LoopSettings(candidates=1))


@pytest.mark.parametrize("method", ["dpo", "sft"])
def test_the_loop_runs_end_to_end_and_reports_its_json(tiny_models, tmp_path, method):
    settings = cl.LoopSettings(method=method, pairs=6, heldout_polls=6, train_steps=2, train_batch_size=2, seed=5)
    out = cl.run_closed_loop(settings, parent(tiny_models, "eps"), tmp_path)
    json.dumps(out)  # one JSON line
    for key in ("pairs", "train_steps", "train_s", "implicit_acc", "child_win_rate", "ci_low", "ci_high",
                "heldout_polls", "mse_ratio", "lora_file"):
        assert key in out
    assert out["train_steps"] == 2 and out["heldout_polls"] == 6 and 0 < out["polls"] <= 6
    # duels for DPO, 4-way polls for SFT: a poll's winner against each other image is one pair row
    assert out["images_per_poll"] == {"dpo": 2, "sft": 8}[method]
    assert out["pairs"] == out["polls"] * (out["images_per_poll"] - 1)
    assert out["ci_low"] <= out["child_win_rate"] <= out["ci_high"]
    assert (out["implicit_acc"] is not None) == (method == "dpo")
    # two steps of a zero-initialised-up LoRA barely move the model: its held-out MSE stays the parent's
    assert abs(out["mse_ratio"] - 1.0) < 0.05
    from safetensors import safe_open

    with safe_open(out["lora_file"], "pt") as f:
        assert any(k.startswith("lora_unet_") for k in f.keys())
    # SFT also meets its shuffled-label sibling; DPO's shuffled control stays at one half by itself
    assert ("sibling_win_rate" in out) == (method == "sft")
    if method == "sft":
        assert out["sibling_ci_low"] <= out["sibling_win_rate"] <= out["sibling_ci_high"]
        # the sibling is the shuffled control's child: the same polls, seeds and training, only the labels shuffled
        from .test_loop import assert_same_lora

        control = cl.run_closed_loop(cl.LoopSettings(**{**settings.__dict__, "labels": "shuffled"}),
                                     parent(tiny_models, "eps"), tmp_path / "control")
        assert "sibling_win_rate" not in control
        assert_same_lora(out["sibling_lora_file"], control["lora_file"], atol=1e-6)
