"""Loading the automatic scorers (CCIP, open_clip, the aesthetic MLP) a scoring run uses, each kept loaded
while its files do not change. Torch, open_clip and onnxruntime are imported when a scorer loads."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from generation.scoring.files import (
    AESTHETIC,
    ALIGNMENT,
    CCIP,
    KINDS,
    REWARD,
    ScorerUnavailable,
    files_hash,
    scorer_files,
    scorers_dir,
)


def scoring_batch_size() -> int:
    return int(settings.SCORING_BATCH_SIZE)


def scoring_device() -> str:
    return str(settings.SCORING_DEVICE)


@dataclass
class LoadedScorers:
    """The scorers one run uses, with the hash each score will record."""

    hashes: dict[str, str] = field(default_factory=dict)  # kind -> scorer hash
    ccip: object | None = None  # CcipModel
    clip: object | None = None  # OpenClipModel
    aesthetic: object | None = None  # AestheticMlp
    reward: object | None = None  # generation.scoring.reward.RewardHead
    notes: list[str] = field(default_factory=list)

    @property
    def kinds(self) -> list[str]:
        return [k for k in KINDS if k in self.hashes]

    @property
    def ccip_threshold(self) -> float:
        return float(self.ccip.threshold)


# One loaded model per slot, reused while its files do not change (workers score many batches).
_model_cache: dict[str, tuple[tuple, object]] = {}
_model_cache_lock = threading.Lock()


def _cached(slot: str, key: tuple, build: Callable[[], object]) -> object:
    with _model_cache_lock:
        hit = _model_cache.get(slot)
        if hit is not None and hit[0] == key:
            return hit[1]
    obj = build()
    with _model_cache_lock:
        _model_cache[slot] = (key, obj)
    return obj


def scorers_load(*, kinds: Sequence[str] | None = None, root: Path | None = None) -> LoadedScorers:
    """Load the scorers of ``kinds`` (default: every installed one).

    A scorer asked for by name that is missing, or any scorer whose files are there but broken, raises
    :class:`ScoringError` with a clear message; with the default, missing scorers are skipped with a note. When
    nothing at all can be loaded, raises :class:`ScorerUnavailable`.
    """
    explicit = kinds is not None
    wanted = list(dict.fromkeys(kinds)) if explicit else list(KINDS)
    for kind in wanted:
        if kind not in KINDS:
            raise ScorerUnavailable(f"unknown scorer {kind!r}; choose from {', '.join(KINDS)}")
    loaded = LoadedScorers()
    found = {}
    for kind in wanted:
        try:
            found[kind] = scorer_files(kind, root)
        except ScorerUnavailable as exc:
            if explicit:
                raise
            loaded.notes.append(f"{kind}: skipped — {exc}")
    if not found:
        where = Path(root) if root is not None else scorers_dir()
        raise ScorerUnavailable(f"no scorer is installed in {where}: " + "; ".join(loaded.notes))
    device = scoring_device()
    batch = scoring_batch_size()
    for kind, files in found.items():
        loaded.hashes[kind] = files_hash(files.files)
    if CCIP in found:
        from generation.scoring.ccip import CcipModel

        folder = found[CCIP].folder
        loaded.ccip = _cached("ccip", (str(folder), loaded.hashes[CCIP], device),
                              lambda: CcipModel(folder, device=device, batch_size=batch))
    clip_kinds = [k for k in (AESTHETIC, ALIGNMENT, REWARD) if k in found]
    if clip_kinds:
        from generation.scoring.openclip import OpenClipModel

        files = found[clip_kinds[0]]
        config, weights = files.files[0], files.files[1]
        clip_folder = config.parent  # the open_clip folder (the reward judge's own folder holds only its head)
        clip_key = (str(clip_folder), files_hash((config, weights)), device)
        loaded.clip = _cached("open_clip", clip_key, lambda: OpenClipModel(clip_folder, device=device, batch_size=batch))
    if AESTHETIC in found:
        from generation.scoring.aesthetic import AestheticMlp

        mlp_path = found[AESTHETIC].files[2]
        embed_dim = getattr(loaded.clip, "embed_dim", None)
        loaded.aesthetic = _cached("aesthetic", (str(mlp_path), loaded.hashes[AESTHETIC]),
                                   lambda: AestheticMlp(mlp_path, embed_dim=embed_dim))
    if REWARD in found:
        from generation.scoring.reward import RewardHead

        head_path = found[REWARD].files[2]
        loaded.reward = _cached("reward", (str(head_path), loaded.hashes[REWARD]), lambda: RewardHead(head_path))
    return loaded
