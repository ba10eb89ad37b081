"""What the OpenAPI document says about each operation, said with Litestar's own means.

- ``problems(*statuses)``: the error answers of an operation, each an RFC 9457 problem
  detail served as ``application/problem+json`` (``ResponseSpec``s for ``responses=``).
  Every operation may also answer 500 (an unexpected error) and 503 (the database is
  down, or the server sheds load with ``Retry-After``), so those are always added.
- ``operation(...)``: an ``operation_class`` for what ``ResponseSpec`` cannot say: a
  public operation (``security: []``, the app's default being the bearer token), the
  sync wire's two encodings (a body read by the handler itself, JSON or MessagePack,
  and an answer in either), several media types for one status, and headers of answers
  other than the success one.

``tests/server/test_openapi.py`` and the schemathesis run in
``tests/server/test_fuzz_api.py`` hold the document to what the server serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    Link,
    OpenAPIHeader,
    OpenAPIMediaType,
    Operation,
    Parameter,
    RequestBody,
    Schema,
)
from litestar.typing import FieldDefinition

from server.problems import CODES
from server.schemas import ProblemOut
from sync.protocol import MSGPACK, PullRequest, PullResponse, PushRequest, PushResponse

__all__ = [
    "JSON",
    "MSGPACK",
    "PROBLEM",
    "PULL_ANSWERS",
    "PULL_OPERATION",
    "PUSH_ANSWERS",
    "PUSH_OPERATION",
    "RETRY_AFTER",
    "TUS_RESUMABLE",
    "ClosedStructSchemaPlugin",
    "header",
    "link",
    "operation",
    "problems",
    "request_header",
    "wire_body",
]

JSON = "application/json"
PROBLEM = "application/problem+json"
ALWAYS = (500, 503)


def _description(status: int) -> str:
    codes = ", ".join(f"`{code}`" for code, (s, _) in CODES.items() if s == status)
    return f"A problem detail; `code` is one of {codes}" if codes else "A problem detail"


def problems(*statuses: int) -> dict[int, ResponseSpec]:
    """The problem-detail answers for ``statuses`` (plus 500 and 503)."""
    return {
        status: ResponseSpec(
            ProblemOut,
            description=_description(status),
            media_type=PROBLEM,
            generate_examples=False,
        )
        for status in sorted({*statuses, *ALWAYS})
    }


def header(description: str, *, required: bool = True, integer: bool = False) -> OpenAPIHeader:
    return OpenAPIHeader(
        description=description,
        required=required,
        schema=Schema(type="integer" if integer else "string"),  # type: ignore[arg-type]
    )


def request_header(
    name: str, description: str, *, required: bool = True, schema: Schema | None = None
) -> Parameter:
    return Parameter(
        name=name,
        param_in="header",
        description=description,
        required=required,
        schema=schema or Schema(type="string"),  # type: ignore[arg-type]
    )


TUS_RESUMABLE = request_header(
    "Tus-Resumable",
    "The tus version: 1.0.0 (any other, or none, is 412 `tus_version_unsupported`)",
    schema=Schema(type="string", const="1.0.0"),  # type: ignore[arg-type]
)

RETRY_AFTER = header("Seconds to wait before trying again", required=False, integer=True)


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    """A msgspec JSON schema with every ``$ref`` replaced by its definition (the wire
    messages are not recursive), so it needs nothing from the document's components."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str):
            return _inline(defs[ref.rsplit("/", 1)[-1]], defs)
        return {k: _inline(v, defs) for k, v in schema.items() if v is not None}
    if isinstance(schema, list):
        return [_inline(v, defs) for v in schema]
    return schema


def wire_body(message: type[msgspec.Struct]) -> RequestBody:
    """The body of a sync route: ``message``, JSON or MessagePack, with the JSON schema
    msgspec (which decodes it) gives; the handler reads it itself, so Litestar sees no
    ``data`` to describe."""
    (root,), defs = msgspec.json.schema_components([message])
    schema = _inline(root, defs)
    return RequestBody(
        required=True,
        description=f"A `{message.__name__}`: JSON, or MessagePack when sent as"
        f" `Content-Type: {MSGPACK}`. Unknown fields are ignored (newer tablets).",
        content={JSON: OpenAPIMediaType(schema=schema), MSGPACK: OpenAPIMediaType(schema=schema)},
    )


def operation(
    *,
    public: bool = False,
    body: RequestBody | None = None,
    wire_answer: bool = False,
    media: dict[int, tuple[str, ...]] | None = None,
    headers: dict[int, dict[str, OpenAPIHeader]] | None = None,
    links: dict[int, dict[str, Link]] | None = None,
    request_headers: list[Parameter] | None = None,
) -> type[Operation]:
    """An ``operation_class`` completing what Litestar generated:

    - ``public``: no token needed (``security: []``);
    - ``body``: the request body of a handler that reads it itself;
    - ``wire_answer``: the 200 answer is also served as MessagePack;
    - ``media``: the media types of a status' (binary) body, e.g. an evidence file's;
    - ``headers``: headers of answers, by status;
    - ``links``: OpenAPI links of answers, by status: which operation a value of the
      answer feeds (what schemathesis' stateful phase follows, beside the links it
      infers);
    - ``request_headers``: headers the handler reads itself (tus, ``Range``), said
      without Litestar validating them first (the handler answers their problems:
      412 for ``Tus-Resumable``, not a 400).
    """

    @dataclass
    class DocumentedOperation(Operation):
        def __post_init__(self) -> None:
            if public:
                self.security = []
            if body is not None:
                self.request_body = body
            answers: Any = self.responses or {}
            if wire_answer:
                ok = answers["200"]
                ok.content[MSGPACK] = ok.content[JSON]
            for status, types in (media or {}).items():
                binary = OpenAPIMediaType(schema=Schema(type="string", format="binary"))  # type: ignore[arg-type]
                answers[str(status)].content = {t: binary for t in types}
            for status, named in (headers or {}).items():
                answer = answers[str(status)]
                answer.headers = {**(answer.headers or {}), **named}
            for status, linked in (links or {}).items():
                answers[str(status)].links = linked
            if request_headers:
                self.parameters = [*(self.parameters or []), *request_headers]

    return DocumentedOperation


def link(operation_id: str, **parameters: str) -> Link:
    """A link to ``operation_id`` with its parameters taken from this answer, e.g.
    ``key="$response.body#/0/id"``."""
    return Link(operation_id=operation_id, parameters=dict(parameters))


def _wire_answers(message: type[msgspec.Struct]) -> dict[int, ResponseSpec]:
    answer = ResponseSpec(
        message,
        description=f"A `{message.__name__}`: JSON, or MessagePack when asked with"
        f" `Accept: {MSGPACK}`",
        generate_examples=False,
    )
    return {200: answer, **problems(400, 401, 413, 422)}


PULL_ANSWERS = _wire_answers(PullResponse)
_CHANGED = {"kind": "$response.body#/changes/0/kind", "record_id": "$response.body#/changes/0/id"}
PULL_OPERATION = operation(
    body=wire_body(PullRequest),
    wire_answer=True,
    links={
        200: {
            "SyncHistory": link("ApiV1SyncHistoryKindRecordIdHistory", **_CHANGED),
            "AuditHistory": link("ApiV1AuditHistoryKindRecordIdHistory", **_CHANGED),
        }
    },
)
PUSH_ANSWERS = _wire_answers(PushResponse)
PUSH_OPERATION = operation(body=wire_body(PushRequest), wire_answer=True)


class ClosedStructSchemaPlugin(StructSchemaPlugin):
    """Litestar's schema of a msgspec struct, saying ``additionalProperties: false`` for
    one that forbids unknown fields (every input body but the sync wire's), as it
    answers 400 to any other field. (Litestar's own plugin does not say it.)"""

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        if not super().is_plugin_supported_field(field_definition):
            return False
        info = msgspec.inspect.type_info(field_definition.type_)
        return isinstance(info, msgspec.inspect.StructType) and info.forbid_unknown_fields

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        schema.additional_properties = False
        return schema
