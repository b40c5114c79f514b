"""The rating parameters in force, read from settings (the pure engine takes them as plain values)."""

from django.conf import settings

from ratings.bradley_terry import BTParams
from ratings.online import EloParams, TrueSkillParams


def elo_params() -> EloParams:
    return EloParams(k=settings.ELO_K, scale=settings.ELO_SCALE, base=settings.ELO_BASE, initial=settings.ELO_INITIAL)


def trueskill_params() -> TrueSkillParams:
    return TrueSkillParams(
        mu=settings.TRUESKILL_MU, sigma=settings.TRUESKILL_SIGMA, beta=settings.TRUESKILL_BETA,
        tau=settings.TRUESKILL_TAU, draw_probability=settings.TRUESKILL_DRAW_PROBABILITY,
    )


def bt_params() -> BTParams:
    return BTParams(
        scale=settings.ELO_SCALE, base=settings.ELO_BASE, initial=settings.ELO_INITIAL,
        rounds=settings.BT_BOOTSTRAP_ROUNDS, seed=settings.BT_BOOTSTRAP_SEED,
    )

