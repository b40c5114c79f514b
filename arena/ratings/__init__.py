"""Rating engine: pure Python (numpy, scipy, trueskill). Imports nothing from Django.

The live vote path and every replay call the same functions in :mod:`arena.ratings.online`, so a replay of
the vote log in its stable order reproduces the live ratings bit for bit.
"""
