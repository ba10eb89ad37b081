"""Supervisor review: the queue of findings, decisions on them, and signatures.

A decision (accept, return to the inspector, reclassify, merge duplicates) is a change
made on the server's side through :meth:`SyncEngine.server_write`: stamped with the
server's hybrid logical clock, audited with its reason, and delivered to tablets by the
next pull like any other change. Each decision is kept on the finding (``decisions``)
with the supervisor's signature bound to the finding's content
(:mod:`sync.signatures`); nothing is ever removed (a merged finding points to the
survivor, a reclassified one keeps ``original_classification``).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from datetime import date
from operator import attrgetter
from typing import Any, Literal, NamedTuple

import msgspec

from sync.access import can_see_inspection, inspection_scope
from sync.audit import Actor
from sync.clock import Clock
from sync.conclusion import signed_hash
from sync.engine import SyncEngine, public_data
from sync.errors import Forbidden, InvalidInput, InvalidTransition, NotFound, RevisionMismatch
from sync.fielddata import CLASSIFICATION_LABELS
from sync.models import Principal, Role, StoredRecord
from sync.queue_index import QueueEntry, QueueIndex, shown_classification
from sync.signatures import content_hash, printed_name
from sync.storage import BatchTx, Store

__all__ = [
    "DECIDED",
    "SHOWN",
    "Decision",
    "QueueQuery",
    "QueueResult",
    "Review",
    "shown_classification",
    "undecided_and_conflicts",
]

DECIDED = ("accepted", "merged", "withdrawn")
"""Finding statuses that need nothing more from a supervisor before closing."""

_REVIEWABLE = ("in_progress", "fieldwork_done", "under_review")


class Decision(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A supervisor's decision on one finding."""

    decision: Literal["accept", "return", "reclassify", "merge"]
    reason: str
    """Why; required for every decision (it is audited and signed)."""
    comment: str | None = None
    """For ``return``: what the inspector should fix (reaches the tablet)."""
    classification: Literal["critical", "major", "other"] | None = None
    """For ``reclassify``: the new classification."""
    into: str | None = None
    """For ``merge``: the id of the surviving finding (same inspection)."""
    expect_rev: int | None = None
    """If given, the decision applies only to this revision of the finding."""


class QueueQuery(msgspec.Struct, kw_only=True):
    """Filters, order and page of the review queue; every filter is optional."""

    product_id: str | None = None
    site_id: str | None = None
    inspection_id: str | None = None
    stage_type: str | None = None
    classification: str | None = None
    status: str | None = None
    inspector: str | None = None
    """User id of the inspector who raised the finding."""
    date_from: date | None = None
    date_to: date | None = None
    has_open_conflict: bool | None = None
    has_missing_evidence: bool | None = None
    sort: Literal["severity", "-updated", "updated", "raised", "-raised", "site"] = "severity"
    limit: int = 50
    offset: int = 0


def undecided_and_conflicts(tx: BatchTx, inspection_id: str) -> tuple[list[str], list[str]]:
    """Ids of the inspection's findings no supervisor has decided, and of its open
    conflicts: closing needs both empty."""
    undecided = [
        f.id
        for f in tx.records_of("finding", inspection_id)
        if f.data.get("status", "draft") not in DECIDED
    ]
    conflicts = [
        c.id for c in tx.records_of("conflict", inspection_id) if c.data["status"] == "open"
    ]
    return undecided, conflicts


def _raised_by(data: dict[str, Any]) -> str | None:
    """Who created a finding: its ``inspection_id`` is set once, at creation."""
    stamp = (data.get("_stamps") or {}).get("inspection_id")
    return str(stamp[2]) if stamp else None


class _Context(NamedTuple):
    """What the rows of one inspection's findings share."""

    insp: StoredRecord
    site: StoredRecord | None
    product: StoredRecord | None
    every_link: tuple[str, ...]
    """A finding with no linked item is about every link the inspection covers."""
    stages: dict[str, str]
    """Stage type of each link of the chain."""
    missing: frozenset[str]
    """The inspection's files named but not stored for it."""

    def links(self, e: QueueEntry) -> tuple[str, ...]:
        return e.links or self.every_link

    def stage_types(self, links: tuple[str, ...]) -> list[str]:
        return sorted({self.stages[k] for k in links if k in self.stages})


SHOWN = ("critical", "major", "other", "none", "disputed")
"""Classifications as shown and counted (see :func:`shown_classification`)."""


class QueueResult(NamedTuple):
    rows: list[dict[str, Any]]
    total: int
    counts: dict[str, int]
    latest: str
    """The newest change among every finding found (ISO time; empty if none)."""


def _matches(e: QueueEntry, q: QueueQuery, missing: frozenset[str], stage_types: list[str]) -> bool:
    raised = e.created_at.date()
    return (
        q.classification in (None, e.shown)
        and q.status in (None, e.status)
        and (q.inspector is None or q.inspector == e.raised_by)
        and (q.date_from is None or raised >= q.date_from)
        and (q.date_to is None or raised <= q.date_to)
        and q.has_open_conflict in (None, bool(e.open_conflicts))
        and (
            q.has_missing_evidence is None
            or q.has_missing_evidence == bool(missing.intersection(e.evidence))
        )
        and (q.stage_type is None or q.stage_type in stage_types)
    )


_FILTERS = (
    "classification",
    "status",
    "inspector",
    "date_from",
    "date_to",
    "has_open_conflict",
    "has_missing_evidence",
    "stage_type",
)
"""The filters on findings (the others choose inspections)."""

_ORDER: dict[str, Callable[[QueueEntry], Any]] = {
    "severity": attrgetter("rank", "created_at", "id"),
    "updated": attrgetter("updated_at", "id"),
    "-updated": attrgetter("updated_at", "id"),
    "raised": attrgetter("created_at", "id"),
    "-raised": attrgetter("created_at", "id"),
}


class Review:
    def __init__(self, store: Store, engine: SyncEngine, clock: Clock) -> None:
        self.store = store
        self.engine = engine
        self.clock = clock
        self.index = QueueIndex()

    # --- the queue -----------------------------------------------------------------

    async def queue(self, principal: Principal, q: QueueQuery) -> QueueResult:
        """Findings of the inspections the principal's authority leads or joins (all,
        for an admin), with what a reviewer filters on, sorted and paged; with the
        number found and their counts by classification as shown (disputed apart)."""
        if principal.role is Role.INSPECTOR:
            raise Forbidden("the review queue is for supervisors")
        if not 1 <= q.limit <= 500:
            raise InvalidInput("limit is 1 to 500", field="limit")
        if q.offset < 0:
            raise InvalidInput("offset is 0 or more", field="offset")

        def read(tx: BatchTx) -> QueueResult:
            inspections = [
                i
                for i in tx.find_records("inspection", inspection_scope(principal))
                if q.inspection_id in (None, i.id) and q.site_id in (None, i.data["site_id"])
            ]
            found, ctx = self._found(tx, inspections, q)
            counts = dict.fromkeys(SHOWN, 0)
            counts.update(Counter(e.shown for e in found))
            latest = max((e.updated_at for e in found), default=None)
            if q.sort == "site":
                names = {i: c.site.data["name"] if c.site else "" for i, c in ctx.items()}
                found.sort(key=lambda e: (names[e.inspection_id], e.created_at, e.id))
            else:
                found.sort(key=_ORDER[q.sort], reverse=q.sort.startswith("-"))
            page = found[q.offset : q.offset + q.limit]
            full = tx.get_records([("finding", e.id) for e in page])
            rows = [self._row(ctx[e.inspection_id], e, full[("finding", e.id)]) for e in page]
            return QueueResult(rows, len(found), counts, latest.isoformat() if latest else "")

        return await self.store.read_batch(read)

    def _found(
        self, tx: BatchTx, inspections: list[StoredRecord], q: QueueQuery
    ) -> tuple[list[QueueEntry], dict[str, _Context]]:
        """Every finding of these inspections that passes the filters, from the index
        (no finding is read in full here), and what each inspection's rows share."""
        entries = self.index.entries(tx, [i.id for i in inspections])
        filtered = any(getattr(q, name) is not None for name in _FILTERS)
        found: list[QueueEntry] = []
        ctx: dict[str, _Context] = {}
        for insp in inspections:
            chain = tx.get_record("chain", insp.data["chain_id"])
            product_id = chain.data["product_id"] if chain else None
            if q.product_id not in (None, product_id):
                continue
            named = {h for e in entries[insp.id] for h in e.evidence}
            c = ctx[insp.id] = _Context(
                insp=insp,
                site=tx.get_record("site", insp.data["site_id"]),
                product=tx.get_record("product", product_id) if product_id else None,
                every_link=tuple(sorted(insp.data["link_ids"])),
                stages={k["id"]: k["stage_type"] for k in (chain.data["links"] if chain else [])},
                missing=frozenset(named - tx.stored_for(insp.id, sorted(named))),
            )
            if not filtered:
                found += entries[insp.id]
                continue
            stage_types: dict[tuple[str, ...], list[str]] = {}  # a few distinct link sets
            for e in entries[insp.id]:
                about = c.links(e)
                types = stage_types.get(about)
                if types is None:
                    types = stage_types[about] = c.stage_types(about)
                if _matches(e, q, c.missing, types):
                    found.append(e)
        return found, ctx

    @staticmethod
    def _row(c: _Context, e: QueueEntry, f: StoredRecord) -> dict[str, Any]:
        cls = f.data.get("classification")
        insp, site, product = c.insp, c.site, c.product
        links = c.links(e)
        return {
            "id": f.id,
            "rev": f.rev,
            "title": f.data.get("title", ""),
            "classification": cls,
            "shown_classification": e.shown,
            "labels": CLASSIFICATION_LABELS.get(cls or "", {}),
            "original_classification": f.data.get("original_classification"),
            "status": f.data.get("status", "draft"),
            "raised_by": e.raised_by,
            "raised_at": f.created_at.isoformat(),
            "updated_at": f.updated_at.isoformat(),
            "inspection_id": insp.id,
            "inspection_title": insp.data["title"],
            "inspection_status": insp.data["status"],
            "lead_authority_id": insp.data["lead_authority_id"],
            "site_id": insp.data["site_id"],
            "site_name": site.data["name"] if site else "",
            "province": site.data["province"] if site else "",
            "product_id": product.id if product else None,
            "product_name": product.data["name"] if product else "",
            "link_ids": list(links),
            "stage_types": c.stage_types(links),
            "open_conflicts": f.data.get("open_conflicts", []),
            "missing_evidence": sorted(set(f.data.get("evidence_hashes") or []) & c.missing),
            "decisions": len(f.data.get("decisions") or []),
        }

    # --- decisions -----------------------------------------------------------------

    async def decide(
        self,
        principal: Principal,
        finding_id: str,
        d: Decision,
        *,
        authenticated_by: str | None = None,
    ) -> StoredRecord:
        """Apply a decision in one transaction; the finding (and, for a merge, the
        survivor) change together, audited with the reason and signed.
        ``authenticated_by`` says how the server re-established the signer at this
        moment (``password``: typed again, checked by the caller) and is kept in the
        signature."""
        if principal.role is not Role.SUPERVISOR:
            raise Forbidden("only a supervisor decides on findings")
        if not d.reason.strip():
            raise InvalidInput("a decision needs a reason", field="reason")
        name = printed_name(await self.store.get_user(principal.user_id), principal.username)
        now = self.clock.now().isoformat()

        def write(tx: BatchTx) -> StoredRecord:
            rec = tx.get_record("finding", finding_id)
            insp = tx.get_record("inspection", rec.data["inspection_id"]) if rec else None
            if rec is None or insp is None or not can_see_inspection(principal, insp.data):
                raise NotFound(f"no finding {finding_id!r}")
            if insp.data["lead_authority_id"] != principal.authority_id:
                raise Forbidden("only a supervisor of the lead authority decides on findings")
            if insp.data["status"] not in _REVIEWABLE:
                raise InvalidTransition(
                    f"the inspection is {insp.data['status']}", field="finding_id"
                )
            if d.expect_rev is not None and d.expect_rev != rec.rev:
                raise RevisionMismatch(
                    f"the finding is at rev {rec.rev}, not {d.expect_rev}", current_rev=rec.rev
                )
            status = rec.data.get("status", "draft")
            if status in ("merged", "withdrawn"):
                raise InvalidTransition(f"the finding is {status}", field="decision")
            entry: dict[str, Any] = {
                "id": f"dec_{uuid.uuid4().hex[:12]}",
                "decision": d.decision,
                "by": principal.user_id,
                "by_name": name,
                "at": now,
                "reason": d.reason,
            }
            updates, survivor = self._updates(tx, rec, d, entry, name, now)
            after = {**rec.data, **updates}
            entry["signature"] = {
                "signer_name": name,
                "meaning": "approved" if d.decision == "accept" else "reviewed",
                "signed_at": now,
                "content_hash": content_hash([("finding", rec.id, after)]),
                "authenticated_by": authenticated_by,
            }
            updates["decisions"] = [*(rec.data.get("decisions") or []), entry]
            op = f"review:{d.decision}"
            new = self.engine.server_write(tx, principal, rec, updates, op=op, reason=d.reason)
            if survivor is not None:
                merged_from = sorted({*(survivor.data.get("merged_from") or []), rec.id})
                evidence = sorted(
                    {
                        *(survivor.data.get("evidence_hashes") or []),
                        *(rec.data.get("evidence_hashes") or []),
                    }
                )
                self.engine.server_write(
                    tx,
                    principal,
                    survivor,
                    {"merged_from": merged_from, "evidence_hashes": evidence},
                    op=op,
                    reason=f"{rec.id} merged into it: {d.reason}",
                )
            return new

        new = await self.store.write_batch(write, actor=Actor.of(principal))
        self.engine.notifier.publish([new.data["inspection_id"]])
        return new

    @staticmethod
    def _updates(
        tx: BatchTx,
        rec: StoredRecord,
        d: Decision,
        entry: dict[str, Any],
        name: str,
        now: str,
    ) -> tuple[dict[str, Any], StoredRecord | None]:
        open_fields = rec.data.get("open_conflicts") or []
        match d.decision:
            case "accept":
                if open_fields:
                    raise InvalidTransition(
                        f"resolve the open conflicts first ({', '.join(open_fields)})",
                        field="decision",
                    )
                if rec.data.get("classification") not in CLASSIFICATION_LABELS:
                    raise InvalidInput(
                        "classify the finding before accepting it (reclassify)",
                        field="classification",
                    )
                return {"status": "accepted"}, None
            case "return":
                if not (d.comment and d.comment.strip()):
                    raise InvalidInput("say what the inspector should fix", field="comment")
                entry["comment"] = d.comment
                comment = {
                    "id": entry["id"],
                    "by": entry["by"],
                    "by_name": name,
                    "at": now,
                    "text": d.comment,
                    "kind": "return",
                }
                comments = [*(rec.data.get("comments") or []), comment]
                return {"status": "returned", "comments": comments}, None
            case "reclassify":
                current = rec.data.get("classification")
                if d.classification is None:
                    raise InvalidInput("give the new classification", field="classification")
                if d.classification == current:
                    raise InvalidInput(f"the finding is already {current}", field="classification")
                if "classification" in open_fields:
                    raise InvalidTransition(
                        "the classification is in an open conflict: resolve it instead",
                        field="classification",
                    )
                entry["from"], entry["to"] = current, d.classification
                updates: dict[str, Any] = {"classification": d.classification}
                if "original_classification" not in rec.data:
                    updates["original_classification"] = current
                return updates, None
            case "merge":
                survivor = tx.get_record("finding", d.into) if d.into else None
                if (
                    survivor is None
                    or survivor.id == rec.id
                    or survivor.data.get("inspection_id") != rec.data.get("inspection_id")
                    or survivor.data.get("status") == "merged"
                ):
                    raise InvalidInput(
                        "merge into another live finding of the same inspection", field="into"
                    )
                entry["into"] = survivor.id
                return {"status": "merged", "merged_into": survivor.id}, survivor
        raise InvalidInput(f"unknown decision {d.decision!r}", field="decision")

    # --- signatures ----------------------------------------------------------------

    async def signatures(self, principal: Principal, inspection_id: str) -> list[dict[str, Any]]:
        """Every signature of an inspection (inspectors' sign-offs, supervisors'
        decisions, the conclusion) and whether it still matches the content it signed.
        ``signer_name`` is the signing account's own name (``printed_name``), also for
        a sign-off recorded when tablets still sent a typed name. ``reauth_method`` and
        ``reauthenticated_at`` say how and when the signer proved again who they are
        (``sync.signatures.REAUTH_METHODS``); both None when they did not (a sign-off
        from an older tablet, a decision from before passwords were asked)."""

        def read(tx: BatchTx) -> list[dict[str, Any]]:
            insp = tx.get_record("inspection", inspection_id)
            if insp is None or not can_see_inspection(principal, insp.data):
                raise NotFound(f"no inspection {inspection_id!r}")
            out: list[dict[str, Any]] = []
            for s in tx.records_of("signoff", inspection_id):
                now = self.engine.scope_hash(tx, inspection_id, s.data.get("scope", ""))
                bound = s.data.get("bound_hash")
                out.append(
                    {
                        "kind": "signoff",
                        "id": s.id,
                        "scope": s.data.get("scope"),
                        "signer_name": s.data.get("signer_name"),
                        "signed_by": s.data.get("signed_by"),
                        "meaning": s.data.get("meaning"),
                        "signed_at": s.data.get("signed_at"),
                        "received_at": s.created_at.isoformat(),
                        "content_hash": bound,
                        "current_hash": now,
                        "matches": now == bound,
                        "device_hash_matched": s.data.get("content_hash") in (None, bound),
                        "unanswered": s.data.get("unanswered") or [],
                        "incomplete_reason": s.data.get("incomplete_reason"),
                        # as the tablet sent them: none from an older tablet
                        "reauth_method": s.data.get("reauth_method"),
                        "reauthenticated_at": s.data.get("reauthenticated_at"),
                    }
                )
            for f in tx.records_of("finding", inspection_id):
                now = content_hash([("finding", f.id, f.data)])
                for dec in f.data.get("decisions") or []:
                    sig = dec.get("signature") or {}
                    out.append(
                        {
                            "kind": "decision",
                            "id": dec["id"],
                            "finding_id": f.id,
                            "decision": dec["decision"],
                            "signer_name": sig.get("signer_name"),
                            "signed_by": dec.get("by"),
                            "meaning": sig.get("meaning"),
                            "signed_at": sig.get("signed_at"),
                            "received_at": dec.get("at") or sig.get("signed_at"),
                            "content_hash": sig.get("content_hash"),
                            "current_hash": now,
                            "matches": now == sig.get("content_hash"),
                            "reauth_method": sig.get("authenticated_by"),
                            "reauthenticated_at": sig.get("signed_at")
                            if sig.get("authenticated_by")
                            else None,
                        }
                    )
            concluded = tx.get_record("conclusion", inspection_id)
            if concluded is not None:
                sig = concluded.data.get("signature") or {}
                accepted = [
                    f
                    for f in tx.records_of("finding", inspection_id)
                    if f.data.get("status") == "accepted"
                ]
                now = signed_hash(accepted, concluded.data["conclusion"], concluded.data["reason"])
                out.append(
                    {
                        "kind": "conclusion",
                        "id": concluded.id,
                        "conclusion": concluded.data["conclusion"],
                        "signer_name": sig.get("signer_name"),
                        "signed_by": concluded.data.get("set_by"),
                        "meaning": sig.get("meaning"),
                        "signed_at": sig.get("signed_at"),
                        "received_at": concluded.data.get("set_at") or sig.get("signed_at"),
                        "content_hash": sig.get("content_hash"),
                        "current_hash": now,
                        "matches": now == sig.get("content_hash"),
                        "reauth_method": sig.get("authenticated_by"),
                        "reauthenticated_at": sig.get("signed_at")
                        if sig.get("authenticated_by")
                        else None,
                    }
                )
            return out

        out = await self.store.read_batch(read)
        names: dict[str, str] = {}
        for uid in {s["signed_by"] for s in out if isinstance(s.get("signed_by"), str)}:
            user = await self.store.get_user(uid)
            if user is not None:
                names[uid] = printed_name(user, user.username)
        for s in out:
            s["signer_name"] = names.get(s.get("signed_by") or "", s.get("signer_name"))
        return out


def finding_view(rec: StoredRecord) -> dict[str, Any]:
    """A finding as reviewers see it (public fields, id and rev)."""
    return {"id": rec.id, "rev": rec.rev, **public_data(rec)}
