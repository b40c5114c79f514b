"""Form fields the apps' staff forms share (a public module: generation's and training's forms import it), and the
strict numbers of the apps' management commands (``cli_int``, ``cli_float``: argparse types that refuse "nan",
"inf", "1e999", "٣" and out-of-range values with a message, where ``type=int`` / ``type=float`` take them).

Integers are ASCII digits matched by a regular expression with a length cap, never ``str.isdigit()`` (true for
"²", which ``int()`` refuses) nor bare ``int()`` (which takes "٣", " 7", "1_000", and raises past 4,300 digits).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable

from django import forms
from django.core.exceptions import ValidationError

_PK = re.compile(r"[0-9]{1,18}")
#: Digits an id may have (a 64-bit primary key has at most 19).
ID_DIGITS = 18


class StrictModelChoiceField(forms.ModelChoiceField):
    """A primary key must be ASCII digits before it is looked up (SQLite cannot even bind a 20-digit integer)."""

    def to_python(self, value):
        if value not in self.empty_values and not _PK.fullmatch(str(value)):
            raise ValidationError(self.error_messages["invalid_choice"], code="invalid_choice")
        return super().to_python(value)


class StrictModelMultipleChoiceField(forms.ModelMultipleChoiceField):
    def clean(self, value):
        for pk in value if isinstance(value, (list, tuple)) else ():
            if not _PK.fullmatch(str(pk)):
                raise ValidationError(self.error_messages["invalid_pk_value"], code="invalid_pk_value", params={"pk": pk})
        return super().clean(value)


# --- strict numbers (the web forms' ``arena.inputs.int_clean`` and the commands' argparse types) ----------------------


def _shown(number: float) -> str:
    """A bound or a value as a person writes it: 1000000000 (not 1e+09), 0.5, -1."""
    return str(int(number)) if float(number).is_integer() else repr(float(number))


def _range_error(name: str, number: int, minimum: int | None, maximum: int | None) -> ValueError:
    bounds = f"from {minimum}" if maximum is None else f"from {minimum} to {maximum}" if minimum is not None else f"up to {maximum}"
    return ValueError(f"{name} must be {bounds}, not {number}.")


def digits_int(value: str | None, *, name: str, minimum: int | None = 0, maximum: int | None = None,
               max_digits: int = ID_DIGITS) -> int:
    """``value`` as an int: ASCII digits only (a leading ``-`` where ``minimum`` allows negatives), at most
    ``max_digits`` of them, within ``[minimum, maximum]``; otherwise ValueError with a message a person reads
    (the web forms' messages: ``arena.inputs.int_clean`` raises them as its ArenaError)."""
    text = value if isinstance(value, str) else ""
    negative_ok = minimum is None or minimum < 0
    pattern = rf"{'-?' if negative_ok else ''}[0-9]{{1,{max_digits}}}"
    if not re.fullmatch(pattern, text):
        shown = text if len(text) <= 40 else text[:40] + "…"
        raise ValueError(f"{name} must be a whole number written in digits 0-9 (at most {max_digits}), not {shown!r}.")
    number = int(text)
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise _range_error(name, number, minimum, maximum)
    return number


def cli_int(*, minimum: int | None = 0, maximum: int | None = None, max_digits: int = ID_DIGITS) -> Callable[[str], int]:
    """An ``argparse`` type: the same strict integers as the web forms (argparse reports the message). A
    negative number where none is allowed is out of range ("-1": "must be from 0, not -1"), not malformed."""

    def parse(text: str) -> int:
        try:
            number = digits_int(text, name="the value", minimum=None, max_digits=max_digits)
            if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
                raise _range_error("the value", number, minimum, maximum)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return number

    parse.__name__ = "integer"  # argparse names the type in its message
    return parse


def cli_float(*, minimum: float | None = None, maximum: float | None = None) -> Callable[[str], float]:
    """An ``argparse`` type for a finite decimal number (``float()`` alone takes "nan", "inf" and "1e999")."""

    def parse(text: str) -> float:
        if not re.fullmatch(r"-?[0-9]{1,15}(\.[0-9]{1,15})?", text):
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a decimal number such as 0.5 or 20")
        number = float(text)
        if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
            bounds = (f"{_shown(minimum)} to {_shown(maximum)}" if minimum is not None and maximum is not None
                      else f"at least {_shown(minimum)}" if minimum is not None else f"at most {_shown(maximum)}")
            raise argparse.ArgumentTypeError(f"{_shown(number)} is out of range ({bounds})")
        return number

    parse.__name__ = "number"
    return parse
