"""The application factory. No state exists until ``create_app(settings)`` runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from litestar import Litestar
from litestar.di import Provide
from litestar.logging import LoggingConfig
from litestar.openapi import OpenAPIConfig
from litestar.security.jwt import JWTAuth

from server import metrics
from server.access_log import AccessLogMiddleware
from server.accounts import Accounts
from server.auth import REQUIRED_CLAIMS, AuthService, KeyedToken, Passwords
from server.compression import GzipMiddleware
from server.console import (
    CONSOLE_EXCLUDE,
    console_router,
    console_static_routers,
    schema_viewer,
    template_config,
)
from server.documents import Documents
from server.overload import Overload
from server.problems import problem_details_plugin
from server.routes._openapi import ClosedStructSchemaPlugin
from server.routes.admin import DevicesController, UsersController
from server.routes.auth import AuthController
from server.routes.checklists import ChecklistController
from server.routes.evidence import EvidenceController, tus_resumable_header
from server.routes.health import healthz, readyz
from server.routes.inspections import InspectionController
from server.routes.rectification import RectificationController
from server.routes.reference import reference_routers
from server.routes.reports import ReportsController
from server.routes.review import AuditController, ReviewController
from server.routes.sync import SyncController
from server.settings import Settings
from server.webapp import APP_EXCLUDE, webapp_routes
from sync.audit import anchor_head, read_anchors
from sync.authoring import Authoring
from sync.clock import Clock, SystemClock
from sync.conclusion import Conclusions
from sync.engine import EngineConfig, SyncEngine
from sync.evidence import LocalBlobStore, UploadArea
from sync.models import Principal
from sync.notify import Notifier
from sync.rectification import Rectifications
from sync.registry import Registry
from sync.review import Review
from sync.storage import Store
from sync.uploads import UploadLimits, Uploads

__all__ = ["Services", "build_services", "create_app"]

VERSION = "0.1.0"


class Services:
    """Everything a request may need, built once per app."""

    def __init__(self, settings: Settings, store: Store, clock: Clock) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.passwords = Passwords(settings.password_time_cost, settings.password_memory_kib)
        self.auth = AuthService(settings, store, clock, self.passwords)
        self.accounts = Accounts(store, self.passwords, clock)
        self.authoring = Authoring(store, clock)
        self.notifier = Notifier()
        self.registry = Registry(store, clock, self.authoring, self.notifier)
        self.engine = SyncEngine(
            store,
            clock,
            EngineConfig(
                max_skew_ms=settings.max_clock_skew_seconds * 1000,
                tombstone_retention_days=settings.tombstone_retention_days,
            ),
            self.notifier,
        )
        self.review = Review(store, self.engine, clock)
        self.conclusions = Conclusions(store, clock, self.notifier)
        self.rectifications = Rectifications(store, clock, self.notifier)
        self.uploads = make_uploads(settings, store, clock)
        self.documents = Documents(self)


def make_uploads(settings: Settings, store: Store, clock: Clock) -> Uploads:
    """The evidence service over the data directory's blob stores."""
    evidence = settings.evidence_root
    return Uploads(
        store,
        clock,
        blobs=LocalBlobStore(evidence / "blobs"),
        thumbnails=LocalBlobStore(evidence / "thumbs"),
        area=UploadArea(evidence / "uploads"),
        limits=UploadLimits(
            max_file_bytes=settings.evidence_max_file_bytes,
            max_inspection_bytes=settings.evidence_max_inspection_bytes,
            ttl=timedelta(hours=settings.evidence_upload_ttl_hours),
            lock_timeout=settings.evidence_lock_wait_seconds,
        ),
    )


def build_services(settings: Settings, clock: Clock | None = None) -> Services:
    return Services(settings, settings.make_store(), clock or SystemClock())


def create_app(settings: Settings, *, clock: Clock | None = None) -> Litestar:
    """Build the Litestar app for these settings. Opening the database happens at
    start-up (migrations included), closing at shutdown."""
    services = build_services(settings, clock)
    log = logging.getLogger("inspectsync")

    async def anchor() -> None:
        """Write the audit chain's head down beside the database, unless it is the last
        anchor there already (see ``sync.audit.Anchor``)."""
        try:
            head = await services.store.audit_head()
            if head is None:
                return
            path = settings.anchors_file
            known = await asyncio.to_thread(read_anchors, path)
            at = services.clock.now().isoformat()
            await asyncio.to_thread(anchor_head, path, known, head, at)
        except Exception:
            log.exception("could not write the audit anchor")

    async def housekeeping() -> None:
        """Anchor the audit chain's head, purge tombstones past retention and expired
        uploads, hourly (the first run at start-up)."""
        while True:
            await anchor()
            try:
                purged = await services.engine.purge_tombstones()
                if purged:
                    logging.getLogger("inspectsync").info("purged %d tombstones", purged)
            except Exception:  # keep the loop alive; the next run retries
                logging.getLogger("inspectsync").exception("tombstone purge failed")
            try:
                expired = await services.uploads.purge_expired()
                if expired:
                    logging.getLogger("inspectsync").info("purged %d expired uploads", expired)
            except Exception:
                logging.getLogger("inspectsync").exception("upload purge failed")
            await asyncio.sleep(3600)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await services.store.open()
        relay = None
        if settings.database_url:  # several instances: their tablets hear each other's pushes
            from sync.storage.postgres_notify import PgRelay

            relay = PgRelay(settings.database_url, services.notifier)
            await relay.start()
        task = asyncio.create_task(housekeeping())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if relay is not None:
                await relay.stop()
            await anchor()
            await services.store.close()

    token_cls: Any = type(
        "AppToken", (KeyedToken,), {"keys": dict(services.auth.keys), "verified": {}}
    )
    jwt_auth = JWTAuth[Principal, Any](
        token_secret=services.auth.keys[services.auth.kid],
        retrieve_user_handler=services.auth.retrieve_principal,
        token_cls=token_cls,
        algorithm="HS256",
        accepted_issuers=[settings.jwt_issuer],
        accepted_audiences=[settings.jwt_audience],
        require_claims=list(REQUIRED_CLAIMS),
        exclude=[
            "^/healthz$",
            "^/readyz$",
            "^/schema",
            *metrics.METRICS_EXCLUDE,
            *CONSOLE_EXCLUDE,
            *APP_EXCLUDE,
        ],
        exclude_http_methods=["OPTIONS"],  # HEAD (tus upload status) needs a token
        description="Access token from POST /api/v1/auth/login",
    )

    def provide(value: Any) -> Provide:
        return Provide(lambda: value, use_cache=True, sync_to_thread=False)

    overload = Overload(
        max_in_flight=settings.max_in_flight,
        max_pushes_in_flight=settings.max_pushes_in_flight,
        max_event_streams=settings.max_event_streams,
        retry_after_seconds=settings.overload_retry_after_seconds,
    )

    logging_config = LoggingConfig(
        root={"level": settings.log_level, "handlers": ["queue_listener"]},
        # Expected 4xx are answers, not errors; unexpected ones are logged by
        # server.problems with their traceback.
        log_exceptions="never",
    )

    app = Litestar(
        route_handlers=[
            healthz,
            readyz,
            AuthController,
            UsersController,
            DevicesController,
            InspectionController,
            ChecklistController,
            SyncController,
            EvidenceController,
            ReportsController,
            ReviewController,
            AuditController,
            RectificationController,
            metrics.MetricsController,
            *reference_routers(),
            console_router(services),
            *console_static_routers(),
            *webapp_routes(settings.app_root),
        ],
        dependencies={
            "store": provide(services.store),
            "auth": provide(services.auth),
            "accounts": provide(services.accounts),
            "registry": provide(services.registry),
            "authoring": provide(services.authoring),
            "engine": provide(services.engine),
            "notifier": provide(services.notifier),
            "uploads": provide(services.uploads),
            "review": provide(services.review),
            "conclusions": provide(services.conclusions),
            "rectifications": provide(services.rectifications),
            "documents": provide(services.documents),
            "settings": provide(settings),
        },
        lifespan=[lifespan],
        # overload first: past its bounds a request is answered 503 before any work;
        # then only the request metrics' middleware, before it, counts and times it
        on_app_init=[jwt_auth.on_app_init, overload.install, metrics.install],
        plugins=[problem_details_plugin(), ClosedStructSchemaPlugin()],
        openapi_config=OpenAPIConfig(
            title="inspectsync",
            version=VERSION,
            description="Offline-first field-inspection backend for segmented biologics "
            "production. Every error is an RFC 9457 problem detail with a `code`.",
            path="/schema",
            render_plugins=[schema_viewer()],  # assets served locally
        ),
        logging_config=logging_config,
        template_config=template_config(),
        # gzip (ISA-L, level 1) for answers >= 1 KiB when accepted; never for handlers
        # with opt skip_compression (evidence files: Range needs the raw bytes)
        middleware=[AccessLogMiddleware, GzipMiddleware],
        request_max_body_size=settings.max_body_bytes,
        before_send=[tus_resumable_header],
        debug=False,
    )
    app.state.services = services
    app.state.overload = overload
    return app
