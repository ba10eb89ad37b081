"""Read models for supervisors: the chain view of a product's findings, an inspection's
exports (CSV, JSON) and its printable report (HTML). The rules and the rendering live
in ``sync/reports.py``, ``sync/exports.py`` and ``sync/inspection_report.py``."""

from __future__ import annotations

import re
from typing import Annotated, Literal, TypeAlias

from litestar import Controller, Response, get
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, QueryParameter

from server.deps import AuthedRequest, ConclusionsDep, RegistryDep, ReviewDep
from server.guards import ANY_ROLE, STAFF
from server.pdf import html_to_pdf
from server.routes._openapi import problems
from server.schemas import InspectionExport
from sync.conclusion import Conclusions
from sync.exports import export_json, findings_csv, responses_csv
from sync.inspection_report import render_report
from sync.reports import ChainFindings, Reports
from sync.review import Review

__all__ = ["ReportsController"]

What = Annotated[
    Literal["findings", "responses"],
    QueryParameter(name="what", description="findings (default) or responses"),
]

# Exported files are built from data people typed: keep browsers from sniffing or
# running anything in them.
ReportsDep: TypeAlias = NamedDependency[Reports]

_SAFE = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store"}
_REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


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
        "/inspections/{inspection_id:str}/report.html",
        guards=[ANY_ROLE],
        media_type="text/html; charset=utf-8",
        response_description="The report: one self-contained HTML document",
        responses=problems(400, 401, 404),
    )
    async def report_html(
        self,
        inspection_id: FromPath[str],
        request: AuthedRequest,
        reports: ReportsDep,
        review: ReviewDep,
        conclusions: ConclusionsDep,
    ) -> Response[bytes]:
        """The inspection report: one self-contained HTML document that prints on A4,
        with every signature checked against the content it signed, and the
        inspection conclusion."""
        html = await _report(request, inspection_id, reports, review, conclusions)
        return Response(
            content=html.encode("utf-8"),
            media_type="text/html; charset=utf-8",
            headers={**_SAFE, "Content-Security-Policy": _REPORT_CSP},
        )

    @get(
        "/inspections/{inspection_id:str}/report.pdf",
        guards=[ANY_ROLE],
        media_type="application/pdf",
        response_description="The report as PDF (A4), rendered by the server",
        response_headers=_ATTACHMENT_HEADERS,
        responses=problems(400, 401, 404),
    )
    async def report_pdf(
        self,
        inspection_id: FromPath[str],
        request: AuthedRequest,
        reports: ReportsDep,
        review: ReviewDep,
        conclusions: ConclusionsDep,
    ) -> Response[bytes]:
        """The same report as PDF (A4, Chinese in Noto CJK), made by the server."""
        html = await _report(request, inspection_id, reports, review, conclusions)
        return Response(
            content=await html_to_pdf(html),
            media_type="application/pdf",
            headers=_attachment(_filename(inspection_id, "report.pdf")),
        )


async def _report(
    request: AuthedRequest,
    inspection_id: str,
    reports: Reports,
    review: Review,
    conclusions: Conclusions,
) -> str:
    dossier = await reports.dossier(request.user, inspection_id)
    signatures = await review.signatures(request.user, inspection_id)
    conclusion = await conclusions.view(request.user, inspection_id)
    return render_report(dossier, signatures, conclusion)
