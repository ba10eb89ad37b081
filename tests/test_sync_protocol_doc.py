"""docs/sync-protocol.md follows the code: messages, result kinds, policies, codes, routes.

Each test reads the real thing (``sync.protocol``, ``sync.fielddata.POLICIES``, the
rejection codes in the engine's source, the app's routes) and fails naming what the page
lacks. The JSON examples (regenerate them with ``docs/_examples.py``) must still decode
as the messages they are labelled with.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, get_args

import msgspec
import pytest

from server.app import create_app
from server.routes.sync import ConflictOut, ResolveIn
from server.settings import Settings
from sync import protocol
from sync.fielddata import POLICIES
from sync.merge import Policy
from tests.conftest import login

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "sync-protocol.md"

# Every ```json block, with the ``<!-- example: NAME -->`` label before it if there is one.
JSON_BLOCK = re.compile(r"(?:<!-- example: (?P<name>\w+) -->\n)?```json\n(?P<body>.*?)\n```", re.S)
# A row of a markdown table whose first cell is a backticked word: | `code` | ...
FIRST_CELL = re.compile(r"^\|\s*`(?P<word>[a-z_]+)`\s*\|", re.M)

# The rejection codes a tablet can meet (sync/fielddata.py, sync/engine.py and, for
# mutations that do not decode, sync/protocol.py).
REJECTION_CODES = [
    "invalid_choice",
    "wrong_type",
    "out_of_limits",
    "evidence_required",
    "unanswered_required",
    "unknown_item",
    "unknown_link",
    "not_repeatable",
    "unknown_field",
    "required",
    "bad_id",
    "not_in_scope",
    "inspection_not_started",
    "inspection_closed",
    "reason_required",
    "immutable_field",
    "not_found",
    "unknown_kind",
    "unknown_op",
    "bad_base_rev",
    "too_deep",
    "internal_error",
]

# Labels of examples that are not protocol messages, and the types they decode to.
OTHER_EXAMPLES: dict[str, Any] = {
    "RejectionsRequest": protocol.PushRequest,
    "RejectionsResponse": protocol.PushResponse,
    "ResolveIn": ResolveIn,
    "ConflictOut": ConflictOut,
    "conflicts": list[ConflictOut],
    "quarantine": list[dict[str, Any]],
    "history": list[dict[str, Any]],
    "devices": list[dict[str, Any]],
}


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text(encoding="utf-8")


def json_blocks(text: str) -> list[tuple[str | None, str]]:
    return [(m["name"], m["body"]) for m in JSON_BLOCK.finditer(text)]


def protocol_structs() -> dict[str, type[msgspec.Struct]]:
    out = {}
    for name in protocol.__all__:
        obj = getattr(protocol, name)
        if isinstance(obj, type) and issubclass(obj, msgspec.Struct):
            out[name] = obj
    return out


def test_every_protocol_struct_is_named(doc):
    structs = protocol_structs()
    assert {"PullRequest", "PushResponse", "Mutation", "Applied"} <= set(structs)
    missing = [name for name in structs if f"`{name}`" not in doc]
    assert not missing, f"protocol structs not named in docs/sync-protocol.md: {missing}"


def test_every_result_kind_has_a_json_example_and_a_row(doc):
    tags = sorted(
        s.__struct_config__.tag
        for s in protocol_structs().values()
        if isinstance(s.__struct_config__.tag, str)
    )
    assert tags == ["applied", "conflict", "duplicate", "merged", "rejected"]
    examples = "\n".join(body for _, body in json_blocks(doc))
    missing = [t for t in tags if f'"status": "{t}"' not in examples]
    assert not missing, f"result kinds without a JSON example: {missing}"
    rows = {m["word"] for m in FIRST_CELL.finditer(doc)}
    missing = [t for t in tags if t not in rows]
    assert not missing, f"result kinds missing from the results table: {missing}"


def test_every_field_policy_is_in_the_tables(doc):
    rows = {m["word"] for m in FIRST_CELL.finditer(doc)}
    missing = [p for p in get_args(Policy) if p not in rows]
    assert not missing, f"merge policies missing from the policy table: {missing}"
    missing_fields = [
        (kind, field, policy)
        for kind, fields in POLICIES.items()
        for field, policy in fields.items()
        if not re.search(rf"^\|\s*`{kind}`\s*\|\s*`{field}`\s*\|\s*`{policy}`\s*\|", doc, re.M)
    ]
    assert not missing_fields, f"(kind, field, policy) rows missing: {missing_fields}"


def codes_in_source() -> set[str]:
    """Every rejection code the engine and the field-data rules can produce."""
    found: set[str] = set()
    for name in ("sync/fielddata.py", "sync/engine.py", "sync/protocol.py"):
        text = (ROOT / name).read_text(encoding="utf-8")
        found.update(re.findall(r'_fail\(\s*"(\w+)"', text))
        for m in re.finditer(r'\bcode\s*=\s*"(\w+)"(?:\s+if\b[^\n]*?\belse\s+"(\w+)")?', text):
            found.update(c for c in m.groups() if c)
    return found


def test_rejection_codes_listed_here_match_the_source():
    in_source = codes_in_source()
    assert len(in_source) > 10  # really read the source
    stale = sorted(set(REJECTION_CODES) - in_source)
    assert not stale, f"codes the source no longer produces: {stale}"
    new = sorted(in_source - set(REJECTION_CODES))
    assert not new, f"new rejection codes: document them and add them here: {new}"


def test_every_rejection_code_is_in_the_codes_table(doc):
    rows = {m["word"] for m in FIRST_CELL.finditer(doc)}
    missing = [c for c in REJECTION_CODES if c not in rows]
    assert not missing, f"rejection codes missing from the table: {missing}"


def sync_routes(tmp_path: Path) -> set[tuple[str, str]]:
    app = create_app(Settings(data_dir=str(tmp_path), jwt_secret="x" * 40))
    return {
        (method, route.path)
        for route in app.routes
        if route.path.startswith("/api/v1/sync")
        for handler in route.route_handlers
        for method in handler.http_methods
        if method != "OPTIONS"
    }


def test_every_sync_route_is_documented(tmp_path, doc):
    routes = sync_routes(tmp_path)
    assert ("POST", "/api/v1/sync/push") in routes and len(routes) >= 8
    rows = set(re.findall(r"^\|\s*`([A-Z]+)`\s*\|\s*`(/api/v1/sync[^`]*)`\s*\|", doc, re.M))
    missing = sorted(routes - rows)
    assert not missing, f"sync routes missing from the route table: {missing}"
    stale = sorted(rows - routes)
    assert not stale, f"the route table lists routes the app does not serve: {stale}"
    plain = [p for _, p in routes if p not in doc and re.sub(r":\w+}", "}", p) not in doc]
    assert not plain, f"sync routes not mentioned: {plain}"


def test_examples_decode_as_their_messages(doc):
    blocks = json_blocks(doc)
    structs = protocol_structs()
    labels = [name for name, _ in blocks if name]
    for message in ("PullRequest", "PullResponse", "PushRequest", "PushResponse"):
        assert message in labels, f"no example of {message}"
    for name, body in blocks:
        json.loads(body)  # every JSON block is JSON
        if name is None:
            continue
        if name in structs:
            protocol.decode(body.encode(), structs[name])
        else:
            assert name in OTHER_EXAMPLES, f"unknown example label {name!r}"
            msgspec.json.decode(body, type=OTHER_EXAMPLES[name])


def test_a_newer_apps_kind_and_op_still_decode(doc):
    """The page promises that an unknown kind or op rejects only its mutation (codes
    ``unknown_kind`` and ``unknown_op``): the message types must not refuse them."""
    body = msgspec.json.encode(
        {
            "mutations": [
                {
                    "mid": "dev_x:1",
                    "kind": "photo_annotation",
                    "id": "pa_1",
                    "op": "archive",
                    "hlc": "001767603600000.00000.dev_x",
                    "device_time": "2026-01-05T09:00:00Z",
                }
            ]
        }
    )
    mutation = protocol.decode(body, protocol.PushRequest).mutations[0]
    assert (mutation.kind, mutation.op) == ("photo_annotation", "archive")
    assert "`unknown_kind`" in doc and "`unknown_op`" in doc


def test_limits_and_version_are_stated(doc):
    assert f"`PROTOCOL_VERSION = {protocol.PROTOCOL_VERSION}`" in doc
    assert f"at most {protocol.MAX_BATCH} mutations" in doc
    assert f"1 to {protocol.MAX_PAGE}" in doc


async def test_the_rejection_example_is_what_the_server_answers(doc, demo):
    """Replay the page's mixed batch on the demo world: every result the page shows
    (status, code, field, message, rev) is the server's, in order."""
    examples = dict(json_blocks(doc))
    request = json.loads(examples["RejectionsRequest"])
    shown = json.loads(examples["RejectionsResponse"])["results"]
    tablet = await login(demo, "insp.js1", device={"name": "doc tablet"})
    r = await tablet.post("/api/v1/sync/push", json=request)
    assert r.status_code == 200, r.text
    compared = ("status", "mid", "kind", "id", "code", "field", "message", "rev")
    got = [{k: v for k, v in x.items() if k in compared} for x in r.json()["results"]]
    assert got == [{k: v for k, v in x.items() if k in compared} for x in shown]
    assert {x["status"] for x in shown} == {"applied", "rejected"}
