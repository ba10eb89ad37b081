"""HTML to PDF on the server, with WeasyPrint (HTML + CSS, Pango for text: Chinese in
the Noto CJK fonts the set-up installs). The report's own print CSS lays the pages out.

Nothing is fetched while rendering: the documents are self-contained (inline CSS, no
image, font or link to load), and the URL fetcher refuses every URL, so data that
somehow named one could not make the server read a file or call a host.
"""

from __future__ import annotations

import asyncio
from typing import Any, NoReturn

__all__ = ["html_to_pdf"]


def _refuse(url: str, *_: Any, **__: Any) -> NoReturn:
    raise ValueError(f"the report loads nothing ({url[:80]})")


def _render(html: str) -> bytes:
    from weasyprint import HTML  # imported when first used: it loads Pango

    pdf: bytes = HTML(string=html, url_fetcher=_refuse).write_pdf()
    return pdf


async def html_to_pdf(html: str) -> bytes:
    """The document as PDF bytes, rendered on a worker thread (it takes a fraction of a
    second to seconds: the event loop keeps serving meanwhile)."""
    return await asyncio.to_thread(_render, html)
