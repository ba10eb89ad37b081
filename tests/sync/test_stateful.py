"""Several tablets and a supervisor edit offline at random and sync in random orders,
while the supervisor also resolves conflicts and decides on findings on the server.

At the end, after everyone syncs: every replica equals the server within its scope,
and every value the server ever acknowledged is current, kept in a conflict, or in the
history. Nothing is lost.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from server.app import build_services
from server.settings import Settings
from sync.client import InProcessTransport, Tablet
from sync.clock import FakeClock
from sync.errors import DomainError
from sync.fielddata import response_id
from sync.models import Principal, Role
from sync.protocol import Applied, Conflicted, Duplicate, Merged, PullRequest
from sync.review import Decision
from tests.conftest import FAST, SECRET
from tests.pg import fresh_database

INSP = "insp-ds-routine"
FINDINGS = ["f-a", "f-b", "f-c"]
HASHES = [c * 64 for c in "abcd"]
DEVICES = {  # device -> (user id, username, role, authority)
    "tab-1": ("u-insp-js1", "insp.js1", Role.INSPECTOR, "js-mpa"),
    "tab-2": ("u-insp-js2", "insp.js2", Role.INSPECTOR, "js-mpa"),
    "tab-3": ("u-insp-js1", "insp.js1", Role.INSPECTOR, "js-mpa"),  # same user, 2nd tablet
    "sup": ("u-sup-js", "sup.js", Role.SUPERVISOR, "js-mpa"),
}


class SyncMachine(RuleBasedStateMachine):
    template_db: Path
    pg_template: str | None = None  # run on a copy of this PostgreSQL database instead

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp(prefix="inspectsync-stateful-"))
        self.pg = ExitStack()
        url = self.pg.enter_context(fresh_database(self.pg_template)) if self.pg_template else ""
        settings_ = Settings(
            data_dir=str(self.dir / "server"), jwt_secret=SECRET, database_url=url, **FAST
        )
        Path(settings_.data_dir).mkdir(parents=True)
        if not url:
            shutil.copyfile(self.template_db, settings_.database)
        self.clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
        self.services = build_services(settings_, self.clock)
        self.run(self.services.store.open())
        self.tablets: dict[str, Tablet] = {}
        self.principals: dict[str, Principal] = {}
        for dev, (uid, name, role, auth) in DEVICES.items():
            p = Principal(user_id=uid, username=name, role=role, authority_id=auth, device_id=dev)
            self.principals[dev] = p
            self.tablets[dev] = Tablet(
                self.dir / f"{dev}.db",
                InProcessTransport(self.services.engine, p),
                device_id=dev,
                now=self.clock.now,
                page_size=3,  # many pages: shared pages and paging mid-change are exercised
            )
        version = self.run(
            self.services.store.read_batch(
                lambda tx: self.services.engine._template(tx, "cell_bank-v1")
            )
        )
        self.items = [
            i.key
            for _, i in version.items()
            if i.answer == "yes_no_na"
            and (i.evidence is None or not set(i.evidence.when_answer_in) & {"yes", "na"})
        ][:2]
        self.acknowledged: list[tuple[str, str, str, Any]] = []

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        try:
            self.run(self.services.store.close())
        finally:
            self.loop.close()
            shutil.rmtree(self.dir, ignore_errors=True)
            self.pg.close()

    # --- offline edits -------------------------------------------------------------

    devices = st.sampled_from(sorted(DEVICES))

    @rule(
        dev=devices,
        fid=st.sampled_from(FINDINGS),
        field=st.sampled_from(["title", "objective_evidence", "classification", "status"]),
        n=st.integers(0, 2),
    )
    def edit_finding(self, dev: str, fid: str, field: str, n: int) -> None:
        tab = self.tablets[dev]
        value = {
            "title": f"title {n}",
            "objective_evidence": f"seen {n}",
            "classification": ["critical", "major", "other"][n],
            "status": ["draft", "submitted", "draft"][n],
        }[field]
        if tab.view("finding", fid) is None:
            tab.edit("finding", fid, {"inspection_id": INSP, "title": f"new {fid}", field: value})
        else:
            tab.edit("finding", fid, {field: value})
        self.clock.advance(seconds=1)

    @rule(dev=devices, fid=st.sampled_from(FINDINGS), h=st.sampled_from(HASHES))
    def add_evidence(self, dev: str, fid: str, h: str) -> None:
        tab = self.tablets[dev]
        if tab.view("finding", fid) is not None:
            tab.edit("finding", fid, {"evidence_hashes": [h]})
            self.clock.advance(seconds=1)

    @rule(dev=devices, fid=st.sampled_from(FINDINGS))
    def delete_finding(self, dev: str, fid: str) -> None:
        tab = self.tablets[dev]
        if tab.view("finding", fid) is not None and tab.server_copy("finding", fid):
            tab.edit("finding", fid, op="delete")
            self.clock.advance(seconds=1)

    @rule(dev=devices, n=st.integers(0, 1), value=st.sampled_from(["yes", "na"]))
    def answer(self, dev: str, n: int, value: str) -> None:
        self.tablets[dev].edit(
            "response", response_id(INSP, "l2-cellbank", self.items[n]), {"value": value}
        )
        self.clock.advance(seconds=1)

    # --- syncing -------------------------------------------------------------------

    @rule(dev=devices)
    def sync(self, dev: str) -> None:
        tab = self.tablets[dev]
        sent = {p["mid"]: p for p in tab.pending()}
        self.run(tab.pull())
        results = self.run(tab.push())
        for r in results:
            original = r.original if isinstance(r, Duplicate) else r
            p = sent.get(r.mid)
            if p is None or not isinstance(original, Applied | Merged | Conflicted):
                continue
            for field, value in json.loads(p["fields"]).items():
                self.acknowledged.append((p["kind"], p["id"], field, value))
        self.run(tab.pull())

    @precondition(lambda self: True)
    @rule(pick=st.integers(0, 10))
    def supervisor_resolves(self, pick: int) -> None:
        sup = self.principals["sup"]
        open_ = self.run(self.services.engine.list_conflicts(sup))
        if not open_:
            return
        c = open_[pick % len(open_)]
        values = c.data["values"]
        chosen = values[pick % len(values)]["value"]
        if c.data["field"] == "_deleted" and chosen is not None and not isinstance(chosen, dict):
            chosen = None
        try:
            self.run(self.services.engine.resolve_conflict(sup, c.id, chosen, "reviewed"))
        except Exception as exc:  # an invalid merged value is refused, never a crash
            assert type(exc).__name__ in ("InvalidInput", "InvalidTransition"), exc

    @rule(fid=st.sampled_from(FINDINGS), pick=st.integers(0, 8))
    def supervisor_decides(self, fid: str, pick: int) -> None:
        """A review decision is a server-side edit racing the tablets' offline edits."""
        d = ("accept", "return", "reclassify")[pick % 3]
        decision = Decision(
            decision=d,
            reason="reviewed",
            comment="say more" if d == "return" else None,
            classification=("critical", "major", "other")[pick // 3] if d == "reclassify" else None,
        )
        try:
            rec = self.run(self.services.review.decide(self.principals["sup"], fid, decision))
        except DomainError as exc:  # deleted, merged, in conflict, unchanged: refused, no crash
            assert exc.code in ("not_found", "invalid_transition", "invalid_input"), exc
            return
        for field in ("status", "classification"):
            self.acknowledged.append(("finding", fid, field, rec.data.get(field)))
        self.clock.advance(seconds=1)

    @invariant()
    def local_edits_show_at_once(self) -> None:
        for tab in self.tablets.values():
            for p in tab.pending():
                deleted_later = any(
                    q["op"] == "delete" and q["n"] > p["n"] and q["id"] == p["id"]
                    for q in tab.pending()
                )
                if p["op"] == "upsert" and not deleted_later:
                    view = tab.view(p["kind"], p["id"])
                    assert view is not None
                    for f, v in json.loads(p["fields"]).items():
                        if f not in ("evidence_hashes",):
                            # a later pending edit of the same field may override
                            later = [
                                q
                                for q in tab.pending()
                                if q["n"] > p["n"]
                                and q["id"] == p["id"]
                                and f in json.loads(q["fields"])
                            ]
                            if not later:
                                assert view[f] == v

    # --- the end -------------------------------------------------------------------

    def check_converged(self) -> None:
        for _ in range(3):
            for tab in self.tablets.values():
                self.run(tab.sync())
        for dev, tab in self.tablets.items():
            assert tab.pending() == []
            truth = self._fresh_state(self.principals[dev])
            assert tab.server_state() == truth, dev
        self._check_nothing_lost()

    def _fresh_state(self, p: Principal) -> dict[tuple[str, str], tuple[int, dict[str, Any]]]:
        state: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
        cursor = None
        while True:
            page = self.run(self.services.engine.pull(p, PullRequest(cursor=cursor)))
            for ch in page.changes:
                if ch.deleted:
                    state.pop((ch.kind, ch.id), None)
                else:
                    state[(ch.kind, ch.id)] = (ch.rev, ch.data or {})
            cursor = page.cursor
            if not page.has_more:
                return state

    def _check_nothing_lost(self) -> None:
        async def gather() -> tuple[dict, list, dict]:
            store = self.services.store
            records = {}
            for kind in ("finding", "response"):
                for r in await store.read_batch(lambda tx, k=kind: tx.find_records(k)):
                    records[(kind, r.id)] = r.data
            conflicts = await store.read_batch(lambda tx: tx.records_of("conflict", INSP))
            history: dict[tuple[str, str], list[dict]] = {}
            for kind, rid in {(k, i) for k, i, _, _ in self.acknowledged}:
                history[(kind, rid)] = await store.read_batch(
                    lambda tx, k=kind, i=rid: tx.history_of(k, i)
                )
            return records, conflicts, history

        records, conflicts, history = self.run(gather())

        def covers(stored: Any, value: Any) -> bool:
            if isinstance(value, list):  # grow-only: a superset keeps every value
                return isinstance(stored, list) and set(value) <= set(stored)
            return bool(stored == value)

        for kind, rid, field, value in self.acknowledged:
            record = records.get((kind, rid))
            current = record.get(field) if record is not None else None
            in_history = any(
                covers(json.loads(h["new"] or "{}").get(field), value) for h in history[(kind, rid)]
            )
            in_conflict = any(
                c.data["record_id"] == rid
                and any(
                    covers(v["value"], value)
                    if c.data["field"] == field
                    else c.data["field"] == "_deleted"
                    and isinstance(v["value"], dict)
                    and covers(v["value"].get(field), value)
                    for v in c.data["values"]
                )
                for c in conflicts
            )
            assert covers(current, value) or in_history or in_conflict, (kind, rid, field, value)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_replicas_converge_and_nothing_acknowledged_is_lost(backend, request):
    class Machine(SyncMachine):
        if backend == "sqlite":
            template_db = request.getfixturevalue("demo_template")
        else:
            pg_template = request.getfixturevalue("demo_pg_template")

        def teardown(self) -> None:
            try:
                self.check_converged()
            finally:
                super().teardown()

    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=25,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        ),
    )
