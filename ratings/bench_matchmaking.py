"""Benchmark of the matchmaker on a web request's terms: ``python -m ratings.bench_matchmaking``.

Builds ``models`` candidates with spread-out TrueSkill beliefs and ``groups`` prompt groups (each a random
subset of the models: most groups hold most models, as prompt sets rendered by all models do, some hold
few), then times: enumerating the feasible sets once (``feasible_ms``, shared across snapshots), building
the prepared :class:`~ratings.design.Matchmaker` from a snapshot (``prepare_ms``), and one draw without and
with ``pending`` issued-but-unvoted polls (``draw_ms``, ``draw_pending_ms``, means over ``draws``). Prints
one JSON line. The target is a draw of at most ~1 ms for 20 models and 1,000 groups.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time

from ratings.design import Candidate, FeasibleSets, Matchmaker, Pending


def run(*, models: int = 20, groups: int = 1000, k: int = 4, pending: int = 10, draws: int = 2000,
        seed: int = 0) -> dict:
    rng = random.Random(seed)
    candidates = [Candidate(i, rng.randrange(1000), rng.gauss(25.0, 3.0), rng.uniform(0.8, 3.0))
                  for i in range(1, models + 1)]
    ids = [c.id for c in candidates]
    group_list = [frozenset(rng.sample(ids, rng.randint(k, models) if rng.random() < 0.2 else models - rng.randrange(3)))
                  for _ in range(groups)]
    started = time.perf_counter()
    feasible = FeasibleSets(ids, k, group_list)
    feasible_ms = (time.perf_counter() - started) * 1e3
    started = time.perf_counter()
    matchmaker = Matchmaker(candidates, k, group_list, feasible=feasible)
    matchmaker.probabilities()
    prepare_ms = (time.perf_counter() - started) * 1e3
    open_polls = Pending.of(rng.sample(ids, k) for _ in range(pending))
    timings = {}
    for name, p in (("draw_ms", None), ("draw_pending_ms", open_polls)):
        started = time.perf_counter()
        for _ in range(draws):
            matchmaker.draw(rng, p)
        timings[name] = round((time.perf_counter() - started) * 1e3 / draws, 4)
    return {"models": models, "groups": groups, "k": k, "feasible_sets": len(feasible), "pending_polls": pending,
            "feasible_ms": round(feasible_ms, 2), "prepare_ms": round(prepare_ms, 3), **timings}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--pending", type=int, default=10, help="issued-but-unvoted polls in the pending draws")
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sys.stdout.write(json.dumps(run(models=args.models, groups=args.groups, k=args.k, pending=args.pending,
                                    draws=args.draws, seed=args.seed)) + "\n")


if __name__ == "__main__":
    main()
