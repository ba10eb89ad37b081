"""Every operation of the OpenAPI schema, fed generated input (schemathesis), against
the real server process: whatever the input, the answer is never a 5xx.

Each operation gets a fixed, derandomised set of examples, as an admin and as an
inspector with a device (so that the sync routes get past their role guard). The first
run of this fuzzer found integers past SQLite's 64-bit range in a query and in a
cursor, and OPTIONS on a guarded route, all answered 500 (see test_errors.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from server.app import create_app
from server.demo import DEMO_PASSWORD
from server.settings import Settings
from tests.server.test_process import start_server, stop

pytestmark = pytest.mark.slow

LOGINS = {
    "admin": {"username": "admin", "password": DEMO_PASSWORD},
    "inspector": {
        "username": "insp.js1",
        "password": DEMO_PASSWORD,
        "device": {"name": "fuzzed tablet"},
    },
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz")
    proc, base = start_server(data_dir, "--demo")
    try:
        yield base
    finally:
        stop(proc)


def _openapi() -> dict[str, object]:
    """The schema the server serves at /schema/openapi.json (building the app opens
    nothing: the database is opened at start-up)."""
    settings = Settings(data_dir="unused", jwt_secret="s" * 40)
    return create_app(settings).openapi_schema.to_schema()


@pytest.fixture(scope="module")
def tokens(server: str) -> list[str]:
    out = []
    for body in LOGINS.values():
        r = httpx.post(f"{server}/api/v1/auth/login", json=body, timeout=10)
        assert r.status_code == 200, r.text
        out.append(str(r.json()["access_token"]))
    return out


schema = (
    schemathesis.openapi.from_dict(_openapi())
    # ending the session or rotating its token would turn the rest into 401s
    .exclude(path_regex="^/api/v1/auth/(logout|refresh)$")
    # a server-sent event stream stays open by design (tested in test_sync_http.py)
    .exclude(path="/api/v1/sync/events")
)


@schema.parametrize()
@settings(
    max_examples=12,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_generated_input_gets_a_5xx(
    case: schemathesis.Case, server: str, tokens: list[str]
) -> None:
    for token in tokens:  # each role's guards let a different part of the input through
        case.call_and_validate(
            base_url=server,
            headers={"Authorization": f"Bearer {token}"},
            checks=[not_a_server_error],
        )
