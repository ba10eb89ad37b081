"""Domain errors: each has a stable machine ``code``; the server maps codes to HTTP.

The engine never speaks HTTP. ``server/problems.py`` holds the one table that turns a
code into a status and an RFC 9457 problem detail; ``docs/api.md`` lists it.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AlreadyExists",
    "DomainError",
    "Forbidden",
    "InvalidInput",
    "InvalidTransition",
    "NotFound",
    "RevisionMismatch",
    "StorageError",
    "VersionImmutable",
]


class DomainError(Exception):
    """Base of every error the engine raises on purpose."""

    code: ClassVar[str] = "domain_error"

    def __init__(self, message: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra


class NotFound(DomainError):
    """The object does not exist, or the principal may not know that it exists."""

    code = "not_found"


class AlreadyExists(DomainError):
    """An object with that identity (id, username, key) exists already."""

    code = "already_exists"


class InvalidInput(DomainError):
    """Input is well-formed but breaks a domain rule; ``field`` names the part at fault."""

    code = "invalid_input"


class Forbidden(DomainError):
    """The principal is known and may see the object, but may not do this to it."""

    code = "forbidden"


class InvalidTransition(DomainError):
    """A status change that the lifecycle does not allow from the current status."""

    code = "invalid_transition"


class RevisionMismatch(DomainError):
    """The object changed since the revision the caller based its write on."""

    code = "revision_mismatch"


class VersionImmutable(DomainError):
    """A published or retired checklist version cannot be edited: make a new version."""

    code = "version_immutable"


class StorageError(DomainError):
    """The database failed. ``original`` keeps the driver's exception."""

    code = "storage_error"

    def __init__(self, message: str, *, original: BaseException | None = None) -> None:
        super().__init__(message)
        self.original = original
