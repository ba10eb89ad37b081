"""The storage contract every backend implements (SQLite now, PostgreSQL later).

A backend passes ``tests/sync/test_store_contract.py`` unchanged; that suite is the
executable form of the guarantees written here.

Guarantees common to every method:

- Each write method is atomic: it commits entirely or not at all, and it returns only
  after its commit is durable.
- Writes are serialised: two writes never interleave, so no caller ever sees a
  "database is locked" error.
- Driver failures surface as :class:`~sync.errors.StorageError` with the original
  exception attached; they are never turned into "not found".
- Every record write takes the next value of one global, strictly increasing
  sequence as the record's ``seq``: the change feed position that pull cursors use.
- Every record write, and every change to a user or a device, appends one audit event
  (:mod:`sync.audit`) in the same transaction: the acting :class:`~sync.audit.Actor`,
  the fields changed with old and new values, the caller's
  :class:`~sync.audit.AuditContext`, and the hash chain. There is no method that
  changes or removes an audit event.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

import msgspec

from sync.audit import SYSTEM, Actor, Anchor, AuditContext, Verification
from sync.models import (
    Device,
    EvidenceFile,
    EvidenceRef,
    FeedRow,
    Filter,
    RefreshToken,
    Role,
    StoredRecord,
    Upload,
    User,
    public_fields,
)

__all__ = ["BatchTx", "Prefetched", "Store", "Transaction"]

T = TypeVar("T")


class Prefetched(NamedTuple):
    """What :meth:`BatchTx.prefetch` read."""

    mutations: dict[str, bytes]
    records: dict[tuple[str, str], StoredRecord]
    listings: dict[tuple[str, str], list[StoredRecord]]


class BatchTx(abc.ABC):
    """Synchronous access inside one write (or read) transaction, for the sync engine.

    ``Store.write_batch(fn)`` runs ``fn(tx)`` on the backend's writer thread in one
    transaction: a whole push batch costs one round trip to the database thread and
    commits (durably) or rolls back as a unit. ``read_batch`` runs ``fn`` on a reader
    over one consistent snapshot. Write methods raise on a read transaction.

    ``actor`` is who the batch's writes are audited as (set by ``write_batch``);
    ``context`` is what else the audit events of the next writes carry: the sync engine
    sets it per mutation (id, batch, clock readings, reason).
    """

    actor: Actor
    context: AuditContext

    @abc.abstractmethod
    def savepoint(self) -> AbstractContextManager[None]:
        """A part of the batch that is undone alone if it raises: on leaving the block
        with an exception, every write made inside it (records, audit events,
        mutation results, quarantine entries, sequence numbers) is rolled back and the
        exception propagates; the rest of the batch stands. The sync engine applies
        each mutation of a push in one, so a mutation that fails unexpectedly takes
        nothing else with it. Savepoints do not nest."""

    @abc.abstractmethod
    def get_record(
        self, kind: str, record_id: str, *, include_deleted: bool = False
    ) -> StoredRecord | None:
        """The record (or its tombstone if ``include_deleted``), or None."""

    @abc.abstractmethod
    def get_records(self, refs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], StoredRecord]:
        """Those of the (kind, id) pairs that exist, tombstones included, in one query."""

    @abc.abstractmethod
    def put_record(
        self,
        kind: str,
        record_id: str,
        data: dict[str, Any],
        *,
        rev: int,
        deleted: bool = False,
        op: str | None = None,
        fresh: bool = False,
    ) -> StoredRecord:
        """Insert or replace a record at revision ``rev`` with the next ``seq``.
        The record's inspection (its scope key) is taken from ``data["inspection_id"]``
        (an inspection is its own). Appends the audit event of the write: its ``op`` is
        ``op`` if given (``conflict``, ``resolve``, ``review``...), else create, update
        or delete as the write did. ``fresh``: the caller made ``record_id`` just now
        (a new random id), so no record has it and nothing is read before the write."""

    @abc.abstractmethod
    def find_records(self, kind: str, filters: Sequence[Filter] = ()) -> list[StoredRecord]:
        """Live records of a kind matching every filter (as ``Store.list_records``)."""

    @abc.abstractmethod
    def records_of(self, kind: str, inspection_id: str) -> list[StoredRecord]:
        """Live records of one kind that belong to one inspection, by id."""

    @abc.abstractmethod
    def get_mutations(self, keys: Sequence[str]) -> dict[str, bytes]:
        """The stored results of those of ``keys`` already applied (one query)."""

    def prefetch(
        self,
        keys: Sequence[str],
        refs: Sequence[tuple[str, str]],
        listings: Sequence[tuple[str, str]] = (),
    ) -> Prefetched:
        """The reads that open a push batch, made together: the stored results of
        ``keys`` (:meth:`get_mutations`), the records ``refs`` (:meth:`get_records`) and
        for each (kind, inspection id) of ``listings`` the live records
        (:meth:`records_of`). The same answers as those calls made one by one, which is
        what this default does; a database server backend sends them in one round
        trip."""
        return Prefetched(
            self.get_mutations(keys),
            self.get_records(refs),
            {(kind, iid): self.records_of(kind, iid) for kind, iid in dict.fromkeys(listings)},
        )

    def scope_version(self) -> int | None:
        """A number that changes with every write of a record deciding what pulls reach
        (inspections, chains, sites, products), as this batch sees it; None where the
        backend keeps none. Equal numbers mean those records are the same."""
        return None

    def flush_ahead(self) -> None:  # noqa: B027 (a hook: by default it does nothing)
        """Between two parts of a batch (never inside a savepoint): a backend that can
        send what the batch has buffered so far to the database without waiting may do
        so here, so that the database writes it while the batch goes on. Changes no
        answer; by default nothing happens."""

    @abc.abstractmethod
    def get_mutation(self, key: str) -> bytes | None:
        """The stored result of an already applied mutation, or None."""

    @abc.abstractmethod
    def put_mutation(
        self,
        key: str,
        *,
        user_id: str,
        device_id: str | None,
        batch_id: str,
        result: bytes,
        at: datetime,
    ) -> None:
        """Remember a mutation's result (its key is never reused)."""

    @abc.abstractmethod
    def add_quarantine(self, row: dict[str, Any]) -> None:
        """Keep a rejected mutation, with who, when and why."""

    @abc.abstractmethod
    def feed(
        self,
        after_seq: int,
        inspection_ids: Sequence[str],
        refs: Sequence[tuple[str, str]],
        limit: int,
        *,
        max_seq: int | None = None,
        live_only: bool = False,
    ) -> list[StoredRecord]:
        """Records (tombstones included unless ``live_only``) with ``after_seq < seq
        [<= max_seq]`` that belong to one of ``inspection_ids`` or are one of ``refs``
        (kind, id), in seq order, at most ``limit``."""

    def feed_json(
        self,
        after_seq: int,
        inspection_ids: Sequence[str],
        refs: Sequence[tuple[str, str]],
        limit: int,
        *,
        max_seq: int | None = None,
        live_only: bool = False,
    ) -> list[FeedRow]:
        """The same rows as :meth:`feed`, each record's public data (no ``_...``
        bookkeeping) as JSON text.

        A pull answered in JSON splices the text into the page instead of decoding
        and re-encoding every record. This default encodes what ``feed`` decoded; a
        backend that stores the public JSON apart overrides it to hand the stored text
        over as is."""
        return [
            FeedRow(
                r.kind,
                r.id,
                r.rev,
                r.seq,
                r.deleted,
                msgspec.json.encode(public_fields(r.data)).decode(),
            )
            for r in self.feed(
                after_seq, inspection_ids, refs, limit, max_seq=max_seq, live_only=live_only
            )
        ]

    @abc.abstractmethod
    def bound_refs(self, inspection_ids: Sequence[str]) -> list[tuple[str, str]]:
        """(kind, id) of every record belonging to these inspections, tombstones
        included (a tablet may hold a record whose deletion it never saw)."""

    @abc.abstractmethod
    def get_snapshot(self, key: str) -> str | None:
        """A stored scope snapshot (JSON text)."""

    @abc.abstractmethod
    def put_snapshot(self, key: str, scope: str) -> None:
        """Store a scope snapshot under its content hash (idempotent)."""

    @abc.abstractmethod
    def tombstone_horizon(self) -> int:
        """Tombstones with seq at or below this were purged: older cursors must resync."""

    @abc.abstractmethod
    def purge_tombstones(self, before: datetime) -> int:
        """Delete tombstones last changed before ``before``; move the horizon up to the
        highest purged seq. Returns how many were purged."""

    @abc.abstractmethod
    def max_seq(self) -> int:
        """The highest seq given out so far."""

    @abc.abstractmethod
    def update_device_sync(self, device_id: str, user_id: str, **fields: Any) -> None:
        """Upsert a device's sync state; ``mutations_received`` is added, not set.
        Written when the batch ends (:meth:`list_device_sync` in the same batch does
        not see it)."""

    @abc.abstractmethod
    def list_device_sync(self) -> list[dict[str, Any]]:
        """Every device's sync state."""

    @abc.abstractmethod
    def list_quarantine(self, inspection_ids: Sequence[str] | None) -> list[dict[str, Any]]:
        """Quarantined mutations, of some inspections or (None) all, newest first."""

    @abc.abstractmethod
    def history_of(self, kind: str, record_id: str) -> list[dict[str, Any]]:
        """Every audit event of one record, oldest first."""

    @abc.abstractmethod
    def missing_evidence(self, inspection_ids: Sequence[str]) -> dict[str, list[str]]:
        """As :meth:`Store.missing_evidence`, inside this transaction's snapshot (for a
        pull page that tells the tablet which of its files the server still needs)."""

    @abc.abstractmethod
    def stored_evidence(self, hashes: Sequence[str]) -> set[str]:
        """As :meth:`Store.stored_evidence`, inside this transaction's snapshot."""

    def stored_for(self, inspection_id: str, hashes: Sequence[str]) -> set[str]:
        """Those of ``hashes``, each named by a live record of the inspection, that a
        completed upload *for that inspection* has stored and that are not lost: the
        complement of :meth:`missing_evidence` for these hashes.

        The review queue asks this for the hashes its index holds instead of scanning
        every record of the inspection. This default derives it from
        :meth:`missing_evidence`; a backend answers it from its evidence tables."""
        gone = set(self.missing_evidence([inspection_id]).get(inspection_id, ()))
        return {h for h in hashes if h not in gone}


class Transaction(abc.ABC):
    """Record operations inside one atomic, serialised write transaction.

    Obtained from :meth:`Store.transaction`. Reads see the transaction's own writes.
    If the ``async with`` block raises, nothing of it is committed; when the block
    exits normally the commit is durable before control returns to the caller.
    Each write takes the next global ``seq``.
    """

    @abc.abstractmethod
    async def create_record(self, kind: str, record_id: str, data: dict[str, Any]) -> StoredRecord:
        """Insert a record at rev 1. Raises AlreadyExists if (kind, id) exists, even as
        a tombstone."""

    @abc.abstractmethod
    async def update_record(
        self, kind: str, record_id: str, data: dict[str, Any], *, expect_rev: int | None = None
    ) -> StoredRecord:
        """Replace a live record's data; rev goes up by one.

        Raises NotFound if missing or deleted, RevisionMismatch if ``expect_rev`` is
        given and is not the current rev.
        """

    @abc.abstractmethod
    async def delete_record(
        self, kind: str, record_id: str, *, expect_rev: int | None = None
    ) -> StoredRecord:
        """Turn a live record into a tombstone (kept, ``deleted`` true, new seq)."""

    @abc.abstractmethod
    async def get_record(self, kind: str, record_id: str) -> StoredRecord | None:
        """A live record, or None, as this transaction sees it."""


class Store(abc.ABC):
    """Abstract storage. Open with :meth:`open`, release with :meth:`close`."""

    # --- lifecycle ---------------------------------------------------------------

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and apply pending migrations. Idempotent."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections. The store may be opened again."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Return if the database answers a trivial query; raise StorageError if not."""

    @abc.abstractmethod
    async def schema_version(self) -> int:
        """The highest migration applied."""

    def startup_lock(self) -> AbstractAsyncContextManager[None]:
        """A section that one process at a time runs, for start-up work that must not
        race another instance's (loading the checklist library, seeding demo data). A
        backend one process owns needs none: this default lets everything in."""
        return contextlib.nullcontext()

    def writer_queue_depth(self) -> int:
        """Write batches of this process waiting for the database writer now (an
        operator's gauge, ``/metrics``); 0 for a backend that does not queue them."""
        return 0

    def writer_busy_seconds(self) -> float:
        """Seconds this process's writer has spent running push batches since the
        store opened: from the transaction's begin (the write lock taken) to its
        commit. Its share of the wall time is how much of the time the database's write
        lock is held: the bound on what more server instances can add (1 / share)."""
        return 0.0

    def speculation_counts(self) -> dict[str, int]:
        """Push batches of this process run speculatively (``write_batch``'s
        ``speculative``) since the store opened: ``kept``, ``rerun`` (what they read
        changed before the lock) and ``declined`` (they needed the lock); empty for a
        backend that does not speculate."""
        return {}

    # --- users -----------------------------------------------------------------

    @abc.abstractmethod
    async def add_user(self, user: User, *, actor: Actor = SYSTEM) -> User:
        """Insert a user (audited, without the password hash). Raises AlreadyExists if
        the id or username is taken."""

    @abc.abstractmethod
    async def get_user(self, user_id: str) -> User | None:
        """The user with that id, or None."""

    @abc.abstractmethod
    async def find_user(self, username: str) -> User | None:
        """The user with that username (case-sensitive), or None."""

    @abc.abstractmethod
    async def list_users(self) -> list[User]:
        """Every user, ordered by username."""

    @abc.abstractmethod
    async def update_user(
        self,
        user_id: str,
        *,
        password_hash: str | None = None,
        disabled: bool | None = None,
        role: Role | None = None,
        authority_id: str | None = None,
        actor: Actor = SYSTEM,
    ) -> User:
        """Change the given fields (audited; a password change as a fact, never the
        hash); raises NotFound for an unknown id, and InvalidInput (``field`` disabled
        or role), changing nothing, if the change would leave no active admin."""

    @abc.abstractmethod
    async def auth_state(
        self, user_id: str, device_id: str | None
    ) -> tuple[User | None, Device | None]:
        """The user and (if given) the device, read together: the per-request check of
        an access token costs one round trip."""

    # --- devices ---------------------------------------------------------------

    @abc.abstractmethod
    async def add_device(self, device: Device, *, actor: Actor = SYSTEM) -> Device:
        """Register a device (audited). Raises AlreadyExists if the id is taken."""

    @abc.abstractmethod
    async def get_device(self, device_id: str) -> Device | None:
        """The device with that id, or None."""

    @abc.abstractmethod
    async def list_devices(self, user_id: str | None = None) -> list[Device]:
        """Devices, optionally of one user, oldest first."""

    @abc.abstractmethod
    async def revoke_device(self, device_id: str, at: datetime, *, actor: Actor = SYSTEM) -> Device:
        """Mark a device revoked (kept if already revoked) and revoke every refresh
        token bound to it, in one transaction (audited). Raises NotFound for an unknown
        id."""

    @abc.abstractmethod
    async def touch_device(self, device_id: str, at: datetime, app_version: str | None) -> None:
        """Record that the device was seen (and its app version). Unknown ids are ignored."""

    # --- failed logins -----------------------------------------------------------
    #
    # Counted in the database so that every server instance sees every failure (the
    # server keeps them in memory instead when it is the only process: SQLite).

    @abc.abstractmethod
    async def login_failures(self, key: str, since: datetime) -> list[datetime]:
        """When ``key`` (a username and client address) failed to log in at or after
        ``since``, oldest first."""

    @abc.abstractmethod
    async def add_login_failure(self, key: str, at: datetime, *, forget_before: datetime) -> None:
        """Record a failed login of ``key`` at ``at``; failures of any key before
        ``forget_before`` are forgotten (the table holds one window's failures)."""

    @abc.abstractmethod
    async def clear_login_failures(self, key: str) -> None:
        """Forget ``key``'s failures (it logged in)."""

    # --- refresh tokens ----------------------------------------------------------

    @abc.abstractmethod
    async def add_refresh_token(self, token: RefreshToken) -> None:
        """Store a new refresh token (by hash)."""

    @abc.abstractmethod
    async def use_refresh_token(self, token_hash: str, at: datetime) -> RefreshToken | None:
        """Atomically mark a token used and return it *as it was before*.

        Of two concurrent calls with the same hash, exactly one sees ``used_at`` None:
        that is what lets the caller detect reuse of a rotated token. Returns None for
        an unknown hash.
        """

    @abc.abstractmethod
    async def revoke_token_family(self, family_id: str, at: datetime) -> int:
        """Revoke every token of a family; returns how many were not yet revoked."""

    # --- records -----------------------------------------------------------------

    @abc.abstractmethod
    def transaction(
        self, actor: Actor = SYSTEM, context: AuditContext | None = None
    ) -> AbstractAsyncContextManager[Transaction]:
        """A write transaction for several record operations that commit together,
        audited as made by ``actor`` with ``context``."""

    async def create_record(
        self, kind: str, record_id: str, data: dict[str, Any], *, actor: Actor = SYSTEM
    ) -> StoredRecord:
        """:meth:`Transaction.create_record` in a transaction of its own."""
        async with self.transaction(actor) as tx:
            return await tx.create_record(kind, record_id, data)

    async def update_record(
        self,
        kind: str,
        record_id: str,
        data: dict[str, Any],
        *,
        expect_rev: int | None = None,
        actor: Actor = SYSTEM,
        reason: str | None = None,
    ) -> StoredRecord:
        """:meth:`Transaction.update_record` in a transaction of its own."""
        async with self.transaction(actor, AuditContext(reason=reason)) as tx:
            return await tx.update_record(kind, record_id, data, expect_rev=expect_rev)

    async def delete_record(
        self,
        kind: str,
        record_id: str,
        *,
        expect_rev: int | None = None,
        actor: Actor = SYSTEM,
        reason: str | None = None,
    ) -> StoredRecord:
        """:meth:`Transaction.delete_record` in a transaction of its own."""
        async with self.transaction(actor, AuditContext(reason=reason)) as tx:
            return await tx.delete_record(kind, record_id, expect_rev=expect_rev)

    @abc.abstractmethod
    async def write_batch(
        self, fn: Callable[[BatchTx], T], *, actor: Actor = SYSTEM, speculative: bool = False
    ) -> T:
        """Run ``fn`` in one serialised write transaction on the writer's thread; the
        result is returned only after the commit is durable. If ``fn`` raises, nothing
        it wrote is committed and the exception propagates. A backend may commit
        several queued batches together (group commit) as long as each stays all or
        nothing and none is answered before the shared commit. Writes are audited as
        ``actor``'s.

        ``speculative``: ``fn`` may be run first without the write lock and kept only
        if what it read is unchanged once the lock is held, else run again under it
        (PostgreSQL: ``sync/storage/sql_speculate.py``). Such an ``fn`` must be safe to
        run twice and must not use the ``seq`` of the records it writes; its answer is
        the one a serialised run gives."""

    @abc.abstractmethod
    async def audit_events(
        self,
        *,
        kind: str | None = None,
        record_id: str | None = None,
        inspection_id: str | None = None,
        after_id: int = 0,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Audit events with ``id > after_id`` matching the given filters, by id, at most
        ``limit`` (page through the whole trail with ``after_id``)."""

    @abc.abstractmethod
    async def verify_audit(self, anchors: Sequence[Anchor] = ()) -> Verification:
        """Walk the whole audit chain (:func:`sync.audit.verify`) over one snapshot,
        checking ``anchors`` against it."""

    @abc.abstractmethod
    async def audit_head(self) -> tuple[int, str] | None:
        """The id and hash of the newest audit event (None if there is none)."""

    @abc.abstractmethod
    async def read_batch(self, fn: Callable[[BatchTx], T]) -> T:
        """Run ``fn`` over one consistent read snapshot (write methods refuse)."""

    @abc.abstractmethod
    async def get_record(self, kind: str, record_id: str) -> StoredRecord | None:
        """A live record, or None (tombstones are not returned)."""

    @abc.abstractmethod
    async def list_records(
        self,
        kind: str,
        filters: Sequence[Filter] = (),
        *,
        limit: int | None = None,
        offset: int = 0,
        order_by: str = "id",
    ) -> list[StoredRecord]:
        """Live records of a kind matching every filter, ordered by ``order_by`` (a data
        field, or ``id``; prefix ``-`` for descending, ties broken by id)."""

    @abc.abstractmethod
    async def count_records(self, kind: str, filters: Sequence[Filter] = ()) -> int:
        """How many live records of a kind match every filter."""

    # --- evidence ------------------------------------------------------------------
    #
    # Files themselves live in a blob store (sync/evidence.py); the database keeps what
    # is known about them. A finding's ``evidence_hashes`` and a response's ``evidence``
    # name files by SHA-256; records may name files that are not uploaded yet.

    @abc.abstractmethod
    async def add_upload(self, upload: Upload, *, quota: int | None = None) -> None:
        """Insert a new upload. Raises AlreadyExists if the id is taken.

        With ``quota``, atomically with the insert: if the inspection's stored evidence
        (each referenced file once) plus the lengths of its other uploads still open
        (not completed, not expired at ``upload.created_at``) plus ``upload.length``
        exceeds ``quota``, nothing is inserted and QuotaExceeded is raised with
        ``used`` and ``limit``. Two concurrent calls can never both squeeze in.
        """

    @abc.abstractmethod
    async def get_upload(self, upload_id: str) -> Upload | None:
        """The upload with that id (completed or not, expired or not), or None."""

    @abc.abstractmethod
    async def update_upload(
        self,
        upload_id: str,
        *,
        offset: int,
        media_type: str | None = None,
        expires_at: datetime | None = None,
        holder: str | None = None,
        release: bool = False,
    ) -> None:
        """Record how many bytes are durably received (and, once known, the sniffed
        type, and a new expiry; None keeps the current value). Raises NotFound for an
        unknown id.

        With ``holder``, only while that holder's claim (:meth:`claim_upload`) is on
        the upload, whether or not it has run out: if another holder took it (or it was
        released), nothing changes and UploadLocked is raised. ``release`` ends the
        holder's claim in the same transaction."""

    @abc.abstractmethod
    async def claim_upload(
        self,
        upload_id: str,
        holder: str,
        *,
        now: datetime,
        until: datetime,
        renewing: bool = False,
    ) -> Upload:
        """Claim the upload for ``holder`` until ``until``, or extend the claim it holds,
        and return the upload as it is under the claim. One claim at a time, seen by
        every process sharing the store: while another holder's claim runs past
        ``now``, nothing changes and UploadLocked is raised (``retry_after``: whole
        seconds until that claim runs out, at least 1). A claim that ran out is taken
        over. Raises NotFound for an unknown id. ``renewing`` only extends a claim
        ``holder`` still has: once it was taken over or released, UploadLocked even if
        the upload is free now (what the holder wrote meanwhile may have been cut).

        The request writing a chunk holds the claim while it checks the offset, writes
        and records the new offset (``sync/upload_claim.py``), so two chunks of one
        upload never interleave, on one server instance or several."""

    @abc.abstractmethod
    async def release_upload(self, upload_id: str, holder: str) -> bool:
        """End ``holder``'s claim on the upload; False if it held none (released
        already, taken over after running out, or the upload is gone)."""

    @abc.abstractmethod
    async def delete_upload(self, upload_id: str) -> bool:
        """Forget an upload; False if there was none. Stored files are not touched."""

    @abc.abstractmethod
    async def complete_upload(
        self,
        upload_id: str,
        evidence: EvidenceFile,
        ref: EvidenceRef,
        at: datetime,
        *,
        actor: Actor = SYSTEM,
        holder: str | None = None,
    ) -> bool:
        """In one transaction: keep the file's row unless one exists (the first upload
        wins), add the reference of ``ref.inspection_id`` unless it exists, mark the
        upload completed at ``at`` with its offset at its full length, and append the
        audit event of the evidence (op ``upload``, ``upload:dedup`` when the file was
        stored already, or ``upload:restore`` when it was stored but lost: the mark is
        cleared). Returns True if the file's row is new. Raises NotFound for an unknown
        upload id. With ``holder``, as :meth:`update_upload`: only under that holder's
        claim (else UploadLocked), which ends with the completion."""

    @abc.abstractmethod
    async def expired_uploads(self, now: datetime) -> list[Upload]:
        """Uploads whose ``expires_at`` is at or before ``now``, completed or not,
        oldest first."""

    @abc.abstractmethod
    async def get_evidence(self, sha256: str) -> EvidenceFile | None:
        """The stored file's row, or None if no upload of it has completed."""

    @abc.abstractmethod
    async def evidence_files(self, after: str = "", limit: int = 1000) -> list[EvidenceFile]:
        """Stored files with ``sha256 > after``, by hash, at most ``limit`` (page through
        all of them with ``after``)."""

    @abc.abstractmethod
    async def set_evidence_lost(
        self, sha256: str, at: datetime | None, *, reason: str, actor: Actor = SYSTEM
    ) -> bool:
        """Mark a stored file's bytes lost at ``at`` (the blob store does not hold them,
        or holds other bytes), or found again (``at`` None). A lost file counts as not
        stored: :meth:`missing_evidence` lists it for every inspection that names it and
        :meth:`stored_evidence` leaves it out, so tablets holding it upload it again; a
        completed upload of it clears the mark (:meth:`complete_upload`). Audited (op
        ``lost`` or ``found``, with ``reason``); returns whether anything changed."""

    @abc.abstractmethod
    async def evidence_refs(self, sha256: str) -> list[EvidenceRef]:
        """Every inspection's completed upload of a stored file (one per inspection,
        the first kept), oldest first: the inspections for which someone proved to
        hold the bytes."""

    @abc.abstractmethod
    async def evidence_usage(self, inspection_id: str, now: datetime) -> int:
        """Bytes an inspection holds: its stored files (each once) plus the lengths of
        its uploads still open at ``now``."""

    @abc.abstractmethod
    async def evidence_references(self, sha256: str) -> list[tuple[str, str, str]]:
        """(kind, id, inspection_id) of every live record that names the file, by
        inspection, kind and id: a ``finding`` by ``evidence_hashes``, a ``response`` by
        ``evidence``, a ``rectification`` by the ``evidence_hashes`` of its ``response``
        or of one of its ``earlier_responses``. Whether the file is stored does not
        matter."""

    @abc.abstractmethod
    async def missing_evidence(self, inspection_ids: Sequence[str]) -> dict[str, list[str]]:
        """Per inspection (only those with something missing), the sorted hashes its
        live findings and responses name that no completed upload *for that inspection*
        has stored (no ``evidence_refs`` row of the hash and the inspection): a file
        stored for another inspection only is missing here, because naming it does not
        grant reading it (see :meth:`evidence_refs` and ``docs/evidence.md``)."""

    @abc.abstractmethod
    async def stored_evidence(self, hashes: Sequence[str]) -> set[str]:
        """Those of ``hashes`` that are stored (one query per 500)."""
