"""One sync per account across every process: PostgreSQL advisory locks held on a dedicated connection.

The lock lives exactly as long as the connection, so a process that dies (even SIGKILL) releases it, and a row
still saying "running" whose account lock nobody holds belongs to a dead run. The converse matters as much: a
live process whose lock connection was closed (a restarted or failed-over server, pg_terminate_backend, a
network cut) no longer owns the account, and another sync may start. `AccountLocks.guard` lets every page
transaction prove, before it commits, that this run still holds its locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from types import TracebackType

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.types import Integer

log = logging.getLogger("magflow.sync")

LOCK_NAMESPACE = 0x6D67  # "mg"
ACCOUNT_KEYS = {"main": 1, "fbe": 2}
# A ping that does not answer within this long cannot prove the locks are still ours.
PING_TIMEOUT_SECONDS = 30.0

# pg_advisory_lock(int4, int4) shows in pg_locks as classid = key1, objid = key2, objsubid = 2.
_GRANTED = (
    f"FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = {LOCK_NAMESPACE} AND objsubid = 2 "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)
_HELD_BY_PID = text(f"SELECT count(*) {_GRANTED} AND pid = :pid AND objid = ANY(:keys)").bindparams(
    bindparam("keys", type_=ARRAY(Integer))
)


class AccountBusy(Exception):
    def __init__(self, account: str) -> None:
        super().__init__(account)
        self.account = account


class LockLostError(RuntimeError):
    """The connection holding the account locks is gone: another sync may start, so this one must stop writing."""


def lost_message(accounts: Sequence[str], cause: str) -> str:
    return (
        f"this sync lost its database lock on account {', '.join(accounts)} ({cause}), so another sync may "
        "have started; it stopped writing: run `magflow resume` (or the same sync again) to continue from "
        "its last checkpoint"
    )


class AccountLocks:
    """`async with AccountLocks(engine, ["main", "fbe"]):` holds both locks or raises AccountBusy."""

    def __init__(self, engine: AsyncEngine, accounts: Sequence[str]) -> None:
        self._engine = engine
        self._accounts = list(accounts)
        self._conn: AsyncConnection | None = None
        self._held: list[str] = []
        self._guard = asyncio.Lock()
        self.backend_pid: int | None = None
        self.lost: str | None = None  # why the locks are no longer ours, once that is known

    async def __aenter__(self) -> AccountLocks:
        self._conn = await self._engine.connect()
        try:
            self.backend_pid = int(await self._conn.scalar(text("SELECT pg_backend_pid()")) or 0)
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
        """Keep the lock connection alive and prove it still holds every lock; LockLostError when it does not.

        After a failure every later `guard` call fails at once, so the account runs stop at their next page."""
        if self._conn is None or not self._held:
            return
        self._raise_if_lost()
        try:
            async with self._guard:
                held = await asyncio.wait_for(self._count_held(self._conn), PING_TIMEOUT_SECONDS)
                await self._conn.commit()
        except Exception as exc:
            cause = "no answer from PostgreSQL" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
            self._lose(f"the lock connection failed: {cause}")
        else:
            self._check(held)

    async def guard(self, session: AsyncSession) -> None:
        """Raise LockLostError unless this run's lock connection still holds every account lock.

        Asked through the page's own session, inside its transaction, just before the commit: pg_locks is the
        server's live view, so a lock dropped with its connection shows at once, with no heartbeat to wait for."""
        self._raise_if_lost()
        if not self._held:
            return
        self._check(int(await session.scalar(_HELD_BY_PID, self._held_params()) or 0))

    def _held_params(self) -> dict[str, object]:
        return {"pid": self.backend_pid, "keys": [ACCOUNT_KEYS[a] for a in self._held]}

    async def _count_held(self, conn: AsyncConnection) -> int:
        return int(await conn.scalar(_HELD_BY_PID, self._held_params()) or 0)

    def _check(self, held: int) -> None:
        if held < len(self._held):
            self._lose(f"PostgreSQL no longer shows it held by connection {self.backend_pid}")

    def _lose(self, cause: str) -> None:
        if self.lost is None:
            self.lost = lost_message(self._held, cause)
            log.error("sync lock lost accounts=%s reason=%s", ",".join(self._held), cause)
        self._raise_if_lost()

    def _raise_if_lost(self) -> None:
        if self.lost is not None:
            raise LockLostError(self.lost)

    async def _release(self) -> None:
        if self._conn is None:
            return
        if self.lost is None:
            with contextlib.suppress(Exception):
                async with self._guard:
                    for account in self._held:
                        await self._conn.execute(
                            text("SELECT pg_advisory_unlock(:ns, :key)"),
                            {"ns": LOCK_NAMESPACE, "key": ACCOUNT_KEYS[account]},
                        )
                    await self._conn.commit()
        self._held.clear()
        conn, self._conn = self._conn, None
        if self.lost is not None:
            # The connection is broken or not ours to trust: drop it rather than hand it back to the pool.
            with contextlib.suppress(Exception):
                await conn.invalidate()
        with contextlib.suppress(Exception):
            await conn.close()


def lock_held_sql(account_type_column: str) -> str:
    """SQL that is true when some live connection holds the sync lock of the run's accounts (`main`, `fbe`, or
    `both`: either). A run row says running only while its process holds these locks (the service takes them
    before it marks the run running and marks the end before it lets them go), so a running row for which this
    is false belongs to a process that died or lost its lock connection."""
    keys = f"CASE {account_type_column} WHEN 'main' THEN ARRAY[1] WHEN 'fbe' THEN ARRAY[2] ELSE ARRAY[1, 2] END"
    return f"EXISTS (SELECT 1 {_GRANTED} AND objid = ANY({keys}))"


async def account_is_locked(engine: AsyncEngine, account: str) -> bool:
    """True when some live process holds the account's sync lock. Reads pg_locks: probing by taking the lock
    for a moment would make a sync starting at that instant believe the account busy."""
    async with engine.connect() as conn:
        held = await conn.scalar(
            text(f"SELECT EXISTS (SELECT 1 {_GRANTED} AND objid = :key)"), {"key": ACCOUNT_KEYS[account]}
        )
        return bool(held)
