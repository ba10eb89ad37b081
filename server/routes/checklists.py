"""Checklist templates and versions: authoring (admin) and reading (everyone, scoped).

Drafts are visible to admins only. Inspectors read the published versions their
inspections pin; supervisors read every published version.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, get, post, put
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Link, OpenAPIMediaType, OpenAPIType, RequestBody, Schema
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from checklists.diff import TemplateDiff
from checklists.i18n import localize, pick_lang
from checklists.loader import ChecklistError, decode_template, dump_template
from checklists.schema import StageType, Template
from server.deps import AuthedRequest, AuthoringDep
from server.guards import ADMIN, ANY_ROLE
from server.routes._openapi import link, operation, problems
from server.routes.reference import IfMatch, parse_if_match
from server.schemas import ContentIn, DraftIn, PublishIn, TemplateIn, envelope, to_envelope
from sync.errors import InvalidInput

TemplateOut: Any = envelope("checklist_template")
VersionOut: Any = envelope("checklist_version")

Lang = Annotated[
    str | None, QueryParameter(name="lang", description="en or zh; overrides Accept-Language")
]


class Problem(msgspec.Struct):
    field: str | None
    message: str


class ValidationOut(msgspec.Struct):
    valid: bool
    problems: list[Problem]


class StageOut(msgspec.Struct):
    stage_type: StageType
    template_key: str | None
    current_version: str | None


_TEMPLATE_FILE = RequestBody(
    required=True,
    description="A checklist template file, as `inspectsync checklists export` writes it",
    content={
        "application/yaml": OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING)),
        "application/json": OpenAPIMediaType(schema=Schema(type=OpenAPIType.OBJECT)),
    },
)


_TEMPLATE_LINKS = {
    "GetTemplate": link("ApiV1ChecklistsTemplatesKeyGetTemplate", key="$response.body#/0/id"),
    "ListVersions": link(
        "ApiV1ChecklistsTemplatesKeyVersionsListVersions", key="$response.body#/0/id"
    ),
    "CreateDraft": link(
        "ApiV1ChecklistsTemplatesKeyVersionsCreateDraft", key="$response.body#/0/id"
    ),
}


def _version_links(vid: str) -> dict[str, Link]:
    """Every operation on one checklist version, its ``vid`` taken from ``vid``."""
    names = {
        "GetVersion": "ApiV1ChecklistsVersionsVidGetVersion",
        "GetLocalized": "ApiV1ChecklistsVersionsVidLocalizedGetLocalized",
        "Export": "ApiV1ChecklistsVersionsVidExportExport",
        "UpdateDraft": "ApiV1ChecklistsVersionsVidUpdateDraft",
        "Validate": "ApiV1ChecklistsVersionsVidValidateValidate",
        "Publish": "ApiV1ChecklistsVersionsVidPublishPublish",
        "Retire": "ApiV1ChecklistsVersionsVidRetireRetire",
    }
    return {name: link(operation_id, vid=vid) for name, operation_id in names.items()}


class ChecklistController(Controller):
    path = "/api/v1/checklists"
    tags = ["checklists"]

    @get(
        "/templates",
        guards=[ANY_ROLE],
        responses=problems(401),
        operation_class=operation(links={200: _TEMPLATE_LINKS}),
    )
    async def list_templates(
        self, request: AuthedRequest, authoring: AuthoringDep
    ) -> list[TemplateOut]:
        """Every template (one per stage type)."""
        return [to_envelope(t) for t in await authoring.list_templates(request.user)]

    @post("/templates", guards=[ADMIN], responses=problems(400, 401, 403, 409, 413, 422))
    async def create_template(
        self, data: JSONBody[TemplateIn], request: AuthedRequest, authoring: AuthoringDep
    ) -> TemplateOut:
        """Create a template for a stage type that has none (admin)."""
        rec = await authoring.create_template(request.user, data.key, data.stage_type, data.title)
        return to_envelope(rec)

    @get("/templates/{key:str}", guards=[ANY_ROLE], responses=problems(400, 401, 404))
    async def get_template(
        self, key: FromPath[str], request: AuthedRequest, authoring: AuthoringDep
    ) -> TemplateOut:
        return to_envelope(await authoring.get_template(request.user, key))

    @get(
        "/templates/{key:str}/versions",
        guards=[ANY_ROLE],
        responses=problems(400, 401, 404),
        operation_class=operation(links={200: _version_links("$response.body#/0/id")}),
    )
    async def list_versions(
        self, key: FromPath[str], request: AuthedRequest, authoring: AuthoringDep
    ) -> list[VersionOut]:
        """The versions you may read, oldest first (drafts: admins only)."""
        return [to_envelope(v) for v in await authoring.list_versions(request.user, key)]

    @post(
        "/templates/{key:str}/versions",
        guards=[ADMIN],
        responses=problems(400, 401, 403, 404, 409, 413, 422),
    )
    async def create_draft(
        self,
        key: FromPath[str],
        data: JSONBody[DraftIn],
        request: AuthedRequest,
        authoring: AuthoringDep,
    ) -> VersionOut:
        """Open a new draft version: given content, a copy of the latest, or empty."""
        rec = await authoring.create_draft(
            request.user, key, content=data.content, copy_latest=data.copy_latest
        )
        return to_envelope(rec)

    @get(
        "/stages",
        guards=[ANY_ROLE],
        responses=problems(401),
        operation_class=operation(links={200: _version_links("$response.body#/0/current_version")}),
    )
    async def stages(self, authoring: AuthoringDep) -> list[StageOut]:
        """Each stage type with its template and the version a new inspection pins."""
        out = []
        for stage in StageType:
            current = await authoring.current_version(stage)
            out.append(
                StageOut(
                    stage_type=stage,
                    template_key=current.data["template_key"] if current else None,
                    current_version=current.id if current else None,
                )
            )
        return out

    @get("/versions/{vid:str}", guards=[ANY_ROLE], responses=problems(400, 401, 404))
    async def get_version(
        self, vid: FromPath[str], request: AuthedRequest, authoring: AuthoringDep
    ) -> VersionOut:
        """A version with its bilingual content as authored."""
        return to_envelope(await authoring.get_version(request.user, vid))

    @get("/versions/{vid:str}/localized", guards=[ANY_ROLE], responses=problems(400, 401, 404))
    async def get_localized(
        self,
        vid: FromPath[str],
        request: AuthedRequest,
        authoring: AuthoringDep,
        lang: Lang = None,
    ) -> dict[str, Any]:
        """The version's content in one language (``?lang=`` or ``Accept-Language``).
        Each text is ``{"text", "lang"}``; ``"fallback": true`` marks text served in
        the other language because the asked one is missing."""
        rec = await authoring.get_version(request.user, vid)
        chosen = pick_lang(lang, request.headers.get("accept-language"))
        return {
            "id": rec.id,
            "status": rec.data["status"],
            "content": localize(authoring.content(rec), chosen),
        }

    @put(
        "/versions/{vid:str}",
        guards=[ADMIN],
        responses=problems(400, 401, 403, 404, 409, 412, 413, 422),
    )
    async def update_draft(
        self,
        vid: FromPath[str],
        data: JSONBody[ContentIn],
        request: AuthedRequest,
        authoring: AuthoringDep,
        if_match: IfMatch = None,
    ) -> VersionOut:
        """Replace a draft's content: add, change, remove or reorder sections and
        items. A published or retired version answers 409 ``version_immutable``."""
        rec = await authoring.update_draft(
            request.user, vid, data.content, expect_rev=parse_if_match(if_match)
        )
        return to_envelope(rec)

    @post(
        "/versions/{vid:str}/validate",
        guards=[ADMIN],
        status_code=200,
        responses=problems(400, 401, 403, 404),
    )
    async def validate(
        self, vid: FromPath[str], request: AuthedRequest, authoring: AuthoringDep
    ) -> ValidationOut:
        """Would this version publish? Lists what stops it (first problem first)."""
        problems = await authoring.validate_version(request.user, vid)
        return ValidationOut(
            valid=not problems, problems=[Problem(p.field, p.message) for p in problems]
        )

    @post(
        "/versions/{vid:str}/publish",
        guards=[ADMIN],
        status_code=200,
        responses=problems(400, 401, 403, 404, 409, 412, 413, 422),
    )
    async def publish(
        self,
        vid: FromPath[str],
        data: JSONBody[PublishIn],
        request: AuthedRequest,
        authoring: AuthoringDep,
        if_match: IfMatch = None,
    ) -> VersionOut:
        """Publish a draft: from now on it is immutable. Needs a changelog; the
        effective date defaults to today. Inspections already started keep their pin."""
        rec = await authoring.publish(
            request.user,
            vid,
            changelog=data.changelog,
            effective_date=data.effective_date,
            expect_rev=parse_if_match(if_match),
        )
        return to_envelope(rec)

    @post(
        "/versions/{vid:str}/retire",
        guards=[ADMIN],
        status_code=200,
        responses=problems(400, 401, 403, 404, 409),
    )
    async def retire(
        self, vid: FromPath[str], request: AuthedRequest, authoring: AuthoringDep
    ) -> VersionOut:
        """Retire a published version: no new inspection pins it."""
        return to_envelope(await authoring.retire(request.user, vid))

    @get(
        "/versions/{vid:str}/export",
        guards=[ANY_ROLE],
        media_type="application/yaml",
        responses={
            200: ResponseSpec(
                Template,
                media_type="application/yaml",
                description="The version as a template file: YAML of this schema",
                generate_examples=False,
            ),
            **problems(400, 401, 404),
        },
    )
    async def export(
        self, vid: FromPath[str], request: AuthedRequest, authoring: AuthoringDep
    ) -> Response[str]:
        """The version as a template file (YAML), as ``inspectsync checklists export``."""
        rec = await authoring.get_version(request.user, vid)
        return Response(
            dump_template(authoring.content(rec)),
            media_type="application/yaml",
            headers={"Content-Disposition": f'attachment; filename="{rec.id}.yaml"'},
        )

    @get("/diff", guards=[ANY_ROLE], responses=problems(400, 401, 404))
    async def diff(
        self,
        request: AuthedRequest,
        authoring: AuthoringDep,
        from_: Annotated[str, QueryParameter(name="from")],
        to: FromQuery[str],
    ) -> TemplateDiff:
        """Items added, removed and changed (field by field, by item key) between two
        versions you may read."""
        return await authoring.diff(request.user, from_, to)

    @post(
        "/import",
        guards=[ADMIN],
        responses=problems(400, 401, 403, 409, 413, 422),
        operation_class=operation(body=_TEMPLATE_FILE),
    )
    async def import_file(
        self,
        request: AuthedRequest,
        authoring: AuthoringDep,
        publish: FromQuery[bool] = False,
        changelog: FromQuery[str] = "",
    ) -> VersionOut:
        """Import a template file sent as the raw body (``application/yaml`` or JSON): a
        new draft, or a published version with ``?publish=true``. Errors name the path
        at fault."""
        raw = await request.body()
        if not raw:
            raise InvalidInput("send the template file as the request body", field="body")
        try:
            template = decode_template(raw, "body")
        except ChecklistError as exc:
            raise InvalidInput(exc.message, field=exc.path) from None
        rec = await authoring.import_template(
            request.user, template, publish=publish, changelog=changelog
        )
        return to_envelope(rec)
