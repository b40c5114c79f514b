"""Rating engine: pure Python (numpy, scipy, trueskill). Imports nothing from Django.

The live vote path and every replay call the same functions in :mod:`ratings.online`, so a replay of
the vote log in its stable order reproduces the live ratings bit for bit.

Modules:

* ``outcomes``: a poll's outcome and its expansion into pairwise results.
* ``online``: one vote's Elo and TrueSkill update (closed-form TrueSkill for duels).
* ``log``: vote records, the stable (timestamp, id) order, ``vote_log_hash``, JSONL, the columnar ``VoteTable``.
* ``replay``: exact replay per scope (Elo, time-weighted average Elo, TrueSkill, counts) and
  ``IncrementalRatings``, the live-style path it equals.
* ``bradley_terry``: Bradley–Terry MLE on the Elo scale, poll bootstrap, rank by interval.
* ``leaderboard``: ``compute_leaderboard`` (a stored leaderboard's rows) and its stamp (hash, parameters).
* ``matchmaking``: ``pick(strategy, candidates, k, rng)``.
* ``battles``: Chatbot Arena clean-battle export and parser.
* ``simulate``: the arena against simulated voters (``manage.py simulate_arena``).
* ``bench``: full-recompute benchmark (``manage.py bench_ratings``).
"""
