"""The one error type trainers raise for bad input: a clear, one-line reason (shown on admin pages and in logs)."""

from __future__ import annotations


class TrainingError(Exception):
    """A one-line reason why training cannot start or continue (bad setting, missing file, refused resume)."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
