"""pytest fixtures and helpers for running syncs against the sandbox and inspecting what they stored."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from magflow.db.engine import session_factory
from magflow.emag import AccountConfig, InProcessRateBudget, RateLimits
from magflow.models import EmagProduct
from magflow.sync import EmagProductSyncService
from magflow.testing.sandbox import sandbox_limits_on

ConfigFactory = Callable[..., dict[str, AccountConfig]]


@pytest.fixture
def configs(sandbox: Any) -> ConfigFactory:
    def make(passwords: dict[str, str] | None = None, **overrides: Any) -> dict[str, AccountConfig]:
        """Both sandbox accounts; `passwords` replaces some (to meet refused credentials)."""
        options = {"timeout_seconds": 5.0, "max_attempts": 4, "deadline_seconds": 60.0, **overrides}
        return {
            account: AccountConfig(
                account=account,
                username=user,
                password=(passwords or {}).get(account, password),
                base_url=sandbox.base_url,
                **options,
            )
            for account, (user, password) in sandbox.accounts.items()
        }

    return make


@pytest.fixture
def fast_budget() -> InProcessRateBudget:
    """No pacing, unless MAGFLOW_SANDBOX_LIMITS=on keeps the sandbox's limits: then eMAG's own budget."""
    if sandbox_limits_on():
        return InProcessRateBudget(RateLimits())
    return InProcessRateBudget(RateLimits(per_second=1000.0, per_minute=60000))


@pytest_asyncio.fixture
async def run_sync(
    clean_engine: AsyncEngine, configs: ConfigFactory, fast_budget: InProcessRateBudget
) -> AsyncIterator[Callable[..., Any]]:
    async def go(
        account: str = "both",
        strategy: str = "emag_priority",
        config: dict[str, Any] | None = None,
        service: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Sync from the sandbox; `config` overrides AccountConfig fields, `service` passes
        EmagProductSyncService options (transform, on_progress, ...), the rest goes to sync_all_products."""
        async with (
            session_factory(clean_engine)() as db,
            EmagProductSyncService(
                db=db,
                account_type=account,
                conflict_strategy=strategy,
                account_configs=configs(**(config or {})),
                budget=fast_budget,
                triggered_by="test",
                **(service or {}),
            ) as svc,
        ):
            return await svc.sync_all_products(**kwargs)

    yield go


async def stored(engine: AsyncEngine, account: str) -> dict[int, EmagProduct]:
    async with session_factory(engine)() as session:
        rows = (await session.scalars(select(EmagProduct).where(EmagProduct.account_type == account))).all()
        return {r.emag_id: r for r in rows}


async def row_versions(engine: AsyncEngine) -> dict[Any, str]:
    """Each product row's physical version (xmin): any UPDATE or INSERT changes it."""
    async with engine.connect() as conn:
        result = await conn.execute(text("SELECT id, xmin::text FROM emag_products_v2"))
        return {r[0]: r[1] for r in result.all()}


async def db_session(engine: AsyncEngine) -> AsyncSession:
    return session_factory(engine)()


def set_offer(sandbox: Any, offer_id: int, account: str = "main", **fields: Any) -> None:
    """Replace fields of one offer exactly as eMAG will list it (no cleaning, any value)."""
    data = sandbox.state.accounts[account]
    data.products[offer_id] = {**data.product(offer_id), **fields}
    data.list_bytes.pop(offer_id, None)


def set_offer_bytes(sandbox: Any, offer_id: int, replace: bytes, by: bytes, account: str = "main") -> None:
    """Put exact bytes on the wire for one offer (a lone surrogate escape cannot be made by a JSON encoder)."""
    state = sandbox.state
    wire = state.product_bytes(account, offer_id)
    assert replace in wire
    state.accounts[account].list_bytes[offer_id] = wire.replace(replace, by, 1)


def listed_ids(sandbox: Any, account: str = "main") -> list[int]:
    """The offer ids eMAG lists now, in listing order."""
    return [p["id"] for p in sandbox.state.truth(account)]
