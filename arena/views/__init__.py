"""The arena's pages, by concern: ``polls`` (issue, images, vote, reveal), ``boards`` (leaderboard, exports,
plots), ``models`` (model pages and their files), ``stats`` (health of the evaluation); ``common`` holds what
they share."""
