"""Sync benchmark against the real server process, over real HTTP.

Starts ``python -m server.cli serve --demo`` on a fresh data directory and a free port
on 127.0.0.1 (SQLite ``synchronous=FULL``, the durable default, unless told otherwise),
then measures with httpx (asyncio):

1. push: 10,000 new findings (~1 KB each) in batches of 100, one tablet, sequentially;
   every result must be ``applied``. Then the same again as MessagePack.
2. pull: a second tablet pulls everything from no cursor in pages of 1,000.
3. fleet: 50 tablets at once, each pushing 100 mutations in batches of 20 and then
   pulling to the end; p50/p95/p99 latency of every push and pull request, 5xx count.
4. conflicts: 1,000 findings edited by two tablets from the same base.
5. peak server RSS (VmHWM of the server process).

After the server has stopped, the database file is read with sqlite3 to check that
every acknowledged mutation is there with the value pushed (current, or kept in a
conflict), was applied exactly once (one history row per mid, the acknowledged rev).

Usage (from the repository root)::

    .venv/bin/python bench/run.py            # full size
    .venv/bin/python bench/run.py --quick    # 10x smaller smoke run

``--database-url`` and ``--instances N`` run N instances over one PostgreSQL database;
``--instance-cpus X`` gives each its own CPU quota (``bench/cpu_budget.py``).

``docs/performance.md`` has the figures of a full run and what they mean.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import msgspec  # noqa: E402

from bench.cpu_budget import BudgetError, CpuBudget, Throttling  # noqa: E402
from server.demo import DEMO_PASSWORD  # noqa: E402
from sync.protocol import (  # noqa: E402
    MSGPACK,
    Applied,
    Change,
    Conflicted,
    Duplicate,
    Merged,
    Mutation,
    PullRequest,
    PullResponse,
    PushRequest,
    PushResponse,
    Rejected,
    decode,
    encode,
)

JSON = "application/json"
BENCH_SECRET = "bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
INSPECTION = "insp-ds-routine"
PUSH_PATH = "/api/v1/sync/push"
PULL_PATH = "/api/v1/sync/pull"

TARGET_PUSH = 20_000  # mutations/s
TARGET_PULL = 50_000  # records/s
TARGET_P99_MS = 250.0
TARGET_RSS_MB = 200.0

MAX_ATTEMPTS = 3  # per request: a 5xx or a dropped connection is retried (same body)
REQUEST_TIMEOUT = 120.0
CPU_PERIOD_MS = 100  # --instance-cpus: the CFS period (docs/performance.md, Session 7)


class BenchError(RuntimeError):
    """The benchmark cannot go on (the server refused something it must accept)."""


# --- payloads ----------------------------------------------------------------------

_WORDS = (
    "batch record",
    "deviation",
    "grade B corridor",
    "bioreactor",
    "viral filtration",
    "integrity test",
    "was not documented",
    "operator",
    "SOP",
    "within limits",
    "environmental monitoring",
    "settle plate",
    "chromatography column",
    "sanitisation",
    "the logbook",
    "showed",
    "on",
    "during",
    "the",
    "of",
    "and",
    "was observed",
    "cold chain",
    "-70 C",
    "drug substance",
    "harvest",
    "CAPA",
    "change control",
    "calibration",
    "out of specification",
)


def evidence_text(rng: random.Random, n_chars: int = 900) -> str:
    """About ``n_chars`` of plausible, varied objective-evidence text."""
    words: list[str] = []
    length = 0
    while length < n_chars:
        w = rng.choice(_WORDS)
        words.append(w)
        length += len(w) + 1
    text = " ".join(words)[:n_chars].rstrip()
    return text[0].upper() + text[1:] + "."


# --- statistics --------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (0 if empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Stats:
    """Latency and status of every HTTP request of one phase."""

    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0
    gave_up: int = 0

    def record(self, label: str, seconds: float, status: int) -> None:
        self.latency[label].append(seconds)
        self.statuses[status] += 1

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500)

    def all_latencies(self) -> list[float]:
        return [x for xs in self.latency.values() for x in xs]


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_pids(url: str) -> list[int]:
    """The PostgreSQL backends serving the benchmark's database (their CPU counts as the
    server's: SQLite's work is inside the server process). Other databases' backends on
    the same PostgreSQL (other programs on the machine) are left out."""
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        ).fetchall()
    return [int(r[0]) for r in rows]


class PgActivity:
    """What the benchmark database's backends are doing, sampled from
    ``pg_stat_activity`` every 10 ms on a thread of the client (``--pg-activity``; its
    CPU counts as the client's): on average how many run a statement, wait for the write
    lock (the advisory lock every write transaction takes) or for something else (the
    WAL's fsync at a commit, say), or sit idle in a transaction while their instance
    works between statements."""

    SQL = (
        "SELECT state, wait_event_type, wait_event FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples = 0
        self.seen: Counter[str] = Counter()  # backends in each state, summed over samples
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-activity", daemon=True)

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.wait(0.01):
                for state, kind, event in conn.execute(self.SQL).fetchall():
                    if state == "idle in transaction":
                        self.seen["idle in transaction"] += 1
                    elif state != "active":
                        continue
                    elif kind == "Lock" and event == "advisory":
                        self.seen["waiting for the write lock"] += 1
                    elif kind is None:
                        self.seen["running"] += 1
                    else:
                        self.seen[f"waiting {kind}:{event}"] += 1
                self.samples += 1

    def __enter__(self) -> PgActivity:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def describe(self) -> str:
        if not self.samples:
            return "no samples"
        top = ", ".join(f"{k} {n / self.samples:.2f}" for k, n in self.seen.most_common(5))
        return f"PostgreSQL backends on average ({self.samples} samples): {top or 'idle'}"


def proc_status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Meter:
    """Wall, server CPU and client CPU of one measured stretch; optionally a py-spy
    profile of the server during it (``--py-spy DIR``: collapsed stacks per phase)."""

    def __init__(
        self,
        pid: int,
        profile: Path | None = None,
        *,
        others: Sequence[int] = (),
        db: str = "",
        bases: Sequence[str] = (),
        budgets: Sequence[CpuBudget | None] = (),
        pg_activity: bool = False,
    ) -> None:
        self.pid = pid
        self.pg_activity = PgActivity(db) if pg_activity and db else None
        self.bases = list(bases)  # the instances' addresses: their /metrics
        self.busy = 0.0  # seconds the instances' writers held the write lock
        self.speculation: Counter[str] = Counter()  # push batches by outcome, all instances
        self.pids = [pid, *others]  # every server instance
        self.budgets = [b for b in budgets if b is not None]  # --instance-cpus
        self.instance_cpu: list[float] = []
        self.throttled: list[Throttling] = []
        self.db = db  # a PostgreSQL URL: count its backends' CPU too
        self.profile = profile
        self.wall = self.server_cpu = self.client_cpu = self.db_cpu = 0.0
        self._spy: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Meter:
        if self.profile is not None:
            self._spy = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--pid",
                    str(self.pid),
                    "--rate",
                    "250",
                    "--format",
                    "raw",
                    "--threads",
                    "--nonblocking",
                    "--output",
                    str(self.profile),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)  # let it attach before the clock starts
        # /metrics first, outside the measured stretch: a scrape reads the store's
        # gauges (missing evidence walks every finding), which is not the phase's work
        self._busy, self._speculation = scrape_metrics(self.bases)
        if self.pg_activity is not None:
            self.pg_activity.__enter__()
        self._throttled = [b.throttling() for b in self.budgets]
        self._w = time.perf_counter()
        self._s = [proc_cpu_seconds(p) for p in self.pids]
        self._db_start = {p: proc_cpu_seconds(p) for p in postgres_pids(self.db)} if self.db else {}
        self._c = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._w
        if self.pg_activity is not None:
            self.pg_activity.__exit__()
        self.instance_cpu = [
            proc_cpu_seconds(p) - s for p, s in zip(self.pids, self._s, strict=True)
        ]
        self.server_cpu = sum(self.instance_cpu)
        self.throttled = [
            b.throttling() - t for b, t in zip(self.budgets, self._throttled, strict=True)
        ]
        if self.db:  # backends that began during the stretch count whole
            pids = set(self._db_start) | set(postgres_pids(self.db))
            self.db_cpu = sum(
                max(0.0, proc_cpu_seconds(p) - self._db_start.get(p, 0.0)) for p in pids
            )
        self.client_cpu = time.process_time() - self._c
        busy, speculation = scrape_metrics(self.bases)  # after the clocks stopped
        self.busy = busy - self._busy
        self.speculation = speculation - self._speculation
        if self._spy is not None:
            self._spy.send_signal(signal.SIGINT)
            try:
                self._spy.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._spy.kill()
                self._spy.wait(timeout=10)

    def describe(self) -> str:
        if not self.wall:
            return "-"
        db = f", PostgreSQL CPU {self.db_cpu:.2f} s" if self.db else ""
        lock = f", write lock held {self.busy / self.wall:.0%} of it" if self.busy > 0 else ""
        text = (
            f"wall {self.wall:.2f} s{lock}, server CPU {self.server_cpu:.2f} s"
            f" ({self.server_cpu / self.wall:.0%} of one core){db}, client CPU"
            f" {self.client_cpu:.2f} s"
        )
        if self.speculation:
            # push batches by how they met the write lock: merged ahead and kept, rerun,
            # declined; or locked (found it free and ran under it)
            text += "; push batches " + ", ".join(
                f"{k} {self.speculation[k]}" for k in ("locked", "kept", "rerun", "declined")
            )
        if self.budgets:
            # each instance's CPU and throttling, and the others' cores: the instances are
            # the bottleneck if throttled while PostgreSQL and the client fit beside them
            core = ", ".join(f"{c / self.wall:.2f}" for c in self.instance_cpu)
            thr = ", ".join(
                f"{t.seconds:.2f} s ({t.throttled} of {t.periods} periods)" for t in self.throttled
            )
            text += (
                f"\n    cores used: instances {core}"
                + (f", PostgreSQL {self.db_cpu / self.wall:.2f}" if self.db else "")
                + f", client {self.client_cpu / self.wall:.2f}; instances throttled {thr}"
            )
        if self.pg_activity is not None:
            text += f"\n    {self.pg_activity.describe()}"
        return text

    def cpu_per(self, count: int, per: int = 10_000) -> float:
        """Server CPU seconds (all instances, plus PostgreSQL's) per ``per`` items."""
        return (self.server_cpu + self.db_cpu) / count * per


# --- the server process ------------------------------------------------------------


def scrape_metrics(bases: list[str]) -> tuple[float, Counter[str]]:
    """The sums over the instances' /metrics of ``inspectsync_writer_busy_seconds`` and of
    ``inspectsync_push_speculation_batches`` by outcome (the benchmark's client is on
    their machine, which /metrics answers without a token)."""
    total = 0.0
    speculation: Counter[str] = Counter()
    tag = 'inspectsync_push_speculation_batches{outcome="'
    for base in bases:
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("inspectsync_writer_busy_seconds "):
                    total += float(line.split()[1])
                elif line.startswith(tag):
                    outcome, value = line[len(tag) :].split('"} ')
                    speculation[outcome] += int(float(value))
    return total, speculation


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fs_type(path: Path) -> str:
    """The file system type of the mount holding ``path`` (from /proc/mounts)."""
    best, kind = "", "?"
    try:
        real = str(path.resolve())
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            mount = parts[1]
            if (real == mount or real.startswith(mount.rstrip("/") + "/")) and len(mount) > len(
                best
            ):
                best, kind = mount, parts[2]
    except OSError:
        pass
    return kind


class Server:
    def __init__(
        self,
        data_dir: Path,
        synchronous: str,
        database_url: str = "",
        budget: CpuBudget | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.synchronous = synchronous
        self.database_url = database_url
        self.budget = budget  # --instance-cpus: the process runs in this cgroup
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def db_path(self) -> Path:
        return self.data_dir / "inspectsync.db"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        env = {
            **os.environ,
            "INSPECTSYNC_PASSWORD_TIME_COST": "1",
            "INSPECTSYNC_PASSWORD_MEMORY_KIB": "1024",
            "INSPECTSYNC_SQLITE_SYNCHRONOUS": self.synchronous,
            "INSPECTSYNC_DATABASE_URL": self.database_url,
            # instances must sign alike (and must not race to make a demo secret)
            "INSPECTSYNC_JWT_SECRET": BENCH_SECRET,
            # the fleet phases send 50 requests at once to measure the stack, not the
            # shedding past the overload bounds (bench/load.py measures that): bounds
            # above 50 unless the environment sets them
            "INSPECTSYNC_MAX_IN_FLIGHT": os.environ.get("INSPECTSYNC_MAX_IN_FLIGHT", "128"),
            "INSPECTSYNC_MAX_PUSHES_IN_FLIGHT": os.environ.get(
                "INSPECTSYNC_MAX_PUSHES_IN_FLIGHT", "128"
            ),
        }
        for name in (
            "INSPECTSYNC_DB",
            "INSPECTSYNC_DATA_DIR",
            "INSPECTSYNC_PORT",
            "INSPECTSYNC_EVIDENCE_DIR",
        ):
            env.pop(name, None)
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "server.cli",
                "serve",
                "--demo",
                "--data-dir",
                str(self.data_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        if self.budget is not None:
            self.budget.add(self.proc.pid)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"server exited at start:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise BenchError(f"server did not become ready in 60 s:\n{self.log_tail()}")

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 20 s. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        self._log.close()
        return self.proc.returncode

    def peak_rss_mb(self) -> float | None:
        """The server's peak resident set (VmHWM), or None if it is gone."""
        try:
            return proc_status_kib(self.pid, "VmHWM") / 1024
        except (OSError, AssertionError, ValueError):
            return None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


# --- a tablet ----------------------------------------------------------------------


@dataclass
class Ack:
    """A mutation pushed and the result the server acknowledged for it."""

    phase: str
    user_id: str
    mutation: Mutation
    result: Any


class Tablet:
    """Just enough of a tablet: a device login, an HLC, numbered mids, push and pull."""

    def __init__(
        self, http: httpx.AsyncClient, username: str, name: str, accept_encoding: str | None
    ) -> None:
        self.http = http
        self.username = username
        self.name = name
        self.accept_encoding = accept_encoding
        self.device_id = ""
        self.user_id = ""
        self.token = ""
        self.n = 0
        self._wall = 0
        self._counter = 0

    async def login(self) -> None:
        device = {"id": self.device_id} if self.device_id else {"name": self.name}
        r = await self.http.post(
            "/api/v1/auth/login",
            json={"username": self.username, "password": DEMO_PASSWORD, "device": device},
        )
        if r.status_code != 200:
            raise BenchError(f"login of {self.username} failed: {r.status_code} {r.text[:300]}")
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
        # "%015d.%05d.%s" % (wall_ms, counter, device_id)
        return f"{self._wall:015d}.{self._counter:05d}.{self.device_id}"

    def mutation(self, record_id: str, fields: dict[str, Any], base_rev: int = 0) -> Mutation:
        self.n += 1
        return Mutation(
            mid=f"{self.device_id}:{self.n}",
            kind="finding",
            id=record_id,
            base_rev=base_rev,
            fields=fields,
            hlc=self.hlc(),
            device_time=datetime.now(UTC),
        )

    async def post(self, path: str, body: bytes, media: str, stats: Stats, label: str) -> bytes:
        """POST with bounded retries of 5xx / dropped connections; raises on 4xx."""
        relogged = False
        for _ in range(MAX_ATTEMPTS + 1):
            headers = {
                "Authorization": f"Bearer {self.token}",
                "Content-Type": media,
                "Accept": media,
            }
            if self.accept_encoding is not None:
                headers["Accept-Encoding"] = self.accept_encoding
            t0 = time.perf_counter()
            try:
                r = await self.http.post(path, content=body, headers=headers)
            except httpx.TransportError:
                stats.transport_errors += 1
                continue
            stats.record(label, time.perf_counter() - t0, r.status_code)
            if r.status_code == 200:
                return r.content
            if r.status_code == 401 and not relogged:  # access token expired: log in again
                relogged = True
                await self.login()
                continue
            if r.status_code >= 500:
                continue
            raise BenchError(f"{path} answered {r.status_code}: {r.text[:500]}")
        stats.gave_up += 1
        raise BenchError(f"{path}: no answer after {MAX_ATTEMPTS} attempts")

    async def push(
        self, mutations: list[Mutation], stats: Stats, media: str = JSON, body: bytes | None = None
    ) -> PushResponse:
        if body is None:
            body = encode(PushRequest(mutations=mutations, app_version="bench"), media)
        raw = await self.post(PUSH_PATH, body, media, stats, "push")
        answer: PushResponse = decode(raw, PushResponse, media)
        if len(answer.results) != len(mutations):
            raise BenchError(f"{len(mutations)} mutations pushed, {len(answer.results)} results")
        return answer

    async def pull_to_end(
        self,
        cursor: str | None,
        stats: Stats,
        *,
        limit: int,
        max_pages: int,
        media: str = JSON,
        sink: Callable[[Change], None] | None = None,
    ) -> tuple[int, str | None, int]:
        """Pull until ``has_more`` is false. Returns (changes, cursor, pages)."""
        count = 0
        for page_no in range(1, max_pages + 1):
            body = encode(PullRequest(cursor=cursor, limit=limit), media)
            raw = await self.post(PULL_PATH, body, media, stats, "pull")
            page: PullResponse = decode(raw, PullResponse, media)
            if page.resync_required:
                raise BenchError("the server asked for a resync")
            count += len(page.changes)
            if sink is not None:
                for c in page.changes:
                    sink(c)
            cursor = page.cursor
            if not page.has_more:
                return count, cursor, page_no
        raise BenchError(f"pull did not reach the end in {max_pages} pages")


def batches(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def result_status(result: Any) -> str:
    if isinstance(result, Applied):
        return "applied"
    if isinstance(result, Merged):
        return "merged"
    if isinstance(result, Conflicted):
        return "conflict"
    if isinstance(result, Rejected):
        return "rejected"
    if isinstance(result, Duplicate):
        return "duplicate"
    return type(result).__name__


# --- the benchmark -----------------------------------------------------------------


@dataclass
class Figures:
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, value: str, target: str = "", met: bool | None = None) -> None:
        verdict = "" if met is None else ("MET" if met else "MISSED")
        self.rows.append((name, value, target, verdict))


class RoundRobin(httpx.AsyncHTTPTransport):
    """Several instances behind one address, as a load balancer spreads them: each
    request goes to the next instance's port. In the client, so that no proxy process
    takes a share of the two cores."""

    def __init__(self, ports: list[int], **kw: Any) -> None:
        super().__init__(**kw)
        self.ports = ports
        self.next = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.next = (self.next + 1) % len(self.ports)
        request.url = request.url.copy_with(port=self.ports[self.next])
        return await super().handle_async_request(request)


def transport(servers: list[Server], **kw: Any) -> httpx.AsyncHTTPTransport:
    if len(servers) == 1:
        return httpx.AsyncHTTPTransport(**kw)
    return RoundRobin([s.port for s in servers], **kw)


class Bench:
    def __init__(
        self, args: argparse.Namespace, servers: list[Server], http: httpx.AsyncClient
    ) -> None:
        self.args = args
        self.servers = servers
        self.server = servers[0]
        self.http = http
        self.scale = 10 if args.quick else 1
        self.rng = random.Random(20260101)
        self.acks: list[Ack] = []
        self.figures = Figures()
        self.run_tag = f"{int(time.time()) % 10**6:06d}"
        self.accept_encoding = "identity" if args.no_gzip else None
        self.cursors: dict[str, str | None] = {}
        self.phase4: dict[str, Any] = {}
        self.device_clients: list[httpx.AsyncClient] = []

    def n(self, full: int) -> int:
        return max(1, full // self.scale)

    def meter(self, name: str) -> Meter:
        spy = self.args.py_spy
        kw: dict[str, Any] = {
            "others": [s.pid for s in self.servers[1:]],
            "db": self.args.database_url,
            "bases": [s.base for s in self.servers],
            "budgets": [s.budget for s in self.servers],
            "pg_activity": self.args.pg_activity,
        }
        if spy is None:
            return Meter(self.server.pid, **kw)
        Path(spy).mkdir(parents=True, exist_ok=True)
        return Meter(self.server.pid, Path(spy) / f"{name}.txt", **kw)

    def memory(self, when: str) -> None:
        pid = self.server.pid
        self.log(
            f"  server memory {when}: VmRSS {proc_status_kib(pid, 'VmRSS') / 1024:.1f} MB,"
            f" VmHWM {proc_status_kib(pid, 'VmHWM') / 1024:.1f} MB"
        )

    def tablet(self, username: str, name: str) -> Tablet:
        return Tablet(self.http, username, name, self.accept_encoding)

    def device(self, username: str, name: str) -> Tablet:
        """A fleet tablet with its own HTTP client and connection, as a real device
        has. One shared client for 50 tablets spent about half of the client's CPU in
        httpcore's pool, which scans every pooled connection on each request."""
        http = httpx.AsyncClient(
            base_url=self.server.base, timeout=REQUEST_TIMEOUT, transport=transport(self.servers)
        )
        self.device_clients.append(http)
        return Tablet(http, username, name, self.accept_encoding)

    async def close_devices(self) -> None:
        clients, self.device_clients = self.device_clients, []
        await asyncio.gather(*(c.aclose() for c in clients))

    def log(self, text: str) -> None:
        print(text, flush=True)

    def keep(self, phase: str, tablet: Tablet, mutations: list[Mutation], answer: PushResponse):
        for m, r in zip(mutations, answer.results, strict=True):
            self.acks.append(Ack(phase, tablet.user_id, m, r))

    def finding_fields(self, label: str, i: int, **extra: Any) -> dict[str, Any]:
        return {
            "inspection_id": INSPECTION,
            "title": f"{label} {i}: deviation record incomplete",
            "objective_evidence": evidence_text(self.rng),
            **extra,
        }

    # 1. push -------------------------------------------------------------------------

    async def push_phase(self, label: str, media: str, count: int) -> tuple[float, Meter]:
        tablet = self.tablet("insp.js1", f"bench push tablet {label}")
        await tablet.login()
        batch_size = 100
        muts = [
            tablet.mutation(
                f"f-{self.run_tag}-{label}-{i:06d}", self.finding_fields(f"Finding {label}", i)
            )
            for i in range(count)
        ]
        bodies = [
            (b, encode(PushRequest(mutations=b, app_version="bench"), media))
            for b in batches(muts, batch_size)
        ]
        size = sum(len(x) for _, x in bodies) / count
        stats = Stats()
        answers: list[tuple[list[Mutation], PushResponse]] = []
        with self.meter(f"push-{label}") as meter:
            for b, body in bodies:
                answers.append((b, await tablet.push(b, stats, media, body=body)))
        statuses: Counter[str] = Counter()
        for b, answer in answers:
            self.keep(f"push-{label}", tablet, b, answer)
            statuses.update(result_status(r) for r in answer.results)
        if statuses != Counter({"applied": count}):
            raise BenchError(f"push {label}: expected {count} applied, got {dict(statuses)}")
        rate = count / meter.wall
        lat = stats.latency["push"]
        self.log(
            f"  push {label}: {count} mutations ({size:.0f} B each on the wire) in"
            f" {len(bodies)} batches of {batch_size}: {rate:,.0f} mutations/s; all applied;"
            f" batch latency p50 {percentile(lat, 50) * 1000:.1f} ms,"
            f" p99 {percentile(lat, 99) * 1000:.1f} ms; {meter.describe()}"
        )
        return rate, meter

    async def parallel_push_phase(self, n_tablets: int, count: int) -> tuple[float, Meter]:
        """``n_tablets`` tablets push at once (batches of 100, each tablet one request at
        a time): the throughput several instances can share out."""
        tablets = [
            self.device("insp.js1" if i % 2 else "insp.js2", f"bench parallel tablet {i}")
            for i in range(n_tablets)
        ]
        await asyncio.gather(*(t.login() for t in tablets))
        per = max(1, count // n_tablets)
        work = []
        for i, t in enumerate(tablets):
            muts = [
                t.mutation(f"f-{self.run_tag}-par{i:02d}-{k:05d}", self.finding_fields("Par", k))
                for k in range(per)
            ]
            work.append(
                (t, [(b, encode(PushRequest(mutations=b), JSON)) for b in batches(muts, 100)])
            )
        stats = Stats()
        answers: list[tuple[Tablet, list[Mutation], PushResponse]] = []

        async def run(t: Tablet, bodies: list[tuple[list[Mutation], bytes]]) -> None:
            for b, body in bodies:
                answers.append((t, b, await t.push(b, stats, JSON, body=body)))

        with self.meter("push-parallel") as meter:
            await asyncio.gather(*(run(t, bodies) for t, bodies in work))
        statuses: Counter[str] = Counter()
        for t, b, answer in answers:
            self.keep("push-parallel", t, b, answer)
            statuses.update(result_status(r) for r in answer.results)
        total = per * n_tablets
        if statuses != Counter({"applied": total}):
            raise BenchError(f"parallel push: expected {total} applied, got {dict(statuses)}")
        rate = total / meter.wall
        self.log(
            f"  {n_tablets} tablets at once, {total} mutations in batches of 100:"
            f" {rate:,.0f} mutations/s; {meter.describe()}"
        )
        await self.close_devices()
        return rate, meter

    # 2. pull -------------------------------------------------------------------------

    async def pull_phase(
        self, username: str, label: str, media: str, expect_ids: set[str]
    ) -> tuple[float, int]:
        tablet = self.tablet(username, f"bench pull tablet {label}")
        await tablet.login()
        seen: dict[str, int] = {}

        def sink(c: Change) -> None:
            if c.kind == "finding":
                seen[c.id] = seen.get(c.id, 0) + 1

        stats = Stats()
        limit = 1000
        with self.meter(f"pull-{label}") as meter:
            self.pull_meter = meter
            count, cursor, pages = await tablet.pull_to_end(
                None, stats, limit=limit, max_pages=500, media=media, sink=sink
            )
        missing = expect_ids - seen.keys()
        twice = sum(1 for n in seen.values() if n > 1)
        if missing:
            raise BenchError(f"pull {label}: {len(missing)} pushed findings not received")
        self.cursors[username] = cursor
        rate = count / meter.wall
        lat = stats.latency["pull"]
        self.log(
            f"  pull {label} ({username}, from no cursor): {count} records"
            f" ({len(seen)} findings, all {len(expect_ids)} pushed ones present, {twice} twice)"
            f" in {pages} pages of {limit}: {rate:,.0f} records/s;"
            f" page latency p50 {percentile(lat, 50) * 1000:.0f} ms,"
            f" p99 {percentile(lat, 99) * 1000:.0f} ms; {meter.describe()}"
        )
        return rate, count

    # 3. fleet ------------------------------------------------------------------------

    async def fleet_phase(self) -> tuple[Stats, int, Meter]:
        n_tablets = max(2, 50 // self.scale)
        per_tablet = 100
        batch_size = 20
        users = ["insp.js1", "insp.js2"]
        tablets = [
            self.device(users[i % 2], f"bench fleet tablet {i:02d}") for i in range(n_tablets)
        ]
        await asyncio.gather(*(t.login() for t in tablets))
        stats = Stats()
        received = Counter[str]()

        # built before the clock starts, as in the push phase: making 5,000 random
        # findings inside the measured window blocked the client's event loop for
        # most of a second, and the answers waiting meanwhile counted as server latency
        fleet_muts = [
            [
                t.mutation(
                    f"f-{self.run_tag}-fleet{i:02d}-{k:04d}",
                    self.finding_fields(f"Fleet {i:02d}", k),
                )
                for k in range(per_tablet)
            ]
            for i, t in enumerate(tablets)
        ]

        async def run(i: int, t: Tablet) -> None:
            for b in batches(fleet_muts[i], batch_size):
                answer = await t.push(b, stats)
                self.keep("fleet", t, b, answer)
            # tablets in daily use hold a cursor from their last sync: start from it
            count, _, _ = await t.pull_to_end(
                self.cursors.get(t.username), stats, limit=1000, max_pages=200
            )
            received[t.device_id] = count

        with self.meter("fleet") as meter:
            await asyncio.gather(*(run(i, t) for i, t in enumerate(tablets)))
        await self.close_devices()
        total = n_tablets * per_tablet
        lat = stats.all_latencies()
        statuses = Counter(result_status(a.result) for a in self.acks if a.phase == "fleet")
        self.log(
            f"  fleet: {n_tablets} tablets x {per_tablet} mutations (batches of {batch_size})"
            f" then pull to the end: {len(lat)} requests"
            f" ({len(stats.latency['push'])} push, {len(stats.latency['pull'])} pull) in"
            f" {meter.wall:.2f} s; results {dict(statuses)}; records pulled per tablet"
            f" {min(received.values())}..{max(received.values())}; {meter.describe()}"
        )
        for label in ("push", "pull"):
            xs = stats.latency[label]
            self.log(
                f"    {label}: p50 {percentile(xs, 50) * 1000:.0f} ms,"
                f" p95 {percentile(xs, 95) * 1000:.0f} ms,"
                f" p99 {percentile(xs, 99) * 1000:.0f} ms, max {max(xs) * 1000:.0f} ms"
            )
        self.log(
            f"    all: p50 {percentile(lat, 50) * 1000:.0f} ms,"
            f" p95 {percentile(lat, 95) * 1000:.0f} ms, p99 {percentile(lat, 99) * 1000:.0f} ms;"
            f" HTTP statuses {dict(stats.statuses)}; transport errors {stats.transport_errors}"
        )
        return stats, total, meter

    # 3b. fleet spread over inspections ------------------------------------------------

    async def fleet_spread_phase(self) -> Stats:
        """50 inspectors on 25 inspections (two per team), as a province's day looks:
        each tablet pushes 100 findings in batches of 20 to its own inspection, then
        pulls what changed in its scope (its teammate's work)."""
        n_tablets = max(2, 50 // self.scale)
        admin = self.tablet("admin", "bench admin")
        await admin.login()
        headers = {"Authorization": f"Bearer {admin.token}"}

        async def call(method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
            r = await self.http.request(method, path, json=body, headers=headers)
            if r.status_code >= 300:
                raise BenchError(f"{method} {path}: {r.status_code} {r.text[:300]}")
            return dict(r.json())

        teams: list[tuple[str, str]] = []  # (username, inspection)
        for p in range(n_tablets // 2):
            iid = f"insp-bench-{self.run_tag}-{p:02d}"
            await call(
                "POST",
                "/api/v1/inspections",
                {
                    "id": iid,
                    "data": {
                        "title": f"Bench inspection {p}",
                        "site_id": "site-suzhou-ds",
                        "chain_id": "chain-zv101",
                        "link_ids": ["l2-cellbank"],
                        "type": "routine",
                        "lead_authority_id": "js-mpa",
                        "planned_start": "2027-03-01",
                        "planned_end": "2027-03-02",
                    },
                },
            )
            for j in range(2):
                name = f"bench.{self.run_tag}.{p:02d}.{j}"
                user = await call(
                    "POST",
                    "/api/v1/users",
                    {
                        "username": name,
                        "display_name": name,
                        "role": "inspector",
                        "authority_id": "js-mpa",
                        "password": DEMO_PASSWORD,
                    },
                )
                await call(
                    "POST", f"/api/v1/inspections/{iid}/assignments", {"user_id": user["id"]}
                )
                teams.append((name, iid))
            await call("POST", f"/api/v1/inspections/{iid}/transitions", {"to": "in_progress"})
        tablets = [
            self.device(name, f"bench spread tablet {i:02d}") for i, (name, _) in enumerate(teams)
        ]
        await asyncio.gather(*(t.login() for t in tablets))
        # a tablet in daily use has synced before: bring each one up to date (unmeasured)
        cursors = await asyncio.gather(
            *(t.pull_to_end(None, Stats(), limit=1000, max_pages=50) for t in tablets)
        )
        stats = Stats()

        spread_muts = [  # before the clock starts (see the fleet phase)
            [
                t.mutation(
                    f"f-{self.run_tag}-spread{i:02d}-{k:04d}",
                    self.finding_fields(f"Spread {i:02d}", k, inspection_id=iid),
                )
                for k in range(100)
            ]
            for i, (t, (_, iid)) in enumerate(zip(tablets, teams, strict=True))
        ]

        async def run(i: int, t: Tablet, iid: str, cursor: str | None) -> None:
            for b in batches(spread_muts[i], 20):
                answer = await t.push(b, stats)
                self.keep("fleet-spread", t, b, answer)
            await t.pull_to_end(cursor, stats, limit=1000, max_pages=50)

        with self.meter("fleet spread") as meter:
            await asyncio.gather(
                *(
                    run(i, t, iid, c[1])
                    for i, (t, (_, iid), c) in enumerate(zip(tablets, teams, cursors, strict=True))
                )
            )
        await self.close_devices()
        lat = stats.all_latencies()
        self.log(
            f"  fleet over {len(teams) // 2} inspections: {len(tablets)} tablets x 100"
            f" mutations (batches of 20) then pull: {len(lat)} requests in {meter.wall:.2f} s;"
            f" {meter.describe()}"
        )
        self.log(
            f"    all: p50 {percentile(lat, 50) * 1000:.0f} ms,"
            f" p95 {percentile(lat, 95) * 1000:.0f} ms, p99 {percentile(lat, 99) * 1000:.0f} ms;"
            f" HTTP statuses {dict(stats.statuses)}"
        )
        return stats

    # 4. conflicts --------------------------------------------------------------------

    async def conflict_phase(self) -> dict[str, Any]:
        count = self.n(1000)
        subset = self.n(100)
        a = self.tablet("insp.js1", "bench edit tablet A")
        b = self.tablet("insp.js2", "bench edit tablet B")
        await asyncio.gather(a.login(), b.login())
        stats = Stats()
        ids = [f"f-{self.run_tag}-edit-{i:05d}" for i in range(count)]
        creates = [
            a.mutation(rid, self.finding_fields("Shared finding", i, classification="other"))
            for i, rid in enumerate(ids)
        ]
        for chunk in batches(creates, 100):
            self.keep("edit-create", a, chunk, await a.push(chunk, stats))

        wanted = set(ids)
        revs: dict[str, dict[str, int]] = {"A": {}, "B": {}}
        for name, t in (("A", a), ("B", b)):

            def sink(c: Change, into: dict[str, int] = revs[name]) -> None:
                if c.id in wanted:
                    into[c.id] = c.rev

            _, self.cursors[t.username], _ = await t.pull_to_end(
                self.cursors.get(t.username), stats, limit=1000, max_pages=500, sink=sink
            )
            if len(revs[name]) != count:
                raise BenchError(f"tablet {name} pulled {len(revs[name])} of {count} records")

        flagged_ids = set(ids[:subset])
        edits_a = [
            a.mutation(
                rid,
                {
                    "title": f"A: shared finding {i} (title edited on tablet A)",
                    **({"classification": "major"} if rid in flagged_ids else {}),
                },
                base_rev=revs["A"][rid],
            )
            for i, rid in enumerate(ids)
        ]
        edits_b = [
            b.mutation(
                rid,
                {
                    "title": f"B: shared finding {i} (title edited on tablet B)",
                    "objective_evidence": "B: " + evidence_text(self.rng),
                    **({"classification": "critical"} if rid in flagged_ids else {}),
                },
                base_rev=revs["B"][rid],
            )
            for i, rid in enumerate(ids)
        ]
        out: dict[str, Any] = {"count": count, "subset": subset}
        for name, t, edits in (("A", a, edits_a), ("B", b, edits_b)):
            statuses: Counter[str] = Counter()
            with self.meter(f"edit-{name}") as meter:
                for chunk in batches(edits, 100):
                    answer = await t.push(chunk, stats)
                    self.keep(f"edit-{name}", t, chunk, answer)
                    statuses.update(result_status(r) for r in answer.results)
            out[name] = (statuses, meter)
            self.log(
                f"  edits by tablet {name}: {count} mutations, {count / meter.wall:,.0f}"
                f" mutations/s; results {dict(statuses)}; {meter.describe()}"
            )
        # a resend of B's last batch (the answer was lost, say): nothing applies twice
        last = edits_b[-100:]
        answer = await b.push(last, stats)
        resend = Counter(result_status(r) for r in answer.results)
        out["resend"] = resend
        self.log(f"  resend of tablet B's last batch: {dict(resend)}")

        r = await self.http.get(
            "/api/v1/sync/conflicts",
            params={"inspection_id": INSPECTION, "status": "open"},
            headers={"Authorization": f"Bearer {a.token}"},
        )
        if r.status_code != 200:
            raise BenchError(f"conflicts: {r.status_code} {r.text[:300]}")
        mine = [c for c in r.json() if c["data"]["record_id"] in wanted]
        out["open"] = len(mine)
        out["open_by_field"] = Counter(
            (c["data"]["field"], "flagged" if c["data"]["flagged"] else "auto") for c in mine
        )
        self.log(
            f"  open conflict records on these findings (GET /sync/conflicts): {len(mine)}"
            f" {dict(out['open_by_field'])}"
        )
        self.phase4 = {"ids": ids, "flagged": flagged_ids, "a": edits_a, "b": edits_b}
        return out

    # --- run ---------------------------------------------------------------------------

    async def run(self) -> None:
        f = self.figures
        n_push = self.n(10_000)
        self.log(f"\n[1] push ({n_push} findings, batches of 100, one tablet)")
        rate_json, push_meter = await self.push_phase("json", JSON, n_push)
        f.add(
            "push JSON, mutations/s",
            f"{rate_json:,.0f}",
            f">= {TARGET_PUSH:,}",
            rate_json >= TARGET_PUSH,
        )
        f.add("server CPU s per 10,000 mutations (push JSON)", f"{push_meter.cpu_per(n_push):.2f}")

        self.memory("after the push")

        self.log("\n[2] pull (second tablet, from no cursor, pages of 1,000)")
        pushed = {a.mutation.id for a in self.acks}
        rate_pull, n_pulled = await self.pull_phase("insp.js2", "json", JSON, pushed)
        gz = "identity" if self.args.no_gzip else "gzip"
        f.add(
            f"pull JSON ({gz}), records/s ({n_pulled:,} records)",
            f"{rate_pull:,.0f}",
            f">= {TARGET_PULL:,}",
            rate_pull >= TARGET_PULL,
        )
        f.add(
            "server CPU s per 10,000 records (pull JSON)",
            f"{self.pull_meter.cpu_per(n_pulled):.2f}",
        )

        self.log(f"\n[1c] push, 8 tablets at once ({n_push} findings, batches of 100)")
        rate_par, par_meter = await self.parallel_push_phase(8, n_push)
        f.add("push JSON, 8 tablets at once, mutations/s", f"{rate_par:,.0f}")
        f.add(
            "server CPU s per 10,000 mutations (8 tablets at once)",
            f"{par_meter.cpu_per(n_push):.2f}",
        )

        if not self.args.no_msgpack:
            self.log(f"\n[1b] push as MessagePack ({n_push} more findings)")
            rate_mp, _ = await self.push_phase("msgpack", MSGPACK, n_push)
            f.add("push MessagePack, mutations/s", f"{rate_mp:,.0f}", f">= {TARGET_PUSH:,}")
            self.log("\n[2b] pull as MessagePack (insp.js1 tablet, from no cursor)")
            pushed = {a.mutation.id for a in self.acks}
            rate_mp_pull, n_mp = await self.pull_phase("insp.js1", "msgpack", MSGPACK, pushed)
            f.add(
                f"pull MessagePack ({gz}), records/s ({n_mp:,} records)",
                f"{rate_mp_pull:,.0f}",
                f">= {TARGET_PULL:,}",
            )
        else:
            self.log("\n[2b] cursor for insp.js1 (pull from no cursor)")
            await self.pull_phase("insp.js1", "json-js1", JSON, set())

        # tablets in daily use are up to date: bring both users' cursors to the end
        for username in ("insp.js1", "insp.js2"):
            t = self.tablet(username, "bench cursor refresh")
            await t.login()
            _, self.cursors[username], _ = await t.pull_to_end(
                self.cursors.get(username), Stats(), limit=1000, max_pages=500
            )
        self.memory("before the fleet")

        self.log("\n[3] fleet")
        stats, _, _ = await self.fleet_phase()
        lat = stats.all_latencies()
        p50, p95, p99 = (percentile(lat, p) * 1000 for p in (50, 95, 99))
        f.add("fleet, one shared scope, p50 / p95 (ms)", f"{p50:.0f} / {p95:.0f}")
        f.add(
            "fleet, one shared scope, p99 (ms)", f"{p99:.0f}", f"<= {TARGET_P99_MS:.0f}", p99 <= 250
        )
        f.add("fleet 5xx responses", str(stats.server_errors), "0", stats.server_errors == 0)
        self.fleet_stats = stats

        self.memory("after the fleet")

        self.log("\n[3b] fleet spread over inspections (each tablet its own scope)")
        spread = await self.fleet_spread_phase()
        lat = spread.all_latencies()
        p50, p95, p99 = (percentile(lat, p) * 1000 for p in (50, 95, 99))
        f.add("fleet over 25 inspections p50 / p95 (ms)", f"{p50:.0f} / {p95:.0f}")
        f.add(
            "fleet over 25 inspections p99 (ms)",
            f"{p99:.0f}",
            f"<= {TARGET_P99_MS:.0f}",
            p99 <= 250,
        )
        f.add(
            "fleet over 25 inspections 5xx",
            str(spread.server_errors),
            "0",
            spread.server_errors == 0,
        )
        self.memory("after the spread fleet")

        self.log("\n[4] two tablets edit the same records from the same base")
        out = await self.conflict_phase()
        both = out["A"][0] + out["B"][0]
        f.notes.append(
            f"edit outcomes ({out['count']} records x 2 tablets): "
            + ", ".join(
                f"{k} {both.get(k, 0)}"
                for k in ("applied", "merged", "conflict", "rejected", "duplicate")
            )
        )
        f.notes.append(
            "resend of one batch of tablet B: "
            + ", ".join(f"{k} {v}" for k, v in out["resend"].items())
        )
        f.notes.append(
            f"open conflict records: {out['open']} ("
            + ", ".join(f"{fl} {kind} {n}" for (fl, kind), n in out["open_by_field"].items())
            + ")"
        )

        self.log("\n[5] server memory")
        hwm = proc_status_kib(self.server.pid, "VmHWM") / 1024
        rss = proc_status_kib(self.server.pid, "VmRSS") / 1024
        self.log(f"  VmHWM {hwm:.1f} MB, VmRSS now {rss:.1f} MB")
        f.add("peak server RSS, VmHWM (MB)", f"{hwm:.1f}", f"<= {TARGET_RSS_MB:.0f}", hwm <= 200)


# --- verification against the database file (server stopped) ----------------------


def database_reader(servers: list[Server]) -> Callable[[str], list[tuple[Any, ...]]]:
    """Run a query on the database the servers used (SQLite file or PostgreSQL)."""
    url = servers[0].database_url

    def query(sql: str) -> list[tuple[Any, ...]]:
        if url:
            import psycopg

            with psycopg.connect(url) as conn:
                return list(conn.execute(sql.encode()).fetchall())
        db = sqlite3.connect(str(servers[0].db_path))
        try:
            return list(db.execute(sql).fetchall())
        finally:
            db.close()

    return query


def verify(
    query: Callable[[str], list[tuple[Any, ...]]], acks: list[Ack], phase4: dict[str, Any]
) -> dict[str, Any]:
    """Every acknowledged mutation is in the database, once, with its value.

    - the audit trail (history) has exactly one event of the finding per acknowledged
      (not duplicate/rejected) mid;
    - the mutation log has its key;
    - every value it pushed is the record's current value or kept in a conflict of
      that record and field (never silently dropped);
    - the record is at the highest rev acknowledged for it (nothing applied twice);
    - phase 4: the clean field (objective_evidence) holds tablet B's value, the
      classification the server's (flagged), the title the winner the server named.
    """
    # the mutation's own record (the conflict records it opens have events too)
    per_mid = dict(query("SELECT mid, COUNT(*) FROM history WHERE kind = 'finding' GROUP BY mid"))
    keys = {r[0] for r in query("SELECT key FROM mutations")}
    records: dict[str, tuple[int, int, dict[str, Any]]] = {}
    for rid, rev, deleted, data in query(
        "SELECT id, rev, deleted, data FROM records WHERE kind = 'finding'"
    ):
        records[rid] = (rev, deleted, msgspec.json.decode(data))
    kept: dict[tuple[str, str], list[Any]] = defaultdict(list)
    open_conflicts = 0
    for (data,) in query("SELECT data FROM records WHERE kind = 'conflict'"):
        c = msgspec.json.decode(data)
        kept[(c["record_id"], c["field"])].extend(v["value"] for v in c["values"])
        open_conflicts += c["status"] == "open"
    history_rows = query("SELECT COUNT(*) FROM history")[0][0]

    problems: list[str] = []
    lost_by_phase: Counter[str] = Counter()
    twice_by_phase: Counter[str] = Counter()
    max_rev: dict[str, int] = {}
    # (record, field) -> index of the last acknowledged mutation that overwrote the field
    # cleanly: values pushed before it were legitimately replaced, not lost.
    replaced_at: dict[tuple[str, str], int] = {}
    for i, a in enumerate(acks):
        r = a.result
        if isinstance(r, Applied | Merged | Conflicted):
            max_rev[a.mutation.id] = max(max_rev.get(a.mutation.id, 0), r.rev)
        for fname in a.mutation.fields:
            if (
                isinstance(r, Applied)
                or (isinstance(r, Merged) and fname not in r.concurrent_fields)
                or (isinstance(r, Conflicted) and all(c.field != fname for c in r.conflicts))
            ):
                replaced_at[(a.mutation.id, fname)] = i
    for i, a in enumerate(acks):
        m, r = a.mutation, a.result
        if isinstance(r, Duplicate | Rejected):
            continue
        bad = ""
        n_hist = per_mid.get(m.mid, 0)
        rec = records.get(m.id)
        if n_hist > 1:
            twice_by_phase[a.phase] += 1
            bad = f"{n_hist} history rows"
        elif n_hist == 0:
            bad = "no history row"
        elif f"{a.user_id}\x1f{m.mid}" not in keys:
            bad = "not in the mutation log"
        elif rec is None or rec[1]:
            bad = "record missing"
        elif rec[0] != max_rev[m.id]:
            bad = f"record at rev {rec[0]}, acknowledged rev {max_rev[m.id]}"
        else:
            data = rec[2]
            for fname, value in m.fields.items():
                if replaced_at.get((m.id, fname), -1) > i:
                    continue
                if data.get(fname) != value and value not in kept.get((m.id, fname), []):
                    bad = f"value of {fname} neither current nor kept in a conflict"
                    break
        if bad:
            lost_by_phase[a.phase] += 1
            if len(problems) < 10:
                problems.append(f"{a.phase} {m.mid} {m.id}: {bad}")

    # phase 4 specifics
    p4: Counter[str] = Counter()
    b_results = {a.mutation.id: a.result for a in acks if a.phase == "edit-B"}
    for m in phase4.get("b", []):
        data = records.get(m.id, (0, 0, {}))[2]
        p4["evidence is B's (merged cleanly)"] += (
            data.get("objective_evidence") == m.fields["objective_evidence"]
        )
        r = b_results.get(m.id)
        winner = None
        if isinstance(r, Conflicted):
            winner = next((c.winner for c in r.conflicts if c.field == "title"), None)
        p4["title is the winner the server named"] += data.get("title") == winner
        if m.id in phase4["flagged"]:
            p4["classification kept at A's value (flagged)"] += (
                data.get("classification") == "major"
            )
    return {
        "lost_by_phase": lost_by_phase,
        "twice_by_phase": twice_by_phase,
        "checked": sum(1 for a in acks if not isinstance(a.result, Duplicate | Rejected)),
        "problems": problems,
        "open_conflicts": open_conflicts,
        "history_rows": history_rows,
        "phase4": p4,
    }


# --- main --------------------------------------------------------------------------


def print_table(figures: Figures) -> None:
    headers = ("figure", "measured", "target", "")
    rows = [headers, *figures.rows]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    line = "  ".join("-" * w for w in widths)
    print(line)
    for i, r in enumerate(rows):
        print(
            "  ".join(
                c.ljust(w) if j != 1 else c.rjust(w)
                for j, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
        if i == 0:
            print(line)
    print(line)


async def run_bench(args: argparse.Namespace, servers: list[Server]) -> Bench:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(
        base_url=servers[0].base,
        timeout=REQUEST_TIMEOUT,
        transport=transport(servers, limits=limits),
    ) as http:
        bench = Bench(args, servers, http)
        await bench.run()
    return bench


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10x smaller counts (smoke run)")
    parser.add_argument(
        "--synchronous",
        choices=["FULL", "NORMAL"],
        default="FULL",
        help="INSPECTSYNC_SQLITE_SYNCHRONOUS for the server (default FULL, the durable one)",
    )
    parser.add_argument(
        "--no-gzip", action="store_true", help="ask for uncompressed answers (identity)"
    )
    parser.add_argument("--no-msgpack", action="store_true", help="skip the MessagePack lines")
    parser.add_argument("--data-root", default=None, help="where to make the temp data dir")
    parser.add_argument("--keep-data", action="store_true", help="keep the data dir")
    parser.add_argument(
        "--py-spy",
        metavar="DIR",
        default=None,
        help="profile the server with py-spy during each measured phase (slows it down);"
        " collapsed stacks go to DIR/<phase>.txt",
    )
    parser.add_argument(
        "--database-url",
        default="",
        help="an empty PostgreSQL database for the servers (default: SQLite in the data dir)",
    )
    parser.add_argument(
        "--instances",
        type=int,
        default=1,
        help="server instances over the one database (more than one needs --database-url);"
        " the client spreads requests over them round robin, as a load balancer would",
    )
    parser.add_argument(
        "--instance-cpus",
        type=float,
        default=None,
        metavar="X",
        help="run each server instance in its own cgroup with a CPU quota of X cores (as"
        " `docker run --cpus=X`), so that the instances, not PostgreSQL or the client, are"
        " the bottleneck on a small machine; needs root",
    )
    parser.add_argument(
        "--pg-activity",
        action="store_true",
        help="with --database-url: sample pg_stat_activity every 10 ms during each phase and"
        " print what the backends did on average (running, waiting for the write lock or"
        " the WAL, idle in a transaction); costs the client and PostgreSQL a little CPU",
    )
    parser.add_argument(
        "--cpu-period-ms",
        type=int,
        default=CPU_PERIOD_MS,
        help=f"the CFS period of --instance-cpus (default {CPU_PERIOD_MS} ms; docs/performance.md"
        " says why not the kernel's 100)",
    )
    args = parser.parse_args(argv)
    if args.instances > 1 and not args.database_url:
        parser.error("--instances above 1 needs --database-url")
    if args.instance_cpus is not None and not 0.01 <= args.instance_cpus <= (os.cpu_count() or 1):
        parser.error("--instance-cpus must be between 0.01 and the number of CPUs")
    if not 1 <= args.cpu_period_ms <= 1000:
        parser.error("--cpu-period-ms must be between 1 and 1000")
    # a SIGTERM (a CI timeout, kill) unwinds like Ctrl-C: the servers stop, the cgroups go
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    budgets: list[CpuBudget | None] = [None] * args.instances
    if args.instance_cpus is not None:
        try:
            for i in range(args.instances):
                budgets[i] = CpuBudget(
                    f"instance{i}", args.instance_cpus, args.cpu_period_ms * 1000
                )
        except BudgetError as exc:
            remove_budgets(budgets)
            print(f"bench/run.py: {exc}", file=sys.stderr)
            return 2
    try:
        return run_main(args, budgets)
    except KeyboardInterrupt:
        print("\ninterrupted: the servers were stopped", file=sys.stderr)
        return 130
    finally:
        remove_budgets(budgets)


def remove_budgets(budgets: list[CpuBudget | None]) -> None:
    for b in budgets:
        if b is not None:
            b.remove()


def run_main(args: argparse.Namespace, budgets: list[CpuBudget | None]) -> int:
    data_dir = Path(tempfile.mkdtemp(prefix="inspectsync-bench-", dir=args.data_root))
    servers = [Server(data_dir, args.synchronous, args.database_url, b) for b in budgets]
    server = servers[0]
    where = (
        f"PostgreSQL ({args.database_url.split('@')[-1]}), {args.instances} instance(s)"
        if args.database_url
        else f"INSPECTSYNC_SQLITE_SYNCHRONOUS={args.synchronous}"
        + (" (durable default)" if args.synchronous == "FULL" else "")
    )
    print(
        f"inspectsync sync benchmark{' (--quick: counts / 10)' if args.quick else ''}\n"
        f"  machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}),"
        f" {platform.machine()}, Linux {platform.release()};"
        f" Python {platform.python_version()}\n"
        f"  server: python -m server.cli serve --demo, 127.0.0.1, data dir {data_dir}"
        f" ({fs_type(data_dir)})\n"
        f"  {where};"
        f" answers {'uncompressed' if args.no_gzip else 'gzip (httpx default Accept-Encoding)'}",
        flush=True,
    )
    if args.instance_cpus is not None:
        b = next(x for x in budgets if x is not None)
        print(
            f"  each instance in its own cgroup (v{b.version}): {args.instance_cpus} CPU,"
            f" CFS period {args.cpu_period_ms} ms",
            flush=True,
        )
    bench: Bench | None = None
    exit_code = None
    failed = False
    try:
        for s in servers:  # one after the other: the first migrates and seeds the demo
            s.start()
            print(f"  server pid {s.pid}, {s.base}", flush=True)
        bench = asyncio.run(run_bench(args, servers))
    except (BenchError, httpx.HTTPError) as exc:
        failed = True
        print(f"\nBENCHMARK FAILED: {exc!r}", file=sys.stderr)
    finally:
        exit_codes = [s.stop() for s in servers]
        exit_code = exit_codes[0] if len(exit_codes) == 1 else exit_codes
        if failed or bench is None:
            for s in servers:
                print(f"server log (tail):\n{s.log_tail()}", file=sys.stderr)
    if failed or bench is None:
        print(f"data dir kept for inspection: {data_dir}", file=sys.stderr)
        return 2

    source = "PostgreSQL" if args.database_url else server.db_path.name
    print(f"\n[check] server stopped (exit code {exit_code}); reading {source}")
    out = verify(database_reader(servers), bench.acks, bench.phase4)
    lost = out["lost_by_phase"]
    twice = out["twice_by_phase"]
    print(
        f"  {out['checked']} acknowledged mutations checked; history rows {out['history_rows']};"
        f" lost or wrong by phase {dict(lost) or 0}; applied twice {dict(twice) or 0};"
        f" open conflict records {out['open_conflicts']}"
    )
    for p in out["problems"]:
        print(f"  PROBLEM {p}")
    n4 = len(bench.phase4.get("b", []))
    n_flagged = len(bench.phase4.get("flagged", ()))
    for k, v in out["phase4"].items():
        print(f"  phase 4: {k}: {v}/{n_flagged if 'classification' in k else n4}")
    log_text = "".join(s.log_path.read_text(errors="replace") for s in servers)
    tracebacks = log_text.count("Traceback")
    print(f"  server log: {tracebacks} tracebacks, {len(log_text.splitlines())} lines")

    fleet_lost = lost.get("fleet", 0) + twice.get("fleet", 0)
    bench.figures.add(
        "fleet lost writes (incl. applied twice)", str(fleet_lost), "0", fleet_lost == 0
    )
    all_lost = sum(lost.values()) + sum(twice.values())
    bench.figures.add("lost writes, whole run", str(all_lost), "0", all_lost == 0)

    print("\nSummary")
    print_table(bench.figures)
    for note in bench.figures.notes:
        print(f"  {note}")
    if not args.keep_data:
        shutil.rmtree(data_dir, ignore_errors=True)
    else:
        print(f"data kept in {data_dir}")
    return 0 if all_lost == 0 and bench.fleet_stats.server_errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
