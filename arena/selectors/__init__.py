"""Reads of the voting domain, by concern: ``polls`` (matchmaking candidates, polls, the free-prompt pool),
``models`` (ratings, records, images and automatic scores of a model), ``votelog`` (the counted log, its
fingerprints, counts)."""

from arena.selectors.models import (
    FamilyNode,
    OpponentRecord,
    automatic_scores,
    family_tree,
    model_images,
    model_ratings,
    model_record,
    ratings_by_scope,
    scope_choices,
)
from arena.selectors.polls import (
    free_prompt_from_pool,
    free_prompt_pool,
    matchmaking_candidates,
    poll_with_entries,
    revealed_images,
    vote_ratings,
)
from arena.selectors.votelog import (
    VoteLog,
    log_fingerprint,
    record_from_row,
    records_fingerprint,
    vote_counts,
    vote_log,
    vote_records,
    votes_per_day,
)

__all__ = [
    "FamilyNode", "OpponentRecord", "VoteLog", "automatic_scores", "family_tree", "free_prompt_from_pool", "free_prompt_pool", "log_fingerprint",
    "matchmaking_candidates", "model_images", "model_ratings", "model_record", "poll_with_entries",
    "ratings_by_scope", "record_from_row", "records_fingerprint", "revealed_images", "scope_choices", "vote_counts",
    "vote_log", "vote_ratings", "vote_records", "votes_per_day",
]
