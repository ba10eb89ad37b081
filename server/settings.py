"""Settings: one typed struct, read from ``INSPECTSYNC_*`` environment variables.

Nothing is read at import time: :func:`Settings.from_env` is called by the CLI, and
tests build ``Settings(...)`` directly. ``docs/operations.md`` lists every variable.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import msgspec

from server.webapp import APP_ROOT
from sync.audit import anchors_path
from sync.storage import Store

__all__ = ["ConfigError", "Settings"]


class ConfigError(RuntimeError):
    """The settings cannot run a server (e.g. no signing secret outside demo mode)."""


class Settings(msgspec.Struct, kw_only=True):
    data_dir: str = "./data"
    """Directory for the SQLite file, the demo signing key and evidence files.
    Env: INSPECTSYNC_DATA_DIR."""

    db_path: str = ""
    """SQLite database file; empty means ``<data_dir>/inspectsync.db``. Env: INSPECTSYNC_DB."""

    database_url: str = ""
    """PostgreSQL to use instead of SQLite, as ``postgresql://user@host:5432/dbname``
    (any libpq URL): the database several server instances share. Empty (the default)
    means SQLite at ``db_path``. Env: INSPECTSYNC_DATABASE_URL."""

    host: str = "127.0.0.1"
    """Address ``serve`` listens on. Env: INSPECTSYNC_HOST."""

    port: int = 8000
    """Port ``serve`` listens on. Env: INSPECTSYNC_PORT."""

    jwt_secret: str = ""
    """HMAC secret that signs access tokens (>= 32 bytes). Required unless ``demo``.
    Env: INSPECTSYNC_JWT_SECRET."""

    jwt_kid: str = "k1"
    """Key id written in the ``kid`` header of new tokens. Env: INSPECTSYNC_JWT_KID."""

    jwt_previous_keys: str = ""
    """Older keys still accepted while tokens signed with them expire, as
    ``kid:secret,kid:secret``. Env: INSPECTSYNC_JWT_PREVIOUS_KEYS."""

    jwt_issuer: str = "inspectsync"
    """``iss`` claim written and required. Env: INSPECTSYNC_JWT_ISSUER."""

    jwt_audience: str = "inspectsync-api"
    """``aud`` claim written and required. Env: INSPECTSYNC_JWT_AUDIENCE."""

    access_ttl_seconds: int = 900
    """Lifetime of an access token. Env: INSPECTSYNC_ACCESS_TTL_SECONDS."""

    refresh_ttl_days: int = 30
    """Lifetime of a refresh token (a tablet offline longer must log in again).
    Env: INSPECTSYNC_REFRESH_TTL_DAYS."""

    login_max_failures: int = 5
    """Failed logins allowed per username and client address within the window.
    Env: INSPECTSYNC_LOGIN_MAX_FAILURES."""

    login_window_seconds: int = 300
    """The window of the login limit. Env: INSPECTSYNC_LOGIN_WINDOW_SECONDS."""

    password_time_cost: int = 3
    """argon2id iterations for new password hashes. Env: INSPECTSYNC_PASSWORD_TIME_COST."""

    password_memory_kib: int = 65536
    """argon2id memory for new password hashes, KiB. Env: INSPECTSYNC_PASSWORD_MEMORY_KIB."""

    max_clock_skew_seconds: int = 300
    """A tablet clock further ahead than this is flagged and not trusted to order
    edits. Env: INSPECTSYNC_MAX_CLOCK_SKEW_SECONDS."""

    tombstone_retention_days: int = 90
    """Deleted records are remembered this long; a tablet offline longer must resync.
    Env: INSPECTSYNC_TOMBSTONE_RETENTION_DAYS."""

    max_body_bytes: int = 2_000_000
    """Largest request body accepted (413 beyond). Env: INSPECTSYNC_MAX_BODY_BYTES."""

    max_in_flight: int = 32
    """Requests served at once (health checks and event streams not counted); past it
    the answer is at once 503 ``overloaded`` with ``Retry-After``.
    Env: INSPECTSYNC_MAX_IN_FLIGHT."""

    max_pushes_in_flight: int = 8
    """Sync pushes served at once (decoding, waiting for the database writer, writing),
    within ``max_in_flight``; past it 503 ``overloaded``.
    Env: INSPECTSYNC_MAX_PUSHES_IN_FLIGHT."""

    max_event_streams: int = 1000
    """Open server-sent event streams (one per online tablet), counted apart from
    requests; past it 503 ``overloaded``. Env: INSPECTSYNC_MAX_EVENT_STREAMS."""

    overload_retry_after_seconds: int = 2
    """The ``Retry-After`` of a 503 ``overloaded``; tablets wait at least this long, with
    jitter. Env: INSPECTSYNC_OVERLOAD_RETRY_AFTER_SECONDS."""

    metrics_token: str = ""
    """Bearer token that ``GET /metrics`` requires (Prometheus's ``authorization``
    setting); empty means ``/metrics`` answers only clients on this machine (127.0.0.1,
    ::1). Env: INSPECTSYNC_METRICS_TOKEN."""

    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    """SQLite durability: FULL survives power loss, NORMAL a killed process.
    Env: INSPECTSYNC_SQLITE_SYNCHRONOUS."""

    push_speculation: Literal["auto", "always", "never"] = "auto"
    """PostgreSQL: whether a push batch is merged before it takes the write lock that
    every instance's writes share (docs/architecture.md). ``auto`` tries the lock first
    and merges ahead only while other instances are seen writing; ``always``; ``never``
    (a single instance loses nothing by it). Env: INSPECTSYNC_PUSH_SPECULATION."""

    evidence_dir: str = ""
    """Directory for evidence files (``blobs/``, ``thumbs/``, ``uploads/``); empty means
    ``<data_dir>/evidence``. Env: INSPECTSYNC_EVIDENCE_DIR."""

    app_dir: str = ""
    """Directory of the tablet app: ``app/`` of a checkout after ``make install``
    (``www/`` with its built ``vendor/``, and ``lib/``), served at ``/app/``; empty means
    the checkout the server runs from. Env: INSPECTSYNC_APP_DIR."""

    evidence_max_file_bytes: int = 50_000_000
    """Largest evidence file accepted (413 ``file_too_large`` beyond).
    Env: INSPECTSYNC_EVIDENCE_MAX_FILE_BYTES."""

    evidence_max_inspection_bytes: int = 2_000_000_000
    """Most evidence one inspection may hold, its open uploads included (413
    ``inspection_quota_exceeded`` beyond). Env: INSPECTSYNC_EVIDENCE_MAX_INSPECTION_BYTES."""

    evidence_upload_ttl_hours: int = 24
    """An unfinished upload with no chunk for this long expires and is deleted.
    Env: INSPECTSYNC_EVIDENCE_UPLOAD_TTL_HOURS."""

    evidence_lock_wait_seconds: int = 35
    """How long a chunk of an upload waits while another request (on any instance)
    still writes that upload, before 423 ``upload_locked``.
    Env: INSPECTSYNC_EVIDENCE_LOCK_WAIT_SECONDS."""

    report_signing_key: str = ""
    """The Ed25519 private key (PEM) that signs the manifest of every PDF document the
    server makes; made on first use if absent. Empty means
    ``<data_dir>/report-signing-key.pem``. Several instances must share one file.
    Env: INSPECTSYNC_REPORT_SIGNING_KEY."""

    demo: bool = False
    """Demo mode: generate and keep a signing secret in the data directory if none is
    set. Set by ``serve --demo``; not an environment variable."""

    log_level: str = "INFO"
    """Env: INSPECTSYNC_LOG_LEVEL."""

    @property
    def database(self) -> str:
        return self.db_path or str(Path(self.data_dir) / "inspectsync.db")

    @property
    def database_label(self) -> str:
        """The database as shown to people: the SQLite file, or the PostgreSQL URL
        without its password."""
        if not self.database_url:
            return self.database
        from sync.storage.postgres import redacted

        return redacted(self.database_url)

    @property
    def anchors_file(self) -> Path:
        """Where the audit chain's anchors are written down: beside the SQLite file, or
        ``<data_dir>/audit-anchors.jsonl`` with PostgreSQL (a directory every instance
        shares, see docs/operations.md)."""
        if self.database_url:
            return Path(self.data_dir) / "audit-anchors.jsonl"
        return anchors_path(self.database)

    def make_store(self) -> Store:
        """The storage backend these settings name (not opened)."""
        if not self.database_url:
            from sync.storage.sqlite import SQLiteStore

            return SQLiteStore(self.database, synchronous=self.sqlite_synchronous)
        from sync.storage.postgres import PostgresStore, is_postgres_url

        if not is_postgres_url(self.database_url):
            raise ConfigError(
                "INSPECTSYNC_DATABASE_URL must be a postgresql:// URL (or empty for SQLite)"
            )
        return PostgresStore(self.database_url, speculation=self.push_speculation)

    @property
    def app_root(self) -> Path:
        return Path(self.app_dir) if self.app_dir else APP_ROOT

    @property
    def evidence_root(self) -> Path:
        return Path(self.evidence_dir) if self.evidence_dir else Path(self.data_dir) / "evidence"

    @property
    def report_signing_key_path(self) -> Path:
        if self.report_signing_key:
            return Path(self.report_signing_key)
        return Path(self.data_dir) / "report-signing-key.pem"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from ``INSPECTSYNC_<FIELD>`` variables (``INSPECTSYNC_DB`` for
        ``db_path``), then ``overrides``; values are validated by type."""
        env = os.environ if env is None else env
        raw: dict[str, object] = {}
        for field in cls.__struct_fields__:
            name = "INSPECTSYNC_DB" if field == "db_path" else f"INSPECTSYNC_{field.upper()}"
            if field != "demo" and name in env:
                raw[field] = env[name]
        raw.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return msgspec.convert(raw, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise ConfigError(f"invalid setting: {exc}") from exc

    def signing_keys(self) -> tuple[str, dict[str, str]]:
        """The current kid and every accepted key by kid.

        In demo mode with no secret set, a random one is generated once and kept in
        ``<data_dir>/jwt-secret`` so tokens survive a restart.
        """
        secret = self.jwt_secret
        if not secret:
            if not self.demo:
                raise ConfigError(
                    "INSPECTSYNC_JWT_SECRET is not set; set it to a random string of 32+ "
                    "characters (or run `inspectsync serve --demo` to try the server)"
                )
            path = Path(self.data_dir) / "jwt-secret"
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(secrets.token_urlsafe(48))
                path.chmod(0o600)
            secret = path.read_text().strip()
        if len(secret) < 32:
            raise ConfigError("INSPECTSYNC_JWT_SECRET must be at least 32 characters")
        keys: dict[str, str] = {}
        for pair in filter(None, (p.strip() for p in self.jwt_previous_keys.split(","))):
            kid, sep, old = pair.partition(":")
            if not sep or not kid or len(old) < 32:
                raise ConfigError("INSPECTSYNC_JWT_PREVIOUS_KEYS must be kid:secret pairs")
            keys[kid] = old
        keys[self.jwt_kid] = secret
        return self.jwt_kid, keys
