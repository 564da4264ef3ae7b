"""One eMAG call, done right: rate budget, HTTP Basic, the `{"data": ...}` body, typed errors, retries.

Every failure becomes an `EmagError`; httpx errors never escape. Transient failures (5xx, HTML or
truncated bodies, timeouts, resets, a 200 without `isError`) and 429s are retried with exponential
backoff and jitter, `Retry-After` honoured, within `max_attempts` and `deadline_seconds`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, NoReturn, TypeVar

import httpx
import orjson

from magflow.emag.config import AccountConfig, Bucket
from magflow.emag.errors import (
    EmagApiError,
    EmagAuthError,
    EmagError,
    EmagIpNotWhitelistedError,
    EmagRateLimitedError,
    EmagRequestError,
    EmagTransientError,
)
from magflow.emag.payloads import PayloadError
from magflow.emag.ratelimit import RateBudget
from magflow.observability.metrics import record_budget_wait, record_emag_request, record_rate_limit_hit

T = TypeVar("T")
log = logging.getLogger("magflow.emag")
wire_log = logging.getLogger("magflow.emag.wire")
_IP_PATTERN = re.compile(r"invalid vendor ip\s*\[([^\]]*)\]", re.IGNORECASE)
_LOGGED_BODY_LIMIT = 4000
KEEPALIVE_SECONDS = 5.0
# The first requests after start or an idle spell open new connections and run cold code paths, so
# they can reach eMAG tens of milliseconds after their slot; each reserves this much more room.
COLD_REQUESTS = 4
OFFLOAD_BYTES = 64 * 1024
COLD_WEIGHT = 1.5


@dataclass(slots=True)
class ClientStats:
    requests: int = 0
    retries: int = 0
    http_429: int = 0
    rate_wait_seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Retry:
    reason: str
    network: bool = False
    rate_limited: bool = False
    retry_after: float | None = None


class Redactor:
    """Scrubs the account's secrets (password, Basic token) from any text before it is logged or raised."""

    def __init__(self, config: AccountConfig) -> None:
        token = base64.b64encode(f"{config.username}:{config.password}".encode()).decode()
        self._secrets = sorted({s for s in (config.password, token) if len(s) >= 3}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


class Transport:
    def __init__(self, config: AccountConfig, budget: RateBudget, stats: ClientStats) -> None:
        self.config = config
        self.budget = budget
        self.stats = stats
        self.redact = Redactor(config)
        self._rng = random.Random()
        self._last_request_at = -KEEPALIVE_SECONDS
        self._cold_left = 0
        self._http = httpx.AsyncClient(
            base_url=config.base_url.rstrip("/") + "/",
            auth=httpx.BasicAuth(config.username, config.password),
            timeout=httpx.Timeout(config.timeout_seconds, connect=config.connect_timeout_seconds),
            limits=httpx.Limits(
                max_connections=config.max_connections,
                max_keepalive_connections=config.max_connections,
                keepalive_expiry=KEEPALIVE_SECONDS,
            ),
            headers={"Accept": "application/json", "Content-Type": "application/json"},
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(
        self,
        route: str,
        data: Mapping[str, Any] | None,
        parse: Callable[[Any], T],
        *,
        bucket: Bucket = "default",
        page: int | None = None,
        max_attempts: int | None = None,
    ) -> T:
        """POST `{"data": data}` to `route` and return `parse(results)`, retrying what can be retried."""
        attempts = max_attempts or self.config.max_attempts
        deadline = time.monotonic() + self.config.deadline_seconds
        body = orjson.dumps({"data": dict(data)}) if data is not None else b"{}"
        attempt = 0
        while True:
            attempt += 1
            retry = await self._attempt(route, body, parse, bucket, page, attempt, deadline)
            if not isinstance(retry, _Retry):
                return retry
            delay = self._delay(attempt, retry)
            if attempt >= attempts or time.monotonic() + delay > deadline:
                self._give_up(route, page, attempt, retry)
            self.stats.retries += 1
            log.warning(
                "eMAG %s failed account=%s route=%s page=%s reason=%r; retry %d of %d in %.1fs",
                _where(route, page), self.config.account, route, page, retry.reason, attempt, attempts - 1, delay,
            )  # fmt: skip
            if retry.rate_limited:
                record_rate_limit_hit(self.config.account, bucket)
                await self.budget.penalize(self.config.account, bucket, delay)  # slows every process down
            else:
                await asyncio.sleep(delay)

    async def _attempt(
        self, route: str, body: bytes, parse: Callable[[Any], T], bucket: Bucket, page: int | None,
        attempt: int, deadline: float,
    ) -> T | _Retry:  # fmt: skip
        waited = await self.budget.acquire(self.config.account, bucket, self._weight())
        self.stats.rate_wait_seconds += waited
        record_budget_wait(self.config.account, bucket, waited)
        remaining = max(0.1, deadline - time.monotonic())
        timeout = httpx.Timeout(
            min(self.config.timeout_seconds, remaining),
            connect=min(self.config.connect_timeout_seconds, remaining),
        )
        self.stats.requests += 1
        if self.config.detailed_log:
            wire_log.info(
                "eMAG request account=%s attempt=%d POST %s %s",
                self.config.account, attempt, route, self.redact(body.decode("utf-8", "replace")),
            )  # fmt: skip
        started = time.monotonic()
        try:
            response = await self._http.post(route, content=body, timeout=timeout)
        except httpx.TimeoutException as exc:
            record_emag_request(self.config.account, route, "timeout", time.monotonic() - started)
            return self._logged_failure(
                route, _Retry(f"no answer within {timeout.read:g}s ({type(exc).__name__})", True)
            )
        except httpx.TransportError as exc:
            record_emag_request(self.config.account, route, "network", time.monotonic() - started)
            return self._logged_failure(route, _Retry(f"connection failed ({type(exc).__name__})", network=True))
        elapsed_ms = (time.monotonic() - started) * 1000
        record_emag_request(self.config.account, route, response.status_code, elapsed_ms / 1000)
        if self.config.detailed_log:
            wire_log.info(
                "eMAG response account=%s %s HTTP %d in %.0f ms %s",
                self.config.account, route, response.status_code, elapsed_ms,
                self.redact(response.content[:_LOGGED_BODY_LIMIT].decode("utf-8", "replace")),
            )  # fmt: skip
        if len(response.content) < OFFLOAD_BYTES:
            return self._parsed(route, page, response, parse)
        # Decoding a page of 100 offers takes tens of milliseconds of CPU. In a worker thread the event loop
        # keeps its timers: the other account's next request leaves on its slot instead of late (a late
        # request gives its slot up, which cost about 2% of the budget).
        return await asyncio.to_thread(self._parsed, route, page, response, parse)

    def _parsed(self, route: str, page: int | None, response: httpx.Response, parse: Callable[[Any], T]) -> T | _Retry:
        results = self._results(route, page, response)
        if isinstance(results, _Retry):
            return results
        try:
            return parse(results)
        except PayloadError as exc:
            return _Retry(f"unreadable results: {self.redact(str(exc))}")

    def _weight(self) -> float:
        now = time.monotonic()
        if now - self._last_request_at > KEEPALIVE_SECONDS:
            self._cold_left = COLD_REQUESTS
        self._last_request_at = now
        if self._cold_left > 0:
            self._cold_left -= 1
            return COLD_WEIGHT
        return 1.0

    def _logged_failure(self, route: str, retry: _Retry) -> _Retry:
        if self.config.detailed_log:
            wire_log.info("eMAG response account=%s %s failed: %s", self.config.account, route, retry.reason)
        return retry

    def _results(self, route: str, page: int | None, response: httpx.Response) -> Any:
        """eMAG's `results`, a `_Retry`, or raise the permanent error this answer means."""
        status = response.status_code
        account = self.config.account
        payload = _json(response.content)
        messages = [self.redact(m) for m in _messages(payload)]
        if status == 429:
            self.stats.http_429 += 1
            return _Retry("HTTP 429 rate limit exceeded", rate_limited=True, retry_after=_retry_after(response))
        for message in messages:
            if match := _IP_PATTERN.search(message):
                self._raise(EmagIpNotWhitelistedError(account=account, ip=match.group(1).strip() or None,
                                                      route=route, page=page))  # fmt: skip
        if status in (401, 403):
            self._raise(EmagAuthError(account=account, route=route, page=page, status=status))
        if status >= 500 or status in (408, 425):
            return _Retry(f"HTTP {status}{_describe_body(response, payload)}", retry_after=_retry_after(response))
        if status >= 300:
            if payload is None and status != 404:
                return _Retry(f"HTTP {status}{_describe_body(response, payload)}")
            said = payload.get("message") if isinstance(payload, dict) else None
            said = said or "; ".join(messages) or response.reason_phrase
            self._raise(
                EmagRequestError(
                    account=account, route=route, page=page, status=status,
                    emag_message=self.redact(str(said)),
                    fields=_field_errors(payload, self.redact),
                )
            )  # fmt: skip
        if payload is None:
            return _Retry(f"HTTP {status}{_describe_body(response, payload)}")
        if not isinstance(payload, dict) or "isError" not in payload:
            log.warning("eMAG answered %s for account %s without isError; treating it as not applied", route, account)
            return _Retry(f"HTTP {status} without isError")
        if payload["isError"] not in (False, 0, "false", "0", None):
            self._raise(EmagApiError(account=account, route=route, page=page, messages=messages))
        return payload.get("results")

    def _delay(self, attempt: int, retry: _Retry) -> float:
        if retry.retry_after is not None:
            return retry.retry_after + self._rng.uniform(0, 0.1 * self.config.backoff_base_seconds)
        ceiling = min(self.config.backoff_max_seconds, self.config.backoff_base_seconds * 2 ** (attempt - 1))
        return self._rng.uniform(ceiling / 2, ceiling)

    def _give_up(self, route: str, page: int | None, attempts: int, retry: _Retry) -> NoReturn:
        account = self.config.account
        if retry.rate_limited:
            self._raise(EmagRateLimitedError(account=account, route=route, page=page, attempts=attempts))
        self._raise(
            EmagTransientError(
                account=account,
                route=route,
                page=page,
                reason=retry.reason,
                attempts=attempts,
                network=retry.network,
            )
        )

    def _raise(self, error: EmagError) -> NoReturn:
        self.stats.errors[error.kind] = self.stats.errors.get(error.kind, 0) + 1
        error.message = self.redact(error.message)
        raise error


def _where(route: str, page: int | None) -> str:
    return f"{route} page {page}" if page is not None else route


def _json(content: bytes) -> Any:
    if not content.strip():
        return None
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        pass
    # orjson refuses a lone surrogate escape ("\ud83d", half an emoji) that PHP's json_encode sends; the standard
    # library reads it, and the offer holding it is cleaned when it is parsed (magflow.emag.cleaning).
    try:
        return json.loads(content)
    except (ValueError, RecursionError):
        return None


def _messages(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return []
    raw = payload.get("messages")
    items = raw if isinstance(raw, list) else [raw] if raw else []
    if payload.get("message"):
        items = [*items, payload["message"]]
    texts = []
    for item in items:
        if isinstance(item, dict):
            item = item.get("message") or item.get("text") or orjson.dumps(item).decode()
        texts.append(str(item))
    return texts


def _field_errors(payload: Any, redact: Callable[[str], str]) -> list[tuple[str | None, str]]:
    errors = payload.get("errors") if isinstance(payload, dict) else None
    found: list[tuple[str | None, str]] = []
    for entry in errors if isinstance(errors, list) else []:
        if isinstance(entry, dict):
            field_name = entry.get("field")
            found.append((str(field_name) if field_name else None, redact(str(entry.get("message", "")))))
        else:
            found.append((None, redact(str(entry))))
    return found


def _describe_body(response: httpx.Response, payload: Any) -> str:
    if not response.content.strip():
        return " with an empty body"
    if "html" in response.headers.get("content-type", "").lower() or response.content.lstrip()[:1] == b"<":
        return " with an HTML body"
    if payload is None:
        return " with a body that is not valid JSON"
    return ""


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
