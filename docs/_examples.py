"""Generate the example payloads of ``docs/sync-protocol.md`` from a real run.

Opens the demo world in a temporary data directory (the way ``tests/conftest.py`` and
``tests/sync/conftest.py`` do: ``build_services`` on a temp dir, ``seed_demo``), drives
the sync engine in-process with two reference tablets (``sync.client.Tablet``) of the
Jiangsu inspectors, and prints every message the protocol page shows as a markdown code
block preceded by ``<!-- example: NAME -->``. ``NAME`` is the protocol struct the block
decodes to (``tests/test_sync_protocol_doc.py`` checks that they still do), or a plain
label for the bodies of the other sync routes.

Long lists and texts are trimmed so the examples stay readable (the JSON stays valid);
ids made of random hex (batches, conflicts, quarantine entries) differ on every run.

    .venv/bin/python docs/_examples.py            # print to stdout
    .venv/bin/python docs/_examples.py out.md     # or write to a file
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from server.app import Services, build_services
from server.demo import seed_demo
from server.settings import Settings
from sync.client import InProcessTransport, Tablet
from sync.clock import FakeClock
from sync.engine import public_data
from sync.fielddata import response_id
from sync.models import Assignment, Principal
from sync.protocol import Mutation, PullRequest, PullResponse, PushRequest, Rejected

INSP = "insp-ds-routine"  # in progress; team insp.js1 (lead) + insp.js2
JOINT = "insp-joint-conj"  # planned; led by Zhejiang, Jiangsu takes part
DEV_A = "dev_3f2a9c1e5b7d4a60"  # insp.js1's tablet
DEV_B = "dev_8b41d07e2c9f4e13"  # insp.js2's tablet
PHOTO_1 = "9f2c1b7e" * 8
PHOTO_2 = "4b7e0d13" * 8
FAST: dict[str, Any] = {
    "sqlite_synchronous": "NORMAL",
    "password_time_cost": 1,
    "password_memory_kib": 1024,
}


def rid(item: str, link: str = "l2-cellbank", repeat: int = 0) -> str:
    return response_id(INSP, link, item, repeat)


def trim(value: Any, keep: int = 2, text: int = 90) -> Any:
    """Shorten long lists (more than ``keep + 1`` items: the first ``keep``) and long
    strings, recursively."""
    if isinstance(value, dict):
        return {k: trim(v, keep, text) for k, v in value.items()}
    if isinstance(value, list):
        items = value if len(value) <= keep + 1 else value[:keep]
        return [trim(v, keep, text) for v in items]
    if isinstance(value, str) and len(value) > text:
        return value[: text - 1] + "…"
    return value


class Examples:
    def __init__(self) -> None:
        self.blocks: list[str] = []

    def add(self, name: str, title: str, payload: Any) -> None:
        if isinstance(payload, msgspec.Struct):
            payload = msgspec.to_builtins(payload)
        text = msgspec.json.format(msgspec.json.encode(payload), indent=2).decode()
        self.blocks.append(f"### {title}\n\n<!-- example: {name} -->\n```json\n{text}\n```\n")

    def note(self, text: str) -> None:
        self.blocks.append(f"<!-- {text} -->\n")

    def markdown(self) -> str:
        return "\n".join(self.blocks)


def mutation_of(row: dict[str, Any]) -> Mutation:
    """A pending outbox row of the reference tablet as the mutation it pushes."""
    return Mutation(
        mid=row["mid"],
        kind=row["kind"],
        id=row["id"],
        op=row["op"],
        base_rev=row["base_rev"],
        fields=msgspec.json.decode(row["fields"]),
        hlc=row["hlc"],
        device_time=datetime.fromisoformat(row["device_time"]),
        reason=row["reason"],
    )


async def principal(world: Services, username: str, device: str | None = None) -> Principal:
    user = await world.store.find_user(username)
    assert user is not None
    return Principal(
        user_id=user.id,
        username=user.username,
        role=user.role,
        authority_id=user.authority_id,
        device_id=device,
    )


def pick(page: PullResponse, wanted: list[tuple[str, str]]) -> PullResponse:
    """The page with only the changes of ``wanted`` (kind, id), data trimmed."""
    changes = []
    for c in page.changes:
        if (c.kind, c.id) not in wanted:
            continue
        data = c.data
        if data is not None and c.kind == "checklist_version":
            data = {**data, "content": trim(data["content"], keep=1, text=60)}
        changes.append(msgspec.structs.replace(c, data=trim(data)))
    return msgspec.structs.replace(page, changes=changes)


def first_of_kinds(page: PullResponse, kinds: list[str]) -> list[tuple[str, str]]:
    out = []
    for kind in kinds:
        found = next((c for c in page.changes if c.kind == kind), None)
        if found is not None:
            out.append((found.kind, found.id))
    return out


async def run(world: Services, clock: FakeClock, tmp: Path, ex: Examples) -> None:
    engine = world.engine

    async def tablet(username: str, device: str) -> tuple[Tablet, Principal]:
        p = await principal(world, username, device)
        t = Tablet(
            tmp / f"{device}.db",
            InProcessTransport(engine, p),
            device_id=device,
            now=clock.now,
            batch_size=50,
            page_size=200,
        )
        return t, p

    a, pa = await tablet("insp.js1", DEV_A)
    b, pb = await tablet("insp.js2", DEV_B)

    # --- first sync: PullRequest without a cursor, a first page ------------------------
    first = PullRequest(limit=10)
    ex.add("PullRequest", "PullRequest: first sync (no cursor)", first)
    page = await engine.pull(pb, first)
    kinds = sorted({c.kind for c in page.changes})
    ex.note(f"first page kinds: {kinds}, {len(page.changes)} changes, has_more={page.has_more}")
    wanted = first_of_kinds(page, ["checklist_version", "authority", "organisation", "site"])
    ex.add("PullResponse", "PullResponse: first page of a first sync (trimmed)", pick(page, wanted))
    nxt = PullRequest(cursor=page.cursor, limit=10)
    ex.add("PullRequest", "PullRequest: the next page (cursor of the last page)", nxt)
    page = await engine.pull(pb, nxt)
    wanted = first_of_kinds(page, ["chain", "inspection", "assignment"])
    ex.add(
        "PullResponse",
        "PullResponse: the last page of the first sync (trimmed)",
        pick(page, wanted),
    )
    await a.sync()
    await b.sync()

    # --- setup: findings both tablets hold ---------------------------------------------
    f_alarm, f_old, f_new = "f_0c5e8a21d94b4f7a", "f_71d2c0e8a9b34e55", "f_b38e4f0d12a74c96"
    a.edit(
        "finding",
        f_alarm,
        {
            "inspection_id": INSP,
            "title": "LN2 level alarm not tested",
            "classification": "major",
            "linked_items": ["l2-cellbank:cb_monitoring_alarm"],
        },
    )
    old_mid = a.edit("finding", f_old, {"inspection_id": INSP, "title": "Draft: gowning"})
    old = next(mutation_of(p) for p in a.pending() if p["mid"] == old_mid)
    await a.sync()
    await b.sync()

    # tablet B changes the alarm finding (title, classification, adds a photo)
    clock.advance(minutes=3)
    b.edit(
        "finding",
        f_alarm,
        {
            "title": "LN2 alarm never tested since installation",
            "classification": "critical",
            "evidence_hashes": [PHOTO_1],
        },
    )
    await b.sync()
    cursor_b = b.cursor  # B's position before A's batch arrives

    # --- the showcase batch of tablet A (offline meanwhile) ----------------------------
    clock.advance(minutes=2)
    a.edit("response", rid("cb_history"), {"value": "yes", "note": "History file CB-2019-04"})
    a.edit(
        "finding",
        f_new,
        {
            "inspection_id": INSP,
            "title": "WCB release date after first use",
            "objective_evidence": "WCB-07 certificate dated 12 March; first thaw 9 March.",
            "classification": "major",
            "linked_items": ["l2-cellbank:cb_characterisation"],
            "references": [{"document": "ICH Q7", "section": "18.2"}],
        },
    )
    a.edit("finding", f_alarm, {"evidence_hashes": [PHOTO_2]})
    a.edit("finding", f_alarm, {"title": "LN2 alarm untested", "classification": "other"})
    a.edit("finding", f_old, op="delete")
    a.edit("response", rid("cb_storage_temp"), {"value": -100})
    a.edit(
        "signoff",
        f"so_{INSP}_l2-cellbank",
        {
            "inspection_id": INSP,
            "scope": "link:l2-cellbank",
            "signer_name": "Inspector Li (Jiangsu)",  # the login answer's display_name
            "meaning": "authored",
            "signed_at": clock.now().isoformat().replace("+00:00", "Z"),
            # the demo answers few of the link's required items: signed with a reason
            "incomplete_reason": "Storage and stability records are reviewed at the next visit",
            # the password typed again, checked on the tablet against its verifier
            "reauth_method": "device_password",
            "reauthenticated_at": (clock.now() - timedelta(seconds=10))
            .isoformat()
            .replace("+00:00", "Z"),
        },
    )
    # after the link's sign-off in the same batch: frozen, and sent without a reason
    a.edit("response", rid("cb_access"), {"value": "yes"})
    pending = a.pending()
    # first, a resend of the mutation that created f_old (as if its answer was lost)
    push = PushRequest(mutations=[old, *(mutation_of(p) for p in pending)], app_version="1.4.0")
    ex.add("PushRequest", "PushRequest: a batch from tablet A", push)
    answer = await engine.push(pa, push)
    tags = {r.__struct_config__.tag for r in answer.results}
    assert tags == {"applied", "merged", "conflict", "rejected", "duplicate"}, tags
    last = answer.results[-1]  # frozen by the sign-off just before it in the batch
    assert isinstance(last, Rejected) and last.code == "reason_required", last
    ex.add("PushResponse", "PushResponse: one result of every kind", answer)
    a._apply_results(pending, answer)
    await a.pull()

    # --- B pulls: several kinds, a tombstone; which evidence is missing -----------------
    asking = PullRequest(cursor=cursor_b, limit=50, want_missing_evidence=True)
    ex.add("PullRequest", "PullRequest: asking which evidence the server still needs", asking)
    page = await engine.pull(pb, asking)
    seen = [(c.kind, c.id) for c in page.changes]
    ex.note(f"B's incremental page: {seen}")
    keep = [k for k in seen if k[0] != "conflict"][:6]
    keep += [k for k in seen if k[0] == "conflict"][:1]
    ex.add(
        "PullResponse", "PullResponse: changes of several kinds and a tombstone", pick(page, keep)
    )
    await b.pull()

    # --- conflicts: listing and resolution ---------------------------------------------
    sup = await principal(world, "sup.js")
    found = await engine.list_conflicts(sup, inspection_id=INSP)
    listing = [{"id": c.id, "rev": c.rev, "data": public_data(c)} for c in found]
    ex.add("conflicts", "GET /api/v1/sync/conflicts?inspection_id=insp-ds-routine", listing)
    cls = next(c for c in found if c.data["field"] == "classification")
    body = {"value": "critical", "reason": "Alarm never tested in 3 years: critical (PI 040)"}
    ex.add("ResolveIn", f"POST /api/v1/sync/conflicts/{cls.id}/resolve (body)", body)
    resolved = await engine.resolve_conflict(sup, cls.id, body["value"], body["reason"])
    ex.add(
        "ConflictOut",
        "The answer: the conflict, resolved",
        {"id": resolved.id, "rev": resolved.rev, "data": public_data(resolved)},
    )
    page = await engine.pull(pb, PullRequest(cursor=b.cursor, limit=50))
    ex.add(
        "PullResponse",
        "PullResponse: the resolution syncing back",
        pick(page, [(c.kind, c.id) for c in page.changes]),
    )
    await a.sync()
    await b.sync()

    # --- delete versus edit -------------------------------------------------------------
    clock.advance(minutes=1)
    a.edit("finding", f_new, op="delete")
    b.edit("finding", f_new, {"objective_evidence": "Certificate WCB-07 p.2 signed 12 March"})
    await b.sync()
    pending = a.pending()
    req = PushRequest(mutations=[mutation_of(p) for p in pending], app_version="1.4.0")
    ex.add("PushRequest", "PushRequest: a delete of a record edited meanwhile", req)
    answer = await engine.push(pa, req)
    ex.add("PushResponse", "PushResponse: delete versus edit is a conflict", trim(answer, keep=4))
    a._apply_results(pending, answer)

    # --- re-creating a record whose tombstone the tablet pulled -------------------------
    # B pulled the tombstone of f_old (A deleted it in its batch). The reference tablet
    # forgets a record on its tombstone, so it would send base_rev 0; a tablet that keeps
    # the tombstone's rev sends that, and the server knows the deletion was seen.
    tomb = await world.store.read_batch(
        lambda tx: tx.get_record("finding", f_old, include_deleted=True)
    )
    assert tomb is not None and tomb.deleted
    mid = b.edit("finding", f_old, {"inspection_id": INSP, "title": "Gowning: gloves not changed"})
    pending = [p for p in b.pending() if p["mid"] == mid]
    again = PushRequest(
        mutations=[msgspec.structs.replace(mutation_of(pending[0]), base_rev=tomb.rev)],
        app_version="1.4.0",
    )
    ex.add("PushRequest", "PushRequest: re-creating a finding after pulling its tombstone", again)
    answer = await engine.push(pb, again)
    assert answer.results[0].__struct_config__.tag == "applied", answer
    ex.add("PushResponse", "PushResponse: the finding re-created at a new revision", answer)
    b._apply_results(pending, answer)

    # --- a clock a year ahead -----------------------------------------------------------
    ahead = clock.now() + timedelta(days=365)
    skewed = PushRequest(
        mutations=[
            Mutation(
                mid=f"{DEV_A}:99",
                kind="response",
                id=rid("up_culture_days", link="l3-upstream"),
                fields={"value": 14},
                hlc=f"{int(ahead.timestamp() * 1000):015d}.00000.{DEV_A}",
                device_time=ahead,
            )
        ]
    )
    ex.add("PushResponse", "PushResponse: a device clock far ahead", await engine.push(pa, skewed))

    # --- quarantine, history, devices ----------------------------------------------------
    rows = [r for r in await engine.quarantine(pa) if r["code"] == "out_of_limits"]
    ex.add("quarantine", "GET /api/v1/sync/quarantine", trim(rows[:1], text=400))
    rows = await engine.history(pa, "finding", f_alarm)
    ex.add("history", f"GET /api/v1/sync/history/finding/{f_alarm}", trim(rows[:2], text=300))
    rows = await engine.device_states()
    assert rows[0]["app_version"] == "1.4.0", rows  # kept: the skewed push sent none
    ex.add("devices", "GET /api/v1/sync/devices", rows[:2])

    # --- a batch from a newer app: an unknown kind and op, rejected one by one ------------
    a.edit(
        "photo_annotation",
        "pa_5d0c9e2b41f34a7e",
        {"photo": PHOTO_1, "shapes": [{"circle": [120, 80, 30]}]},
    )
    a.edit("finding", f_alarm, op="archive")
    a.edit("response", rid("up_wcb_receipt", link="l3-upstream"), {"value": "yes"})
    pending = a.pending()
    newer = PushRequest(mutations=[mutation_of(p) for p in pending], app_version="1.5.0")
    ex.add("PushRequest", "PushRequest: a batch from a newer app", newer)
    answer = await engine.push(pa, newer)
    codes = [getattr(r, "code", r.__struct_config__.tag) for r in answer.results]
    assert codes == ["unknown_kind", "unknown_op", "applied"], codes
    ex.add("PushResponse", "PushResponse: the unknown kind and op rejected one by one", answer)
    a._apply_results(pending, answer)

    # --- scope grows (backfill) and shrinks (evict) --------------------------------------
    admin = await principal(world, "admin")
    await b.sync()
    asg = await world.registry.assign(
        admin, JOINT, Assignment(inspection_id=JOINT, user_id=pb.user_id)
    )
    page = await engine.pull(pb, PullRequest(cursor=b.cursor, limit=4))
    ex.note(f"backfill page: {[(c.kind, c.id, c.seq) for c in page.changes]} {page.has_more}")
    ex.add(
        "PullResponse",
        "PullResponse: backfill after an assignment was added",
        pick(page, [(c.kind, c.id) for c in page.changes]),
    )
    await b.pull()
    await world.registry.unassign(admin, JOINT, asg.id)
    page = await engine.pull(pb, PullRequest(cursor=b.cursor, limit=50))
    ex.note(f"evict page: {len(page.evict)} evictions, {len(page.changes)} changes")
    ex.add("PullResponse", "PullResponse: evict after an assignment was removed", page)
    await b.pull()

    # --- tombstones purged past retention: resync -----------------------------------------
    stale = b.cursor
    a.edit("finding", "f_5e0b7a33c2d14f08", {"inspection_id": INSP, "title": "Duplicate"})
    await a.sync()
    a.edit("finding", "f_5e0b7a33c2d14f08", op="delete")
    await a.sync()
    # the store stamps rows with the real time: move the clock 200 days past it
    clock.current = (max(clock.current, datetime.now(UTC)) + timedelta(days=200)).replace(
        microsecond=0
    )
    await engine.purge_tombstones()
    page = await engine.pull(pb, PullRequest(cursor=stale))
    assert page.resync_required, page
    ex.add("PullResponse", "PullResponse: cursor older than the retained tombstones", page)


def _main(out: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        settings = Settings(data_dir=str(tmp / "server"), jwt_secret="x" * 40, **FAST)
        Path(settings.data_dir).mkdir(parents=True)
        clock = FakeClock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
        world = build_services(settings, clock)
        ex = Examples()

        async def go() -> None:
            await world.store.open()
            try:
                await seed_demo(world.registry, world.accounts, clock.now().date())
                await run(world, clock, tmp, ex)
            finally:
                await world.store.close()

        asyncio.run(go())
    text = ex.markdown()
    if out:
        Path(out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    _main(sys.argv[1] if len(sys.argv) > 1 else None)
