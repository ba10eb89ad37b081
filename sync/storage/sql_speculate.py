"""Push batches merged before the write lock, checked under it (PostgreSQL).

Every write transaction of every instance holds one advisory lock (the serialised
sequencer, ``docs/architecture.md``). Were a push's merge (Python, milliseconds per
hundred mutations) done under that lock, more instances would add little: the lock
would be held most of the time. So a push batch first runs *speculatively*, without the
lock and outside any transaction, against what the records are at that moment:

- it reads as usual, and :class:`Speculation` notes what it read: each record's ``seq``
  (0: absent), the mutation ids it found unused, and the (kind, inspection) sets it
  listed;
- it writes only to its buffers, with provisional sequence numbers (1, 2, ...) and its
  audit events not yet linked into the chain;
- anything only a locked batch may do (write with SQL, read back what it buffered, use
  the feed, the sequence or other tables) raises :class:`NeedsLock`.

Then, under the lock, :meth:`Speculation.still_holds` reads those things again: if every
record still has the ``seq`` seen, no mutation id seen unused is used now and nothing
was added to a listed set, the batch's outcome is the one a locked run would give, and
:meth:`~sync.storage.sql_batch.SQLBatch.settle` numbers its rows from the real sequence
and links its events to the real chain head before they are written. Otherwise (another
instance or batch wrote what it read) the batch runs again, under the lock, as every
batch did before (:func:`~sync.storage.sql_run.speculative_group` runs the two halves).
A speculative batch must therefore be re-runnable, and must not use the ``seq`` of the
records it writes.

Speculating pays off only while another process writes: alone, the check under the lock
and the settling are spent for nothing (a tenth of a push's time). :class:`Contention`
decides: by default (``auto``) a batch first *tries* the lock; got at once, the batch
runs under it as usual; found taken, the batch speculates, and so do the batches of the
next seconds without trying. A speculating batch tries the lock too before waiting for
it: found taken again, the seconds start anew, so instances that keep meeting keep
merging ahead.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from sync.errors import StorageError
from sync.storage.sql_dialect import Conn, Dialect

__all__ = ["Contention", "NeedsLock", "Speculation"]

Mode = Literal["auto", "always", "never"]
_clock = time.monotonic  # read through the module: tests move it


class Contention:
    """Whether push batches speculate (see the module docstring). ``mode``: ``auto``
    (try the lock first; speculate for ``hold`` seconds after finding it taken),
    ``always``, or ``never`` (take the lock and wait, as a lone instance may)."""

    def __init__(self, mode: Mode = "auto", hold: float = 2.0) -> None:
        self.mode: Mode = mode
        self.hold = hold
        self._until = 0.0

    @property
    def until(self) -> float:
        """The ``time.monotonic()`` until which batches speculate without trying."""
        return self._until

    def try_lock_first(self) -> bool:
        return self.mode == "auto" and _clock() >= self._until

    def seen(self) -> None:
        """The lock was found held by another process."""
        self._until = _clock() + self.hold


class NeedsLock(StorageError):
    """A speculative batch did what only a batch under the write lock may. A
    StorageError, so that the engine lets it through as it does a database failure."""

    def __init__(self, what: str) -> None:
        super().__init__(f"a speculative batch cannot {what}")


class Speculation:
    """What a speculative batch read, to be checked again under the lock."""

    __slots__ = ("absent_keys", "after", "scans", "seqs")

    def __init__(self) -> None:
        # the change sequence before the batch first listed records (read then: a
        # batch that lists nothing needs no such read)
        self.after: int | None = None
        self.seqs: dict[tuple[str, str], int] = {}  # record -> seq seen, 0 if absent
        self.absent_keys: set[str] = set()  # mutation ids seen unused
        self.scans: set[tuple[str, str | None]] = set()  # (kind, inspection or None)

    def saw(self, kind: str, record_id: str, seq: int) -> None:
        self.seqs.setdefault((kind, record_id), seq)

    def still_holds(self, d: Dialect, db: Conn) -> bool:
        """Under the lock: is everything the batch read still so? One statement (one
        round trip under the lock), each part a key lookup by an index."""
        arms: list[str] = []
        params: list[Any] = []
        by_kind: dict[str, list[str]] = {}
        for kind, rid in self.seqs:
            by_kind.setdefault(kind, []).append(rid)
        for kind, ids in by_kind.items():
            for start in range(0, len(ids), 500):
                cond, args = d.in_list("id", ids[start : start + 500])
                arms.append(f"SELECT 'r', kind, id, seq FROM records WHERE kind = ? AND {cond}")
                params += [kind, *args]
        keys = sorted(self.absent_keys)
        for start in range(0, len(keys), 500):
            cond, args = d.in_list("key", keys[start : start + 500])
            arms.append(f"SELECT 'm', '', key, 0 FROM mutations WHERE {cond}")
            params += args
        for kind, inspection_id in sorted(self.scans, key=lambda s: (s[0], s[1] or "")):
            where = "kind = ? AND seq > ?"
            args = [kind, self.after or 0]
            if inspection_id is not None:
                where = "inspection_id = ? AND " + where
                args.insert(0, inspection_id)
            arms.append(
                "SELECT 's', kind, id, seq FROM"
                f" (SELECT kind, id, seq FROM records WHERE {where} LIMIT 1) AS s"
            )
            params += args
        if not arms:
            return True
        now: dict[tuple[str, str], int] = {}
        for tag, kind, rid, seq in db.execute(" UNION ALL ".join(arms), params).fetchall():
            if tag != "r":  # a mutation id used since, or a record added to a listing
                return False
            now[(kind, rid)] = int(seq)
        return all(now.get(key, 0) == seq for key, seq in self.seqs.items())
