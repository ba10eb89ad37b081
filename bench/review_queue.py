"""The console's review queue with 20,000 findings in a supervisor's scope.

Starts the real server (``serve --demo``, as ``bench/run.py`` does), has two inspectors'
tablets push ``--findings`` findings over the sync API (classifications mixed, linked
items, some with photos not uploaded yet, some in conflict), signs in to the console as
supervisor ``sup.js`` through its sign-in form, then asks for queue pages as a reviewer
does (the default order, filters, a far page) and prints, per page kind and overall,
the server time per request (median, p95: measured at the client over loopback, so it
includes HTTP), the bytes of the page and the requests it makes to other hosts (none
allowed). Also the same for ``GET /api/v1/review/queue``.

Usage (from the repository root)::

    .venv/bin/python bench/review_queue.py                   # 20,000 findings, 30 requests a kind
    .venv/bin/python bench/review_queue.py --findings 2000   # smaller smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
for p in (HERE, HERE.parent):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import httpx  # noqa: E402
from run import (  # noqa: E402
    Server,
    Stats,
    Tablet,
    batches,
    evidence_text,
    percentile,
    result_status,
)

from server.demo import DEMO_PASSWORD  # noqa: E402

INSPECTION = "insp-ds-routine"  # the demo's inspection under way (sup.js leads it)
TARGET_MS = 150.0

PAGES = {
    "default (critical first)": "/console/queue",
    "filter: disputed": "/console/queue?classification=disputed",
    "filter: stage cell bank": "/console/queue?stage=cell_bank",
    "filter: missing evidence": "/console/queue?missing_evidence=true",
    "sort: last updated": "/console/queue?sort=-updated",
    "page 400": "/console/queue?page=400",
}
API = "/api/v1/review/queue?limit=25"


async def seed(http: httpx.AsyncClient, n: int, rng: random.Random) -> tuple[int, float]:
    """Two tablets push n findings; every 50th is then edited by both (a conflict)."""
    li = Tablet(http, "insp.js1", "bench-li", None)
    zhao = Tablet(http, "insp.js2", "bench-zhao", None)
    await li.login()
    await zhao.login()
    stats = Stats()
    kinds: Counter[str] = Counter()
    t0 = time.perf_counter()
    muts = []
    for i in range(n):
        fields = {
            "inspection_id": INSPECTION,
            "title": f"Finding {i}: " + evidence_text(rng, 40),
            "objective_evidence": evidence_text(rng, 300),
            "classification": rng.choice(("critical", "major", "major", "other", "other")),
            "status": "submitted",
            "linked_items": ["l2-cellbank:cb_history"] if rng.random() < 0.3 else [],
        }
        if i % 25 == 0:  # a photo named but not uploaded yet
            fields["evidence_hashes"] = [f"{rng.getrandbits(256):064x}"]
        muts.append(li.mutation(f"bench-q-{i:05d}", fields))
    for chunk in batches(muts, 200):
        answer = await li.push(chunk, stats)
        for res in answer.results:
            kinds[result_status(res)] += 1
    shared = [f"bench-q-{i:05d}" for i in range(1, n, 50)]
    for chunk in batches(shared, 200):
        await li.push([li.mutation(f, {"classification": "critical"}, 1) for f in chunk], stats)
        answer = await zhao.push(
            [zhao.mutation(f, {"classification": "other"}, 1) for f in chunk], stats
        )
        for res in answer.results:
            kinds[result_status(res)] += 1
    print("push results:", dict(kinds))
    return len(shared), time.perf_counter() - t0


async def console_login(http: httpx.AsyncClient) -> None:
    r = await http.get("/")
    token = re.search(r'name="_csrf" value="([^"]+)"', r.text)
    assert token, "no sign-in form"
    r = await http.post(
        "/console/login",
        data={
            "_csrf": token.group(1),
            "username": "sup.js",
            "password": DEMO_PASSWORD,
            "tz": "Asia/Shanghai",
            "next": "",
        },
    )
    assert r.status_code == 303, f"sign-in answered {r.status_code}"


def external_refs(html: str) -> list[str]:
    """src/href attributes that leave this server."""
    return [
        m.group(2)
        for m in re.finditer(r'(src|href|action)="([^"]*)"', html)
        if re.match(r"(?i)(https?:)?//", m.group(2))
    ]


async def measure(
    http: httpx.AsyncClient, url: str, rounds: int, headers: dict[str, str] | None = None
) -> tuple[list[float], httpx.Response]:
    times = []
    r = await http.get(url, headers=headers)  # warm
    for _ in range(rounds):
        t0 = time.perf_counter()
        r = await http.get(url, headers=headers)
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, f"{url}: {r.status_code} {r.text[:300]}"
    return times, r


async def main_async(args: argparse.Namespace) -> int:
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="bench-queue-") as tmp:
        data = Path(args.data_dir or tmp)
        data.mkdir(parents=True, exist_ok=True)
        server = Server(data, "NORMAL")
        server.start()
        try:
            async with httpx.AsyncClient(base_url=server.base, timeout=300) as http:
                conflicts, secs = await seed(http, args.findings, rng)
                print(
                    f"seeded {args.findings:,} findings ({conflicts} in conflict) "
                    f"in {secs:.1f} s over the sync API"
                )
                await console_login(http)
                # the API's token for the same supervisor
                r = await http.post(
                    "/api/v1/auth/login", json={"username": "sup.js", "password": DEMO_PASSWORD}
                )
                bearer = {"Authorization": f"Bearer {r.json()['access_token']}"}
                everything: list[float] = []
                print(f"\n{'page':32} {'median ms':>10} {'p95 ms':>8} {'bytes':>8}  total shown")
                for label, url in PAGES.items():
                    times, resp = await measure(http, url, args.rounds)
                    everything += times
                    total = re.search(r'data-testid="total">([^<]*)<', resp.text)
                    ext = external_refs(resp.text)
                    assert not ext, f"{url} refers to other hosts: {ext}"
                    print(
                        f"{label:32} {statistics.median(times):10.1f} "
                        f"{percentile(times, 95):8.1f} {len(resp.content):8,}  "
                        f"{total.group(1) if total else '?'}"
                    )
                first = await http.get("/console/queue")
                assets = sorted(
                    set(re.findall(r'(?:src|href)="(/console/static/[^"?#]+)"', first.text))
                )
                sizes = {a: len((await http.get(a)).content) for a in assets}
                wire = first.num_bytes_downloaded
                each = ", ".join(f"{a.rsplit('/', 1)[-1]} {n:,}" for a, n in sizes.items())
                print(
                    f"\nqueue page weight: {len(first.content):,} bytes of HTML + "
                    f"{sum(sizes.values()):,} bytes of {len(assets)} assets "
                    f"({each}); {len(assets) + 1} requests, none to another host; "
                    f"the HTML is {wire:,} bytes over the wire "
                    f"({first.headers.get('content-encoding', 'identity')})\n"
                )
                times, resp = await measure(http, API, args.rounds, bearer)
                print(
                    f"{'API /review/queue limit=25':32} {statistics.median(times):10.1f} "
                    f"{percentile(times, 95):8.1f} {len(resp.content):8,}  {resp.json()['total']}"
                )
                med, p95 = statistics.median(everything), percentile(everything, 95)
                print(
                    f"\nconsole queue, all kinds: median {med:.1f} ms, p95 {p95:.1f} ms "
                    f"(target <= {TARGET_MS:.0f} ms): {'met' if p95 <= TARGET_MS else 'NOT met'}"
                )
        finally:
            server.stop()
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--findings", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--data-dir", help="keep the server's data here (a new directory)")
    return asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
