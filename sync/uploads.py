"""Resumable evidence uploads and evidence downloads: the rules, without HTTP.

``server/routes/evidence.py`` speaks tus 1.0.0 over HTTP and calls :class:`Uploads`
with plain values (a principal, lengths, offsets, an async iterator of body chunks).
What is guaranteed here:

- Only someone who may see the inspection (``sync.access.can_see_inspection``) uploads
  to it, and only while it is not closed; an upload belongs to the user who created it
  (anyone else is told it does not exist).
- The offset the server reports is durable: a chunk's bytes are fsync'd before the new
  offset is recorded. A chunk sent with a checksum is stored whole or not at all; one
  without is kept as far as it arrived (the tus rule for a broken connection).
- A file is stored only after its SHA-256 equals the one announced at creation, and only
  if its first bytes are an accepted type. Stored files are kept once per hash; every
  inspection's upload of one is still recorded (``EvidenceRef``).
- Limits: a file at most ``max_file_bytes``; an inspection at most
  ``max_inspection_bytes`` (its stored files plus its open uploads, checked atomically).
- An upload expires ``ttl`` after its last chunk; :meth:`Uploads.purge_expired` deletes
  expired ones (file and row).
- A stored file is readable only by someone who may see a live record (a finding's
  ``evidence_hashes``, a response's ``evidence``) that names it, in an inspection they
  can see *and for which the file was uploaded* (a completed upload for that inspection,
  deduplicated or not); to anyone else it does not exist. Naming a hash in a record
  therefore grants nothing by itself: whoever wants a file readable in an inspection
  sends its bytes for that inspection once (they are stored once either way).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import msgspec

from sync.access import can_see_inspection
from sync.audit import SYSTEM, Actor
from sync.clock import Clock
from sync.errors import (
    ChecksumMismatch,
    FileTooLarge,
    HashMismatch,
    InspectionClosed,
    InvalidInput,
    NotFound,
    OffsetMismatch,
    UnsupportedFileType,
    UploadExpired,
    UploadLocked,
)
from sync.evidence import (
    SNIFF_BYTES,
    BlobStore,
    ExifInfo,
    PartialWriter,
    UploadArea,
    hash_file,
    is_sha256,
    make_thumbnail,
    read_exif,
    sniff,
)
from sync.models import EvidenceFile, EvidenceRef, Principal, Upload
from sync.storage import Store
from sync.upload_claim import UploadClaim

__all__ = [
    "CHECKSUM_ALGORITHMS",
    "METADATA_KEYS",
    "Checksum",
    "EvidenceMeta",
    "UploadLimits",
    "Uploads",
]

log = logging.getLogger("inspectsync")

CHECKSUM_ALGORITHMS = ("sha256", "sha1", "md5")
"""Per-chunk checksums accepted (tus checksum extension), strongest first."""

METADATA_KEYS = (
    "sha256",
    "inspection_id",
    "filename",
    "captured_at",
    "latitude",
    "longitude",
    "purpose",
)
"""Upload metadata read (others are kept and echoed, not used); the first two required."""

_DIGEST_SIZE = {"sha256": 32, "sha1": 20, "md5": 16}


class Checksum(msgspec.Struct, frozen=True):
    """A chunk's announced checksum: algorithm (one of CHECKSUM_ALGORITHMS), raw digest."""

    algorithm: str
    digest: bytes

    def check(self) -> None:
        """Raise InvalidInput unless the algorithm is supported and the digest fits it."""
        if self.algorithm not in _DIGEST_SIZE:
            raise InvalidInput(
                f"checksum algorithm {self.algorithm!r} is not supported"
                f" (use one of {', '.join(CHECKSUM_ALGORITHMS)})",
                field="Upload-Checksum",
            )
        if len(self.digest) != _DIGEST_SIZE[self.algorithm]:
            raise InvalidInput(
                f"a {self.algorithm} digest has {_DIGEST_SIZE[self.algorithm]} bytes",
                field="Upload-Checksum",
            )


class UploadLimits(msgspec.Struct, frozen=True, kw_only=True):
    max_file_bytes: int = 50_000_000
    """Largest file accepted."""
    max_inspection_bytes: int = 2_000_000_000
    """Most evidence one inspection holds (stored files once each, plus open uploads)."""
    ttl: timedelta = timedelta(hours=24)
    """An upload with no chunk for this long expires."""
    idle_timeout: float = 30.0
    """A chunk whose body stalls this many seconds is cut off (what arrived is kept when
    the chunk had no checksum), so a dead connection cannot hold an upload forever."""
    lock_timeout: float = 35.0
    """How long a chunk waits for another request still writing the same upload (on
    this process or another), before the answer is UploadLocked."""
    claim_ttl: float = 90.0
    """How long a request's claim on an upload lasts unless renewed (it is, every third
    of this, while bytes arrive): a process that died mid-chunk holds its uploads this
    long at most. Longer than ``idle_timeout`` plus a third of itself."""


class EvidenceMeta(msgspec.Struct, kw_only=True):
    """What the server knows of a stored file, as one caller may see it: the content's
    facts, and only the uploads and records of inspections the caller can see."""

    sha256: str
    size: int
    media_type: str
    created_at: datetime
    thumbnail: bool
    exif: ExifInfo
    uploads: list[dict[str, Any]]
    records: list[dict[str, str]]


class _Locks:
    """One asyncio lock per upload id, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def locked(self, key: str) -> bool:
        entry = self._locks.get(key)
        return entry is not None and entry[0].locked()

    @asynccontextmanager
    async def hold(self, key: str, timeout: float) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            try:
                async with asyncio.timeout(timeout):
                    await lock.acquire()
            except TimeoutError:
                raise UploadLocked(
                    "another request is still sending a chunk of this upload",
                    retry_after=5,
                ) from None
            try:
                yield
            finally:
                lock.release()
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


async def _still_ours(writer: PartialWriter, claim: UploadClaim) -> None:
    """Before the file is cut or synced: renew the claim if due. If it was lost (this
    request stalled past its end and another took the upload over), drop what is
    buffered, touch the file no more, and raise UploadLocked."""
    try:
        await claim.renew()
    except UploadLocked:
        writer.abandon()
        raise


def _float(meta: dict[str, str], key: str, limit: float) -> float | None:
    raw = meta.get(key)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if value != value or abs(value) > limit:
        raise InvalidInput(
            f"{key} must be decimal degrees within ±{limit:g}", field=f"Upload-Metadata.{key}"
        )
    return value


_MISSING = "missing"
"""The problem of a stored file whose bytes are not there at all."""


class LostFile(msgspec.Struct, frozen=True):
    sha256: str
    problem: str


class StorageCheck(msgspec.Struct, kw_only=True):
    """What :meth:`Uploads.check_stored` found."""

    checked: int = 0
    lost: int = 0
    """Files lost after the check (found now or before)."""
    lost_now: list[LostFile] = msgspec.field(default_factory=list)
    """Files this check marked lost."""
    found: list[str] = msgspec.field(default_factory=list)
    """Files marked lost before whose bytes are back and right."""


class Uploads:
    """The upload and download rules over a :class:`~sync.storage.Store`, a blob store for
    files, one for thumbnails and the local upload area. One per app (its locks are
    per process, like the store's writer lock; the claims that order requests across
    processes are in the store, see :mod:`sync.upload_claim`)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        blobs: BlobStore,
        thumbnails: BlobStore,
        area: UploadArea,
        limits: UploadLimits | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.blobs = blobs
        self.thumbnails = thumbnails
        self.area = area
        self.limits = limits or UploadLimits()
        self._locks = _Locks()

    # --- who may -------------------------------------------------------------------

    async def _writable_inspection(
        self,
        principal: Principal,
        inspection_id: str,
        field: str | None = None,
        purpose: str | None = None,
    ) -> None:
        """The inspection takes evidence from this principal: one it may see, not closed;
        a closed one still takes rectification evidence (``purpose=rectification`` in the
        metadata: the company's files, entered by staff after the inspection,
        sync/rectification.py)."""
        insp = await self.store.get_record("inspection", inspection_id)
        if insp is None or not can_see_inspection(principal, insp.data):
            raise NotFound(f"no inspection {inspection_id!r}", field=field)
        if insp.data.get("status") == "closed" and purpose != "rectification":
            raise InspectionClosed(f"inspection {inspection_id!r} is closed", field=field)

    def _check_id(self, upload_id: str) -> None:
        try:
            self.area.path(upload_id)
        except ValueError:
            raise NotFound(f"no upload {upload_id!r}") from None

    async def _own(self, principal: Principal, upload_id: str) -> Upload:
        """The caller's upload; NotFound for anyone else's, an unknown or a bad id."""
        self._check_id(upload_id)
        up = await self.store.get_upload(upload_id)
        if up is None or up.user_id != principal.user_id:
            raise NotFound(f"no upload {upload_id!r}")
        return up

    @asynccontextmanager
    async def _claimed(
        self, principal: Principal, upload_id: str, deadline: float
    ) -> AsyncIterator[tuple[Upload, UploadClaim]]:
        """The caller's upload under this request's claim (waiting for another request's
        until ``deadline``, then UploadLocked), released on the way out unless the last
        write released it. NotFound as :meth:`_own`."""
        self._check_id(upload_id)
        claim = UploadClaim(self.store, self.clock, upload_id, self.limits.claim_ttl)
        try:
            up = await claim.take(deadline)
            if up.user_id != principal.user_id:
                raise NotFound(f"no upload {upload_id!r}")
            yield up, claim
        finally:
            await claim.release()

    def _check_live(self, up: Upload) -> None:
        if up.completed_at is None and up.expires_at <= self.clock.now():
            raise UploadExpired(
                f"upload {up.id} expired at {up.expires_at.isoformat()}; create a new one"
            )

    # --- uploading -----------------------------------------------------------------

    async def create(self, principal: Principal, length: int, metadata: dict[str, str]) -> Upload:
        """Open an upload of ``length`` bytes. ``metadata`` needs ``sha256`` (the file's
        expected hash) and ``inspection_id``; ``filename``, ``captured_at`` (ISO 8601),
        ``latitude`` and ``longitude`` are optional. Raises InvalidInput, NotFound (the
        inspection), InspectionClosed, FileTooLarge, QuotaExceeded."""
        if length <= 0:
            raise InvalidInput("an upload has at least one byte", field="Upload-Length")
        if length > self.limits.max_file_bytes:
            raise FileTooLarge(
                f"{length} bytes is more than the limit of {self.limits.max_file_bytes} per file",
                field="Upload-Length",
                limit=self.limits.max_file_bytes,
            )
        sha = (metadata.get("sha256") or "").strip().lower()
        if not is_sha256(sha):
            raise InvalidInput(
                "sha256 (the file's SHA-256, 64 hex digits) is required",
                field="Upload-Metadata.sha256",
            )
        iid = metadata.get("inspection_id") or ""
        if not iid:
            raise InvalidInput("inspection_id is required", field="Upload-Metadata.inspection_id")
        captured = metadata.get("captured_at") or None
        if captured is not None:
            try:
                datetime.fromisoformat(captured)
            except ValueError:
                raise InvalidInput(
                    "captured_at must be an ISO 8601 time", field="Upload-Metadata.captured_at"
                ) from None
        lat = _float(metadata, "latitude", 90)
        lon = _float(metadata, "longitude", 180)
        if (lat is None) != (lon is None):
            raise InvalidInput(
                "latitude and longitude go together", field="Upload-Metadata.latitude"
            )
        if len(metadata.get("filename", "")) > 255:
            raise InvalidInput(
                "filename has at most 255 characters", field="Upload-Metadata.filename"
            )
        await self._writable_inspection(
            principal, iid, "Upload-Metadata.inspection_id", metadata.get("purpose")
        )
        now = self.clock.now()
        up = Upload(
            id=uuid.uuid4().hex,
            sha256=sha,
            length=length,
            inspection_id=iid,
            user_id=principal.user_id,
            device_id=principal.device_id,
            metadata={**metadata, "sha256": sha},
            created_at=now,
            expires_at=now + self.limits.ttl,
        )
        await asyncio.to_thread(self.area.create, up.id)
        try:
            await self.store.add_upload(up, quota=self.limits.max_inspection_bytes)
        except BaseException:
            self.area.delete(up.id)
            raise
        return up

    async def status(self, principal: Principal, upload_id: str) -> Upload:
        """The caller's upload with its durable offset. Raises NotFound, UploadExpired."""
        up = await self._own(principal, upload_id)
        self._check_live(up)
        return up

    async def append(
        self,
        principal: Principal,
        upload_id: str,
        offset: int,
        chunks: AsyncIterator[bytes],
        *,
        checksum: Checksum | None = None,
        declared_length: int | None = None,
    ) -> Upload:
        """Append one chunk at ``offset`` (which must be the server's offset, else
        OffsetMismatch with ``offset``). With ``checksum`` the chunk is verified and
        refused whole on a mismatch (ChecksumMismatch, offset unchanged). When the file
        is complete it is verified and stored (HashMismatch, UnsupportedFileType discard
        the upload). Returns the upload as it now is."""
        if checksum is not None:
            checksum.check()
        deadline = time.monotonic() + self.limits.lock_timeout
        async with (
            self._locks.hold(upload_id, self.limits.lock_timeout),
            self._claimed(principal, upload_id, deadline) as (up, claim),
        ):
            if up.completed_at is not None:
                if offset != up.length:
                    raise OffsetMismatch(
                        f"the upload is complete at {up.length} bytes",
                        field="Upload-Offset",
                        offset=up.length,
                    )
                return up
            self._check_live(up)
            await self._writable_inspection(
                principal, up.inspection_id, purpose=up.metadata.get("purpose")
            )
            on_disk = self.area.size(up.id)
            if on_disk is None:  # the scratch file vanished: start again from zero
                await asyncio.to_thread(self.area.create, up.id)
                on_disk = 0
            if on_disk < up.offset:
                await self.store.update_upload(up.id, offset=on_disk, holder=claim.holder)
                up.offset = on_disk
            if offset != up.offset:
                raise OffsetMismatch(
                    f"the upload is at offset {up.offset}, not {offset}",
                    field="Upload-Offset",
                    offset=up.offset,
                )
            room = up.length - up.offset
            if declared_length is not None and declared_length > room:
                raise FileTooLarge(
                    f"the chunk ({declared_length} bytes) goes past Upload-Length"
                    f" ({room} bytes left)",
                    field="Content-Length",
                    limit=up.length,
                )
            received = await self._receive(up, chunks, room, checksum, principal, claim)
            return await self._advance(up, received, principal, claim)

    async def _receive(
        self,
        up: Upload,
        chunks: AsyncIterator[bytes],
        room: int,
        checksum: Checksum | None,
        principal: Principal,
        claim: UploadClaim,
    ) -> int:
        """Write the chunk; return how many bytes are now durable past ``up.offset``.
        The claim is renewed as bytes arrive; were it lost (this request stalled past
        its end and another took the upload over), the bytes not yet written are
        dropped and nothing is cut or recorded: the file is the other request's now."""
        hasher = hashlib.new(checksum.algorithm, usedforsecurity=False) if checksum else None
        writer = await asyncio.to_thread(self.area.writer, up.id, up.offset)
        try:
            try:
                it = aiter(chunks)
                while True:
                    try:
                        async with asyncio.timeout(self.limits.idle_timeout):
                            piece = await anext(it)
                    except StopAsyncIteration:
                        break
                    if not piece:
                        continue
                    if writer.written + len(piece) > room:
                        raise FileTooLarge(
                            f"the chunk goes past Upload-Length ({room} bytes were left)",
                            field="Content-Length",
                            limit=up.length,
                        )
                    if hasher is not None:
                        hasher.update(piece)
                    await claim.renew()
                    await writer.write(piece)
            except FileTooLarge:
                await _still_ours(writer, claim)
                await writer.rollback()
                raise
            except UploadLocked:
                writer.abandon()
                raise
            except Exception:
                # The connection broke (or stalled) mid-chunk. Without a checksum the
                # bytes that arrived are kept, as tus asks; with one they cannot be
                # trusted, so the chunk is dropped whole.
                await _still_ours(writer, claim)
                if hasher is None and writer.written:
                    await writer.commit()
                    await self._advance(up, writer.written, principal, claim)
                else:
                    await writer.rollback()
                raise
            await _still_ours(writer, claim)  # a stall since the last byte may have lost it
            if checksum is not None and hasher is not None and hasher.digest() != checksum.digest:
                await writer.rollback()
                raise ChecksumMismatch(
                    f"the chunk does not match its {checksum.algorithm} checksum; it was not"
                    f" stored, the upload stays at offset {up.offset}",
                    field="Upload-Checksum",
                    offset=up.offset,
                )
            await writer.commit()
            return writer.written
        finally:
            writer.close()

    async def _advance(
        self, up: Upload, received: int, principal: Principal, claim: UploadClaim
    ) -> Upload:
        """Record ``received`` more durable bytes; sniff the type once enough bytes are
        in; complete the upload when it is whole. The write that records it ends the
        claim (one transaction for both)."""
        if not received:
            return up
        new_offset = up.offset + received
        media = up.media_type
        if media is None and new_offset >= min(up.length, SNIFF_BYTES):
            media = sniff(await asyncio.to_thread(self.area.head, up.id))
            if media is None:
                await self._discard(up)
                raise UnsupportedFileType(
                    "the file is none of JPEG, PNG, HEIC/HEIF, PDF or MP4 (judged by its"
                    " bytes, not its name); the upload is discarded",
                    field="body",
                )
        if new_offset == up.length:
            up.media_type = media
            return await self._complete(up, principal, claim)
        expires = self.clock.now() + self.limits.ttl
        await self.store.update_upload(
            up.id,
            offset=new_offset,
            media_type=media,
            expires_at=expires,
            holder=claim.holder,
            release=True,
        )
        claim.held = False
        up.offset, up.media_type, up.expires_at = new_offset, media, expires
        return up

    async def _discard(self, up: Upload) -> None:
        await asyncio.to_thread(self.area.delete, up.id)
        await self.store.delete_upload(up.id)

    async def _complete(self, up: Upload, principal: Principal, claim: UploadClaim) -> Upload:
        """Verify the whole file, keep it once by hash, record who/where/when."""
        path = self.area.path(up.id)
        actual = await asyncio.to_thread(hash_file, path)
        if actual != up.sha256:
            await self._discard(up)
            raise HashMismatch(
                f"the file's SHA-256 is {actual}, not the {up.sha256} announced; the"
                " upload is discarded",
                field="Upload-Metadata.sha256",
                expected=up.sha256,
                actual=actual,
            )
        media = up.media_type
        assert media is not None  # sniffed on the way (length >= 1)
        exif = ExifInfo()
        thumbnail = False
        existing = await self.store.get_evidence(up.sha256)
        if existing is None:
            if media == "image/jpeg":
                exif = await asyncio.to_thread(read_exif, path)
            scratch = self.area.path(up.id, ".thumb")
            if await asyncio.to_thread(make_thumbnail, path, media, scratch):
                await self.thumbnails.put(up.sha256, scratch)
                thumbnail = True
        if existing is not None and existing.lost_at is not None:
            # whatever is under the key now is not the file (check_stored found it
            # missing or wrong): keep it aside, store these verified bytes instead
            await self.blobs.set_aside(up.sha256)
        await self.blobs.put(up.sha256, path)
        now = self.clock.now()
        meta = up.metadata
        lat = _float(meta, "latitude", 90)
        lon = _float(meta, "longitude", 180)
        ref = EvidenceRef(
            sha256=up.sha256,
            inspection_id=up.inspection_id,
            uploaded_by=up.user_id,
            device_id=up.device_id,
            captured_at=meta.get("captured_at") or None,
            latitude=lat,
            longitude=lon,
            filename_hint=meta.get("filename", ""),
            created_at=now,
        )
        evidence = EvidenceFile(
            sha256=up.sha256,
            size=up.length,
            media_type=media,
            inspection_id=up.inspection_id,
            uploaded_by=up.user_id,
            device_id=up.device_id,
            captured_at=ref.captured_at,
            latitude=lat,
            longitude=lon,
            exif_captured_at=exif.captured_at,
            exif_latitude=exif.latitude,
            exif_longitude=exif.longitude,
            filename_hint=ref.filename_hint,
            created_at=now,
            thumbnail=thumbnail,
        )
        await claim.renew()  # hashing and thumbnailing a large file takes a while
        await self.store.complete_upload(
            up.id, evidence, ref, now, actor=Actor.of(principal), holder=claim.holder
        )
        claim.held = False
        up.offset, up.completed_at = up.length, now
        return up

    async def terminate(self, principal: Principal, upload_id: str) -> None:
        """Delete the caller's upload and its bytes (tus termination). A completed
        upload's stored file stays: records may name it."""
        deadline = time.monotonic() + self.limits.lock_timeout
        async with (
            self._locks.hold(upload_id, self.limits.lock_timeout),
            self._claimed(principal, upload_id, deadline) as (up, _),
        ):
            await self._discard(up)

    async def purge_expired(self) -> int:
        """Delete uploads past ``expires_at`` (bytes and row; a completed one's row
        only) and scratch files no upload owns that are older than ``ttl``. Uploads a
        request is writing right now are left for the next run. Returns how many
        uploads were deleted."""
        now = self.clock.now()
        purged = 0
        for up in await self.store.expired_uploads(now):
            if self._locks.locked(up.id):
                continue
            claim = UploadClaim(self.store, self.clock, up.id, self.limits.claim_ttl)
            try:  # not one another instance's request is writing right now
                await claim.take(deadline=0.0)
            except (UploadLocked, NotFound):
                continue
            try:
                await self._discard(up)
            finally:
                await claim.release()
            purged += 1
        cutoff = (now - self.limits.ttl).timestamp()
        for upload_id, path in await asyncio.to_thread(self.area.files):
            try:
                old = path.stat().st_mtime < cutoff
            except FileNotFoundError:
                continue
            if (
                old
                and not self._locks.locked(upload_id)
                and await self.store.get_upload(upload_id) is None
            ):
                path.unlink(missing_ok=True)
        return purged

    # --- the stored bytes ----------------------------------------------------------

    async def check_stored(self, *, hashes: bool = True, actor: Actor = SYSTEM) -> StorageCheck:
        """Compare every stored file's bytes with its row: present, of its size and
        (``hashes``) of its SHA-256. A file that fails is marked lost (bytes of the
        wrong content are set aside first), so the pull and ``/missing`` list it and
        tablets holding it upload it again; a file marked lost whose bytes are back and
        right (restored by an operator) is marked found. Run after restoring a backup,
        and from time to time (``inspectsync evidence check``)."""
        report = StorageCheck()
        after = ""
        while True:
            files = await self.store.evidence_files(after, limit=500)
            for ev in files:
                report.checked += 1
                problem = await self._stored_problem(ev, hashes=hashes)
                if problem is None:
                    if ev.lost_at is not None and await self.store.set_evidence_lost(
                        ev.sha256, None, reason="its bytes are back and match", actor=actor
                    ):
                        report.found.append(ev.sha256)
                    continue
                if problem != _MISSING:  # wrong bytes are there: keep them aside
                    await self.blobs.set_aside(ev.sha256)
                if await self.store.set_evidence_lost(
                    ev.sha256, self.clock.now(), reason=problem, actor=actor
                ):
                    log.error("evidence %s is lost: %s", ev.sha256, problem)
                    report.lost_now.append(LostFile(sha256=ev.sha256, problem=problem))
                report.lost += 1
            if len(files) < 500:
                return report
            after = files[-1].sha256

    async def _stored_problem(self, ev: EvidenceFile, *, hashes: bool) -> str | None:
        size = await self.blobs.size(ev.sha256)
        if size is None:
            return _MISSING
        if size != ev.size:
            return f"{size} bytes stored, {ev.size} uploaded"
        if hashes:
            actual = await self.blobs.sha256(ev.sha256)
            if actual != ev.sha256:
                return f"the stored bytes hash to {actual}"
        return None

    async def mark_lost(self, ev: EvidenceFile, problem: str) -> None:
        """A read found the file's bytes gone: mark it lost at once (see
        :meth:`check_stored`)."""
        if await self.store.set_evidence_lost(ev.sha256, self.clock.now(), reason=problem):
            log.error("evidence %s is lost: %s", ev.sha256, problem)

    # --- reading -------------------------------------------------------------------

    async def _visible_inspections(self, principal: Principal, ids: list[str]) -> set[str]:
        seen: set[str] = set()
        for iid in dict.fromkeys(ids):
            insp = await self.store.get_record("inspection", iid)
            if insp is not None and can_see_inspection(principal, insp.data):
                seen.add(iid)
        return seen

    async def _visible(
        self, principal: Principal, sha256: str
    ) -> tuple[EvidenceFile, list[tuple[str, str, str]], set[str]]:
        """The file, the live records naming it, and the inspections of those records
        the caller can see. NotFound unless one of those inspections also had the file
        uploaded for it: a record grants reading a file only in an inspection for which
        someone sent the bytes, so knowing a hash is not enough to read the file."""
        if not is_sha256(sha256):
            raise NotFound(f"no evidence {sha256!r}")
        evidence = await self.store.get_evidence(sha256)
        if evidence is None:
            raise NotFound(f"no evidence {sha256}")
        refs = await self.store.evidence_references(sha256)
        visible = await self._visible_inspections(principal, [r[2] for r in refs])
        uploaded_for = {r.inspection_id for r in await self.store.evidence_refs(sha256)}
        if not visible & uploaded_for:
            raise NotFound(f"no evidence {sha256}")
        return evidence, refs, visible

    async def get(self, principal: Principal, sha256: str) -> EvidenceFile:
        """A stored file the caller may read (a record they can see names it), else
        NotFound, exactly as for a file never uploaded."""
        evidence, _, _ = await self._visible(principal, sha256)
        return evidence

    async def meta(self, principal: Principal, sha256: str) -> EvidenceMeta:
        """The file's metadata, limited to the uploads and records the caller can see."""
        evidence, refs, visible = await self._visible(principal, sha256)
        uploaded = await self.store.evidence_refs(sha256)
        seen = await self._visible_inspections(principal, [r.inspection_id for r in uploaded])
        uploads = [
            {
                "inspection_id": r.inspection_id,
                "uploaded_by": r.uploaded_by,
                "device_id": r.device_id,
                "captured_at": r.captured_at,
                "latitude": r.latitude,
                "longitude": r.longitude,
                "filename": r.filename_hint,
                "uploaded_at": r.created_at,
            }
            for r in uploaded
            if r.inspection_id in seen
        ]
        return EvidenceMeta(
            sha256=evidence.sha256,
            size=evidence.size,
            media_type=evidence.media_type,
            created_at=evidence.created_at,
            thumbnail=evidence.thumbnail,
            exif=ExifInfo(
                captured_at=evidence.exif_captured_at,
                latitude=evidence.exif_latitude,
                longitude=evidence.exif_longitude,
            ),
            uploads=uploads,
            records=[
                {"kind": kind, "id": rid, "inspection_id": iid}
                for kind, rid, iid in refs
                if iid in visible
            ],
        )

    async def missing(self, principal: Principal, inspection_id: str) -> list[str]:
        """The hashes an inspection's live findings and responses name that no upload
        for that inspection has stored yet (NotFound for an inspection the caller
        cannot see)."""
        insp = await self.store.get_record("inspection", inspection_id)
        if insp is None or not can_see_inspection(principal, insp.data):
            raise NotFound(f"no inspection {inspection_id!r}", field="inspection_id")
        found = await self.store.missing_evidence([inspection_id])
        return found.get(inspection_id, [])
