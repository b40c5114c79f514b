"""Strict parsing of what a request, the API or a command hands the arena: bad input raises an ArenaError with
a message a person reads (a 400), never a 500.

Integers are ASCII digits matched by a regular expression with a length cap, never ``str.isdigit()`` (true for
"²", which ``int()`` refuses) nor bare ``int()`` (which takes "٣", " 7", "1_000", and raises past 4,300 digits).
A parameter given twice is refused rather than silently read once.
"""

from __future__ import annotations

from dataclasses import dataclass

from arena.errors import ArenaError, InvalidChoice, PromptRejected, ReportError
from arena.models import Mode, Scope, Vote
# The strict numbers live in generation.fields (generation's and training's commands use them too); re-exported
# here for the arena's callers: ``cli_int`` and ``cli_float`` are the commands' argparse types.
from generation.fields import ID_DIGITS, cli_float, cli_int, digits_int  # noqa: F401 (cli_*: re-exported)

SCOPES: tuple[str, ...] = tuple(Scope.values)
MODES: tuple[str, ...] = tuple(Mode.values)


class InputError(ArenaError):
    """A malformed parameter (400)."""

    status = 400


def int_clean(
    value: str | None, *, name: str, minimum: int | None = 0, maximum: int | None = None, max_digits: int = ID_DIGITS,
    error: type[ArenaError] = InputError, message: str | None = None,
) -> int:
    """``value`` as an int: ASCII digits only (a leading ``-`` where ``minimum`` allows negatives), at most
    ``max_digits`` of them, within ``[minimum, maximum]``; otherwise ``error(message)`` (by default the message of
    ``generation.fields.digits_int``, which the commands' ``cli_int`` shares)."""
    try:
        return digits_int(value, name=name, minimum=minimum, maximum=maximum, max_digits=max_digits)
    except ValueError as exc:
        raise error(message or str(exc)) from None


def single(params, name: str, *, error: type[ArenaError] = InputError) -> str | None:
    """The one value of ``name`` in a QueryDict (None when absent); given more than once is an error."""
    values = params.getlist(name)
    if len(values) > 1:
        raise error(f"{name} was given {len(values)} times; give it once.")
    return values[0] if values else None


def scope_clean(value: str | None, default: str = Scope.OVERALL, *, allow_empty: bool = True) -> str:
    """A scope name; absent (or empty, where ``allow_empty``) means ``default``."""
    if value is None or (value == "" and allow_empty):
        return default
    if value not in SCOPES:
        raise ReportError(f"Unknown scope {value!r}; use one of {', '.join(SCOPES)}.")
    return value


def mode_clean(value: str | None) -> str | None:
    """A poll mode, or None when absent; an empty or unknown one is an error."""
    if value is None:
        return None
    if value not in MODES:
        raise ReportError(f"Unknown mode {value!r}; use one of {', '.join(MODES)}.")
    return value


def bool_clean(value: str | None, *, name: str) -> bool | None:
    if value is None:
        return None
    if value not in ("true", "false"):
        raise ReportError(f"{name} takes true or false, not {value!r}.")
    return value == "true"


# --- the vote form ------------------------------------------------------------------------------------------------

#: At most this many images in a poll (free-for-all); positions are 0..MAX_IMAGES-1 and places 1..MAX_IMAGES.
MAX_IMAGES = 4


@dataclass(frozen=True)
class VoteInput:
    choice: str
    best: int | None = None
    ranking: list[int] | None = None


def vote_input_clean(post) -> VoteInput:
    """The vote form (``choice``; ``best`` for a best pick; ``ranking=2,0,3,1`` or ``place_0..place_3`` for a full
    ranking). Malformed numbers are refused here with a message; whether they fit the poll is the service's call."""
    choice = single(post, "choice", error=InvalidChoice) or ""
    if choice == Vote.Choice.BEST:
        best = int_clean(single(post, "best", error=InvalidChoice), name="best", maximum=MAX_IMAGES - 1, max_digits=2,
                         error=InvalidChoice, message=f"Pick one of the images (best is an image number from 0 to {MAX_IMAGES - 1}).")
        return VoteInput(choice=choice, best=best)
    if choice == Vote.Choice.RANKING:
        return VoteInput(choice=choice, ranking=_ranking_clean(post))
    return VoteInput(choice=choice)


_RANKING_MESSAGE = f"A ranking lists each of the {MAX_IMAGES} images once, best first."


def _ranking_clean(post) -> list[int]:
    raw = single(post, "ranking", error=InvalidChoice)
    if raw:  # "2,0,3,1": image positions, best first
        parts = raw.split(",")
        if len(parts) > MAX_IMAGES:
            raise InvalidChoice(_RANKING_MESSAGE)
        return [int_clean(p.strip(" "), name="ranking", maximum=MAX_IMAGES - 1, max_digits=2, error=InvalidChoice,
                          message=_RANKING_MESSAGE) for p in parts]
    # One select per image giving its place (1 = best), for the form that works without JavaScript.
    places: dict[int, int] = {}
    for position in range(MAX_IMAGES):
        value = single(post, f"place_{position}", error=InvalidChoice)
        if value:
            places[position] = int_clean(value, name=f"place_{position}", minimum=1, maximum=MAX_IMAGES, max_digits=2,
                                         error=InvalidChoice, message=f"Give each image a place from 1 to {MAX_IMAGES}.")
    if sorted(places.values()) != list(range(1, MAX_IMAGES + 1)):
        raise InvalidChoice(f"Give each of the {MAX_IMAGES} images its own place, 1 to {MAX_IMAGES}.")
    return [position for position, _ in sorted(places.items(), key=lambda kv: kv[1])]


def prompt_id_clean(value: str | None) -> int | None:
    """The ``prompt_id`` of a prompt taken from the free-prompt pool (None: the voter typed one)."""
    if value in (None, ""):
        return None
    return int_clean(value, name="prompt_id", minimum=1, error=PromptRejected, message="That prompt is not in the pool.")
