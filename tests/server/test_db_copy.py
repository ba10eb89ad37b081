"""Moving an installation from SQLite to PostgreSQL: ``inspectsync migrate``,
``inspectsync db copy`` and ``audit verify`` on the copy, as an operator runs them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from sync.storage.postgres import PostgresStore
from sync.storage.postgres_migrations import MIGRATIONS as PG_MIGRATIONS
from sync.storage.sqlite_migrations import MIGRATIONS as SQLITE_MIGRATIONS
from tests.pg import ServerDB, fresh_database

RECORDS = "SELECT kind, id, rev, seq, deleted, data, meta, inspection_id FROM records ORDER BY seq"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args], capture_output=True, text=True, timeout=120
    )


async def test_an_sqlite_installation_moves_to_postgresql_whole(tmp_path, demo_template):
    sqlite_file = tmp_path / "inspectsync.db"
    shutil.copyfile(demo_template, sqlite_file)
    first = cli("audit", "verify", "--db", str(sqlite_file))  # writes the head down
    assert first.returncode == 0, first.stderr
    with fresh_database() as url:
        copied = cli("db", "copy", "--from", f"sqlite:{sqlite_file}", "--to", url)
        assert copied.returncode == 0, copied.stdout + copied.stderr
        assert "audit chain intact" in copied.stdout and "1 anchors of" in copied.stdout
        source, target = ServerDB(tmp_path), ServerDB(tmp_path, url)
        assert target.rows(RECORDS) == source.rows(RECORDS)
        for table in ("users", "devices", "history"):
            query = f"SELECT * FROM {table} ORDER BY 1"
            assert target.rows(query) == source.rows(query), table

        verified = cli("audit", "verify", "--database-url", url, "--data-dir", str(tmp_path))
        assert verified.returncode == 0 and "chain intact" in verified.stdout
        assert "1 of 1 anchors" in verified.stdout  # the head written down for SQLite
        migrated = cli("migrate", "--database-url", url)
        assert migrated.returncode == 0
        assert f"at schema version {len(PG_MIGRATIONS)}" in migrated.stdout

        # the copy goes on where SQLite stopped: the next seq, the next audit event
        store = PostgresStore(url, readers=1)
        await store.open()
        try:
            assert await store.find_user("admin") is not None
            last = max(r["seq"] for r in source.rows(RECORDS))
            rec = await store.create_record("site", "after-the-move", {})
            assert rec.seq == last + 1
            assert (await store.verify_audit()).ok
        finally:
            await store.close()

        again = cli("db", "copy", "--from", str(sqlite_file), "--to", url)
        assert again.returncode == 1 and "is not empty" in again.stderr
        assert len(target.rows(RECORDS)) == len(source.rows(RECORDS)) + 1  # nothing added


def test_migrate_reports_the_schema_of_either_backend(tmp_path):
    done = cli("migrate", "--db", str(tmp_path / "new.db"))
    assert done.returncode == 0 and f"at schema version {len(SQLITE_MIGRATIONS)}" in done.stdout
    missing = cli("db", "copy", "--from", str(tmp_path / "none.db"), "--to", "postgresql://x/y")
    assert missing.returncode == 1 and "no SQLite database" in missing.stderr
    assert not Path(tmp_path / "none.db").exists()
