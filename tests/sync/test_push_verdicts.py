"""Per-mutation verdicts in the engine: an unexpected failure is rolled back alone, and a
classification is never changed but on a base that saw it (property test)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sync.engine
from server.app import build_services
from server.settings import Settings
from sync.clock import FakeClock
from sync.models import Principal, Role
from sync.protocol import Conflicted, Duplicate, Mutation, PushRequest, Rejected
from tests.conftest import FAST, SECRET
from tests.sync.conftest import principal

INSP = "insp-ds-routine"


def mutation(mid: str, fid: str, fields: dict[str, Any], base_rev: int = 0, at=None) -> Mutation:
    now = at or datetime.now(UTC)
    device = mid.split(":")[0]
    return Mutation(
        mid=mid,
        kind="finding",
        id=fid,
        base_rev=base_rev,
        fields=fields,
        hlc=f"{int(now.timestamp() * 1000):015d}.00000.{device}",
        device_time=now,
    )


async def test_an_unexpected_failure_rolls_back_that_mutation_alone(world, monkeypatch, caplog):
    p = await principal(world, "insp.js1", "tab-a")
    real = sync.engine.validate

    def failing(kind: str, rid: str, view: dict[str, Any], pins: Any) -> Any:
        if view.get("title") == "boom":
            raise RuntimeError("a bug in a rule")
        return real(kind, rid, view, pins)

    monkeypatch.setattr(sync.engine, "validate", failing)
    batch = PushRequest(
        mutations=[
            mutation("tab-a:1", "f-1", {"inspection_id": INSP, "title": "before"}),
            # creates the record and its audit event, then fails: all of it is undone
            mutation("tab-a:2", "f-1", {"title": "boom"}, base_rev=1),
            mutation("tab-a:3", "f-2", {"inspection_id": INSP, "title": "after"}),
            mutation("tab-a:4", "f-1", {"objective_evidence": "seen"}, base_rev=1),
        ]
    )
    answer = await world.engine.push(p, batch)
    tags = [r.__struct_config__.tag for r in answer.results]
    assert tags == ["applied", "rejected", "applied", "applied"]
    failed = answer.results[1]
    assert isinstance(failed, Rejected) and failed.code == "internal_error"
    assert "tab-a:2" in caplog.text and answer.batch_id in caplog.text
    f1 = await world.store.get_record("finding", "f-1")
    assert f1 is not None and f1.data["title"] == "before" and f1.rev == 2
    assert f1.data["objective_evidence"] == "seen"
    history = await world.engine.history(p, "finding", "f-1")
    assert [h["mid"] for h in history] == ["tab-a:1", "tab-a:4"]
    assert (await world.store.verify_audit()).ok
    quarantined = {q["mid"]: q for q in await world.engine.quarantine(p)}
    assert quarantined["tab-a:2"]["code"] == "internal_error"
    # its verdict is kept: a resend is a duplicate of it, applied zero more times
    again = await world.engine.push(p, batch)
    assert all(isinstance(r, Duplicate) for r in again.results)
    assert again.results[1].original == failed


# --- the conflict rule, for any sequence of edits and any base_rev -------------------

DEVICES = {"tab-1": "u-insp-js1", "tab-2": "u-insp-js2", "tab-3": "u-insp-js1"}
CLASSES = ["critical", "major", "other"]


def _principal(device: str) -> Principal:
    uid = DEVICES[device]
    name = "insp.js1" if uid == "u-insp-js1" else "insp.js2"
    return Principal(
        user_id=uid, username=name, role=Role.INSPECTOR, authority_id="js-mpa", device_id=device
    )


edits = st.lists(
    st.tuples(
        st.sampled_from(sorted(DEVICES)),
        # which base: what the device last saw, the current rev, a rev ahead, far ahead, 0
        st.sampled_from(["seen", "seen", "current", "ahead", "far", "zero"]),
        st.sampled_from(CLASSES),
    ),
    min_size=1,
    max_size=12,
)


@pytest.fixture(scope="module")
def template(demo_template: Path) -> Path:
    return demo_template


@given(steps=edits)
@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_a_classification_changes_only_on_a_base_that_saw_it(template, steps):
    asyncio.run(_classification_rule(template, steps))


async def _classification_rule(template: Path, steps: list[tuple[str, str, str]]) -> None:
    root = Path(tempfile.mkdtemp(prefix="inspectsync-rule-"))
    try:
        settings_ = Settings(data_dir=str(root), jwt_secret=SECRET, **FAST)
        shutil.copyfile(template, settings_.database)
        clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
        services = build_services(settings_, clock)
        await services.store.open()
        try:
            engine, fid = services.engine, "f-rule"
            first = await engine.push(
                _principal("tab-1"),
                PushRequest(
                    mutations=[
                        mutation(
                            "tab-1:0",
                            fid,
                            {"inspection_id": INSP, "title": "t", "classification": "major"},
                        )
                    ]
                ),
            )
            assert first.results[0].__struct_config__.tag == "applied"
            seen = {d: 0 for d in DEVICES}
            seen["tab-1"] = 1
            for n, (device, base, value) in enumerate(steps, start=1):
                before = await services.store.get_record("finding", fid)
                assert before is not None
                stamp = before.data["_stamps"]["classification"]
                base_rev = {
                    "seen": seen[device],
                    "current": before.rev,
                    "ahead": before.rev + 1,
                    "far": 2**62,
                    "zero": 0,
                }[base]
                clock.advance(seconds=1)
                m = mutation(f"{device}:{n}", fid, {"classification": value}, base_rev, clock.now())
                result = (
                    await engine.push(_principal(device), PushRequest(mutations=[m]))
                ).results[0]
                after = await services.store.get_record("finding", fid)
                assert after is not None
                if base_rev > before.rev:
                    assert isinstance(result, Rejected) and result.code == "bad_base_rev"
                    assert after.rev == before.rev
                    continue
                if after.data["classification"] != before.data["classification"]:
                    # changed: the edit was made on a base that had the current value
                    # (or on the device's own earlier change of it)
                    assert base_rev >= stamp[0] or stamp[3] == device
                    assert after.data["classification"] == value
                elif value != before.data["classification"]:
                    # not changed to a different value: kept as a flagged conflict
                    assert isinstance(result, Conflicted), result
                    kept = [c for c in result.conflicts if c.field == "classification"]
                    assert kept and kept[0].flagged
                    assert value in [v["value"] for v in kept[0].values]
                    assert "classification" in after.data["open_conflicts"]
                seen[device] = after.rev
        finally:
            await services.store.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
