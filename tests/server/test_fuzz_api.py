"""Every operation of the OpenAPI schema, fed generated input (schemathesis), against
the real server process: whatever the input, the answer is never a 5xx, and it is
what the document says: a documented status code, a documented media type, a body
that validates against the documented schema, the documented headers.

Two phases, each as an inspector with a device (so that the sync routes get past their
role guard) and as an admin:

- each operation alone, a fixed, derandomised set of examples;
- stateful scenarios: sequences of calls where a later call takes its ids from an
  earlier answer (the links schemathesis infers from the schema: a listing's ids into
  the operations on one record, a created record's id into its reads and writes, ...),
  so the operations are reached with records that exist, not only with random ids.

The first run of this fuzzer found integers past SQLite's 64-bit range in a query and
in a cursor, and OPTIONS on a guarded route, all answered 500 (see test_errors.py). The
conformance run found the findings listed in tests/server/test_openapi.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import Flaky
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from server.app import create_app
from server.demo import DEMO_PASSWORD
from server.settings import Settings
from tests.server.test_process import start_server, stop

pytestmark = pytest.mark.slow

LOGINS = {
    "inspector": {
        "username": "insp.js1",
        "password": DEMO_PASSWORD,
        "device": {"name": "fuzzed tablet"},
    },
    "admin": {"username": "admin", "password": DEMO_PASSWORD},
}

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@schemathesis.serializer("application/msgpack")
def _to_msgpack(ctx: Any, value: Any) -> bytes:
    try:
        return msgspec.msgpack.encode(value)
    except OverflowError:  # an integer MessagePack cannot hold: send a body that is not one
        return b"\xc1"


@schemathesis.serializer("application/offset+octet-stream")
def _chunk(ctx: Any, value: Any) -> bytes:  # a tus chunk: the bytes as they are
    return value if isinstance(value, bytes) else str(value).encode()


@schemathesis.deserializer("application/msgpack")
def _from_msgpack(ctx: Any, response: Any) -> Any:
    return msgspec.msgpack.decode(response.content)


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
def tokens(server: str) -> dict[str, str]:
    out = {}
    for role, body in LOGINS.items():
        r = httpx.post(f"{server}/api/v1/auth/login", json=body, timeout=10)
        assert r.status_code == 200, r.text
        out[role] = str(r.json()["access_token"])
    return out


def _schema(config: dict[str, Any] | None = None) -> Any:
    return (
        schemathesis.openapi.from_dict(
            _openapi(), config=schemathesis.Config.from_dict(config) if config else None
        )
        # ending the session or rotating its token would turn the rest into 401s
        .exclude(path_regex="^/api/v1/auth/(logout|refresh)$")
        # a server-sent event stream stays open by design (tested in test_sync_http.py)
        .exclude(path="/api/v1/sync/events")
    )


schema = _schema()
# Scenarios send valid input only: invalid input is the first phase's, and a scenario
# goes deeper when each step is answered.
positive = _schema({"generation": {"mode": "positive"}})


@schema.parametrize()
@settings(
    max_examples=12,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_is_the_documented_one(
    case: schemathesis.Case, server: str, tokens: dict[str, str]
) -> None:
    for token in tokens.values():  # each role's guards let a different part through
        case.call_and_validate(
            base_url=server, headers={"Authorization": f"Bearer {token}"}, checks=CHECKS
        )


SCENARIOS, STEPS, ROUNDS, CALLS = 100, 8, 6, 800


# The inspector's scenarios first: an admin's may disable users or revoke devices.
@pytest.mark.parametrize("role", list(LOGINS))
def test_stateful_scenarios_get_documented_answers(
    role: str, server: str, tokens: dict[str, str]
) -> None:
    auth = {"Authorization": f"Bearer {tokens[role]}"}
    # Failures are collected, not raised: Hypothesis would replay a failing scenario
    # against a server whose data the scenario has changed, and report that instead.
    failures: dict[str, str] = {}
    calls: list[str] = []

    class Scenarios(positive.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            calls.append(case.operation.label)
            return {"base_url": server, "headers": auth}

        def validate_response(
            self, response: Any, case: schemathesis.Case, *args: Any, **kwargs: Any
        ) -> None:
            try:
                case.validate_response(response, checks=CHECKS)
            except FailureGroup as exc:
                key = f"{case.operation.label} {response.status_code}"
                failures.setdefault(key, f"{exc}\n{case.as_curl_command(headers=auth)}")

    # Scenarios change the server's data, so Hypothesis, meeting a draw it made before
    # answered differently, may stop a round as flaky: schemathesis' own runner ends
    # the round there too. Rounds start from differently ordered first steps
    # (deterministic) until enough calls are made.
    for round_ in range(ROUNDS):
        Scenarios.rule_order_seed = round_
        with contextlib.suppress(Flaky):
            Scenarios.run(
                settings=settings(
                    max_examples=SCENARIOS,
                    stateful_step_count=STEPS,
                    derandomize=True,
                    deadline=None,
                    database=None,
                    phases=[Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
            )
        if len(calls) >= CALLS:
            break
    assert not failures, "\n\n".join(failures.values())
    assert len(calls) >= CALLS // 2, f"only {len(calls)} calls in {ROUNDS} rounds"
    assert len(set(calls)) >= 30, sorted(set(calls))  # the scenarios reach most operations
