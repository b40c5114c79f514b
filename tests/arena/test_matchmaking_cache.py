"""The matchmaker's feasible sets are enumerated once per image snapshot and poll size: alternating duels and
free-for-alls reuse them (one shared slot had rebuilt them at every switch), a new image snapshot rebuilds them."""

from __future__ import annotations

import random

import pytest

from arena import matchmaking, pollgroups, services
from arena.models import Mode
from tests.arena.factories import make_image

pytestmark = pytest.mark.django_db


def _builds(monkeypatch) -> list[int]:
    built = []
    real = matchmaking.FeasibleSets

    def counting(ids, k, members):
        built.append(k)
        return real(ids, k, members)

    monkeypatch.setattr(matchmaking, "FeasibleSets", counting)
    return built


def test_alternating_duels_and_free_for_alls_enumerate_each_size_once(arena, monkeypatch):
    built = _builds(monkeypatch)
    rng = random.Random(5)
    for i in range(12):
        mode = Mode.FFA if i % 2 else Mode.FIXED
        services.poll_create(mode=mode, voter_key=f"{i:032x}", ip_hash="ip", rng=rng)
    assert sorted(built) == [2, 4]


def test_a_new_image_snapshot_enumerates_again(arena, monkeypatch):
    variants, prompts = arena
    built = _builds(monkeypatch)
    services.poll_create(mode=Mode.FIXED, voter_key="1" * 32, ip_hash="ip", rng=random.Random(1))
    assert built == [2]
    make_image(variants[0], prompts[0], seed=9)  # a new group (seed 9) with one model: not feasible, but new
    pollgroups.invalidate()
    services.poll_create(mode=Mode.FIXED, voter_key="2" * 32, ip_hash="ip", rng=random.Random(2))
    assert built == [2, 2]
