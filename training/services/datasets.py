"""Preference datasets from the vote log: counted votes, filtered, expanded into judged pairs, written as Parquet
(training.trainers.dataset's schema: Pick-a-Pic's ``jpg_0``, ``jpg_1``, ``label_0``, ``label_1``, ``caption`` plus the
settings columns).

Mapping (each vote's rows share its poll's prompt and settings; the two images of a row have the same settings):

* duel (fixed or free prompt): left/right → one ``pair`` row, weight 1; tie → one ``tie`` row (labels 0.5/0.5: the
  reward model reads it as 0.5, Diffusion-DPO drops it -- never counts it as a win); both bad → one ``both_bad``
  row (labels 0/0: two undesirable images for a KTO-style term, nothing for DPO);
* free-for-all, best only → the winner over each other image: 3 ``pair`` rows of weight 1/3;
* free-for-all, full ranking → every pair of the 4 images ordered by the ranking: 6 ``pair`` rows of weight 1/6.

Images are in screen order (image 0 = the left or lower position); the labels say which one was preferred.
Same vote log + same filters → the same bytes (the writer sorts rows canonically, nothing time-dependent is stored).
"""

from __future__ import annotations

import datetime as dt
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from arena.models import Mode, PollEntry, Vote
from arena.selectors.votelog import counted_votes, log_head
from generation.models import ModelVariant, PromptSet
from training.models import PreferenceDataset

MODES = tuple(Mode.values)  # fixed, free, ffa


@dataclass(frozen=True)
class DatasetFilters:
    """What goes in: counted votes of these modes, cast in [date_from, date_to] (UTC days, inclusive), on polls of
    these prompt sets, pairs whose both models are among ``models`` (empty: any), without votes flagged as too fast
    (counted anyway under COUNT_FAST_VOTES) and, with ``exclude_flagged_voters``, without any vote of a voter who
    has a flagged vote. Votes of voters an admin excluded never count (the counted log leaves them out)."""

    modes: tuple[str, ...] = MODES
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    models: tuple[int, ...] = ()
    prompt_sets: tuple[int, ...] = ()
    exclude_flagged: bool = True
    exclude_flagged_voters: bool = False

    def as_dict(self) -> dict:
        return {"modes": sorted(self.modes), "date_from": self.date_from.isoformat() if self.date_from else None,
                "date_to": self.date_to.isoformat() if self.date_to else None, "models": sorted(self.models),
                "prompt_sets": sorted(self.prompt_sets), "exclude_flagged": self.exclude_flagged,
                "exclude_flagged_voters": self.exclude_flagged_voters, "exclude_excluded_voters": True}


def filters_clean(*, modes: Sequence[str] | None = None, date_from: dt.date | None = None,
                  date_to: dt.date | None = None, models: Sequence[int] = (), prompt_sets: Sequence[int] = (),
                  exclude_flagged: bool = True, exclude_flagged_voters: bool = False) -> DatasetFilters:
    """Checked filters; ValidationError (by field) for an unknown mode, model or prompt set, or dates backwards."""
    errors: dict[str, list[str]] = {}
    chosen = tuple(sorted(set(modes or MODES)))
    if bad := [m for m in chosen if m not in MODES]:
        errors["modes"] = [f"unknown mode(s) {', '.join(bad)}: use {', '.join(MODES)}"]
    if date_from and date_to and date_from > date_to:
        errors["date_to"] = [f"the date range ends ({date_to}) before it starts ({date_from})"]
    model_ids = tuple(sorted({int(m) for m in models}))
    if missing := sorted(set(model_ids) - set(ModelVariant.objects.filter(id__in=model_ids).values_list("id", flat=True))):
        errors["models"] = [f"no model with id {', '.join(map(str, missing))}"]
    set_ids = tuple(sorted({int(p) for p in prompt_sets}))
    if missing := sorted(set(set_ids) - set(PromptSet.objects.filter(id__in=set_ids).values_list("id", flat=True))):
        errors["prompt_sets"] = [f"no prompt set with id {', '.join(map(str, missing))}"]
    if errors:
        raise ValidationError(errors)
    return DatasetFilters(modes=chosen, date_from=date_from, date_to=date_to, models=model_ids, prompt_sets=set_ids,
                          exclude_flagged=exclude_flagged, exclude_flagged_voters=exclude_flagged_voters)


@dataclass
class Expansion:
    rows: list = field(default_factory=list)  # training.trainers.dataset.PreferenceRow
    votes: dict = field(default_factory=lambda: defaultdict(int))  # votes used per source mode
    skipped: dict = field(default_factory=lambda: defaultdict(int))  # votes or pairs left out, by reason


def _votes(filters: DatasetFilters):
    votes = counted_votes().filter(mode__in=filters.modes)
    if filters.date_from:
        votes = votes.filter(created_at__date__gte=filters.date_from)
    if filters.date_to:
        votes = votes.filter(created_at__date__lte=filters.date_to)
    if filters.prompt_sets:
        votes = votes.filter(poll__prompt__prompt_set_id__in=filters.prompt_sets)
    if filters.exclude_flagged:
        votes = votes.filter(flagged=False)
    if filters.exclude_flagged_voters:
        votes = votes.exclude(voter_key__in=Vote.objects.filter(flagged=True).values("voter_key"))
    return votes.select_related("poll__prompt").order_by("seq")


def source_mode(vote: Vote) -> str:
    if vote.mode == Mode.FFA:
        return "ffa_ranking" if vote.full_ranking else "ffa_best"
    return f"{vote.mode}_duel"


def _image_bytes(image, cache: dict) -> bytes:
    if image.pk not in cache:
        stored = image.voter_file if image.voter_file else image.file  # what voters saw, without its metadata
        with stored.open("rb") as fh:
            cache[image.pk] = fh.read()
    return cache[image.pk]


def _judged_pairs(vote: Vote, n: int) -> list[tuple[int, int, str, float]]:
    """(position a, position b, kind, weight) of a vote; for a "pair", a is the preferred one."""
    ranks = list(vote.ranks)
    if vote.mode in (Mode.FIXED, Mode.FREE):
        if vote.choice == Vote.Choice.TIE:
            return [(0, 1, "tie", 1.0)]
        if vote.choice == Vote.Choice.BOTH_BAD:
            return [(0, 1, "both_bad", 1.0)]
        return [(0, 1, "pair", 1.0)] if ranks[0] < ranks[1] else [(1, 0, "pair", 1.0)]
    if vote.full_ranking:
        pairs = list(combinations(range(n), 2))
        return [((a, b) if ranks[a] < ranks[b] else (b, a)) + ("pair", 1.0 / len(pairs)) for a, b in pairs]
    best = ranks.index(0)
    others = [i for i in range(n) if i != best]
    return [(best, other, "pair", 1.0 / len(others)) for other in others]


def dataset_expand(*, filters: DatasetFilters) -> Expansion:
    """The dataset rows of the counted votes that ``filters`` let through (see the module docstring)."""
    from training.trainers.dataset import PreferenceRow

    out = Expansion()
    votes = list(_votes(filters))
    entries: dict[int, dict[int, PollEntry]] = defaultdict(dict)
    for entry in PollEntry.objects.filter(poll_id__in=[v.poll_id for v in votes]).select_related("image"):
        entries[entry.poll_id][entry.position] = entry
    cache: dict[int, bytes] = {}
    allowed = set(filters.models)
    for vote in votes:
        slots = entries.get(vote.poll_id, {})
        n = len(vote.variants)
        if sorted(slots) != list(range(n)) or any(slots[i].image is None for i in range(n)):
            out.skipped["images_missing"] += 1
            continue
        mode = source_mode(vote)
        used = False
        for a, b, kind, weight in _judged_pairs(vote, n):
            first, second = slots[min(a, b)].image, slots[max(a, b)].image  # screen order
            if allowed and not {first.variant_id, second.variant_id} <= allowed:
                out.skipped["models_filtered"] += 1
                continue
            if first.settings_key != second.settings_key:
                out.skipped["settings_differ"] += 1
                continue
            labels = {"pair": (1.0, 0.0) if a < b else (0.0, 1.0), "tie": (0.5, 0.5), "both_bad": (0.0, 0.0)}[kind]
            s = first.sampler_settings
            out.rows.append(PreferenceRow(
                jpg_0=_image_bytes(first, cache), jpg_1=_image_bytes(second, cache), label_0=labels[0],
                label_1=labels[1], caption=vote.poll.prompt.text, poll_id=vote.poll_id, kind=kind, weight=weight,
                source_mode=mode, negative_prompt=s.negative_prompt, seed=int(s.seed), sampler=s.sampler,
                schedule_type=s.schedule_type, steps=int(s.steps), cfg_scale=float(s.cfg_scale), width=int(s.width),
                height=int(s.height), clip_skip=int(s.clip_skip)))
            used = True
        if used:
            out.votes[mode] += 1
    return out


def dataset_write(*, filters: DatasetFilters, path: str | os.PathLike) -> tuple[object, Expansion, tuple[int, str]]:
    """Write the filtered votes' rows to ``path`` (any path: the command's ``--out``); (DatasetInfo, expansion,
    (log seq, head hash)). The head is read before the votes, so the file never claims a log newer than its rows."""
    from training.trainers.dataset import write_dataset
    from training.trainers.errors import TrainingError

    head = log_head()
    expansion = dataset_expand(filters=filters)
    try:
        info = write_dataset(expansion.rows, path, vote_log_hash=head[1], filters=filters.as_dict())
    except TrainingError as exc:
        raise ValidationError(str(exc)) from None
    return info, expansion, head


def datasets_dir() -> Path:
    return Path(settings.TRAINING_DIR) / "datasets"


def dataset_build(*, filters: DatasetFilters, name: str = "", created_by=None) -> PreferenceDataset:
    """Build a dataset under TRAINING_DIR and record it; ValidationError when no vote gives a row."""
    folder = datasets_dir()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".building-{os.getpid()}-{os.urandom(4).hex()}.parquet"
    try:
        info, expansion, head = dataset_write(filters=filters, path=tmp)
        if not expansion.rows:
            raise ValidationError("no counted vote matches these filters: the dataset would be empty")
        final = folder / f"{info.sha256[:16]}.parquet"
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    with transaction.atomic():
        dataset = PreferenceDataset.objects.create(
            name=(name or "").strip()[:200], path=str(final), sha256=info.sha256, rows=info.rows,
            vote_log_hash=head[1], vote_log_seq=head[0], filters=filters.as_dict(), counts=info.counts,
            polls={"votes": dict(sorted(expansion.votes.items())), "skipped": dict(sorted(expansion.skipped.items()))},
            created_by=created_by if getattr(created_by, "pk", None) else None)
    return dataset
