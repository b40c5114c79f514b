"""The reveal's rating numbers are what Django's ``floatformat`` gives, without its per-call lookups."""

from __future__ import annotations

import random

from django.template.defaultfilters import floatformat

from arena.views.polls import _fixed, _rating_line


def test_fixed_equals_floatformat_on_random_values_and_ties():
    rng = random.Random(3)
    values = [rng.uniform(-50, 50) for _ in range(3000)] + [rng.gauss(1500, 200) for _ in range(3000)]
    values += [k / 1000 for k in range(-3000, 3001)]          # ties at the third decimal: rounded half up
    values += [k / 200 for k in range(-400, 401)]             # ties at the half cent
    values += [0.0, -0.0, -0.001, -0.004, -0.005, 0.005, 1e-12, -1e-12, 2.675, 1.005, 1e15, -1e15, 12345678.125]
    for value in values:
        for places in (1, 2):
            assert _fixed(value, places) == floatformat(value, places), (value, places)


def test_a_rating_line_shows_the_elo_change_with_its_sign():
    up = _rating_line(0, {"elo": [1500.0, 1516.004], "mu": [25.0, 27.6354], "sigma": [8.3, 7.1949]})
    assert (up["elo_before"], up["elo_after"], up["elo_delta"], up["gained"], up["trend"]) == (
        "1500.00", "1516.0", "16.00", True, "up")
    assert (up["mu_after"], up["sigma_after"]) == ("27.64", "7.19")
    down = _rating_line(1, {"elo": [1500.0, 1499.999], "mu": [25.0, 24.9], "sigma": [8.3, 7.2]})
    assert (down["elo_delta"], down["gained"], down["trend"]) == ("0.00", False, "zero")
    assert _rating_line(2, None) == {"position": 2, "elo_delta": None}
