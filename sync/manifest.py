"""The manifest of a filed document: what it was made from, so that a third party can
check it later.

A manifest names the document (kind, language), the inspections it covers, when and for
whom it was generated, the data cursor it was read at (the change feed's position: the
same records at that cursor make the same document), every signature it shows (the
account, meaning, device and server times, content hash, whether it still matched) and
the SHA-256 of every evidence file it names, with whether the server held it. The server
adds the digest of the PDF's pages and signs the canonical encoding
(:func:`canonical`) with its Ed25519 key (``server/signing.py``).

Pure: built from the same :class:`~sync.documents.DocumentInput` as the document.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from sync.documents import DocumentInput

__all__ = ["FORMAT", "build", "canonical", "evidence_named"]

FORMAT = "inspectsync.document-manifest/1"

_SIGNATURE_FIELDS = (
    "kind",
    "id",
    "scope",
    "finding_id",
    "decision",
    "conclusion",
    "signed_by",
    "signer_name",
    "meaning",
    "signed_at",
    "received_at",
    "content_hash",
    "matches",
    "reauth_method",
    "reauthenticated_at",
)


def evidence_named(data: DocumentInput) -> list[str]:
    """Every evidence file the documents of an inspection name: the findings' and the
    rectification responses' (sorted, once each)."""
    named: set[str] = set()
    for rec in data.dossier.findings:
        named.update(h for h in rec.data.get("evidence_hashes") or [] if isinstance(h, str))
    for row in data.rectifications:
        response = row.get("response") or {}
        named.update(h for h in response.get("evidence_hashes") or [] if isinstance(h, str))
    return sorted(named)


def build(
    document: str,
    lang: str,
    inputs: Sequence[DocumentInput],
    *,
    generated_at: datetime,
    generated_by: str,
    key_sha256: str,
    product_id: str | None = None,
) -> dict[str, Any]:
    """The manifest of one document made from ``inputs`` (one inspection, or every
    inspection of a chain dossier). The data cursor is the highest one read."""
    signatures = [
        {
            "inspection_id": data.dossier.inspection_id,
            **{k: sig.get(k) for k in _SIGNATURE_FIELDS if sig.get(k) is not None},
        }
        for data in inputs
        for sig in data.signatures
    ]
    evidence: dict[str, str] = {}
    for data in inputs:
        for h in evidence_named(data):
            view = data.evidence.get(h)
            evidence[h] = view.state if view is not None else "missing"
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "document": document,
        "lang": lang,
        "inspection_ids": [data.dossier.inspection_id for data in inputs],
        "generated_at": generated_at.isoformat(),
        "generated_by": generated_by,
        "cursor": max((data.dossier.cursor for data in inputs), default=0),
        "signatures": signatures,
        "evidence": [{"sha256": h, "state": s} for h, s in sorted(evidence.items())],
        "key_sha256": key_sha256,
    }
    if product_id is not None:
        manifest["product_id"] = product_id
    return manifest


def canonical(manifest: dict[str, Any]) -> bytes:
    """The bytes that are signed: JSON with sorted keys, no spaces."""
    return msgspec.json.encode(manifest, order="sorted")
