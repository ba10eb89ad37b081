"""Versioned SQLite schema migrations, applied with sqlite-utils.

Each migration is a function over a ``sqlite_utils.Database``, recorded in
``schema_migrations`` once it has run. Every step is idempotent (``if_not_exists``,
column checks), because SQLite DDL through sqlite-utils commits as it goes: a migration
cut off half-way completes when it is run again. Migrations only ever add: a new
table, a new column with a default, a new index. Data is never dropped; a rename is a
copy followed, in a later release, by a cleanup that checks the copy.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import sqlite_utils

from sync.audit import GENESIS, HASHED, event_hash

__all__ = ["MIGRATIONS", "apply_migrations"]


def _m1_initial(db: sqlite_utils.Database) -> None:
    db["users"].create(  # type: ignore[union-attr]
        {
            "id": str,
            "username": str,
            "display_name": str,
            "role": str,
            "authority_id": str,
            "password_hash": str,
            "disabled": int,
            "created_at": str,
        },
        pk="id",
        if_not_exists=True,
        not_null={"username", "role", "authority_id", "password_hash", "created_at"},
        defaults={"disabled": 0},
    )
    db["users"].create_index(["username"], unique=True, if_not_exists=True)  # type: ignore[union-attr]
    db["devices"].create(  # type: ignore[union-attr]
        {
            "id": str,
            "user_id": str,
            "name": str,
            "platform": str,
            "app_version": str,
            "registered_at": str,
            "revoked_at": str,
            "last_seen_at": str,
        },
        pk="id",
        if_not_exists=True,
        foreign_keys=[("user_id", "users", "id")],
        not_null={"user_id", "registered_at"},
        defaults={"platform": "", "app_version": ""},
    )
    db["devices"].create_index(["user_id"], if_not_exists=True)  # type: ignore[union-attr]
    db["refresh_tokens"].create(  # type: ignore[union-attr]
        {
            "token_hash": str,
            "family_id": str,
            "user_id": str,
            "device_id": str,
            "issued_at": str,
            "expires_at": str,
            "used_at": str,
            "revoked_at": str,
        },
        pk="token_hash",
        if_not_exists=True,
        foreign_keys=[("user_id", "users", "id"), ("device_id", "devices", "id")],
        not_null={"family_id", "user_id", "issued_at", "expires_at"},
    )
    db["refresh_tokens"].create_index(["family_id"], if_not_exists=True)  # type: ignore[union-attr]
    db["refresh_tokens"].create_index(["device_id"], if_not_exists=True)  # type: ignore[union-attr]
    db["records"].create(  # type: ignore[union-attr]
        {
            "kind": str,
            "id": str,
            "data": str,
            "rev": int,
            "seq": int,
            "deleted": int,
            "created_at": str,
            "updated_at": str,
        },
        pk=("kind", "id"),
        if_not_exists=True,
        not_null={"data", "rev", "seq", "created_at", "updated_at"},
        defaults={"deleted": 0},
    )
    db["records"].create_index(["seq"], unique=True, if_not_exists=True)  # type: ignore[union-attr]
    db["seq_counter"].create({"id": int, "value": int}, pk="id", if_not_exists=True)  # type: ignore[union-attr]
    db.execute("INSERT OR IGNORE INTO seq_counter (id, value) VALUES (1, 0)")


def _m2_sync(db: sqlite_utils.Database) -> None:
    # Which inspection a record belongs to (NULL for reference data): the scope key of
    # the change feed. Filled for the rows that exist.
    if "inspection_id" not in db["records"].columns_dict:
        db["records"].add_column("inspection_id", str)  # type: ignore[union-attr]
    db.execute("UPDATE records SET inspection_id = id WHERE kind = 'inspection'")
    db.execute(
        "UPDATE records SET inspection_id = json_extract(data, '$.inspection_id')"
        " WHERE kind != 'inspection' AND json_extract(data, '$.inspection_id') IS NOT NULL"
    )
    db["records"].create_index(["inspection_id", "seq"], if_not_exists=True)  # type: ignore[union-attr]
    db["mutations"].create(  # type: ignore[union-attr]
        {
            "key": str,
            "user_id": str,
            "device_id": str,
            "batch_id": str,
            "result": bytes,
            "received_at": str,
        },
        pk="key",
        if_not_exists=True,
        not_null={"user_id", "batch_id", "result", "received_at"},
    )
    db["quarantine"].create(  # type: ignore[union-attr]
        {
            "id": str,
            "mid": str,
            "user_id": str,
            "device_id": str,
            "batch_id": str,
            "kind": str,
            "record_id": str,
            "inspection_id": str,
            "mutation": str,
            "code": str,
            "field": str,
            "message": str,
            "received_at": str,
        },
        pk="id",
        if_not_exists=True,
        not_null={"mid", "user_id", "kind", "record_id", "mutation", "code", "received_at"},
    )
    db["quarantine"].create_index(["inspection_id"], if_not_exists=True)  # type: ignore[union-attr]
    db["history"].create(  # type: ignore[union-attr]
        {
            "id": int,
            "seq": int,
            "kind": str,
            "record_id": str,
            "inspection_id": str,
            "rev": int,
            "op": str,
            "mid": str,
            "batch_id": str,
            "user_id": str,
            "device_id": str,
            "hlc": str,
            "device_time": str,
            "received_at": str,
            "reason": str,
            "old": str,
            "new": str,
        },
        pk="id",
        if_not_exists=True,
        not_null={"seq", "kind", "record_id", "rev", "op", "user_id", "received_at"},
    )
    db["history"].create_index(["kind", "record_id"], if_not_exists=True)  # type: ignore[union-attr]
    db["scope_snapshots"].create(  # type: ignore[union-attr]
        {"hash": str, "scope": str, "created_at": str}, pk="hash", if_not_exists=True
    )
    db["device_sync"].create(  # type: ignore[union-attr]
        {
            "device_id": str,
            "user_id": str,
            "last_pull_at": str,
            "last_pull_seq": int,
            "last_push_at": str,
            "last_batch_id": str,
            "app_version": str,
            "clock_skew_ms": int,
            "skew_flagged": int,
            "mutations_received": int,
        },
        pk="device_id",
        if_not_exists=True,
        defaults={"skew_flagged": 0, "mutations_received": 0, "clock_skew_ms": 0},
    )
    db["store_meta"].create(  # type: ignore[union-attr]
        {"key": str, "value": str}, pk="key", if_not_exists=True
    )
    db.execute("INSERT OR IGNORE INTO store_meta (key, value) VALUES ('tombstone_horizon', '0')")


def _m3_evidence(db: sqlite_utils.Database) -> None:
    # Stored files by SHA-256 (the first upload's who/where/when), every inspection's
    # reference to one, and the resumable uploads in progress.
    db["evidence"].create(  # type: ignore[union-attr]
        {
            "sha256": str,
            "size": int,
            "media_type": str,
            "inspection_id": str,
            "uploaded_by": str,
            "device_id": str,
            "captured_at": str,
            "latitude": float,
            "longitude": float,
            "exif_captured_at": str,
            "exif_latitude": float,
            "exif_longitude": float,
            "filename_hint": str,
            "created_at": str,
            "thumbnail": int,
        },
        pk="sha256",
        if_not_exists=True,
        not_null={"size", "media_type", "inspection_id", "uploaded_by", "created_at"},
        defaults={"thumbnail": 0, "filename_hint": ""},
    )
    db["evidence_refs"].create(  # type: ignore[union-attr]
        {
            "sha256": str,
            "inspection_id": str,
            "uploaded_by": str,
            "device_id": str,
            "captured_at": str,
            "latitude": float,
            "longitude": float,
            "filename_hint": str,
            "created_at": str,
        },
        pk=("sha256", "inspection_id"),
        if_not_exists=True,
        foreign_keys=[("sha256", "evidence", "sha256")],
        not_null={"uploaded_by", "created_at"},
        defaults={"filename_hint": ""},
    )
    db["evidence_refs"].create_index(["inspection_id"], if_not_exists=True)  # type: ignore[union-attr]
    db["uploads"].create(  # type: ignore[union-attr]
        {
            "id": str,
            "sha256": str,
            "length": int,
            "offset": int,
            "media_type": str,
            "inspection_id": str,
            "user_id": str,
            "device_id": str,
            "metadata": str,
            "created_at": str,
            "expires_at": str,
            "completed_at": str,
        },
        pk="id",
        if_not_exists=True,
        not_null={"sha256", "length", "offset", "inspection_id", "user_id", "created_at"},
        defaults={"offset": 0, "metadata": "{}"},
    )
    db["uploads"].create_index(["inspection_id"], if_not_exists=True)  # type: ignore[union-attr]
    db["uploads"].create_index(["expires_at"], if_not_exists=True)  # type: ignore[union-attr]


def _m4_audit_chain(db: sqlite_utils.Database) -> None:
    # The history becomes the audit trail of every change: the actor's role, and a hash
    # chain over the events (existing events are chained in id order). Triggers make
    # the table append-only for every connection, the application's included.
    table = db["history"]
    for column in ("role", "prev_hash", "hash"):
        if column not in table.columns_dict:  # type: ignore[union-attr]
            table.add_column(column, str, not_null_default="")  # type: ignore[union-attr]
    prev = GENESIS
    columns = ", ".join(HASHED)  # constant column names
    rows = db.execute(f"SELECT id, {columns} FROM history ORDER BY id").fetchall()  # noqa: S608
    for row in rows:
        values = list(row[1:])
        digest = event_hash(prev, values)
        db.execute(
            "UPDATE history SET prev_hash = ?, hash = ? WHERE id = ?", (prev, digest, row[0])
        )
        prev = digest
    for action in ("UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER IF NOT EXISTS history_no_{action.lower()} BEFORE {action} ON history"
            " BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END"
        )
    table.create_index(["inspection_id"], if_not_exists=True)  # type: ignore[union-attr]


def _m5_record_meta(db: sqlite_utils.Database) -> None:
    # A record's bookkeeping fields (names starting with "_": per-field stamps, open
    # conflict ids, who deleted it) move from ``data`` to a ``meta`` column, so that
    # ``data`` is exactly what clients see and pull pages splice it as stored. Nothing
    # is dropped: every field is in one column or the other, and a row already split
    # has nothing left to move, so a migration cut off half-way completes on a rerun.
    table = db["records"]
    if "meta" not in table.columns_dict:  # type: ignore[union-attr]
        table.add_column("meta", str, not_null_default="{}")  # type: ignore[union-attr]
    rows = db.execute(
        "SELECT rowid, data, meta FROM records WHERE data LIKE '%\"\\_%' ESCAPE '\\'"
    ).fetchall()
    for rowid, data, meta in rows:
        whole = json.loads(data)
        private = {k: whole.pop(k) for k in [k for k in whole if k.startswith("_")]}
        if not private:
            continue
        kept = {**json.loads(meta), **private}
        db.execute(
            "UPDATE records SET data = ?, meta = ? WHERE rowid = ?",
            (
                json.dumps(whole, ensure_ascii=False, separators=(",", ":")),
                json.dumps(kept, ensure_ascii=False, separators=(",", ":")),
                rowid,
            ),
        )


def _m6_evidence_lost(db: sqlite_utils.Database) -> None:
    # When a stored file's bytes are found missing or not matching their hash, the file
    # is marked lost (not deleted: its row and audit trail stay) until it is uploaded again.
    table = db["evidence"]
    if "lost_at" not in table.columns_dict:  # type: ignore[union-attr]
        table.add_column("lost_at", str)  # type: ignore[union-attr]


def _m7_records_by_kind(db: sqlite_utils.Database) -> None:
    # An inspection's records of one kind (sign-offs, conflicts) without reading every
    # record of the inspection: each push reads its sign-offs.
    db["records"].create_index(["inspection_id", "kind", "id"], if_not_exists=True)  # type: ignore[union-attr]


def _m8_login_failures(db: sqlite_utils.Database) -> None:
    # Failed logins per (username, client address) where every process sees them.
    db["login_failures"].create(  # type: ignore[union-attr]
        {"key": str, "at": str}, if_not_exists=True, not_null={"key", "at"}
    )
    db["login_failures"].create_index(["key", "at"], if_not_exists=True)  # type: ignore[union-attr]
    db["login_failures"].create_index(["at"], if_not_exists=True)  # type: ignore[union-attr]


def _m9_upload_claims(db: sqlite_utils.Database) -> None:
    # The request writing a chunk of an upload claims it (sync/upload_claim.py); the
    # claim is in the row so that every process sharing the database sees it.
    table = db["uploads"]
    for column in ("claimed_by", "claimed_until"):
        if column not in table.columns_dict:  # type: ignore[union-attr]
            table.add_column(column, str)  # type: ignore[union-attr]


def _m10_scope_version(db: sqlite_utils.Database) -> None:
    # Every write of a record that decides a pull's scope (SyncEngine._scope: an
    # inspection, chain, site or product) counts up store_meta's
    # scope_version, in the writing transaction: a reader that sees the same version
    # sees the same scope (the engine keeps scopes computed per version).
    db.execute("INSERT OR IGNORE INTO store_meta (key, value) VALUES ('scope_version', '0')")
    count_up = (
        " WHEN NEW.kind IN ('inspection', 'chain', 'site', 'product') BEGIN UPDATE store_meta"
        " SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'scope_version'; END"
    )
    db.execute(
        "CREATE TRIGGER IF NOT EXISTS records_scope_insert AFTER INSERT ON records" + count_up
    )
    db.execute(
        "CREATE TRIGGER IF NOT EXISTS records_scope_update AFTER UPDATE ON records" + count_up
    )


MIGRATIONS: list[tuple[int, str, Callable[[sqlite_utils.Database], None]]] = [
    (1, "users, devices, refresh tokens, records and the change sequence", _m1_initial),
    (
        2,
        "sync: record scope, mutations, quarantine, history, scope snapshots, device state",
        _m2_sync,
    ),
    (3, "evidence: stored files, their references, resumable uploads", _m3_evidence),
    (4, "audit trail: actor role, hash chain, append-only history", _m4_audit_chain),
    (5, "records: bookkeeping fields in their own column", _m5_record_meta),
    (6, "evidence: files whose bytes were lost", _m6_evidence_lost),
    (7, "records: an index by inspection and kind", _m7_records_by_kind),
    (8, "failed logins, shared by every process", _m8_login_failures),
    (9, "uploads: who holds the claim on an upload, until when", _m9_upload_claims),
    (10, "records: a version of what decides pull scopes, counted by triggers", _m10_scope_version),
]


def apply_migrations(path: str) -> list[int]:
    """Apply every migration not yet recorded; return the versions applied now."""
    db = sqlite_utils.Database(path)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        if "schema_migrations" not in db.table_names():
            db["schema_migrations"].create(  # type: ignore[union-attr]
                {"version": int, "description": str, "applied_at": str}, pk="version"
            )
        done = {row["version"] for row in db["schema_migrations"].rows}
        applied: list[int] = []
        for version, description, migrate in MIGRATIONS:
            if version in done:
                continue
            with db.conn:
                migrate(db)
                db["schema_migrations"].insert(  # type: ignore[union-attr]
                    {
                        "version": version,
                        "description": description,
                        "applied_at": datetime.now(UTC).isoformat(),
                    }
                )
            applied.append(version)
        return applied
    finally:
        db.close()
