"""Poll pages: issuing a poll, its images (to its voter only), the vote and the reveal. Each URL serves the
full page, or its htmx partial when ``request.htmx``."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Context, Decimal

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from arena import inputs, pollgroups, polltickets, selectors, services, wsgi_images
from arena.polltickets import PollTicket
from arena.services.polls import IssuedPoll
from arena.errors import ArenaError, InvalidChoice, PollForbidden, PollNotFound, PromptRejected
from arena.models import Mode, Poll, Vote
from generation.models import GenerationTask
from arena.views.common import MODE_URLS, error_response, poll_response, rate_limit
from arena.views.links import link
from arena.voters import client_ip_hash, voter_key


def _poll_page(request: HttpRequest, mode: str, poll, extra: dict | None = None, status: int = 200) -> HttpResponse:
    """A poll's page: an issued ticket (entries in memory) or a free-prompt duel's row."""
    if poll is None:
        entries = []
    elif isinstance(poll, IssuedPoll):
        entries = list(poll.entries)
    else:
        entries = list(poll.entries.select_related("image"))
    context = {"poll": poll, "mode": mode, "entries": entries, **(extra or {})}
    if isinstance(poll, Poll) and poll.status == Poll.Status.GENERATING:
        context["generating"] = _generating(poll, entries)
    context.update(_poll_flags(mode))
    picks = context.get("picks") or {}
    context["rank_rows"] = [(entry, picks.get(entry.position, "")) for entry in entries]
    if poll is not None:
        token = str(poll.token)
        context["poll_url"], context["vote_url"] = link("arena:poll", token), link("arena:vote", token)
        context["slots"] = [(entry, link("arena:poll_image", token, entry.position)) for entry in entries]
    template = "arena/_poll.html" if request.htmx else "arena/poll_page.html"
    return render(request, template, context, status=status)


def _generating(poll: Poll, entries: list) -> dict:
    """What the progress of a free-prompt duel shows: images made so far, seconds since the voter asked."""
    tasks = [e.task for e in poll.entries.select_related("task")]
    done = sum(1 for t in tasks if t is not None and t.status == GenerationTask.Status.DONE)
    started = sum(1 for t in tasks if t is not None and t.status != GenerationTask.Status.PENDING)
    return {"total": len(tasks), "done": done, "queued": started == 0,
            "elapsed": max(0, int((timezone.now() - poll.created_at).total_seconds()))}


def _poll_flags(mode: str) -> dict:
    return {
        "allow_tie": mode == Mode.FIXED or (mode == Mode.FREE and settings.FREE_DUEL_ALLOW_TIE),
        "allow_both_bad": mode == Mode.FIXED or (mode == Mode.FREE and settings.FREE_DUEL_ALLOW_BOTH_BAD),
        "mode_label": Mode(mode).label,
        "next_url": link(MODE_URLS[mode]),
    }


def _issue(request: HttpRequest, mode: str) -> HttpResponse:
    try:
        rate_limit(request, "poll")
        poll = services.poll_create(mode=mode, voter_key=voter_key(request), ip_hash=client_ip_hash(request))
    except ArenaError as exc:
        return error_response(request, exc, mode)
    return _poll_page(request, mode, poll)


@poll_response
@require_GET
def fixed_duel(request: HttpRequest) -> HttpResponse:
    return _issue(request, Mode.FIXED)


@poll_response
@require_GET
def free_for_all(request: HttpRequest) -> HttpResponse:
    return _issue(request, Mode.FFA)


@poll_response
@require_http_methods(["GET", "POST"])
def free_duel(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _poll_page(request, Mode.FREE, None, {"pool": selectors.free_prompt_pool(), "max_chars": settings.FREE_PROMPT_MAX_CHARS})
    try:
        rate_limit(request, "free")
        prompt_id = inputs.prompt_id_clean(inputs.single(request.POST, "prompt_id", error=PromptRejected))
        poll = services.free_poll_create(
            voter_key=voter_key(request), ip_hash=client_ip_hash(request),
            prompt_text=inputs.single(request.POST, "prompt", error=PromptRejected) or "", prompt_id=prompt_id,
        )
    except ArenaError as exc:
        return error_response(request, exc, Mode.FREE)
    return _poll_page(request, Mode.FREE, poll)


def _voter_poll(request: HttpRequest, token: str) -> Poll:
    poll = selectors.poll_with_entries(token)
    if poll is None:
        raise PollNotFound("This poll does not exist.")
    if poll.voter_key != voter_key(request):
        raise PollForbidden("This poll was issued to someone else.")
    return poll


def _voter_ticket(request: HttpRequest, token: str) -> PollTicket:
    ticket = polltickets.decode(token)
    if ticket.voter_key != voter_key(request):
        raise PollForbidden("This poll was issued to someone else.")
    return ticket


@poll_response
@require_GET
def poll_detail(request: HttpRequest, token: str) -> HttpResponse:
    """A poll as it stands: the progress of a generating one, the images of a ready one, the reveal after the vote."""
    try:
        if polltickets.is_uuid(token):
            poll = services.poll_refresh(poll=_voter_poll(request, token))
        else:
            ticket = _voter_ticket(request, token)
            poll = selectors.poll_with_entries(ticket.nonce)
            if poll is None:
                return _poll_page(request, ticket.mode, services.issued_poll(ticket, token))
    except ArenaError as exc:
        return error_response(request, exc)
    if poll.status == Poll.Status.VOTED:
        entries = list(poll.entries.select_related("variant", "image").order_by("position"))
        return _reveal(request, poll, Vote.objects.get(poll=poll), entries, replayed=True, token=token)
    return _poll_page(request, poll.mode, poll)


def _image_file(request: HttpRequest, token: str, position: int) -> str:
    """The storage name of the voter copy of one image of the voter's poll."""
    if polltickets.is_uuid(token):
        entry = next((e for e in _voter_poll(request, token).entries.all() if e.position == position), None)
        if entry is None or entry.image_id is None:
            raise Http404("no such image")
        return entry.image.voter_file.name
    ticket = _voter_ticket(request, token)
    if not 0 <= position < len(ticket.image_ids):
        raise Http404("no such image")
    name = pollgroups.voter_file(ticket.image_ids, position)
    if name is None:
        raise Http404("this image is gone")
    return name


@require_GET
def poll_image(request: HttpRequest, token: str, position: int) -> HttpResponse:
    """The metadata-free copy of one image of a poll, under the poll's own URL (unguessable: the ticket is
    encrypted), to the poll's voter only. Django checks access; the bytes come from the media storage, or from
    the front server when ``MEDIA_INTERNAL_REDIRECT`` names its internal location (X-Accel-Redirect). Under
    WSGI a ticket's images are answered before Django (:mod:`arena.wsgi_images`) and reach this view only
    when that path leaves them: refused, gone, or a live poll's."""
    try:
        name = _image_file(request, token, position)
    except ArenaError as exc:
        return HttpResponse(exc.message, status=exc.status, content_type="text/plain")
    if settings.MEDIA_INTERNAL_REDIRECT:
        response = HttpResponse(content_type="image/png")
        response["X-Accel-Redirect"] = settings.MEDIA_INTERNAL_REDIRECT.rstrip("/") + "/" + name
    else:
        try:
            with default_storage.open(name, "rb") as fh:
                response = HttpResponse(fh.read(), content_type="image/png")
        except FileNotFoundError:
            raise Http404("this image is gone") from None
    response["Cache-Control"] = wsgi_images.CACHE_CONTROL
    response["X-Content-Type-Options"] = "nosniff"
    return response


@poll_response
@require_POST
def poll_vote(request: HttpRequest, token: str) -> HttpResponse:
    try:
        rate_limit(request, "vote")
        vote = inputs.vote_input_clean(request.POST)
        result = services.vote_cast(
            poll_token=str(token), voter_key=voter_key(request), ip_hash=client_ip_hash(request),
            choice=vote.choice, best=vote.best, ranking=vote.ranking,
        )
    except InvalidChoice as exc:
        # A refused pick (a ranking with a missing or repeated place) keeps the poll and the picks, with the reason.
        return _poll_again(request, token, exc) or error_response(request, exc)
    except ArenaError as exc:
        return error_response(request, exc)
    return _reveal(request, result.poll, result.vote, result.entries, replayed=result.replayed, token=token)


def _poll_again(request: HttpRequest, token: str, exc: ArenaError) -> HttpResponse | None:
    """The open poll of ``token`` again with ``exc``'s message and the places the voter had picked; None when
    the poll is not open any more (then the plain error page answers)."""
    try:
        if polltickets.is_uuid(token):
            poll = services.poll_refresh(poll=_voter_poll(request, token))
            if poll.status != Poll.Status.READY:
                return None
        else:
            ticket = _voter_ticket(request, token)
            if selectors.poll_with_entries(ticket.nonce) is not None:
                return None  # voted already
            poll = services.issued_poll(ticket, token)
    except ArenaError:
        return None
    picks = {}
    for position in range(len(poll.entries) if isinstance(poll, IssuedPoll) else poll.entries.count()):
        value = request.POST.get(f"place_{position}", "")
        if value in {"1", "2", "3", "4"}:
            picks[position] = value
    return _poll_page(request, poll.mode, poll, {"vote_error": exc.message, "picks": picks}, status=exc.status)


@poll_response
@require_GET
def poll_reveal(request: HttpRequest, token: str) -> HttpResponse:
    """The reveal of a voted poll (the reveal polls it until the ratings consumer has applied the vote)."""
    try:
        if polltickets.is_uuid(token):
            poll = _voter_poll(request, token)
        else:
            poll = selectors.poll_with_entries(_voter_ticket(request, token).nonce)
            if poll is None:
                raise PollNotFound("This poll has no vote yet.")
        vote = Vote.objects.filter(poll=poll).first()
        if vote is None:
            raise PollNotFound("This poll has no vote yet.")
    except ArenaError as exc:
        return error_response(request, exc)
    entries = list(poll.entries.select_related("variant", "image").order_by("position"))
    return _reveal(request, poll, vote, entries, replayed=False, token=token)


@poll_response
@require_GET
def poll_ratings(request: HttpRequest, token: str) -> HttpResponse:
    """The reveal's rating lines, which the reveal polls until the ratings consumer has applied the vote: each
    line swapped into its place (htmx out of band), and the poller again while the vote still waits. One query,
    no poll or image read: the reveal's own page is ``poll_reveal``."""
    try:
        if polltickets.is_uuid(token):
            row = selectors.vote_ratings(token)
            if row is not None and row["voter_key"] != voter_key(request):
                raise PollForbidden("This poll was issued to someone else.")
        else:
            row = selectors.vote_ratings(_voter_ticket(request, token).nonce)
        if row is None:
            raise PollNotFound("This poll has no vote yet.")
    except ArenaError as exc:
        return error_response(request, exc)
    changes = (row["rating_changes"] or {}).get(row["mode"], {})
    lines = [_rating_line(k, changes.get(str(v))) for k, v in enumerate(row["variants"])]
    pending = _ratings_pending(row["counted"], row["excluded"], row["seq"])
    return render(request, "arena/_ratings.html", {"lines": lines, "ratings_pending": pending,
                                                   "ratings_url": link("arena:ratings", token)})


def _ratings_pending(counted: bool, excluded: bool, seq: int | None) -> bool:
    """Whether a counted vote still waits for the ratings consumer (it has no place in the log yet)."""
    return counted and not excluded and seq is None


def _rating_line(position: int, change: dict | None) -> dict:
    """One model's rating change on the reveal (Elo before and after, TrueSkill after); no numbers before the
    consumer applied the vote."""
    if not change:
        return {"position": position, "elo_delta": None}
    (before, after), delta = change["elo"], change["elo"][1] - change["elo"][0]
    return {"position": position, "elo_before": _fixed(before, 2), "elo_after": _fixed(after, 1),
            "elo_delta": _fixed(delta, 2), "gained": delta >= 0,
            "trend": "up" if delta >= 0.005 else "down" if delta <= -0.005 else "zero",
            "mu_after": _fixed(change["mu"][1], 2), "sigma_after": _fixed(change["sigma"][1], 2)}


_FIXED_CONTEXT = Context(prec=80)


def _fixed(value: float, places: int) -> str:
    """``value|floatformat:places`` (the site's English format), without the filter's per-call localisation
    lookups: rounded half up from the float's shortest decimal form, and no minus sign on a zero. Twelve of
    these per rating poll were a quarter of its CPU. ``tests/arena/test_reveal_numbers.py`` checks it
    against ``floatformat``."""
    rounded = Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP, _FIXED_CONTEXT)
    return f"{rounded.copy_abs() if not rounded else rounded:f}"


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _place_words(vote: Vote, rank: int) -> str:
    """The place the voter gave this image, in words."""
    ranks = list(vote.ranks)
    if vote.choice == Vote.Choice.RANKING or getattr(vote, "full_ranking", False):
        return f"you placed it {_ordinal(rank + 1)}"
    if len(set(ranks)) == 1:
        return "both bad" if vote.choice == "bothbad" else "a tie"
    return "your pick" if rank == min(ranks) else ""


def _reveal(request: HttpRequest, poll: Poll, vote: Vote, entries: list, *, replayed: bool, token: str | None = None) -> HttpResponse:
    """The models' names with the places the voter gave and the rating change (once the consumer applied it).
    Images keep the URLs the poll showed them under (``token``), so the browser has them already."""
    changes = (vote.rating_changes or {}).get(poll.mode, {})
    image_token = token or str(poll.token)
    revealed = []
    for entry, rank in zip(entries, vote.ranks):
        revealed.append(
            {
                "entry": entry,
                "src": link("arena:poll_image", image_token, entry.position),
                "model_url": link("arena:model", entry.variant_id),
                "rank": rank,
                "place": _place_words(vote, rank),
                "winner": rank == min(vote.ranks) and len(set(vote.ranks)) > 1,
                "rating": _rating_line(entry.position, changes.get(str(entry.variant_id))),
            }
        )
    context = {"poll": poll, "mode": poll.mode, "vote": vote, "revealed": revealed, "replayed": replayed,
               "ratings_url": link("arena:ratings", image_token), "free_url": link("arena:free"),
               "ratings_pending": _ratings_pending(vote.counted, vote.excluded, vote.seq), **_poll_flags(poll.mode)}
    template = "arena/_reveal.html" if request.htmx else "arena/reveal_page.html"
    return render(request, template, context)

