"""Login, token refresh and logout; the caller's own identity."""

from __future__ import annotations

from litestar import Controller, Request, get, post
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT

from server.auth import TokenPair
from server.deps import AuthDep, AuthedRequest, StoreDep
from server.guards import ANY_ROLE
from server.routes._openapi import RETRY_AFTER, operation, problems
from server.schemas import LoginIn, MeOut, RefreshIn
from sync.errors import NotFound


class AuthController(Controller):
    path = "/api/v1/auth"
    tags = ["auth"]

    @post(
        "/login",
        status_code=HTTP_200_OK,
        exclude_from_auth=True,
        responses=problems(400, 401, 413, 422, 429),
        operation_class=operation(public=True, headers={429: {"Retry-After": RETRY_AFTER}}),
    )
    async def login(self, data: JSONBody[LoginIn], request: Request, auth: AuthDep) -> TokenPair:
        """Exchange a username and password for an access token and a refresh token.

        Pass ``device`` to bind the tokens to a tablet: ``{"name": ...}`` registers a
        new device (its id comes back as ``device_id``), ``{"id": ...}`` reuses one.
        Failed logins are limited per username and client address (429 beyond).
        """
        client = request.client.host if request.client else "unknown"
        return await auth.login(data.username, data.password, data.device, client)

    @post(
        "/refresh",
        status_code=HTTP_200_OK,
        exclude_from_auth=True,
        responses=problems(400, 401, 413),
        operation_class=operation(public=True),
    )
    async def refresh(self, data: JSONBody[RefreshIn], auth: AuthDep) -> TokenPair:
        """Spend a refresh token for a new pair. Each refresh token works once; using
        one a second time revokes every token of that login."""
        return await auth.refresh(data.refresh_token)

    @post(
        "/logout",
        status_code=HTTP_204_NO_CONTENT,
        exclude_from_auth=True,
        responses=problems(400, 401, 413),
        operation_class=operation(public=True),
    )
    async def logout(self, data: JSONBody[RefreshIn], auth: AuthDep) -> None:
        """Revoke the login the refresh token belongs to."""
        await auth.logout(data.refresh_token)

    @get("/me", guards=[ANY_ROLE], responses=problems(401, 404))
    async def me(self, request: AuthedRequest, store: StoreDep) -> MeOut:
        """Who the access token belongs to."""
        p = request.user
        user = await store.get_user(p.user_id)
        if user is None:
            raise NotFound("no such user")
        return MeOut(
            user_id=p.user_id,
            username=p.username,
            display_name=user.display_name,
            role=p.role,
            authority_id=p.authority_id,
            device_id=p.device_id,
        )
