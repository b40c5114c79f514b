"""The vote log cannot be rewritten unseen: each vote's hash chains to the one before it in the log's order,
``recompute_ratings --check`` verifies the chain, and exports carry its head. The reader's check below is
written from the README's description, not with the site's code."""

import datetime as dt
import hashlib
import json
import random

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from rest_framework.authtoken.models import Token

from arena import services
from arena.models import Vote
from tests.arena.factories import arena_with_images

pytestmark = pytest.mark.django_db


def _log(n=10):
    arena_with_images(n_models=4, n_prompts=6)
    for i in range(n):
        voter = f"{i:032x}"
        poll = services.poll_create(mode="ffa" if i % 4 == 0 else "fixed", voter_key=voter, ip_hash="ip",
                                    rng=random.Random(i))
        kwargs = {"choice": "best", "best": i % 4} if poll.mode == "ffa" else {"choice": ["left", "right", "tie"][i % 3]}
        services.vote_cast(poll_token=poll.token, voter_key=voter, ip_hash="ip",
                           now=poll.ticket.issued_at + dt.timedelta(seconds=0.5 if i == 3 else 5), **kwargs)
    services.ratings_apply_all()


def _reader_chain(votes: list[dict]) -> list[str]:
    """sha256(previous hash + "\\n" + canonical JSON of the vote), starting from 64 zeros."""
    head, out = "0" * 64, []
    for v in sorted(votes, key=lambda v: v["seq"]):
        body = {"seq": v["seq"], "id": v["id"], "poll": v["poll"], "mode": v["mode"], "choice": v["choice"],
                "variants": v["variants"], "ranks": v["ranks"], "full_ranking": v["full_ranking"],
                "created_at": dt.datetime.fromisoformat(v["created_at"].replace("Z", "+00:00")).astimezone(dt.timezone.utc).isoformat(),
                "judge": v["judge"]}
        head = hashlib.sha256(f"{head}\n{json.dumps(body, sort_keys=True, separators=(',', ':'))}".encode()).hexdigest()
        out.append(head)
    return out


def test_a_reader_can_recompute_the_chain_from_the_api_and_match_the_exports_head(client, admin_user):
    _log()
    token = Token.objects.create(user=admin_user)
    votes = client.get("/api/votes/?limit=1000", HTTP_AUTHORIZATION=f"Token {token.key}").json()["results"]
    assert len(votes) == 10 and any(not v["counted"] for v in votes)  # the chain covers uncounted votes too
    assert _reader_chain(votes) == [v["chain_hash"] for v in sorted(votes, key=lambda v: v["seq"])]
    export = client.get(reverse("arena:leaderboard_export", args=["json"]) + "?scope=overall")
    document = json.loads(export.content)
    assert document["vote_log_head"] == export["X-Vote-Log-Head"] == _reader_chain(votes)[-1]
    assert document["vote_log_seq"] == 10
    battles = client.get(reverse("arena:vote_battles") + "?scope=overall")
    assert battles["X-Vote-Log-Head"] == _reader_chain(votes)[-1]


def test_check_finds_a_rewritten_vote():
    _log()
    call_command("recompute_ratings", "--check")  # intact
    victim = Vote.objects.get(seq=4)
    Vote.objects.filter(id=victim.id).update(ranks=list(reversed(victim.ranks)))
    report = services.ratings_recompute(write=False)
    assert not report.chain_ok and report.chain_broken_at == 4
    with pytest.raises(CommandError, match="chain"):
        call_command("recompute_ratings", "--check")


def test_an_idle_consumer_looks_with_two_queries_and_no_lock_and_still_finds_the_next_vote_and_rebuild(
        django_assert_num_queries):
    from arena.models import RatingLedger
    from arena.services import ratings as ratings_service
    from tests.arena.factories import make_variant
    from tests.arena.votelog import cast

    a, b = make_variant(), make_variant()
    cast((a, b), "left")  # placed at once
    with django_assert_num_queries(2) as idle:  # the two lookups: no SELECT ... FOR UPDATE, no write
        assert ratings_service.ratings_apply_pending() == 0
    assert all(word not in q["sql"].upper() for q in idle.captured_queries for word in ("FOR UPDATE", "UPDATE ", "INSERT"))
    waiting = cast((b, a), "left", apply=False)
    assert ratings_service.ratings_apply_pending() == 1
    waiting.refresh_from_db()
    assert waiting.seq is not None
    ratings_service.ratings_request_rebuild()
    assert ratings_service.ratings_apply_pending() == 0  # a rebuild places nothing new, but it runs
    assert not RatingLedger.objects.get().rebuild_requested
