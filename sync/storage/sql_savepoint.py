"""A part of a batch undone alone: what :class:`~sync.storage.sql_batch.SQLBatch` keeps
in memory, restored on an exception, plus a SQL savepoint begun only if the part writes
with SQL directly."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sync.errors import StorageError
from sync.storage.sql_rows import UPSERT_SQL, last_per_key

if TYPE_CHECKING:
    from sync.storage.sql_batch import SQLBatch

__all__ = ["Savepoint"]


class Savepoint:
    """``SQLBatch.savepoint``: what the batch keeps in memory (its sequence, audit head,
    buffered rows), restored together on an exception, plus a SQL savepoint begun only
    if the part writes with SQL directly (most parts only buffer rows: no round trip).
    A class, not a generator: it runs once per mutation of every push."""

    __slots__ = ("batch", "devices", "head", "pending", "records", "seq", "started", "unlinked")

    def __init__(self, batch: SQLBatch) -> None:
        self.batch = batch

    def __enter__(self) -> None:
        b = self.batch
        self.seq, self.head = b._seq, b._chain.head
        self.pending = {sql: len(rows) for sql, rows in b._pending.items()}
        self.records = len(b._records)
        self.devices = dict(b._devices)
        self.unlinked = len(b._unlinked)
        self.started = False
        b._open = self

    def begin(self) -> None:
        """The part is about to write with SQL: what was buffered before it is written
        first, outside the SQL savepoint, then the savepoint begins."""
        b = self.batch
        if self.records:
            b.db.executemany(UPSERT_SQL, last_per_key(b._records[: self.records]))
            del b._records[: self.records]
            self.records = 0
        b.db.execute("SAVEPOINT part")
        self.started = True

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        b = self.batch
        b._open = None
        if exc is None:
            if self.started:
                b.db.execute("RELEASE part")
            return
        if self.started:
            b.db.execute("ROLLBACK TO part")
            b.db.execute("RELEASE part")
        b._seq, b._chain.head = self.seq, self.head
        for sql in list(b._pending):
            del b._pending[sql][self.pending.get(sql, 0) :]
        del b._records[self.records :]
        b._devices = self.devices
        del b._unlinked[self.unlinked :]
        # what was read or written inside may be gone: read it again when needed
        b._known.clear()
        if b.dialect.failed(exc):  # the database failed (I/O, full, corrupt), not this part's data
            raise StorageError(f"the database failed: {exc}", original=exc) from exc
