"""An admin leaves a voter's votes out of the ratings (logged, replayable) and caps votes per voter per day."""

import datetime as dt
import random

import pytest

from arena import services
from arena.errors import RateLimited
from arena.models import Rating, RatingLedger, Scope, Vote, VoterExclusion
from arena.rating_settings import elo_params, trueskill_params
from arena.selectors.votelog import RECORD_FIELDS, records_from_rows
from arena.services import hygiene
from arena.voters import voter_hash
from ratings.replay import replay
from tests.arena.factories import arena_with_images

pytestmark = pytest.mark.django_db


def _vote(voter: str, seed: int, choice: str = "left"):
    poll = services.poll_create(mode="fixed", voter_key=voter, ip_hash="ip", rng=random.Random(seed))
    return services.vote_cast(poll_token=poll.token, voter_key=voter, ip_hash="ip", choice=choice,
                              now=poll.ticket.issued_at + dt.timedelta(seconds=5)).vote


def _live() -> dict:
    return {(r.variant_id, r.scope): (r.elo, r.mu, r.sigma, r.votes) for r in Rating.objects.all() if r.votes}


def _engine_without(voter: str) -> dict:
    """The ratings the pure engine gives the log without ``voter``'s votes (computed apart from the service)."""
    rows = list(Vote.objects.filter(counted=True, seq__isnull=False).exclude(voter_key=voter).order_by("seq")
                .values_list(*RECORD_FIELDS))
    out = {}
    for scope, ratings in replay(records_from_rows(rows), elo=elo_params(), trueskill=trueskill_params()).items():
        for variant, r in ratings.items():
            out[(variant, scope)] = (float(r.elo), float(r.mu), float(r.sigma), int(r.votes))
    return out


@pytest.fixture
def log(db):
    arena_with_images(n_models=4, n_prompts=8)  # enough images that no voter runs out of unseen ones
    voters = [f"{i:032x}" for i in range(6)]
    for i in range(24):
        _vote(voters[i % 6], seed=i, choice=random.Random(i).choice(["left", "right", "tie"]))
    services.ratings_apply_all()
    return voters


def test_excluding_a_voter_rebuilds_the_ratings_without_their_votes_and_is_logged(log, admin_user):
    robot = log[0]
    theirs = Vote.objects.filter(voter_key=robot).count()
    exclusion = hygiene.voter_exclude(judge=voter_hash(robot), reason="always picks the left image", by=admin_user)
    assert exclusion.votes_affected == theirs > 0 and exclusion.created_by == admin_user
    assert RatingLedger.objects.get().rebuild_requested
    services.ratings_apply_all()
    assert not RatingLedger.objects.get().rebuild_requested
    assert _live() == _engine_without(robot)
    report = services.ratings_recompute(write=False)
    assert report.changed == 0 and report.chain_ok  # the chain covers the votes, not whether they count
    assert Vote.objects.filter(voter_key=robot).count() == theirs  # nothing is deleted from the log


def test_a_vote_of_an_excluded_voter_is_stored_but_left_out(log):
    robot = log[1]
    hygiene.voter_exclude(judge=voter_hash(robot), reason="contrarian")
    services.ratings_apply_all()
    before = _live()
    vote = _vote(robot, seed=99)
    services.ratings_apply_all()
    vote.refresh_from_db()
    assert vote.excluded and vote.seq is not None and vote.rating_changes == {}
    assert _live() == before


def test_lifting_an_exclusion_counts_the_votes_again(log):
    robot = log[2]
    everything = _engine_without("nobody")
    exclusion = hygiene.voter_exclude(judge=voter_hash(robot), reason="checking")
    services.ratings_apply_all()
    assert _live() != everything
    hygiene.voter_include(exclusion=exclusion)
    services.ratings_apply_all()
    assert _live() == everything
    assert VoterExclusion.objects.get().lifted_at is not None


def test_bad_exclusions_are_refused_and_change_nothing(log):
    with pytest.raises(hygiene.HygieneError, match="No voter"):
        hygiene.voter_exclude(judge="0" * 32, reason="x")
    with pytest.raises(hygiene.HygieneError, match="why"):
        hygiene.voter_exclude(judge=voter_hash(log[0]), reason="  ")
    hygiene.voter_exclude(judge=voter_hash(log[0]), reason="once")
    with pytest.raises(hygiene.HygieneError, match="already"):
        hygiene.voter_exclude(judge=voter_hash(log[0]), reason="twice")
    assert VoterExclusion.objects.count() == 1


def test_a_daily_cap_refuses_the_vote_after_it(arena, settings, django_capture_on_commit_callbacks):
    settings.VOTER_DAILY_CAP = 2
    voter = "c" * 32
    for seed in (1, 2):
        with django_capture_on_commit_callbacks(execute=True):
            _vote(voter, seed=seed)
    with pytest.raises(RateLimited, match="2 votes today") as refused:
        _vote(voter, seed=3)
    # "come back tomorrow": Retry-After is the time left until the next UTC midnight, when the count starts again
    import datetime as dt

    now = dt.datetime.now(dt.timezone.utc)
    left = (dt.datetime.combine(now.date(), dt.time(), tzinfo=dt.timezone.utc) + dt.timedelta(days=1) - now).total_seconds()
    assert abs(refused.value.retry_after - left) <= 5 or now.hour == 0 and now.minute == 0
    assert Vote.objects.filter(voter_key=voter).count() == 2
    with django_capture_on_commit_callbacks(execute=True):
        _vote("d" * 32, seed=4)  # another voter is not capped
    assert Vote.objects.count() == 3
