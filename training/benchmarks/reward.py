"""The reward model's benchmark (``manage.py bench_training --method reward``): a synthetic preference set made
the way the arena makes real ones, then the reward trainer on it.

**The preference set.** The two tiny base models (``generation.tiny.make_tiny_models``: whatever tiny SDXL-shaped
models it builds; its eps and v-prediction single files) are registered as two variants, and for each prompt below
a generation job renders both at seeds of its own (``seed * 10**7 + ...``, disjoint between jobs), so every
prompt-and-seed group holds exactly one duel's two images and no seed is used twice: every duel, and so every
training and every held-out pair, has its own seed. (The demo's LoRA variants are left out: on the random-weight
tiny model they change the picture less than the seed does, so duels between them would be coin flips for any
image model -- measured: mean warmth -0.0112 vs -0.0111 vs -0.0112, seed-to-seed spread 0.0005.) The jobs go
through the real path (``generation.services.job_create``; the tasks run in process: eager Celery).

**The voter.** One synthetic voter (key: the first 32 hex digits of sha256("synthetic-judge")) is issued
fixed-prompt duels by the real matchmaker (``arena.services.polls.poll_create``) until none is left that it has not seen (the matchmaker never shows a voter
a group it saw revealed, so each group is voted once), looks at the two images and votes through the real vote
service (``arena.services.votes.vote_cast``, cast ``VOTE_AFTER_S`` after the poll was issued, so it counts as a
human-paced vote) by the fixed judge of ``training.trainers.judge``: **warmth** = mean over pixels of (R - B) with
channels in 0..1; the warmer image wins, equal warmth is a tie. The ratings are then applied
(``arena.services.ratings.ratings_apply_all``), so the votes are counted and have their place in the log.

**The pairs** come from the counted fixed-prompt duels by the training app's dataset builder
(``training.services.dataset_expand``: left/right → a pair row, tie → a tie row), written as the dataset Parquet
file and trained on by
``training.trainers.reward.train_reward`` (held-out: ``heldout_fraction`` of the polls by a seeded hash).

**The line.** ``pairs`` (pair rows), ``train_s`` (wall time of ``train_reward``: embedding every image with the
frozen open_clip model, then the head), ``pairs_per_s`` (= pairs / train_s), ``heldout_acc`` with its 95% **Wilson**
interval ``heldout_ci_low``/``heldout_ci_high`` over the held-out pairs, ``peak_rss_mb`` (this process's maximum
resident set), the generation and voting times, and the **control**: the same images and split with the labels
shuffled (each pair row's label by a seeded coin flip), trained and evaluated ``control`` times with fresh coins
and pooled: ``control_acc`` / ``control_ci_low`` / ``control_ci_high`` (Wilson, over ``control_heldout_pairs`` =
relabelings x held-out pairs; each held-out coin is a fresh fair coin independent of what the head was trained on,
so the pooled count is binomial) -- its interval should contain one half -- and ``control_p_value``, the exact
binomial test of that count against one half. One relabeling alone is a 30-pair coin-flip experiment (measured at
seed 0: one relabeling 7/30, interval 0.12-0.41; five 62/150, 0.34-0.49), so the default pools twenty. Being an
exact coin-flip count, the 95% interval still misses one half one run in twenty whatever the pooling (a clean
CI run drew 274/600, 0.417-0.497, p = 0.04); the test therefore asks for p > 0.001, a false alarm one run in a
thousand.

**What the head can learn here.** The random-weight tiny models' images vary little from seed to seed (warmth
spread 0.0005 for eps, 0.0017 for v), and the v-prediction model's are warmer than the eps model's at every seed
(0.045 vs -0.011), so the judge always prefers the v-prediction image, and the head learns to tell the two
models' looks apart on pictures it has not seen, whichever side of the screen they are on (the labels are in
screen order, which the matchmaker randomises). A tiny model that follows its prompt makes the same benchmark ask
more of it; nothing here changes for it.

The database: ``run`` writes to the configured one, so the command runs it in a throwaway SQLite database of its
own (see the command); tests call it on their test database.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import tempfile
import time
from itertools import combinations
from pathlib import Path

from django.db import transaction

VOTER = hashlib.sha256(b"synthetic-judge").hexdigest()[:32]  # voter keys are 32 hex digits
VOTE_AFTER_S = 5.0
PROMPT_SET = "Reward benchmark"
# Danbooru-style prompts naming colours and light, so a tiny model that follows its prompt varies in what the
# judge scores.
PROMPTS = (
    "1girl, solo, red dress, sunset, warm lighting",
    "no humans, scenery, blue sky, ocean, cold colors",
    "1boy, armor, night sky, dark, moonlight",
    "2girls, yellow flowers, field, bright, daylight",
    "cat, green background, simple background",
)
JUDGE = "warmth"
CFG_SCALE = 1.0  # one UNet pass per step: the images cost half (the smallest size generation takes is 256)


def _variants(tiny):
    from generation import services
    from generation.models import ModelVariant

    defaults = {"width": 256, "height": 256, "steps": 2, "sampler": "Euler a", "cfg_scale": 1.0}
    specs = [
        ("Reward bench eps", tiny.eps_file, {"kind": "base"}),
        ("Reward bench v-pred", tiny.v_file, {"kind": "base", "prediction": "v"}),
    ]
    out = []
    for name, path, extra in specs:
        variant = ModelVariant.objects.filter(name=name).first()
        if variant is None:
            variant = services.variant_register(path=path, name=name, family="Tiny (reward benchmark)",
                                                defaults=defaults, **extra)
        out.append(variant)
    return out


def _prompt_set():
    from generation import services

    return services.prompt_set_import(name=PROMPT_SET, data="\n".join(PROMPTS) + "\n", filename="prompts.txt",
                                      description="the reward benchmark's prompts")


def _generate(variants, prompt_set, pairs: int, seed: int, size: int, steps: int) -> int:
    """One job per pair of variants and prompt, with seeds no other job uses (the same seed with another prompt
    gives a near-copy on a model that ignores its prompt); returns how many images exist."""
    from generation import services
    from generation.models import Image

    combos = list(combinations(variants, 2))
    prompts = list(prompt_set.prompts.order_by("id"))
    per_job = -(-pairs // (len(combos) * len(prompts)))  # groups (= duels) per job
    for k, (a, b) in enumerate(combos):
        for j, prompt in enumerate(prompts):
            first = seed * 10**7 + (k * len(prompts) + j) * 10**4
            services.job_create(name=f"Reward benchmark {k}.{j}", variants=[a, b], prompts=[prompt],
                                seeds=list(range(first, first + per_job)), sampler="Euler a", steps=steps,
                                cfg_scale=CFG_SCALE, width=size, height=size)
    return Image.objects.filter(prompt__prompt_set=prompt_set).count()


def _open(field_file):
    from PIL import Image as PILImage

    with field_file.open("rb") as fh:
        image = PILImage.open(fh)
        image.load()
    return image


def _vote_all(seed: int, limit: int) -> dict:
    """The synthetic judge votes on every duel the matchmaker issues it, up to ``limit``; counts per choice."""
    from arena.models import Mode
    from arena.services import poll_create, vote_cast
    from arena.services.polls import NoPollAvailable  # the matchmaker's "nothing left for this voter"
    from generation.models import Image
    from training.trainers.judge import vote

    rng = random.Random(seed)
    clock = dt.datetime.now(dt.timezone.utc)
    counts = {"left": 0, "right": 0, "tie": 0}
    while sum(counts.values()) < limit:
        try:
            issued = poll_create(mode=Mode.FIXED, voter_key=VOTER, rng=rng, now=clock)
        except NoPollAvailable:
            break
        images = {i.id: i for i in Image.objects.filter(id__in=[e.image_id for e in issued.entries])}
        left, right = (_open(images[e.image_id].voter_file or images[e.image_id].file) for e in issued.entries)
        choice = vote(left, right, judge=JUDGE)
        vote_cast(poll_token=issued.token, voter_key=VOTER, ip_hash="", choice=choice,
                  now=clock + dt.timedelta(seconds=VOTE_AFTER_S))
        counts[choice] += 1
        clock += dt.timedelta(seconds=2 * VOTE_AFTER_S)
    return counts


def duel_rows(prompt_set) -> list:
    """The dataset rows of the counted fixed-prompt votes on the benchmark's prompts, by the training app's
    builder (``training.services.dataset_expand``: the same rows ``preference_dataset`` writes)."""
    from arena.models import Mode
    from training import services

    filters = services.filters_clean(modes=[Mode.FIXED], prompt_sets=[prompt_set.id])
    return services.dataset_expand(filters=filters).rows


def chance_p_value(right: float, total: int) -> float | None:
    """The exact two-sided binomial test of ``right`` correct out of ``total`` against one half (a prediction tie,
    counted as half right, rounds to the nearer count): how often pure coin flips land at least this far from
    one half. Under the control's null the pooled count is exactly Binomial(total, 1/2), so this is uniform."""
    from scipy.stats import binomtest

    return float(binomtest(int(round(right)), total, 0.5).pvalue) if total else None


def shuffled(rows: list, seed: int) -> list:
    """The control: each pair row's label replaced by a seeded coin flip; images, polls and ties unchanged.
    (Not a permutation of the labels: that fixes their total, so the held-out labels would lean against whatever
    the training ones lean to, and the control's accuracy would sit below one half.)"""
    from training.trainers.dataset import PreferenceRow

    coin = random.Random(f"control:{seed}")
    out = []
    for r in rows:
        if r.kind == "pair":
            left = coin.random() < 0.5
            r = PreferenceRow(**{**r.__dict__, "label_0": 1.0 if left else 0.0, "label_1": 0.0 if left else 1.0})
        out.append(r)
    return out


class CachingEmbedder:
    """An open_clip embedder that embeds each distinct image and prompt once: the control's relabelings train on
    the same pictures, so only the first training embeds them."""

    def __init__(self, inner):
        self.inner, self.images, self.texts = inner, {}, {}

    def image_embeddings(self, images):
        import numpy as np

        keys = [hashlib.sha256(im.mode.encode() + repr(im.size).encode() + im.tobytes()).hexdigest() for im in images]
        todo = {k: im for k, im in zip(keys, images) if k not in self.images}
        if todo:
            self.images.update(zip(todo, self.inner.image_embeddings(list(todo.values()))))
        return np.stack([self.images[k] for k in keys])

    def text_embeddings(self, texts):
        import numpy as np

        todo = [t for t in dict.fromkeys(texts) if t not in self.texts]
        if todo:
            self.texts.update(zip(todo, self.inner.text_embeddings(todo)))
        return np.stack([self.texts[t] for t in texts])


def run(*, tiny, open_clip_dir: str, pairs: int = 100, seed: int = 0, size: int = 256, steps: int = 2,
        heldout_fraction: float = 0.3, control: int = 20) -> dict:
    """The benchmark in the configured database (see the module docstring); returns the JSON line's fields.
    ``control``: how many coin-flip relabelings the control pools (0: none)."""
    from arena.services import ratings_apply_all
    from training.trainers.bench import peak_rss_mb
    from training.trainers.config import RewardConfig, RunPaths
    from training.trainers.dataset import write_dataset
    from training.trainers.embeddings import OpenClipEmbedder
    from training.trainers.reward import train_reward, wilson_interval

    started = time.perf_counter()
    with transaction.atomic():
        variants = _variants(tiny)
        prompt_set = _prompt_set()
    images = _generate(variants, prompt_set, pairs, seed, size, steps)
    generated = time.perf_counter()
    counts = _vote_all(seed, pairs)
    ratings_apply_all()
    voted = time.perf_counter()
    rows = duel_rows(prompt_set)
    config = RewardConfig(open_clip_dir=str(open_clip_dir), heldout_fraction=heldout_fraction, seed=seed)
    out = {"method": "reward", "judge": JUDGE, "seed": seed, "images": images, "votes": counts,
           "generate_s": round(generated - started, 2), "vote_s": round(voted - generated, 2),
           "interval": "wilson95", "heldout_fraction": heldout_fraction}
    with tempfile.TemporaryDirectory(prefix="bench-reward-") as tmp:
        data = write_dataset(rows, Path(tmp) / "judged.parquet", vote_log_hash=f"bench-reward-{seed}").path
        t0 = time.perf_counter()
        embedder = CachingEmbedder(OpenClipEmbedder(config.open_clip_dir))  # loading it counts in train_s
        result = train_reward(config, RunPaths(str(data), tmp + "/work", tmp + "/out"), on_progress=lambda e: None,
                              embedder=embedder)
        train_s = time.perf_counter() - t0
        n_pairs = sum(r.kind == "pair" for r in rows)
        out.update(pairs=n_pairs, train_pairs=result.train_pairs, heldout_pairs=result.heldout_pairs,
                   train_s=round(train_s, 3), pairs_per_s=round(n_pairs / train_s, 1) if train_s > 0 else None,
                   heldout_acc=result.heldout_acc, heldout_ci_low=result.heldout_ci_low,
                   heldout_ci_high=result.heldout_ci_high, train_acc=result.train_acc)
        if control:
            right = total = 0.0
            for k in range(control):
                data = write_dataset(shuffled(rows, seed * 1000 + k), Path(tmp) / f"shuffled{k}.parquet",
                                     vote_log_hash=f"bench-reward-{seed}-shuffled-{k}").path
                c = train_reward(config, RunPaths(str(data), f"{tmp}/cwork{k}", f"{tmp}/cout{k}"),
                                 on_progress=lambda e: None, embedder=embedder)
                right += (c.heldout_acc or 0.0) * c.heldout_pairs
                total += c.heldout_pairs
            low, high = wilson_interval(right, int(total))
            out.update(control_relabelings=control, control_heldout_pairs=int(total),
                       control_acc=right / total if total else None, control_ci_low=low, control_ci_high=high,
                       control_p_value=chance_p_value(right, int(total)))
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return out
