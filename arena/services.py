"""Writes of the voting domain: issuing polls, casting votes (with the live rating update in the same
transaction) and rebuilding every rating from the vote log."""

from __future__ import annotations

import datetime as dt
import random
import re
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from arena import pollgroups, selectors
from arena.errors import (
    InvalidChoice,
    NoPollAvailable,
    PollExpired,
    PollForbidden,
    PollNotFound,
    PollNotReady,
    PromptRejected,
)
from arena.models import Mode, Poll, PollEntry, Rating, Scope, Vote
from arena.rating_settings import elo_params, trueskill_params
from ratings import matchmaking
from ratings.online import elo_update, trueskill_update
from ratings.outcomes import Outcome, pairwise
from generation.models import GenerationTask, Image, ModelVariant, Prompt

_rng = random.SystemRandom()
ONE_MICROSECOND = dt.timedelta(microseconds=1)
DUEL_CHOICES = {
    Vote.Choice.LEFT: (0, 1),
    Vote.Choice.RIGHT: (1, 0),
    Vote.Choice.TIE: (0, 0),
    Vote.Choice.BOTH_BAD: (0, 0),
}
RATING_TOKENS = ("general", "sensitive", "questionable", "explicit", "nsfw")
# A prompt may hold Danbooru emoticon tags such as ">_<", but nothing that reads as an HTML tag or entity.
_MARKUP = re.compile(r"<\s*/?\s*[a-zA-Z!?]|&[#a-zA-Z0-9]+;|javascript:", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


# --- polls ----------------------------------------------------------------------------------------------------


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


def free_prompt_clean(text: str) -> str:
    """Validate a voter's prompt; return it stripped or raise PromptRejected with the reason."""
    if not isinstance(text, str):
        raise PromptRejected("Type a prompt.")
    text = text.strip()
    if not text:
        raise PromptRejected("Type a prompt.")
    if len(text) > settings.FREE_PROMPT_MAX_CHARS:
        raise PromptRejected(f"The prompt is too long ({len(text)} characters; at most {settings.FREE_PROMPT_MAX_CHARS}).")
    if _CONTROL.search(text):
        raise PromptRejected("The prompt contains control characters.")
    if _MARKUP.search(text):
        raise PromptRejected("The prompt contains markup; write tags or plain words.")
    lowered = text.lower()
    for word in settings.FREE_PROMPT_BLOCKLIST:
        if re.search(rf"(?<![\w]){re.escape(word.lower())}(?![\w])", lowered):
            raise PromptRejected("This prompt is not allowed here.")
    return text


def _with_rating_token(text: str) -> str:
    token = settings.FREE_PROMPT_RATING_TOKEN
    if not token:
        return text
    tags = {tag.strip().lower() for tag in re.split(r"[,\n]", text)}
    if tags & set(RATING_TOKENS):
        return text
    return f"{text}, {token}"


def free_poll_create(
    *, voter_key: str, ip_hash: str, prompt_text: str | None = None, prompt_id: int | None = None,
    rng: random.Random | None = None,
) -> Poll:
    """Start a free-prompt duel: the voter's prompt (or one from the pool) is generated live by two models."""
    from generation import services as generation_services

    rng = rng or _rng
    if prompt_id is not None:
        prompt = selectors.free_prompt_from_pool(prompt_id)
        if prompt is None:
            raise PromptRejected("That prompt is not in the pool.")
    else:
        text = _with_rating_token(free_prompt_clean(prompt_text or ""))
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


# --- votes ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VoteResult:
    vote: Vote
    replayed: bool  # True when this request repeated an earlier one: nothing was counted again
    poll: Poll
    entries: list[PollEntry]  # in screen order, with their models and images, for the reveal


def _ranks_for(poll: Poll, n: int, choice: str, best: int | None, ranking: list[int] | None) -> tuple[str, tuple[int, ...], bool]:
    if poll.mode in (Mode.FIXED, Mode.FREE):
        if choice not in DUEL_CHOICES:
            raise InvalidChoice("Choose left, right, tie or both bad.")
        if poll.mode == Mode.FREE and (
            (choice == Vote.Choice.TIE and not settings.FREE_DUEL_ALLOW_TIE)
            or (choice == Vote.Choice.BOTH_BAD and not settings.FREE_DUEL_ALLOW_BOTH_BAD)
        ):
            raise InvalidChoice("This duel takes left or right only.")
        return choice, DUEL_CHOICES[choice], False
    if choice == Vote.Choice.BEST:
        if best is None or not 0 <= best < n:
            raise InvalidChoice(f"Pick one of the {n} images.")
        return choice, tuple(0 if i == best else 1 for i in range(n)), False
    if choice == Vote.Choice.RANKING:
        if ranking is None or sorted(ranking) != list(range(n)):
            raise InvalidChoice(f"A ranking lists each of the {n} images once, best first.")
        ranks = [0] * n
        for place, position in enumerate(ranking):
            ranks[position] = place
        return choice, tuple(ranks), True
    raise InvalidChoice("Pick the best image, or rank all four.")


def vote_cast(
    *, poll_token: str, voter_key: str, ip_hash: str, choice: str, best: int | None = None,
    ranking: list[int] | None = None, now: dt.datetime | None = None,
) -> VoteResult:
    """Record one voter's vote on their poll and, unless it is flagged, update the ratings in the same
    transaction. A repeated request returns the recorded vote and counts nothing twice."""
    with transaction.atomic():
        # Locking the poll row serialises every request about this poll: only the first one writes.
        poll = Poll.objects.select_for_update(of=("self",)).select_related("prompt").filter(token=poll_token).first()
        if poll is None:
            raise PollNotFound("This poll does not exist.")
        if poll.voter_key != voter_key:
            raise PollForbidden("This poll was issued to someone else.")
        entries = list(poll.entries.select_related("variant", "image").order_by("position"))
        if poll.status == Poll.Status.VOTED:
            return VoteResult(vote=Vote.objects.get(poll=poll), replayed=True, poll=poll, entries=entries)
        now = now or timezone.now()
        if poll.status != Poll.Status.READY:
            raise PollNotReady(poll.error or "This poll's images are not ready yet.")
        if now > poll.expires_at:
            raise PollExpired("This poll has expired; here is a new one.")
        players = tuple(e.variant_id for e in entries)
        choice, ranks, full = _ranks_for(poll, len(players), choice, best, ranking)
        elapsed = now - (poll.shown_at or poll.created_at)
        elapsed_ms = max(0, int(elapsed.total_seconds() * 1000))
        flagged = elapsed.total_seconds() < settings.MIN_VOTE_SECONDS
        counted = not flagged or settings.COUNT_FAST_VOTES
        outcome = Outcome(players=players, ranks=ranks, full_ranking=full)
        created_at, changes = (_ratings_apply(outcome, poll.mode, now) if counted else (now, {}))
        vote = Vote.objects.create(
            poll=poll, mode=poll.mode, choice=choice, variants=list(players), ranks=list(ranks), full_ranking=full,
            voter_key=voter_key, ip_hash=ip_hash, created_at=created_at, elapsed_ms=elapsed_ms, flagged=flagged,
            flag_reason=f"voted {elapsed_ms} ms after the images appeared" if flagged else "", counted=counted,
            rating_changes=changes,
        )
        Poll.objects.filter(id=poll.id).update(status=Poll.Status.VOTED)
        poll.status = Poll.Status.VOTED
    return VoteResult(vote=vote, replayed=False, poll=poll, entries=entries)


def ratings_ensure(variant_ids: list[int]) -> None:
    """Create the initial rating rows of these models in every scope (a no-op for rows that exist)."""
    elo, ts = elo_params(), trueskill_params()
    Rating.objects.bulk_create(
        [Rating(variant_id=v, scope=s, elo=elo.initial, mu=ts.mu, sigma=ts.sigma) for v in variant_ids for s in Scope.values],
        ignore_conflicts=True,
    )


def _ratings_apply(outcome: Outcome, mode: str, now: dt.datetime) -> tuple[dt.datetime, dict]:
    """Lock the rating rows of the outcome's models (mode and overall, in id order so concurrent votes cannot
    deadlock), stamp the vote after the last vote that touched any of them, and update them.

    Two votes that share a model are thus applied in the order of their (created_at, id), which is the replay
    order, so a full replay gives exactly the live ratings."""
    scopes = (mode, Scope.OVERALL)
    players = outcome.players
    rows = list(Rating.objects.select_for_update().filter(variant_id__in=players, scope__in=scopes).order_by("id"))
    if len(rows) != len(players) * len(scopes):
        ratings_ensure(list(players))
        rows = list(Rating.objects.select_for_update().filter(variant_id__in=players, scope__in=scopes).order_by("id"))
    latest = max((r.last_vote_at for r in rows if r.last_vote_at), default=None)
    created_at = now if latest is None or now > latest else latest + ONE_MICROSECOND
    changes: dict[str, dict] = {}
    for scope in scopes:
        scoped = {r.variant_id: r for r in rows if r.scope == scope}
        new_elo, new_ts, counts = _updated(scoped, outcome)
        changes[scope] = {}
        for variant_id, row in scoped.items():
            changes[scope][str(variant_id)] = {
                "elo": [row.elo, new_elo[variant_id]],
                "mu": [row.mu, new_ts[variant_id][0]],
                "sigma": [row.sigma, new_ts[variant_id][1]],
            }
            row.elo = new_elo[variant_id]
            row.mu, row.sigma = new_ts[variant_id]
            row.votes += 1
            row.games += counts[variant_id][0]
            row.wins += counts[variant_id][1]
            row.last_vote_at = created_at
    _ratings_write(rows)
    return created_at, changes


_RATING_UPDATE = None


def _ratings_write(rows: list[Rating]) -> None:
    """One parameterised UPDATE per row in a single round of executemany: the vote path's hottest write."""
    from django.db import connection

    global _RATING_UPDATE
    if _RATING_UPDATE is None:
        q = connection.ops.quote_name
        table = q(Rating._meta.db_table)
        cols = ", ".join(f"{q(c)} = %s" for c in ("elo", "mu", "sigma", "votes", "games", "wins", "last_vote_at"))
        _RATING_UPDATE = f"UPDATE {table} SET {cols} WHERE {q('id')} = %s"
    field = Rating._meta.get_field("last_vote_at")
    params = [
        (r.elo, r.mu, r.sigma, r.votes, r.games, r.wins, field.get_db_prep_value(r.last_vote_at, connection), r.id)
        for r in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(_RATING_UPDATE, params)


def _updated(scoped: dict[int, Rating], outcome: Outcome):
    elo = elo_update({v: r.elo for v, r in scoped.items()}, outcome, elo_params())
    ts = trueskill_update({v: (r.mu, r.sigma) for v, r in scoped.items()}, outcome, trueskill_params())
    return elo, ts, _pair_counts(outcome)


def _pair_counts(outcome: Outcome) -> dict[int, tuple[int, float]]:
    counts = {p: [0, 0.0] for p in outcome.players}
    for a, b, score in pairwise(outcome):
        counts[a][0] += 1
        counts[b][0] += 1
        counts[a][1] += score
        counts[b][1] += 1.0 - score
    return {p: (g, w) for p, (g, w) in counts.items()}


# --- replay ---------------------------------------------------------------------------------------------------


@dataclass
class _State:
    elo: float
    mu: float
    sigma: float
    votes: int = 0
    games: int = 0
    wins: float = 0.0
    last_vote_at: dt.datetime | None = None


def ratings_replay() -> dict[tuple[int, str], _State]:
    """Every rating, recomputed by the ratings engine from the counted votes of the log in its stable order
    (created_at, id), with the same online functions the live vote path calls."""
    from arena.reports import record_from_row
    from ratings.replay import replay

    # One pass over the log gives both the engine's records and each rating's last vote time.
    records = []
    last: dict[tuple[int, str], dt.datetime] = {}
    rows = Vote.objects.filter(counted=True).order_by("created_at", "id").values_list(
        "id", "created_at", "mode", "variants", "ranks", "full_ranking", "choice"
    )
    for row in rows.iterator(chunk_size=5000):
        records.append(record_from_row(*row))
        _vid, vote_at, mode, variants = row[:4]
        for v in variants:
            last[(v, mode)] = last[(v, Scope.OVERALL)] = vote_at
    state: dict[tuple[int, str], _State] = {}
    for scope, ratings in replay(records, elo=elo_params(), trueskill=trueskill_params()).items():
        for variant_id, r in ratings.items():
            state[(variant_id, scope)] = _State(
                elo=float(r.elo), mu=float(r.mu), sigma=float(r.sigma), votes=int(r.votes), games=int(r.games),
                wins=float(r.wins),
                last_vote_at=last.get((variant_id, scope)),
            )
    return state


@dataclass(frozen=True)
class RecomputeReport:
    ratings: int
    changed: int
    max_elo_difference: float
    max_mu_difference: float


def ratings_recompute(*, write: bool = True) -> RecomputeReport:
    """Rebuild every rating from the log; report how far the stored (live) ratings were from the replay."""
    elo_p, ts_p = elo_params(), trueskill_params()
    with transaction.atomic():
        ratings_ensure(list(ModelVariant.objects.values_list("id", flat=True)))
        rows = list(Rating.objects.select_for_update().order_by("id"))
        replay = ratings_replay()
        changed, max_elo, max_mu = 0, 0.0, 0.0
        for row in rows:
            s = replay.get((row.variant_id, row.scope)) or _State(elo_p.initial, ts_p.mu, ts_p.sigma)
            new = (s.elo, s.mu, s.sigma, s.votes, s.games, s.wins, s.last_vote_at)
            old = (row.elo, row.mu, row.sigma, row.votes, row.games, row.wins, row.last_vote_at)
            if new != old:
                changed += 1
                max_elo = max(max_elo, abs(row.elo - s.elo))
                max_mu = max(max_mu, abs(row.mu - s.mu))
                row.elo, row.mu, row.sigma, row.votes, row.games, row.wins, row.last_vote_at = new
        if write and changed:
            Rating.objects.bulk_update(rows, ["elo", "mu", "sigma", "votes", "games", "wins", "last_vote_at"], batch_size=500)
    return RecomputeReport(ratings=len(rows), changed=changed, max_elo_difference=max_elo, max_mu_difference=max_mu)
