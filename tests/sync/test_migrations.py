"""Migrations: applied once, recorded, and re-running them keeps every row."""

from __future__ import annotations

import sqlite_utils

from sync._migrations import MIGRATIONS, apply_migrations


def test_migrations_apply_once_and_keep_data(tmp_path):
    path = str(tmp_path / "m.db")
    assert apply_migrations(path) == [v for v, _, _ in MIGRATIONS]
    db = sqlite_utils.Database(path)
    db["records"].insert(
        {
            "kind": "site",
            "id": "a",
            "data": "{}",
            "rev": 1,
            "seq": 1,
            "deleted": 0,
            "created_at": "t",
            "updated_at": "t",
        }
    )
    db.close()
    assert apply_migrations(path) == []
    db = sqlite_utils.Database(path)
    assert db["records"].count == 1
    assert [r["version"] for r in db["schema_migrations"].rows] == [v for v, _, _ in MIGRATIONS]
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
