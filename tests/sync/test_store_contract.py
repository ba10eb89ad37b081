"""The storage contract (sync/storage/contract.py), written once and run against every backend.

A new backend joins by adding itself to BACKENDS and the ``store`` fixture; nothing else
changes. The PostgreSQL run uses a fresh schema per test (tests/pg.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sync.errors import AlreadyExists, NotFound, QuotaExceeded, RevisionMismatch, UploadLocked
from sync.models import (
    Device,
    EvidenceFile,
    EvidenceRef,
    Filter,
    RefreshToken,
    Role,
    Upload,
    User,
)
from sync.storage import BatchTx, Store
from sync.storage.postgres import PostgresStore
from sync.storage.sqlite import SQLiteStore
from tests.pg import fresh_schema

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)

BACKENDS = ("sqlite", "postgres")


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        s: Store = SQLiteStore(tmp_path / "contract.db", synchronous="NORMAL")
        await s.open()
        await s.open()  # idempotent
        yield s
        await s.close()
        return
    with fresh_schema() as url:
        s = PostgresStore(url, readers=2)
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


# --- evidence ------------------------------------------------------------------------

H1, H2, H3 = "1" * 64, "2" * 64, "3" * 64


def upload(uid: str, *, iid: str = "i1", length: int = 100, sha: str = H1, at=NOW) -> Upload:
    return Upload(
        id=uid,
        sha256=sha,
        length=length,
        inspection_id=iid,
        user_id="u1",
        device_id="d1",
        metadata={"sha256": sha, "filename": "IMG_1.jpg"},
        created_at=at,
        expires_at=at + timedelta(hours=24),
    )


def evidence(
    sha: str, iid: str, *, size: int = 100, by: str = "u1"
) -> tuple[EvidenceFile, EvidenceRef]:
    ref = EvidenceRef(
        sha256=sha,
        inspection_id=iid,
        uploaded_by=by,
        device_id="d1",
        captured_at="2026-03-01T08:00:00+08:00",
        latitude=31.3,
        longitude=120.6,
        filename_hint="IMG_1.jpg",
        created_at=NOW,
    )
    file = EvidenceFile(
        sha256=sha,
        size=size,
        media_type="image/jpeg",
        inspection_id=iid,
        uploaded_by=by,
        device_id="d1",
        captured_at=ref.captured_at,
        latitude=31.3,
        longitude=120.6,
        exif_captured_at="2026-03-01T08:00:00",
        exif_latitude=31.31,
        exif_longitude=120.59,
        filename_hint="IMG_1.jpg",
        created_at=NOW,
        thumbnail=True,
    )
    return file, ref


async def test_uploads_are_kept_updated_and_deleted(store: Store):
    up = upload("a" * 32)
    await store.add_upload(up)
    with pytest.raises(AlreadyExists):
        await store.add_upload(up)
    assert await store.get_upload("a" * 32) == up
    assert await store.get_upload("b" * 32) is None
    later = NOW + timedelta(hours=30)
    await store.update_upload("a" * 32, offset=40, media_type="image/png", expires_at=later)
    got = await store.get_upload("a" * 32)
    assert (got.offset, got.media_type, got.expires_at) == (40, "image/png", later)
    await store.update_upload("a" * 32, offset=60)  # None keeps type and expiry
    got = await store.get_upload("a" * 32)
    assert (got.offset, got.media_type, got.expires_at) == (60, "image/png", later)
    with pytest.raises(NotFound):
        await store.update_upload("b" * 32, offset=1)
    assert await store.expired_uploads(NOW + timedelta(hours=29)) == []
    assert [u.id for u in await store.expired_uploads(later)] == ["a" * 32]
    assert await store.delete_upload("a" * 32) is True
    assert await store.delete_upload("a" * 32) is False


async def test_the_inspection_quota_counts_stored_files_once_and_open_uploads(store: Store):
    await store.add_upload(upload("a" * 32, length=400), quota=1000)
    await store.add_upload(upload("b" * 32, length=500), quota=1000)
    with pytest.raises(QuotaExceeded) as err:
        await store.add_upload(upload("c" * 32, length=101), quota=1000)
    assert err.value.extra == {"used": 900, "limit": 1000}
    assert await store.get_upload("c" * 32) is None
    await store.add_upload(upload("x" * 32, iid="i2", length=900), quota=1000)  # own budget
    # completing one: its file counts instead of its upload, once however often stored
    file, ref = evidence(H1, "i1", size=400)
    assert await store.complete_upload("a" * 32, file, ref, NOW) is True
    assert await store.evidence_usage("i1", NOW) == 900
    await store.add_upload(upload("d" * 32, length=100), quota=1000)
    assert await store.complete_upload("d" * 32, *evidence(H1, "i1", size=400), NOW) is False
    assert await store.evidence_usage("i1", NOW) == 900
    # expired uploads hold nothing
    assert await store.evidence_usage("i1", NOW + timedelta(hours=25)) == 400


async def test_two_concurrent_uploads_cannot_both_squeeze_under_the_quota(store: Store):
    ups = [upload(f"{n:032x}", length=600) for n in range(6)]
    results = await asyncio.gather(
        *(store.add_upload(u, quota=1000) for u in ups), return_exceptions=True
    )
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, QuotaExceeded) for r in results if r is not None)


async def test_a_claim_on_an_upload_is_exclusive_fences_writes_and_runs_out(store: Store):
    a32, until = "a" * 32, NOW + timedelta(seconds=90)
    await store.add_upload(upload(a32))
    got = await store.claim_upload(a32, "A", now=NOW, until=until)
    assert got == upload(a32)  # the upload as it is under the claim
    with pytest.raises(UploadLocked) as err:
        await store.claim_upload(a32, "B", now=NOW + timedelta(seconds=30), until=until)
    assert err.value.extra == {"retry_after": 60}  # until A's claim runs out
    # B holds nothing: its writes change nothing
    with pytest.raises(UploadLocked):
        await store.update_upload(a32, offset=50, holder="B")
    with pytest.raises(UploadLocked):
        await store.complete_upload(a32, *evidence(H1, "i1"), NOW, holder="B")
    assert await store.release_upload(a32, "B") is False
    assert (await store.get_upload(a32)).offset == 0
    # A extends its claim, records an offset and lets go in the same transaction
    later = NOW + timedelta(seconds=180)
    await store.claim_upload(a32, "A", now=NOW + timedelta(seconds=60), until=later)
    await store.update_upload(a32, offset=40, holder="A", release=True)
    assert (await store.get_upload(a32)).offset == 40
    with pytest.raises(UploadLocked):  # released: A's next write needs a new claim
        await store.update_upload(a32, offset=50, holder="A")
    assert (await store.claim_upload(a32, "B", now=NOW, until=until)).offset == 40
    # B stalls past its claim's end: A takes over, and B's late write is refused
    taken = await store.claim_upload(a32, "A", now=until, until=until + timedelta(seconds=90))
    assert taken.offset == 40
    with pytest.raises(UploadLocked):
        await store.update_upload(a32, offset=100, holder="B")
    assert await store.release_upload(a32, "B") is False
    renew = {"now": until, "until": until + timedelta(seconds=90), "renewing": True}
    with pytest.raises(UploadLocked):  # B cannot renew what it lost
        await store.claim_upload(a32, "B", **renew)
    await store.claim_upload(a32, "A", **renew)  # A can
    # completing ends the claim
    assert await store.complete_upload(a32, *evidence(H1, "i1"), NOW, holder="A") is True
    assert await store.release_upload(a32, "A") is False
    with pytest.raises(UploadLocked):  # released: not even free uploads are renewed
        await store.claim_upload(a32, "A", **renew)
    assert (await store.claim_upload(a32, "C", now=NOW, until=until)).offset == 100
    with pytest.raises(NotFound):
        await store.claim_upload("b" * 32, "A", now=NOW, until=until)
    with pytest.raises(NotFound):
        await store.update_upload("b" * 32, offset=1, holder="A")
    assert await store.release_upload("b" * 32, "A") is False


async def test_one_claim_on_an_upload_across_processes(store: Store):
    """Claims made at once through two stores over one database (two server processes)
    on the same upload: exactly one is granted; once it is released the other is."""
    other = _twin(store)
    await other.open()
    try:
        a32, until = "a" * 32, NOW + timedelta(seconds=90)
        await store.add_upload(upload(a32))
        for round_ in range(5):
            results = await asyncio.gather(
                *(
                    s.claim_upload(a32, f"{name}{round_}", now=NOW, until=until)
                    for s, name in ((store, "x"), (other, "y"), (store, "z"), (other, "w"))
                ),
                return_exceptions=True,
            )
            won = [r for r in results if isinstance(r, Upload)]
            assert len(won) == 1, results
            assert sum(isinstance(r, UploadLocked) for r in results) == 3
            winner = ("x", "y", "z", "w")[results.index(won[0])] + str(round_)
            await (store if winner[0] in "xz" else other).update_upload(
                a32, offset=round_ + 1, holder=winner, release=True
            )
        assert (await other.get_upload(a32)).offset == 5
    finally:
        await other.close()


async def test_a_completed_file_is_kept_once_with_every_inspections_reference(store: Store):
    await store.add_upload(upload("a" * 32))
    await store.add_upload(upload("b" * 32, iid="i2"))
    first, ref1 = evidence(H1, "i1", by="u1")
    assert await store.complete_upload("a" * 32, first, ref1, NOW) is True
    second, ref2 = evidence(H1, "i2", by="u2")
    later = NOW + timedelta(minutes=5)
    ref2.created_at = later
    assert await store.complete_upload("b" * 32, second, ref2, later) is False
    assert await store.get_evidence(H1) == first  # the first upload's who/where/when
    assert await store.get_evidence(H2) is None
    assert [(r.inspection_id, r.uploaded_by) for r in await store.evidence_refs(H1)] == [
        ("i1", "u1"),
        ("i2", "u2"),
    ]
    done = await store.get_upload("b" * 32)
    assert done.completed_at == later and done.offset == done.length
    assert done.media_type == "image/jpeg"
    with pytest.raises(NotFound):
        await store.complete_upload("c" * 32, first, ref1, NOW)
    assert await store.stored_evidence([H1, H2, H1]) == {H1}


async def test_records_name_evidence_and_the_missing_list_follows_uploads(store: Store):
    await store.create_record("finding", "f1", {"inspection_id": "i1", "evidence_hashes": [H1, H2]})
    await store.create_record("response", "i1~l~a~0", {"inspection_id": "i1", "evidence": [H2]})
    await store.create_record("response", "i2~l~a~0", {"inspection_id": "i2", "evidence": [H3]})
    await store.create_record("finding", "f-gone", {"inspection_id": "i2", "evidence_hashes": [H1]})
    await store.delete_record("finding", "f-gone")
    await store.create_record("site", "s", {"evidence_hashes": [H1]})  # not field data
    assert await store.evidence_references(H1) == [("finding", "f1", "i1")]
    assert await store.evidence_references(H2) == [
        ("finding", "f1", "i1"),
        ("response", "i1~l~a~0", "i1"),
    ]
    assert await store.missing_evidence(["i1", "i2", "i9"]) == {"i1": [H1, H2], "i2": [H3]}
    await store.add_upload(upload("a" * 32, sha=H2))
    await store.complete_upload("a" * 32, *evidence(H2, "i1"), NOW)
    assert await store.missing_evidence(["i1"]) == {"i1": [H1]}
    # the same, inside one snapshot of a batch (what a pull uses)
    got = await store.read_batch(
        lambda tx: (tx.missing_evidence(["i1", "i2"]), tx.stored_evidence([H1, H2]))
    )
    assert got == ({"i1": [H1], "i2": [H3]}, {H2})
    assert await store.missing_evidence([]) == {}
    # stored for i1 only: a record of i2 naming it still misses it (naming grants nothing)
    await store.create_record("finding", "f2", {"inspection_id": "i2", "evidence_hashes": [H2]})
    assert await store.missing_evidence(["i1", "i2"]) == {"i1": [H1], "i2": [H2, H3]}
    await store.add_upload(upload("d" * 32, iid="i2", sha=H2))
    await store.complete_upload("d" * 32, *evidence(H2, "i2"), NOW)  # sent again for i2
    assert await store.missing_evidence(["i1", "i2"]) == {"i1": [H1], "i2": [H3]}


async def test_a_rectification_names_the_files_of_its_responses(store: Store):
    """Its current response's files and its earlier responses' files; a hash quoted in a
    comment or kept elsewhere in the record names nothing, nor does a deleted one."""
    await store.create_record(
        "rectification",
        "f1",
        {
            "inspection_id": "i1",
            "finding_id": "f1",
            "earlier_responses": [{"evidence_hashes": [H1], "actions": "x"}],
            "response": {"evidence_hashes": [H2], "root_cause": f"see {H3}"},
            "assessments": [{"outcome": "more_needed", "comment": f'"{H3}"'}],
        },
    )
    await store.create_record(
        "rectification", "f9", {"inspection_id": "i2", "response": {"evidence_hashes": [H2]}}
    )
    await store.create_record("finding", "f2", {"inspection_id": "i1", "evidence_hashes": [H2]})
    assert await store.evidence_references(H1) == [("rectification", "f1", "i1")]
    assert await store.evidence_references(H2) == [
        ("finding", "f2", "i1"),
        ("rectification", "f1", "i1"),
        ("rectification", "f9", "i2"),
    ]
    assert await store.evidence_references(H3) == []
    await store.delete_record("rectification", "f9")
    assert await store.evidence_references(H2) == [
        ("finding", "f2", "i1"),
        ("rectification", "f1", "i1"),
    ]
    assert await store.evidence_references("%") == []
    # a rectification's files are stored before its response names them: never missing
    assert await store.missing_evidence(["i1"]) == {"i1": [H2]}


# --- several processes on one database -------------------------------------------------


def _twin(store: Store) -> Store:
    """A second store on the same database: what another server process holds."""
    if isinstance(store, SQLiteStore):
        return SQLiteStore(store.path, synchronous="NORMAL")
    assert isinstance(store, PostgresStore)
    return PostgresStore(store.url, readers=2)


async def test_a_pull_never_skips_a_lower_seq_that_commits_after_a_higher_one(store: Store):
    """Writer A takes its seq and holds its transaction open; writer B (another process)
    writes meanwhile; a tablet pulls in between. Were B's higher seq visible before A's
    lower one, the tablet's cursor would pass A's record for good. Writes are serialised
    across processes, so B commits after A, and the pull that follows sees both."""
    other = _twin(store)
    await other.open()
    try:
        await store.create_record("site", "before", {})
        refs = [("site", "before"), ("site", "a"), ("site", "b")]
        took, release = threading.Event(), threading.Event()

        def slow(tx: BatchTx) -> int:
            seq = tx.put_record("site", "a", {"v": 1}, rev=1).seq
            took.set()
            assert release.wait(10)
            return seq

        a = asyncio.create_task(store.write_batch(slow))
        assert await asyncio.to_thread(took.wait, 10)
        b = asyncio.create_task(
            other.write_batch(lambda tx: tx.put_record("site", "b", {"v": 1}, rev=1).seq)
        )
        await asyncio.sleep(0.3)  # time for B to commit, were it not held back

        def pull(after: int) -> Callable[[BatchTx], tuple[int, list[str]]]:
            return lambda tx: (tx.max_seq(), [r.id for r in tx.feed(after, [], refs, 100)])

        cursor, seen = await other.read_batch(pull(0))
        assert seen == ["before"] and not b.done()
        release.set()
        seq_a, seq_b = await a, await b
        assert seq_a < seq_b  # committed in seq order
        _, later = await other.read_batch(pull(cursor))
        assert later == ["a", "b"]  # nothing passed by the cursor
    finally:
        await other.close()


async def test_two_processes_keep_one_audit_chain(store: Store):
    other = _twin(store)
    await other.open()
    try:

        async def writes(s: Store, name: str) -> None:
            for i in range(15):
                await s.create_record("site", f"{name}-{i}", {"i": i})

        await asyncio.gather(writes(store, "x"), writes(other, "y"))
        result = await other.verify_audit()
        assert result.ok and result.checked == 30
    finally:
        await other.close()


async def test_failed_logins_are_counted_in_their_window_and_cleared(store: Store):
    at = [NOW + timedelta(seconds=s) for s in (0, 10, 20)]
    for t in at:
        await store.add_login_failure("li\x1f10.0.0.1", t, forget_before=t - timedelta(minutes=5))
    await store.add_login_failure("zh\x1f10.0.0.2", at[2], forget_before=at[0])
    assert await store.login_failures("li\x1f10.0.0.1", at[1]) == at[1:]
    assert await store.login_failures("li\x1f10.0.0.1", NOW - timedelta(hours=1)) == at
    # a failure much later forgets every key's failures before its window
    late = NOW + timedelta(hours=1)
    await store.add_login_failure("zh\x1f10.0.0.2", late, forget_before=late - timedelta(minutes=5))
    assert await store.login_failures("li\x1f10.0.0.1", NOW - timedelta(hours=2)) == []
    await store.clear_login_failures("zh\x1f10.0.0.2")
    assert await store.login_failures("zh\x1f10.0.0.2", NOW - timedelta(hours=2)) == []


@pytest.mark.parametrize("merged", [True, False], ids=["per-inspection-ranges", "one-range"])
async def test_feed_pages_of_several_inspections(
    store: Store, merged: bool, monkeypatch: pytest.MonkeyPatch
):
    """A feed page over several inspections and unbound refs is the lowest ``limit``
    seqs after the cursor, in seq order, whichever way the backend finds them (one
    index range per inspection up to a number of inspections, one range above it)."""
    import sync.storage.sql_feed as sql_feed

    monkeypatch.setattr(sql_feed, "_MERGED_SCOPES", 64 if merged else 0)
    inspections = ["i-a", "i-b", "i-c"]

    def fill(tx: BatchTx) -> None:
        for n in range(60):
            iid = inspections[n % 3] if n % 7 else "i-other"
            tx.put_record("finding", f"f{n:02d}", {"inspection_id": iid, "n": n}, rev=1)
        for n in range(4):
            tx.put_record("product", f"p{n}", {"n": n}, rev=1)
        # a later write moves a record to a later position of the feed
        tx.put_record("finding", "f01", {"inspection_id": "i-b", "n": 1, "x": 1}, rev=2)
        tx.put_record("finding", "f02", {"inspection_id": "i-c"}, rev=2, deleted=True)

    await store.write_batch(fill)
    refs = [("product", "p1"), ("product", "p3")]

    def read_all(tx: BatchTx) -> list[tuple[int, str]]:
        keys = [("finding", f"f{n:02d}") for n in range(60)] + refs
        every = [tx.get_record(k, i, include_deleted=True) for k, i in keys]
        return sorted(
            (r.seq, r.id)
            for r in every
            if r is not None
            and (r.data.get("inspection_id") in inspections or (r.kind, r.id) in refs)
        )

    def pages(
        live_only: bool, max_seq: int | None
    ) -> Callable[[BatchTx], list[list[tuple[int, str]]]]:
        def run(tx: BatchTx) -> list[list[tuple[int, str]]]:
            out, after = [], 0
            while True:
                page = tx.feed(after, inspections, refs, 7, live_only=live_only, max_seq=max_seq)
                if not page:
                    return out
                out.append([(r.seq, r.id) for r in page])
                after = page[-1].seq

        return run

    expected = await store.read_batch(read_all)
    got = await store.read_batch(pages(False, None))
    assert [x for page in got for x in page] == [x for x in expected]
    assert all(len(p) == 7 for p in got[:-1])
    # the tombstone is in the feed, and left out with live_only
    assert "f02" in {i for _, i in expected}
    live = await store.read_batch(pages(True, None))
    assert [x for page in live for x in page] == [x for x in expected if x[1] != "f02"]
    cap = expected[len(expected) // 2][0]
    capped = await store.read_batch(pages(False, cap))
    assert [x for page in capped for x in page] == [x for x in expected if x[0] <= cap]


async def test_device_sync_adds_mutations_received(store: Store):
    def push(n: int, **fields: object) -> Callable[[BatchTx], None]:
        def run(tx: BatchTx) -> None:
            tx.update_device_sync("d1", "u1", mutations_received=n, **fields)
            tx.update_device_sync("d1", "u1", mutations_received=1, app_version="2.0")

        return run

    await store.write_batch(push(5, last_batch_id="b1", skew_flagged=True))
    await store.write_batch(push(3, last_pull_seq=9))
    states = await store.read_batch(lambda tx: tx.list_device_sync())
    assert len(states) == 1
    s = states[0]
    assert (s["device_id"], s["user_id"], s["mutations_received"]) == ("d1", "u1", 10)
    assert (s["last_batch_id"], s["skew_flagged"], s["last_pull_seq"], s["app_version"]) == (
        "b1",
        1,
        9,
        "2.0",
    )


async def test_a_fresh_record_is_created_without_a_lookup_and_audited_as_created(store: Store):
    def run(tx: BatchTx) -> list[str]:
        tx.put_record("rec", "a", {"n": 1}, rev=1)
        tx.put_record("conflict", "cf_new", {"status": "open"}, rev=1, fresh=True)
        # a record neither read nor written before: its audit needs what it was
        tx.put_record("rec", "b", {"n": 2}, rev=1)
        got = tx.get_record("rec", "a")
        assert got is not None and got.data == {"n": 1}
        return [h["op"] for h in tx.history_of("conflict", "cf_new")]

    assert await store.write_batch(run) in ([], ["create"])  # written at the batch's end
    history = await store.read_batch(lambda tx: tx.history_of("conflict", "cf_new"))
    assert [h["op"] for h in history] == ["create"]
    assert (await store.get_record("conflict", "cf_new")) is not None
    assert [r.id for r in await store.list_records("rec")] == ["a", "b"]


async def test_prefetch_reads_what_the_calls_one_by_one_read(store: Store):
    """A push batch opens with one prefetch (one round trip on PostgreSQL): the same
    answers as get_mutations, get_records and records_of, tombstones and absences
    included, in a write batch and in a read batch."""

    def seed(tx: BatchTx) -> None:
        tx.put_record("rec", "a", {"inspection_id": "i1", "n": 1}, rev=1)
        tx.put_record("rec", "gone", {"inspection_id": "i1"}, rev=2, deleted=True)
        tx.put_record("signoff", "s1", {"inspection_id": "i1", "scope": "inspection"}, rev=1)
        tx.put_record("signoff", "s2", {"inspection_id": "i2", "scope": "link:x"}, rev=1)
        tx.put_mutation(
            "u1\x1fm1", user_id="u1", device_id="d1", batch_id="b", result=b"r1", at=NOW
        )

    await store.write_batch(seed)
    keys = ["u1\x1fm1", "u1\x1fm2"]
    refs = [("rec", "a"), ("rec", "gone"), ("rec", "never"), ("signoff", "s2")]
    listings = [("signoff", "i1"), ("signoff", "i3"), ("signoff", "i1")]

    def both(tx: BatchTx) -> tuple[object, object]:
        got = tx.prefetch(keys, refs, listings)
        one_by_one = (
            tx.get_mutations(keys),
            tx.get_records(refs),
            {(k, i): tx.records_of(k, i) for k, i in listings},
        )
        return tuple(got), one_by_one

    for run in (store.write_batch, store.read_batch):
        got, expected = await run(both)
        assert got == expected
        mutations, records, listed = got  # type: ignore[misc]
        assert mutations == {"u1\x1fm1": b"r1"}
        assert sorted(records) == [("rec", "a"), ("rec", "gone"), ("signoff", "s2")]
        assert records[("rec", "gone")].deleted
        assert [r.id for r in listed[("signoff", "i1")]] == ["s1"]
        assert listed[("signoff", "i3")] == []


async def test_rows_sent_ahead_are_written_once_and_a_part_undone_after_them_is_undone(
    store: Store,
):
    """A push batch's rows may go to the database while the batch goes on (flush_ahead;
    PostgreSQL sends them in its pipeline): what was sent reads back within the batch,
    a key sent and then written again keeps the later write, a part that fails after
    them is undone alone, and every row, result and audit event is there once."""

    def mutation(tx: BatchTx, i: int) -> None:
        tx.put_mutation(
            f"u\x1fm{i}", user_id="u", device_id=None, batch_id="b", result=b"ok", at=NOW
        )

    def run(tx: BatchTx) -> None:
        for i in range(40):
            tx.put_record("rec", f"r{i}", {"n": i, "inspection_id": "i1"}, rev=1)
            mutation(tx, i)
            tx.flush_ahead()
        with contextlib.suppress(ValueError), tx.savepoint():
            tx.put_record("rec", "r0", {"n": -1, "inspection_id": "i1"}, rev=2)
            mutation(tx, 99)
            raise ValueError("this part fails")
        tx.put_record("rec", "r1", {"n": 100, "inspection_id": "i1"}, rev=2)
        got = tx.get_record("rec", "r5")
        assert got is not None and got.data["n"] == 5
        assert [r.id for r in tx.records_of("rec", "i1")][:3] == ["r0", "r1", "r10"]
        for i in range(40, 70):
            tx.put_record("rec", f"r{i}", {"n": i, "inspection_id": "i1"}, rev=1)
            mutation(tx, i)
            tx.flush_ahead()

    await store.write_batch(run)
    records = {r.id: r for r in await store.list_records("rec")}
    assert len(records) == 70
    assert (records["r0"].rev, records["r0"].data["n"]) == (1, 0)
    assert (records["r1"].rev, records["r1"].data["n"]) == (2, 100)
    assert sorted(r.seq for r in records.values()) == [*range(1, 2), *range(3, 72)]
    found = await store.read_batch(lambda tx: tx.get_mutations([f"u\x1fm{i}" for i in range(100)]))
    assert sorted(found) == sorted(f"u\x1fm{i}" for i in range(70))
    history = await store.read_batch(lambda tx: tx.history_of("rec", "r1"))
    assert [h["op"] for h in history] == ["create", "update"]
    check = await store.verify_audit()
    assert check.ok and check.checked == 71, check


async def test_the_scope_version_counts_every_write_of_what_decides_a_pulls_reach(
    store: Store,
):
    """A pull's scope is made of inspections, chains, sites and products (and kept per
    scope version): any write of one of those, by any path, changes the version a
    snapshot read sees; a finding's does not."""

    async def version() -> int | None:
        return await store.read_batch(lambda tx: tx.scope_version())

    first = await version()
    assert first is not None
    await store.write_batch(
        lambda tx: tx.put_record("finding", "f1", {"inspection_id": "i1"}, rev=1)
    )
    assert await version() == first
    seen = [first]
    for kind in ("inspection", "chain", "site", "product"):
        await store.write_batch(lambda tx, k=kind: tx.put_record(k, "x", {"n": 1}, rev=1))
        seen.append(await version())
    await store.create_record("inspection", "i2", {"team_user_ids": ["u1"]})
    seen.append(await version())
    await store.update_record("inspection", "i2", {"team_user_ids": []}, expect_rev=1)
    seen.append(await version())
    await store.delete_record("site", "x")
    seen.append(await version())
    assert len(set(seen)) == len(seen), seen  # each write changed it

    def written_then_read(tx: BatchTx) -> tuple[int | None, int | None]:
        before = tx.scope_version()
        tx.put_record("chain", "c2", {"n": 1}, rev=1)
        tx.get_record("chain", "c2")  # the buffered write goes to the database
        return before, tx.scope_version()

    before, after = await store.write_batch(written_then_read)
    assert before == seen[-1] and after != before
