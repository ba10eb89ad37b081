"""Figures of the sync state an operator watches, read at the moment they are asked
(the server serves them on ``/metrics``; nothing here knows Prometheus)."""

from __future__ import annotations

import msgspec

from sync.models import Filter
from sync.storage import BatchTx, Store

__all__ = ["SyncGauges", "sync_gauges"]


class SyncGauges(msgspec.Struct, frozen=True, kw_only=True):
    open_conflicts: int
    """Conflicts kept and not yet resolved, in every inspection."""
    quarantined: int
    """Rejected mutations kept in quarantine (they stay there for audit)."""
    missing_evidence: int
    """Files that live findings and responses of inspections not closed name, and no
    completed upload for that inspection has stored (counted once per inspection)."""
    inspections_missing_evidence: int
    """Inspections (not closed) with at least one such file."""
    writer_queue: int
    """Write batches of this process waiting for the database writer."""
    writer_busy_seconds: float
    """Seconds this process's writer has run push batches since start (monotonic)."""
    speculation: dict[str, int]
    """Speculative push batches since start: kept, rerun, declined (PostgreSQL)."""


async def sync_gauges(store: Store) -> SyncGauges:
    """The figures, from one read snapshot (the writer queue: this process, now).
    Finding missing evidence reads every finding and response of the inspections not
    closed, as the end of a pull that asks for it does."""

    def read(tx: BatchTx) -> tuple[int, int, dict[str, list[str]]]:
        conflicts = tx.find_records("conflict", [Filter("status", "eq", "open")])
        quarantined = len(tx.list_quarantine(None))
        taking = sorted(
            r.id for r in tx.find_records("inspection") if r.data.get("status") != "closed"
        )
        return len(conflicts), quarantined, tx.missing_evidence(taking)

    conflicts, quarantined, missing = await store.read_batch(read)
    return SyncGauges(
        open_conflicts=conflicts,
        quarantined=quarantined,
        missing_evidence=sum(len(v) for v in missing.values()),
        inspections_missing_evidence=sum(1 for v in missing.values() if v),
        writer_queue=store.writer_queue_depth(),
        writer_busy_seconds=store.writer_busy_seconds(),
        speculation=store.speculation_counts(),
    )
