"""Reads about polls: who may be matched, a poll with its entries, the pool of earlier free prompts."""

from __future__ import annotations

from django.db.models import FilteredRelation, Q

from arena.models import Poll
from arena.permissions import free_prompts_listed
from arena.rating_settings import trueskill_params
from generation.models import ModelVariant, Prompt
from ratings.matchmaking import Candidate


def matchmaking_candidates(*, scope: str, generating: bool = False) -> list[Candidate]:
    """Enabled, healthy models with what the matchmaker weighs: comparisons so far in the scope, TrueSkill,
    the admin's weight. ``generating``: only models with local weights (for live generation). One query."""
    ts = trueskill_params()
    variants = ModelVariant.objects.filter(enabled=True, health=ModelVariant.Health.OK)
    if generating:
        variants = variants.exclude(source_type=ModelVariant.SourceType.NONE)
    rows = variants.annotate(r=FilteredRelation("ratings", condition=Q(ratings__scope=scope))).values_list(
        "id", "matchmaking_weight", "r__games", "r__mu", "r__sigma"
    ).order_by("id")
    return [
        Candidate(id=v, games=games or 0, mu=ts.mu if mu is None else mu, sigma=ts.sigma if sigma is None else sigma,
                  weight=weight, enabled=True)
        for v, weight, games, mu, sigma in rows
    ]


def poll_with_entries(token) -> Poll | None:
    return (
        Poll.objects.filter(token=token)
        .select_related("prompt")
        .prefetch_related("entries__variant")
        .first()
    )


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
