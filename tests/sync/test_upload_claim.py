"""The claim a chunk holds on its upload (sync/upload_claim.py), on both backends: kept
while renewed, taken over once it ran out, never renewed once lost; and a chunk whose
claim was taken over records nothing and cuts nothing of the file (docs/evidence.md,
"One chunk at a time")."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import msgspec
import pytest

from sync.clock import FakeClock, SystemClock
from sync.errors import UploadLocked
from sync.storage import Store
from sync.upload_claim import UploadClaim
from tests.sync.conftest import principal
from tests.sync.test_missing_evidence import INSP, photo, sha
from tests.sync.test_store_contract import store, upload

__all__ = ["store"]  # the contract's fixture: one store per backend


async def test_a_renewed_claim_is_kept_a_silent_one_runs_out_and_is_taken_over(store: Store):
    await store.add_upload(upload("a" * 32))
    clock, ttl = SystemClock(), 1.0
    holder = UploadClaim(store, clock, "a" * 32, ttl)
    other = UploadClaim(store, clock, "a" * 32, ttl)
    assert (await holder.take(time.monotonic() + 1)).id == "a" * 32
    for _ in range(3):  # 1.2 s in all, past one claim's length: renewed, still held
        await asyncio.sleep(0.4)
        await holder.renew()
        with pytest.raises(UploadLocked):
            await other.take(deadline=0.0)
    await asyncio.sleep(ttl + 0.2)  # the holder falls silent past its claim's end
    await other.take(deadline=0.0)
    with pytest.raises(UploadLocked):  # lost: not renewed, even at its next chance
        await holder.renew()
    assert holder.held is False
    await holder.release()  # nothing to release: the other's claim stays
    third = UploadClaim(store, clock, "a" * 32, ttl)
    with pytest.raises(UploadLocked) as err:
        await third.take(deadline=0.0)
    assert 1 <= err.value.extra["retry_after"] <= 5

    async def let_go() -> None:
        await asyncio.sleep(0.2)
        await other.release()

    # a waiting claim is granted once the holder lets go
    releasing = asyncio.create_task(let_go())
    await third.take(time.monotonic() + 5)
    await releasing
    assert third.held


@pytest.mark.parametrize("noticed_by", ["renewal", "recording"])
async def test_a_chunk_whose_claim_was_taken_over_records_nothing_and_cuts_nothing(
    world, clock: FakeClock, noticed_by: str
):
    """The request sending a chunk stalls past its claim's end and another takes the
    upload over. Its next renewal (a short claim here) or, at the latest, the write
    that would record its offset finds the claim lost: 423, the offset stays where the
    other request found it, and the file is not cut back."""
    uploads = world.uploads
    if noticed_by == "renewal":
        uploads.limits = msgspec.structs.replace(uploads.limits, claim_ttl=0.3)
    js1 = await principal(world, "insp.js1", "tab-1")
    data = photo(7)
    up = await uploads.create(js1, len(data), {"sha256": sha(data), "inspection_id": INSP})

    async def first() -> AsyncIterator[bytes]:
        yield data[:300]

    await uploads.append(js1, up.id, 0, first())
    stalled, go = asyncio.Event(), asyncio.Event()

    async def stalling() -> AsyncIterator[bytes]:
        yield data[300:400]
        stalled.set()
        await go.wait()
        yield data[400:500]

    chunk = asyncio.create_task(uploads.append(js1, up.id, 300, stalling()))
    await stalled.wait()
    with pytest.raises(UploadLocked):  # held by the chunk
        await world.store.claim_upload(up.id, "other", now=clock.now(), until=clock.now())
    clock.advance(seconds=uploads.limits.claim_ttl + 1)  # it ran out
    later = clock.now() + timedelta(seconds=90)
    taken = await world.store.claim_upload(up.id, "other", now=clock.now(), until=later)
    assert taken.offset == 300
    await asyncio.sleep(0.15)  # a renewal of the short claim is due
    go.set()
    with pytest.raises(UploadLocked):
        await chunk
    assert (await world.store.get_upload(up.id)).offset == 300  # nothing recorded
    on_disk = uploads.area.size(up.id)
    # noticed at the renewal: nothing of the chunk reached the file; at the recording,
    # its bytes are there past the offset (where the next chunk cuts from), none cut
    assert on_disk == (300 if noticed_by == "renewal" else 500)
    with pytest.raises(UploadLocked):  # the other request still holds the upload
        await world.store.claim_upload(up.id, "third", now=clock.now(), until=later)
