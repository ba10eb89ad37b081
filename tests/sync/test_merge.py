"""Properties of the pure merge and clock functions."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sync.hlc import HLC, receive, tick
from sync.merge import Edit, Stamp, merge

POL = {"title": "lww", "classification": "never", "tags": "union"}
values = st.sampled_from(["a", "b", "c"])
hlcs = st.integers(1_000, 9_000).map(lambda n: f"{n:015d}.00000.x")


def apply_all(edits: list[Edit]) -> tuple[dict, dict, list]:
    data: dict = {}
    stamps: dict = {}
    conflicts: list = []
    rev = 0
    for e in edits:
        r = merge(data, stamps, e, rev + 1, POL)  # type: ignore[arg-type]
        if r.values:
            rev += 1
            data = {**data, **r.values}
            stamps = {**stamps, **r.stamps}
        conflicts += r.conflicts
    return data, stamps, conflicts


@given(values, values, hlcs, hlcs)
def test_two_concurrent_edits_give_the_same_winner_in_either_order(v1, v2, h1, h2):
    base = Edit(
        fields={"title": "base"}, base_rev=0, hlc="000000000000001.00000.s", by="s", device="s"
    )
    e1 = Edit(fields={"title": v1}, base_rev=1, hlc=h1, by="u1", device="d1")
    e2 = Edit(fields={"title": v2}, base_rev=1, hlc=h2, by="u2", device="d2")
    one, _, c1 = apply_all([base, e1, e2])
    two, _, c2 = apply_all([base, e2, e1])
    assert one == two
    if v1 != v2:
        # the loser is kept: both values appear in the conflict
        kept = {v.value for c in c1 for v in c.values}
        assert {v1, v2} <= kept
        assert {v.value for c in c2 for v in c.values} >= {v1, v2}


@given(values, values)
def test_never_fields_keep_the_first_value_and_flag(v1, v2):
    base = Edit(
        fields={"classification": "major"},
        base_rev=0,
        hlc="000000000000001.00000.s",
        by="s",
        device="s",
    )
    e1 = Edit(
        fields={"classification": v1}, base_rev=1, hlc="000000000000005.00000.a", by="a", device="a"
    )
    e2 = Edit(
        fields={"classification": v2}, base_rev=1, hlc="000000000000009.00000.b", by="b", device="b"
    )
    data, _, conflicts = apply_all([base, e1, e2])
    assert data["classification"] == v1  # the later clock does not override
    if v1 != v2:
        assert conflicts and all(c.flagged for c in conflicts)


@given(
    st.lists(st.lists(st.sampled_from("pqrs"), max_size=3), min_size=1, max_size=5),
    st.permutations(range(5)),
)
def test_union_fields_end_with_every_value_in_any_order(adds, order):
    edits = [
        Edit(fields={"tags": a}, base_rev=0, hlc=f"{i + 1:015d}.00000.d{i}", by="u", device=f"d{i}")
        for i, a in enumerate(adds)
    ]
    ordered = [edits[i] for i in order if i < len(edits)]
    data, _, conflicts = apply_all(ordered)
    assert set(data.get("tags", [])) == {t for a in adds for t in a}
    assert conflicts == []


def test_different_fields_merge_and_own_edits_are_not_concurrent():
    stamps = {"title": Stamp(2, "000000000000002.00000.a", "u1", "dev-a")}
    r = merge(
        {"title": "x"},
        stamps,
        Edit(
            fields={"objective_evidence": "y"},
            base_rev=1,
            hlc="000000000000003.00000.b",
            by="u2",
            device="dev-b",
        ),
        3,
        {},
    )
    assert r.values == {"objective_evidence": "y"} and not r.conflicts
    own = merge(
        {"title": "x"},
        stamps,
        Edit(
            fields={"title": "z"},
            base_rev=1,
            hlc="000000000000004.00000.a",
            by="u1",
            device="dev-a",
        ),
        3,
        {},
    )
    assert own.values == {"title": "z"} and not own.conflicts and not own.concurrent


@given(st.integers(0, 10**12), st.integers(0, 10**12), st.integers(0, 99_999))
def test_hlc_is_monotonic_and_a_far_future_clock_is_flagged(now, remote_wall, counter):
    last = HLC(now // 2, counter, "s")
    remote = HLC(remote_wall, 0, "t")
    got = receive(last, remote, now, "s", max_skew_ms=60_000)
    assert got.clock > last
    assert got.flagged == (remote_wall - now > 60_000 or remote_wall - now < -60_000)
    if remote_wall - now > 60_000:
        assert got.effective.wall_ms <= max(now, last.wall_ms)  # not trusted
    assert tick(got.clock, now, "s") > got.clock
    assert HLC.parse(str(got.clock)) == got.clock
    assert HLC.parse(str(tick(got.clock, now, "s"))) == tick(got.clock, now, "s")


def test_a_full_counter_carries_into_the_wall_time():
    full = HLC(1000, 99_999, "s")
    nxt = tick(full, 1000, "s")
    assert nxt > full and str(nxt) == "000000000001001.00000.s"
    got = receive(full, HLC(1000, 99_999, "t"), 1000, "s", max_skew_ms=60_000)
    assert got.clock > full and HLC.parse(str(got.clock)) == got.clock
