"""Who may see what: the scope rules shared by the API and (later) the change feed.

These are the object-level checks of DESIGN.md: an inspector reaches only inspections
they are assigned to; a supervisor only those their authority leads or takes part in;
an admin everything. Anything outside a principal's scope is reported as *not found*
so that its existence is not revealed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sync.errors import NotFound
from sync.models import Filter, Principal, Role, StoredRecord

if TYPE_CHECKING:
    from sync.storage import BatchTx

__all__ = ["can_see_inspection", "inspection_scope", "visible_inspection"]


def inspection_scope(principal: Principal) -> list[Filter]:
    """Filters that restrict an inspection listing to what ``principal`` may see."""
    if principal.role is Role.ADMIN:
        return []
    if principal.role is Role.SUPERVISOR:
        return [Filter("authority_ids", "contains", principal.authority_id)]
    return [Filter("team_user_ids", "contains", principal.user_id)]


def can_see_inspection(principal: Principal, inspection: dict[str, Any]) -> bool:
    """The same rule as :func:`inspection_scope`, for one inspection body."""
    if principal.role is Role.ADMIN:
        return True
    if principal.role is Role.SUPERVISOR:
        return principal.authority_id in inspection.get("authority_ids", ())
    return principal.user_id in inspection.get("team_user_ids", ())


def visible_inspection(tx: BatchTx, principal: Principal, inspection_id: str) -> StoredRecord:
    """The inspection, inside a transaction, if the principal may see it; else
    NotFound (whether or not it exists)."""
    insp = tx.get_record("inspection", inspection_id)
    if insp is None or not can_see_inspection(principal, insp.data):
        raise NotFound(f"no inspection {inspection_id!r}")
    return insp
