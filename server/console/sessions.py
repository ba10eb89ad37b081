"""Browser sessions of the console: server-side records behind an opaque cookie.

The cookie holds a random token and nothing else; the record it names (kept under the
token's SHA-256, never the token) says who signed in, until when, in which language and
time zone, and the session's CSRF token. Deleting the record ends the session at once:
logout does that, and so does a request whose user has been disabled since. A record
expires ``SESSION_HOURS`` after sign-in whatever happens; the Litestar ``FileStore``
under the data directory keeps records across restarts of the one server process.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from pathlib import Path

import msgspec
from litestar.stores.file import FileStore

from sync.clock import Clock

__all__ = ["SESSION_COOKIE", "SESSION_HOURS", "ConsoleSession", "ConsoleSessions"]

SESSION_COOKIE = "inspectsync_session"
SESSION_HOURS = 8
"""A console session ends this long after sign-in (a working day), then one signs in
again."""


class ConsoleSession(msgspec.Struct, kw_only=True):
    user_id: str
    csrf: str
    """The token every form of this session carries (``_csrf``)."""
    created_at: datetime
    expires_at: datetime
    tz: str = "Asia/Shanghai"
    refresh_family_token: str = ""
    """The refresh token of the login behind this session: logout revokes its family."""


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(ConsoleSession).decode


def _key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ConsoleSessions:
    """Create, read and end console sessions."""

    def __init__(self, directory: Path, clock: Clock) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.store = FileStore(directory)
        self.clock = clock

    async def create(
        self, user_id: str, *, tz: str, refresh_token: str
    ) -> tuple[str, ConsoleSession]:
        """A new session: its cookie token and its record. Expired records are swept
        away here (sign-ins are rare; records are small files)."""
        await self.store.delete_expired()
        token = secrets.token_urlsafe(32)
        now = self.clock.now()
        record = ConsoleSession(
            user_id=user_id,
            csrf=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + timedelta(hours=SESSION_HOURS),
            tz=tz,
            refresh_family_token=refresh_token,
        )
        await self.store.set(_key(token), _encode(record), expires_in=SESSION_HOURS * 3600)
        return token, record

    async def get(self, token: str | None) -> ConsoleSession | None:
        """The live session the token names, else None (unknown, ended or expired)."""
        if not token or len(token) > 200:
            return None
        raw = await self.store.get(_key(token))
        if raw is None:
            return None
        try:
            record = _decode(raw)
        except msgspec.DecodeError:
            return None
        if record.expires_at <= self.clock.now():
            await self.end(token)
            return None
        return record

    async def end(self, token: str) -> None:
        await self.store.delete(_key(token))
