"""The SQL storage every backend shares: records, transactions, the audit trail.

:class:`SQLStore` is a whole :class:`~sync.storage.Store` over SQL; a backend subclasses
it with its :class:`~sync.storage.sql_dialect.Dialect`, its connections and its
lifecycle (``open``/``close``), and nothing else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sync.audit import SYSTEM, Actor, Anchor, AuditContext, Verification, diff, verify
from sync.errors import AlreadyExists, NotFound, RevisionMismatch
from sync.models import Filter, StoredRecord
from sync.storage.contract import Transaction
from sync.storage.shared import (
    FIELD,
    audit_values,
    join_data,
    now_text,
    record_from_row,
    scope_of,
    split_data,
    write_op,
)
from sync.storage.sql_accounts import AccountsSQL
from sync.storage.sql_dialect import Conn, where_sql
from sync.storage.sql_evidence import EvidenceSQL
from sync.storage.sql_rows import append_audit

__all__ = ["SQLStore"]


class SQLStore(AccountsSQL, EvidenceSQL):
    """Every :class:`~sync.storage.Store` method over SQL (see the module docstring)."""

    @asynccontextmanager
    async def transaction(
        self, actor: Actor = SYSTEM, context: AuditContext | None = None
    ) -> AsyncIterator[Transaction]:
        async with self._held_write() as run:
            yield _SQLTransaction(run, actor, context or AuditContext())

    async def audit_events(
        self,
        *,
        kind: str | None = None,
        record_id: str | None = None,
        inspection_id: str | None = None,
        after_id: int = 0,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        where = ["id > ?"]
        params: list[Any] = [after_id]
        for column, value in (
            ("kind", kind),
            ("record_id", record_id),
            ("inspection_id", inspection_id),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        rows = await self._fetchall(
            f"SELECT * FROM history WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
            (*params, limit),
        )
        return [dict(r) for r in rows]

    async def verify_audit(self, anchors: Sequence[Anchor] = ()) -> Verification:
        d = self.dialect

        def walk(db: Conn) -> Verification:
            db.execute(d.begin_read)
            try:
                cur = db.execute("SELECT * FROM history ORDER BY id")
                return verify((dict(r) for r in cur), anchors)
            finally:
                db.execute("ROLLBACK")

        return await self._on_reader(walk)

    async def audit_head(self) -> tuple[int, str] | None:
        row = await self._fetchone("SELECT id, hash FROM history ORDER BY id DESC LIMIT 1")
        return (int(row["id"]), str(row["hash"])) if row else None

    async def get_record(self, kind: str, record_id: str) -> StoredRecord | None:
        row = await self._fetchone(
            "SELECT * FROM records WHERE kind = ? AND id = ? AND deleted = 0", (kind, record_id)
        )
        return record_from_row(row) if row else None

    async def list_records(
        self,
        kind: str,
        filters: Sequence[Filter] = (),
        *,
        limit: int | None = None,
        offset: int = 0,
        order_by: str = "id",
    ) -> list[StoredRecord]:
        where, params = where_sql(self.dialect, kind, filters)
        desc = order_by.startswith("-")
        field = order_by.lstrip("-")
        if not FIELD.match(field):
            raise ValueError(f"bad order field {field!r}")
        direction = "DESC" if desc else "ASC"
        order = "" if field == "id" else self.dialect.order_by(field, direction) + ", "
        sql = f"SELECT * FROM records WHERE {where} ORDER BY {order}id {direction}"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params += [limit, offset]
        return [record_from_row(r) for r in await self._fetchall(sql, params)]

    async def count_records(self, kind: str, filters: Sequence[Filter] = ()) -> int:
        where, params = where_sql(self.dialect, kind, filters)
        row = await self._fetchone(f"SELECT COUNT(*) AS n FROM records WHERE {where}", params)
        return int(row["n"]) if row else 0


class _SQLTransaction(Transaction):
    """Record writes inside :meth:`SQLStore.transaction`, each one hop to the writer."""

    def __init__(
        self, run: Callable[[Callable[[Conn], Any]], Any], actor: Actor, ctx: AuditContext
    ):
        self._run = run
        self.actor = actor
        self.context = ctx

    def _audit(self, db: Conn, rec: StoredRecord, old: dict[str, Any] | None, now: str) -> None:
        before, after = diff(old, None if rec.deleted else rec.data)
        append_audit(
            db,
            audit_values(
                self.actor,
                self.context,
                seq=rec.seq,
                kind=rec.kind,
                record_id=rec.id,
                inspection_id=scope_of(rec.kind, rec.id, rec.data),
                rev=rec.rev,
                op=write_op(old is None, rec.deleted),
                old=before,
                new=after,
                now=now,
            ),
        )

    async def get_record(self, kind: str, record_id: str) -> StoredRecord | None:
        row = await self._run(lambda db: _row(db, kind, record_id))
        return record_from_row(row) if row is not None and not row["deleted"] else None

    async def create_record(self, kind: str, record_id: str, data: dict[str, Any]) -> StoredRecord:
        def create(db: Conn) -> StoredRecord:
            now = now_text()
            if _row(db, kind, record_id) is not None:
                raise AlreadyExists(f"{kind} {record_id!r} exists", field="id")
            seq = _next_seq(db)
            db.execute(
                "INSERT INTO records (kind, id, data, meta, rev, seq, deleted, created_at,"
                " updated_at, inspection_id) VALUES (?,?,?,?,?,?,0,?,?,?)",
                (
                    kind,
                    record_id,
                    *split_data(data),
                    1,
                    seq,
                    now,
                    now,
                    scope_of(kind, record_id, data),
                ),
            )
            at = datetime.fromisoformat(now)
            rec = StoredRecord(
                kind=kind, id=record_id, data=data, rev=1, seq=seq, created_at=at, updated_at=at
            )
            self._audit(db, rec, None, now)
            return rec

        result: StoredRecord = await self._run(create)
        return result

    async def _replace(
        self, kind: str, record_id: str, data: dict[str, Any] | None, expect_rev: int | None
    ) -> StoredRecord:
        def replace(db: Conn) -> StoredRecord:
            row = _row(db, kind, record_id)
            if row is None or row["deleted"]:
                raise NotFound(f"no {kind} {record_id!r}")
            if expect_rev is not None and row["rev"] != expect_rev:
                raise RevisionMismatch(
                    f"{kind} {record_id!r} is at rev {row['rev']}, not {expect_rev}",
                    current_rev=row["rev"],
                )
            now = now_text()
            seq = _next_seq(db)
            old_data = join_data(row["data"], row["meta"])
            new_data = old_data if data is None else data
            db.execute(
                "UPDATE records SET data = ?, meta = ?, rev = rev + 1, seq = ?, deleted = ?,"
                " updated_at = ?, inspection_id = ? WHERE kind = ? AND id = ?",
                (
                    *split_data(new_data),
                    seq,
                    int(data is None),
                    now,
                    scope_of(kind, record_id, new_data),
                    kind,
                    record_id,
                ),
            )
            rec = StoredRecord(
                kind=kind,
                id=record_id,
                data=new_data,
                rev=row["rev"] + 1,
                seq=seq,
                deleted=data is None,
                created_at=datetime.fromisoformat(row["created_at"]),
                updated_at=datetime.fromisoformat(now),
            )
            self._audit(db, rec, old_data, now)
            return rec

        result: StoredRecord = await self._run(replace)
        return result

    async def update_record(
        self, kind: str, record_id: str, data: dict[str, Any], *, expect_rev: int | None = None
    ) -> StoredRecord:
        return await self._replace(kind, record_id, data, expect_rev)

    async def delete_record(
        self, kind: str, record_id: str, *, expect_rev: int | None = None
    ) -> StoredRecord:
        return await self._replace(kind, record_id, None, expect_rev)


def _row(db: Conn, kind: str, record_id: str) -> Any:
    return db.execute(
        "SELECT * FROM records WHERE kind = ? AND id = ?", (kind, record_id)
    ).fetchone()


def _next_seq(db: Conn) -> int:
    row = db.execute("UPDATE seq_counter SET value = value + 1 RETURNING value").fetchone()
    assert row is not None
    return int(row[0])
