"""Overload: many tablets pulling and pushing at once against the real server process.

Not a timed test: a script that reports figures. It starts ``python -m server.cli serve
--demo`` on a fresh data directory and a free port on 127.0.0.1 (see bench/run.py),
starts every demo inspection (so each demo inspector has writable inspections with
pinned checklists), logs in ``--connections`` tablets of the four demo inspectors (one
device login and one HTTP connection each) and brings each up to date with a pull.
Then, for ``--duration`` seconds, every tablet loops as a tablet syncing without pause
would: push a batch (new findings, an edit of one of its own findings, answers to
checklist items of its inspections, with the revision it last saw as ``base_rev``:
most in its own repeat of a repeatable section, ``--shared`` of them to items the whole
team answers, where merges and conflicts happen), then pull to the end of its feed.
Every request has a client timeout; a push that timed out is resent with the same body
(same mids), as a tablet does. A ``503`` or ``429`` is retried after its
``Retry-After`` (at least), with jitter.

It prints the requests made, the share answered 503, p50/p95/p99/max latency of the
answered (non-503) requests, timeouts, the server's peak RSS (VmHWM, and the highest
VmRSS sampled every 0.2 s), the count of 5xx answers other than 503 (must be 0) and,
after the server has stopped, the acknowledged writes lost (must be 0): every mutation
the server answered ``applied``, ``merged`` or ``conflict`` (or a duplicate of one) must
be in the database, read-only: in the mutation log, the record
at the acknowledged revision or later, each value pushed the record's value now, kept in
a conflict of that field, or changed by a later revision.

Usage (from the repository root)::

    .venv/bin/python bench/load.py                          # 200 connections, 60 s
    .venv/bin/python bench/load.py --connections 50 --duration 15
    .venv/bin/python bench/load.py --env INSPECTSYNC_MAX_IN_FLIGHT=16

Exit status 0 when every target is met, 1 when one is missed, 2 when the run failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import msgspec  # noqa: E402

from bench.run import (  # noqa: E402
    BenchError,
    Server,
    evidence_text,
    fs_type,
    percentile,
    proc_status_kib,
)
from server.demo import DEMO_PASSWORD  # noqa: E402
from server.settings import Settings  # noqa: E402
from sync.protocol import (  # noqa: E402
    Applied,
    Conflicted,
    Duplicate,
    Merged,
    Mutation,
    PullRequest,
    PushRequest,
    PushResponse,
    Rejected,
    encode,
)

JSON = "application/json"
PUSH_PATH = "/api/v1/sync/push"
PULL_PATH = "/api/v1/sync/pull"
INSPECTORS = ("insp.js1", "insp.js2", "insp.zj1", "insp.zj2")
PLANNED = ("insp-joint-conj", "insp-fill-pai", "insp-conj-forcause")  # demo: not started

OVERLOAD_SETTINGS = (
    "max_in_flight",
    "max_pushes_in_flight",
    "max_event_streams",
    "overload_retry_after_seconds",
)

TARGET_P99_S = 2.0
TARGET_RSS_MB = 200.0


# --- what a tablet reads from a pull page ----------------------------------------------


class _ChangeLite(msgspec.Struct):
    """A change as this script needs it: the record's revision (its base for edits)."""

    kind: str
    id: str
    rev: int
    deleted: bool = False


class _PageLite(msgspec.Struct):
    cursor: str
    has_more: bool
    changes: list[_ChangeLite]
    resync_required: bool = False


class _ChangeFull(msgspec.Struct):
    kind: str
    id: str
    rev: int
    deleted: bool = False
    data: dict[str, Any] | None = None


class _PageFull(msgspec.Struct):
    cursor: str
    has_more: bool
    changes: list[_ChangeFull]


_lite = msgspec.json.Decoder(_PageLite)
_full = msgspec.json.Decoder(_PageFull)
_push = msgspec.json.Decoder(PushResponse)


# --- figures -----------------------------------------------------------------------------


@dataclass
class Stats:
    """Every request of the measured stretch."""

    answered: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter[int] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)  # 503 by route
    refused_seconds: list[float] = field(default_factory=list)
    timeouts: Counter[str] = field(default_factory=Counter)
    transport_errors: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)  # 5xx other than 503
    requests: int = 0

    def all_answered(self) -> list[float]:
        return [x for xs in self.answered.values() for x in xs]


@dataclass
class Ack:
    """A mutation pushed and the result the server answered for it."""

    user_id: str
    mutation: Mutation
    result: Any  # Applied | Merged | Conflicted | Rejected (a duplicate's original)


class RssSampler:
    """The server's VmRSS every ``interval`` seconds, on a thread (the event loop of the
    tablets is busy)."""

    def __init__(self, pid: int, interval: float = 0.2, every: float = 5.0) -> None:
        self.pid = pid
        self.interval = interval
        self.every = every
        self.peak_kib = 0
        self.samples = 0
        self.timeline: list[int] = []  # the highest VmRSS of each ``every`` seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            kib = proc_status_kib(self.pid, "VmRSS")
            self.peak_kib = max(self.peak_kib, kib)
            self.samples += 1
            slot = int((time.monotonic() - start) / self.every)
            while len(self.timeline) <= slot:
                self.timeline.append(0)
            self.timeline[slot] = max(self.timeline[slot], kib)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


async def loop_lag(stop: asyncio.Event, into: list[float]) -> None:
    """How late a 50 ms tick of this script's own event loop runs: a busy client adds
    that much to every latency it measures."""
    while not stop.is_set():
        t0 = time.perf_counter()
        await asyncio.sleep(0.05)
        into.append(max(0.0, time.perf_counter() - t0 - 0.05))


# --- a tablet ----------------------------------------------------------------------------


class Refused(Exception):
    """The server answered something a tablet cannot go on from (a 4xx)."""


class TimedOut(Exception):
    """No answer within the client's timeout."""


class Tablet:
    """A demo inspector's tablet: its own device login and HTTP connection, a cursor,
    the revisions it last saw, numbered mids and an HLC."""

    def __init__(
        self,
        base: str,
        username: str,
        index: int,
        timeout: float,
        tag: str,
        *,
        impatient: bool = False,
    ) -> None:
        self.username = username
        self.impatient = impatient
        self.index = index
        self.tag = tag
        self.http = httpx.AsyncClient(
            base_url=base,
            timeout=timeout,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )
        self.rng = random.Random(index)
        self.token = ""
        self.device_id = ""
        self.user_id = ""
        self.cursor: str | None = None
        self.revs: dict[tuple[str, str], int] = {}
        self.findings: list[str] = []  # this tablet's own findings
        self.items: list[Item] = []  # what it can answer in the inspections it works on
        self.own_items: list[Item] = []  # those in repeatable sections
        self.inspections: list[str] = []
        self.n = 0
        self._wall = 0
        self._counter = 0

    async def close(self) -> None:
        await self.http.aclose()

    # plumbing

    async def _send(
        self, path: str, *, content: bytes | None = None, json: Any = None, auth: bool = True
    ) -> httpx.Response:
        headers = {"Accept": JSON}
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        if content is not None:
            headers["Content-Type"] = JSON
        try:
            return await self.http.post(path, content=content, json=json, headers=headers)
        except httpx.TimeoutException as exc:
            raise TimedOut(str(exc)) from exc

    async def call(
        self,
        path: str,
        label: str,
        *,
        content: bytes | None = None,
        json: Any = None,
        auth: bool = True,
        stats: Stats | None = None,
        until: float = float("inf"),
    ) -> httpx.Response | None:
        """POST until answered (not 503/429, no timeout, no dropped connection) or
        ``until`` passes (None then). 503/429 wait their Retry-After, with jitter."""
        relogged = False
        failures = 0
        while time.monotonic() < until:
            t0 = time.perf_counter()
            try:
                r = await self._send(path, content=content, json=json, auth=auth)
            except TimedOut:
                if stats is not None:
                    stats.requests += 1
                    stats.timeouts[label] += 1
                continue  # resend the same body at once, as a tablet does
            except httpx.TransportError as exc:
                if stats is not None:
                    stats.requests += 1
                    stats.transport_errors[f"{label} {type(exc).__name__}"] += 1
                failures += 1
                await asyncio.sleep(min(2.0, 0.05 * 2**failures) * self.rng.uniform(1, 2))
                continue
            seconds = time.perf_counter() - t0
            if stats is not None:
                stats.requests += 1
                stats.statuses[r.status_code] += 1
            if r.status_code in (503, 429):
                if stats is not None:
                    stats.refused[label] += 1
                    stats.refused_seconds.append(seconds)
                if self.impatient:  # an adversarial tablet: straight back
                    await asyncio.sleep(0)
                    continue
                try:
                    wait = float(r.headers.get("Retry-After", "1"))
                except ValueError:
                    wait = 1.0
                await asyncio.sleep(wait * self.rng.uniform(1.0, 2.0))
                continue
            if stats is not None:
                stats.answered[label].append(seconds)
                if r.status_code >= 500:
                    stats.server_errors.append(f"{label} {r.status_code} {r.text[:200]}")
            if r.status_code == 401 and auth and not relogged:
                relogged = True
                await self.login(until=until)
                continue
            if r.status_code >= 500:
                continue
            return r
        return None

    async def login(self, until: float = float("inf")) -> None:
        device = {"id": self.device_id} if self.device_id else {"name": f"load tablet {self.index}"}
        r = await self.call(
            "/api/v1/auth/login",
            "login",
            json={"username": self.username, "password": DEMO_PASSWORD, "device": device},
            auth=False,
            until=until,
        )
        if r is None or r.status_code != 200:
            raise BenchError(f"login of {self.username}: {r and r.status_code} {r and r.text}")
        body = r.json()
        self.token = body["access_token"]
        self.device_id = body["device_id"]
        self.user_id = body["user_id"]

    def hlc(self) -> str:
        wall = int(time.time() * 1000)
        if wall > self._wall:
            self._wall, self._counter = wall, 0
        else:
            self._counter += 1
        return f"{self._wall:015d}.{self._counter:05d}.{self.device_id}"

    def mutation(self, kind: str, record_id: str, fields: dict[str, Any]) -> Mutation:
        self.n += 1
        return Mutation(
            mid=f"{self.device_id}:{self.n}",
            kind=kind,
            id=record_id,
            base_rev=self.revs.get((kind, record_id), 0),
            fields=fields,
            hlc=self.hlc(),
            device_time=datetime.now(UTC),
        )

    # setup

    async def first_sync(self) -> None:
        """Pull everything (decoded in full, once): the inspections this tablet may
        write to and the checklist items it can answer."""
        versions: dict[str, dict[str, Any]] = {}
        inspections: dict[str, dict[str, Any]] = {}
        while True:
            body = encode(PullRequest(cursor=self.cursor, limit=1000), JSON)
            r = await self.call(PULL_PATH, "pull", content=body)
            if r is None or r.status_code != 200:
                raise BenchError(f"first pull of {self.username}: {r and r.text[:300]}")
            page = _full.decode(r.content)
            for c in page.changes:
                self.revs[(c.kind, c.id)] = c.rev
                if c.data is None:
                    continue
                if c.kind == "checklist_version":
                    versions[c.id] = c.data
                elif c.kind == "inspection":
                    inspections[c.id] = c.data
            self.cursor = page.cursor
            if not page.has_more:
                break
        for iid, insp in sorted(inspections.items()):
            if insp.get("status") != "in_progress":
                continue
            self.inspections.append(iid)
            for link, vid in sorted(insp.get("pins", {}).items()):
                content = versions.get(vid, {}).get("content", {})
                self.items.extend(answerable(iid, link, content))
        self.own_items = [i for i in self.items if i.repeatable]
        if not self.inspections or not self.items:
            raise BenchError(f"{self.username} has no inspection in progress to write to")

    # the measured loop

    def batch(self, size: int, shared: float) -> list[Mutation]:
        """New findings, an edit of an own finding, answers: ``size`` mutations.

        An answer is, with probability ``shared``, to an item the whole team answers
        (repeat 0: the tablets of an inspection meet there, with merges and conflicts),
        else to an item of a repeatable section in this tablet's own repeat (its own
        filling line, say), which only it edits."""
        out: list[Mutation] = []
        rng = self.rng
        for _ in range(max(1, size // 5)):
            fid = f"f-load-{self.tag}-{self.index:03d}-{self.n + 1:06d}"
            out.append(
                self.mutation(
                    "finding",
                    fid,
                    {
                        "inspection_id": rng.choice(self.inspections),
                        "title": f"Load tablet {self.index}: record incomplete",
                        "objective_evidence": evidence_text(rng, 600),
                        "classification": "other",
                    },
                )
            )
            self.findings.append(fid)
        if self.findings and len(out) < size:
            fid = rng.choice(self.findings)
            note = f"edited on load tablet {self.index} at {time.time():.3f}"
            out.append(self.mutation("finding", fid, {"title": note}))
        while len(out) < size:
            if self.own_items and rng.random() >= shared:
                item, repeat = rng.choice(self.own_items), self.index + 1
            else:
                item, repeat = rng.choice(self.items), 0
            note = f"Load tablet {self.index}: {item.answer} seen at {time.time():.3f}"
            out.append(
                self.mutation(
                    "response", f"{item.prefix}~{repeat}", {"value": item.value, "note": note}
                )
            )
        return out

    async def push(
        self, size: int, shared: float, stats: Stats, until: float, acks: list[Ack]
    ) -> bool:
        mutations = self.batch(size, shared)
        body = encode(PushRequest(mutations=mutations, app_version="bench-load"), JSON)
        r = await self.call(PUSH_PATH, "push", content=body, stats=stats, until=until)
        if r is None:
            return False  # not answered before the end: its outcome is unknown
        if r.status_code != 200:
            raise Refused(f"push: {r.status_code} {r.text[:300]}")
        answer = _push.decode(r.content)
        by_mid = {m.mid: m for m in mutations}
        for res in answer.results:
            original = res.original if isinstance(res, Duplicate) else res
            m = by_mid.get(res.mid)
            if m is None:
                continue
            acks.append(Ack(self.user_id, m, original))
            if isinstance(original, Applied | Merged | Conflicted):
                key = (m.kind, m.id)
                self.revs[key] = max(self.revs.get(key, 0), original.rev)
        return True

    async def pull(self, stats: Stats, until: float, max_pages: int) -> bool:
        for _ in range(max_pages):
            body = encode(PullRequest(cursor=self.cursor, limit=1000), JSON)
            r = await self.call(PULL_PATH, "pull", content=body, stats=stats, until=until)
            if r is None:
                return False
            if r.status_code != 200:
                raise Refused(f"pull: {r.status_code} {r.text[:300]}")
            page = _lite.decode(r.content)
            if page.resync_required:
                raise Refused("the server asked for a resync")
            for c in page.changes:
                self.revs[(c.kind, c.id)] = c.rev
            self.cursor = page.cursor
            if not page.has_more:
                return True
        return True

    async def run(
        self,
        until: float,
        batch: int,
        shared: float,
        stats: Stats,
        acks: list[Ack],
        errors: list[str],
    ) -> None:
        # spread the first requests over a second, as tablets waking up do
        await asyncio.sleep(self.rng.uniform(0, 1.0))
        try:
            while time.monotonic() < until:
                if not await self.push(batch, shared, stats, until, acks):
                    return
                if not await self.pull(stats, until, max_pages=20):
                    return
        except Refused as exc:
            errors.append(f"{self.username} tablet {self.index}: {exc}")


class Item(msgspec.Struct, frozen=True):
    """A checklist item a tablet can answer: the response id is ``prefix~repeat``."""

    prefix: str  # inspection~link~item
    answer: str
    value: Any
    repeatable: bool


def answerable(iid: str, link: str, content: dict[str, Any]) -> list[Item]:
    """Items of a pinned checklist a tablet can answer validly without a photo: yes/no/NA
    (yes, unless yes needs evidence), text, and numbers inside their limits."""
    out: list[Item] = []
    for section in content.get("sections", []):
        repeatable = bool(section.get("repeatable"))
        for item in section.get("items", []):
            rule = item.get("evidence") or {}
            needs = set(rule.get("when_answer_in", ()))
            answer = item.get("answer")
            value: Any
            if answer == "yes_no_na" and "yes" not in needs:
                value = "yes"
            elif answer == "text" and not needs:
                value = "Records reviewed; see note."
            elif answer == "number" and not needs:
                low, high = item.get("min"), item.get("max")
                if low is not None and high is not None:
                    value = (low + high) / 2
                else:
                    value = low if low is not None else (high if high is not None else 1)
            else:
                continue
            out.append(Item(f"{iid}~{link}~{item['key']}", answer, value, repeatable))
    return out


# --- the run -----------------------------------------------------------------------------


async def start_inspections(base: str) -> None:
    """Every demo inspection in progress, so every demo inspector can write (a planned
    inspection refuses field data: inspection_not_started)."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        r = await http.post(
            "/api/v1/auth/login", json={"username": "admin", "password": DEMO_PASSWORD}
        )
        if r.status_code != 200:
            raise BenchError(f"admin login: {r.status_code} {r.text[:300]}")
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        for iid in PLANNED:
            r = await http.post(
                f"/api/v1/inspections/{iid}/transitions",
                json={"to": "in_progress"},
                headers=headers,
            )
            if r.status_code != 200:
                raise BenchError(f"start {iid}: {r.status_code} {r.text[:300]}")


@dataclass
class Outcome:
    stats: Stats
    acks: list[Ack]
    errors: list[str]
    wall: float
    lag: list[float]
    rss_before_kib: int
    rss_peak_kib: int
    hwm_kib: int
    health: Counter[int]
    rss_timeline: list[int]


async def probe_health(base: str, stop: asyncio.Event, into: Counter[int]) -> None:
    """GET /healthz and /readyz once a second on a connection of their own: they must
    be answered 200 throughout."""
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        while not stop.is_set():
            for path in ("/healthz", "/readyz"):
                try:
                    into[(await http.get(path)).status_code] += 1
                except httpx.HTTPError:
                    into[0] += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)


async def run_load(args: argparse.Namespace, server: Server) -> Outcome:
    tag = f"{int(time.time()) % 10**6:06d}"
    await start_inspections(server.base)
    tablets = [
        Tablet(
            server.base,
            INSPECTORS[i % len(INSPECTORS)],
            i,
            args.timeout,
            tag,
            impatient=args.ignore_retry_after,
        )
        for i in range(args.connections)
    ]
    try:
        print(f"  logging in {len(tablets)} tablets and bringing each up to date", flush=True)
        await asyncio.gather(*(t.login() for t in tablets))
        await asyncio.gather(*(t.first_sync() for t in tablets))
        rss_before = proc_status_kib(server.pid, "VmRSS")
        print(
            f"  ready: server VmRSS {rss_before / 1024:.1f} MB; {args.connections} tablets"
            f" x (push {args.batch} + pull to the end) for {args.duration:.0f} s;"
            f" {args.shared:.0%} of the answers to items the team shares",
            flush=True,
        )
        stats = Stats()
        acks: list[Ack] = []
        errors: list[str] = []
        lag: list[float] = []
        health: Counter[int] = Counter()
        stop = asyncio.Event()
        with RssSampler(server.pid) as sampler:
            lag_task = asyncio.create_task(loop_lag(stop, lag))
            health_task = asyncio.create_task(probe_health(server.base, stop, health))
            t0 = time.perf_counter()
            until = time.monotonic() + args.duration
            await asyncio.gather(
                *(t.run(until, args.batch, args.shared, stats, acks, errors) for t in tablets)
            )
            wall = time.perf_counter() - t0
            stop.set()
            await asyncio.gather(lag_task, health_task)
        hwm = proc_status_kib(server.pid, "VmHWM")
        return Outcome(
            stats,
            acks,
            errors,
            wall,
            lag,
            rss_before,
            sampler.peak_kib,
            hwm,
            health,
            sampler.timeline,
        )
    finally:
        await asyncio.gather(*(t.close() for t in tablets))


# --- verification against the database file (server stopped) -------------------------


def verify(db_path: Path, acks: list[Ack]) -> tuple[int, int, list[str]]:
    """(checked, lost, first problems): every acknowledged mutation is in the database
    (read-only), with its values current, kept in a conflict or changed later."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        keys = {r[0] for r in db.execute("SELECT key FROM mutations")}
        history: dict[tuple[str, str], list[tuple[int, str | None, str | None]]] = defaultdict(list)
        for kind, rid, rev, mid, new in db.execute(
            "SELECT kind, record_id, rev, mid, new FROM history"
            " WHERE kind IN ('finding', 'response') ORDER BY id"
        ):
            history[(kind, rid)].append((rev, mid, new))
        records: dict[tuple[str, str], tuple[int, int, dict[str, Any]]] = {}
        for kind, rid, rev, deleted, data in db.execute(
            "SELECT kind, id, rev, deleted, data FROM records WHERE kind IN ('finding', 'response')"
        ):
            records[(kind, rid)] = (rev, deleted, msgspec.json.decode(data) if data else {})
        kept: dict[tuple[str, str], list[Any]] = defaultdict(list)
        for (data,) in db.execute("SELECT data FROM records WHERE kind = 'conflict'"):
            c = msgspec.json.decode(data)
            kept[(c["record_id"], c["field"])].extend(v.get("value") for v in c["values"])
    finally:
        db.close()

    def changed_later(events: list[tuple[int, str | None, str | None]], rev: int, f: str) -> bool:
        for ev_rev, _mid, new in events:
            if ev_rev > rev and new and f in msgspec.json.decode(new):
                return True
        return False

    checked = lost = 0
    problems: list[str] = []
    for a in acks:
        m, r = a.mutation, a.result
        if not isinstance(r, Applied | Merged | Conflicted):
            continue
        checked += 1
        key = (m.kind, m.id)
        events = history.get(key, [])
        mine = [e for e in events if e[1] == m.mid]
        rec = records.get(key)
        bad = ""
        if f"{a.user_id}\x1f{m.mid}" not in keys:
            bad = "not in the mutation log"
        elif rec is None or rec[1]:
            bad = "record missing"
        elif rec[0] < r.rev:
            bad = f"record at rev {rec[0]}, acknowledged rev {r.rev}"
        else:
            # no event of its own: it changed nothing (the values were there already)
            at = max(e[0] for e in mine) if mine else r.rev
            for fname, value in m.fields.items():
                if rec[2].get(fname) == value or value in kept.get((m.id, fname), []):
                    continue
                if changed_later(events, at, fname):
                    continue
                bad = f"value of {fname} neither current, kept in a conflict nor changed later"
                break
        if bad:
            lost += 1
            if len(problems) < 10:
                problems.append(f"{m.mid} {m.kind} {m.id}: {bad}")
    return checked, lost, problems


# --- main ----------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def report(args: argparse.Namespace, out: Outcome) -> list[tuple[str, bool]]:
    s = out.stats
    answered = s.all_answered()
    refused = sum(s.refused.values())
    timeouts = sum(s.timeouts.values())
    print(f"\nRun: {out.wall:.1f} s, {args.connections} connections")
    print(
        f"  requests: {s.requests} ({s.requests / out.wall:.0f}/s): answered"
        f" {len(answered)}, 503/429 {refused} ({refused / max(1, s.requests):.1%}),"
        f" timeouts (> {args.timeout:.0f} s) {timeouts},"
        f" transport errors {sum(s.transport_errors.values())}"
        + (f" {dict(s.transport_errors)}" if s.transport_errors else "")
    )
    print(f"  HTTP statuses: {dict(sorted(s.statuses.items()))}")
    for label in ("push", "pull"):
        xs = s.answered.get(label, [])
        print(
            f"  {label}: {len(xs)} answered, {s.refused[label]} refused (503/429),"
            f" {s.timeouts[label]} timeouts; answered p50 {ms(percentile(xs, 50))},"
            f" p95 {ms(percentile(xs, 95))}, p99 {ms(percentile(xs, 99))},"
            f" max {ms(max(xs, default=0))}"
        )
    # a timeout is slower than any answer: count it so in the percentiles
    slow = answered + [float("inf")] * timeouts
    p50, p95, p99 = (percentile(slow, p) for p in (50, 95, 99))
    print(
        f"  answered (non-503) latency: p50 {ms(p50)}, p95 {ms(p95)}, p99 {ms(p99)},"
        f" max {ms(max(answered, default=0))}"
        + (f" (the {timeouts} timeouts counted as slowest)" if timeouts else "")
    )
    if s.refused_seconds:
        print(
            f"  503 answers: p50 {ms(percentile(s.refused_seconds, 50))},"
            f" p99 {ms(percentile(s.refused_seconds, 99))},"
            f" max {ms(max(s.refused_seconds))}"
        )
    results = Counter(type(a.result).__name__.lower() for a in out.acks)
    rejected = Counter(a.result.code for a in out.acks if isinstance(a.result, Rejected))
    print(
        f"  mutations answered: {len(out.acks)} ({len(out.acks) / out.wall:.0f}/s):"
        f" {dict(results)}" + (f"; rejected by code {dict(rejected)}" if rejected else "")
    )
    print(
        f"  server memory: VmRSS {out.rss_before_kib / 1024:.1f} MB before the run,"
        f" highest sampled {out.rss_peak_kib / 1024:.1f} MB, VmHWM {out.hwm_kib / 1024:.1f} MB"
    )
    print(
        "  server VmRSS over the run (highest of each 5 s, MB): "
        + ", ".join(f"{k / 1024:.0f}" for k in out.rss_timeline)
    )
    print(f"  health probes (/healthz, /readyz) during the run: {dict(out.health)}")
    lag = out.lag
    print(
        f"  this script's event loop lag: p99 {ms(percentile(lag, 99))}, max"
        f" {ms(max(lag, default=0))} (adds to every latency above)"
    )
    for e in s.server_errors[:5]:
        print(f"  5xx: {e}")
    for e in out.errors[:5]:
        print(f"  refused: {e}")
    peak_mb = max(out.hwm_kib, out.rss_peak_kib) / 1024
    return [
        (f"p99 of answered <= {TARGET_P99_S:.0f} s ({ms(p99)})", p99 <= TARGET_P99_S),
        (f"peak RSS <= {TARGET_RSS_MB:.0f} MB ({peak_mb:.1f} MB)", peak_mb <= TARGET_RSS_MB),
        (f"5xx other than 503: 0 ({len(s.server_errors)})", not s.server_errors),
        (
            f"health answered 200 throughout ({sum(out.health.values())} probes)",
            set(out.health) <= {200},
        ),
        (f"no tablet refused with a 4xx ({len(out.errors)})", not out.errors),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=200, help="tablets (default 200)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds (default 60)")
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="client timeout per request (default 10 s)"
    )
    parser.add_argument("--batch", type=int, default=10, help="mutations per push (default 10)")
    parser.add_argument(
        "--shared",
        type=float,
        default=0.1,
        help="share of the answers to items the whole team answers (repeat 0), the rest"
        " in the tablet's own repeat of a repeatable section (default 0.1; 1.0: every"
        " answer is to a shared item, so conflicts pile up on the same records)",
    )
    parser.add_argument(
        "--ignore-retry-after",
        action="store_true",
        help="tablets send a refused request again at once (an adversarial client),"
        " instead of waiting its Retry-After with jitter as sync/client.py does",
    )
    parser.add_argument(
        "--synchronous",
        choices=["FULL", "NORMAL"],
        default="FULL",
        help="INSPECTSYNC_SQLITE_SYNCHRONOUS for the server (default FULL)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for the server, e.g. INSPECTSYNC_MAX_IN_FLIGHT=16",
    )
    parser.add_argument("--data-root", default=None, help="where to make the temp data dir")
    parser.add_argument("--keep-data", action="store_true", help="keep the data dir")
    args = parser.parse_args(argv)

    # the server's own defaults for its overload bounds (bench/run.py raises them for
    # its own runs), unless this environment or --env sets them
    defaults = Settings()
    limits = {
        f"INSPECTSYNC_{name.upper()}": str(getattr(defaults, name)) for name in OVERLOAD_SETTINGS
    }
    for name, value in limits.items():
        os.environ.setdefault(name, value)
    for pair in args.env:
        name, sep, value = pair.partition("=")
        if not sep or not name.startswith("INSPECTSYNC_"):
            parser.error(f"--env wants INSPECTSYNC_NAME=VALUE, not {pair!r}")
        os.environ[name] = value
    data_dir = Path(tempfile.mkdtemp(prefix="inspectsync-load-", dir=args.data_root))
    server = Server(data_dir, args.synchronous)
    print(
        f"inspectsync load: {args.connections} connections for {args.duration:.0f} s\n"
        f"  machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}),"
        f" {platform.machine()}, Linux {platform.release()}; Python"
        f" {platform.python_version()}; load average {os.getloadavg()[0]:.2f}\n"
        f"  server: python -m server.cli serve --demo, data dir {data_dir}"
        f" ({fs_type(data_dir)}), INSPECTSYNC_SQLITE_SYNCHRONOUS={args.synchronous}"
        + "".join(f", {name}={os.environ[name]}" for name in limits)
        + "".join(f", {p}" for p in args.env if p.split("=", 1)[0] not in limits),
        flush=True,
    )
    outcome: Outcome | None = None
    try:
        server.start()
        print(f"  server pid {server.pid}, {server.base}", flush=True)
        outcome = asyncio.run(run_load(args, server))
    except (BenchError, httpx.HTTPError) as exc:
        print(f"\nLOAD RUN FAILED: {exc!r}", file=sys.stderr)
    finally:
        exit_code = server.stop()
    if outcome is None:
        print(f"server log (tail):\n{server.log_tail()}", file=sys.stderr)
        print(f"data dir kept for inspection: {data_dir}", file=sys.stderr)
        return 2

    verdicts = report(args, outcome)
    how = " (SIGTERM: uvicorn exits by the signal after a graceful shutdown)"
    print(
        f"\n[check] server stopped (exit code {exit_code}{how if exit_code == -15 else ''});"
        f" reading {server.db_path.name} read-only"
    )
    checked, lost, problems = verify(server.db_path, outcome.acks)
    print(f"  {checked} acknowledged mutations (applied, merged, conflict) checked: {lost} lost")
    for p in problems:
        print(f"  LOST {p}")
    log_text = server.log_path.read_text(errors="replace")
    print(f"  server log: {log_text.count('Traceback')} tracebacks")
    verdicts.append((f"acknowledged writes lost: 0 ({lost} of {checked})", lost == 0))

    print("\nTargets")
    for text, met in verdicts:
        print(f"  {'MET   ' if met else 'MISSED'} {text}")
    if args.keep_data:
        print(f"data kept in {data_dir}")
    else:
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0 if all(met for _, met in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
