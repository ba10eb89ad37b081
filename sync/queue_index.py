"""What the review queue filters and sorts on, kept in memory and caught up from the
change feed.

Reading and decoding every finding of a supervisor's scope on every queue request costs
about 50 us a finding (20,000 findings: a second). The queue needs a few fields of each
(classification, status, who raised it, when, conflicts, evidence, linked links), so
:class:`QueueIndex` keeps those per inspection and brings them up to date with the
records whose ``seq`` is past the one it last read: the same change feed a tablet pulls,
so it never misses a change a pull would see (on any backend, see
docs/architecture.md). The full records are read only for the rows of the page shown.

The index is a cache: it holds nothing that is not in the store, can be dropped at any
time, and is bounded (``max_findings``, about 600 bytes each: 200,000 is about 120 MB;
past it, the inspections asked for longest ago go).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime
from sys import intern
from typing import Any, NamedTuple

from sync.models import StoredRecord
from sync.storage import BatchTx

__all__ = ["RANK", "QueueEntry", "QueueIndex", "entry_of", "shown_classification"]

RANK = {"disputed": 0, "critical": 0, "major": 1, "other": 2, "none": 3}
"""Critical first; a disputed classification waits for a person, so it goes with them."""

_PAGE = 5000  # feed rows read at a time while catching up


class QueueEntry(NamedTuple):
    """One finding, as much as the queue filters and sorts on."""

    id: str
    inspection_id: str
    classification: str | None
    status: str
    raised_by: str | None
    created_at: datetime
    updated_at: datetime
    open_conflicts: tuple[str, ...]
    evidence: frozenset[str]
    links: tuple[str, ...]
    """The chain links of its linked items (empty: about every link the inspection covers)."""
    shown: str
    """Its classification as shown: ``disputed`` while in conflict, ``none`` if not set."""
    rank: int
    """Its place in the queue's default order: critical and disputed 0, major 1, other 2,
    none 3."""


def entry_of(f: StoredRecord) -> QueueEntry:
    d = f.data
    stamp = (d.get("_stamps") or {}).get("inspection_id")  # set once, by its creator
    conflicts = tuple(intern(str(c)) for c in d.get("open_conflicts") or ())
    classification = d.get("classification")
    shown = shown_classification(classification, conflicts)
    links = sorted({str(ref).partition(":")[0] for ref in d.get("linked_items") or []})
    # the words many findings share are held once (about 800 -> 600 bytes a finding)
    return QueueEntry(
        id=f.id,
        inspection_id=intern(str(d["inspection_id"])),
        classification=intern(classification) if isinstance(classification, str) else None,
        status=intern(str(d.get("status", "draft"))),
        raised_by=intern(str(stamp[2])) if stamp else None,
        created_at=f.created_at,
        updated_at=f.updated_at,
        open_conflicts=conflicts,
        evidence=frozenset(d.get("evidence_hashes") or ()),
        links=tuple(intern(k) for k in links),
        shown=shown,
        rank=RANK[shown],
    )


def shown_classification(classification: str | None, open_conflicts: Sequence[str]) -> str:
    """The classification as every view shows and counts it: ``disputed`` while its
    conflict is open (never one of the disputed values), ``none`` when not set."""
    if "classification" in open_conflicts:
        return "disputed"
    return classification if classification in RANK else "none"


class _Inspection:
    __slots__ = ("findings", "seq")

    def __init__(self, seq: int, findings: dict[str, QueueEntry]) -> None:
        self.seq = seq
        self.findings = findings


class QueueIndex:
    """Queue entries per inspection, each inspection as of a feed position.

    :meth:`entries` runs inside a read transaction (``Store.read_batch``); readers run
    on several threads, so the index is updated under a lock."""

    def __init__(self, max_findings: int = 200_000) -> None:
        self.max_findings = max_findings
        self._by_inspection: OrderedDict[str, _Inspection] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def entries(self, tx: BatchTx, inspection_ids: list[str]) -> dict[str, list[QueueEntry]]:
        """The live findings of these inspections as of ``tx``'s snapshot, by inspection."""
        with self._lock:
            head = tx.max_seq()
            known = [i for i in inspection_ids if i in self._by_inspection]
            self._catch_up(tx, known, head)
            for iid in inspection_ids:
                if iid not in self._by_inspection:
                    self._load(tx, iid, head)
                self._by_inspection.move_to_end(iid)
            out = {i: list(self._by_inspection[i].findings.values()) for i in inspection_ids}
            self._trim(keep=set(inspection_ids))
            return out

    def clear(self) -> None:
        with self._lock:
            self._by_inspection.clear()
            self._size = 0

    def _load(self, tx: BatchTx, iid: str, head: int) -> None:
        findings = {f.id: entry_of(f) for f in tx.records_of("finding", iid)}
        self._by_inspection[iid] = _Inspection(head, findings)
        self._size += len(findings)

    def _catch_up(self, tx: BatchTx, known: list[str], head: int) -> None:
        behind = [i for i in known if self._by_inspection[i].seq < head]
        if not behind:
            return
        after = min(self._by_inspection[i].seq for i in behind)
        while True:
            rows = tx.feed(after, behind, [], _PAGE, max_seq=head)
            for r in rows:
                self._apply(r, behind)
            if len(rows) < _PAGE:
                break
            after = rows[-1].seq
        for i in behind:
            self._by_inspection[i].seq = head

    def _apply(self, r: StoredRecord, behind: list[str]) -> None:
        if r.kind != "finding":
            return
        if r.deleted:  # a tombstone may carry no data: drop the id wherever it is held
            for i in behind:
                gone = self._by_inspection[i]
                if r.seq > gone.seq and gone.findings.pop(r.id, None) is not None:
                    self._size -= 1
            return
        iid = r.data.get("inspection_id")
        held = self._by_inspection.get(iid) if isinstance(iid, str) else None
        if held is None or r.seq <= held.seq:
            return
        before = len(held.findings)
        held.findings[r.id] = entry_of(r)
        self._size += len(held.findings) - before

    def _trim(self, keep: set[str]) -> None:
        while self._size > self.max_findings:
            oldest = next((i for i in self._by_inspection if i not in keep), None)
            if oldest is None:
                return
            self._size -= len(self._by_inspection.pop(oldest).findings)

    def stats(self) -> dict[str, Any]:
        return {"inspections": len(self._by_inspection), "findings": self._size}
