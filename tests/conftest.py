"""Shared fixtures: settings on a temp dir, the app over HTTP, the demo world, logins."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from server.app import build_services, create_app
from server.demo import DEMO_PASSWORD, seed_demo
from server.settings import Settings
from sync.clock import FakeClock
from tests.pg import BASE_URL as PG_BASE_URL
from tests.pg import (
    ServerDB,
    create_database,
    drop_database,
    fresh_database,
    server_database,
)

BOTH_BACKENDS = pytest.fixture(params=["sqlite", "postgres"])(lambda request: request.param)
"""``backend = BOTH_BACKENDS`` in a test module runs its ``settings``-based tests on both."""

SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
# Cheap password hashing and no fsync per commit: tests are about behaviour, not cost.
FAST: dict = {"sqlite_synchronous": "NORMAL", "password_time_cost": 1, "password_memory_kib": 1024}


@pytest.fixture
def backend() -> str:
    """The storage backend of ``settings``: SQLite. A module runs its tests on both by
    overriding it with ``BOTH_BACKENDS`` (see tests/server/test_sync_http.py)."""
    return "sqlite"


@pytest.fixture
def settings(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Iterator[Settings]:
    """Settings on a temp directory. With the ``postgres`` backend the database is a
    fresh copy of the demo template database (the demo world is there from the start)."""
    if backend == "sqlite":
        yield Settings(data_dir=str(tmp_path), jwt_secret=SECRET, **FAST)
        return
    with fresh_database(request.getfixturevalue("demo_pg_template")) as url:
        yield Settings(data_dir=str(tmp_path), jwt_secret=SECRET, database_url=url, **FAST)


@pytest.fixture
def moving_clock() -> FakeClock:
    """A clock the test moves (``advance``), starting now: a test that asks for it gets
    ``app`` (and ``client``, ``demo``) on it. It starts at the real time because access
    tokens are checked against the real clock; log in before moving it."""
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def app(settings: Settings, request: pytest.FixtureRequest) -> Litestar:
    clock = None
    if "moving_clock" in request.fixturenames:
        clock = request.getfixturevalue("moving_clock")
    return create_app(settings, clock=clock)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app) as c:
        yield c


def _seed_demo_apart(settings: Settings) -> None:
    """Seed the demo world into the database of ``settings``, on a thread of its own
    (a session fixture may be first asked for from inside a test's running loop)."""

    async def build() -> None:
        services = build_services(settings)
        await services.store.open()
        try:
            await seed_demo(services.registry, services.accounts, date.today())
        finally:
            await services.store.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, build()).result()


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database file with the demo world, built once per test session."""
    data_dir = tmp_path_factory.mktemp("demo-template")
    settings = Settings(data_dir=str(data_dir), jwt_secret=SECRET, **FAST)
    _seed_demo_apart(settings)
    return Path(settings.database)


@pytest.fixture(scope="session")
def demo_pg_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL database with the demo world, built once per test session: tests
    take a copy (``CREATE DATABASE ... TEMPLATE``, see tests/pg.py)."""
    name = f"tpl_demo_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    data_dir = tmp_path_factory.mktemp("demo-pg-template")
    settings = Settings(data_dir=str(data_dir), jwt_secret=SECRET, database_url=url, **FAST)
    try:
        _seed_demo_apart(settings)
        yield name
    finally:
        drop_database(name)


@pytest.fixture(params=["sqlite", "postgres"])
def server_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerDB]:
    """For tests of the real server process, on each backend: an empty database (the
    process seeds it with ``--demo``); pass ``server_db.env`` to ``start_server``."""
    with server_database(request.param, tmp_path) as db:
        yield db


@pytest.fixture
def seeded_db(settings: Settings, request: pytest.FixtureRequest) -> Path:
    """Copy the demo database into this test's data directory (before the app opens);
    on PostgreSQL the database is a copy of the demo already (``settings``)."""
    target = Path(settings.database)
    if settings.database_url:
        return target
    demo_template = request.getfixturevalue("demo_template")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(demo_template, target)
    return target


@pytest.fixture
async def demo(seeded_db: Path, client: AsyncTestClient[Litestar]) -> AsyncTestClient[Litestar]:
    """The client on the demo world: library published, ZV-101 chain across three sites,
    users of every role, four inspections (see server/demo.py)."""
    return client


class Session:
    """A logged-in user: ``get``/``post``/... with the bearer token attached."""

    def __init__(self, client: AsyncTestClient[Litestar], tokens: dict[str, Any]) -> None:
        self.client = client
        self.tokens = tokens

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens['access_token']}"}

    async def request(self, method: str, url: str, **kw: Any) -> Any:
        headers = {**self.headers, **kw.pop("headers", {})}
        return await self.client.request(method, url, headers=headers, **kw)

    async def get(self, url: str, **kw: Any) -> Any:
        return await self.request("GET", url, **kw)

    async def post(self, url: str, **kw: Any) -> Any:
        return await self.request("POST", url, **kw)

    async def put(self, url: str, **kw: Any) -> Any:
        return await self.request("PUT", url, **kw)

    async def patch(self, url: str, **kw: Any) -> Any:
        return await self.request("PATCH", url, **kw)

    async def delete(self, url: str, **kw: Any) -> Any:
        return await self.request("DELETE", url, **kw)


async def login(
    client: AsyncTestClient[Litestar], username: str, device: dict[str, Any] | None = None
) -> Session:
    body: dict[str, Any] = {"username": username, "password": DEMO_PASSWORD}
    if device is not None:
        body["device"] = device
    r = await client.post("/api/v1/auth/login", json=body)
    assert r.status_code == 200, r.text
    return Session(client, r.json())


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line at the end when the PostgreSQL half did not run (tests/pg.py)."""
    skipped = [
        r
        for r in terminalreporter.stats.get("skipped", [])
        if "PostgreSQL tests not run" in str(getattr(r, "longrepr", ""))
    ]
    if skipped:
        terminalreporter.write_line(
            f"PostgreSQL backend: {len(skipped)} tests NOT RUN (no server at {PG_BASE_URL});"
            " start PostgreSQL on 127.0.0.1:5432 or set INSPECTSYNC_TEST_DATABASE_URL",
            yellow=True,
            bold=True,
        )
