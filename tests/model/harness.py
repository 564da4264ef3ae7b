"""The world the state machine drives: a sandbox over HTTP, real PostgreSQL, syncs run by the engine, and the
reference model fed with every eMAG-side change.

Hypothesis' stateful runner calls rules synchronously, so it runs in a worker thread; every coroutine (syncs, local
edits, database reads) is handed to the test's event loop, where the session's engine lives, and awaited there.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.db.engine import session_factory
from magflow.emag import AccountConfig, InProcessRateBudget, RateLimits
from magflow.models import EmagSyncLog
from magflow.sync import EmagProductSyncService, SelectiveFilters, SyncAlreadyRunningError, request_cancel
from magflow.sync.local_edits import apply_local_edit, resolve_conflict
from magflow.sync.locks import ACCOUNT_KEYS, LOCK_NAMESPACE
from magflow.sync.runs import settle_dead_runs
from magflow.testing.database import truncate_all
from magflow.testing.sandbox import Sandbox

from . import snapshot
from .reference import Model, Run

T = TypeVar("T")
# Violations of defects already reproduced by an xfail test in tests/model/test_found_bugs.py (the test named here):
# they are counted and logged, not failed, so a soak goes on looking for new ones. Remove a tag with its xfail marker
# once the defect is fixed.
KNOWN_DEFECTS: dict[str, str] = {  # tag -> the xfail test in test_found_bugs.py that reproduces an open defect
    "churn-skip": "test_a_full_sync_never_completes_without_the_offers_a_balanced_churn_made_it_skip",
}
ACCOUNTS = ("main", "fbe")
CALL_TIMEOUT = 180.0

KILLED_SYNC = """
import asyncio, sys
from magflow.db.engine import create_engine, session_factory
from magflow.emag import AccountConfig, InProcessRateBudget, RateLimits
from magflow.sandbox import SANDBOX_ACCOUNTS
from magflow.sync import EmagProductSyncService

async def main():
    url, base, account, mode, per_page, strategy = sys.argv[1:7]
    engine = create_engine(url)
    configs = {a: AccountConfig(account=a, username=u, password=p, base_url=base, backoff_base_seconds=0.05)
               for a, (u, p) in SANDBOX_ACCOUNTS.items()}
    async with session_factory(engine)() as db, EmagProductSyncService(
        db=db, account_type=account, conflict_strategy=strategy, account_configs=configs,
        budget=InProcessRateBudget(RateLimits(per_second=1000.0, per_minute=60000)), triggered_by="doomed",
    ) as svc:
        await svc.sync_all_products(mode=mode, items_per_page=int(per_page), include_inactive=True)

asyncio.run(main())
"""


@dataclass
class SyncRequest:
    accounts: str  # main, fbe or both
    mode: str
    strategy: str
    items_per_page: int
    max_pages: int | None = None
    include_inactive: bool = False
    ids: tuple[int, ...] = ()
    cancel_after: int | None = None  # pages (of any account) before request_cancel
    try_concurrent: bool = False  # start another sync of the same account while this one runs: it must be refused
    lose_lock_after: int | None = None  # pages before the connection holding the account locks is terminated


@dataclass
class Harness:
    sandbox: Sandbox
    engine: AsyncEngine
    database_url: str
    loop: asyncio.AbstractEventLoop
    log: Callable[[str], None] = print
    model: Model = field(default_factory=Model)
    counts: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    changes: dict[str, list[float]] = field(default_factory=lambda: {a: [] for a in ACCOUNTS})
    known: Counter[str] = field(default_factory=Counter)
    stats: Counter[str] = field(default_factory=Counter)  # how strict the checks were (reported by the soak)
    faults_armed: bool = False
    items_per_page: int = 20
    steps: int = 0

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=CALL_TIMEOUT)

    @property
    def state(self) -> Any:
        return self.sandbox.state

    def note(self, rule: str, detail: str = "") -> None:
        self.counts[rule] += 1
        self.steps += 1
        self.log(f"  step {self.steps:4d} {rule} {detail}".rstrip())

    def configs(self) -> dict[str, AccountConfig]:
        return {
            account: AccountConfig(
                account=account,
                username=user,
                password=password,
                base_url=self.sandbox.base_url,
                timeout_seconds=2.5,  # under the 3 s the sandbox holds a "timeout" fault; load never takes it
                max_attempts=3,
                deadline_seconds=60.0,
                backoff_base_seconds=0.02,
                backoff_max_seconds=0.2,
            )
            for account, (user, password) in self.sandbox.accounts.items()
        }

    def reset(self, products: int, seed: int, items_per_page: int, hostile_rate: float, hostile_seed: int) -> None:
        state = self.state
        state.reset(seed=seed, products_per_account=products)
        state.set_quirks(hostile_rate=hostile_rate, hostile_seed=hostile_seed, count_lag=0, listing_order="id")
        self.call(truncate_all(self.engine))
        self.model = Model()
        self.changes = {a: [] for a in ACCOUNTS}
        self.faults_armed = False
        self.items_per_page = items_per_page
        for account in ACCOUNTS:
            self.record(account)

    def record(self, account: str, shape: bool = False) -> list[int]:
        """Tell the model what eMAG lists now (called right after every eMAG-side change, mid-scan included)."""
        at = time.monotonic()
        listed = self.state.truth(account)
        active = set(self.state.select_products(account, lambda p: p.get("status") == 1))
        changed = self.model.observe_emag(account, listed, active, at)
        if shape or (changed and self.state.quirks.listing_order == "modified"):
            self.model.shape_changed(account, at)
        self.changes[account].append(at)
        return changed

    def quirk_changed(self) -> None:
        at = time.monotonic()
        for account in ACCOUNTS:
            self.changes[account].append(at)

    def live(self) -> set[tuple[str, int]]:
        return {(a, i) for a in ACCOUNTS for i in self.model.live_ids(a)}

    def sync(self, request: SyncRequest) -> dict[str, Any]:
        accounts = ACCOUNTS if request.accounts == "both" else (request.accounts,)
        quiet_before = not self.faults_armed and self.state.quirks.count_lag >= 0
        triggered_before = len(self.state.faults.triggered)
        stored_before = self._stored_counts()
        start = time.monotonic()
        watcher = ProgressWatcher(self, request)
        try:
            result = self.call(self._sync(request, watcher))
        finally:
            end = time.monotonic()
            triggered = list(self.state.faults.triggered[triggered_before:])
            self.state.reads.clear()
            self.state.faults.clear()
            self.faults_armed = False
        run = Run(
            index=len(self.model.runs),
            sync_id=result["sync_id"],
            accounts=accounts,
            mode=request.mode,
            strategy=request.strategy,
            items_per_page=request.items_per_page,
            max_pages=request.max_pages if request.mode != "full" else None,
            include_inactive=request.include_inactive,
            ids=request.ids,
            start=start,
            end=end,
            statuses={a: r["status"] for a, r in result["accounts"].items()},
            resumed_from={a: r.get("resumed_from") for a, r in result["accounts"].items()},
            corrupt_possible="corrupt_product" in triggered,
            listing_hidden="empty_page" in triggered and self.state.quirks.count_lag > 0,
            unread_excused=self._excuse(request, accounts, start, end),
            how="cancelled" if request.cancel_after is not None else "normal",
        )
        if watcher.lock_killed and result["status"] == "completed":
            self.problems.append(f"run {run.index} lost its lock connection and still says completed")
        self.problems += watcher.problems
        self.problems += self.model.add_run(run)
        self.problems += self.call(self._run_evidence(run, result, lock_lost=watcher.lock_killed))
        if quiet_before and request.cancel_after is None and not watcher.lock_killed:
            self._must_have_completed(run, result, stored_before)
        return result

    async def _sync(self, request: SyncRequest, watcher: ProgressWatcher) -> dict[str, Any]:
        filters = SelectiveFilters(ids=list(request.ids)) if request.mode == "selective" else None
        async with (
            session_factory(self.engine)() as db,
            EmagProductSyncService(
                db=db,
                account_type=request.accounts,
                conflict_strategy=request.strategy,
                account_configs=self.configs(),
                budget=InProcessRateBudget(RateLimits(per_second=1000.0, per_minute=60000)),
                triggered_by="model",
                on_progress=watcher,
            ) as service,
        ):
            return await service.sync_all_products(
                mode=request.mode,
                max_pages=request.max_pages,
                items_per_page=request.items_per_page,
                include_inactive=request.include_inactive,
                filters=filters,
            )

    def _excuse(self, request: SyncRequest, accounts: tuple[str, ...], start: float, end: float) -> str:
        """The tag of a known defect that excuses a completed run's unread offers, or "": a full sync during which
        eMAG deleted offers (test_a_full_sync_never_completes_without_the_offers_a_balanced_churn_made_it_skip)."""
        if request.mode != "full" or "churn-skip" not in KNOWN_DEFECTS:
            return ""
        deleted = (o.deleted_at for o in self.model.offers.values() if o.account in accounts)
        return "[churn-skip] " if any(t is not None and start <= t <= end for t in deleted) else ""

    async def _run_evidence(self, run: Run, result: dict[str, Any], lock_lost: bool) -> list[str]:
        """What the run's records say must agree with what it returned, and a completed run must have written a
        page holding every offer it had to read (its own pages or those of the runs it continued)."""
        problems = []
        statuses = set(run.statuses.values())
        # A run whose lock went after its accounts' last page says interrupted although each account completed.
        completed = result["status"] == "completed"
        if (completed and statuses != {"completed"}) or (not completed and statuses == {"completed"} and not lock_lost):
            problems.append(f"run {run.index} says {result['status']} while its accounts say {run.statuses}")
        async with self.engine.connect() as conn:
            problems += await self._run_records(conn, run, result, lock_lost)
            for account, must in run.must_read.items():
                self.stats["offers a completed run had to read"] += len(must)
                unread = sorted(must - await self._written(conn, run, account))
                if unread:
                    problems.append(
                        f"run {run.index} ({run.mode}) completed {account} without writing a page "
                        f"holding {len(unread)} offer(s) it had to read: {unread[:8]}"
                    )
            for account in run.accounts if run.unread_excused else ():
                # A known defect excused the obligation; what it made the run skip is counted (as that defect).
                if run.statuses.get(account) == "completed":
                    start = self.model.chain(run, account)[0].start
                    alive = {
                        o.emag_id
                        for o in self.model.offers.values()
                        if o.account == account and o.alive_throughout(start, run.end)
                    }
                    unread = sorted(alive - await self._written(conn, run, account))
                    if unread:
                        problems.append(f"{run.unread_excused}run {run.index} completed {account} without {unread}")
        return problems

    async def _run_records(self, conn: Any, run: Run, result: dict[str, Any], lock_lost: bool) -> list[str]:
        """The log row says what the run returned; the numbers it reports are those of the audit trail."""
        problems = []
        sync_id = uuid.UUID(result["sync_id"])
        logged = await conn.scalar(text("SELECT status FROM emag_sync_logs WHERE id = :id"), {"id": sync_id})
        if logged != result["status"]:
            problems.append(f"run {run.index} returned {result['status']} but its log row says {logged}")
        rows = await conn.execute(
            text(
                "SELECT change_type, count(*) FROM emag_product_changes WHERE sync_id = :id "
                "AND change_type IN ('created', 'missing') GROUP BY 1"
            ),
            {"id": sync_id},
        )
        audited: dict[str, int] = {r[0]: int(r[1]) for r in rows.all()}
        for kind in ("created", "missing"):
            if audited.get(kind, 0) != result[kind]:
                problems.append(
                    f"run {run.index} reports {result[kind]} {kind} but the audit trail has {audited.get(kind, 0)}"
                )
        return problems

    async def _written(self, conn: Any, run: Run, account: str) -> set[int]:
        """The offers held by the pages that the run, or the runs it continued, committed for the account."""
        chain = [uuid.UUID(r.sync_id) for r in self.model.chain(run, account) if r.sync_id]
        rows = await conn.execute(
            text(
                "SELECT DISTINCT unnest(emag_ids) FROM emag_page_reads WHERE account_type = :a AND sync_id = ANY(:ids)"
            ),
            {"a": account, "ids": chain},
        )
        return {int(r[0]) for r in rows.all()}

    def _stored_counts(self) -> dict[str, int]:
        async def count() -> dict[str, int]:
            async with self.engine.connect() as conn:
                result = await conn.execute(
                    text("SELECT account_type, count(*) FROM emag_products_v2 WHERE NOT is_missing GROUP BY 1")
                )
                return {r[0]: int(r[1]) for r in result.all()}

        return self.call(count())

    def _must_have_completed(self, run: Run, result: dict[str, Any], stored_before: dict[str, int]) -> None:
        """A run on a quiet catalogue (no fault, no change since its scan began, a count that does not overstate
        the listing) has no excuse not to complete, unless the sweep guard refused to mark too many missing."""
        for account in run.accounts:
            status = run.statuses.get(account)
            chain_start = self.model.chain(run, account)[0].start
            if any(chain_start <= t <= run.end for t in self.changes[account]):
                continue
            self.stats["quiet runs that had to complete"] += 1
            if status == "completed":
                continue
            live = len(self.model.live_ids(account))
            if run.mode == "full" and live < 0.5 * stored_before.get(account, 0):
                continue
            reason = result["accounts"][account].get("error_message")
            self.problems.append(
                f"run {run.index} ({run.mode}) of a quiet catalogue ended {status} on {account}: {reason}"
            )

    def kill_a_sync(self, account: str, mode: str, strategy: str, pages_before_kill: int) -> None:
        """A `magflow sync` process killed with SIGKILL after some pages: the next reader must call it interrupted."""
        self.state.faults.set_latency(30)
        triggered_before = len(self.state.faults.triggered)
        start = time.monotonic()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                KILLED_SYNC,
                self.database_url,
                self.sandbox.base_url,
                account,
                mode,
                str(self.items_per_page),
                strategy,
            ],
            env={**os.environ},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(600):
                if proc.poll() is not None or self.call(self._pages_done()) >= pages_before_kill:
                    break
                time.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
            end = time.monotonic()
            triggered = list(self.state.faults.triggered[triggered_before:])
            self.state.faults.clear()  # latency and the faults this run did not meet
            self.faults_armed = False
            self.state.reads.clear()
        sync_id, statuses, resumed = self.call(self._settle_killed())
        if sync_id is None:
            return  # killed before it recorded anything
        run = Run(
            index=len(self.model.runs),
            sync_id=sync_id,
            accounts=ACCOUNTS if account == "both" else (account,),
            mode=mode,
            strategy=strategy,
            items_per_page=self.items_per_page,
            include_inactive=True,
            start=start,
            end=end,
            statuses=statuses,
            resumed_from=resumed,
            corrupt_possible="corrupt_product" in triggered,
            how="killed",
        )
        self.problems += self.model.add_run(run)

    async def _pages_done(self) -> int:
        async with self.engine.connect() as conn:
            value = await conn.scalar(
                text("SELECT coalesce(max(current_page), 0) FROM emag_sync_progress WHERE status = 'running'")
            )
        return int(value or 0)

    async def _settle_killed(self) -> tuple[str | None, dict[str, str], dict[str, str | None]]:
        async with session_factory(self.engine)() as session:
            doomed = (
                await session.scalars(
                    select(EmagSyncLog).where(EmagSyncLog.triggered_by == "doomed").order_by(EmagSyncLog.started_at)
                )
            ).all()
            if not doomed:
                return None, {}, {}
            await settle_dead_runs(session)
            await session.commit()
            run = doomed[-1]
            await session.refresh(run)
            sync_id = str(run.id)
            if run.status == "running":
                self.problems.append(f"the killed sync {sync_id} still says running after a status read")
            await session.execute(
                text("UPDATE emag_sync_logs SET triggered_by = 'killed' WHERE triggered_by = 'doomed'")
            )
            progress = (
                await session.execute(
                    text("SELECT account_type, status FROM emag_sync_progress WHERE sync_id = :id"), {"id": run.id}
                )
            ).all()
            resumed = (
                await session.execute(
                    text("SELECT account_type, sync_id FROM emag_sync_progress WHERE checkpoint->>'resumed_by' = :id"),
                    {"id": sync_id},
                )
            ).all()
            await session.commit()
        statuses = {r[0]: r[1] for r in progress}
        return sync_id, statuses, {r[0]: str(r[1]) for r in resumed}

    def rows_for_edit(self) -> list[tuple[str, int, Any, dict[str, Any]]]:
        async def rows() -> list[tuple[str, int, Any, dict[str, Any]]]:
            async with self.engine.connect() as conn:
                result = await conn.execute(
                    text(
                        "SELECT account_type, emag_id, id, local_edits FROM emag_products_v2 "
                        "WHERE NOT is_missing AND sync_status <> 'failed' ORDER BY account_type, emag_id"
                    )
                )
                return [(r[0], int(r[1]), r[2], dict(r[3] or {})) for r in result.all()]

        return self.call(rows())

    def column(self, account: str, emag_id: int, name: str) -> Any:
        async def value() -> Any:
            async with self.engine.connect() as conn:
                return await conn.scalar(
                    text(f"SELECT {name} FROM emag_products_v2 WHERE account_type = :a AND emag_id = :i"),
                    {"a": account, "i": emag_id},
                )

        return self.call(value())

    def edit(self, account: str, emag_id: int, product_id: Any, name: str, value: Any) -> None:
        async def go() -> None:
            async with session_factory(self.engine)() as session:
                await apply_local_edit(session, product_id, {name: value}, None, actor="model")
                await session.commit()

        self.call(go())
        self.model.edit(account, emag_id, name, value)

    def open_conflicts(self) -> list[tuple[int, str, int, str]]:
        async def rows() -> list[tuple[int, str, int, str]]:
            async with self.engine.connect() as conn:
                result = await conn.execute(
                    text(
                        "SELECT id, account_type, emag_id, field FROM emag_product_conflicts WHERE status = 'open' "
                        "ORDER BY id"
                    )
                )
                return [(int(r[0]), r[1], int(r[2]), r[3]) for r in result.all()]

        return self.call(rows())

    def resolve(self, conflict: tuple[int, str, int, str], how: str, value: Any) -> None:
        conflict_id, account, emag_id, name = conflict

        async def go() -> None:
            async with session_factory(self.engine)() as session:
                await resolve_conflict(session, conflict_id, how, value, actor="model")
                await session.commit()

        self.call(go())
        self.model.resolve(account, emag_id, name, how, value)

    def check(self) -> None:
        snap = self.call(snapshot.take(self.engine))
        found = self.problems + snapshot.generic_violations(snap, self.live())
        found += self.model.check(snap.rows)
        sizes = [len(states) for states in self.model.states.values()]
        self.stats["checks"] += 1
        self.stats["ambiguous products"] += sum(1 for n in sizes if n > 1)
        self.stats["products checked"] += len(sizes)
        self.stats["max states of a product"] = max([self.stats["max states of a product"], *sizes])
        self.problems = []
        problems = []
        for problem in found:
            tag = problem[1 : problem.index("]")] if problem.startswith("[") else None
            if tag in KNOWN_DEFECTS:
                self.known[tag] += 1  # reproduced by an xfail test in test_found_bugs.py; counted, not failed
                self.log(f"           known defect {problem}")
            else:
                problems.append(problem)
        if problems:
            shown = "\n  ".join(problems[:25])
            more = f"\n  ... and {len(problems) - 25} more" if len(problems) > 25 else ""
            raise AssertionError(f"{len(problems)} violation(s) after step {self.steps}:\n  {shown}{more}")


class ProgressWatcher:
    """on_progress: checks the numbers a user watches, cancels the run or tries a second sync when asked."""

    def __init__(self, harness: Harness, request: SyncRequest) -> None:
        self.harness = harness
        self.request = request
        self.pages = 0
        self.problems: list[str] = []
        self.lock_killed = False

    async def __call__(self, account: str, info: dict[str, Any]) -> None:
        self.pages += 1
        if info["percentage"] >= 100 or info["percentage"] < 0:
            self.problems.append(f"{account}: progress said {info['percentage']}% before the run ended")
        if info["current_item"] > info["total_items"]:
            self.problems.append(f"{account}: progress said item {info['current_item']} of {info['total_items']}")
        if self.request.try_concurrent and self.pages == 1:
            await self._second_sync(account)
        if self.request.cancel_after is not None and self.pages == self.request.cancel_after:
            await self._cancel()
        if self.request.lose_lock_after is not None and self.pages == self.request.lose_lock_after:
            await self._kill_lock_connection(account)

    async def _kill_lock_connection(self, account: str) -> None:
        """As a failover or pg_terminate_backend would: the run no longer owns its account and must stop writing."""
        async with self.harness.engine.connect() as conn:
            killed = await conn.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND classid = :ns AND objid = :key AND objsubid = 2 "
                    # only this test database's sync: other test runs on the same server hold their own locks
                    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                ),
                {"ns": LOCK_NAMESPACE, "key": ACCOUNT_KEYS[account]},
            )
            await conn.commit()
        self.lock_killed = self.lock_killed or bool(killed)

    async def _running_id(self) -> uuid.UUID | None:
        async with session_factory(self.harness.engine)() as session:
            return await session.scalar(
                select(EmagSyncLog.id).where(EmagSyncLog.status == "running", EmagSyncLog.triggered_by == "model")
            )

    async def _cancel(self) -> None:
        running = await self._running_id()
        if running is None:
            return
        async with session_factory(self.harness.engine)() as session:
            await request_cancel(session, running)
            await session.commit()

    async def _second_sync(self, account: str) -> None:
        second = SyncRequest(accounts=account, mode="incremental", strategy="emag_priority", items_per_page=50)
        try:
            await self.harness._sync(second, ProgressWatcher(self.harness, second))
        except SyncAlreadyRunningError as refused:
            running = await self._running_id()
            if running is not None and str(running) not in str(refused):
                self.problems.append(f"the refusal does not name the running sync {running}: {refused}")
        else:
            self.problems.append(f"a second sync of {account} ran while another was running")
