"""The inspection conclusion on NMPA's three-level scale, and the rule that suggests it.

NMPA's on-site inspections end in one of 符合要求 / 基本符合要求 / 不符合要求 (meets,
basically meets, does not meet requirements). A supervisor of the lead authority sets
it, with a reason, once every finding is decided; the server suggests one from the
accepted findings' classifications (:func:`suggest`), and the supervisor may conclude
otherwise (an override: the suggestion, the conclusion and the reason are all kept).
Each setting is signed (printed name, meaning, time, the hash of the accepted findings
and the conclusion) and audited; an earlier setting stays in ``history``.

The rule (docs/api.md, "Inspection conclusion", says where it comes from):

- any accepted **critical** (NMPA: 严重缺陷) finding -> does not meet;
- else any **major** (主要缺陷) -> basically meets; several majors that, taken together,
  show a system of the quality system not working make it *does not meet*: the rule
  cannot judge that they are related, so it says so (``several_majors``) and the
  supervisor decides;
- else only **other** (一般缺陷) findings -> meets; several related ones that show a
  system incomplete make it *basically meets* (``several_others``, the supervisor's call);
- no accepted finding -> meets.

The conclusion is its own record (kind ``conclusion``, id = the inspection's id, with
``inspection_id``), so it reaches the inspection's tablets read-only like a decision,
and its audit trail is the inspection's. Pure rule, no I/O; :class:`Conclusions` is the
service.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from typing import Any, Literal

import msgspec

from sync.access import visible_inspection
from sync.audit import Actor, AuditContext
from sync.clock import Clock
from sync.errors import Forbidden, InvalidInput, InvalidTransition, RevisionMismatch
from sync.models import Principal, Role, StoredRecord
from sync.notify import Notifier
from sync.signatures import content_hash, printed_name
from sync.storage import BatchTx, Store

__all__ = [
    "CONCLUSIONS",
    "CONCLUSION_LABELS",
    "ConclusionIn",
    "Conclusions",
    "Suggestion",
    "signed_hash",
    "suggest",
]

Level = Literal["meets", "basically_meets", "does_not_meet"]

CONCLUSIONS: tuple[Level, ...] = ("meets", "basically_meets", "does_not_meet")
"""Best to worst."""

CONCLUSION_LABELS: dict[str, dict[str, str]] = {
    "meets": {"en": "Meets requirements", "zh": "符合要求"},
    "basically_meets": {"en": "Basically meets requirements", "zh": "基本符合要求"},
    "does_not_meet": {"en": "Does not meet requirements", "zh": "不符合要求"},
}

SEVERAL = 2
"""From how many findings of one class the rule asks the supervisor whether they are
related (one system of the quality system at fault)."""

_SETTABLE = ("fieldwork_done", "under_review")
_DECIDED = ("accepted", "merged", "withdrawn")


class Suggestion(msgspec.Struct, frozen=True, kw_only=True):
    conclusion: Level
    counts: dict[str, int]
    """Accepted findings by classification: critical, major, other."""
    rule: Literal["critical", "major", "other", "none"]
    """The branch of the rule that decided: the worst classification found."""
    caution: Literal["several_majors", "several_others"] | None = None
    """Several findings of the deciding class: if they are related, the conclusion is
    one step worse (the supervisor judges; the rule cannot)."""


def suggest(classifications: Iterable[str | None]) -> Suggestion:
    """The conclusion the accepted findings' classifications suggest (see the module
    docstring). Order does not matter; unknown or missing classifications are not
    counted (an accepted finding always has one)."""
    found = Counter(c for c in classifications if c in ("critical", "major", "other"))
    counts = {k: found.get(k, 0) for k in ("critical", "major", "other")}
    if counts["critical"]:
        return Suggestion(conclusion="does_not_meet", counts=counts, rule="critical")
    if counts["major"]:
        several = counts["major"] >= SEVERAL
        return Suggestion(
            conclusion="basically_meets",
            counts=counts,
            rule="major",
            caution="several_majors" if several else None,
        )
    if counts["other"]:
        several = counts["other"] >= SEVERAL
        return Suggestion(
            conclusion="meets",
            counts=counts,
            rule="other",
            caution="several_others" if several else None,
        )
    return Suggestion(conclusion="meets", counts=counts, rule="none")


class ConclusionIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    conclusion: Level
    reason: str
    """Why; required (audited and signed). Say why when overriding the suggestion."""
    expect_rev: int | None = None
    """If given, applies only if the conclusion is at this revision (0: none yet)."""


def signed_hash(findings: list[StoredRecord], conclusion: str, reason: str) -> str:
    """SHA-256 of what a conclusion signs: the accepted findings' signed content, the
    conclusion and its reason."""
    body = msgspec.json.encode(
        {
            "findings": content_hash([(f.kind, f.id, f.data) for f in findings]),
            "conclusion": conclusion,
            "reason": reason,
        },
        order="sorted",
    )
    return hashlib.sha256(body).hexdigest()


class Conclusions:
    """Reads and sets inspection conclusions."""

    def __init__(self, store: Store, clock: Clock, notifier: Notifier) -> None:
        self.store = store
        self.clock = clock
        self.notifier = notifier

    @staticmethod
    def _accepted(tx: BatchTx, inspection_id: str) -> list[StoredRecord]:
        return [
            f for f in tx.records_of("finding", inspection_id) if f.data.get("status") == "accepted"
        ]

    @staticmethod
    def _inspection(tx: BatchTx, principal: Principal, inspection_id: str) -> StoredRecord:
        return visible_inspection(tx, principal, inspection_id)

    @staticmethod
    def _blocker(tx: BatchTx, principal: Principal, insp: StoredRecord) -> str | None:
        """Why this principal may not set the conclusion now (None: they may)."""
        if principal.role is not Role.SUPERVISOR:
            return "role"
        if insp.data["lead_authority_id"] != principal.authority_id:
            return "authority"
        if insp.data["status"] not in _SETTABLE:
            return "status"
        undecided = [
            f.id
            for f in tx.records_of("finding", insp.id)
            if f.data.get("status", "draft") not in _DECIDED
        ]
        if undecided or any(
            c.data.get("status") == "open" for c in tx.records_of("conflict", insp.id)
        ):
            return "undecided"
        return None

    async def view(self, principal: Principal, inspection_id: str) -> dict[str, Any]:
        """The suggestion from the accepted findings now, the conclusion set (or None)
        with its revision, ``matches`` (whether its signature still matches the accepted
        findings: false once a decision changed them since; None without a conclusion),
        and whether (and if not, why not) the principal may set it: ``blocked`` is
        ``role``, ``authority``, ``status`` or ``undecided``."""

        def read(tx: BatchTx) -> dict[str, Any]:
            insp = self._inspection(tx, principal, inspection_id)
            rec = tx.get_record("conclusion", inspection_id)
            accepted = self._accepted(tx, inspection_id)
            matches = None
            if rec is not None:
                signed = (rec.data.get("signature") or {}).get("content_hash")
                now = signed_hash(accepted, rec.data["conclusion"], rec.data["reason"])
                matches = signed == now
            return {
                "inspection_id": inspection_id,
                "suggestion": msgspec.to_builtins(
                    suggest(f.data.get("classification") for f in accepted)
                ),
                "conclusion": rec.data if rec else None,
                "rev": rec.rev if rec else 0,
                "matches": matches,
                "blocked": self._blocker(tx, principal, insp),
            }

        return await self.store.read_batch(read)

    async def set(
        self,
        principal: Principal,
        inspection_id: str,
        body: ConclusionIn,
        *,
        authenticated_by: str | None = None,
    ) -> dict[str, Any]:
        """Set (or change, before closing) the conclusion: a supervisor of the lead
        authority, the inspection at fieldwork done or under review, every finding
        decided and no conflict open. The suggestion at this moment is kept beside the
        conclusion; one that differs is an override. Signed and audited with the
        reason; the earlier setting moves to ``history``."""
        if principal.role is not Role.SUPERVISOR:
            raise Forbidden("only a supervisor of the lead authority concludes an inspection")
        reason = body.reason.strip()
        if not reason:
            raise InvalidInput("a conclusion needs a reason", field="reason")
        name = printed_name(await self.store.get_user(principal.user_id), principal.username)
        now = self.clock.now().isoformat()

        def write(tx: BatchTx) -> StoredRecord:
            insp = self._inspection(tx, principal, inspection_id)
            match self._blocker(tx, principal, insp):
                case "authority":
                    raise Forbidden(
                        "only a supervisor of the lead authority concludes an inspection"
                    )
                case "status":
                    raise InvalidTransition(
                        f"the inspection is {insp.data['status']}: it is concluded at"
                        " fieldwork done or under review",
                        field="conclusion",
                        current_status=insp.data["status"],
                    )
                case "undecided":
                    raise InvalidTransition(
                        "decide every finding and resolve every conflict first",
                        field="conclusion",
                    )
            current = tx.get_record("conclusion", inspection_id)
            rev = current.rev if current else 0
            if body.expect_rev is not None and body.expect_rev != rev:
                raise RevisionMismatch(
                    f"the conclusion is at rev {rev}, not {body.expect_rev}", current_rev=rev
                )
            accepted = self._accepted(tx, inspection_id)
            suggestion = suggest(f.data.get("classification") for f in accepted)
            entry: dict[str, Any] = {
                "conclusion": body.conclusion,
                "suggested": suggestion.conclusion,
                "override": body.conclusion != suggestion.conclusion,
                "counts": suggestion.counts,
                "caution": suggestion.caution,
                "reason": reason,
                "findings": sorted(f.id for f in accepted),
                "set_by": principal.user_id,
                "set_by_name": name,
                "set_at": now,
                "signature": {
                    "signer_name": name,
                    "meaning": "approved",
                    "signed_at": now,
                    "content_hash": signed_hash(accepted, body.conclusion, reason),
                    "authenticated_by": authenticated_by,
                },
            }
            history: list[dict[str, Any]] = []
            if current is not None:
                earlier = {k: v for k, v in current.data.items() if k not in ("history",)}
                earlier.pop("inspection_id", None)
                history = [*(current.data.get("history") or []), earlier]
            data = {"inspection_id": inspection_id, **entry, "history": history}
            tx.context = AuditContext(reason=reason, received_at=now)
            return tx.put_record("conclusion", inspection_id, data, rev=rev + 1, op="conclude")

        rec = await self.store.write_batch(write, actor=Actor.of(principal))
        self.notifier.publish([inspection_id])
        return {"rev": rec.rev, **rec.data}
