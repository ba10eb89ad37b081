"""The storage contract (sync/store.py), written once and run against every backend.

A new backend joins by adding a factory to BACKENDS; nothing else changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sync.errors import AlreadyExists, NotFound, RevisionMismatch
from sync.models import Device, Filter, RefreshToken, Role, User
from sync.sqlite_store import SQLiteStore
from sync.store import Store

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)

BACKENDS: dict[str, Callable[[Path], Store]] = {
    "sqlite": lambda tmp: SQLiteStore(tmp / "contract.db", synchronous="NORMAL"),
}


@pytest.fixture(params=sorted(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s = BACKENDS[request.param](tmp_path)
    await s.open()
    await s.open()  # idempotent
    yield s
    await s.close()


def user(uid: str = "u1", username: str = "ann") -> User:
    return User(
        id=uid,
        username=username,
        display_name="Ann",
        role=Role.INSPECTOR,
        authority_id="js-mpa",
        password_hash="h",
        created_at=NOW,
    )


async def test_users(store: Store):
    await store.add_user(user())
    with pytest.raises(AlreadyExists):
        await store.add_user(user("u2", "ann"))
    with pytest.raises(AlreadyExists):
        await store.add_user(user("u1", "bob"))
    got = await store.find_user("ann")
    assert got == user()
    assert got.role is Role.INSPECTOR
    assert await store.find_user("Ann") is None
    assert await store.get_user("nobody") is None
    changed = await store.update_user("u1", disabled=True, password_hash="h2")
    assert changed.disabled and changed.password_hash == "h2"
    with pytest.raises(NotFound):
        await store.update_user("ghost", disabled=True)
    await store.add_user(user("u0", "aaron"))
    assert [u.username for u in await store.list_users()] == ["aaron", "ann"]


async def test_devices_and_revocation_revokes_their_tokens(store: Store):
    await store.add_user(user())
    dev = Device(id="d1", user_id="u1", name="tab", registered_at=NOW)
    await store.add_device(dev)
    with pytest.raises(AlreadyExists):
        await store.add_device(dev)
    token = RefreshToken(
        token_hash="t1",
        family_id="f1",
        user_id="u1",
        device_id="d1",
        issued_at=NOW,
        expires_at=NOW + timedelta(days=1),
    )
    await store.add_refresh_token(token)
    await store.touch_device("d1", NOW, "2.0")
    assert (await store.get_device("d1")).app_version == "2.0"
    revoked = await store.revoke_device("d1", NOW)
    assert revoked.revoked_at == NOW
    again = await store.revoke_device("d1", NOW + timedelta(hours=1))
    assert again.revoked_at == NOW  # first revocation time kept
    t = await store.use_refresh_token("t1", NOW)
    assert t is not None and t.revoked_at == NOW
    with pytest.raises(NotFound):
        await store.revoke_device("ghost", NOW)
    assert [d.id for d in await store.list_devices("u1")] == ["d1"]
    assert await store.list_devices("u2") == []


async def test_refresh_token_is_used_exactly_once_even_concurrently(store: Store):
    await store.add_user(user())
    await store.add_refresh_token(
        RefreshToken(
            token_hash="t",
            family_id="f",
            user_id="u1",
            device_id=None,
            issued_at=NOW,
            expires_at=NOW + timedelta(days=1),
        )
    )
    results = await asyncio.gather(*(store.use_refresh_token("t", NOW) for _ in range(10)))
    assert sum(1 for r in results if r is not None and r.used_at is None) == 1
    assert await store.use_refresh_token("nope", NOW) is None
    await store.add_refresh_token(
        RefreshToken(
            token_hash="t2",
            family_id="f",
            user_id="u1",
            device_id=None,
            issued_at=NOW,
            expires_at=NOW + timedelta(days=1),
        )
    )
    assert await store.revoke_token_family("f", NOW) == 2
    assert await store.revoke_token_family("f", NOW) == 0


async def test_records_revisions_tombstones_and_the_sequence(store: Store):
    a = await store.create_record("site", "a", {"name": "A", "n": 1, "tags": ["x", "y"]})
    b = await store.create_record("site", "b", {"name": "B", "n": 2, "tags": ["y"]})
    assert (a.rev, b.rev) == (1, 1)
    assert b.seq > a.seq
    with pytest.raises(AlreadyExists):
        await store.create_record("site", "a", {})
    a2 = await store.update_record("site", "a", {"name": "A2", "n": 3, "tags": []}, expect_rev=1)
    assert a2.rev == 2 and a2.seq > b.seq
    with pytest.raises(RevisionMismatch):
        await store.update_record("site", "a", {"name": "late"}, expect_rev=1)
    assert (await store.get_record("site", "a")).data["name"] == "A2"
    gone = await store.delete_record("site", "b")
    assert gone.deleted and gone.seq > a2.seq and gone.rev == 2
    assert await store.get_record("site", "b") is None
    with pytest.raises(NotFound):
        await store.update_record("site", "b", {})
    with pytest.raises(AlreadyExists):  # a tombstone keeps its id
        await store.create_record("site", "b", {})
    # the same id in another kind is another record
    await store.create_record("product", "a", {"name": "P"})
    assert [r.id for r in await store.list_records("site")] == ["a"]


async def test_filters_ordering_and_paging(store: Store):
    for i in range(7):
        await store.create_record(
            "insp",
            f"i{i}",
            {
                "status": "open" if i % 2 else "closed",
                "day": f"2026-01-0{i + 1}",
                "team": [f"u{i}", "lead"],
                "n": i,
            },
        )
    q = lambda *f, **kw: store.list_records("insp", list(f), **kw)  # noqa: E731
    assert [r.id for r in await q(Filter("status", "eq", "open"))] == ["i1", "i3", "i5"]
    assert [r.id for r in await q(Filter("status", "ne", "open"))] == ["i0", "i2", "i4", "i6"]
    assert [r.id for r in await q(Filter("team", "contains", "u3"))] == ["i3"]
    assert len(await q(Filter("team", "contains", "lead"))) == 7
    assert [r.id for r in await q(Filter("id", "in", ["i2", "i4", "zz"]))] == ["i2", "i4"]
    assert await q(Filter("id", "in", [])) == []
    assert [r.id for r in await q(Filter("day", "gte", "2026-01-06"))] == ["i5", "i6"]
    assert [r.id for r in await q(Filter("n", "lte", 1))] == ["i0", "i1"]
    assert [r.id for r in await q(order_by="-n", limit=3)] == ["i6", "i5", "i4"]
    assert [r.id for r in await q(order_by="n", limit=3, offset=5)] == ["i5", "i6"]
    assert await store.count_records("insp", [Filter("status", "eq", "closed")]) == 4
    with pytest.raises(ValueError, match="bad filter field"):
        await q(Filter("x'); DROP TABLE records; --", "eq", 1))


async def test_a_failed_transaction_commits_nothing(store: Store):
    await store.create_record("site", "keep", {"v": 1})
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await tx.update_record("site", "keep", {"v": 2})
            await tx.create_record("site", "new", {"v": 1})
            assert (await tx.get_record("site", "new")).data == {"v": 1}  # sees its writes
            raise RuntimeError("boom")
    assert (await store.get_record("site", "keep")).data == {"v": 1}
    assert await store.get_record("site", "new") is None
    # and the sequence did not go backwards or repeat
    nxt = await store.create_record("site", "after", {})
    assert nxt.seq > (await store.get_record("site", "keep")).seq


async def test_concurrent_writers_never_collide_and_seqs_are_unique(store: Store):
    async def writer(n: int) -> list[int]:
        seqs = []
        for i in range(20):
            rec = await store.create_record("rec", f"w{n}-{i}", {"n": n})
            seqs.append(rec.seq)
        return seqs

    results = await asyncio.gather(*(writer(n) for n in range(10)))
    seqs = [s for r in results for s in r]
    assert len(set(seqs)) == 200
    for r in results:
        assert r == sorted(r)
    assert await store.count_records("rec") == 200


async def test_ping_and_schema_version(store: Store):
    await store.ping()
    assert await store.schema_version() >= 1
