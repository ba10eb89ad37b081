"""The floor under the push figure: what this stack does with no sync engine at all.

``bench/run.py`` pushes 10,000 findings (~1.2 KB each) in batches of 100 from one
tablet to the real server. This script pushes the same bodies, the same way (httpx,
asyncio, one tablet, sequential batches, gzip accepted), to a bare Litestar app served
by uvicorn (uvloop, httptools) that decodes the same ``PushRequest`` with msgspec and
answers ``applied`` for every mutation, doing only what each level names:

- ``http``: nothing else: HTTP, decoding and the answer;
- ``rows``: plus, in one SQLite transaction per batch on a writer thread (WAL,
  ``synchronous=FULL``, as the server), a row per mutation in a records table (its fields
  as JSON) and a row in an idempotency table, then COMMIT before answering;
- ``audit``: plus an audit row per mutation holding the new values, hash-chained with
  SHA-256 (what the real server's history table keeps).

No validation, merge, scope check, conflict, clock or authentication. So the figures
are upper bounds for any push written on this stack on this machine, and they show
what each part costs. ``docs/performance.md`` uses them.

Usage (from the repository root)::

    .venv/bin/python bench/floor.py            # 10,000 mutations per level
    .venv/bin/python bench/floor.py --count 2000
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import msgspec  # noqa: E402

from sync.protocol import Applied, Mutation, PushRequest, PushResponse  # noqa: E402

LEVELS = ("http", "rows", "audit")
BATCH = 100
WORDS = [
    *("operator", "grade B corridor", "settle plate", "deviation", "was not documented"),
    *("during", "chromatography column", "sanitisation", "batch record", "CAPA"),
    *("change control", "integrity test", "within limits", "calibration"),
]


# --- the bare server ------------------------------------------------------------------


class Writer:
    """One SQLite connection on its own thread, as the real store's writer."""

    def __init__(self, path: str, level: str) -> None:
        self.level = level
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(
            "CREATE TABLE records (kind TEXT, id TEXT, data TEXT NOT NULL, rev INTEGER,"
            " seq INTEGER, PRIMARY KEY (kind, id));"
            "CREATE UNIQUE INDEX records_seq ON records (seq);"
            "CREATE TABLE mutations (key TEXT PRIMARY KEY, result BLOB NOT NULL);"
            "CREATE TABLE history (id INTEGER PRIMARY KEY, kind TEXT, record_id TEXT,"
            " mid TEXT, new TEXT, prev_hash TEXT, hash TEXT);"
            "CREATE INDEX history_record ON history (kind, record_id);"
        )
        self.seq = 0
        self.head = "0" * 64
        self.lock = threading.Lock()

    def write(self, request: PushRequest) -> None:
        with self.lock:
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            rows, keys, events = [], [], []
            for m in request.mutations:
                self.seq += 1
                data = msgspec.json.encode(m.fields).decode()
                rows.append((m.kind, m.id, data, 1, self.seq))
                keys.append((m.mid, b"applied"))
                if self.level == "audit":
                    digest = hashlib.sha256(
                        msgspec.json.encode([self.head, m.kind, m.id, m.mid, data])
                    ).hexdigest()
                    events.append((m.kind, m.id, m.mid, data, self.head, digest))
                    self.head = digest
            db.executemany("INSERT INTO records VALUES (?,?,?,?,?)", rows)
            db.executemany("INSERT INTO mutations VALUES (?,?)", keys)
            if events:
                db.executemany(
                    "INSERT INTO history (kind, record_id, mid, new, prev_hash, hash)"
                    " VALUES (?,?,?,?,?,?)",
                    events,
                )
            db.execute("COMMIT")


def serve(level: str, port: int, path: str) -> None:
    import uvicorn
    from litestar import Litestar, post
    from litestar.config.compression import CompressionConfig

    writer = Writer(path, level) if level != "http" else None

    @post("/push", status_code=200)
    async def push(data: PushRequest) -> PushResponse:
        if writer is not None:
            await asyncio.to_thread(writer.write, data)
        now = datetime.now(UTC)
        return PushResponse(
            batch_id="b",
            results=[Applied(mid=m.mid, kind=m.kind, id=m.id, rev=1) for m in data.mutations],
            server_time=now,
            hlc=f"{int(now.timestamp() * 1000):015d}.00000.server",
        )

    app = Litestar(
        [push],
        compression_config=CompressionConfig(backend="gzip", minimum_size=500),
        openapi_config=None,
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# --- the client -----------------------------------------------------------------------


def bodies(count: int) -> list[bytes]:
    now = datetime.now(UTC)
    wall = int(now.timestamp() * 1000)
    out = []
    for b in range(count // BATCH):
        muts = []
        for i in range(BATCH):
            n = b * BATCH + i
            text = " ".join(WORDS[(n + k) % len(WORDS)] for k in range(130))[:900]
            muts.append(
                Mutation(
                    mid=f"dev_floor:{n}",
                    kind="finding",
                    id=f"f-floor-{n:06d}",
                    base_rev=0,
                    fields={
                        "inspection_id": "insp-ds-routine",
                        "title": f"Finding {n}: deviation record incomplete",
                        "objective_evidence": text,
                        "classification": "minor",
                    },
                    hlc=f"{wall:015d}.{n:05d}.dev_floor",
                    device_time=now,
                )
            )
        out.append(msgspec.json.encode(PushRequest(mutations=muts, app_version="floor")))
    return out


async def measure(base: str, payloads: list[bytes]) -> tuple[float, float]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        (await http.post("/push", content=payloads[0], headers=headers)).raise_for_status()
        cpu0, t0 = time.process_time(), time.perf_counter()
        for body in payloads[1:]:
            r = await http.post("/push", content=body, headers=headers)
            r.raise_for_status()
            answer = msgspec.json.decode(r.content, type=PushResponse)
            assert len(answer.results) == BATCH
        return time.perf_counter() - t0, time.process_time() - cpu0


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_level(level: str, count: int, workdir: Path) -> None:
    port = free_port()
    db = workdir / f"{level}.db"
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", level, "--port", str(port), "--db", str(db)],
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.post(f"{base}/push", content=b"{}", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        payloads = bodies(count + BATCH)  # the first batch warms up, unmeasured
        s0 = proc_cpu(proc.pid)
        wall, client_cpu = asyncio.run(measure(base, payloads))
        server_cpu = proc_cpu(proc.pid) - s0
        n = count
        print(
            f"  {level:<6} {n / wall:>9,.0f} mutations/s   per mutation: wall"
            f" {wall / n * 1e6:5.1f} us, server CPU {server_cpu / n * 1e6:5.1f} us,"
            f" client CPU {client_cpu / n * 1e6:5.1f} us"
        )
    finally:
        proc.terminate()
        proc.wait(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--serve", choices=LEVELS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port, args.db)
        return 0
    print(
        f"push floor: {args.count:,} mutations of ~1.2 KB in batches of {BATCH}, one tablet,"
        f" sequential, httpx -> uvicorn + Litestar + msgspec on 127.0.0.1; {os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory(prefix="inspectsync-floor-") as tmp:
        for level in LEVELS:
            run_level(level, args.count, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
