"""The sync endpoints tablets use: pull, push, conflicts, notifications.

Bodies are the msgspec messages of ``sync/protocol.py``, JSON by default, MessagePack
when the client sends or accepts ``application/msgpack``; responses are gzip-compressed
when the client accepts gzip (the app's compression middleware).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import ServerSentEvent

from server.deps import AuthedRequest, EngineDep, NotifierDep, RegistryDep
from server.guards import ADMIN, ANY_ROLE, STAFF
from server.metrics import count_pull, count_push
from server.routes._openapi import (
    PULL_ANSWERS,
    PULL_OPERATION,
    PUSH_ANSWERS,
    PUSH_OPERATION,
    problems,
)
from sync.engine import public_data
from sync.errors import InvalidInput
from sync.models import Filter, StoredRecord
from sync.protocol import MSGPACK, PullRequest, decode, decode_push, encode

ConflictOut: Any = msgspec.defstruct(
    "ConflictOut", [("id", str), ("rev", int), ("data", dict[str, Any])], kw_only=True
)


class ResolveIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    value: Any
    """The value to keep: one of the kept values, or a merged one (for a ``_deleted``
    conflict: null deletes, an object of fields restores)."""
    reason: str


def _media(request: Request[Any, Any, Any], header: str) -> str:
    value = request.headers.get(header, "")
    return MSGPACK if MSGPACK in value else "application/json"


async def _raw_body(request: Request[Any, Any, Any]) -> bytes:
    raw = await request.body()
    if not raw:
        raise InvalidInput("the request has no body", field="body")
    return raw


async def _body(request: Request[Any, Any, Any], kind: type[Any]) -> Any:
    return decode(await _raw_body(request), kind, _media(request, "content-type"))


def _answer(request: Request[Any, Any, Any], message: msgspec.Struct) -> Response[bytes]:
    media = _media(request, "accept")
    return Response(encode(message, media), media_type=media)


class SyncController(Controller):
    path = "/api/v1/sync"
    tags = ["sync"]

    @post(
        "/pull",
        guards=[ANY_ROLE],
        status_code=200,
        responses=PULL_ANSWERS,
        operation_class=PULL_OPERATION,
    )
    async def pull(self, request: AuthedRequest, engine: EngineDep) -> Response[bytes]:
        """One page of changes in your scope after ``cursor``: see docs/sync-protocol.md.
        Body: ``PullRequest``; answer: ``PullResponse``."""
        req = await _body(request, PullRequest)
        # a JSON answer takes each record's stored JSON as it is (no decode, no re-encode)
        as_json = _media(request, "accept") != MSGPACK
        page = await engine.pull(request.user, req, json_data=as_json)
        count_pull(page)
        return _answer(request, page)

    @post(
        "/push",
        guards=[ANY_ROLE],
        status_code=200,
        responses=PUSH_ANSWERS,
        operation_class=PUSH_OPERATION,
    )
    async def push(
        self, request: AuthedRequest, engine: EngineDep, notifier: NotifierDep
    ) -> Response[bytes]:
        """A batch of mutations, applied in one transaction; the answer (sent after the
        commit) gives each mutation's result. Body: ``PushRequest``; answer:
        ``PushResponse``."""
        # each mutation is read on its own: one that does not decode is rejected alone
        req = decode_push(await _raw_body(request), _media(request, "content-type"))
        answer = await engine.push(request.user, req)
        count_push(answer)
        return _answer(request, answer)

    @get("/conflicts", guards=[ANY_ROLE], responses=problems(400, 401, 404, 422))
    async def conflicts(
        self,
        request: AuthedRequest,
        engine: EngineDep,
        inspection_id: FromQuery[str | None] = None,
        status: FromQuery[str] = "open",
    ) -> list[ConflictOut]:
        """Kept conflicts of inspections you may see, with every value and who/when/
        which device (``status``: open, resolved or all)."""
        found: list[StoredRecord] = await engine.list_conflicts(
            request.user, inspection_id=inspection_id, status=status
        )
        return [ConflictOut(id=c.id, rev=c.rev, data=public_data(c)) for c in found]

    @post(
        "/conflicts/{conflict_id:str}/resolve",
        guards=[STAFF],
        status_code=200,
        responses=problems(400, 401, 403, 404, 409, 413, 422),
    )
    async def resolve(
        self,
        conflict_id: FromPath[str],
        data: JSONBody[ResolveIn],
        request: AuthedRequest,
        engine: EngineDep,
        notifier: NotifierDep,
    ) -> ConflictOut:
        """Pick a kept value or enter a merged one (supervisor/admin). The record and
        the conflict change together and reach every tablet on its next pull."""
        c: StoredRecord = await engine.resolve_conflict(
            request.user, conflict_id, data.value, data.reason
        )
        return ConflictOut(id=c.id, rev=c.rev, data=public_data(c))

    @get("/quarantine", guards=[ANY_ROLE], responses=problems(401))
    async def quarantine(self, request: AuthedRequest, engine: EngineDep) -> list[dict[str, Any]]:
        """Rejected mutations kept for audit: admins see all, supervisors their
        inspections', inspectors their own."""
        rows: list[dict[str, Any]] = await engine.quarantine(request.user)
        return rows

    @get("/devices", guards=[ADMIN], responses=problems(401, 403))
    async def devices(self, engine: EngineDep) -> list[dict[str, Any]]:
        """Per-device sync state: last pull and push, app version, clock skew (admin)."""
        rows: list[dict[str, Any]] = await engine.device_states()
        return rows

    @get(
        "/history/{kind:str}/{record_id:str}", guards=[ANY_ROLE], responses=problems(400, 401, 404)
    )
    async def history(
        self,
        kind: FromPath[str],
        record_id: FromPath[str],
        request: AuthedRequest,
        engine: EngineDep,
    ) -> list[dict[str, Any]]:
        """Every applied change of a field-data record: old and new values, who, which
        device, device time and server receipt time, batch."""
        rows: list[dict[str, Any]] = await engine.history(request.user, kind, record_id)
        return rows

    @get(
        "/events",
        guards=[ANY_ROLE],
        responses={
            200: ResponseSpec(
                str,
                media_type="text/event-stream",
                description="Server-sent events: `ready`, then `pull` events and keep-alives",
                generate_examples=False,
            ),
            **problems(401),
        },
    )
    async def events(
        self, request: AuthedRequest, registry: RegistryDep, notifier: NotifierDep
    ) -> ServerSentEvent:
        """Server-sent events: ``pull`` when something in your scope changed (with the
        inspection ids), a comment every 15 s to keep the connection open."""
        principal = request.user

        async def stream() -> AsyncGenerator[str | dict[str, str], None]:
            q = notifier.subscribe()
            try:
                yield {"event": "ready", "data": "{}"}
                while True:
                    try:
                        ids = await asyncio.wait_for(q.get(), timeout=15)
                    except TimeoutError:
                        yield {"comment": "keep-alive"}
                        continue
                    visible, _ = await registry.list_inspections(
                        principal, [Filter("id", "in", sorted(ids))], limit=500, offset=0
                    )
                    if visible:
                        names = msgspec.json.encode([v.id for v in visible]).decode()
                        yield {"event": "pull", "data": names}
            finally:
                notifier.unsubscribe(q)

        return ServerSentEvent(stream())
