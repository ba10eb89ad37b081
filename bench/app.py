"""The tablet app's figures, in Debian's Chromium (headless, Playwright) against the real
server process (``serve --demo`` on a fresh data directory, as bench/run.py starts it):

1. **First load of /app**: a fresh browser profile opens ``/app/`` until the sign-in
   form shows and the service worker is active; requests and bytes over the wire
   (``encodedDataLength``: headers and bodies as sent, gzip included) of the page, and
   of the service worker's install (it caches the shell). Then the same again with the
   service worker in place (a reload) and with no network at all.
2. **Open an inspection with 300 items and 50 findings from IndexedDB**: the local
   database holds an inspection whose link pins a checklist of 300 items (10 sections of
   30, every answer type), 300 answers and 50 findings, and no network; the time from
   the URL change to the view drawn, for the inspection (its stages with their counts of
   required answers, its 50 findings) and for the checklist (300 items with their
   controls), median and p90 of ``--runs`` (default 21).
3. **Sync of 500 pending edits**: an inspector logged in on the demo server makes 500
   edits on the tablet (notes of answers of the routine inspection), then one sync
   (pull, push in batches of 100, pull); seconds, and the server's state checked.

Usage (from the repository root)::

    .venv/bin/python bench/app.py
    .venv/bin/python bench/app.py --runs 51

``docs/app.md`` has the figures of a run.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.run import Server  # noqa: E402  the same server start
from server.demo import DEMO_PASSWORD  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
INSPECTION = "insp-ds-routine"
VIEWPORT = {"width": 800, "height": 1280}


class Wire:
    """Requests and bytes received by a context's pages and by its service worker,
    told apart (Playwright's request events; sizes as received, gzip included)."""

    def __init__(self, ctx: Any) -> None:
        self.page = [0, 0]
        self.worker = [0, 0]
        ctx.on("requestfinished", self._done)

    def _done(self, r: Any) -> None:
        sizes = r.sizes()
        into = self.worker if r.service_worker is not None else self.page
        into[0] += 1
        into[1] += sizes["responseBodySize"] + sizes["responseHeadersSize"]

    def reset(self) -> None:
        self.page = [0, 0]
        self.worker = [0, 0]


def first_load(browser: Any, base: str) -> None:
    ctx = browser.new_context(viewport=VIEWPORT)
    wire = Wire(ctx)
    page = ctx.new_page()
    t0 = time.perf_counter()
    page.goto(base + "/app/")
    page.wait_for_selector('input[name="password"]')
    shown = time.perf_counter() - t0
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    page.wait_for_timeout(1000)  # the worker's install requests end
    print(
        f"first load of /app/: {wire.page[0]} requests, {wire.page[1] / 1024:.1f} KiB over"
        f" the wire; sign-in form after {shown * 1000:.0f} ms; then the service worker's"
        f" install: {wire.worker[0]} requests, {wire.worker[1] / 1024:.1f} KiB"
    )
    page.reload()
    page.wait_for_selector('input[name="password"]')
    page.wait_for_timeout(500)
    wire.reset()
    page.reload()
    page.wait_for_selector('input[name="password"]')
    page.wait_for_timeout(500)
    total = wire.page[0] + wire.worker[0]
    print(
        f"reload with the service worker: {total} requests,"
        f" {(wire.page[1] + wire.worker[1]) / 1024:.1f} KiB (each file revalidated)"
    )
    ctx.set_offline(True)
    t0 = time.perf_counter()
    page.reload()
    page.wait_for_selector('input[name="password"]')
    print(f"reload with no network: sign-in form after {(time.perf_counter() - t0) * 1000:.0f} ms")
    ctx.close()


def seed(page: Any, items: int, findings: int) -> None:
    """An inspection with one link pinning a checklist of ``items`` items, an answer to
    each and ``findings`` findings, written into the app's IndexedDB as pulled data."""
    page.evaluate(
        """async ([nItems, nFindings]) => {
        const open = () => new Promise((ok, ko) => {
            const r = indexedDB.open('inspectsync');
            r.onsuccess = () => ok(r.result); r.onerror = () => ko(r.error);
        });
        const db = await open();
        const tx = db.transaction(['records', 'meta'], 'readwrite');
        const rec = tx.objectStore('records');
        const meta = tx.objectStore('meta');
        const kinds = ['yes_no_na', 'single_choice', 'number', 'text', 'date', 'multi_choice'];
        const sections = [];
        let n = 0;
        for (let s = 0; s < 10; s++) {
            const its = [];
            for (let i = 0; i < nItems / 10; i++, n++) {
                const answer = kinds[n % kinds.length];
                const it = {key: `it${n}`, answer, required: n % 7 !== 0,
                    prompt: {en: `Item ${n}: is the control in place and recorded?`,
                             zh: `第 ${n} 项：控制措施是否到位并有记录？`},
                    guidance: {en: 'Ask for the record.', zh: '要求提供记录。'},
                    references: [{document: 'EU GMP Annex 1', section: `${s}.${i}`}]};
                if (answer === 'single_choice' || answer === 'multi_choice') {
                    it.options = [1, 2, 3, 4].map((k) => ({value: `o${k}`,
                        label: {en: `Option ${k}`, zh: `选项 ${k}`}}));
                }
                if (answer === 'number') Object.assign(it, {unit: '°C', min: -196, max: -135});
                its.push(it);
            }
            sections.push({key: `s${s}`, title: {en: `Section ${s}`, zh: `第 ${s} 部分`},
                           items: its, repeatable: s === 9});
        }
        const put = (kind, id, data) => rec.put({kind, id, rev: 1, data});
        put('site', 'b-site', {name: 'Bench site', province: 'Jiangsu', address: 'Suzhou'});
        put('chain', 'b-chain', {name: 'Bench chain', product_id: 'p',
            links: [{id: 'b-link', stage_type: 'cell_bank', site_id: 'b-site'}]});
        put('checklist_version', 'b-cv', {content: {key: 'bench', stage_type: 'cell_bank',
            title: {en: 'Bench checklist', zh: '基准检查表'}, sections}});
        put('inspection', 'b-insp', {title: 'Bench inspection (300 items, 50 findings)',
            site_id: 'b-site', chain_id: 'b-chain', link_ids: ['b-link'], type: 'routine',
            status: 'in_progress', pins: {'b-link': 'b-cv'}, planned_start: '2026-12-01',
            planned_end: '2026-12-05'});
        n = 0;
        for (const s of sections) for (const it of s.items) {
            const value = {yes_no_na: 'yes', single_choice: 'o1', number: -150, text: 'ok',
                           date: '2026-12-01', multi_choice: ['o1', 'o2']}[it.answer];
            put('response', `b-insp~b-link~${it.key}~0`, {value, note: n++ % 3 ? '' : 'seen'});
        }
        for (let f = 0; f < nFindings; f++) {
            put('finding', `f_bench${f}`, {inspection_id: 'b-insp', title: `Finding ${f}`,
                classification: ['critical', 'major', 'other'][f % 3], status: 'draft',
                objective_evidence: 'Observed on the floor.', linked_items: [`b-link:it${f}`],
                references: [], evidence_hashes: []});
        }
        meta.put({key: 'device_id', value: 'dev_bench'});
        meta.put({key: 'refresh_token', value: 'offline'});
        meta.put({key: 'username', value: 'bench'});
        await new Promise((ok) => { tx.oncomplete = ok; });
        db.close();
    }""",
        [items, findings],
    )


def time_view(page: Any, target: str) -> float:
    """Milliseconds from the URL change to the view drawn (from IndexedDB)."""
    return float(
        page.evaluate(
            """(target) => new Promise((ok) => {
            const main = document.getElementById('main');
            const t0 = performance.now();
            const done = () => {
                if (main.dataset.view === target && !main.querySelector('.loading')) {
                    requestAnimationFrame(() => ok(performance.now() - t0));
                } else requestAnimationFrame(done);
            };
            location.hash = target;
            done();
        })""",
            target,
        )
    )


def open_inspection(browser: Any, base: str, runs: int) -> None:
    ctx = browser.new_context(viewport=VIEWPORT)
    page = ctx.new_page()
    page.goto(base + "/app/")
    page.wait_for_selector('input[name="password"]')
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    seed(page, 300, 50)
    ctx.set_offline(True)  # from IndexedDB only
    page.reload()
    page.wait_for_selector('[data-inspection="b-insp"]')
    for label, target, check in (
        ("inspection (stages, 50 findings)", "#/i/b-insp", ".card.finding"),
        ("checklist (300 items)", "#/i/b-insp/l/b-link", "article.item"),
    ):
        times = []
        for _ in range(runs):
            time_view(page, "#/")
            times.append(time_view(page, target))
        shown = page.locator(check).count()
        times.sort()
        p90 = times[min(len(times) - 1, int(len(times) * 0.9))]
        print(
            f"open {label} from IndexedDB: median {statistics.median(times):.0f} ms,"
            f" p90 {p90:.0f} ms ({runs} runs; {shown} shown)"
        )
    ctx.close()


def sync_edits(browser: Any, base: str, edits: int) -> None:
    ctx = browser.new_context(viewport=VIEWPORT)
    page = ctx.new_page()
    page.goto(base + "/app/")
    page.fill('input[name="username"]', "insp.js1")
    page.fill('input[name="password"]', DEMO_PASSWORD)
    page.click('button[type="submit"]')
    page.wait_for_selector(f'[data-inspection="{INSPECTION}"]')
    page.wait_for_function("document.getElementById('bar').dataset.syncs > 0")
    result = page.evaluate(
        """async ([iid, n]) => {
        const {tablet} = globalThis.inspectsyncApp;
        const insp = await tablet.view('inspection', iid);
        const ids = [];
        for (const [lid, vid] of Object.entries(insp.pins)) {
            const cv = await tablet.view('checklist_version', vid);
            for (const s of cv.content.sections) for (const it of s.items) {
                ids.push(`${iid}~${lid}~${it.key}~0`);
            }
        }
        const t0 = performance.now();
        for (let i = 0; i < n; i++) {
            await tablet.edit('response', ids[i % ids.length], {note: `bench note ${i}`});
        }
        const made = performance.now() - t0;
        const t1 = performance.now();
        const summary = await tablet.sync();
        return {made, seconds: (performance.now() - t1) / 1000, summary, records: ids.length};
    }""",
        [INSPECTION, edits],
    )
    s = result["summary"]
    print(
        f"sync of {edits} pending edits ({result['records']} answers, made on the tablet in"
        f" {result['made'] / 1000:.1f} s): {result['seconds']:.2f} s"
        f" (pushed {s['pushed']}, pulled {s['pulled']}, left pending {s['pending']})"
    )
    # the server holds the last note of each answer
    with httpx.Client(base_url=base, timeout=30) as http:
        token = http.post(
            "/api/v1/auth/login", json={"username": "sup.js", "password": DEMO_PASSWORD}
        ).json()["access_token"]
        dump = http.get(
            f"/api/v1/inspections/{INSPECTION}/export.json",
            headers={"Authorization": f"Bearer {token}"},
        ).json()
    notes = [r.get("note") or "" for r in dump["responses"]]
    last = f"bench note {edits - 1}"
    if s["pending"] or last not in notes:
        raise SystemExit(f"check failed: {s}, {last!r} not on the server")
    print("check: nothing left pending; the server holds the last edit")
    ctx.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=21, help="timed opens of each view")
    p.add_argument("--edits", type=int, default=500, help="pending edits to sync")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    data_dir = Path(tempfile.mkdtemp(prefix="inspectsync-app-bench-"))
    server = Server(data_dir, "FULL")
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.machine()}")
    try:
        server.start()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            print(f"Chromium {browser.version}, headless; server on SQLite synchronous=FULL")
            try:
                first_load(browser, server.base)
                open_inspection(browser, server.base, args.runs)
                sync_edits(browser, server.base, args.edits)
            finally:
                browser.close()
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
