"""Supervisor review (queue, decisions, signatures) and the audit trail's read side.

Thin: decode, hand the principal to :class:`sync.review.Review` or the engine, encode.
The audit trail has no route that changes or removes an event.
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any, Literal

import msgspec
from litestar import Controller, get, post, put
from litestar.params import FromPath, FromQuery, JSONBody

from server.deps import (
    AuthDep,
    AuthedRequest,
    ConclusionsDep,
    EngineDep,
    ReviewDep,
    SettingsDep,
    StoreDep,
)
from server.guards import ADMIN, ANY_ROLE, STAFF
from server.routes._openapi import problems
from server.schemas import AfterId, Limit, Offset
from sync.audit import read_anchors
from sync.conclusion import ConclusionIn
from sync.review import Decision, QueueQuery, finding_view


class SignedDecision(Decision, kw_only=True, forbid_unknown_fields=True):
    password: str
    """The signer's own password, typed again at the moment of signing."""


class SignedConclusionIn(ConclusionIn, kw_only=True, forbid_unknown_fields=True):
    password: str
    """The signer's own password, typed again at the moment of signing."""


class QueuePage(msgspec.Struct, kw_only=True):
    items: list[dict[str, Any]]
    total: int
    counts: dict[str, int]
    """Every finding found (not just this page), by classification as shown:
    critical, major, other, none, and disputed (an open classification conflict)."""
    limit: int
    offset: int


class ReviewController(Controller):
    path = "/api/v1/review"
    tags = ["review"]

    @get("/queue", guards=[STAFF], responses=problems(400, 401, 403))
    async def queue(
        self,
        request: AuthedRequest,
        review: ReviewDep,
        product_id: FromQuery[str | None] = None,
        site_id: FromQuery[str | None] = None,
        inspection_id: FromQuery[str | None] = None,
        stage_type: FromQuery[str | None] = None,
        classification: FromQuery[
            Literal["critical", "major", "other", "none", "disputed"] | None
        ] = None,
        status: FromQuery[str | None] = None,
        inspector: FromQuery[str | None] = None,
        date_from: FromQuery[date | None] = None,
        date_to: FromQuery[date | None] = None,
        has_open_conflict: FromQuery[bool | None] = None,
        has_missing_evidence: FromQuery[bool | None] = None,
        sort: FromQuery[
            Literal["severity", "-updated", "updated", "raised", "-raised", "site"]
        ] = "severity",
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> QueuePage:
        """Findings of the inspections your authority leads or joins (admins: all),
        filtered, sorted (``severity``: critical and disputed first) and paged. A
        classification in open conflict is ``disputed`` (``shown_classification``;
        the ``classification`` filter takes it too), never one of its values. Each row says which
        fields are in open conflict and which evidence files are still missing."""
        q = QueueQuery(
            product_id=product_id,
            site_id=site_id,
            inspection_id=inspection_id,
            stage_type=stage_type,
            classification=classification,
            status=status,
            inspector=inspector,
            date_from=date_from,
            date_to=date_to,
            has_open_conflict=has_open_conflict,
            has_missing_evidence=has_missing_evidence,
            sort=sort,
            limit=limit,
            offset=offset,
        )
        found = await review.queue(request.user, q)
        return QueuePage(
            items=found.rows, total=found.total, counts=found.counts, limit=limit, offset=offset
        )

    @post(
        "/findings/{finding_id:str}/decisions",
        guards=[STAFF],
        status_code=200,
        responses=problems(400, 401, 403, 404, 409, 412, 413, 422, 429),
    )
    async def decide(
        self,
        request: AuthedRequest,
        finding_id: FromPath[str],
        data: JSONBody[SignedDecision],
        review: ReviewDep,
        auth: AuthDep,
    ) -> dict[str, Any]:
        """Accept, return (with a comment for the inspector), reclassify, or merge into
        another finding; a reason and the signer's password typed again are required.
        Lead authority's supervisors only. The finding as it is now; the change reaches
        tablets on their next pull."""
        client = request.client.host if request.client else "unknown"
        await auth.reauthenticate(request.user, data.password, client)
        decided = await review.decide(request.user, finding_id, data, authenticated_by="password")
        return finding_view(decided)

    @get(
        "/inspections/{inspection_id:str}/signatures",
        guards=[ANY_ROLE],
        responses=problems(400, 401, 404),
    )
    async def signatures(
        self, request: AuthedRequest, inspection_id: FromPath[str], review: ReviewDep
    ) -> list[dict[str, Any]]:
        """Every signature of an inspection (sign-offs, review decisions): signer's
        printed name, meaning, time, the signed content's hash, and whether the content
        still matches it."""
        return await review.signatures(request.user, inspection_id)

    @get(
        "/inspections/{inspection_id:str}/conclusion",
        guards=[ANY_ROLE],
        responses=problems(400, 401, 404),
    )
    async def conclusion(
        self, request: AuthedRequest, inspection_id: FromPath[str], conclusions: ConclusionsDep
    ) -> dict[str, Any]:
        """The inspection conclusion (meets / basically meets / does not meet, NMPA's
        符合要求 / 基本符合要求 / 不符合要求): the rule's suggestion from the accepted
        findings now, the conclusion set (null if none) with its reason, suggestion,
        override flag, signature and earlier settings, ``rev``, ``matches`` and why you
        may not set it (``blocked``: null if you may)."""
        return await conclusions.view(request.user, inspection_id)

    @put(
        "/inspections/{inspection_id:str}/conclusion",
        guards=[STAFF],
        responses=problems(400, 401, 403, 404, 409, 412, 413, 422, 429),
    )
    async def conclude(
        self,
        request: AuthedRequest,
        inspection_id: FromPath[str],
        data: JSONBody[SignedConclusionIn],
        conclusions: ConclusionsDep,
        auth: AuthDep,
    ) -> dict[str, Any]:
        """Set or change the conclusion, with a reason and the signer's password typed
        again (lead authority's supervisors; at fieldwork done or under review, every
        finding decided, no conflict open). One that differs from the suggestion is an
        override, kept as such; signed and audited
        (``/api/v1/audit/history/conclusion/{inspection_id}``)."""
        client = request.client.host if request.client else "unknown"
        await auth.reauthenticate(request.user, data.password, client)
        return await conclusions.set(request.user, inspection_id, data, authenticated_by="password")


class AuditController(Controller):
    path = "/api/v1/audit"
    tags = ["audit"]

    @get(
        "/history/{kind:str}/{record_id:str}", guards=[ANY_ROLE], responses=problems(400, 401, 404)
    )
    async def history(
        self,
        request: AuthedRequest,
        kind: FromPath[str],
        record_id: FromPath[str],
        engine: EngineDep,
    ) -> list[dict[str, Any]]:
        """Every audit event of one entity, oldest first: who (user, role, device),
        which fields with old and new values, reason, device time, server receipt
        time, sync batch, and the chain hashes."""
        rows: list[dict[str, Any]] = await engine.history(request.user, kind, record_id)
        return rows

    @get(
        "/versions/{kind:str}/{record_id:str}/{rev:int}",
        guards=[ANY_ROLE],
        responses=problems(400, 401, 404),
    )
    async def version(
        self,
        request: AuthedRequest,
        kind: FromPath[str],
        record_id: FromPath[str],
        rev: FromPath[int],
        engine: EngineDep,
    ) -> dict[str, Any]:
        """A record as it was at one revision, e.g. a signed-off answer before the
        change that needed a reason."""
        return await engine.version(request.user, kind, record_id, rev)

    @get("/events", guards=[ADMIN], responses=problems(400, 401, 403))
    async def events(
        self,
        store: StoreDep,
        after_id: AfterId = 0,
        limit: FromQuery[int] = 1000,
        kind: FromQuery[str | None] = None,
        record_id: FromQuery[str | None] = None,
        inspection_id: FromQuery[str | None] = None,
    ) -> dict[str, Any]:
        """Export of the trail (admin): events after ``after_id``, oldest first, at
        most ``limit`` (1-5000); continue from ``next_after_id`` until it is null."""
        limit = max(1, min(limit, 5000))
        rows = await store.audit_events(
            kind=kind,
            record_id=record_id,
            inspection_id=inspection_id,
            after_id=after_id,
            limit=limit,
        )
        more = len(rows) == limit
        return {"events": rows, "next_after_id": rows[-1]["id"] if more else None}

    @get("/verify", guards=[ADMIN], responses=problems(401, 403))
    async def verify(self, store: StoreDep, settings: SettingsDep) -> dict[str, Any]:
        """Walk the hash chain (admin) and check it against the anchors the server wrote
        down beside the database: ``ok``, events checked, the head (hash and event id),
        anchors matched, and the first event that does not match or the events cut off
        the end, if any."""
        anchors = await asyncio.to_thread(read_anchors, settings.anchors_file)
        found = await store.verify_audit(anchors)
        return msgspec.to_builtins(found)  # type: ignore[no-any-return]
