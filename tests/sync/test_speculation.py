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

from sync.storage import BatchTx, Store, sql_speculate
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
        a.contention.mode = b.contention.mode = "always"
        await a.open()
        await b.open()
        yield a, b
        await b.close()
        await a.close()
        return
    with fresh_schema() as url:
        a = PostgresStore(url, readers=2, speculation="always")
        b = PostgresStore(url, readers=2, speculation="always")
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


async def test_two_instances_editing_the_same_findings_lose_nothing(
    demo_pg_template: str, tmp_path: Path
):
    """Two engines on one PostgreSQL database (two server instances), each pushing
    edits of the same findings from stale bases at the same moments: every write is
    accounted for as the serial order gives it (a record's revision counts the writes
    it took, each answered rev is distinct), conflicts are kept, the audit chain is one,
    and the sequence has no gap and no repeat."""
    from server.app import build_services
    from server.settings import Settings
    from sync.clock import SystemClock
    from sync.protocol import Applied, Conflicted, Merged, Mutation, PushRequest
    from tests.conftest import FAST, SECRET
    from tests.pg import fresh_database
    from tests.sync.conftest import principal

    with fresh_database(demo_pg_template) as url:
        services = []
        for n in (1, 2):
            d = tmp_path / f"instance{n}"
            d.mkdir()
            settings = Settings(data_dir=str(d), jwt_secret=SECRET, database_url=url, **FAST)
            s = build_services(settings, SystemClock())
            assert isinstance(s.store, SQLBase)
            s.store.contention.mode = "always"  # the race is on the merge made ahead
            await s.store.open()
            services.append(s)
        try:
            who = [
                await principal(services[0], "insp.js1", "dev-a"),
                await principal(services[1], "insp.js2", "dev-b"),
            ]
            ids = [f"f-race-{i}" for i in range(6)]
            first = PushRequest(
                mutations=[
                    Mutation(
                        mid=f"seed:{i}",
                        kind="finding",
                        id=rid,
                        base_rev=0,
                        fields={"inspection_id": "insp-ds-routine", "title": "seed"},
                        hlc=f"{1_800_000_000_000 + i:015d}.00000.seed",
                        device_time=AT,
                    )
                    for i, rid in enumerate(ids)
                ]
            )
            await services[0].engine.push(who[0], first)
            answers = []
            for rnd in range(8):  # each round both instances edit every finding from rev 1
                pushes = [
                    services[n].engine.push(
                        who[n],
                        PushRequest(
                            mutations=[
                                Mutation(
                                    mid=f"{n}:{rnd}:{i}",
                                    kind="finding",
                                    id=rid,
                                    base_rev=1,
                                    fields={
                                        "title": f"t{n}-{rnd}",
                                        "objective_evidence": f"{rnd}",
                                    },
                                    hlc=f"{1_800_000_001_000 + rnd * 10 + n:015d}.00000.d{n}",
                                    device_time=AT,
                                )
                                for i, rid in enumerate(ids)
                            ]
                        ),
                    )
                    for n in (0, 1)
                ]
                answers += await asyncio.gather(*pushes)
            results = [r for a in answers for r in a.results]
            assert len(results) == 2 * 8 * len(ids)
            assert all(isinstance(r, Applied | Merged | Conflicted) for r in results), results
            for rid in ids:
                revs = sorted(r.rev for r in results if r.id == rid)
                # 16 writes after the seed: revisions 2..17, each answered once
                assert revs == list(range(2, 18)), (rid, revs)
                rec = await services[1].store.get_record("finding", rid)
                assert rec is not None and rec.rev == 17
            check = await services[0].store.verify_audit()
            assert check.ok, check
            # every write took one seq: none twice, none skipped
            top = await services[0].store.read_batch(lambda tx: tx.max_seq())
            events = await services[0].store.read_batch(
                lambda tx: [e["seq"] for rid in ids for e in tx.history_of("finding", rid)]
            )
            assert len(set(events)) == len(events) == 17 * len(ids)
            assert max(events) <= top
            counts = [s.store.speculation_counts() for s in services]
            assert sum(c.get("kept", 0) for c in counts) >= 1
        finally:
            for s in services:
                await s.store.close()


async def test_alone_a_batch_takes_the_free_lock_and_speculates_once_it_finds_it_taken(
    monkeypatch: pytest.MonkeyPatch,
):
    """``auto`` (the default): a batch tries the lock first and, found free, runs under
    it without merging ahead; found held by another process, it merges ahead, and so do
    the batches of the next seconds without trying, each trying the lock before waiting
    for it: found taken again, the seconds start anew. ``never`` always waits."""
    now = [1000.0]
    monkeypatch.setattr(sql_speculate, "_clock", lambda: now[0])
    with fresh_schema() as url:
        a, b = PostgresStore(url, readers=2), PostgresStore(url, readers=2)
        await a.open()
        await b.open()

        def counts() -> tuple[int, int]:
            return a.speculation["locked"], a.speculation["kept"]

        async def while_b_holds_the_lock(rid: str) -> None:
            before = a.contention.until
            async with b.transaction():
                pending = asyncio.create_task(
                    a.write_batch(lambda tx: bump(tx, rid, 1), speculative=True)
                )
                for _ in range(500):  # until a has found the lock taken
                    if a.contention.until != before or pending.done():
                        break
                    await asyncio.sleep(0.01)
                assert not pending.done()  # it waits for the lock b holds
            await pending

        async def push(rid: str) -> None:
            await a.write_batch(lambda tx: bump(tx, rid, 1), speculative=True)

        try:
            await push("r1")
            assert counts() == (1, 0)  # the lock was free: taken at once
            await while_b_holds_the_lock("r2")
            assert counts() == (1, 1) and a.contention.until == 1000.0 + a.contention.hold
            now[0] = 1001.0
            await push("r3")  # within the seconds: merged ahead, the lock free by then
            assert counts() == (1, 2) and a.contention.until == 1002.0
            now[0] = 1001.5
            await while_b_holds_the_lock("r4")  # taken again: the seconds start anew
            assert counts() == (1, 3) and a.contention.until == 1003.5
            now[0] = 1002.5
            await push("r5")
            assert counts() == (1, 4)
            now[0] = 1004.0  # the seconds have passed: the lock is tried first again
            await push("r6")
            assert counts() == (2, 4)
            a.contention.mode = "never"
            await push("r7")
            assert sum(a.speculation.values()) == 6
            assert [r.id for r in await a.list_records("rec")] == [f"r{i}" for i in range(1, 8)]
            await history_ok(a)
        finally:
            await b.close()
            await a.close()
