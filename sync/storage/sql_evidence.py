"""Resumable uploads and stored evidence files over SQL, shared by the backends."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from sync.audit import SYSTEM, Actor, AuditContext
from sync.errors import AlreadyExists, NotFound, QuotaExceeded, UploadLocked
from sync.models import EvidenceFile, EvidenceRef, Upload
from sync.storage.shared import (
    evidence_file_from_row,
    evidence_ref_from_row,
    upload_from_row,
    utc,
)
from sync.storage.sql_base import SQLBase
from sync.storage.sql_dialect import Conn
from sync.storage.sql_rows import audit_entity, missing_evidence, stored_evidence

__all__ = ["EvidenceSQL"]

# Bytes an inspection holds: its referenced files once each, plus its open uploads.
_USAGE_SQL = (
    "SELECT (SELECT COALESCE(SUM(e.size), 0) FROM evidence_refs f"
    " JOIN evidence e ON e.sha256 = f.sha256 WHERE f.inspection_id = ?)"
    " + (SELECT COALESCE(SUM(length), 0) FROM uploads WHERE inspection_id = ?"
    " AND completed_at IS NULL AND expires_at > ?)"
)


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _rectification_files(data: Any) -> set[str]:
    """The hashes a rectification record's responses name, now or earlier."""
    if not isinstance(data, dict):
        return set()
    responses = [*(data.get("earlier_responses") or []), data.get("response") or {}]
    return {
        h
        for r in responses
        if isinstance(r, dict)
        for h in r.get("evidence_hashes") or []
        if isinstance(h, str)
    }


def _check_quota(db: Conn, upload: Upload, quota: int) -> None:
    row = db.execute(
        _USAGE_SQL, (upload.inspection_id, upload.inspection_id, utc(upload.created_at))
    ).fetchone()
    used = int(row[0]) if row else 0
    if used + upload.length > quota:
        raise QuotaExceeded(
            f"inspection {upload.inspection_id!r} holds {used} bytes of"
            f" evidence; {upload.length} more would pass its limit of {quota}",
            field="Upload-Length",
            used=used,
            limit=quota,
        )


def _store_file(db: Conn, evidence: EvidenceFile) -> bool:
    """Keep the file's row unless one exists; True if it is new."""
    cur = db.execute(
        "INSERT INTO evidence (sha256, size, media_type, inspection_id,"
        " uploaded_by, device_id, captured_at, latitude, longitude, exif_captured_at,"
        " exif_latitude, exif_longitude, filename_hint, created_at, thumbnail)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
        (
            evidence.sha256,
            evidence.size,
            evidence.media_type,
            evidence.inspection_id,
            evidence.uploaded_by,
            evidence.device_id,
            evidence.captured_at,
            evidence.latitude,
            evidence.longitude,
            evidence.exif_captured_at,
            evidence.exif_latitude,
            evidence.exif_longitude,
            evidence.filename_hint,
            utc(evidence.created_at),
            int(evidence.thumbnail),
        ),
    )
    return bool(cur.rowcount > 0)


def _store_ref(db: Conn, ref: EvidenceRef) -> None:
    db.execute(
        "INSERT INTO evidence_refs (sha256, inspection_id, uploaded_by,"
        " device_id, captured_at, latitude, longitude, filename_hint, created_at)"
        " VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
        (
            ref.sha256,
            ref.inspection_id,
            ref.uploaded_by,
            ref.device_id,
            ref.captured_at,
            ref.latitude,
            ref.longitude,
            ref.filename_hint,
            utc(ref.created_at),
        ),
    )


def _check_holder(db: Conn, upload_id: str, holder: str | None) -> None:
    """Raise NotFound (no upload) or UploadLocked (``holder`` no longer holds the
    claim); nothing when ``holder`` is None or holds it."""
    if holder is None:
        return
    row = db.execute("SELECT claimed_by FROM uploads WHERE id = ?", (upload_id,)).fetchone()
    if row is None:
        raise NotFound(f"no upload {upload_id!r}")
    if row["claimed_by"] != holder:
        raise UploadLocked(
            f"the claim on upload {upload_id} was lost (it ran out and another request"
            " took it over): nothing was recorded",
            retry_after=1,
        )


class EvidenceSQL(SQLBase):
    """The upload and evidence methods of :class:`~sync.storage.Store`."""

    async def add_upload(self, upload: Upload, *, quota: int | None = None) -> None:
        def add(db: Conn) -> None:
            if quota is not None:
                _check_quota(db, upload, quota)
            try:
                db.execute(
                    'INSERT INTO uploads (id, sha256, length, "offset", media_type,'
                    " inspection_id, user_id, device_id, metadata, created_at, expires_at,"
                    " completed_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        upload.id,
                        upload.sha256,
                        upload.length,
                        upload.offset,
                        upload.media_type,
                        upload.inspection_id,
                        upload.user_id,
                        upload.device_id,
                        msgspec.json.encode(upload.metadata).decode(),
                        utc(upload.created_at),
                        utc(upload.expires_at),
                        utc(upload.completed_at),
                    ),
                )
            except self.dialect.integrity_error as exc:
                raise AlreadyExists(f"upload {upload.id!r} exists", field="id") from exc

        await self._write(add)

    async def get_upload(self, upload_id: str) -> Upload | None:
        row = await self._fetchone("SELECT * FROM uploads WHERE id = ?", (upload_id,))
        return upload_from_row(row) if row else None

    async def update_upload(
        self,
        upload_id: str,
        *,
        offset: int,
        media_type: str | None = None,
        expires_at: datetime | None = None,
        holder: str | None = None,
        release: bool = False,
    ) -> None:
        def update(db: Conn) -> None:
            _check_holder(db, upload_id, holder)
            end = " claimed_by = NULL, claimed_until = NULL," if release else ""
            cur = db.execute(
                f'UPDATE uploads SET{end} "offset" = ?, media_type = COALESCE(?, media_type),'
                " expires_at = COALESCE(?, expires_at) WHERE id = ?",
                (offset, media_type, utc(expires_at), upload_id),
            )
            if cur.rowcount == 0:
                raise NotFound(f"no upload {upload_id!r}")

        await self._write(update)

    async def claim_upload(
        self,
        upload_id: str,
        holder: str,
        *,
        now: datetime,
        until: datetime,
        renewing: bool = False,
    ) -> Upload:
        free = "" if renewing else "claimed_by IS NULL OR claimed_until <= ? OR "

        def claim(db: Conn) -> Upload:
            if self.dialect.name == "postgresql":
                # A claim need not outlive a crash of the database: one lost with it
                # only makes its holder's next write fail (each write that records an
                # offset, durably, checks the claim first). So its commit does not
                # wait for the disk: most of what the claim adds to a chunk, and the
                # writer lock every instance shares is held that much shorter.
                db.execute("SET LOCAL synchronous_commit = off")
            cur = db.execute(
                "UPDATE uploads SET claimed_by = ?, claimed_until = ? WHERE id = ?"
                f" AND ({free}claimed_by = ?)",
                (holder, utc(until), upload_id, *(() if renewing else (utc(now),)), holder),
            )
            row = db.execute("SELECT * FROM uploads WHERE id = ?", (upload_id,)).fetchone()
            if row is None:
                raise NotFound(f"no upload {upload_id!r}")
            if cur.rowcount == 0:
                if row["claimed_by"] is None:
                    raise UploadLocked(f"the claim on upload {upload_id} was lost", retry_after=1)
                ends = datetime.fromisoformat(row["claimed_until"])
                raise UploadLocked(
                    f"another request is still sending a chunk of upload {upload_id}",
                    retry_after=max(1, math.ceil((ends - now).total_seconds())),
                )
            return upload_from_row(row)

        return await self._write(claim)

    async def release_upload(self, upload_id: str, holder: str) -> bool:
        def release(db: Conn) -> bool:
            cur = db.execute(
                "UPDATE uploads SET claimed_by = NULL, claimed_until = NULL"
                " WHERE id = ? AND claimed_by = ?",
                (upload_id, holder),
            )
            return bool(cur.rowcount > 0)

        return await self._write(release)

    async def delete_upload(self, upload_id: str) -> bool:
        def delete(db: Conn) -> bool:
            return bool(db.execute("DELETE FROM uploads WHERE id = ?", (upload_id,)).rowcount > 0)

        return await self._write(delete)

    async def complete_upload(
        self,
        upload_id: str,
        evidence: EvidenceFile,
        ref: EvidenceRef,
        at: datetime,
        *,
        actor: Actor = SYSTEM,
        holder: str | None = None,
    ) -> bool:
        def complete(db: Conn) -> bool:
            _check_holder(db, upload_id, holder)
            cur = db.execute(
                'UPDATE uploads SET completed_at = ?, "offset" = length,'
                " media_type = COALESCE(media_type, ?), claimed_by = NULL,"
                " claimed_until = NULL WHERE id = ?",
                (utc(at), evidence.media_type, upload_id),
            )
            if cur.rowcount == 0:
                raise NotFound(f"no upload {upload_id!r}")
            new = _store_file(db, evidence)
            restored = False
            if not new:  # the bytes just stored bring back a file that was lost
                cur = db.execute(
                    "UPDATE evidence SET lost_at = NULL WHERE sha256 = ? AND lost_at IS NOT NULL",
                    (evidence.sha256,),
                )
                restored = cur.rowcount > 0
            audit_entity(
                db,
                actor,
                "evidence",
                evidence.sha256,
                "upload" if new else "upload:restore" if restored else "upload:dedup",
                {},
                {
                    "size": evidence.size,
                    "media_type": evidence.media_type,
                    "captured_at": ref.captured_at,
                    "latitude": ref.latitude,
                    "longitude": ref.longitude,
                    "filename": ref.filename_hint,
                },
                inspection_id=ref.inspection_id,
                context=AuditContext(received_at=utc(at)),
            )
            _store_ref(db, ref)
            return new

        return await self._write(complete)

    async def expired_uploads(self, now: datetime) -> list[Upload]:
        rows = await self._fetchall(
            "SELECT * FROM uploads WHERE expires_at <= ? ORDER BY created_at, id", (utc(now),)
        )
        return [upload_from_row(r) for r in rows]

    async def get_evidence(self, sha256: str) -> EvidenceFile | None:
        row = await self._fetchone("SELECT * FROM evidence WHERE sha256 = ?", (sha256,))
        return None if row is None else evidence_file_from_row(row)

    async def evidence_files(self, after: str = "", limit: int = 1000) -> list[EvidenceFile]:
        rows = await self._fetchall(
            "SELECT * FROM evidence WHERE sha256 > ? ORDER BY sha256 LIMIT ?", (after, limit)
        )
        return [evidence_file_from_row(r) for r in rows]

    async def set_evidence_lost(
        self, sha256: str, at: datetime | None, *, reason: str, actor: Actor = SYSTEM
    ) -> bool:
        def mark(db: Conn) -> bool:
            row = db.execute("SELECT lost_at FROM evidence WHERE sha256 = ?", (sha256,)).fetchone()
            if row is None:
                raise NotFound(f"no evidence {sha256}")
            before = row["lost_at"]
            if (before is None) == (at is None):
                return False  # already so
            after = None if at is None else utc(at)
            db.execute("UPDATE evidence SET lost_at = ? WHERE sha256 = ?", (after, sha256))
            audit_entity(
                db,
                actor,
                "evidence",
                sha256,
                "lost" if at is not None else "found",
                {"lost_at": before},
                {"lost_at": after},
                context=AuditContext(reason=reason),
            )
            return True

        return await self._write(mark)

    async def evidence_refs(self, sha256: str) -> list[EvidenceRef]:
        rows = await self._fetchall(
            "SELECT * FROM evidence_refs WHERE sha256 = ? ORDER BY created_at, inspection_id",
            (sha256,),
        )
        return [evidence_ref_from_row(r) for r in rows]

    async def evidence_usage(self, inspection_id: str, now: datetime) -> int:
        row = await self._fetchone(_USAGE_SQL, (inspection_id, inspection_id, utc(now)))
        return int(row[0]) if row else 0

    async def evidence_references(self, sha256: str) -> list[tuple[str, str, str]]:
        d = self.dialect
        rows = await self._fetchall(
            "SELECT r.kind, r.id, r.inspection_id FROM records r"
            " WHERE r.kind IN ('finding', 'response') AND r.deleted = 0"
            f" AND EXISTS (SELECT 1 FROM {d.evidence_from}"
            f" WHERE {d.evidence_value} = ?) ORDER BY r.inspection_id, r.kind, r.id",
            (sha256,),
        )
        found = [(r[0], r[1], r[2]) for r in rows]
        if _SHA256.fullmatch(sha256):
            # A rectification names its files inside its responses (the current one and
            # the earlier ones): the text narrows the rows, the parsed record decides,
            # so a hash quoted in a comment names nothing.
            rows = await self._fetchall(
                "SELECT r.id, r.inspection_id, r.data FROM records r"
                " WHERE r.kind = 'rectification' AND r.deleted = 0 AND r.data LIKE ?",
                (f'%"{sha256}"%',),
            )
            found += [
                ("rectification", r[0], r[1])
                for r in rows
                if sha256 in _rectification_files(msgspec.json.decode(r[2]))
            ]
        return sorted(found, key=lambda ref: (ref[2], ref[0], ref[1]))

    async def missing_evidence(self, inspection_ids: Sequence[str]) -> dict[str, list[str]]:
        ids, d = list(inspection_ids), self.dialect
        result: dict[str, list[str]] = await self._on_reader(
            lambda db: missing_evidence(d, db, ids)
        )
        return result

    async def stored_evidence(self, hashes: Sequence[str]) -> set[str]:
        wanted = list(hashes)
        found: set[str] = await self._on_reader(lambda db: stored_evidence(db, wanted))
        return found
