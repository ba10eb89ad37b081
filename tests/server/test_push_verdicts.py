"""Every mutation of a push gets its own verdict, over HTTP, whatever it holds.

A value of the wrong type, a value nested deeper than anything can decode, a
``base_rev`` the record never had, a response id spelled another way: each rejects its
own mutation with a reason (and is quarantined), never the batch, never a 5xx. The
hypothesis test sends arbitrary JSON and MessagePack values in every field of every
mutation kind, mixed with valid mutations, to the real server process.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.demo import DEMO_PASSWORD
from sync.fielddata import FIELD_TYPES
from tests.server.test_process import start_server, stop

pytestmark = pytest.mark.slow

INSP = "insp-ds-routine"
LINK = "l2-cellbank"
MSGPACK = "application/msgpack"
DEEP = "__deep_value__"  # a string replaced by a value nested too deep to encode


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, base = start_server(tmp_path_factory.mktemp("verdicts"), "--demo")
    try:
        yield base
    finally:
        stop(proc)


class Tablet:
    """One inspector's device on the real server, speaking raw bodies."""

    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=30)
        r = self.http.post(
            "/api/v1/auth/login",
            json={"username": "insp.js1", "password": DEMO_PASSWORD, "device": {"name": "fuzz"}},
        )
        assert r.status_code == 200, r.text
        self.http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        self.device = r.json()["device_id"]
        self.n = 0

    def mid(self) -> str:
        self.n += 1
        return f"{self.device}:{uuid.uuid4().hex[:8]}:{self.n}"

    def mutation(self, kind: str, rid: str, fields: dict[str, Any], **kw: Any) -> dict[str, Any]:
        now = datetime.now(UTC)
        return {
            "mid": self.mid(),
            "kind": kind,
            "id": rid,
            "fields": fields,
            "hlc": f"{int(now.timestamp() * 1000):015d}.00000.{self.device}",
            "device_time": now.isoformat(),
            **kw,
        }

    def push(
        self, mutations: list[dict[str, Any]], media: str, depth: int = 0, shape: str = "list"
    ) -> Any:
        """Push raw mutations; the string ``DEEP`` in them becomes a value nested
        ``depth`` levels. An integer past 64 bits has no MessagePack form: then JSON."""
        body = {"mutations": mutations}
        try:
            raw = _encode(body, media, depth, shape)
        except OverflowError:
            media = "application/json"
            raw = _encode(body, media, depth, shape)
        r = self.http.post(
            "/api/v1/sync/push", content=raw, headers={"content-type": media, "accept": media}
        )
        assert r.status_code < 500, r.text
        assert r.status_code == 200, r.text
        if media == MSGPACK:
            return msgspec.msgpack.decode(r.content)
        return r.json()

    def pull_all(self) -> dict[tuple[str, str], dict[str, Any]]:
        held: dict[tuple[str, str], dict[str, Any]] = {}
        cursor = None
        while True:
            page = self.http.post("/api/v1/sync/pull", json={"cursor": cursor}).json()
            for c in page["changes"]:
                if c.get("deleted"):
                    held.pop((c["kind"], c["id"]), None)
                else:
                    held[(c["kind"], c["id"])] = c
            cursor = page["cursor"]
            if not page["has_more"]:
                return held


def _encode(body: Any, media: str, depth: int, shape: str) -> bytes:
    codec = msgspec.msgpack if media == MSGPACK else msgspec.json
    return codec.encode(body).replace(codec.encode(DEEP), deep(depth, media, shape))


def deep(depth: int, media: str, shape: str = "list") -> bytes:
    """A value nested ``depth`` levels, encoded by hand (no encoder goes that deep)."""
    if media == MSGPACK:
        opener = b"\x91" if shape == "list" else b"\x81\xa1k"
        return opener * depth + b"\xc0"
    opener = b"[" if shape == "list" else b'{"k":'
    closer = b"]" if shape == "list" else b"}"
    return opener * depth + b"null" + closer * depth


@pytest.fixture(scope="module")
def tablet(server: str) -> Iterator[Tablet]:
    t = Tablet(server)
    yield t
    t.http.close()


@pytest.fixture(scope="module")
def admin(server: str) -> Iterator[httpx.Client]:
    http = httpx.Client(base_url=server, timeout=30)
    r = http.post("/api/v1/auth/login", json={"username": "admin", "password": DEMO_PASSWORD})
    http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
    yield http
    http.close()


@pytest.fixture(scope="module")
def item(tablet: Tablet) -> str:
    """A yes/no/NA item of the pinned cell-bank checklist that takes "na" bare."""
    held = tablet.pull_all()
    insp = held[("inspection", INSP)]["data"]
    version = held[("checklist_version", insp["pins"][LINK])]["data"]["content"]
    for section in version["sections"]:
        for it in section["items"]:
            rule = it.get("evidence") or {}
            if it["answer"] == "yes_no_na" and "na" not in rule.get("when_answer_in", []):
                return str(it["key"])
    raise AssertionError("no plain yes/no/NA item")


@pytest.mark.parametrize("media", ["application/json", MSGPACK])
def test_each_bad_mutation_is_rejected_alone_with_its_reason(tablet, admin, item, media):
    fid = f"f_{uuid.uuid4().hex[:12]}"
    first = tablet.push(
        [tablet.mutation("finding", fid, {"inspection_id": INSP, "title": "kept"})], media
    )
    assert first["results"][0]["status"] == "applied"
    rid = f"{INSP}~{LINK}~{item}~0"
    good = [
        tablet.mutation(
            "finding", f"f_{uuid.uuid4().hex[:12]}", {"inspection_id": INSP, "title": "A"}
        ),
        tablet.mutation("response", rid, {"value": "na"}),
    ]
    new = f"f_{uuid.uuid4().hex[:12]}"
    bad = {
        "title_is_a_number": tablet.mutation("finding", new, {"inspection_id": INSP, "title": 5}),
        "choice_not_text": tablet.mutation(
            "finding", new, {"inspection_id": INSP, "title": "x", "classification": ["major"]}
        ),
        "comments_too_deep": tablet.mutation(
            "finding", new, {"inspection_id": INSP, "title": "x", "comments": DEEP}
        ),
        "base_rev_past_64_bits": tablet.mutation(
            "finding", fid, {"title": "over"}, base_rev=2**70 if media != MSGPACK else 2**64 - 1
        ),
        "base_rev_ahead": tablet.mutation("finding", fid, {"title": "over"}, base_rev=7),
        "base_rev_for_a_new_record": tablet.mutation(
            "finding", new, {"inspection_id": INSP, "title": "x"}, base_rev=3
        ),
        "repeat_with_a_leading_zero": tablet.mutation(
            "response", f"{INSP}~{LINK}~{item}~00", {"value": "na"}
        ),
        "repeat_in_other_digits": tablet.mutation(
            "response", f"{INSP}~{LINK}~{item}~\u0663", {"value": "na"}
        ),
        "id_not_nfc": tablet.mutation(
            "finding", "f_cafe\u0301", {"inspection_id": INSP, "title": "x"}
        ),
        "number_not_finite": tablet.mutation("response", rid, {"value": float("inf")})
        if media == MSGPACK
        else tablet.mutation("response", rid, {"value": 10**30}),
    }
    expected = {
        "title_is_a_number": ("wrong_type", "title"),
        "choice_not_text": ("wrong_type", "classification"),
        "comments_too_deep": ("too_deep", "fields.comments"),
        "base_rev_past_64_bits": ("bad_base_rev", "base_rev"),
        "base_rev_ahead": ("bad_base_rev", "base_rev"),
        "base_rev_for_a_new_record": ("bad_base_rev", "base_rev"),
        "repeat_with_a_leading_zero": ("bad_id", "id"),
        "repeat_in_other_digits": ("bad_id", "id"),
        "id_not_nfc": ("bad_id", "id"),
        "number_not_finite": ("wrong_type", "value"),
    }
    batch = [good[0], *bad.values(), good[1]]
    answer = tablet.push(batch, media, depth=5000)
    results = answer["results"]
    assert [r["mid"] for r in results] == [m["mid"] for m in batch]
    assert results[0]["status"] == "applied" and results[-1]["status"] in ("applied", "merged")
    for (name, want), got in zip(expected.items(), results[1:-1], strict=True):
        assert got["status"] == "rejected", (name, got)
        assert (got["code"], got["field"]) == want, (name, got)
        assert got["quarantine_id"].startswith("q_") and got["message"]
    held = tablet.pull_all()
    assert held[("finding", fid)]["data"]["title"] == "kept"  # nothing accepted is lost
    assert held[("finding", fid)]["rev"] == 1
    assert ("finding", new) not in held
    assert held[("response", rid)]["data"]["value"] == "na"
    # every rejection is in the quarantine, as it was sent
    kept = {q["mid"]: q for q in admin.get("/api/v1/sync/quarantine").json()}
    for m in bad.values():
        assert m["mid"] in kept, m["mid"]
    # the inspector sees those of their inspection, a too-deep one included
    mine = {q["mid"] for q in tablet.http.get("/api/v1/sync/quarantine").json()}
    assert bad["comments_too_deep"]["mid"] in mine and bad["title_is_a_number"]["mid"] in mine
    # a resend gets the same verdicts, applied zero more times
    again = tablet.push(batch, media, depth=5000)
    assert [r["status"] for r in again["results"]] == ["duplicate"] * len(batch)


@pytest.mark.parametrize("media", ["application/json", MSGPACK])
def test_a_body_too_deep_outside_mutations_or_without_a_mid(tablet, media):
    def finding() -> dict[str, Any]:
        return tablet.mutation(
            "finding", f"f_{uuid.uuid4().hex[:12]}", {"inspection_id": INSP, "title": "ok"}
        )

    # too deep in a mutation's unknown field: that mutation is rejected, not the batch
    m, ok = finding(), finding()
    m["from_a_newer_app"] = DEEP
    answer = tablet.push([m, ok], media, depth=4000, shape="object")
    first, second = answer["results"]
    assert (first["status"], first["code"], first["field"]) == (
        "rejected",
        "too_deep",
        "from_a_newer_app",
    )
    assert second["status"] == "applied"
    # too deep in an unknown field of the body: ignored like any unknown field
    ok = finding()
    raw = _encode({"mutations": [ok], "from_a_newer_app": DEEP}, media, 4000, "list")
    r = tablet.http.post("/api/v1/sync/push", content=raw, headers={"content-type": media})
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["status"] == "applied"
    # a mutation whose mid cannot be read cannot be answered on its own: 400, field named
    broken = dict(finding(), mid=DEEP)
    raw = _encode({"mutations": [broken]}, media, 4000, "list")
    r = tablet.http.post("/api/v1/sync/push", content=raw, headers={"content-type": media})
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "mutations[0].mid"


# --- any value in any field -----------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
SLOTS = ["mid_suffix", "base_rev", "op", "hlc", "device_time", "reason", "extra"]


@st.composite
def batches(draw: st.DrawFn) -> list[tuple[str, str, Any, int]]:
    """(kind, slot, value, depth): which mutation kind, which of its fields or top-level
    keys gets an arbitrary value (``valid`` for none), the value, and a nesting depth
    that, when above zero, replaces the value by one nested that deep."""
    out = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["finding", "response", "signoff"]))
        slot = draw(st.sampled_from(["valid", *FIELD_TYPES[kind], *SLOTS]))
        depth = draw(st.sampled_from([0, 0, 0, 3, 40, 3000]))
        out.append((kind, slot, draw(values), depth))
    return out


@given(batch=batches(), media=st.sampled_from(["application/json", MSGPACK]))
@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_any_value_in_any_field_gets_its_own_verdict(tablet, item, batch, media):
    sent: list[tuple[dict[str, Any], bool]] = []
    deep_depth = 0
    for kind, slot, value, depth in batch:
        if kind == "finding":
            rid = f"f_{uuid.uuid4().hex[:12]}"
            fields: dict[str, Any] = {"inspection_id": INSP, "title": "valid title"}
        elif kind == "response":
            rid = f"{INSP}~{LINK}~{item}~0"
            fields = {"value": "na"}
        else:
            rid = f"so_{uuid.uuid4().hex[:12]}"
            fields = {
                "inspection_id": INSP,
                "scope": f"link:{LINK}",
                "signer_name": "Li Wei",
                "meaning": "authored",
                "content_hash": "0" * 64,
                "signed_at": datetime.now(UTC).isoformat(),
                "incomplete_reason": "the rest of the link is out of this visit's scope",
            }
        m = tablet.mutation(kind, rid, fields)
        if depth and not deep_depth:  # one deep value per body
            value = DEEP
            deep_depth = depth
        if slot == "valid":
            pass
        elif slot in FIELD_TYPES[kind]:
            m["fields"][slot] = value
        elif slot == "mid_suffix":
            m["mid"] = f"{m['mid']}:{value!s:.40}"
        elif slot == "extra":
            m["from_a_newer_app"] = value
        else:
            m[slot] = value
        if kind == "signoff" and slot == "valid":
            slot = "signoff"  # a sign-off freezes the link: later answers need a reason
        sent.append((m, slot == "valid"))
    answer = tablet.push([m for m, _ in sent], media, depth=deep_depth)
    results = answer["results"]
    assert len(results) == len(sent)
    known = {"applied", "merged", "conflict", "rejected", "duplicate"}
    for (m, valid), r in zip(sent, results, strict=True):
        assert r["mid"] == m["mid"] and r["status"] in known
        if r["status"] == "rejected":
            assert r["code"] and r["message"] and r["quarantine_id"]
            assert r["code"] != "internal_error", r
        if valid and m["kind"] == "finding":
            assert r["status"] == "applied", r
    # what was applied is what the server holds
    held = tablet.pull_all()
    for (m, _), r in zip(sent, results, strict=True):
        if m["kind"] == "finding" and r["status"] == "applied":
            assert ("finding", m["id"]) in held
        if m["kind"] == "finding" and r["status"] == "rejected":
            assert ("finding", m["id"]) not in held
