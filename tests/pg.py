"""PostgreSQL for the tests: a fresh schema or database per test on the server at
``INSPECTSYNC_TEST_DATABASE_URL`` (default: the machine's, 127.0.0.1:5432, database
``test``, user postgres).

Without a reachable server the PostgreSQL tests are skipped with one line saying so,
except in CI (``CI=true``), where they fail: CI always has one.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from psycopg.rows import dict_row

BASE_URL = os.environ.get(
    "INSPECTSYNC_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)

_reachable: str | None = None  # "" when reachable, else why not


def require_postgres() -> None:
    """Fail (CI) or skip (a developer's machine) when no PostgreSQL answers."""
    global _reachable
    if _reachable is None:
        try:
            with psycopg.connect(BASE_URL, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            _reachable = ""
        except psycopg.Error as exc:
            _reachable = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
    if _reachable:
        why = f"PostgreSQL tests not run: no server at {BASE_URL} ({_reachable})"
        if os.environ.get("CI") == "true":
            pytest.fail(why + "; CI must have one", pytrace=False)
        pytest.skip(why)


def _with_path(url: str, database: str | None = None, schema: str | None = None) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    if database is not None:
        info["dbname"] = database
    # no wait for the WAL flush at commit: tests are about behaviour (as SQLite's
    # synchronous=NORMAL in tests/conftest.py); a killed server process loses nothing
    info["options"] = "-csynchronous_commit=off"
    if schema is not None:
        info["options"] += f" -csearch_path={schema}"
    user = info.get("user") or "postgres"
    host = info.get("host") or "127.0.0.1"
    port = info.get("port") or 5432
    url = f"postgresql://{quote(str(user))}@{host}:{port}/{info.get('dbname') or 'test'}"
    if info.get("options"):
        url += "?options=" + quote(str(info["options"]))
    return url


def _admin(sql: str) -> None:
    with psycopg.connect(BASE_URL, autocommit=True) as conn:
        conn.execute(sql.encode())


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A URL whose connections work in a new, empty schema (dropped afterwards)."""
    require_postgres()
    name = f"t_{uuid.uuid4().hex[:12]}"
    _admin(f"CREATE SCHEMA {name}")
    try:
        yield _with_path(BASE_URL, schema=name)
    finally:
        _admin(f"DROP SCHEMA {name} CASCADE")


@contextmanager
def fresh_database(template: str | None = None) -> Iterator[str]:
    """A URL of a new database (a copy of ``template`` if given), dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = create_database(name, template)
    try:
        yield url
    finally:
        drop_database(name)


def database_name(url: str) -> str:
    return str(psycopg.conninfo.conninfo_to_dict(url)["dbname"])


def database_url(name: str) -> str:
    return _with_path(BASE_URL, database=name)


def create_database(name: str, template: str | None = None) -> str:
    require_postgres()
    _admin(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
    return database_url(name)


def drop_database(name: str) -> None:
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


class ServerDB:
    """The database a real server process under test uses: its settings for the
    process (environment) and direct reads for the test's checks."""

    def __init__(self, data_dir: Path, url: str = "") -> None:
        self.data_dir = data_dir
        self.url = url

    @property
    def env(self) -> dict[str, str]:
        return {"INSPECTSYNC_DATABASE_URL": self.url} if self.url else {}

    def rows(self, sql: str) -> list[dict[str, Any]]:
        """Run one query (no parameters) and return its rows as dicts."""
        if self.url:
            with psycopg.connect(self.url, row_factory=dict_row) as conn:
                return list(conn.execute(sql.encode()).fetchall())
        conn = sqlite3.connect(self.data_dir / "inspectsync.db")
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute(sql)]
        finally:
            conn.close()


@contextmanager
def server_database(backend: str, data_dir: Path) -> Iterator[ServerDB]:
    """An empty database of ``backend`` (``sqlite`` or ``postgres``) for a server process
    whose data directory is ``data_dir``."""
    if backend == "sqlite":
        yield ServerDB(data_dir)
        return
    with fresh_database() as url:
        yield ServerDB(data_dir, url)
