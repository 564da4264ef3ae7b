"""One sync per account across every process: PostgreSQL advisory locks held on a dedicated connection.

The lock lives exactly as long as the connection, so a process that dies (even SIGKILL) releases it and the
next run can tell that a row still saying "running" belongs to a dead run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from types import TracebackType

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

LOCK_NAMESPACE = 0x6D67  # "mg"
ACCOUNT_KEYS = {"main": 1, "fbe": 2}


class AccountBusy(Exception):
    def __init__(self, account: str) -> None:
        super().__init__(account)
        self.account = account


class AccountLocks:
    """`async with AccountLocks(engine, ["main", "fbe"]):` holds both locks or raises AccountBusy."""

    def __init__(self, engine: AsyncEngine, accounts: Sequence[str]) -> None:
        self._engine = engine
        self._accounts = list(accounts)
        self._conn: AsyncConnection | None = None
        self._held: list[str] = []
        self._guard = asyncio.Lock()

    async def __aenter__(self) -> AccountLocks:
        self._conn = await self._engine.connect()
        try:
            for account in self._accounts:
                got = await self._conn.scalar(
                    text("SELECT pg_try_advisory_lock(:ns, :key)"),
                    {"ns": LOCK_NAMESPACE, "key": ACCOUNT_KEYS[account]},
                )
                await self._conn.commit()
                if not got:
                    raise AccountBusy(account)
                self._held.append(account)
        except BaseException:
            await self._release()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._release()

    async def ping(self) -> None:
        """Keep the lock connection alive (a dropped connection would drop the locks)."""
        if self._conn is not None:
            async with self._guard:
                await self._conn.execute(text("SELECT 1"))
                await self._conn.commit()

    async def _release(self) -> None:
        if self._conn is None:
            return
        with contextlib.suppress(Exception):
            async with self._guard:
                for account in self._held:
                    await self._conn.execute(
                        text("SELECT pg_advisory_unlock(:ns, :key)"),
                        {"ns": LOCK_NAMESPACE, "key": ACCOUNT_KEYS[account]},
                    )
                await self._conn.commit()
        self._held.clear()
        await self._conn.close()
        self._conn = None


async def account_is_locked(engine: AsyncEngine, account: str) -> bool:
    """True when some live process holds the account's sync lock. Reads pg_locks: probing by taking the lock
    for a moment would make a sync starting at that instant believe the account busy."""
    async with engine.connect() as conn:
        held = await conn.scalar(
            text(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND classid = :ns AND objid = :key AND objsubid = 2 "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))"
            ),
            {"ns": LOCK_NAMESPACE, "key": ACCOUNT_KEYS[account]},
        )
        return bool(held)
