"""Short text helpers shared by the generation app (pure Python)."""

from __future__ import annotations


def one_line(message: object, limit: int = 900) -> str:
    """``message`` on one line (runs of whitespace and line breaks become one space), cut to ``limit``
    characters with an ellipsis: error texts shown on admin pages and stored in bounded columns."""
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
