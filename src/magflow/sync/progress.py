"""Per-page bookkeeping: the progress row's numbers (percent, rate, ETA) and the run's counters, committed
together with the page."""

from __future__ import annotations

import copy
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, func, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from magflow.emag import ClientStats
from magflow.models import EmagSyncLog, EmagSyncProgress
from magflow.sync.runs import MAX_STORED_ERRORS
from magflow.sync.writer import PageOutcome

ERRORS_PER_PAGE = 20
UNFINISHED_MAX = 99.99  # 100% is said only by the end of the run


@dataclass
class StatsDelta:
    """The client's counters are totals; each page adds what changed since the previous page."""

    requests: int = 0
    retries: int = 0
    http_429: int = 0
    rate_wait_seconds: float = 0.0

    def take(self, stats: ClientStats) -> StatsDelta:
        delta = StatsDelta(
            requests=stats.requests - self.requests,
            retries=stats.retries - self.retries,
            http_429=stats.http_429 - self.http_429,
            rate_wait_seconds=stats.rate_wait_seconds - self.rate_wait_seconds,
        )
        self.requests, self.retries = stats.requests, stats.retries
        self.http_429, self.rate_wait_seconds = stats.http_429, stats.rate_wait_seconds
        return delta


def advance(
    progress: EmagSyncProgress,
    outcome: PageOutcome,
    page_no: int,
    read: int,
    checkpoint: dict[str, Any],
    processed_this_run: int,
    started_monotonic: float,
    now: datetime,
) -> None:
    """Move the progress row past a page: counts, percent, items/s and an ETA from the measured rate.

    `current_item` counts the offers of the current pass (a full sync that scans again starts again from 0), so it
    never passes the total; the percentage stays below 100 until the run has finished."""
    progress.current_page = page_no
    progress.current_item += read  # offers this pass read: the position in the catalogue
    progress.created_items += outcome.created
    progress.updated_items += outcome.updated
    progress.unchanged_items += outcome.unchanged
    progress.failed_items += outcome.failed
    # eMAG's count can lag the listing: the total grows to what was really read rather than show 120%.
    progress.total_items = max(progress.total_items, progress.current_item)
    total = progress.total_items
    progress.percentage = min(round(100.0 * progress.current_item / total, 2), UNFINISHED_MAX) if total else 0.0
    rate = processed_this_run / max(time.monotonic() - started_monotonic, 1e-6)
    progress.items_per_second = round(rate, 2)
    remaining = max(total - progress.current_item, 0)
    progress.estimated_completion_at = now + timedelta(seconds=remaining / rate) if rate > 0 else None
    progress.checkpoint = copy.deepcopy(checkpoint)
    progress.heartbeat_at = now
    progress.updated_at = now


def start_pass(progress: EmagSyncProgress, checkpoint: dict[str, Any]) -> None:
    """A full sync scans again: the pass's own position starts from the first page (the counters go on)."""
    progress.current_item = 0
    progress.current_page = 0
    progress.percentage = 0.0
    progress.estimated_completion_at = None
    progress.checkpoint = copy.deepcopy(checkpoint)


async def record_page(
    session: AsyncSession, sync_id: uuid.UUID, outcome: PageOutcome, stats: StatsDelta, now: datetime
) -> bool:
    """Add a page's numbers to the run (one UPDATE); True when someone asked the run to stop."""
    errors = outcome.errors[:ERRORS_PER_PAGE]
    stored_errors: Any = EmagSyncLog.errors
    if errors:
        stored_errors = case(
            (
                func.jsonb_array_length(EmagSyncLog.errors) < MAX_STORED_ERRORS,
                EmagSyncLog.errors.op("||")(bindparam("page_errors", errors, type_=JSONB)),
            ),
            else_=EmagSyncLog.errors,
        )
    cancel = await session.scalar(
        update(EmagSyncLog)
        .where(EmagSyncLog.id == sync_id)
        .values(
            processed_items=EmagSyncLog.processed_items + outcome.processed,
            created_items=EmagSyncLog.created_items + outcome.created,
            updated_items=EmagSyncLog.updated_items + outcome.updated,
            unchanged_items=EmagSyncLog.unchanged_items + outcome.unchanged,
            failed_items=EmagSyncLog.failed_items + outcome.failed,
            conflicts=EmagSyncLog.conflicts + outcome.conflicts,
            pages_processed=EmagSyncLog.pages_processed + 1,
            api_requests=EmagSyncLog.api_requests + stats.requests,
            api_retries=EmagSyncLog.api_retries + stats.retries,
            rate_limit_hits=EmagSyncLog.rate_limit_hits + stats.http_429,
            rate_limit_wait_seconds=EmagSyncLog.rate_limit_wait_seconds + stats.rate_wait_seconds,
            errors=stored_errors,
            heartbeat_at=now,
        )
        .returning(EmagSyncLog.cancel_requested)
    )
    return bool(cancel)
