"""Domain errors carry a Chinese message for the user; the web layer maps each kind to an HTTP code."""

from __future__ import annotations


class DomainError(Exception):
    status_code = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Invalid(DomainError):
    status_code = 422


class NotFound(DomainError):
    status_code = 404


class Forbidden(DomainError):
    status_code = 403


class AuthRequired(DomainError):
    status_code = 401


class BadCode(Invalid, ValueError):
    """A malformed code (region code...): a ValueError for the code that parses it, 422 for the user."""


class Conflict(DomainError):
    status_code = 409


class Blocked(DomainError):
    """A business rule stops the action (e.g. an open suspicious-record flag)."""

    status_code = 409


# The answer to someone whose write found the record already moved by another user.
RACED = "该申请已被他人处理，请刷新"


class Busy(DomainError):
    """The database could not grant a lock in time: nothing was changed, the request may be sent again."""

    status_code = 503


class TooManyAttempts(DomainError):
    """Too many failed attempts from one address: wait before trying again."""

    status_code = 429
