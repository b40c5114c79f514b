"""Which fixed prompts each model has images for, kept in memory so issuing a poll needs no scan of the
image table. A fixed-prompt "group" is a prompt with one seed and settings (``settings_key``); the images of a
group share their pixel size. The index is rebuilt when an image is added or removed (a version number in
the cache, so every web process notices) and at least every ``TTL`` seconds."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from django.core.cache import cache
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from generation.models import Image, Prompt

VERSION_KEY = "arena:fixed-groups-version"
TTL = 60.0
Group = tuple[int, str]  # (prompt_id, settings_key)


@dataclass
class GroupIndex:
    version: int
    built_at: float
    by_variant: dict[int, frozenset[Group]] = field(default_factory=dict)
    images: dict[Group, dict[int, int]] = field(default_factory=dict)  # group -> {variant_id: image_id}

    def common(self, variant_ids: list[int]) -> set[Group]:
        sets = [self.by_variant.get(v, frozenset()) for v in variant_ids]
        sets.sort(key=len)
        out = set(sets[0])
        for s in sets[1:]:
            out &= s
        return out


_lock = threading.Lock()
_current: GroupIndex | None = None


def _version() -> int:
    return cache.get(VERSION_KEY) or 0


def index() -> GroupIndex:
    global _current
    version = _version()
    current = _current
    if current is not None and current.version == version and time.monotonic() - current.built_at < TTL:
        return current
    with _lock:
        current = _current
        if current is not None and current.version == version and time.monotonic() - current.built_at < TTL:
            return current
        built = GroupIndex(version=version, built_at=time.monotonic())
        by_variant: dict[int, set[Group]] = {}
        rows = Image.objects.filter(prompt__source=Prompt.Source.FIXED).values_list("id", "variant_id", "prompt_id", "settings_key")
        for image_id, variant_id, prompt_id, key in rows.iterator(chunk_size=10_000):
            group = (prompt_id, key)
            built.images.setdefault(group, {})[variant_id] = image_id
            by_variant.setdefault(variant_id, set()).add(group)
        built.by_variant = {v: frozenset(g) for v, g in by_variant.items()}
        _current = built
        return built


def invalidate() -> None:
    try:
        cache.incr(VERSION_KEY)
    except ValueError:
        cache.set(VERSION_KEY, 1, timeout=None)
    global _current
    _current = None


@receiver(post_save, sender=Image, dispatch_uid="arena_fixed_groups_image_saved")
@receiver(post_delete, sender=Image, dispatch_uid="arena_fixed_groups_image_deleted")
def _image_changed(sender, **kwargs) -> None:
    invalidate()
