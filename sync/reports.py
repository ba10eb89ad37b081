"""Read models for supervisors: a product's findings across its chain, and the dossier of
one inspection that the exports (``sync/exports.py``) and the report
(``sync/inspection_report.py``) are made from.

Nothing here writes. Each read model is built from one consistent snapshot of the store
(``Store.read_batch``), so counts and lists agree with each other. Findings are read
defensively: the fields the review workflow writes (``original_classification``,
``merged_into``, ``decisions``) may be absent, and engine bookkeeping (``_...`` keys) is
never shown.

Who sees what:

- the chain view is for supervisors and admins. Authorities share inspection
  information, so a supervisor sees every inspection of every site of the product's
  chain, whichever authority led it: read-only, and only through this view. An
  inspector is refused (``Forbidden``).
- an inspection's dossier follows :func:`sync.access.can_see_inspection`; an
  inspection out of scope is *not found*, exactly like a missing one.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

import msgspec

from checklists.loader import ChecklistError, template_from_obj
from checklists.schema import Item, Section, Template
from sync.access import can_see_inspection
from sync.clock import Clock
from sync.errors import Forbidden, NotFound
from sync.fielddata import CLASSIFICATION_LABELS, parse_response_id
from sync.models import Filter, Principal, Role, StoredRecord, User, public_fields
from sync.storage import BatchTx, Store

__all__ = [
    "CLASSES",
    "NOT_COUNTED",
    "AuthorityRef",
    "ChainFindings",
    "ChainView",
    "Counts",
    "CoveredLink",
    "Dossier",
    "FindingRow",
    "InspectionRef",
    "LinkView",
    "PersonRef",
    "Reports",
    "TeamMember",
    "count_findings",
    "finding_area",
    "public",
]

CLASSES = ("critical", "major", "other")
"""PIC/S classifications, most severe first: the order of every list and count."""

NOT_COUNTED = ("withdrawn", "merged")
"""Finding statuses left out of the counts: a withdrawn finding is no deficiency, a
merged one is counted once, in its survivor."""


# --- the values ----------------------------------------------------------------------


class Counts(msgspec.Struct, kw_only=True):
    """Findings by classification. ``total`` is critical + major + other +
    unclassified; withdrawn and merged findings are only in ``withdrawn_or_merged``."""

    critical: int = 0
    major: int = 0
    other: int = 0
    unclassified: int = 0
    total: int = 0
    withdrawn_or_merged: int = 0


class AuthorityRef(msgspec.Struct, kw_only=True):
    id: str
    name: str
    name_zh: str = ""


class PersonRef(msgspec.Struct, kw_only=True):
    """A user as reports show them; ``name`` is the id when the user is unknown."""

    user_id: str
    name: str
    authority_id: str | None = None


class InspectionRef(msgspec.Struct, kw_only=True):
    id: str
    title: str
    type: str
    status: str
    site_id: str
    link_ids: list[str]
    planned_start: str
    planned_end: str
    lead_authority: AuthorityRef
    participating_authorities: list[AuthorityRef]
    joint: bool
    """True when another authority takes part besides the lead."""


class FindingRow(msgspec.Struct, kw_only=True):
    """One finding in the chain view, with where it was found and by whom."""

    id: str
    title: str
    classification: str | None
    original_classification: str | None
    nmpa_label: str | None
    nmpa_label_zh: str | None
    status: str
    inspection_id: str
    inspection_title: str
    inspection_type: str
    site_id: str
    site_name: str
    province: str
    lead_authority_id: str
    authority_ids: list[str]
    raised_by: PersonRef | None
    """The team member who created the finding (from its history), with their authority:
    in a joint inspection this tells whose team raised it."""
    link_id: str
    placed_by: Literal["linked_items", "inspection"]
    """``linked_items``: the finding names an item of this link; ``inspection``: it names
    none, so it sits under the first link (in chain order) its inspection covers."""
    linked_items: list[str]
    merged_into: str | None
    open_conflicts: list[str]
    updated_at: datetime


class LinkView(msgspec.Struct, kw_only=True):
    position: int
    """1-based place of the link in its chain."""
    link_id: str
    stage_type: str
    stage_title_en: str
    stage_title_zh: str
    hands_over: str
    site_id: str
    site_name: str
    province: str
    organisation_id: str
    organisation_name: str
    inspections: list[InspectionRef]
    findings: list[FindingRow]
    counts: Counts
    counts_by_authority: dict[str, Counts]
    """The same counts split by the authority of whoever raised each finding (``""``
    when unknown): in a joint inspection, each authority's team's share."""


class ChainView(msgspec.Struct, kw_only=True):
    chain_id: str
    name: str
    links: list[LinkView]
    counts: Counts


class ChainFindings(msgspec.Struct, kw_only=True):
    """Every finding of every inspection of every site of a product's chains, grouped
    by chain link in chain order."""

    product_id: str
    product_name: str
    category: str
    mah_id: str
    mah_name: str
    chains: list[ChainView]
    counts: Counts
    generated_at: datetime


class CoveredLink(msgspec.Struct, kw_only=True):
    """A chain link an inspection covers, with the checklist version it pins."""

    position: int
    link_id: str
    stage_type: str
    stage_title_en: str
    stage_title_zh: str
    hands_over: str
    version_id: str | None
    version: int | None
    template: Template | None


class TeamMember(msgspec.Struct, kw_only=True):
    user_id: str
    name: str
    role: str
    authority_id: str | None
    authority_name: str
    sections: list[str] | None


class Dossier(msgspec.Struct, kw_only=True):
    """Everything about one inspection that its exports and report show."""

    generated_at: datetime
    generated_by: str
    inspection_id: str
    inspection: dict[str, Any]
    site: dict[str, Any]
    organisation: dict[str, Any]
    chain: dict[str, Any]
    product: dict[str, Any]
    links: list[CoveredLink]
    lead_authority: AuthorityRef
    participating_authorities: list[AuthorityRef]
    team: list[TeamMember]
    findings: list[StoredRecord]
    responses: list[StoredRecord]
    signoffs: list[StoredRecord]
    people: dict[str, PersonRef]
    """Every user named by a record of the inspection, by id."""
    raised_by: dict[str, PersonRef]
    """Finding id -> who created it."""
    authorities: dict[str, AuthorityRef]
    """The authorities of the inspection and of every person named, by id."""
    cursor: int = 0
    """The change feed's position the dossier was read at (``BatchTx.max_seq``): the
    documents made from it name it in their manifest."""

    def link(self, link_id: str) -> CoveredLink | None:
        return next((lk for lk in self.links if lk.link_id == link_id), None)


# --- pure helpers --------------------------------------------------------------------


def public(rec: StoredRecord) -> dict[str, Any]:
    """A record's data without engine bookkeeping (keys starting with ``_``)."""
    return public_fields(rec.data)


def _str(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _strs(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def classification_of(data: dict[str, Any]) -> str | None:
    cls = data.get("classification")
    return cls if cls in CLASSIFICATION_LABELS else None


def count_findings(findings: Iterable[dict[str, Any]]) -> Counts:
    """Count finding bodies by classification (see :class:`Counts`)."""
    counts = Counts()
    for data in findings:
        if data.get("status") in NOT_COUNTED:
            counts.withdrawn_or_merged += 1
            continue
        cls = classification_of(data)
        if cls is None:
            counts.unclassified += 1
        else:
            setattr(counts, cls, getattr(counts, cls) + 1)
        counts.total += 1
    return counts


def severity_rank(data: dict[str, Any]) -> tuple[bool, int]:
    """Sort key: counted findings before withdrawn and merged ones, then critical,
    major, other, unclassified."""
    cls = classification_of(data)
    return data.get("status") in NOT_COUNTED, CLASSES.index(cls) if cls is not None else 3


def find_item(template: Template | None, item_key: str) -> tuple[Section, Item] | None:
    if template is None:
        return None
    for section in template.sections:
        for item in section.items:
            if item.key == item_key:
                return section, item
    return None


def finding_area(data: dict[str, Any], dossier: Dossier) -> tuple[str | None, str | None]:
    """Where a finding belongs in the report: (link id, section key) of its first
    linked item that the inspection's pinned checklists know; (link id, None) if only
    the link is known; (None, None) for a general finding."""
    fallback: tuple[str | None, str | None] = (None, None)
    for ref in _strs(data.get("linked_items")):
        link_id, _, item_key = ref.partition(":")
        link = dossier.link(link_id)
        if link is None:
            continue
        found = find_item(link.template, item_key)
        if found is not None:
            return link_id, found[0].key
        if fallback == (None, None):
            fallback = (link_id, None)
    return fallback


def _creator(rec: StoredRecord, history: list[dict[str, Any]]) -> str | None:
    """Who created a record: the user of its first history entry, else the user of the
    oldest field stamp the engine keeps."""
    for row in history:
        user = row.get("user_id")
        if isinstance(user, str) and user:
            return user
    stamps = rec.data.get("_stamps")
    if isinstance(stamps, dict):
        oldest: tuple[int, str] | None = None
        for raw in stamps.values():
            if isinstance(raw, list) and len(raw) >= 3 and isinstance(raw[2], str):
                rev = raw[0] if isinstance(raw[0], int) else 0
                if oldest is None or rev < oldest[0]:
                    oldest = (rev, raw[2])
        if oldest is not None:
            return oldest[1]
    return None


def last_by(rec: StoredRecord, field: str) -> str | None:
    """Who last changed one field of a record (its stamp), if known."""
    stamps = rec.data.get("_stamps")
    raw = stamps.get(field) if isinstance(stamps, dict) else None
    if isinstance(raw, list) and len(raw) >= 3 and isinstance(raw[2], str):
        return raw[2]
    return None


# --- the service ---------------------------------------------------------------------


class _World:
    """Reference data read once per read model, inside the snapshot."""

    def __init__(self, tx: BatchTx, users: dict[str, User]) -> None:
        self.tx = tx
        self.users = users
        self._cache: dict[tuple[str, str], dict[str, Any]] = {}
        self._stage_titles: dict[str, tuple[str, str]] | None = None

    def get(self, kind: str, rid: str) -> dict[str, Any]:
        key = (kind, rid)
        if key not in self._cache:
            rec = self.tx.get_record(kind, rid) if rid else None
            self._cache[key] = public(rec) if rec is not None else {}
        return self._cache[key]

    def authority(self, aid: str) -> AuthorityRef:
        data = self.get("authority", aid)
        return AuthorityRef(
            id=aid, name=_str(data.get("name"), aid), name_zh=_str(data.get("name_zh"))
        )

    def person(self, user_id: str) -> PersonRef:
        user = self.users.get(user_id)
        if user is None:
            return PersonRef(user_id=user_id, name=user_id)
        return PersonRef(user_id=user_id, name=user.display_name, authority_id=user.authority_id)

    def stage_title(self, stage_type: str) -> tuple[str, str]:
        if self._stage_titles is None:
            self._stage_titles = {
                _str(t.data.get("stage_type")): (
                    _str(t.data.get("title_en")),
                    _str(t.data.get("title_zh")),
                )
                for t in self.tx.find_records("checklist_template")
            }
        en, zh = self._stage_titles.get(stage_type, ("", ""))
        return en or stage_type.replace("_", " ").capitalize(), zh

    def inspection_ref(self, rec: StoredRecord) -> InspectionRef:
        data = rec.data
        lead = _str(data.get("lead_authority_id"))
        others = [a for a in _strs(data.get("participating_authority_ids")) if a != lead]
        return InspectionRef(
            id=rec.id,
            title=_str(data.get("title")),
            type=_str(data.get("type")),
            status=_str(data.get("status")),
            site_id=_str(data.get("site_id")),
            link_ids=_strs(data.get("link_ids")),
            planned_start=_str(data.get("planned_start")),
            planned_end=_str(data.get("planned_end")),
            lead_authority=self.authority(lead),
            participating_authorities=[self.authority(a) for a in others],
            joint=bool(others),
        )


class Reports:
    """Read models over the store; every method takes the verified principal."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self._templates: dict[str, Template] = {}

    async def _users(self) -> dict[str, User]:
        return {u.id: u for u in await self.store.list_users()}

    # --- the chain view ------------------------------------------------------------

    async def chain_findings(self, principal: Principal, product_id: str) -> ChainFindings:
        """For a product: every finding of every inspection of its chains, grouped by
        link in chain order, with counts per link, per chain and in all.

        Supervisors and admins only (``Forbidden`` otherwise); an unknown product is
        ``NotFound``.
        """
        if principal.role not in (Role.SUPERVISOR, Role.ADMIN):
            raise Forbidden("the chain view is for supervisors and admins")
        users = await self._users()
        now = self.clock.now()

        def read(tx: BatchTx) -> ChainFindings:
            product = tx.get_record("product", product_id)
            if product is None:
                raise NotFound(f"no product {product_id!r}")
            world = _World(tx, users)
            chains = tx.find_records("chain", [Filter("product_id", "eq", product_id)])
            views = [self._chain_view(world, chain) for chain in chains]
            mah = _str(product.data.get("mah_id"))
            return ChainFindings(
                product_id=product.id,
                product_name=_str(product.data.get("name")),
                category=_str(product.data.get("category")),
                mah_id=mah,
                mah_name=_str(world.get("organisation", mah).get("name"), mah),
                chains=views,
                counts=_sum_counts(v.counts for v in views),
                generated_at=now,
            )

        return await self.store.read_batch(read)

    def _chain_view(self, world: _World, chain: StoredRecord) -> ChainView:
        tx = world.tx
        links = [lk for lk in chain.data.get("links") or [] if isinstance(lk, dict)]
        order = {_str(lk.get("id")): n for n, lk in enumerate(links)}
        inspections = tx.find_records("inspection", [Filter("chain_id", "eq", chain.id)])
        inspections.sort(key=lambda r: (_str(r.data.get("planned_start")), r.id))
        by_link: dict[str, list[InspectionRef]] = {lid: [] for lid in order}
        rows: dict[str, list[tuple[tuple[Any, ...], FindingRow]]] = {lid: [] for lid in order}
        for insp in inspections:
            ref = world.inspection_ref(insp)
            covered = sorted((lid for lid in ref.link_ids if lid in order), key=order.__getitem__)
            for lid in covered:
                by_link[lid].append(ref)
            if not covered:
                continue
            site = world.get("site", ref.site_id)
            for rec in tx.records_of("finding", insp.id):
                data = rec.data
                named = sorted(
                    {
                        r.partition(":")[0]
                        for r in _strs(data.get("linked_items"))
                        if r.partition(":")[0] in covered
                    },
                    key=order.__getitem__,
                )
                link_id = named[0] if named else covered[0]
                creator = _creator(rec, tx.history_of("finding", rec.id))
                cls = classification_of(data)
                labels = CLASSIFICATION_LABELS.get(cls or "", {})
                original = data.get("original_classification")
                row = FindingRow(
                    id=rec.id,
                    title=_str(data.get("title")),
                    classification=cls,
                    original_classification=original if original in CLASSIFICATION_LABELS else None,
                    nmpa_label=labels.get("nmpa"),
                    nmpa_label_zh=labels.get("nmpa_zh"),
                    status=_str(data.get("status"), "draft"),
                    inspection_id=insp.id,
                    inspection_title=ref.title,
                    inspection_type=ref.type,
                    site_id=ref.site_id,
                    site_name=_str(site.get("name"), ref.site_id),
                    province=_str(site.get("province")),
                    lead_authority_id=ref.lead_authority.id,
                    authority_ids=[ref.lead_authority.id]
                    + [a.id for a in ref.participating_authorities],
                    raised_by=world.person(creator) if creator else None,
                    link_id=link_id,
                    placed_by="linked_items" if named else "inspection",
                    linked_items=_strs(data.get("linked_items")),
                    merged_into=data.get("merged_into")
                    if isinstance(data.get("merged_into"), str)
                    else None,
                    open_conflicts=_strs(data.get("open_conflicts")),
                    updated_at=rec.updated_at,
                )
                key = (severity_rank(data), ref.planned_start, insp.id, rec.id)
                rows[link_id].append((key, row))
        views: list[LinkView] = []
        for n, lk in enumerate(links):
            lid = _str(lk.get("id"))
            site_id = _str(lk.get("site_id"))
            site = world.get("site", site_id)
            org_id = _str(site.get("organisation_id"))
            stage = _str(lk.get("stage_type"))
            title_en, title_zh = world.stage_title(stage)
            found = [row for _, row in sorted(rows[lid], key=lambda kr: kr[0])]
            views.append(
                LinkView(
                    position=n + 1,
                    link_id=lid,
                    stage_type=stage,
                    stage_title_en=title_en,
                    stage_title_zh=title_zh,
                    hands_over=_str(lk.get("hands_over")),
                    site_id=site_id,
                    site_name=_str(site.get("name"), site_id),
                    province=_str(site.get("province")),
                    organisation_id=org_id,
                    organisation_name=_str(world.get("organisation", org_id).get("name")),
                    inspections=by_link[lid],
                    findings=found,
                    counts=_counts_of_rows(found),
                    counts_by_authority=_counts_by_authority(found),
                )
            )
        return ChainView(
            chain_id=chain.id,
            name=_str(chain.data.get("name")),
            links=views,
            counts=_sum_counts(v.counts for v in views),
        )

    # --- one inspection --------------------------------------------------------------

    async def dossier(self, principal: Principal, inspection_id: str) -> Dossier:
        """Everything the exports and the report of one inspection show. An inspection
        the principal may not see is ``NotFound``, like a missing one."""
        users = await self._users()
        now = self.clock.now()

        def read(tx: BatchTx) -> Dossier:
            insp = tx.get_record("inspection", inspection_id)
            if insp is None or not can_see_inspection(principal, insp.data):
                raise NotFound(f"no inspection {inspection_id!r}")
            return self._dossier(_World(tx, users), insp, principal, now)

        return await self.store.read_batch(read)

    def _template(self, tx: BatchTx, version_id: str) -> tuple[Template | None, int | None]:
        rec = tx.get_record("checklist_version", version_id)
        if rec is None:
            return None, None
        version = rec.data.get("version")
        cached = self._templates.get(version_id)
        if cached is None:
            try:
                cached = template_from_obj(rec.data.get("content"))
            except ChecklistError:  # it loaded when pinned; never fail a report on it
                return None, version if isinstance(version, int) else None
            if rec.data.get("status") != "draft":
                self._templates[version_id] = cached
        return cached, version if isinstance(version, int) else None

    def _dossier(
        self, world: _World, insp: StoredRecord, principal: Principal, now: datetime
    ) -> Dossier:
        tx = world.tx
        data = public(insp)
        site = world.get("site", _str(data.get("site_id")))
        chain = world.get("chain", _str(data.get("chain_id")))
        product = world.get("product", _str(chain.get("product_id")))
        raw_pins = data.get("pins")
        pins: dict[str, Any] = raw_pins if isinstance(raw_pins, dict) else {}
        covered = set(_strs(data.get("link_ids")))
        links: list[CoveredLink] = []
        for n, lk in enumerate(chain.get("links") or []):
            if not isinstance(lk, dict) or lk.get("id") not in covered:
                continue
            lid = _str(lk.get("id"))
            vid = pins.get(lid) if isinstance(pins.get(lid), str) else None
            template, version = self._template(tx, vid) if vid else (None, None)
            stage = _str(lk.get("stage_type"))
            title_en, title_zh = world.stage_title(stage)
            links.append(
                CoveredLink(
                    position=n + 1,
                    link_id=lid,
                    stage_type=stage,
                    stage_title_en=title_en,
                    stage_title_zh=title_zh,
                    hands_over=_str(lk.get("hands_over")),
                    version_id=vid,
                    version=version,
                    template=template,
                )
            )
        ref = world.inspection_ref(insp)
        team: list[TeamMember] = []
        assignments = tx.find_records("assignment", [Filter("inspection_id", "eq", insp.id)])
        for a in assignments:
            who = world.person(_str(a.data.get("user_id")))
            team.append(
                TeamMember(
                    user_id=who.user_id,
                    name=who.name,
                    role=_str(a.data.get("role"), "member"),
                    authority_id=who.authority_id,
                    authority_name=world.authority(who.authority_id).name
                    if who.authority_id
                    else "",
                    sections=_strs(a.data.get("sections"))
                    if isinstance(a.data.get("sections"), list)
                    else None,
                )
            )
        team.sort(key=lambda m: (m.role != "lead", m.name))
        findings = tx.records_of("finding", insp.id)
        findings.sort(key=lambda r: (severity_rank(r.data), r.created_at, r.id))
        responses = tx.records_of("response", insp.id)
        responses.sort(key=lambda r: _response_order(r, links))
        signoffs = tx.records_of("signoff", insp.id)
        raised_by: dict[str, PersonRef] = {}
        people: dict[str, PersonRef] = {m.user_id: world.person(m.user_id) for m in team}
        for rec in findings:
            creator = _creator(rec, tx.history_of("finding", rec.id))
            if creator:
                raised_by[rec.id] = people.setdefault(creator, world.person(creator))
        for rec in [*findings, *responses, *signoffs]:
            for raw in (rec.data.get("_stamps") or {}).values():
                if isinstance(raw, list) and len(raw) >= 3 and isinstance(raw[2], str):
                    people.setdefault(raw[2], world.person(raw[2]))
        for rec in findings:
            for d in rec.data.get("decisions") or []:
                if isinstance(d, dict) and isinstance(d.get("by"), str):
                    people.setdefault(d["by"], world.person(d["by"]))
        authorities = {a.id: a for a in [ref.lead_authority, *ref.participating_authorities]}
        for person in people.values():
            if person.authority_id and person.authority_id not in authorities:
                authorities[person.authority_id] = world.authority(person.authority_id)
        return Dossier(
            generated_at=now,
            generated_by=principal.username,
            inspection_id=insp.id,
            inspection=data,
            site={"id": _str(data.get("site_id")), **site},
            organisation={
                "id": _str(site.get("organisation_id")),
                **world.get("organisation", _str(site.get("organisation_id"))),
            },
            chain={"id": _str(data.get("chain_id")), **chain},
            product={"id": _str(chain.get("product_id")), **product},
            links=links,
            lead_authority=ref.lead_authority,
            participating_authorities=ref.participating_authorities,
            team=team,
            findings=findings,
            responses=responses,
            signoffs=signoffs,
            people=people,
            raised_by=raised_by,
            authorities=authorities,
            cursor=tx.max_seq(),
        )


def _response_order(rec: StoredRecord, links: list[CoveredLink]) -> tuple[Any, ...]:
    """Responses in checklist order: link (chain order), section, item, repeat."""
    key = parse_response_id(rec.id)
    if key is None:
        return (len(links), 0, 0, 0, rec.id)
    for n, link in enumerate(links):
        if link.link_id != key.link_id or link.template is None:
            continue
        for s, section in enumerate(link.template.sections):
            for i, item in enumerate(section.items):
                if item.key == key.item_key:
                    return (n, s, i, key.repeat, rec.id)
        return (n, len(link.template.sections), 0, key.repeat, rec.id)
    return (len(links), 0, 0, key.repeat, rec.id)


def _counts_of_rows(rows: Iterable[FindingRow]) -> Counts:
    return count_findings({"classification": r.classification, "status": r.status} for r in rows)


def _counts_by_authority(rows: list[FindingRow]) -> dict[str, Counts]:
    groups: dict[str, list[FindingRow]] = {}
    for r in rows:
        key = (r.raised_by.authority_id if r.raised_by else None) or ""
        groups.setdefault(key, []).append(r)
    return {k: _counts_of_rows(v) for k, v in sorted(groups.items())}


def _sum_counts(parts: Iterable[Counts]) -> Counts:
    total = Counts()
    for c in parts:
        for field in Counts.__struct_fields__:
            setattr(total, field, getattr(total, field) + getattr(c, field))
    return total
