"""The embedded backend: SQLite through aiosqlite.

One writer connection behind an asyncio lock (so concurrent requests queue instead of
meeting "database is locked") and one reader connection; WAL lets reads run while a
write is in progress. Schema migrations run with sqlite-utils before the async
connections open.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import msgspec

from sync._migrations import apply_migrations
from sync.audit import (
    GENESIS,
    HASHED,
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
    FeedRow,
    Filter,
    RefreshToken,
    Role,
    StoredRecord,
    Upload,
    User,
    is_bookkeeping,
)
from sync.store import BatchTx, Store, Transaction

__all__ = ["SQLiteStore"]

_AUTH_STATE_SQL = (
    "SELECT u.id, u.username, u.display_name, u.role, u.authority_id, u.password_hash,"
    " u.disabled, u.created_at, d.id AS d_id, d.user_id AS d_user_id, d.name AS d_name,"
    " d.platform AS d_platform, d.app_version AS d_app_version,"
    " d.registered_at AS d_registered_at, d.revoked_at AS d_revoked_at,"
    " d.last_seen_at AS d_last_seen_at"
    " FROM users u LEFT JOIN devices d ON d.id = ? WHERE u.id = ?"
)


class _Prefixed:
    """Columns ``prefix + name`` of a row, read as ``name``."""

    __slots__ = ("prefix", "row")

    def __init__(self, row: sqlite3.Row, prefix: str) -> None:
        self.row = row
        self.prefix = prefix

    def __getitem__(self, name: str) -> Any:
        return self.row[self.prefix + name]


_CHECKPOINT_EVERY = 8  # commits between background checkpoints
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
T = TypeVar("T")


def scope_of(kind: str, record_id: str, data: dict[str, Any] | None) -> str | None:
    """The inspection a record belongs to (its change-feed scope key), or None."""
    if kind == "inspection":
        return record_id
    value = (data or {}).get("inspection_id")
    return value if isinstance(value, str) else None


_decode = msgspec.json.Decoder(dict[str, Any]).decode
_encode = msgspec.json.Encoder().encode


def _split(data: dict[str, Any]) -> tuple[str, str]:
    """A record's data as stored: (public JSON, bookkeeping JSON). Bookkeeping fields
    (``_stamps``, ``_conflict_ids``, ... : names starting with ``_``) live in the ``meta``
    column, so that ``data`` holds exactly what clients see and a pull page splices it
    as it is (``feed_json``)."""
    public: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    for k, v in data.items():
        (meta if is_bookkeeping(k) else public)[k] = v
    return _encode(public).decode(), _encode(meta).decode() if meta else "{}"


def _join(data: str, meta: str) -> dict[str, Any]:
    """The inverse of :func:`_split`: the whole record data, bookkeeping included."""
    out = _decode(data)
    if meta != "{}":
        out.update(_decode(meta))
    return out


def _now() -> str:
    return datetime.now(UTC).isoformat()


_HEAD_SQL = "SELECT hash FROM history ORDER BY id DESC LIMIT 1"
_AUDIT_SQL = (
    f"INSERT INTO history ({', '.join(HASHED)}, prev_hash, hash)"
    f" VALUES ({', '.join('?' * (len(HASHED) + 2))})"
)
_json_text = msgspec.json.Encoder()


def _event(
    actor: Actor,
    ctx: AuditContext,
    *,
    seq: int,
    kind: str,
    record_id: str,
    inspection_id: str | None,
    rev: int,
    op: str,
    old: dict[str, Any],
    new: dict[str, Any],
    now: str,
) -> list[Any]:
    """One audit event's values, in :data:`sync.audit.HASHED` order."""
    return [
        seq,
        kind,
        record_id,
        inspection_id,
        rev,
        op,
        ctx.mid,
        ctx.batch_id,
        actor.user_id,
        actor.role,
        actor.device_id,
        ctx.hlc,
        ctx.device_time,
        ctx.received_at or now,
        ctx.reason,
        _json_text.encode(old).decode(),
        _json_text.encode(new).decode(),
    ]


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
        _event(
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
            now=_now(),
        ),
    )


def _op(old_deleted: bool, deleted: bool) -> str:
    """What a write did: ``old_deleted`` is true when there was no live record."""
    if deleted:
        return "delete"
    return "create" if old_deleted else "update"


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


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

    @staticmethod
    def _user(row: sqlite3.Row) -> User:
        return User(
            id=row["id"],
            username=row["username"],
            display_name=row["display_name"],
            role=Role(row["role"]),
            authority_id=row["authority_id"],
            password_hash=row["password_hash"],
            disabled=bool(row["disabled"]),
            created_at=datetime.fromisoformat(row["created_at"]),
        )

    @staticmethod
    def _user_view(user: User) -> dict[str, Any]:
        return {
            "username": user.username,
            "display_name": user.display_name,
            "role": user.role.value,
            "authority_id": user.authority_id,
            "disabled": user.disabled,
        }

    async def add_user(self, user: User, *, actor: Actor = SYSTEM) -> User:
        try:
            async with self._write() as db:
                await _audit_entity(db, actor, "user", user.id, "create", {}, self._user_view(user))
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
        return self._user(row) if row else None

    async def find_user(self, username: str) -> User | None:
        row = await self._fetchone("SELECT * FROM users WHERE username = ?", (username,))
        return self._user(row) if row else None

    async def auth_state(
        self, user_id: str, device_id: str | None
    ) -> tuple[User | None, Device | None]:
        def both(conn: sqlite3.Connection) -> tuple[User | None, Device | None]:
            if device_id is None:
                u = conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
                return (self._user(u) if u else None, None)
            # one statement, so one read transaction (the WAL check and, after any
            # commit, the page-cache reload happen once, not twice)
            row = conn.execute(_AUTH_STATE_SQL, (device_id, user_id)).fetchone()
            if row is None:
                return (None, None)
            device = self._device(_Prefixed(row, "d_")) if row["d_id"] is not None else None
            return (self._user(row), device)

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
            self._user(r) for r in await self._fetchall("SELECT * FROM users ORDER BY username")
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
        return self._user(row)

    # --- devices ---------------------------------------------------------------

    @staticmethod
    def _device(row: sqlite3.Row | _Prefixed) -> Device:
        return Device(
            id=row["id"],
            user_id=row["user_id"],
            name=row["name"],
            platform=row["platform"],
            app_version=row["app_version"],
            registered_at=datetime.fromisoformat(row["registered_at"]),
            revoked_at=_dt(row["revoked_at"]),
            last_seen_at=_dt(row["last_seen_at"]),
        )

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
                        _ts(device.revoked_at),
                        _ts(device.last_seen_at),
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(f"device {device.id!r} exists", field="id") from exc
        return device

    async def get_device(self, device_id: str) -> Device | None:
        row = await self._fetchone("SELECT * FROM devices WHERE id = ?", (device_id,))
        return self._device(row) if row else None

    async def list_devices(self, user_id: str | None = None) -> list[Device]:
        if user_id is None:
            rows = await self._fetchall("SELECT * FROM devices ORDER BY registered_at, id")
        else:
            rows = await self._fetchall(
                "SELECT * FROM devices WHERE user_id = ? ORDER BY registered_at, id", (user_id,)
            )
        return [self._device(r) for r in rows]

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
        return self._device(row)

    async def touch_device(self, device_id: str, at: datetime, app_version: str | None) -> None:
        async with self._write() as db:
            await db.execute(
                "UPDATE devices SET last_seen_at = ?, app_version = COALESCE(?, app_version)"
                " WHERE id = ?",
                (at.isoformat(), app_version, device_id),
            )

    # --- refresh tokens --------------------------------------------------------

    @staticmethod
    def _token(row: sqlite3.Row) -> RefreshToken:
        return RefreshToken(
            token_hash=row["token_hash"],
            family_id=row["family_id"],
            user_id=row["user_id"],
            device_id=row["device_id"],
            issued_at=datetime.fromisoformat(row["issued_at"]),
            expires_at=datetime.fromisoformat(row["expires_at"]),
            used_at=_dt(row["used_at"]),
            revoked_at=_dt(row["revoked_at"]),
        )

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
                    _ts(token.used_at),
                    _ts(token.revoked_at),
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
            before = self._token(row)
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
        return _record(row) if row else None

    @staticmethod
    def _where(kind: str, filters: Sequence[Filter]) -> tuple[str, list[Any]]:
        clauses = ["kind = ?", "deleted = 0"]
        params: list[Any] = [kind]
        for f in filters:
            if not _FIELD.match(f.field):
                raise ValueError(f"bad filter field {f.field!r}")
            col = "id" if f.field == "id" else f"json_extract(data, '$.{f.field}')"
            if f.op == "eq":
                clauses.append(f"{col} = ?")
                params.append(f.value)
            elif f.op == "ne":
                clauses.append(f"{col} IS NOT ?")
                params.append(f.value)
            elif f.op == "gte":
                clauses.append(f"{col} >= ?")
                params.append(f.value)
            elif f.op == "lte":
                clauses.append(f"{col} <= ?")
                params.append(f.value)
            elif f.op == "in":
                values = list(f.value)
                if not values:
                    clauses.append("0")
                    continue
                clauses.append(f"{col} IN ({','.join('?' * len(values))})")
                params.extend(values)
            elif f.op == "contains":
                clauses.append(
                    f"EXISTS (SELECT 1 FROM json_each(data, '$.{f.field}') WHERE value = ?)"
                )
                params.append(f.value)
            else:  # pragma: no cover - Filter.op is a Literal
                raise ValueError(f"bad filter op {f.op!r}")
        return " AND ".join(clauses), params

    async def list_records(
        self,
        kind: str,
        filters: Sequence[Filter] = (),
        *,
        limit: int | None = None,
        offset: int = 0,
        order_by: str = "id",
    ) -> list[StoredRecord]:
        where, params = self._where(kind, filters)
        desc = order_by.startswith("-")
        field = order_by.lstrip("-")
        if not _FIELD.match(field):
            raise ValueError(f"bad order field {field!r}")
        col = "id" if field == "id" else f"json_extract(data, '$.{field}')"
        direction = "DESC" if desc else "ASC"
        sql = f"SELECT * FROM records WHERE {where} ORDER BY {col} {direction}, id {direction}"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params += [limit, offset]
        return [_record(r) for r in await self._fetchall(sql, params)]

    async def count_records(self, kind: str, filters: Sequence[Filter] = ()) -> int:
        where, params = self._where(kind, filters)
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
                        (upload.inspection_id, upload.inspection_id, _utc(upload.created_at)),
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
                        _utc(upload.created_at),
                        _utc(upload.expires_at),
                        _utc(upload.completed_at),
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(f"upload {upload.id!r} exists", field="id") from exc

    async def get_upload(self, upload_id: str) -> Upload | None:
        row = await self._fetchone("SELECT * FROM uploads WHERE id = ?", (upload_id,))
        return _upload(row) if row else None

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
                (offset, media_type, _utc(expires_at), upload_id),
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
                (_utc(at), evidence.media_type, upload_id),
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
                    _utc(evidence.created_at),
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
                context=AuditContext(received_at=_utc(at)),
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
                    _utc(ref.created_at),
                ),
            )
        return new

    async def expired_uploads(self, now: datetime) -> list[Upload]:
        rows = await self._fetchall(
            "SELECT * FROM uploads WHERE expires_at <= ? ORDER BY created_at, id", (_utc(now),)
        )
        return [_upload(r) for r in rows]

    async def get_evidence(self, sha256: str) -> EvidenceFile | None:
        row = await self._fetchone("SELECT * FROM evidence WHERE sha256 = ?", (sha256,))
        return None if row is None else _evidence_file(row)

    async def evidence_files(self, after: str = "", limit: int = 1000) -> list[EvidenceFile]:
        rows = await self._fetchall(
            "SELECT * FROM evidence WHERE sha256 > ? ORDER BY sha256 LIMIT ?", (after, limit)
        )
        return [_evidence_file(r) for r in rows]

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
            after = None if at is None else _utc(at)
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
        return [
            EvidenceRef(
                sha256=r["sha256"],
                inspection_id=r["inspection_id"],
                uploaded_by=r["uploaded_by"],
                device_id=r["device_id"],
                captured_at=r["captured_at"],
                latitude=r["latitude"],
                longitude=r["longitude"],
                filename_hint=r["filename_hint"] or "",
                created_at=datetime.fromisoformat(r["created_at"]),
            )
            for r in rows
        ]

    async def evidence_usage(self, inspection_id: str, now: datetime) -> int:
        row = await self._fetchone(_USAGE_SQL, (inspection_id, inspection_id, _utc(now)))
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
            _event(
                self.actor,
                self.context,
                seq=rec.seq,
                kind=rec.kind,
                record_id=rec.id,
                inspection_id=scope_of(rec.kind, rec.id, rec.data),
                rev=rec.rev,
                op=_op(old_deleted, rec.deleted),
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
        return _record(row) if row is not None and not row["deleted"] else None

    async def create_record(self, kind: str, record_id: str, data: dict[str, Any]) -> StoredRecord:
        now = _now()
        if await self._row(kind, record_id) is not None:
            raise AlreadyExists(f"{kind} {record_id!r} exists", field="id")
        seq = await _next_seq(self._db)
        await self._db.execute(
            "INSERT INTO records (kind, id, data, meta, rev, seq, deleted, created_at,"
            " updated_at, inspection_id) VALUES (?,?,?,?,?,?,0,?,?,?)",
            (
                kind,
                record_id,
                *_split(data),
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
        now = _now()
        seq = await _next_seq(self._db)
        old_data = _join(row["data"], row["meta"])
        new_data = old_data if data is None else data
        await self._db.execute(
            "UPDATE records SET data = ?, meta = ?, rev = rev + 1, seq = ?, deleted = ?,"
            " updated_at = ?, inspection_id = ? WHERE kind = ? AND id = ?",
            (
                *_split(new_data),
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


# --- evidence helpers ------------------------------------------------------------------

# The JSON path of the evidence hashes a record names, by kind (finding or response).
_EVIDENCE_PATH = "CASE r.kind WHEN 'finding' THEN '$.evidence_hashes' ELSE '$.evidence' END"

# Bytes an inspection holds: its referenced files once each, plus its open uploads.
_USAGE_SQL = (
    "SELECT (SELECT COALESCE(SUM(e.size), 0) FROM evidence_refs f"
    " JOIN evidence e ON e.sha256 = f.sha256 WHERE f.inspection_id = ?)"
    " + (SELECT COALESCE(SUM(length), 0) FROM uploads WHERE inspection_id = ?"
    " AND completed_at IS NULL AND expires_at > ?)"
)


def _utc(value: datetime | None) -> str | None:
    """A timestamp as text that sorts as time does (UTC, always with microseconds)."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _upload(row: sqlite3.Row) -> Upload:
    return Upload(
        id=row["id"],
        sha256=row["sha256"],
        length=row["length"],
        offset=row["offset"],
        media_type=row["media_type"],
        inspection_id=row["inspection_id"],
        user_id=row["user_id"],
        device_id=row["device_id"],
        metadata=msgspec.json.decode(row["metadata"] or "{}", type=dict[str, str]),
        created_at=datetime.fromisoformat(row["created_at"]),
        expires_at=datetime.fromisoformat(row["expires_at"]),
        completed_at=_dt(row["completed_at"]),
    )


def _evidence_file(row: sqlite3.Row) -> EvidenceFile:
    lost = row["lost_at"]
    return EvidenceFile(
        sha256=row["sha256"],
        size=row["size"],
        media_type=row["media_type"],
        inspection_id=row["inspection_id"],
        uploaded_by=row["uploaded_by"],
        device_id=row["device_id"],
        captured_at=row["captured_at"],
        latitude=row["latitude"],
        longitude=row["longitude"],
        exif_captured_at=row["exif_captured_at"],
        exif_latitude=row["exif_latitude"],
        exif_longitude=row["exif_longitude"],
        filename_hint=row["filename_hint"] or "",
        created_at=datetime.fromisoformat(row["created_at"]),
        thumbnail=bool(row["thumbnail"]),
        lost_at=datetime.fromisoformat(lost) if lost else None,
    )


def _missing_evidence(db: sqlite3.Connection, inspection_ids: list[str]) -> dict[str, list[str]]:
    missing: dict[str, list[str]] = {}
    for start in range(0, len(inspection_ids), 500):
        chunk = inspection_ids[start : start + 500]
        rows = db.execute(
            "SELECT DISTINCT r.inspection_id, j.value FROM records r,"
            f" json_each(r.data, {_EVIDENCE_PATH}) j"
            f" WHERE r.inspection_id IN ({','.join('?' * len(chunk))})"
            " AND r.kind IN ('finding', 'response') AND r.deleted = 0 AND j.type = 'text'"
            " AND NOT EXISTS (SELECT 1 FROM evidence_refs f JOIN evidence e"
            " ON e.sha256 = f.sha256 AND e.lost_at IS NULL"
            " WHERE f.sha256 = j.value AND f.inspection_id = r.inspection_id)"
            " ORDER BY r.inspection_id, j.value",
            chunk,
        ).fetchall()
        for iid, sha in rows:
            missing.setdefault(iid, []).append(sha)
    return missing


def _stored_evidence(db: sqlite3.Connection, hashes: list[str]) -> set[str]:
    found: set[str] = set()
    unique = list(dict.fromkeys(hashes))
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        rows = db.execute(
            f"SELECT sha256 FROM evidence WHERE sha256 IN ({','.join('?' * len(chunk))})"
            " AND lost_at IS NULL",
            chunk,
        ).fetchall()
        found.update(r[0] for r in rows)
    return found


def _record(row: sqlite3.Row) -> StoredRecord:
    return StoredRecord(
        kind=row["kind"],
        id=row["id"],
        data=_join(row["data"], row["meta"]),
        rev=row["rev"],
        seq=row["seq"],
        deleted=bool(row["deleted"]),
        created_at=datetime.fromisoformat(row["created_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
    )


async def _next_seq(db: aiosqlite.Connection) -> int:
    cur = await db.execute("UPDATE seq_counter SET value = value + 1 RETURNING value")
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def _run_on_connection(conn: aiosqlite.Connection, runner: Callable[..., T], fn: Any) -> T:
    """Run ``runner(sqlite3_connection, fn)`` on the aiosqlite connection's own thread.

    aiosqlite serialises everything on one thread per connection; ``_execute`` is how
    it runs a callable there. Using it keeps the batch on the same connection (and
    thread) as every other query, in one hop instead of one per statement.
    """
    raw = conn._conn
    try:
        result: T = await conn._execute(runner, raw, fn)  # type: ignore[no-untyped-call]
    except sqlite3.Error as exc:
        raise StorageError(f"batch failed: {exc}", original=exc) from exc
    return result


class _Queued:
    """A batch waiting for the writer, and where its answer goes."""

    __slots__ = ("done", "fn")

    def __init__(self, fn: Callable[[BatchTx], Any], done: asyncio.Future[Any]) -> None:
        self.fn = fn
        self.done = done


def _group_write(
    raw: sqlite3.Connection, fns: list[Callable[[BatchTx], Any]]
) -> list[tuple[bool, Any]]:
    """Run batches one after the other in one transaction, each in a savepoint, then
    commit once. Returns (True, result) or (False, exception) per batch; raises if the
    transaction itself fails (then nothing is committed)."""
    if len(fns) == 1:  # the common case when the writer is idle: no savepoint
        try:
            return [(True, _batch_write(raw, fns[0]))]
        except sqlite3.Error as exc:
            return [(False, StorageError(f"batch failed: {exc}", original=exc))]
        except Exception as exc:
            return [(False, exc)]
    outcomes: list[tuple[bool, Any]] = []
    raw.execute("BEGIN IMMEDIATE")
    try:
        for fn in fns:
            raw.execute("SAVEPOINT batch")
            try:
                batch = _SQLiteBatch(raw, writable=True)
                result = fn(batch)
                batch.finish()
            except Exception as exc:
                raw.execute("ROLLBACK TO batch")
                raw.execute("RELEASE batch")
                if isinstance(exc, sqlite3.Error):
                    exc = StorageError(f"batch failed: {exc}", original=exc)
                outcomes.append((False, exc))
                continue
            raw.execute("RELEASE batch")
            outcomes.append((True, result))
        raw.execute("COMMIT")
    except BaseException:
        if raw.in_transaction:
            raw.execute("ROLLBACK")
        raise
    return outcomes


def _batch_write(raw: sqlite3.Connection, fn: Callable[[BatchTx], T]) -> T:
    raw.execute("BEGIN IMMEDIATE")
    try:
        batch = _SQLiteBatch(raw, writable=True)
        result = fn(batch)
        batch.finish()
        raw.execute("COMMIT")
    except BaseException:
        if raw.in_transaction:
            raw.execute("ROLLBACK")
        raise
    return result


def _batch_read(raw: sqlite3.Connection, fn: Callable[[BatchTx], T]) -> T:
    raw.execute("BEGIN")
    try:
        return fn(_SQLiteBatch(raw, writable=False))
    finally:
        raw.execute("ROLLBACK")


def _with_actor(tx: BatchTx, actor: Actor) -> BatchTx:
    tx.actor = actor
    return tx


class _Savepoint:
    """``_SQLiteBatch.savepoint``: a SQL savepoint plus what the batch keeps in memory
    (its sequence, audit head, buffered rows), restored together on an exception. A
    class, not a generator: it runs once per mutation of every push."""

    __slots__ = ("batch", "head", "pending", "seq")

    def __init__(self, batch: _SQLiteBatch) -> None:
        self.batch = batch

    def __enter__(self) -> None:
        b = self.batch
        self.seq, self.head = b._seq, b._head
        self.pending = {sql: len(rows) for sql, rows in b._pending.items()}
        b.db.execute("SAVEPOINT part")

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        b = self.batch
        if exc is None:
            b.db.execute("RELEASE part")
            return
        b.db.execute("ROLLBACK TO part")
        b.db.execute("RELEASE part")
        b._seq, b._head = self.seq, self.head
        for sql in list(b._pending):
            del b._pending[sql][self.pending.get(sql, 0) :]
        # what was read or written inside may be gone: read it again when needed
        b._known.clear()
        if isinstance(exc, sqlite3.OperationalError | sqlite3.InternalError) or (
            type(exc) is sqlite3.DatabaseError
        ):  # the database failed (I/O, full, corrupt), not this part's data
            raise StorageError(f"the database failed: {exc}", original=exc) from exc


class _SQLiteBatch(BatchTx):
    def __init__(self, db: sqlite3.Connection, *, writable: bool) -> None:
        self.db = db
        self.writable = writable
        self._now = _now()
        self._seq: int | None = None  # allocated in memory, written once at the end
        # append-only rows, written with one executemany per table at the end
        self._pending: dict[str, list[tuple[Any, ...]]] = {}
        self.actor = SYSTEM
        self.context = AuditContext()
        self._head: str | None = None  # the audit chain's last hash, once read
        # what this batch knows of records it read or wrote: (data, deleted), so that
        # writes are audited field by field without reading the record again
        self._known: dict[tuple[str, str], tuple[dict[str, Any], bool]] = {}

    def _remember(self, rec: StoredRecord) -> StoredRecord:
        self._known[(rec.kind, rec.id)] = (rec.data, rec.deleted)
        return rec

    def savepoint(self) -> _Savepoint:
        self._write()
        return _Savepoint(self)

    def _prior(self, key: tuple[str, str]) -> tuple[dict[str, Any], bool]:
        """The record as it is before a write: (data, deleted); a missing one counts
        as deleted."""
        if key in self._known:
            return self._known[key]
        row = self.db.execute(
            "SELECT data, meta, deleted FROM records WHERE kind = ? AND id = ?", key
        ).fetchone()
        return (_join(row[0], row[1]), bool(row[2])) if row else ({}, True)

    def _audit(self, rec: StoredRecord, op: str | None, prior: tuple[dict[str, Any], bool]) -> None:
        old, old_deleted = prior
        before, after = diff(None if old_deleted else old, None if rec.deleted else rec.data)
        op = op or _op(old_deleted, rec.deleted)
        values = _event(
            self.actor,
            self.context,
            seq=rec.seq,
            kind=rec.kind,
            record_id=rec.id,
            inspection_id=scope_of(rec.kind, rec.id, rec.data),
            rev=rec.rev,
            op=op,
            old=before,
            new=after,
            now=self._now,
        )
        if self._head is None:
            row = self.db.execute(_HEAD_SQL).fetchone()
            self._head = str(row[0]) if row else GENESIS
        digest = event_hash(self._head, values)
        self._pending.setdefault(_AUDIT_SQL, []).append((*values, self._head, digest))
        self._head = digest

    def _next_seq(self) -> int:
        if self._seq is None:
            self._seq = int(self.db.execute("SELECT value FROM seq_counter").fetchone()[0])
        self._seq += 1
        return self._seq

    def finish(self) -> None:
        """Write what the batch buffered (inside its transaction): the append-only rows
        and the sequence it allocated."""
        for sql, rows in self._pending.items():
            self.db.executemany(sql, rows)
        self._pending.clear()
        if self._seq is not None:
            self.db.execute("UPDATE seq_counter SET value = ?", (self._seq,))

    def _write(self) -> None:
        if not self.writable:
            raise StorageError("write in a read batch")

    def get_record(
        self, kind: str, record_id: str, *, include_deleted: bool = False
    ) -> StoredRecord | None:
        row = self.db.execute(
            "SELECT * FROM records WHERE kind = ? AND id = ?", (kind, record_id)
        ).fetchone()
        if row is None:
            return None
        rec = self._remember(_record(row))
        return None if rec.deleted and not include_deleted else rec

    def get_records(self, refs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], StoredRecord]:
        by_kind: dict[str, list[str]] = {}
        for kind, rid in dict.fromkeys(refs):
            by_kind.setdefault(kind, []).append(rid)
        found: dict[tuple[str, str], StoredRecord] = {}
        for kind, ids in by_kind.items():
            for start in range(0, len(ids), 500):  # kind = ? AND id IN (...): the key
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self.db.execute(
                    f"SELECT * FROM records WHERE kind = ? AND id IN ({marks})", [kind, *chunk]
                ).fetchall()
                found.update({(r["kind"], r["id"]): self._remember(_record(r)) for r in rows})
        for ref in refs:  # known not to exist: their first write needs no lookup
            self._known.setdefault(ref, ({}, True))
        return found

    def put_record(
        self,
        kind: str,
        record_id: str,
        data: dict[str, Any],
        *,
        rev: int,
        deleted: bool = False,
        op: str | None = None,
    ) -> StoredRecord:
        self._write()
        prior = self._prior((kind, record_id))
        seq = self._next_seq()
        now = self._now
        self.db.execute(
            "INSERT INTO records (kind, id, data, meta, rev, seq, deleted, created_at,"
            " updated_at, inspection_id) VALUES (?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT (kind, id) DO UPDATE SET data = excluded.data,"
            " meta = excluded.meta, rev = excluded.rev,"
            " seq = excluded.seq, deleted = excluded.deleted, updated_at = excluded.updated_at,"
            " inspection_id = excluded.inspection_id",
            (
                kind,
                record_id,
                *_split(data),
                rev,
                seq,
                int(deleted),
                now,
                now,
                scope_of(kind, record_id, data),
            ),
        )
        at = datetime.fromisoformat(now)
        rec = StoredRecord(
            kind=kind,
            id=record_id,
            data=data,
            rev=rev,
            seq=seq,
            deleted=deleted,
            created_at=at,
            updated_at=at,
        )
        self._audit(rec, op, prior)
        return self._remember(rec)

    def find_records(self, kind: str, filters: Sequence[Filter] = ()) -> list[StoredRecord]:
        where, params = SQLiteStore._where(kind, filters)
        rows = self.db.execute(f"SELECT * FROM records WHERE {where} ORDER BY id", params)
        return [_record(r) for r in rows.fetchall()]

    def records_of(self, kind: str, inspection_id: str) -> list[StoredRecord]:
        rows = self.db.execute(
            "SELECT * FROM records WHERE inspection_id = ? AND kind = ? AND deleted = 0"
            " ORDER BY id",
            (inspection_id, kind),
        ).fetchall()
        return [_record(r) for r in rows]

    def get_mutations(self, keys: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            rows = self.db.execute(
                f"SELECT key, result FROM mutations WHERE key IN ({','.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
            found.update({r[0]: bytes(r[1]) for r in rows})
        return found

    def get_mutation(self, key: str) -> bytes | None:
        row = self.db.execute("SELECT result FROM mutations WHERE key = ?", (key,)).fetchone()
        return bytes(row[0]) if row else None

    def put_mutation(
        self,
        key: str,
        *,
        user_id: str,
        device_id: str | None,
        batch_id: str,
        result: bytes,
        at: datetime,
    ) -> None:
        self._write()
        self._pending.setdefault(
            "INSERT INTO mutations (key, user_id, device_id, batch_id, result, received_at)"
            " VALUES (?,?,?,?,?,?)",
            [],
        ).append((key, user_id, device_id, batch_id, result, at.isoformat()))

    def _insert(self, table: str, row: dict[str, Any]) -> None:
        self._write()
        sql = f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})"
        self._pending.setdefault(sql, []).append(tuple(row.values()))

    def add_quarantine(self, row: dict[str, Any]) -> None:
        self._insert("quarantine", row)

    @staticmethod
    def _scope_sql(
        inspection_ids: Sequence[str], refs: Sequence[tuple[str, str]]
    ) -> tuple[str, list[Any]]:
        parts: list[str] = []
        params: list[Any] = []
        if inspection_ids:
            parts.append(f"inspection_id IN ({','.join('?' * len(inspection_ids))})")
            params.extend(inspection_ids)
        if refs:
            pairs = ",".join(["(?,?)"] * len(refs))
            parts.append(f"(inspection_id IS NULL AND (kind, id) IN (VALUES {pairs}))")
            for kind, rid in refs:
                params.extend((kind, rid))
        return ("(" + " OR ".join(parts) + ")" if parts else "0"), params

    def feed(
        self,
        after_seq: int,
        inspection_ids: Sequence[str],
        refs: Sequence[tuple[str, str]],
        limit: int,
        *,
        max_seq: int | None = None,
        live_only: bool = False,
    ) -> list[StoredRecord]:
        sql, args = self._feed_sql(
            "*", after_seq, inspection_ids, refs, limit, max_seq=max_seq, live_only=live_only
        )
        return [_record(r) for r in self.db.execute(sql, args).fetchall()]

    def _feed_sql(
        self,
        columns: str,
        after_seq: int,
        inspection_ids: Sequence[str],
        refs: Sequence[tuple[str, str]],
        limit: int,
        *,
        max_seq: int | None,
        live_only: bool,
    ) -> tuple[str, list[Any]]:
        scope, params = self._scope_sql(inspection_ids, refs)
        # Pick the page's seqs first (index only), then read just those rows: sorting
        # whole rows of everything after the cursor costs more than the page itself.
        sub = f"SELECT seq FROM records WHERE seq > ? AND {scope}"
        args: list[Any] = [after_seq, *params]
        if max_seq is not None:
            sub += " AND seq <= ?"
            args.append(max_seq)
        if live_only:
            sub += " AND deleted = 0"
        sub += " ORDER BY seq LIMIT ?"
        args.append(limit)
        return f"SELECT {columns} FROM records WHERE seq IN ({sub}) ORDER BY seq", args

    def feed_json(
        self,
        after_seq: int,
        inspection_ids: Sequence[str],
        refs: Sequence[tuple[str, str]],
        limit: int,
        *,
        max_seq: int | None = None,
        live_only: bool = False,
    ) -> list[FeedRow]:
        sql, args = self._feed_sql(
            "kind, id, rev, seq, deleted, data",
            after_seq,
            inspection_ids,
            refs,
            limit,
            max_seq=max_seq,
            live_only=live_only,
        )
        cur = self.db.execute(sql, args)
        cur.row_factory = None  # plain tuples: no sqlite3.Row per record
        return [FeedRow(k, i, rv, sq, bool(d), data) for k, i, rv, sq, d, data in cur]

    def bound_refs(self, inspection_ids: Sequence[str]) -> list[tuple[str, str]]:
        if not inspection_ids:
            return []
        rows = self.db.execute(
            "SELECT kind, id FROM records WHERE inspection_id IN"
            f" ({','.join('?' * len(inspection_ids))}) ORDER BY seq",
            list(inspection_ids),
        ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def get_snapshot(self, key: str) -> str | None:
        row = self.db.execute("SELECT scope FROM scope_snapshots WHERE hash = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def put_snapshot(self, key: str, scope: str) -> None:
        self._write()
        self.db.execute(
            "INSERT OR IGNORE INTO scope_snapshots (hash, scope, created_at) VALUES (?,?,?)",
            (key, scope, self._now),
        )

    def tombstone_horizon(self) -> int:
        row = self.db.execute(
            "SELECT value FROM store_meta WHERE key = 'tombstone_horizon'"
        ).fetchone()
        return int(row[0]) if row else 0

    def purge_tombstones(self, before: datetime) -> int:
        self._write()
        row = self.db.execute(
            "SELECT COUNT(*), MAX(seq) FROM records WHERE deleted = 1 AND updated_at < ?",
            (before.isoformat(),),
        ).fetchone()
        if not row[0]:
            return 0
        self.db.execute(
            "DELETE FROM records WHERE deleted = 1 AND updated_at < ?", (before.isoformat(),)
        )
        self.db.execute(
            "UPDATE store_meta SET value = MAX(CAST(value AS INTEGER), ?)"
            " WHERE key = 'tombstone_horizon'",
            (row[1],),
        )
        return int(row[0])

    def max_seq(self) -> int:
        if self._seq is not None:
            return self._seq
        return int(self.db.execute("SELECT value FROM seq_counter").fetchone()[0])

    def update_device_sync(self, device_id: str, user_id: str, **fields: Any) -> None:
        self._write()
        self.db.execute(
            "INSERT OR IGNORE INTO device_sync (device_id, user_id) VALUES (?, ?)",
            (device_id, user_id),
        )
        received = int(fields.pop("mutations_received", 0))
        sets = [f"{k} = ?" for k in fields if _FIELD.match(k)]
        params: list[Any] = [fields[k] for k in fields if _FIELD.match(k)]
        sets.append("mutations_received = mutations_received + ?")
        params.append(received)
        self.db.execute(
            f"UPDATE device_sync SET {', '.join(sets)} WHERE device_id = ?", (*params, device_id)
        )

    def list_device_sync(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT * FROM device_sync ORDER BY device_id").fetchall()
        return [dict(r) for r in rows]

    def list_quarantine(self, inspection_ids: Sequence[str] | None) -> list[dict[str, Any]]:
        if inspection_ids is None:
            rows = self.db.execute("SELECT * FROM quarantine ORDER BY received_at DESC").fetchall()
        else:
            rows = self.db.execute(
                "SELECT * FROM quarantine WHERE inspection_id IN"
                f" ({','.join('?' * len(inspection_ids)) or 'NULL'})"
                " ORDER BY received_at DESC",
                list(inspection_ids),
            ).fetchall()
        return [dict(r) for r in rows]

    def history_of(self, kind: str, record_id: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT * FROM history WHERE kind = ? AND record_id = ? ORDER BY id",
            (kind, record_id),
        ).fetchall()
        return [dict(r) for r in rows]

    def missing_evidence(self, inspection_ids: Sequence[str]) -> dict[str, list[str]]:
        return _missing_evidence(self.db, list(inspection_ids))

    def stored_evidence(self, hashes: Sequence[str]) -> set[str]:
        return _stored_evidence(self.db, list(hashes))
