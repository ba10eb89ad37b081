"""Running work in SQL transactions, shared by the backends: one write transaction
(:func:`run_write`), the group commit of queued push batches (:func:`group_write`), a
snapshot read (:func:`batch_read`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sync.audit import Actor
from sync.errors import StorageError
from sync.storage.contract import BatchTx
from sync.storage.sql_batch import SQLBatch
from sync.storage.sql_dialect import Conn, Dialect

__all__ = ["Queued", "batch_read", "group_write", "run_write", "with_actor"]

T = TypeVar("T")


def run_write(d: Dialect, db: Conn, fn: Callable[[Conn], T]) -> T:
    """``fn(db)`` in one serialised write transaction: committed if it returns, rolled
    back if it raises. Driver errors other than a refused constraint (which the caller
    turns into a domain error) become StorageError."""
    for sql in d.begin_write:
        db.execute(sql)
    try:
        result = fn(db)
    except BaseException as exc:
        if db.in_transaction:
            db.execute("ROLLBACK")
        if isinstance(exc, d.error) and not isinstance(exc, d.integrity_error):
            raise StorageError(f"write failed: {exc}", original=exc) from exc
        raise
    try:
        db.execute("COMMIT")
    except d.error as exc:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise StorageError("commit failed", original=exc) from exc
    return result


class Queued:
    """A batch waiting for the writer, and where its answer goes."""

    __slots__ = ("done", "fn", "speculative")

    def __init__(
        self, fn: Callable[[BatchTx], Any], done: asyncio.Future[Any], speculative: bool = False
    ) -> None:
        self.fn = fn
        self.done = done
        self.speculative = speculative


def group_write(
    d: Dialect,
    raw: Conn,
    fns: list[Callable[[BatchTx], Any]],
    held: list[float] | None = None,
) -> list[tuple[bool, Any]]:
    """Run batches one after the other in one transaction, each in a savepoint, then
    commit once. Returns (True, result) or (False, exception) per batch; raises if the
    transaction itself fails (then nothing is committed). ``held`` gets the
    ``time.perf_counter()`` at which the transaction had begun (the write lock taken)."""
    if len(fns) == 1:  # the common case when the writer is idle: no savepoint
        try:
            return [(True, _batch_write(d, raw, fns[0], held))]
        except d.error as exc:
            return [(False, StorageError(f"batch failed: {exc}", original=exc))]
        except Exception as exc:
            return [(False, exc)]
    outcomes: list[tuple[bool, Any]] = []
    primed = d.begin_batch(raw)
    if held is not None:
        held.append(time.perf_counter())
    try:
        for fn in fns:
            raw.execute("SAVEPOINT batch")
            try:
                # each batch starts from the sequence and audit head the one before
                # left (the first: what BEGIN read); one rolled back leaves them as
                # they were
                batch = SQLBatch(d, raw, writable=True, primed=primed)
                result = fn(batch)
                batch.finish(then="RELEASE batch")
            except Exception as exc:
                if raw.in_transaction:
                    raw.execute("ROLLBACK TO batch")
                    raw.execute("RELEASE batch")
                if isinstance(exc, d.error):
                    exc = StorageError(f"batch failed: {exc}", original=exc)
                outcomes.append((False, exc))
                continue
            primed = batch.left_at()
            outcomes.append((True, result))
        raw.execute("COMMIT")
    except BaseException:
        if raw.in_transaction:
            raw.execute("ROLLBACK")
        raise
    return outcomes


def _batch_write(
    d: Dialect, raw: Conn, fn: Callable[[BatchTx], T], held: list[float] | None = None
) -> T:
    primed = d.begin_batch(raw)
    if held is not None:
        held.append(time.perf_counter())
    try:
        batch = SQLBatch(d, raw, writable=True, primed=primed)
        result = fn(batch)
        batch.finish(then="COMMIT")
    except BaseException:
        if raw.in_transaction:
            raw.execute("ROLLBACK")
        raise
    return result


def batch_read(d: Dialect, raw: Conn, fn: Callable[[BatchTx], T]) -> T:
    """``fn`` over one snapshot, in a read-only transaction."""
    raw.execute(d.begin_read)
    try:
        return fn(SQLBatch(d, raw, writable=False))
    finally:
        raw.execute("ROLLBACK")


def with_actor(tx: BatchTx, actor: Actor) -> BatchTx:
    tx.actor = actor
    return tx
