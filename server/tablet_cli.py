"""``inspectsync tablet ...``: act as an inspector's tablet from a terminal.

The commands drive the reference client (:class:`sync.client.Tablet`) over
:class:`sync.client.HttpTransport` against a running server. The tablet's state lives
in one directory (``--state``, else ``INSPECTSYNC_TABLET_DIR``, else ``./tablet``):

- ``tablet.db``: the Tablet's SQLite file (records as last pulled, the outbox of
  pending edits, the pull cursor, conflict and rejection results);
- ``tablet.json`` (mode 0600): server URL, username, the account's own name (the one its
  signatures print), device id and the access and refresh tokens. Tokens the transport
  refreshes are written back at once.

Only ``login``, ``logout`` and ``sync`` talk to the server. Every other command works
offline on the local state: edits wait in the outbox until the next ``sync``.

Exit codes: 0 ok, 1 a usage or local error, 2 the server could not be reached or is
too busy (``sync`` retries a 503 or 429 after its ``Retry-After`` first; the outbox is
kept), 3 the server revoked this device (local data was wiped).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import platform
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec

from checklists.schema import Template
from sync.client import DeviceRevoked, HttpTransport, Tablet, TransportError
from sync.errors import DomainError
from sync.fielddata import (
    CLASSIFICATION_LABELS,
    answers_by_link,
    parse_response_id,
    required_items,
    response_id,
    unanswered_required,
    validate,
)
from sync.protocol import PullRequest, PullResponse, PushRequest, PushResponse
from sync.reauth import REAUTH_METHOD, attempt, is_locked, make_verifier
from sync.signatures import SIGNED_FIELDS, content_hash, in_scope

__all__ = ["add_tablet_parser"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_OFFLINE = 2
EXIT_REVOKED = 3

CONFIG_FILE = "tablet.json"
DB_FILE = "tablet.db"


# --- local state ------------------------------------------------------------------------


class _State:
    """The tablet directory: ``tablet.json`` (who, where, tokens) and ``tablet.db``."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.config_path = directory / CONFIG_FILE
        self.db_path = directory / DB_FILE

    def load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.config_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise DomainError(f"cannot read {self.config_path}: {exc}") from exc
        if not isinstance(data, dict):
            raise DomainError(f"{self.config_path} is not a tablet state file")
        return data

    def save(self, config: dict[str, Any]) -> None:
        """Write atomically, readable by the owner only (it holds tokens)."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".tablet-", suffix=".json", dir=self.dir)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(config, f, indent=2, sort_keys=True)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.config_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        os.chmod(self.config_path, 0o600)

    def require(self) -> dict[str, Any]:
        """The config of a tablet that has logged in at least once."""
        config = self.load()
        if not config.get("device_id"):
            raise DomainError(
                f"no tablet in {self.dir}: run `inspectsync tablet login --server URL"
                " --username NAME` first (or pass --state DIR)"
            )
        return config


def _state(args: argparse.Namespace) -> _State:
    chosen = (
        getattr(args, "state", None)
        or getattr(args, "tablet_state", None)
        or os.environ.get("INSPECTSYNC_TABLET_DIR")
        or "tablet"
    )
    return _State(Path(chosen))


class _Offline:
    """The transport of offline commands: any network use is a bug, and says so."""

    async def pull(self, request: PullRequest) -> PullResponse:
        raise TransportError("this command works offline")

    async def push(self, request: PushRequest) -> PushResponse:
        raise TransportError("this command works offline")


class _Local:
    """A Tablet opened on the local state for one offline command."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.state = _state(args)
        self.config = self.state.require()
        self.tablet = Tablet(self.state.db_path, _Offline(), device_id=self.config["device_id"])

    def __enter__(self) -> _Local:
        return self

    def __exit__(self, *exc: object) -> None:
        self.tablet.db.close()


# --- formatting -------------------------------------------------------------------------


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _text(text: Any, lang: str) -> str:
    """A bilingual text in the chosen language, the other one marked as a fallback."""
    if isinstance(text, str):
        return text
    if not isinstance(text, dict):
        return ""
    if text.get(lang):
        return str(text[lang])
    other = "zh" if lang == "en" else "en"
    return f"[{other}] {text[other]}" if text.get(other) else ""


def _parse_value(raw: str) -> Any:
    """JSON if it parses (numbers, lists, null, quoted strings), else the text itself."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _classification(value: Any) -> str:
    labels = CLASSIFICATION_LABELS.get(value) if isinstance(value, str) else None
    if labels is None:
        return _show(value)
    return f"{value} (PIC/S {labels['pics']}; NMPA {labels['nmpa']} {labels['nmpa_zh']})"


def _pending_ids(tablet: Tablet) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for p in tablet.pending():
        key = (p["kind"], p["id"])
        out[key] = out.get(key, 0) + 1
    return out


def _kept_value(v: dict[str, Any], device_id: str | None = None) -> str:
    """A kept conflict value with who and which device; ``device_id`` marks this
    tablet's own values (left out where every tablet must print the same)."""
    mine = "  (this device)" if device_id and v.get("device") == device_id else ""
    when = f" at {v['device_time']}" if v.get("device_time") else ""
    return (
        f"{_show(v.get('value'))}  by {v.get('by') or '?'} on device"
        f" {v.get('device') or '?'}{when}{mine}"
    )


def _print_conflict_record(cid: str, c: dict[str, Any], indent: str = "") -> None:
    """A conflict record as the server keeps it: the same text on every tablet."""
    flag = ", flagged: a supervisor must decide" if c.get("flagged") else ""
    print(
        f"{indent}conflict {cid}: {c.get('record_kind')} {c.get('record_id')}"
        f" field {c.get('field')} ({c.get('status')}, policy {c.get('policy')}{flag})"
    )
    print(f"{indent}  inspection: {c.get('inspection_id')}   opened: {c.get('opened_at')}")
    print(f"{indent}  record holds: {_show(c.get('winner'))}")
    for v in c.get("values") or []:
        print(f"{indent}  kept value: {_kept_value(v)}")
    if c.get("resolution"):
        print(f"{indent}  resolution: {_show(c['resolution'])}")


# --- login / logout ---------------------------------------------------------------------


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    env = os.environ.get("INSPECTSYNC_PASSWORD")
    if env:
        return env
    if not sys.stdin.isatty():
        raise DomainError("no password: use --password-stdin or INSPECTSYNC_PASSWORD")
    return getpass.getpass("Password: ")


def _problem(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return f"{r.status_code} {r.text[:200]}"
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or body)
    return str(body)


def cmd_login(args: argparse.Namespace) -> int:
    state = _state(args)
    config = state.load()
    server = (args.server or config.get("server") or "").rstrip("/")
    username = args.username or config.get("username")
    if not server or not username:
        raise DomainError("give --server URL and --username NAME for the first login")
    if config.get("device_id") and (
        config.get("username") != username or config.get("server") != server
    ):
        raise DomainError(
            f"{state.dir} is the tablet of {config.get('username')} on {config.get('server')};"
            " its local data cannot be mixed with another user or server: use another --state"
        )
    password = _password(args)
    reuse = config.get("device_id")
    device: dict[str, Any] = (
        {"id": reuse, "app_version": "inspectsync-cli"}
        if reuse
        else {
            "name": args.device_name or f"inspectsync tablet on {platform.node() or 'terminal'}",
            "platform": "cli",
            "app_version": "inspectsync-cli",
        }
    )
    try:
        r = httpx.post(
            f"{server}/api/v1/auth/login",
            json={"username": username, "password": password, "device": device},
            timeout=args.timeout,
        )
    except httpx.HTTPError as exc:
        print(f"inspectsync: cannot reach {server}: {exc}", file=sys.stderr)
        return EXIT_OFFLINE
    if r.status_code == 429 or r.status_code >= 500:  # busy or failing: not refused
        wait = r.headers.get("Retry-After")
        print(
            f"inspectsync: {server} cannot log you in now ({r.status_code}): {_problem(r)}"
            + (f"; try again in {wait} s" if wait else "; try again later"),
            file=sys.stderr,
        )
        return EXIT_OFFLINE
    if r.status_code != 200:
        print(f"inspectsync: login refused ({r.status_code}): {_problem(r)}", file=sys.stderr)
        if reuse and r.status_code in (401, 422):
            print(
                f"  (this tablet reuses device {reuse}; if the server no longer knows it,"
                " use a new --state directory)",
                file=sys.stderr,
            )
        return EXIT_ERROR
    tokens = r.json()
    config.update(
        server=server,
        username=username,
        display_name=tokens.get("display_name")
        or _me(server, tokens["access_token"], args.timeout).get("display_name")
        or username,
        user_id=tokens.get("user_id"),
        role=tokens.get("role"),
        device_id=tokens["device_id"],
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
        logged_in_at=datetime.now(UTC).isoformat(),
        # the server has just accepted the password: keep a verifier of it (never the
        # password) to re-authenticate the signer at sign-off, offline; unlocks signing
        signing_verifier=make_verifier(username, password),
    )
    state.save(config)
    how = "reused" if reuse else "registered"
    print(f"logged in to {server} as {username} ({tokens.get('role')})")
    print(f"device {tokens['device_id']} ({how}); state in {state.dir}")
    print("run `inspectsync tablet sync` to fetch your inspections")
    return EXIT_OK


def _me(server: str, access_token: str, timeout: float) -> dict[str, Any]:
    """``GET /api/v1/auth/me``: who the login is, for a server whose login answer does
    not name the account yet (empty if it cannot say)."""
    try:
        r = httpx.get(
            f"{server}/api/v1/auth/me",
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=timeout,
        )
        body = r.json() if r.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def _account_name(config: dict[str, Any]) -> str:
    """The name this tablet's signatures print: the account's own (from the login),
    never typed at signing; the server writes it from the account in any case."""
    return str(config.get("display_name") or config.get("username") or "")


def cmd_logout(args: argparse.Namespace) -> int:
    state = _state(args)
    config = state.require()
    refresh = config.pop("refresh_token", None)
    config.pop("access_token", None)
    config.pop("signing_verifier", None)
    state.save(config)
    if refresh:
        try:
            httpx.post(
                f"{config['server']}/api/v1/auth/logout",
                json={"refresh_token": refresh},
                timeout=args.timeout,
            )
        except httpx.HTTPError as exc:
            print(f"note: could not tell the server ({exc}); tokens forgotten locally")
    print(f"logged out; local data and pending edits are kept in {state.dir}")
    return EXIT_OK


# --- sync -------------------------------------------------------------------------------


def _print_result(r: dict[str, Any], sent: dict[str, Any] | None, device_id: str) -> None:
    d = r["detail"]
    if r["status"] == "rejected":
        where = f", field {d['field']}" if d.get("field") else ""
        print(f"REJECTED {r['kind']} {r['id']} ({d.get('code')}{where}): {d.get('message')}")
        if sent is not None:
            print(f"  you sent: {_show(sent)}")
        print(f"  kept in quarantine {d.get('quarantine_id')}; fix it and answer again")
        return
    print(f"CONFLICT {r['kind']} {r['id']} (now rev {d.get('rev')})")
    if sent is not None:
        print(f"  you sent: {_show(sent)}")
    for c in d.get("conflicts") or []:
        flag = "  [flagged: never auto-resolved]" if c.get("flagged") else ""
        print(f"  field {c['field']}: conflict {c['conflict_id']}{flag}")
        print(f"    record holds: {_show(c.get('winner'))}")
        for v in c.get("values") or []:
            print(f"    kept value:   {_kept_value(v, device_id)}")


def cmd_sync(args: argparse.Namespace) -> int:
    state = _state(args)
    config = state.require()
    if not config.get("access_token"):
        raise DomainError("not logged in: run `inspectsync tablet login` first")

    def on_tokens(tokens: dict[str, Any]) -> None:
        config["access_token"] = tokens["access_token"]
        config["refresh_token"] = tokens["refresh_token"]
        state.save(config)

    async def go() -> int:
        transport = HttpTransport(
            config["server"],
            access_token=config["access_token"],
            refresh_token=config.get("refresh_token"),
            timeout=args.timeout,
            on_tokens=on_tokens,
        )
        tablet = Tablet(
            state.db_path, transport, device_id=config["device_id"], retries=args.retries
        )
        try:
            return await _sync(tablet)
        finally:
            await transport.close()
            tablet.db.close()

    async def _sync(tablet: Tablet) -> int:
        seen = {r["mid"] for r in tablet.results()}
        sent = {p["mid"]: json.loads(p["fields"]) for p in tablet.pending()}
        failure: tuple[int, str] | None = None
        counts: dict[str, int] | None = None
        try:
            counts = await tablet.sync()
        except DeviceRevoked:
            for key in ("device_id", "access_token", "refresh_token"):
                config.pop(key, None)
            state.save(config)
            print(
                f"this device was revoked by the server: local data wiped"
                f" ({len(sent)} unsynced change(s) discarded). Log in again to register"
                " a new device.",
                file=sys.stderr,
            )
            return EXIT_REVOKED
        except (TransportError, httpx.TransportError) as exc:
            failure = (
                EXIT_OFFLINE,
                f"cannot sync with {config['server']}: {exc or type(exc).__name__};"
                f" {len(tablet.pending())} change(s) kept in the outbox, run"
                " `inspectsync tablet sync` again later",
            )
        except (RuntimeError, msgspec.DecodeError) as exc:
            hint = (
                "; run `inspectsync tablet login` again"
                if "not authenticated" in str(exc) or " 401 " in str(exc)
                else ""
            )
            failure = (EXIT_ERROR, f"sync failed: {exc}{hint}")
        fresh = [r for r in tablet.results() if r["mid"] not in seen]
        if counts is not None:
            print(
                f"pulled {counts['pulled']}, pushed {counts['pushed']},"
                f" pending {counts['pending']}, files uploaded {counts['uploaded']}"
            )
        for r in fresh:
            _print_result(r, sent.get(r["mid"]), tablet.device_id)
        if fresh:
            c = sum(1 for r in fresh if r["status"] == "conflict")
            print(f"{c} conflict(s), {len(fresh) - c} rejection(s) in this sync")
        if counts is not None:
            held = tablet.status()["open_conflict_records"]
            if held:
                print(f"{held} open conflict(s) on this tablet: see `inspectsync tablet conflicts`")
        if failure is not None:
            print(f"inspectsync: {failure[1]}", file=sys.stderr)
            return failure[0]
        return EXIT_OK

    return asyncio.run(go())


# --- inspections and checklists ---------------------------------------------------------


def _inspection(tablet: Tablet, iid: str) -> dict[str, Any]:
    insp = tablet.view("inspection", iid)
    if insp is None:
        held = ", ".join(tablet.records("inspection")) or "none"
        raise DomainError(f"inspection {iid!r} is not on this tablet (held: {held})")
    return insp


def cmd_inspections(args: argparse.Namespace) -> int:
    with _Local(args) as local:
        t = local.tablet
        inspections = t.records("inspection")
        if not inspections:
            print("no inspections on this tablet: run `inspectsync tablet sync`")
            return EXIT_OK
        chains = t.records("chain")
        roles = {
            a.get("inspection_id"): a.get("role")
            for a in t.records("assignment").values()
            if a.get("user_id") == local.config.get("user_id")
        }
        responses = t.records("response")
        findings = t.records("finding")
        conflicts = t.records("conflict")
        for iid, d in inspections.items():
            site = t.view("site", d.get("site_id", "")) or {}
            stages = {
                link["id"]: link.get("stage_type")
                for link in (chains.get(d.get("chain_id", "")) or {}).get("links", [])
            }
            pins = d.get("pins") or {}
            print(f"{iid}  [{d.get('status')}]  {d.get('type')}")
            print(f"  title:  {d.get('title')}")
            where = ", ".join(x for x in (site.get("province"), site.get("address")) if x)
            print(f"  site:   {site.get('name', '?')} ({d.get('site_id')}){'; ' + where}")
            print(f"  dates:  {d.get('planned_start')} .. {d.get('planned_end')}")
            if iid in roles:
                print(f"  you:    {roles[iid]}")
            print("  links:")
            for link in d.get("link_ids") or []:
                pinned = pins.get(link)
                version = f"pinned {pinned}" if pinned else "not pinned yet (not started)"
                print(f"    {link:<14} {stages.get(link) or '?':<22} {version}")
            n_resp = sum(1 for r in responses if r.startswith(f"{iid}~"))
            n_find = sum(1 for f in findings.values() if f.get("inspection_id") == iid)
            n_conf = sum(
                1
                for c in conflicts.values()
                if c.get("inspection_id") == iid and c.get("status") == "open"
            )
            print(f"  local:  {n_resp} answer(s), {n_find} finding(s), {n_conf} open conflict(s)")
    return EXIT_OK


def _limits(item: dict[str, Any], lang: str) -> str:
    kind = item.get("answer", "?")
    parts = [kind]
    if kind == "yes_no_na":
        parts.append("yes|no|na")
    if item.get("options"):
        parts.append(
            "options: "
            + ", ".join(f"{o['value']} ({_text(o.get('label'), lang)})" for o in item["options"])
        )
    if kind == "number":
        lo = item.get("min")
        hi = item.get("max")
        unit = f" {item['unit']}" if item.get("unit") else ""
        if lo is not None and hi is not None:
            parts.append(f"{lo}..{hi}{unit}")
        elif lo is not None:
            parts.append(f">= {lo}{unit}")
        elif hi is not None:
            parts.append(f"<= {hi}{unit}")
        elif unit:
            parts.append(unit.strip())
    parts.append("required" if item.get("required", True) else "optional")
    rule = item.get("evidence")
    if rule:
        parts.append(f"{rule['require']} needed when {'/'.join(rule['when_answer_in'])}")
    show_if = item.get("show_if")
    if show_if:
        parts.append(f"shown if {show_if['item']} in {'/'.join(show_if['answer_in'])}")
    return "; ".join(parts)


def _checklist_content(tablet: Tablet, version_id: str) -> dict[str, Any] | None:
    rec = tablet.view("checklist_version", version_id)
    content = (rec or {}).get("content")
    return content if isinstance(content, dict) else None


def cmd_checklist(args: argparse.Namespace) -> int:
    lang = args.lang
    with _Local(args) as local:
        t = local.tablet
        insp = _inspection(t, args.inspection)
        links = list(insp.get("link_ids") or [])
        if args.link:
            if args.link not in links:
                raise DomainError(
                    f"link {args.link!r} is not covered by {args.inspection}: {', '.join(links)}"
                )
            links = [args.link]
        pins = insp.get("pins") or {}
        pending = _pending_ids(t)
        answers: dict[tuple[str, str], list[tuple[int, str, dict[str, Any]]]] = {}
        for rid, data in t.records("response").items():
            key = parse_response_id(rid)
            if key is not None and key.inspection_id == args.inspection:
                answers.setdefault((key.link_id, key.item_key), []).append((key.repeat, rid, data))
        for link in links:
            version = pins.get(link)
            if not version:
                print(f"{args.inspection} / {link}: no checklist pinned yet (not started)")
                continue
            content = _checklist_content(t, version)
            if content is None:
                print(f"{args.inspection} / {link}: checklist {version} is not on this tablet")
                continue
            print(f"{args.inspection} / {link}: {_text(content.get('title'), lang)} ({version})")
            for section in content.get("sections") or []:
                repeat = ""
                if section.get("repeatable"):
                    label = _text(section.get("repeat_label"), lang) or "repeat"
                    repeat = f"  [repeats per {label}: --repeat N]"
                print(f"\n  {section['key']}: {_text(section.get('title'), lang)}{repeat}")
                for item in section.get("items") or []:
                    print(f"    {item['key']}  [{_limits(item, lang)}]")
                    print(f"      {_text(item.get('prompt'), lang)}")
                    if args.guidance and item.get("guidance"):
                        print(f"      guidance: {_text(item['guidance'], lang)}")
                    if args.guidance:
                        refs = "; ".join(
                            f"{r['document']} {r['section']}" for r in item.get("references", [])
                        )
                        print(f"      references: {refs}")
                    got = sorted(answers.get((link, item["key"]), []), key=lambda a: a[0])
                    if not got:
                        print("      answer: -")
                    for n, rid, data in got:
                        where = f" #{n}" if section.get("repeatable") or n else ""
                        note = f"  note: {data['note']}" if data.get("note") else ""
                        mark = "  (pending sync)" if ("response", rid) in pending else ""
                        print(f"      answer{where}: {_show(data.get('value'))}{note}{mark}")
            print()
    return EXIT_OK


def _local_problem(
    t: Tablet, insp: dict[str, Any] | None, kind: str, rid: str, data: dict[str, Any]
) -> str | None:
    """What the server will probably say about this edit, from the local copy of the
    pinned checklists; None when it looks valid or cannot be checked here."""
    if insp is None:
        return "this inspection is not on this tablet (sync first?)"
    pins = _local_pins(t, insp)
    if pins is None:
        return None
    reason = validate(kind, rid, data, pins)
    return reason.message if reason else None


def _local_pins(t: Tablet, insp: dict[str, Any]) -> dict[str, Template] | None:
    """The inspection's pinned checklists as this tablet holds them (None if one is
    missing or unreadable)."""
    pins: dict[str, Template] = {}
    for link, version in (insp.get("pins") or {}).items():
        content = _checklist_content(t, version)
        if content is None:
            return None
        try:
            pins[link] = msgspec.convert(content, Template)
        except msgspec.ValidationError:
            return None
    return pins


def cmd_answer(args: argparse.Namespace) -> int:
    value = _parse_value(args.value)
    with _Local(args) as local:
        t = local.tablet
        rid = response_id(args.inspection, args.link, args.item, args.repeat)
        fields: dict[str, Any] = {"value": value}
        if args.note is not None:
            fields["note"] = args.note
        insp = t.view("inspection", args.inspection)
        problem = _local_problem(
            t, insp, "response", rid, {**(t.view("response", rid) or {}), **fields}
        )
        mid = t.edit("response", rid, fields, reason=args.reason)
        print(f"answer recorded offline: {rid} = {_show(value)}  (mutation {mid})")
        print(f"{len(t.pending())} change(s) pending sync")
        if problem:
            print(
                f"warning: the server will probably reject this: {problem}"
                " (kept in the outbox; `tablet sync` reports the result)",
                file=sys.stderr,
            )
    return EXIT_OK


# --- findings ---------------------------------------------------------------------------


def _linked_items(values: list[str] | None) -> list[str]:
    items = []
    for v in values or []:
        link, sep, item = v.partition(":")
        if not sep or not link or not item:
            raise DomainError(f"--item {v!r}: use LINK:ITEM, e.g. l2-cellbank:cb_history")
        items.append(v)
    return items


def _photos(t: Tablet, inspection_id: str, paths: list[str] | None) -> list[str]:
    """Keep each file on the tablet as evidence of the inspection; their SHA-256s. The
    files upload on a later sync, after the record that names them."""
    hashes = []
    for raw in paths or []:
        path = Path(raw)
        if not path.is_file():
            raise DomainError(f"--photo {raw!r}: no such file")
        hashes.append(t.attach(path, inspection_id))
    return hashes


def cmd_finding_add(args: argparse.Namespace) -> int:
    with _Local(args) as local:
        t = local.tablet
        insp = t.view("inspection", args.inspection)
        fields: dict[str, Any] = {"inspection_id": args.inspection, "title": args.title}
        if args.classification:
            fields["classification"] = args.classification
        if args.evidence is not None:
            fields["objective_evidence"] = args.evidence
        items = _linked_items(args.item)
        if items:
            fields["linked_items"] = items
        photos = _photos(t, args.inspection, args.photo)
        if photos:
            fields["evidence_hashes"] = list(dict.fromkeys(photos))
        fid = t.new_id("f")
        problem = _local_problem(t, insp, "finding", fid, {**fields, "status": "draft"})
        t.edit("finding", fid, fields, reason=args.reason)
        print(fid)
        print(
            f"finding recorded offline; {len(t.pending())} change(s) pending sync",
            file=sys.stderr,
        )
        if problem:
            print(f"warning: the server will probably reject this: {problem}", file=sys.stderr)
    return EXIT_OK


def cmd_finding_edit(args: argparse.Namespace) -> int:
    with _Local(args) as local:
        t = local.tablet
        current = t.view("finding", args.finding_id)
        if current is None:
            raise DomainError(f"finding {args.finding_id!r} is not on this tablet")
        fields: dict[str, Any] = {}
        if args.title is not None:
            fields["title"] = args.title
        if args.classification is not None:
            fields["classification"] = args.classification
        if args.evidence is not None:
            fields["objective_evidence"] = args.evidence
        if args.status is not None:
            fields["status"] = args.status
        items = _linked_items(args.item)
        if items:
            fields["linked_items"] = [
                *(current.get("linked_items") or []),
                *(i for i in items if i not in (current.get("linked_items") or [])),
            ]
        photos = _photos(t, str(current.get("inspection_id", "")), args.photo)
        if photos:  # a growing set: the server merges it by union with others' photos
            held = list(current.get("evidence_hashes") or [])
            fields["evidence_hashes"] = list(dict.fromkeys([*held, *photos]))
        if not fields:
            raise DomainError(
                "nothing to change: give --title, --classification, --evidence, --status,"
                " --item or --photo"
            )
        insp = t.view("inspection", str(current.get("inspection_id", "")))
        problem = _local_problem(t, insp, "finding", args.finding_id, {**current, **fields})
        mid = t.edit("finding", args.finding_id, fields, reason=args.reason)
        changed = ", ".join(sorted(fields))
        print(f"finding {args.finding_id}: {changed} changed offline (mutation {mid})")
        print(f"{len(t.pending())} change(s) pending sync")
        if problem:
            print(f"warning: the server will probably reject this: {problem}", file=sys.stderr)
    return EXIT_OK


_FINDING_ORDER = (
    "inspection_id",
    "title",
    "classification",
    "status",
    "objective_evidence",
    "linked_items",
    "references",
    "evidence_hashes",
    "comments",
    "open_conflicts",
)


def cmd_finding_show(args: argparse.Namespace) -> int:
    with _Local(args) as local:
        t = local.tablet
        view = t.view("finding", args.finding_id)
        if view is None:
            raise DomainError(f"finding {args.finding_id!r} is not on this tablet")
        copy = t.server_copy("finding", args.finding_id)
        rev = f"rev {copy[0]}" if copy else "not yet on the server"
        print(f"finding {args.finding_id}  ({rev})")
        keys = [k for k in _FINDING_ORDER if k in view]
        keys += sorted(k for k in view if k not in _FINDING_ORDER)
        for k in keys:
            v = view[k]
            shown = _classification(v) if k == "classification" else _show(v)
            print(f"  {k + ':':<20} {shown}")
        if "open_conflicts" not in view:
            print(f"  {'open_conflicts:':<20} []")
        pending = _pending_ids(t).get(("finding", args.finding_id), 0)
        if pending:
            print(f"  ({pending} local edit(s) not yet synced)")
        related = {
            cid: c
            for cid, c in t.records("conflict").items()
            if c.get("record_kind") == "finding" and c.get("record_id") == args.finding_id
        }
        for cid, c in sorted(related.items(), key=lambda kv: (kv[1].get("field", ""), kv[0])):
            _print_conflict_record(cid, c, indent="  ")
    return EXIT_OK


def cmd_finding_list(args: argparse.Namespace) -> int:
    with _Local(args) as local:
        t = local.tablet
        pending = _pending_ids(t)
        found = 0
        for fid, f in t.records("finding").items():
            if args.inspection and f.get("inspection_id") != args.inspection:
                continue
            found += 1
            flags = []
            if f.get("open_conflicts"):
                flags.append("conflicts: " + ",".join(f["open_conflicts"]))
            if ("finding", fid) in pending:
                flags.append("pending sync")
            extra = f"  [{'; '.join(flags)}]" if flags else ""
            print(
                f"{fid}  {f.get('inspection_id')}  {f.get('classification') or '-':<8}"
                f" {f.get('status') or 'draft':<9} {f.get('title')}{extra}"
            )
        if not found:
            print("no findings on this tablet")
    return EXIT_OK


_SIGNOFF_TEXT = {
    "en": {
        "signer": "signed as {name} (your account's name: a signature prints it, it is not typed)",
        "name_ignored": "note: --name is ignored: a signature prints your account's name",
        "wrong": "wrong password: not signed; {left} more wrong password(s) lock signing",
        "locked": "not signed: signing is locked after 5 wrong passwords; log in again"
        " with the network (`inspectsync tablet login`) to sign",
        "missing": "not signed: log in again with the network once (`inspectsync tablet"
        " login`): this tablet does not yet keep the check of your password",
        "no_password": "not signed: signing needs your password typed again: at a"
        " terminal, or with --password-stdin",
        "prompt": "Password (to sign): ",
        "reauth": "password re-entered on this tablet at {at}",
    },
    "zh": {
        "signer": "签名人：{name}（您账户的姓名：签名打印此姓名，不可输入）",
        "name_ignored": "注意：--name 已被忽略：签名打印的是您账户的姓名",
        "wrong": "密码错误，未签署。再错 {left} 次将锁定签署",
        "locked": "未签署：密码错误 5 次，签署已锁定。"
        "请在有网络时重新登录（inspectsync tablet login）后再签署",
        "missing": "未签署：请在有网络时重新登录一次（inspectsync tablet login）："
        "本平板尚未保存您密码的核验信息",
        "no_password": "未签署：签署需要再次输入密码：在终端中输入，或使用 --password-stdin",
        "prompt": "密码（用于签署）：",
        "reauth": "已于 {at} 在本平板上重新输入密码",
    },
}
"""What ``signoff`` says about the printed name, in the language of ``--lang``."""


def _reauthenticate(args: argparse.Namespace, local: _Local, said: dict[str, str]) -> str | None:
    """The signer's password typed again (``--password-stdin``, else a prompt at a
    terminal; never the environment: a signature is typed at the moment of signing),
    checked against the verifier kept at the last login. The time it was checked, or
    None when it was not (said why on stderr; a wrong one counted, kept in the state)."""
    verifier = local.config.get("signing_verifier")
    if not verifier or is_locked(verifier):
        print(said["locked" if verifier else "missing"], file=sys.stderr)
        return None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif sys.stdin.isatty():
        password = getpass.getpass(said["prompt"])
    else:
        print(said["no_password"], file=sys.stderr)
        return None
    result = attempt(verifier, password)
    if result.verifier is not None and result.verifier != verifier:
        local.config["signing_verifier"] = result.verifier
        local.state.save(local.config)
    if not result.ok:
        text = said["wrong"].format(left=result.left) if result.reason == "wrong" else None
        print(text or said[result.reason or "missing"], file=sys.stderr)
        return None
    return datetime.now(UTC).isoformat()


def cmd_signoff(args: argparse.Namespace) -> int:
    said = _SIGNOFF_TEXT[args.lang]
    if args.name is not None:
        print(said["name_ignored"], file=sys.stderr)
    with _Local(args) as local:
        t = local.tablet
        name = _account_name(local.config)
        insp = t.view("inspection", args.inspection)
        if insp is None:
            raise DomainError(f"inspection {args.inspection!r} is not on this tablet")
        scope = f"link:{args.link}" if args.link else "inspection"
        pins = _local_pins(t, insp) or {}
        answers = answers_by_link(
            (rid, data)
            for rid, data in t.records("response").items()
            if rid.startswith(f"{args.inspection}~")
        )
        unanswered = unanswered_required(pins, scope, answers)
        required = sum(
            len(required_items(tmpl, answers.get(link, {})))
            for link, tmpl in pins.items()
            if scope in ("inspection", f"link:{link}")
        )
        reason = (args.incomplete_reason or "").strip()
        if unanswered and not reason:
            print(
                f"{required - len(unanswered)} of {required} required items answered;"
                f" unanswered: {', '.join(unanswered)}",
                file=sys.stderr,
            )
            print(
                "not signed: answer them, or sign anyway with --incomplete-reason TEXT"
                " (the reason is signed and shown to the supervisor)",
                file=sys.stderr,
            )
            return EXIT_ERROR
        signed = [
            (kind, rid, data)
            for kind in SIGNED_FIELDS
            for rid, data in t.records(kind).items()
            if data.get("inspection_id") == args.inspection and in_scope(scope, kind, rid, data)
        ]
        # the password typed again, checked against the verifier kept at login
        check = _reauthenticate(args, local, said)
        if check is None:
            return EXIT_ERROR
        sid = t.new_id("s")
        fields = {
            "inspection_id": args.inspection,
            "scope": scope,
            # the server prints the account's name whatever is sent; servers from
            # before that require one
            "signer_name": name,
            "meaning": args.meaning,
            "content_hash": content_hash(signed),
            "signed_at": datetime.now(UTC).isoformat(),
            "reauth_method": REAUTH_METHOD,
            "reauthenticated_at": check,
        }
        if unanswered:
            fields["incomplete_reason"] = reason
        t.edit("signoff", sid, fields)
        print(sid)
        print(said["signer"].format(name=name), file=sys.stderr)
        print(said["reauth"].format(at=check), file=sys.stderr)
        print(
            f"signed {scope} of {args.inspection} ({len(signed)} records, content"
            f" {fields['content_hash'][:12]}; {required - len(unanswered)} of {required}"
            " required items answered) offline; sync to send it",
            file=sys.stderr,
        )
    return EXIT_OK


# --- conflicts, rejections, status ------------------------------------------------------


def cmd_conflicts(args: argparse.Namespace) -> int:
    with _Local(args) as local:
        t = local.tablet
        shown = 0
        for cid, c in t.records("conflict").items():
            if args.open and c.get("status") != "open":
                continue
            if args.inspection and c.get("inspection_id") != args.inspection:
                continue
            shown += 1
            _print_conflict_record(cid, c)
        if not shown:
            print("no conflicts on this tablet")
    return EXIT_OK


def cmd_rejections(args: argparse.Namespace) -> int:
    with _Local(args) as local:
        rows = local.tablet.results("rejected")
        for r in rows:
            d = r["detail"]
            where = f", field {d['field']}" if d.get("field") else ""
            print(
                f"{r['at']}  {r['kind']} {r['id']} ({d.get('code')}{where}): {d.get('message')}"
                f"  [mutation {r['mid']}, quarantine {d.get('quarantine_id')}]"
            )
        if not rows:
            print("no rejected changes")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    with _Local(args) as local:
        t = local.tablet
        cfg = local.config
        s = t.status()
        logged = "yes" if cfg.get("access_token") else "no (run `inspectsync tablet login`)"
        print(f"tablet:           {local.state.dir}")
        print(f"server:           {cfg.get('server')}")
        print(f"user:             {cfg.get('username')} ({cfg.get('role') or '?'})")
        print(f"signs as:         {_account_name(cfg)}")
        print(f"device:           {t.device_id}")
        print(f"logged in:        {logged}")
        print(f"pending changes:  {s['pending']}")
        for p in t.pending():
            print(f"  {p['mid']}  {p['op']} {p['kind']} {p['id']}  {p['fields']}")
        print(f"last sync:        {s['last_sync'] or 'never'}")
        cursor = "present" if t.cursor else "none (the next sync pulls everything)"
        print(f"pull cursor:      {cursor}")
        print(f"conflict results: {s['conflicts']}")
        print(f"rejected results: {s['rejected']}")
        print(f"open conflicts:   {s['open_conflict_records']}")
        print(f"inspections held: {len(t.records('inspection'))}")
        print(f"files to upload:  {s['evidence_pending']}")
        for row in t.evidence("refused"):
            print(f"  refused {row['sha256']} ({row['filename']}): {row['detail']}")
        print(f"missing on server (last sync): {s['evidence_missing_on_server']}")
    return EXIT_OK


# --- parser -----------------------------------------------------------------------------


def _state_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--state",
        metavar="DIR",
        help="tablet state directory (env INSPECTSYNC_TABLET_DIR, default ./tablet)",
    )


def _net_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--timeout", type=float, default=30.0, help="seconds per HTTP request (default 30)"
    )


def _add(
    sub: Any, name: str, func: Callable[[argparse.Namespace], int], help_: str, desc: str
) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=help_, description=desc)
    _state_flag(p)
    p.set_defaults(func=_quiet_pipe(func))
    return p


def _quiet_pipe(
    func: Callable[[argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    """Output piped into ``head`` and closed early is not an error."""

    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return EXIT_OK

    return run


def add_tablet_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``inspectsync tablet`` and its subcommands."""
    tablet = subparsers.add_parser(
        "tablet",
        help="act as an inspector's tablet against a running server",
        description="Be an inspector's tablet from a terminal: log in, sync, answer"
        " checklist items and record findings offline, see conflicts and rejections."
        " Only login, logout and sync need the server. State lives in --state DIR"
        " (env INSPECTSYNC_TABLET_DIR, default ./tablet): tablet.db and tablet.json"
        " (mode 0600, holds tokens). Exit codes: 0 ok, 1 error, 2 server unreachable"
        " (outbox kept), 3 device revoked (local data wiped).",
    )
    tablet.add_argument(
        "--state",
        dest="tablet_state",
        metavar="DIR",
        help="tablet state directory (also accepted after the subcommand)",
    )
    ts = tablet.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = _add(
        ts,
        "login",
        cmd_login,
        "log in and register (or reuse) this tablet's device",
        "Log in with POST /api/v1/auth/login. The first login registers a device"
        " (--device-name); later logins reuse the stored device id. The password comes"
        " from --password-stdin, else env INSPECTSYNC_PASSWORD, else a prompt.",
    )
    p.add_argument("--server", help="server base URL, e.g. http://127.0.0.1:8000 (kept)")
    p.add_argument("--username", help="your username (kept for later logins)")
    p.add_argument("--device-name", help="name of this tablet when it is first registered")
    p.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    _net_flags(p)

    p = _add(
        ts,
        "logout",
        cmd_logout,
        "forget the tokens (local data and pending edits stay)",
        "Revoke this login on the server (if reachable) and forget the tokens."
        " Local data, pending edits and the device id are kept for the next login.",
    )
    _net_flags(p)

    p = _add(
        ts,
        "sync",
        cmd_sync,
        "pull, push the outbox, pull again",
        "Pull every change in your scope, push pending edits, pull again. Prints the"
        " counts and every conflict and rejection received in this sync, with the"
        " values kept and the reason. Exit 2 if the server cannot be reached (the"
        " outbox is kept), 3 if this device was revoked (local data is wiped).",
    )
    _net_flags(p)
    p.add_argument(
        "--retries",
        type=int,
        default=2,
        help="retries of a failed request, with backoff (default 2)",
    )

    _add(
        ts,
        "inspections",
        cmd_inspections,
        "list the inspections on this tablet (offline)",
        "List inspections held locally: id, status, type, title, site, dates, your"
        " role, chain links with their stage and pinned checklist version.",
    )

    p = _add(
        ts,
        "checklist",
        cmd_checklist,
        "show an inspection's pinned checklist and local answers (offline)",
        "Print the checklist items of the versions INSPECTION pins: key, prompt,"
        " answer type with options and limits, and the current local answer of each"
        " (pending ones marked).",
    )
    p.add_argument("inspection", help="inspection id, e.g. insp-ds-routine")
    p.add_argument("--link", help="only this chain link, e.g. l2-cellbank")
    p.add_argument("--lang", choices=["en", "zh"], default="en", help="language (default en)")
    p.add_argument("--guidance", action="store_true", help="also print guidance and references")

    p = _add(
        ts,
        "answer",
        cmd_answer,
        "answer a checklist item (offline)",
        "Record the answer to one item of one chain link (and repeat) of an"
        " inspection, offline. VALUE is parsed as JSON if it parses (12.5, null,"
        ' \'["mcb","wcb"]\'), else taken as text (yes, no, na). A value the pinned'
        " checklist refuses is warned about here and reported as rejected by sync.",
    )
    p.add_argument("inspection", help="inspection id")
    p.add_argument("link", help="chain link id, e.g. l2-cellbank")
    p.add_argument("item", help="item key, e.g. cb_history")
    p.add_argument("value", help="the answer (JSON or text)")
    p.add_argument("--repeat", type=int, default=0, help="repeat number of a repeating section")
    p.add_argument("--note", help="a note with the answer")
    p.add_argument("--reason", help="why (required when changing after sign-off)")

    finding = ts.add_parser(
        "finding",
        help="add, edit, show and list findings (offline)",
        description="Record deficiencies offline; they are pushed on the next sync.",
    )
    fs = finding.add_subparsers(dest="finding_action", required=True, metavar="ACTION")
    classes = list(CLASSIFICATION_LABELS)
    p = _add(
        fs,
        "add",
        cmd_finding_add,
        "record a new finding",
        "Record a new finding on INSPECTION offline; prints its new id.",
    )
    p.add_argument("inspection", help="inspection id")
    p.add_argument("--title", required=True, help="short title")
    p.add_argument(
        "--classification",
        choices=classes,
        help="PIC/S class (NMPA: serious/major/general)",
    )
    p.add_argument("--evidence", help="objective evidence (text)")
    p.add_argument(
        "--item",
        action="append",
        metavar="LINK:ITEM",
        help="a checklist item it relates to (repeatable)",
    )
    p.add_argument(
        "--photo",
        action="append",
        metavar="FILE",
        help="a photo or document as evidence (repeatable); kept on the tablet, uploaded"
        " on a sync after the finding",
    )
    p.add_argument("--reason", help="why (required after sign-off)")
    p = _add(
        fs,
        "edit",
        cmd_finding_edit,
        "change a finding",
        "Change fields of a finding offline. Only the given fields are sent, on the"
        " revision last pulled; concurrent changes merge or become conflicts on sync.",
    )
    p.add_argument("finding_id")
    p.add_argument("--title", help="new title")
    p.add_argument("--classification", choices=classes, help="new classification")
    p.add_argument("--evidence", help="new objective evidence text")
    p.add_argument(
        "--status",
        choices=["draft", "submitted", "withdrawn"],
        help="submit for review (again, after a return), or withdraw",
    )
    p.add_argument(
        "--item", action="append", metavar="LINK:ITEM", help="link one more checklist item"
    )
    p.add_argument(
        "--photo", action="append", metavar="FILE", help="add a photo or document as evidence"
    )
    p.add_argument("--reason", help="why (required after sign-off)")
    p = _add(
        fs,
        "show",
        cmd_finding_show,
        "show a finding as this tablet sees it",
        "Print the finding as held locally (pulled copy plus pending edits),"
        " including open_conflicts and every conflict kept on it.",
    )
    p.add_argument("finding_id")
    p = _add(
        fs,
        "list",
        cmd_finding_list,
        "list findings on this tablet",
        "List findings held locally, with class, status and open conflicts.",
    )
    p.add_argument("--inspection", help="only this inspection's findings")

    p = _add(
        ts,
        "signoff",
        cmd_signoff,
        "sign off an inspection or one chain link (offline)",
        "Sign what this tablet holds for the inspection (or one link) with a meaning."
        " The signature prints your account's own name (shown, never typed: the one the"
        " login answered). Signing needs your password again (a prompt, or"
        " --password-stdin), checked on this tablet against the check kept at the last"
        " login; 5 wrong ones lock signing until the next login. The server binds the"
        " signature to the content's hash: a later change shows the signature as no"
        " longer matching, and needs a reason.",
    )
    p.add_argument("inspection", help="inspection id")
    p.add_argument("--link", help="sign only this chain link's section")
    # older scripts pass --name: accepted and ignored (the account's name is printed)
    p.add_argument("--name", help=argparse.SUPPRESS)
    p.add_argument("--lang", choices=["en", "zh"], default="en", help="language (default en)")
    p.add_argument("--meaning", choices=["authored", "reviewed", "approved"], default="authored")
    p.add_argument(
        "--incomplete-reason",
        help="sign although required items are unanswered, for this reason (without it,"
        " a sign-off that leaves required items unanswered lists them and is not made)",
    )
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password typed again to sign from standard input (else a prompt)",
    )

    p = _add(
        ts,
        "conflicts",
        cmd_conflicts,
        "list conflicts held on this tablet (offline)",
        "List conflict records held locally: record, field, policy, status, the value"
        " the record holds and every kept value with who and which device.",
    )
    p.add_argument("--open", action="store_true", help="only open conflicts")
    p.add_argument("--inspection", help="only this inspection's conflicts")

    _add(
        ts,
        "rejections",
        cmd_rejections,
        "list changes the server rejected (offline)",
        "List every change the server rejected, with its reason, so it can be fixed.",
    )

    _add(
        ts,
        "status",
        cmd_status,
        "show pending changes and sync state (offline)",
        "Show server, user, device, pending changes, last sync, whether a pull cursor"
        " is held, and conflict and rejection counts.",
    )
    return tablet
