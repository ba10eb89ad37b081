"""The docs follow the code: every route, error code, setting and command is documented.

Each test reads the real thing (the app's routes, ``server.problems.CODES``, the
``Settings`` struct, the CLI parser) and fails naming what ``docs/`` lacks.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from server.app import create_app
from server.cli import build_parser
from server.problems import CODES
from server.settings import Settings

DOCS = Path(__file__).resolve().parent.parent / "docs"

# A route row of the table in docs/api.md: | `GET` | `/api/v1/...` | ...
ROUTE_ROW = re.compile(r"^\|\s*`(?P<method>[A-Z]+)`\s*\|\s*`(?P<path>/[^`]*)`\s*\|", re.M)
# A row of the error table in docs/api.md: | `code` | 409 | ...
CODE_ROW = re.compile(r"^\|\s*`(?P<code>[a-z_]+)`\s*\|\s*(?P<status>\d{3})\s*\|", re.M)


def read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def app_routes(tmp_path: Path) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, without the OpenAPI pages under
    /schema and the OPTIONS handlers Litestar adds to every path."""
    app = create_app(Settings(data_dir=str(tmp_path), jwt_secret="x" * 40))
    return {
        (method, route.path)
        for route in app.routes
        if not route.path.startswith("/schema")
        for handler in route.route_handlers
        for method in handler.http_methods
        if method != "OPTIONS"
    }


def documented_routes() -> set[tuple[str, str]]:
    return {(m["method"], m["path"]) for m in ROUTE_ROW.finditer(read("api.md"))}


def test_every_route_is_in_api_md(tmp_path):
    routes = app_routes(tmp_path)
    assert len(routes) > 20  # really read the app
    missing = sorted(routes - documented_routes())
    assert not missing, f"routes missing from the table in docs/api.md: {missing}"


def test_api_md_lists_no_route_that_does_not_exist(tmp_path):
    stale = sorted(documented_routes() - app_routes(tmp_path))
    assert not stale, f"docs/api.md lists routes the app does not serve: {stale}"


def test_every_error_code_is_in_api_md_with_its_status():
    documented = {m["code"]: int(m["status"]) for m in CODE_ROW.finditer(read("api.md"))}
    wrong = {
        code: (status, documented.get(code))
        for code, (status, _title) in CODES.items()
        if documented.get(code) != status
    }
    assert not wrong, f"code: (status, status in docs/api.md or None): {wrong}"
    stale = sorted(set(documented) - set(CODES))
    assert not stale, f"docs/api.md lists codes server.problems.CODES lacks: {stale}"


def env_name(field: str) -> str:
    """The variable ``Settings.from_env`` reads for a field."""
    return "INSPECTSYNC_DB" if field == "db_path" else f"INSPECTSYNC_{field.upper()}"


def probe_value(field: str) -> str:
    """A valid value for the field that differs from its default."""
    default = getattr(Settings(), field)
    if field == "sqlite_synchronous":
        return "NORMAL" if default == "FULL" else "FULL"
    if field == "push_speculation":
        return "never" if default != "never" else "always"
    if isinstance(default, int):
        return str(default + 7)
    return f"probe-{field}"


@pytest.mark.parametrize("field", [f for f in Settings.__struct_fields__ if f != "demo"])
def test_every_setting_is_in_operations_md(field):
    name = env_name(field)
    value = probe_value(field)
    loaded = getattr(Settings.from_env({name: value}), field)
    assert str(loaded) == value, f"{name} does not set Settings.{field}; fix env_name()"
    assert name in read("operations.md"), f"{name} is missing from docs/operations.md"


def test_demo_is_a_flag_not_a_variable():
    assert Settings.from_env({"INSPECTSYNC_DEMO": "true"}).demo is False
    assert "--demo" in read("operations.md")


def subcommands(parser: argparse.ArgumentParser, prefix: str) -> list[str]:
    """``inspectsync serve``, ``inspectsync users add``, ... for every (sub)command."""
    found: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append(f"{prefix} {name}")
                found.extend(subcommands(sub, f"{prefix} {name}"))
    return found


def test_every_cli_command_is_in_operations_md():
    commands = subcommands(build_parser(), "inspectsync")
    assert "inspectsync serve" in commands
    assert "inspectsync users add" in commands
    text = read("operations.md")
    missing = [c for c in commands if c not in text]
    assert not missing, f"commands missing from docs/operations.md: {missing}"
