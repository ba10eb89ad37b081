"""The SQL rows both backends write the same way, outside any one batch: the record
upsert, the audit event insert and the chain's head, an audit event appended inside a
write transaction, and the evidence lookups shared by batches and stores."""

from __future__ import annotations

from typing import Any

from sync.audit import GENESIS, HASHED, Actor, AuditContext
from sync.storage.shared import Chain, audit_values, now_text
from sync.storage.sql_dialect import Conn, Dialect

__all__ = [
    "AUDIT_SQL",
    "HEAD_SQL",
    "STATE_SQL",
    "UPSERT_SQL",
    "append_audit",
    "audit_entity",
    "last_per_key",
    "missing_evidence",
    "stored_evidence",
]

HEAD_SQL = "SELECT hash FROM history ORDER BY id DESC LIMIT 1"
STATE_SQL = f"SELECT value, ({HEAD_SQL}) FROM seq_counter"
"""The change sequence and the audit chain's head, read together."""
UPSERT_SQL = (
    "INSERT INTO records (kind, id, data, meta, rev, seq, deleted, created_at,"
    " updated_at, inspection_id) VALUES (?,?,?,?,?,?,?,?,?,?)"
    " ON CONFLICT (kind, id) DO UPDATE SET data = excluded.data,"
    " meta = excluded.meta, rev = excluded.rev,"
    " seq = excluded.seq, deleted = excluded.deleted, updated_at = excluded.updated_at,"
    " inspection_id = excluded.inspection_id"
)
AUDIT_SQL = (
    f"INSERT INTO history ({', '.join(HASHED)}, prev_hash, hash)"
    f" VALUES ({', '.join('?' * (len(HASHED) + 2))})"
)


def missing_evidence(d: Dialect, db: Conn, inspection_ids: list[str]) -> dict[str, list[str]]:
    missing: dict[str, list[str]] = {}
    for start in range(0, len(inspection_ids), 500):
        chunk = inspection_ids[start : start + 500]
        rows = db.execute(
            f"SELECT DISTINCT r.inspection_id, {d.evidence_value} FROM records r,"
            f" {d.evidence_from}"
            f" WHERE r.inspection_id IN ({','.join('?' * len(chunk))})"
            f" AND r.kind IN ('finding', 'response') AND r.deleted = 0 AND {d.evidence_is_text}"
            " AND NOT EXISTS (SELECT 1 FROM evidence_refs f JOIN evidence e"
            " ON e.sha256 = f.sha256 AND e.lost_at IS NULL"
            f" WHERE f.sha256 = {d.evidence_value} AND f.inspection_id = r.inspection_id)"
            " ORDER BY 1, 2",
            chunk,
        ).fetchall()
        for iid, sha in rows:
            missing.setdefault(iid, []).append(sha)
    return missing


def stored_evidence(db: Conn, hashes: list[str], inspection_id: str | None = None) -> set[str]:
    """Those of ``hashes`` stored and not lost (with ``inspection_id``: stored by a
    completed upload for that inspection)."""
    found: set[str] = set()
    unique = list(dict.fromkeys(hashes))
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        marks = ",".join("?" * len(chunk))
        if inspection_id is None:
            sql = f"SELECT sha256 FROM evidence WHERE sha256 IN ({marks}) AND lost_at IS NULL"
            rows = db.execute(sql, chunk).fetchall()
        else:
            sql = (
                "SELECT f.sha256 FROM evidence_refs f JOIN evidence e ON e.sha256 = f.sha256"
                f" WHERE f.inspection_id = ? AND f.sha256 IN ({marks}) AND e.lost_at IS NULL"
            )
            rows = db.execute(sql, [inspection_id, *chunk]).fetchall()
        found.update(r[0] for r in rows)
    return found


def last_per_key(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The record upserts with only the last of each (kind, id): what writing them one
    after the other would leave, and what one multi-row upsert can take (PostgreSQL
    refuses a statement that updates a row twice)."""
    if len(rows) < 2:
        return rows
    last = {(r[0], r[1]): r for r in rows}
    return rows if len(last) == len(rows) else list(last.values())


def append_audit(db: Conn, values: list[Any]) -> None:
    """Append one event to the chain inside the caller's write transaction."""
    row = db.execute(HEAD_SQL).fetchone()
    db.execute(AUDIT_SQL, Chain(str(row[0]) if row else GENESIS).link(values))


def audit_entity(
    db: Conn,
    actor: Actor,
    kind: str,
    entity_id: str,
    op: str,
    old: dict[str, Any],
    new: dict[str, Any],
    *,
    inspection_id: str | None = None,
    context: AuditContext | None = None,
) -> None:
    """The audit event of a change to something that is not a record (a user, a
    device, a stored evidence file): no revision, no feed position."""
    append_audit(
        db,
        audit_values(
            actor,
            context or AuditContext(),
            seq=0,
            kind=kind,
            record_id=entity_id,
            inspection_id=inspection_id,
            rev=0,
            op=op,
            old=old,
            new=new,
            now=now_text(),
        ),
    )
