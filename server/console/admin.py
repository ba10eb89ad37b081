"""The admin's pages for people and places: users, devices and their sync state,
reference data, the audit trail and its verification (docs/console.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server.app import Services
    from server.console.reads import ConsoleReads

__all__ = ["admin_pages"]


def admin_pages(services: Services, reads: ConsoleReads) -> list[Any]:
    """The route handlers of the admin pages (guarded by ``admin_only``)."""
    return []
