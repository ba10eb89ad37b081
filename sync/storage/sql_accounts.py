"""Users, devices and refresh tokens over SQL, shared by the backends."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sync.audit import SYSTEM, Actor
from sync.errors import AlreadyExists, InvalidInput, NotFound
from sync.models import Device, RefreshToken, Role, User
from sync.storage.shared import (
    Prefixed,
    device_from_row,
    token_from_row,
    ts,
    user_from_row,
    user_view,
    utc,
)
from sync.storage.sql_base import SQLBase
from sync.storage.sql_dialect import Conn
from sync.storage.sql_rows import audit_entity

__all__ = ["AccountsSQL", "auth_state"]

_AUTH_STATE_SQL = (
    "SELECT u.id, u.username, u.display_name, u.role, u.authority_id, u.password_hash,"
    " u.disabled, u.created_at, d.id AS d_id, d.user_id AS d_user_id, d.name AS d_name,"
    " d.platform AS d_platform, d.app_version AS d_app_version,"
    " d.registered_at AS d_registered_at, d.revoked_at AS d_revoked_at,"
    " d.last_seen_at AS d_last_seen_at"
    " FROM users u LEFT JOIN devices d ON d.id = ? WHERE u.id = ?"
)


def auth_state(db: Conn, user_id: str, device_id: str | None) -> tuple[User | None, Device | None]:
    """The user and the device in one statement (one read transaction)."""
    if device_id is None:
        u = db.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
        return (user_from_row(u) if u else None, None)
    row = db.execute(_AUTH_STATE_SQL, (device_id, user_id)).fetchone()
    if row is None:
        return (None, None)
    device = device_from_row(Prefixed(row, "d_")) if row["d_id"] is not None else None
    return (user_from_row(row), device)


def _user_change(
    before: Any,
    password_hash: str | None,
    disabled: bool | None,
    role: Role | None,
    authority_id: str | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a user update changes, as (old, new) for its audit event."""
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
    return old, new


class AccountsSQL(SQLBase):
    """The user, device and refresh-token methods of :class:`~sync.storage.Store`."""

    # --- users -----------------------------------------------------------------

    async def add_user(self, user: User, *, actor: Actor = SYSTEM) -> User:
        def add(db: Conn) -> None:
            audit_entity(db, actor, "user", user.id, "create", {}, user_view(user))
            try:
                db.execute(
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
            except self.dialect.integrity_error as exc:
                raise AlreadyExists(f"user {user.username!r} exists", field="username") from exc

        await self._write(add)
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
        return await self._on_reader(lambda db: auth_state(db, user_id, device_id))

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
        def update(db: Conn) -> Any:
            before = db.execute(
                "SELECT disabled, role, authority_id FROM users WHERE id = ?", (user_id,)
            ).fetchone()
            new: dict[str, Any] = {}
            if before is not None:
                old, new = _user_change(before, password_hash, disabled, role, authority_id)
                audit_entity(db, actor, "user", user_id, "update", old, new)
            for column, value in (("role", role), ("authority_id", authority_id)):
                if value is not None:
                    db.execute(f"UPDATE users SET {column} = ? WHERE id = ?", (str(value), user_id))
            if password_hash is not None:
                db.execute(
                    "UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id)
                )
            if disabled is not None:
                db.execute("UPDATE users SET disabled = ? WHERE id = ?", (int(disabled), user_id))
            was_admin = before is not None and before[1] == "admin" and not before[0]
            last = "SELECT 1 FROM users WHERE role = 'admin' AND disabled = 0 LIMIT 1"
            if (
                was_admin
                and ("role" in new or new.get("disabled"))
                and db.execute(last).fetchone() is None
            ):  # raising rolls back
                raise InvalidInput(
                    f"{user_id} is the last active admin: appoint or enable another first",
                    field="role" if "role" in new else "disabled",
                )
            return db.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()

        row = await self._write(update)
        if row is None:
            raise NotFound(f"no user {user_id!r}")
        return user_from_row(row)

    # --- devices ---------------------------------------------------------------

    async def add_device(self, device: Device, *, actor: Actor = SYSTEM) -> Device:
        def add(db: Conn) -> None:
            view = {"user_id": device.user_id, "name": device.name, "platform": device.platform}
            audit_entity(db, actor, "device", device.id, "create", {}, view)
            try:
                db.execute(
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
            except self.dialect.integrity_error as exc:
                raise AlreadyExists(f"device {device.id!r} exists", field="id") from exc

        await self._write(add)
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
        def revoke(db: Conn) -> Any:
            before = db.execute(
                "SELECT revoked_at FROM devices WHERE id = ?", (device_id,)
            ).fetchone()
            if before is not None and before[0] is None:
                revoked = {"revoked_at": at.isoformat()}
                audit_entity(
                    db, actor, "device", device_id, "revoke", {"revoked_at": None}, revoked
                )
            db.execute(
                "UPDATE devices SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?",
                (at.isoformat(), device_id),
            )
            db.execute(
                "UPDATE refresh_tokens SET revoked_at = COALESCE(revoked_at, ?)"
                " WHERE device_id = ?",
                (at.isoformat(), device_id),
            )
            return db.execute("SELECT * FROM devices WHERE id = ?", (device_id,)).fetchone()

        row = await self._write(revoke)
        if row is None:
            raise NotFound(f"no device {device_id!r}")
        return device_from_row(row)

    async def touch_device(self, device_id: str, at: datetime, app_version: str | None) -> None:
        await self._write(
            lambda db: db.execute(
                "UPDATE devices SET last_seen_at = ?, app_version = COALESCE(?, app_version)"
                " WHERE id = ?",
                (at.isoformat(), app_version, device_id),
            )
        )

    # --- failed logins ---------------------------------------------------------

    async def login_failures(self, key: str, since: datetime) -> list[datetime]:
        rows = await self._fetchall(
            "SELECT at FROM login_failures WHERE key = ? AND at >= ? ORDER BY at",
            (key, utc(since)),
        )
        return [datetime.fromisoformat(r[0]) for r in rows]

    async def add_login_failure(self, key: str, at: datetime, *, forget_before: datetime) -> None:
        def add(db: Conn) -> None:
            db.execute("DELETE FROM login_failures WHERE at < ?", (utc(forget_before),))
            db.execute("INSERT INTO login_failures (key, at) VALUES (?, ?)", (key, utc(at)))

        await self._write(add)

    async def clear_login_failures(self, key: str) -> None:
        await self._write(lambda db: db.execute("DELETE FROM login_failures WHERE key = ?", (key,)))

    # --- refresh tokens --------------------------------------------------------

    async def add_refresh_token(self, token: RefreshToken) -> None:
        await self._write(
            lambda db: db.execute(
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
        )

    async def use_refresh_token(self, token_hash: str, at: datetime) -> RefreshToken | None:
        def use(db: Conn) -> RefreshToken | None:
            row = db.execute(
                "SELECT * FROM refresh_tokens WHERE token_hash = ?", (token_hash,)
            ).fetchone()
            if row is None:
                return None
            before = token_from_row(row)
            if before.used_at is None:
                db.execute(
                    "UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ?",
                    (at.isoformat(), token_hash),
                )
            return before

        return await self._write(use)

    async def revoke_token_family(self, family_id: str, at: datetime) -> int:
        def revoke(db: Conn) -> int:
            cur = db.execute(
                "UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ?"
                " AND revoked_at IS NULL",
                (at.isoformat(), family_id),
            )
            return int(cur.rowcount)

        return await self._write(revoke)
