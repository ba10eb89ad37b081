"""The review queue's filters, orders and paging, over findings two tablets synced."""

from __future__ import annotations

import random
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
        found = await world.review.queue(sup, QueueQuery(inspection_id=INSP, **kw))
        return [r["id"] for r in found.rows], found.total

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

    found = await world.review.queue(sup, QueueQuery(inspection_id=INSP, classification="major"))
    (row,) = found.rows
    assert row["stage_types"] == ["cell_bank"] and row["link_ids"] == ["l2-cellbank"]
    assert row["raised_by"] == (await principal(world, "insp.js1")).user_id
    assert row["site_id"] == "site-suzhou-ds" and row["product_id"] == "prod-zv101"


async def test_a_disputed_classification_is_disputed_in_filters_order_and_counts(
    world, make_tablet
):
    li = await make_tablet("insp.js1", "tab-li")
    zhao = await make_tablet("insp.js2", "tab-zhao")
    await li.sync()
    await zhao.sync()
    li.edit("finding", "f-a", {"inspection_id": INSP, "title": "A", "classification": "other"})
    li.edit("finding", "f-b", {"inspection_id": INSP, "title": "B", "classification": "major"})
    await li.sync()
    await zhao.sync()
    li.edit("finding", "f-a", {"classification": "critical"})
    zhao.edit("finding", "f-a", {"classification": "major"})
    await li.sync()
    await zhao.sync()
    sup = await principal(world, "sup.js")

    found = await world.review.queue(sup, QueueQuery(inspection_id=INSP))
    assert [r["id"] for r in found.rows] == ["f-a", "f-b"]  # disputed goes first
    assert found.rows[0]["shown_classification"] == "disputed"
    assert found.counts == {"critical": 0, "major": 1, "other": 0, "none": 0, "disputed": 1}
    for value in ("critical", "major"):  # never counted or found as one of its values
        only = await world.review.queue(sup, QueueQuery(inspection_id=INSP, classification=value))
        assert "f-a" not in [r["id"] for r in only.rows]
    disputed = await world.review.queue(
        sup, QueueQuery(inspection_id=INSP, classification="disputed")
    )
    assert [r["id"] for r in disputed.rows] == ["f-a"]


async def test_the_queue_index_caught_up_from_the_feed_answers_as_a_fresh_read(world, make_tablet):
    """Whatever tablets and supervisors change between two queue requests (new findings,
    edits, conflicts, deletions, resolutions), the queue from the index kept in memory is
    the queue read afresh from the store."""
    rng = random.Random(13)
    li = await make_tablet("insp.js1", "tab-li")
    zhao = await make_tablet("insp.js2", "tab-zhao")
    await li.sync()
    await zhao.sync()
    sup = await principal(world, "sup.js")
    queries = [
        QueueQuery(limit=500),
        QueueQuery(sort="-updated", limit=7, offset=3),
        QueueQuery(classification="disputed"),
        QueueQuery(has_open_conflict=True, sort="raised"),
        QueueQuery(stage_type="cell_bank", status="submitted"),
    ]
    ids: list[str] = []
    for round_no in range(8):
        for _ in range(6):
            tablet = rng.choice((li, zhao))
            action = rng.random()
            if action < 0.4 or not ids:
                fid = f"f-{round_no}-{len(ids)}"
                ids.append(fid)
                tablet.edit(
                    "finding",
                    fid,
                    {
                        "inspection_id": INSP,
                        "title": fid,
                        "classification": rng.choice(("critical", "major", "other")),
                        "linked_items": rng.choice(([], ["l2-cellbank:cb_history"])),
                    },
                )
            elif action < 0.6:  # both change one from the same base: a conflict
                fid = rng.choice(ids)
                li.edit("finding", fid, {"classification": "critical", "title": "li"})
                zhao.edit("finding", fid, {"classification": "other", "title": "zhao"})
            elif action < 0.8:
                tablet.edit("finding", rng.choice(ids), {"status": "submitted"})
            else:
                tablet.edit("finding", rng.choice(ids), op="delete")
        for t in (li, zhao, li):
            await t.sync()
        conflicts = await world.store.list_records("conflict", [])
        for c in [c for c in conflicts if c.data["status"] == "open"][: rng.randint(0, 2)]:
            value = c.data["values"][0]["value"]
            await world.engine.resolve_conflict(sup, c.id, value, "picked in the test")

        warm = [await world.review.queue(sup, q) for q in queries]
        world.review.index.clear()
        cold = [await world.review.queue(sup, q) for q in queries]
        assert warm == cold, f"round {round_no}"
    assert warm[0].total > 10 and warm[2].total + warm[3].total > 0
