"""Rating engine: pure Python (numpy, scipy, trueskill). Imports nothing from Django.

The live vote path and every replay call the same functions in :mod:`ratings.online`, so a replay of
the vote log in its stable order reproduces the live ratings bit for bit.

Modules:

* ``outcomes``: a poll's outcome and its expansion into pairwise results.
* ``online``: one vote's Elo and TrueSkill update (closed-form TrueSkill for duels; a best-only
  free-for-all is the winner beating each other image, pairwise from the pre-poll ratings).
* ``log``: vote records, the stable (timestamp, id) order, ``vote_log_hash``, JSONL, the columnar ``VoteTable``.
* ``replay``: exact replay per scope (Elo, time-weighted average Elo, TrueSkill, counts) and
  ``IncrementalRatings``, the live-style path it equals.
* ``bradley_terry``: Bradley–Terry MLE on the Elo scale, poll bootstrap, rank by interval, optional
  inverse-propensity weights.
* ``leaderboard``: ``compute_leaderboard`` (a stored leaderboard's rows, ranked by BT intervals) and its
  stamp (hash, parameters).
* ``design``: the randomised matchmaker: ``Matchmaker``/``draw`` over feasible sets, ``Pick`` with the
  propensity to store, ``Pending`` polls; ``information``: the pair values it weighs.
* ``matchmaking``: ``pick(strategy, candidates, k, rng)``, the older one-call interface (and the legacy
  deterministic strategies the simulator reproduces).
* ``battles``: Chatbot Arena clean-battle export (with ``poll_id`` and ``weight``) and parser.
* ``hygiene``: per-voter tests with a false-discovery-rate correction; position bias per mode.
* ``simulate`` (with ``simvoters``): designs compared against simulated voters (``manage.py simulate_arena``).
* ``bench``: full-recompute benchmark (``manage.py bench_ratings``); ``bench_matchmaking``: the matchmaker's.
"""
