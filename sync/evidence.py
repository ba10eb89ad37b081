"""Evidence files: content-addressed storage, partial uploads, type sniffing, EXIF, thumbnails.

Framework-free. A file is named by the SHA-256 of its bytes and nothing else: a client's
file name is metadata only and never reaches the filesystem. The pieces:

- :class:`BlobStore`, the small interface finished files are kept behind, and
  :class:`LocalBlobStore`, a local directory sharded by hash (``<root>/ab/cd/<sha256>``).
  An S3-compatible object store implements the same five methods.
- :class:`UploadArea`, the local scratch directory where resumable uploads grow
  (``<root>/<upload_id>``, ids made by the server).
- :func:`sniff`, the type of a file from its first bytes (JPEG, PNG, HEIC/HEIF, PDF,
  MP4); anything else is refused by the caller.
- :func:`read_exif` (capture time and GPS position of a JPEG) and :func:`make_thumbnail`
  (JPEG and PNG, at most 320 px; other types get none).
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import logging
import os
import re
import shutil
import warnings
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import msgspec

from sync.errors import NotFound

__all__ = [
    "ACCEPTED_TYPES",
    "SNIFF_BYTES",
    "THUMBNAIL_PX",
    "BlobStore",
    "ExifInfo",
    "LocalBlobStore",
    "PartialWriter",
    "UploadArea",
    "hash_file",
    "is_sha256",
    "make_thumbnail",
    "read_exif",
    "sniff",
]

log = logging.getLogger("inspectsync")

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
_READ_CHUNK = 256 * 1024

ACCEPTED_TYPES = (
    "image/jpeg",
    "image/png",
    "image/heic",
    "image/heif",
    "application/pdf",
    "video/mp4",
)
"""What :func:`sniff` recognises; everything else is refused."""

SNIFF_BYTES = 256
"""How many leading bytes :func:`sniff` looks at (an ``ftyp`` box's brands fit)."""

THUMBNAIL_PX = 320
"""The longest side of a thumbnail."""


def is_sha256(value: str) -> bool:
    """A SHA-256 as this package writes it: 64 lowercase hex digits."""
    return bool(_SHA256.match(value))


def hash_file(path: Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file, read in chunks (blocking: run it in a thread)."""
    h = hashlib.new(algorithm)
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


# --- finished files ------------------------------------------------------------------


class BlobStore(abc.ABC):
    """Where finished files are kept, by key (the SHA-256 of the content).

    The interface is deliberately what an S3-compatible object store offers, so that
    one can replace the local directory without touching callers: ``put`` is a
    (multipart) PutObject of the finished file under ``ab/cd/<key>``, ``read_range`` a
    GetObject with a ``Range`` header, ``exists``/``size`` a HeadObject and ``delete`` a
    DeleteObject. Keys are checked to be SHA-256 hex digests; a store never sees a
    client's file name. Content under a key never changes, which is what makes
    deduplication and caching by ``ETag`` safe.
    """

    @abc.abstractmethod
    async def put(self, key: str, source: Path) -> bool:
        """Keep the finished file at ``source`` under ``key``; ``source`` is consumed
        (moved, or deleted if the key is already stored). Returns False when the key
        was already stored: the same content is kept once. Durable on return."""

    @abc.abstractmethod
    def read_range(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes ``[start, end)`` of a stored file (``end`` None: to the end), in
        chunks. Raises NotFound for a key that is not stored."""

    @abc.abstractmethod
    async def exists(self, key: str) -> bool:
        """Whether a file is stored under ``key``."""

    @abc.abstractmethod
    async def size(self, key: str) -> int | None:
        """The stored file's size in bytes, or None if not stored."""

    @abc.abstractmethod
    async def delete(self, key: str) -> bool:
        """Remove a stored file; False if there was none."""

    @abc.abstractmethod
    async def set_aside(self, key: str) -> str | None:
        """Move what is stored under ``key`` out of the way (bytes that do not match the
        key), to a place where it is kept for an investigation and never served, so the
        key can be stored afresh. Returns where it went, or None if nothing was there."""

    async def sha256(self, key: str) -> str | None:
        """The SHA-256 of what is stored under ``key`` (read through), None if nothing."""
        digest = hashlib.sha256()
        try:
            async for block in self.read_range(key):
                digest.update(block)
        except NotFound:
            return None
        return digest.hexdigest()


class LocalBlobStore(BlobStore):
    """A local directory, sharded by the key's first two byte pairs:
    ``<root>/ab/cd/abcd…`` (at most 65,536 directories, each holding few files).

    ``put`` renames the file into place (atomic on one filesystem; copied otherwise),
    then syncs the directory so the name survives a power cut. Stored files are made
    read-only.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        """Where a key lives. Raises ValueError for anything but a SHA-256 hex digest."""
        if not _SHA256.match(key):
            raise ValueError(f"not a SHA-256 key: {key!r}")
        return self.root / key[:2] / key[2:4] / key

    async def put(self, key: str, source: Path) -> bool:
        target = self.path(key)
        return await asyncio.to_thread(_move_into_place, source, target)

    async def read_range(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        path = self.path(key)
        try:
            f = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError as exc:
            raise NotFound(f"no stored file {key}") from exc
        try:
            f.seek(start)
            left = None if end is None else max(0, end - start)
            while left is None or left > 0:
                n = _READ_CHUNK if left is None else min(_READ_CHUNK, left)
                block = await asyncio.to_thread(f.read, n)
                if not block:
                    break
                if left is not None:
                    left -= len(block)
                yield block
        finally:
            f.close()

    async def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    async def size(self, key: str) -> int | None:
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:
            return None

    async def delete(self, key: str) -> bool:
        try:
            self.path(key).unlink()
        except FileNotFoundError:
            return False
        return True

    async def set_aside(self, key: str) -> str | None:
        source = self.path(key)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        target = self.root / "set-aside" / f"{key}.{stamp}"

        def move() -> bool:
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(source, target)
            except FileNotFoundError:
                return False
            _fsync_dir(source.parent)
            _fsync_dir(target.parent)
            return True

        return str(target) if await asyncio.to_thread(move) else None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _move_into_place(source: Path, target: Path) -> bool:
    if target.exists():
        source.unlink(missing_ok=True)
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(source, target)
    except OSError:  # another filesystem: copy next to the target, then rename
        partial = target.with_name(target.name + ".part")
        shutil.copyfile(source, partial)
        with partial.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(partial, target)
        source.unlink(missing_ok=True)
    target.chmod(0o444)
    _fsync_dir(target.parent)
    return True


# --- uploads in progress -----------------------------------------------------------


class UploadArea:
    """The local directory where resumable uploads grow, one file per upload, named by
    the server-made upload id (32 hex digits) and nothing else.

    It is scratch space on the server's own disk even when finished files go to an
    object store: a file is complete and verified before it leaves this area.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, upload_id: str, suffix: str = "") -> Path:
        """The file of an upload (``suffix`` for a derived scratch file such as
        ``.thumb``). Raises ValueError for an id the server could not have made."""
        if not _UPLOAD_ID.match(upload_id) or suffix not in ("", ".thumb"):
            raise ValueError(f"not an upload id: {upload_id!r}")
        return self.root / f"{upload_id}{suffix}"

    def create(self, upload_id: str) -> None:
        """An empty file for a new upload (fails if it exists)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.path(upload_id).open("xb").close()

    def size(self, upload_id: str) -> int | None:
        """Bytes on disk for an upload, or None if its file is gone."""
        try:
            return self.path(upload_id).stat().st_size
        except FileNotFoundError:
            return None

    def head(self, upload_id: str, n: int = SNIFF_BYTES) -> bytes:
        """The first ``n`` bytes received."""
        with self.path(upload_id).open("rb") as f:
            return f.read(n)

    def delete(self, upload_id: str) -> None:
        """Remove an upload's file and its scratch files (missing ones are fine)."""
        for suffix in ("", ".thumb"):
            self.path(upload_id, suffix).unlink(missing_ok=True)

    def files(self) -> list[tuple[str, Path]]:
        """(upload id, path) of every file in the area, scratch files included."""
        if not self.root.is_dir():
            return []
        found = []
        for p in self.root.iterdir():
            stem = p.name.split(".", 1)[0]
            if _UPLOAD_ID.match(stem):
                found.append((stem, p))
        return found

    def writer(self, upload_id: str, offset: int) -> PartialWriter:
        """A writer that appends at ``offset`` (anything beyond it is cut first)."""
        return PartialWriter(self.path(upload_id), offset)


class PartialWriter:
    """Appends one chunk to an upload's file, buffered, off the event loop.

    ``commit`` makes the bytes durable (fsync) before the caller records the new offset
    in the database; ``rollback`` cuts the file back to where the chunk started, so a
    refused chunk leaves no trace.
    """

    _BUFFER = 1 << 20

    def __init__(self, path: Path, offset: int) -> None:
        self.start = offset
        self.written = 0
        self._buffer = bytearray()
        # unbuffered: what :meth:`abandon` drops must not reach the file at close
        self._file: IO[bytes] = path.open("r+b", buffering=0)
        self._file.truncate(offset)
        self._file.seek(offset)

    async def write(self, data: bytes) -> None:
        self._buffer += data
        self.written += len(data)
        if len(self._buffer) >= self._BUFFER:
            await self._flush()

    async def _flush(self) -> None:
        if self._buffer:
            block, self._buffer = bytes(self._buffer), bytearray()
            await asyncio.to_thread(self._write_all, block)

    def _write_all(self, block: bytes) -> None:
        view = memoryview(block)
        while view:
            view = view[self._file.write(view) or 0 :]

    async def commit(self) -> None:
        await self._flush()
        self._file.flush()
        await asyncio.to_thread(os.fsync, self._file.fileno())

    async def rollback(self) -> None:
        self._buffer.clear()
        self._file.flush()
        self._file.truncate(self.start)
        self.written = 0

    def abandon(self) -> None:
        """Drop what is buffered and touch the file no more (neither cut nor synced):
        another request took the upload over and writes it now."""
        self._buffer.clear()
        self.written = 0

    def close(self) -> None:
        self._file.close()


# --- what a file is --------------------------------------------------------------------

_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
_HEIF_BRANDS = {b"mif1", b"msf1"}
_MP4_BRANDS = {
    b"isom",
    b"iso2",
    b"iso3",
    b"iso4",
    b"iso5",
    b"iso6",
    b"mp41",
    b"mp42",
    b"avc1",
    b"M4V ",
    b"dash",
    b"mmp4",
}


def _ftyp(head: bytes) -> str | None:
    """The type of an ISO base media file (HEIF, MP4) from its ``ftyp`` box."""
    if len(head) < 16 or head[4:8] != b"ftyp":
        return None
    size = int.from_bytes(head[:4], "big")
    if size < 16 or size % 4:
        return None
    major = head[8:12]
    compatible = {head[i : i + 4] for i in range(16, min(size, len(head)) - 3, 4)}
    if major in _HEIC_BRANDS:
        return "image/heic"
    if major in _HEIF_BRANDS:
        return "image/heic" if compatible & _HEIC_BRANDS else "image/heif"
    if major in _MP4_BRANDS:
        return "video/mp4"
    return None


def sniff(head: bytes) -> str | None:
    """The media type of a file from its first bytes (:data:`SNIFF_BYTES` are enough),
    or None for anything but JPEG, PNG, HEIC/HEIF, PDF and MP4. The name a client gave
    the file plays no part."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    return _ftyp(head)


class ExifInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What a camera wrote: ``captured_at`` as ISO 8601 (local time as the camera
    wrote it; with its offset when the file has ``OffsetTimeOriginal``), position in
    decimal degrees (WGS 84, south and west negative)."""

    captured_at: str | None = None
    latitude: float | None = None
    longitude: float | None = None


_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_DATETIME_ORIGINAL = 36867
_OFFSET_TIME_ORIGINAL = 36881
_DATETIME = 306
_EXIF_TIME = re.compile(r"^(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})$")
_OFFSET = re.compile(r"^[+-]\d{2}:\d{2}$")


def _exif_time(value: Any, offset: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    m = _EXIF_TIME.match(str(value or "").strip("\x00 "))
    if not m:
        return None
    y, mo, d, h, mi, s = m.groups()
    text = f"{y}-{mo}-{d}T{h}:{mi}:{s}"
    if isinstance(offset, str) and _OFFSET.match(offset.strip("\x00 ")):
        text += offset.strip("\x00 ")
    return text


def _degrees(value: Any, ref: Any, limit: float) -> float | None:
    try:
        d, m, s = (float(v) for v in value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    deg = d + m / 60 + s / 3600
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "replace")
    if str(ref).strip("\x00 ").upper() in ("S", "W"):
        deg = -deg
    if deg != deg or abs(deg) > limit:  # NaN or out of range
        return None
    return round(deg, 7)


def read_exif(path: Path) -> ExifInfo:
    """Capture time and GPS position of a JPEG, where its EXIF has them; an empty
    :class:`ExifInfo` for a file without (or with unreadable) EXIF. Blocking."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            # only the header is read here: a huge image costs nothing
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
        with img:
            exif = img.getexif()
            tags = exif.get_ifd(_EXIF_IFD)
            gps = exif.get_ifd(_GPS_IFD)
            taken = tags.get(_DATETIME_ORIGINAL) or exif.get(_DATETIME)
            captured = _exif_time(taken, tags.get(_OFFSET_TIME_ORIGINAL))
            lat = lon = None
            if 2 in gps and 4 in gps:
                lat = _degrees(gps[2], gps.get(1), 90)
                lon = _degrees(gps[4], gps.get(3), 180)
                if lat is None or lon is None:
                    lat = lon = None
    except Exception as exc:  # a damaged file is still evidence; it just has no EXIF
        log.info("no EXIF read from %s: %s", path.name, exc)
        return ExifInfo()
    return ExifInfo(captured_at=captured, latitude=lat, longitude=lon)


def make_thumbnail(source: Path, media_type: str, target: Path) -> bool:
    """Write a JPEG of at most :data:`THUMBNAIL_PX` px on its longest side, upright
    (EXIF orientation applied), for a JPEG or PNG. Other types (HEIC, PDF, MP4) get no
    thumbnail: returns False, as it does for an image Pillow cannot decode or one over
    Pillow's decompression-bomb limit. Blocking."""
    if media_type not in ("image/jpeg", "image/png"):
        return False
    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                img.draft("RGB", (THUMBNAIL_PX, THUMBNAIL_PX))  # JPEG: decode at 1/2..1/8
                small = ImageOps.exif_transpose(img)
                small.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
                if small.mode in ("RGBA", "LA", "P"):
                    small = small.convert("RGBA")
                    flat = Image.new("RGB", small.size, (255, 255, 255))
                    flat.paste(small, mask=small.getchannel("A"))
                    small = flat
                elif small.mode != "RGB":
                    small = small.convert("RGB")
                small.save(target, "JPEG", quality=80)
    except Exception as exc:
        log.info("no thumbnail for %s: %s", source.name, exc)
        target.unlink(missing_ok=True)
        return False
    return True
