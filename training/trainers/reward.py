"""A reward model from votes: a Bradley-Terry head on frozen open_clip embeddings.

**Model.** Features of (image, prompt): phi = [i] or, with ``use_prompt``, [i, i * p] (i, p the L2-normalised
open_clip image and prompt embeddings, * elementwise), standardised with the training set's mean and scale.
score = w . (phi - mean) / scale. P(image a preferred to b | prompt) = sigmoid(score(a) - score(b)).

**Training.** The dataset's pair rows (label 1/0) and tie rows (0.5) -- both-bad rows carry no order -- weighted
by their poll weight; maximum likelihood plus ``weight_decay`` * |w|^2 by full-batch Adam. Polls (all rows of a
poll together) are split into train and held-out by a seeded hash of the poll id.

**Held-out accuracy.** Over held-out pair rows (ties excluded): the share whose higher-scored image is the
preferred one, with a 95% Wilson interval. Pairs of one free-for-all poll share images, so the interval (which
assumes independent trials) is somewhat optimistic for such datasets.

**File format** (``reward_model.safetensors``): tensors ``weight`` [F], ``mean`` [F], ``scale`` [F] (float32);
metadata ``format`` = "arena.reward.bradley_terry.v1", ``embed_dim``, ``use_prompt`` ("true"/"false"),
``open_clip_weights_sha256`` (the embedding model it was trained on; scoring with another is refused),
``dataset_sha256``, ``vote_log_hash``, ``train_pairs``, ``heldout_pairs``, ``heldout_acc``, ``heldout_ci_low``,
``heldout_ci_high``, ``config`` (JSON).

**Scoring.** ``score(images, prompts, model_file=..., embedder=...)`` -> list of floats (higher = preferred);
``RewardModel.load(path, embedder)`` to keep it loaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ratings.intervals import wilson_interval as _wilson

from .errors import TrainingError

FORMAT = "arena.reward.bradley_terry.v1"
MODEL_FILE = "reward_model.safetensors"


def wilson_interval(successes: float, n: int) -> tuple[float, float]:
    """The 95% Wilson interval of ``successes / n`` (ratings.intervals'); (0, 1) when there is nothing to share."""
    return _wilson(successes, n) or (0.0, 1.0)


def features(image_emb: np.ndarray, prompt_emb: np.ndarray | None, use_prompt: bool) -> np.ndarray:
    if not use_prompt:
        return image_emb.astype(np.float32)
    return np.concatenate([image_emb, image_emb * prompt_emb], axis=1).astype(np.float32)


def heldout_polls(poll_ids, fraction: float, seed: int) -> set:
    """Polls for held-out evaluation: the lowest ``fraction`` of polls by a seeded hash of their id."""
    polls = sorted(set(poll_ids), key=lambda p: hashlib.sha256(f"{seed}:{p}".encode()).hexdigest())
    k = int(round(len(polls) * fraction))
    return set(polls[:k])


def fit_bradley_terry(fa, fb, labels, weights, *, epochs: int, lr: float, weight_decay: float, seed: int):
    """w maximising sum_i weights_i * [y_i log s(w.(fa_i - fb_i)) + (1 - y_i) log s(-w.(fa_i - fb_i))] - wd |w|^2."""
    import torch

    torch.manual_seed(seed)
    d = torch.from_numpy(fa - fb)
    y, wt = torch.tensor(labels, dtype=torch.float32), torch.tensor(weights, dtype=torch.float32)
    w = torch.zeros(d.shape[1], requires_grad=True)
    opt = torch.optim.Adam([w], lr=lr)
    losses = []
    for _ in range(epochs):
        opt.zero_grad()
        margin = d @ w
        nll = torch.nn.functional.binary_cross_entropy_with_logits(margin, y, weight=wt, reduction="sum") / wt.sum()
        loss = nll + weight_decay * (w * w).sum()
        loss.backward()
        opt.step()
        losses.append(float(nll.detach()))
    return w.detach().numpy().astype(np.float32), losses


@dataclass(frozen=True)
class RewardResult:
    status: str
    model_file: str
    result_file: str
    train_pairs: int
    heldout_pairs: int
    heldout_acc: float | None
    heldout_ci_low: float
    heldout_ci_high: float
    train_acc: float


def _embed_dataset(dataset, embedder):
    from PIL import Image

    n = len(dataset)
    images = [[None, None] for _ in range(n)]
    for row in range(n):
        for j, data in enumerate(dataset.images(row)):
            images[row][j] = Image.open(io.BytesIO(data))
    flat = [im for pair in images for im in pair]
    emb = embedder.image_embeddings(flat).reshape(n, 2, -1)
    captions = sorted(set(dataset.columns["caption"]))
    cap = dict(zip(captions, embedder.text_embeddings(captions)))
    prompts = np.stack([cap[c] for c in dataset.columns["caption"]])
    return emb, prompts


def train_reward(config, paths, *, on_progress=None, embedder=None, deadline=None, time_slice_s=None,
                 stop_after=None) -> RewardResult:
    """Train the head on ``paths.dataset``, write ``<output_dir>/reward_model.safetensors`` and
    ``training_result.json``; ``embedder`` defaults to OpenClipEmbedder(config.open_clip_dir). It takes seconds
    (a linear head on cached embeddings), so the time-slice arguments are accepted and not needed."""
    from .dataset import read_dataset
    from .embeddings import OpenClipEmbedder, weights_file
    from .run import RESULT_FILE, print_progress

    report = on_progress if on_progress is not None else print_progress
    if not 0 <= config.heldout_fraction < 1:
        raise TrainingError(f"heldout_fraction must be from 0 to below 1, got {config.heldout_fraction}")
    clip_sha = _sha256_file(weights_file(config.open_clip_dir))
    dataset = read_dataset(paths.dataset)
    pairs = dataset.pairs_for("reward")
    if len(pairs) < 2:
        raise TrainingError(f"the dataset has {len(pairs)} usable pair or tie rows; a reward model needs at least 2")
    embedder = embedder or OpenClipEmbedder(config.open_clip_dir)
    report({"event": "start", "method": "reward", "pairs": len(pairs), "dataset_sha256": dataset.sha256})
    emb, prompts = _embed_dataset(dataset, embedder)
    w, mean, scale, summary = _fit_and_evaluate(config, pairs, emb, prompts, report)
    out = Path(paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_file, result_file = out / MODEL_FILE, out / RESULT_FILE
    _save(model_file, w, mean, scale, config, dataset, clip_sha, summary, embed_dim=emb.shape[-1])
    result = RewardResult("done", str(model_file), str(result_file), **summary)
    result_file.write_text(json.dumps({**dataclasses.asdict(result), "method": "reward",
                                       "dataset": dataclasses.asdict(dataset.info),
                                       "config": dataclasses.asdict(config)}, sort_keys=True, indent=2))
    report({"event": "done", **summary, "model_file": str(model_file)})
    return result


def _fit_and_evaluate(config, pairs, emb, prompts, report):
    """(w, mean, scale, summary): the head fitted on the training polls, its accuracy on the held-out ones."""
    held = heldout_polls([p.poll_id for p in pairs], config.heldout_fraction, config.seed)
    train = [p for p in pairs if p.poll_id not in held] or pairs
    test = [p for p in pairs if p.poll_id in held and p.label != 0.5]

    def feats(ps, which):
        img = np.stack([emb[p.row, p.first if which == 0 else 1 - p.first] for p in ps])
        return features(img, prompts[[p.row for p in ps]], config.use_prompt)

    fa, fb = feats(train, 0), feats(train, 1)
    both = np.concatenate([fa, fb])
    mean, scale = both.mean(axis=0), both.std(axis=0) + 1e-6
    fa, fb = (fa - mean) / scale, (fb - mean) / scale
    w, losses = fit_bradley_terry(fa, fb, [p.label for p in train], [p.weight for p in train], epochs=config.epochs,
                                  lr=config.learning_rate, weight_decay=config.weight_decay, seed=config.seed)
    for epoch in range(0, config.epochs, max(1, config.epochs // 10)):
        report({"event": "step", "step": epoch + 1, "max_steps": config.epochs, "loss": round(losses[epoch], 6)})
    acc, lo, hi = None, 0.0, 1.0  # no held-out pairs: no accuracy, the uninformative interval
    if test:
        correct = _correct((feats(test, 0) - mean) / scale @ w, (feats(test, 1) - mean) / scale @ w)
        acc, (lo, hi) = correct / len(test), wilson_interval(correct, len(test))
    summary = {"train_pairs": len(train), "heldout_pairs": len(test), "heldout_acc": acc, "heldout_ci_low": lo,
               "heldout_ci_high": hi, "train_acc": _accuracy(fa @ w, fb @ w, [p.label for p in train])}
    return w, mean, scale, summary


def _correct(sa, sb) -> float:
    return float(np.sum(sa > sb) + 0.5 * np.sum(sa == sb))


def _accuracy(sa, sb, labels) -> float:
    keep = [i for i, y in enumerate(labels) if y != 0.5]
    return _correct(sa[keep], sb[keep]) / len(keep) if keep else float("nan")


def _sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _save(path, w, mean, scale, config, dataset, clip_sha, summary, *, embed_dim) -> None:
    import torch
    from safetensors.torch import save_file

    meta = {"format": FORMAT, "embed_dim": str(embed_dim), "use_prompt": "true" if config.use_prompt else "false",
            "open_clip_weights_sha256": clip_sha, "dataset_sha256": dataset.sha256,
            "vote_log_hash": str(dataset.meta.get("vote_log_hash", "")),
            "config": json.dumps(dataclasses.asdict(config), sort_keys=True)}
    meta.update({k: str(v) for k, v in summary.items()})
    tensors = {"weight": torch.from_numpy(w), "mean": torch.from_numpy(mean.astype(np.float32)),
               "scale": torch.from_numpy(scale.astype(np.float32))}
    save_file(tensors, str(path), metadata=meta)


class RewardModel:
    """A loaded reward model; ``score(images, prompts)`` -> list of floats."""

    def __init__(self, weight, mean, scale, metadata: dict, embedder):
        self.weight, self.mean, self.scale, self.metadata, self.embedder = weight, mean, scale, metadata, embedder
        self.use_prompt = metadata.get("use_prompt") == "true"

    @classmethod
    def load(cls, path, embedder=None, *, open_clip_dir: str | None = None) -> "RewardModel":
        from safetensors.numpy import load_file

        from generation.pipelines.checkpoints import read_safetensors_header

        from .embeddings import OpenClipEmbedder, weights_file

        path = Path(path)
        if not path.is_file():
            raise TrainingError(f"reward model not found: {path}")
        meta = read_safetensors_header(path)[1]
        if meta.get("format") != FORMAT:
            raise TrainingError(f"{path.name} is not a reward model of format {FORMAT}")
        if embedder is None:
            if not open_clip_dir:
                raise TrainingError("scoring needs the open_clip model: give an embedder or open_clip_dir")
            if _sha256_file(weights_file(open_clip_dir)) != meta.get("open_clip_weights_sha256"):
                raise TrainingError(f"{path.name} was trained on other open_clip weights than {open_clip_dir}")
            embedder = OpenClipEmbedder(open_clip_dir)
        t = load_file(str(path))
        return cls(t["weight"], t["mean"], t["scale"], meta, embedder)

    def score(self, images, prompts) -> list[float]:
        if len(images) != len(prompts):
            raise TrainingError(f"{len(images)} images but {len(prompts)} prompts")
        if not images:
            return []
        img = self.embedder.image_embeddings(list(images))
        txt = self.embedder.text_embeddings(list(prompts)) if self.use_prompt else None
        f = (features(img, txt, self.use_prompt) - self.mean) / self.scale
        if f.shape[1] != self.weight.shape[0]:
            raise TrainingError(f"embedding size {img.shape[1]} does not match the reward model's")
        return [float(v) for v in f @ self.weight]


def score(images, prompts, *, model_file, embedder=None, open_clip_dir: str | None = None) -> list[float]:
    """Scores (higher = preferred by the voters the model learned from) of PIL ``images`` for ``prompts``."""
    return RewardModel.load(model_file, embedder, open_clip_dir=open_clip_dir).score(images, prompts)
