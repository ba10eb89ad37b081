"""The ``inspectsync`` command: serve, init, migrate, db, users, devices, audit, evidence,
report, checklists.

Every command reads the same settings as the server (``INSPECTSYNC_*`` variables,
then flags). ``inspectsync <command> --help`` explains each one.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from checklists.diff import diff_templates
from checklists.loader import ChecklistError, check_complete, dump_template, load_file
from server.accounts import Accounts
from server.passwords import Passwords
from server.settings import ConfigError, Settings
from server.tablet_cli import add_tablet_parser
from sync.audit import anchor_head, anchors_path, read_anchors
from sync.authoring import Authoring
from sync.clock import SystemClock
from sync.errors import DomainError
from sync.models import Role
from sync.registry import Registry

__all__ = ["main"]


def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    return Settings.from_env(
        data_dir=getattr(args, "data_dir", None),
        db_path=getattr(args, "db", None),
        database_url=getattr(args, "database_url", None),
        **extra,
    )


class _Ctx:
    """A store and the services over it, for one CLI command."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.clock = SystemClock()
        self.store = settings.make_store()
        self.accounts = Accounts(
            self.store,
            Passwords(settings.password_time_cost, settings.password_memory_kib),
            self.clock,
        )
        self.authoring = Authoring(self.store, self.clock)
        self.registry = Registry(self.store, self.clock, self.authoring)


def _run(settings: Settings, fn: Callable[[_Ctx], Awaitable[int]]) -> int:
    async def go() -> int:
        ctx = _Ctx(settings)
        await ctx.store.open()
        try:
            return await fn(ctx)
        finally:
            await ctx.store.close()

    return asyncio.run(go())


# --- serve / init ---------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from server.app import create_app
    from server.demo import DEMO_PASSWORD, DEMO_USERS, seed_demo

    settings = _settings(args, host=args.host, port=args.port, demo=args.demo)
    try:
        settings.signing_keys()
    except ConfigError as exc:
        print(f"inspectsync: {exc}", file=sys.stderr)
        return 2

    async def prepare(ctx: _Ctx) -> int:
        async with ctx.store.startup_lock():  # instances starting together: one at a time
            return await load(ctx)

    async def load(ctx: _Ctx) -> int:
        if args.demo:
            created = await seed_demo(ctx.registry, ctx.accounts, ctx.clock.now().date())
            print("Demo data " + ("created." if created else "already present."))
        else:
            from server.demo import load_checklist_library

            await load_checklist_library(ctx.authoring)
        return 0

    _run(settings, prepare)
    base = f"http://{settings.host}:{settings.port}"
    print(f"inspectsync serving {base}  (database {settings.database_label})")
    print(f"  API docs:  {base}/schema   health: {base}/healthz")
    print(f"  log in:    POST {base}/api/v1/auth/login")
    if args.demo:
        print(f"  demo users (password {DEMO_PASSWORD!r}):")
        for username, name, role, authority in DEMO_USERS:
            print(f"    {username:<10} {role.value:<11} {authority:<7} {name}")
    sys.stdout.flush()
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from server.demo import load_checklist_library

    async def go(ctx: _Ctx) -> int:
        print(
            f"database {ctx.settings.database_label}"
            f" at schema version {await ctx.store.schema_version()}"
        )
        if not args.no_library:
            versions = await load_checklist_library(ctx.authoring)
            print(f"checklist library: {len(versions)} templates current")
        return 0

    return _run(_settings(args), go)


# --- users / devices ------------------------------------------------------------------


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    env = os.environ.get("INSPECTSYNC_NEW_PASSWORD")
    if env:
        return env
    if not sys.stdin.isatty():
        raise DomainError("no password: use --password-stdin or INSPECTSYNC_NEW_PASSWORD")
    first = getpass.getpass("New password: ")
    if first != getpass.getpass("Repeat: "):
        raise DomainError("the passwords differ")
    return first


def cmd_authorities(args: argparse.Namespace) -> int:
    from server.demo import SYSTEM
    from sync.models import Authority

    async def go(ctx: _Ctx) -> int:
        if args.action == "add":
            body = Authority(
                name=args.name,
                level="provincial" if args.province else "national",
                province=args.province,
                name_zh=args.name_zh or "",
            )
            rec = await ctx.registry.create_reference(SYSTEM, "authority", args.authority_id, body)
            print(f"authority {rec.id} added ({body.level})")
        else:
            for r in await ctx.store.list_records("authority"):
                print(
                    f"{r.id:<12} {r.data['level']:<11} {r.data.get('province') or '-':<12}"
                    f" {r.data['name']}"
                )
        return 0

    return _run(_settings(args), go)


def cmd_users(args: argparse.Namespace) -> int:
    async def go(ctx: _Ctx) -> int:
        if args.action == "add":
            user = await ctx.accounts.add_user(
                username=args.username,
                display_name=args.name or args.username,
                role=Role(args.role),
                authority_id=args.authority,
                password=_password(args),
            )
            print(f"added {user.username} ({user.role.value}, {user.authority_id}) id {user.id}")
        elif args.action == "list":
            for u in await ctx.store.list_users():
                state = "disabled" if u.disabled else "active"
                print(
                    f"{u.username:<16} {u.role.value:<11} {u.authority_id:<10} {state:<9}"
                    f" {u.id}  {u.display_name}"
                )
        elif args.action in ("disable", "enable"):
            user = await ctx.accounts.find(args.username)
            await ctx.accounts.set_disabled(user.id, args.action == "disable")
            print(f"{user.username} {args.action}d")
        elif args.action == "set-password":
            user = await ctx.accounts.find(args.username)
            await ctx.accounts.set_password(user.id, _password(args))
            print(f"password of {user.username} changed")
        return 0

    return _run(_settings(args), go)


def cmd_devices(args: argparse.Namespace) -> int:
    async def go(ctx: _Ctx) -> int:
        if args.action == "list":
            user_id = (await ctx.accounts.find(args.user)).id if args.user else None
            for d in await ctx.store.list_devices(user_id):
                state = f"revoked {d.revoked_at:%Y-%m-%d %H:%M}" if d.revoked_at else "active"
                seen = f"{d.last_seen_at:%Y-%m-%d %H:%M}" if d.last_seen_at else "never"
                print(
                    f"{d.id:<22} {d.user_id:<14} {state:<24} seen {seen:<17}"
                    f" {d.app_version or '-':<8} {d.name}"
                )
        else:
            d = await ctx.accounts.revoke_device(args.device_id)
            print(f"device {d.id} revoked at {d.revoked_at}; its tokens are refused from now on")
        return 0

    return _run(_settings(args), go)


# --- audit ----------------------------------------------------------------------------


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply pending schema migrations (opening the store does) and say where it is."""

    async def go(ctx: _Ctx) -> int:
        print(
            f"database {ctx.settings.database_label}"
            f" at schema version {await ctx.store.schema_version()}"
        )
        return 0

    return _run(_settings(args), go)


def cmd_db(args: argparse.Namespace) -> int:
    """``db copy``: an SQLite installation into an empty PostgreSQL database, then the
    audit chain of the copy verified against the anchors."""
    from sync.storage.copy import copy_sqlite_to_postgres
    from sync.storage.postgres import PostgresStore, is_postgres_url, redacted

    source = args.source.removeprefix("sqlite:")
    if not is_postgres_url(args.to):
        print("inspectsync: --to must be a postgresql:// URL", file=sys.stderr)
        return 2
    anchors_file = anchors_path(source)

    async def go() -> int:
        counts = await copy_sqlite_to_postgres(source, args.to)
        for table, n in counts.items():
            print(f"  {table:<16} {n:>9} rows")
        store = PostgresStore(args.to, readers=1)
        await store.open()
        try:
            found = await store.verify_audit(read_anchors(anchors_file))
        finally:
            await store.close()
        if not found.ok:
            print(f"TAMPERED after the copy: {found.problem} (event {found.first_bad_id})")
            return 1
        print(
            f"copied {source} into {redacted(args.to)}; audit chain intact"
            f" ({found.checked} events, {found.anchors_checked} anchors of {anchors_file} match)"
        )
        return 0

    return asyncio.run(go())


def cmd_audit(args: argparse.Namespace) -> int:
    async def go(ctx: _Ctx) -> int:
        if args.action == "verify":
            path = ctx.settings.anchors_file
            try:
                anchors = read_anchors(path)
            except ValueError as exc:
                print(f"inspectsync: {exc}", file=sys.stderr)
                return 2
            found = await ctx.store.verify_audit(anchors)
            if found.ok:
                print(
                    f"ok: {found.checked} audit events, chain intact;"
                    f" {found.anchors_checked} of {len(anchors)} anchors ({path}) match;"
                    f" head {found.head} (event {found.last_id})"
                )
                if found.last_id:
                    at = ctx.clock.now().isoformat()
                    anchor_head(path, anchors, (found.last_id, found.head), at)
                return 0
            if found.first_bad_id is None:
                print(f"TAMPERED: {found.problem}")
            else:
                print(
                    f"TAMPERED: audit event {found.first_bad_id} does not match:"
                    f" {found.problem} ({found.checked - 1} events before it are intact)"
                )
            return 1
        out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
        try:
            after = 0
            while True:
                rows = await ctx.store.audit_events(after_id=after, limit=1000)
                for row in rows:
                    out.write(msgspec.json.encode(row).decode() + "\n")
                if len(rows) < 1000:
                    return 0
                after = rows[-1]["id"]
        finally:
            if out is not sys.stdout:
                out.close()

    return _run(_settings(args), go)


# --- evidence -------------------------------------------------------------------------


def cmd_evidence(args: argparse.Namespace) -> int:
    from server.app import make_uploads

    async def go(ctx: _Ctx) -> int:
        uploads = make_uploads(ctx.settings, ctx.store, ctx.clock)
        found = await uploads.check_stored(hashes=not args.size_only)
        for lost in found.lost_now:
            print(f"LOST {lost.sha256}: {lost.problem}")
        for sha in found.found:
            print(f"found again {sha}")
        print(
            f"{found.checked} stored files checked"
            f" ({'sizes only' if args.size_only else 'sizes and SHA-256'}):"
            f" {found.lost} lost ({len(found.lost_now)} newly), {len(found.found)} found again"
        )
        return 1 if found.lost else 0

    return _run(_settings(args), go)


# --- report ---------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    """``report verify FILE.pdf``: check the signed manifest of a PDF the server made."""
    from server.signing import SigningKey, load_public_key, verify_pdf

    try:
        pdf = Path(args.file).read_bytes()
        if args.key:
            trusted = load_public_key(Path(args.key).read_bytes())
        else:
            path = _settings(args).report_signing_key_path
            if not path.exists():
                print(
                    f"inspectsync: no signing key at {path}: give the server's public key"
                    " with --key (GET /api/v1/reports/public-key)",
                    file=sys.stderr,
                )
                return 2
            trusted = SigningKey(path).public
    except (OSError, ValueError) as exc:
        print(f"inspectsync: {exc}", file=sys.stderr)
        return 2
    found = verify_pdf(pdf, trusted)
    if found.manifest is not None:
        m = found.manifest
        print(
            f"{m.get('document')} ({m.get('lang')}) of {', '.join(m.get('inspection_ids') or [])}"
            f", generated {m.get('generated_at')} for {m.get('generated_by')} at data cursor"
            f" {m.get('cursor')}; {len(m.get('signatures') or [])} signatures,"
            f" {len(m.get('evidence') or [])} evidence files; key {found.key_sha256}"
        )
    if not found.ok:
        for problem in found.problems:
            print(f"FAILED: {problem}")
        return 1
    print("OK: the manifest is signed by the trusted key and the pages are as signed")
    return 0


# --- checklists -----------------------------------------------------------------------


def _template_files(paths: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        files.extend(sorted(p.glob("*.yaml")) if p.is_dir() else [p])
    return files


def cmd_checklists(args: argparse.Namespace) -> int:
    if args.action == "validate":
        failed = 0
        files = _template_files(args.paths)
        for f in files:
            try:
                t = load_file(f)
                check_complete(t, f.name)
                print(f"ok    {f}  ({t.stage_type.value}, {len(t.items())} items)")
            except (ChecklistError, OSError) as exc:
                failed += 1
                print(f"FAIL  {exc}", file=sys.stderr)
        print(f"{len(files) - failed} valid, {failed} invalid")
        return 1 if failed or not files else 0
    if args.action == "diff" and Path(args.old).is_file() and Path(args.new).is_file():
        d = diff_templates(load_file(args.old), load_file(args.new))
        print(msgspec.json.format(msgspec.json.encode(d)).decode())
        return 0

    from server.demo import SYSTEM

    async def go(ctx: _Ctx) -> int:
        if args.action == "import":
            for f in _template_files(args.paths):
                rec = await ctx.authoring.import_template(
                    SYSTEM, load_file(f), publish=args.publish, changelog=args.changelog
                )
                print(f"{f}: {rec.id} ({rec.data['status']})")
        elif args.action == "export":
            vid = args.version
            if "-v" not in vid:
                versions = await ctx.authoring.list_versions(SYSTEM, vid)
                if not versions:
                    raise DomainError(f"template {vid!r} has no versions")
                vid = versions[-1].id
            rec = await ctx.authoring.get_version(SYSTEM, vid)
            text = dump_template(ctx.authoring.content(rec))
            if args.output:
                Path(args.output).write_text(text, encoding="utf-8")
                print(f"{rec.id} written to {args.output}")
            else:
                sys.stdout.write(text)
        elif args.action == "diff":
            d = await ctx.authoring.diff(SYSTEM, args.old, args.new)
            print(msgspec.json.format(msgspec.json.encode(d)).decode())
        return 0

    return _run(_settings(args), go)


# --- parser ---------------------------------------------------------------------------


def _db_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="data directory (env INSPECTSYNC_DATA_DIR, default ./data)")
    p.add_argument(
        "--db", help="SQLite file (env INSPECTSYNC_DB; default <data-dir>/inspectsync.db)"
    )
    p.add_argument(
        "--database-url",
        help="PostgreSQL instead of SQLite: postgresql://user@host:5432/dbname"
        " (env INSPECTSYNC_DATABASE_URL)",
    )


def _password_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (else INSPECTSYNC_NEW_PASSWORD, else a prompt)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inspectsync",
        description="Offline-first field-inspection server for segmented biologics production.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "serve",
        help="run the HTTP server",
        description="Migrate the database, load the checklist library and serve"
        " the API. --demo also seeds demo data and, if no"
        " INSPECTSYNC_JWT_SECRET is set, keeps a generated one in"
        " the data directory.",
    )
    _db_flags(p)
    p.add_argument("--host", help="listen address (env INSPECTSYNC_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (env INSPECTSYNC_PORT, default 8000)")
    p.add_argument("--demo", action="store_true", help="seed demo data and demo users")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "init",
        help="create or migrate the database and load the library",
        description="Apply pending schema migrations and import the bundled"
        " checklist library (published). Safe to run again.",
    )
    _db_flags(p)
    p.add_argument("--no-library", action="store_true", help="skip the checklist library")
    p.set_defaults(func=cmd_init)

    auth = sub.add_parser(
        "authorities",
        help="add and list authorities",
        description="Regulators users belong to. A new database needs one before its first"
        " user: `inspectsync authorities add nmpa --name ...` then `users add`.",
    )
    aus = auth.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = aus.add_parser("add", help="add an authority", description="Add an authority.")
    _db_flags(p)
    p.add_argument("authority_id", help="a short id, e.g. js-mpa")
    p.add_argument("--name", required=True, help="full name")
    p.add_argument("--name-zh", help="name in Chinese")
    p.add_argument("--province", help="province (omit for the national authority)")
    p = aus.add_parser("list", help="list authorities", description="List authorities.")
    _db_flags(p)
    auth.set_defaults(func=cmd_authorities)

    users = sub.add_parser(
        "users",
        help="manage users",
        description="Add, list, disable and re-enable users, set passwords.",
    )
    us = users.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = us.add_parser("add", help="add a user", description="Add a user to an authority.")
    _db_flags(p)
    p.add_argument("username")
    p.add_argument("--role", required=True, choices=[r.value for r in Role])
    p.add_argument("--authority", required=True, help="authority id, e.g. js-mpa")
    p.add_argument("--name", help="display name")
    _password_flags(p)
    p = us.add_parser("list", help="list users", description="List every user.")
    _db_flags(p)
    for action, text in (
        ("disable", "refuse this user's logins and tokens"),
        ("enable", "allow a disabled user again"),
    ):
        p = us.add_parser(action, help=text, description=text.capitalize() + ".")
        _db_flags(p)
        p.add_argument("username")
    p = us.add_parser(
        "set-password",
        help="set a user's password",
        description="Set a new password (8+ characters).",
    )
    _db_flags(p)
    p.add_argument("username")
    _password_flags(p)
    users.set_defaults(func=cmd_users)

    devices = sub.add_parser(
        "devices",
        help="list and revoke tablets",
        description="List registered devices; revoke a lost one.",
    )
    ds = devices.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = ds.add_parser("list", help="list devices", description="List devices, newest last.")
    _db_flags(p)
    p.add_argument("--user", help="only this username's devices")
    p = ds.add_parser(
        "revoke",
        help="revoke a device",
        description="Revoke a device: every token bound to it is refused at once.",
    )
    _db_flags(p)
    p.add_argument("device_id")
    devices.set_defaults(func=cmd_devices)

    p = sub.add_parser(
        "migrate",
        help="apply pending schema migrations",
        description="Bring the database (SQLite, or PostgreSQL with --database-url) to the"
        " newest schema and print its version. `serve` does the same at start-up; with"
        " several instances over PostgreSQL an advisory lock lets one of them migrate.",
    )
    _db_flags(p)
    p.set_defaults(func=cmd_migrate)

    db = sub.add_parser(
        "db",
        help="move an installation between databases",
        description="Copy an SQLite installation into PostgreSQL.",
    )
    dbs = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = dbs.add_parser(
        "copy",
        help="copy an SQLite database into an empty PostgreSQL database",
        description="Copy every table (records with their sequence, the audit trail with its"
        " hashes, users, devices, tokens, evidence rows, uploads) into an empty PostgreSQL"
        " database in one transaction, then verify the copy's audit chain and the anchors"
        " written down beside the SQLite file. Stop the server first. Evidence files stay"
        " where they are: point INSPECTSYNC_EVIDENCE_DIR at them.",
    )
    p.add_argument(
        "--from", dest="source", required=True, help="the SQLite file, as sqlite:PATH or PATH"
    )
    p.add_argument("--to", required=True, help="postgresql://user@host:5432/dbname (empty)")
    db.set_defaults(func=cmd_db)

    au = sub.add_parser(
        "audit",
        help="verify and export the audit trail",
        description="The append-only, hash-chained audit trail of every change.",
    )
    aus2 = au.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = aus2.add_parser(
        "verify",
        help="walk the hash chain",
        description="Recompute every audit event's hash in order and check the anchors"
        " (heads written down in audit-anchors.jsonl beside the database); print the"
        " first event that does not match (changed, removed, inserted, or the chain"
        " recomputed) or the events cut off the end, and exit 1; or exit 0 with the"
        " chain's head, which is then added to the anchors.",
    )
    _db_flags(p)
    p = aus2.add_parser(
        "export",
        help="write the whole trail as JSON lines",
        description="Every audit event, oldest first, one JSON object a line.",
    )
    _db_flags(p)
    p.add_argument("-o", "--output", help="file to write (default: standard output)")
    au.set_defaults(func=cmd_audit)

    ev = sub.add_parser(
        "evidence",
        help="check the stored evidence files",
        description="The photos and documents tablets uploaded.",
    )
    evs = ev.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = evs.add_parser(
        "check",
        help="compare every stored file's bytes with its record",
        description="Read every stored file: a file whose bytes are missing, of another"
        " size or another SHA-256 is marked lost (wrong bytes are moved to"
        " evidence/blobs/set-aside/), listed as missing to the tablets until one uploads"
        " it again, and printed; a lost file whose bytes are back is marked found. Exit 1"
        " if any file is lost. Run it after restoring a backup. Safe while serving.",
    )
    _db_flags(p)
    p.add_argument("--size-only", action="store_true", help="compare sizes, do not hash (fast)")
    ev.set_defaults(func=cmd_evidence)

    rp = sub.add_parser(
        "report",
        help="check a PDF document the server made",
        description="The PDF documents (reports, deficiency lists, rectification tables,"
        " chain dossiers) carry a manifest signed with the server's Ed25519 key.",
    )
    rps = rp.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = rps.add_parser(
        "verify",
        help="check a PDF's signed manifest",
        description="Check that FILE.pdf carries manifest.json signed by the trusted key"
        " (--key, a PEM from GET /api/v1/reports/public-key; else the server's own key in"
        " the data directory) and that its pages are those signed. Print what the"
        " manifest says; exit 0 if it holds, 1 if anything was changed, 2 if the file or"
        " key cannot be read.",
    )
    p.add_argument("file", help="the PDF")
    p.add_argument("--key", help="the server's public key (PEM)")
    p.add_argument("--data-dir", help="data directory holding the server's key")
    rp.set_defaults(func=cmd_report)

    cl = sub.add_parser(
        "checklists",
        help="validate, import, export and diff templates",
        description="Work with checklist template files and stored versions.",
    )
    cs = cl.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = cs.add_parser(
        "validate",
        help="check template files",
        description="Check files (or every *.yaml in directories) strictly,"
        " including both languages. Exit 1 if any is invalid.",
    )
    p.add_argument("paths", nargs="+")
    p = cs.add_parser(
        "import",
        help="import template files",
        description="Import files as new drafts, or published with --publish.",
    )
    _db_flags(p)
    p.add_argument("paths", nargs="+")
    p.add_argument("--publish", action="store_true", help="publish what is imported")
    p.add_argument("--changelog", default="", help="changelog text when publishing")
    p = cs.add_parser(
        "export",
        help="export a version as a file",
        description="Write a stored version (id like cell_bank-v2, or a template"
        " key for its latest version) as YAML.",
    )
    _db_flags(p)
    p.add_argument("version")
    p.add_argument("-o", "--output", help="file to write (default: standard output)")
    p = cs.add_parser(
        "diff",
        help="compare two versions or files",
        description="Items added, removed and changed by key, between two"
        " template files or two stored version ids.",
    )
    _db_flags(p)
    p.add_argument("old")
    p.add_argument("new")
    cl.set_defaults(func=cmd_checklists)
    add_tablet_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except (DomainError, ConfigError, ChecklistError) as exc:
        print(f"inspectsync: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
