"""The filed documents as the API and the console serve them: the data gathered under
the caller's scope, the evidence thumbnails made into ``data:`` URIs, the HTML
(``sync/documents.py``), and the PDF with its signed manifest attached
(``server/pdf.py``, ``server/signing.py``).

One instance per app (``Services.documents``); it holds nothing per request.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

import msgspec

from server.pdf import html_to_signed_pdf
from server.signing import ATTACHMENT, SigningKey, pages_digest
from sync.documents import DocumentInput, EvidenceView, Kind, render, render_chain
from sync.errors import Forbidden
from sync.manifest import build, evidence_named
from sync.models import Principal, Role
from sync.report_labels import Lang
from sync.reports import Reports

if TYPE_CHECKING:
    from server.app import Services

__all__ = ["REPORT_CSP", "Documents"]

REPORT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none';"
    " form-action 'none'"
)
"""The documents are people's text in self-contained pages: nothing may run or load
(inline CSS, thumbnails as ``data:`` URIs)."""

_THUMBNAIL_MAX_BYTES = 200_000


class Documents:
    """Makes the documents of an inspection and the chain dossier of a product."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.reports = Reports(services.store, services.clock)
        self.key = SigningKey(services.settings.report_signing_key_path)

    async def _thumbnail(self, sha256: str) -> str | None:
        blobs = self.services.uploads.thumbnails
        size = await blobs.size(sha256)
        if size is None or size > _THUMBNAIL_MAX_BYTES:
            return None
        data = b"".join([chunk async for chunk in blobs.read_range(sha256)])
        return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")

    async def _evidence(self, hashes: list[str]) -> dict[str, EvidenceView]:
        """Each file named: held or not (missing, lost), with its thumbnail (the JPEG
        Pillow made from a picture when it was uploaded) as a ``data:`` URI."""
        out: dict[str, EvidenceView] = {}
        for h in hashes:
            ev = await self.services.store.get_evidence(h)
            if ev is None:
                out[h] = EvidenceView(sha256=h, state="missing")
            elif ev.lost_at is not None:
                out[h] = EvidenceView(sha256=h, state="lost", media_type=ev.media_type)
            else:
                thumb = await self._thumbnail(h) if ev.thumbnail else None
                out[h] = EvidenceView(
                    sha256=h, state="stored", media_type=ev.media_type, thumbnail=thumb
                )
        return out

    async def gather(self, principal: Principal, inspection_id: str) -> DocumentInput:
        """Everything an inspection's documents show, as ``principal`` may see it (an
        inspection out of scope is NotFound)."""
        s = self.services
        dossier = await self.reports.dossier(principal, inspection_id)
        data = DocumentInput(
            dossier=dossier,
            signatures=await s.review.signatures(principal, inspection_id),
            conclusion=await s.conclusions.view(principal, inspection_id),
            rectifications=await s.rectifications.of_inspection(principal, inspection_id),
            evidence={},
        )
        data.evidence = await self._evidence(evidence_named(data))
        return data

    def _manifest(
        self,
        document: str,
        lang: Lang,
        inputs: list[DocumentInput],
        principal: Principal,
        product_id: str | None = None,
    ) -> dict[str, Any]:
        return build(
            document,
            lang,
            inputs,
            generated_at=self.services.clock.now(),
            generated_by=principal.username,
            key_sha256=self.key.fingerprint(),
            product_id=product_id,
        )

    def _sealer(self, manifest: dict[str, Any]) -> Any:
        def seal(unsigned: bytes) -> bytes:
            return self.key.seal({**manifest, "pages_sha256": pages_digest(unsigned)})

        return seal

    async def html(self, principal: Principal, kind: Kind, inspection_id: str, lang: Lang) -> str:
        """The document as HTML, with the signature and manifest page (unsigned: only
        the PDF carries the signed manifest)."""
        data = await self.gather(principal, inspection_id)
        return render(kind, data, lang, self._manifest(kind, lang, [data], principal))

    async def pdf(self, principal: Principal, kind: Kind, inspection_id: str, lang: Lang) -> bytes:
        """The document as PDF/A with its signed manifest attached."""
        data = await self.gather(principal, inspection_id)
        manifest = self._manifest(kind, lang, [data], principal)
        return await html_to_signed_pdf(
            render(kind, data, lang, manifest), self._sealer(manifest), ATTACHMENT
        )

    async def chain_pdf(self, principal: Principal, product_id: str, lang: Lang) -> bytes:
        """Every inspection of every site of the product's chains, in chain order, in
        one PDF with a contents page. Supervisors and admins, across authorities (as
        the chain view): read-only."""
        if principal.role not in (Role.SUPERVISOR, Role.ADMIN):
            raise Forbidden("the chain dossier is for supervisors and admins")
        view = await self.reports.chain_findings(principal, product_id)
        ids = list(
            dict.fromkeys(
                ref.id for chain in view.chains for link in chain.links for ref in link.inspections
            )
        )
        # the chain view's rule: a supervisor reads every inspection of the chain
        reader = msgspec.structs.replace(principal, role=Role.ADMIN)
        inputs = []
        for iid in ids:
            data = await self.gather(reader, iid)
            data.dossier.generated_by = principal.username
            inputs.append(data)
        product = {"id": view.product_id, "name": view.product_name}
        manifest = self._manifest("dossier", lang, inputs, principal, product_id)
        html = render_chain(product, inputs, lang, manifest)
        return await html_to_signed_pdf(html, self._sealer(manifest), ATTACHMENT)
