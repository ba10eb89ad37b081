"""Move an installation from SQLite to PostgreSQL: every table, row for row.

:func:`copy_sqlite_to_postgres` brings both databases to their newest schema (each
backend's own migrations), refuses a target that holds anything, then copies each table
in one PostgreSQL transaction with ``COPY``: the records with their ``seq`` and the
sequence counter (pull cursors stay valid), the audit trail with its ids and hashes (the
chain and the anchors written down for it still verify), users, devices, tokens,
evidence rows, uploads, mutation results, quarantine, device sync state. Evidence *files*
are not in the database: point ``INSPECTSYNC_EVIDENCE_DIR`` of the new instances at the
same directory (or copy it). Run it with the server stopped.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
from psycopg.sql import SQL, Identifier

from sync.errors import InvalidInput
from sync.storage.postgres import PostgresStore, redacted
from sync.storage.sqlite import SQLiteStore

__all__ = ["TABLES", "copy_sqlite_to_postgres"]

TABLES = (
    "users",
    "devices",
    "refresh_tokens",
    "records",
    "mutations",
    "quarantine",
    "history",
    "scope_snapshots",
    "device_sync",
    "evidence",
    "evidence_refs",
    "uploads",
)
"""Tables copied row for row, in an order that satisfies foreign keys. ``seq_counter``
and ``store_meta`` (one row each, made by the migrations) are carried over as values."""


async def copy_sqlite_to_postgres(sqlite_path: str | Path, url: str) -> dict[str, int]:
    """Copy the SQLite database at ``sqlite_path`` into the empty PostgreSQL database at
    ``url``; returns the rows copied per table. Raises InvalidInput if the source does not
    exist or the target is not empty (nothing is written then)."""
    if not Path(sqlite_path).is_file():
        raise InvalidInput(f"no SQLite database at {sqlite_path}", field="from")
    for store in (SQLiteStore(sqlite_path), PostgresStore(url, readers=1)):
        await store.open()  # each side at its newest schema
        await store.close()
    source = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    try:
        with psycopg.connect(url) as target:  # one transaction: all or nothing
            return _copy(source, target, url)
    finally:
        source.close()


def _copy(
    source: sqlite3.Connection, target: psycopg.Connection[tuple[object, ...]], url: str
) -> dict[str, int]:
    for table in TABLES:
        if target.execute(SQL("SELECT 1 FROM {} LIMIT 1").format(Identifier(table))).fetchone():
            raise InvalidInput(
                f"{redacted(url)} is not empty (table {table} has rows): copy only into a"
                " new database",
                field="to",
            )
    counts: dict[str, int] = {}
    for table in TABLES:
        cur = target.execute(SQL("SELECT * FROM {} LIMIT 0").format(Identifier(table)))
        columns = [c.name for c in cur.description or ()]
        listed = ", ".join(f'"{c}"' for c in columns)  # names PostgreSQL just gave
        rows = source.execute(f"SELECT {listed} FROM {table}")  # noqa: S608
        n = 0
        copy_sql = SQL("COPY {} ({}) FROM STDIN").format(
            Identifier(table), SQL(", ").join(Identifier(c) for c in columns)
        )
        with target.cursor().copy(copy_sql) as copy:
            for row in rows:
                copy.write_row(row)
                n += 1
        counts[table] = n
    seq = source.execute("SELECT value FROM seq_counter WHERE id = 1").fetchone()
    target.execute("UPDATE seq_counter SET value = %s WHERE id = 1", (seq[0] if seq else 0,))
    horizon = source.execute(
        "SELECT value FROM store_meta WHERE key = 'tombstone_horizon'"
    ).fetchone()
    target.execute(
        "UPDATE store_meta SET value = %s WHERE key = 'tombstone_horizon'",
        (str(horizon[0]) if horizon else "0",),
    )
    # new audit events continue after the copied ids
    target.execute(
        "SELECT setval(pg_get_serial_sequence('history', 'id'),"
        " COALESCE((SELECT MAX(id) FROM history), 0) + 1, false)"
    )
    return counts
