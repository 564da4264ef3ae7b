"""One account's part of a sync run: read pages (prefetching the next while writing the current), commit each
page with its checkpoint, then (full syncs) verify the scan and sweep what is gone (magflow.sync.sweep)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from magflow.emag import EmagClient, EmagError
from magflow.models import EmagSyncProgress
from magflow.sync.enums import SyncMode
from magflow.sync.locks import LockLostError
from magflow.sync.plan import Plan
from magflow.sync.progress import StatsDelta, advance, record_page
from magflow.sync.results import AccountResult, brief
from magflow.sync.runs import find_resumable, utcnow
from magflow.sync.scan import PageRead, PageReader, ScanEnd, ScanGapError
from magflow.sync.sweep import FullScanVerifier
from magflow.sync.writer import PageOutcome, PageWriter

log = logging.getLogger("magflow.sync")

ProgressCallback = Callable[[str, dict[str, Any]], Awaitable[None] | None]
# Called inside every page transaction just before it commits; raises LockLostError when this run no longer
# holds its account lock (then nothing of that transaction is committed).
LockGuard = Callable[[AsyncSession], Awaitable[None]]


class AccountRun(FullScanVerifier):
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
        lock_guard: LockGuard | None = None,
    ) -> None:
        self.account = account
        self.sync_id = sync_id
        self.client = client
        self.sessions = sessions
        self.writer = writer
        self.plan = plan
        self.guard_ratio = guard_ratio
        self.on_progress = on_progress
        self.lock_guard = lock_guard
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
                self._fail(exc)
            except LockLostError as exc:
                await session.rollback()
                log.error("sync stopped sync_id=%s account=%s reason=%s", self.sync_id, self.account, exc)
                self.result.status = "interrupted"
                self.result.error_message = str(exc)
                self.result.errors.append({"account": self.account, "reason": str(exc), "kind": "lock_lost"})
            except ScanGapError as exc:
                await session.rollback()
                self._partial(str(exc), scan_finished=False)
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

    def _fail(self, exc: EmagError) -> None:
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

    def _new_checkpoint(self) -> dict[str, Any]:
        scan_id = str(uuid.uuid4())
        return {
            "next_page": 1,
            "filter_index": 0,
            "pass": 1,
            "scan_id": scan_id,
            "scan_ids": [scan_id],
            "count_at_start": None,
            "pass_repeated": 0,
            "pass_anonymous": 0,
            "fingerprint": self.plan.fingerprint,
            "resumable": self.plan.mode is not SyncMode.SELECTIVE,
        }

    async def _start(self, session: AsyncSession) -> tuple[EmagSyncProgress, dict[str, Any]]:
        plan = self.plan
        previous = None
        if plan.mode is not SyncMode.SELECTIVE:
            previous = await find_resumable(session, self.account, plan.mode.value, plan.fingerprint)
        if previous is not None:
            # Deep copies: the ORM must never hold the dict this run changes in place, or a later assignment of an
            # equal-looking value is not seen as a change and the checkpoint is not saved.
            checkpoint = copy.deepcopy(dict(previous.checkpoint))
            checkpoint.setdefault("scan_ids", [checkpoint["scan_id"]])
            previous.checkpoint = {**copy.deepcopy(previous.checkpoint), "resumed_by": str(self.sync_id)}
            self.result.resumed_from = previous.sync_id
        else:
            checkpoint = self._new_checkpoint()
        progress = EmagSyncProgress(
            sync_id=self.sync_id,
            account_type=self.account,
            mode=plan.mode.value,
            status="running",
            checkpoint=copy.deepcopy(checkpoint),
        )
        if previous is not None:
            # Percentages go on from where the interrupted run stopped; the counts are this run's own.
            progress.current_item = previous.current_item
            progress.current_page = previous.current_page
            progress.total_items = max(previous.total_items, previous.current_item)
            progress.total_pages = previous.total_pages
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
            first_count = checkpoint.get("count_at_start") is None
            if first_count:
                checkpoint["count_at_start"] = count.items
            self._record_total(progress, count.items, first_count)
            # eMAG counts pages of its own itemsPerPage; ours may differ.
            pages = -(-count.items // plan.items_per_page)
            progress.total_pages = pages if plan.max_pages is None else min(pages, plan.max_pages)
            complete = await self._scan(session, progress, checkpoint, filters, pages, count.items)
            if self._cancelled:
                return
            if plan.mode is SyncMode.FULL and complete:
                if await self._verify_and_sweep(session, progress, checkpoint):
                    return
                continue  # another pass
            checkpoint.update(filter_index=checkpoint["filter_index"] + 1, next_page=1, count_at_start=None)
        self.result.status = "completed"

    def _record_total(self, progress: EmagSyncProgress, items: int, first_count: bool) -> None:
        plan = self.plan
        if len(plan.filter_sets) > 1:
            # A selective sync of many ids or SKUs: one count per filter; the total is their sum.
            if first_count:
                self.result.total_items += items
            progress.total_items = max(len(plan.filter_sets), self.result.total_items)
            return
        self.result.total_items = max(self.result.total_items, items)
        progress.total_items = items
        if plan.max_pages is not None:
            progress.total_items = min(items, plan.max_pages * plan.items_per_page)

    async def _scan(
        self,
        session: AsyncSession,
        progress: EmagSyncProgress,
        checkpoint: dict[str, Any],
        filters: dict[str, Any],
        known_pages: int,
        known_items: int,
    ) -> bool:
        """Read from the checkpoint's page on; True when the last page was reached (not max_pages)."""
        plan = self.plan
        scan_id = uuid.UUID(checkpoint["scan_id"]) if plan.mode is SyncMode.FULL else None
        reader = PageReader(
            self.client, plan.items_per_page, filters, checkpoint["next_page"], known_pages, plan.max_pages, known_items
        )
        producer = asyncio.create_task(reader.produce(), name=f"read-pages-{self.account}")
        try:
            while True:
                item = await reader.queue.get()
                if isinstance(item, Exception):
                    raise item
                if isinstance(item, ScanEnd):
                    return item.reached_end
                await self._write_page(session, progress, checkpoint, item, scan_id)
                if self._cancelled:
                    return False
        finally:
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer

    async def _write_page(
        self,
        session: AsyncSession,
        progress: EmagSyncProgress,
        checkpoint: dict[str, Any],
        read: PageRead,
        scan_id: uuid.UUID | None,
    ) -> None:
        page = read.page
        outcome = await self.writer.write(session, page.offers, page.rejected, read.observed, scan_id)
        if checkpoint.get("pass", 1) > 1:
            # A pass that scans again counts only what it changed: its unchanged and quarantined offers were
            # counted by the first pass, and a catalogue of 300 must not read "600 processed".
            outcome.unchanged = outcome.failed = 0
        checkpoint["next_page"] = read.page_no + 1
        checkpoint["pass_repeated"] = checkpoint.get("pass_repeated", 0) + outcome.repeated
        checkpoint["pass_anonymous"] = checkpoint.get("pass_anonymous", 0) + outcome.anonymous
        await self._commit_page(session, progress, checkpoint, outcome, read.page_no, page.raw_count)
        # Counted once committed: a page whose commit a lost lock refused was never stored.
        self.result.add(outcome)
        self.result.pages += 1

    async def _commit_page(
        self,
        session: AsyncSession,
        progress: EmagSyncProgress,
        checkpoint: dict[str, Any],
        outcome: PageOutcome,
        page_no: int,
        read: int,
    ) -> None:
        now = utcnow()
        done = self.result.total_processed + outcome.processed
        advance(progress, outcome, page_no, read, checkpoint, done, self._started, now)
        cancel = await record_page(session, self.sync_id, outcome, self._stats.take(self.client.stats), now)
        await self._guarded_commit(session)
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
            cleaned = bool(error.get("cleaned"))
            log.log(
                logging.INFO if cleaned else logging.WARNING,
                "product %s sync_id=%s account=%s emag_id=%s reason=%s",
                "cleaned" if cleaned else "quarantined",
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

    async def _guarded_commit(self, session: AsyncSession) -> None:
        """Commit, unless this run lost its account lock: then another sync may already own the account."""
        if self.lock_guard is not None:
            await self.lock_guard(session)
        await session.commit()

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

    def _partial(self, message: str, scan_finished: bool = True) -> None:
        # A scan that finished (and then refused the sweep) has nothing left to resume.
        self._scan_finished = scan_finished
        log.warning("sync partial sync_id=%s account=%s reason=%s", self.sync_id, self.account, message)
        self.result.status = "partial"
        self.result.error_message = message
        self.result.errors.append({"account": self.account, "reason": message})

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
        resumable = status in ("failed", "cancelled", "partial", "interrupted") and not self._scan_finished
        progress.checkpoint = {
            **copy.deepcopy(progress.checkpoint),
            "resumable": resumable and self.plan.mode is not SyncMode.SELECTIVE,
        }
        if status == "completed":
            progress.percentage = 100.0
            progress.estimated_completion_at = now
        session.add(progress)
        await session.commit()
