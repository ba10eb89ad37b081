"""User and device administration, shared by the admin API and the CLI."""

from __future__ import annotations

import uuid

from server.passwords import Passwords
from sync.audit import SYSTEM, Actor
from sync.clock import Clock
from sync.errors import InvalidInput, NotFound
from sync.models import Device, Role, User
from sync.storage import Store

__all__ = ["Accounts"]


class Accounts:
    def __init__(self, store: Store, passwords: Passwords, clock: Clock) -> None:
        self.store = store
        self.passwords = passwords
        self.clock = clock

    async def add_user(
        self,
        *,
        username: str,
        display_name: str,
        role: Role,
        authority_id: str,
        password: str,
        user_id: str | None = None,
        actor: Actor = SYSTEM,
    ) -> User:
        if await self.store.get_record("authority", authority_id) is None:
            raise InvalidInput(f"no authority {authority_id!r}", field="authority_id")
        user = User(
            id=user_id or f"usr_{uuid.uuid4().hex[:12]}",
            username=username,
            display_name=display_name,
            role=role,
            authority_id=authority_id,
            password_hash=self.passwords.hash(password),
            created_at=self.clock.now(),
        )
        return await self.store.add_user(user, actor=actor)

    async def find(self, username_or_id: str) -> User:
        user = await self.store.find_user(username_or_id) or await self.store.get_user(
            username_or_id
        )
        if user is None:
            raise NotFound(f"no user {username_or_id!r}")
        return user

    async def update_user(
        self,
        user_id: str,
        *,
        password: str | None = None,
        disabled: bool | None = None,
        role: Role | None = None,
        authority_id: str | None = None,
        actor: Actor = SYSTEM,
    ) -> User:
        """Change the given fields in one audited change. Nobody can lock the system:
        the store refuses to disable or demote the last active admin, and an admin
        cannot disable or demote themselves (another admin must)."""
        if actor.user_id == user_id:
            if disabled:
                raise InvalidInput("you cannot disable your own account", field="disabled")
            if role is not None and role is not Role.ADMIN:
                raise InvalidInput("you cannot take away your own admin role", field="role")
        known = authority_id is None or await self.store.get_record("authority", authority_id)
        if not known:
            raise InvalidInput(f"no authority {authority_id!r}", field="authority_id")
        return await self.store.update_user(
            user_id,
            password_hash=None if password is None else self.passwords.hash(password),
            disabled=disabled,
            role=role,
            authority_id=authority_id,
            actor=actor,
        )

    async def set_password(self, user_id: str, password: str, actor: Actor = SYSTEM) -> User:
        return await self.update_user(user_id, password=password, actor=actor)

    async def set_disabled(self, user_id: str, disabled: bool, actor: Actor = SYSTEM) -> User:
        return await self.update_user(user_id, disabled=disabled, actor=actor)

    async def revoke_device(self, device_id: str, actor: Actor = SYSTEM) -> Device:
        """Revoke a lost tablet: its tokens stop working on their next request."""
        return await self.store.revoke_device(device_id, self.clock.now(), actor=actor)
