"""Aggregation per model and character, the character-similarity Elo, agreement with people, scorer status."""

from datetime import timedelta

import pytest
from django.utils import timezone

from generation.models import Image
from generation.scoring import selectors
from generation.scoring.models import ImageScore

from .conftest import solid

T_975_2 = 4.302652729749462  # Student t quantile, 2 degrees of freedom


def put(image, kind, value, ratio=None, refs=1, scorer_hash="h1"):
    return ImageScore.objects.create(
        image=image, kind=kind, value=value, same_ratio=ratio if kind == "ccip" else None,
        references=refs if kind == "ccip" else 0, scorer_hash=scorer_hash, computed_at=timezone.now(),
    )


def stamp(image, minutes):
    Image.objects.filter(pk=image.pk).update(created_at=timezone.now().replace(microsecond=0) + timedelta(minutes=minutes))


@pytest.fixture
def board(world):
    """Two models, two characters; hand-chosen CCIP scores per image."""
    a, b = world.variant("A"), world.variant("B")
    reimu = world.character("Reimu", references=[solid((255, 0, 0))])
    marisa = world.character("Marisa", references=[solid((0, 0, 0))])
    p_reimu, p_marisa = world.prompt("reimu", reimu), world.prompt("marisa", marisa)
    img = {}
    # model A: reimu 0.1 (ratio 1), 0.2 (ratio 0.5), 0.3 (ratio 0); marisa 0.4 (ratio 0)
    for n, (value, ratio) in enumerate([(0.1, 1.0), (0.2, 0.5), (0.3, 0.0)]):
        img[("A", "reimu", n)] = i = world.image(a, p_reimu, solid((n, 0, 0)), settings_key=f"s{n}", seed=n)
        put(i, "ccip", value, ratio, refs=2)
    img[("A", "marisa", 0)] = i = world.image(a, p_marisa, solid((9, 9, 9)), settings_key="s0")
    put(i, "ccip", 0.4, 0.0)
    # model B: reimu 0.15 and 0.5 on the same seeds as A's first two
    for n, value in enumerate([0.15, 0.5]):
        img[("B", "reimu", n)] = i = world.image(b, p_reimu, solid((0, n, 0)), settings_key=f"s{n}", seed=n)
        put(i, "ccip", value, 1.0 if value < 0.2 else 0.0)
    return {"a": a, "b": b, "reimu": reimu, "marisa": marisa, "img": img}


def test_model_scores_aggregate_per_image_means_and_ratios(board):
    c = selectors.model_scores()
    a = c[board["a"].id]
    assert a["ccip_n"] == 4
    assert a["ccip_mean"] == pytest.approx((0.1 + 0.2 + 0.3 + 0.4) / 4)
    assert a["ccip_ratio"] == pytest.approx((1 + 0.5 + 0 + 0) / 4)
    sd = ((0.15**2 + 0.05**2 + 0.05**2 + 0.15**2) / 3) ** 0.5
    from scipy import stats

    half = stats.t.ppf(0.975, 3) * sd / 2
    assert a["ccip_mean_ci"] == (pytest.approx(0.25 - half), pytest.approx(0.25 + half))
    lo, hi = a["ccip_ratio_ci"]
    assert lo < 0.375 < hi
    # not computed: None, and n 0
    assert a["aesthetic_mean"] is None and a["aesthetic_n"] == 0 and a["alignment_mean"] is None


def test_model_scores_say_not_computed_for_models_without_scores(world):
    lonely = world.variant("no images")
    row = selectors.model_scores()[lonely.id]
    assert row["ccip_mean"] is None and row["ccip_ratio"] is None and row["ccip_mean_ci"] is None
    assert row["ccip_n"] == 0 and row["aesthetic_mean"] is None


def test_character_scores_per_model_and_character(board):
    rows = selectors.character_scores()
    a, b = board["a"].id, board["b"].id
    reimu, marisa = board["reimu"].id, board["marisa"].id
    assert set(rows) == {(a, reimu), (a, marisa), (b, reimu)}
    r = rows[(a, reimu)]
    assert (r["variant_name"], r["character_name"], r["ccip_n"]) == ("A", "Reimu", 3)
    assert r["ccip_mean"] == pytest.approx(0.2)
    half = T_975_2 * 0.1 / 3**0.5
    assert r["ccip_mean_ci"] == (pytest.approx(0.2 - half), pytest.approx(0.2 + half))
    assert r["ccip_ratio"] == pytest.approx(0.5)
    # Wilson over the 3 images with 1.5 "successes" (p = 0.5, z = 1.96): centre 0.5, half-width by hand
    z = 1.959963984540054
    half_w = z * (0.25 / 3 + z * z / 36) ** 0.5 / (1 + z * z / 3)
    assert r["ccip_ratio_ci"] == (pytest.approx(0.5 - half_w), pytest.approx(0.5 + half_w))
    assert rows[(a, marisa)]["ccip_mean_ci"] is None  # one image: no interval
    only = selectors.character_scores(character_id=marisa)
    assert set(only) == {(a, marisa)}


def test_character_duels_pair_same_prompt_and_settings_and_lower_difference_wins(board, settings):
    settings.CHARACTER_ELO_TIE_MARGIN = 0.01
    a, b = board["a"].id, board["b"].id
    img = board["img"]
    stamp(img[("A", "reimu", 0)], 0)
    stamp(img[("B", "reimu", 0)], 1)
    stamp(img[("A", "reimu", 1)], 2)
    stamp(img[("B", "reimu", 1)], 3)
    duels = selectors.character_duels()
    # s0: A 0.1 vs B 0.15 → A wins (at B's time, +1 min); s1: A 0.2 vs B 0.5 → A wins (+3 min)
    assert [(d.a, d.b, d.score_a) for d in duels] == [(a, b, 1.0), (a, b, 1.0)]
    assert duels[1].time - duels[0].time == 120
    # within the margin it is a tie
    assert [d.score_a for d in selectors.character_duels(tie_margin=0.06)] == [0.5, 1.0]


def test_character_elo_by_hand(board, settings):
    settings.CHARACTER_ELO_K = 32
    settings.CHARACTER_ELO_TIE_MARGIN = 0.01
    a, b = board["a"].id, board["b"].id
    img = board["img"]
    for n, key in enumerate([("A", "reimu", 0), ("B", "reimu", 0), ("A", "reimu", 1), ("B", "reimu", 1)]):
        stamp(img[key], n)
    elo = selectors.character_elo()
    # duel 1 (t=1 min): 1000 vs 1000, A wins: A 1016, B 984.
    # duel 2 (t=3 min): A expected 1/(1+10^(-32/400)) = 0.54592192; A wins: +32 * 0.45407808 = 14.5305
    second = 32 * (1 - 1 / (1 + 10 ** (-32 / 400)))
    assert elo[a]["elo"] == pytest.approx(1016 + second)
    assert elo[b]["elo"] == pytest.approx(984 - second)
    assert (elo[a]["duels"], elo[a]["wins"], elo[b]["losses"]) == (2, 2, 2)
    # the time-weighted average starts once a model has settled (66 games at K=32, as on the human board): two
    # duels are too few, so it is the current Elo, not 1016 / 984 (what averaging from the first duel would give)
    assert elo[a]["twa_elo"] == pytest.approx(1016 + second)
    assert elo[b]["twa_elo"] == pytest.approx(984 - second)


def test_character_duels_need_the_same_scorer_version(board):
    ImageScore.objects.filter(image=board["img"][("B", "reimu", 0)]).update(scorer_hash="h2")
    assert len(selectors.character_duels()) == 1


def test_judge_agreement_on_hand_made_votes(world):
    v1, v2 = world.variant("one"), world.variant("two")
    p = world.prompt("x")
    imgs = [world.image(v1 if n % 2 else v2, p, solid((n, n, n)), settings_key=f"k{n}") for n in range(6)]
    i = [im.id for im in imgs]
    aesthetic = [5.0, 6.0, 4.0, 7.0, 3.0, 3.0]
    alignment = [20.0, 25.0, 30.0, 10.0, 15.0, 15.5]
    for im, a, al in zip(imgs, aesthetic, alignment):
        put(im, "aesthetic", a)
        put(im, "alignment", al)
    put(imgs[0], "ccip", 0.1, 1.0)
    put(imgs[1], "ccip", 0.3, 0.0)
    votes = [
        (i[0], i[1], "right"),  # aesthetic 5 < 6: agrees; alignment 20 < 25: agrees; ccip 0.1 < 0.3 prefers left: no
        (i[2], i[3], "left"),   # aesthetic prefers right: no; alignment 30 > 10: agrees; no ccip: skipped
        (i[4], i[5], "left"),   # aesthetic 3 == 3: skipped; alignment prefers right: no
        (i[3], i[0], "left"),   # aesthetic 7 > 5: agrees; alignment 10 < 20: no; ccip missing for i[3]: skipped
    ]
    got = selectors.judge_agreement(votes)
    assert (got["aesthetic"]["agreed"], got["aesthetic"]["total"], got["aesthetic"]["skipped"]) == (2, 3, 1)
    assert (got["alignment"]["agreed"], got["alignment"]["total"], got["alignment"]["skipped"]) == (2, 4, 0)
    assert (got["ccip"]["agreed"], got["ccip"]["total"], got["ccip"]["skipped"]) == (0, 1, 3)
    assert got["aesthetic"]["share"] == pytest.approx(2 / 3)
    lo, hi = got["alignment"]["share_ci"]
    assert lo < 0.5 < hi
    assert got["ccip"]["share"] == 0.0


def test_judge_agreement_with_no_scores_is_not_computed(world):
    got = selectors.judge_agreement([(1, 2, "left")])
    assert all(v["share"] is None and v["share_ci"] is None and v["total"] == 0 for v in got.values())
    with pytest.raises(ValueError):
        selectors.judge_agreement([(1, 2, "tie")])


def test_scorer_status_says_what_is_installed(scorers, db):
    status = {s["kind"]: s for s in selectors.scorer_status()}
    assert all(s["installed"] for kind, s in status.items() if kind != "reward")
    assert status["reward"]["state"] == "missing" and "No reward model is registered" in status["reward"]["message"]
    (scorers / "open_clip" / "aesthetic_mlp.safetensors").unlink()
    status = {s["kind"]: s for s in selectors.scorer_status()}
    assert status["aesthetic"]["state"] == "missing" and "aesthetic_mlp" in status["aesthetic"]["message"]
    assert status["alignment"]["installed"]


def test_scorer_status_without_scorers(no_scorers, db):
    status = selectors.scorer_status()
    assert [s["state"] for s in status] == ["missing", "missing", "missing", "missing"]
    assert "CCIP is not installed: no folder" in status[0]["message"]


def test_model_scores_take_a_fixed_number_of_queries_and_see_new_scores(board, world, django_assert_max_num_queries):
    with django_assert_max_num_queries(3):
        first = selectors.model_scores()
    with django_assert_max_num_queries(2):
        assert selectors.model_scores() == first  # cached aggregation
    extra = world.image(board["b"], board["img"][("A", "marisa", 0)].prompt, solid((1, 2, 3)), settings_key="s9")
    put(extra, "aesthetic", 6.5)
    assert selectors.model_scores()[board["b"].id]["aesthetic_mean"] == 6.5
