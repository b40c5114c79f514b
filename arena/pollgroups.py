"""Which fixed prompts each model has images for, kept in memory so issuing a poll needs no scan of the
image table. A fixed-prompt "group" is a prompt with one seed and settings (``settings_key``); the images of a
group share their pixel size.

Every process keeps its own snapshot and checks at most every ``CHECK_SECONDS`` whether the fixed-prompt
images changed (one aggregate query: their count and largest id), and rebuilds at least every ``TTL`` seconds
(an image replaced in place keeps both). No hook on image writes is needed, and nothing here holds a lock while
it talks to the database (a lock held across a query can hang a worker whose connection is busy)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from django.db.models import Count, Max

from arena.permissions import poll_pool_q  # the pool is defined once, beside the rule that hides it
from generation.models import Image, ModelVariant, Prompt

TTL = 60.0
CHECK_SECONDS = 2.0
Group = tuple[int, str]  # (prompt_id, settings_key)


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What a poll page and its image URLs need of an image, without a query."""

    id: int
    variant_id: int
    group: Group
    voter_file: str  # storage name of the metadata-free copy voters see
    width: int
    height: int


@dataclass
class GroupIndex:
    fingerprint: tuple[int, int]
    built_at: float
    checked_at: float
    by_variant: dict[int, frozenset[Group]] = field(default_factory=dict)
    images: dict[Group, dict[int, int]] = field(default_factory=dict)  # group -> {variant_id: image_id}
    info: dict[int, ImageInfo] = field(default_factory=dict)  # image id -> what pages need
    prompts: dict[int, str] = field(default_factory=dict)  # prompt id -> text
    names: dict[int, str] = field(default_factory=dict)  # model id -> name (shown at the reveal)

    def common(self, variant_ids: list[int]) -> set[Group]:
        sets = [self.by_variant.get(v, frozenset()) for v in variant_ids]
        sets.sort(key=len)
        out = set(sets[0])
        for s in sets[1:]:
            out &= s
        return out


_lock = threading.Lock()  # guards only the swap of ``_current``, never a query
_current: GroupIndex | None = None


def _fixed_images():
    return Image.objects.filter(poll_pool_q())  # fixed-prompt images, less the admin's showcase picks


def _fingerprint() -> tuple[int, int]:
    agg = _fixed_images().aggregate(n=Count("id"), m=Max("id"))
    return int(agg["n"] or 0), int(agg["m"] or 0)


def _build(fingerprint: tuple[int, int], now: float) -> GroupIndex:
    built = GroupIndex(fingerprint=fingerprint, built_at=now, checked_at=now)
    by_variant: dict[int, set[Group]] = {}
    rows = _fixed_images().values_list("id", "variant_id", "prompt_id", "settings_key", "voter_file", "width", "height")
    for image_id, variant_id, prompt_id, key, voter_file, width, height in list(rows):
        group = (prompt_id, key)
        built.images.setdefault(group, {})[variant_id] = image_id
        built.info[image_id] = ImageInfo(image_id, variant_id, group, voter_file, width, height)
        by_variant.setdefault(variant_id, set()).add(group)
    built.by_variant = {v: frozenset(g) for v, g in by_variant.items()}
    used = {g[0] for g in built.images}
    built.prompts = {i: text for i, text in Prompt.objects.filter(source=Prompt.Source.FIXED).values_list("id", "text")
                     if i in used}
    built.names = dict(ModelVariant.objects.values_list("id", "name"))
    return built


def index() -> GroupIndex:
    global _current
    current = _current
    now = time.monotonic()
    if current is not None and now - current.checked_at < CHECK_SECONDS:
        return current
    fingerprint = _fingerprint()
    if current is not None and current.fingerprint == fingerprint and now - current.built_at < TTL:
        current.checked_at = now
        return current
    built = _build(fingerprint, now)
    with _lock:
        _current = built
    return built


def voter_file(image_ids, position: int) -> str | None:
    """The storage name of the voter copy shown at ``position`` of a poll of ``image_ids``; None when there is
    no such place or the image is not in the index (gone)."""
    if not 0 <= position < len(image_ids):
        return None
    info = index().info.get(image_ids[position])
    return None if info is None else info.voter_file


def invalidate() -> None:
    """Forget this process's snapshot (the next poll rebuilds it)."""
    global _current
    with _lock:
        _current = None
