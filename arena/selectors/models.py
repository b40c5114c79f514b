"""Reads about models: their live ratings, their record against each opponent, their images, and the automatic
judges' scores shown beside the human ratings."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Exists, OuterRef

from arena.models import Mode, Poll, Rating, Scope, Vote
from arena.permissions import images_revealed
from arena.rating_settings import elo_params, trueskill_params
from arena.selectors.votelog import counted_votes
from generation.models import Image, ModelVariant
from generation.scoring import selectors as scoring
from ratings.outcomes import Outcome, pairwise


@dataclass
class OpponentRecord:
    opponent_id: int
    opponent: str
    wins: int = 0
    losses: int = 0
    ties: int = 0

    @property
    def games(self) -> int:
        return self.wins + self.losses + self.ties


def model_record(variant_id: int) -> list[OpponentRecord]:
    """Pairwise record against each opponent, from the counted votes of polls this model was in."""
    votes = counted_votes().filter(
        Exists(Poll.objects.filter(id=OuterRef("poll_id"), entries__variant_id=variant_id))
    ).values_list("variants", "ranks", "full_ranking")
    records: dict[int, OpponentRecord] = {}
    for variants, ranks, full in list(votes):
        for a, b, score in pairwise(Outcome(players=tuple(variants), ranks=tuple(ranks), full_ranking=full)):
            if variant_id not in (a, b):
                continue
            other, mine = (b, score) if a == variant_id else (a, 1.0 - score)
            rec = records.setdefault(other, OpponentRecord(opponent_id=other, opponent=""))
            if mine == 1.0:
                rec.wins += 1
            elif mine == 0.0:
                rec.losses += 1
            else:
                rec.ties += 1
    names = dict(ModelVariant.objects.filter(id__in=records).values_list("id", "name"))
    for rec in records.values():
        rec.opponent = names.get(rec.opponent_id, f"#{rec.opponent_id}")
    return sorted(records.values(), key=lambda r: (-r.games, r.opponent))


def ratings_by_scope(variant_id: int, rows) -> dict[str, Rating]:
    """A model's rating in every scope: its rows, and the initial rating (unsaved) where no vote has made one.
    Rating rows are written by the votes that touch a model, so a newly registered model has none yet."""
    elo, ts = elo_params(), trueskill_params()
    found = {r.scope: r for r in rows}
    return {scope: found.get(scope) or Rating(variant_id=variant_id, scope=scope, elo=elo.initial, mu=ts.mu, sigma=ts.sigma)
            for scope in Scope.values}


def model_ratings(variant_id: int) -> dict[str, Rating]:
    return ratings_by_scope(variant_id, Rating.objects.filter(variant_id=variant_id))


def model_images(variant_id: int, *, viewer, limit: int = 24) -> list[Image]:
    """The newest images of a model that ``viewer`` may see with it (``arena.permissions.images_revealed``)."""
    images = images_revealed(Image.objects.filter(variant_id=variant_id), viewer=viewer)
    return list(images.select_related("prompt").order_by("-created_at", "-id")[:limit])


def scope_choices() -> list[tuple[str, str]]:
    return [(Scope.OVERALL, "Overall"), (Mode.FIXED, "Fixed-prompt duels"), (Mode.FREE, "Free-prompt duels"), (Mode.FFA, "Free-for-all")]


def automatic_scores() -> dict[int, dict]:
    """Per model: the automatic judges' scores beside the human ratings (cached by the scoring app)."""
    scores = scoring.model_scores()
    char_elo = scoring.character_elo()
    out = {}
    for variant_id, s in scores.items():
        c = char_elo.get(variant_id)
        out[variant_id] = {**s, "char_elo": c["elo"] if c else None, "char_twa_elo": c["twa_elo"] if c else None,
                           "char_duels": c["duels"] if c else 0}
    return out


@dataclass
class FamilyNode:
    variant: ModelVariant
    elo: float
    votes: int
    children: list = field(default_factory=list)


def family_tree(variant: ModelVariant, *, depth: int = 4) -> FamilyNode:
    """``variant``'s oldest ancestor and every descendant (``depth`` generations), each with its overall rating."""
    root = variant
    seen = {root.pk}
    while root.parent_id and root.parent_id not in seen:
        root = ModelVariant.objects.get(pk=root.parent_id)
        seen.add(root.pk)

    def node(v: ModelVariant, level: int) -> FamilyNode:
        rating = model_ratings(v.pk)[Scope.OVERALL]
        out = FamilyNode(v, rating.elo, rating.votes)
        if level < depth:
            out.children = [node(c, level + 1) for c in v.children.order_by("created_at", "id")]
        return out

    return node(root, 0)
