"""The embedded backend: SQLite through aiosqlite.

One writer connection behind an asyncio lock (so concurrent requests queue instead of
meeting "database is locked") and reader connections, each on its own aiosqlite thread;
WAL lets reads run while a write is in progress. Schema migrations run with
sqlite-utils before the connections open. Every statement is the shared SQL of
:class:`~sync.storage.sql_store.SQLStore`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from sync.errors import StorageError
from sync.models import Device, Filter, User
from sync.storage.sql_accounts import auth_state
from sync.storage.sql_dialect import Conn, Dialect
from sync.storage.sql_store import SQLStore
from sync.storage.sqlite_migrations import apply_migrations

__all__ = ["SQLiteDialect", "SQLiteStore"]

_CHECKPOINT_EVERY = 8  # commits between background checkpoints
T = TypeVar("T")


class SQLiteDialect(Dialect):
    name = "sqlite"
    error = sqlite3.Error
    integrity_error = sqlite3.IntegrityError
    begin_write = ("BEGIN IMMEDIATE",)
    begin_read = "BEGIN"
    evidence_from = (
        "json_each(r.data, CASE r.kind WHEN 'finding' THEN '$.evidence_hashes'"
        " ELSE '$.evidence' END) j"
    )
    evidence_value = "j.value"
    evidence_is_text = "j.type = 'text'"

    def failed(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.OperationalError | sqlite3.InternalError) or (
            type(exc) is sqlite3.DatabaseError
        )

    def field_filter(self, f: Filter) -> tuple[str, list[Any]]:
        col = f"json_extract(data, '$.{f.field}')"
        if f.op == "contains":
            return (
                f"EXISTS (SELECT 1 FROM json_each(data, '$.{f.field}') WHERE value = ?)",
                [f.value],
            )
        if f.op == "in":
            values = list(f.value)
            return f"{col} IN ({','.join('?' * len(values))})", values
        op = {"eq": "=", "ne": "IS NOT", "gte": ">=", "lte": "<="}[f.op]
        return f"{col} {op} ?", [f.value]

    def order_by(self, field: str, direction: str) -> str:
        return f"json_extract(data, '$.{field}') {direction}"

    def tuples(self, db: Conn, sql: str, params: Sequence[Any]) -> Iterable[tuple[Any, ...]]:
        cur = db.execute(sql, params)
        cur.row_factory = None  # plain tuples: no sqlite3.Row per record
        rows: Iterable[tuple[Any, ...]] = cur
        return rows


class SQLiteStore(SQLStore):
    """SQLite storage in one file.

    ``synchronous`` is SQLite's durability setting: ``FULL`` (default) survives power
    loss; ``NORMAL`` survives a killed process, which is what the crash test checks.
    """

    dialect = SQLiteDialect()

    def __init__(self, path: str | Path, *, synchronous: str = "FULL", readers: int = 3) -> None:
        super().__init__()
        self.path = str(path)
        self.synchronous = synchronous
        self._writer: aiosqlite.Connection | None = None
        self._readers: list[aiosqlite.Connection] = []
        self._auth_conn: sqlite3.Connection | None = None  # see auth_state
        self._next_reader = 0
        self.reader_count = readers
        self._ckpt: aiosqlite.Connection | None = None  # see _after_commit
        self._ckpt_task: asyncio.Task[None] | None = None
        self._since_ckpt = 0

    # --- lifecycle -------------------------------------------------------------

    async def open(self) -> None:
        if self._writer is not None:
            return
        if self.path == ":memory:":
            raise StorageError(
                "an in-memory database cannot be shared by the writer and"
                " reader connections; use a file"
            )
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            await asyncio.to_thread(apply_migrations, self.path)
            self._writer = await self._connect()
            # the writer's commits never checkpoint: _after_commit does it on its own
            # connection and thread, off the path of the answer
            await self._writer.execute("PRAGMA wal_autocheckpoint=0")
            self._ckpt = await self._connect()
            self._readers = [await self._connect() for _ in range(max(1, self.reader_count))]
            self._auth_conn = self._connect_auth()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open database {self.path}", original=exc) from exc

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA busy_timeout=5000",
            f"PRAGMA synchronous={self.synchronous}",
        ):
            await conn.execute(pragma)
        return conn

    def _connect_auth(self) -> sqlite3.Connection:
        """A plain connection used on the event loop's own thread for the per-request
        authentication read: two primary-key lookups take microseconds, less than the
        hop to a reader thread and back. ``busy_timeout`` 0: if the database is ever
        busy for a reader (WAL recovery), ``auth_state`` takes the reader-thread path
        and waits there instead of blocking the loop."""
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout=0")
        conn.execute("PRAGMA query_only=ON")
        return conn

    async def close(self) -> None:
        if self._ckpt_task is not None:
            await asyncio.gather(self._ckpt_task, return_exceptions=True)
            self._ckpt_task = None
        for conn in (self._writer, self._ckpt, *self._readers):
            if conn is not None:
                await conn.close()
        if self._auth_conn is not None:
            self._auth_conn.close()
        self._auth_conn = None
        self._ckpt = None
        self._writer = None
        self._readers = []

    # --- plumbing --------------------------------------------------------------

    def _check_open(self) -> None:
        if self._writer is None:
            raise StorageError("store is not open")

    async def _on_writer(self, fn: Callable[[Conn], T]) -> T:
        """aiosqlite runs everything of a connection on its one thread; ``_execute``
        is how it runs a callable there: the whole function costs one hop."""
        assert self._writer is not None
        result: T = await self._writer._execute(fn, self._writer._conn)  # type: ignore[no-untyped-call]
        return result

    async def _on_reader(self, fn: Callable[[Conn], T]) -> T:
        """Readers in turn: each has its own thread, so reads run side by side (WAL)."""
        if not self._readers:
            raise StorageError("store is not open")
        self._next_reader = (self._next_reader + 1) % len(self._readers)
        reader = self._readers[self._next_reader]
        try:
            result: T = await reader._execute(fn, reader._conn)  # type: ignore[no-untyped-call]
        except sqlite3.Error as exc:
            raise StorageError(f"query failed: {exc}", original=exc) from exc
        return result

    def _after_commit(self) -> None:
        """Every few commits, a PASSIVE checkpoint (WAL pages copied into the database
        file) on the checkpoint connection's thread. It never blocks the writer or
        readers, and durability does not depend on it (a commit is durable in the WAL);
        with SQLite's automatic checkpoint, every thousand pages one commit paid for
        writing 4 MB and two fsyncs before its answer."""
        self._since_ckpt += 1
        if self._since_ckpt < _CHECKPOINT_EVERY or self._ckpt is None:
            return
        if self._ckpt_task is not None and not self._ckpt_task.done():
            return
        self._since_ckpt = 0
        self._ckpt_task = asyncio.get_running_loop().create_task(self._checkpoint(self._ckpt))

    @staticmethod
    async def _checkpoint(conn: aiosqlite.Connection) -> None:
        # busy or closing: a later one catches up
        with contextlib.suppress(sqlite3.Error, ValueError):
            await conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    async def auth_state(
        self, user_id: str, device_id: str | None
    ) -> tuple[User | None, Device | None]:
        """Read on the event loop's thread (see ``_connect_auth``); if the database is
        busy, on a reader thread instead."""
        if self._auth_conn is not None:
            try:
                return auth_state(self._auth_conn, user_id, device_id)
            except sqlite3.OperationalError:
                pass  # busy: read on a reader thread, which may wait
        return await super().auth_state(user_id, device_id)
