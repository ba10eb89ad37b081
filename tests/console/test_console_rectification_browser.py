"""Overdue rectifications in a real Chromium: the server (uvicorn, in a thread of this
test, so that its clock can be moved weeks ahead) with the demo world; findings from a
tablet, decided, a response entered through the API; then the supervisor finds the late
rectification from the header and reaches the inspection's card. Screenshots at
1280x800 and 800x1280, zh and en."""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from server.app import create_app
from server.demo import DEMO_PASSWORD
from server.settings import Settings
from sync.clock import FakeClock
from tests.conftest import FAST, SECRET
from tests.console.conftest import DESKTOP, external_requests, shoot, sign_in

pytestmark = pytest.mark.slow

INSP = "insp-ds-routine"


@pytest.fixture(scope="module")
def moved(tmp_path_factory: pytest.TempPathFactory, demo_template: Path) -> Iterator[Any]:
    data = tmp_path_factory.mktemp("rect-server")
    settings = Settings(data_dir=str(data), jwt_secret=SECRET, **FAST)
    shutil.copyfile(demo_template, settings.database)
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, clock=clock), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", clock
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def api(base: str, username: str) -> httpx.Client:
    c = httpx.Client(base_url=base, timeout=30)
    r = c.post("/api/v1/auth/login", json={"username": username, "password": DEMO_PASSWORD})
    c.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
    return c


def accepted_findings(base: str) -> tuple[httpx.Client, httpx.Client]:
    """Two findings of the inspection pushed by its inspector, brought to review and
    accepted by the supervisor: a major and an other, each with a rectification due.
    Returns the inspector's and the supervisor's API clients (the caller closes them)."""
    li, sup = api(base, "insp.js1"), api(base, "sup.js")
    now = datetime.now(UTC)
    mutations = [
        {
            "mid": f"r:{n}",
            "kind": "finding",
            "id": fid,
            "fields": {"inspection_id": INSP, "title": title, "classification": cls},
            "hlc": f"{int(now.timestamp() * 1000):015d}.{n:05d}.t",
            "device_time": now.isoformat(),
        }
        for n, (fid, title, cls) in enumerate(
            [
                ("f-ln2", "LN2 low-level alarm never tested", "major"),
                ("f-log", "Cold room logbook entries unsigned", "other"),
            ]
        )
    ]
    r = li.post("/api/v1/sync/push", json={"mutations": mutations})
    assert [x["status"] for x in r.json()["results"]] == ["applied", "applied"]
    for to in ("fieldwork_done", "under_review"):
        assert sup.post(f"/api/v1/inspections/{INSP}/transitions", json={"to": to}).is_success
    for fid in ("f-ln2", "f-log"):
        r = sup.post(
            f"/api/v1/review/findings/{fid}/decisions",
            json={"decision": "accept", "reason": "as written", "password": DEMO_PASSWORD},
        )
        assert r.is_success, r.text
    return li, sup


def test_the_supervisor_finds_the_late_rectification(browser, moved):
    base, clock = moved
    li, sup = accepted_findings(base)
    r = sup.put(
        "/api/v1/rectifications/f-ln2/response",
        json={
            "root_cause": "液氮低液位报警未纳入预防性维护计划",
            "actions": "每月测试报警并记录；已培训操作人员",
            "completion_date": "2030-01-31",
            "submitted_by": "王芳，质量保证部经理",
        },
    )
    assert r.is_success, r.text
    r = li.post(
        "/api/v1/rectifications/f-ln2/assessments",
        json={"outcome": "more_needed", "comment": "未见首次月度测试记录"},
    )
    assert r.is_success
    li.close()
    sup.close()
    clock.advance(days=33)  # the major's 30 days are over

    ctx = browser.new_context(viewport=DESKTOP, locale="zh-CN", timezone_id="Asia/Shanghai")
    page = ctx.new_page()
    outside = external_requests(page, base)
    sign_in(page, base, "sup.js")
    page.click("nav >> text=整改逾期")
    page.wait_for_url(re.compile(r"/console/rectifications$"))
    row = page.locator('tr[data-finding="f-ln2"]')
    assert "LN2 low-level alarm never tested" in row.inner_text()
    assert "需企业补充整改" in row.inner_text() and "3 天" in row.inner_text()
    assert page.locator('tr[data-finding="f-log"]').count() == 0
    shoot(page, "rectifications-overdue-zh")

    row.locator("td:nth-child(3) a").click()
    page.wait_for_url(re.compile(rf"/console/inspections/{INSP}"))
    card = page.get_by_test_id("rectification")
    text = card.inner_text()
    assert "逾期 3 天" in text and "未见首次月度测试记录" in text
    assert "根本原因：液氮低液位报警未纳入预防性维护计划" in text
    card.scroll_into_view_if_needed()
    shoot(page, "rectification-card-zh")

    page.click("a.lang")
    page.wait_for_load_state()
    page.goto(base + "/console/rectifications")
    assert "More needed from the company" in page.locator("table").inner_text()
    shoot(page, "rectifications-overdue-en")
    assert outside == [], outside
    ctx.close()
