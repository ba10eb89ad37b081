"""The server's signature on the documents it files: Ed25519 over the manifest.

The key lives in the data directory (``Settings.signing_key_path``), made on first use
(PKCS#8 PEM, readable by the server's user only). Its public half is served at
``GET /api/v1/reports/public-key`` so that anyone holding a PDF can check it without the
server: the PDF carries ``manifest.json`` as an attachment, holding the manifest, the
digest of the PDF's pages (:func:`pages_digest`: every page's content stream and the
images it draws), the signature and the public key. :func:`verify_pdf` checks all of
it: the signature over the manifest, the key against a trusted one when given, and the
pages against the digest, so a changed page, a changed manifest or a foreign key shows.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import threading
from pathlib import Path
from typing import Any

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sync.manifest import canonical

__all__ = [
    "ATTACHMENT",
    "SEAL_FORMAT",
    "SigningKey",
    "Verification",
    "load_public_key",
    "pages_digest",
    "verify_pdf",
]

ATTACHMENT = "manifest.json"
SEAL_FORMAT = "inspectsync.signed-manifest/1"


class Verification(msgspec.Struct, kw_only=True):
    """What :func:`verify_pdf` found; ``ok`` only if every check passed."""

    ok: bool
    problems: list[str]
    manifest: dict[str, Any] | None = None
    key_sha256: str | None = None


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(public: Ed25519PublicKey) -> str:
    """SHA-256 (hex) of the raw public key: how the manifest names its key."""
    return hashlib.sha256(_raw(public)).hexdigest()


class SigningKey:
    """The server's Ed25519 key, loaded from ``path`` or made there on first use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._key: Ed25519PrivateKey | None = None
        self._lock = threading.Lock()

    def _load(self) -> Ed25519PrivateKey:
        with self._lock:
            if self._key is None:
                if not self.path.exists():
                    self._create()
                key = serialization.load_pem_private_key(self.path.read_bytes(), password=None)
                if not isinstance(key, Ed25519PrivateKey):
                    raise ValueError(f"{self.path} does not hold an Ed25519 private key")
                self._key = key
            return self._key

    def _create(self) -> None:
        """Write a new key whole, then link it into place: another process making one at
        the same moment either wins (its key is kept) or loses; none reads half a file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        scratch = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}")
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(scratch, self.path)
        finally:
            scratch.unlink(missing_ok=True)

    @property
    def public(self) -> Ed25519PublicKey:
        return self._load().public_key()

    def public_pem(self) -> str:
        return self.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")

    def fingerprint(self) -> str:
        return fingerprint(self.public)

    def seal(self, manifest: dict[str, Any]) -> bytes:
        """The attachment: the manifest, its Ed25519 signature and the public key."""
        signature = self._load().sign(canonical(manifest))
        return msgspec.json.encode(
            {
                "format": SEAL_FORMAT,
                "algorithm": "Ed25519",
                "manifest": manifest,
                "signature": base64.b64encode(signature).decode("ascii"),
                "public_key": base64.b64encode(_raw(self.public)).decode("ascii"),
            },
            order="sorted",
        )


def load_public_key(text: bytes) -> Ed25519PublicKey:
    """A public key from PEM (as the server serves it) or raw base64."""
    if b"BEGIN" in text:
        key = serialization.load_pem_public_key(text)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return key
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text.strip()))


def pages_digest(pdf: bytes) -> str:
    """SHA-256 over what the pages show: each page's content stream and the data of
    every image it draws, in page order. Attaching a file does not change it."""
    from pypdf import PdfReader

    digest = hashlib.sha256()
    for page in PdfReader(io.BytesIO(pdf)).pages:
        contents = page.get_contents()
        digest.update(contents.get_data() if contents is not None else b"")
        resources = page.get("/Resources") or {}
        xobjects = resources.get("/XObject") or {}
        for name in sorted(xobjects):
            obj = xobjects[name].get_object()
            digest.update(name.encode())
            digest.update(obj.get_data())
        digest.update(b"\x00page\x00")
    return digest.hexdigest()


def verify_pdf(pdf: bytes, trusted: Ed25519PublicKey | None = None) -> Verification:
    """Check a PDF the server made: its ``manifest.json`` is there and signed by the key
    it names (and that key is ``trusted``, when given), and its pages are the ones the
    manifest's digest covers."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(pdf))
        found = reader.attachments.get(ATTACHMENT) or []
    except (PdfReadError, ValueError, KeyError) as exc:
        return Verification(ok=False, problems=[f"not a readable PDF: {exc}"])
    if len(found) != 1:
        return Verification(ok=False, problems=[f"no single {ATTACHMENT} attached"])
    try:
        seal = msgspec.json.decode(found[0])
        manifest = seal["manifest"]
        signature = base64.b64decode(seal["signature"])
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(seal["public_key"]))
    except (msgspec.DecodeError, KeyError, TypeError, ValueError) as exc:
        return Verification(ok=False, problems=[f"{ATTACHMENT} is malformed: {exc}"])
    problems: list[str] = []
    key_sha256 = fingerprint(public)
    if trusted is not None and _raw(trusted) != _raw(public):
        problems.append("signed with another key than the trusted one")
    if manifest.get("key_sha256") != key_sha256:
        problems.append("the manifest names another key than the one it carries")
    try:
        public.verify(signature, canonical(manifest))
    except InvalidSignature:
        problems.append("the signature does not match the manifest (changed after signing)")
    if manifest.get("pages_sha256") != pages_digest(pdf):
        problems.append("the pages differ from those the manifest was signed with")
    return Verification(
        ok=not problems, problems=problems, manifest=manifest, key_sha256=key_sha256
    )
