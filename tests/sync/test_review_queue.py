"""The review queue's filters, orders and paging, over findings two tablets synced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sync.review import QueueQuery
from tests.sync.conftest import principal

INSP = "insp-ds-routine"  # links l2-cellbank (cell bank), l3-upstream, l4-purif, l5-viral


async def test_queue_filters_sorts_and_pages(world, make_tablet):
    li = await make_tablet("insp.js1", "tab-li")
    zhao = await make_tablet("insp.js2", "tab-zhao")
    await li.sync()
    await zhao.sync()
    li.edit(
        "finding",
        "f-cb",
        {
            "inspection_id": INSP,
            "title": "Cell bank log gaps",
            "classification": "major",
            "linked_items": ["l2-cellbank:cb_history"],
        },
    )
    await li.sync()
    li.edit(
        "finding",
        "f-crit",
        {"inspection_id": INSP, "title": "Open vial", "classification": "critical"},
    )
    await li.sync()
    zhao.edit(
        "finding",
        "f-other",
        {
            "inspection_id": INSP,
            "title": "Label font",
            "classification": "other",
            "status": "submitted",
        },
    )
    await zhao.sync()
    await li.sync()
    # both change the critical one's title from the same base: an open conflict
    li.edit("finding", "f-crit", {"title": "Open vial in grade A"})
    zhao.edit("finding", "f-crit", {"title": "Unsealed vial"})
    await li.sync()
    await zhao.sync()
    li.edit("finding", "f-cb", {"objective_evidence": "Log book p.12"})  # the last change
    await li.sync()

    sup = await principal(world, "sup.js")
    zhao_id = (await principal(world, "insp.js2")).user_id

    async def ids(**kw: object) -> tuple[list[str], int]:
        rows, total = await world.review.queue(sup, QueueQuery(inspection_id=INSP, **kw))
        return [r["id"] for r in rows], total

    assert await ids() == (["f-crit", "f-cb", "f-other"], 3)  # critical first
    assert await ids(sort="raised") == (["f-cb", "f-crit", "f-other"], 3)
    assert await ids(sort="-raised") == (["f-other", "f-crit", "f-cb"], 3)
    assert (await ids(sort="-updated"))[0][0] == "f-cb"
    assert (await ids(sort="updated"))[0][-1] == "f-cb"
    assert await ids(limit=1, offset=1) == (["f-cb"], 3)
    assert await ids(classification="other") == (["f-other"], 1)
    assert await ids(status="submitted") == (["f-other"], 1)
    assert await ids(inspector=zhao_id) == (["f-other"], 1)
    assert await ids(has_open_conflict=True) == (["f-crit"], 1)
    assert await ids(has_open_conflict=False) == (["f-cb", "f-other"], 2)
    # a finding without linked items is about every link the inspection covers
    assert await ids(stage_type="cell_bank") == (["f-crit", "f-cb", "f-other"], 3)
    assert await ids(stage_type="upstream_culture") == (["f-crit", "f-other"], 2)
    today = datetime.now(UTC).date()
    assert (await ids(date_from=today))[1] == 3
    assert await ids(date_to=today - timedelta(days=1)) == ([], 0)

    rows, _ = await world.review.queue(sup, QueueQuery(inspection_id=INSP, classification="major"))
    (row,) = rows
    assert row["stage_types"] == ["cell_bank"] and row["link_ids"] == ["l2-cellbank"]
    assert row["raised_by"] == (await principal(world, "insp.js1")).user_id
    assert row["site_id"] == "site-suzhou-ds" and row["product_id"] == "prod-zv101"
