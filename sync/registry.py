"""Reference data, inspections and their teams: the down-only side of the domain.

Every method takes the verified :class:`~sync.models.Principal` and enforces both the
role rule and the object rule; anything outside the principal's scope is *not found*.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import msgspec

from checklists.schema import StageType
from sync.access import can_see_inspection, inspection_scope
from sync.audit import Actor
from sync.authoring import Authoring
from sync.clock import Clock
from sync.errors import Forbidden, InvalidInput, InvalidTransition, NotFound, RevisionMismatch
from sync.models import (
    Assignment,
    Chain,
    Filter,
    Inspection,
    InspectionStatus,
    Principal,
    Role,
    StoredRecord,
)
from sync.notify import Notifier
from sync.review import undecided_and_conflicts
from sync.storage import BatchTx, Store

__all__ = ["REFERENCE_KINDS", "TRANSITIONS", "Registry", "new_id"]

REFERENCE_KINDS = ("authority", "organisation", "site", "product", "chain")

# status -> (next status, roles that may make the move)
TRANSITIONS: dict[InspectionStatus, tuple[InspectionStatus, frozenset[Role]]] = {
    InspectionStatus.PLANNED: (
        InspectionStatus.IN_PROGRESS,
        frozenset({Role.INSPECTOR, Role.SUPERVISOR, Role.ADMIN}),
    ),
    InspectionStatus.IN_PROGRESS: (
        InspectionStatus.FIELDWORK_DONE,
        frozenset({Role.INSPECTOR, Role.SUPERVISOR, Role.ADMIN}),
    ),
    InspectionStatus.FIELDWORK_DONE: (
        InspectionStatus.UNDER_REVIEW,
        frozenset({Role.SUPERVISOR, Role.ADMIN}),
    ),
    InspectionStatus.UNDER_REVIEW: (
        InspectionStatus.CLOSED,
        frozenset({Role.SUPERVISOR, Role.ADMIN}),
    ),
}

# what an inspection's planned fields may not reference (kind of the field's target)
_REFS = {
    "site": [("organisation_id", "organisation")],
    "product": [("mah_id", "organisation")],
    "chain": [("product_id", "product")],
}


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def _body(struct: msgspec.Struct) -> dict[str, Any]:
    return msgspec.to_builtins(struct)  # type: ignore[no-any-return]


class Registry:
    def __init__(
        self, store: Store, clock: Clock, authoring: Authoring, notifier: Notifier | None = None
    ) -> None:
        self.store = store
        self.clock = clock
        self.authoring = authoring
        self.notifier = notifier or Notifier()

    # --- reference data ----------------------------------------------------------

    async def _require(self, kind: str, record_id: str, field: str) -> StoredRecord:
        rec = await self.store.get_record(kind, record_id)
        if rec is None:
            raise InvalidInput(f"no {kind} {record_id!r}", field=field)
        return rec

    async def _check_reference(self, kind: str, body: msgspec.Struct) -> None:
        for field, target in _REFS.get(kind, ()):
            await self._require(target, getattr(body, field), field)
        if isinstance(body, Chain):
            seen: set[str] = set()
            for n, link in enumerate(body.links):
                if link.id in seen:
                    raise InvalidInput(f"duplicate link id {link.id!r}", field=f"links[{n}].id")
                seen.add(link.id)
                await self._require("site", link.site_id, f"links[{n}].site_id")
            if not body.links:
                raise InvalidInput("a chain needs at least one link", field="links")

    async def create_reference(
        self, principal: Principal, kind: str, record_id: str | None, body: msgspec.Struct
    ) -> StoredRecord:
        if principal.role is not Role.ADMIN:
            raise Forbidden("only an admin may write reference data")
        await self._check_reference(kind, body)
        return await self.store.create_record(
            kind, record_id or new_id(kind[:4]), _body(body), actor=Actor.of(principal)
        )

    async def replace_reference(
        self,
        principal: Principal,
        kind: str,
        record_id: str,
        body: msgspec.Struct,
        expect_rev: int | None,
    ) -> StoredRecord:
        if principal.role is not Role.ADMIN:
            raise Forbidden("only an admin may write reference data")
        await self._check_reference(kind, body)
        return await self.store.update_record(
            kind, record_id, _body(body), expect_rev=expect_rev, actor=Actor.of(principal)
        )

    async def visible_reference_ids(self, principal: Principal) -> dict[str, set[str]] | None:
        """For an inspector, the reference records reachable from their inspections:
        sites, chains, products, organisations. None means "everything" (supervisor,
        admin)."""
        if principal.role is not Role.INSPECTOR:
            return None
        inspections = await self.store.list_records("inspection", inspection_scope(principal))
        sites = {i.data["site_id"] for i in inspections}
        chains = {i.data["chain_id"] for i in inspections}
        products: set[str] = set()
        orgs: set[str] = set()
        for cid in chains:
            chain = await self.store.get_record("chain", cid)
            if chain is not None:
                products.add(chain.data["product_id"])
        for pid in products:
            product = await self.store.get_record("product", pid)
            if product is not None:
                orgs.add(product.data["mah_id"])
        for sid in sites:
            site = await self.store.get_record("site", sid)
            if site is not None:
                orgs.add(site.data["organisation_id"])
        return {"site": sites, "chain": chains, "product": products, "organisation": orgs}

    async def get_reference(self, principal: Principal, kind: str, record_id: str) -> StoredRecord:
        rec = await self.store.get_record(kind, record_id)
        if rec is None:
            raise NotFound(f"no {kind} {record_id!r}")
        if kind != "authority":
            visible = await self.visible_reference_ids(principal)
            if visible is not None and record_id not in visible[kind]:
                raise NotFound(f"no {kind} {record_id!r}")
        return rec

    async def list_reference(
        self, principal: Principal, kind: str, *, limit: int, offset: int
    ) -> tuple[list[StoredRecord], int]:
        filters: list[Filter] = []
        if kind != "authority":
            visible = await self.visible_reference_ids(principal)
            if visible is not None:
                filters.append(Filter("id", "in", sorted(visible[kind])))
        items = await self.store.list_records(kind, filters, limit=limit, offset=offset)
        return items, await self.store.count_records(kind, filters)

    # --- inspections -------------------------------------------------------------

    def _may_plan(self, principal: Principal, lead_authority_id: str) -> None:
        if principal.role is Role.ADMIN:
            return
        if principal.role is Role.SUPERVISOR and principal.authority_id == lead_authority_id:
            return
        raise Forbidden("only an admin or a supervisor of the lead authority plans inspections")

    async def _check_inspection(self, body: Inspection) -> None:
        await self._require("site", body.site_id, "site_id")
        chain = await self._require("chain", body.chain_id, "chain_id")
        links = {link["id"]: link for link in chain.data["links"]}
        if not body.link_ids:
            raise InvalidInput("an inspection covers at least one chain link", field="link_ids")
        for n, lid in enumerate(body.link_ids):
            link = links.get(lid)
            if link is None:
                raise InvalidInput(
                    f"chain {body.chain_id!r} has no link {lid!r}", field=f"link_ids[{n}]"
                )
            if link["site_id"] != body.site_id:
                raise InvalidInput(
                    f"link {lid!r} is at site {link['site_id']!r}, not {body.site_id!r}",
                    field=f"link_ids[{n}]",
                )
        await self._require("authority", body.lead_authority_id, "lead_authority_id")
        for n, aid in enumerate(body.participating_authority_ids):
            await self._require("authority", aid, f"participating_authority_ids[{n}]")
        if body.planned_end < body.planned_start:
            raise InvalidInput("planned_end is before planned_start", field="planned_end")

    @staticmethod
    def _derive(body: Inspection, team: Sequence[str]) -> dict[str, Any]:
        data = _body(body)
        authorities = [body.lead_authority_id] + [
            a for a in body.participating_authority_ids if a != body.lead_authority_id
        ]
        data["authority_ids"] = authorities
        data["team_user_ids"] = sorted(set(team))
        return data

    async def create_inspection(
        self, principal: Principal, record_id: str | None, body: Inspection
    ) -> StoredRecord:
        self._may_plan(principal, body.lead_authority_id)
        body = msgspec.structs.replace(
            body, status=InspectionStatus.PLANNED, pins={}, started_at=None, closed_at=None
        )
        await self._check_inspection(body)
        return await self.store.create_record(
            "inspection",
            record_id or new_id("insp"),
            self._derive(body, []),
            actor=Actor.of(principal),
        )

    async def get_inspection(self, principal: Principal, inspection_id: str) -> StoredRecord:
        rec = await self.store.get_record("inspection", inspection_id)
        if rec is None or not can_see_inspection(principal, rec.data):
            raise NotFound(f"no inspection {inspection_id!r}")
        return rec

    async def update_inspection(
        self,
        principal: Principal,
        inspection_id: str,
        body: Inspection,
        expect_rev: int | None,
    ) -> StoredRecord:
        """Change the plan (dates, links, authorities, title) of a planned inspection.
        Status, pins and team are not changed here."""
        current = await self.get_inspection(principal, inspection_id)
        self._may_plan(principal, current.data["lead_authority_id"])
        self._may_plan(principal, body.lead_authority_id)
        if current.data["status"] != InspectionStatus.PLANNED:
            raise InvalidTransition(
                f"inspection is {current.data['status']}; only a planned inspection is re-planned"
            )
        body = msgspec.structs.replace(
            body, status=InspectionStatus.PLANNED, pins={}, started_at=None, closed_at=None
        )
        await self._check_inspection(body)
        data = self._derive(body, current.data["team_user_ids"])
        return await self.store.update_record(
            "inspection", inspection_id, data, expect_rev=expect_rev, actor=Actor.of(principal)
        )

    async def list_inspections(
        self,
        principal: Principal,
        filters: Sequence[Filter],
        *,
        limit: int,
        offset: int,
        order_by: str = "planned_start",
    ) -> tuple[list[StoredRecord], int]:
        scoped = [*inspection_scope(principal), *filters]
        items = await self.store.list_records(
            "inspection", scoped, limit=limit, offset=offset, order_by=order_by
        )
        return items, await self.store.count_records("inspection", scoped)

    async def transition(
        self,
        principal: Principal,
        inspection_id: str,
        to: InspectionStatus,
        *,
        expect_rev: int | None = None,
    ) -> StoredRecord:
        """Move an inspection one step along planned -> in_progress -> fieldwork_done
        -> under_review -> closed. Starting it pins, per covered link, the checklist
        version current for the link's stage type."""
        rec = await self.get_inspection(principal, inspection_id)
        status = InspectionStatus(rec.data["status"])
        step = TRANSITIONS.get(status)
        if step is None or step[0] is not to:
            allowed = step[0].value if step else "none"
            raise InvalidTransition(
                f"cannot go from {status.value} to {to.value}; next allowed: {allowed}",
                field="to",
                current_status=status.value,
            )
        if principal.role not in step[1]:
            raise Forbidden(f"a {principal.role.value} cannot move an inspection to {to.value}")
        if (
            principal.role is Role.SUPERVISOR
            and principal.authority_id != rec.data["lead_authority_id"]
            and to in (InspectionStatus.UNDER_REVIEW, InspectionStatus.CLOSED)
        ):
            raise Forbidden("only the lead authority reviews and closes an inspection")
        data = dict(rec.data)
        now = self.clock.now()
        if to is InspectionStatus.IN_PROGRESS:
            data["pins"] = await self._pins(rec.data)
            data["started_at"] = now.isoformat()
        if to is InspectionStatus.CLOSED:
            data["closed_at"] = now.isoformat()
        data["status"] = to.value
        expected = expect_rev or rec.rev

        def write(tx: BatchTx) -> StoredRecord:
            current = tx.get_record("inspection", inspection_id)
            if current is None:
                raise NotFound(f"no inspection {inspection_id!r}")
            if current.rev != expected:
                raise RevisionMismatch(
                    f"inspection {inspection_id!r} is at rev {current.rev}, not {expected}",
                    current_rev=current.rev,
                )
            if to is InspectionStatus.CLOSED:
                # In the transaction that closes: a push is serialised either before it
                # (and its findings are counted here) or after it (and is refused as
                # inspection_closed); nothing lands undecided on a closed inspection.
                undecided, conflicts = undecided_and_conflicts(tx, inspection_id)
                if undecided or conflicts:
                    raise InvalidTransition(
                        f"cannot close: {len(undecided)} finding(s) not decided,"
                        f" {len(conflicts)} open conflict(s)",
                        field="to",
                        undecided_findings=undecided,
                        open_conflicts=conflicts,
                    )
            return tx.put_record("inspection", inspection_id, data, rev=current.rev + 1)

        updated = await self.store.write_batch(write, actor=Actor.of(principal))
        self.notifier.publish([inspection_id])
        return updated

    async def _pins(self, inspection: dict[str, Any]) -> dict[str, str]:
        chain = await self.store.get_record("chain", inspection["chain_id"])
        if chain is None:
            raise InvalidTransition("the inspection's chain no longer exists")
        links = {link["id"]: link for link in chain.data["links"]}
        pins: dict[str, str] = {}
        for lid in inspection["link_ids"]:
            stage = links[lid]["stage_type"]
            version = await self.authoring.current_version(StageType(stage))
            if version is None:
                raise InvalidTransition(
                    f"no published checklist for stage type {stage}; publish one first",
                    field="link_ids",
                )
            pins[lid] = version.id
        return pins

    # --- team ------------------------------------------------------------------

    async def list_assignments(
        self, principal: Principal, inspection_id: str
    ) -> list[StoredRecord]:
        await self.get_inspection(principal, inspection_id)
        return await self.store.list_records(
            "assignment", [Filter("inspection_id", "eq", inspection_id)]
        )

    async def assign(
        self, principal: Principal, inspection_id: str, body: Assignment
    ) -> StoredRecord:
        """Put an inspector on an inspection's team (one assignment per user)."""
        inspection = await self.get_inspection(principal, inspection_id)
        self._may_plan(principal, inspection.data["lead_authority_id"])
        user = await self.store.get_user(body.user_id)
        if user is None or user.disabled:
            raise InvalidInput(f"no active user {body.user_id!r}", field="user_id")
        if user.role is not Role.INSPECTOR:
            raise InvalidInput("only inspectors are assigned to inspections", field="user_id")
        if user.authority_id not in inspection.data["authority_ids"]:
            raise InvalidInput(
                "the inspector's authority does not take part in this inspection",
                field="user_id",
            )
        if body.user_id in inspection.data["team_user_ids"]:
            raise InvalidInput("the inspector is already on the team", field="user_id")
        body = msgspec.structs.replace(body, inspection_id=inspection_id)
        async with self.store.transaction(Actor.of(principal)) as tx:
            rec = await tx.create_record("assignment", new_id("asg"), _body(body))
            data = dict(inspection.data)
            data["team_user_ids"] = sorted({*data["team_user_ids"], body.user_id})
            await tx.update_record("inspection", inspection_id, data, expect_rev=inspection.rev)
        self.notifier.publish([inspection_id])
        return rec

    async def unassign(self, principal: Principal, inspection_id: str, assignment_id: str) -> None:
        inspection = await self.get_inspection(principal, inspection_id)
        self._may_plan(principal, inspection.data["lead_authority_id"])
        asg = await self.store.get_record("assignment", assignment_id)
        if asg is None or asg.data["inspection_id"] != inspection_id:
            raise NotFound(f"no assignment {assignment_id!r} on this inspection")
        async with self.store.transaction(Actor.of(principal)) as tx:
            await tx.delete_record("assignment", assignment_id)
            data = dict(inspection.data)
            data["team_user_ids"] = [u for u in data["team_user_ids"] if u != asg.data["user_id"]]
            await tx.update_record("inspection", inspection_id, data, expect_rev=inspection.rev)
        self.notifier.publish([inspection_id])
