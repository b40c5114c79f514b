"""The synthetic judge is the documented pure function of the image it claims to be."""

import numpy as np
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


def test_synthetic_images_shift_with_warmth():
    assert judge.warmth(judge.synthetic_image(5, warm=0.8)) > judge.warmth(judge.synthetic_image(5, warm=-0.8))
    assert judge.brightness(judge.synthetic_image(5, light=0.8)) > judge.brightness(judge.synthetic_image(5, light=-0.8))
