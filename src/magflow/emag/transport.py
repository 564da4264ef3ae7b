"""One eMAG call, done right: rate budget, HTTP Basic, the body in the account's style, typed errors, retries.

Every failure becomes an `EmagError`; httpx errors never escape. Transient failures (5xx, HTML or
truncated bodies, timeouts, resets, undecodable bodies, a 200 without a readable `isError`) and 429s are
retried with exponential backoff and jitter, `Retry-After` (or a spent `X-RateLimit-Remaining-*` window)
honoured, within `max_attempts` and `deadline_seconds`. One attempt, body included, must finish within the
connect plus the read timeout (and the deadline): a page that trickles in forever is a timeout, not a hang.

The body is streamed and read up to `max_response_bytes` (EMAG_MAX_RESPONSE_BYTES; decoded bytes, so a small
gzip body cannot unpack past it): a larger answer is refused at once with `EmagResponseTooLargeError`, never held
in memory whole and never retried, since the same page would come back as large.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import httpx

from magflow.emag import envelope
from magflow.emag.body import encode
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


class EmagResponseTooLargeError(EmagError):
    """eMAG's answer was larger than `max_response_bytes`. Permanent for that call: the same page comes back as
    large, so it is not retried."""

    kind = "response_too_large"

    def __init__(self, *, account: str, route: str, page: int | None, limit: int, declared: int | None) -> None:
        size = f"announced {declared} bytes" if declared is not None else f"went past {limit} bytes"
        super().__init__(
            f"eMAG's answer to {_where(route, page)} of account {account} {size}, more than EMAG_MAX_RESPONSE_BYTES "
            f"({limit}); it was not read: if this account's offers really are that large, raise "
            "EMAG_MAX_RESPONSE_BYTES (a page of 100 offers is normally well under 1 MiB), otherwise check that "
            "the account's base URL reaches eMAG and not a proxy",
            account=account,
            route=route,
            page=page,
        )
        self.limit = limit
        self.declared = declared


@dataclass(slots=True)
class ClientStats:
    """What the client saw: counts, and the last rate-limit headers and clock offset eMAG's answers carried."""

    requests: int = 0
    retries: int = 0
    http_429: int = 0
    rate_wait_seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    rate_limit_headers: dict[str, str] = field(default_factory=dict)
    clock_offset_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class _Retry:
    reason: str
    network: bool = False
    rate_limited: bool = False
    retry_after: float | None = None
    advice: str | None = None


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
        budget.bind(config.account, config.base_url)
        self._http = httpx.AsyncClient(
            base_url=config.base_url.rstrip("/") + "/",
            auth=httpx.BasicAuth(config.username, config.password),
            timeout=httpx.Timeout(config.timeout_seconds, connect=config.connect_timeout_seconds),
            limits=httpx.Limits(
                max_connections=config.max_connections,
                max_keepalive_connections=config.max_connections,
                keepalive_expiry=KEEPALIVE_SECONDS,
            ),
            headers={"Accept": "application/json"},
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
        """POST `data` to `route` in the account's body style; return `parse(results)`, retrying what can be."""
        attempts = max_attempts or self.config.max_attempts
        deadline = time.monotonic() + self.config.deadline_seconds
        body, content_type = encode(data, self.config.request_format)
        attempt = 0
        while True:
            attempt += 1
            retry = await self._attempt(route, body, content_type, parse, bucket, page, attempt, deadline)
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
                await self.budget.refused(self.config.account, bucket, delay)  # slows every process down
            else:
                await asyncio.sleep(delay)

    async def _attempt(
        self, route: str, body: bytes, content_type: str, parse: Callable[[Any], T], bucket: Bucket,
        page: int | None, attempt: int, deadline: float,
    ) -> T | _Retry:  # fmt: skip
        waited = await self.budget.acquire(self.config.account, bucket, self._weight())
        self.stats.rate_wait_seconds += waited
        record_budget_wait(self.config.account, bucket, waited)
        remaining = max(0.1, deadline - time.monotonic())
        read_seconds = min(self.config.timeout_seconds, remaining)
        connect_seconds = min(self.config.connect_timeout_seconds, remaining)
        timeout = httpx.Timeout(read_seconds, connect=connect_seconds)
        self.stats.requests += 1
        if self.config.detailed_log:
            wire_log.info(
                "eMAG request account=%s attempt=%d POST %s %s",
                self.config.account, attempt, route, self.redact(body.decode("utf-8", "replace")),
            )  # fmt: skip
        started = time.monotonic()
        try:
            # httpx's read timeout bounds each socket read; this bounds the whole answer, body included, and keeps
            # the attempt inside the call's deadline.
            async with asyncio.timeout(min(read_seconds + connect_seconds, remaining)):
                response = await self._post(route, page, body, content_type, timeout)
        except (httpx.TimeoutException, TimeoutError) as exc:
            record_emag_request(self.config.account, route, "timeout", time.monotonic() - started)
            return self._logged_failure(
                route, _Retry(f"no answer within {read_seconds:.3g}s ({type(exc).__name__})", True)
            )
        except httpx.TransportError as exc:
            record_emag_request(self.config.account, route, "network", time.monotonic() - started)
            return self._logged_failure(route, _Retry(f"connection failed ({type(exc).__name__})", network=True))
        except httpx.DecodingError as exc:
            # A body labelled gzip that is not: eMAG's own gzip is decoded by httpx, so a proxy is the suspect.
            record_emag_request(self.config.account, route, "network", time.monotonic() - started)
            reason = f"the answer could not be decoded ({self.redact(str(exc))[:120]})"
            return self._logged_failure(route, _Retry(reason, advice=envelope.PROXY_ADVICE))
        except httpx.HTTPError as exc:
            record_emag_request(self.config.account, route, "network", time.monotonic() - started)
            return self._logged_failure(route, _Retry(f"request failed ({type(exc).__name__})", network=True))
        except EmagResponseTooLargeError as exc:
            record_emag_request(self.config.account, route, "too_large", time.monotonic() - started)
            self._raise(exc)
        self._note_headers(response)
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

    async def _post(
        self, route: str, page: int | None, body: bytes, content_type: str, limits: httpx.Timeout
    ) -> httpx.Response:
        """The answer with its body read, decoded, and no larger than `max_response_bytes`."""
        headers = {"Content-Type": content_type}
        async with self._http.stream("POST", route, content=body, timeout=limits, headers=headers) as response:
            content = await self._capped_body(route, page, response)
        # The body as read: decoded already, so the copy no longer claims a Content-Encoding.
        kept = [(k, v) for k, v in response.headers.multi_items() if k.lower() != "content-encoding"]
        reason = {"reason_phrase": response.extensions.get("reason_phrase", b"")}
        return httpx.Response(
            response.status_code, headers=kept, content=content, request=response.request, extensions=reason
        )

    async def _capped_body(self, route: str, page: int | None, response: httpx.Response) -> bytes:
        limit = self.config.max_response_bytes
        declared = response.headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > limit:  # refused before a byte of it is read
            raise self._too_large(route, page, int(declared))
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:  # leaving the stream drops the connection: the rest is never downloaded
                raise self._too_large(route, page, None)
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, route: str, page: int | None, declared: int | None) -> EmagResponseTooLargeError:
        limit = self.config.max_response_bytes
        return EmagResponseTooLargeError(
            account=self.config.account, route=route, page=page, limit=limit, declared=declared
        )

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

    def _note_headers(self, response: httpx.Response) -> None:
        limits = envelope.rate_limit_headers(response)
        if limits:
            self.stats.rate_limit_headers = limits
        offset = envelope.clock_offset(response, time.time())
        if offset is not None:
            self.stats.clock_offset_seconds = offset

    def _logged_failure(self, route: str, retry: _Retry) -> _Retry:
        if self.config.detailed_log:
            wire_log.info("eMAG response account=%s %s failed: %s", self.config.account, route, retry.reason)
        return retry

    def _results(self, route: str, page: int | None, response: httpx.Response) -> Any:
        """eMAG's `results`, a `_Retry`, or raise the permanent error this answer means."""
        status = response.status_code
        account = self.config.account
        payload = envelope.loads(response.content)
        messages = [self.redact(m) for m in envelope.messages(payload)]
        problems = envelope.field_errors(payload, self.redact)
        if status == 429:
            self.stats.http_429 += 1
            wait = envelope.retry_after(response)
            if wait is None and (window := envelope.spent_window(response)) is not None:
                wait = min(window, self.config.backoff_max_seconds)
            return _Retry("HTTP 429 rate limit exceeded", rate_limited=True, retry_after=wait)
        for message in [*messages, *(text for _, text in problems)]:
            if match := _IP_PATTERN.search(message):
                self._raise(EmagIpNotWhitelistedError(account=account, ip=match.group(1).strip() or None,
                                                      route=route, page=page))  # fmt: skip
        if status in (401, 403):
            self._raise(EmagAuthError(account=account, route=route, page=page, status=status))
        if status >= 500 or status in (408, 425):
            return _Retry(
                f"HTTP {status}{envelope.describe_body(response, payload)}", retry_after=envelope.retry_after(response)
            )
        if status >= 300:
            if payload is None and status != 404:
                return _Retry(f"HTTP {status}{envelope.describe_body(response, payload)}")
            said = payload.get("message") if isinstance(payload, dict) else None
            said = said or "; ".join(messages) or response.reason_phrase
            self._raise(
                EmagRequestError(
                    account=account, route=route, page=page, status=status,
                    emag_message=self.redact(str(said)), fields=problems,
                )
            )  # fmt: skip
        if payload is None:
            advice = envelope.PROXY_ADVICE if envelope.is_html(response) else None
            return _Retry(f"HTTP {status}{envelope.describe_body(response, payload)}", advice=advice)
        flag = envelope.is_error(payload.get("isError")) if isinstance(payload, dict) else None
        if flag is None:
            has_flag = isinstance(payload, dict) and "isError" in payload
            shown = f"with isError {str(payload['isError'])[:20]!r}" if has_flag else "without isError"
            log.warning("eMAG answered %s for account %s %s; treating it as not applied", route, account, shown)
            return _Retry(f"HTTP {status} {shown}")
        if flag:
            named = [f"{name}: {text}" if name else text for name, text in problems]
            said = [m for m in messages if m not in {text for _, text in problems}] + named
            self._raise(EmagApiError(account=account, route=route, page=page, messages=said, fields=problems))
        if problems:
            log.warning("eMAG answered %s for account %s without error but with errors: %s", route, account, problems)
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
                advice=retry.advice,
            )
        )

    def _raise(self, error: EmagError) -> NoReturn:
        self.stats.errors[error.kind] = self.stats.errors.get(error.kind, 0) + 1
        error.message = self.redact(error.message)
        raise error


def _where(route: str, page: int | None) -> str:
    return f"{route} page {page}" if page is not None else route
