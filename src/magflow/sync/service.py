"""EmagProductSyncService: the user's guide's entry point for syncing products from MAIN and FBE."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from types import TracebackType
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from magflow.accounts import AccountNotConfiguredError, configured_accounts, rate_budget, with_recorded_formats
from magflow.config import ACCOUNTS, Settings, get_settings
from magflow.db.engine import session_factory
from magflow.emag import AccountConfig, EmagClient, EmagError, RateBudget
from magflow.models import EmagAccountState, EmagSyncLog
from magflow.sync.account_run import AccountRun, ProgressCallback
from magflow.sync.enums import ConflictResolutionStrategy, SyncMode
from magflow.sync.locks import AccountBusy, AccountLocks, LockLostError
from magflow.sync.plan import Plan, SelectiveFilters, SyncRequestError, build_plan, parse_enum
from magflow.sync.results import AccountResult, brief
from magflow.sync.runs import (
    SyncAlreadyRunningError,
    append_errors,
    clean_abandoned_seen,
    interrupt_orphans,
    mark_interrupted,
    running_sync_for,
    utcnow,
)
from magflow.sync.transforms import Transform, TransformContext, load_transform
from magflow.sync.writer import PageWriter

log = logging.getLogger("magflow.sync")

HEARTBEAT_SECONDS = 10.0
OPERATIONS = {
    SyncMode.FULL: "full_sync",
    SyncMode.INCREMENTAL: "incremental_sync",
    SyncMode.SELECTIVE: "selective_sync",
}


class EmagProductSyncService:
    """Sync products of one account or both into `emag_products_v2`.

    async with EmagProductSyncService(db=db, account_type="both",
                                      conflict_strategy=ConflictResolutionStrategy.EMAG_PRIORITY) as svc:
        result = await svc.sync_all_products(mode=SyncMode.INCREMENTAL, max_pages=10)
    """

    def __init__(
        self,
        db: AsyncSession,
        account_type: str = "both",
        conflict_strategy: ConflictResolutionStrategy | str = ConflictResolutionStrategy.EMAG_PRIORITY,
        *,
        settings: Settings | None = None,
        account_configs: Mapping[str, AccountConfig] | None = None,
        budget: RateBudget | None = None,
        triggered_by: str = "manual",
        transform: Transform | None = None,
        on_progress: ProgressCallback | None = None,
        sweep_guard_ratio: float = 0.5,
    ) -> None:
        if account_type not in ("main", "fbe", "both"):
            raise SyncRequestError(f"account_type must be main, fbe or both (got {account_type!r})")
        self.db = db
        self.account_type = account_type
        self.conflict_strategy: ConflictResolutionStrategy = parse_enum(
            ConflictResolutionStrategy, conflict_strategy, "conflict_strategy"
        )
        self.settings = settings or get_settings()
        self._configs = dict(account_configs) if account_configs is not None else None
        self._budget = budget
        self._own_budget = budget is None
        self.triggered_by = triggered_by
        self.transform = transform if transform is not None else load_transform(self.settings.magflow_transform_hook)
        self.on_progress = on_progress
        self.sweep_guard_ratio = sweep_guard_ratio
        self.clients: dict[str, EmagClient] = {}
        self.skipped: list[str] = []

    @property
    def engine(self) -> AsyncEngine:
        bind = self.db.bind
        if isinstance(bind, AsyncEngine):
            return bind
        if bind is None:
            raise RuntimeError("the session given to EmagProductSyncService is not bound to an engine")
        return bind.engine

    async def __aenter__(self) -> EmagProductSyncService:
        configs = self._configs if self._configs is not None else configured_accounts(self.settings)
        wanted = list(ACCOUNTS) if self.account_type == "both" else [self.account_type]
        for account in wanted:
            if account not in configs:
                if self.account_type != "both":
                    upper = account.upper()
                    raise AccountNotConfiguredError(
                        f"account {account} has no credentials: set EMAG_{upper}_USERNAME and EMAG_{upper}_PASSWORD"
                    )
                self.skipped.append(account)
        if not [a for a in wanted if a in configs]:
            raise AccountNotConfiguredError(
                "no eMAG account is configured: set EMAG_MAIN_USERNAME/EMAG_MAIN_PASSWORD "
                "and/or EMAG_FBE_USERNAME/EMAG_FBE_PASSWORD"
            )
        # The body style `magflow test-connection --detect` recorded, unless the account's own setting overrides it.
        configs = await with_recorded_formats(self.engine, configs)
        if self._budget is None:
            self._budget = rate_budget(self.settings)
        for account in wanted:
            if account in configs:
                client = EmagClient(configs[account], budget=self._budget)
                await client.__aenter__()
                self.clients[account] = client
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for client in self.clients.values():
            await client.__aexit__(None, None, None)
        self.clients.clear()
        if self._own_budget and self._budget is not None:
            await self._budget.aclose()
            self._budget = None

    async def sync_all_products(
        self,
        mode: SyncMode | str = SyncMode.INCREMENTAL,
        max_pages: int | None = None,
        items_per_page: int = 100,
        include_inactive: bool = False,
        filters: SelectiveFilters | None = None,
        sync_id: uuid.UUID | None = None,
    ) -> dict[str, Any]:
        """Run one sync and return its numbers; `sync_id` adopts a run queued earlier (REST, workers)."""
        if not self.clients:
            raise RuntimeError("use `async with EmagProductSyncService(...) as svc:` before syncing")
        sync_mode: SyncMode = parse_enum(SyncMode, mode, "mode")
        plan = build_plan(sync_mode, max_pages, items_per_page, include_inactive, filters)
        accounts = list(self.clients)
        try:
            async with AccountLocks(self.engine, accounts) as locks:
                return await self._locked_run(locks, plan, accounts, include_inactive, sync_id)
        except AccountBusy as busy:
            await self.db.rollback()
            running = await running_sync_for(self.db, busy.account, exclude=sync_id)
            if sync_id is not None:
                queued = await self.db.get(EmagSyncLog, sync_id)
                if queued is not None and queued.status == "queued":
                    queued.status = "failed"
                    queued.error_message = str(SyncAlreadyRunningError(busy.account, running))
                    queued.completed_at = utcnow()
                    await self.db.commit()
            raise SyncAlreadyRunningError(busy.account, running) from None

    async def _locked_run(
        self,
        locks: AccountLocks,
        plan: Plan,
        accounts: list[str],
        include_inactive: bool,
        sync_id: uuid.UUID | None,
    ) -> dict[str, Any]:
        db = self.db
        await interrupt_orphans(db, accounts)
        if plan.mode is SyncMode.FULL:
            await clean_abandoned_seen(db)
        run = await db.get(EmagSyncLog, sync_id) if sync_id is not None else None
        parameters = {
            "max_pages": plan.max_pages,
            "items_per_page": plan.items_per_page,
            "include_inactive": include_inactive,
            "conflict_strategy": self.conflict_strategy.value,
            "filters": plan.filter_sets if plan.mode is SyncMode.SELECTIVE else None,
            "skipped_accounts": self.skipped,
        }
        if run is None:
            run = EmagSyncLog(
                id=sync_id or uuid.uuid4(),
                operation=OPERATIONS[plan.mode],
                mode=plan.mode.value,
                parameters=parameters,
                triggered_by=self.triggered_by,
            )
            db.add(run)
        # The row names exactly the accounts whose locks we hold: readers judge it alive by those locks.
        run.account_type = self.account_type if not self.skipped else accounts[0]
        run.status = "running"
        run.started_at = utcnow()
        run.heartbeat_at = run.started_at
        run.worker = f"{socket.gethostname()}:{os.getpid()}"
        await db.commit()
        sync_id = run.id
        log.info("sync started sync_id=%s account=%s mode=%s", sync_id, run.account_type, plan.mode.value)

        heartbeat = asyncio.create_task(self._heartbeat(locks, sync_id))
        try:
            results = await asyncio.gather(
                *(self._account_run(a, sync_id, plan, locks).run() for a in accounts), return_exceptions=True
            )
        except asyncio.CancelledError:
            # The task running us was cancelled (shutdown, a time limit): say so now rather than leave the run
            # "running" until someone reaps it. Committed pages stay, and the next run resumes from them.
            await asyncio.shield(self._mark_cancelled_run(sync_id))
            raise
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        per_account: dict[str, AccountResult] = {}
        for account, outcome in zip(accounts, results, strict=True):
            if isinstance(outcome, BaseException):
                if isinstance(outcome, asyncio.CancelledError):
                    raise outcome
                failed = AccountResult(account=account, status="failed")
                failed.error_message = f"internal error: {brief(outcome)}"
                failed.errors.append({"account": account, "reason": failed.error_message})
                per_account[account] = failed
            else:
                per_account[account] = outcome
        return await self._finish(run, plan, per_account, locks)

    async def _mark_cancelled_run(self, sync_id: uuid.UUID) -> None:
        with contextlib.suppress(Exception):
            async with session_factory(self.engine)() as session:
                await mark_interrupted(session, sync_id, "the sync was stopped before it finished (task cancelled)")
                await session.commit()

    def _account_run(self, account: str, sync_id: uuid.UUID, plan: Plan, locks: AccountLocks) -> AccountRun:
        writer = PageWriter(
            account=account,
            sync_id=sync_id,
            strategy=self.conflict_strategy,
            transform=self.transform,
            actor=self.triggered_by[:64],  # the audit names who started the sync, as the run row does
        )
        return _TransformingRun(
            account=account,
            sync_id=sync_id,
            client=self.clients[account],
            sessions=session_factory(self.engine),
            writer=writer,
            plan=plan,
            guard_ratio=self.sweep_guard_ratio,
            on_progress=self.on_progress,
            lock_guard=locks.guard,
        )

    async def _heartbeat(self, locks: AccountLocks, sync_id: uuid.UUID) -> None:
        """Keep the lock connection alive and the run's heartbeat fresh. When the lock connection is lost, say
        so at once: the run is marked interrupted and its account runs stop at their next page (the guard)."""
        sessions = session_factory(self.engine)
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await locks.ping()
            except LockLostError as lost:
                try:
                    async with sessions() as session:
                        await mark_interrupted(session, sync_id, str(lost))
                        await session.commit()
                except Exception:
                    log.exception("sync lock lost but the run could not be marked interrupted sync_id=%s", sync_id)
                return
            try:
                async with sessions() as session:
                    await session.execute(
                        update(EmagSyncLog).where(EmagSyncLog.id == sync_id).values(heartbeat_at=utcnow())
                    )
                    await session.commit()
            except Exception as exc:
                log.warning("sync heartbeat not recorded sync_id=%s error=%s", sync_id, brief(exc))

    async def _finish(
        self, run: EmagSyncLog, plan: Plan, per_account: dict[str, AccountResult], locks: AccountLocks
    ) -> dict[str, Any]:
        db = self.db
        # Row-locked, so a reader marking the run interrupted either did so already (we see it) or waits for us.
        await db.refresh(run, with_for_update=True)
        interrupted = await self._interruption(run, locks)
        status = "interrupted" if interrupted else _run_status(per_account)
        now = utcnow()
        run.status = status
        run.completed_at = now
        run.duration_seconds = (now - run.started_at).total_seconds()
        run.total_items = sum(r.total_items for r in per_account.values())
        run.missing_items = sum(r.missing for r in per_account.values())
        run.pages_total = sum(r.pages for r in per_account.values())
        messages = [f"{a}: {r.error_message}" for a, r in per_account.items() if r.error_message]
        if interrupted and not any(interrupted in m for m in messages):
            messages.append(interrupted)
        run.error_message = "; ".join(messages) or None
        append_errors(run, [e for r in per_account.values() for e in r.errors if "page" in e or "kind" in e])
        if interrupted and interrupted == locks.lost:
            append_errors(run, [{"reason": interrupted}])
        resumed = [r.resumed_from for r in per_account.values() if r.resumed_from]
        if resumed:
            run.resumed_from = resumed[0]
        for account, result in per_account.items():
            values: dict[str, Any] = {"account_type": account}
            if result.status == "completed":
                values["last_successful_sync_at"] = now
                if plan.mode is SyncMode.FULL:
                    values["last_full_sync_id"] = run.id
                    values["last_full_sync_completed_at"] = now
            stmt = pg_insert(EmagAccountState).values(**values)
            await db.execute(
                stmt.on_conflict_do_update(
                    index_elements=[EmagAccountState.account_type],
                    set_={k: stmt.excluded[k] for k in values if k != "account_type"} or {"account_type": account},
                )
            )
        await db.commit()
        level = {"completed": logging.INFO, "failed": logging.ERROR}.get(status, logging.WARNING)
        for account, result in per_account.items():
            log.log(
                level,
                "sync finished sync_id=%s account=%s mode=%s status=%s processed=%s created=%s updated=%s "
                "unchanged=%s failed=%s missing=%s pages=%s%s",
                run.id,
                account,
                plan.mode.value,
                result.status,
                result.total_processed,
                result.created,
                result.updated,
                result.unchanged,
                result.failed,
                result.missing,
                result.pages,
                f" error={result.error_message!r}" if result.error_message else "",
            )
        log.log(
            level,
            "sync run finished sync_id=%s account=%s mode=%s status=%s processed=%s duration=%.1fs",
            run.id,
            run.account_type,
            plan.mode.value,
            status,
            run.processed_items,
            run.duration_seconds,
        )
        errors = [e for r in per_account.values() for e in r.errors]
        if self.skipped:
            errors.append({"reason": f"skipped accounts without credentials: {', '.join(self.skipped)}"})
        return {
            "sync_id": str(run.id),
            "status": status,
            "mode": plan.mode.value,
            "account_type": run.account_type,
            "total_processed": sum(r.total_processed for r in per_account.values()),
            "created": sum(r.created for r in per_account.values()),
            "updated": sum(r.updated for r in per_account.values()),
            "unchanged": sum(r.unchanged for r in per_account.values()),
            "failed": sum(r.failed for r in per_account.values()),
            "missing": run.missing_items,
            "conflicts": sum(r.conflicts for r in per_account.values()),
            "errors": errors[:100],
            "error_message": run.error_message,
            "duration_seconds": round(run.duration_seconds or 0.0, 3),
            "accounts": {a: r.as_dict() for a, r in per_account.items()},
        }

    async def _interruption(self, run: EmagSyncLog, locks: AccountLocks) -> str | None:
        """Why the run ends interrupted whatever its accounts say, or None while it still owns its accounts.

        Someone may have marked it interrupted meanwhile (a reader that found its lock gone, the heartbeat), or
        its lock may be gone now: another sync may be running, so `completed` would be a lie either way."""
        if run.status != "running":
            return run.error_message or "this sync was marked interrupted while it ran"
        try:
            await locks.guard(self.db)
        except LockLostError as lost:
            return str(lost)
        return None


def _run_status(per_account: dict[str, AccountResult]) -> str:
    statuses = {r.status for r in per_account.values()}
    if statuses == {"completed"}:
        return "completed"
    if "interrupted" in statuses:
        return "interrupted"
    if "cancelled" in statuses:
        return "cancelled"
    if statuses == {"failed"}:
        return "failed"
    return "partial"


class _TransformingRun(AccountRun):
    """Loads the account's VAT rates once when a transformation hook is configured.

    Without them the hook would compute rates-less values and the writer would store those over every changed
    product's computed fields, so an unreadable `vat/read` fails the account before any page is written."""

    async def run(self) -> AccountResult:
        if self.writer.transform is not None:
            try:
                rows = await self.client.read_vat()
            except EmagError as exc:
                return self._vat_unavailable(exc)
            self.writer.transform_context = TransformContext(account=self.account, vat_rates=_vat_rates(rows))
        return await super().run()

    def _vat_unavailable(self, exc: EmagError) -> AccountResult:
        message = (
            f"eMAG's VAT rates could not be read (vat/read: {exc}), and the transformation hook needs them, so "
            f"nothing of account {self.account} was written and the stored computed fields are kept; run the "
            "sync again once vat/read answers, or unset MAGFLOW_TRANSFORM_HOOK to sync without computed fields"
        )
        log.error("sync error sync_id=%s account=%s kind=%s error=%s", self.sync_id, self.account, exc.kind, message)
        self.result.status = "failed"
        self.result.error_message = message
        self.result.errors.append({"account": self.account, "reason": message, "kind": exc.kind})
        return self.result


def _vat_rates(rows: list[dict[str, Any]]) -> dict[int, Decimal]:
    rates: dict[int, Decimal] = {}
    for row in rows:
        vat_id = row.get("vat_id", row.get("id"))
        rate = row.get("vat_rate", row.get("rate"))
        try:
            rates[int(str(vat_id))] = Decimal(str(rate))
        except (TypeError, ValueError, InvalidOperation):
            continue
    return rates


async def request_cancel(session: AsyncSession, sync_id: uuid.UUID) -> bool:
    """Ask a running sync to stop at its next page boundary (checkpointed, status cancelled)."""
    result = await session.execute(
        update(EmagSyncLog)
        .where(EmagSyncLog.id == sync_id, EmagSyncLog.status.in_(("running", "queued")))
        .values(cancel_requested=True)
        .returning(EmagSyncLog.id)
    )
    return result.first() is not None


STALE_DEFAULT = timedelta(minutes=5)
