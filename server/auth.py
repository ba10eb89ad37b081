"""Authentication: passwords, access JWTs, rotating refresh tokens, devices.

- Passwords are hashed with argon2id (argon2-cffi's defaults).
- Access tokens are short-lived HS256 JWTs (PyJWT, via Litestar's ``JWTAuth``) with a
  ``kid`` header so keys can rotate; ``exp``, ``nbf``, ``iat``, ``iss`` and ``aud`` are
  required and checked; the algorithm is pinned.
- Refresh tokens are random, stored only as SHA-256, single use: using one returns a
  new one of the same *family*; presenting a used one again revokes the whole family
  (someone has a copy).
- A token bound to a device stops working the moment the device is revoked, because
  every request looks the device up (``retrieve_principal``).
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import timedelta
from typing import Any, ClassVar

import jwt
import msgspec
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.security.jwt import Token

from server.passwords import Passwords
from server.settings import Settings
from sync.audit import Actor
from sync.clock import Clock
from sync.errors import DomainError, InvalidInput, NotFound
from sync.models import Device, Principal, RefreshToken, Role, User
from sync.signatures import printed_name
from sync.storage import Store

__all__ = [
    "AuthError",
    "AuthService",
    "DeviceIn",
    "KeyedToken",
    "LoginLimiter",
    "Passwords",
    "RateLimited",
    "SharedLoginLimiter",
    "TokenPair",
]

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("exp", "iat", "nbf", "iss", "aud", "sub", "jti")


class AuthError(DomainError):
    """A credential was refused. ``code`` says which check failed."""

    code = "not_authenticated"

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code  # type: ignore[misc]


class ReauthenticationFailed(DomainError):
    """The password given to sign is not the signer's own."""

    code = "reauthentication_failed"


class RateLimited(DomainError):
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after


class KeyedToken(Token):
    """Litestar's JWT token, verified with the key its ``kid`` header names.

    A tablet sends the same access token with every request for its 15 minutes, so the
    claims of a token that passed every check are kept (by its exact text) and only its
    time claims are checked again on later requests: ``exp`` still ends it on time.
    Revocation does not depend on this: the holder (user and device) is read on every
    request (``AuthService.retrieve_principal``).

    At most ``VERIFIED_MAX`` tokens are kept, the oldest remembered going first (an
    entry is about 1.7 KB with the token's text, so at most about 7 MB); one device
    uses one token at a time, so that is 4,096 devices syncing within 15 minutes before
    a token is ever checked twice in full (about 20 microseconds).
    """

    keys: ClassVar[dict[str, str]] = {}
    verified: ClassVar[dict[str, dict[str, Any]]] = {}
    VERIFIED_MAX: ClassVar[int] = 4096

    @classmethod
    def decode_payload(  # type: ignore[override]
        cls,
        encoded_token: str,
        secret: str,
        algorithms: list[str],
        issuer: Any = None,
        audience: Any = None,
        options: Any = None,
    ) -> Any:
        cached = cls.verified.get(encoded_token)
        if cached is not None:
            now = time.time()
            if cached["nbf"] <= now < cached["exp"]:
                return dict(cached)  # the caller changes the dict it gets
            cls.verified.pop(encoded_token, None)  # expired: PyJWT below says so
        kid = jwt.get_unverified_header(encoded_token).get("kid")
        key = cls.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise jwt.InvalidTokenError("unknown or missing kid")
        payload: dict[str, Any] = jwt.decode(
            encoded_token,
            key=key,
            algorithms=[ALGORITHM],
            issuer=issuer,
            audience=audience,
            options=options,
        )
        if isinstance(payload.get("exp"), int) and isinstance(payload.get("nbf"), int):
            while len(cls.verified) >= cls.VERIFIED_MAX:  # the oldest remembered first
                cls.verified.pop(next(iter(cls.verified)))
            cls.verified[encoded_token] = dict(payload)
        return payload


class DeviceIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The tablet logging in: an id it registered before, or a name to register."""

    id: str | None = None
    name: str = ""
    platform: str = ""
    app_version: str = ""


class TokenPair(msgspec.Struct, kw_only=True):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int
    user_id: str
    role: Role
    device_id: str | None = None
    display_name: str = ""
    """The account's own name, the one its signatures print (``printed_name``): a
    tablet shows it, read-only, where the user signs. Added late: older servers leave
    it out, and tablets fall back to ``GET /api/v1/auth/me``, then the username."""


class LoginLimiter:
    """Counts failed logins per (username, client address) in a sliding window.

    In memory, per process: enough for one server. Several instances over
    PostgreSQL count in the database instead (:class:`SharedLoginLimiter`).

    Bounded: a key is kept only while it has failures inside the window, and at most
    ``MAX_KEYS`` keys are kept (about 0.9 KB each, so at most about 18 MB however many
    usernames are tried); past it, keys whose failures are all older than the window
    go, then the keys that failed longest ago (down to nine tenths of the bound).
    Pushing a key out that way takes thousands of other failed logins within the
    window, each a full password hash.
    """

    MAX_KEYS: ClassVar[int] = 20_000

    def __init__(
        self,
        max_failures: int,
        window_seconds: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window = window_seconds
        self._clock = clock
        # in the order of each key's latest failure, oldest first
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        q = self._failures.get(key)
        if q is None:
            return deque()
        while q and q[0] <= now - self.window:
            q.popleft()
        if not q:
            del self._failures[key]
        return q

    def check(self, username: str, client: str) -> None:
        now = self._clock()
        q = self._recent((username.lower(), client), now)
        if len(q) >= self.max_failures:
            raise RateLimited(
                "too many failed logins; try again later",
                retry_after=max(1, int(q[0] + self.window - now) + 1),
            )

    def fail(self, username: str, client: str) -> None:
        now = self._clock()
        key = (username.lower(), client)
        q = self._failures.pop(key, None) or deque()
        q.append(now)
        self._failures[key] = q  # now the latest to fail
        if len(self._failures) > self.MAX_KEYS:
            self._shrink(now)

    def _shrink(self, now: float) -> None:
        for key in [k for k, q in self._failures.items() if q[-1] <= now - self.window]:
            del self._failures[key]
        keep = self.MAX_KEYS * 9 // 10
        while len(self._failures) > keep:
            del self._failures[next(iter(self._failures))]

    @property
    def keys(self) -> int:
        """How many (username, client address) pairs are remembered."""
        return len(self._failures)

    def succeed(self, username: str, client: str) -> None:
        self._failures.pop((username.lower(), client), None)


class SharedLoginLimiter:
    """:class:`LoginLimiter`'s rule with the failures in the shared database, so that
    every instance behind a load balancer sees every failure: an address cannot get
    N times the tries by reaching N instances. Used when the database is PostgreSQL.
    The table holds one window's failures (older ones go as new ones come)."""

    def __init__(self, store: Store, max_failures: int, window_seconds: int, clock: Clock):
        self.store = store
        self.max_failures = max_failures
        self.window = timedelta(seconds=window_seconds)
        self.clock = clock

    @staticmethod
    def _key(username: str, client: str) -> str:
        return f"{username.lower()}\x1f{client}"

    async def check(self, username: str, client: str) -> None:
        now = self.clock.now()
        failed = await self.store.login_failures(self._key(username, client), now - self.window)
        if len(failed) >= self.max_failures:
            wait = (failed[0] + self.window - now).total_seconds()
            raise RateLimited(
                "too many failed logins; try again later", retry_after=max(1, int(wait) + 1)
            )

    async def fail(self, username: str, client: str) -> None:
        now = self.clock.now()
        await self.store.add_login_failure(
            self._key(username, client), now, forget_before=now - self.window
        )

    async def succeed(self, username: str, client: str) -> None:
        await self.store.clear_login_failures(self._key(username, client))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AuthService:
    def __init__(
        self, settings: Settings, store: Store, clock: Clock, passwords: Passwords
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.passwords = passwords
        self.kid, self.keys = settings.signing_keys()
        self.limiter = LoginLimiter(settings.login_max_failures, settings.login_window_seconds)
        self.shared_limiter = (
            SharedLoginLimiter(
                store, settings.login_max_failures, settings.login_window_seconds, clock
            )
            if settings.database_url  # several instances may serve this database
            else None
        )

    # --- tokens ----------------------------------------------------------------

    def issue_access(self, user: User, device_id: str | None) -> str:
        now = self.clock.now()
        claims: dict[str, Any] = {
            "sub": user.id,
            "iss": self.settings.jwt_issuer,
            "aud": self.settings.jwt_audience,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int((now + timedelta(seconds=self.settings.access_ttl_seconds)).timestamp()),
            "jti": uuid.uuid4().hex,
            "role": user.role.value,
        }
        if device_id is not None:
            claims["dev"] = device_id
        return jwt.encode(
            claims, self.keys[self.kid], algorithm=ALGORITHM, headers={"kid": self.kid}
        )

    async def _issue_pair(self, user: User, device_id: str | None, family: str) -> TokenPair:
        refresh = secrets.token_urlsafe(32)
        now = self.clock.now()
        await self.store.add_refresh_token(
            RefreshToken(
                token_hash=_digest(refresh),
                family_id=family,
                user_id=user.id,
                device_id=device_id,
                issued_at=now,
                expires_at=now + timedelta(days=self.settings.refresh_ttl_days),
            )
        )
        return TokenPair(
            access_token=self.issue_access(user, device_id),
            refresh_token=refresh,
            expires_in=self.settings.access_ttl_seconds,
            user_id=user.id,
            role=user.role,
            device_id=device_id,
            display_name=printed_name(user, user.username),
        )

    async def login(
        self, username: str, password: str, device: DeviceIn | None, client: str
    ) -> TokenPair:
        """Check a password and issue tokens, registering the device if it is new."""
        shared = self.shared_limiter
        if shared is not None:
            await shared.check(username, client)
        else:
            self.limiter.check(username, client)
        user = await self.store.find_user(username)
        ok = self.passwords.verify(
            user.password_hash if user else self.passwords.dummy_hash, password
        )
        if user is None or not ok:
            if shared is not None:
                await shared.fail(username, client)
            else:
                self.limiter.fail(username, client)
            raise AuthError("wrong username or password", "invalid_credentials")
        if user.disabled:
            raise AuthError("this account is disabled", "user_disabled")
        if shared is not None:
            await shared.succeed(username, client)
        else:
            self.limiter.succeed(username, client)
        device_id = await self._device_for_login(user, device) if device else None
        return await self._issue_pair(user, device_id, uuid.uuid4().hex)

    async def reauthenticate(self, principal: Principal, password: str, client: str) -> User:
        """Check, at the moment of signing, that the signer typed their own password
        again (21 CFR 11.200(a)(1): each signing by a person not continuously in a
        session re-establishes who it is; China's e-signature law in the same spirit:
        the signature is under the signer's sole control). Failures count towards the
        same limit as failed logins (429 beyond)."""
        shared = self.shared_limiter
        if shared is not None:
            await shared.check(principal.username, client)
        else:
            self.limiter.check(principal.username, client)
        user = await self.store.get_user(principal.user_id)
        ok = self.passwords.verify(
            user.password_hash if user else self.passwords.dummy_hash, password
        )
        if user is None or user.disabled or not ok:
            if shared is not None:
                await shared.fail(principal.username, client)
            else:
                self.limiter.fail(principal.username, client)
            raise ReauthenticationFailed(
                "that is not your password: a signature needs the signer's own password",
                field="password",
            )
        if shared is not None:
            await shared.succeed(principal.username, client)
        else:
            self.limiter.succeed(principal.username, client)
        return user

    async def _device_for_login(self, user: User, device: DeviceIn) -> str:
        now = self.clock.now()
        if device.id is None:
            if not device.name.strip():
                raise InvalidInput("a new device needs a name", field="device.name")
            registered = await self.store.add_device(
                Device(
                    id=f"dev_{uuid.uuid4().hex[:16]}",
                    user_id=user.id,
                    name=device.name,
                    platform=device.platform,
                    app_version=device.app_version,
                    registered_at=now,
                ),
                actor=Actor(user.id, user.role.value),
            )
            return registered.id
        known = await self.store.get_device(device.id)
        if known is None or known.user_id != user.id:
            raise InvalidInput("unknown device for this user", field="device.id")
        if known.revoked_at is not None:
            raise AuthError("this device has been revoked", "device_revoked")
        await self.store.touch_device(known.id, now, device.app_version or None)
        return known.id

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate: the presented token is spent and a new pair is issued in its family.
        A spent token presented again revokes the family."""
        now = self.clock.now()
        stored = await self.store.use_refresh_token(_digest(refresh_token), now)
        if stored is None:
            raise AuthError("unknown refresh token", "refresh_token_invalid")
        if stored.used_at is not None:
            await self.store.revoke_token_family(stored.family_id, now)
            raise AuthError(
                "refresh token was already used; every token of this login is now revoked",
                "refresh_token_reused",
            )
        if stored.revoked_at is not None:
            raise AuthError("refresh token has been revoked", "refresh_token_revoked")
        if stored.expires_at <= now:
            raise AuthError("refresh token has expired", "refresh_token_expired")
        user = await self.store.get_user(stored.user_id)
        if user is None or user.disabled:
            raise AuthError("this account is disabled", "user_disabled")
        if stored.device_id is not None:
            device = await self.store.get_device(stored.device_id)
            if device is None or device.revoked_at is not None:
                raise AuthError("this device has been revoked", "device_revoked")
        return await self._issue_pair(user, stored.device_id, stored.family_id)

    async def logout(self, refresh_token: str) -> None:
        """Revoke the login (token family) the refresh token belongs to."""
        stored = await self.store.use_refresh_token(_digest(refresh_token), self.clock.now())
        if stored is None:
            raise NotFound("unknown refresh token")
        await self.store.revoke_token_family(stored.family_id, self.clock.now())

    async def retrieve_principal(
        self, token: Token, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> Principal:
        """Litestar's ``retrieve_user_handler``: the token is valid; is its holder?"""
        device_id = token.extras.get("dev")
        user, device = await self.store.auth_state(token.sub, device_id)
        if user is None or user.disabled:
            raise NotAuthorizedException(
                "this account is disabled or no longer exists", extra={"code": "user_disabled"}
            )
        if device_id is not None and (device is None or device.revoked_at is not None):
            raise NotAuthorizedException(
                "this device has been revoked", extra={"code": "device_revoked"}
            )
        return Principal(
            user_id=user.id,
            username=user.username,
            role=user.role,
            authority_id=user.authority_id,
            device_id=device_id,
        )
