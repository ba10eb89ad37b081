"""HTML to PDF on the server, with WeasyPrint (HTML + CSS, Pango for text: Chinese in
the Noto CJK fonts the set-up installs). The documents' own print CSS lays the pages out.

The PDF is PDF/A-3b (:data:`PDF_VARIANT`: archival, fonts embedded, XMP metadata; level
3 allows the signed manifest as an attachment). Nothing is fetched while rendering: the
documents are self-contained (inline CSS, thumbnails as ``data:`` URIs), and the URL
fetcher accepts ``data:`` URIs only, so data that somehow named a URL could not make the
server read a file or call a host.

A signed document is laid out once and written twice: first to take the digest of its
pages (``server/signing.py``), then with the manifest that holds that digest attached
(writing the same layout again gives the same pages).
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable
from typing import Any

__all__ = ["PDF_VARIANT", "html_to_pdf", "html_to_signed_pdf"]

PDF_VARIANT = "pdf/a-3b"


def _quiet_profile_leak() -> None:
    """WeasyPrint (70) opens its sRGB profile for every PDF/A and leaves the file to the
    garbage collector, which warns (ResourceWarning). Harmless: hide that one warning,
    at the moment of rendering (a filter set at import would sit behind any set later)."""
    warnings.filterwarnings(
        "ignore", message=r"unclosed file .*sRGB2014\.icc", category=ResourceWarning
    )


def _document(html: str) -> Any:
    from weasyprint import HTML  # imported when first used: it loads Pango
    from weasyprint.urls import URLFetcher

    fetcher = URLFetcher(allowed_protocols=("data",))
    return HTML(string=html, url_fetcher=fetcher).render()


def _render(html: str) -> bytes:
    _quiet_profile_leak()
    pdf: bytes = _document(html).write_pdf(pdf_variant=PDF_VARIANT)
    return pdf


def _render_signed(html: str, seal: Callable[[bytes], bytes], name: str) -> bytes:
    import io

    from weasyprint import Attachment

    _quiet_profile_leak()
    document = _document(html)
    unsigned: bytes = document.write_pdf(pdf_variant=PDF_VARIANT)
    attachment = Attachment(
        file_obj=io.BytesIO(seal(unsigned)),
        name=name,
        description="signed manifest",
        relationship="Data",
    )
    pdf: bytes = document.write_pdf(pdf_variant=PDF_VARIANT, attachments=[attachment])
    return pdf


async def html_to_pdf(html: str) -> bytes:
    """The document as PDF bytes, rendered on a worker thread (it takes a fraction of a
    second to seconds: the event loop keeps serving meanwhile)."""
    return await asyncio.to_thread(_render, html)


async def html_to_signed_pdf(html: str, seal: Callable[[bytes], bytes], name: str) -> bytes:
    """The document as PDF with an attachment ``name`` made by ``seal`` from the PDF
    without it (so it can hold the digest of the pages). On a worker thread."""
    return await asyncio.to_thread(_render_signed, html, seal, name)
