"""Reads about polls: who may be matched, a poll with its entries, the pool of earlier free prompts."""

from __future__ import annotations

import time

from django.db.models import FilteredRelation, Q

from arena.models import Poll, PollEntry, Vote
from arena.permissions import free_prompts_listed
from arena.rating_settings import trueskill_params
from generation.models import ModelVariant, Prompt
from ratings.design import Candidate


#: Seconds a process reuses its snapshot of the candidates (ratings move a little with each vote; the
#: matchmaker's probabilities are computed from the snapshot it used, so they stay exact).
CANDIDATES_TTL = 2.0
_snapshots: dict[tuple[str, bool], tuple[float, list[Candidate]]] = {}


def matchmaking_candidates(*, scope: str, generating: bool = False) -> list[Candidate]:
    """Enabled, healthy models with what the matchmaker weighs: comparisons so far in the scope, TrueSkill,
    the admin's weight. ``generating``: only models with local weights (for live generation). From this
    process's snapshot, read again (one query) when it is older than ``CANDIDATES_TTL``."""
    key = (scope, generating)
    taken = _snapshots.get(key)
    now = time.monotonic()
    if taken is not None and now - taken[0] < CANDIDATES_TTL:
        return list(taken[1])
    candidates = _read_candidates(scope=scope, generating=generating)
    _snapshots[key] = (now, candidates)
    return list(candidates)


def forget_candidates() -> None:
    _snapshots.clear()


def _read_candidates(*, scope: str, generating: bool) -> list[Candidate]:
    ts = trueskill_params()
    variants = ModelVariant.objects.filter(enabled=True, health=ModelVariant.Health.OK)
    if generating:
        variants = variants.exclude(source_type=ModelVariant.SourceType.NONE)
    rows = variants.annotate(r=FilteredRelation("ratings", condition=Q(ratings__scope=scope))).values_list(
        "id", "matchmaking_weight", "r__games", "r__mu", "r__sigma", "r__votes"
    ).order_by("id")
    return [
        Candidate(id=v, games=games or 0, mu=ts.mu if mu is None else mu, sigma=ts.sigma if sigma is None else sigma,
                  weight=weight, enabled=True, polls=votes or 0)
        for v, weight, games, mu, sigma, votes in rows
    ]


def poll_with_entries(token) -> Poll | None:
    return (
        Poll.objects.filter(token=token)
        .select_related("prompt")
        .prefetch_related("entries__variant")
        .first()
    )


def vote_ratings(token) -> dict | None:
    """What the reveal's rating line needs of a poll's vote, in one query (the reveal polls it until the ratings
    consumer has applied the vote): ``{"mode", "variants" (screen order), "seq", "counted", "excluded",
    "rating_changes", "voter_key"}``; None when the poll has no vote."""
    return (Vote.objects.filter(poll__token=token)
            .values("mode", "variants", "seq", "counted", "excluded", "rating_changes", "voter_key").first())


def free_prompt_pool(limit: int = 20) -> list[Prompt]:
    """Recent free prompts whose duel was voted or expired (``arena.permissions.free_prompts_listed``), newest
    first, one per text."""
    seen, out = set(), []
    for prompt in free_prompts_listed(Prompt.objects.all()).order_by("-created_at", "-id")[: limit * 3]:
        if prompt.text not in seen:
            seen.add(prompt.text)
            out.append(prompt)
        if len(out) == limit:
            break
    return out


def free_prompt_from_pool(prompt_id: int) -> Prompt | None:
    return free_prompts_listed(Prompt.objects.filter(id=prompt_id)).first()


def revealed_images(*, voter_key: str) -> set[int]:
    """Images this voter has seen with their model's name (every image of the polls they voted on)."""
    return set(PollEntry.objects.filter(poll__voter_key=voter_key, poll__status=Poll.Status.VOTED, image__isnull=False)
               .values_list("image_id", flat=True))
