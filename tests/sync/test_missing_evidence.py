"""The pull answer's ``missing_evidence``: which files the server still needs, per
inspection, on the page that ends a pull that asked for it."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from sync.models import InspectionStatus
from sync.protocol import Applied, Mutation, PullRequest, PullResponse, PushRequest
from sync.review import Decision
from tests.sync.conftest import principal

INSP = "insp-ds-routine"  # in progress; team insp.js1 + insp.js2
OTHER = "insp-conj-forcause"  # insp.zj2's, planned


def photo(n: int) -> bytes:
    """Bytes the server takes for a JPEG (its magic number), different for every n."""
    return b"\xff\xd8\xff\xe0" + hashlib.sha256(str(n).encode()).digest() * 20


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def upload(world, who, data: bytes, inspection: str = INSP) -> None:
    up = await world.uploads.create(
        who, len(data), {"sha256": sha(data), "inspection_id": inspection}
    )
    done = await world.uploads.append(who, up.id, 0, _once(data))
    assert done.completed_at is not None


async def pull_all(world, who, cursor=None, *, ask=True, limit=1000) -> list[PullResponse]:
    pages = []
    while True:
        page = await world.engine.pull(
            who, PullRequest(cursor=cursor, limit=limit, want_missing_evidence=ask)
        )
        pages.append(page)
        cursor = page.cursor
        if not page.has_more:
            return pages


async def test_a_finding_synced_before_its_photo_is_missing_until_the_upload(world, make_tablet):
    a, b = photo(1), photo(2)
    tablet = await make_tablet("insp.js1", "tab-a")
    tablet.edit(
        "finding", "f-photo", {"inspection_id": INSP, "title": "Leak", "evidence_hashes": [sha(a)]}
    )
    tablet.edit("finding", "f-two", {"inspection_id": INSP, "title": "Dent"})
    await tablet.sync()
    js1 = await principal(world, "insp.js1", "tab-a")
    js2 = await principal(world, "insp.js2", "tab-b")

    pages = await pull_all(world, js1, limit=7)
    assert len(pages) > 1
    assert all(p.missing_evidence is None for p in pages[:-1])  # only the last page
    assert pages[-1].missing_evidence == {INSP: [sha(a)]}
    # the whole team is told (the photo may be on any of their tablets); not asked: null
    assert (await pull_all(world, js2))[-1].missing_evidence == {INSP: [sha(a)]}
    assert (await pull_all(world, js1, ask=False))[-1].missing_evidence is None
    # someone who cannot see the inspection learns nothing of it
    zj2 = await principal(world, "insp.zj2")
    assert (await pull_all(world, zj2))[-1].missing_evidence == {}

    # a second photo named later joins the list, in hash order
    tablet.edit("finding", "f-two", {"evidence_hashes": [sha(b)]})
    await tablet.sync()
    cursor = pages[-1].cursor
    assert (await pull_all(world, js1, cursor))[-1].missing_evidence == {
        INSP: sorted([sha(a), sha(b)])
    }

    cursor = (await pull_all(world, js1, cursor))[-1].cursor
    await upload(world, js1, a)
    last = await pull_all(world, js1, cursor)
    # an upload changes no record, yet the list follows it
    assert last[-1].changes == [] and last[-1].missing_evidence == {INSP: [sha(b)]}
    await upload(world, js2, b)  # the teammate's tablet had it
    assert (await pull_all(world, js1, last[-1].cursor))[-1].missing_evidence == {}


async def test_a_file_stored_for_another_inspection_is_still_missing_here(world):
    """Naming a hash grants nothing (docs/evidence.md): an inspection misses a file
    until it was uploaded for that inspection, even when it is stored for another."""
    js1 = await principal(world, "insp.js1", "tab-a")
    zj2 = await principal(world, "insp.zj2", "tab-z")
    await world.registry.transition(
        await principal(world, "admin"), OTHER, InspectionStatus.IN_PROGRESS
    )
    a = photo(3)
    await upload(world, js1, a)
    for who, iid, fid in ((js1, INSP, "f-a"), (zj2, OTHER, "f-z")):
        fields = {"inspection_id": iid, "title": "x", "evidence_hashes": [sha(a)]}
        answer = await world.engine.push(who, push(fid, fields))
        assert isinstance(answer.results[0], Applied), answer.results
    assert (await pull_all(world, js1))[-1].missing_evidence == {}
    assert (await pull_all(world, zj2))[-1].missing_evidence == {OTHER: [sha(a)]}
    await upload(world, zj2, a, OTHER)  # zj2 shows it has the bytes
    assert (await pull_all(world, zj2))[-1].missing_evidence == {}


def push(fid: str, fields: dict[str, Any]) -> PushRequest:
    now = datetime.now(UTC)
    return PushRequest(
        mutations=[
            Mutation(
                mid=f"m-{fid}",
                kind="finding",
                id=fid,
                fields=fields,
                hlc=f"{int(now.timestamp() * 1000):015d}.00000.t",
                device_time=now,
            )
        ]
    )


async def test_a_closed_inspection_asks_for_nothing_more(world):
    """A closed inspection takes no more evidence (uploads to it are refused), so the
    pull answer does not ask tablets for its missing files; the review list (Store /
    the /missing route) still shows them."""
    js1 = await principal(world, "insp.js1", "tab-a")
    a = photo(4)
    answer = await world.engine.push(
        js1,
        push(
            "f-a",
            {
                "inspection_id": INSP,
                "title": "x",
                "classification": "other",
                "evidence_hashes": [sha(a)],
            },
        ),
    )
    assert isinstance(answer.results[0], Applied), answer.results
    assert (await pull_all(world, js1))[-1].missing_evidence == {INSP: [sha(a)]}
    sup = await principal(world, "sup.js")
    for status in ("fieldwork_done", "under_review"):
        await world.registry.transition(sup, INSP, InspectionStatus(status))
    await world.review.decide(sup, "f-a", Decision(decision="accept", reason="photo to follow"))
    await world.registry.transition(sup, INSP, InspectionStatus.CLOSED)
    assert (await pull_all(world, js1))[-1].missing_evidence == {}
    assert await world.uploads.missing(js1, INSP) == [sha(a)]
