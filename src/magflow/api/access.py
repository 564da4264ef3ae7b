"""Who may call: bearer tokens, the metrics token, token-free local reads, and the throttle on failed attempts.

One place decides for the request guard (before any body is read), the route dependencies and the monitoring
routes, so a refusal is the same answer, logged the same way, wherever it happens.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from collections import OrderedDict, deque
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from magflow.api.auth import Expired, Principal, authenticate
from magflow.api.errors import ApiError
from magflow.api.settings import ApiSettings
from magflow.db.engine import session_factory

log = logging.getLogger("magflow.api.access")

PRINCIPAL_KEY = "magflow.principal"
METRICS_SCOPE = "metrics"
# A request that carries one of these was relayed by a proxy: its raw peer is the proxy, not the caller.
FORWARDING_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")
THROTTLE_WINDOW_SECONDS = 60.0
THROTTLE_MAX_ADDRESSES = 10_000
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


class AuthThrottle:
    """Failed token attempts per client address in a sliding minute; an address over the limit is refused
    (429) until its oldest failure leaves the window. Memory stays bounded: the least recently failing
    addresses are forgotten first."""

    def __init__(self, limit: int, window: float = THROTTLE_WINDOW_SECONDS) -> None:
        self.limit = limit
        self.window = window
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._noted: OrderedDict[str, float] = OrderedDict()

    def _recent(self, address: str, now: float) -> deque[float] | None:
        times = self._failures.get(address)
        if times is None:
            return None
        while times and now - times[0] >= self.window:
            times.popleft()
        if not times:
            del self._failures[address]
            return None
        return times

    def retry_after(self, address: str) -> int | None:
        """Whole seconds until `address` may try again, or None when it is not throttled."""
        if self.limit <= 0:
            return None
        now = time.monotonic()
        times = self._recent(address, now)
        if times is None or len(times) < self.limit:
            return None
        return max(1, int(times[0] + self.window - now + 0.999))

    def first_refusal(self, address: str) -> bool:
        """True the first time a throttled address is refused in a window: the one 429 worth a log line."""
        now = time.monotonic()
        last = self._noted.get(address)
        if last is not None and now - last < self.window:
            return False
        self._noted[address] = now
        self._noted.move_to_end(address)
        while len(self._noted) > THROTTLE_MAX_ADDRESSES:
            self._noted.popitem(last=False)
        return True

    def failed(self, address: str) -> None:
        if self.limit <= 0:
            return
        now = time.monotonic()
        times = self._recent(address, now) or deque(maxlen=self.limit)
        times.append(now)
        self._failures[address] = times
        self._failures.move_to_end(address)
        while len(self._failures) > THROTTLE_MAX_ADDRESSES:
            self._failures.popitem(last=False)


@dataclass
class AccessContext:
    api: ApiSettings
    sessions: async_sessionmaker[AsyncSession]
    throttle: AuthThrottle


def access_context(conn: HTTPConnection) -> AccessContext:
    """Built once per app from `app.state.magflow` (its settings, and its sessions or engine)."""
    app_state = conn.app.state
    context: AccessContext | None = getattr(app_state, "magflow_access", None)
    if context is None:
        state = app_state.magflow
        api = getattr(state, "api_settings", None) or ApiSettings.from_settings(state.settings)
        sessions = getattr(state, "sessions", None) or session_factory(state.engine)
        context = AccessContext(api, sessions, AuthThrottle(api.auth_failures_per_minute))
        app_state.magflow_access = context
    return context


def client_address(conn: HTTPConnection) -> str:
    return conn.client.host if conn.client else "unknown"


def shown(text: str, limit: int = 200) -> str:
    """Text a caller chose (a path), safe on one log line: control characters escaped, length capped."""
    escaped = repr(text)[1:-1]
    return escaped if len(escaped) <= limit else escaped[:limit] + "..."


def _request_fields(conn: HTTPConnection) -> str:
    method = conn.scope.get("method", "-")
    return f"client={client_address(conn)} method={method} path={shown(conn.url.path)}"


def is_direct_local(conn: HTTPConnection) -> bool:
    """The raw peer is loopback and no proxy relayed the request (a forwarded address is never believed)."""
    if any(conn.headers.get(name) is not None for name in FORWARDING_HEADERS):
        return False
    try:
        return ipaddress.ip_address(client_address(conn)).is_loopback
    except ValueError:
        return False


def _refuse(conn: HTTPConnection, context: AccessContext, error: ApiError, *, counts: bool) -> ApiError:
    """Log a refusal (with the request, never the token) and count a failed token toward the address's throttle.

    A direct local caller is never throttled: it is an operator on this machine, and when a proxy on this machine
    relays callers without an X-Forwarded-For magflow trusts, every caller shares the proxy's address, which a
    throttle would lock for all of them at once (set FORWARDED_ALLOW_IPS to the proxy's address)."""
    if counts and not is_direct_local(conn):
        context.throttle.failed(client_address(conn))
    if error.status_code != 429 or context.throttle.first_refusal(client_address(conn)):
        log.warning("api auth refused status=%d reason=%s %s", error.status_code, error.error, _request_fields(conn))
    return error


def _bearer(conn: HTTPConnection) -> str | None:
    """The token of `Authorization: Bearer <token>`; '' for another scheme; None without the header."""
    header = conn.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else ""


async def identify(conn: HTTPConnection, *, accept_metrics_token: bool = False) -> Principal | None:
    """The caller's principal from its bearer token, or None when it sent no Authorization header.

    A header that does not name a live token is a 401 (logged, and counted toward the address's throttle); an
    address over the throttle gets 429 before its token is even looked up (logged once per window).
    """
    token = _bearer(conn)
    if token is None:
        return None
    context = access_context(conn)
    wait = None if is_direct_local(conn) else context.throttle.retry_after(client_address(conn))
    if wait is not None:
        raise _refuse(conn, context, _too_many_failures(wait), counts=False)
    if token == "":
        error = ApiError(
            401,
            "invalid_token",
            "The Authorization header must be 'Bearer <token>'; send the token the CLI printed.",
            headers=_CHALLENGE,
        )
        raise _refuse(conn, context, error, counts=True)
    metrics = context.api.metrics_token
    if accept_metrics_token and metrics and hmac.compare_digest(token.encode(), metrics.encode()):
        return Principal(name="metrics-token", scope=METRICS_SCOPE)
    async with context.sessions() as session:
        found = await authenticate(session, token)
        await session.commit()
    if isinstance(found, Principal):
        return found
    if isinstance(found, Expired):
        error = ApiError(
            401,
            "token_expired",
            f"Token {found.name!r} expired at {found.expired_at:%Y-%m-%d %H:%M} UTC; create a new one with "
            "`magflow token create`.",
            headers=_CHALLENGE,
        )
    else:
        error = ApiError(
            401,
            "invalid_token",
            "This token is unknown or revoked; create a new one with `magflow token create`.",
            headers=_CHALLENGE,
        )
    raise _refuse(conn, context, error, counts=True)


def _too_many_failures(wait: int) -> ApiError:
    return ApiError(
        429,
        "too_many_auth_failures",
        f"Too many unknown tokens from this address; wait {wait} s, then send a valid token.",
        headers={"Retry-After": str(wait)},
    )


async def authorize(conn: HTTPConnection, needed: str, *, accept_metrics_token: bool = False) -> Principal:
    """The principal allowed to make this call with scope `needed` (read < sync < admin), or an ApiError."""
    principal = await identify(conn, accept_metrics_token=accept_metrics_token)
    context = access_context(conn)
    if principal is None:
        if needed == "read" and conn.scope.get("method") in ("GET", "HEAD") and _local_read(conn, context):
            local = Principal(name="local", scope="read")
            conn.scope[PRINCIPAL_KEY] = local
            return local
        error = ApiError(
            401,
            "missing_token",
            "This call needs a token: send Authorization: Bearer <token> (create one with "
            "`magflow token create --name NAME --scope read|sync|admin`).",
            headers=_CHALLENGE,
        )
        raise _refuse(conn, context, error, counts=False)
    if principal.scope == METRICS_SCOPE and accept_metrics_token:
        return principal
    if not principal.allows(needed):
        error = ApiError(
            403,
            "insufficient_scope",
            f"Token {principal.name!r} has scope {principal.scope!r} but this call needs {needed!r}; "
            f"use a token created with --scope {needed} or wider.",
        )
        log.warning(
            "api auth refused status=403 reason=insufficient_scope token=%s scope=%s %s",
            principal.name,
            principal.scope,
            _request_fields(conn),
        )
        raise error
    conn.scope[PRINCIPAL_KEY] = principal  # for the call's log line, and so a second check is not needed
    return principal


def _local_read(conn: HTTPConnection, context: AccessContext) -> bool:
    return context.api.allow_local_reads and is_direct_local(conn)


def log_call(conn: HTTPConnection, principal: Principal, status: int) -> None:
    """The audit line of a call that changes something (a write, or any admin-scope call)."""
    log.info("api call token=%s scope=%s status=%d %s", principal.name, principal.scope, status, _request_fields(conn))


def principal_of(scope: MutableMapping[str, Any]) -> Principal | None:
    found = scope.get(PRINCIPAL_KEY)
    return found if isinstance(found, Principal) else None
