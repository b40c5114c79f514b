"""The closed loop at the trainer level, Django-free: a parent's images -> a synthetic judge's votes -> a preference
dataset -> a DPO or SFT LoRA -> the child against its parent on held-out prompts and seeds, with the same judge.

The steps are separate functions, so the ``closed_loop`` management command can replace generation and judging
with the arena's own (the real vote service and dataset builder) and keep the rest:

* ``generate_polls(parent, prompts, out_dir, settings)``: ``candidates`` images per poll, each with its own seed
  (``generate_pairs``: the duels, two per poll);
* ``judge_polls(polls, settings)``: labels from the synthetic judge (``judge.vote``), optionally shuffled across
  polls (control: the interval should contain 0.5) or reversed (control: the child should lose). A duel is one
  pair row (``judge_pairs``); a free-for-all poll of ``candidates`` > 2 images, as the arena's 4-way polls, is
  its winner (the judge's highest score) paired with each of the others, so the winners are the preferred images;
* ``write_pairs_dataset(pairs, path, settings)``: the trainers' Parquet dataset;
* ``train_child(parent, dataset, work_dir, settings)``: ``run.train_lora``;
* ``evaluate(parent, lora_file, prompts, out_dir, settings)``: child vs parent on held-out prompts and seeds
  (one seed per poll, shared by the two models so only the LoRA differs; no seed used in training), win rate
  with its 95% Wilson interval; and the held-out denoising MSE of child / parent on the parent's held-out
  images (fixed noise and timesteps; epsilon space for v), which shows a degenerated child (> 1.05).

* ``sibling_versus``: for SFT (true labels), the child against its shuffled-label sibling, trained on the same
  polls with the shuffled control's labels: SFT moves a child whatever the labels (the shuffled control beats the
  parent too), and this head-to-head keeps only the votes' part (``sibling_win_rate`` and its interval).

``run_closed_loop(settings, parent, work_dir)`` chains them and returns the JSON dict
``{"pairs", "train_steps", "train_s", "implicit_acc", "child_win_rate", "ci_low", "ci_high", "heldout_polls",
"mse_ratio", "lora_file"}`` (plus the settings and timings; ``implicit_acc``: DPO's, averaged over the last quarter
of the training steps). Every image and every held-out poll has a distinct
seed (``seeds``): training seeds and held-out seeds come from disjoint ranges.

The judge (``judge.py``): "warmth", mean(R - B) of the picture; the child should learn to draw warmer pictures.
Prompts are the tiny models' procedural captions (``generation.tiny.shapes``), held-out prompts drawn from an
independent stream.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import ParentModel, RunPaths, TrainConfig
from .errors import TrainingError
from .judge import VOTER_TEMPERATURE
from .reward import wilson_interval  # ratings' Wilson interval, (0, 1) for no polls

LABELS = ("true", "shuffled", "reversed")
TRAIN_SEED_BASE = 1_000_000  # image seeds of training polls: TRAIN_SEED_BASE * (run seed + 1) + k
HELDOUT_SEED_BASE = 900_000_000  # held-out polls: HELDOUT_SEED_BASE + run seed * 100_000 + k


# What each method's loop draws when the settings leave it at 0. SFT learns only from what the winners have that
# the parent's average image lacks, so it gets a stronger selection than a duel's (the winner of an 8-image poll,
# as in rejection sampling) and more polls (measured with the deterministic judge, v parent, 100 steps: duel
# winners 0.547 [0.426, 0.663]; 4-image winners 0.625 [0.503, 0.733]). 256 held-out polls: the voter is noisy
# (judge.VOTER_TEMPERATURE), and at 64 a true child's win (about 0.6 to such a voter) was inside the noise.
# Measured with that voter (v parent, seeds 0, 1, 2): DPO 0.617, 0.602, 0.723 (each interval above one half),
# shuffled 0.531, 0.527, 0.465 (each containing it), reversed 0.457, 0.402, 0.293; SFT 0.598, 0.586, 0.633, but
# SFT's shuffled control 0.586, 0.563, 0.496: SFT on the parent's own pictures moves the child whatever the labels
# (the tiny VAE's round trip, which DPO's contrast cancels), so for SFT the votes' part is the child against its
# shuffled-label sibling (``sibling_versus``): 0.602, 0.625, 0.676, each above one half. See the closed_loop
# command's docstring.
METHOD_DEFAULTS = {"dpo": {"pairs": 64, "candidates": 2, "heldout_polls": 256},
                   "sft": {"pairs": 128, "candidates": 8, "heldout_polls": 256}}


@dataclass(frozen=True)
class LoopSettings:
    method: str = "dpo"  # "dpo" | "sft" (sft trains on the winners)
    # images per training poll: 2 a duel; more a free-for-all poll whose winner the SFT trains on. 0: the method's
    # default (METHOD_DEFAULTS): duels for DPO, 8-image polls for SFT
    candidates: int = 0
    labels: str = "true"  # "true" | "shuffled" | "reversed"
    judge: str = "warmth"
    # the judge as a noisy Bradley-Terry voter (judge.VOTER_TEMPERATURE: why this value), for the training votes
    # and the held-out votes alike; 0: the deterministic judge, which sees drifts no voter would
    judge_temperature: float = VOTER_TEMPERATURE
    # training polls; 0: the method's default (METHOD_DEFAULTS). Measured (v parent, 3 seeds): DPO on 64 duels kept
    # the held-out MSE ratio <= 1.035; 96 duels x 150 steps gave 1.10 (the deterministic judge)
    pairs: int = 0
    heldout_polls: int = 0  # 0: the method's default (METHOD_DEFAULTS)
    seed: int = 0  # the run's seed: prompts, image seeds, training
    # generation (the parent's and the child's images)
    size: int = 64
    gen_steps: int = 4
    cfg_scale: float = 5.0
    sampler: str = "Euler a"
    negative_prompt: str = "worst quality, low quality"
    # training
    train_steps: int = 100
    learning_rate: float = 1e-3
    beta_dpo: float = 5000.0
    network_dim: int = 8
    network_alpha: float = 8.0
    train_batch_size: int = 4
    # the child also meets its shuffled-label sibling (``sibling_versus``); None: for SFT with true labels, whose
    # shuffled control moves too (see METHOD_DEFAULTS)
    sibling: bool | None = None
    extra: dict = field(default_factory=dict)  # any other TrainConfig fields

    @property
    def wants_sibling(self) -> bool:
        return self.sibling if self.sibling is not None else (self.method == "sft" and self.labels == "true")

    @property
    def images_per_poll(self) -> int:
        return self.candidates or METHOD_DEFAULTS.get(self.method, METHOD_DEFAULTS["dpo"])["candidates"]

    @property
    def polls(self) -> int:
        return self.pairs or METHOD_DEFAULTS.get(self.method, METHOD_DEFAULTS["dpo"])["pairs"]

    @property
    def heldout(self) -> int:
        return self.heldout_polls or METHOD_DEFAULTS.get(self.method, METHOD_DEFAULTS["dpo"])["heldout_polls"]

    def train_config(self) -> TrainConfig:
        base = dict(method=self.method, max_train_steps=self.train_steps, learning_rate=self.learning_rate,
                    network_dim=self.network_dim, network_alpha=self.network_alpha,
                    train_batch_size=self.train_batch_size, resolution=self.size, seed=self.seed,
                    checkpointing_steps=max(1, self.train_steps), lr_scheduler="constant", output_name="child")
        if self.method == "dpo":
            base["beta_dpo"] = self.beta_dpo
        return TrainConfig(**{**base, **self.extra})


@dataclass(frozen=True)
class Poll:
    """One training poll before judging: a prompt and the parent's images of it, each with its own seed."""

    poll_id: int
    prompt: str
    seeds: tuple[int, ...]
    images: tuple[str, ...]  # PNG paths


@dataclass(frozen=True)
class PollPair:
    """One training poll: a prompt, two images of the parent (each its own seed), and the judge's labels."""

    poll_id: int
    prompt: str
    seed_0: int
    seed_1: int
    image_0: str  # PNG paths
    image_1: str
    label_0: float | None = None  # 1.0 / 0.0 once judged (the winner has 1.0)
    label_1: float | None = None


def prompts(n: int, *, seed: int, stream: str, name_colour: float = 0.3) -> list[str]:
    """``n`` prompts in the tiny models' vocabulary (``generation.tiny.shapes``) from the stream ``stream``
    ("train" / "heldout"): a shape, and each of its colour, background, place, size and brightness named with
    probability ``name_colour`` (colour, background) or 0.5 (the rest), plus filler tags. What is not named the
    seed decides, so two images of a poll differ in what the judge scores."""
    from generation.tiny import shapes

    rng = np.random.default_rng([seed, {"train": 1, "heldout": 2}[stream]])
    out = []
    for _ in range(n):
        spec = shapes.random_spec(rng)
        tags = [f"{spec['colour']} {spec['noun']}" if rng.uniform() < name_colour else spec["noun"]]
        if rng.uniform() < name_colour:
            tags.append(spec["scene"] if "scene" in spec else f"{spec['background']} background")
        tags += [t for t in (spec["size"], spec["position"], spec.get("brightness")) if t and rng.uniform() < 0.5]
        tags += list(rng.choice(shapes.FILLER, size=int(rng.integers(0, 3)), replace=False))
        rng.shuffle(tags)
        out.append(", ".join(tags))
    return out


def _variant(parent: ParentModel, lora_file: str | None = None, key: str = "parent"):
    from generation.pipelines.types import LoraSpec, VariantSpec

    loras = (LoraSpec(str(lora_file), 1.0),) if lora_file else ()
    return VariantSpec(key=f"closed-loop:{key}:{parent.path}:{lora_file}", source_type=parent.source_type,
                       source_path=parent.path, config_path=parent.config_path,
                       prediction_type=parent.prediction_type, loras=loras)


def _load(parent: ParentModel, lora_file: str | None = None):
    from generation.pipelines.loading import load_pipeline

    return load_pipeline(_variant(parent, lora_file, "child" if lora_file else "parent"), "cpu")


def _requests(items, settings: LoopSettings):
    from generation.pipelines.types import GenerationRequest

    return [GenerationRequest(p, negative_prompt=settings.negative_prompt, seed=int(s), sampler=settings.sampler,
                              steps=settings.gen_steps, cfg_scale=settings.cfg_scale, width=settings.size,
                              height=settings.size) for p, s in items]


def _save_png(array, path: Path) -> str:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(array, 0, 1) * 255).round().astype(np.uint8)).save(path, format="PNG")
    return str(path)


def generate_polls(parent: ParentModel, prompt_list: list[str], out_dir, settings: LoopSettings, *,
                   loaded=None) -> list[Poll]:
    """``settings.images_per_poll`` parent images per prompt, each with its own seed (no seed repeats in the run)."""
    loaded = loaded or _load(parent)
    out_dir = Path(out_dir)
    n = settings.images_per_poll
    if n < 2:
        raise TrainingError(f"a poll needs at least 2 images, got candidates={settings.candidates}")
    base = TRAIN_SEED_BASE * (settings.seed + 1)
    if n * len(prompt_list) > TRAIN_SEED_BASE:
        raise TrainingError("too many training images for the seed range: fewer pairs or candidates")
    items = [(prompt, base + n * i + j) for i, prompt in enumerate(prompt_list) for j in range(n)]
    arrays = loaded.generate_arrays(_requests(items, settings))
    polls = []
    for i, prompt in enumerate(prompt_list):
        paths = tuple(_save_png(arrays[n * i + j], out_dir / f"poll{i:04d}_{j}.png") for j in range(n))
        polls.append(Poll(i + 1, prompt, tuple(base + n * i + j for j in range(n)), paths))
    return polls


def generate_pairs(parent: ParentModel, prompt_list: list[str], out_dir, settings: LoopSettings, *,
                   loaded=None) -> list[PollPair]:
    """Two parent images per prompt (duels), each with its own seed, as unjudged pair rows."""
    polls = generate_polls(parent, prompt_list, out_dir, dataclasses.replace(settings, candidates=2), loaded=loaded)
    return [PollPair(p.poll_id, p.prompt, *p.seeds, *p.images) for p in polls]


def judge_pairs(pairs: list[PollPair], settings: LoopSettings) -> list[PollPair]:
    """The synthetic judge's labels (``judge.vote`` at ``settings.judge_temperature``, no margin; without
    temperature a rare exact tie is dropped), then the control transformation: "shuffled" permutes the labels
    across polls (seeded), "reversed" swaps every label."""
    from PIL import Image

    from .judge import vote

    _check_labels(settings)
    judged = []
    for p in pairs:
        with Image.open(p.image_0) as a, Image.open(p.image_1) as b:
            v = vote(a.convert("RGB"), b.convert("RGB"), judge=settings.judge,
                     temperature=settings.judge_temperature, seed=f"train-{settings.seed}")
        if v in ("left", "right"):
            judged.append((p, 1.0 if v == "left" else 0.0))
    firsts = np.array([first for _, first in judged])
    if settings.labels == "shuffled":
        firsts = np.random.default_rng([settings.seed, 3]).permutation(firsts)
    elif settings.labels == "reversed":
        firsts = 1.0 - firsts
    return [dataclasses.replace(p, label_0=float(f), label_1=float(1.0 - f)) for (p, _), f in zip(judged, firsts)]


def judge_polls(polls: list[Poll], settings: LoopSettings) -> list[PollPair]:
    """Judged pair rows of the polls. Duels: ``judge_pairs``. Free-for-all polls: the winner is the judge's
    choice (``judge.choose`` at ``settings.judge_temperature``: a Plackett-Luce draw; without temperature the
    highest score, and a poll whose top two scores tie exactly is dropped); "shuffled" makes a seeded uniform draw
    the winner instead, "reversed" the choice of a voter with the opposite taste; the winner is then paired with
    each other image (label 1 for the winner), so its pair rows share the poll's id."""
    from PIL import Image

    from .judge import choose, score

    _check_labels(settings)
    if all(len(p.images) == 2 for p in polls):
        return judge_pairs([PollPair(p.poll_id, p.prompt, *p.seeds, *p.images) for p in polls], settings)
    coin = np.random.default_rng([settings.seed, 3])
    rows = []
    for p in polls:
        images = []
        for path in p.images:
            with Image.open(path) as im:
                images.append(im.convert("RGB"))
        scores = [score(im, settings.judge) for im in images]
        ranked = sorted(scores, reverse=True)
        if settings.judge_temperature <= 0 and (ranked[0] == ranked[1] or ranked[-1] == ranked[-2]):
            continue
        winner = (int(coin.integers(len(images))) if settings.labels == "shuffled"
                  else choose(images, judge=settings.judge, temperature=settings.judge_temperature,
                              seed=f"train-{settings.seed}", lowest=settings.labels == "reversed", scores=scores))
        rows += [PollPair(p.poll_id, p.prompt, p.seeds[winner], p.seeds[k], p.images[winner], p.images[k], 1.0, 0.0)
                 for k in range(len(p.images)) if k != winner]
    return rows


def _check_labels(settings: LoopSettings) -> None:
    if settings.labels not in LABELS:
        raise TrainingError(f"labels must be one of {', '.join(LABELS)}, got {settings.labels!r}")


def write_pairs_dataset(pairs: list[PollPair], path, settings: LoopSettings):
    """The judged polls as the trainers' Parquet dataset (Pick-a-Pic columns + settings); its DatasetInfo."""
    from .dataset import PreferenceRow, write_dataset

    rows = []
    for p in pairs:
        if p.label_0 is None:
            raise TrainingError(f"poll {p.poll_id} is not judged")
        rows.append(PreferenceRow(Path(p.image_0).read_bytes(), Path(p.image_1).read_bytes(), p.label_0, p.label_1,
                                  caption=p.prompt, poll_id=p.poll_id, negative_prompt=settings.negative_prompt,
                                  seed=p.seed_0, sampler=settings.sampler, steps=settings.gen_steps,
                                  cfg_scale=settings.cfg_scale, width=settings.size, height=settings.size))
    return write_dataset(rows, path, vote_log_hash=f"closed-loop-{settings.judge}-{settings.labels}-{settings.seed}")


def train_child(parent: ParentModel, dataset_path, work_dir, settings: LoopSettings, *, steps: list | None = None):
    """Train the LoRA (``run.train_lora``); returns its TrainResult. ``steps``: a list the step events (one per
    step, with the method's metrics) are appended to."""
    from .run import train_lora

    work_dir = Path(work_dir)
    paths = RunPaths(str(dataset_path), str(work_dir / "train"), str(work_dir / "out"))
    keep = steps.append if steps is not None else (lambda event: None)
    return train_lora(settings.train_config(), parent, paths,
                      on_progress=lambda event: keep(event) if event.get("event") == "step" else None)


def late_mean(steps: list, key: str) -> float | None:
    """The mean of a step metric over the last quarter of training (at least one step): DPO's implicit accuracy
    of one step is that of its batch (4 pairs), too few to read; None when no step logged it."""
    values = [float(e[key]) for e in steps if key in e]
    if not values:
        return None
    return float(np.mean(values[-max(1, len(values) // 4):]))


def heldout_mse(parent_pipe, child_pipe, images: list[str], prompt_list: list[str], prediction_type: str, *,
                seed: int) -> tuple[float, float]:
    """Mean denoising MSE of parent and child UNets on ``images`` with their prompts: the same noise and timestep
    per image for both (seeded), epsilon space for v-prediction (times a_t^2, as the DPO loss)."""
    import torch
    from PIL import Image

    from .dpo import denoise_mse
    from .parent import CaptionEncoder, training_noise_scheduler

    sched = training_noise_scheduler(parent_pipe.scheduler.config, prediction_type)
    vae = parent_pipe.vae
    encoder = CaptionEncoder(parent_pipe)
    gen = torch.Generator().manual_seed(seed)
    totals = [0.0, 0.0]
    with torch.no_grad():
        for path, prompt in zip(images, prompt_list):
            with Image.open(path) as im:
                x = torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 127.5 - 1.0)
            latents = vae.encode(x.permute(2, 0, 1)[None]).latent_dist.mean * float(vae.config.scaling_factor)
            noise = torch.randn(latents.shape, generator=gen)
            t = torch.randint(0, int(sched.config.num_train_timesteps), (1,), generator=gen)
            embeds, pooled = encoder.encode_one(prompt)
            h, w = x.shape[0], x.shape[1]
            cond = dict(encoder_hidden_states=embeds[None],
                        added_cond_kwargs={"text_embeds": pooled[None],
                                           "time_ids": torch.tensor([[h, w, 0, 0, h, w]], dtype=torch.float32)})
            for k, pipe in enumerate((parent_pipe, child_pipe)):
                totals[k] += float(denoise_mse(pipe.unet, latents, noise, t, cond, noise_scheduler=sched,
                                               v_prediction=prediction_type == "v")[0])
    return totals[0] / len(images), totals[1] / len(images)


def head_to_head(left_loaded, right_loaded, prompt_list: list[str], settings: LoopSettings):
    """The judge's votes (at ``settings.judge_temperature``), left model vs right model, on the held-out prompts
    at the held-out seeds (one seed per poll, shared by both): (wins of the left, ties counting half; polls; left
    images; right images)."""
    from .judge import vote

    items = [(p, HELDOUT_SEED_BASE + settings.seed * 100_000 + k) for k, p in enumerate(prompt_list)]
    reqs = _requests(items, settings)
    left_images = left_loaded.generate_arrays(reqs)
    right_images = right_loaded.generate_arrays(reqs)
    wins = 0.0
    for a, b in zip(left_images, right_images):
        v = vote(a, b, judge=settings.judge, temperature=settings.judge_temperature, seed=f"heldout-{settings.seed}")
        wins += 1.0 if v == "left" else 0.5 if v == "tie" else 0.0
    return wins, len(items), left_images, right_images


def sibling_versus(parent: ParentModel, lora_file: str, polls: list[Poll], prompt_list: list[str], work_dir,
                   settings: LoopSettings) -> dict:
    """The child against its shuffled-label sibling: the same parent, polls, seeds and training, only the labels
    shuffled (the shuffled control's child), so whatever SFT teaches regardless of the labels (the round trip of
    the parent's pictures through the VAE) is on both sides and the judge sees the votes' part alone."""
    shuffled = dataclasses.replace(settings, labels="shuffled")
    work_dir = Path(work_dir)
    dataset = write_pairs_dataset(judge_polls(polls, shuffled), work_dir / "dataset.parquet", shuffled)
    sibling = train_child(parent, dataset.path, work_dir, shuffled)
    wins, n, _, _ = head_to_head(_load(parent, lora_file), _load(parent, sibling.lora_file), prompt_list, settings)
    lo, hi = wilson_interval(wins, n)
    return {"sibling_win_rate": round(wins / n, 4), "sibling_ci_low": round(lo, 4), "sibling_ci_high": round(hi, 4),
            "sibling_lora_file": sibling.lora_file}


def evaluate(parent: ParentModel, lora_file: str, prompt_list: list[str], out_dir, settings: LoopSettings, *,
             parent_loaded=None) -> dict:
    """Child vs parent on held-out polls (a fresh seed per poll, the same for both models), judged by the
    synthetic judge (the child on the left; ties count half); and the held-out MSE ratio child / parent."""
    parent_loaded = parent_loaded or _load(parent)
    child_loaded = _load(parent, lora_file)
    out_dir = Path(out_dir)
    wins, n, child_images, parent_images = head_to_head(child_loaded, parent_loaded, prompt_list, settings)
    lo, hi = wilson_interval(wins, n)
    paths = [_save_png(a, out_dir / f"heldout{k:04d}_parent.png") for k, a in enumerate(parent_images)]
    mse_parent, mse_child = heldout_mse(parent_loaded.pipe, child_loaded.pipe, paths, prompt_list,
                                        parent.prediction_type, seed=HELDOUT_SEED_BASE + settings.seed)
    from .judge import score

    return {"child_win_rate": round(wins / n, 4), "ci_low": round(lo, 4), "ci_high": round(hi, 4), "heldout_polls": n,
            "mse_ratio": round(mse_child / mse_parent, 4), "mse_parent": round(mse_parent, 5),
            "mse_child": round(mse_child, 5),
            "judge_parent": round(float(np.mean([score(a, settings.judge) for a in parent_images])), 4),
            "judge_child": round(float(np.mean([score(a, settings.judge) for a in child_images])), 4)}


def run_closed_loop(settings: LoopSettings, parent: ParentModel, work_dir, *, log=None) -> dict:
    """Generate, judge, build the dataset, train, evaluate; the JSON dict described in the module docstring."""
    say = log or (lambda msg: None)
    work_dir = Path(work_dir)
    started = time.perf_counter()
    loaded = _load(parent)
    train_prompts = prompts(settings.polls, seed=settings.seed, stream="train")
    held_prompts = prompts(settings.heldout, seed=settings.seed, stream="heldout")
    t = time.perf_counter()
    polls = generate_polls(parent, train_prompts, work_dir / "images", settings, loaded=loaded)
    pairs = judge_polls(polls, settings)
    gen_s = time.perf_counter() - t
    say(f"{len(polls)} polls of {settings.images_per_poll} images judged in {gen_s:.0f} s: {len(pairs)} pair rows")
    dataset = write_pairs_dataset(pairs, work_dir / "dataset.parquet", settings)
    t = time.perf_counter()
    steps: list = []
    result = train_child(parent, dataset.path, work_dir, settings, steps=steps)
    train_s = time.perf_counter() - t
    say(f"trained {result.step} steps in {train_s:.0f} s: {result.metrics}")
    t = time.perf_counter()
    heldout = evaluate(parent, result.lora_file, held_prompts, work_dir / "heldout", settings, parent_loaded=loaded)
    eval_s = time.perf_counter() - t
    if settings.wants_sibling:
        t = time.perf_counter()
        heldout |= sibling_versus(parent, result.lora_file, polls, held_prompts, work_dir / "sibling", settings)
        heldout["sibling_s"] = round(time.perf_counter() - t, 1)
        say(f"against its shuffled-label sibling: {heldout['sibling_win_rate']}")
    acc = late_mean(steps, "implicit_acc")
    return {"pairs": len(pairs), "polls": len({p.poll_id for p in pairs}), "images_per_poll": settings.images_per_poll,
            "train_steps": result.step, "train_s": round(train_s, 1),
            "implicit_acc": None if acc is None else round(float(acc), 4), **heldout,
            "lora_file": result.lora_file, "method": settings.method, "labels": settings.labels,
            "prediction_type": parent.prediction_type, "seed": settings.seed, "generate_s": round(gen_s, 1),
            "eval_s": round(eval_s, 1), "total_s": round(time.perf_counter() - started, 1),
            "settings": {k: v for k, v in dataclasses.asdict(settings).items() if k not in ("method", "labels", "seed")}}


def main(argv=None) -> int:
    """``python -m training.trainers.closed_loop --tiny-dir DIR --method dpo [--labels shuffled] --seed 0``."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m training.trainers.closed_loop", description=__doc__.split("\n")[0])
    ap.add_argument("--tiny-dir", required=True, help="the tiny models (generation.tiny.make_tiny_models)")
    ap.add_argument("--work-dir", required=True)
    ap.add_argument("--prediction", choices=("eps", "v"), default="eps")
    ap.add_argument("--settings", default="{}", help="JSON of LoopSettings fields")
    args = ap.parse_args(argv)
    from generation.tiny import make_tiny_models

    tiny = make_tiny_models(args.tiny_dir)
    parent = ParentModel(tiny.eps_dir if args.prediction == "eps" else tiny.v_dir, args.prediction)
    settings = LoopSettings(**json.loads(args.settings))
    print(json.dumps(run_closed_loop(settings, parent, args.work_dir), sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
