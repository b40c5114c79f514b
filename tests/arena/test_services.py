import datetime as dt
import random

import pytest
from django.utils import timezone

from arena import selectors, services
from arena.errors import InvalidChoice, NoPollAvailable, PollExpired, PollForbidden, PollNotReady, PromptRejected
from arena.models import Mode, Poll, Rating, Scope, Vote
from generation.models import Image, ModelVariant
from tests.arena.factories import make_image, make_prompt, make_variant

pytestmark = pytest.mark.django_db
VOTER = "a" * 32
OTHER = "b" * 32


def _poll(mode=Mode.FIXED, voter=VOTER, seed=0):
    return services.poll_create(mode=mode, voter_key=voter, ip_hash="ip", rng=random.Random(seed))


def _shown_at(poll):
    return poll.ticket.issued_at if isinstance(poll, services.IssuedPoll) else poll.shown_at


def _later(poll, seconds=5.0):
    return _shown_at(poll) + dt.timedelta(seconds=seconds)


def _images(poll) -> list[Image]:
    """The images of an issued poll in screen order (they are on its ticket; nothing is in the database)."""
    found = Image.objects.in_bulk(poll.ticket.image_ids)
    return [found[i] for i in poll.ticket.image_ids]


def _shown(poll) -> list[int]:
    """Model ids in screen order."""
    if isinstance(poll, services.IssuedPoll):
        return [image.variant_id for image in _images(poll)]
    return list(poll.entries.order_by("position").values_list("variant_id", flat=True))


def _vote(poll, voter=VOTER, seconds=5.0, apply=True, **kwargs):
    """Cast a vote, then (``apply``) let the ratings consumer run, as it does after every commit."""
    result = services.vote_cast(poll_token=str(poll.token), voter_key=voter, ip_hash="ip", now=_later(poll, seconds), **kwargs)
    if apply:
        services.ratings_apply_all()
        result.vote.refresh_from_db()
    return result


def _ratings(scope=Scope.OVERALL):
    return {r.variant_id: (r.elo, r.mu, r.sigma, r.votes, r.games, r.wins) for r in Rating.objects.filter(scope=scope)}


def test_fixed_duel_shows_two_models_with_the_same_prompt_seed_and_size(arena):
    poll = _poll()
    assert [e.position for e in poll.entries] == [0, 1]
    images = _images(poll)
    assert [e.image_id for e in poll.entries] == [i.id for i in images]
    assert images[0].variant_id != images[1].variant_id
    assert {i.prompt_id for i in images} == {poll.prompt.id}
    assert len({i.settings_key for i in images}) == 1
    assert len({(i.width, i.height) for i in images}) == 1
    assert [(e.image.width, e.image.height) for e in poll.entries] == [(i.width, i.height) for i in images]
    assert Poll.objects.count() == 0  # issuing a poll writes nothing


def test_free_for_all_shows_four_distinct_models(arena):
    poll = _poll(Mode.FFA)
    assert sorted(e.position for e in poll.entries) == [0, 1, 2, 3]
    assert len(set(_shown(poll))) == 4


def test_left_right_order_is_random_and_recorded(arena):
    firsts = {tuple(_shown(_poll(seed=s))) for s in range(30)}
    assert len(firsts) > 2


def test_no_poll_when_too_few_models_have_images(db):
    variant = make_variant()
    make_image(variant, make_prompt())
    with pytest.raises(NoPollAvailable):
        _poll()
    assert Poll.objects.count() == 0


def test_disabled_and_failing_models_are_never_shown(arena):
    variants, _ = arena
    variants[0].enabled = False
    variants[0].save()
    variants[1].health = ModelVariant.Health.FAILING
    variants[1].save()
    for s in range(20):
        shown = set(_shown(_poll(seed=s)))
        assert not shown & {variants[0].id, variants[1].id}


def test_a_duel_needs_a_prompt_both_models_have(db):
    a, b, c = make_variant(), make_variant(), make_variant()
    p1, p2 = make_prompt("one"), make_prompt("two")
    make_image(a, p1)
    make_image(b, p1)
    make_image(c, p2)  # c shares no prompt with anyone
    for s in range(15):
        poll = _poll(seed=s)
        assert set(_shown(poll)) == {a.id, b.id}


def test_left_vote_raises_the_winner_and_lowers_the_loser_in_mode_and_overall(arena):
    poll = _poll()
    left, right = _shown(poll)
    result = _vote(poll, choice="left")
    assert not result.replayed
    vote = Vote.objects.get()
    assert vote.choice == "left" and vote.ranks == [0, 1] and vote.variants == [left, right] and vote.counted
    for scope in (Scope.FIXED, Scope.OVERALL):
        r = _ratings(scope)
        assert r[left][0] == pytest.approx(1002.0) and r[right][0] == pytest.approx(998.0)
        assert r[left][1] > 25.0 > r[right][1]
        assert r[left][3] == r[right][3] == 1 and r[left][5] == 1.0 and r[right][5] == 0.0
    assert left not in _ratings(Scope.FFA)  # no free-for-all vote: no free-for-all rating row
    assert Poll.objects.get().status == Poll.Status.VOTED
    assert vote.rating_changes["fixed"][str(left)]["elo"] == [1000.0, pytest.approx(1002.0)]


def test_second_vote_on_a_poll_is_refused_and_counts_nothing(arena):
    poll = _poll()
    first = _vote(poll, choice="left")
    before = _ratings()
    again = _vote(poll, choice="right")
    assert again.replayed and again.vote.pk == first.vote.pk and again.vote.choice == "left"
    assert Vote.objects.count() == 1
    assert _ratings() == before


def test_someone_elses_poll_is_refused(arena):
    poll = _poll()
    with pytest.raises(PollForbidden):
        _vote(poll, voter=OTHER, choice="left")
    assert Vote.objects.count() == 0 and Poll.objects.count() == 0


def test_expired_poll_is_refused(arena, settings):
    poll = _poll()
    with pytest.raises(PollExpired):
        _vote(poll, seconds=settings.POLL_TTL_SECONDS + 1, choice="left")
    assert Vote.objects.count() == 0


def test_malformed_choice_is_refused(arena):
    poll = _poll()
    for bad in ("", "middle", "best", "LEFT"):
        with pytest.raises(InvalidChoice):
            _vote(poll, choice=bad)
    assert Vote.objects.count() == 0


def test_a_vote_faster_than_a_person_is_stored_flagged_and_left_out(arena):
    poll = _poll()
    before = _ratings()
    result = _vote(poll, seconds=0.2, choice="left")
    vote = result.vote
    assert vote.flagged and not vote.counted and vote.elapsed_ms == 200
    assert _ratings() == before


def test_fast_votes_count_when_configured(arena, settings):
    settings.COUNT_FAST_VOTES = True
    poll = _poll()
    vote = _vote(poll, seconds=0.2, choice="tie").vote
    assert vote.flagged and vote.counted
    assert all(r[3] == 1 for v, r in _ratings().items() if v in vote.variants)


def test_tie_and_both_bad_rate_as_a_draw_but_stay_distinct(arena):
    a = _vote(_poll(seed=1), choice="tie").vote
    b = _vote(_poll(seed=2), choice="bothbad").vote
    assert a.ranks == b.ranks == [0, 0]
    assert {a.choice, b.choice} == {"tie", "bothbad"}


def test_free_for_all_best_pick_beats_the_other_three(arena):
    poll = _poll(Mode.FFA)
    order = _shown(poll)
    vote = _vote(poll, choice="best", best=2).vote
    assert vote.ranks == [1, 1, 0, 1] and not vote.full_ranking
    r = _ratings(Scope.FFA)
    assert r[order[2]][0] == pytest.approx(1006.0)
    assert all(r[order[i]][0] == pytest.approx(998.0) for i in (0, 1, 3))
    assert r[order[2]][4] == 3 and r[order[0]][4] == 1


def test_free_for_all_full_ranking(arena):
    poll = _poll(Mode.FFA)
    vote = _vote(poll, choice="ranking", ranking=[3, 1, 0, 2]).vote
    assert vote.ranks == [2, 1, 3, 0] and vote.full_ranking
    assert sum(r[4] for r in _ratings(Scope.FFA).values()) == 12  # six pairs, two games each


@pytest.mark.parametrize("kwargs", [{"choice": "best", "best": 7}, {"choice": "best"}, {"choice": "ranking", "ranking": [0, 1, 2]},
                                    {"choice": "ranking", "ranking": [0, 0, 1, 2]}, {"choice": "left"}])
def test_bad_free_for_all_votes_are_refused(arena, kwargs):
    poll = _poll(Mode.FFA)
    with pytest.raises(InvalidChoice):
        _vote(poll, **kwargs)
    assert Vote.objects.count() == 0


def test_recompute_gives_exactly_the_live_ratings(arena):
    rng = random.Random(7)
    for i in range(40):
        mode = rng.choice([Mode.FIXED, Mode.FFA])
        voter = f"{i:032x}"  # a voter each: nobody runs out of images whose model they have not seen revealed
        poll = _poll(mode, seed=i, voter=voter)
        if mode == Mode.FIXED:
            _vote(poll, voter=voter, choice=rng.choice(["left", "right", "tie", "bothbad"]), seconds=rng.choice([0.1, 3]))
        elif rng.random() < 0.5:
            _vote(poll, voter=voter, choice="best", best=rng.randrange(4))
        else:
            ranking = [0, 1, 2, 3]
            rng.shuffle(ranking)
            _vote(poll, voter=voter, choice="ranking", ranking=ranking)
    live = {(r.variant_id, r.scope): (r.elo, r.mu, r.sigma, r.votes, r.games, r.wins, r.last_vote_at) for r in Rating.objects.all()}
    report = services.ratings_recompute()
    assert report.changed == 0 and report.max_elo_difference == 0.0
    replayed = {(r.variant_id, r.scope): (r.elo, r.mu, r.sigma, r.votes, r.games, r.wins, r.last_vote_at) for r in Rating.objects.all()}
    assert replayed == live
    assert any(v[3] for v in live.values())


def test_recompute_repairs_a_damaged_rating(arena):
    poll = _poll()
    _vote(poll, choice="left")
    damaged = Rating.objects.filter(scope=Scope.OVERALL).update(elo=1.0)
    assert damaged == 2  # rating rows exist for the models votes touched
    report = services.ratings_recompute()
    assert report.changed == damaged
    winner = _shown(poll)[0]
    assert Rating.objects.get(variant_id=winner, scope=Scope.OVERALL).elo == pytest.approx(1002.0)


def test_votes_are_placed_in_the_log_in_the_order_they_came_even_if_the_clock_goes_back(db):
    a, b = make_variant(), make_variant()
    prompt = make_prompt()
    for seed in (1, 2):
        make_image(a, prompt, seed=seed)
        make_image(b, prompt, seed=seed)
    p1, p2 = _poll(seed=1), _poll(seed=2)
    v1 = _vote(p1, choice="left", seconds=10).vote
    v2 = _vote(p2, choice="right", seconds=9).vote  # its clock reads earlier than the first vote's
    assert v2.created_at < v1.created_at and (v1.seq, v2.seq) == (1, 2)
    assert services.ratings_recompute(write=False).changed == 0


def test_a_new_model_starts_with_initial_ratings_in_every_scope(db, client):
    variant = make_variant()
    assert not Rating.objects.filter(variant=variant).exists()  # rows are written by the votes that touch it
    ratings = selectors.model_ratings(variant.pk)
    assert sorted(ratings) == sorted(Scope.values)
    assert all(r.elo == 1000.0 and r.mu == 25.0 and r.votes == 0 for r in ratings.values())
    api = client.get(f"/api/models/{variant.pk}/").json()["ratings"]
    assert sorted(r["scope"] for r in api) == sorted(Scope.values) and all(r["elo"] == 1000.0 for r in api)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "Type a prompt"),
        ("   ", "Type a prompt"),
        ("x" * 2000, "too long"),
        ("<script>alert(1)</script>", "markup"),
        ("1girl, <b>bold</b>", "markup"),
        ("1girl &amp; 1boy", "markup"),
        ("1girl\x00", "control"),
    ],
)
def test_bad_free_prompts_are_refused_with_a_reason(text, fragment):
    with pytest.raises(PromptRejected) as info:
        services.free_prompt_clean(text)
    assert fragment in info.value.message


def test_danbooru_emoticons_are_not_markup():
    assert services.free_prompt_clean("  1girl, >_<, (smile:1.2), <3  ") == "1girl, >_<, (smile:1.2), <3"


def test_blocklisted_words_are_refused(settings):
    settings.FREE_PROMPT_BLOCKLIST = ["forbidden"]
    with pytest.raises(PromptRejected):
        services.free_prompt_clean("1girl, Forbidden thing")
    assert services.free_prompt_clean("1girl, unforbiddenly") == "1girl, unforbiddenly"


def test_free_duel_without_tie_refuses_a_tie(db, settings, monkeypatch):
    settings.FREE_DUEL_ALLOW_TIE = False
    variants = [make_variant(), make_variant()]
    prompt = make_prompt("free prompt", source="free")
    images = [make_image(v, prompt) for v in variants]
    now = timezone.now()
    poll = Poll.objects.create(mode=Mode.FREE, voter_key=VOTER, prompt=prompt, status=Poll.Status.READY, shown_at=now,
                               expires_at=now + dt.timedelta(minutes=5))
    for i, (v, im) in enumerate(zip(variants, images)):
        poll.entries.create(position=i, variant=v, image=im)
    with pytest.raises(InvalidChoice):
        _vote(poll, choice="tie")
    assert _vote(poll, choice="right").vote.ranks == [1, 0]


def test_a_generating_poll_takes_no_vote(db):
    variants = [make_variant(), make_variant()]
    prompt = make_prompt("free prompt", source="free")
    now = timezone.now()
    poll = Poll.objects.create(mode=Mode.FREE, voter_key=VOTER, prompt=prompt, status=Poll.Status.GENERATING, shown_at=now,
                               expires_at=now + dt.timedelta(minutes=5))
    for i, v in enumerate(variants):
        poll.entries.create(position=i, variant=v)
    with pytest.raises(PollNotReady):
        _vote(poll, choice="left")
    assert Vote.objects.count() == 0 and Image.objects.count() == 0


@pytest.mark.parametrize("text, fragment", [("1girl, [smile:frown:0.5]", "editing"), ("1girl, [red|blue] hair", "alternation")])
def test_a_free_prompt_the_pipelines_would_refuse_is_refused_with_their_reason(text, fragment):
    with pytest.raises(PromptRejected) as info:
        services.free_prompt_clean(text)
    assert fragment in info.value.message.lower()


def test_the_probability_of_the_shown_set_is_stored_and_exact_for_what_the_voter_may_be_shown(db, settings):
    """Uniform design, four models with images of two prompts: a new voter's duel is one of 6 pairs. Once the
    voter has seen A and B revealed on prompt 1, and C and D on prompt 2, only A–B (on prompt 2) and C–D (on
    prompt 1) are left: each has probability 1/2 for that voter."""
    settings.MATCHMAKING_STRATEGY = "uniform"
    a, b, c, d = (make_variant() for _ in range(4))
    p1, p2 = make_prompt("one"), make_prompt("two")
    images = {(v.id, p.id): make_image(v, p) for v in (a, b, c, d) for p in (p1, p2)}
    poll = _poll(seed=1)
    assert poll.ticket.propensity == pytest.approx(1 / 6)
    for pair, prompt in (((a, b), p1), ((c, d), p2)):  # what this voter has seen revealed, stored as votes would
        stored = Poll.objects.create(mode=Mode.FIXED, voter_key=VOTER, prompt=prompt, status=Poll.Status.VOTED,
                                     expires_at=timezone.now())
        for position, v in enumerate(pair):
            stored.entries.create(position=position, variant=v, image=images[(v.id, prompt.id)])
    shown = set()
    for seed in range(40):
        poll = _poll(seed=seed)
        pair = frozenset(_shown(poll))
        assert pair in ({a.id, b.id}, {c.id, d.id}) and poll.ticket.propensity == pytest.approx(0.5)
        assert poll.prompt.id == (p2.id if pair == {a.id, b.id} else p1.id)
        shown.add(pair)
    assert len(shown) == 2
    vote = _vote(poll, choice="left").vote
    assert vote.poll.propensity == pytest.approx(0.5)


def test_the_images_a_voter_has_seen_revealed_are_those_of_their_voted_polls_only(db):
    """The hand-written statement behind ``revealed_images`` asks what the ORM would: this voter's voted polls'
    images; not their open or failed polls, not a free duel's missing image, not another voter's."""
    from arena.models import PollEntry

    a, b = make_variant(), make_variant()
    prompt = make_prompt("seen")
    shown = [make_image(a, prompt, seed=s) for s in range(4)] + [make_image(b, prompt, seed=s) for s in range(4)]
    other = "f" * 32
    for k, (voter, status) in enumerate([(VOTER, Poll.Status.VOTED), (VOTER, Poll.Status.READY),
                                         (other, Poll.Status.VOTED), (VOTER, Poll.Status.FAILED)]):
        poll = Poll.objects.create(mode=Mode.FIXED, voter_key=voter, prompt=prompt, status=status, expires_at=timezone.now())
        poll.entries.create(position=0, variant=a, image=shown[k])
        poll.entries.create(position=1, variant=b, image=shown[4 + k])
    missing = Poll.objects.create(mode=Mode.FREE, voter_key=VOTER, prompt=prompt, status=Poll.Status.VOTED, expires_at=timezone.now())
    missing.entries.create(position=0, variant=a, image=None)
    orm = set(PollEntry.objects.filter(poll__voter_key=VOTER, poll__status=Poll.Status.VOTED, image__isnull=False)
              .values_list("image_id", flat=True))
    assert selectors.revealed_images(voter_key=VOTER) == orm == {shown[0].id, shown[4].id}
    assert selectors.revealed_images(voter_key=other) == {shown[2].id, shown[6].id}
    assert selectors.revealed_images(voter_key="0" * 32) == set()


def test_the_reveals_rating_read_and_the_vote_insert_agree_with_the_orm(arena, settings):
    """``vote_ratings`` and the vote's INSERT are hand-written statements on the vote path: what they read and
    store is what the ORM reads and stores (JSON, booleans, NULL seq, the token's column type)."""
    settings.RATINGS_CONSUMER = "external"  # the vote waits for the consumer, as at scale
    poll = _poll(mode=Mode.FFA, seed=3)
    result = _vote(poll, apply=False, seconds=0.2, choice="best", best=2)  # fast: flagged and not counted
    stored = Vote.objects.get(id=result.vote.id)
    assert (stored.ranks, stored.flagged, stored.counted, stored.seq, stored.rating_changes) == ([1, 1, 0, 1], True, False, None, {})
    assert stored.poll_id == result.vote.poll_id and stored.created_at == result.vote.created_at
    fields = ["mode", "variants", "seq", "counted", "excluded", "rating_changes", "voter_key"]
    orm = lambda token: Vote.objects.filter(poll__token=token).values(*fields).first()  # noqa: E731
    assert selectors.vote_ratings(stored.poll.token) == orm(stored.poll.token)
    duel = _poll(seed=4)
    counted = _vote(duel, choice="left")  # applied by the consumer: a place in the log and rating changes
    token = counted.vote.poll.token
    read = selectors.vote_ratings(str(token))
    assert read == orm(token) and read["counted"] is True and read["seq"] is not None
    assert set(read["rating_changes"][Mode.FIXED]) == {str(v) for v in read["variants"]}
    assert selectors.vote_ratings("0b4e28ba-2fa1-11d2-883f-0016d3cca427") is None
