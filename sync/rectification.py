"""Rectification follow-up (整改 / CAPA) of accepted findings.

Every accepted finding of an inspection has a rectification: the company's response
(root cause, actions, the date it commits to, evidence files uploaded through the same
tus uploads as inspection evidence) and the inspectors' or supervisor's assessments of
it (``accepted``, or ``more_needed`` with what is missing). Its **deadline** is the date
the finding was accepted, in the authority's time zone, plus the days its lead
authority gives that classification (``Authority.rectification_days``, else
:data:`DEFAULT_DAYS`). It is **overdue** when the deadline's day has ended in that time
zone and no assessment has accepted it.

The company has no login yet: staff (the lead authority's supervisors, the inspection's
inspectors) enter its response for it, naming who at the company gave it
(``submitted_by``). A company login would later be one more role, scoped to its own
sites' rectifications, entering the same response through the same service.

A rectification is its own record (kind ``rectification``, id = the finding's id, with
``inspection_id``): audited, read-only on the inspection's tablets. Pure functions for
the dates (:func:`deadline`, :func:`is_overdue`, :func:`status_of`); :class:`Rectifications`
is the service.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import msgspec

from sync.access import can_see_inspection, inspection_scope, visible_inspection
from sync.audit import Actor, AuditContext
from sync.clock import Clock
from sync.errors import Forbidden, InvalidInput, NotFound, RevisionMismatch
from sync.fielddata import CLASSIFICATION_LABELS
from sync.models import EvidenceFile, Principal, Role, StoredRecord
from sync.notify import Notifier
from sync.storage import BatchTx, Store

__all__ = [
    "DEFAULT_DAYS",
    "ZONE",
    "Assessment",
    "Rectifications",
    "Response",
    "days_overdue",
    "deadline",
    "is_overdue",
    "status_of",
]

DEFAULT_DAYS: dict[str, int] = {"critical": 15, "major": 30, "other": 60}
"""Calendar days to rectify, by classification, where the authority sets none. This
project's defaults, not a regulation's: each authority sets its own."""

ZONE = ZoneInfo("Asia/Shanghai")
"""The authorities' time zone (every NMPA authority keeps China Standard Time)."""

Status = Literal["awaiting_response", "responded", "more_needed", "accepted"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_Text = Annotated[str, msgspec.Meta(max_length=20_000)]


def deadline(accepted_at: datetime, days: int, tz: ZoneInfo = ZONE) -> date:
    """The last day to rectify: the day the finding was accepted, in ``tz``, plus
    ``days``."""
    return accepted_at.astimezone(tz).date() + timedelta(days=days)


def is_overdue(due: date, now: datetime, tz: ZoneInfo = ZONE) -> bool:
    """Whether ``due`` has ended in ``tz`` at the instant ``now`` (an aware time): the
    whole of the last day counts, wherever the reader is."""
    return now.astimezone(tz).date() > due


def days_overdue(due: date, now: datetime, tz: ZoneInfo = ZONE) -> int:
    """Whole days since ``due`` ended in ``tz`` (0 if not overdue)."""
    return max(0, (now.astimezone(tz).date() - due).days)


def status_of(response: dict[str, Any] | None, assessments: list[dict[str, Any]]) -> Status:
    """Where a rectification stands: the last assessment decides, unless a response
    came after it (then it awaits assessment again). A response records how many
    assessments were made before it (``after_assessments``): order, not clock times,
    says what came after what."""
    last = assessments[-1] if assessments else None
    if last is not None and last.get("outcome") == "accepted":
        return "accepted"
    if response is None:
        return "awaiting_response"
    if len(assessments) > int(response.get("after_assessments", 0)):
        return "more_needed"
    return "responded"


class Response(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The company's response, entered by staff for it."""

    root_cause: _Text
    actions: _Text
    """Corrective and preventive actions taken or planned."""
    completion_date: date
    """The date the company commits to complete the actions by."""
    submitted_by: Annotated[str, msgspec.Meta(max_length=200)]
    """Who at the company gave the response (name and function)."""
    evidence_hashes: list[str] = []
    """SHA-256 of files uploaded (tus, ``purpose=rectification``) for the inspection."""
    expect_rev: int | None = None


class Assessment(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    outcome: Literal["accepted", "more_needed"]
    comment: _Text
    """What was checked; for ``more_needed``, what is missing."""
    expect_rev: int | None = None


class Rectifications:
    """Reads and writes rectifications; the overdue list."""

    def __init__(self, store: Store, clock: Clock, notifier: Notifier) -> None:
        self.store = store
        self.clock = clock
        self.notifier = notifier

    # --- reading ---------------------------------------------------------------------

    @staticmethod
    def _accepted_at(finding: StoredRecord) -> datetime | None:
        for d in reversed(finding.data.get("decisions") or []):
            if d.get("decision") == "accept":
                return datetime.fromisoformat(d["at"])
        return None

    @staticmethod
    def _days(tx: BatchTx, insp: StoredRecord) -> dict[str, int]:
        auth = tx.get_record("authority", insp.data["lead_authority_id"])
        given = (auth.data.get("rectification_days") if auth else None) or {}
        return {**DEFAULT_DAYS, **given}

    def _rows(self, tx: BatchTx, insp: StoredRecord, now: datetime) -> list[dict[str, Any]]:
        days = self._days(tx, insp)
        rows = []
        for f in tx.records_of("finding", insp.id):
            if f.data.get("status") != "accepted":
                continue
            cls = str(f.data.get("classification") or "other")
            accepted_at = self._accepted_at(f) or f.updated_at
            due = deadline(accepted_at, days.get(cls, DEFAULT_DAYS["other"]))
            rec = tx.get_record("rectification", f.id)
            data = rec.data if rec else {}
            response = data.get("response")
            assessments = list(data.get("assessments") or [])
            status = status_of(response, assessments)
            overdue = status != "accepted" and is_overdue(due, now)
            rows.append(
                {
                    "finding_id": f.id,
                    "inspection_id": insp.id,
                    "title": f.data.get("title", ""),
                    "classification": cls,
                    "labels": CLASSIFICATION_LABELS.get(cls, {}),
                    "accepted_at": accepted_at.isoformat(),
                    "deadline": due.isoformat(),
                    "status": status,
                    "overdue": overdue,
                    "days_overdue": days_overdue(due, now) if overdue else 0,
                    "response": response,
                    "assessments": assessments,
                    "rev": rec.rev if rec else 0,
                }
            )
        return sorted(rows, key=lambda r: (r["deadline"], r["finding_id"]))

    @staticmethod
    def _inspection(tx: BatchTx, principal: Principal, inspection_id: str) -> StoredRecord:
        return visible_inspection(tx, principal, inspection_id)

    async def of_inspection(self, principal: Principal, inspection_id: str) -> list[dict[str, Any]]:
        """The rectification of every accepted finding of an inspection, by deadline."""
        now = self.clock.now()

        def read(tx: BatchTx) -> list[dict[str, Any]]:
            return self._rows(tx, self._inspection(tx, principal, inspection_id), now)

        return await self.store.read_batch(read)

    async def overdue(self, principal: Principal) -> list[dict[str, Any]]:
        """Every overdue rectification of the inspections the principal may see, most
        overdue first, each with its inspection's title and site."""
        now = self.clock.now()

        def read(tx: BatchTx) -> list[dict[str, Any]]:
            out = []
            for insp in tx.find_records("inspection", inspection_scope(principal)):
                rows = [r for r in self._rows(tx, insp, now) if r["overdue"]]
                if not rows:
                    continue
                site = tx.get_record("site", insp.data["site_id"])
                for r in rows:
                    r["inspection_title"] = insp.data.get("title", "")
                    r["site_name"] = site.data.get("name", "") if site else ""
                out += rows
            return sorted(out, key=lambda r: (-r["days_overdue"], r["deadline"], r["finding_id"]))

        return await self.store.read_batch(read)

    async def record(self, principal: Principal, finding_id: str) -> StoredRecord | None:
        """The finding's rectification record as stored (its ``earlier_responses`` too),
        or None before anything was entered. NotFound unless the principal may see the
        finding's inspection."""

        def read(tx: BatchTx) -> StoredRecord | None:
            finding = tx.get_record("finding", finding_id)
            if finding is None:
                raise NotFound(f"no finding {finding_id!r}")
            self._inspection(tx, principal, finding.data["inspection_id"])
            return tx.get_record("rectification", finding_id)

        return await self.store.read_batch(read)

    async def evidence_file(
        self, principal: Principal, finding_id: str, sha256: str
    ) -> EvidenceFile:
        """A file a response of this rectification names (now or earlier), if the
        principal may see the inspection and the file was uploaded for it: knowing a
        hash is not enough, as for inspection evidence (``sync.uploads``). NotFound
        otherwise, exactly as for a file never uploaded."""
        rec = await self.record(principal, finding_id)
        data = rec.data if rec else {}
        named = {
            h
            for r in [*(data.get("earlier_responses") or []), data.get("response") or {}]
            for h in r.get("evidence_hashes") or []
        }
        ev = await self.store.get_evidence(sha256) if sha256 in named else None
        if ev is None or rec is None:
            raise NotFound(f"no evidence {sha256!r}")
        refs = await self.store.evidence_refs(sha256)
        if data["inspection_id"] not in {r.inspection_id for r in refs}:
            raise NotFound(f"no evidence {sha256!r}")
        return ev

    # --- writing ---------------------------------------------------------------------

    async def _write(
        self,
        principal: Principal,
        finding_id: str,
        expect_rev: int | None,
        change: Any,
        op: str,
        reason: str,
    ) -> dict[str, Any]:
        user = await self.store.get_user(principal.user_id)
        name = user.display_name if user else principal.username
        now = self.clock.now()

        def write(tx: BatchTx) -> dict[str, Any]:
            finding = tx.get_record("finding", finding_id)
            insp = tx.get_record("inspection", finding.data["inspection_id"]) if finding else None
            if finding is None or insp is None or not can_see_inspection(principal, insp.data):
                raise NotFound(f"no finding {finding_id!r}")
            lead = insp.data["lead_authority_id"] == principal.authority_id
            if not (
                (principal.role is Role.SUPERVISOR and lead) or principal.role is Role.INSPECTOR
            ):
                raise Forbidden(
                    "rectifications are followed by the lead authority's supervisors and the"
                    " inspection's inspectors"
                )
            if finding.data.get("status") != "accepted":
                raise InvalidInput("only an accepted finding is rectified", field="finding_id")
            rec = tx.get_record("rectification", finding_id)
            rev = rec.rev if rec else 0
            if expect_rev is not None and expect_rev != rev:
                raise RevisionMismatch(
                    f"the rectification is at rev {rev}, not {expect_rev}", current_rev=rev
                )
            data = dict(rec.data) if rec else {"inspection_id": insp.id, "finding_id": finding_id}
            change(tx, data, {"by": principal.user_id, "by_name": name, "at": now.isoformat()})
            tx.context = AuditContext(reason=reason, received_at=now.isoformat())
            tx.put_record("rectification", finding_id, data, rev=rev + 1, op=op)
            return {"rev": rev + 1, "inspection_id": insp.id}

        done = await self.store.write_batch(write, actor=Actor.of(principal))
        self.notifier.publish([done["inspection_id"]])
        rows = await self.of_inspection(principal, done["inspection_id"])
        return next(r for r in rows if r["finding_id"] == finding_id)

    async def respond(
        self, principal: Principal, finding_id: str, body: Response
    ) -> dict[str, Any]:
        """Enter (or replace) the company's response; the earlier one is kept in
        ``earlier_responses``. Evidence must be stored on the server already."""
        for field, value in (("root_cause", body.root_cause), ("actions", body.actions)):
            if not value.strip():
                raise InvalidInput(f"{field} is required", field=field)
        if not body.submitted_by.strip():
            raise InvalidInput("say who at the company gave the response", field="submitted_by")
        for n, h in enumerate(body.evidence_hashes):
            if not _SHA256.match(h):
                raise InvalidInput(
                    "a SHA-256 is 64 lowercase hex digits", field=f"evidence_hashes[{n}]"
                )

        def change(tx: BatchTx, data: dict[str, Any], who: dict[str, str]) -> None:
            stored = tx.stored_evidence(body.evidence_hashes)
            for n, h in enumerate(body.evidence_hashes):
                if h not in stored:
                    raise InvalidInput(
                        f"evidence {h} is not uploaded yet: upload it first (tus)",
                        field=f"evidence_hashes[{n}]",
                    )
            if data.get("response"):
                data["earlier_responses"] = [
                    *(data.get("earlier_responses") or []),
                    data["response"],
                ]
            data["response"] = {
                "root_cause": body.root_cause,
                "actions": body.actions,
                "completion_date": body.completion_date.isoformat(),
                "submitted_by": body.submitted_by,
                "evidence_hashes": sorted(set(body.evidence_hashes)),
                "entered_by": who["by"],
                "entered_by_name": who["by_name"],
                "entered_at": who["at"],
                "after_assessments": len(data.get("assessments") or []),
            }

        return await self._write(
            principal,
            finding_id,
            body.expect_rev,
            change,
            "rectification:respond",
            f"response from {body.submitted_by}",
        )

    async def assess(
        self, principal: Principal, finding_id: str, body: Assessment
    ) -> dict[str, Any]:
        """Assess the response: ``accepted`` closes the rectification; ``more_needed``
        asks for more (a later response is assessed again)."""
        if not body.comment.strip():
            raise InvalidInput("say what was checked, or what is missing", field="comment")

        def change(tx: BatchTx, data: dict[str, Any], who: dict[str, str]) -> None:
            if not data.get("response"):
                raise InvalidInput("there is no response to assess yet", field="outcome")
            if status_of(data["response"], list(data.get("assessments") or [])) == "accepted":
                raise InvalidInput("the rectification is accepted already", field="outcome")
            data["assessments"] = [
                *(data.get("assessments") or []),
                {"outcome": body.outcome, "comment": body.comment, **who},
            ]

        return await self._write(
            principal,
            finding_id,
            body.expect_rev,
            change,
            f"rectification:{body.outcome}",
            body.comment,
        )
