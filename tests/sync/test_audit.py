"""The audit trail: every change leaves a hash-chained event; tampering is found."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.settings import Settings
from sync.audit import (
    GENESIS,
    HASHED,
    Actor,
    Anchor,
    anchors_path,
    append_anchor,
    diff,
    event_hash,
    read_anchors,
    verify,
)
from sync.models import Assignment, Role
from sync.protocol import Mutation, PushRequest
from tests.sync.conftest import principal

INSP = "insp-ds-routine"

_values = st.one_of(st.none(), st.integers(-5, 5), st.text(max_size=5))


def _chain(bodies: list[list[Any]]) -> list[dict[str, Any]]:
    events, prev = [], GENESIS
    for n, values in enumerate(bodies, start=1):
        digest = event_hash(prev, values)
        events.append(
            {"id": n, **dict(zip(HASHED, values, strict=True)), "prev_hash": prev, "hash": digest}
        )
        prev = digest
    return events


_bodies = st.lists(
    st.lists(_values, min_size=len(HASHED), max_size=len(HASHED)), min_size=2, max_size=8
)


@given(_bodies, st.data())
def test_verify_finds_the_first_changed_removed_or_inserted_event(bodies, data):
    events = _chain(bodies)
    assert verify(events).ok and verify(events).head == events[-1]["hash"]
    n = data.draw(st.integers(0, len(events) - 1))
    column = data.draw(st.sampled_from(HASHED))
    changed = [dict(e) for e in events]
    new = data.draw(_values.filter(lambda v: v != changed[n][column]))
    changed[n][column] = new
    found = verify(changed)
    assert not found.ok and found.first_bad_id == events[n]["id"]
    if n < len(events) - 1:  # removing one breaks the link of the next
        found = verify(events[:n] + events[n + 1 :])
        assert not found.ok and found.first_bad_id == events[n + 1]["id"]


@given(_bodies, st.data())
def test_anchors_find_events_cut_off_the_end_and_a_recomputed_chain(bodies, data):
    """What the chain alone cannot show: the newest events removed, or an event changed
    and every hash after it recomputed. An anchor (an event's id and hash written down
    elsewhere) shows both."""
    events = _chain(bodies)
    k = data.draw(st.integers(1, len(events)))  # anchored: event k, as it was
    anchor = Anchor(id=k, hash=events[k - 1]["hash"], at="2026-11-29T10:00:00+00:00")
    found = verify(events, [anchor])
    assert found.ok and found.anchors_checked == 1 and found.last_id == len(events)

    cut = verify(events[: k - 1], [anchor])
    assert not cut.ok and cut.first_bad_id is None and "cut off the end" in (cut.problem or "")

    n = data.draw(st.integers(0, k - 1))  # an event at or before the anchored one
    bodies2 = [list(b) for b in bodies]
    bodies2[n][0] = "forged" if bodies2[n][0] != "forged" else "forged again"
    rewritten = _chain(bodies2)
    assert verify(rewritten).ok  # consistent in itself
    found = verify(rewritten, [anchor])
    assert not found.ok and found.first_bad_id == k and "rewritten" in (found.problem or "")


def test_anchor_files_round_trip_and_a_bad_line_is_named(tmp_path):
    path = anchors_path(tmp_path / "inspectsync.db")
    assert path.name == "audit-anchors.jsonl" and read_anchors(path) == []
    a = Anchor(id=3, hash="ab" * 32, at="2026-11-29T10:00:00+00:00")
    append_anchor(path, a)
    append_anchor(path, Anchor(id=9, hash="cd" * 32, at="2026-11-29T11:00:00+00:00"))
    assert [x.id for x in read_anchors(path)] == [3, 9]
    with path.open("a") as f:
        f.write("not json\n")
    with pytest.raises(ValueError, match="line 3"):
        read_anchors(path)


def test_diff_names_only_public_fields_that_changed():
    old = {"title": "a", "status": "draft", "_stamps": {"title": 1}, "gone": 1}
    new = {"title": "b", "status": "draft", "_stamps": {"title": 2}, "added": [1]}
    assert diff(old, new) == ({"gone": 1, "title": "a"}, {"added": [1], "title": "b"})
    assert diff(None, {"x": 1}) == ({}, {"x": 1})


async def test_every_kind_of_change_is_audited_with_who_and_the_chain_holds(world, clock):
    store = world.store
    admin = await principal(world, "admin")
    sup = await principal(world, "sup.js")
    insp = await principal(world, "insp.js1", "tab-1")
    start = (await store.audit_events(limit=100_000))[-1]["id"]

    # admin work: a user, reference data, a revoked device
    user = await world.accounts.add_user(
        username="insp.new",
        display_name="New Inspector",
        role=Role.INSPECTOR,
        authority_id="js-mpa",
        password="long-enough-pw",
        actor=Actor.of(admin),
    )
    # supervisor work: staffing an inspection
    await world.registry.assign(sup, INSP, Assignment(inspection_id=INSP, user_id=user.id))
    # sync: a tablet creates a finding, then edits it
    fields = {"inspection_id": INSP, "title": "Door seal torn", "classification": "major"}
    for n, f in enumerate([fields, {"title": "Door seal torn, Grade B"}], start=1):
        await world.engine.push(
            insp,
            PushRequest(
                mutations=[
                    Mutation(
                        mid=f"tab-1:{n}",
                        kind="finding",
                        id="f-aud",
                        op="upsert",
                        base_rev=n - 1,
                        fields=f,
                        hlc=f"{int(clock.now().timestamp() * 1000):015d}.00000.tab-1",
                        device_time=clock.now(),
                    )
                ]
            ),
        )
    events = await store.audit_events(after_id=start)
    by = {(e["kind"], e["op"]): e for e in events}
    assert by[("user", "create")]["user_id"] == admin.user_id
    assert by[("user", "create")]["role"] == "admin"
    assert "password" not in by[("user", "create")]["new"]  # never the hash
    assert by[("assignment", "create")]["user_id"] == sup.user_id
    assert by[("inspection", "update")]["user_id"] == sup.user_id
    assert '"team_user_ids"' in by[("inspection", "update")]["old"]
    created, edited = (e for e in events if e["record_id"] == "f-aud")
    assert (created["op"], edited["op"]) == ("create", "update")
    assert edited["user_id"] == insp.user_id and edited["role"] == "inspector"
    assert edited["device_id"] == "tab-1" and edited["mid"] == "tab-1:2"
    assert edited["batch_id"] and edited["device_time"] and edited["received_at"]
    assert edited["old"] == '{"title":"Door seal torn"}'
    assert edited["new"] == '{"title":"Door seal torn, Grade B"}'

    result = await store.verify_audit()
    assert result.ok and result.checked >= len(events)


def _verify(settings: Settings) -> subprocess.CompletedProcess[str]:
    """``inspectsync audit verify`` on the world's database, in a process of its own."""
    where = (
        ["--database-url", settings.database_url]
        if settings.database_url
        else ["--db", settings.database]
    )
    command = [sys.executable, "-m", "server.cli", "audit", "verify"]
    return subprocess.run(
        [*command, "--data-dir", settings.data_dir, *where],
        capture_output=True,
        text=True,
        timeout=60,
    )


class _Raw:
    """Someone with direct access to the database (the file, or a PostgreSQL role)."""

    def __init__(self, settings: Settings) -> None:
        self.pg = bool(settings.database_url)
        if self.pg:
            self.db: Any = psycopg.connect(settings.database_url, autocommit=True)
            self.error: type[Exception] = psycopg.Error
        else:
            self.db = sqlite3.connect(settings.database, isolation_level=None)
            self.error = sqlite3.DatabaseError

    def run(self, sql: str, *params: Any) -> Any:
        return self.db.execute(sql.replace("?", "%s") if self.pg else sql, params)

    def drop_guard(self, action: str) -> None:
        if self.pg:  # one trigger refuses both
            self.run("DROP TRIGGER history_no_update ON history")
        else:
            self.run(f"DROP TRIGGER history_no_{action}")

    def close(self) -> None:
        self.db.close()


async def test_the_trail_is_append_only_and_verify_finds_a_row_edited_in_the_file(world):
    await world.store.close()
    db = _Raw(world.settings)
    with pytest.raises(db.error, match="append-only"):
        db.run("UPDATE history SET user_id = 'someone-else' WHERE id = 3")
    with pytest.raises(db.error, match="append-only"):
        db.run("DELETE FROM history WHERE id = 3")
    ok = _verify(world.settings)
    assert ok.returncode == 0 and "chain intact" in ok.stdout, ok.stderr

    # someone with the file drops the guard and rewrites who did something
    db.drop_guard("update")
    db.run("UPDATE history SET user_id = 'someone-else' WHERE id = 3")
    db.close()
    found = _verify(world.settings)
    out = found.stdout
    assert found.returncode == 1
    assert "TAMPERED: audit event 3 " in out and "2 events before it are intact" in out
    await world.store.open()


async def test_verify_anchors_the_head_and_finds_events_cut_off_the_end(world):
    await world.store.close()
    anchors = world.settings.anchors_file
    assert not anchors.exists()
    first = _verify(world.settings)
    assert first.returncode == 0 and "0 of 0 anchors" in first.stdout, first.stderr
    (head,) = read_anchors(anchors)
    db = _Raw(world.settings)
    assert head.id == db.run("SELECT MAX(id) FROM history").fetchone()[0]
    again = _verify(world.settings)
    assert again.returncode == 0 and "1 of 1 anchors" in again.stdout
    assert len(read_anchors(anchors)) == 1  # the head has not moved: nothing added

    # someone with the file removes the newest events: the chain itself stays valid
    db.drop_guard("delete")
    db.run("DELETE FROM history WHERE id >= ?", head.id - 1)
    db.close()
    cut = _verify(world.settings)
    assert cut.returncode == 1
    assert f"names event {head.id}: events were cut off the end" in cut.stdout
    await world.store.open()
