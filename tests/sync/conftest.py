"""Engine fixtures: the demo world opened in-process, principals and tablets on it."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from server.app import Services, build_services
from server.settings import Settings
from sync.client import InProcessTransport, Tablet
from sync.clock import FakeClock
from sync.models import Principal
from tests.conftest import FAST, SECRET
from tests.pg import fresh_database


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture(params=["sqlite", "postgres"])
async def world(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Services]:
    """The demo world on each backend: a copy of the SQLite template file, or a new
    PostgreSQL database made from the PostgreSQL template."""
    data_dir = tmp_path / "server"
    data_dir.mkdir(parents=True)
    if request.param == "sqlite":
        settings = Settings(data_dir=str(data_dir), jwt_secret=SECRET, **FAST)
        shutil.copyfile(request.getfixturevalue("demo_template"), settings.database)
        async with _opened(settings, clock) as services:
            yield services
        return
    template = request.getfixturevalue("demo_pg_template")
    with fresh_database(template) as url:
        settings = Settings(data_dir=str(data_dir), jwt_secret=SECRET, database_url=url, **FAST)
        async with _opened(settings, clock) as services:
            yield services


@asynccontextmanager
async def _opened(settings: Settings, clock: FakeClock) -> AsyncIterator[Services]:
    services = build_services(settings, clock)
    await services.store.open()
    try:
        yield services
    finally:
        await services.store.close()


async def principal(world: Services, username: str, device: str | None = None) -> Principal:
    user = await world.store.find_user(username)
    assert user is not None
    return Principal(
        user_id=user.id,
        username=user.username,
        role=user.role,
        authority_id=user.authority_id,
        device_id=device,
    )


@pytest.fixture
def make_tablet(world: Services, tmp_path: Path, clock: FakeClock) -> Callable[..., object]:
    async def make(username: str, device: str) -> Tablet:
        p = await principal(world, username, device)
        return Tablet(
            tmp_path / f"{device}.db",
            InProcessTransport(world.engine, p),
            device_id=device,
            now=clock.now,
            batch_size=50,
            page_size=200,
        )

    return make
