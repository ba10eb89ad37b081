"""How an SQL backend runs work: one writer, readers, transactions, group commit.

Both backends have one writer connection on a thread of its own behind an asyncio lock
(so a process never has two writes in flight, and never meets "database is locked"), and
readers on other threads. A backend says how to run a function on the writer's or a
reader's connection (:meth:`SQLBase._on_writer`, :meth:`SQLBase._on_reader`); everything
else (opening and ending transactions, the group commit of queued push batches, mapping
driver errors) is here, once.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sync.audit import SYSTEM, Actor
from sync.errors import StorageError
from sync.storage.contract import BatchTx, Store
from sync.storage.sql_dialect import Conn, Dialect
from sync.storage.sql_run import (
    Queued,
    batch_read,
    group_write,
    run_write,
    speculative_group,
    with_actor,
)
from sync.storage.sql_speculate import Contention

__all__ = ["SQLBase"]

T = TypeVar("T")


class SQLBase(Store):
    """The plumbing every SQL backend shares; see the module docstring."""

    dialect: Dialect

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._queued: list[Queued] = []  # write batches waiting for the writer
        self._busy = 0.0  # seconds the writer spent in push batches (writer_busy_seconds)
        # speculative push batches: kept, rerun under the lock, declined (sql_speculate)
        # or run under the lock at once, having found it free (locked)
        self.speculation: dict[str, int] = {"kept": 0, "rerun": 0, "declined": 0, "locked": 0}
        self.contention = Contention()  # whether push batches speculate

    @abc.abstractmethod
    async def _on_writer(self, fn: Callable[[Conn], T]) -> T:
        """Run ``fn`` with the writer's connection on the writer's thread (the caller
        holds ``_lock``). Exceptions propagate as raised."""

    @abc.abstractmethod
    async def _on_reader(self, fn: Callable[[Conn], T]) -> T:
        """Run ``fn`` with a reader's connection on a reader thread; driver errors
        become StorageError."""

    def _after_commit(self) -> None:
        """Called after each commit of the writer (SQLite checkpoints from here)."""

    def _check_open(self) -> None:
        """Raise StorageError if the store is not open."""

    def writer_queue_depth(self) -> int:
        return len(self._queued)

    def writer_busy_seconds(self) -> float:
        return self._busy

    def speculation_counts(self) -> dict[str, int]:
        return dict(self.speculation) if self.dialect.speculates else {}

    # --- running statements ------------------------------------------------------

    async def _write(self, fn: Callable[[Conn], T]) -> T:
        """``fn(conn)`` in one serialised write transaction (see :func:`run_write`)."""
        self._check_open()
        d = self.dialect
        async with self._lock:
            result = await self._on_writer(lambda db: run_write(d, db, fn))
        self._after_commit()
        return result

    async def _fetchall(self, sql: str, params: Any = ()) -> list[Any]:
        return await self._on_reader(lambda db: list(db.execute(sql, params).fetchall()))

    async def _fetchone(self, sql: str, params: Any = ()) -> Any:
        rows = await self._fetchall(sql, params)
        return rows[0] if rows else None

    async def ping(self) -> None:
        await self._fetchone("SELECT 1")

    async def schema_version(self) -> int:
        row = await self._fetchone("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations")
        return int(row["v"]) if row else 0

    # --- transactions ----------------------------------------------------------

    @asynccontextmanager
    async def _held_write(self) -> AsyncIterator[Callable[[Callable[[Conn], Any]], Any]]:
        """A write transaction held across awaits (:meth:`Store.transaction`): yields
        how to run a function on the writer inside it."""
        self._check_open()
        d = self.dialect

        def begin(db: Conn) -> None:
            for sql in d.begin_write:
                db.execute(sql)

        def end(db: Conn, commit: bool) -> None:
            if db.in_transaction:
                db.execute("COMMIT" if commit else "ROLLBACK")

        async with self._lock:
            try:
                await self._on_writer(begin)
            except d.error as exc:
                await self._on_writer(lambda db: end(db, False))
                raise StorageError("cannot begin a transaction", original=exc) from exc
            try:
                yield self._on_writer
            except BaseException as exc:
                await self._on_writer(lambda db: end(db, False))
                if isinstance(exc, d.error) and not isinstance(exc, d.integrity_error):
                    raise StorageError(f"write failed: {exc}", original=exc) from exc
                raise
            try:
                await self._on_writer(lambda db: end(db, True))
            except d.error as exc:
                await self._on_writer(lambda db: end(db, False))
                raise StorageError("commit failed", original=exc) from exc
        self._after_commit()

    async def write_batch(
        self, fn: Callable[[BatchTx], T], *, actor: Actor = SYSTEM, speculative: bool = False
    ) -> T:
        """Group commit: batches that queue while the writer is busy run together,
        each in its own savepoint, under one ``COMMIT`` (one fsync). A batch that
        raises rolls back to its savepoint alone; every answer is given only after the
        commit, and if the commit fails every batch of the group gets the error.
        Each batch's writes are audited as its own ``actor``'s."""
        self._check_open()
        mine = Queued(
            lambda tx: fn(with_actor(tx, actor)),
            asyncio.get_running_loop().create_future(),
            speculative and self.dialect.speculates,
        )
        # if this caller is cancelled after its batch was taken into a group, nobody
        # awaits the answer: retrieve it so a failure is not reported as unretrieved
        mine.done.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._queued.append(mine)
        try:
            async with self._lock:
                if not mine.done.done():  # nobody took it along: lead a group
                    group, self._queued = self._queued, []
                    # shielded: were this request cancelled, the others still get
                    # their answers (the group runs to its end on the writer's thread)
                    await asyncio.shield(self._run_group(group))
        except asyncio.CancelledError:
            if mine in self._queued:  # still waiting: it will not run
                self._queued.remove(mine)
            raise
        result: T = await mine.done
        return result

    async def _run_group(self, group: list[Queued]) -> None:
        d = self.dialect
        fns = [(q.fn, q.speculative) for q in group]
        try:
            try:  # one hop to the writer's thread for the whole group
                outcomes = await self._on_writer(lambda db: self._timed_group(db, fns))
            except d.error as exc:
                raise StorageError(f"batch failed: {exc}", original=exc) from exc
        except BaseException as exc:  # the commit (or the transaction) failed: all fail
            for q in group:
                if not q.done.done():
                    q.done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        self._after_commit()
        for q, (ok, value) in zip(group, outcomes, strict=True):
            if q.done.done():
                continue
            if ok:
                q.done.set_result(value)
            else:
                q.done.set_exception(value)

    def _timed_group(
        self, db: Conn, fns: list[tuple[Callable[[BatchTx], Any], bool]]
    ) -> list[tuple[bool, Any]]:
        """:func:`group_write`, the time its transaction held the write lock added to
        the writer's busy seconds (on the writer's thread: one writer, no race)."""
        held: list[float] = []
        try:
            if self.contention.mode != "never" and any(speculative for _, speculative in fns):
                return speculative_group(
                    self.dialect, db, fns, held, self.speculation, self.contention
                )
            return group_write(self.dialect, db, [fn for fn, _ in fns], held)
        finally:
            if held:
                self._busy += time.perf_counter() - held[0]

    async def read_batch(self, fn: Callable[[BatchTx], T]) -> T:
        d = self.dialect
        return await self._on_reader(lambda db: batch_read(d, db, fn))
