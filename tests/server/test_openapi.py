"""The OpenAPI document says what the server does (the schemathesis run in
test_fuzz_api.py checks every answer against it; this file pins the parts a generated
client relies on most, and the server bugs the conformance run found).

Found by the conformance run, and fixed:
- ``export.json`` was declared a string, the sync pull and push a string answer and no
  body; every problem detail was declared ``application/json`` with Litestar's
  ``{status_code, detail, extra}`` shape; 401/403/404/409/412/413/422/... were not
  declared at all; no route was marked public; 204 answers declared a JSON body.
- ``GET /checklists/versions/{vid}/export`` was declared a string: its YAML is a
  template document (schemathesis reads YAML answers).
- Input bodies refuse unknown fields but did not say so (``additionalProperties``),
  so schema-valid bodies were answered 400.
- ``GET /review/queue`` answered 422 for a ``limit`` or ``offset`` out of range while
  the other listings answer 400 with the bounds in the schema: it uses the same
  parameters now.
- ``POST /checklists/import`` answered 500 for a JSON body escaping a character past
  U+FFFF (``"\\ud83d\\ude00"``): YAML read the escape as two lone surrogates.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from server.app import create_app
from server.schemas import InspectionExport
from server.settings import Settings
from tests.conftest import login

PUBLIC = {
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/logout"),
    ("options", "/api/v1/evidence/uploads"),
}
METHODS = {"get", "put", "post", "delete", "options", "head", "patch"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    app = create_app(Settings(data_dir="unused", jwt_secret="s" * 40))
    return app.openapi_schema.to_schema()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def test_public_routes_say_so_and_the_others_need_the_bearer_token(document):
    assert document["security"] == [{"BearerToken": []}]
    public = {(m, p) for m, p, op in operations(document) if op.get("security") == []}
    assert public == PUBLIC
    others = [
        (m, p, op.get("security")) for m, p, op in operations(document) if (m, p) not in PUBLIC
    ]
    assert all(security is None for _, _, security in others)  # the document's default
    assert all(
        "401" in op["responses"] for m, p, op in operations(document) if (m, p) not in PUBLIC
    )


def test_every_error_answer_is_a_problem_detail(document):
    for method, path, op in operations(document):
        for status, answer in op["responses"].items():
            if int(status) < 400:
                continue
            content = answer.get("content") or {}
            assert list(content) == ["application/problem+json"], (method, path, status)
            assert content["application/problem+json"]["schema"] == {
                "$ref": "#/components/schemas/ProblemOut"
            }
        assert {"500", "503"} <= set(op["responses"]), (method, path)


def test_the_sync_messages_are_documented_in_both_encodings(document):
    for path, answer in (("pull", "PullResponse"), ("push", "PushResponse")):
        op = document["paths"][f"/api/v1/sync/{path}"]["post"]
        body = op["requestBody"]["content"]
        assert set(body) == {"application/json", "application/msgpack"}
        assert body["application/json"]["schema"]["type"] == "object"
        # the wire tolerates fields from newer tablets
        assert body["application/json"]["schema"].get("additionalProperties") is not False
        ok = op["responses"]["200"]["content"]
        assert set(ok) == {"application/json", "application/msgpack"}
        assert ok["application/json"]["schema"] == {"$ref": f"#/components/schemas/{answer}"}


def test_input_bodies_refuse_unknown_fields_in_the_schema_too(document):
    schemas = document["components"]["schemas"]
    for name in ("LoginIn", "UserPatch", "Inspection", "SiteCreate", "SignedDecision", "ResolveIn"):
        assert schemas[name]["additionalProperties"] is False, name
    assert "additionalProperties" not in schemas["PullResponse"]


def test_every_link_names_an_operation_of_the_document(document):
    ids = {op["operationId"] for _, _, op in operations(document)}
    links = [
        link
        for _, _, op in operations(document)
        for answer in op["responses"].values()
        for link in (answer.get("links") or {}).values()
    ]
    assert len(links) >= 10
    assert {link["operationId"] for link in links} <= ids


async def test_the_json_export_is_the_documented_object(demo):
    admin = await login(demo, "admin")
    r = await admin.get("/api/v1/inspections/insp-ds-routine/export.json")
    assert r.status_code == 200, r.text
    export = msgspec.json.decode(r.content, type=InspectionExport)
    assert export.format == "inspectsync.inspection-export/1"


async def test_the_review_queue_refuses_a_limit_out_of_range_like_the_other_listings(demo):
    supervisor = await login(demo, "admin")
    for params in ({"limit": 0}, {"limit": 501}, {"offset": -1}):
        r = await supervisor.get("/api/v1/review/queue", params=params)
        assert (r.status_code, r.json()["code"]) == (400, "validation_failed"), r.text
        assert r.json()["field"] in params


async def test_a_template_file_escaping_a_character_past_the_bmp_imports(demo):
    admin = await login(demo, "admin")
    template = {
        "key": "emoji_check",
        "stage_type": "data_integrity",
        "title": {"en": "Checks \U0001f600", "zh": "检查"},
        "sections": [],
    }
    r = await admin.post(
        "/api/v1/checklists/import",
        content=json.dumps({**template, "unknown": "\U0001f600"}).encode(),  # ASCII escapes
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code in (400, 409, 422), r.text  # an answer, not a 500
    r = await admin.post(
        "/api/v1/checklists/import",
        content=b'{"key": "\\ud83d"}',  # a lone surrogate is not text
        headers={"Content-Type": "application/json"},
    )
    assert (r.status_code, r.json()["code"]) == (422, "invalid_input"), r.text


def test_tus_requests_say_the_headers_the_server_reads(document):
    uploads = document["paths"]["/api/v1/evidence/uploads"]
    chunk = document["paths"]["/api/v1/evidence/uploads/{upload_id}"]["patch"]
    named = {p["name"]: p for p in chunk["parameters"] if p["in"] == "header"}
    assert named["Tus-Resumable"]["schema"] == {"type": "string", "const": "1.0.0"}
    assert named["Upload-Offset"]["required"] and not named["Upload-Checksum"]["required"]
    assert list(chunk["requestBody"]["content"]) == ["application/offset+octet-stream"]
    created = uploads["post"]["responses"]["201"]
    assert {"Location", "Upload-Offset", "Tus-Resumable"} <= set(created["headers"])
    assert set(created["links"]) == {"UploadStatus", "UploadChunk", "TerminateUpload"}
    assert "Tus-Max-Size" in uploads["options"]["responses"]["204"]["headers"]
