"""Domain errors: each has a stable machine ``code``; the server maps codes to HTTP.

The engine never speaks HTTP. ``server/problems.py`` holds the one table that turns a
code into a status and an RFC 9457 problem detail; ``docs/api.md`` lists it.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AlreadyExists",
    "ChecksumMismatch",
    "DomainError",
    "FileTooLarge",
    "Forbidden",
    "HashMismatch",
    "InspectionClosed",
    "InvalidInput",
    "InvalidTransition",
    "NotFound",
    "OffsetMismatch",
    "QuotaExceeded",
    "RevisionMismatch",
    "StorageError",
    "UnsupportedFileType",
    "UploadExpired",
    "UploadLocked",
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


class EvidenceLost(NotFound):
    """A stored file whose bytes the blob store no longer holds (or holds wrong): it
    is listed as missing until a tablet uploads it again."""

    code = "evidence_lost"


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


# --- evidence uploads (sync/uploads.py) ---------------------------------------------


class FileTooLarge(DomainError):
    """The file (or a chunk past the declared length) exceeds the per-file limit."""

    code = "file_too_large"


class QuotaExceeded(DomainError):
    """The inspection's evidence would exceed its total limit (``used``, ``limit``)."""

    code = "inspection_quota_exceeded"


class ChecksumMismatch(DomainError):
    """A chunk does not match the checksum sent with it: it was not stored."""

    code = "checksum_mismatch"


class HashMismatch(DomainError):
    """The whole file's SHA-256 is not the one announced: the upload is discarded."""

    code = "hash_mismatch"


class UnsupportedFileType(DomainError):
    """The file's bytes are none of the accepted types: the upload is discarded."""

    code = "unsupported_file_type"


class OffsetMismatch(DomainError):
    """A chunk was sent for another offset than the server's (``offset``)."""

    code = "offset_mismatch"


class UploadExpired(DomainError):
    """The upload was not completed in time and is (or will be) deleted."""

    code = "upload_expired"


class InspectionClosed(DomainError):
    """The inspection is closed: nothing more is added to it."""

    code = "inspection_closed"


class UploadLocked(DomainError):
    """Another request is still writing to this upload; retry after ``retry_after`` s."""

    code = "upload_locked"
