"""Regressions found in review: quarantined offers count as seen, a crashed reader cannot hang a sync,
a concurrent local edit survives a sync, a cancelled sync resumes, an open conflict is not duplicated,
and probing a lock never takes it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.db.engine import session_factory
from magflow.emag import InProcessRateBudget, RateLimits
from magflow.models import EmagProductConflict, EmagSyncLog
from magflow.sync import EmagProductSyncService, request_cancel
from magflow.sync import writer as writer_module
from magflow.sync.local_edits import apply_local_edit
from magflow.sync.locks import AccountLocks, account_is_locked
from magflow.testing.sync import stored


def _edit_offer(sandbox: Any, account: str, offer_id: int, **fields: Any) -> None:
    data = sandbox.state.accounts[account]
    data.products[offer_id] = {**data.product(offer_id), **fields}
    data.list_bytes.pop(offer_id, None)


async def test_an_offer_that_cannot_be_stored_still_counts_as_seen(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    await run_sync(account="main", mode="full")
    ids = [p["id"] for p in sandbox.state.truth("main")]
    _edit_offer(sandbox, "main", ids[5], part_number="X" * 70)  # longer than any SKU column allows
    gone = sandbox.state.delete_products("main", 2)
    result = await run_sync(account="main", mode="full")
    assert result["status"] == "completed", result["error_message"]
    assert result["failed"] == 1 and result["missing"] == 2
    rows = await stored(clean_engine, "main")
    assert all(rows[g].is_missing for g in gone) and not rows[ids[5]].is_missing


class BudgetWhoseRedisDies(InProcessRateBudget):
    def __init__(self) -> None:
        super().__init__(RateLimits(per_second=1000.0, per_minute=60000))
        self.calls = 0

    async def reserve(self, account: str, bucket: Any, weight: float = 1.0) -> float:
        self.calls += 1
        if self.calls > 3:
            raise ConnectionError("Error 111 connecting to redis:6379. Connection refused.")
        return await super().reserve(account, bucket, weight)


async def test_a_reader_crash_ends_the_run_instead_of_hanging_it(
    sandbox: Any, clean_engine: AsyncEngine, configs: Any
) -> None:
    async def go() -> Any:
        async with (
            session_factory(clean_engine)() as db,
            EmagProductSyncService(
                db=db, account_type="main", account_configs=configs(), budget=BudgetWhoseRedisDies(), triggered_by="t"
            ) as svc,
        ):
            return await svc.sync_all_products(mode="full", items_per_page=50)

    result = await asyncio.wait_for(go(), timeout=30)
    assert result["status"] == "partial"
    assert "ConnectionError" in result["error_message"]
    assert not await account_is_locked(clean_engine, "main")


async def test_a_local_edit_made_while_a_sync_writes_that_product_survives(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await run_sync(account="main", mode="full")
    offer_id = sandbox.state.truth("main")[0]["id"]
    product_id = (await stored(clean_engine, "main"))[offer_id].id
    _edit_offer(sandbox, "main", offer_id, sale_price=123.45)  # eMAG changed the price only

    async def patch() -> None:  # the API's PATCH, in its own transaction
        async with session_factory(clean_engine)() as other:
            await apply_local_edit(other, product_id, {"name": "Operator name"}, None, "alice")
            await other.commit()

    original = writer_module.PageWriter._old_values
    racing: list[asyncio.Task[None]] = []

    async def old_values_with_a_racing_patch(self: Any, session: Any, ids: list[Any]) -> Any:
        if not racing and product_id in ids:
            racing.append(asyncio.create_task(patch()))
            await asyncio.sleep(0.3)  # the PATCH reaches the row while the page holds it
        return await original(self, session, ids)

    monkeypatch.setattr(writer_module.PageWriter, "_old_values", old_values_with_a_racing_patch)
    await run_sync(account="main", mode="incremental", include_inactive=True, strategy="manual")
    await racing[0]
    row = (await stored(clean_engine, "main"))[offer_id]
    assert row.name == "Operator name" and "name" in row.local_edits
    assert str(row.sale_price) == "123.4500"


async def test_a_cancelled_sync_is_resumed_by_the_next_identical_one(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    pages = 0

    async def cancel_after_two_pages(account: str, info: dict[str, Any]) -> None:
        nonlocal pages
        pages += 1
        if pages == 2:
            async with session_factory(clean_engine)() as session:
                running = await session.scalar(select(EmagSyncLog.id).where(EmagSyncLog.status == "running"))
                assert running is not None and await request_cancel(session, running)
                await session.commit()

    first = await run_sync(
        account="main", mode="full", items_per_page=20, service={"on_progress": cancel_after_two_pages}
    )
    assert first["status"] == "cancelled"
    second = await run_sync(account="main", mode="full", items_per_page=20)
    assert second["status"] == "completed"
    assert second["accounts"]["main"]["resumed_from"] == first["sync_id"]
    assert second["accounts"]["main"]["pages"] < 15
    assert set(await stored(clean_engine, "main")) == {p["id"] for p in sandbox.state.truth("main")}


async def test_an_open_conflict_on_a_list_field_is_not_opened_twice(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    await run_sync(account="main", mode="full")
    offer = sandbox.state.truth("main")[0]
    product_id = (await stored(clean_engine, "main"))[offer["id"]].id
    async with session_factory(clean_engine)() as session:
        local = [{"url": "https://example.ro/local.jpg", "display_type": 1}]
        await apply_local_edit(session, product_id, {"images": local}, None, "alice")
        await session.commit()
    _edit_offer(sandbox, "main", offer["id"], images=[{"url": "https://example.ro/emag.jpg", "display_type": 1}])
    await run_sync(account="main", mode="incremental", include_inactive=True, strategy="manual")
    _edit_offer(sandbox, "main", offer["id"], sale_price=11.11)  # another eMAG change; images as before
    await run_sync(account="main", mode="incremental", include_inactive=True, strategy="manual")
    async with session_factory(clean_engine)() as session:
        open_conflicts = await session.scalar(
            select(func.count())
            .select_from(EmagProductConflict)
            .where(EmagProductConflict.status == "open", EmagProductConflict.field == "images")
        )
    assert open_conflicts == 1


async def test_asking_whether_an_account_is_locked_never_takes_the_lock(clean_engine: AsyncEngine) -> None:
    assert not await account_is_locked(clean_engine, "fbe")
    async with AccountLocks(clean_engine, ["fbe"]):
        assert await account_is_locked(clean_engine, "fbe")
        assert not await account_is_locked(clean_engine, "main")
    probes = [asyncio.create_task(account_is_locked(clean_engine, "main")) for _ in range(20)]
    async with AccountLocks(clean_engine, ["main"]):  # would raise AccountBusy if a probe held the lock
        pass
    await asyncio.gather(*probes)


async def test_a_connection_check_during_a_sync_shares_the_accounts_budget(
    make_sandbox: Any, clean_engine: Any
) -> None:
    from magflow.accounts import rate_budget
    from magflow.config import load_settings
    from magflow.emag import AccountConfig, EmagClient

    box = make_sandbox(products=1200, rate_per_second=3.0, rate_per_minute=180)
    settings = load_settings(_env_file=None, redis_url=None, emag_main_username="", emag_fbe_username="")
    user, password = box.accounts["main"]
    config = AccountConfig(account="main", username=user, password=password, base_url=box.base_url)
    assert rate_budget(settings) is rate_budget(settings)  # one budget per process without Redis

    async def sync() -> dict[str, Any]:
        async with (
            session_factory(clean_engine)() as db,
            EmagProductSyncService(
                db=db, account_type="main", account_configs={"main": config}, settings=settings, triggered_by="t"
            ) as svc,
        ):
            return await svc.sync_all_products(mode="full")

    async def checks() -> list[str]:
        verdicts = []
        for _ in range(3):
            await asyncio.sleep(1.0)
            async with EmagClient(config, budget=rate_budget(settings)) as client:
                verdicts.append((await client.check_connection()).status)
        return verdicts

    result, verdicts = await asyncio.gather(sync(), checks())
    assert result["status"] == "completed" and verdicts == ["ok", "ok", "ok"]
    assert box.state.count_429("main") == 0
    assert box.state.max_requests_in_any_second("main") <= 3
