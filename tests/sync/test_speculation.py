"""Push batches merged before the write lock and checked under it
(sync/storage/sql_speculate.py), on both backends: PostgreSQL speculates; SQLite is made
to here, so that the same mechanism is proved on each.

Another process's commit is made to land between a batch's speculative run and its
check under the lock: from inside the batch (on the writer's thread) a second store on
the same database writes through the test's event loop, which is free meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sync.storage import BatchTx, Store
from sync.storage.postgres import PostgresStore
from sync.storage.sql_base import SQLBase
from sync.storage.sqlite import SQLiteStore
from tests.pg import fresh_schema

AT = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
async def pair(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[SQLBase, SQLBase]]:
    """Two stores on one database (two server processes), speculating."""
    if request.param == "sqlite":
        monkeypatch.setattr(type(SQLiteStore.dialect), "speculates", True)
        a: SQLBase = SQLiteStore(tmp_path / "spec.db", synchronous="NORMAL")
        b: SQLBase = SQLiteStore(tmp_path / "spec.db", synchronous="NORMAL")
        await a.open()
        await b.open()
        yield a, b
        await b.close()
        await a.close()
        return
    with fresh_schema() as url:
        a, b = PostgresStore(url, readers=2), PostgresStore(url, readers=2)
        await a.open()
        await b.open()
        yield a, b
        await b.close()
        await a.close()


LOOP: list[asyncio.AbstractEventLoop] = []


@pytest.fixture(autouse=True)
async def _loop() -> AsyncIterator[None]:
    LOOP[:] = [asyncio.get_running_loop()]
    yield
    LOOP.clear()


def meanwhile(other: Store, fn: Callable[[BatchTx], Any]) -> None:
    """Commit ``fn`` through ``other`` now, from the writer's thread of the first (the
    test's event loop is free: it awaits the first store's batch)."""
    asyncio.run_coroutine_threadsafe(other.write_batch(fn), LOOP[0]).result(timeout=30)


def bump(tx: BatchTx, rid: str, n: int) -> None:
    tx.put_record("rec", rid, {"n": n, "inspection_id": "i1"}, rev=n)


async def history_ok(store: Store) -> None:
    check = await store.verify_audit()
    assert check.ok, check


async def test_a_speculation_that_still_holds_is_kept_with_the_real_seqs(pair):
    a, b = pair
    await b.write_batch(lambda tx: [bump(tx, f"r{i}", 1) for i in range(3)])
    runs: list[int] = []

    def push(tx: BatchTx) -> list[int]:
        runs.append(1)
        seen = tx.get_records([("rec", "r0"), ("rec", "new")])
        assert ("rec", "r0") in seen and ("rec", "new") not in seen
        tx.get_mutations(["u\x1fm1"])
        tx.put_record("rec", "r0", {"n": 2, "inspection_id": "i1"}, rev=2)
        tx.put_record("rec", "new", {"n": 1, "inspection_id": "i1"}, rev=1)
        tx.put_mutation("u\x1fm1", user_id="u", device_id=None, batch_id="b", result=b"r", at=AT)
        return [len(tx.records_of("rec", "i9"))]

    assert await a.write_batch(push, speculative=True) == [0]
    assert len(runs) == 1 and a.speculation["kept"] == 1
    r0, new = await a.get_record("rec", "r0"), await a.get_record("rec", "new")
    assert r0 is not None and new is not None
    assert (r0.rev, r0.data["n"]) == (2, 2)
    # numbered after what was stored, in the order written, with no gap
    assert (r0.seq, new.seq) == (4, 5)
    assert await a.read_batch(lambda tx: tx.max_seq()) == 5
    await history_ok(a)
    # the next batch, from the other process, goes on from there
    await b.write_batch(lambda tx: bump(tx, "r1", 2))
    assert (await b.get_record("rec", "r1")).seq == 6  # type: ignore[union-attr]
    await history_ok(b)


async def test_a_record_changed_meanwhile_makes_the_batch_run_again_under_the_lock(pair):
    a, b = pair
    await b.write_batch(lambda tx: bump(tx, "r0", 1))
    runs: list[int] = []

    def push(tx: BatchTx) -> int:
        current = tx.get_records([("rec", "r0")])[("rec", "r0")]
        runs.append(current.rev)
        if len(runs) == 1:  # another instance commits between this run and the lock
            meanwhile(b, lambda t: bump(t, "r0", 2))
        tx.put_record("rec", "r0", {"n": current.data["n"] + 10}, rev=current.rev + 1)
        return current.rev

    # the answer is the serialised one: built on rev 2, not on the stale rev 1
    assert await a.write_batch(push, speculative=True) == 2
    assert runs == [1, 2] and a.speculation["rerun"] == 1
    got = await a.get_record("rec", "r0")
    assert got is not None and (got.rev, got.data["n"]) == (3, 12)
    await history_ok(a)


async def test_a_mutation_id_used_meanwhile_makes_the_batch_run_again(pair):
    a, b = pair
    key = "u\x1fm7"

    def record(tx: BatchTx) -> None:
        tx.put_mutation(key, user_id="u", device_id=None, batch_id="b", result=b"x", at=AT)

    seen: list[bool] = []

    def push(tx: BatchTx) -> bool:
        known = key in tx.get_mutations([key])
        seen.append(known)
        if len(seen) == 1:
            meanwhile(b, record)
        if not known:
            record(tx)
        return known

    assert await a.write_batch(push, speculative=True) is True
    assert seen == [False, True] and a.speculation["rerun"] == 1


async def test_a_record_added_to_a_listed_inspection_meanwhile_makes_it_run_again(pair):
    a, b = pair
    counts: list[int] = []

    def push(tx: BatchTx) -> int:
        counts.append(len(tx.records_of("rec", "i1")))
        if len(counts) == 1:
            meanwhile(b, lambda t: bump(t, "other", 1))
        tx.put_record("rec", "mine", {"listed": counts[-1], "inspection_id": "i2"}, rev=1)
        return counts[-1]

    assert await a.write_batch(push, speculative=True) == 1
    assert counts == [0, 1]
    got = await a.get_record("rec", "mine")
    assert got is not None and got.data["listed"] == 1
    await history_ok(a)


async def test_a_batch_that_reads_back_what_it_wrote_runs_under_the_lock(pair):
    a, _ = pair
    runs: list[int] = []

    def push(tx: BatchTx) -> int:
        runs.append(1)
        tx.put_record("rec", "x", {"n": 1, "inspection_id": "i1"}, rev=1)
        again = tx.get_record("rec", "x")  # needs its own write in the database
        assert again is not None
        return again.seq

    assert await a.write_batch(push, speculative=True) == 1
    assert len(runs) == 2 and a.speculation["declined"] == 1
    await history_ok(a)


async def test_queued_speculative_batches_commit_as_one_group_in_order(pair):
    """Batches queued behind the writer speculate one after another before the lock;
    a later one that read what an earlier one of the group wrote runs again, so the
    group's result is the serial one, and its seqs and audit chain run on unbroken."""
    a, _ = pair

    def push(n: int) -> Callable[[BatchTx], int]:
        def run(tx: BatchTx) -> int:
            cur = tx.get_records([("rec", "shared")]).get(("rec", "shared"))
            total = (cur.data["n"] if cur else 0) + 1
            rev = (cur.rev if cur else 0) + 1
            tx.put_record("rec", "shared", {"n": total, "inspection_id": "i1"}, rev=rev)
            tx.put_record("rec", f"own{n}", {"n": n, "inspection_id": "i1"}, rev=1)
            return total

        return run

    results = await asyncio.gather(*(a.write_batch(push(n), speculative=True) for n in range(8)))
    assert sorted(results) == list(range(1, 9))
    shared = await a.get_record("rec", "shared")
    assert shared is not None and (shared.data["n"], shared.rev) == (8, 8)
    # 16 writes, numbered 1 to 16 with no gap and none twice
    assert await a.read_batch(lambda tx: tx.max_seq()) == 16
    events = await a.read_batch(lambda tx: tx.history_of("rec", "shared"))
    assert [e["rev"] for e in events] == list(range(1, 9))
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == 8
    owns = [(await a.get_record("rec", f"own{n}")) for n in range(8)]
    assert sorted([*seqs, *(o.seq for o in owns if o)]) == list(range(1, 17))
    assert a.speculation["kept"] >= 1
    await history_ok(a)
