"""A sync whose shared rate budget's Redis never answers ends failed with advice, not hung, not "internal error"."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from test_ratebudget_redis import PASSWORD, BlackHole

from magflow.db.engine import session_factory
from magflow.emag import RedisRateBudget
from magflow.models import EmagSyncLog
from magflow.sync import EmagProductSyncService
from magflow.testing.sync import ConfigFactory


@pytest.mark.timeout(60)
async def test_a_sync_whose_redis_never_answers_ends_failed_with_the_redis_advice(
    clean_engine: AsyncEngine, configs: ConfigFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with (
        BlackHole() as hole,
        RedisRateBudget(hole.url(userinfo=f":{PASSWORD}@")) as budget,
        session_factory(clean_engine)() as db,
        EmagProductSyncService(
            db=db, account_type="main", account_configs=configs(), budget=budget, triggered_by="test"
        ) as service,
    ):
        result: dict[str, Any] = await service.sync_all_products(mode="full")
    assert result["status"] == "failed"
    assert result["error_message"] == (
        f"main: Redis at redis://:***@127.0.0.1:{hole.port}/0 did not answer within 2s (the shared rate budget of "
        "account main): check REDIS_URL and that Redis is up, or unset REDIS_URL to use an in-process budget"
    )
    async with session_factory(clean_engine)() as session:
        run = (await session.scalars(select(EmagSyncLog))).one()
    assert (run.status, run.error_message) == ("failed", result["error_message"])
    assert PASSWORD not in caplog.text
