"""Writes of the voting domain, by concern: ``polls`` (issuing polls), ``prompts`` (voters' prompts), ``votes``
(casting a vote), ``ratings`` (the live rating rows and their rebuild from the log), ``leaderboards`` (stored
snapshots). Other apps and commands call the names re-exported here."""

from arena.services.leaderboards import Board, leaderboard_compute, leaderboard_current, leaderboard_fresh
from arena.services.polls import IssuedPoll, free_poll_create, issued_poll, poll_create, poll_refresh
from arena.services.prompts import free_prompt_clean
from arena.services.ratings import (
    RecomputeReport,
    ratings_apply_all,
    ratings_apply_pending,
    ratings_recompute,
    ratings_replay,
)
from arena.services.votes import VoteResult, vote_cast

__all__ = [
    "Board", "IssuedPoll", "RecomputeReport", "VoteResult", "free_poll_create", "free_prompt_clean", "issued_poll",
    "leaderboard_compute", "leaderboard_current", "leaderboard_fresh", "poll_create", "poll_refresh",
    "ratings_apply_all", "ratings_apply_pending", "ratings_recompute", "ratings_replay", "vote_cast",
]
