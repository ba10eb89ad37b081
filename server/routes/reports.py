"""Read models for supervisors: the chain view of a product's findings, an inspection's
exports (CSV, JSON), its filed documents (HTML and PDF, zh or en) and a product's chain
dossier. The rules and the rendering live in ``sync/reports.py``, ``sync/exports.py``,
``sync/documents.py``; the PDF and its signature in ``server/documents.py``."""

from __future__ import annotations

import re
from typing import Annotated, Literal, TypeAlias

from litestar import Controller, Response, get
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, QueryParameter

from server.deps import AuthedRequest, DocumentsDep, RegistryDep
from server.documents import REPORT_CSP
from server.guards import ANY_ROLE, STAFF
from server.routes._openapi import problems
from server.schemas import InspectionExport
from sync.documents import KINDS, Kind
from sync.exports import export_json, findings_csv, responses_csv
from sync.report_labels import Lang
from sync.reports import ChainFindings, Reports

__all__ = ["ReportsController"]

What = Annotated[
    Literal["findings", "responses"],
    QueryParameter(name="what", description="findings (default) or responses"),
]

LangParam = Annotated[
    Lang,
    QueryParameter(name="lang", description="zh (default) or en: the document's language"),
]

# Exported files are built from data people typed: keep browsers from sniffing or
# running anything in them.
ReportsDep: TypeAlias = NamedDependency[Reports]

_SAFE = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store"}


_ATTACHMENT_HEADERS = [
    ResponseHeader(
        name="Content-Disposition",
        description="attachment, with a file name made from the inspection id",
        documentation_only=True,
        required=True,
    )
]


def provide_reports(registry: RegistryDep) -> Reports:
    return Reports(registry.store, registry.clock)


def _filename(inspection_id: str, suffix: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", inspection_id)[:80] or "inspection"
    return f"{stem}-{suffix}"


def _attachment(name: str) -> dict[str, str]:
    return {**_SAFE, "Content-Disposition": f'attachment; filename="{name}"'}


class ReportsController(Controller):
    path = "/api/v1"
    tags = ["reports"]
    # a Reports per request: it holds nothing but the app's store and clock (a cached
    # one on this class would outlive the app that made it)
    dependencies = {"reports": Provide(provide_reports, sync_to_thread=False)}

    @get(
        "/products/{record_id:str}/chain-findings",
        guards=[STAFF],
        responses=problems(400, 401, 403, 404),
    )
    async def chain_findings(
        self, record_id: FromPath[str], request: AuthedRequest, reports: ReportsDep
    ) -> ChainFindings:
        """Every finding of every inspection of every site of the product's chains,
        grouped by link in chain order, with counts per classification per link, per
        chain and in all (supervisors and admins; across authorities, read-only)."""
        return await reports.chain_findings(request.user, record_id)

    @get(
        "/inspections/{inspection_id:str}/export.csv",
        guards=[ANY_ROLE],
        media_type="text/csv; charset=utf-8",
        response_description="The findings or responses as CSV (UTF-8 with a BOM)",
        response_headers=_ATTACHMENT_HEADERS,
        responses=problems(400, 401, 404),
    )
    async def csv_export(
        self,
        inspection_id: FromPath[str],
        request: AuthedRequest,
        reports: ReportsDep,
        what: What = "findings",
    ) -> Response[bytes]:
        """The inspection's findings (``?what=findings``, default) or responses
        (``?what=responses``) as CSV: UTF-8 with a BOM, formulas defused."""
        dossier = await reports.dossier(request.user, inspection_id)
        text = findings_csv(dossier) if what == "findings" else responses_csv(dossier)
        return Response(
            content=text.encode("utf-8"),
            media_type="text/csv; charset=utf-8",
            headers=_attachment(_filename(inspection_id, f"{what}.csv")),
        )

    @get(
        "/inspections/{inspection_id:str}/export.json",
        guards=[ANY_ROLE],
        media_type="application/json",
        response_headers=_ATTACHMENT_HEADERS,
        responses={
            200: ResponseSpec(
                InspectionExport,
                description="The inspection export (`inspectsync.inspection-export/1`)",
                generate_examples=False,
            ),
            **problems(400, 401, 404),
        },
    )
    async def json_export(
        self, inspection_id: FromPath[str], request: AuthedRequest, reports: ReportsDep
    ) -> Response[bytes]:
        """One JSON document: the inspection header, its findings, responses and
        sign-offs."""
        dossier = await reports.dossier(request.user, inspection_id)
        return Response(
            content=export_json(dossier),
            media_type="application/json",
            headers=_attachment(_filename(inspection_id, "export.json")),
        )

    @get(
        [f"/inspections/{{inspection_id:str}}/{kind}.html" for kind in KINDS],
        guards=[ANY_ROLE],
        media_type="text/html; charset=utf-8",
        response_description="The document: one self-contained HTML page that prints on A4",
        responses=problems(400, 401, 404),
    )
    async def document_html(
        self,
        inspection_id: FromPath[str],
        request: AuthedRequest,
        documents: DocumentsDep,
        lang: LangParam = "zh",
    ) -> Response[bytes]:
        """One of the inspection's filed documents, in Chinese (``?lang=zh``, default) or
        English (``?lang=en``): ``report.html`` the on-site inspection report
        (现场检查报告), ``deficiencies.html`` the deficiency list (缺陷项目表),
        ``rectifications.html`` the rectification status table (整改情况表); each ends
        with its signatures and manifest page."""
        html = await documents.html(request.user, _kind(request.url.path), inspection_id, lang)
        return Response(
            content=html.encode("utf-8"),
            media_type="text/html; charset=utf-8",
            headers={**_SAFE, "Content-Security-Policy": REPORT_CSP},
        )

    @get(
        [f"/inspections/{{inspection_id:str}}/{kind}.pdf" for kind in KINDS],
        guards=[ANY_ROLE],
        media_type="application/pdf",
        response_description="The document as PDF/A-3b (A4) with its signed manifest attached",
        response_headers=_ATTACHMENT_HEADERS,
        responses=problems(400, 401, 404),
    )
    async def document_pdf(
        self,
        inspection_id: FromPath[str],
        request: AuthedRequest,
        documents: DocumentsDep,
        lang: LangParam = "zh",
    ) -> Response[bytes]:
        """The same document as PDF/A-3b, made by the server, with ``manifest.json``
        attached: the manifest signed with the server's Ed25519 key (check it with
        ``inspectsync report verify`` and ``GET /api/v1/reports/public-key``)."""
        kind = _kind(request.url.path)
        pdf = await documents.pdf(request.user, kind, inspection_id, lang)
        return Response(
            content=pdf,
            media_type="application/pdf",
            headers=_attachment(_filename(inspection_id, f"{kind}-{lang}.pdf")),
        )

    @get(
        "/products/{record_id:str}/dossier.pdf",
        guards=[STAFF],
        media_type="application/pdf",
        response_description="Every inspection of the product's chain in one PDF/A-3b",
        response_headers=_ATTACHMENT_HEADERS,
        responses=problems(400, 401, 403, 404),
    )
    async def chain_dossier_pdf(
        self,
        record_id: FromPath[str],
        request: AuthedRequest,
        documents: DocumentsDep,
        lang: LangParam = "zh",
    ) -> Response[bytes]:
        """A product's chain dossier: a contents page, then every inspection of every
        site of its chains (in chain order) with its report, deficiency list and
        rectification table, and the signed manifest (supervisors and admins, across
        authorities, as the chain view)."""
        pdf = await documents.chain_pdf(request.user, record_id, lang)
        return Response(
            content=pdf,
            media_type="application/pdf",
            headers=_attachment(_filename(record_id, f"dossier-{lang}.pdf")),
        )

    @get(
        "/reports/public-key",
        guards=[ANY_ROLE],
        media_type="application/x-pem-file",
        response_description="The server's Ed25519 public key (PEM)",
        responses=problems(401),
    )
    async def public_key(self, documents: DocumentsDep) -> Response[str]:
        """The public key that checks the signed manifest of every PDF the server makes
        (``inspectsync report verify FILE.pdf --key this.pem``)."""
        return Response(
            content=documents.key.public_pem(),
            media_type="application/x-pem-file",
            headers={"Cache-Control": "no-cache"},
        )


def _kind(path: str) -> Kind:
    """The document a path names (``.../deficiencies.pdf`` -> ``deficiencies``)."""
    stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    for kind in KINDS:
        if kind == stem:
            return kind
    raise ValueError(path)  # the routes list only KINDS
