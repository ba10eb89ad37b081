"""Inspections: planning, listing with filters, status transitions, teams."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import msgspec
from litestar import Controller, delete, get, post, put
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from server.deps import AuthedRequest, RegistryDep
from server.guards import ANY_ROLE, STAFF
from server.routes._openapi import problems
from server.routes.reference import IfMatch, parse_if_match
from server.schemas import (
    AssignmentIn,
    Limit,
    Offset,
    TransitionIn,
    envelope,
    page,
    to_envelope,
    to_page,
)
from sync.models import (
    Assignment,
    Filter,
    Inspection,
    InspectionStatus,
    InspectionType,
)

InspectionOut: Any = envelope("inspection")
InspectionPage: Any = page("inspection")
AssignmentOut: Any = envelope("assignment")


class InspectionCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    id: str | None = None
    data: Inspection


class InspectionController(Controller):
    path = "/api/v1/inspections"
    tags = ["inspections"]

    @get("/", guards=[ANY_ROLE], responses=problems(400, 401))
    async def list_inspections(
        self,
        request: AuthedRequest,
        registry: RegistryDep,
        status: FromQuery[InspectionStatus | None] = None,
        site_id: FromQuery[str | None] = None,
        type_: Annotated[InspectionType | None, QueryParameter(name="type")] = None,
        lead_authority_id: FromQuery[str | None] = None,
        planned_from: FromQuery[date | None] = None,
        planned_to: FromQuery[date | None] = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> InspectionPage:
        """Inspections you may see (inspector: assigned; supervisor: your authority's,
        lead or participating; admin: all), filtered, by planned start, paged."""
        filters: list[Filter] = []
        if status is not None:
            filters.append(Filter("status", "eq", status.value))
        if site_id is not None:
            filters.append(Filter("site_id", "eq", site_id))
        if type_ is not None:
            filters.append(Filter("type", "eq", type_.value))
        if lead_authority_id is not None:
            filters.append(Filter("lead_authority_id", "eq", lead_authority_id))
        if planned_from is not None:
            filters.append(Filter("planned_start", "gte", planned_from.isoformat()))
        if planned_to is not None:
            filters.append(Filter("planned_start", "lte", planned_to.isoformat()))
        items, total = await registry.list_inspections(
            request.user, filters, limit=limit, offset=offset
        )
        return to_page("inspection", items, total, limit, offset)

    @post("/", guards=[STAFF], responses=problems(400, 401, 403, 409, 413, 422))
    async def create_inspection(
        self, data: JSONBody[InspectionCreate], request: AuthedRequest, registry: RegistryDep
    ) -> InspectionOut:
        """Plan an inspection (admin, or a supervisor of the lead authority). It starts
        as ``planned``; status, pins and team are set by their own endpoints."""
        return to_envelope(await registry.create_inspection(request.user, data.id, data.data))

    @get("/{inspection_id:str}", guards=[ANY_ROLE], responses=problems(400, 401, 404))
    async def get_inspection(
        self, inspection_id: FromPath[str], request: AuthedRequest, registry: RegistryDep
    ) -> InspectionOut:
        return to_envelope(await registry.get_inspection(request.user, inspection_id))

    @put(
        "/{inspection_id:str}",
        guards=[STAFF],
        responses=problems(400, 401, 403, 404, 409, 412, 413, 422),
    )
    async def replan_inspection(
        self,
        inspection_id: FromPath[str],
        data: JSONBody[Inspection],
        request: AuthedRequest,
        registry: RegistryDep,
        if_match: IfMatch = None,
    ) -> InspectionOut:
        """Change the plan of a still-planned inspection."""
        rec = await registry.update_inspection(
            request.user, inspection_id, data, parse_if_match(if_match)
        )
        return to_envelope(rec)

    @post(
        "/{inspection_id:str}/transitions",
        guards=[ANY_ROLE],
        status_code=200,
        responses=problems(400, 401, 403, 404, 409, 412, 413, 422),
    )
    async def transition(
        self,
        inspection_id: FromPath[str],
        data: JSONBody[TransitionIn],
        request: AuthedRequest,
        registry: RegistryDep,
        if_match: IfMatch = None,
    ) -> InspectionOut:
        """Move the inspection to its next status: planned -> in_progress ->
        fieldwork_done -> under_review -> closed. Any other move is 409
        ``invalid_transition``. Starting pins the current checklist version of each
        covered link's stage."""
        rec = await registry.transition(
            request.user, inspection_id, data.to, expect_rev=parse_if_match(if_match)
        )
        return to_envelope(rec)

    @get(
        "/{inspection_id:str}/assignments",
        guards=[ANY_ROLE],
        responses=problems(400, 401, 404),
    )
    async def list_assignments(
        self, inspection_id: FromPath[str], request: AuthedRequest, registry: RegistryDep
    ) -> list[AssignmentOut]:
        """The team."""
        return [
            to_envelope(r) for r in await registry.list_assignments(request.user, inspection_id)
        ]

    @post(
        "/{inspection_id:str}/assignments",
        guards=[STAFF],
        responses=problems(400, 401, 403, 404, 409, 413, 422),
    )
    async def assign(
        self,
        inspection_id: FromPath[str],
        data: JSONBody[AssignmentIn],
        request: AuthedRequest,
        registry: RegistryDep,
    ) -> AssignmentOut:
        """Put an inspector on the team (role ``lead`` or ``member``)."""
        body = msgspec.convert(
            {"inspection_id": inspection_id, **msgspec.to_builtins(data)}, Assignment
        )
        return to_envelope(await registry.assign(request.user, inspection_id, body))

    @delete(
        "/{inspection_id:str}/assignments/{assignment_id:str}",
        guards=[STAFF],
        responses=problems(400, 401, 403, 404),
    )
    async def unassign(
        self,
        inspection_id: FromPath[str],
        assignment_id: FromPath[str],
        request: AuthedRequest,
        registry: RegistryDep,
    ) -> None:
        """Take an inspector off the team."""
        await registry.unassign(request.user, inspection_id, assignment_id)
