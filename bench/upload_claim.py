"""What the claim on an upload costs a chunk, at the store (no HTTP, no file bytes).

A chunk's store work was a read of the upload and a write of its new offset; with the
claim (``sync/upload_claim.py``) it is a write that claims and reads the upload, and
the offset's write that also ends the claim. This times ``--chunks`` of each, one
after the other, on SQLite (``synchronous=FULL``, the server's default) and, with
``--database-url``, on PostgreSQL (a scratch database is created and dropped), and
prints milliseconds per chunk.

Usage (from the repository root)::

    .venv/bin/python bench/upload_claim.py --chunks 300
    .venv/bin/python bench/upload_claim.py --database-url postgresql://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from sync.models import Upload
from sync.storage import Store
from sync.storage.postgres import PostgresStore
from sync.storage.sqlite import SQLiteStore


def _upload(n: int) -> Upload:
    now = datetime.now(UTC)
    return Upload(
        id=uuid.uuid4().hex,
        sha256="1" * 64,
        length=n + 1,
        inspection_id="i1",
        user_id="u1",
        metadata={},
        created_at=now,
        expires_at=now + timedelta(hours=24),
    )


async def _time(store: Store, chunks: int) -> tuple[float, float]:
    """Milliseconds per chunk: (read + write, claim + fenced write that releases)."""
    before = _upload(chunks)
    claimed = _upload(chunks)
    await store.add_upload(before)
    await store.add_upload(claimed)
    start = time.perf_counter()
    for n in range(chunks):
        up = await store.get_upload(before.id)
        assert up is not None
        await store.update_upload(up.id, offset=n + 1)
    old = (time.perf_counter() - start) * 1000 / chunks
    start = time.perf_counter()
    for n in range(chunks):
        now = datetime.now(UTC)
        holder = uuid.uuid4().hex
        up = await store.claim_upload(
            claimed.id, holder, now=now, until=now + timedelta(seconds=90)
        )
        await store.update_upload(up.id, offset=n + 1, holder=holder, release=True)
    new = (time.perf_counter() - start) * 1000 / chunks
    return old, new


def _report(name: str, old: float, new: float) -> None:
    print(
        f"{name:<26} read+write {old:6.2f} ms/chunk, claim+fenced write {new:6.2f} ms/chunk"
        f" ({new - old:+.2f} ms)"
    )


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chunks", type=int, default=300)
    p.add_argument("--database-url", help="a PostgreSQL server to run on too")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "bench.db", synchronous="FULL")
        await store.open()
        try:
            _report("SQLite (synchronous=FULL)", *await _time(store, args.chunks))
        finally:
            await store.close()
    if args.database_url:
        name = f"bench_claim_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.database_url, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}".encode())
        try:
            url = make_conninfo(**{**conninfo_to_dict(args.database_url), "dbname": name})
            pg = PostgresStore(url, readers=2)
            await pg.open()
            try:
                _report("PostgreSQL", *await _time(pg, args.chunks))
            finally:
                await pg.close()
        finally:
            with psycopg.connect(args.database_url, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE {name}".encode())


if __name__ == "__main__":
    asyncio.run(main())
