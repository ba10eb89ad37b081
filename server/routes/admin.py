"""Users and devices (admin), plus a user's view of their own devices."""

from __future__ import annotations

from litestar import Controller, get, patch, post
from litestar.params import FromPath, JSONBody

from server.deps import AccountsDep, AuthedRequest, StoreDep
from server.guards import ADMIN, ANY_ROLE
from server.routes._openapi import problems
from server.schemas import DeviceOut, UserIn, UserOut, UserPatch
from sync.audit import Actor
from sync.errors import NotFound
from sync.models import Role


class UsersController(Controller):
    path = "/api/v1/users"
    tags = ["users"]
    guards = [ADMIN]

    @get("/", responses=problems(401, 403))
    async def list_users(self, store: StoreDep) -> list[UserOut]:
        """Every user (admin)."""
        return [UserOut.of(u) for u in await store.list_users()]

    @post("/", responses=problems(400, 401, 403, 409, 413, 422))
    async def add_user(
        self, request: AuthedRequest, data: JSONBody[UserIn], accounts: AccountsDep
    ) -> UserOut:
        """Create a user in an authority with a role (admin)."""
        user = await accounts.add_user(
            actor=Actor.of(request.user),
            username=data.username,
            display_name=data.display_name,
            role=data.role,
            authority_id=data.authority_id,
            password=data.password,
            user_id=data.id,
        )
        return UserOut.of(user)

    @get("/{user_id:str}", responses=problems(400, 401, 403, 404))
    async def get_user(self, user_id: FromPath[str], store: StoreDep) -> UserOut:
        user = await store.get_user(user_id)
        if user is None:
            raise NotFound(f"no user {user_id!r}")
        return UserOut.of(user)

    @patch("/{user_id:str}", responses=problems(400, 401, 403, 404, 413, 422))
    async def patch_user(
        self,
        request: AuthedRequest,
        user_id: FromPath[str],
        data: JSONBody[UserPatch],
        accounts: AccountsDep,
    ) -> UserOut:
        """Disable or enable a user, set a new password, change their role or
        authority (admin): one audited change. The last active admin cannot be
        disabled or demoted, nor can an admin disable or demote themselves (422
        ``invalid_input`` naming the field)."""
        user = await accounts.find(user_id)
        user = await accounts.update_user(
            user.id,
            password=data.password,
            disabled=data.disabled,
            role=data.role,
            authority_id=data.authority_id,
            actor=Actor.of(request.user),
        )
        return UserOut.of(user)


class DevicesController(Controller):
    path = "/api/v1/devices"
    tags = ["devices"]

    @get("/", guards=[ANY_ROLE], responses=problems(401))
    async def list_devices(self, request: AuthedRequest, store: StoreDep) -> list[DeviceOut]:
        """Admins see every device; anyone else sees their own."""
        p = request.user
        devices = await store.list_devices(None if p.role is Role.ADMIN else p.user_id)
        return [DeviceOut.of(d) for d in devices]

    @post(
        "/{device_id:str}/revoke",
        guards=[ADMIN],
        status_code=200,
        responses=problems(400, 401, 403, 404),
    )
    async def revoke(
        self, request: AuthedRequest, device_id: FromPath[str], accounts: AccountsDep
    ) -> DeviceOut:
        """Revoke a lost or retired tablet (admin). From now on every request with its
        tokens gets 401 ``device_revoked``, even before they expire."""
        return DeviceOut.of(await accounts.revoke_device(device_id, Actor.of(request.user)))
