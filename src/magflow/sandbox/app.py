"""The eMAG marketplace API as a raw ASGI app (raw for speed: pages are stitched from cached bytes).

A request goes: credentials and the rate limit (in the order the rate model says), the IP whitelist, the body
read as the body style says, any fault injected for the route, the route itself, and the answer written in the
envelope the switches ask for (magflow.sandbox.envelope).
"""

from __future__ import annotations

import asyncio
import math
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from magflow.sandbox import control, envelope
from magflow.sandbox.auth import login
from magflow.sandbox.envelope import HTML_TYPE, JSON_TYPE, SPOILERS, Reply, ok, refused
from magflow.sandbox.faults import Fault
from magflow.sandbox.orders import OrderFilterError, order_predicate
from magflow.sandbox.shapes import php_empty_order
from magflow.sandbox.state import SandboxState
from magflow.sandbox.wire import InvalidContent, read_filters

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

_HTML_BODIES = {
    "500": (500, b"<html><head><title>500 Internal Server Error</title></head><body></body></html>"),
    "502_html": (
        502,
        b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1>"
        b"</center><hr><center>nginx</center></body></html>",
    ),
    "504": (504, b""),
    "captive_html": (
        200,
        b"<!DOCTYPE html><html><head><title>Network login</title></head><body><form method=post>"
        b"<p>Sign in to use this network</p><input name=user><input name=password type=password></form></body></html>",
    ),
}
_AUTH_REFUSED = b'{"isError":true,"messages":["You are not allowed to use this API."],"results":[]}'
_RATE_LIMITED = b'{"message":"API rate limit exceeded"}'
_INVALID_URL = b'{"message":"Invalid URL"}'
_INVALID_CONTENT = b'{"message":"Invalid content"}'
_SPENT_HEADERS = [
    (b"x-ratelimit-limit-second", b"3"), (b"x-ratelimit-remaining-second", b"0"),
    (b"x-ratelimit-limit-3second", b"9"), (b"x-ratelimit-remaining-3second", b"0"),
]  # fmt: skip
_PRODUCT_FILTERS = (
    "id", "status", "part_number", "part_number_key", "validation_status", "offer_validation_status",
    "general_stock", "estimated_stock", "translation_validation_status",
)  # fmt: skip
MAX_ITEMS_PER_PAGE = 100


class ValidationError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


class SandboxApp:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        body = await _read_body(receive)
        if path.startswith("/_sandbox"):
            await control.handle(self.state, scope, body, send)
        elif path.startswith("/api-3/"):
            await self.api(scope, path[len("/api-3/") :].strip("/"), body, receive, send)
        else:
            await self.respond(send, 404, _INVALID_URL)

    async def respond(
        self, send: Send, status: int, body: bytes, headers: Headers | None = None, content_type: bytes = JSON_TYPE
    ) -> None:
        all_headers = [(b"content-type", content_type), *(headers or ())]
        if self.state.wire.gzip:
            body = envelope.compressed(body)
            all_headers.append((b"content-encoding", b"gzip"))
        await send({"type": "http.response.start", "status": status, "headers": all_headers})
        await send({"type": "http.response.body", "body": body})

    async def api(self, scope: Scope, route: str, body: bytes, receive: Receive, send: Send) -> None:
        state = self.state
        headers = dict(scope["headers"])
        account, claimed = login(headers.get(b"authorization", b""))
        if account is None and not state.limiter.model.limit_before_auth:
            await self.respond(send, 403, _AUTH_REFUSED)
            return
        decision = state.limiter.check(account or claimed, "orders" if route.startswith("order/") else "default")
        if not decision.allowed:
            await self.respond(send, 429, _RATE_LIMITED, decision.headers, b"application/json; charset=utf-8")
            return
        if account is None:
            await self.respond(send, 403, _AUTH_REFUSED, decision.headers)
            return
        if state.faults.latency_ms:
            await asyncio.sleep(state.faults.latency_ms / 1000)
        if not state.ip_whitelisted:
            await self.answer(send, refused(state.ip_error_status, 403, state.ip_message), decision.headers)
            return
        try:
            filters = read_filters(body, headers.get(b"content-type", b""), state.wire.body_style)
        except InvalidContent:
            await self.respond(send, 400, _INVALID_CONTENT, decision.headers)
            return
        fault = state.faults.take(route, _page_of(filters))
        if fault is not None and not await self.suffer(fault, receive, send, decision.headers):
            return
        try:
            reply = self.route(account, route, filters, fault)
        except (ValidationError, OrderFilterError) as exc:
            reply = self.invalid(exc.field, str(exc))
        await self.answer(send, reply, decision.headers, fault, receive)

    async def answer(
        self, send: Send, reply: Reply, headers: Headers, fault: Fault | None = None, receive: Receive | None = None
    ) -> None:
        kind = fault.kind if fault is not None else None
        if kind == "applied_then_500":
            status, html = _HTML_BODIES["500"]
            await self.respond(send, status, html, headers, HTML_TYPE)
            return
        quirks = self.state.quirks
        spoil = kind if kind in SPOILERS else None
        body = envelope.render(reply, self.state.wire, quirks.empty_objects_as_lists, spoil)
        if kind == "reset_mid_body" and receive is not None:
            await _reset_mid_body(send, receive, reply.status, body)
            return
        await self.respond(send, reply.status, body, headers, reply.content_type)

    async def suffer(self, fault: Fault, receive: Receive, send: Send, headers: Headers) -> bool:
        """Serve a fault that replaces the answer (False: nothing more to send) or delays it (True after the
        delay); True at once for faults that change the answer itself."""
        if fault.kind in _HTML_BODIES:
            status, html = _HTML_BODIES[fault.kind]
            await self.respond(send, status, html, None, HTML_TYPE)
            return False
        if fault.kind == "429":
            # A refusal whatever the budget says: the headers say the budget is spent, limits on or off.
            spent = [(k, b"0") if b"remaining" in k else (k, v) for k, v in headers] or _SPENT_HEADERS
            retry = [(b"retry-after", b"1")] if self.state.limiter.model.retry_after else []
            await self.respond(send, 429, _RATE_LIMITED, [*spent, *retry], b"application/json; charset=utf-8")
            return False
        if fault.kind in ("timeout", "slow"):
            # Outlive the client's read timeout (or just be slow), but stop as soon as it hangs up so shutdown
            # stays quick.
            seconds = fault.timeout_seconds if fault.kind == "timeout" else fault.delay_seconds
            try:
                await asyncio.wait_for(_until_disconnect(receive), seconds)
                return False  # the client gave up
            except TimeoutError:
                pass
            if fault.kind == "timeout":
                await self.answer(send, refused(200, 504, "Request took too long"), headers)
                return False
            return True
        if fault.kind == "reset":
            await _reset_connection(receive)
            return False
        return True

    def invalid(self, field: str, message: str) -> Reply:
        problem = [{"message": message, "field": field}]
        if self.state.wire.error_style == "http400":
            raw = orjson.dumps({"message": "Validation errors in your request", "errors": problem})
            return Reply(status=400, raw=raw)
        return refused(200, 400, message, errors=problem)

    def route(self, account: str, route: str, filters: dict[str, Any], fault: Fault | None) -> Reply:
        state = self.state
        if route == "product_offer/read":
            return self.read_products(account, filters, fault)
        if route == "product_offer/count":
            _, per_page = self.paging(filters)
            total = len(state.select_products(account, _product_predicate(filters), _only_id(filters)))
            return ok(_count(state.count_shown(total), per_page))
        if route in ("order/read", "order/count"):
            page, per_page = self.paging(filters)
            found = state.select_orders(account, order_predicate(filters, for_count=route == "order/count"))
            if route == "order/count":
                return ok(_count(len(found), per_page))
            chosen = found[(page - 1) * per_page : page * per_page]
            return ok([php_empty_order(o) for o in chosen] if state.quirks.empty_objects_as_lists else chosen)
        if route.startswith("order/acknowledge/"):
            raw_id = route.rsplit("/", 1)[1]
            problem = state.acknowledge(account, int(raw_id)) if raw_id.isdigit() else f"Invalid order id {raw_id}"
            return refused(200, 404, problem) if problem else ok([])
        if route == "vat/read":
            return ok(state.vat_rates())
        return Reply(status=404, raw=_INVALID_URL)

    def read_products(self, account: str, filters: dict[str, Any], fault: Fault | None) -> Reply:
        state = self.state
        page, per_page = self.paging(filters)
        ids = state.select_products(account, _product_predicate(filters), _only_id(filters))
        chunk = ids[(page - 1) * per_page : page * per_page]
        if "id" in filters and len(chunk) == 1:
            parts = [state.detail_bytes(account, chunk[0])]  # GPSR details, not flags
        else:
            parts = [state.product_bytes(account, i) for i in chunk]
        if fault is not None and fault.kind == "corrupt_product":
            parts = envelope.corrupt(parts)
        state.page_served(account)  # may change the catalogue (after_reads): this page is already built
        return ok(parts=parts)

    def paging(self, filters: dict[str, Any]) -> tuple[int, int]:
        page, per_page = _int(filters, "currentPage", 1), _int(filters, "itemsPerPage", MAX_ITEMS_PER_PAGE)
        if per_page > MAX_ITEMS_PER_PAGE and self.state.wire.paging_overflow == "cap":
            per_page = MAX_ITEMS_PER_PAGE  # silently, as eMAG serves at most 100
        if not 1 <= per_page <= MAX_ITEMS_PER_PAGE:
            raise ValidationError("itemsPerPage", "itemsPerPage must be an integer between 1 and 100")
        if page < 1:
            raise ValidationError("currentPage", "currentPage must be an integer greater than 0")
        return page, per_page


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _page_of(filters: dict[str, Any]) -> int | None:
    try:
        return int(filters.get("currentPage", 1))
    except (TypeError, ValueError):
        return None


def _int(filters: dict[str, Any], key: str, default: int) -> int:
    value = filters.get(key, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValidationError(key, f"{key} must be an integer") from None


def _count(total: int, per_page: int) -> dict[str, str]:
    return {
        "noOfItems": str(total),
        "noOfPages": str(math.ceil(total / per_page)),
        "itemsPerPage": str(per_page),
    }


def _status_value(entry: Any) -> int | None:
    if isinstance(entry, list):
        entry = entry[0] if entry else None
    return entry.get("value") if isinstance(entry, dict) else None


def _product_predicate(filters: dict[str, Any]) -> Callable[[dict[str, Any]], bool] | None:
    exact: list[tuple[str, object]] = []
    at_most: list[tuple[str, int]] = []  # documented for the stock filters: "between 0 and the input"
    status_value: list[tuple[str, int]] = []
    for key in _PRODUCT_FILTERS:
        if filters.get(key) is None:
            continue
        if key in ("part_number", "part_number_key"):
            exact.append((key, str(filters[key])))
        elif key in ("general_stock", "estimated_stock"):
            at_most.append((key, _int(filters, key, 0)))
        elif key in ("id", "status"):
            exact.append((key, _int(filters, key, 0)))
        else:
            status_value.append((key, _int(filters, key, 0)))
    if not (exact or at_most or status_value):
        return None

    def matches(product: dict[str, Any]) -> bool:
        return (
            all(product[k] == v for k, v in exact)
            and all(0 <= product[k] <= v for k, v in at_most)
            and all(_status_value(product[k]) == v for k, v in status_value)
        )

    return matches


def _only_id(filters: dict[str, Any]) -> int | None:
    return _int(filters, "id", 0) if filters.get("id") is not None else None


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _reset_mid_body(send: Send, receive: Receive, status: int, body: bytes) -> None:
    """Half the answer, then a reset: the client has headers and part of a body it can never finish."""
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
    await asyncio.sleep(0.05)  # let the half reach the client before the reset discards what is unread
    await _reset_connection(receive)


async def _reset_connection(receive: Receive) -> None:
    """Abort the TCP connection with an RST (SO_LINGER 0), like a load balancer dropping it."""
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if transport is None:
        raise ConnectionResetError("sandbox fault: reset")  # uvicorn answers 500 when it cannot abort
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    for _ in range(3):  # let uvicorn see connection_lost so it does not try to answer
        await asyncio.sleep(0)
