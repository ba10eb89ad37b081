"""Rectification follow-up (整改 / CAPA) of accepted findings: thin, over
:class:`sync.rectification.Rectifications`."""

from __future__ import annotations

from typing import Any

from litestar import Controller, get, post, put
from litestar.params import FromPath, JSONBody

from server.deps import AuthedRequest, RectificationsDep
from server.guards import ANY_ROLE
from server.routes._openapi import problems
from sync.rectification import Assessment, Response


class RectificationController(Controller):
    path = "/api/v1"
    tags = ["rectification"]

    @get(
        "/inspections/{inspection_id:str}/rectifications",
        guards=[ANY_ROLE],
        responses=problems(400, 401, 404),
    )
    async def of_inspection(
        self,
        request: AuthedRequest,
        inspection_id: FromPath[str],
        rectifications: RectificationsDep,
    ) -> list[dict[str, Any]]:
        """The rectification of every accepted finding, by deadline: classification
        (both labels), accepted at, ``deadline``, ``status`` (awaiting_response,
        responded, more_needed, accepted), ``overdue`` and ``days_overdue``, the
        company's ``response`` and the ``assessments``, ``rev``."""
        return await rectifications.of_inspection(request.user, inspection_id)

    @get("/rectifications/overdue", guards=[ANY_ROLE], responses=problems(401))
    async def overdue(
        self, request: AuthedRequest, rectifications: RectificationsDep
    ) -> list[dict[str, Any]]:
        """Every overdue rectification of the inspections you may see, most overdue
        first, with the inspection's title and the site's name."""
        return await rectifications.overdue(request.user)

    @put(
        "/rectifications/{finding_id:str}/response",
        guards=[ANY_ROLE],
        responses=problems(400, 401, 403, 404, 412, 413, 422),
    )
    async def respond(
        self,
        request: AuthedRequest,
        finding_id: FromPath[str],
        data: JSONBody[Response],
        rectifications: RectificationsDep,
    ) -> dict[str, Any]:
        """Enter the company's response for it (root cause, actions, completion date,
        who at the company gave it, evidence already uploaded); replaces an earlier one,
        which is kept. Lead authority's supervisors and the inspection's inspectors."""
        return await rectifications.respond(request.user, finding_id, data)

    @post(
        "/rectifications/{finding_id:str}/assessments",
        guards=[ANY_ROLE],
        status_code=200,
        responses=problems(400, 401, 403, 404, 412, 413, 422),
    )
    async def assess(
        self,
        request: AuthedRequest,
        finding_id: FromPath[str],
        data: JSONBody[Assessment],
        rectifications: RectificationsDep,
    ) -> dict[str, Any]:
        """Assess the response: ``accepted`` (done) or ``more_needed`` (with what is
        missing), with a comment. Lead authority's supervisors and the inspection's
        inspectors."""
        return await rectifications.assess(request.user, finding_id, data)
