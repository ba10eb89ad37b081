"""What the admin pages show (users, devices, reference data, the audit trail), gathered
from the services and the store's reads with names in place of ids: plain dicts and
lists for the templates of :mod:`server.console.admin`."""

from __future__ import annotations

import typing
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import msgspec

from checklists.schema import StageType
from server.console.present import Presenter
from server.routes.reference import PLURALS
from sync.fielddata import FIELD_KINDS
from sync.models import KIND_TYPES, Principal, Role, StoredRecord

if TYPE_CHECKING:
    from server.app import Services
    from server.console.reads import ConsoleReads

__all__ = ["AUDIT_FILTERS", "LINK_FIELDS", "REFERENCE_FIELDS", "AdminReads", "record_name"]

ROLES = tuple(r.value for r in Role)
AUDIT_PAGE = 50
AUDIT_FILTERS = ("kind", "record", "inspection", "user", "from", "to")
AUDIT_KINDS = (*KIND_TYPES, *FIELD_KINDS, "user", "device", "evidence")
REFERENCE_PAGE = 100
LINK_FIELDS = ("id", "stage_type", "site_id", "hands_over")

REFERENCE_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "authority": (("name", "text"), ("name_zh", "text"), ("level", "choice"), ("province", "text")),
    "organisation": (("name", "text"), ("kind", "choice"), ("country", "text")),
    "site": (
        ("name", "text"),
        ("organisation_id", "organisation"),
        ("province", "text"),
        ("licence_number", "text"),
        ("address", "text"),
        ("country", "text"),
    ),
    "product": (("name", "text"), ("category", "choice"), ("mah_id", "organisation")),
    "chain": (("name", "text"), ("product_id", "product")),
}
"""The form of each reference kind: its fields in order, each a text, a choice (the
struct's ``Literal`` values) or a reference to a record of the named kind (by name)."""

_BLANK_LINKS = 2
_BATCH = 1000
_SCAN = 20_000
"""Events read for one page of a user or date filter (the API filters neither)."""
_REF_FIELDS = ("authority_id", "organisation_id", "mah_id", "product_id", "site_id")
_LONG = 300
"""Characters of a change shown in the trail (the API's history of the record has all)."""


def record_name(rec: StoredRecord | None, lang: str) -> str:
    """A record's name (or title) in ``lang`` where it has one, else ""."""
    if rec is None:
        return ""
    d = rec.data
    if lang == "zh" and d.get("name_zh"):
        return str(d["name_zh"])
    for key in ("name", "title", "title_en" if lang == "en" else "title_zh", "title_en"):
        if d.get(key):
            return str(d[key])
    return ""


class AdminReads:
    def __init__(self, services: Services, reads: ConsoleReads) -> None:
        self.s = services
        self.store = services.store
        self.reads = reads

    # --- names -------------------------------------------------------------------

    async def names_of(self, kind: str, lang: str) -> list[tuple[str, str]]:
        """(id, name) of every record of a reference kind, by name."""
        rows = await self.store.list_records(kind, [], limit=10_000, offset=0)
        return sorted(((r.id, record_name(r, lang) or r.id) for r in rows), key=lambda kv: kv[1])

    async def last_seen(self, p: Presenter) -> dict[str, str]:
        """User id -> the last time one of their tablets was heard from (sign-in,
        pull or push): what the server knows of a user's last activity."""
        latest: dict[str, str] = {}
        for d in await self.store.list_devices():
            if d.last_seen_at is not None:
                latest[d.user_id] = max(latest.get(d.user_id, ""), d.last_seen_at.isoformat())
        for s in await self.s.engine.device_states():
            for key in ("last_pull_at", "last_push_at"):
                if s.get(key):
                    latest[s["user_id"]] = max(latest.get(s["user_id"], ""), s[key])
        return {u: p.when(at) for u, at in latest.items()}

    # --- users and devices ---------------------------------------------------------

    async def users(self, p: Presenter) -> dict[str, Any]:
        authorities = await self.names_of("authority", p.t.lang)
        by_id = dict(authorities)
        seen = await self.last_seen(p)
        return {
            "users": [
                {
                    "id": u.id,
                    "username": u.username,
                    "display_name": u.display_name,
                    "role": p.t(f"role_{u.role.value}"),
                    "authority": by_id.get(u.authority_id, u.authority_id),
                    "disabled": u.disabled,
                    "last_seen": seen.get(u.id, ""),
                }
                for u in await self.store.list_users()
            ],
            "roles": [(r, p.t(f"role_{r}")) for r in ROLES],
            "authorities": authorities,
        }

    async def user(self, principal: Principal, user_id: str, p: Presenter) -> dict[str, Any]:
        user = await self.s.accounts.find(user_id)
        authorities = await self.names_of("authority", p.t.lang)
        return {
            "u": {
                "id": user.id,
                "username": user.username,
                "display_name": user.display_name,
                "role": user.role.value,
                "role_name": p.t(f"role_{user.role.value}"),
                "authority_id": user.authority_id,
                "authority": dict(authorities).get(user.authority_id, user.authority_id),
                "disabled": user.disabled,
                "created": p.when(user.created_at),
                "last_seen": (await self.last_seen(p)).get(user.id, ""),
                "is_me": principal.user_id == user.id,
            },
            "devices": [
                {"id": d.id, "name": d.name, "revoked": d.revoked_at is not None}
                for d in await self.store.list_devices(user.id)
            ],
            "roles": [(r, p.t(f"role_{r}")) for r in ROLES],
            "authorities": authorities,
        }

    async def devices(self, p: Presenter) -> list[dict[str, Any]]:
        """Every device with its user's name and its sync state, revoked ones last."""
        names = await self.reads.user_names()
        states = {s["device_id"]: s for s in await self.s.engine.device_states()}
        rows = []
        for d in await self.store.list_devices():
            s = states.get(d.id, {})
            skew = s.get("clock_skew_ms")
            rows.append(
                {
                    "id": d.id,
                    "name": d.name,
                    "user": names.get(d.user_id, d.user_id),
                    "user_id": d.user_id,
                    "platform": d.platform,
                    "app_version": s.get("app_version") or d.app_version,
                    "registered": p.when(d.registered_at),
                    "last_seen": p.when(d.last_seen_at),
                    "last_pull": p.when(s.get("last_pull_at")),
                    "last_push": p.when(s.get("last_push_at")),
                    "skew": p.t("adm_skew_s", s=f"{skew / 1000:+.1f}")
                    if skew is not None and s.get("last_push_at")
                    else "",
                    "skew_flagged": bool(s.get("skew_flagged")),
                    "revoked": p.when(d.revoked_at) if d.revoked_at else "",
                }
            )
        rows.sort(key=lambda r: (bool(r["revoked"]), r["user"], r["name"]))
        return rows

    # --- reference data ------------------------------------------------------------

    async def reference_form(
        self, kind: str, p: Presenter, values: dict[str, str], links: list[dict[str, str]]
    ) -> dict[str, Any]:
        """What the form of a record of ``kind`` shows: each field with its label,
        input, options (names, not ids) and value; a chain's link rows."""
        fields = []
        for name, how in REFERENCE_FIELDS[kind]:
            options: list[tuple[str, str]] = []
            if how == "choice":
                options = [(v, p.t(f"rv_{v}")) for v in _choices(kind, name)]
            elif how != "text":
                options = await self.names_of(how, p.t.lang)
            fields.append(
                {
                    "name": name,
                    "label": p.t(f"rf_{name}"),
                    "how": how,
                    "options": options,
                    "value": values.get(name, ""),
                }
            )
        out: dict[str, Any] = {"fields": fields}
        if kind == "chain":
            stages = await self.reads.stage_titles(p.t.lang)
            out["stages"] = [(s.value, stages.get(s.value, s.value)) for s in StageType]
            out["sites"] = await self.names_of("site", p.t.lang)
            out["links"] = [*links, *({} for _ in range(_BLANK_LINKS))]
        return out

    async def reference_list(
        self, principal: Principal, kind: str, n: int, p: Presenter
    ) -> dict[str, Any]:
        """Page ``n`` of a kind's records (as the API lists them), by name with their
        main facts."""
        records, total = await self.s.registry.list_reference(
            principal, kind, limit=REFERENCE_PAGE, offset=(n - 1) * REFERENCE_PAGE
        )
        names: dict[str, str] = {}
        for other in ("organisation", "product"):
            names |= dict(await self.names_of(other, p.t.lang))
        return {
            "kinds": [(k, p.t(f"rks_{k}")) for k in PLURALS],
            "rows": [
                {
                    "id": r.id,
                    "name": record_name(r, p.t.lang) or r.id,
                    "summary": _summary(kind, r, p, names),
                }
                for r in records
            ],
            "total": total,
            "prev_url": f"?kind={kind}&page={n - 1}" if n > 1 else None,
            "next_url": f"?kind={kind}&page={n + 1}" if n * REFERENCE_PAGE < total else None,
        }

    async def record(
        self, principal: Principal, kind: str, record_id: str, p: Presenter
    ) -> tuple[dict[str, Any], dict[str, str], list[dict[str, str]]]:
        """A record (id, rev, name) and its values and links as the form shows them."""
        rec = await self.s.registry.get_reference(principal, kind, record_id)
        values = {k: "" if v is None else str(v) for k, v in rec.data.items() if k != "links"}
        links = [{k: str(x.get(k) or "") for k in LINK_FIELDS} for x in rec.data.get("links", [])]
        head = {"id": rec.id, "rev": str(rec.rev), "name": record_name(rec, p.t.lang) or rec.id}
        return head, values, links

    # --- the audit trail -------------------------------------------------------------

    async def audit_rows(
        self, chosen: dict[str, str], after: int, p: Presenter
    ) -> tuple[list[dict[str, Any]], int, bool]:
        """A page of events after ``after``: those the store filters (kind, record,
        inspection, as the API), and of those, when a user or dates are chosen, the ones
        by that user and received on those days (in the reader's zone), reading on in
        batches, at most ``_SCAN`` events. Returns the rows, the id to go on from, and
        whether there may be more."""
        where = {
            "kind": chosen.get("kind"),
            "record_id": chosen.get("record"),
            "inspection_id": chosen.get("inspection"),
        }
        who = chosen.get("user")
        start, end = _day(chosen.get("from"), p), _day(chosen.get("to"), p, 1)
        if not (who or start or end):
            rows = await self.store.audit_events(**where, after_id=after, limit=AUDIT_PAGE)
            return rows, rows[-1]["id"] if rows else after, len(rows) == AUDIT_PAGE
        rows = []
        cursor, read = after, 0
        while read < _SCAN:
            batch = await self.store.audit_events(**where, after_id=cursor, limit=_BATCH)
            for e in batch:
                cursor, read = e["id"], read + 1
                at = _received(e)
                if (
                    (not who or e.get("user_id") == who)
                    and (start is None or (at is not None and at >= start))
                    and (end is None or (at is not None and at < end))
                ):
                    rows.append(e)
                    if len(rows) == AUDIT_PAGE:
                        return rows, cursor, True
            if len(batch) < _BATCH:
                return rows, cursor, False
        return rows, cursor, True

    async def audit(
        self, principal: Principal, chosen: dict[str, str], after: int, p: Presenter
    ) -> dict[str, Any]:
        """A page of the trail in plain words, its filters' options and its links."""
        rows, cursor, more = await self.audit_rows(chosen, after, p)
        users = {**await self.reads.user_names(), "system": p.t("adm_system")}
        devices = await self.reads.device_names()
        names: dict[str, str] = dict(users)
        for kind in PLURALS:
            names |= dict(await self.names_of(kind, p.t.lang))
        stages = await self.reads.stage_titles(p.t.lang)
        refs = sorted(
            {
                (e["kind"], e["record_id"])
                for e in rows
                if e["kind"] in KIND_TYPES or e["kind"] in FIELD_KINDS
            }
        )
        inspections, _ = await self.s.registry.list_inspections(
            principal, [], limit=10_000, offset=0
        )
        titles = {i.id: str(i.data.get("title") or i.id) for i in inspections}
        found = await self.store.read_batch(lambda tx: tx.get_records(refs)) if refs else {}
        events = []
        for e in rows:
            kind, rid = e["kind"], e["record_id"]
            entity = (
                users.get(rid)
                if kind == "user"
                else devices.get(rid)
                if kind == "device"
                else record_name(found.get((kind, rid)), p.t.lang)
            ) or rid
            said = self.reads._event(_plain(e, p, names, stages), users, devices, p, titles)
            for change in said["changes"]:  # a checklist's whole content is no line
                if len(change["text"]) > _LONG:
                    change["text"] = change["text"][:_LONG] + "…"
            events.append(
                {
                    "id": e["id"],
                    "kind": p.t(f"ak_{kind}") if f"ak_{kind}" in p.t.catalogue else kind,
                    "entity": entity,
                    "history_url": "/console/admin/audit?"
                    + urlencode({"kind": e["kind"], "record": e["record_id"]}),
                    "inspection": titles.get(e.get("inspection_id") or "", ""),
                    **said,
                }
            )
        head = await self.store.audit_head()

        def url(**extra: str) -> str:
            return "/console/admin/audit?" + urlencode({**chosen, **extra})

        return {
            "events": events,
            "kinds": [(k, p.t(f"ak_{k}")) for k in AUDIT_KINDS],
            "inspections": sorted(titles.items(), key=lambda kv: kv[1]),
            "users": sorted(users.items(), key=lambda kv: kv[1]),
            "first_url": url() if after else None,
            "next_url": url(after=str(cursor)) if more else None,
            "searched_to": cursor if more and len(rows) < AUDIT_PAGE else None,
            "newest_url": (
                url(after=str(max(0, head[0] - AUDIT_PAGE)))
                if head and not chosen and head[0] > after + AUDIT_PAGE
                else None
            ),
            "total": head[0] if head else 0,
        }


def _choices(kind: str, field: str) -> tuple[str, ...]:
    """The values a ``Literal`` field of a reference kind takes."""
    hint = typing.get_type_hints(KIND_TYPES[kind])[field]
    return tuple(str(v) for v in typing.get_args(hint))


def _summary(kind: str, rec: StoredRecord, p: Presenter, names: dict[str, str]) -> str:
    """A record's main facts in one line, beside its name in the list."""
    d = rec.data
    parts: list[str] = []
    if kind == "authority":
        parts = [p.t(f"rv_{d['level']}"), d.get("province") or ""]
    elif kind == "organisation":
        parts = [p.t(f"rv_{d['kind']}"), d.get("country", "")]
    elif kind == "site":
        parts = [names.get(d["organisation_id"], ""), d["province"], d["licence_number"]]
    elif kind == "product":
        parts = [p.t(f"rv_{d['category']}"), names.get(d["mah_id"], "")]
    elif kind == "chain":
        parts = [names.get(d["product_id"], ""), p.t("adm_links_n", n=len(d["links"]))]
    return " · ".join(x for x in parts if x)


def _plain(
    e: dict[str, Any], p: Presenter, names: dict[str, str], stages: dict[str, str]
) -> dict[str, Any]:
    """An audit event with its values in words: who created, published or raised
    something by name, times in the reader's zone; for users, devices and reference
    records also roles, levels, kinds and categories by their words, referenced
    records by name (authority, organisation, holder, product, site), a chain's links
    as stage at site."""
    everything = e.get("kind") in ("user", "device", *PLURALS)

    def words(text: Any) -> Any:
        try:
            values = msgspec.json.decode(text) if isinstance(text, str) and text else None
        except msgspec.DecodeError:
            return text
        if not isinstance(values, dict):
            return text
        for key, value in values.items():
            if not isinstance(value, str):
                continue
            if key.endswith("_by"):  # who created, published, raised it
                values[key] = names.get(value, value)
            elif key.endswith("_at"):
                values[key] = p.when(value)
            elif not everything:
                continue
            elif key == "role" and value in ROLES:
                values[key] = p.t(f"role_{value}")
            elif key in _REF_FIELDS:
                values[key] = names.get(value, value)
            elif key in ("level", "kind", "category") and f"rv_{value}" in p.t.catalogue:
                values[key] = p.t(f"rv_{value}")
        if everything and isinstance(values.get("links"), list):
            values["links"] = [
                p.t(
                    "adm_link_at",
                    stage=stages.get(str(x.get("stage_type")), str(x.get("stage_type"))),
                    site=names.get(str(x.get("site_id")), str(x.get("site_id"))),
                )
                for x in values["links"]
                if isinstance(x, dict)
            ]
        return values

    return {**e, "old": words(e.get("old")), "new": words(e.get("new"))}


def _day(value: str | None, p: Presenter, plus: int = 0) -> datetime | None:
    """The start of that day (``plus`` days later) in the reader's zone, or None."""
    try:
        d = date.fromisoformat(value) if value else None
    except ValueError:
        return None
    if d is None:
        return None
    return datetime.combine(d + timedelta(days=plus), time(), tzinfo=p.tz)


def _received(e: dict[str, Any]) -> datetime | None:
    try:
        at = datetime.fromisoformat(str(e.get("received_at") or ""))
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)
