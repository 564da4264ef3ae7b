from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.db.engine import session_factory
from magflow.models import EmagProduct, EmagProductChange, EmagSyncLog, EmagSyncProgress
from magflow.sandbox import SandboxState

OPERATIONS = {"full": "full_sync", "incremental": "incremental_sync", "selective": "selective_sync"}


def sync_params(account_type: str = "both", mode: str = "full", **overrides: Any) -> dict[str, Any]:
    """The parameters the REST API sends with `run_sync.delay` (POST /sync with run_async)."""
    return {
        "account_type": account_type,
        "mode": mode,
        "max_pages": None,
        "items_per_page": 100,
        "include_inactive": False,
        "conflict_strategy": "emag_priority",
        "filters": None,
        "triggered_by": "api:test",
        **overrides,
    }


async def queue_sync(engine: AsyncEngine, params: dict[str, Any]) -> uuid.UUID:
    """Insert the `queued` row the API creates before dispatching."""
    sync_id = uuid.uuid4()
    async with session_factory(engine)() as session:
        session.add(
            EmagSyncLog(
                id=sync_id,
                account_type=params["account_type"],
                operation=OPERATIONS[params["mode"]],
                mode=params["mode"],
                parameters=params,
                status="queued",
                triggered_by=params["triggered_by"],
            )
        )
        await session.commit()
    return sync_id


async def runs(engine: AsyncEngine) -> list[EmagSyncLog]:
    async with session_factory(engine)() as session:
        return list((await session.scalars(select(EmagSyncLog).order_by(EmagSyncLog.started_at))).all())


async def run(engine: AsyncEngine, sync_id: uuid.UUID) -> EmagSyncLog | None:
    async with session_factory(engine)() as session:
        return await session.get(EmagSyncLog, sync_id)


async def current_page(engine: AsyncEngine, account: str) -> int:
    async with session_factory(engine)() as session:
        page = await session.scalar(
            select(func.max(EmagSyncProgress.current_page)).where(
                EmagSyncProgress.status == "running", EmagSyncProgress.account_type == account
            )
        )
    return page or 0


async def assert_matches_sandbox(state: SandboxState, engine: AsyncEngine, account: str) -> None:
    truth = {p["id"]: p for p in state.truth(account)}
    async with session_factory(engine)() as session:
        rows = (await session.scalars(select(EmagProduct).where(EmagProduct.account_type == account))).all()
    present = {r.emag_id: r.raw_emag_data for r in rows if not r.is_missing}
    assert set(present) == set(truth)
    assert all(present[i] == truth[i] for i in truth)


async def created_once(engine: AsyncEngine) -> bool:
    """Every product was created exactly once (a resumed run did not start over and re-create)."""
    async with session_factory(engine)() as session:
        counts = (
            await session.execute(
                select(func.count())
                .select_from(EmagProductChange)
                .where(EmagProductChange.change_type == "created")
                .group_by(EmagProductChange.account_type, EmagProductChange.emag_id)
            )
        ).scalars()
        return set(counts) == {1}
