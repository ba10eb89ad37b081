"""The domain's values: who is asking, and the records the server keeps.

Reference data and inspections are *records*: a kind, an id, a revision, a position in
the change feed (``seq``) and a body that is one of the structs below. Keeping every
synced entity in one shape is what lets one change feed serve every tablet (see
``docs/architecture.md``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec

from checklists.schema import StageType

__all__ = [
    "KIND_TYPES",
    "Assignment",
    "Authority",
    "Chain",
    "ChainLink",
    "ChecklistTemplateRecord",
    "ChecklistVersionRecord",
    "Device",
    "EvidenceFile",
    "EvidenceRef",
    "FeedRow",
    "Filter",
    "Inspection",
    "InspectionStatus",
    "InspectionType",
    "Organisation",
    "Principal",
    "Product",
    "RefreshToken",
    "Role",
    "Site",
    "StoredRecord",
    "Upload",
    "User",
    "is_bookkeeping",
    "public_fields",
]


class Role(enum.StrEnum):
    INSPECTOR = "inspector"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class Principal(msgspec.Struct, frozen=True):
    """A verified caller, as the server hands it to the engine (never a token)."""

    user_id: str
    username: str
    role: Role
    authority_id: str
    device_id: str | None = None


class User(msgspec.Struct, kw_only=True):
    id: str
    username: str
    display_name: str
    role: Role
    authority_id: str
    password_hash: str
    disabled: bool = False
    created_at: datetime


class Device(msgspec.Struct, kw_only=True):
    id: str
    user_id: str
    name: str
    platform: str = ""
    app_version: str = ""
    registered_at: datetime
    revoked_at: datetime | None = None
    last_seen_at: datetime | None = None


class RefreshToken(msgspec.Struct, kw_only=True):
    """A refresh token as stored: only its SHA-256 is kept, never the token."""

    token_hash: str
    family_id: str
    user_id: str
    device_id: str | None
    issued_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    revoked_at: datetime | None = None


def is_bookkeeping(field: str) -> bool:
    """Whether a record field is the sync engine's own bookkeeping (``_stamps``,
    ``_conflict_ids``, ``_deleted_by``: names starting with ``_``), never shown to
    clients, exported or audited."""
    return field.startswith("_")


def public_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """A record's data as clients see it: without the bookkeeping fields."""
    return {k: v for k, v in data.items() if not is_bookkeeping(k)}


class StoredRecord(msgspec.Struct, kw_only=True):
    """A record as the store holds it. ``seq`` is its place in the change feed."""

    kind: str
    id: str
    data: dict[str, Any]
    rev: int
    seq: int
    deleted: bool = False
    created_at: datetime
    updated_at: datetime


class FeedRow(msgspec.Struct, array_like=True):
    """A change-feed row as stored, its ``data`` still JSON text: what a pull page
    needs, without decoding the record (see ``BatchTx.feed_json``)."""

    kind: str
    id: str
    rev: int
    seq: int
    deleted: bool
    data: str
    """The record's public ``data`` as JSON: what clients see, without the engine's
    bookkeeping fields (names starting with ``_``)."""


FilterOp = Literal["eq", "ne", "in", "contains", "gte", "lte"]


class Filter(msgspec.Struct, frozen=True):
    """A condition on a top-level field of a record's data.

    ``contains`` is membership in a list field; ``in`` is the field's value in a list.
    """

    field: str
    op: FilterOp
    value: Any


# --- record bodies -------------------------------------------------------------------


class Authority(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A regulator: the national one or a provincial one."""

    name: str
    level: Literal["national", "provincial"]
    province: str | None = None
    name_zh: str = ""
    rectification_days: dict[
        Literal["critical", "major", "other"], Annotated[int, msgspec.Meta(ge=1, le=3650)]
    ] = {}
    """Calendar days a company has to rectify a finding of each classification, counted
    from the day it was accepted (sync/rectification.py); a class not given takes the
    default (critical 15, major 30, other 60)."""


class Organisation(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    kind: Literal["mah", "contract_manufacturer", "testing_lab", "logistics_provider"]
    country: str = "CN"


class Site(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    organisation_id: str
    name: str
    province: str
    licence_number: str
    address: str
    country: str = "CN"


class Product(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    category: Literal["adc", "mab", "vaccine", "glp1", "insulin", "other_biologic"]
    mah_id: str


class ChainLink(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One segment of a chain: a stage type performed at a site."""

    id: str
    stage_type: StageType
    site_id: str
    hands_over: str = ""


class Chain(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The ordered links that make a product, under its MAH."""

    product_id: str
    name: str
    links: list[ChainLink]


class InspectionStatus(enum.StrEnum):
    PLANNED = "planned"
    IN_PROGRESS = "in_progress"
    FIELDWORK_DONE = "fieldwork_done"
    UNDER_REVIEW = "under_review"
    CLOSED = "closed"


class InspectionType(enum.StrEnum):
    PRE_APPROVAL = "pre_approval"
    ROUTINE = "routine"
    FOR_CAUSE = "for_cause"
    JOINT_CROSS_PROVINCE = "joint_cross_province"
    FOLLOW_UP = "follow_up"


class Inspection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An inspection of one site, covering links of one chain.

    ``authority_ids`` (lead + participating) and ``team_user_ids`` are derived by the
    engine on every write; they exist so scope queries are simple filters.
    ``pins`` maps a covered link id to the checklist version id it was started with.
    """

    title: str
    site_id: str
    chain_id: str
    link_ids: list[str]
    type: InspectionType
    lead_authority_id: str
    participating_authority_ids: list[str] = []
    planned_start: date
    planned_end: date
    status: InspectionStatus = InspectionStatus.PLANNED
    pins: dict[str, str] = {}
    authority_ids: list[str] = []
    team_user_ids: list[str] = []
    started_at: datetime | None = None
    closed_at: datetime | None = None


class Assignment(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An inspector on an inspection: what decides which data reach which tablet."""

    inspection_id: str
    user_id: str
    role: Literal["lead", "member"] = "member"
    sections: list[str] | None = None


class ChecklistTemplateRecord(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A template's identity; its content lives in its versions."""

    stage_type: StageType
    title_en: str
    title_zh: str
    created_by: str


class ChecklistVersionRecord(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One version of a template. Only a ``draft`` is ever changed."""

    template_key: str
    version: int
    status: Literal["draft", "published", "retired"] = "draft"
    content: dict[str, Any]
    created_by: str
    changelog: str = ""
    published_by: str | None = None
    published_at: datetime | None = None
    effective_date: date | None = None
    retired_at: datetime | None = None


KIND_TYPES: dict[str, type[msgspec.Struct]] = {
    "authority": Authority,
    "organisation": Organisation,
    "site": Site,
    "product": Product,
    "chain": Chain,
    "inspection": Inspection,
    "assignment": Assignment,
    "checklist_template": ChecklistTemplateRecord,
    "checklist_version": ChecklistVersionRecord,
}
"""Every record kind and the struct its body decodes to."""


# --- evidence ------------------------------------------------------------------------


class Upload(msgspec.Struct, kw_only=True):
    """A resumable upload of one file, as the store keeps it.

    ``sha256`` is the hash the uploader announced; the bytes received so far live in the
    partial-upload area under ``id`` (never under a client's file name). ``media_type``
    is set once the first bytes were sniffed; ``completed_at`` once the whole file was
    verified and stored (the row is kept until ``expires_at`` so that a client whose
    last answer was lost can still ask for the offset).
    """

    id: str
    sha256: str
    length: int
    offset: int = 0
    media_type: str | None = None
    inspection_id: str
    user_id: str
    device_id: str | None = None
    metadata: dict[str, str] = {}
    created_at: datetime
    expires_at: datetime
    completed_at: datetime | None = None


class EvidenceFile(msgspec.Struct, kw_only=True):
    """A stored file, named by its SHA-256 and kept once however often it is uploaded.

    Who, which device, which inspection and the tablet's capture time and place are
    those of the first completed upload (every upload is an :class:`EvidenceRef`);
    ``exif_*`` come from the file itself (JPEG), ``exif_captured_at`` as the camera
    wrote it (local time, no zone).
    """

    sha256: str
    size: int
    media_type: str
    inspection_id: str
    uploaded_by: str
    device_id: str | None = None
    captured_at: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    exif_captured_at: str | None = None
    exif_latitude: float | None = None
    exif_longitude: float | None = None
    filename_hint: str = ""
    created_at: datetime
    thumbnail: bool = False
    lost_at: datetime | None = None
    """When the blob store was found not to hold the file's bytes (missing, or not
    matching the hash); None while they are there. A lost file counts as not stored
    until an upload brings its bytes again."""


class EvidenceRef(msgspec.Struct, kw_only=True):
    """One inspection's completed upload of a file: kept for every (file, inspection),
    the first one winning, so deduplication never loses who uploaded what where."""

    sha256: str
    inspection_id: str
    uploaded_by: str
    device_id: str | None = None
    captured_at: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    filename_hint: str = ""
    created_at: datetime
