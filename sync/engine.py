"""The sync engine: push (merge tablets' mutations) and pull (the scoped change feed).

Framework-free: it takes a :class:`~sync.models.Principal` and protocol structs, and
returns protocol structs. Every push batch runs in one database transaction
(``Store.write_batch``) and its answer exists only after the commit, so each result
describes exactly what was committed. See ``docs/sync-protocol.md``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any

import msgspec

from checklists.loader import template_from_obj
from checklists.schema import Template
from sync.access import can_see_inspection, inspection_scope
from sync.audit import Actor, AuditContext, state_at
from sync.clock import Clock
from sync.errors import Forbidden, InvalidInput, InvalidTransition, NotFound, StorageError
from sync.fielddata import (
    IGNORED_FIELDS,
    POLICIES,
    Reason,
    answers_by_link,
    check_fields,
    check_record_id,
    parse_response_id,
    unanswered_required,
    validate,
)
from sync.hlc import HLC, receive, tick
from sync.merge import Edit, FieldConflict, KeptValue, Stamp, is_concurrent, merge
from sync.models import Principal, Role, StoredRecord, public_fields
from sync.notify import Notifier
from sync.protocol import (
    PROTOCOL_VERSION,
    Applied,
    Change,
    Conflicted,
    ConflictKept,
    Duplicate,
    Merged,
    Mutation,
    PullRequest,
    PullResponse,
    PushRequest,
    PushResponse,
    ReceivedPush,
    RecordRef,
    Rejected,
    Result,
    Unreadable,
)
from sync.signatures import SIGNED_FIELDS, content_hash, in_scope, printed_name
from sync.storage import BatchTx, Store

__all__ = ["EngineConfig", "SyncEngine", "public_data"]

log = logging.getLogger("inspectsync")

_result_encoder = msgspec.msgpack.Encoder()
_result_decoder = msgspec.msgpack.Decoder(Result)

# Inspection statuses in which tablets may change field data, and whether a reason
# is then required (after fieldwork is declared done, every change needs one).
_WRITABLE = {"in_progress": False, "fieldwork_done": True, "under_review": True}


class EngineConfig(msgspec.Struct, kw_only=True):
    max_skew_ms: int = 5 * 60 * 1000
    """A device clock further ahead than this is flagged and not trusted for order."""
    tombstone_retention_days: int = 90
    """Tombstones older than this may be purged; older cursors must resync."""


def public_data(rec: StoredRecord) -> dict[str, Any]:
    """A record's data as clients see it: engine bookkeeping (``_...``) removed."""
    return public_fields(rec.data)


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _raw(stamp: Stamp) -> list[Any]:
    raw: list[Any] = [stamp.rev, stamp.hlc, stamp.by, stamp.device, stamp.mid]
    if stamp.device_time:  # older stamps have five elements; both decode
        raw.append(stamp.device_time)
    return raw


def _stamps(data: dict[str, Any]) -> dict[str, Stamp]:
    raw = data.get("_stamps") or {}
    return {f: Stamp(*v) for f, v in raw.items()}


_Seq = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]  # what SQLite's INTEGER holds


class _Cursor(msgspec.Struct, array_like=True):
    seq: _Seq
    snap: str
    """Hash of the scope the client holds completely up to ``seq``."""
    target: str = ""
    """During a backfill: the hash of the scope being backfilled to."""
    pos: _Seq = 0
    """During a backfill: the last seq sent of the backfill."""


def _encode_cursor(c: _Cursor) -> str:
    return base64.urlsafe_b64encode(msgspec.msgpack.encode(c)).decode().rstrip("=")


def _decode_cursor(text: str) -> _Cursor:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return msgspec.msgpack.decode(raw, type=_Cursor)
    except (ValueError, msgspec.DecodeError) as exc:
        raise InvalidInput("the cursor is not one this server made", field="cursor") from exc


class _Scope(msgspec.Struct, frozen=True):
    inspections: list[str]
    refs: list[tuple[str, str]]

    def key(self) -> str:
        return hashlib.sha256(msgspec.json.encode(self)).hexdigest()[:32]


_EMPTY = _Scope([], [])
_DEVICE_NOTE_EVERY_MS = 10_000  # a paging tablet's state is written at most this often
_PAGE_CACHE_MS = 2_000  # how long a full page may be handed to another tablet
_PAGE_CACHE_ENTRIES = 16  # at most this many pages kept (each at most one page's size)
_EMPTY_KEY = "0"
_SNAPSHOTS_KEPT = 1024  # scope snapshots kept in memory once read
_SCOPES_KEPT = 4096  # principals' scopes kept, each with the scope version it was made at


class SyncEngine:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        config: EngineConfig | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.config = config or EngineConfig()
        self.notifier = notifier or Notifier()
        self._hlc = HLC(self._now_ms(), 0, "server")
        self._templates: dict[str, Template] = {}
        self._stored_snapshots: set[str] = set()  # snapshots known to be stored
        self._pull_noted: dict[str, int] = {}  # device -> when its pull state was written
        # Full pages recently built, by (scope, cursor seq, limit, encoding): tablets of
        # one scope that pull from the same cursor (a team syncing after the same
        # event) share the work. Filled and read on reader threads, hence the lock.
        self._pages: OrderedDict[tuple[str, int, int, bool], tuple[int, list[Change], str]]
        self._pages = OrderedDict()
        self._pages_lock = threading.Lock()
        self._snapshots: OrderedDict[str, _Scope] = OrderedDict()  # read, by key (LRU)
        # scopes made, by principal: (scope version, scope) (LRU)
        self._scopes: OrderedDict[tuple[str, Role, str], tuple[int, _Scope]] = OrderedDict()
        self.page_cache_hits = 0

    # --- helpers -----------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self.clock.now().timestamp() * 1000)

    def _template(self, tx: BatchTx, version_id: str) -> Template | None:
        """Published versions never change, so parsed templates are cached forever."""
        cached = self._templates.get(version_id)
        if cached is None:
            rec = tx.get_record("checklist_version", version_id)
            if rec is None:
                return None
            cached = template_from_obj(rec.data["content"])
            if rec.data["status"] != "draft":
                self._templates[version_id] = cached
        return cached

    def _pins(self, tx: BatchTx, inspection: StoredRecord) -> dict[str, Template]:
        out: dict[str, Template] = {}
        for link, vid in inspection.data.get("pins", {}).items():
            template = self._template(tx, vid)
            if template is not None:
                out[link] = template
        return out

    # --- push --------------------------------------------------------------------

    async def push(self, principal: Principal, request: PushRequest | ReceivedPush) -> PushResponse:
        """Apply a batch in one transaction; answer per mutation what was committed.

        Every mutation gets its own verdict: one the server could not read
        (:class:`~sync.protocol.Unreadable`) or that breaks a rule is rejected and
        quarantined, and one whose application raises unexpectedly is rolled back alone
        (a savepoint) and rejected ``internal_error``; the rest of the batch stands."""
        batch_id = f"b_{uuid.uuid4().hex[:16]}"
        received_at = self.clock.now()
        now_ms = self._now_ms()

        tx_touched: set[str] = set()
        # a sign-off prints the account's own name, whatever the tablet typed
        signs = any(isinstance(m, Mutation) and m.kind == "signoff" for m in request.mutations)
        signer = await self.printed_name(principal) if signs else principal.username

        def apply(tx: BatchTx) -> PushResponse:
            ctx = _PushContext(self, tx, principal, batch_id, received_at, tx_touched, signer)
            results: list[Any] = []
            skew = 0
            flagged = False
            keys = [f"{principal.user_id}\x1f{m.mid}" for m in request.mutations]
            known = ctx.prefetch(request.mutations, keys)
            recorded: dict[str, Any] = {
                "user_id": principal.user_id,
                "device_id": principal.device_id,
                "batch_id": batch_id,
                "at": received_at,
            }
            for m, key in zip(request.mutations, keys, strict=True):
                seen = known.get(key)
                if seen is not None:
                    results.append(Duplicate(mid=m.mid, original=_result_decoder.decode(seen)))
                    continue
                if isinstance(m, Unreadable):
                    tx.context = AuditContext(
                        mid=m.mid, batch_id=batch_id, received_at=ctx.received_iso
                    )
                    rejected = ctx.reject_unreadable(m)
                    encoded = _result_encoder.encode(rejected)
                    known[key] = encoded
                    tx.put_mutation(key, result=encoded, **recorded)
                    results.append(rejected)
                    continue
                try:
                    remote = HLC.parse(m.hlc)
                except ValueError:
                    remote = HLC(now_ms, 0, principal.device_id or principal.user_id)
                got = receive(self._hlc, remote, now_ms, "server", self.config.max_skew_ms)
                self._hlc = got.clock
                skew, flagged = got.skew_ms, flagged or got.flagged
                hlc = str(got.effective)
                tx.context = AuditContext(
                    reason=m.reason,
                    mid=m.mid,
                    batch_id=batch_id,
                    hlc=hlc,
                    device_time=ctx.device_time(m),
                    received_at=ctx.received_iso,
                )
                result: Result
                try:
                    # one mutation, undone alone if it fails unexpectedly
                    with tx.savepoint(), ctx.undoable():
                        result = ctx.apply(m, hlc, got.flagged)
                        encoded = _result_encoder.encode(result)
                        tx.put_mutation(key, result=encoded, **recorded)
                except StorageError:
                    raise  # the database failed: the batch fails, the tablet retries
                except Exception:
                    log.exception("mutation %s of batch %s failed", m.mid, batch_id)
                    result = ctx.reject(
                        m,
                        Reason(
                            code="internal_error",
                            message="the server failed to apply this mutation; it is"
                            " kept in quarantine and the error is logged",
                        ),
                        ctx.inspection_of(m),
                    )
                    encoded = _result_encoder.encode(result)
                    tx.put_mutation(key, result=encoded, **recorded)
                known[key] = encoded  # a repeat later in this batch is a duplicate
                results.append(result)
                tx.flush_ahead()  # the database may write what is done meanwhile
            if principal.device_id is not None:
                state: dict[str, Any] = {
                    "last_push_at": received_at.isoformat(),
                    "last_batch_id": batch_id,
                    "clock_skew_ms": skew,
                    "skew_flagged": int(flagged),
                    "mutations_received": len(request.mutations),
                }
                if request.app_version:
                    state["app_version"] = request.app_version
                tx.update_device_sync(principal.device_id, principal.user_id, **state)
            return PushResponse(
                protocol=PROTOCOL_VERSION,
                batch_id=batch_id,
                results=results,
                server_time=received_at,
                hlc=str(self._hlc),
                clock_skew_ms=skew,
                skew_flagged=flagged,
            )

        # speculative: on a shared database the merge runs before the write lock is
        # taken and is kept if what it read still holds (sync/storage/sql_speculate.py);
        # apply can run twice, and uses no seq of what it writes
        answer, touched = await self.store.write_batch(
            lambda tx: (apply(tx), tx_touched), actor=Actor.of(principal), speculative=True
        )
        self.notifier.publish(touched)
        return answer

    async def printed_name(self, principal: Principal) -> str:
        """The name the principal's signatures show: their account's own name."""
        return printed_name(await self.store.get_user(principal.user_id), principal.username)

    # --- pull --------------------------------------------------------------------

    def _scope(self, tx: BatchTx, principal: Principal) -> _Scope:
        """What the principal may see now: inspections, and the reference records and
        checklist versions they reach. Kept per principal and scope version: the
        records it is made of are the same while the version is (a trigger counts it up
        with every write of one, in every process)."""
        version = tx.scope_version()
        who = (principal.user_id, principal.role, principal.authority_id)
        if version is not None:
            with self._pages_lock:
                kept = self._scopes.get(who)
                if kept is not None and kept[0] == version:
                    self._scopes.move_to_end(who)
                    return kept[1]
        scope = self._make_scope(tx, principal)
        if version is not None:
            with self._pages_lock:
                self._scopes[who] = (version, scope)
                while len(self._scopes) > _SCOPES_KEPT:
                    self._scopes.popitem(last=False)
        return scope

    def _make_scope(self, tx: BatchTx, principal: Principal) -> _Scope:
        inspections = tx.find_records("inspection", inspection_scope(principal))
        refs: set[tuple[str, str]] = set()
        chains: set[str] = set()
        sites: set[str] = set()
        for insp in inspections:
            d = insp.data
            sites.add(d["site_id"])
            chains.add(d["chain_id"])
            refs.update(("authority", a) for a in d.get("authority_ids", ()))
            refs.update(("checklist_version", v) for v in d.get("pins", {}).values())
        # chains and sites in one read, then the chains' products in another (a pull
        # page's reads are round trips to a database server)
        found = tx.get_records(
            [("chain", cid) for cid in sorted(chains)] + [("site", sid) for sid in sorted(sites)]
        )
        live = [rec for rec in found.values() if not rec.deleted]
        for rec in live:
            refs.add((rec.kind, rec.id))
            if rec.kind == "site":
                refs.add(("organisation", rec.data["organisation_id"]))
        products = tx.get_records(
            sorted({("product", rec.data["product_id"]) for rec in live if rec.kind == "chain"})
        )
        for product in products.values():
            if not product.deleted:
                refs.add(("product", product.id))
                refs.add(("organisation", product.data["mah_id"]))
        return _Scope(sorted(i.id for i in inspections), sorted(refs))

    async def pull(
        self, principal: Principal, request: PullRequest, *, json_data: bool = False
    ) -> PullResponse:
        """One page of the change feed for this principal's scope.

        With ``json_data`` each change's ``data`` is a ``msgspec.Raw`` holding the
        record's public JSON, taken from the stored text without building the record:
        for a caller that encodes the page as JSON, which splices it in as is. Encoding
        such a page as MessagePack would embed JSON text, so that caller leaves it off."""
        cursor = _decode_cursor(request.cursor) if request.cursor else _Cursor(0, _EMPTY_KEY)
        limit = request.limit
        feed = _json_feed if json_data else _decoded_feed

        def read(tx: BatchTx) -> tuple[PullResponse, list[tuple[str, str]]]:
            now_scope = self._scope(tx, principal)
            now_key = now_scope.key()
            held = self._snapshot(tx, cursor.snap)
            if (
                (cursor.seq and cursor.seq < tx.tombstone_horizon())
                or cursor.seq > tx.max_seq()  # the database was restored from a backup
                or held is None  # a snapshot this database never stored (a restore too)
            ):
                return self._page([], [], "", False, resync=True), []
            target = now_scope
            target_key = now_key
            if cursor.target:
                kept = self._snapshot(tx, cursor.target)
                if kept is not None:
                    target, target_key = kept, cursor.target
            added_i = sorted(set(target.inspections) - set(held.inspections))
            added_r = sorted(set(target.refs) - set(held.refs))
            evict: list[RecordRef] = []
            if target_key != cursor.snap and not cursor.pos:
                evict = self._evictions(tx, held, target)
            if (added_i or added_r) and cursor.seq:
                changes = feed(
                    tx, cursor.pos, added_i, added_r, limit + 1, max_seq=cursor.seq, live_only=True
                )
                if len(changes) > limit:
                    changes = changes[:limit]
                    nxt = _Cursor(cursor.seq, cursor.snap, target_key, changes[-1].seq)
                else:
                    nxt = _Cursor(cursor.seq, target_key)
                return self._page(changes, evict, _encode_cursor(nxt), True), [
                    (target_key, msgspec.json.encode(target).decode())
                ]
            # a tablet up to date with its scope, or one starting from nothing
            steady = (
                not evict
                and target_key == now_key
                and (cursor.snap == now_key or (cursor.seq == 0 and cursor.snap == _EMPTY_KEY))
            )
            key = (target_key, cursor.seq, limit, json_data)
            if steady and (hit := self._cached_page(key)) is not None:
                # the scope snapshot its cursor names is stored as for a built page
                return self._page(hit[0], [], hit[1], True), [
                    (target_key, msgspec.json.encode(target).decode())
                ]
            changes = feed(tx, cursor.seq, target.inspections, target.refs, limit + 1)
            has_more = len(changes) > limit
            changes = changes[:limit]
            last = changes[-1].seq if changes else max(cursor.seq, 0)
            nxt = _Cursor(last, target_key)
            if steady and has_more:
                self._cache_page(key, changes, _encode_cursor(nxt))
            has_more = has_more or target_key != now_key
            missing = None
            if request.want_missing_evidence and not has_more:
                missing = self._missing_evidence(tx, target.inspections)
            page = self._page(
                changes,
                evict,
                _encode_cursor(nxt),
                has_more,
                missing=missing,
            )
            return page, [(target_key, msgspec.json.encode(target).decode())]

        page, snapshots = await self.store.read_batch(read)
        snapshots = [(k, v) for k, v in snapshots if k not in self._stored_snapshots]
        device = principal.device_id
        note_device = device is not None and (
            not page.has_more
            or self._now_ms() - self._pull_noted.get(device, 0) > _DEVICE_NOTE_EVERY_MS
        )

        def remember(tx: BatchTx) -> None:
            for key, scope in snapshots:
                tx.put_snapshot(key, scope)
            if note_device and device is not None:
                tx.update_device_sync(
                    device,
                    principal.user_id,
                    last_pull_at=page.server_time.isoformat(),
                    last_pull_seq=_decode_cursor(page.cursor).seq if page.cursor else 0,
                )

        if snapshots or note_device:
            await self.store.write_batch(remember)
            self._stored_snapshots.update(k for k, _ in snapshots)
            if device is not None and note_device:
                self._pull_noted[device] = self._now_ms()
        return page

    def _cached_page(self, key: tuple[str, int, int, bool]) -> tuple[list[Change], str] | None:
        """A full page built for the same scope and cursor less than
        ``_PAGE_CACHE_MS`` ago. Safe to hand out: the feed only moves a record to a
        later position when it changes, so a page built a moment ago differs from a
        fresh one only by older versions of records whose newer versions (or
        tombstones) come after its cursor, which the tablet pulls next; the scope key
        pins exactly which records the page may hold."""
        now = self._now_ms()
        with self._pages_lock:
            found = self._pages.get(key)
            if found is None or now - found[0] > _PAGE_CACHE_MS:
                return None
            self.page_cache_hits += 1
            return found[1], found[2]

    def _cache_page(
        self, key: tuple[str, int, int, bool], changes: list[Change], cursor: str
    ) -> None:
        with self._pages_lock:
            self._pages[key] = (self._now_ms(), changes, cursor)
            self._pages.move_to_end(key)
            while len(self._pages) > _PAGE_CACHE_ENTRIES:
                self._pages.popitem(last=False)

    @staticmethod
    def _missing_evidence(tx: BatchTx, inspection_ids: list[str]) -> dict[str, list[str]]:
        """What the inspections that still take evidence (all but closed ones) miss, in
        this page's snapshot. Only the page that ends a pull, and only when asked,
        because it reads every finding and response of the scope (section 7.5 of
        docs/sync-protocol.md); without more pages the target is the scope now."""
        found = tx.get_records([("inspection", i) for i in inspection_ids])
        taking = [
            rec.id
            for rec in found.values()
            if not rec.deleted and rec.data.get("status") != "closed"
        ]
        return tx.missing_evidence(sorted(taking))

    def _snapshot(self, tx: BatchTx, key: str) -> _Scope | None:
        """The scope a cursor names. A snapshot's key is its content's hash and stored
        ones never change, so those read are kept (a pull page's round trip fewer)."""
        if key == _EMPTY_KEY:
            return _EMPTY
        with self._pages_lock:
            scope = self._snapshots.get(key)
            if scope is not None:
                self._snapshots.move_to_end(key)
                return scope
        text = tx.get_snapshot(key)
        if not text:
            return None
        scope = msgspec.json.decode(text, type=_Scope)
        with self._pages_lock:
            self._snapshots[key] = scope
            while len(self._snapshots) > _SNAPSHOTS_KEPT:
                self._snapshots.popitem(last=False)
        return scope

    @staticmethod
    def _evictions(tx: BatchTx, held: _Scope, target: _Scope) -> list[RecordRef]:
        gone_i = sorted(set(held.inspections) - set(target.inspections))
        refs = [RecordRef(k, i) for k, i in tx.bound_refs(gone_i)]
        refs += [RecordRef(k, i) for k, i in sorted(set(held.refs) - set(target.refs))]
        return refs

    def _page(
        self,
        changes: list[Change],
        evict: list[RecordRef],
        cursor: str,
        has_more: bool,
        *,
        resync: bool = False,
        missing: dict[str, list[str]] | None = None,
    ) -> PullResponse:
        return PullResponse(
            protocol=PROTOCOL_VERSION,
            changes=changes,
            evict=evict,
            cursor=cursor,
            has_more=has_more,
            resync_required=resync,
            server_time=self.clock.now(),
            hlc=str(self._hlc),
            missing_evidence=missing,
        )

    async def purge_tombstones(self) -> int:
        """Drop tombstones past retention; cursors older than them must resync."""
        before = self.clock.now() - timedelta(days=self.config.tombstone_retention_days)
        return await self.store.write_batch(lambda tx: tx.purge_tombstones(before))

    # --- conflicts ---------------------------------------------------------------

    async def list_conflicts(
        self, principal: Principal, *, inspection_id: str | None = None, status: str = "open"
    ) -> list[StoredRecord]:
        """Conflicts in inspections the principal may see (supervisors: their
        authority's; inspectors: their own inspections')."""

        def read(tx: BatchTx) -> list[StoredRecord]:
            visible = [i.id for i in tx.find_records("inspection", inspection_scope(principal))]
            ids = [i for i in visible if inspection_id in (None, i)]
            out: list[StoredRecord] = []
            for iid in ids:
                out += [
                    c for c in tx.records_of("conflict", iid) if status in ("all", c.data["status"])
                ]
            return out

        return await self.store.read_batch(read)

    async def resolve_conflict(
        self, principal: Principal, conflict_id: str, value: Any, reason: str
    ) -> StoredRecord:
        """A supervisor picks one of the kept values or enters a merged one. The record
        and the conflict change together and reach every tablet as ordinary changes."""
        if principal.role is Role.INSPECTOR:
            raise Forbidden("only a supervisor or admin resolves conflicts")
        if not reason.strip():
            raise InvalidInput("a resolution needs a reason", field="reason")
        now = self.clock.now()

        def write(tx: BatchTx) -> StoredRecord:
            conflict = tx.get_record("conflict", conflict_id)
            insp = tx.get_record("inspection", conflict.data["inspection_id"]) if conflict else None
            if conflict is None or insp is None or not can_see_inspection(principal, insp.data):
                raise NotFound(f"no conflict {conflict_id!r}")
            if conflict.data["status"] != "open":
                raise InvalidTransition("this conflict is already resolved", field="conflict_id")
            self._hlc = tick(self._hlc, self._now_ms(), "server")
            hlc = str(self._hlc)
            tx.context = AuditContext(
                reason=f"conflict {conflict_id}: {reason}", hlc=hlc, received_at=now.isoformat()
            )
            kind, rid, field = (
                conflict.data["record_kind"],
                conflict.data["record_id"],
                conflict.data["field"],
            )
            rec = tx.get_record(kind, rid, include_deleted=True)
            if rec is None:
                raise NotFound(f"the record of conflict {conflict_id!r} is gone")
            data = dict(rec.data)
            stamps = dict(data.get("_stamps") or {})
            open_fields = [f for f in data.get("open_conflicts", []) if f != field]
            deleted = rec.deleted
            if field == "_deleted":
                if value is None:
                    deleted = True
                else:
                    if not isinstance(value, dict):
                        raise InvalidInput("restore with an object of fields", field="value")
                    known = {f: v for f, v in value.items() if f in POLICIES.get(kind, {})}
                    wrong = check_fields(kind, known) if kind in POLICIES else None
                    if wrong is not None and wrong.code == "wrong_type":
                        raise InvalidInput(wrong.message, field=f"value.{wrong.field}")
                    deleted = False
                    for f, v in value.items():
                        if f in POLICIES.get(kind, {}):
                            data[f] = v
                            stamps[f] = _raw(Stamp(rec.rev + 1, hlc, principal.user_id))
            else:
                if field not in POLICIES.get(kind, {}):
                    raise InvalidInput(f"{kind} has no field {field!r}", field="value")
                wrong = check_fields(kind, {field: value})
                if wrong is not None and wrong.code == "wrong_type":
                    raise InvalidInput(wrong.message, field="value")
                data[field] = value
                stamps[field] = _raw(Stamp(rec.rev + 1, hlc, principal.user_id))
            data["_stamps"] = stamps
            data["open_conflicts"] = open_fields
            data["_conflict_ids"] = {
                f: c for f, c in (data.get("_conflict_ids") or {}).items() if c != conflict_id
            }
            if insp.data["status"] == "closed":
                raise InvalidTransition("the inspection is closed", field="conflict_id")
            if not deleted:
                view = {k: data.get(k) for k in POLICIES[kind] if k in data}
                problem = validate(kind, rid, view, self._pins(tx, insp))
                if problem is not None:
                    raise InvalidInput(problem.message, field=f"value ({problem.field})")
            tx.put_record(kind, rid, data, rev=rec.rev + 1, deleted=deleted, op="resolve")
            resolution = {
                "value": value,
                "by": principal.user_id,
                "at": now.isoformat(),
                "reason": reason,
                "hlc": hlc,
            }
            cdata = {
                **conflict.data,
                "status": "resolved",
                "resolution": resolution,
                "winner": value,
            }
            resolved = tx.put_record(
                "conflict", conflict_id, cdata, rev=conflict.rev + 1, op="resolve"
            )
            return resolved

        resolved = await self.store.write_batch(write, actor=Actor.of(principal))
        self.notifier.publish([resolved.data["inspection_id"]])
        return resolved

    # --- server-side changes (supervisors' decisions) -----------------------------

    @staticmethod
    def scope_hash(tx: BatchTx, inspection_id: str, scope: str) -> str:
        """The content hash of what a sign-off of ``scope`` covers, as stored now."""
        records = [
            (rec.kind, rec.id, rec.data)
            for kind in SIGNED_FIELDS
            for rec in tx.records_of(kind, inspection_id)
            if in_scope(scope, kind, rec.id, rec.data)
        ]
        return content_hash(records)

    def server_write(
        self,
        tx: BatchTx,
        principal: Principal,
        rec: StoredRecord,
        updates: dict[str, Any],
        *,
        op: str,
        reason: str,
    ) -> StoredRecord:
        """Inside a write batch: change fields of a field-data record on the server's
        side (a supervisor's decision). Each field is stamped with the server's HLC like
        a tablet's edit, so tablets merge it as any other change and a concurrent
        offline edit of the same field becomes a kept conflict, not a silent loss."""
        self._hlc = tick(self._hlc, self._now_ms(), "server")
        hlc = str(self._hlc)
        tx.context = AuditContext(reason=reason, hlc=hlc, received_at=self.clock.now().isoformat())
        data = dict(rec.data)
        stamps = dict(data.get("_stamps") or {})
        for field, value in updates.items():
            data[field] = value
            stamps[field] = _raw(
                Stamp(rec.rev + 1, hlc, principal.user_id, principal.device_id or "")
            )
        data["_stamps"] = stamps
        return tx.put_record(rec.kind, rec.id, data, rev=rec.rev + 1, op=op)

    # --- read models for admins/supervisors --------------------------------------

    async def device_states(self) -> list[dict[str, Any]]:
        return await self.store.read_batch(lambda tx: tx.list_device_sync())

    async def quarantine(self, principal: Principal) -> list[dict[str, Any]]:
        def read(tx: BatchTx) -> list[dict[str, Any]]:
            if principal.role is Role.ADMIN:
                return tx.list_quarantine(None)
            visible = [i.id for i in tx.find_records("inspection", inspection_scope(principal))]
            rows = tx.list_quarantine(visible)
            if principal.role is Role.INSPECTOR:
                rows = [r for r in rows if r["user_id"] == principal.user_id]
            return rows

        return await self.store.read_batch(read)

    async def history(
        self, principal: Principal, kind: str, record_id: str
    ) -> list[dict[str, Any]]:
        """Every audit event of one entity, oldest first. Who may read it: for a record
        of an inspection, whoever may see the inspection; for reference data and
        checklists, supervisors and admins; for users, devices and stored evidence
        files, admins."""

        def read(tx: BatchTx) -> list[dict[str, Any]]:
            if kind in ("user", "device", "evidence"):  # not records: admins read these
                allowed = principal.role is Role.ADMIN
            else:
                rec = tx.get_record(kind, record_id, include_deleted=True)
                iid = (
                    record_id
                    if kind == "inspection"
                    else (rec.data if rec else {}).get("inspection_id")
                )
                if rec is None:
                    allowed = False
                elif isinstance(iid, str):
                    insp = tx.get_record("inspection", iid, include_deleted=True)
                    allowed = insp is not None and can_see_inspection(principal, insp.data)
                else:
                    allowed = principal.role is not Role.INSPECTOR
            events = tx.history_of(kind, record_id) if allowed else []
            if not events:
                raise NotFound(f"no {kind} {record_id!r}")
            return events

        return await self.store.read_batch(read)

    async def version(
        self, principal: Principal, kind: str, record_id: str, rev: int
    ) -> dict[str, Any]:
        """A record as it was at ``rev`` (a signed-off answer before its change, ...),
        rebuilt from the audit trail; the same access rule as :meth:`history`."""
        state = state_at(await self.history(principal, kind, record_id), rev)
        if state is None:
            raise NotFound(f"{kind} {record_id!r} has no rev {rev}")
        return state


_QUARANTINE_DEPTH = 8


def _quarantined(m: Mutation) -> str:
    """The mutation as JSON for the quarantine. A value the JSON encoder cannot take
    (nested past its limit, MessagePack bytes or extensions) is kept in a shape it
    can: nesting past ``_QUARANTINE_DEPTH`` levels is cut, other values become text."""
    try:
        return msgspec.json.encode(m).decode()
    except (RecursionError, msgspec.EncodeError, TypeError, OverflowError):
        plain = msgspec.structs.asdict(m)
        plain["fields"] = _cut(m.fields, _QUARANTINE_DEPTH)
        return msgspec.json.encode(plain).decode()


def _cut(value: Any, depth: int) -> Any:
    if isinstance(value, dict | list):
        if depth == 0:
            return f"(nested deeper than {_QUARANTINE_DEPTH} levels: cut)"
        if isinstance(value, dict):
            return {str(k): _cut(v, depth - 1) for k, v in value.items()}
        return [_cut(v, depth - 1) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)


_whole = msgspec.json.Decoder(dict[str, Any])


def _decoded_feed(tx: BatchTx, *args: Any, **kw: Any) -> list[Change]:
    """The page's changes with ``data`` as dicts (``public_data`` of each record),
    decoded from the feed's JSON text without building the stored records."""
    out: list[Change] = []
    for r in tx.feed_json(*args, **kw):
        if r.deleted:
            out.append(Change(kind=r.kind, id=r.id, rev=r.rev, seq=r.seq, deleted=True))
        else:
            data = _whole.decode(r.data)
            out.append(Change(kind=r.kind, id=r.id, rev=r.rev, seq=r.seq, data=data))
    return out


def _json_feed(tx: BatchTx, *args: Any, **kw: Any) -> list[Change]:
    out: list[Change] = []
    for r in tx.feed_json(*args, **kw):
        if r.deleted:
            out.append(Change(kind=r.kind, id=r.id, rev=r.rev, seq=r.seq, deleted=True))
        else:
            # ``data`` holds the stored public JSON as it is; see
            # ``SyncEngine.pull(json_data=True)``
            data: Any = msgspec.Raw(r.data)
            out.append(Change(kind=r.kind, id=r.id, rev=r.rev, seq=r.seq, data=data))
    return out


class _Undo:
    """``_PushContext.undoable``: a class, not a generator (once per mutation)."""

    __slots__ = ("ctx",)

    def __init__(self, ctx: _PushContext) -> None:
        self.ctx = ctx

    def __enter__(self) -> None:
        self.ctx._undo = {}

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        ctx = self.ctx
        if exc is not None and ctx._undo:
            for key, rec in ctx._undo.items():
                if rec is None:
                    ctx.records.pop(key, None)
                else:
                    ctx.records[key] = rec
        ctx._undo = None


def _named_inspection(m: Mutation | Unreadable) -> str | None:
    """The inspection a mutation names itself (a response's id, a record's field)."""
    if m.kind == "response":
        key = parse_response_id(m.id)
        return key.inspection_id if key else None
    iid = m.fields.get("inspection_id") if isinstance(m, Mutation) else m.inspection_id
    return iid if isinstance(iid, str) else None


class _PushContext:
    """The state of one push batch inside its transaction."""

    def __init__(
        self,
        engine: SyncEngine,
        tx: BatchTx,
        principal: Principal,
        batch_id: str,
        received_at: datetime,
        touched: set[str],
        signer_name: str,
    ) -> None:
        self.touched = touched
        self.signer_name = signer_name
        """The printed name of this batch's sign-offs: the pushing account's own."""
        self.records: dict[tuple[str, str], StoredRecord] = {}  # this batch's view
        self.received_iso = received_at.isoformat()
        self._iid: str | None = None
        self._conflict_ids: dict[str, str] = {}
        self.engine = engine
        self.tx = tx
        self.principal = principal
        self.batch_id = batch_id
        self.received_at = received_at
        self._inspections: dict[str, StoredRecord | None] = {}
        self._device_for: Mutation | None = None
        self._device_iso = ""
        self._signed: dict[str, set[str]] = {}
        # sign-offs read by prefetch, and inspections this batch wrote a sign-off in
        self._prefetched_signoffs: dict[str, list[StoredRecord]] = {}
        self._signoffs_written: set[str] = set()
        self._pinned: dict[str, dict[str, Template]] = {}
        self._undo: dict[tuple[str, str], StoredRecord | None] | None = None

    def prefetch(
        self, mutations: Sequence[Mutation | Unreadable], keys: list[str]
    ) -> dict[str, bytes]:
        """Read what the batch starts from in one go (one round trip to a database
        server): the results of mutations already applied (returned), the records the
        mutations name, and the inspections they name with those inspections'
        sign-offs. An inspection named only by a stored record is read when met."""
        refs = [(m.kind, m.id) for m in mutations if isinstance(m, Mutation)]
        iids = list(dict.fromkeys(i for m in mutations if (i := _named_inspection(m))))
        got = self.tx.prefetch(
            keys,
            refs + [("inspection", i) for i in iids],
            [("signoff", i) for i in iids],
        )
        wanted = set(refs)
        self.records.update({k: r for k, r in got.records.items() if k in wanted})
        for iid in iids:
            self._prefetched_signoffs[iid] = got.listings[("signoff", iid)]
            if ("inspection", iid) not in wanted:  # else read when met, as it then is
                insp = got.records.get(("inspection", iid))
                self._inspections[iid] = None if insp is None or insp.deleted else insp
        return got.mutations

    def device_time(self, m: Mutation) -> str:
        """The mutation's device time as text, formatted once per mutation."""
        if self._device_for is not m:
            self._device_for, self._device_iso = m, m.device_time.isoformat()
        return self._device_iso

    def _put(
        self,
        kind: str,
        rid: str,
        data: dict[str, Any],
        *,
        rev: int,
        deleted: bool = False,
        op: str | None = None,
    ) -> StoredRecord:
        rec = self.tx.put_record(kind, rid, data, rev=rev, deleted=deleted, op=op)
        if kind == "signoff":
            self._signoffs_written.add(str(data.get("inspection_id")))
        if self._undo is not None and (kind, rid) not in self._undo:
            self._undo[(kind, rid)] = self.records.get((kind, rid))
        self.records[(kind, rid)] = rec
        return rec

    def _inspection(self, iid: str) -> StoredRecord | None:
        if iid not in self._inspections:
            self._inspections[iid] = self.tx.get_record("inspection", iid)
        return self._inspections[iid]

    def _pins(self, insp: StoredRecord) -> dict[str, Template]:
        """The inspection's pinned templates, looked up once per batch (pushes do not
        change pins)."""
        pins = self._pinned.get(insp.id)
        if pins is None:
            pins = self._pinned[insp.id] = self.engine._pins(self.tx, insp)
        return pins

    def _signed_scopes(self, iid: str) -> set[str]:
        """The scopes signed off in the inspection, as they stood when first asked
        (prefetched, unless this batch has since written a sign-off there)."""
        if iid not in self._signed:
            signoffs = self._prefetched_signoffs.get(iid)
            if signoffs is None or iid in self._signoffs_written:
                signoffs = self.tx.records_of("signoff", iid)
            self._signed[iid] = {s.data.get("scope", "") for s in signoffs}
        return self._signed[iid]

    def reject(self, m: Mutation | Unreadable, reason: Reason, iid: str | None) -> Rejected:
        qid = f"q_{uuid.uuid4().hex[:16]}"
        self.tx.add_quarantine(
            {
                "id": qid,
                "mid": m.mid,
                "user_id": self.principal.user_id,
                "device_id": self.principal.device_id,
                "batch_id": self.batch_id,
                "kind": m.kind,
                "record_id": m.id,
                "inspection_id": iid,
                "mutation": m.raw if isinstance(m, Unreadable) else _quarantined(m),
                "code": reason.code,
                "field": reason.field,
                "message": reason.message,
                "received_at": self.received_iso,
            }
        )
        return Rejected(
            mid=m.mid,
            kind=m.kind,
            id=m.id,
            code=reason.code,
            field=reason.field,
            message=reason.message,
            quarantine_id=qid,
        )

    def reject_unreadable(self, m: Unreadable) -> Rejected:
        """A mutation that did not decode: rejected with the decoder's reason, kept as
        it was sent. Its inspection is known only from a response id or the record."""
        iid = None
        if m.kind in POLICIES and m.id:
            with contextlib.suppress(KeyError):
                iid = self.inspection_of(m)
        return self.reject(m, Reason(code=m.code, field=m.field, message=m.message), iid)

    def inspection_of(self, m: Mutation | Unreadable) -> str | None:
        """The inspection the mutation's record belongs to, if it names one."""
        if m.kind == "response":
            key = parse_response_id(m.id)
            return key.inspection_id if key else None
        current = self.records.get((m.kind, m.id))
        if current is None and isinstance(m, Unreadable):
            current = self.tx.get_record(m.kind, m.id, include_deleted=True)
        if current is not None:
            iid = current.data.get("inspection_id")
        else:
            iid = m.fields.get("inspection_id") if isinstance(m, Mutation) else m.inspection_id
        return iid if isinstance(iid, str) else None

    def undoable(self) -> _Undo:
        """Forget what the block wrote to this batch's view of the records if it
        raises (the store's savepoint undoes the rows)."""
        return _Undo(self)

    def apply(self, m: Mutation, hlc: str, skewed: bool) -> Result:
        if m.kind not in POLICIES:
            return self.reject(
                m,
                Reason(
                    code="unknown_kind",
                    field="kind",
                    message=f"tablets cannot change {m.kind!r} records",
                ),
                None,
            )
        if m.op not in ("upsert", "delete"):
            return self.reject(
                m,
                Reason(
                    code="unknown_op", field="op", message=f"op is upsert or delete, not {m.op!r}"
                ),
                None,
            )
        result = self._apply(m, hlc)
        if not isinstance(result, Rejected):
            iid = self._iid
            if iid:
                self.touched.add(iid)
                if m.kind == "signoff":
                    self._signed.pop(iid, None)  # later mutations of the batch see it
        return result

    def _apply(self, m: Mutation, hlc: str) -> Result:
        self._iid = None
        self.device_iso = self.device_time(m)
        current = self.records.get((m.kind, m.id))
        bad_id = check_record_id(m.kind, m.id)
        if bad_id is not None:
            return self.reject(m, bad_id, None)
        iid = self.inspection_of(m)
        if iid is None:
            return self.reject(
                m,
                Reason(
                    code="bad_id", field="inspection_id", message="the record names no inspection"
                ),
                None,
            )
        self._iid = iid
        insp = self._inspection(iid)
        if insp is None or not can_see_inspection(self.principal, insp.data):
            return self.reject(
                m,
                Reason(
                    code="not_in_scope",
                    field="inspection_id",
                    message="not an inspection you are assigned to",
                ),
                iid,
            )
        status = insp.data["status"]
        if status not in _WRITABLE:
            code = "inspection_not_started" if status == "planned" else "inspection_closed"
            return self.reject(
                m, Reason(code=code, field=None, message=f"the inspection is {status}"), iid
            )
        problem = check_fields(m.kind, m.fields)
        if problem is not None:
            return self.reject(m, problem, iid)
        ignored = IGNORED_FIELDS.get(m.kind)
        if ignored and not ignored.isdisjoint(m.fields):
            # an older tablet's field the server writes itself: dropped, never merged
            kept = {k: v for k, v in m.fields.items() if k not in ignored}
            m = msgspec.structs.replace(m, fields=kept)
        if m.base_rev > (current.rev if current is not None else 0):
            # an edit of a revision the record never had: applying it would skip the
            # conflict check (every field would look unchanged since its base)
            held = f"revision {current.rev}" if current is not None else "no revision yet"
            return self.reject(
                m,
                Reason(
                    code="bad_base_rev",
                    field="base_rev",
                    message=f"base_rev {m.base_rev} is not a revision of this record"
                    f" (the server holds {held}); pull, then edit again",
                ),
                iid,
            )
        if (
            current is not None
            and "inspection_id" in m.fields
            and m.fields["inspection_id"] != current.data.get("inspection_id")
        ):
            return self.reject(
                m,
                Reason(
                    code="immutable_field",
                    field="inspection_id",
                    message="a record cannot move to another inspection",
                ),
                iid,
            )
        frozen = _WRITABLE[status] or self._is_signed(m, iid, current)
        if frozen and not (m.reason and m.reason.strip()):
            return self.reject(
                m,
                Reason(
                    code="reason_required",
                    field="reason",
                    message="this is signed off (or fieldwork is done): a change needs a reason",
                ),
                iid,
            )
        if m.op == "delete":
            return self._delete(m, current, iid, hlc)
        return self._upsert(m, current, iid, insp, hlc)

    def _is_signed(self, m: Mutation, iid: str, current: StoredRecord | None) -> bool:
        scopes = self._signed_scopes(iid)
        if m.kind == "signoff":
            return current is not None and not current.deleted
        if "inspection" in scopes:
            return True
        if m.kind == "response":
            key = parse_response_id(m.id)
            return key is not None and f"link:{key.link_id}" in scopes
        return False

    def _open_conflict(
        self, iid: str, kind: str, rid: str, fc: FieldConflict, hlc: str
    ) -> tuple[str, list[Any]]:
        """Record a same-field conflict: join the open one for that field, or open one.
        The record keeps the id of each field's open conflict in ``_conflict_ids``."""
        known = self._conflict_ids.get(fc.field)
        found = self.tx.get_record("conflict", known) if known else None
        existing = [found] if found is not None and found.data["status"] == "open" else []
        values = [msgspec.to_builtins(v) for v in fc.values]
        if existing:
            c = existing[0]
            kept = list(c.data["values"])
            for v in values:
                if not any(k["value"] == v["value"] and k.get("mid") == v.get("mid") for k in kept):
                    kept.append(v)
            data = {
                **c.data,
                "values": kept,
                "winner": fc.winner,
                "flagged": c.data["flagged"] or fc.flagged,
            }
            self.tx.put_record("conflict", c.id, data, rev=c.rev + 1)
            return c.id, kept
        cid = f"cf_{uuid.uuid4().hex[:16]}"
        self._conflict_ids[fc.field] = cid
        self.tx.put_record(
            "conflict",
            cid,
            {
                "inspection_id": iid,
                "record_kind": kind,
                "record_id": rid,
                "field": fc.field,
                "policy": fc.policy,
                "flagged": fc.flagged,
                "status": "open",
                "values": values,
                "winner": fc.winner,
                "opened_at": self.received_iso,
                "opened_hlc": hlc,
                "resolution": None,
            },
            rev=1,
            fresh=True,
        )
        return cid, values

    def _edit(self, m: Mutation, hlc: str) -> Edit:
        return Edit(
            fields=m.fields,
            base_rev=m.base_rev,
            hlc=hlc,
            by=self.principal.user_id,
            device=self.principal.device_id or "",
            mid=m.mid,
            device_time=self.device_iso,
        )

    def _kept(self, m: Mutation, hlc: str, value: Any) -> KeptValue:
        return KeptValue(
            value=value,
            by=self.principal.user_id,
            device=self.principal.device_id or "",
            hlc=hlc,
            mid=m.mid,
            device_time=self.device_iso,
        )

    def _delete(self, m: Mutation, current: StoredRecord | None, iid: str, hlc: str) -> Result:
        if current is None:
            return self.reject(
                m,
                Reason(code="not_found", field="id", message="there is no such record to delete"),
                iid,
            )
        if current.deleted:
            return Applied(mid=m.mid, kind=m.kind, id=m.id, rev=current.rev)
        stamps = _stamps(current.data)
        edit = self._edit(m, hlc)
        edited = sorted(f for f, s in stamps.items() if is_concurrent(s, edit))
        if edited:
            # delete versus edit: a conflict, never a silent delete
            last = stamps[edited[0]]
            server = KeptValue(
                value=public_data(current),
                by=last.by,
                device=last.device,
                hlc=last.hlc,
                mid=last.mid,
                device_time=last.device_time,
            )
            fc = FieldConflict(
                field="_deleted",
                policy="never",
                winner=public_data(current),
                values=[server, self._kept(m, hlc, None)],
                flagged=True,
            )
            return self._conflicted(m, current, iid, [fc], {}, {}, hlc)
        data = dict(current.data)
        data["_deleted_by"] = self.principal.device_id or self.principal.user_id
        rec = self._put(m.kind, m.id, data, rev=current.rev + 1, deleted=True)
        return Applied(mid=m.mid, kind=m.kind, id=m.id, rev=rec.rev)

    def _upsert(
        self, m: Mutation, current: StoredRecord | None, iid: str, insp: StoredRecord, hlc: str
    ) -> Result:
        me = self.principal.device_id or self.principal.user_id
        seen_delete = (
            current is not None
            and current.deleted
            and (m.base_rev >= current.rev or current.data.get("_deleted_by") == me)
        )
        if current is not None and current.deleted and not seen_delete:
            # an edit of a record deleted meanwhile: kept as a conflict, not applied
            fc = FieldConflict(
                field="_deleted",
                policy="never",
                winner=None,
                values=[
                    KeptValue(value=None, by="", device="", hlc=""),
                    self._kept(m, hlc, m.fields),
                ],
                flagged=True,
            )
            return self._conflicted(m, current, iid, [fc], {}, {}, hlc)
        # a new record, or one re-created by someone who saw it deleted
        fresh = current is None or seen_delete
        values = {} if fresh or current is None else dict(current.data)
        stamps = _stamps(values)
        new_rev = (current.rev if current else 0) + 1
        edit = self._edit(m, hlc)
        result = merge(values, stamps, edit, new_rev, POLICIES[m.kind])
        merged = {**values, **result.values}
        if fresh:
            merged["inspection_id"] = iid
            if m.kind == "response":
                key = parse_response_id(m.id)
                assert key is not None
                merged.update(link_id=key.link_id, item_key=key.item_key, repeat=key.repeat)
            if m.kind == "finding" and "status" not in merged:
                # the default is a change like any other: stamped, and in the history
                merged["status"] = "draft"
                result.stamps["status"] = Stamp(
                    new_rev, hlc, edit.by, edit.device, edit.mid, edit.device_time
                )
        if m.kind == "signoff":
            # bind the signature to what it signs, as the server holds it now
            scope = str(merged.get("scope", ""))
            merged["bound_hash"] = self.engine.scope_hash(self.tx, iid, scope)
            merged["signed_by"] = self.principal.user_id
            merged["signer_name"] = self.signer_name
            # what it leaves unanswered, as the server holds the answers now (a
            # sign-off that leaves some needs the signer's reason: ``validate``)
            answers = answers_by_link((r.id, r.data) for r in self.tx.records_of("response", iid))
            merged["unanswered"] = unanswered_required(self._pins(insp), scope, answers)
        view = {k: merged.get(k) for k in POLICIES[m.kind] if k in merged}
        if m.kind == "signoff":
            view["unanswered"] = merged["unanswered"]
        problem = validate(m.kind, m.id, view, self._pins(insp))
        if problem is not None:
            return self.reject(m, problem, iid)
        if result.conflicts:
            return self._conflicted(
                m, current, iid, result.conflicts, result.values, result.stamps, hlc, merged
            )
        # fields changed by others since the edit's base (the edit's own or any other)
        concurrent = sorted(
            {*result.concurrent, *(f for f, st in stamps.items() if is_concurrent(st, edit))}
        )
        if not result.values and current is not None and not fresh:
            if concurrent:
                return Merged(
                    mid=m.mid, kind=m.kind, id=m.id, rev=current.rev, concurrent_fields=concurrent
                )
            return Applied(mid=m.mid, kind=m.kind, id=m.id, rev=current.rev)
        rec = self._write(m, current, merged, result.stamps, hlc)
        if concurrent:
            return Merged(
                mid=m.mid, kind=m.kind, id=m.id, rev=rec.rev, concurrent_fields=concurrent
            )
        return Applied(mid=m.mid, kind=m.kind, id=m.id, rev=rec.rev)

    def _write(
        self,
        m: Mutation,
        current: StoredRecord | None,
        merged: dict[str, Any],
        new_stamps: dict[str, Stamp],
        hlc: str,
        open_fields: Iterable[str] = (),
        op: str | None = None,
    ) -> StoredRecord:
        raw = dict(merged.get("_stamps") or {})
        raw.update({f: _raw(s) for f, s in new_stamps.items()})
        merged["_stamps"] = raw
        merged["open_conflicts"] = sorted({*merged.get("open_conflicts", []), *open_fields})
        merged.pop("_deleted_by", None)
        rev = (current.rev if current else 0) + 1
        return self._put(m.kind, m.id, merged, rev=rev, op=op)

    def _conflicted(
        self,
        m: Mutation,
        current: StoredRecord | None,
        iid: str,
        conflicts: list[FieldConflict],
        values: dict[str, Any],
        stamps: dict[str, Stamp],
        hlc: str,
        merged: dict[str, Any] | None = None,
    ) -> Conflicted:
        kept: list[ConflictKept] = []
        assert current is not None
        self._conflict_ids = dict(current.data.get("_conflict_ids") or {})
        for fc in conflicts:
            cid, all_values = self._open_conflict(iid, m.kind, m.id, fc, hlc)
            kept.append(
                ConflictKept(
                    conflict_id=cid,
                    field=fc.field,
                    winner=fc.winner,
                    values=all_values,
                    flagged=fc.flagged,
                )
            )
        if current.deleted or any(fc.field == "_deleted" for fc in conflicts):
            data = dict(current.data)
            data["_conflict_ids"] = self._conflict_ids
            data["open_conflicts"] = sorted({*data.get("open_conflicts", []), "_deleted"})
            rec = self._put(
                m.kind, m.id, data, rev=current.rev + 1, deleted=current.deleted, op="conflict"
            )
            return Conflicted(mid=m.mid, kind=m.kind, id=m.id, rev=rec.rev, conflicts=kept)
        data = dict(merged or current.data)
        data["_conflict_ids"] = self._conflict_ids
        rec = self._write(
            m,
            current,
            data,
            stamps,
            hlc,
            open_fields=[fc.field for fc in conflicts],
            op="conflict",
        )
        return Conflicted(mid=m.mid, kind=m.kind, id=m.id, rev=rec.rev, conflicts=kept)
