"""Migrations: applied once, recorded, and re-running them keeps every row."""

from __future__ import annotations

import json

import sqlite_utils

from sync.storage.sqlite_migrations import MIGRATIONS, apply_migrations


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


async def test_bookkeeping_moves_out_of_public_data(tmp_path, monkeypatch):
    """A database written before migration 5 kept stamps inside ``data``: after it,
    the store reads every record exactly as before, and a pull page gets only what
    clients see."""
    import sync.storage.sqlite_migrations as migrations
    from sync.storage.sqlite import SQLiteStore

    path = str(tmp_path / "old.db")
    monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS[:4])
    apply_migrations(path)
    whole = {
        "inspection_id": "i1",
        "title": "Glove port breach",
        "notes": 'quoted "_stamps" in text stays',
        "_stamps": {"title": [2, "000000000000001.00000.d1", "u1", "d1", "d1:1"]},
        "_conflict_ids": {"title": "cf_1"},
    }
    db = sqlite_utils.Database(path)
    db["records"].insert(
        {
            "kind": "finding",
            "id": "f1",
            "data": json.dumps(whole),
            "rev": 2,
            "seq": 1,
            "deleted": 0,
            "created_at": "2026-11-29T00:00:00+00:00",
            "updated_at": "2026-11-29T00:00:00+00:00",
            "inspection_id": "i1",
        }
    )
    db.close()
    monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS)
    assert apply_migrations(path) == [v for v, _, _ in MIGRATIONS[4:]]
    assert apply_migrations(path) == []

    store = SQLiteStore(path)
    await store.open()
    try:
        rec = await store.read_batch(lambda tx: tx.get_record("finding", "f1"))
        assert rec is not None and rec.data == whole
        rows = await store.read_batch(lambda tx: tx.feed_json(0, ["i1"], [], 10))
        assert [json.loads(r.data) for r in rows] == [
            {k: v for k, v in whole.items() if not k.startswith("_")}
        ]
    finally:
        await store.close()
