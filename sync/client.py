"""The reference tablet client: what a tablet app does, in Python.

- A local SQLite file (sqlite-utils) holds the server's records as last pulled, an
  *outbox* of pending mutations (it survives restarts), the pull cursor and the
  results the user must see (conflicts, rejections).
- An edit is applied locally at once: the local view of a record is the pulled copy
  with every pending outbox edit laid over it, so pulled data never hides a pending
  edit (pending edits are rebased onto what arrives).
- ``sync()`` pulls every page, pushes the outbox in batches, then pulls again. Each
  pulled page is applied together with its cursor in one local transaction, so an
  interruption resumes where it stopped; a resent push is answered as duplicates.
- Network failures, 5xx and 429 answers are retried a bounded number of times with
  jittered exponential backoff, and never sooner than the server's ``Retry-After``: a
  server shedding load (503 ``overloaded``) sees its tablets come back spread out.

Transports: :class:`InProcessTransport` calls an engine directly (tests);
:class:`HttpTransport` speaks the HTTP protocol with httpx.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import json
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import httpx
import msgspec
import sqlite_utils

from sync.hlc import HLC, receive, tick
from sync.models import Principal
from sync.protocol import (
    MSGPACK,
    Applied,
    Conflicted,
    Duplicate,
    Merged,
    Mutation,
    PullRequest,
    PullResponse,
    PushRequest,
    PushResponse,
    Rejected,
    decode,
    encode,
)

__all__ = [
    "DeviceRevoked",
    "HttpTransport",
    "InProcessTransport",
    "Tablet",
    "Transport",
    "TransportError",
    "UploadRefused",
]


MAX_RETRY_AFTER = 300.0  # seconds: a longer Retry-After is waited this long at most


class TransportError(Exception):
    """The server could not be reached, failed (5xx) or asked to slow down (429): try
    again later. ``retry_after`` is the wait in seconds the server asked for
    (``Retry-After``), if it named one."""

    def __init__(self, message: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeviceRevoked(Exception):
    """The server refuses this device: local data must be wiped."""


class Transport(Protocol):
    async def pull(self, request: PullRequest) -> PullResponse: ...

    async def push(self, request: PushRequest) -> PushResponse: ...


class InProcessTransport:
    """Calls a :class:`~sync.engine.SyncEngine` directly, as a given principal."""

    def __init__(self, engine: Any, principal: Principal) -> None:
        self.engine = engine
        self.principal = principal

    async def pull(self, request: PullRequest) -> PullResponse:
        result: PullResponse = await self.engine.pull(self.principal, request)
        return result

    async def push(self, request: PushRequest) -> PushResponse:
        result: PushResponse = await self.engine.push(self.principal, request)
        return result


class HttpTransport:
    """The HTTP protocol, with token refresh and MessagePack if asked."""

    def __init__(
        self,
        base_url: str,
        *,
        access_token: str,
        refresh_token: str | None = None,
        msgpack: bool = False,
        timeout: float = 30.0,
        on_tokens: Callable[[dict[str, Any]], None] | None = None,
        client: httpx.AsyncClient | None = None,
        chunk_size: int = 1 << 20,
        upload_attempts: int = 8,
        upload_restarts: int = 2,
        lock_backoff: float = 1.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``chunk_size``: bytes per tus ``PATCH`` (1 MiB suits a weak network);
        ``upload_attempts``: chunk answers in a row without progress (409, 423,
        460) before an upload gives up for now; ``upload_restarts``: how many times one
        upload call creates a new upload after the old one vanished (404, 410);
        ``lock_backoff``: the first wait after a 423 when the server names none."""
        self.base_url = base_url.rstrip("/")
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.media = MSGPACK if msgpack else "application/json"
        self.on_tokens = on_tokens
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self.chunk_size = chunk_size
        self.upload_attempts = upload_attempts
        self.upload_restarts = upload_restarts
        self.lock_backoff = lock_backoff
        self._sleep = sleep

    async def close(self) -> None:
        await self._client.aclose()

    async def _refresh(self) -> bool:
        if not self.refresh_token:
            return False
        try:
            r = await self._client.post(
                f"{self.base_url}/api/v1/auth/refresh", json={"refresh_token": self.refresh_token}
            )
        except httpx.TransportError as exc:
            raise TransportError(str(exc)) from exc
        if r.status_code >= 500 or r.status_code == 429:  # busy, not a refused token
            raise TransportError(_refusal("refresh", r), retry_after=_retry_after(r))
        if r.status_code != 200:
            return False
        tokens = r.json()
        self.access_token = tokens["access_token"]
        self.refresh_token = tokens["refresh_token"]
        if self.on_tokens:
            self.on_tokens(tokens)
        return True

    async def _call(self, path: str, message: msgspec.Struct, kind: type[Any]) -> Any:
        body = encode(message, self.media)
        for attempt in range(2):
            try:
                r = await self._client.post(
                    f"{self.base_url}{path}",
                    content=body,
                    headers={
                        "Authorization": f"Bearer {self.access_token}",
                        "Content-Type": self.media,
                        "Accept": self.media,
                        "Accept-Encoding": "gzip",
                    },
                )
            except httpx.TransportError as exc:
                raise TransportError(str(exc)) from exc
            if r.status_code == 401:
                code = _problem_code(r)
                if code == "device_revoked":
                    raise DeviceRevoked("the server has revoked this device")
                if attempt == 0 and await self._refresh():
                    continue
            if r.status_code >= 500 or r.status_code == 429:
                raise TransportError(_refusal(path, r), retry_after=_retry_after(r))
            if r.status_code != 200:
                raise RuntimeError(f"{path}: {r.status_code} {r.text}")
            return decode(r.content, kind, self.media)
        raise RuntimeError(f"{path}: not authenticated")

    async def pull(self, request: PullRequest) -> PullResponse:
        result: PullResponse = await self._call("/api/v1/sync/pull", request, PullResponse)
        return result

    async def push(self, request: PushRequest) -> PushResponse:
        result: PushResponse = await self._call("/api/v1/sync/push", request, PushResponse)
        return result

    async def upload(
        self,
        sha256: str,
        path: Path,
        *,
        metadata: dict[str, str],
        url: str | None,
        on_url: Callable[[str | None], None],
        chunk_size: int | None = None,
    ) -> None:
        """Upload one file with the tus protocol, resuming from the server's offset.

        ``url`` is an upload created earlier (kept by the caller across restarts). What
        each answer to a chunk leads to:

        - 204: go on from the new ``Upload-Offset``;
        - 409 ``offset_mismatch``: ask ``HEAD`` for the server's offset, go on from it;
        - 460 (the chunk was damaged on the way): send it again;
        - 423 (another request still writes this upload, e.g. one we gave up on):
          wait ``Retry-After`` (at least, growing each time), ask ``HEAD``, go on;
        - 404 or 410 (the upload expired, was purged or terminated): create a new
          upload and send the file from the start;
        - 401 (the access token expired; to any tus request): refresh it once, send
          the request again;
        - anything else: as for creating (below).

        Raises :class:`TransportError` on a network failure, a 5xx, or when chunks keep
        being refused without progress (the next attempt resumes), and
        :class:`UploadRefused` when the server will never accept the file (type, size,
        hash, an inspection closed or no longer visible, an unknown 4xx).
        """
        size = path.stat().st_size
        chunk_size = chunk_size or self.chunk_size
        restarts = 0  # uploads that vanished under this call
        stuck = 0  # chunk answers in a row that moved nothing
        lock_waits = 0  # 423s in a row
        offset = 0
        ask = url is not None  # the server's offset is unknown: ask HEAD first

        def vanished() -> None:
            nonlocal restarts
            restarts += 1
            if restarts > self.upload_restarts:
                raise TransportError("upload: new uploads keep vanishing")
            on_url(None)

        try:
            with path.open("rb") as f:
                while url is None or offset < size:
                    if url is None:
                        url = await self._create_upload(size, metadata)
                        on_url(url)
                        offset = 0
                    elif ask:
                        ask = False
                        known = await self._offset(url)
                        if known is None:
                            vanished()
                            url = None
                        else:
                            offset = known  # the loop ends if the server has it all
                        continue
                    f.seek(offset)
                    chunk = f.read(chunk_size)
                    digest = base64.b64encode(hashlib.sha256(chunk).digest()).decode()
                    r = await self._tus(
                        "PATCH",
                        url,
                        {
                            "Upload-Offset": str(offset),
                            "Content-Type": "application/offset+octet-stream",
                            "Upload-Checksum": f"sha256 {digest}",
                        },
                        chunk,
                    )
                    if r.status_code == 204:
                        offset = int(r.headers["Upload-Offset"])
                        stuck = lock_waits = 0
                        continue
                    code = _problem_code(r)
                    if r.status_code in (404, 410):  # expired, purged or terminated
                        vanished()
                        url = None
                        continue
                    resumable = r.status_code in (423, 460) or (
                        r.status_code == 409 and code == "offset_mismatch"
                    )
                    if not resumable:
                        self._check_upload(r, (204,))
                    stuck += 1
                    if stuck > self.upload_attempts:
                        raise TransportError(
                            f"upload: {stuck} chunks in a row refused ({r.status_code} {code})"
                        )
                    if r.status_code == 423:  # locked: wait, then see where it stands
                        await self._sleep(self._lock_delay(r, lock_waits))
                        lock_waits += 1
                    # 409 offset_mismatch and 423: ask HEAD; 460 (damaged on the way):
                    # send the same chunk again
                    ask = r.status_code != 460
        except httpx.TransportError as exc:
            raise TransportError(str(exc)) from exc

    async def _tus(
        self, method: str, url: str, headers: dict[str, str], content: bytes | None = None
    ) -> httpx.Response:
        """One tus request with the current access token; an expired token (401 other
        than ``device_revoked``) is refreshed once and the request sent again, so a
        long series of uploads outlives the 15-minute token."""
        for attempt in range(2):
            r = await self._client.request(
                method,
                url,
                content=content,
                headers={
                    "Tus-Resumable": "1.0.0",
                    "Authorization": f"Bearer {self.access_token}",
                    **headers,
                },
            )
            if (
                r.status_code == 401
                and attempt == 0
                and _problem_code(r) != "device_revoked"
                and await self._refresh()
            ):
                continue
            return r
        raise AssertionError("unreachable")

    async def _create_upload(self, size: int, metadata: dict[str, str]) -> str:
        meta = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in metadata.items())
        r = await self._tus(
            "POST",
            f"{self.base_url}/api/v1/evidence/uploads",
            {"Upload-Length": str(size), "Upload-Metadata": meta},
        )
        self._check_upload(r, (201,))
        return str(httpx.URL(self.base_url).join(r.headers["Location"]))

    async def _offset(self, url: str) -> int | None:
        """The server's offset of an upload (tus ``HEAD``); None if it is gone (404,
        410): the caller creates a new one."""
        r = await self._tus("HEAD", url, {})
        if r.status_code in (404, 410):
            return None
        self._check_upload(r, (200,))
        return int(r.headers["Upload-Offset"])

    def _lock_delay(self, r: httpx.Response, waits: int) -> float:
        """Seconds to wait after a 423: the server's ``Retry-After`` at least, and a
        backoff that doubles with every wait in a row, at most a minute."""
        try:
            asked = float(r.headers.get("Retry-After", "0"))
        except ValueError:
            asked = 0.0
        return min(max(asked, self.lock_backoff * 2.0**waits), 60.0)

    @staticmethod
    def _check_upload(r: httpx.Response, ok: tuple[int, ...]) -> None:
        if r.status_code in ok:
            return
        if r.status_code == 401 and _problem_code(r) == "device_revoked":
            raise DeviceRevoked("the server has revoked this device")
        if r.status_code >= 500 or r.status_code in (401, 423, 429):
            raise TransportError(_refusal("upload", r), retry_after=_retry_after(r))
        raise UploadRefused(f"{r.status_code} {_problem_code(r) or r.text[:200]}")


class UploadRefused(Exception):
    """The server will not take this file (type, size or hash): retrying cannot help."""


def _problem_code(r: httpx.Response) -> str:
    try:
        return str(r.json().get("code", ""))
    except (ValueError, AttributeError):
        return ""


def _refusal(what: str, r: httpx.Response) -> str:
    code = _problem_code(r)
    wait = r.headers.get("Retry-After")
    return (
        f"{what}: server answered {r.status_code}"
        + (f" {code}" if code else "")
        + (f", retry after {wait} s" if wait else "")
    )


def _retry_after(r: httpx.Response) -> float | None:
    """The answer's ``Retry-After`` in seconds (a number of seconds or an HTTP date),
    at most :data:`MAX_RETRY_AFTER`; None when it has none or it cannot be read."""
    text = r.headers.get("Retry-After", "").strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


_SCHEMA: dict[str, tuple[dict[str, Any], str | tuple[str, ...]]] = {
    "records": ({"kind": str, "id": str, "rev": int, "data": str}, ("kind", "id")),
    "outbox": (
        {
            "n": int,
            "mid": str,
            "kind": str,
            "id": str,
            "op": str,
            "base_rev": int,
            "fields": str,
            "hlc": str,
            "device_time": str,
            "reason": str,
        },
        "n",
    ),
    "results": (
        {"mid": str, "status": str, "kind": str, "id": str, "detail": str, "at": str},
        "mid",
    ),
    "meta": ({"key": str, "value": str}, "key"),
    "evidence": (
        {
            "sha256": str,
            "path": str,
            "inspection_id": str,
            "size": int,
            "filename": str,
            "captured_at": str,
            "upload_url": str,
            "state": str,  # pending, uploaded, refused
            "detail": str,
        },
        # one row per file and inspection: a file is readable in an inspection only
        # once it was uploaded for it (docs/evidence.md)
        ("sha256", "inspection_id"),
    ),
}


class Tablet:
    """A tablet's local state and its sync loop."""

    def __init__(
        self,
        path: str | Path,
        transport: Transport,
        *,
        device_id: str,
        batch_size: int = 100,
        page_size: int = 1000,
        retries: int = 5,
        backoff: float = 0.2,
        now: Callable[[], datetime] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        """``retries``: how many times a request that failed (network, 5xx, 429) is sent
        again before :class:`TransportError` reaches the caller; ``backoff``: the first
        wait, doubled after each failure (at most 30 s), never shorter than the
        server's ``Retry-After``; each wait is stretched by ``1 + jitter()`` (``jitter``
        in [0, 1)), so tablets refused together do not come back together."""
        self.db = sqlite_utils.Database(str(path))
        self.db.execute("PRAGMA journal_mode=WAL")
        for name, (columns, pk) in _SCHEMA.items():
            if name not in self.db.table_names():
                self.db[name].create(columns, pk=pk)  # type: ignore[union-attr]
        evidence = self.db.table("evidence")
        if evidence.pks == ["sha256"]:  # a local file of an earlier version
            evidence.transform(pk=("sha256", "inspection_id"))
        self.transport = transport
        self.evidence_dir = Path(path).parent / f"{Path(path).stem}-evidence"
        self.evidence_dir.mkdir(parents=True, exist_ok=True)
        self.device_id = device_id
        self.batch_size = batch_size
        self.page_size = page_size
        self.retries = retries
        self.backoff = backoff
        self._now = now or (lambda: datetime.now(UTC))
        self._sleep = sleep
        self._jitter = jitter

    # --- small local state ---------------------------------------------------------

    def _meta(self, key: str, default: str = "") -> str:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return str(row[0]) if row else default

    def _set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [key, value])

    @property
    def cursor(self) -> str | None:
        return self._meta("cursor") or None

    def _hlc(self) -> HLC:
        text = self._meta("hlc")
        return HLC.parse(text) if text else HLC(0, 0, self.device_id)

    def _now_ms(self) -> int:
        return int(self._now().timestamp() * 1000)

    def _merge_clock(self, remote: str) -> None:
        try:
            got = receive(
                self._hlc(), HLC.parse(remote), self._now_ms(), self.device_id, max_skew_ms=10**12
            )
        except ValueError:
            return
        self._set_meta("hlc", str(got.clock))

    # --- local reads ---------------------------------------------------------------

    def server_copy(self, kind: str, record_id: str) -> tuple[int, dict[str, Any]] | None:
        """The pulled copy (rev, data); None if never pulled or pulled as deleted."""
        row = self._row(kind, record_id)
        if row is None or row[1] is None:
            return None
        return row[0], row[1]

    def _row(self, kind: str, record_id: str) -> tuple[int, dict[str, Any] | None] | None:
        row = self.db.execute(
            "SELECT rev, data FROM records WHERE kind = ? AND id = ?", [kind, record_id]
        ).fetchone()
        return (int(row[0]), json.loads(row[1])) if row else None

    def pending(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.query("SELECT * FROM outbox ORDER BY n")]

    def view(self, kind: str, record_id: str) -> dict[str, Any] | None:
        """The record as the inspector sees it: pulled copy + pending edits."""
        copy = self.server_copy(kind, record_id)
        data = dict(copy[1]) if copy else None
        for p in self.db.query(
            "SELECT op, fields FROM outbox WHERE kind = ? AND id = ? ORDER BY n",
            [kind, record_id],
        ):
            if p["op"] == "delete":
                data = None
                continue
            data = {**(data or {}), **json.loads(p["fields"])}
        return data

    def records(self, kind: str) -> dict[str, dict[str, Any]]:
        """Every record of a kind as the inspector sees it."""
        ids = {r["id"] for r in self.db.query("SELECT id FROM records WHERE kind = ?", [kind])}
        ids |= {r["id"] for r in self.db.query("SELECT id FROM outbox WHERE kind = ?", [kind])}
        out = {}
        for rid in sorted(ids):
            v = self.view(kind, rid)
            if v is not None:
                out[rid] = v
        return out

    def server_state(self) -> dict[tuple[str, str], tuple[int, dict[str, Any]]]:
        """Everything pulled, by (kind, id): for convergence checks."""
        return {
            (r["kind"], r["id"]): (r["rev"], json.loads(r["data"]))
            for r in self.db.query("SELECT * FROM records WHERE data != 'null'")
        }

    def results(self, status: str | None = None) -> list[dict[str, Any]]:
        """Push results the user must see: conflicts and rejections."""
        rows = self.db.query("SELECT * FROM results ORDER BY at")
        out = [dict(r) | {"detail": json.loads(r["detail"])} for r in rows]
        return [r for r in out if status in (None, r["status"])]

    # --- local writes ----------------------------------------------------------------

    def edit(
        self,
        kind: str,
        record_id: str,
        fields: dict[str, Any] | None = None,
        *,
        op: str = "upsert",
        reason: str | None = None,
    ) -> str:
        """Record a local change; it shows in :meth:`view` at once and waits in the
        outbox until a push is acknowledged. Returns its mutation id."""
        with self.db.conn:
            counter = int(self._meta("counter", "0")) + 1
            self._set_meta("counter", str(counter))
            clock = tick(self._hlc(), self._now_ms(), self.device_id)
            self._set_meta("hlc", str(clock))
            known = self._row(kind, record_id)  # a tombstone's rev counts as seen
            mid = f"{self.device_id}:{counter}"
            self.db["outbox"].insert(  # type: ignore[union-attr]
                {
                    "mid": mid,
                    "kind": kind,
                    "id": record_id,
                    "op": op,
                    "base_rev": known[0] if known else 0,
                    "fields": json.dumps(fields or {}),
                    "hlc": str(clock),
                    "device_time": self._now().isoformat(),
                    "reason": reason,
                }
            )
        return mid

    def new_id(self, prefix: str = "f") -> str:
        return f"{prefix}_{uuid.uuid4().hex[:16]}"

    # --- evidence ------------------------------------------------------------------

    def attach(
        self,
        path: str | Path,
        inspection_id: str,
        *,
        captured_at: datetime | None = None,
    ) -> str:
        """Keep a photo or file as evidence of an inspection; returns its SHA-256,
        which that inspection's records reference (e.g. a finding's
        ``evidence_hashes``). The file is copied into the tablet's store, so the record
        can sync before the file uploads. The same file attached to two inspections is
        uploaded for each (the server stores it once)."""
        source = Path(path)
        data = source.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        target = self.evidence_dir / sha
        if not target.exists():
            target.write_bytes(data)
        with self.db.conn:
            self.db.execute(
                "INSERT OR IGNORE INTO evidence (sha256, path, inspection_id, size, filename,"
                " captured_at, upload_url, state, detail) VALUES (?,?,?,?,?,?,NULL,'pending','')",
                [
                    sha,
                    str(target),
                    inspection_id,
                    len(data),
                    source.name,
                    (captured_at or self._now()).isoformat(),
                ],
            )
        return sha

    def evidence(self, state: str | None = None) -> list[dict[str, Any]]:
        rows = [
            dict(r) for r in self.db.query("SELECT * FROM evidence ORDER BY sha256, inspection_id")
        ]
        return [r for r in rows if state in (None, r["state"])]

    def missing_on_server(self) -> dict[str, list[str]]:
        """What the server said it still needs at the end of the last pull that asked
        (per inspection, hashes named by its records and not uploaded for it), whether
        this tablet holds the files or not."""
        return dict(json.loads(self._meta("missing_evidence", "{}")))

    def _note_missing(self, missing: dict[str, list[str]]) -> None:
        """Queue for upload every file the server says an inspection still needs that
        this tablet holds: a row uploaded before goes back to pending (the server lost
        it, e.g. restored from a backup), a file held for another inspection gets a row
        for this one. Refused files stay refused. Runs inside the page's transaction."""
        self._set_meta("missing_evidence", json.dumps(missing, sort_keys=True))
        for iid, hashes in missing.items():
            for sha in hashes:
                rows = [
                    dict(r)
                    for r in self.db.query(
                        "SELECT * FROM evidence WHERE sha256 = ? ORDER BY inspection_id != ?",
                        [sha, iid],
                    )
                ]
                held = next((r for r in rows if Path(r["path"]).is_file()), None)
                if held is None:
                    continue
                if rows[0]["inspection_id"] == iid:
                    self.db.execute(
                        "UPDATE evidence SET state = 'pending' WHERE sha256 = ?"
                        " AND inspection_id = ? AND state = 'uploaded'",
                        [sha, iid],
                    )
                    continue
                self.db.execute(
                    "INSERT INTO evidence (sha256, path, inspection_id, size, filename,"
                    " captured_at, upload_url, state, detail)"
                    " VALUES (?,?,?,?,?,?,NULL,'pending','')",
                    [
                        sha,
                        held["path"],
                        iid,
                        held["size"],
                        held["filename"],
                        held["captured_at"],
                    ],
                )

    async def upload_evidence(self) -> int:
        """Upload pending evidence (after the records that reference it), resuming
        broken uploads. Returns how many files completed. Transports without uploads
        (in-process) upload nothing."""
        upload = getattr(self.transport, "upload", None)
        if upload is None:
            return 0
        done = 0
        for row in self.evidence("pending"):
            sha, iid = row["sha256"], row["inspection_id"]
            key = [sha, iid]
            metadata = {
                "sha256": sha,
                "inspection_id": iid,
                "filename": row["filename"],
                "captured_at": row["captured_at"],
            }

            def remember(url: str | None, key: list[str] = key) -> None:
                self.db.execute(
                    "UPDATE evidence SET upload_url = ? WHERE sha256 = ? AND inspection_id = ?",
                    [url, *key],
                )

            async def attempt(
                row: dict[str, Any] = row,
                key: list[str] = key,
                metadata: dict[str, str] = metadata,
                remember: Callable[[str | None], None] = remember,
            ) -> None:
                # the upload created by a failed attempt is resumed, not made again
                url = self.db.execute(
                    "SELECT upload_url FROM evidence WHERE sha256 = ? AND inspection_id = ?", key
                ).fetchone()[0]
                await upload(key[0], Path(row["path"]), metadata=metadata, url=url, on_url=remember)

            try:
                await self._retry(attempt)
            except UploadRefused as exc:
                self.db.execute(
                    "UPDATE evidence SET state = 'refused', detail = ?"
                    " WHERE sha256 = ? AND inspection_id = ?",
                    [str(exc), sha, iid],
                )
                continue
            self.db.execute(
                "UPDATE evidence SET state = 'uploaded', upload_url = NULL"
                " WHERE sha256 = ? AND inspection_id = ?",
                [sha, iid],
            )
            self._uploaded_for(sha, iid)
            done += 1
        return done

    def _uploaded_for(self, sha: str, inspection_id: str) -> None:
        """An upload just completed: the server's last list of missing files no longer
        holds it for that inspection (the next pull that asks says so too)."""
        missing = self.missing_on_server()
        left = [h for h in missing.get(inspection_id, []) if h != sha]
        if left:
            missing[inspection_id] = left
        else:
            missing.pop(inspection_id, None)
        self._set_meta("missing_evidence", json.dumps(missing, sort_keys=True))

    def wipe(self) -> None:
        """Forget everything (a revoked device)."""
        with self.db.conn:
            for table in ("records", "outbox", "results", "meta", "evidence"):
                self.db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names

    # --- sync ----------------------------------------------------------------------

    async def _retry(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """``call`` until it does not raise :class:`TransportError`, at most
        ``retries + 1`` times; between two, the backoff or the server's
        ``Retry-After`` (whichever is longer), times ``1 + jitter()``."""
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                return await call()
            except TransportError as exc:
                if attempt == self.retries:
                    raise
                wait = max(delay, exc.retry_after or 0.0)
                await self._sleep(wait * (1 + self._jitter()))
                delay = min(delay * 2, 30.0)
        raise AssertionError("unreachable")

    async def pull(self, *, check_evidence: bool = True) -> int:
        """Pull every page; returns how many changes were applied. With
        ``check_evidence``, a tablet that holds evidence files asks which of them the
        server still needs (answered on the last page) and queues those."""
        total = 0
        ask = check_evidence and self.db.execute("SELECT 1 FROM evidence").fetchone() is not None
        while True:
            request = PullRequest(
                cursor=self.cursor, limit=self.page_size, want_missing_evidence=ask
            )
            page: PullResponse = await self._retry(partial(self.transport.pull, request))
            if page.resync_required:
                with self.db.conn:
                    self.db.execute("DELETE FROM records")
                    self._set_meta("cursor", "")
                continue
            self._apply_page(page)
            total += len(page.changes)
            if not page.has_more:
                return total

    def _apply_page(self, page: PullResponse) -> None:
        with self.db.conn:
            for ref in page.evict:
                self.db.execute("DELETE FROM records WHERE kind = ? AND id = ?", [ref.kind, ref.id])
            for ch in page.changes:
                if ch.deleted:
                    # keep the tombstone's revision: an edit made after seeing the
                    # delete carries it as base_rev, so the server re-creates the record
                    self.db.execute(
                        "INSERT OR REPLACE INTO records (kind, id, rev, data) VALUES (?,?,?,?)",
                        [ch.kind, ch.id, ch.rev, "null"],
                    )
                else:
                    self.db.execute(
                        "INSERT OR REPLACE INTO records (kind, id, rev, data) VALUES (?,?,?,?)",
                        [ch.kind, ch.id, ch.rev, json.dumps(ch.data)],
                    )
            self._set_meta("cursor", page.cursor)
            self._merge_clock(page.hlc)
            if page.missing_evidence is not None:
                self._note_missing(page.missing_evidence)

    async def push(self) -> list[Any]:
        """Push the outbox in batches; acknowledged mutations leave it."""
        answered: list[Any] = []
        while True:
            batch = self.pending()[: self.batch_size]
            if not batch:
                return answered
            mutations = [
                Mutation(
                    mid=p["mid"],
                    kind=p["kind"],
                    id=p["id"],
                    op=p["op"],
                    base_rev=p["base_rev"],
                    fields=json.loads(p["fields"]),
                    hlc=p["hlc"],
                    device_time=datetime.fromisoformat(p["device_time"]),
                    reason=p["reason"],
                )
                for p in batch
            ]
            request = PushRequest(mutations=mutations)
            response: PushResponse = await self._retry(partial(self.transport.push, request))
            self._apply_results(batch, response)
            answered.extend(response.results)

    def _apply_results(self, batch: list[dict[str, Any]], response: PushResponse) -> None:
        by_mid = {r.mid: r for r in response.results}
        now = self._now().isoformat()
        with self.db.conn:
            for p in batch:
                result = by_mid.get(p["mid"])
                if result is None:
                    continue
                original = result.original if isinstance(result, Duplicate) else result
                if not isinstance(original, Applied | Merged | Conflicted | Rejected):
                    continue  # a status this client does not know: keep it pending
                self.db.execute("DELETE FROM outbox WHERE mid = ?", [p["mid"]])
                if isinstance(original, Conflicted | Rejected):
                    status = "conflict" if isinstance(original, Conflicted) else "rejected"
                    self.db.execute(
                        "INSERT OR REPLACE INTO results (mid, status, kind, id, detail, at)"
                        " VALUES (?,?,?,?,?,?)",
                        [
                            p["mid"],
                            status,
                            p["kind"],
                            p["id"],
                            msgspec.json.encode(original).decode(),
                            now,
                        ],
                    )
            self._merge_clock(response.hlc)

    async def sync(self) -> dict[str, int]:
        """Pull, push, pull, then upload evidence (records always go before their
        files). Raises :class:`DeviceRevoked` after wiping local data."""
        try:
            # the missing evidence is asked for once, by the pull that ends the sync
            pulled = await self.pull(check_evidence=not self.pending())
            pushed = await self.push()
            pulled += await self.pull() if pushed else 0
            uploaded = await self.upload_evidence()
        except DeviceRevoked:
            self.wipe()
            raise
        self._set_meta("last_sync", self._now().isoformat())
        return {
            "pulled": pulled,
            "pushed": len(pushed),
            "pending": len(self.pending()),
            "uploaded": uploaded,
        }

    def status(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "pending": len(self.pending()),
            "last_sync": self._meta("last_sync") or None,
            "conflicts": len(self.results("conflict")),
            "rejected": len(self.results("rejected")),
            "evidence_pending": len(self.evidence("pending")),
            "evidence_refused": len(self.evidence("refused")),
            "evidence_missing_on_server": sum(len(v) for v in self.missing_on_server().values()),
            "open_conflict_records": sum(
                1 for c in self.records("conflict").values() if c.get("status") == "open"
            ),
        }
