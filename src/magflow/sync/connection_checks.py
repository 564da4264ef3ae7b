"""Connection checks that cannot eat an account's rate budget: one check per account at a time, its verdict kept
for a minute, and no check at all while a sync of the account runs.

Every check spends eMAG calls from the budget the account's syncs live on (3 requests/s for everything but
orders), and overwrites the connection state readiness and alerts read. So POST /test-connection answers:
1. from the account's last recorded verdict while it is younger than `ttl` (this process keeps the details of
   its own checks: product count, latency, the deep report; another process's check answers with its record);
2. while a sync of the account runs, from that sync's progress: it is talking to eMAG right now;
3. otherwise by checking, once: callers arriving meanwhile wait for that check and share its verdict.
"""

from __future__ import annotations

import asyncio
import contextlib
import typing
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.accounts import account_config, rate_budget, with_recorded_formats
from magflow.config import AccountName, Settings
from magflow.db.engine import session_factory
from magflow.emag import DeepReport, EmagClient, deep_check
from magflow.emag.connection import ConnectionVerdict, Status
from magflow.models import EmagAccountState, EmagSyncProgress
from magflow.observability.health import store_connection_verdict
from magflow.sync.locks import account_is_locked
from magflow.sync.runs import running_sync_for

VERDICT_TTL_SECONDS = 60.0
STATUSES = frozenset(typing.get_args(Status))

Source = Literal["check", "cache", "sync"]


class SyncRunningError(Exception):
    """A sync of the account runs and its progress cannot answer this check (a deep check, or no page read yet)."""

    def __init__(self, account: str, sync_id: uuid.UUID, deep: bool) -> None:
        self.account = account
        self.sync_id = sync_id
        if deep:
            message = (
                f"Sync {sync_id} of account {account} is running and a deep check now would spend the rate budget "
                f"it reads with; run the deep check when the sync has finished (GET /sync/{sync_id})."
            )
        else:
            message = (
                f"Sync {sync_id} of account {account} has just started and has not read a page yet; retry in a "
                "few seconds, when its progress shows the connection."
            )
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class CheckAnswer:
    verdict: ConnectionVerdict
    report: DeepReport | None  # a deep check's report; None for a quick check
    checked_at: datetime  # when the evidence was gathered: the check, or the running sync's last page
    source: Source
    sync_id: uuid.UUID | None = None  # the running sync the answer comes from

    def age_seconds(self, now: datetime) -> int:
        return max(0, int((now - self.checked_at).total_seconds()))

    def note(self, now: datetime, ttl: float) -> str:
        """What the message says about where the verdict comes from; empty for a check made for this call."""
        if self.source == "cache":
            return (
                f" (the verdict of a check {self.age_seconds(now)} s ago: an account is checked at most once "
                f"every {ttl:g} s)"
            )
        return ""


@dataclass(frozen=True, slots=True)
class _Entry:
    """A check this process made, under the time its verdict was recorded for the account."""

    verdict: ConnectionVerdict
    report: DeepReport | None
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class _Record:
    status: str | None
    message: str | None
    checked_at: datetime | None


class ConnectionChecks:
    """One per API app: the verdicts of its checks and the check in flight for each account."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: Settings,
        ttl: float = VERDICT_TTL_SECONDS,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.ttl = ttl
        self.now = now
        self._sessions = session_factory(engine)
        self._entries: dict[str, _Entry] = {}
        self._inflight: dict[str, tuple[bool, asyncio.Task[_Entry]]] = {}

    async def answer(self, account: AccountName, deep: bool) -> CheckAnswer:
        """The account's verdict (with the deep report when `deep`), spending eMAG calls only when nothing
        recent or running can answer. Raises SyncRunningError, AccountNotConfiguredError."""
        while True:
            inflight = self._inflight.get(account)
            if inflight is not None:
                shared = await self._wait_for(inflight, deep)
                if shared is not None:
                    return shared
                continue  # a quick check finished but a deep one is wanted: look again
            cached = await self._cached(account, deep)
            if cached is not None:
                return cached
            if account in self._inflight:
                continue  # a check started while the record was read
            during_sync = await self._during_sync(account, deep)
            if during_sync is not None:
                return during_sync
            if account in self._inflight:
                continue
            task = asyncio.create_task(self._check(account, deep), name=f"magflow-connection-check-{account}")
            self._inflight[account] = (deep, task)
            task.add_done_callback(lambda done: self._forget(account, done))
            # Shielded: a caller that goes away does not cancel the check the others wait for.
            entry = await asyncio.shield(task)
            return CheckAnswer(entry.verdict, entry.report, entry.recorded_at, "check")

    def _forget(self, account: str, done: asyncio.Task[_Entry]) -> None:
        if not done.cancelled():
            done.exception()  # retrieved here: the callers that awaited it may all have gone
        current = self._inflight.get(account)
        if current is not None and current[1] is done:
            del self._inflight[account]

    async def _wait_for(self, inflight: tuple[bool, asyncio.Task[_Entry]], deep: bool) -> CheckAnswer | None:
        """Share the check in flight; None when it cannot answer (it is quick, a deep one is wanted)."""
        task_is_deep, task = inflight
        if deep and not task_is_deep:
            with contextlib.suppress(Exception):
                await asyncio.shield(task)
            return None
        entry = await asyncio.shield(task)
        return CheckAnswer(entry.verdict, entry.report, entry.recorded_at, "cache")

    async def _record(self, account: str) -> _Record | None:
        async with self._sessions() as session:
            row = await session.get(EmagAccountState, account)
            if row is None:
                return None
            return _Record(row.last_connection_status, row.last_connection_message, row.last_connection_checked_at)

    async def _cached(self, account: str, deep: bool) -> CheckAnswer | None:
        """The recorded verdict while it is fresh. The account's record is the truth readiness shows: an answer
        never contradicts it, and a newer check by another process (the health check, another server) wins."""
        record = await self._record(account)
        if record is None or record.checked_at is None or record.status not in STATUSES:
            return None
        age = (self.now() - record.checked_at).total_seconds()
        if not 0 <= age < self.ttl:
            return None
        entry = self._entries.get(account)
        if entry is not None and entry.recorded_at == record.checked_at:
            if deep and entry.report is None:
                return None
            return CheckAnswer(entry.verdict, entry.report, entry.recorded_at, "cache")
        if deep:
            return None  # only this process's own deep checks have a report to show
        verdict = ConnectionVerdict(account, typing.cast(Status, record.status), record.message or "")
        return CheckAnswer(verdict, None, record.checked_at, "cache")

    async def _during_sync(self, account: str, deep: bool) -> CheckAnswer | None:
        """While a sync of the account runs it talks to eMAG itself: its last page is the evidence."""
        async with self._sessions() as session:
            run = await running_sync_for(session, account)
            if run is None or run.status != "running" or not await account_is_locked(self.engine, account):
                return None
            progress = await session.scalar(
                select(EmagSyncProgress).where(
                    EmagSyncProgress.sync_id == run.id, EmagSyncProgress.account_type == account
                )
            )
        if deep or progress is None or progress.current_page < 1:
            raise SyncRunningError(account, run.id, deep)
        age = max(0, int((self.now() - progress.updated_at).total_seconds()))
        pages = f"page {progress.current_page}" + (f" of {progress.total_pages}" if progress.total_pages else "")
        message = (
            f"account {account} is connected: sync {run.id} is reading it now ({pages}, "
            f"{progress.current_item} of {progress.total_items} products, the last page {age} s ago); it is not "
            "checked again while the sync runs, so the check takes none of the sync's rate budget"
        )
        verdict = ConnectionVerdict(account, "ok", message, progress.total_items or None)
        return CheckAnswer(verdict, None, progress.updated_at, "sync", run.id)

    async def _check(self, account: AccountName, deep: bool) -> _Entry:
        config = account_config(self.settings, account)
        config = (await with_recorded_formats(self.engine, {account: config}))[account]
        budget = rate_budget(self.settings)
        report: DeepReport | None = None
        try:
            async with EmagClient(config, budget=budget) as client:
                if deep:
                    report = await deep_check(client)
                    verdict = report.verdict
                else:
                    verdict = await client.check_connection()
        finally:
            await budget.aclose()
        await store_connection_verdict(self.engine, verdict)  # readiness and alerts read the last verdict
        # The time the record holds identifies this check: the cache is valid while the record is still ours.
        record = await self._record(account)
        recorded_at = record.checked_at if record is not None and record.checked_at is not None else self.now()
        entry = _Entry(verdict, report, recorded_at)
        self._entries[account] = entry
        return entry
