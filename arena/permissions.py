"""Who may see what: the one place the arena's views, API and exports ask.

* staff: Django's ``is_staff`` (the admin's notion), checked the same way by pages (:func:`staff_required`, the
  site's one check, from ``generation.permissions``: anonymous visitors go to the login page, others get 403),
  the API (:class:`IsStaffOrToken`) and the vote-log downloads (:func:`vote_log_allowed`);
* the vote log: public when ``ARENA_PUBLIC_VOTE_LOG`` is on (voters appear only as salted hashes), otherwise
  staff and API-token holders only;
* **anonymity** (DESIGN.md §1): :func:`images_revealed` is the one rule for "may this image, its prompt and its
  seed be shown together with its model to this viewer" (:func:`prompts_revealed` is the same rule for a prompt
  shown with the models of a poll); :func:`free_prompts_listed` says which free prompts may be listed, without
  models, for voters to take again.

The anonymity rule is about prompt texts, because every image of a poll carries the poll's prompt and the images
of one prompt text with the same seed are the same pixels whichever prompt row they hang on. Staff see everything.
Anyone else sees an image (or a prompt) with its model only when its prompt text is **out of play**:

1. no image of that text is in the **poll pool**, the images fixed-prompt duels and free-for-all polls draw from
   (:func:`poll_pool_q`): every image of a fixed prompt, whatever its model's state today (a disabled model can be
   enabled again, and an image once shown with its model would give its future polls away), except the
   **showcase**: prompts an admin took out of the polls for good (``Image.showcase_at`` on all their images);
2. no image of that text left the pool less than :func:`showcase_delay_seconds` ago (the poll lifetime plus the
   pool index's rebuild period: every poll that could have drawn it has expired), so the rule holds even for polls
   that are not stored until they are voted;
3. no **open poll** (generating, or ready and not expired) shows that text: this hides every image of every open
   poll, in whichever mode, even before a free duel's images are linked to it, and a finished free prompt that
   someone takes again from the pool (a new seed, new images) is not shown with a model while that duel is open.

So in practice the public sees the images of free-prompt duels once their duel was voted or expired, imported
images whose prompt is in no poll, and settled showcase prompts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.conf import settings
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from rest_framework import exceptions
from rest_framework import permissions as drf_permissions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from arena.models import Poll
from generation.models import Image, Prompt
from generation.permissions import is_staff, staff_required  # noqa: F401  (the site's one staff check)


def vote_log_public() -> bool:
    return settings.ARENA_PUBLIC_VOTE_LOG


def has_api_token(request: HttpRequest) -> bool:
    try:
        return TokenAuthentication().authenticate(request) is not None
    except exceptions.AuthenticationFailed:
        return False


def vote_log_allowed(request: HttpRequest) -> bool:
    """Vote logs go to staff and API-token holders (or to anyone with ``ARENA_PUBLIC_VOTE_LOG``)."""
    return vote_log_public() or is_staff(getattr(request, "user", None)) or has_api_token(request)


class IsStaffOrToken(drf_permissions.BasePermission):
    """API access for staff (session) or any API token."""

    message = "The vote log is for staff and API token holders."

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, Token) or is_staff(request.user)


# --- anonymity ----------------------------------------------------------------------------------------------------


def poll_pool_q() -> Q:
    """The images fixed-prompt duels and free-for-all polls may draw (``arena.pollgroups`` indexes exactly these)."""
    return Q(prompt__source=Prompt.Source.FIXED, showcase_at__isnull=True)


def showcase_delay_seconds() -> int:
    """How long a showcase image waits before it is shown with its model: a poll drawn from a pool index that had
    not yet noticed the pick expires within the poll lifetime, and every index is rebuilt within its TTL."""
    from arena import pollgroups

    return settings.POLL_TTL_SECONDS + int(pollgroups.TTL)


def open_polls_q(now: dt.datetime) -> Q:
    """Polls that may still be voted on (or are being generated: a generating poll may still become ready)."""
    return Q(status=Poll.Status.GENERATING) | Q(status=Poll.Status.READY, expires_at__gt=now)


def _in_play(text_ref: OuterRef, now: dt.datetime) -> Q:
    """Whether the prompt text ``text_ref`` can still appear in a poll (rules 1-3 above)."""
    settled = now - dt.timedelta(seconds=showcase_delay_seconds())
    pooled = Image.objects.filter(poll_pool_q() | Q(showcase_at__gt=settled), prompt__text=text_ref)
    shown = Poll.objects.filter(open_polls_q(now), prompt__text=text_ref)
    return Exists(pooled) | Exists(shown)


def images_revealed(images: QuerySet[Image], *, viewer, now: dt.datetime | None = None) -> QuerySet[Image]:
    """The images of ``images`` that may be shown to ``viewer`` (a user, or None) with their model, prompt and seed."""
    if is_staff(viewer):
        return images
    return images.exclude(_in_play(OuterRef("prompt__text"), now or timezone.now()))


def prompts_revealed(prompts: QuerySet[Prompt], *, viewer, now: dt.datetime | None = None) -> QuerySet[Prompt]:
    """The prompts of ``prompts`` that may be shown with models (of a poll, say): the same rule as for images."""
    if is_staff(viewer):
        return prompts
    return prompts.exclude(_in_play(OuterRef("text"), now or timezone.now()))


def image_revealed(image: Image, *, viewer, now: dt.datetime | None = None) -> bool:
    return images_revealed(Image.objects.filter(pk=image.pk), viewer=viewer, now=now).exists()


def revealed_prompt_ids(prompt_ids: Iterable[int], *, viewer, now: dt.datetime | None = None) -> set[int]:
    """Which of these prompt ids may be shown with models (one query)."""
    ids = {i for i in prompt_ids if i is not None}
    if not ids:
        return set()
    return set(prompts_revealed(Prompt.objects.filter(id__in=ids), viewer=viewer, now=now).values_list("id", flat=True))


def free_prompts_listed(prompts: QuerySet[Prompt], *, now: dt.datetime | None = None) -> QuerySet[Prompt]:
    """Free prompts that may be listed for voters to take again (never with a model): those with a duel that was
    generated and then voted or let expire. A prompt whose only duels are still open is not listed."""
    now = now or timezone.now()
    finished = Poll.objects.filter(prompt_id=OuterRef("pk")).filter(
        Q(status=Poll.Status.VOTED) | Q(status=Poll.Status.READY, expires_at__lte=now)
    )
    return prompts.filter(source=Prompt.Source.FREE).filter(Exists(finished))
