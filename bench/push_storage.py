"""The engine's push on each storage backend, in one process, without HTTP.

``bench/run.py`` measures the whole server over real HTTP; this isolates what the
storage backend adds to a push: the same 10,000 new findings (~1 KB each, batches of
100, one principal) go through :meth:`SyncEngine.push` on SQLite and on PostgreSQL, and
the script prints wall time, mutations/s and the process's CPU seconds per 10,000
mutations (every thread: the event loop, the writer thread, the driver).
PostgreSQL's own CPU (the server's backends) is read from ``/proc`` for the postgres
processes and printed apart, so the two sides of the cost can be told.

Usage (from the repository root)::

    .venv/bin/python bench/push_storage.py [--count 10000] [--profile FILE]
        [--database-url postgresql://postgres@127.0.0.1:5432/test]

It creates and drops a database of its own on the PostgreSQL server named (the URL's
database is only used to connect). ``--profile`` writes a cProfile of the PostgreSQL run.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg.conninfo import conninfo_to_dict  # noqa: E402

from server.app import Services, build_services  # noqa: E402
from server.demo import seed_demo  # noqa: E402
from server.settings import Settings  # noqa: E402
from sync.models import Principal  # noqa: E402
from sync.protocol import Mutation, PullRequest, PushRequest  # noqa: E402

INSPECTION = "insp-ds-routine"
BATCH = 100
_WORDS = [
    *("batch record deviation aseptic filling line operator gowning airflow smoke study",),
    *("media fill environmental monitoring grade viable particle review signature trend",),
    *("alert action limit investigation root cause CAPA effectiveness sterility assurance",),
]
_WORDS = [w for line in _WORDS for w in line.split(" ")]


def _text(rng: random.Random, n: int = 900) -> str:
    out: list[str] = []
    size = 0
    while size < n:
        w = rng.choice(_WORDS)
        out.append(w)
        size += len(w) + 1
    return " ".join(out)[:n]


def _postgres_cpu() -> float:
    """CPU seconds used so far by every process named postgres (server side)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)
            name = fields[0].split("(", 1)[1]
            if not name.startswith("postgres"):
                continue
            parts = fields[1].split()
            total += int(parts[11]) + int(parts[12])  # utime + stime
        except (OSError, IndexError, ValueError):
            continue
    return total / tick


async def _principal(services: Services, username: str = "insp.js1") -> Principal:
    user = await services.store.find_user(username)
    assert user is not None
    return Principal(
        user_id=user.id,
        username=user.username,
        role=user.role,
        authority_id=user.authority_id,
        device_id=None,
    )


async def _measure(
    label: str, settings: Settings, count: int, profile: str | None
) -> dict[str, float]:
    services = build_services(settings)
    await services.store.open()
    try:
        await seed_demo(services.registry, services.accounts, date.today())
        who = await _principal(services)
        rng = random.Random(7)
        tag = uuid.uuid4().hex[:6]
        batches: list[PushRequest] = []
        for start in range(0, count, BATCH):
            muts = [
                Mutation(
                    mid=f"{tag}:{i}",
                    kind="finding",
                    id=f"f-{tag}-{i:06d}",
                    base_rev=0,
                    fields={
                        "inspection_id": INSPECTION,
                        "title": f"Finding {i}: deviation record incomplete",
                        "objective_evidence": _text(rng),
                    },
                    hlc=f"{int(time.time() * 1000):015d}.{i:05d}.bench",
                    device_time=datetime.now(UTC),
                )
                for i in range(start, min(start + BATCH, count))
            ]
            batches.append(PushRequest(mutations=muts, app_version="bench"))

        async def run() -> None:
            for b in batches:
                answer = await services.engine.push(who, b)
                if any(type(r).__name__ != "Applied" for r in answer.results):
                    raise SystemExit(f"{label}: a mutation was not applied")

        prof = cProfile.Profile() if profile else None
        pg0, cpu0, t0 = _postgres_cpu(), time.process_time(), time.perf_counter()
        if prof:
            prof.enable()
        await run()
        if prof:
            prof.disable()
            prof.dump_stats(profile)  # type: ignore[arg-type]
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        pg = _postgres_cpu() - pg0
        # the pull: another inspector of the inspection, from no cursor, pages of 1,000
        reader = await _principal(services, "insp.js2")
        pulled = 0
        cursor: str | None = None
        pg0, cpu0, t0 = _postgres_cpu(), time.process_time(), time.perf_counter()
        while True:
            page = await services.engine.pull(
                reader, PullRequest(cursor=cursor, limit=1000), json_data=True
            )
            pulled += len(page.changes)
            cursor = page.cursor
            if not page.has_more:
                break
        pull_wall = time.perf_counter() - t0
        pull_cpu = time.process_time() - cpu0
        pull_pg = _postgres_cpu() - pg0
        spec = getattr(services.store, "speculation", None)
        busy = services.store.writer_busy_seconds()
    finally:
        await services.store.close()
    per = 10_000 / count
    figures = {"rate": count / wall, "cpu": cpu * per, "pg": pg * per, "pull": pulled / pull_wall}
    print(
        f"{label:>10}: push {count:,} mutations in {wall:.2f} s = {figures['rate']:,.0f}/s,"
        f" CPU s per 10,000: this process {figures['cpu']:.2f},"
        f" postgres {figures['pg']:.2f}\n{'':>12}pull {pulled:,} records in {pull_wall:.2f} s"
        f" = {figures['pull']:,.0f}/s, CPU s per 10,000: this process"
        f" {pull_cpu * 10_000 / pulled:.2f}, postgres {pull_pg * 10_000 / pulled:.2f}"
        f"\n{'':>12}write lock held {busy:.2f} s in all"
        + (f"; speculative push batches {spec}" if spec and any(spec.values()) else ""),
        flush=True,
    )
    return figures


def _admin(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--profile", default=None, help="write a cProfile of the PostgreSQL run")
    ap.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--only", choices=("sqlite", "postgres"), default=None)
    args = ap.parse_args()
    secret = "bench-secret-" + "x" * 40
    runs: list[tuple[str, Callable[[], Awaitable[dict[str, float]]]]] = []
    with tempfile.TemporaryDirectory(prefix="inspectsync-push-") as tmp:
        name = f"bench_push_{uuid.uuid4().hex[:8]}"
        base = conninfo_to_dict(args.database_url)
        pg_url = (
            f"postgresql://{base.get('user') or 'postgres'}@{base.get('host') or '127.0.0.1'}"
            f":{base.get('port') or 5432}/{name}"
        )

        def sqlite_run(n: int) -> Callable[[], Awaitable[dict[str, float]]]:
            def go() -> Awaitable[dict[str, float]]:
                d = Path(tmp) / f"sqlite{n}"
                d.mkdir()
                settings = Settings(data_dir=str(d), jwt_secret=secret)
                return _measure("SQLite", settings, args.count, None)

            return go

        def pg_run(n: int) -> Callable[[], Awaitable[dict[str, float]]]:
            async def go() -> dict[str, float]:
                d = Path(tmp) / f"pg{n}"
                d.mkdir()
                _admin(args.database_url, f'DROP DATABASE IF EXISTS "{name}"')
                _admin(args.database_url, f'CREATE DATABASE "{name}"')
                settings = Settings(data_dir=str(d), jwt_secret=secret, database_url=pg_url)
                return await _measure("PostgreSQL", settings, args.count, args.profile)

            return go

        for n in range(args.rounds):
            if args.only != "postgres":
                runs.append(("sqlite", sqlite_run(n)))
            if args.only != "sqlite":
                runs.append(("postgres", pg_run(n)))
        print(
            f"push of {args.count:,} new findings in batches of {BATCH}, in process;"
            f" PostgreSQL at {base.get('host', '?')}:{base.get('port', '?')}",
            flush=True,
        )
        results: dict[str, list[dict[str, Any]]] = {}
        try:
            for kind, go in runs:
                results.setdefault(kind, []).append(await go())
        finally:
            if args.only != "sqlite":
                _admin(args.database_url, f'DROP DATABASE IF EXISTS "{name}"')
    if "sqlite" in results and "postgres" in results:
        for what in ("rate", "pull"):
            best = {k: max(r[what] for r in v) for k, v in results.items()}
            ratio = best["postgres"] / best["sqlite"]
            name = "push" if what == "rate" else "pull"
            print(f"PostgreSQL/SQLite {name} rate (best of each): {ratio:.0%}")


if __name__ == "__main__":
    asyncio.run(main())
