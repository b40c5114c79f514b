"""Writes of the scoring app: compute and store automatic scores, and enqueue scoring after generation.

The web tier imports this module; torch, open_clip and onnxruntime are only imported when scorers load
(``generation.scoring.scorers``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.db import transaction
from django.utils import timezone
from PIL import Image as PILImage

from generation.models import CharacterReference, Image
from generation.scoring.clipscore import clip_scores
from generation.scoring.files import (
    AESTHETIC,
    ALIGNMENT,
    CCIP,
    KINDS,
    REWARD,
    ScorerBroken,
    ScoringError,
    any_scorer_present,
    scorers_dir,
)
from generation.scoring.models import CcipFeature, ImageScore
from generation.scoring.scorers import LoadedScorers, scorers_load, scoring_batch_size

logger = logging.getLogger(__name__)


# --- computing scores --------------------------------------------------------------------------------------------

@dataclass
class ScoringReport:
    scored: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    up_to_date: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    images: int = 0
    batches: int = 0
    failed: list[tuple[str, int, str]] = field(default_factory=list)  # ("image" | "reference", id, message)
    notes: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"scored": self.scored, "up_to_date": self.up_to_date, "images": self.images,
                "batches": self.batches, "failed": [list(f) for f in self.failed], "notes": self.notes,
                "kinds": self.kinds}


def _open_image(field_file) -> PILImage.Image:
    with field_file.open("rb") as fh:
        image = PILImage.open(fh)
        image.load()
    return image


def _character_references() -> dict[int, list[int]]:
    refs: dict[int, list[int]] = defaultdict(list)
    for ref_id, character_id in CharacterReference.objects.order_by("id").values_list("id", "character_id"):
        refs[character_id].append(ref_id)
    return refs


def _needs(row: dict | None, kind: str, scorer_hash: str, ref_ids: list[int] | None) -> bool:
    if row is None or row["scorer_hash"] != scorer_hash:
        return True
    if kind == CCIP:
        stored = sorted(int(k) for k in (row["details"] or {}).get("differences", {}))
        return stored != sorted(ref_ids or [])
    return False


def scores_compute(
    *,
    image_ids: Iterable[int] | None = None,
    variant_name: str | None = None,
    kinds: Sequence[str] | None = None,
    missing_only: bool = False,
    batch_size: int | None = None,
    root: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> ScoringReport:
    """Score images (all, ``image_ids``, or those of the variant named ``variant_name``) with ``kinds``.

    ``missing_only``: only images without a score of the current scorer hash (or, for CCIP, whose character's
    references changed). Scorers load before anything is written (missing or broken files raise
    :class:`ScoringError`); each batch is computed in full and then written in one transaction, so a failure
    writes nothing of its batch. Images whose file cannot be read are reported in ``failed`` and skipped.
    """
    say = log or logger.info
    scorers = scorers_load(kinds=kinds, root=root)
    report = ScoringReport(notes=list(scorers.notes), kinds=scorers.kinds)
    for note in scorers.notes:
        say(note)

    images = Image.objects.all()
    if image_ids is not None:
        images = images.filter(id__in=list(image_ids))
    if variant_name is not None:
        images = images.filter(variant__name=variant_name)
    ids = list(images.order_by("id").values_list("id", flat=True))
    refs_by_character = _character_references()
    size = max(1, int(batch_size or scoring_batch_size()))
    for start in range(0, len(ids), size):
        chunk = ids[start:start + size]
        _score_batch(chunk, scorers, refs_by_character, missing_only, report, say)
        report.batches += 1
    say(f"scored {report.images} images in {report.batches} batches: "
        + ", ".join(f"{k} {report.scored[k]} new, {report.up_to_date[k]} up to date" for k in scorers.kinds))
    return report


Say = Callable[[str], None]


def _batch_todo(batch: list[Image], scorers: LoadedScorers, refs_by_character: dict[int, list[int]],
                missing_only: bool, report: ScoringReport) -> tuple[dict[str, list[Image]], list[int]]:
    """The images each scorer has to score in this batch, and the images whose CCIP score is stale (their
    prompt no longer names a character with references)."""
    existing = {
        (row["image_id"], row["kind"]): row
        for row in ImageScore.objects.filter(image_id__in=[i.id for i in batch], kind__in=scorers.kinds)
        .values("image_id", "kind", "scorer_hash", "details")
    }
    todo: dict[str, list[Image]] = {kind: [] for kind in scorers.kinds}
    stale_ccip: list[int] = []
    for image in batch:
        for kind in scorers.kinds:
            ref_ids = refs_by_character.get(image.prompt.character_id) if kind == CCIP else None
            if kind == CCIP and not ref_ids:
                if (image.id, CCIP) in existing:
                    stale_ccip.append(image.id)
                continue
            if missing_only and not _needs(existing.get((image.id, kind)), kind, scorers.hashes[kind], ref_ids):
                report.up_to_date[kind] += 1
                continue
            todo[kind].append(image)
    return todo, stale_ccip


def _pictures_read(needed: dict[int, Image], ccip_cached: dict[int, np.ndarray], clip_ids: set[int],
                   report: ScoringReport, say: Say) -> dict[int, PILImage.Image]:
    """The image files the scorers need; an unreadable one is reported and left out."""
    pictures: dict[int, PILImage.Image] = {}
    for image in needed.values():
        if image.id in ccip_cached and image.id not in clip_ids:
            continue  # only CCIP is wanted and its features are cached
        try:
            pictures[image.id] = _open_image(image.file)
        except Exception as exc:  # missing file, truncated PNG, storage error
            report.failed.append(("image", image.id, f"cannot read {image.file.name!r}: {exc}"))
            say(f"image {image.id}: cannot read {image.file.name!r}: {exc}")
    return pictures


def _clip_rows(todo: dict[str, list[Image]], clip_images: list[Image], pictures: dict[int, PILImage.Image],
               scorers: LoadedScorers, now) -> list[ImageScore]:
    """Aesthetic, prompt-alignment and reward-model scores, from one open_clip embedding per image."""
    rows: list[ImageScore] = []
    embeddings = dict(zip((i.id for i in clip_images),
                          scorers.clip.image_embeddings([pictures[i.id] for i in clip_images])))
    aesthetic_images = [i for i in todo.get(AESTHETIC, []) if i.id in embeddings]
    if aesthetic_images:
        values = scorers.aesthetic(np.stack([embeddings[i.id] for i in aesthetic_images]))
        rows += [ImageScore(image_id=i.id, kind=AESTHETIC, value=float(v), scorer_hash=scorers.hashes[AESTHETIC],
                            computed_at=now) for i, v in zip(aesthetic_images, values)]
    aligned = [i for i in todo.get(ALIGNMENT, []) if i.id in embeddings]
    rewarded = [i for i in todo.get(REWARD, []) if i.id in embeddings]
    texts = sorted({i.prompt.text for i in aligned + rewarded})
    text_emb = dict(zip(texts, scorers.clip.text_embeddings(texts))) if texts else {}
    if aligned:
        values = clip_scores(np.stack([embeddings[i.id] for i in aligned]),
                             np.stack([text_emb[i.prompt.text] for i in aligned]))
        rows += [ImageScore(image_id=i.id, kind=ALIGNMENT, value=float(v), scorer_hash=scorers.hashes[ALIGNMENT],
                            computed_at=now) for i, v in zip(aligned, values)]
    if rewarded:
        values = scorers.reward.score(np.stack([embeddings[i.id] for i in rewarded]),
                                      np.stack([text_emb[i.prompt.text] for i in rewarded]))
        rows += [ImageScore(image_id=i.id, kind=REWARD, value=float(v), scorer_hash=scorers.hashes[REWARD],
                            computed_at=now) for i, v in zip(rewarded, values)]
    return rows


def _scores_write(rows: list[ImageScore], new_features: list[CcipFeature], stale_ccip: list[int]) -> None:
    """One batch's scores and features, in one transaction (a non-finite score writes nothing)."""
    for row in rows:
        if not np.isfinite(row.value):
            raise ScorerBroken(f"{row.kind}: the scorer gave a non-finite value for image {row.image_id}")
    with transaction.atomic():
        if new_features:
            CcipFeature.objects.bulk_create(new_features, ignore_conflicts=True)
        if stale_ccip:
            ImageScore.objects.filter(image_id__in=stale_ccip, kind=CCIP).delete()
        if rows:
            ImageScore.objects.bulk_create(
                rows, update_conflicts=True, unique_fields=["image", "kind"],
                update_fields=["value", "same_ratio", "references", "details", "scorer_hash", "computed_at"],
            )


def _score_batch(chunk: list[int], scorers: LoadedScorers, refs_by_character: dict[int, list[int]],
                 missing_only: bool, report: ScoringReport, say: Say) -> None:
    batch = list(Image.objects.filter(id__in=chunk).select_related("prompt").order_by("id"))
    todo, stale_ccip = _batch_todo(batch, scorers, refs_by_character, missing_only, report)
    needed = {image.id: image for images in todo.values() for image in images}
    if not needed and not stale_ccip:
        return
    ccip_cached: dict[int, np.ndarray] = {}
    if todo.get(CCIP):
        ccip_cached = {
            f.image_id: f.as_array()
            for f in CcipFeature.objects.filter(image_id__in=[i.id for i in todo[CCIP]], scorer_hash=scorers.hashes[CCIP])
        }
    clip_ids = {i.id for k in (AESTHETIC, ALIGNMENT, REWARD) for i in todo.get(k, [])}
    pictures = _pictures_read(needed, ccip_cached, clip_ids, report, say)

    now = timezone.now()
    rows: list[ImageScore] = []
    new_features: list[CcipFeature] = []
    if todo.get(CCIP):
        ccip_images = [i for i in todo[CCIP] if i.id in pictures or i.id in ccip_cached]
        rows += _ccip_rows(ccip_images, scorers, refs_by_character, pictures, ccip_cached, new_features, report, say, now)
    clip_images = [i for i in needed.values() if i.id in clip_ids and i.id in pictures]
    if clip_images:
        rows += _clip_rows(todo, clip_images, pictures, scorers, now)
    _scores_write(rows, new_features, stale_ccip)
    for row in rows:
        report.scored[row.kind] += 1
    report.images += len({row.image_id for row in rows})


def _reference_features(images: list[Image], scorers: LoadedScorers, refs_by_character: dict[int, list[int]],
                        new_features: list[CcipFeature], report: ScoringReport, say: Say) -> dict[int, np.ndarray]:
    """CCIP features of the references of these images' characters: stored ones, the rest extracted now."""
    scorer_hash = scorers.hashes[CCIP]
    ref_ids = sorted({r for i in images for r in refs_by_character.get(i.prompt.character_id, [])})
    ref_features = {
        f.reference_id: f.as_array()
        for f in CcipFeature.objects.filter(reference_id__in=ref_ids, scorer_hash=scorer_hash)
    }
    missing_refs = [r for r in CharacterReference.objects.filter(id__in=ref_ids).order_by("id") if r.id not in ref_features]
    readable_refs, ref_pictures = [], []
    for ref in missing_refs:
        try:
            ref_pictures.append(_open_image(ref.image))
            readable_refs.append(ref)
        except Exception as exc:
            report.failed.append(("reference", ref.id, f"cannot read {ref.image.name!r}: {exc}"))
            say(f"reference {ref.id}: cannot read {ref.image.name!r}: {exc}")
    if readable_refs:
        for ref, vector in zip(readable_refs, scorers.ccip.features(ref_pictures)):
            ref_features[ref.id] = vector
            new_features.append(CcipFeature(reference_id=ref.id, scorer_hash=scorer_hash, dim=vector.shape[0],
                                            vector=CcipFeature.pack(vector)))
    return ref_features


def _ccip_rows(images: list[Image], scorers: LoadedScorers, refs_by_character: dict[int, list[int]],
               pictures: dict[int, PILImage.Image], cached: dict[int, np.ndarray], new_features: list[CcipFeature],
               report: ScoringReport, say: Say, now) -> list[ImageScore]:
    scorer_hash = scorers.hashes[CCIP]
    model = scorers.ccip
    threshold = scorers.ccip_threshold
    # Image features: cached ones, the rest extracted now in one pass.
    features = dict(cached)
    fresh = [i for i in images if i.id not in features]
    if fresh:
        for image, vector in zip(fresh, model.features([pictures[i.id] for i in fresh])):
            features[image.id] = vector
            new_features.append(CcipFeature(image_id=image.id, scorer_hash=scorer_hash, dim=vector.shape[0],
                                            vector=CcipFeature.pack(vector)))
    ref_features = _reference_features(images, scorers, refs_by_character, new_features, report, say)

    rows = []
    by_character: dict[int, list[Image]] = defaultdict(list)
    for image in images:
        by_character[image.prompt.character_id].append(image)
    for character_id, group in by_character.items():
        refs = [r for r in refs_by_character.get(character_id, []) if r in ref_features]
        if not refs:
            continue
        matrix = model.differences(np.stack([features[i.id] for i in group] + [ref_features[r] for r in refs]))
        block = matrix[: len(group), len(group):]
        for image, diffs in zip(group, block):
            diffs = [float(d) for d in diffs]
            same = sum(1 for d in diffs if d <= threshold)
            rows.append(ImageScore(
                image_id=image.id, kind=CCIP, value=float(np.mean(diffs)), same_ratio=same / len(diffs),
                references=len(diffs), scorer_hash=scorer_hash, computed_at=now,
                details={"threshold": threshold, "differences": {str(r): d for r, d in zip(refs, diffs)}},
            ))
    return rows


# --- the reward model as a judge -------------------------------------------------------------------------------

def reward_judge_register(*, path: str | Path, name: str = "", score_existing: bool = True,
                          root: Path | None = None) -> dict:
    """Make the reward model file at ``path`` (a reward training run's ``reward_model.safetensors``) the reward
    judge: checked, then copied with a judge.json into ``SCORERS_DIR/reward/`` (replacing the one before, so a new
    model gives a new scorer hash and images are scored again). With ``score_existing``, every image is queued for
    scoring (only what lacks a current score is computed). Returns ``selectors.reward_judge()``.

    Refused with :class:`ScorerBroken` (nothing installed) when the file is missing, is not a reward model, or was
    trained on other open_clip weights than the installed ``open_clip/`` ones; :class:`ScorerUnavailable` when no
    open_clip model is installed."""
    import json
    import os
    import shutil

    from generation.scoring import selectors
    from generation.scoring.files import REWARD_FILE, REWARD_INFO, open_clip_files, file_sha256, kind_folder
    from generation.scoring.reward import RewardHead, reward_metadata

    source = Path(path).expanduser()
    meta = reward_metadata(source)
    clip = open_clip_files(kind_folder(AESTHETIC, root), "The reward model's open_clip")
    if file_sha256(clip[1]) != meta["open_clip_weights_sha256"]:
        raise ScorerBroken(f"{source.name} was trained on other open_clip weights than the installed {clip[1]}; "
                           "train it on the installed open_clip model (or install the weights it was trained on)")
    RewardHead(source)  # loads: a truncated file is refused here, not at the first scoring
    folder = kind_folder(REWARD, root)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{REWARD_FILE}.{os.getpid()}.tmp"
    shutil.copyfile(source, tmp)
    os.replace(tmp, folder / REWARD_FILE)
    default_name = f"dataset {meta['dataset_sha256'][:12]}" if meta.get("dataset_sha256") else source.stem
    info = {"name": (name or "").strip()[:100] or default_name, "source": str(source.resolve()),
            "registered_at": timezone.now().isoformat(timespec="seconds"),
            "dataset_sha256": meta.get("dataset_sha256", ""), "vote_log_hash": meta.get("vote_log_hash", "")}
    tmp = folder / f".{REWARD_INFO}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(info, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, folder / REWARD_INFO)
    logger.info("scoring: reward judge %r registered from %s", info["name"], source)
    if score_existing:
        scores_enqueue_for_images(Image.objects.values_list("id", flat=True))
    return selectors.reward_judge(root=root)


# --- after a generation job ------------------------------------------------------------------------------------

def scores_enqueue_for_images(image_ids: Iterable[int]) -> None:
    """Score these images on the ``gpu`` queue, in batches, once the current transaction commits.

    Does nothing (one log line) when no scorer folder is installed. Workers score only what is missing for the
    current scorer files, so a redelivered or repeated task is harmless.
    """
    ids = sorted({int(i) for i in image_ids})
    if not ids:
        return
    if not any_scorer_present():
        logger.info("scoring: no scorer files in %s; %d new images left unscored", scorers_dir(), len(ids))
        return
    size = scoring_batch_size()
    chunks = [ids[i:i + size] for i in range(0, len(ids), size)]

    def send() -> None:
        from generation.scoring.tasks import score_images

        for chunk in chunks:
            score_images.delay(chunk)

    transaction.on_commit(send)


__all__ = [
    "LoadedScorers",
    "ScoringError",
    "reward_judge_register",
    "ScoringReport",
    "scorers_load",
    "scores_compute",
    "scores_enqueue_for_images",
]
