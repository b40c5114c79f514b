"""Reads of the voting domain."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Exists, FilteredRelation, OuterRef, Q

from arena.models import Mode, Poll, Rating, Scope, Vote
from arena.rating_settings import trueskill_params
from ratings.matchmaking import Candidate
from ratings.outcomes import Outcome, pairwise
from generation.models import Image, ModelVariant, Prompt

SORT_KEYS = {
    "elo": lambda r: -r.elo,
    "mu": lambda r: -r.mu,
    "conservative": lambda r: -r.conservative,
    "votes": lambda r: -r.votes,
    "win_rate": lambda r: -(r.win_rate if r.win_rate is not None else -1.0),
    "name": lambda r: r.name.lower(),
}


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
    """Recent free prompts that were generated successfully, newest first, one per text."""
    shown = Poll.objects.filter(prompt_id=OuterRef("pk"), status__in=[Poll.Status.READY, Poll.Status.VOTED])
    seen, out = set(), []
    for prompt in Prompt.objects.filter(source=Prompt.Source.FREE).filter(Exists(shown)).order_by("-created_at")[: limit * 3]:
        if prompt.text not in seen:
            seen.add(prompt.text)
            out.append(prompt)
        if len(out) == limit:
            break
    return out


def free_prompt_from_pool(prompt_id: int) -> Prompt | None:
    shown = Poll.objects.filter(prompt_id=OuterRef("pk"), status__in=[Poll.Status.READY, Poll.Status.VOTED])
    return Prompt.objects.filter(id=prompt_id, source=Prompt.Source.FREE).filter(Exists(shown)).first()


@dataclass
class LeaderboardRow:
    rank: int
    variant_id: int
    name: str
    kind: str
    elo: float
    mu: float
    sigma: float
    votes: int
    games: int
    wins: float
    auto: dict | None = None  # automatic scores (CCIP, aesthetic, alignment, character Elo); None = not computed

    @property
    def conservative(self) -> float:
        return self.mu - 3.0 * self.sigma

    @property
    def win_rate(self) -> float | None:
        return self.wins / self.games if self.games else None


def leaderboard(*, scope: str = Scope.OVERALL, sort: str = "elo") -> list[LeaderboardRow]:
    """Every model that has a rating in the scope, ranked by Elo; ``sort`` only reorders the rows."""
    if scope not in Scope.values:
        scope = Scope.OVERALL
    ratings = Rating.objects.filter(scope=scope, variant__enabled=True).select_related("variant")
    rows = [
        LeaderboardRow(
            rank=0, variant_id=r.variant_id, name=r.variant.name, kind=r.variant.kind, elo=r.elo, mu=r.mu,
            sigma=r.sigma, votes=r.votes, games=r.games, wins=r.wins,
        )
        for r in ratings
    ]
    rows.sort(key=lambda r: (-r.elo, r.name.lower()))
    auto = automatic_scores()
    for i, row in enumerate(rows, start=1):
        row.rank = i
        row.auto = auto.get(row.variant_id)
    rows.sort(key=SORT_KEYS.get(sort, SORT_KEYS["elo"]))
    return rows


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
    votes = Vote.objects.filter(counted=True).filter(
        Exists(Poll.objects.filter(id=OuterRef("poll_id"), entries__variant_id=variant_id))
    ).values_list("variants", "ranks", "full_ranking")
    records: dict[int, OpponentRecord] = {}
    for variants, ranks, full in votes.iterator():
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


def model_ratings(variant_id: int) -> dict[str, Rating]:
    return {r.scope: r for r in Rating.objects.filter(variant_id=variant_id)}


def model_images(variant_id: int, limit: int = 24) -> list[Image]:
    return list(Image.objects.filter(variant_id=variant_id).select_related("prompt").order_by("-created_at")[:limit])


def vote_counts() -> dict[str, int]:
    agg = Vote.objects.aggregate(
        total=Count("id"), counted=Count("id", filter=Q(counted=True)), flagged=Count("id", filter=Q(flagged=True))
    )
    return agg


def scope_choices() -> list[tuple[str, str]]:
    return [(Scope.OVERALL, "Overall"), (Mode.FIXED, "Fixed-prompt duels"), (Mode.FREE, "Free-prompt duels"), (Mode.FFA, "Free-for-all")]




def automatic_scores() -> dict[int, dict]:
    """Per model: the automatic judges' scores beside the human ratings (cached by the scoring app)."""
    from generation.scoring import selectors as scoring

    scores = scoring.model_scores()
    char_elo = scoring.character_elo()
    out = {}
    for variant_id, s in scores.items():
        c = char_elo.get(variant_id)
        out[variant_id] = {**s, "char_elo": c["elo"] if c else None, "char_twa_elo": c["twa_elo"] if c else None,
                           "char_duels": c["duels"] if c else 0}
    return out
