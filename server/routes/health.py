"""Liveness and readiness for load balancers and container health checks."""

from __future__ import annotations

import msgspec
from litestar import get
from litestar.exceptions import HTTPException

from server.deps import StoreDep
from server.routes._openapi import operation, problems
from sync.errors import StorageError


class Health(msgspec.Struct, omit_defaults=True):
    status: str
    schema_version: int | None = None


@get(
    "/healthz",
    exclude_from_auth=True,
    tags=["health"],
    responses=problems(),
    operation_class=operation(public=True),
)
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@get(
    "/readyz",
    exclude_from_auth=True,
    tags=["health"],
    responses=problems(),
    operation_class=operation(public=True),
)
async def readyz(store: StoreDep) -> Health:
    """The database answers; 503 if it does not."""
    try:
        await store.ping()
        return Health(status="ready", schema_version=await store.schema_version())
    except StorageError as exc:
        raise HTTPException(
            status_code=503, detail="database unavailable", extra={"code": "storage_error"}
        ) from exc
