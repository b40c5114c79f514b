"""The synthetic judge is the documented pure function of the image it claims to be."""

import numpy as np
import pytest
from PIL import Image

from training.trainers import judge


def test_scores_are_the_documented_colour_statistics():
    arr = np.zeros((4, 4, 3), dtype=np.uint8)
    arr[:2] = (255, 128, 0)
    arr[2:] = (0, 0, 255)
    image = Image.fromarray(arr)
    rgb = arr.astype(float) / 255
    assert judge.warmth(image) == (rgb[..., 0] - rgb[..., 2]).mean()
    assert abs(judge.brightness(image) - (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]).mean()) < 1e-12
    assert judge.warmth(Image.new("RGB", (3, 3), (255, 0, 0))) == 1.0
    assert judge.warmth(Image.new("RGB", (3, 3), (90, 90, 90))) == 0.0


def test_votes_prefer_the_warmer_image_ties_within_the_margin_and_noisy_votes_are_reproducible():
    warm, cold = Image.new("RGB", (8, 8), (200, 50, 20)), Image.new("RGB", (8, 8), (20, 50, 200))
    assert judge.vote(warm, cold) == "left" and judge.vote(cold, warm) == "right"
    assert judge.vote(warm, warm.copy()) == "tie"
    assert judge.vote(cold, cold.copy(), both_bad_below=0.0) == "both_bad"
    pictures = [judge.synthetic_image(i, warm=w) for i, w in enumerate(np.linspace(-1, 1, 40))]
    noisy = [judge.vote(a, b, temperature=0.2, seed=3) for a, b in zip(pictures, pictures[::-1])]
    assert noisy == [judge.vote(a, b, temperature=0.2, seed=3) for a, b in zip(pictures, pictures[::-1])]
    agree = np.mean([(v == "left") == (judge.warmth(a) > judge.warmth(b))
                     for v, a, b in zip(noisy, pictures, pictures[::-1])])
    assert 0.6 < agree < 1.0  # noisy, but mostly with the score


def test_a_polls_winner_is_a_plackett_luce_draw_that_reduces_to_the_duel_vote():
    pictures = [judge.synthetic_image(i, warm=w) for i, w in enumerate((-0.3, 0.1, 0.05, -0.1))]
    scores = np.array([judge.warmth(p) for p in pictures])
    assert judge.choose(pictures) == int(np.argmax(scores))
    assert judge.choose(pictures, lowest=True) == int(np.argmin(scores))
    # the draw's frequencies over seeds are softmax(score / T), the probabilities computed here independently
    t = 0.05
    p = np.exp(scores / t) / np.exp(scores / t).sum()
    draws = np.bincount([judge.choose(pictures, temperature=t, seed=k) for k in range(4000)], minlength=4) / 4000
    assert np.abs(draws - p).max() < 0.03, (draws, p)
    assert judge.choose(pictures, temperature=t, seed=9) == judge.choose(pictures, temperature=t, seed=9)
    # two images: the same coin as the Bradley-Terry vote, so the same winner for every seed
    a, b = pictures[1], pictures[3]
    assert all((judge.choose([a, b], temperature=t, seed=k) == 0) == (judge.vote(a, b, temperature=t, seed=k) == "left")
               for k in range(200))
    with pytest.raises(ValueError, match="at least 2"):
        judge.choose(pictures[:1])
    # scores the caller has already are the ones used: the same draw as scoring here, and reversed scores pick the coldest
    assert all(judge.choose(pictures, temperature=t, seed=k, scores=list(scores)) == judge.choose(pictures, temperature=t, seed=k)
               for k in range(50))
    assert judge.choose(pictures, scores=list(-scores)) == int(np.argmin(scores))
    with pytest.raises(ValueError, match="one score per image"):
        judge.choose(pictures, scores=list(scores[:3]))


def test_the_voters_temperature_makes_a_plain_difference_near_certain_and_a_faint_one_a_coin_flip():
    t = judge.VOTER_TEMPERATURE

    def warmer(levels):  # a grey picture whose red channel is raised by ``levels`` of 255
        arr = np.full((8, 8, 3), 100, dtype=np.uint8)
        arr[..., 0] += levels
        return Image.fromarray(arr)

    def left_rate(levels, n=600):
        a, b = warmer(levels), warmer(0)
        return np.mean([judge.vote(a, b, temperature=t, seed=k) == "left" for k in range(n)])

    assert abs(judge.warmth(warmer(38)) - judge.warmth(warmer(0)) - 38 / 255) < 1e-12  # 0.15: a plain colour cast
    assert 0.90 < left_rate(38) < 0.98  # 0.149: sigmoid(0.149 / 0.05) = 0.952
    assert 0.44 < left_rate(1) < 0.60  # one level of red (0.004): sigmoid(0.078) = 0.520


def test_synthetic_images_shift_with_warmth():
    assert judge.warmth(judge.synthetic_image(5, warm=0.8)) > judge.warmth(judge.synthetic_image(5, warm=-0.8))
    assert judge.brightness(judge.synthetic_image(5, light=0.8)) > judge.brightness(judge.synthetic_image(5, light=-0.8))
