"""Role guards. Object-level checks live in the engine (sync.registry, sync.access)."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from sync.models import Principal, Role

__all__ = ["ADMIN", "ANY_ROLE", "STAFF", "requires"]


def requires(*roles: Role) -> Guard:
    """A guard letting through only principals with one of ``roles``."""
    allowed = frozenset(roles)

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        # async on purpose: Litestar runs a sync guard in a worker thread, one thread
        # hop per request for a check that takes a microsecond
        if connection.scope.get("method") == "OPTIONS":
            # the automatic OPTIONS answer (allowed methods, no data) is not
            # authenticated, so there is no principal to check
            return
        principal = connection.user
        if not isinstance(principal, Principal) or principal.role not in allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            raise PermissionDeniedException(
                f"this needs one of the roles: {names}", extra={"code": "forbidden"}
            )

    return guard


ADMIN = requires(Role.ADMIN)
STAFF = requires(Role.SUPERVISOR, Role.ADMIN)
ANY_ROLE = requires(Role.INSPECTOR, Role.SUPERVISOR, Role.ADMIN)
