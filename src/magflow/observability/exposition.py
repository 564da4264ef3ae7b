"""`/metrics`: everything that lives in the database is read at scrape time, so every process's work is
counted exactly once whichever process Prometheus scrapes; per-request eMAG figures come from Redis
(all processes) or, without Redis, from this process (see `magflow.observability.metrics`).

Counters derived from `emag_sync_logs` / `emag_sync_progress` drop when the log retention deletes old
runs; Prometheus's `rate()` and `increase()` treat that as a counter reset.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.config import ACCOUNTS, Settings
from magflow.models import FINISHED_STATUSES
from magflow.observability import metrics as request_metrics
from magflow.sync.locks import lock_held_sql

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SYNC_DURATION_BUCKETS: tuple[float, ...] = (10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400)
CONNECTION_STATUSES = (
    "ok",
    "auth_failed",
    "ip_not_whitelisted",
    "unreachable",
    "rate_limited",
    "paging_ignored",
    "count_mismatch",
    "error",
)
ITEM_OUTCOMES = ("created", "updated", "unchanged", "failed")
QUERY_TIMEOUT_SECONDS = 5.0

_FINISHED = ", ".join(f"'{s}'" for s in FINISHED_STATUSES)
_BUCKET_COLUMNS = ", ".join(
    f"count(*) FILTER (WHERE duration_seconds <= {b}) AS le_{i}" for i, b in enumerate(SYNC_DURATION_BUCKETS)
)
RUNS_SQL = f"""
SELECT account_type, mode, status, count(*) AS runs, coalesce(sum(duration_seconds), 0) AS seconds,
       {_BUCKET_COLUMNS}
FROM emag_sync_logs
WHERE sync_type = 'products' AND status IN ({_FINISHED})
GROUP BY account_type, mode, status
"""
# A row says running until someone marks it; a run whose process died (its account lock gone) is not counted.
RUNNING_SQL = f"""
SELECT account_type, mode, count(*) AS runs,
       max(extract(epoch FROM now() - coalesce(heartbeat_at, started_at))) AS heartbeat_age,
       max(extract(epoch FROM now() - started_at)) AS running_for
FROM emag_sync_logs
WHERE sync_type = 'products' AND status = 'running' AND {lock_held_sql("account_type")}
GROUP BY account_type, mode
"""
PRODUCTS_SQL = """
SELECT account_type,
       CASE WHEN is_missing THEN 'missing' WHEN is_active THEN 'active' ELSE 'inactive' END AS state,
       sync_status, count(*) AS products
FROM emag_products_v2
GROUP BY 1, 2, 3
"""
ITEMS_SQL = """
SELECT account_type, sum(created_items) AS created, sum(updated_items) AS updated,
       sum(unchanged_items) AS unchanged, sum(failed_items) AS failed
FROM emag_sync_progress
GROUP BY account_type
"""
PROGRESS_SQL = f"""
SELECT account_type, mode, percentage, current_item, total_items, current_page, total_pages, items_per_second
FROM emag_sync_progress
WHERE status = 'running' AND {lock_held_sql("account_type")}
"""
ACCOUNTS_SQL = """
SELECT account_type,
       extract(epoch FROM now() - last_full_sync_completed_at) AS full_age,
       extract(epoch FROM now() - last_successful_sync_at) AS success_age,
       last_connection_status,
       extract(epoch FROM now() - last_connection_checked_at) AS check_age
FROM emag_account_state
"""
HEALTH_SQL = """
SELECT status, extract(epoch FROM now() - checked_at) AS age
FROM emag_health_checks ORDER BY checked_at DESC LIMIT 1
"""
QUERIES = {
    "runs": RUNS_SQL,
    "running": RUNNING_SQL,
    "products": PRODUCTS_SQL,
    "items": ITEMS_SQL,
    "progress": PROGRESS_SQL,
    "accounts": ACCOUNTS_SQL,
    "health": HEALTH_SQL,
}

Row = dict[str, Any]


@dataclass
class Snapshot:
    """What one scrape read; the collector turns it into metric families."""

    rows: dict[str, list[Row]] = field(default_factory=dict)
    database_up: bool = False
    figures: request_metrics.RequestFigures | None = None
    shared_figures: bool = False
    redis_up: bool | None = None  # None: Redis not configured
    accounts: Sequence[str] = ()


async def read_database(engine: AsyncEngine) -> dict[str, list[Row]] | None:
    """Every query in one connection; None when the database cannot answer (the scrape still succeeds)."""

    async def run() -> dict[str, list[Row]]:
        async with engine.connect() as conn:
            await conn.execute(text("SET LOCAL statement_timeout = 5000"))
            return {
                name: [dict(r._mapping) for r in (await conn.execute(text(sql))).all()] for name, sql in QUERIES.items()
            }

    try:
        return await asyncio.wait_for(run(), QUERY_TIMEOUT_SECONDS)
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        log.warning("metrics: the database did not answer (%s)", exc)
        return None


def read_request_figures() -> tuple[request_metrics.RequestFigures, bool, bool | None]:
    """(figures, shared across processes, redis up). Blocking: call it in a thread."""
    redis_url, prefix = request_metrics.metrics_target()
    if not redis_url:
        return request_metrics.local_figures(), False, None
    request_metrics.flush_metrics()
    client = redis.Redis.from_url(
        redis_url,
        socket_timeout=request_metrics.REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=request_metrics.REDIS_TIMEOUT_SECONDS,
    )
    try:
        return request_metrics.read_shared_figures(client, prefix), True, True
    except redis.RedisError as exc:
        log.warning("metrics: Redis did not answer (%s); eMAG request figures left out", exc)
        return request_metrics.RequestFigures(), True, False
    finally:
        client.close()


async def snapshot(engine: AsyncEngine, settings: Settings) -> Snapshot:
    rows, (figures, shared, redis_up) = await asyncio.gather(
        read_database(engine), asyncio.to_thread(read_request_figures)
    )
    configured = [a for a in ACCOUNTS if settings.has_credentials(a)]
    return Snapshot(
        rows=rows or {},
        database_up=rows is not None,
        figures=figures,
        shared_figures=shared,
        redis_up=redis_up,
        accounts=configured,
    )


def _age(value: Any) -> float:
    return math.inf if value is None else max(float(value), 0.0)


class SnapshotCollector(Collector):
    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def collect(self) -> Iterable[Metric]:
        snap = self.snap
        up = GaugeMetricFamily("magflow_database_up", "1 when the database answered this scrape's queries.")
        up.add_metric([], 1.0 if snap.database_up else 0.0)
        yield up
        redis_up = GaugeMetricFamily(
            "magflow_metrics_redis_up",
            "1 when the per-request eMAG figures of every process were read from Redis; 0 when Redis did "
            "not answer; absent without REDIS_URL (the figures are then this process's own).",
        )
        if snap.redis_up is not None:
            redis_up.add_metric([], 1.0 if snap.redis_up else 0.0)
        yield redis_up
        yield from self._runs(snap.rows.get("runs", []))
        yield from self._running(snap.rows.get("running", []))
        yield self._products(snap.rows.get("products", []))
        yield self._items(snap.rows.get("items", []))
        yield from self._progress(snap.rows.get("progress", []))
        if snap.database_up:
            yield from self._accounts(snap.rows.get("accounts", []), snap.accounts)
        yield from self._health(snap.rows.get("health", []))
        yield from self._requests(snap.figures or request_metrics.RequestFigures())

    def _runs(self, rows: list[Row]) -> Iterator[Metric]:
        runs = CounterMetricFamily(
            "magflow_sync_runs",
            "Finished product sync runs by account (main, fbe or both), mode and outcome "
            "(completed, partial, failed, interrupted, cancelled).",
            labels=["account", "mode", "status"],
        )
        durations: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0] * (len(SYNC_DURATION_BUCKETS) + 2))
        for r in rows:
            runs.add_metric([r["account_type"], r["mode"], r["status"]], float(r["runs"]))
            acc = durations[(r["account_type"], r["mode"])]
            for i in range(len(SYNC_DURATION_BUCKETS)):
                acc[i] += float(r[f"le_{i}"])
            acc[-2] += float(r["runs"])
            acc[-1] += float(r["seconds"])
        yield runs
        histogram = HistogramMetricFamily(
            "magflow_sync_duration_seconds",
            "Duration of finished product sync runs.",
            labels=["account", "mode"],
        )
        for (account, mode), acc in sorted(durations.items()):
            buckets = [(_bound(b), acc[i]) for i, b in enumerate(SYNC_DURATION_BUCKETS)]
            buckets.append(("+Inf", acc[-2]))
            histogram.add_metric([account, mode], buckets, acc[-1])
        yield histogram

    def _running(self, rows: list[Row]) -> Iterator[Metric]:
        running = GaugeMetricFamily(
            "magflow_sync_running",
            "Product sync runs running now (a run whose process died or lost its account lock is not counted).",
            labels=["account", "mode"],
        )
        heartbeat = GaugeMetricFamily(
            "magflow_sync_heartbeat_age_seconds",
            "Seconds since a running sync last reported it is alive (it beats every 10 s; a large value "
            "means a stuck run; a run whose process died is not counted as running at all).",
            labels=["account", "mode"],
        )
        running_for = GaugeMetricFamily(
            "magflow_sync_running_seconds", "How long the running sync has been running.",
            labels=["account", "mode"],
        )  # fmt: skip
        for r in rows:
            labels = [r["account_type"], r["mode"]]
            running.add_metric(labels, float(r["runs"]))
            heartbeat.add_metric(labels, _age(r["heartbeat_age"]))
            running_for.add_metric(labels, _age(r["running_for"]))
        yield from (running, heartbeat, running_for)

    def _products(self, rows: list[Row]) -> Metric:
        products = GaugeMetricFamily(
            "magflow_products",
            "Products stored per account, state (active, inactive, missing) and sync_status.",
            labels=["account", "state", "sync_status"],
        )
        for r in rows:
            products.add_metric([r["account_type"], r["state"], r["sync_status"]], float(r["products"]))
        return products

    def _items(self, rows: list[Row]) -> Metric:
        items = CounterMetricFamily(
            "magflow_sync_items",
            "Products handled by syncs per account and outcome (created, updated, unchanged, failed); "
            "moves page by page while a sync runs.",
            labels=["account", "outcome"],
        )
        for r in rows:
            for outcome in ITEM_OUTCOMES:
                items.add_metric([r["account_type"], outcome], float(r[outcome] or 0))
        return items

    def _progress(self, rows: list[Row]) -> Iterator[Metric]:
        names = {
            "ratio": ("magflow_sync_progress_ratio", "Share (0-1) of the running sync's products done."),
            "items": ("magflow_sync_progress_items", "Products the running sync has handled so far."),
            "total": ("magflow_sync_progress_total_items", "Products the running sync expects to handle."),
            "pages": ("magflow_sync_progress_pages", "Pages the running sync has read so far."),
            "rate": ("magflow_sync_items_per_second", "Products per second of the running sync."),
        }
        families = {k: GaugeMetricFamily(name, doc, labels=["account", "mode"]) for k, (name, doc) in names.items()}
        for r in rows:
            labels = [r["account_type"], r["mode"]]
            families["ratio"].add_metric(labels, float(r["percentage"]) / 100.0)
            families["items"].add_metric(labels, float(r["current_item"]))
            families["total"].add_metric(labels, float(r["total_items"]))
            families["pages"].add_metric(labels, float(r["current_page"]))
            families["rate"].add_metric(labels, float(r["items_per_second"]))
        yield from families.values()

    def _accounts(self, rows: list[Row], configured: Sequence[str]) -> Iterator[Metric]:
        full = GaugeMetricFamily(
            "magflow_last_full_sync_age_seconds",
            "Seconds since the account's last complete full sync (+Inf: never).",
            labels=["account"],
        )
        success = GaugeMetricFamily(
            "magflow_last_successful_sync_age_seconds",
            "Seconds since the account's last successful sync of any mode (+Inf: never).",
            labels=["account"],
        )
        connection = GaugeMetricFamily(
            "magflow_account_connection_status",
            "1 for the result of the account's last connection check (test-connection or the health "
            "check): ok, auth_failed (credentials refused), ip_not_whitelisted, unreachable, "
            "rate_limited, error.",
            labels=["account", "status"],
        )
        checked = GaugeMetricFamily(
            "magflow_account_connection_check_age_seconds",
            "Seconds since the account's connection was last checked (+Inf: never).",
            labels=["account"],
        )
        seen: set[str] = set()
        for r in rows:
            account = r["account_type"]
            seen.add(account)
            full.add_metric([account], _age(r["full_age"]))
            success.add_metric([account], _age(r["success_age"]))
            checked.add_metric([account], _age(r["check_age"]))
            for status in CONNECTION_STATUSES:
                connection.add_metric([account, status], 1.0 if r["last_connection_status"] == status else 0.0)
        for account in configured:
            if account not in seen:
                for family in (full, success, checked):
                    family.add_metric([account], math.inf)
        yield from (full, success, connection, checked)

    def _health(self, rows: list[Row]) -> Iterator[Metric]:
        status = GaugeMetricFamily(
            "magflow_health_check_status",
            "1 for the status (ok, degraded, unhealthy) of the last stored periodic health check.",
            labels=["status"],
        )
        age = GaugeMetricFamily(
            "magflow_health_check_age_seconds", "Seconds since the last stored periodic health check."
        )
        for r in rows:
            for name in ("ok", "degraded", "unhealthy"):
                status.add_metric([name], 1.0 if r["status"] == name else 0.0)
            age.add_metric([], _age(r["age"]))
        yield from (status, age)

    def _requests(self, figures: request_metrics.RequestFigures) -> Iterator[Metric]:
        latency = HistogramMetricFamily(
            "magflow_emag_request_duration_seconds",
            "eMAG API requests by account, route and HTTP status (or timeout/network) and their latency.",
            labels=["account", "route", "status"],
        )
        per_series: dict[tuple[str, ...], dict[str, float]] = defaultdict(dict)
        for (account, route, status, le), count in figures.buckets.items():
            per_series[(account, route, status)][le] = count
        for labels, counts in sorted(per_series.items()):
            cumulative, buckets = 0.0, []
            for le in request_metrics.BUCKET_LABELS:
                cumulative += counts.get(le, 0.0)
                buckets.append((le, cumulative))
            latency.add_metric(list(labels), buckets, figures.latency_sum.get(labels, 0.0))
        yield latency
        limited = CounterMetricFamily(
            "magflow_emag_rate_limited", "HTTP 429 answers from eMAG by account and rate bucket.",
            labels=["account", "bucket"],
        )  # fmt: skip
        for labels, count in sorted(figures.rate_limited.items()):
            limited.add_metric(list(labels), count)
        yield limited
        waited = CounterMetricFamily(
            "magflow_emag_rate_budget_wait_seconds",
            "Seconds requests spent waiting for a slot in the account's rate budget.",
            labels=["account", "bucket"],
        )
        waits = CounterMetricFamily(
            "magflow_emag_rate_budget_waits",
            "Requests that took a slot from the account's rate budget.",
            labels=["account", "bucket"],
        )
        for labels, seconds in sorted(figures.wait_seconds.items()):
            waited.add_metric(list(labels), seconds)
        for labels, count in sorted(figures.waits.items()):
            waits.add_metric(list(labels), count)
        yield from (waited, waits)


def _bound(value: float) -> str:
    return str(float(value))


async def render_metrics(engine: AsyncEngine, settings: Settings) -> bytes:
    """The Prometheus text exposition of everything above, built for this scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(await snapshot(engine, settings)))
    return generate_latest(registry)
