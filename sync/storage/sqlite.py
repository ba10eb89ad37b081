"""The embedded backend: SQLite through aiosqlite.

One writer connection behind an asyncio lock (so concurrent requests queue instead of
meeting "database is locked") and one reader connection; WAL lets reads run while a
write is in progress. Schema migrations run with sqlite-utils before the async
connections open.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import msgspec

from sync.audit import (
    GENESIS,
    SYSTEM,
    Actor,
    Anchor,
    AuditContext,
    Verification,
    diff,
    event_hash,
    verify,
)
from sync.errors import (
    AlreadyExists,
    InvalidInput,
    NotFound,
    QuotaExceeded,
    RevisionMismatch,
    StorageError,
)
from sync.models import (
    Device,
    EvidenceFile,
    EvidenceRef,
    Filter,
    RefreshToken,
    Role,
    StoredRecord,
    Upload,
    User,
)
from sync.storage.contract import BatchTx, Store, Transaction
from sync.storage.shared import (
    FIELD,
    Prefixed,
    audit_values,
    device_from_row,
    evidence_file_from_row,
    evidence_ref_from_row,
    join_data,
    now_text,
    record_from_row,
    scope_of,
    split_data,
    token_from_row,
    ts,
    upload_from_row,
    user_from_row,
    user_view,
    utc,
    write_op,
)
from sync.storage.sqlite_batch import (
    _AUDIT_SQL,
    _EVIDENCE_PATH,
    _HEAD_SQL,
    _batch_read,
    _group_write,
    _missing_evidence,
    _Queued,
    _run_on_connection,
    _stored_evidence,
    _with_actor,
    where_sql,
)
from sync.storage.sqlite_migrations import apply_migrations

__all__ = ["SQLiteStore"]

_AUTH_STATE_SQL = (
    "SELECT u.id, u.username, u.display_name, u.role, u.authority_id, u.password_hash,"
    " u.disabled, u.created_at, d.id AS d_id, d.user_id AS d_user_id, d.name AS d_name,"
    " d.platform AS d_platform, d.app_version AS d_app_version,"
    " d.registered_at AS d_registered_at, d.revoked_at AS d_revoked_at,"
    " d.last_seen_at AS d_last_seen_at"
    " FROM users u LEFT JOIN devices d ON d.id = ? WHERE u.id = ?"
)


_CHECKPOINT_EVERY = 8  # commits between background checkpoints
T = TypeVar("T")


async def _audit_async(db: aiosqlite.Connection, values: list[Any]) -> None:
    """Append one event to the chain inside the caller's write transaction."""
    cur = await db.execute(_HEAD_SQL)
    row = await cur.fetchone()
    head = str(row[0]) if row else GENESIS
    await db.execute(_AUDIT_SQL, (*values, head, event_hash(head, values)))


async def _audit_entity(
    db: aiosqlite.Connection,
    actor: Actor,
    kind: str,
    entity_id: str,
    op: str,
    old: dict[str, Any],
    new: dict[str, Any],
    *,
    inspection_id: str | None = None,
    context: AuditContext | None = None,
) -> None:
    """The audit event of a change to something that is not a record (a user, a
    device, a stored evidence file): no revision, no feed position."""
    await _audit_async(
        db,
        audit_values(
            actor,
            context or AuditContext(),
            seq=0,
            kind=kind,
            record_id=entity_id,
            inspection_id=inspection_id,
            rev=0,
            op=op,
            old=old,
            new=new,
            now=now_text(),
        ),
    )


class SQLiteStore(Store):
    """SQLite storage in one file.

    ``synchronous`` is SQLite's durability setting: ``FULL`` (default) survives power
    loss; ``NORMAL`` survives a killed process, which is what the crash test checks.
    """

    def __init__(self, path: str | Path, *, synchronous: str = "FULL", readers: int = 3) -> None:
        self.path = str(path)
        self.synchronous = synchronous
        self._writer: aiosqlite.Connection | None = None
        self._readers: list[aiosqlite.Connection] = []
        self._auth_conn: sqlite3.Connection | None = None  # see auth_state
        self._next_reader = 0
        self.reader_count = readers
        self._lock = asyncio.Lock()
        self._queued: list[_Queued] = []  # write batches waiting for the writer
        self._ckpt: aiosqlite.Connection | None = None  # see _after_commit
        self._ckpt_task: asyncio.Task[None] | None = None
        self._since_ckpt = 0

    # --- lifecycle -------------------------------------------------------------

    async def open(self) -> None:
        if self._writer is not None:
            return
        if self.path == ":memory:":
            raise StorageError(
                "an in-memory database cannot be shared by the writer and"
                " reader connections; use a file"
            )
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            await asyncio.to_thread(apply_migrations, self.path)
            self._writer = await self._connect()
            # the writer's commits never checkpoint: _after_commit does it on its own
            # connection and thread, off the path of the answer
            await self._writer.execute("PRAGMA wal_autocheckpoint=0")
            self._ckpt = await self._connect()
            self._readers = [await self._connect() for _ in range(max(1, self.reader_count))]
            self._auth_conn = self._connect_auth()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open database {self.path}", original=exc) from exc

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA busy_timeout=5000",
            f"PRAGMA synchronous={self.synchronous}",
        ):
            await conn.execute(pragma)
        return conn

    def _connect_auth(self) -> sqlite3.Connection:
        """A plain connection used on the event loop's own thread for the per-request
        authentication read: two primary-key lookups take microseconds, less than the
        hop to a reader thread and back. ``busy_timeout`` 0: if the database is ever
        busy for a reader (WAL recovery), ``auth_state`` takes the reader-thread path
        and waits there instead of blocking the loop."""
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout=0")
        conn.execute("PRAGMA query_only=ON")
        return conn

    async def close(self) -> None:
        if self._ckpt_task is not None:
            await asyncio.gather(self._ckpt_task, return_exceptions=True)
            self._ckpt_task = None
        for conn in (self._writer, self._ckpt, *self._readers):
            if conn is not None:
                await conn.close()
        if self._auth_conn is not None:
            self._auth_conn.close()
        self._auth_conn = None
        self._ckpt = None
        self._writer = None
        self._readers = []

    async def ping(self) -> None:
        await self._fetchone("SELECT 1")

    async def schema_version(self) -> int:
        row = await self._fetchone("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations")
        return int(row["v"]) if row else 0

    # --- plumbing --------------------------------------------------------------

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        """One serialised write transaction: BEGIN IMMEDIATE ... COMMIT, or ROLLBACK."""
        if self._writer is None:
            raise StorageError("store is not open")
        async with self._lock:
            db = self._writer
            try:
                await db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StorageError("cannot begin a transaction", original=exc) from exc
            try:
                yield db
            except BaseException as exc:
                await db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error) and not isinstance(exc, sqlite3.IntegrityError):
                    raise StorageError(f"write failed: {exc}", original=exc) from exc
                raise
            try:
                await db.execute("COMMIT")
            except sqlite3.Error as exc:
                await db.execute("ROLLBACK")
                raise StorageError("commit failed", original=exc) from exc
            self._after_commit()

    def _after_commit(self) -> None:
        """Every few commits, a PASSIVE checkpoint (WAL pages copied into the database
        file) on the checkpoint connection's thread. It never blocks the writer or
        readers, and durability does not depend on it (a commit is durable in the WAL);
        with SQLite's automatic checkpoint, every thousand pages one commit paid for
        writing 4 MB and two fsyncs before its answer."""
        self._since_ckpt += 1
        if self._since_ckpt < _CHECKPOINT_EVERY or self._ckpt is None:
            return
        if self._ckpt_task is not None and not self._ckpt_task.done():
            return
        self._since_ckpt = 0
        self._ckpt_task = asyncio.get_running_loop().create_task(self._checkpoint(self._ckpt))

    @staticmethod
    async def _checkpoint(conn: aiosqlite.Connection) -> None:
        # busy or closing: a later one catches up
        with contextlib.suppress(sqlite3.Error, ValueError):
            await conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _reader(self) -> aiosqlite.Connection:
        """Readers in turn: each has its own thread, so reads run side by side (WAL)."""
        if not self._readers:
            raise StorageError("store is not open")
        self._next_reader = (self._next_reader + 1) % len(self._readers)
        return self._readers[self._next_reader]

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        reader = self._reader()
        try:
            return list(await reader.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            raise StorageError(f"query failed: {exc}", original=exc) from exc

    async def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        rows = await self._fetchall(sql, params)
        return rows[0] if rows else None

    # --- users -----------------------------------------------------------------

    async def add_user(self, user: User, *, actor: Actor = SYSTEM) -> User:
        try:
            async with self._write() as db:
                await _audit_entity(db, actor, "user", user.id, "create", {}, user_view(user))
                await db.execute(
                    "INSERT INTO users (id, username, display_name, role, authority_id,"
                    " password_hash, disabled, created_at) VALUES (?,?,?,?,?,?,?,?)",
                    (
                        user.id,
                        user.username,
                        user.display_name,
                        user.role.value,
                        user.authority_id,
                        user.password_hash,
                        int(user.disabled),
                        user.created_at.isoformat(),
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(f"user {user.username!r} exists", field="username") from exc
        return user

    async def get_user(self, user_id: str) -> User | None:
        row = await self._fetchone("SELECT * FROM users WHERE id = ?", (user_id,))
        return user_from_row(row) if row else None

    async def find_user(self, username: str) -> User | None:
        row = await self._fetchone("SELECT * FROM users WHERE username = ?", (username,))
        return user_from_row(row) if row else None

    async def auth_state(
        self, user_id: str, device_id: str | None
    ) -> tuple[User | None, Device | None]:
        def both(conn: sqlite3.Connection) -> tuple[User | None, Device | None]:
            if device_id is None:
                u = conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
                return (user_from_row(u) if u else None, None)
            # one statement, so one read transaction (the WAL check and, after any
            # commit, the page-cache reload happen once, not twice)
            row = conn.execute(_AUTH_STATE_SQL, (device_id, user_id)).fetchone()
            if row is None:
                return (None, None)
            device = device_from_row(Prefixed(row, "d_")) if row["d_id"] is not None else None
            return (user_from_row(row), device)

        if self._auth_conn is not None:
            try:
                return both(self._auth_conn)
            except sqlite3.OperationalError:
                pass  # busy: read on a reader thread, which may wait
        reader = self._reader()
        try:
            result: tuple[User | None, Device | None] = await reader._execute(  # type: ignore[no-untyped-call]
                both, reader._conn
            )
        except sqlite3.Error as exc:
            raise StorageError(f"query failed: {exc}", original=exc) from exc
        return result

    async def list_users(self) -> list[User]:
        return [
            user_from_row(r) for r in await self._fetchall("SELECT * FROM users ORDER BY username")
        ]

    async def update_user(
        self,
        user_id: str,
        *,
        password_hash: str | None = None,
        disabled: bool | None = None,
        role: Role | None = None,
        authority_id: str | None = None,
        actor: Actor = SYSTEM,
    ) -> User:
        async with self._write() as db:
            cur = await db.execute(
                "SELECT disabled, role, authority_id FROM users WHERE id = ?", (user_id,)
            )
            before = await cur.fetchone()
            if before is not None:
                old: dict[str, Any] = {}
                new: dict[str, Any] = {}
                if password_hash is not None:  # the fact, never the hash
                    old["password"], new["password"] = "(set)", "(changed)"
                if disabled is not None and bool(before[0]) != disabled:
                    old["disabled"], new["disabled"] = bool(before[0]), disabled
                if role is not None and before[1] != role.value:
                    old["role"], new["role"] = before[1], role.value
                if authority_id is not None and before[2] != authority_id:
                    old["authority_id"], new["authority_id"] = before[2], authority_id
                await _audit_entity(db, actor, "user", user_id, "update", old, new)
            for column, value in (("role", role), ("authority_id", authority_id)):
                if value is not None:
                    await db.execute(
                        f"UPDATE users SET {column} = ? WHERE id = ?", (str(value), user_id)
                    )
            if password_hash is not None:
                await db.execute(
                    "UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id)
                )
            if disabled is not None:
                await db.execute(
                    "UPDATE users SET disabled = ? WHERE id = ?", (int(disabled), user_id)
                )
            was_admin = before is not None and before[1] == "admin" and not before[0]
            if was_admin and ("role" in new or new.get("disabled")):  # raising rolls back
                cur = await db.execute(
                    "SELECT 1 FROM users WHERE role = 'admin' AND disabled = 0 LIMIT 1"
                )
                if await cur.fetchone() is None:
                    raise InvalidInput(
                        f"{user_id} is the last active admin: appoint or enable another first",
                        field="role" if "role" in new else "disabled",
                    )
            cur = await db.execute("SELECT * FROM users WHERE id = ?", (user_id,))
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"no user {user_id!r}")
        return user_from_row(row)

    # --- devices ---------------------------------------------------------------

    async def add_device(self, device: Device, *, actor: Actor = SYSTEM) -> Device:
        try:
            async with self._write() as db:
                await _audit_entity(
                    db,
                    actor,
                    "device",
                    device.id,
                    "create",
                    {},
                    {
                        "user_id": device.user_id,
                        "name": device.name,
                        "platform": device.platform,
                    },
                )
                await db.execute(
                    "INSERT INTO devices (id, user_id, name, platform, app_version,"
                    " registered_at, revoked_at, last_seen_at) VALUES (?,?,?,?,?,?,?,?)",
                    (
                        device.id,
                        device.user_id,
                        device.name,
                        device.platform,
                        device.app_version,
                        device.registered_at.isoformat(),
                        ts(device.revoked_at),
                        ts(device.last_seen_at),
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(f"device {device.id!r} exists", field="id") from exc
        return device

    async def get_device(self, device_id: str) -> Device | None:
        row = await self._fetchone("SELECT * FROM devices WHERE id = ?", (device_id,))
        return device_from_row(row) if row else None

    async def list_devices(self, user_id: str | None = None) -> list[Device]:
        if user_id is None:
            rows = await self._fetchall("SELECT * FROM devices ORDER BY registered_at, id")
        else:
            rows = await self._fetchall(
                "SELECT * FROM devices WHERE user_id = ? ORDER BY registered_at, id", (user_id,)
            )
        return [device_from_row(r) for r in rows]

    async def revoke_device(self, device_id: str, at: datetime, *, actor: Actor = SYSTEM) -> Device:
        async with self._write() as db:
            cur = await db.execute("SELECT revoked_at FROM devices WHERE id = ?", (device_id,))
            before = await cur.fetchone()
            if before is not None and before[0] is None:
                revoked = {"revoked_at": at.isoformat()}
                await _audit_entity(
                    db, actor, "device", device_id, "revoke", {"revoked_at": None}, revoked
                )
            await db.execute(
                "UPDATE devices SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?",
                (at.isoformat(), device_id),
            )
            await db.execute(
                "UPDATE refresh_tokens SET revoked_at = COALESCE(revoked_at, ?)"
                " WHERE device_id = ?",
                (at.isoformat(), device_id),
            )
            cur = await db.execute("SELECT * FROM devices WHERE id = ?", (device_id,))
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"no device {device_id!r}")
        return device_from_row(row)

    async def touch_device(self, device_id: str, at: datetime, app_version: str | None) -> None:
        async with self._write() as db:
            await db.execute(
                "UPDATE devices SET last_seen_at = ?, app_version = COALESCE(?, app_version)"
                " WHERE id = ?",
                (at.isoformat(), app_version, device_id),
            )

    # --- refresh tokens --------------------------------------------------------

    async def add_refresh_token(self, token: RefreshToken) -> None:
        async with self._write() as db:
            await db.execute(
                "INSERT INTO refresh_tokens (token_hash, family_id, user_id, device_id,"
                " issued_at, expires_at, used_at, revoked_at) VALUES (?,?,?,?,?,?,?,?)",
                (
                    token.token_hash,
                    token.family_id,
                    token.user_id,
                    token.device_id,
                    token.issued_at.isoformat(),
                    token.expires_at.isoformat(),
                    ts(token.used_at),
                    ts(token.revoked_at),
                ),
            )

    async def use_refresh_token(self, token_hash: str, at: datetime) -> RefreshToken | None:
        async with self._write() as db:
            cur = await db.execute(
                "SELECT * FROM refresh_tokens WHERE token_hash = ?", (token_hash,)
            )
            row = await cur.fetchone()
            if row is None:
                return None
            before = token_from_row(row)
            if before.used_at is None:
                await db.execute(
                    "UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ?",
                    (at.isoformat(), token_hash),
                )
        return before

    async def revoke_token_family(self, family_id: str, at: datetime) -> int:
        async with self._write() as db:
            cur = await db.execute(
                "UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ?"
                " AND revoked_at IS NULL",
                (at.isoformat(), family_id),
            )
            return cur.rowcount

    # --- records ---------------------------------------------------------------

    @asynccontextmanager
    async def transaction(
        self, actor: Actor = SYSTEM, context: AuditContext | None = None
    ) -> AsyncIterator[Transaction]:
        async with self._write() as db:
            yield _SQLiteTransaction(db, actor, context or AuditContext())

    async def write_batch(self, fn: Callable[[BatchTx], T], *, actor: Actor = SYSTEM) -> T:
        """Group commit: batches that queue while the writer is busy run together,
        each in its own savepoint, under one ``COMMIT`` (one fsync). A batch that
        raises rolls back to its savepoint alone; every answer is given only after the
        commit, and if the commit fails every batch of the group gets the error.
        Each batch's writes are audited as its own ``actor``'s."""
        if self._writer is None:
            raise StorageError("store is not open")
        mine = _Queued(
            lambda tx: fn(_with_actor(tx, actor)), asyncio.get_running_loop().create_future()
        )
        # if this caller is cancelled after its batch was taken into a group, nobody
        # awaits the answer: retrieve it so a failure is not reported as unretrieved
        mine.done.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._queued.append(mine)
        try:
            async with self._lock:
                if not mine.done.done():  # nobody took it along: lead a group
                    group, self._queued = self._queued, []
                    # shielded: were this request cancelled, the others still get
                    # their answers (the group runs to its end on the writer's thread)
                    await asyncio.shield(self._run_group(group))
        except asyncio.CancelledError:
            if mine in self._queued:  # still waiting: it will not run
                self._queued.remove(mine)
            raise
        result: T = await mine.done
        return result

    async def _run_group(self, group: list[_Queued]) -> None:
        assert self._writer is not None
        try:
            # One hop to the writer's thread for the whole group (aiosqlite runs the
            # function on its connection thread; see _run_on_connection).
            outcomes = await _run_on_connection(self._writer, _group_write, [q.fn for q in group])
        except BaseException as exc:  # the commit (or the transaction) failed: all fail
            for q in group:
                if not q.done.done():
                    q.done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        self._after_commit()
        for q, (ok, value) in zip(group, outcomes, strict=True):
            if q.done.done():
                continue
            if ok:
                q.done.set_result(value)
            else:
                q.done.set_exception(value)

    async def audit_events(
        self,
        *,
        kind: str | None = None,
        record_id: str | None = None,
        inspection_id: str | None = None,
        after_id: int = 0,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        where = ["id > ?"]
        params: list[Any] = [after_id]
        for column, value in (
            ("kind", kind),
            ("record_id", record_id),
            ("inspection_id", inspection_id),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        rows = await self._fetchall(
            f"SELECT * FROM history WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
            (*params, limit),
        )
        return [dict(r) for r in rows]

    async def verify_audit(self, anchors: Sequence[Anchor] = ()) -> Verification:
        def walk(conn: sqlite3.Connection) -> Verification:
            conn.execute("BEGIN")
            try:
                cur = conn.execute("SELECT * FROM history ORDER BY id")
                return verify((dict(r) for r in cur), anchors)
            finally:
                conn.execute("ROLLBACK")

        return await self._on_reader(walk)

    async def audit_head(self) -> tuple[int, str] | None:
        row = await self._fetchone("SELECT id, hash FROM history ORDER BY id DESC LIMIT 1")
        return (int(row["id"]), str(row["hash"])) if row else None

    async def read_batch(self, fn: Callable[[BatchTx], T]) -> T:
        return await _run_on_connection(self._reader(), _batch_read, fn)

    async def get_record(self, kind: str, record_id: str) -> StoredRecord | None:
        row = await self._fetchone(
            "SELECT * FROM records WHERE kind = ? AND id = ? AND deleted = 0", (kind, record_id)
        )
        return record_from_row(row) if row else None

    async def list_records(
        self,
        kind: str,
        filters: Sequence[Filter] = (),
        *,
        limit: int | None = None,
        offset: int = 0,
        order_by: str = "id",
    ) -> list[StoredRecord]:
        where, params = where_sql(kind, filters)
        desc = order_by.startswith("-")
        field = order_by.lstrip("-")
        if not FIELD.match(field):
            raise ValueError(f"bad order field {field!r}")
        col = "id" if field == "id" else f"json_extract(data, '$.{field}')"
        direction = "DESC" if desc else "ASC"
        sql = f"SELECT * FROM records WHERE {where} ORDER BY {col} {direction}, id {direction}"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params += [limit, offset]
        return [record_from_row(r) for r in await self._fetchall(sql, params)]

    async def count_records(self, kind: str, filters: Sequence[Filter] = ()) -> int:
        where, params = where_sql(kind, filters)
        row = await self._fetchone(f"SELECT COUNT(*) AS n FROM records WHERE {where}", params)
        return int(row["n"]) if row else 0

    # --- evidence ----------------------------------------------------------------

    async def _on_reader(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` with a reader's sqlite3 connection on its own thread (one hop)."""
        reader = self._reader()
        try:
            result: T = await reader._execute(fn, reader._conn)  # type: ignore[no-untyped-call]
        except sqlite3.Error as exc:
            raise StorageError(f"query failed: {exc}", original=exc) from exc
        return result

    async def add_upload(self, upload: Upload, *, quota: int | None = None) -> None:
        try:
            async with self._write() as db:
                if quota is not None:
                    cur = await db.execute(
                        _USAGE_SQL,
                        (upload.inspection_id, upload.inspection_id, utc(upload.created_at)),
                    )
                    row = await cur.fetchone()
                    used = int(row[0]) if row else 0
                    if used + upload.length > quota:
                        raise QuotaExceeded(
                            f"inspection {upload.inspection_id!r} holds {used} bytes of"
                            f" evidence; {upload.length} more would pass its limit of {quota}",
                            field="Upload-Length",
                            used=used,
                            limit=quota,
                        )
                await db.execute(
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
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(f"upload {upload.id!r} exists", field="id") from exc

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
    ) -> None:
        async with self._write() as db:
            cur = await db.execute(
                'UPDATE uploads SET "offset" = ?, media_type = COALESCE(?, media_type),'
                " expires_at = COALESCE(?, expires_at) WHERE id = ?",
                (offset, media_type, utc(expires_at), upload_id),
            )
            if cur.rowcount == 0:
                raise NotFound(f"no upload {upload_id!r}")

    async def delete_upload(self, upload_id: str) -> bool:
        async with self._write() as db:
            cur = await db.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))
            return cur.rowcount > 0

    async def complete_upload(
        self,
        upload_id: str,
        evidence: EvidenceFile,
        ref: EvidenceRef,
        at: datetime,
        *,
        actor: Actor = SYSTEM,
    ) -> bool:
        async with self._write() as db:
            cur = await db.execute(
                'UPDATE uploads SET completed_at = ?, "offset" = length,'
                " media_type = COALESCE(media_type, ?) WHERE id = ?",
                (utc(at), evidence.media_type, upload_id),
            )
            if cur.rowcount == 0:
                raise NotFound(f"no upload {upload_id!r}")
            cur = await db.execute(
                "INSERT OR IGNORE INTO evidence (sha256, size, media_type, inspection_id,"
                " uploaded_by, device_id, captured_at, latitude, longitude, exif_captured_at,"
                " exif_latitude, exif_longitude, filename_hint, created_at, thumbnail)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
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
            new = cur.rowcount > 0
            restored = False
            if not new:  # the bytes just stored bring back a file that was lost
                cur = await db.execute(
                    "UPDATE evidence SET lost_at = NULL WHERE sha256 = ? AND lost_at IS NOT NULL",
                    (evidence.sha256,),
                )
                restored = cur.rowcount > 0
            await _audit_entity(
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
            await db.execute(
                "INSERT OR IGNORE INTO evidence_refs (sha256, inspection_id, uploaded_by,"
                " device_id, captured_at, latitude, longitude, filename_hint, created_at)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
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
        return new

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
        async with self._write() as db:
            cur = await db.execute("SELECT lost_at FROM evidence WHERE sha256 = ?", (sha256,))
            row = await cur.fetchone()
            if row is None:
                raise NotFound(f"no evidence {sha256}")
            before = row["lost_at"]
            if (before is None) == (at is None):
                return False  # already so
            after = None if at is None else utc(at)
            await db.execute("UPDATE evidence SET lost_at = ? WHERE sha256 = ?", (after, sha256))
            await _audit_entity(
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
        rows = await self._fetchall(
            "SELECT r.kind, r.id, r.inspection_id FROM records r"
            " WHERE r.kind IN ('finding', 'response') AND r.deleted = 0"
            f" AND EXISTS (SELECT 1 FROM json_each(r.data, {_EVIDENCE_PATH}) j"
            " WHERE j.value = ?) ORDER BY r.inspection_id, r.kind, r.id",
            (sha256,),
        )
        return [(r[0], r[1], r[2]) for r in rows]

    async def missing_evidence(self, inspection_ids: Sequence[str]) -> dict[str, list[str]]:
        ids = list(inspection_ids)
        return await self._on_reader(lambda conn: _missing_evidence(conn, ids))

    async def stored_evidence(self, hashes: Sequence[str]) -> set[str]:
        wanted = list(hashes)
        return await self._on_reader(lambda conn: _stored_evidence(conn, wanted))


class _SQLiteTransaction(Transaction):
    def __init__(self, db: aiosqlite.Connection, actor: Actor, context: AuditContext) -> None:
        self._db = db
        self.actor = actor
        self.context = context

    async def _audit(
        self,
        rec: StoredRecord,
        old: dict[str, Any] | None,
        old_deleted: bool,
        now: str,
    ) -> None:
        before, after = diff(old, None if rec.deleted else rec.data)
        await _audit_async(
            self._db,
            audit_values(
                self.actor,
                self.context,
                seq=rec.seq,
                kind=rec.kind,
                record_id=rec.id,
                inspection_id=scope_of(rec.kind, rec.id, rec.data),
                rev=rec.rev,
                op=write_op(old_deleted, rec.deleted),
                old=before,
                new=after,
                now=now,
            ),
        )

    async def _row(self, kind: str, record_id: str) -> sqlite3.Row | None:
        cur = await self._db.execute(
            "SELECT * FROM records WHERE kind = ? AND id = ?", (kind, record_id)
        )
        return await cur.fetchone()

    async def get_record(self, kind: str, record_id: str) -> StoredRecord | None:
        row = await self._row(kind, record_id)
        return record_from_row(row) if row is not None and not row["deleted"] else None

    async def create_record(self, kind: str, record_id: str, data: dict[str, Any]) -> StoredRecord:
        now = now_text()
        if await self._row(kind, record_id) is not None:
            raise AlreadyExists(f"{kind} {record_id!r} exists", field="id")
        seq = await _next_seq(self._db)
        await self._db.execute(
            "INSERT INTO records (kind, id, data, meta, rev, seq, deleted, created_at,"
            " updated_at, inspection_id) VALUES (?,?,?,?,?,?,0,?,?,?)",
            (
                kind,
                record_id,
                *split_data(data),
                1,
                seq,
                now,
                now,
                scope_of(kind, record_id, data),
            ),
        )
        at = datetime.fromisoformat(now)
        rec = StoredRecord(
            kind=kind, id=record_id, data=data, rev=1, seq=seq, created_at=at, updated_at=at
        )
        await self._audit(rec, None, True, now)
        return rec

    async def _replace(
        self, kind: str, record_id: str, data: dict[str, Any] | None, expect_rev: int | None
    ) -> StoredRecord:
        row = await self._row(kind, record_id)
        if row is None or row["deleted"]:
            raise NotFound(f"no {kind} {record_id!r}")
        if expect_rev is not None and row["rev"] != expect_rev:
            raise RevisionMismatch(
                f"{kind} {record_id!r} is at rev {row['rev']}, not {expect_rev}",
                current_rev=row["rev"],
            )
        now = now_text()
        seq = await _next_seq(self._db)
        old_data = join_data(row["data"], row["meta"])
        new_data = old_data if data is None else data
        await self._db.execute(
            "UPDATE records SET data = ?, meta = ?, rev = rev + 1, seq = ?, deleted = ?,"
            " updated_at = ?, inspection_id = ? WHERE kind = ? AND id = ?",
            (
                *split_data(new_data),
                seq,
                int(data is None),
                now,
                scope_of(kind, record_id, new_data),
                kind,
                record_id,
            ),
        )
        rec = StoredRecord(
            kind=kind,
            id=record_id,
            data=new_data,
            rev=row["rev"] + 1,
            seq=seq,
            deleted=data is None,
            created_at=datetime.fromisoformat(row["created_at"]),
            updated_at=datetime.fromisoformat(now),
        )
        await self._audit(rec, old_data, False, now)
        return rec

    async def update_record(
        self, kind: str, record_id: str, data: dict[str, Any], *, expect_rev: int | None = None
    ) -> StoredRecord:
        return await self._replace(kind, record_id, data, expect_rev)

    async def delete_record(
        self, kind: str, record_id: str, *, expect_rev: int | None = None
    ) -> StoredRecord:
        return await self._replace(kind, record_id, None, expect_rev)


async def _next_seq(db: aiosqlite.Connection) -> int:
    cur = await db.execute("UPDATE seq_counter SET value = value + 1 RETURNING value")
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


# Bytes an inspection holds: its referenced files once each, plus its open uploads.
_USAGE_SQL = (
    "SELECT (SELECT COALESCE(SUM(e.size), 0) FROM evidence_refs f"
    " JOIN evidence e ON e.sha256 = f.sha256 WHERE f.inspection_id = ?)"
    " + (SELECT COALESCE(SUM(length), 0) FROM uploads WHERE inspection_id = ?"
    " AND completed_at IS NULL AND expires_at > ?)"
)
