"""Batches over SQL, shared by the backends: the sync engine's synchronous access inside
one transaction (:class:`~sync.storage.contract.BatchTx`) on the writer's (or a reader's)
thread, and the group commit that runs queued write batches under one ``COMMIT``.

The SQL is written once with ``?`` parameters; a backend's connection
(:class:`~sync.storage.sql_dialect.Conn`) runs it, and its
:class:`~sync.storage.sql_dialect.Dialect` supplies the few fragments that differ (JSON
paths, how a write transaction begins, which driver errors mean what).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sync.audit import SYSTEM, AuditContext, diff
from sync.errors import StorageError
from sync.models import FeedRow, StoredRecord
from sync.storage.shared import (
    FIELD,
    Chain,
    audit_values,
    join_data,
    now_text,
    record_from_row,
    scope_of,
    split_data,
    write_op,
)
from sync.storage.sql_dialect import Conn, Dialect
from sync.storage.sql_feed import feed_sql
from sync.storage.sql_reads import BatchReads
from sync.storage.sql_rows import (
    AUDIT_SQL,
    HEAD_SQL,
    STATE_SQL,
    UPSERT_SQL,
    last_per_key,
    missing_evidence,
    stored_evidence,
)
from sync.storage.sql_savepoint import Savepoint
from sync.storage.sql_speculate import NeedsLock, Speculation

__all__ = ["SQLBatch"]

T = TypeVar("T")

AHEAD = 32
"""Rows buffered before :meth:`SQLBatch.flush_ahead` sends them (a power of two: one
prepared statement per table, see ``PGConn.executemany``)."""


class SQLBatch(BatchReads):
    """:class:`~sync.storage.contract.BatchTx` on one connection, inside a transaction
    the caller opened. Append-only rows (audit events, mutation results, quarantine)
    and the sequence are buffered and written once by :meth:`finish`; record writes
    are buffered too and written (one ``executemany``) before anything reads records
    (:meth:`_q`) or at the end. A push of a hundred mutations is a few statements, not
    a few hundred round trips to a database server."""

    def __init__(
        self,
        dialect: Dialect,
        db: Conn,
        *,
        writable: bool,
        primed: tuple[int, str | None] | None = None,
        speculation: Speculation | None = None,
        seen: tuple[int, int, int | None] | None = None,
    ) -> None:
        self.dialect = dialect
        self.db = db
        self.writable = writable
        self._now = now_text()
        self._seq: int | None = None  # allocated in memory, written once at the end
        # the stored sequence, when the transaction's BEGIN read it (Dialect.begin_batch)
        self._seq_stored: int | None = None
        # append-only rows, written with one executemany per table at the end
        self._pending: dict[str, list[tuple[Any, ...]]] = {}
        self.actor = SYSTEM
        self.context = AuditContext()
        self._chain = Chain()  # the audit chain's head, once read
        # what this batch knows of records it read or wrote: (data, deleted), so that
        # writes are audited field by field without reading the record again
        self._known: dict[tuple[str, str], tuple[dict[str, Any], bool]] = {}
        self._records: list[tuple[Any, ...]] = []  # record upserts not yet written
        # device sync states not yet written: user, fields, mutations received
        self._devices: dict[str, tuple[str, dict[str, Any], int]] = {}
        self._open: Savepoint | None = None
        self._written: set[tuple[str, str]] = set()  # keys with rows in _records
        # speculative (sql_speculate.py): what it read, its events not yet chained, and
        # sequence numbers from 1 until it is settled under the lock
        self._spec = speculation
        self._unlinked: list[list[Any]] = []
        if speculation is not None:
            self._seq_stored = 0
        if primed is not None:
            self._seq_stored = primed[0]
            self._chain.start(primed[1])
        # a snapshot read: the sequence, tombstone horizon and scope version its BEGIN read
        self._horizon: int | None = None
        self._scope_version: tuple[int | None] | None = None
        if seen is not None:
            self._seq_stored, self._horizon, version = seen
            self._scope_version = (version,)

    def _locked(self, what: str) -> None:
        """Only a batch under the write lock may do ``what``."""
        if self._spec is not None:
            raise NeedsLock(what)

    def still_holds(self) -> bool:
        """Under the lock: is what this speculative batch read still so?"""
        assert self._spec is not None
        return self._spec.still_holds(self.dialect, self.db)

    def settle(self, state: tuple[int, str | None] | None) -> None:
        """Under the lock, after :meth:`still_holds`: number the buffered rows from
        the stored sequence and chain the audit events to the stored head (``state``,
        or read now), making this an ordinary batch ready for :meth:`finish`."""
        if state is None:
            row = self.db.execute(STATE_SQL).fetchone()
            state = (int(row[0]), None if row[1] is None else str(row[1]))
        base, head = state
        self._records = [(*r[:5], r[5] + base, *r[6:]) for r in self._records]
        if self._seq is not None:
            self._seq += base
        self._seq_stored = base
        self._chain.start(head)
        rows = self._pending.setdefault(AUDIT_SQL, [])
        for values in self._unlinked:
            values[0] += base  # the event's seq
            rows.append(self._chain.link(values))
        self._unlinked = []
        self._spec = None

    def _flush(self) -> None:
        """Write the buffered record upserts (inside the open savepoint, if any)."""
        if self._records:
            self._direct()
            self.db.executemany(UPSERT_SQL, last_per_key(self._records))
            self._records.clear()
            self._written.clear()

    def _direct(self) -> None:
        """About to write with SQL: an open savepoint begins its SQL savepoint."""
        self._locked("write with SQL")
        if self._open is not None and not self._open.started:
            self._open.begin()

    def _q(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """A query that reads records: sees every record write of the batch."""
        self._flush()
        return self.db.execute(sql, params)

    def _w(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """A write made at once (not buffered)."""
        self._direct()
        return self.db.execute(sql, params)

    def _remember(self, rec: StoredRecord) -> StoredRecord:
        self._known[(rec.kind, rec.id)] = (rec.data, rec.deleted)
        return rec

    def savepoint(self) -> Savepoint:
        self._write()
        return Savepoint(self)

    def _prior(self, key: tuple[str, str]) -> tuple[dict[str, Any], bool]:
        """The record as it is before a write: (data, deleted); a missing one counts
        as deleted."""
        if key in self._known:
            return self._known[key]
        sql = "SELECT data, meta, deleted, seq FROM records WHERE kind = ? AND id = ?"
        if key in self._written:  # written, then forgotten by a rolled-back part
            self._locked("read back what it wrote")
            row = self._q(sql, key).fetchone()
        else:  # the buffered writes cannot change the answer: no need to write them
            row = self.db.execute(sql, key).fetchone()
        if self._spec is not None:
            self._spec.saw(key[0], key[1], int(row[3]) if row else 0)
        return (join_data(row[0], row[1]), bool(row[2])) if row else ({}, True)

    def _audit(self, rec: StoredRecord, op: str | None, prior: tuple[dict[str, Any], bool]) -> None:
        old, old_deleted = prior
        before, after = diff(None if old_deleted else old, None if rec.deleted else rec.data)
        op = op or write_op(old_deleted, rec.deleted)
        values = audit_values(
            self.actor,
            self.context,
            seq=rec.seq,
            kind=rec.kind,
            record_id=rec.id,
            inspection_id=scope_of(rec.kind, rec.id, rec.data),
            rev=rec.rev,
            op=op,
            old=before,
            new=after,
            now=self._now,
        )
        if self._spec is not None:  # chained when settled under the lock
            self._unlinked.append(values)
            return
        if self._chain.head is None:
            row = self.db.execute(HEAD_SQL).fetchone()
            self._chain.start(str(row[0]) if row else None)
        self._pending.setdefault(AUDIT_SQL, []).append(self._chain.link(values))

    def _stored_seq(self) -> int:
        if self._seq_stored is None:
            self._seq_stored = int(self.db.execute("SELECT value FROM seq_counter").fetchone()[0])
        return self._seq_stored

    def _next_seq(self) -> int:
        if self._seq is None:
            self._seq = self._stored_seq()
        self._seq += 1
        return self._seq

    def finish(self, *, then: str | None = None) -> None:
        """Write what the batch buffered (inside its transaction): the record upserts,
        the append-only rows and the sequence it allocated; then the statement ``then``
        (``COMMIT``, ``RELEASE batch``). On PostgreSQL these go in one round trip (a
        pipeline)."""
        self._device_rows()
        with self.dialect.pipelined(self.db):
            self._flush()
            self._write_pending()
            if self._seq is not None:
                self.db.execute("UPDATE seq_counter SET value = ?", (self._seq,))
            if then is not None:
                self.db.execute(then)

    def flush_ahead(self) -> None:
        """Inside a pipeline (PostgreSQL, under the lock), once :data:`AHEAD` rows are
        buffered: send them, not waiting for the answer. The database inserts them on
        its own core while the batch goes on merging (a pipeline reads back results only
        when a read needs them, or at the end)."""
        if self._spec is not None or self._open is not None or not getattr(self.db, "piped", 0):
            return
        if len(self._records) >= AHEAD or len(self._pending.get(AUDIT_SQL, ())) >= AHEAD:
            self._flush()
            self._write_pending()

    def left_at(self) -> tuple[int, str | None] | None:
        """After :meth:`finish`, the sequence and audit chain head the batch left, for
        the next batch of the same transaction to start from (``primed``); None when
        the batch never learnt them."""
        if self._chain.head is None or (self._seq is None and self._seq_stored is None):
            return None
        return self.max_seq(), self._chain.head

    def _write_pending(self) -> None:
        for sql, rows in self._pending.items():
            self.db.executemany(sql, rows)
        self._pending.clear()

    def _write(self) -> None:
        if not self.writable:
            raise StorageError("write in a read batch")

    def put_record(
        self,
        kind: str,
        record_id: str,
        data: dict[str, Any],
        *,
        rev: int,
        deleted: bool = False,
        op: str | None = None,
        fresh: bool = False,
    ) -> StoredRecord:
        self._write()
        prior = ({}, True) if fresh else self._prior((kind, record_id))
        self._written.add((kind, record_id))
        seq = self._next_seq()
        now = self._now
        self._records.append(
            (
                kind,
                record_id,
                *split_data(data),
                rev,
                seq,
                int(deleted),
                now,
                now,
                scope_of(kind, record_id, data),
            )
        )
        at = datetime.fromisoformat(now)
        rec = StoredRecord(
            kind=kind,
            id=record_id,
            data=data,
            rev=rev,
            seq=seq,
            deleted=deleted,
            created_at=at,
            updated_at=at,
        )
        self._audit(rec, op, prior)
        return self._remember(rec)

    def put_mutation(
        self,
        key: str,
        *,
        user_id: str,
        device_id: str | None,
        batch_id: str,
        result: bytes,
        at: datetime,
    ) -> None:
        self._write()
        self._pending.setdefault(
            "INSERT INTO mutations (key, user_id, device_id, batch_id, result, received_at)"
            " VALUES (?,?,?,?,?,?)",
            [],
        ).append((key, user_id, device_id, batch_id, result, at.isoformat()))

    def _insert(self, table: str, row: dict[str, Any]) -> None:
        self._write()
        sql = f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})"
        self._pending.setdefault(sql, []).append(tuple(row.values()))

    def add_quarantine(self, row: dict[str, Any]) -> None:
        self._insert("quarantine", row)

    def feed(
        self,
        after_seq: int,
        inspection_ids: Sequence[str],
        refs: Sequence[tuple[str, str]],
        limit: int,
        *,
        max_seq: int | None = None,
        live_only: bool = False,
    ) -> list[StoredRecord]:
        self._locked("feed")
        sql, args = feed_sql(
            self.dialect,
            "*",
            after_seq,
            inspection_ids,
            refs,
            limit,
            max_seq=max_seq,
            live_only=live_only,
        )
        return [record_from_row(r) for r in self._q(sql, args).fetchall()]

    def feed_json(
        self,
        after_seq: int,
        inspection_ids: Sequence[str],
        refs: Sequence[tuple[str, str]],
        limit: int,
        *,
        max_seq: int | None = None,
        live_only: bool = False,
    ) -> list[FeedRow]:
        self._locked("feed json")
        sql, args = feed_sql(
            self.dialect,
            "kind, id, rev, seq, deleted, data",
            after_seq,
            inspection_ids,
            refs,
            limit,
            max_seq=max_seq,
            live_only=live_only,
        )
        self._flush()
        rows = self.dialect.tuples(self.db, sql, args)  # no row object per record
        return [FeedRow(k, i, rv, sq, bool(d), data) for k, i, rv, sq, d, data in rows]

    def bound_refs(self, inspection_ids: Sequence[str]) -> list[tuple[str, str]]:
        self._locked("bound refs")
        if not inspection_ids:
            return []
        rows = self._q(
            "SELECT kind, id FROM records WHERE inspection_id IN"
            f" ({','.join('?' * len(inspection_ids))}) ORDER BY seq",
            list(inspection_ids),
        ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def get_snapshot(self, key: str) -> str | None:
        self._locked("get snapshot")
        row = self.db.execute("SELECT scope FROM scope_snapshots WHERE hash = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def put_snapshot(self, key: str, scope: str) -> None:
        self._write()
        self._w(
            "INSERT INTO scope_snapshots (hash, scope, created_at) VALUES (?,?,?)"
            " ON CONFLICT DO NOTHING",
            (key, scope, self._now),
        )

    def tombstone_horizon(self) -> int:
        self._locked("tombstone horizon")
        if self._horizon is not None:
            return self._horizon
        row = self.db.execute(
            "SELECT value FROM store_meta WHERE key = 'tombstone_horizon'"
        ).fetchone()
        return int(row[0]) if row else 0

    def scope_version(self) -> int | None:
        self._locked("scope version")
        if self._scope_version is None or self.writable:  # a write may have counted it up
            row = self.db.execute(
                "SELECT value FROM store_meta WHERE key = 'scope_version'"
            ).fetchone()
            self._scope_version = (None if row is None or row[0] is None else int(row[0]),)
        return self._scope_version[0]

    def purge_tombstones(self, before: datetime) -> int:
        self._locked("purge tombstones")
        self._write()
        row = self._q(
            "SELECT COUNT(*), MAX(seq) FROM records WHERE deleted = 1 AND updated_at < ?",
            (before.isoformat(),),
        ).fetchone()
        if not row[0]:
            return 0
        self._w("DELETE FROM records WHERE deleted = 1 AND updated_at < ?", (before.isoformat(),))
        horizon = max(self.tombstone_horizon(), int(row[1]))
        self._w("UPDATE store_meta SET value = ? WHERE key = 'tombstone_horizon'", (str(horizon),))
        return int(row[0])

    def max_seq(self) -> int:
        self._locked("max seq")
        if self._seq is not None:
            return self._seq
        return self._stored_seq()

    def update_device_sync(self, device_id: str, user_id: str, **fields: Any) -> None:
        self._write()
        # kept per device and written with the batch's other rows at the end: one
        # upsert per device, however often a batch touches it
        received = int(fields.pop("mutations_received", 0))
        user, known, total = self._devices.get(device_id, (user_id, {}, 0))
        known = {**known, **{k: v for k, v in fields.items() if FIELD.match(k)}}
        self._devices[device_id] = (user, known, total + received)

    def _device_rows(self) -> None:
        """The buffered device states as upserts, grouped by the fields they set."""
        for device_id, (user_id, fields, received) in self._devices.items():
            names = sorted(fields)
            # booleans as 0/1: both backends keep flags in integer columns
            values = [int(fields[k]) if isinstance(fields[k], bool) else fields[k] for k in names]
            sets = "".join(f"{k} = excluded.{k}, " for k in names)
            self._pending.setdefault(
                f"INSERT INTO device_sync (device_id, user_id, {''.join(k + ', ' for k in names)}"
                f"mutations_received) VALUES ({', '.join('?' * (len(names) + 3))})"
                f" ON CONFLICT (device_id) DO UPDATE SET {sets}mutations_received ="
                " device_sync.mutations_received + excluded.mutations_received",
                [],
            ).append((device_id, user_id, *values, received))
        self._devices.clear()

    def list_device_sync(self) -> list[dict[str, Any]]:
        self._locked("list device sync")
        # what earlier batches stored (a push's own update is written at its end)
        rows = self.db.execute("SELECT * FROM device_sync ORDER BY device_id").fetchall()
        return [dict(r) for r in rows]

    def list_quarantine(self, inspection_ids: Sequence[str] | None) -> list[dict[str, Any]]:
        self._locked("list quarantine")
        if inspection_ids is None:
            rows = self.db.execute("SELECT * FROM quarantine ORDER BY received_at DESC").fetchall()
        else:
            rows = self.db.execute(
                "SELECT * FROM quarantine WHERE inspection_id IN"
                f" ({','.join('?' * len(inspection_ids)) or 'NULL'})"
                " ORDER BY received_at DESC",
                list(inspection_ids),
            ).fetchall()
        return [dict(r) for r in rows]

    def history_of(self, kind: str, record_id: str) -> list[dict[str, Any]]:
        self._locked("history of")
        rows = self.db.execute(
            "SELECT * FROM history WHERE kind = ? AND record_id = ? ORDER BY id",
            (kind, record_id),
        ).fetchall()
        return [dict(r) for r in rows]

    def missing_evidence(self, inspection_ids: Sequence[str]) -> dict[str, list[str]]:
        self._locked("missing evidence")
        self._flush()
        return missing_evidence(self.dialect, self.db, list(inspection_ids))

    def stored_evidence(self, hashes: Sequence[str]) -> set[str]:
        self._locked("stored evidence")
        return stored_evidence(self.db, list(hashes))

    def stored_for(self, inspection_id: str, hashes: Sequence[str]) -> set[str]:
        self._locked("stored for")
        return stored_evidence(self.db, list(hashes), inspection_id)
