"""The `test-connection` verdict: can this account reach eMAG, and if not, what to do about it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from magflow.emag.errors import (
    EmagAuthError,
    EmagError,
    EmagIpNotWhitelistedError,
    EmagRateLimitedError,
    EmagTransientError,
)

if TYPE_CHECKING:
    from magflow.emag.client import EmagClient

Status = Literal["ok", "auth_failed", "ip_not_whitelisted", "unreachable", "rate_limited", "error"]
CHECK_ATTEMPTS = 2


@dataclass(frozen=True, slots=True)
class ConnectionVerdict:
    account: str
    status: Status
    message: str
    product_count: int | None = None
    latency_ms: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


async def check_connection(client: EmagClient) -> ConnectionVerdict:
    """One `product_offer/count` (two attempts at most): a quick answer, never a secret in the message."""
    account = client.account
    started = time.monotonic()
    try:
        count = await client._count_once(CHECK_ATTEMPTS)
    except EmagAuthError as exc:
        return ConnectionVerdict(account, "auth_failed", str(exc))
    except EmagIpNotWhitelistedError as exc:
        return ConnectionVerdict(account, "ip_not_whitelisted", str(exc))
    except EmagRateLimitedError as exc:
        return ConnectionVerdict(account, "rate_limited", str(exc))
    except EmagTransientError as exc:
        return ConnectionVerdict(account, "unreachable" if exc.network else "error", str(exc))
    except EmagError as exc:
        return ConnectionVerdict(account, "error", str(exc))
    latency_ms = round((time.monotonic() - started) * 1000, 1)
    return ConnectionVerdict(
        account,
        "ok",
        f"account {account} is connected: {count.items} products, answered in {latency_ms:.0f} ms",
        product_count=count.items,
        latency_ms=latency_ms,
    )
