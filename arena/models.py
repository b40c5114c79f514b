"""Polls, the append-only vote log, and the live ratings derived from it."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q

from generation.models import Image, ModelVariant, Prompt


class Mode(models.TextChoices):
    FIXED = "fixed", "fixed-prompt duel"
    FREE = "free", "free-prompt duel"
    FFA = "ffa", "free-for-all"


class Scope(models.TextChoices):
    """A rating is kept per mode and overall."""

    FIXED = "fixed", "fixed-prompt duel"
    FREE = "free", "free-prompt duel"
    FFA = "ffa", "free-for-all"
    OVERALL = "overall", "overall"


class Poll(models.Model):
    class Status(models.TextChoices):
        GENERATING = "generating", "generating"
        READY = "ready", "ready"
        VOTED = "voted", "voted"
        FAILED = "failed", "failed"

    token = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    mode = models.CharField(max_length=8, choices=Mode.choices)
    voter_key = models.CharField(max_length=64, db_index=True, help_text="random id from the voter's session cookie")
    ip_hash = models.CharField(max_length=64, blank=True)
    prompt = models.ForeignKey(Prompt, on_delete=models.PROTECT, related_name="polls")
    settings_key = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.READY)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    shown_at = models.DateTimeField(null=True, blank=True, help_text="when all images were ready to be seen")
    expires_at = models.DateTimeField()
    propensity = models.FloatField(null=True, blank=True,
                                   help_text="probability the matchmaker gave the shown set of models (None: unknown)")

    class Meta:
        indexes = [models.Index(fields=["voter_key", "status"])]

    def __str__(self) -> str:
        return f"{self.get_mode_display()} poll {self.token}"


class PollEntry(models.Model):
    """One image slot of a poll; ``position`` is the random screen order (0 = left)."""

    poll = models.ForeignKey(Poll, on_delete=models.CASCADE, related_name="entries")
    position = models.PositiveSmallIntegerField()
    variant = models.ForeignKey(ModelVariant, on_delete=models.PROTECT, related_name="poll_entries")
    image = models.ForeignKey(Image, null=True, blank=True, on_delete=models.PROTECT, related_name="poll_entries")
    task = models.ForeignKey(
        "generation.GenerationTask", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="the live generation behind a free-prompt duel's image",
    )

    class Meta:
        ordering = ["poll_id", "position"]
        verbose_name_plural = "poll entries"
        constraints = [
            models.UniqueConstraint(fields=["poll", "position"], name="entry_unique_position"),
            models.UniqueConstraint(fields=["poll", "variant"], name="entry_unique_variant"),
            models.CheckConstraint(condition=Q(position__lte=3), name="entry_position_range"),
        ]


class Vote(models.Model):
    """The append-only vote log, source of truth for every rating. One vote per poll; what a voter gave is
    never updated.

    ``variants`` and ``ranks`` repeat the poll's outcome (model ids in screen order, rank 0 best, equal ranks
    a tie) so a replay reads this table alone. The ratings consumer (``arena.services.ratings``) gives each vote
    its place in the log, ``seq`` (the order it saw the votes committed), the ``chain_hash`` that chains it to
    the vote before it, and the ``rating_changes`` shown at the reveal; a replay in ``seq`` order gives exactly
    the live ratings.
    """

    class Choice(models.TextChoices):
        LEFT = "left", "left is better"
        RIGHT = "right", "right is better"
        TIE = "tie", "tie"
        BOTH_BAD = "bothbad", "both are bad"
        BEST = "best", "picked the best"
        RANKING = "ranking", "ranked all"

    poll = models.OneToOneField(Poll, on_delete=models.PROTECT, related_name="vote")
    mode = models.CharField(max_length=8, choices=Mode.choices)
    choice = models.CharField(max_length=8, choices=Choice.choices)
    variants = models.JSONField()
    ranks = models.JSONField()
    full_ranking = models.BooleanField(default=False)
    voter_key = models.CharField(max_length=64, db_index=True)
    ip_hash = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(db_index=True)
    elapsed_ms = models.PositiveIntegerField(help_text="from images shown to vote")
    flagged = models.BooleanField(default=False)
    flag_reason = models.CharField(max_length=200, blank=True)
    counted = models.BooleanField(default=True, help_text="whether ratings include this vote")
    excluded = models.BooleanField(default=False, help_text="left out because an admin excluded the voter")
    rating_changes = models.JSONField(default=dict, help_text="per model: ratings before and after, for the reveal")
    seq = models.BigIntegerField(null=True, blank=True, unique=True, help_text="place in the log (ratings consumer)")
    chain_hash = models.CharField(max_length=64, blank=True, help_text="sha256 of the previous vote's hash and this vote")

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["created_at", "id"]), models.Index(fields=["mode", "counted"]),
                   models.Index(fields=["id"], condition=Q(seq__isnull=True), name="vote_unsequenced")]

    def __str__(self) -> str:
        return f"vote {self.pk} ({self.choice})"


class Rating(models.Model):
    """Live online Elo and TrueSkill of one model in one scope; rebuilt exactly by ``recompute_ratings``."""

    variant = models.ForeignKey(ModelVariant, on_delete=models.CASCADE, related_name="ratings")
    scope = models.CharField(max_length=8, choices=Scope.choices)
    elo = models.FloatField()
    mu = models.FloatField()
    sigma = models.FloatField()
    votes = models.PositiveIntegerField(default=0)
    wins = models.FloatField(default=0.0, help_text="pairwise wins, ties counting half")
    games = models.PositiveIntegerField(default=0, help_text="pairwise games")
    last_vote_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["variant", "scope"], name="rating_unique_variant_scope"),
            models.CheckConstraint(condition=Q(sigma__gt=0), name="rating_sigma_positive"),
            models.CheckConstraint(condition=Q(wins__gte=0) & Q(wins__lte=models.F("games")), name="rating_wins_range"),
        ]

    @property
    def conservative(self) -> float:
        return self.mu - 3.0 * self.sigma

    @property
    def win_rate(self) -> float | None:
        return self.wins / self.games if self.games else None


class LeaderboardSnapshot(models.Model):
    """A leaderboard computed from the counted votes of one scope, stored with the parameters used and the hash
    of the vote log it came from (``ratings.log.vote_log_hash``), so a page view reuses it while the log
    is unchanged. ``log_fingerprint`` is a cheap check (count, sum and max of the counted vote ids) read with one
    aggregate query; ``rows`` are ``ratings.leaderboard.LeaderboardRow.as_dict()`` values, best first."""

    scope = models.CharField(max_length=8, choices=Scope.choices)
    computed_at = models.DateTimeField(db_index=True)
    params = models.JSONField(help_text="Elo, TrueSkill and Bradley–Terry parameters used")
    vote_log_hash = models.CharField(max_length=64)
    vote_count = models.PositiveIntegerField()
    log_fingerprint = models.CharField(max_length=80, blank=True)
    rows = models.JSONField(default=list)
    compute_seconds = models.FloatField(default=0.0)
    last_seq = models.BigIntegerField(default=0, help_text="the log up to this place (seq) was read")
    chain_head = models.CharField(max_length=64, blank=True, help_text="the vote-log chain's hash at that place")

    class Meta:
        get_latest_by = ["computed_at", "id"]
        indexes = [models.Index(fields=["scope", "-computed_at", "-id"], name="snapshot_scope_latest")]

    def __str__(self) -> str:
        return f"{self.scope} leaderboard of {self.vote_count} votes ({self.vote_log_hash[:12]})"


class RatingLedger(models.Model):
    """The ratings consumer's place in the vote log (one row): the last ``seq`` it gave and the chain's head.
    The consumer locks this row, so two consumers never sequence the same votes."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_seq = models.BigIntegerField(default=0)
    head_hash = models.CharField(max_length=64, default="0" * 64)
    rebuild_requested = models.BooleanField(default=False, help_text="an exclusion changed which votes count")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="rating_ledger_single_row")]


class VoterExclusion(models.Model):
    """An admin's decision to leave a voter's votes out of the ratings (logged; lifting it is logged too)."""

    voter_key = models.CharField(max_length=64, db_index=True)
    reason = models.CharField(max_length=500)
    created_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    lifted_at = models.DateTimeField(null=True, blank=True)
    votes_affected = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["voter_key"], condition=Q(lifted_at__isnull=True), name="exclusion_one_active"),
        ]

    def __str__(self) -> str:
        return f"exclusion {self.pk}"
