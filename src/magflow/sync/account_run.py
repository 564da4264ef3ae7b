"""One account's part of a sync run: read pages (prefetching the next while writing the current), commit each
page with its checkpoint, verify a full scan and sweep what is gone."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from magflow.emag import EmagClient, EmagError, ProductPage
from magflow.models import EmagProduct, EmagSyncProgress, EmagSyncSeen
from magflow.sync.enums import SyncMode
from magflow.sync.plan import Plan
from magflow.sync.progress import StatsDelta, advance, record_page
from magflow.sync.results import AccountResult, brief
from magflow.sync.runs import find_resumable, utcnow
from magflow.sync.writer import PageOutcome, PageWriter, mark_missing, unseen_candidates

log = logging.getLogger("magflow.sync")

MAX_PASSES = 3
CONFIRM_LIMIT = 25
PREFETCH = 2
FETCH_AHEAD = 3

ProgressCallback = Callable[[str, dict[str, Any]], Awaitable[None] | None]


@dataclass
class _End:
    reached_end: bool


class AccountRun:
    def __init__(
        self,
        *,
        account: str,
        sync_id: uuid.UUID,
        client: EmagClient,
        sessions: async_sessionmaker[AsyncSession],
        writer: PageWriter,
        plan: Plan,
        guard_ratio: float,
        on_progress: ProgressCallback | None,
    ) -> None:
        self.account = account
        self.sync_id = sync_id
        self.client = client
        self.sessions = sessions
        self.writer = writer
        self.plan = plan
        self.guard_ratio = guard_ratio
        self.on_progress = on_progress
        self.result = AccountResult(account=account)
        self._cancelled = False
        self._started = time.monotonic()
        self._stats = StatsDelta()
        self._scan_finished = False

    async def run(self) -> AccountResult:
        async with self.sessions() as session:
            progress, checkpoint = await self._start(session)
            try:
                await self._run_checkpointed(session, progress, checkpoint)
            except EmagError as exc:
                await session.rollback()
                self._fail(exc, progress)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("sync failed sync_id=%s account=%s", self.sync_id, self.account)
                await session.rollback()
                self.result.status = "failed" if self.result.pages == 0 else "partial"
                self.result.error_message = f"internal error: {brief(exc)}"
                self.result.errors.append({"account": self.account, "reason": self.result.error_message})
            await self._finish(session, progress)
        return self.result

    def _fail(self, exc: EmagError, progress: EmagSyncProgress) -> None:
        log.error(
            "sync error sync_id=%s account=%s mode=%s page=%s kind=%s error=%s",
            self.sync_id,
            self.account,
            self.plan.mode.value,
            getattr(exc, "page", None),
            exc.kind,
            exc,
        )
        self.result.status = "failed" if self.result.pages == 0 else "partial"
        self.result.error_message = str(exc)
        self.result.errors.append(
            {
                "account": self.account,
                "page": getattr(exc, "page", None),
                "reason": str(exc),
                "kind": exc.kind,
            }
        )

    async def _start(self, session: AsyncSession) -> tuple[EmagSyncProgress, dict[str, Any]]:
        plan = self.plan
        previous = None
        if plan.mode is not SyncMode.SELECTIVE:
            previous = await find_resumable(session, self.account, plan.mode.value, plan.fingerprint)
        if previous is not None:
            checkpoint = dict(previous.checkpoint)
            previous.checkpoint = {**previous.checkpoint, "resumed_by": str(self.sync_id)}
            self.result.resumed_from = previous.sync_id
        else:
            checkpoint = {
                "next_page": 1,
                "filter_index": 0,
                "pass": 1,
                "scan_id": str(uuid.uuid4()),
                "count_at_start": None,
                "fingerprint": plan.fingerprint,
                "resumable": plan.mode is not SyncMode.SELECTIVE,
            }
        progress = EmagSyncProgress(
            sync_id=self.sync_id,
            account_type=self.account,
            mode=plan.mode.value,
            status="running",
            checkpoint=checkpoint,
        )
        if previous is not None:
            # Percentages go on from where the interrupted run stopped; the counts are this run's own.
            progress.current_item = previous.current_item
            progress.current_page = previous.current_page
        session.add(progress)
        await session.commit()
        return progress, checkpoint

    async def _run_checkpointed(
        self, session: AsyncSession, progress: EmagSyncProgress, checkpoint: dict[str, Any]
    ) -> None:
        plan = self.plan
        while checkpoint["filter_index"] < len(plan.filter_sets):
            filters = plan.filter_sets[checkpoint["filter_index"]]
            count = await self.client.count_products(filters)
            if checkpoint.get("count_at_start") is None:
                checkpoint["count_at_start"] = count.items
            self.result.total_items = max(self.result.total_items, count.items)
            progress.total_items = count.items if len(plan.filter_sets) == 1 else len(plan.filter_sets)
            # eMAG counts pages of its own itemsPerPage; ours may differ.
            pages = -(-count.items // plan.items_per_page)
            progress.total_pages = pages
            if plan.max_pages is not None:
                progress.total_pages = min(pages, plan.max_pages)
                progress.total_items = min(count.items, plan.max_pages * plan.items_per_page)
            complete = await self._scan(session, progress, checkpoint, filters, pages)
            if self._cancelled:
                return
            if plan.mode is SyncMode.FULL and complete:
                if await self._verify_and_sweep(session, progress, checkpoint):
                    return
                continue  # another pass
            checkpoint.update(filter_index=checkpoint["filter_index"] + 1, next_page=1, count_at_start=None)
        self.result.status = "completed"

    def _may_read(self, page: int, known_pages: int) -> bool:
        if self.plan.max_pages is not None and page > self.plan.max_pages:
            return False
        return page <= max(known_pages, 1)

    async def _scan(
        self,
        session: AsyncSession,
        progress: EmagSyncProgress,
        checkpoint: dict[str, Any],
        filters: dict[str, Any],
        known_pages: int,
    ) -> bool:
        """Read from the checkpoint's page on; True when the last page was reached (not max_pages)."""
        plan = self.plan
        queue: asyncio.Queue[tuple[int, ProductPage, datetime] | _End | Exception] = asyncio.Queue(PREFETCH)
        scan_id = uuid.UUID(checkpoint["scan_id"]) if plan.mode is SyncMode.FULL else None

        async def produce() -> None:
            # Up to FETCH_AHEAD reads in flight (the rate budget still paces them), handed on in page order.
            inflight: deque[tuple[int, datetime, asyncio.Task[ProductPage]]] = deque()
            next_page = checkpoint["next_page"]
            try:
                while True:
                    while len(inflight) < FETCH_AHEAD and self._may_read(next_page, known_pages):
                        task = asyncio.create_task(
                            self.client.read_products_page(next_page, plan.items_per_page, filters)
                        )
                        inflight.append((next_page, utcnow(), task))
                        next_page += 1
                    if not inflight:
                        # The page eMAG counted as last was full (the end-of-scan count catches growth), or
                        # max_pages was reached, which is not the end of the catalogue.
                        reached = plan.max_pages is None or next_page - 1 < plan.max_pages
                        await queue.put(_End(reached_end=reached))
                        return
                    page_no, observed, task = inflight.popleft()
                    page = await task
                    await queue.put((page_no, page, observed))
                    if page.raw_count < plan.items_per_page:
                        await queue.put(_End(reached_end=True))
                        return
            except Exception as exc:
                # Whatever stops the reads (eMAG, the rate budget's Redis, a parser bug) must reach the writer:
                # left in this task it would leave the writer waiting on the queue for ever.
                await queue.put(exc)
            finally:
                for _, _, pending in inflight:
                    pending.cancel()
                for _, _, pending in inflight:
                    with contextlib.suppress(asyncio.CancelledError, EmagError):
                        await pending

        producer = asyncio.create_task(produce(), name=f"read-pages-{self.account}")
        try:
            while True:
                item = await queue.get()
                if isinstance(item, Exception):
                    raise item
                if isinstance(item, _End):
                    return item.reached_end
                page_no, page, observed = item
                outcome = await self.writer.write(session, page.offers, page.rejected, observed, scan_id)
                checkpoint["next_page"] = page_no + 1
                self.result.add(outcome)
                self.result.pages += 1
                await self._commit_page(session, progress, checkpoint, outcome, page_no)
                if self._cancelled:
                    return False
        finally:
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer

    async def _commit_page(
        self,
        session: AsyncSession,
        progress: EmagSyncProgress,
        checkpoint: dict[str, Any],
        outcome: PageOutcome,
        page_no: int,
    ) -> None:
        now = utcnow()
        advance(progress, outcome, page_no, checkpoint, self.result.total_processed, self._started, now)
        cancel = await record_page(session, self.sync_id, outcome, self._stats.take(self.client.stats), now)
        await session.commit()
        log.debug(
            "page done sync_id=%s account=%s mode=%s page=%d processed=%d created=%d updated=%d unchanged=%d failed=%d",
            self.sync_id,
            self.account,
            self.plan.mode.value,
            page_no,
            outcome.processed,
            outcome.created,
            outcome.updated,
            outcome.unchanged,
            outcome.failed,
        )
        for error in outcome.errors:
            log.warning(
                "product quarantined sync_id=%s account=%s emag_id=%s reason=%s",
                self.sync_id,
                self.account,
                error.get("emag_id"),
                error.get("reason"),
            )
        if cancel:
            log.warning("sync cancelled sync_id=%s account=%s page=%d", self.sync_id, self.account, page_no)
            self._cancelled = True
            self.result.status = "cancelled"
        await self._notify(progress)

    async def _notify(self, progress: EmagSyncProgress) -> None:
        if self.on_progress is None:
            return
        maybe = self.on_progress(
            self.account,
            {
                "current_page": progress.current_page,
                "total_pages": progress.total_pages,
                "current_item": progress.current_item,
                "total_items": progress.total_items,
                "percentage": progress.percentage,
                "items_per_second": progress.items_per_second,
            },
        )
        if maybe is not None:
            await maybe

    async def _verify_and_sweep(
        self, session: AsyncSession, progress: EmagSyncProgress, checkpoint: dict[str, Any]
    ) -> bool:
        """After a full pass: True when done (swept, or refused with a reason); False to scan once more."""
        scan_id = uuid.UUID(checkpoint["scan_id"])
        count_end = (await self.client.count_products({})).items
        # The seen-set was filled during this scan: without fresh statistics the planner expects one row and
        # compares every product with every seen id (quadratic; seconds at 10,000 products).
        await session.execute(text("ANALYZE emag_sync_seen"))
        seen = int(
            await session.scalar(select(func.count()).select_from(EmagSyncSeen).where(EmagSyncSeen.scan_id == scan_id))
            or 0
        )
        stable = checkpoint.get("count_at_start") == count_end and seen >= count_end
        if not stable:
            if checkpoint["pass"] >= MAX_PASSES:
                self._partial(
                    f"the catalogue kept changing during {MAX_PASSES} passes (eMAG count {count_end}, "
                    f"read {seen}); nothing was marked missing. Run a full sync again at a quieter time"
                )
                await self._drop_seen(session, scan_id)
                return True
            await self._drop_seen(session, scan_id)
            checkpoint.update(
                {
                    "pass": checkpoint["pass"] + 1,
                    "scan_id": str(uuid.uuid4()),
                    "next_page": 1,
                    "count_at_start": count_end,
                }
            )
            progress.checkpoint = dict(checkpoint)
            await session.commit()
            return False
        candidates = await unseen_candidates(session, self.account, scan_id, CONFIRM_LIMIT + 1)
        if 0 < len(candidates) <= CONFIRM_LIMIT:
            # Offset paging can skip a row that shifted; ask for each candidate by id before calling it gone.
            for emag_id in candidates:
                page = await self.client.read_products_page(1, self.plan.items_per_page, {"id": emag_id})
                if page.offers or page.rejected:
                    outcome = await self.writer.write(session, page.offers, page.rejected, utcnow(), scan_id)
                    self.result.add(outcome)
            await session.commit()
        known = int(
            await session.scalar(
                select(func.count())
                .select_from(EmagProduct)
                .where(EmagProduct.account_type == self.account, EmagProduct.is_missing.is_(False))
            )
            or 0
        )
        if known and seen < self.guard_ratio * known:
            self._partial(
                f"missing-product sweep refused: eMAG listed {seen} offers but {known} are stored, "
                f"below the {self.guard_ratio:.0%} guard; nothing was marked missing. "
                "Check the account on eMAG (status filters, suspended offers), then run a full sync again"
            )
        else:
            self.result.missing = await mark_missing(session, self.account, scan_id, self.sync_id, utcnow())
            if self.result.missing:
                log.warning(
                    "products missing sync_id=%s account=%s count=%d", self.sync_id, self.account, self.result.missing
                )
            self.result.status = "completed"
        await self._drop_seen(session, scan_id)
        return True

    def _partial(self, message: str) -> None:
        self._scan_finished = True  # only the end-of-scan checks end a run partial this way
        log.warning("sync partial sync_id=%s account=%s reason=%s", self.sync_id, self.account, message)
        self.result.status = "partial"
        self.result.error_message = message
        self.result.errors.append({"account": self.account, "reason": message})

    async def _drop_seen(self, session: AsyncSession, scan_id: uuid.UUID) -> None:
        await session.execute(delete(EmagSyncSeen).where(EmagSyncSeen.scan_id == scan_id))
        await session.commit()

    async def _finish(self, session: AsyncSession, progress: EmagSyncProgress) -> None:
        await session.refresh(progress)  # a rollback expired it; the committed state is the truth
        now = utcnow()
        status = self.result.status
        if status == "running":
            status = self.result.status = "completed"
        progress.status = status
        progress.last_error = self.result.error_message
        progress.heartbeat_at = now
        progress.updated_at = now
        # Every committed page is checkpointed, so any run that stopped before the end of its scan can go on from
        # there; a run whose scan finished (and then refused the sweep) has nothing left to resume.
        resumable = status in ("failed", "cancelled", "partial") and not self._scan_finished
        progress.checkpoint = {
            **progress.checkpoint,
            "resumable": resumable and self.plan.mode is not SyncMode.SELECTIVE,
        }
        if status == "completed":
            progress.percentage = 100.0
            progress.estimated_completion_at = now
        session.add(progress)
        await session.commit()
