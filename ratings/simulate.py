"""An arena simulated against voters who know hidden true skills: how fast does a strategy find the ranking?

Setup (``simulate_arena``): ``models`` models with true skills evenly spaced ``spacing`` Elo points apart
(default 50 models, 40 points), shuffled over the model ids. A simulated voter judges a duel by the
Bradley–Terry model of the true skills (P(a beats b) = 1 / (1 + 10^((s_b - s_a) / 400)), no ties) and a
free-for-all by the Plackett–Luce model (the best image is i with probability ∝ 10^(s_i / 400); with
``full_ranking`` the rest of the ranking follows the same rule among those left). A noisy voter
(``flip``) answers at random instead with that probability: in a duel they pick the other image, in a
free-for-all they pick one of the others (uniformly).

Each run drives the real matchmaker (:func:`ratings.matchmaking.pick`, fed TrueSkill μ/σ and pairwise
game counts as the site feeds it) and the real online updates, vote by vote. After every vote the
estimated ranking is compared with the true one by Kendall's tau (tau-b, so the all-equal start scores
0). ``votes_to_converge`` is the first vote count after which tau stays at or above ``threshold`` (0.9)
to the end of the run (None if the last vote is below it); ``final_tau`` is tau after the last vote.

Estimators: the chosen strategy's run is rated by TrueSkill μ (what the matchmaker itself uses), and by
Bradley–Terry on the pairwise expansion (the leaderboard's rating). The baseline, uniform duels, is rated
by online Elo (K=4, Chatbot Arena's published setting) and by Bradley–Terry. Bradley–Terry is refitted
every ``bt_every`` votes (warm-started), so its ``votes_to_converge`` is a multiple of that.
``speedup_vs_uniform_elo`` compares the chosen strategy rated by TrueSkill with uniform duels rated by
online Elo. ``newcomer`` (:func:`run_newcomer`) measures how many of its own polls a newly registered model
needs, under the chosen strategy, before its place stays within two places of its true one.

Measured (seed 0, 50 models, 40 Elo apart, no noise): ``active`` best-only ffa4 converges after 222 votes
(TrueSkill; 230 by Bradley–Terry); uniform duels with online Elo K=4 after 1,829 and with Bradley–Terry
after 770, so active ffa4 is 8.2x sooner than uniform duels with Elo. With full rankings ffa4 needs 118
votes (15.5x; 90 by Bradley–Terry). Over 20 other seeds best-only ffa4 needs 273 votes (median) by
TrueSkill. Uniform duels do well here because with skills spread over 1,960 Elo a random pair is usually
far apart, so its outcome is nearly certain and a small-K Elo ranks by win rate; a best-only poll of four
carries at most 2 bits, and the ~190 bits a tau-0.9 ranking of 50 models needs take about 200 such polls
at the information they carry in practice, which is why ~16x is out of reach for best-only polls in this
setup and within reach for full rankings.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

from ratings.bradley_terry import fit_log_odds
from ratings.matchmaking import Candidate, pick
from ratings.online import EloParams, TrueSkillParams, elo_update, trueskill_update
from ratings.outcomes import Outcome, pairwise

MODES = {"duel": 2, "ffa4": 4}


@dataclass(frozen=True)
class RunResult:
    votes_to_converge: int | None
    final_tau: float
    votes_run: int

    def as_dict(self) -> dict:
        return {"votes_to_converge": self.votes_to_converge, "final_tau": round(self.final_tau, 4),
                "votes_run": self.votes_run}


class KendallTau:
    """Kendall's tau-b between estimates and fixed true values without ties (O(n^2) numpy, n ~ 50)."""

    def __init__(self, truth: np.ndarray) -> None:
        self.iu = np.triu_indices(len(truth), 1)
        self.true_sign = np.sign(truth[:, None] - truth[None, :])[self.iu]
        self.pairs = len(self.true_sign)

    def __call__(self, estimate: np.ndarray) -> float:
        s = np.sign(estimate[:, None] - estimate[None, :])[self.iu]
        untied = np.count_nonzero(s)
        if untied == 0:
            return 0.0
        return float((s * self.true_sign).sum() / math.sqrt(self.pairs * untied))


def converged_at(taus: list[float] | np.ndarray, threshold: float, step: int = 1) -> int | None:
    """The first vote count after which every tau is >= threshold (``taus[i]`` measured after
    ``(i + 1) * step`` votes); None if the last one is below."""
    taus = np.asarray(taus)
    if not len(taus) or taus[-1] < threshold:
        return None
    below = np.flatnonzero(taus < threshold)
    first_ok = 0 if not len(below) else below[-1] + 1
    return int((first_ok + 1) * step)


class Voter:
    """Answers polls from hidden true skills (Elo scale)."""

    def __init__(self, skills: dict[int, float], flip: float, rng: random.Random, full_ranking: bool = False):
        self.skills, self.flip, self.rng, self.full_ranking = skills, flip, rng, full_ranking

    def __call__(self, players: list[int]) -> Outcome:
        rng = self.rng
        strength = [10.0 ** (self.skills[p] / 400.0) for p in players]
        n = len(players)
        if n == 2:
            a_wins = rng.random() < strength[0] / (strength[0] + strength[1])
            if rng.random() < self.flip:
                a_wins = not a_wins
            return Outcome(tuple(players), (0, 1) if a_wins else (1, 0))
        order = []
        left = list(range(n))
        while left:
            total = sum(strength[i] for i in left)
            x = rng.random() * total
            pick_i = left[-1]
            for i in left:
                x -= strength[i]
                if x < 0:
                    pick_i = i
                    break
            order.append(pick_i)
            left.remove(pick_i)
            if not self.full_ranking:
                break
        best = order[0]
        if rng.random() < self.flip:
            best = rng.choice([i for i in range(n) if i != best])
            if self.full_ranking:
                order.remove(best)
                order.insert(0, best)
        if self.full_ranking:
            ranks = [0] * n
            for place, i in enumerate(order):
                ranks[i] = place
            return Outcome(tuple(players), tuple(ranks), full_ranking=True)
        return Outcome(tuple(players), tuple(0 if i == best else 1 for i in range(n)))


def true_skills(models: int, spacing: float, rng: random.Random) -> dict[int, float]:
    values = [1000.0 + spacing * (i - (models - 1) / 2) for i in range(models)]
    rng.shuffle(values)
    return dict(enumerate(values))


def run_strategy(
    *, skills: dict[int, float], strategy: str, k: int, votes: int, flip: float, seed: int,
    full_ranking: bool = False, threshold: float = 0.9, ts_params: TrueSkillParams = TrueSkillParams(),
    bt_every: int = 1,
) -> tuple[RunResult, RunResult]:
    """The strategy's polls, rated by TrueSkill (tau of μ after every vote) and by Bradley–Terry on the
    pairwise expansion (refitted every ``bt_every`` votes)."""
    rng = random.Random(seed)
    voter = Voter(skills, flip, random.Random(seed + 1), full_ranking)
    ids = sorted(skills)
    index = {p: i for i, p in enumerate(ids)}
    ratings = {p: (ts_params.mu, ts_params.sigma) for p in ids}
    games = dict.fromkeys(ids, 0)
    wins = np.zeros((len(ids), len(ids)))
    theta = np.zeros(len(ids))
    tau = KendallTau(np.array([skills[p] for p in ids]))
    ts_taus, bt_taus = [], []
    for n in range(1, votes + 1):
        candidates = [Candidate(id=p, games=games[p], mu=ratings[p][0], sigma=ratings[p][1]) for p in ids]
        players = pick(strategy, candidates, k, rng)
        outcome = voter(players)
        ratings.update(trueskill_update(ratings, outcome, ts_params))
        for a, b, score in pairwise(outcome):
            games[a] += 1
            games[b] += 1
            wins[index[a], index[b]] += score
            wins[index[b], index[a]] += 1.0 - score
        ts_taus.append(tau(np.array([ratings[p][0] for p in ids])))
        if n % bt_every == 0:
            theta = fit_log_odds(wins, theta0=theta)
            bt_taus.append(tau(theta))
    return _result(ts_taus, threshold, votes, 1), _result(bt_taus, threshold, votes, bt_every)


def _result(taus: list[float], threshold: float, votes: int, step: int) -> RunResult:
    return RunResult(converged_at(taus, threshold, step), taus[-1] if taus else 0.0, votes - votes % step)


def run_newcomer(
    *, skills: dict[int, float], strategy: str, k: int, warmup: int, after: int, flip: float, seed: int,
    spacing: float, full_ranking: bool = False, tolerance: int = 2,
    ts_params: TrueSkillParams = TrueSkillParams(),
) -> dict:
    """How fast a newly registered model settles: ``warmup`` votes among the existing models, then a new
    model (true skill half-way between two neighbours in the upper quarter, starting at the TrueSkill prior
    with no games) joins and ``after`` more votes follow. It has settled once its place by TrueSkill μ stays
    within ``tolerance`` places of its true place to the end of the run; reported as the number of its own
    polls (and of all votes) until then, or None."""
    rng = random.Random(seed)
    top = max(skills.values())
    newcomer = max(skills) + 1
    everyone = {**skills, newcomer: top - spacing * (len(skills) // 4) + spacing / 2}
    voter = Voter(everyone, flip, random.Random(seed + 1), full_ranking)
    ratings = {p: (ts_params.mu, ts_params.sigma) for p in everyone}
    games = dict.fromkeys(everyone, 0)
    true_place = sum(1 for v in everyone.values() if v > everyone[newcomer])
    polls, within = 0, []
    for n in range(warmup + after):
        ids = sorted(skills) if n < warmup else sorted(everyone)
        candidates = [Candidate(id=p, games=games[p], mu=ratings[p][0], sigma=ratings[p][1]) for p in ids]
        players = pick(strategy, candidates, k, rng)
        outcome = voter(players)
        ratings.update(trueskill_update(ratings, outcome, ts_params))
        for a, b, _ in pairwise(outcome):
            games[a] += 1
            games[b] += 1
        if n >= warmup:
            polls += newcomer in players
            mu = ratings[newcomer][0]
            place = sum(1 for p in ids if p != newcomer and ratings[p][0] > mu)
            within.append((abs(place - true_place) <= tolerance, polls))
    settled_votes = converged_at([1.0 if ok else 0.0 for ok, _ in within], 0.5)
    return {
        "polls_to_settle": within[settled_votes - 1][1] if settled_votes else None,
        "votes_to_settle": settled_votes, "polls_in_run": polls, "votes_run": after, "tolerance": tolerance,
    }


def run_uniform_duels(
    *, skills: dict[int, float], votes: int, flip: float, seed: int, threshold: float = 0.9,
    elo_params: EloParams = EloParams(k=4.0), bt_every: int = 10,
) -> tuple[RunResult, RunResult]:
    """Uniform duels rated by online Elo (tau after every vote) and by Bradley–Terry (every ``bt_every``)."""
    rng = random.Random(seed)
    voter = Voter(skills, flip, random.Random(seed + 1))
    ids = sorted(skills)
    index = {p: i for i, p in enumerate(ids)}
    elo = {p: elo_params.initial for p in ids}
    wins = np.zeros((len(ids), len(ids)))
    tau = KendallTau(np.array([skills[p] for p in ids]))
    elo_taus, bt_taus = [], []
    theta = np.zeros(len(ids))
    for n in range(1, votes + 1):
        players = rng.sample(ids, 2)
        outcome = voter(players)
        elo.update(elo_update(elo, outcome, elo_params))
        (a, b, score), = pairwise(outcome)
        winner, loser = (a, b) if score == 1.0 else (b, a)
        wins[index[winner], index[loser]] += 1.0
        elo_taus.append(tau(np.array([elo[p] for p in ids])))
        if n % bt_every == 0:
            theta = fit_log_odds(wins, theta0=theta)
            bt_taus.append(tau(theta))
    return _result(elo_taus, threshold, votes, 1), _result(bt_taus, threshold, votes, bt_every)


def simulate_arena(
    *, models: int = 50, mode: str = "ffa4", strategy: str = "active", seed: int = 0, flip: float = 0.0,
    votes: int = 3000, baseline_votes: int = 30000, spacing: float = 40.0, full_ranking: bool = False,
    threshold: float = 0.9, bt_every: int = 10, newcomer_warmup: int = 600, newcomer_after: int = 300,
) -> dict:
    """The chosen strategy's run and, from the same true skills, the uniform-duel baselines; JSON-ready."""
    if mode not in MODES:
        raise ValueError(f"mode is one of {', '.join(MODES)}")
    if not 0.0 <= flip <= 1.0:
        raise ValueError("flip is a probability")
    k = MODES[mode]
    if models < k:
        raise ValueError(f"{mode} needs at least {k} models")
    skills = true_skills(models, spacing, random.Random(seed))
    chosen_ts, chosen_bt = run_strategy(
        skills=skills, strategy=strategy, k=k, votes=votes, flip=flip, seed=seed * 1000 + 1,
        full_ranking=full_ranking, threshold=threshold, bt_every=bt_every,
    )
    elo, bt = run_uniform_duels(skills=skills, votes=baseline_votes, flip=flip, seed=seed * 1000 + 2,
                                threshold=threshold, bt_every=bt_every)
    newcomer = None
    if newcomer_after:
        newcomer = run_newcomer(
            skills=skills, strategy=strategy, k=k, warmup=newcomer_warmup, after=newcomer_after, flip=flip,
            seed=seed * 1000 + 3, spacing=spacing, full_ranking=full_ranking,
        )
    speedup = None
    if chosen_ts.votes_to_converge and elo.votes_to_converge:
        speedup = round(elo.votes_to_converge / chosen_ts.votes_to_converge, 2)
    return {
        "models": models, "mode": mode, "strategy": strategy, "seed": seed, "flip": flip,
        "full_ranking": full_ranking, "threshold": threshold, "bt_refit_every": bt_every,
        "chosen_trueskill": chosen_ts.as_dict(),
        "chosen_bt": chosen_bt.as_dict(),
        "uniform_duel_elo": elo.as_dict(),
        "uniform_duel_bt": bt.as_dict(),
        "speedup_vs_uniform_elo": speedup,
        "newcomer": newcomer,
    }
