"""Reference data: authorities, organisations, sites, products, segmented chains.

The five resources behave the same way, so one factory builds their routers:
admins write; everyone reads what their scope allows (inspectors only what their
inspections reach). Writes take an optional ``If-Match: <rev>`` header.
"""

# No `from __future__ import annotations` here: the factory's handlers are annotated
# with types chosen at run time, and Litestar reads those annotations.

from typing import Annotated, Any

import msgspec
from litestar import Router, get, post, put
from litestar.params import FromPath, HeaderParameter, JSONBody

from server.deps import AuthedRequest, RegistryDep
from server.guards import ADMIN, ANY_ROLE
from server.routes._openapi import problems
from server.schemas import Limit, Offset, envelope, page, to_envelope, to_page
from sync.errors import InvalidInput
from sync.models import KIND_TYPES

__all__ = ["PLURALS", "reference_routers"]

PLURALS = {
    "authority": "authorities",
    "organisation": "organisations",
    "site": "sites",
    "product": "products",
    "chain": "chains",
}

IfMatch = Annotated[
    str | None,
    HeaderParameter(name="If-Match", description="The rev this write is based on", required=False),
]


def parse_if_match(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip().strip('"').removeprefix('W/"'))
    except ValueError:
        raise InvalidInput("If-Match must be a record revision number", field="If-Match") from None


def _router(kind: str) -> Router:
    plural = PLURALS[kind]
    body_type: Any = KIND_TYPES[kind]
    out: Any = envelope(kind)
    out_page: Any = page(kind)
    create_body: Any = msgspec.defstruct(
        f"{body_type.__name__}Create",
        [("id", str | None, None), ("data", body_type)],
        kw_only=True,
        forbid_unknown_fields=True,
    )

    async def list_records(
        request: AuthedRequest,
        registry: RegistryDep,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> out_page:
        items, total = await registry.list_reference(request.user, kind, limit=limit, offset=offset)
        return to_page(kind, items, total, limit, offset)

    async def get_record(
        record_id: FromPath[str], request: AuthedRequest, registry: RegistryDep
    ) -> out:
        return to_envelope(await registry.get_reference(request.user, kind, record_id))

    async def create_record(
        data: JSONBody[create_body], request: AuthedRequest, registry: RegistryDep
    ) -> out:
        rec = await registry.create_reference(request.user, kind, data.id, data.data)
        return to_envelope(rec)

    async def replace_record(
        record_id: FromPath[str],
        data: JSONBody[body_type],
        request: AuthedRequest,
        registry: RegistryDep,
        if_match: IfMatch = None,
    ) -> out:
        rec = await registry.replace_reference(
            request.user, kind, record_id, data, parse_if_match(if_match)
        )
        return to_envelope(rec)

    handlers = [
        get(
            "/",
            guards=[ANY_ROLE],
            operation_id=f"list_{plural}",
            summary=f"List {plural} you may see",
            responses=problems(400, 401),
        )(list_records),
        get(
            "/{record_id:str}",
            guards=[ANY_ROLE],
            operation_id=f"get_{kind}",
            summary=f"One {kind}",
            responses=problems(400, 401, 404),
        )(get_record),
        post(
            "/",
            guards=[ADMIN],
            operation_id=f"create_{kind}",
            summary=f"Create a {kind} (admin)",
            responses=problems(400, 401, 403, 409, 413, 422),
        )(create_record),
        put(
            "/{record_id:str}",
            guards=[ADMIN],
            operation_id=f"replace_{kind}",
            summary=f"Replace a {kind} (admin)",
            responses=problems(400, 401, 403, 404, 412, 413, 422),
        )(replace_record),
    ]
    return Router(path=f"/api/v1/{plural}", route_handlers=handlers, tags=[plural])


def reference_routers() -> list[Router]:
    return [_router(kind) for kind in PLURALS]
