"""Errors the arena's services raise; each carries the HTTP status and a message a voter can read."""


class ArenaError(Exception):
    status = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class PollNotFound(ArenaError):
    status = 404


class PollForbidden(ArenaError):
    status = 403


class PollExpired(ArenaError):
    status = 410


class PollNotReady(ArenaError):
    status = 409


class InvalidChoice(ArenaError):
    status = 400


class PromptRejected(ArenaError):
    status = 400


class NoPollAvailable(ArenaError):
    status = 503


class RateLimited(ArenaError):
    status = 429

    def __init__(self, message: str, *, retry_after: int = 60):
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))  # seconds, for the Retry-After header


class ReportError(ArenaError):
    """Bad input to a report (unknown scope, format or plot)."""

    status = 400
