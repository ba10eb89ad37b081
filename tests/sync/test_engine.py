"""The sync promises of DESIGN.md section 2, through the reference client in-process."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from sync.errors import InvalidTransition
from sync.fielddata import response_id
from sync.models import Assignment, InspectionStatus
from sync.protocol import (
    Applied,
    Duplicate,
    Mutation,
    PullRequest,
    PushRequest,
    Rejected,
)
from tests.sync.conftest import principal

INSP = "insp-ds-routine"  # in progress; team insp.js1 + insp.js2; pins cell_bank-v1 ...


def rid(item: str, link: str = "l2-cellbank", repeat: int = 0) -> str:
    return response_id(INSP, link, item, repeat)


async def test_two_tablets_same_field_conflict_keeps_both_and_resolution_syncs_back(
    world, make_tablet, clock
):
    a = await make_tablet("insp.js1", "tab-a")
    b = await make_tablet("insp.js2", "tab-b")
    await a.sync()
    await b.sync()
    a.edit(
        "finding",
        "f-1",
        {"inspection_id": INSP, "title": "LN2 level alarm not tested", "classification": "major"},
    )
    await a.sync()
    await b.sync()
    assert b.view("finding", "f-1")["title"] == "LN2 level alarm not tested"

    # both offline: same fields, different values; plus a field only one changes
    clock.advance(minutes=1)
    a.edit("finding", "f-1", {"title": "LN2 alarm never tested", "classification": "critical"})
    clock.advance(minutes=1)
    b.edit(
        "finding",
        "f-1",
        {
            "title": "LN2 alarm untested since 2024",
            "classification": "other",
            "objective_evidence": "Log book p.12",
        },
    )
    assert a.view("finding", "f-1")["title"] == "LN2 alarm never tested"  # local at once
    await a.sync()
    await b.sync()
    await a.sync()

    sa, sb = a.view("finding", "f-1"), b.view("finding", "f-1")
    assert sa == sb
    assert sa["title"] == "LN2 alarm untested since 2024"  # later HLC wins by policy
    assert sa["objective_evidence"] == "Log book p.12"  # other field merged
    assert sa["classification"] == "critical"  # never auto-resolved: first value stays
    assert sorted(sa["open_conflicts"]) == ["classification", "title"]
    assert b.status()["conflicts"] == 1  # b's push was answered "conflict"

    sup = await principal(world, "sup.js")
    conflicts = {c.data["field"]: c for c in await world.engine.list_conflicts(sup)}
    cls = conflicts["classification"].data
    assert cls["flagged"] is True
    assert {v["value"] for v in cls["values"]} == {"critical", "other"}
    assert {v["device"] for v in cls["values"]} == {"tab-a", "tab-b"}
    title_values = {v["value"] for v in conflicts["title"].data["values"]}
    assert title_values == {"LN2 alarm never tested", "LN2 alarm untested since 2024"}
    # the tablets hold the conflict records too
    assert len([c for c in a.records("conflict").values() if c["status"] == "open"]) == 2

    await world.engine.resolve_conflict(
        sup, conflicts["classification"].id, "major", "Reviewed with both inspectors: major"
    )
    await a.sync()
    await b.sync()
    assert a.view("finding", "f-1")["classification"] == "major"
    assert b.view("finding", "f-1") == a.view("finding", "f-1")
    assert a.view("finding", "f-1")["open_conflicts"] == ["title"]


async def test_resent_pushes_change_nothing(world, make_tablet):
    p = await principal(world, "insp.js1", "tab-a")
    now = world.clock.now()
    hlc = f"{int(now.timestamp() * 1000):015d}.00000.tab-a"
    batch = PushRequest(
        mutations=[
            Mutation(
                mid="tab-a:1",
                kind="finding",
                id="f-9",
                hlc=hlc,
                device_time=now,
                fields={"inspection_id": INSP, "title": "Door interlock bypassed"},
            ),
            Mutation(
                mid="tab-a:2",
                kind="response",
                id=rid("cb_split_storage"),
                hlc=hlc,
                device_time=now,
                fields={"value": "yes"},
            ),
            Mutation(
                mid="tab-a:3",
                kind="response",
                id=rid("no_such_item"),
                hlc=hlc,
                device_time=now,
                fields={"value": "yes"},
            ),
        ]
    )
    first = await world.engine.push(p, batch)
    assert [r.__struct_config__.tag for r in first.results] == ["applied", "applied", "rejected"]
    seq_before = await world.store.read_batch(lambda tx: tx.max_seq())
    for _ in range(3):
        again = await world.engine.push(p, batch)
        assert all(isinstance(r, Duplicate) for r in again.results)
        assert [r.original for r in again.results] == first.results
    assert await world.store.read_batch(lambda tx: tx.max_seq()) == seq_before
    rec = await world.store.get_record("finding", "f-9")
    assert rec.rev == 1
    # a duplicate inside one batch is answered as such too
    dup = await world.engine.push(p, PushRequest(mutations=[batch.mutations[0]] * 2))
    assert all(isinstance(r, Duplicate) for r in dup.results)


async def test_bad_data_is_rejected_quarantined_and_reported(world, make_tablet):
    a = await make_tablet("insp.js1", "tab-a")
    await a.sync()
    a.edit("response", rid("cb_split_storage"), {"value": "maybe"})  # not an answer
    a.edit("response", rid("cb_split_storage"), {"value": "no"})  # needs a note or photo
    a.edit("finding", "f-2", {"inspection_id": INSP, "title": "x", "classification": "severe"})
    a.edit("response", rid("cb_split_storage"), {"value": "yes", "colour": "red"})
    await a.sync()
    rejected = a.results("rejected")
    codes = [r["detail"]["code"] for r in rejected]
    assert codes == ["invalid_choice", "evidence_required", "invalid_choice", "unknown_field"]
    assert [r["detail"]["field"] for r in rejected] == ["value", "note", "classification", "colour"]
    assert a.pending() == []
    inspector = await principal(world, "insp.js1")
    kept = await world.engine.quarantine(inspector)
    assert len(kept) == 4 and {k["device_id"] for k in kept} == {"tab-a"}
    assert await world.store.get_record("finding", "f-2") is None
    # fixed and resent: accepted
    a.edit("response", rid("cb_split_storage"), {"value": "no", "note": "Single site only"})
    await a.sync()
    assert a.view("response", rid("cb_split_storage"))["value"] == "no"


async def test_limits_and_types_follow_the_pinned_version(world, make_tablet):
    a = await make_tablet("insp.js1", "tab-a")
    tmpl = world.engine._template
    version = await world.store.read_batch(lambda tx: tmpl(tx, "cell_bank-v1"))
    item = next(i for _, i in version.items() if i.answer == "number" and i.max is not None)
    a.edit("response", rid(item.key, repeat=0), {"value": item.max + 1})
    a.edit("response", rid(item.key), {"value": "cold"})
    await a.sync()
    assert [r["detail"]["code"] for r in a.results("rejected")] == ["out_of_limits", "wrong_type"]


async def test_sign_off_freezes_changes_without_a_reason(world, make_tablet):
    a = await make_tablet("insp.js1", "tab-a")
    key = rid("cb_split_storage")
    a.edit("response", key, {"value": "yes"})
    a.edit(
        "signoff",
        f"{INSP}:link:l2-cellbank",
        {
            "inspection_id": INSP,
            "scope": "link:l2-cellbank",
            "signer_name": "Li Wei",
            "meaning": "authored",
            "signed_at": "2026-01-05T10:00:00Z",
            "incomplete_reason": "only the split-storage item was in scope today",
        },
    )
    await a.sync()
    a.edit("response", key, {"value": "na"})
    await a.sync()
    assert a.results("rejected")[-1]["detail"]["code"] == "reason_required"
    assert a.view("response", key)["value"] == "yes"
    a.edit("response", key, {"value": "na"}, reason="Second freezer decommissioned in 2025")
    await a.sync()
    assert a.view("response", key)["value"] == "na"
    history = await world.engine.history(await principal(world, "insp.js1"), "response", key)
    assert [h["op"] for h in history] == ["create", "update"]
    assert history[1]["reason"] == "Second freezer decommissioned in 2025"
    assert '"yes"' in history[1]["old"] and '"na"' in history[1]["new"]


async def test_a_sign_off_prints_the_account_name_not_the_typed_one(world, make_tablet):
    """An older tablet still sends the name its user typed: the sign-off is applied, and
    stored, pulled and audited with the pushing account's own name only."""
    a = await make_tablet("insp.js1", "tab-a")
    b = await make_tablet("insp.js2", "tab-b")
    base = {
        "inspection_id": INSP,
        "scope": "link:l2-cellbank",
        "meaning": "authored",
        "signed_at": "2026-01-05T10:00:00Z",
        "incomplete_reason": "the rest is for the follow-up visit",
    }
    a.edit("signoff", "s-typed", {**base, "signer_name": "Li Wei, QA director"})
    a.edit("signoff", "s-bad", {**base, "signer_name": 7})  # a name is still text
    b.edit("signoff", "s-none", base)  # a newer tablet sends none
    await a.sync()
    await b.sync()
    (refused,) = a.results("rejected")
    assert refused["detail"]["code"] == "wrong_type"
    assert refused["detail"]["field"] == "signer_name"
    await a.sync()
    li, zhao = "Inspector Li (Jiangsu)", "Inspector Zhao (Jiangsu)"
    assert a.view("signoff", "s-typed")["signer_name"] == li  # as pulled back
    assert a.view("signoff", "s-none")["signer_name"] == zhao
    stored = await world.store.get_record("signoff", "s-typed")
    assert stored is not None and stored.data["signer_name"] == li
    assert stored.data["signed_by"] == (await principal(world, "insp.js1")).user_id

    # a later edit (with a reason: it is signed) types another name: still the account's
    a.edit("signoff", "s-typed", {"meaning": "reviewed", "signer_name": "Zhang San"}, reason="r")
    await a.sync()
    edited = a.view("signoff", "s-typed")
    assert edited["meaning"] == "reviewed" and edited["signer_name"] == li
    history = await world.engine.history(await principal(world, "sup.js"), "signoff", "s-typed")
    assert [h["op"] for h in history] == ["create", "update"]
    trail = str(history)
    assert li in trail and "Li Wei" not in trail and "Zhang San" not in trail
    assert "signer_name" not in history[1]["new"]  # the name did not change


async def test_delete_versus_edit_is_a_conflict_not_a_silent_delete(world, make_tablet):
    a = await make_tablet("insp.js1", "tab-a")
    b = await make_tablet("insp.js2", "tab-b")
    a.edit("finding", "f-3", {"inspection_id": INSP, "title": "Gowning"})
    await a.sync()
    await b.sync()
    a.edit("finding", "f-3", op="delete")
    b.edit("finding", "f-3", {"objective_evidence": "Operator wore no hood"})
    await b.sync()
    await a.sync()
    await b.sync()
    assert a.view("finding", "f-3")["objective_evidence"] == "Operator wore no hood"
    assert "_deleted" in a.view("finding", "f-3")["open_conflicts"]
    assert a.results("conflict")[0]["detail"]["conflicts"][0]["field"] == "_deleted"


async def test_a_wrong_clock_is_flagged_and_cannot_win(world, make_tablet, clock):
    a = await make_tablet("insp.js1", "tab-a")
    honest = await make_tablet("insp.js2", "tab-b")
    a.edit("finding", "f-4", {"inspection_id": INSP, "title": "start"})
    await a.sync()
    await honest.sync()
    ahead = clock.now() + timedelta(days=365)
    a._now = lambda: ahead
    a.edit("finding", "f-4", {"title": "from the future"})
    clock.advance(seconds=5)
    honest.edit("finding", "f-4", {"title": "honest and later"})
    p = await principal(world, "insp.js1", "tab-a")
    pending = a.pending()[0]
    answer = await world.engine.push(
        p,
        PushRequest(
            mutations=[
                Mutation(
                    mid=pending["mid"],
                    kind="finding",
                    id="f-4",
                    base_rev=pending["base_rev"],
                    fields={"title": "from the future"},
                    hlc=pending["hlc"],
                    device_time=ahead,
                )
            ]
        ),
    )
    assert answer.skew_flagged and answer.clock_skew_ms > 300_000
    await honest.sync()
    assert honest.view("finding", "f-4")["title"] == "honest and later"
    states = {s["device_id"]: s for s in await world.engine.device_states()}
    assert states["tab-a"]["skew_flagged"] == 1


async def test_partial_replication_grows_shrinks_and_never_leaks(world, make_tablet):
    admin = await principal(world, "admin")
    zj = await make_tablet("insp.zj2", "tab-zj")  # only on the Zhejiang for-cause one
    js = await make_tablet("insp.js1", "tab-js")
    js.edit("finding", "f-5", {"inspection_id": INSP, "title": "Cell bank log gaps"})
    js.edit("response", rid("cb_split_storage"), {"value": "yes"})
    await js.sync()
    await zj.sync()
    seen = zj.server_state()
    kinds = {k for k, _ in seen}
    assert ("inspection", "insp-conj-forcause") in seen
    assert ("site", "site-hangzhou-adc") in seen
    assert ("checklist_version", "conjugation-v1") not in seen  # not started: nothing pinned
    leaked = [
        key
        for key, (_, d) in seen.items()
        if d.get("inspection_id") not in (None, "insp-conj-forcause")
        or key[1] in ("site-suzhou-ds", "site-taizhou-fill", INSP, "f-5")
    ]
    assert leaked == []
    assert "finding" not in kinds and "response" not in kinds
    assert ("authority", "js-mpa") not in seen and ("organisation", "org-taihu") not in seen

    # grow: insp.zj2 joins the drug-substance inspection -> old records arrive
    rec = await world.store.get_record("inspection", INSP)
    data = {
        **rec.data,
        "participating_authority_ids": ["zj-mpa"],
        "authority_ids": ["js-mpa", "zj-mpa"],
    }
    await world.store.update_record("inspection", INSP, data)
    asg = await world.registry.assign(
        admin, INSP, Assignment(inspection_id=INSP, user_id="u-insp-zj2")
    )
    await zj.sync()
    got = zj.server_state()
    assert ("finding", "f-5") in got and ("response", rid("cb_split_storage")) in got
    assert ("checklist_version", "cell_bank-v1") in got
    assert ("site", "site-suzhou-ds") in got

    # shrink: taken off the team -> told to evict everything of it
    await world.registry.unassign(admin, INSP, asg.id)
    await zj.sync()
    got = zj.server_state()
    assert [k for k, (_, d) in got.items() if d.get("inspection_id") == INSP] == []
    assert ("inspection", INSP) not in got and ("site", "site-suzhou-ds") not in got
    assert ("checklist_version", "cell_bank-v1") not in got
    assert ("inspection", "insp-conj-forcause") in got


async def test_pull_pages_resume_and_resync_after_tombstone_purge(world, make_tablet, clock):
    a = await make_tablet("insp.js1", "tab-a")
    for n in range(30):
        a.edit("finding", f"f-{n:02d}", {"inspection_id": INSP, "title": f"finding {n}"})
    await a.sync()
    p = await principal(world, "insp.js2", "tab-b")
    cursor, seen, pages = None, [], 0
    while True:
        page = await world.engine.pull(p, PullRequest(cursor=cursor, limit=7))
        seen += [(c.kind, c.id) for c in page.changes]
        pages += 1
        # an interrupted page: asking again with the same cursor gives the same page
        again = await world.engine.pull(p, PullRequest(cursor=cursor, limit=7))
        assert [(c.kind, c.id) for c in again.changes] == [(c.kind, c.id) for c in page.changes]
        cursor = page.cursor
        if not page.has_more:
            break
    assert pages > 5 and len(seen) == len(set(seen))
    assert sum(1 for k, _ in seen if k == "finding") == 30
    seqs = [c.seq for c in page.changes]
    assert seqs == sorted(seqs)

    a.edit("finding", "f-00", op="delete")
    await a.sync()
    page = await world.engine.pull(p, PullRequest(cursor=cursor))
    assert [(c.id, c.deleted) for c in page.changes if c.kind == "finding"] == [("f-00", True)]

    stale = cursor
    a.edit("finding", "f-01", op="delete")
    await a.sync()
    clock.advance(days=200)
    assert await world.engine.purge_tombstones() >= 1
    page = await world.engine.pull(p, PullRequest(cursor=stale))
    assert page.resync_required
    b = await make_tablet("insp.js2", "tab-b")
    b._set_meta("cursor", stale)
    await b.sync()
    assert ("finding", "f-01") not in b.server_state()
    assert ("finding", "f-02") in b.server_state()


async def test_inspectors_push_only_to_their_started_inspections(world, make_tablet):
    zj = await make_tablet("insp.zj2", "tab-zj")
    zj.edit("finding", "f-x", {"inspection_id": INSP, "title": "not mine"})
    zj.edit("finding", "f-y", {"inspection_id": "insp-conj-forcause", "title": "not started"})
    await zj.sync()
    assert [r["detail"]["code"] for r in zj.results("rejected")] == [
        "not_in_scope",
        "inspection_not_started",
    ]
    assert await world.store.get_record("finding", "f-x") is None
    admin = await principal(world, "admin")
    await world.registry.transition(admin, "insp-conj-forcause", InspectionStatus.IN_PROGRESS)
    zj.edit("finding", "f-y", {"inspection_id": "insp-conj-forcause", "title": "started"})
    await zj.sync()
    assert zj.view("finding", "f-y")["title"] == "started"
    assert ("checklist_version", "conjugation-v1") in zj.server_state()


async def test_tablets_of_one_scope_share_a_full_page_and_still_converge(world, make_tablet, clock):
    """Two tablets of one user pulling from the same cursor share the page built for the
    first; a record changed meanwhile arrives in its newer version further on."""
    js1 = await principal(world, "insp.js1", "tab-x")
    start = (await world.engine.pull(js1, PullRequest())).cursor  # up to date
    a = await make_tablet("insp.js1", "tab-a")
    for n in range(8):
        a.edit("finding", f"f-{n}", {"inspection_id": INSP, "title": f"finding {n}"})
    await a.sync()
    first = await world.engine.pull(js1, PullRequest(cursor=start, limit=5))
    hits = world.engine.page_cache_hits
    again = await world.engine.pull(js1, PullRequest(cursor=start, limit=5))
    assert world.engine.page_cache_hits == hits + 1
    assert [(c.kind, c.id, c.rev) for c in again.changes] == [
        (c.kind, c.id, c.rev) for c in first.changes
    ]
    assert again.cursor == first.cursor and again.has_more

    # a finding on that page changes; another pull from the same cursor is handed the
    # shared page (the older version) and then, further on, the newer one
    on_page = next(c.id for c in first.changes if c.kind == "finding")
    a.edit("finding", on_page, {"title": "changed after the page was built"})
    await a.sync()
    seen: list[str] = []
    cursor, more = start, True
    while more:
        page = await world.engine.pull(js1, PullRequest(cursor=cursor, limit=5))
        seen += [ch.data["title"] for ch in page.changes if ch.id == on_page and ch.data]
        cursor, more = page.cursor, page.has_more
    assert world.engine.page_cache_hits == hits + 2
    assert seen == [f"finding {on_page[2:]}", "changed after the page was built"]

    # another user's scope never reads a page built for this one
    js2 = await principal(world, "insp.js2", "tab-y")
    hits = world.engine.page_cache_hits
    await world.engine.pull(js2, PullRequest(cursor=start, limit=5))
    assert world.engine.page_cache_hits == hits
    clock.advance(seconds=3)  # and a page is shared for two seconds at most
    await world.engine.pull(js1, PullRequest(cursor=start, limit=5))
    assert world.engine.page_cache_hits == hits


@pytest.mark.parametrize("head_start", range(6))
async def test_closing_races_a_push_and_exactly_one_wins(world, clock, head_start):
    """Closing checks that every finding is decided; a tablet's push of a new finding
    racing it must not land undecided on the closed inspection: either the push lands
    first and closing is refused, or closing wins and the push is refused."""
    sup = await principal(world, "sup.js")
    li = await principal(world, "insp.js1", "tab-li")
    for to in (InspectionStatus.FIELDWORK_DONE, InspectionStatus.UNDER_REVIEW):
        await world.registry.transition(sup, INSP, to)
    late = Mutation(
        mid="tab-li:1",
        kind="finding",
        id="f-late",
        base_rev=0,
        fields={"inspection_id": INSP, "title": "Found on the way out"},
        hlc=f"{int(clock.now().timestamp() * 1000):015d}.00000.tab-li",
        device_time=clock.now(),
        reason="seen while leaving",
    )

    async def push() -> str:
        for _ in range(head_start):  # let the close get this many steps ahead
            await asyncio.sleep(0)
        result = (await world.engine.push(li, PushRequest(mutations=[late]))).results[0]
        if isinstance(result, Rejected):
            return f"rejected: {result.code}"
        return "applied" if isinstance(result, Applied) else repr(result)

    async def close() -> bool:
        try:
            await world.registry.transition(sup, INSP, InspectionStatus.CLOSED)
        except InvalidTransition as exc:
            assert "f-late" in exc.extra["undecided_findings"]
            return False
        return True

    closed, pushed = await asyncio.gather(close(), push())
    assert (closed, pushed) in ((True, "rejected: inspection_closed"), (False, "applied"))
    insp = await world.store.get_record("inspection", INSP)
    finding = await world.store.get_record("finding", "f-late")
    assert insp is not None and (insp.data["status"] == "closed") is closed
    assert (finding is not None) is (pushed == "applied")


def _valid_answer(item: Any) -> Any:
    """A value the item takes that needs no evidence."""
    if item.answer in ("single_choice", "multi_choice"):
        value = item.options[0].value
        return [value] if item.answer == "multi_choice" else value
    if item.answer == "yes_no_na":
        avoid = set(item.evidence.when_answer_in) if item.evidence else set()
        return next(v for v in ("yes", "na", "no") if v not in avoid)
    if item.answer == "number":
        return item.min if item.min is not None else (item.max if item.max is not None else 1)
    if item.answer == "date":
        return "2026-01-05"
    return "seen"


async def test_a_sign_off_leaving_required_items_unanswered_needs_a_reason(world, make_tablet):
    """The inspector is told what is unanswered and signs only with a reason; the
    server checks against the answers it holds, keeps what was unanswered on the
    sign-off, and an item shown only for some answers of another counts only then."""
    a = await make_tablet("insp.js1", "tab-a")
    await a.sync()
    tmpl = world.engine._template
    version = await world.store.read_batch(lambda tx: tmpl(tx, "cell_bank-v1"))
    required = [i for _, i in version.items() if i.required]
    assert any(i.key == "cb_second_location" and i.show_if for i in required)

    def sign(sid: str, reason: str | None = None) -> None:
        fields = {
            "inspection_id": INSP,
            "scope": "link:l2-cellbank",
            "signer_name": "Li Wei",
            "meaning": "authored",
            "signed_at": "2026-01-05T10:00:00Z",
        }
        if reason is not None:
            fields["incomplete_reason"] = reason
        a.edit("signoff", sid, fields)

    a.edit("response", rid("cb_split_storage"), {"value": "no", "note": "one freezer only"})
    sign("s-1")
    await a.sync()
    (refused,) = a.results("rejected")
    assert refused["detail"]["code"] == "unanswered_required"
    assert refused["detail"]["field"] == "incomplete_reason"
    shown_always = [i.key for i in required if i.show_if is None]
    assert f"{len(shown_always) - 1} required item(s) unanswered" in refused["detail"]["message"]
    assert a.view("signoff", "s-1") is None
    assert await world.store.get_record("signoff", "s-1") is None

    sign("s-2", reason="  ")  # blank is no reason
    await a.sync()
    assert a.results("rejected")[-1]["detail"]["code"] == "unanswered_required"

    sign("s-3", reason="MCB records were at the other site; follow-up planned")
    await a.sync()
    stored = await world.store.get_record("signoff", "s-3")
    assert stored is not None
    # the split-storage answer was no: the second location is not asked
    assert stored.data["unanswered"] == [
        f"l2-cellbank:{k}" for k in shown_always if k != "cb_split_storage"
    ]

    # "yes" to split storage brings the second location into what must be answered
    a.edit("response", rid("cb_split_storage"), {"value": "yes"}, reason="second site found")
    for item in required:
        if item.key not in ("cb_split_storage", "cb_second_location"):
            a.edit("response", rid(item.key), {"value": _valid_answer(item)}, reason="completed")
    sign("s-4")
    await a.sync()
    assert a.results("rejected")[-1]["detail"]["message"].startswith(
        "1 required item(s) unanswered (l2-cellbank:cb_second_location)"
    )
    second = next(i for i in required if i.key == "cb_second_location")
    a.edit("response", rid(second.key), {"value": _valid_answer(second)}, reason="completed")
    sign("s-5")
    await a.sync()
    done = await world.store.get_record("signoff", "s-5")
    assert done is not None and done.data["unanswered"] == []
