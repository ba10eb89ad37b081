"""The reads of a batch over SQL (:class:`~sync.storage.sql_batch.SQLBatch`): records,
mutation results and listings, one by one or together (:meth:`BatchReads.prefetch`, one
round trip on PostgreSQL), each noted for a speculative batch's check under the lock
(``sql_speculate.py``) and seeing the batch's own buffered writes where it must."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

from sync.models import Filter, StoredRecord
from sync.storage.contract import BatchTx, Prefetched
from sync.storage.shared import record_from_row
from sync.storage.sql_dialect import Conn, Dialect, where_sql
from sync.storage.sql_speculate import Speculation

__all__ = ["BatchReads"]


class BatchReads(BatchTx):
    """The read half of :class:`~sync.storage.sql_batch.SQLBatch`."""

    dialect: Dialect
    db: Conn
    _spec: Speculation | None
    _written: set[tuple[str, str]]
    _records: list[tuple[Any, ...]]
    _known: dict[tuple[str, str], tuple[dict[str, Any], bool]]

    @abc.abstractmethod
    def _locked(self, what: str) -> None:
        """Raise unless the batch holds the write lock."""

    @abc.abstractmethod
    def _q(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """A query that sees every record write of the batch."""

    @abc.abstractmethod
    def _remember(self, rec: StoredRecord) -> StoredRecord:
        """Note what a record is, for the audit of a later write."""

    def _listing(self) -> None:
        """A speculative batch is about to list records: note the sequence first (what
        is added later shows above it when checked under the lock)."""
        self._listed_after(self._ask_listing())

    def _ask_listing(self) -> Any:
        if self._spec is not None and self._spec.after is None:
            return self.db.execute("SELECT value FROM seq_counter")
        return None

    def _listed_after(self, cur: Any) -> None:
        if cur is not None and self._spec is not None and self._spec.after is None:
            self._spec.after = int(cur.fetchone()[0])

    def _read(self, sql: str, params: Sequence[Any], touches: bool) -> Any:
        """A read of records: after writing the buffered ones when it ``touches`` them
        (a speculative batch cannot: it needs the lock), else as they are stored."""
        if touches:
            self._locked("read back what it wrote")
            return self._q(sql, params)
        return self.db.execute(sql, params)

    def get_record(
        self, kind: str, record_id: str, *, include_deleted: bool = False
    ) -> StoredRecord | None:
        row = self._read(
            "SELECT * FROM records WHERE kind = ? AND id = ?",
            (kind, record_id),
            (kind, record_id) in self._written,
        ).fetchone()
        if self._spec is not None:
            self._spec.saw(kind, record_id, int(row["seq"]) if row else 0)
        if row is None:
            return None
        rec = self._remember(record_from_row(row))
        return None if rec.deleted and not include_deleted else rec

    def get_records(self, refs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], StoredRecord]:
        if len({kind for kind, _ in refs}) < 2:
            return self._got_records(refs, self._ask_records(refs))
        with self.dialect.pipelined(self.db):  # a query per kind, one round trip
            cursors = self._ask_records(refs)
        return self._got_records(refs, cursors)

    def _ask_records(self, refs: Sequence[tuple[str, str]]) -> list[Any]:
        by_kind: dict[str, list[str]] = {}
        for kind, rid in dict.fromkeys(refs):
            by_kind.setdefault(kind, []).append(rid)
        touches = any(ref in self._written for ref in refs)
        cursors: list[Any] = []
        for kind, ids in by_kind.items():
            for start in range(0, len(ids), 500):  # kind = ? AND id IN (...): the key
                cond, args = self.dialect.in_list("id", ids[start : start + 500])
                sql = f"SELECT * FROM records WHERE kind = ? AND {cond}"
                cursors.append(self._read(sql, [kind, *args], touches))
        return cursors

    def _got_records(
        self, refs: Sequence[tuple[str, str]], cursors: list[Any]
    ) -> dict[tuple[str, str], StoredRecord]:
        found: dict[tuple[str, str], StoredRecord] = {}
        for cur in cursors:
            found.update(
                {(r["kind"], r["id"]): self._remember(record_from_row(r)) for r in cur.fetchall()}
            )
        for ref in refs:  # known not to exist: their first write needs no lookup
            self._known.setdefault(ref, ({}, True))
            if self._spec is not None:
                self._spec.saw(ref[0], ref[1], found[ref].seq if ref in found else 0)
        return found

    def find_records(self, kind: str, filters: Sequence[Filter] = ()) -> list[StoredRecord]:
        where, params = where_sql(self.dialect, kind, filters)
        touches = any(k == kind for k, _ in self._written) or self._spec is None
        self._listing()
        rows = self._read(f"SELECT * FROM records WHERE {where} ORDER BY id", params, touches)
        if self._spec is not None:
            self._spec.scans.add((kind, None))
        return [record_from_row(r) for r in rows.fetchall()]

    def records_of(self, kind: str, inspection_id: str) -> list[StoredRecord]:
        self._listing()
        return self._listed(kind, inspection_id, self._ask_records_of(kind, inspection_id))

    def _ask_records_of(self, kind: str, inspection_id: str) -> Any:
        touches = self._spec is None or any(
            r[0] == kind and r[9] == inspection_id for r in self._records
        )
        return self._read(
            "SELECT * FROM records WHERE inspection_id = ? AND kind = ? AND deleted = 0"
            " ORDER BY id",
            (inspection_id, kind),
            touches,
        )

    def _listed(self, kind: str, inspection_id: str, cur: Any) -> list[StoredRecord]:
        rows = cur.fetchall()
        if self._spec is not None:
            self._spec.scans.add((kind, inspection_id))
        return [record_from_row(r) for r in rows]

    def get_mutations(self, keys: Sequence[str]) -> dict[str, bytes]:
        return self._got_mutations(keys, self._ask_mutations(keys))

    def _ask_mutations(self, keys: Sequence[str]) -> list[Any]:
        cursors: list[Any] = []
        for start in range(0, len(keys), 500):
            cond, args = self.dialect.in_list("key", keys[start : start + 500])
            cursors.append(self.db.execute(f"SELECT key, result FROM mutations WHERE {cond}", args))
        return cursors

    def _got_mutations(self, keys: Sequence[str], cursors: list[Any]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for cur in cursors:
            found.update({r[0]: bytes(r[1]) for r in cur.fetchall()})
        if self._spec is not None:
            self._spec.absent_keys.update(k for k in keys if k not in found)
        return found

    def prefetch(
        self,
        keys: Sequence[str],
        refs: Sequence[tuple[str, str]],
        listings: Sequence[tuple[str, str]] = (),
    ) -> Prefetched:
        """One round trip on PostgreSQL (a pipeline; the results are read after it):
        the sequence a speculative batch notes before it lists, the mutation results,
        the records, the listings, in that order."""
        if self._records:  # buffered writes would have to be written first
            return super().prefetch(keys, refs, listings)
        lists = list(dict.fromkeys(listings))
        with self.dialect.pipelined(self.db):
            after = self._ask_listing() if lists else None
            mutations = self._ask_mutations(keys)
            records = self._ask_records(refs)
            listed = [self._ask_records_of(kind, iid) for kind, iid in lists]
        self._listed_after(after)
        return Prefetched(
            self._got_mutations(keys, mutations),
            self._got_records(refs, records),
            {
                (kind, iid): self._listed(kind, iid, cur)
                for (kind, iid), cur in zip(lists, listed, strict=True)
            },
        )

    def get_mutation(self, key: str) -> bytes | None:
        row = self.db.execute("SELECT result FROM mutations WHERE key = ?", (key,)).fetchone()
        if self._spec is not None and row is None:
            self._spec.absent_keys.add(key)
        return bytes(row[0]) if row else None
