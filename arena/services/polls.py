"""Issuing polls: fixed-prompt duels and free-for-all polls of pre-generated images, free-prompt duels generated
live, and the state of a generating poll."""

from __future__ import annotations

import datetime as dt
import random
import secrets
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from arena import matchmaking, pollgroups, polltickets, selectors
from arena.errors import NoPollAvailable, PollNotFound, PromptRejected
from arena.models import Mode, Poll, PollEntry
from arena.polltickets import PollTicket
from arena.services.prompts import free_prompt_clean, with_rating_token
from generation import services as generation_services
from generation.models import GenerationTask, Image, ModelVariant, Prompt

_rng = random.SystemRandom()


def _entries_needed(mode: str) -> int:
    return 4 if mode == Mode.FFA else 2


@dataclass(frozen=True)
class ShownImage:
    width: int
    height: int


@dataclass(frozen=True)
class ShownEntry:
    """One image slot of an issued poll: its screen position and image (the model stays on the ticket)."""

    position: int
    image_id: int
    image: ShownImage


@dataclass(frozen=True)
class ShownPrompt:
    id: int
    text: str


@dataclass(frozen=True)
class IssuedPoll:
    """A fixed-prompt duel or free-for-all poll as issued: nothing about it is in the database until the vote.
    The page shows ``prompt`` and ``entries``; ``token`` (the encrypted ticket) is in every URL of the poll."""

    ticket: PollTicket
    token: str  # the ticket, encrypted once: every URL of the poll carries this same string
    prompt: ShownPrompt
    entries: tuple[ShownEntry, ...]
    status: str = "ready"

    @property
    def mode(self) -> str:
        return self.ticket.mode


def poll_create(*, mode: str, voter_key: str, ip_hash: str = "", rng: random.Random | None = None,
                now: dt.datetime | None = None) -> IssuedPoll:
    """Issue a fixed-prompt duel or a free-for-all poll of pre-generated images to one voter, writing nothing:
    the poll is a ticket (:mod:`arena.polltickets`) in its URLs until the vote stores it.

    The models are drawn among the enabled, healthy ones with fixed-prompt images, then a prompt, seed and
    settings they all have images for, never one whose image of a model was revealed to this voter before."""
    if mode not in (Mode.FIXED, Mode.FFA):
        raise ValueError(f"poll_create makes fixed-prompt duels and free-for-all polls, not {mode!r}")
    rng = rng or _rng
    drawn = matchmaking.draw_fixed(mode=mode, voter_key=voter_key, rng=rng)
    groups = pollgroups.index()
    group, picked = drawn.group, list(drawn.models)  # already in a random screen order
    image_ids = [groups.images[group][v] for v in picked]
    infos = [groups.info[i] for i in image_ids]
    if len({(i.width, i.height) for i in infos}) != 1:
        raise NoPollAvailable("The images of this prompt differ in size; ask an admin to check the generation job.")
    ticket = PollTicket(nonce=uuid.uuid4(), voter_key=voter_key, mode=mode, image_ids=tuple(image_ids),
                        issued_at=now or timezone.now(), propensity=drawn.probability)
    matchmaking.pending_add(mode, ticket.nonce, drawn.models)
    entries = tuple(ShownEntry(position=i, image_id=info.id, image=ShownImage(info.width, info.height))
                    for i, info in enumerate(infos))
    return IssuedPoll(ticket=ticket, token=polltickets.encode(ticket), prompt=ShownPrompt(group[0], groups.prompts.get(group[0], "")),
                      entries=entries)


def issued_poll(ticket: PollTicket, token: str) -> IssuedPoll:
    """The page of a ticket's poll again (a reload of its URL, ``token``)."""
    groups = pollgroups.index()
    infos = [groups.info.get(i) for i in ticket.image_ids]
    if any(info is None for info in infos):
        raise PollNotFound("The images of this poll are gone; here is a new one.")
    prompt_id = infos[0].group[0]
    entries = tuple(ShownEntry(position=i, image_id=info.id, image=ShownImage(info.width, info.height))
                    for i, info in enumerate(infos))
    return IssuedPoll(ticket=ticket, token=token, prompt=ShownPrompt(prompt_id, groups.prompts.get(prompt_id, "")),
                      entries=entries)


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
    drawn = matchmaking.draw_live(rng=rng)
    picked = list(drawn.models)  # in a random screen order
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
            settings_key="", propensity=drawn.probability, expires_at=now + dt.timedelta(seconds=settings.FREE_PROMPT_TIMEOUT_SECONDS + settings.POLL_TTL_SECONDS),
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
    if now > poll.expires_at:  # never ready after its time: a poll past expiry stays closed (the anonymity rule relies on it)
        generation_services.tasks_cancel(task_ids=[t.id for t in tasks if t], error="the voter's duel expired")
        return _poll_fail(poll, "This duel expired before its images were shown. It is not counted; try again.")
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
        generation_services.tasks_cancel(task_ids=[t.id for t in tasks], error="the voter's duel timed out")
        return _poll_fail(poll, "Generation took too long. This poll is not counted; try again.")
    return poll


def _poll_fail(poll: Poll, message: str) -> Poll:
    Poll.objects.filter(id=poll.id, status=Poll.Status.GENERATING).update(status=Poll.Status.FAILED, error=message[:500])
    poll.refresh_from_db()
    return poll

