"""Running work in SQL transactions, shared by the backends: one write transaction
(:func:`run_write`), the group commit of queued push batches (:func:`group_write`, and
:func:`speculative_group` for batches merged before the lock), a snapshot read
(:func:`batch_read`)."""

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
from sync.storage.sql_speculate import Contention, Speculation

__all__ = ["Queued", "batch_read", "group_write", "run_write", "speculative_group", "with_actor"]

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


Primed = tuple[int, str | None] | None
"""The sequence and audit head a batch continues from (None: it reads them)."""
Step = Callable[[Primed], tuple[SQLBatch, Any]]
"""One batch of a group, run under the lock: its batch, ready to finish, and answer."""


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
    return _run_steps(d, raw, [_fresh(d, raw, fn) for fn in fns], held)


def speculative_group(
    d: Dialect,
    raw: Conn,
    fns: list[tuple[Callable[[BatchTx], Any], bool]],
    held: list[float] | None = None,
    counts: dict[str, int] | None = None,
    contention: Contention | None = None,
) -> list[tuple[bool, Any]]:
    """:func:`group_write` with speculation (``sql_speculate.py``): each batch marked
    speculative runs first without the lock; then, under the lock, each one whose reads
    still hold is settled and written, and every other one runs as usual. Same answers
    and guarantees. ``counts`` gets ``kept``, ``rerun`` (read something that changed)
    and ``declined`` (needed the lock, or raised) added, or ``locked`` when
    ``contention`` had the lock tried first and it was free (nothing speculated)."""
    counts = counts if counts is not None else {}
    if contention is not None and contention.try_lock_first():
        got, primed = d.try_begin_batch(raw)
        if got:  # nobody else writing: run under the lock at once, as group_write
            _count(counts, "locked")
            return _run_steps(d, raw, [_fresh(d, raw, fn) for fn, _ in fns], held, (primed,))
        contention.seen()
    steps: list[Step] = []
    for fn, speculative in fns:
        spec: SQLBatch | None = None
        result: Any = None
        if speculative:
            spec = SQLBatch(d, raw, writable=True, speculation=Speculation())
            try:
                result = fn(spec)
            except Exception:  # NeedsLock, or anything: the locked run gives the answer
                spec = None
                _count(counts, "declined")
        steps.append(
            _fresh(d, raw, fn) if spec is None else _checked(d, raw, fn, spec, result, counts)
        )
    began: tuple[Primed] | None = None
    if contention is not None:  # still contended? (else the next batches try it first)
        got, primed = d.try_begin_batch(raw)
        if got:
            began = (primed,)
        else:
            contention.seen()  # and wait for it below
    return _run_steps(d, raw, steps, held, began)


def _fresh(d: Dialect, raw: Conn, fn: Callable[[BatchTx], Any]) -> Step:
    def step(primed: Primed) -> tuple[SQLBatch, Any]:
        batch = SQLBatch(d, raw, writable=True, primed=primed)
        return batch, fn(batch)

    return step


def _checked(
    d: Dialect,
    raw: Conn,
    fn: Callable[[BatchTx], Any],
    spec: SQLBatch,
    result: Any,
    counts: dict[str, int],
) -> Step:
    """The speculative batch ``spec`` kept if what it read still holds, else ``fn``
    run again under the lock."""

    def step(primed: Primed) -> tuple[SQLBatch, Any]:
        if spec.still_holds():
            _count(counts, "kept")
            spec.settle(primed)
            return spec, result
        _count(counts, "rerun")
        return _fresh(d, raw, fn)(primed)

    return step


def _count(counts: dict[str, int], what: str) -> None:
    counts[what] = counts.get(what, 0) + 1


def _run_steps(
    d: Dialect,
    raw: Conn,
    steps: list[Step],
    held: list[float] | None,
    began: tuple[Primed] | None = None,
) -> list[tuple[bool, Any]]:
    """Run ``steps`` in one transaction under the lock: begun here, or already
    (``began`` holds what its BEGIN read)."""
    primed = d.begin_batch(raw) if began is None else began[0]
    if held is not None:
        held.append(time.perf_counter())
    if len(steps) == 1:  # the common case when the writer is idle: no savepoint
        try:
            # in a pipeline the batch's writes go out as it buffers them
            # (SQLBatch.flush_ahead), then the rest and COMMIT
            with d.pipelined(raw):
                batch, result = steps[0](primed)
                batch.finish(then="COMMIT")
        except BaseException as exc:
            if raw.in_transaction:
                raw.execute("ROLLBACK")
            if isinstance(exc, d.error):
                return [(False, StorageError(f"batch failed: {exc}", original=exc))]
            if isinstance(exc, Exception):
                return [(False, exc)]
            raise
        return [(True, result)]
    outcomes: list[tuple[bool, Any]] = []
    try:
        for step in steps:
            raw.execute("SAVEPOINT batch")
            try:
                with d.pipelined(raw):  # as above: the batch's rows go out as it goes
                    batch, result = step(primed)
                    batch.finish(then="RELEASE batch")
            except Exception as exc:
                if raw.in_transaction:
                    raw.execute("ROLLBACK TO batch")
                    raw.execute("RELEASE batch")
                if isinstance(exc, d.error):
                    exc = StorageError(f"batch failed: {exc}", original=exc)
                outcomes.append((False, exc))
                continue
            # the next batch starts from the sequence and audit head this one left (the
            # first: what BEGIN read); one rolled back leaves them as they were
            primed = batch.left_at()
            outcomes.append((True, result))
        raw.execute("COMMIT")
    except BaseException:
        if raw.in_transaction:
            raw.execute("ROLLBACK")
        raise
    return outcomes


def batch_read(d: Dialect, raw: Conn, fn: Callable[[BatchTx], T]) -> T:
    """``fn`` over one snapshot, in a read-only transaction."""
    seen = d.begin_read_batch(raw)
    try:
        return fn(SQLBatch(d, raw, writable=False, seen=seen))
    finally:
        raw.execute("ROLLBACK")


def with_actor(tx: BatchTx, actor: Actor) -> BatchTx:
    tx.actor = actor
    return tx
