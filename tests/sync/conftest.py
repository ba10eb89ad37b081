"""Engine fixtures: the demo world opened in-process, principals and tablets on it."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from server.app import Services, build_services
from server.settings import Settings
from sync.client import InProcessTransport, Tablet
from sync.clock import FakeClock
from sync.models import Principal
from tests.conftest import FAST, SECRET


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
async def world(tmp_path: Path, demo_template: Path, clock: FakeClock) -> AsyncIterator[Services]:
    settings = Settings(data_dir=str(tmp_path / "server"), jwt_secret=SECRET, **FAST)
    Path(settings.data_dir).mkdir(parents=True)
    shutil.copyfile(demo_template, settings.database)
    services = build_services(settings, clock)
    await services.store.open()
    yield services
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
