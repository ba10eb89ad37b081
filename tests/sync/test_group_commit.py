"""Write batches that queue behind the writer commit together, each all or nothing, on
every backend."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sync.errors import StorageError
from sync.storage import BatchTx, Store
from sync.storage.postgres import PostgresStore
from sync.storage.sqlite import SQLiteStore
from tests.pg import fresh_schema


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        s: Store = SQLiteStore(tmp_path / "group.db", synchronous="NORMAL")
        await s.open()
        yield s
        await s.close()
        return
    with fresh_schema() as url:
        s = PostgresStore(url, readers=2)
        await s.open()
        yield s
        await s.close()


class Refused(Exception):
    pass


async def test_a_failing_batch_in_a_group_rolls_back_alone(store: Store):
    def put(n: int, fail: bool = False):  # type: ignore[no-untyped-def]
        def fn(tx: BatchTx) -> int:
            rec = tx.put_record("rec", f"r{n}", {"n": n}, rev=1)
            at = datetime.now(UTC)
            tx.put_mutation(
                f"u\x1fm{n}", user_id="u", device_id=None, batch_id="b", result=b"r", at=at
            )
            if fail:
                raise Refused(n)
            return rec.seq

        return fn

    # the first batch holds the writer while the others queue: they form one group
    results = await asyncio.gather(
        *(store.write_batch(put(n, fail=n in (3, 7))) for n in range(10)),
        return_exceptions=True,
    )
    failed = [n for n, r in enumerate(results) if isinstance(r, Refused)]
    assert failed == [3, 7]
    seqs = [r for r in results if isinstance(r, int)]
    assert len(seqs) == 8 and len(set(seqs)) == 8
    # committed: exactly the batches that were answered with a result
    for n in range(10):
        rec = await store.get_record("rec", f"r{n}")
        assert (rec is not None) == (n not in (3, 7))
    keys = [f"u\x1fm{n}" for n in range(10)]
    kept = await store.read_batch(lambda tx: tx.get_mutations(keys))
    assert sorted(kept) == [f"u\x1fm{n}" for n in range(10) if n not in (3, 7)]
    # the sequence goes on after the highest committed seq, with no reuse
    later = await store.write_batch(put(10))
    assert later > max(seqs)
    # one audit chain through the group: each batch continued from where the one
    # before it left the chain (a rolled-back one left it as it was)
    check = await store.verify_audit()
    assert check.ok and check.checked == 9


async def test_a_batch_that_breaks_the_database_fails_alone(store: Store):
    def bad(tx: BatchTx) -> None:
        tx.add_quarantine({"no_such_column": 1})

    def good(tx: BatchTx) -> int:
        return tx.put_record("rec", "ok", {}, rev=1).seq

    results = await asyncio.gather(
        store.write_batch(good),
        store.write_batch(bad),
        store.write_batch(good),
        return_exceptions=True,
    )
    assert isinstance(results[1], StorageError)
    assert isinstance(results[0], int)
    # the third re-puts "ok" at rev 1 after the first: allowed by put_record (upsert)
    assert isinstance(results[2], int)
    assert await store.get_record("rec", "ok") is not None
