"""``bench_training --method reward``: tiny-model images voted by the synthetic judge through the real poll and
vote services, the reward model trained on the counted duels. On a cheap setting its held-out interval is above
one half and the shuffled-label control's contains one half; every pair has its own seed."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from training.benchmarks.reward import VOTER

PAIRS = "60"  # 30 held-out pairs: with 10 the pre-trained tiny models left the interval too wide (low 0.31 at acc 0.6)
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def bench_line(tiny_models, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    out = StringIO()
    call_command("bench_training", "--method", "reward", "--seed", "0", "--pairs", PAIRS, "--heldout-fraction", "0.5",
                 "--tiny-dir", tiny_models.root, "--current-database", stdout=out)
    (line,) = out.getvalue().strip().splitlines()
    return json.loads(line)


def test_reward_benchmark_learns_the_judge_and_not_shuffled_labels(bench_line):
    from arena.models import Vote
    from generation.models import Image

    line = bench_line
    assert {"pairs", "train_s", "pairs_per_s", "heldout_acc", "heldout_ci_low", "peak_rss_mb"} <= set(line)
    assert line["pairs"] + line["votes"]["tie"] == sum(line["votes"].values()) == int(PAIRS)
    assert line["heldout_pairs"] >= 8 and line["heldout_ci_low"] > 0.5, line
    # the control's pooled count is exactly Binomial(n, 1/2): its 95% interval misses one half one run in twenty
    # by construction (a CI run drew 274/600), so the test asks the exact test's p-value for 1-in-1000 evidence
    assert line["control_p_value"] > 0.001, line
    assert line["control_ci_low"] < line["control_acc"] < line["control_ci_high"]
    assert line["control_relabelings"] == 20 and line["control_heldout_pairs"] == 20 * line["heldout_pairs"]
    assert line["train_s"] > 0 and line["pairs_per_s"] > 0 and line["peak_rss_mb"] > 0
    # the votes went through the vote service and are counted in the log
    votes = list(Vote.objects.filter(voter_key=VOTER, counted=True, seq__isnull=False))
    assert len(votes) == int(PAIRS)
    # distinct seeds: both images of a duel share theirs, no two duels share one
    seeds = []
    for v in votes:
        pair = {i.sampler_settings.seed for i in Image.objects.filter(poll_entries__poll=v.poll)}
        assert len(pair) == 1
        seeds += pair
    assert len(set(seeds)) == int(PAIRS)


@pytest.mark.parametrize("args, message", [
    (["--pairs", "5"], "--pairs must be at least 10"),
    (["--control-relabelings", "0"], "--control-relabelings must be at least 1"),
    (["--heldout-fraction", "1"], "--heldout-fraction must be between 0 and 1"),
    (["--image-size", "100"], "--image-size must be a multiple of 64"),
    (["--open-clip-dir", "/nonexistent/clip"], "no such folder"),
])
def test_bad_settings_are_refused_before_anything_runs(tiny_models, args, message):
    from generation.models import ModelVariant

    with pytest.raises(CommandError, match=message):
        call_command("bench_training", "--method", "reward", "--tiny-dir", tiny_models.root, "--current-database", *args)
    assert not ModelVariant.objects.exists()


def test_the_caching_embedder_gives_the_same_embeddings_and_embeds_each_picture_once(tmp_path):
    import numpy as np

    from generation.scoring.openclip import tiny_open_clip_write
    from training.benchmarks.reward import CachingEmbedder
    from training.trainers.embeddings import OpenClipEmbedder
    from training.trainers.judge import synthetic_image

    inner = OpenClipEmbedder(tiny_open_clip_write(tmp_path / "clip", seed=0))
    calls = []
    real = inner.image_embeddings
    inner.image_embeddings = lambda images: calls.append(len(images)) or real(images)
    cached = CachingEmbedder(inner)
    pictures = [synthetic_image(i) for i in range(3)]
    first = cached.image_embeddings(pictures)
    again = cached.image_embeddings([synthetic_image(2), synthetic_image(0), synthetic_image(7)])
    assert np.allclose(first, real(pictures)) and np.allclose(again[:2], first[[2, 0]])
    assert calls == [3, 1]  # only the new picture was embedded the second time
    assert np.allclose(cached.text_embeddings(["a", "b", "a"]), inner.text_embeddings(["a", "b", "a"]))


@pytest.mark.parametrize("right, total", [(274, 600), (300, 600), (7, 30), (29.5, 30), (0, 10)])
def test_the_controls_p_value_is_the_exact_two_sided_binomial_test(right, total):
    from math import comb

    from training.benchmarks.reward import chance_p_value

    k = round(right)
    # by hand: twice the smaller tail of Binomial(total, 1/2), capped at 1 (the distribution is symmetric)
    tail = sum(comb(total, i) for i in range(0, min(k, total - k) + 1)) / 2 ** total
    assert chance_p_value(right, total) == pytest.approx(min(1.0, 2 * tail), rel=1e-9)
