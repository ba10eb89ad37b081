"""A pull page built from stored JSON (``json_data=True``, what the server sends JSON
clients) is the same message as the page built from decoded records."""

from __future__ import annotations

from typing import Any

import msgspec

from sync.models import Assignment, Principal
from sync.protocol import PullRequest, encode
from tests.sync.conftest import principal

INSP = "insp-ds-routine"


def _comparable(page: Any) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.json.decode(encode(page))
    out.pop("server_time")
    out.pop("hlc")
    return out


async def _both_ways(world: Any, p: Principal, cursor: str | None, limit: int) -> list[Any]:
    """Page to the end both ways from ``cursor``; the pages must be equal."""
    pages = []
    while True:
        req = PullRequest(cursor=cursor, limit=limit)
        decoded = await world.engine.pull(p, req)
        spliced = await world.engine.pull(p, req, json_data=True)
        assert _comparable(spliced) == _comparable(decoded)
        for change in spliced.changes:
            assert change.deleted or isinstance(change.data, msgspec.Raw)
        pages.append(_comparable(decoded))
        cursor = decoded.cursor
        if not decoded.has_more:
            return pages


async def test_json_pages_equal_decoded_pages(world, make_tablet, clock):
    a = await make_tablet("insp.js1", "tab-a")
    b = await make_tablet("insp.js2", "tab-b")
    for n in range(12):
        a.edit(
            "finding",
            f"f-{n:02d}",
            {"inspection_id": INSP, "title": f'finding "_{n}"', "classification": "other"},
        )
    await a.sync()
    await b.sync()
    clock.advance(minutes=1)
    a.edit("finding", "f-00", {"title": "A's title", "classification": "major"})
    b.edit("finding", "f-00", {"title": "B's title", "classification": "critical"})
    a.edit("finding", "f-01", op="delete")
    await a.sync()
    await b.sync()  # conflicts: records with _conflict_ids, and conflict records

    pages = await _both_ways(world, await principal(world, "insp.js2", "tab-b"), None, 5)
    changes = [c for page in pages for c in page["changes"]]
    kinds = {c["kind"] for c in changes}
    assert {"finding", "conflict", "inspection"} <= kinds
    assert any(c.get("deleted") for c in changes)
    assert not any(k.startswith("_") for c in changes for k in (c.get("data") or {}))
    f00 = next(c for c in changes if c["id"] == "f-00")
    assert f00["data"]["open_conflicts"] == ["classification", "title"]

    # backfill: a scope that grows brings old records through the other feed query
    zj = await principal(world, "insp.zj2", "tab-zj")
    cursor = None
    while True:  # up to date first
        page = await world.engine.pull(zj, PullRequest(cursor=cursor))
        cursor = page.cursor
        if not page.has_more:
            break
    admin = await principal(world, "admin")
    rec = await world.store.get_record("inspection", INSP)
    data = {
        **rec.data,
        "participating_authority_ids": ["zj-mpa"],
        "authority_ids": ["js-mpa", "zj-mpa"],
    }
    await world.store.update_record("inspection", INSP, data)
    await world.registry.assign(admin, INSP, Assignment(inspection_id=INSP, user_id="u-insp-zj2"))
    pages = await _both_ways(world, zj, cursor, 4)
    got = {c["id"] for page in pages for c in page["changes"]}
    assert {"f-00", "f-02", INSP} <= got
