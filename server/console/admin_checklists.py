"""The admin's checklist pages: templates and versions, drafts edited in a form,
validation at the field, publish and retire, diffs, import and export
(docs/console.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server.app import Services
    from server.console.reads import ConsoleReads

__all__ = ["checklist_pages"]


def checklist_pages(services: Services, reads: ConsoleReads) -> list[Any]:
    """The route handlers of the checklist pages (guarded by ``admin_only``)."""
    return []
