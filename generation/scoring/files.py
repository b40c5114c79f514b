"""Where the scorer files live, whether they are there, and their content hash.

Layout under ``settings.SCORERS_DIR`` (see the README section "Automatic scorers"):

    ccip/        model_feat.onnx, model_metrics.onnx, metrics.json (with "threshold") — the deepghs layout
    open_clip/   open_clip_config.json (open_clip's hub layout: "model_cfg", optional "preprocess_cfg")
                 or config.json ({"model_name": "<built-in open_clip architecture>"}),
                 weights: open_clip_model.safetensors | open_clip_pytorch_model.safetensors |
                          open_clip_pytorch_model.bin | open_clip.safetensors | open_clip.pt,
                 aesthetic_mlp.safetensors | aesthetic_mlp.pth | aesthetic_mlp.pt (LAION aesthetic-predictor
                 state dict: layers.N.weight / layers.N.bias)
    reward/      reward_model.safetensors (a Bradley-Terry head trained on votes: generation.scoring.reward) and
                 judge.json ({"name", "source", "registered_at"}), written by ``reward_judge_register``; it
                 embeds with open_clip/ above, which must hold the weights it was trained on

Nothing here imports torch or onnxruntime; checking the layout is cheap enough for the admin page.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

CCIP = "ccip"
AESTHETIC = "aesthetic"
ALIGNMENT = "alignment"
REWARD = "reward"
KINDS = (CCIP, AESTHETIC, ALIGNMENT, REWARD)
REWARD_FILE = "reward_model.safetensors"
REWARD_INFO = "judge.json"

CCIP_FILES = ("model_feat.onnx", "model_metrics.onnx", "metrics.json")
OPEN_CLIP_CONFIGS = ("open_clip_config.json", "config.json")
OPEN_CLIP_WEIGHTS = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip.safetensors",
    "open_clip.pt",
)
AESTHETIC_MLP = ("aesthetic_mlp.safetensors", "aesthetic_mlp.pth", "aesthetic_mlp.pt")


class ScoringError(Exception):
    """A scorer cannot run; the message says why in words an admin can act on."""


class ScorerUnavailable(ScoringError):
    """The scorer is not installed (its folder, or the aesthetic MLP file, is absent)."""


class ScorerBroken(ScoringError):
    """The scorer's folder is there but incomplete, or its files cannot be loaded or run."""


@dataclass(frozen=True)
class ScorerFiles:
    kind: str
    folder: Path
    files: tuple[Path, ...]  # the files whose content defines the scorer, hashed in this order
    threshold: float | None = None  # CCIP only


@dataclass(frozen=True)
class ScorerState:
    kind: str
    state: str  # "installed" | "missing" | "broken"
    folder: Path
    message: str

    @property
    def installed(self) -> bool:
        return self.state == "installed"


def scorers_dir() -> Path:
    return Path(settings.SCORERS_DIR)


def kind_folder(kind: str, root: Path | None = None) -> Path:
    root = Path(root) if root is not None else scorers_dir()
    return root / (kind if kind in (CCIP, REWARD) else "open_clip")


def reward_judge_info(root: Path | None = None) -> dict | None:
    """The registered reward judge's judge.json ({"name", "source", "registered_at", ...}); None when none is
    registered or the file is unreadable (cheap: one small file)."""
    try:
        data = json.loads((kind_folder(REWARD, root) / REWARD_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _reward_files(root: Path | None) -> ScorerFiles:
    from generation.scoring.reward import reward_metadata

    folder = kind_folder(REWARD, root)
    if not folder.is_dir():
        raise ScorerUnavailable(f"No reward model is registered: no folder {folder} (a finished reward training "
                                "run registers one, or: manage.py register_reward_judge FILE)")
    model = folder / REWARD_FILE
    if not model.is_file():
        raise ScorerBroken(f"reward folder {folder} lacks {REWARD_FILE}")
    meta = reward_metadata(model)
    clip = open_clip_files(kind_folder(AESTHETIC, root), "The reward model")
    if file_sha256(clip[1]) != meta["open_clip_weights_sha256"]:
        raise ScorerBroken(f"the reward model was trained on other open_clip weights than the installed "
                           f"{clip[1]}: install those weights or register a reward model trained on these")
    return ScorerFiles(REWARD, folder, clip + (model,))


def open_clip_files(folder: Path, label: str) -> tuple[Path, Path]:
    if not folder.is_dir():
        raise ScorerUnavailable(f"{label} is not installed: no folder {folder} (it needs an open_clip checkpoint)")
    config = _first_present(folder, OPEN_CLIP_CONFIGS)
    if config is None:
        raise ScorerBroken(f"open_clip folder {folder} lacks a config ({' or '.join(OPEN_CLIP_CONFIGS)})")
    weights = _first_present(folder, OPEN_CLIP_WEIGHTS)
    if weights is None:
        raise ScorerBroken(f"open_clip folder {folder} lacks weights (one of {', '.join(OPEN_CLIP_WEIGHTS)})")
    return config, weights


def _first_present(folder: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


def read_ccip_threshold(metrics_json: Path) -> float:
    try:
        data = json.loads(metrics_json.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ScorerBroken(f"CCIP: {metrics_json} is not readable JSON ({exc})") from None
    threshold = data.get("threshold") if isinstance(data, dict) else None
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ScorerBroken(f"CCIP: {metrics_json} has no numeric \"threshold\"")
    return float(threshold)


def scorer_files(kind: str, root: Path | None = None) -> ScorerFiles:
    """The files of one scorer; raises :class:`ScorerUnavailable` / :class:`ScorerBroken` with a clear message."""
    if kind not in KINDS:
        raise ValueError(f"unknown scorer {kind!r}; choose from {', '.join(KINDS)}")
    folder = kind_folder(kind, root)
    if kind == CCIP:
        if not folder.is_dir():
            raise ScorerUnavailable(
                f"CCIP is not installed: no folder {folder} (it needs {', '.join(CCIP_FILES)} in the deepghs layout)"
            )
        missing = [name for name in CCIP_FILES if not (folder / name).is_file()]
        if missing:  # the folder is there, so the admin meant to install it: an error, not a skip
            raise ScorerBroken(f"CCIP folder {folder} lacks {', '.join(missing)}")
        threshold = read_ccip_threshold(folder / "metrics.json")
        return ScorerFiles(kind, folder, tuple(folder / name for name in CCIP_FILES), threshold)
    if kind == REWARD:
        return _reward_files(root)

    label = "Aesthetic score" if kind == AESTHETIC else "Prompt alignment"
    files = open_clip_files(folder, label)
    if kind == AESTHETIC:
        mlp = _first_present(folder, AESTHETIC_MLP)
        if mlp is None:
            raise ScorerUnavailable(
                f"Aesthetic score is not installed: {folder} lacks the MLP weights (one of {', '.join(AESTHETIC_MLP)})"
            )
        files = files + (mlp,)
    return ScorerFiles(kind, folder, files)


def scorer_state(kind: str, root: Path | None = None) -> ScorerState:
    folder = kind_folder(kind, root)
    try:
        found = scorer_files(kind, root)
    except ScorerUnavailable as exc:
        return ScorerState(kind, "missing", folder, str(exc))
    except ScorerBroken as exc:
        return ScorerState(kind, "broken", folder, str(exc))
    names = ", ".join(p.name for p in found.files)
    extra = f"; threshold {found.threshold:g}" if found.threshold is not None else ""
    return ScorerState(kind, "installed", folder, f"installed in {folder} ({names}{extra})")


def any_scorer_present(root: Path | None = None) -> bool:
    """Whether any scorer folder exists at all (cheap: no hashing, no loading)."""
    return any(kind_folder(kind, root).is_dir() for kind in (CCIP, AESTHETIC, REWARD))


_hash_cache: dict[tuple[str, int, int], str] = {}
_hash_lock = threading.Lock()


def file_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _hash_lock:
        cached = _hash_cache.get(key)
    if cached is not None:
        return cached
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    with _hash_lock:
        _hash_cache[key] = digest
    return digest


def files_hash(files: tuple[Path, ...]) -> str:
    """sha256 over the files' names and contents' sha256, in order: any new file content gives a new hash."""
    h = hashlib.sha256()
    for path in files:
        try:
            digest = file_sha256(path)
        except OSError as exc:
            raise ScorerUnavailable(f"cannot read scorer file {path}: {exc}") from None
        h.update(path.name.encode())
        h.update(b"\0")
        h.update(digest.encode())
        h.update(b"\n")
    return h.hexdigest()
