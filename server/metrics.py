"""``/metrics`` for Prometheus, with Litestar's own Prometheus plugin.

Requests (count and latency by method, route template and status) come from
:class:`~litestar.plugins.prometheus.PrometheusMiddleware`; the sync's own figures are
counted here as pushes and pulls are answered (mutations by result, records sent) or
read from the store at each scrape (open conflicts, quarantine, missing evidence, the
writer's queue). Metrics live in prometheus-client's process-wide registry, as the
plugin's do: one server process, one set of series.

Who may read it: with ``INSPECTSYNC_METRICS_TOKEN`` set, whoever sends that bearer
token; without it, only clients on this machine (docs/operations.md, Metrics).
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from litestar import Request
from litestar.config.app import AppConfig
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from prometheus_client import Counter, Gauge

from sync.protocol import PullResponse, PushResponse
from sync.stats import sync_gauges

__all__ = ["METRICS_EXCLUDE", "MetricsController", "count_pull", "count_push", "install"]

METRICS_EXCLUDE = ["^/metrics$"]
"""Paths the JWT middleware leaves alone: ``/metrics`` has its own check."""

PREFIX = "inspectsync"
RESULTS = ("applied", "merged", "conflict", "rejected", "duplicate")

PUSH_MUTATIONS = Counter(
    f"{PREFIX}_push_mutations",
    "Mutations answered by sync pushes, by result (duplicate: a mid seen before)",
    ["result"],
)
for _result in RESULTS:  # every result is a series from the start, at 0
    PUSH_MUTATIONS.labels(_result)
PULL_RECORDS = Counter(
    f"{PREFIX}_pull_records", "Records (changes and tombstones) sent by sync pulls"
)
PULL_EVICTIONS = Counter(
    f"{PREFIX}_pull_evictions", "Records tablets were told to evict (left their scope)"
)
OPEN_CONFLICTS = Gauge(f"{PREFIX}_open_conflicts", "Conflicts kept and not yet resolved")
QUARANTINED = Gauge(f"{PREFIX}_quarantined_mutations", "Rejected mutations kept in quarantine")
MISSING_EVIDENCE = Gauge(
    f"{PREFIX}_missing_evidence_files",
    "Evidence files named by records of inspections not closed and not yet uploaded",
)
INSPECTIONS_MISSING = Gauge(
    f"{PREFIX}_inspections_missing_evidence", "Inspections not closed that miss evidence files"
)
WRITER_QUEUE = Gauge(
    f"{PREFIX}_writer_queue_depth", "Write batches of this process waiting for the DB writer"
)
SPECULATION = Gauge(
    f"{PREFIX}_push_speculation_batches",
    "Push batches since start by how they met the write lock: merged before it and kept,"
    " rerun (what they read changed), declined (needed the lock), or locked (found it"
    " free and ran under it); PostgreSQL only",
    ["outcome"],
)
WRITER_BUSY = Gauge(
    f"{PREFIX}_writer_busy_seconds",
    "Seconds this process's writer has run push batches since start, write lock held"
    " (monotonic; its rate is the share of time the database's write lock is held)",
)


def count_push(answer: PushResponse) -> None:
    """Count a push's answer (after its commit: what the tablet was told)."""
    for result in answer.results:
        PUSH_MUTATIONS.labels(result.__struct_config__.tag).inc()


def count_pull(page: PullResponse) -> None:
    PULL_RECORDS.inc(len(page.changes))
    if page.evict:
        PULL_EVICTIONS.inc(len(page.evict))


def _loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def metrics_guard(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """The bearer token of ``INSPECTSYNC_METRICS_TOKEN`` if set, else a local client."""
    token: str = connection.app.state.services.settings.metrics_token
    if token:
        header = connection.headers.get("authorization", "")
        scheme, _sep, given = header.partition(" ")
        if not header:
            raise NotAuthorizedException(
                "send Authorization: Bearer <the metrics secret>",
                extra={"code": "not_authenticated", "field": "Authorization"},
            )
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            raise NotAuthorizedException(
                "that is not the metrics token",
                extra={"code": "token_invalid", "field": "Authorization"},
            )
        return
    host = connection.client.host if connection.client else None
    if not _loopback(host):
        raise PermissionDeniedException(
            "/metrics answers only clients on this machine unless INSPECTSYNC_METRICS_TOKEN is set",
            extra={"code": "forbidden"},
        )


async def _refresh_gauges(request: Request[Any, Any, Any]) -> None:
    """Read the store's figures into the gauges just before they are exposed."""
    figures = await sync_gauges(request.app.state.services.store)
    OPEN_CONFLICTS.set(figures.open_conflicts)
    QUARANTINED.set(figures.quarantined)
    MISSING_EVIDENCE.set(figures.missing_evidence)
    INSPECTIONS_MISSING.set(figures.inspections_missing_evidence)
    WRITER_QUEUE.set(figures.writer_queue)
    WRITER_BUSY.set(figures.writer_busy_seconds)
    for outcome, n in figures.speculation.items():
        SPECULATION.labels(outcome).set(n)


class MetricsController(PrometheusController):
    """Litestar's exposition of the registry, behind :func:`metrics_guard`, with the
    store's gauges read first."""

    path = "/metrics"
    guards = [metrics_guard]
    before_request = _refresh_gauges
    include_in_schema = False


def install(app_config: AppConfig) -> AppConfig:
    """An ``on_app_init`` hook run after authentication's and the overload gate's: the
    request metrics' middleware goes first of all, so refused requests (401, 503) are
    counted and timed too. Routes are labelled by their template (``group_path``), so
    ids never make new series; paths no route serves are not counted."""
    config = PrometheusConfig(app_name=PREFIX, prefix=PREFIX, group_path=True)
    app_config.middleware.insert(0, config.middleware)
    return app_config
