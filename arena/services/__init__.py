"""Writes of the voting domain, by concern: ``polls`` (issuing polls), ``prompts`` (voters' prompts), ``votes``
(casting a vote), ``ratings`` (the live rating rows and their rebuild from the log), ``leaderboards`` (stored
snapshots). Other apps and commands call the names re-exported here."""

from arena.services.leaderboards import Board, leaderboard_compute, leaderboard_current, leaderboard_fresh
from arena.services.polls import free_poll_create, poll_create, poll_refresh
from arena.services.prompts import free_prompt_clean
from arena.services.ratings import RecomputeReport, ratings_ensure, ratings_recompute, ratings_replay
from arena.services.votes import VoteResult, vote_cast

__all__ = [
    "Board", "RecomputeReport", "VoteResult", "free_poll_create", "free_prompt_clean", "leaderboard_compute",
    "leaderboard_current", "leaderboard_fresh", "poll_create", "poll_refresh", "ratings_ensure", "ratings_recompute",
    "ratings_replay", "vote_cast",
]
