"""Shared by the console's browser tests: Debian's Chromium under Playwright, the real
server process (one per test module), screenshots at desktop and tablet size, signing in
as a person would.

Chromium is Debian's ``/usr/bin/chromium`` (``.ci/run`` installs it); nothing is
downloaded at run time. In CI (``CI=true``) a missing Chromium fails the tests; on a
laptop without it they are skipped, saying so. Screenshots go to ``screenshots/`` (not
committed; another directory with ``INSPECTSYNC_SCREENSHOTS``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server.demo import DEMO_PASSWORD
from tests.server.test_process import start_server, stop

__all__ = ["DESKTOP", "SHOTS", "TABLET", "Tablet", "external_requests", "shoot", "sign_in"]

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = Path(
    os.environ.get("INSPECTSYNC_SCREENSHOTS") or Path(__file__).resolve().parents[2] / "screenshots"
)
DESKTOP = {"width": 1280, "height": 800}
TABLET = {"width": 800, "height": 1280}


def _missing(what: str) -> None:
    text = (
        f"{what}: the console's browser tests did not run "
        "(apt-get install -y chromium fonts-noto-cjk; pip install -e '.[dev]')"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(text)
    pytest.skip(text)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright is not installed")
    if not CHROMIUM.exists():
        _missing(f"Chromium is not installed ({CHROMIUM})")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("console-server")
    proc, base = start_server(data, "--demo")
    try:
        yield base
    finally:
        stop(proc)


class Tablet:
    """An inspector's tablet: the tablet CLI on its own state directory."""

    def __init__(self, base: str, state: Path, username: str) -> None:
        self.state = state
        self.env = {**os.environ, "INSPECTSYNC_PASSWORD": DEMO_PASSWORD}
        self.run("login", "--server", base, "--username", username)

    def run(self, *args: str) -> str:
        r = subprocess.run(
            [sys.executable, "-m", "server.cli", "tablet", "--state", str(self.state), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
        )
        assert r.returncode == 0, f"tablet {args}: {r.stdout}\n{r.stderr}"
        return r.stdout

    def sync(self) -> str:
        return self.run("sync")


def shoot(page: Any, name: str) -> None:
    """The page at desktop and tablet size, in ``SHOTS``."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size
    for label, size in (("1280", DESKTOP), ("tablet", TABLET)):
        page.set_viewport_size(size)
        page.screenshot(path=str(SHOTS / f"{name}-{label}.png"), full_page=True)
        # nothing sticks out sideways at either size
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name} at {label}: {overflow}px wider than the window"
    page.set_viewport_size(before)


def sign_in(page: Any, base: str, username: str) -> None:
    page.goto(base + "/")
    page.fill('input[name="username"]', username)
    page.fill('input[name="password"]', DEMO_PASSWORD)
    page.click('button[type="submit"]')
    page.wait_for_url(re.compile(r"/console/queue"))


def external_requests(page: Any, base: str) -> list[str]:
    """Record every request the page makes that is not to our server (``data:`` and
    ``blob:`` URLs are the page's own)."""
    seen: list[str] = []
    page.on(
        "request",
        lambda r: seen.append(r.url) if not r.url.startswith((base, "data:", "blob:")) else None,
    )
    return seen
