"""The storage contract every backend implements (SQLite now, PostgreSQL later).

A backend passes ``tests/sync/test_store_contract.py`` unchanged; that suite is the
executable form of the guarantees written here.

Guarantees common to every method:

- Each write method is atomic: it commits entirely or not at all, and it returns only
  after its commit is durable.
- Writes are serialised: two writes never interleave, so no caller ever sees a
  "database is locked" error.
- Driver failures surface as :class:`~sync.errors.StorageError` with the original
  exception attached; they are never turned into "not found".
- Every record write takes the next value of one global, strictly increasing
  sequence as the record's ``seq``: the change feed position that pull cursors use.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any

from sync.models import Device, Filter, RefreshToken, StoredRecord, User

__all__ = ["Store", "Transaction"]


class Transaction(abc.ABC):
    """Record operations inside one atomic, serialised write transaction.

    Obtained from :meth:`Store.transaction`. Reads see the transaction's own writes.
    If the ``async with`` block raises, nothing of it is committed; when the block
    exits normally the commit is durable before control returns to the caller.
    Each write takes the next global ``seq``.
    """

    @abc.abstractmethod
    async def create_record(self, kind: str, record_id: str, data: dict[str, Any]) -> StoredRecord:
        """Insert a record at rev 1. Raises AlreadyExists if (kind, id) exists, even as
        a tombstone."""

    @abc.abstractmethod
    async def update_record(
        self, kind: str, record_id: str, data: dict[str, Any], *, expect_rev: int | None = None
    ) -> StoredRecord:
        """Replace a live record's data; rev goes up by one.

        Raises NotFound if missing or deleted, RevisionMismatch if ``expect_rev`` is
        given and is not the current rev.
        """

    @abc.abstractmethod
    async def delete_record(
        self, kind: str, record_id: str, *, expect_rev: int | None = None
    ) -> StoredRecord:
        """Turn a live record into a tombstone (kept, ``deleted`` true, new seq)."""

    @abc.abstractmethod
    async def get_record(self, kind: str, record_id: str) -> StoredRecord | None:
        """A live record, or None, as this transaction sees it."""


class Store(abc.ABC):
    """Abstract storage. Open with :meth:`open`, release with :meth:`close`."""

    # --- lifecycle ---------------------------------------------------------------

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and apply pending migrations. Idempotent."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections. The store may be opened again."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Return if the database answers a trivial query; raise StorageError if not."""

    @abc.abstractmethod
    async def schema_version(self) -> int:
        """The highest migration applied."""

    # --- users -----------------------------------------------------------------

    @abc.abstractmethod
    async def add_user(self, user: User) -> User:
        """Insert a user. Raises AlreadyExists if the id or username is taken."""

    @abc.abstractmethod
    async def get_user(self, user_id: str) -> User | None:
        """The user with that id, or None."""

    @abc.abstractmethod
    async def find_user(self, username: str) -> User | None:
        """The user with that username (case-sensitive), or None."""

    @abc.abstractmethod
    async def list_users(self) -> list[User]:
        """Every user, ordered by username."""

    @abc.abstractmethod
    async def update_user(
        self, user_id: str, *, password_hash: str | None = None, disabled: bool | None = None
    ) -> User:
        """Change the given fields; raises NotFound for an unknown id."""

    # --- devices ---------------------------------------------------------------

    @abc.abstractmethod
    async def add_device(self, device: Device) -> Device:
        """Register a device. Raises AlreadyExists if the id is taken."""

    @abc.abstractmethod
    async def get_device(self, device_id: str) -> Device | None:
        """The device with that id, or None."""

    @abc.abstractmethod
    async def list_devices(self, user_id: str | None = None) -> list[Device]:
        """Devices, optionally of one user, oldest first."""

    @abc.abstractmethod
    async def revoke_device(self, device_id: str, at: datetime) -> Device:
        """Mark a device revoked (kept if already revoked) and revoke every refresh
        token bound to it, in one transaction. Raises NotFound for an unknown id."""

    @abc.abstractmethod
    async def touch_device(self, device_id: str, at: datetime, app_version: str | None) -> None:
        """Record that the device was seen (and its app version). Unknown ids are ignored."""

    # --- refresh tokens ----------------------------------------------------------

    @abc.abstractmethod
    async def add_refresh_token(self, token: RefreshToken) -> None:
        """Store a new refresh token (by hash)."""

    @abc.abstractmethod
    async def use_refresh_token(self, token_hash: str, at: datetime) -> RefreshToken | None:
        """Atomically mark a token used and return it *as it was before*.

        Of two concurrent calls with the same hash, exactly one sees ``used_at`` None:
        that is what lets the caller detect reuse of a rotated token. Returns None for
        an unknown hash.
        """

    @abc.abstractmethod
    async def revoke_token_family(self, family_id: str, at: datetime) -> int:
        """Revoke every token of a family; returns how many were not yet revoked."""

    # --- records -----------------------------------------------------------------

    @abc.abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """A write transaction for several record operations that commit together."""

    async def create_record(self, kind: str, record_id: str, data: dict[str, Any]) -> StoredRecord:
        """:meth:`Transaction.create_record` in a transaction of its own."""
        async with self.transaction() as tx:
            return await tx.create_record(kind, record_id, data)

    async def update_record(
        self, kind: str, record_id: str, data: dict[str, Any], *, expect_rev: int | None = None
    ) -> StoredRecord:
        """:meth:`Transaction.update_record` in a transaction of its own."""
        async with self.transaction() as tx:
            return await tx.update_record(kind, record_id, data, expect_rev=expect_rev)

    async def delete_record(
        self, kind: str, record_id: str, *, expect_rev: int | None = None
    ) -> StoredRecord:
        """:meth:`Transaction.delete_record` in a transaction of its own."""
        async with self.transaction() as tx:
            return await tx.delete_record(kind, record_id, expect_rev=expect_rev)

    @abc.abstractmethod
    async def get_record(self, kind: str, record_id: str) -> StoredRecord | None:
        """A live record, or None (tombstones are not returned)."""

    @abc.abstractmethod
    async def list_records(
        self,
        kind: str,
        filters: Sequence[Filter] = (),
        *,
        limit: int | None = None,
        offset: int = 0,
        order_by: str = "id",
    ) -> list[StoredRecord]:
        """Live records of a kind matching every filter, ordered by ``order_by`` (a data
        field, or ``id``; prefix ``-`` for descending, ties broken by id)."""

    @abc.abstractmethod
    async def count_records(self, kind: str, filters: Sequence[Filter] = ()) -> int:
        """How many live records of a kind match every filter."""
