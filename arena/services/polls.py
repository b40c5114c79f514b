"""Issuing polls: fixed-prompt duels and free-for-all polls of pre-generated images, free-prompt duels generated
live, and the state of a generating poll."""

from __future__ import annotations

import datetime as dt
import random
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from arena import pollgroups, selectors
from arena.errors import NoPollAvailable, PromptRejected
from arena.models import Mode, Poll, PollEntry
from arena.services.prompts import free_prompt_clean, with_rating_token
from generation import services as generation_services
from generation.models import GenerationTask, Image, ModelVariant, Prompt
from ratings import matchmaking

_rng = random.SystemRandom()


def _entries_needed(mode: str) -> int:
    return 4 if mode == Mode.FFA else 2


def _pick(*, mode: str, candidates: list[matchmaking.Candidate], k: int, rng: random.Random) -> list[int]:
    try:
        return matchmaking.pick(settings.MATCHMAKING_STRATEGY, candidates, k, rng)
    except matchmaking.NotEnoughModels:
        raise NoPollAvailable(
            f"Not enough models are ready for a {Mode(mode).label} yet ({len(candidates)} available, {k} needed)."
        ) from None


def poll_create(*, mode: str, voter_key: str, ip_hash: str, rng: random.Random | None = None) -> Poll:
    """Issue a fixed-prompt duel or a free-for-all poll of pre-generated images to one voter.

    The matchmaker picks the models among the enabled, healthy ones that have fixed-prompt images; then a
    random prompt, seed and settings that all of them have images for is shown."""
    if mode not in (Mode.FIXED, Mode.FFA):
        raise ValueError(f"poll_create makes fixed-prompt duels and free-for-all polls, not {mode!r}")
    rng = rng or _rng
    k = _entries_needed(mode)
    groups = pollgroups.index()
    candidates = [c for c in selectors.matchmaking_candidates(scope=mode) if c.id in groups.by_variant]
    picked: list[int] = []
    common: set = set()
    for _attempt in range(6):
        picked = _pick(mode=mode, candidates=candidates, k=k, rng=rng)
        common = groups.common(picked)
        if common:
            break
        # The matchmaker's choice shares no prompt: narrow to the models of one of its pivot's prompts that
        # enough models have, or, when the pivot has none, leave the pivot out.
        allowed = {c.id for c in candidates}
        pivot_groups = [g for g in groups.by_variant.get(picked[0], ()) if len(allowed & groups.images[g].keys()) >= k]
        if pivot_groups:
            members = allowed & groups.images[rng.choice(pivot_groups)].keys()
            candidates = [c for c in candidates if c.id in members]
        else:
            candidates = [c for c in candidates if c.id != picked[0]]
        if len(candidates) < k:
            break
    if not common:
        raise NoPollAvailable("No prompt has images from enough models yet; ask an admin to run a generation job.")
    group = rng.choice(list(common))
    image_ids = [groups.images[group][v] for v in picked]
    images = {i.variant_id: i for i in Image.objects.filter(id__in=image_ids).select_related("prompt")}
    if len(images) != k or len({(i.width, i.height) for i in images.values()}) != 1:
        pollgroups.invalidate()  # the index was stale: an image went away
        raise NoPollAvailable("The images of this poll changed just now; try again.")
    rng.shuffle(picked)
    anchor = images[picked[0]]
    now = timezone.now()
    with transaction.atomic():
        poll = Poll.objects.create(
            mode=mode, voter_key=voter_key, ip_hash=ip_hash, prompt_id=anchor.prompt_id, settings_key=anchor.settings_key,
            status=Poll.Status.READY, shown_at=now, expires_at=now + dt.timedelta(seconds=settings.POLL_TTL_SECONDS),
        )
        entries = PollEntry.objects.bulk_create(
            [PollEntry(poll=poll, position=i, variant_id=v, image=images[v]) for i, v in enumerate(picked)]
        )
    poll.prompt = anchor.prompt
    poll.issued_entries = entries  # what the page shows, without reading it back
    return poll


def free_poll_create(
    *, voter_key: str, ip_hash: str, prompt_text: str | None = None, prompt_id: int | None = None,
    rng: random.Random | None = None,
) -> Poll:
    """Start a free-prompt duel: the voter's prompt (or one from the pool) is generated live by two models."""
    rng = rng or _rng
    if prompt_id is not None:
        prompt = selectors.free_prompt_from_pool(prompt_id)
        if prompt is None:
            raise PromptRejected("That prompt is not in the pool.")
    else:
        text = with_rating_token(free_prompt_clean(prompt_text or ""))
        prompt = None
    picked = _pick(mode=Mode.FREE, candidates=selectors.matchmaking_candidates(scope=Mode.FREE, generating=True), k=2, rng=rng)
    rng.shuffle(picked)
    variants = {v.id: v for v in ModelVariant.objects.filter(id__in=picked)}
    ordered = [variants[v] for v in picked]
    sizes = {(v.width, v.height) for v in ordered}
    width, height = sizes.pop() if len(sizes) == 1 else (settings.FREE_PROMPT_WIDTH, settings.FREE_PROMPT_HEIGHT)
    now = timezone.now()
    with transaction.atomic():
        if prompt is None:
            prompt = Prompt.objects.create(text=text, negative_prompt=settings.FREE_PROMPT_NEGATIVE, source=Prompt.Source.FREE)
        try:
            tasks = generation_services.tasks_create_live(
                prompt=prompt, variants=ordered, seed=secrets.randbelow(2**32), width=width, height=height
            )
        except ValidationError as exc:
            raise NoPollAvailable("These models cannot generate right now: " + "; ".join(exc.messages)) from None
        poll = Poll.objects.create(
            mode=Mode.FREE, voter_key=voter_key, ip_hash=ip_hash, prompt=prompt, status=Poll.Status.GENERATING,
            settings_key="", expires_at=now + dt.timedelta(seconds=settings.FREE_PROMPT_TIMEOUT_SECONDS + settings.POLL_TTL_SECONDS),
        )
        PollEntry.objects.bulk_create(
            [PollEntry(poll=poll, position=i, variant=v, task=t) for i, (v, t) in enumerate(zip(ordered, tasks))]
        )
    return poll_refresh(poll=poll)


def poll_refresh(*, poll: Poll) -> Poll:
    """Move a generating poll on: ready once every image exists (then the clock for the vote starts), failed
    when a generation failed or took too long. A failed poll takes no vote."""
    if poll.status != Poll.Status.GENERATING:
        return poll
    entries = list(poll.entries.select_related("task"))
    tasks = [e.task for e in entries]
    now = timezone.now()
    failed = [t for t in tasks if t is None or t.status in (GenerationTask.Status.FAILED, GenerationTask.Status.CANCELLED)]
    if failed:
        reason = next((t.error for t in failed if t is not None and t.error), "") or "a model could not generate it"
        return _poll_fail(poll, f"Generation failed ({reason}). This poll is not counted; try another prompt.")
    if all(t.status == GenerationTask.Status.DONE and t.image_id for t in tasks):
        images = {i.id: i for i in Image.objects.filter(id__in=[t.image_id for t in tasks])}
        if len({(i.width, i.height) for i in images.values()}) != 1:
            return _poll_fail(poll, "The generated images differ in size; this poll is not counted.")
        with transaction.atomic():
            updated = Poll.objects.filter(id=poll.id, status=Poll.Status.GENERATING).update(
                status=Poll.Status.READY, shown_at=now, expires_at=now + dt.timedelta(seconds=settings.POLL_TTL_SECONDS)
            )
            if updated:
                for entry in entries:
                    PollEntry.objects.filter(id=entry.id).update(image_id=entry.task.image_id)
        poll.refresh_from_db()
        return poll
    if now - poll.created_at > dt.timedelta(seconds=settings.FREE_PROMPT_TIMEOUT_SECONDS):
        GenerationTask.objects.filter(id__in=[t.id for t in tasks], status=GenerationTask.Status.PENDING).update(
            status=GenerationTask.Status.CANCELLED, error="the voter's duel timed out"
        )
        return _poll_fail(poll, "Generation took too long. This poll is not counted; try again.")
    return poll


def _poll_fail(poll: Poll, message: str) -> Poll:
    Poll.objects.filter(id=poll.id, status=Poll.Status.GENERATING).update(status=Poll.Status.FAILED, error=message[:500])
    poll.refresh_from_db()
    return poll

