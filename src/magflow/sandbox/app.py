"""The eMAG marketplace API as a raw ASGI app (raw for speed: pages are stitched from cached bytes)."""

from __future__ import annotations

import asyncio
import base64
import math
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from magflow.sandbox import control, hostile
from magflow.sandbox.faults import Fault
from magflow.sandbox.orders import OrderFilterError, order_predicate
from magflow.sandbox.state import SANDBOX_ACCOUNTS, SandboxState

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = [(b"content-type", b"application/json")]
HTML = [(b"content-type", b"text/html")]
VAT_RATES = [
    {"vat_id": 1, "vat_rate": 0.19, "is_default": 1},
    {"vat_id": 2, "vat_rate": 0.09, "is_default": 0},
    {"vat_id": 3, "vat_rate": 0.05, "is_default": 0},
    {"vat_id": 4, "vat_rate": 0.0, "is_default": 0},
]
_HTML_BODIES = {
    "500": (500, b"<html><head><title>500 Internal Server Error</title></head><body></body></html>"),
    "502_html": (
        502,
        b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1>"
        b"</center><hr><center>nginx</center></body></html>",
    ),
    "504": (504, b""),
}
_CREDENTIALS = {
    b"Basic " + base64.b64encode(f"{user}:{password}".encode()): account
    for account, (user, password) in SANDBOX_ACCOUNTS.items()
}
_PRODUCT_FILTERS = (
    "id", "status", "part_number", "part_number_key", "validation_status", "offer_validation_status",
    "general_stock", "estimated_stock", "translation_validation_status",
)  # fmt: skip


class ValidationError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


async def respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": (headers or JSON)})
    await send({"type": "http.response.body", "body": body})


def ok(results: Any) -> bytes:
    return orjson.dumps({"isError": False, "messages": [], "results": results})


def error(*messages: str) -> bytes:
    return orjson.dumps({"isError": True, "messages": list(messages), "results": []})


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
            await respond(send, 404, b'{"message":"Invalid URL"}')

    async def api(self, scope: Scope, route: str, body: bytes, receive: Receive, send: Send) -> None:
        state = self.state
        account = _CREDENTIALS.get(dict(scope["headers"]).get(b"authorization", b""))
        if account is None:
            await respond(send, 403, error("You are not allowed to use this API."))
            return
        bucket = "orders" if route.startswith("order/") else "default"
        decision = state.limiter.check(account, bucket)
        if not decision.allowed:
            headers = [(b"content-type", b"application/json; charset=utf-8"), *decision.headers]
            await respond(send, 429, b'{"message":"API rate limit exceeded"}', headers)
            return
        headers = JSON + decision.headers
        if state.faults.latency_ms:
            await asyncio.sleep(state.faults.latency_ms / 1000)
        if not state.ip_whitelisted:
            await respond(send, state.ip_error_status, error(f"Invalid vendor ip [{state.reported_ip}]"), headers)
            return
        try:
            payload = orjson.loads(body) if body.strip() else {}
        except orjson.JSONDecodeError:
            await respond(send, 400, b'{"message":"Invalid content"}', headers)
            return
        filters = payload.get("data", payload) if isinstance(payload, dict) else None
        if not isinstance(filters, dict):
            await respond(send, 400, b'{"message":"Invalid content"}', headers)
            return
        try:
            await self.route(account, route, filters, headers, receive, send)
        except (ValidationError, OrderFilterError) as exc:
            field = exc.field
            body = orjson.dumps(
                {
                    "message": "Validation errors in your request",
                    "errors": [{"message": str(exc), "field": field}],
                }
            )
            await respond(send, 400, body, headers)

    async def route(
        self, account: str, route: str, filters: dict[str, Any], headers: list[tuple[bytes, bytes]],
        receive: Receive, send: Send,
    ) -> None:  # fmt: skip
        state = self.state
        if route == "product_offer/read":
            await self.read_products(account, filters, headers, receive, send)
        elif route == "product_offer/count":
            _, per_page = _paging(filters)
            total = len(state.select_products(account, _product_predicate(filters), _only_id(filters)))
            await respond(send, 200, ok(_count(state.count_shown(total), per_page)), headers)
        elif route in ("order/read", "order/count"):
            page, per_page = _paging(filters)
            matches = order_predicate(filters, for_count=route == "order/count")
            with state._lock:
                found = [o for _, o in sorted(state.accounts[account].orders.items()) if matches(o)]
                if route == "order/count":
                    body = ok(_count(len(found), per_page))
                else:
                    body = ok(found[(page - 1) * per_page : page * per_page])
            await respond(send, 200, body, headers)
        elif route.startswith("order/acknowledge/"):
            raw_id = route.rsplit("/", 1)[1]
            problem = state.acknowledge(account, int(raw_id)) if raw_id.isdigit() else f"Invalid order id {raw_id}"
            await respond(send, 200, error(problem) if problem else ok([]), headers)
        elif route == "vat/read":
            await respond(send, 200, ok(VAT_RATES), headers)
        else:
            await respond(send, 404, b'{"message":"Invalid URL"}', headers)

    async def read_products(
        self, account: str, filters: dict[str, Any], headers: list[tuple[bytes, bytes]], receive: Receive, send: Send
    ) -> None:
        state = self.state
        page, per_page = _paging(filters)
        fault = state.faults.take(page)
        if fault is not None and await _raw_fault(fault, receive, send):
            return
        ids = state.select_products(account, _product_predicate(filters), _only_id(filters))
        chunk = ids[(page - 1) * per_page : page * per_page]
        if "id" in filters and len(chunk) == 1:
            parts = [state.detail_bytes(account, chunk[0])]  # GPSR details, not flags
        else:
            parts = [state.product_bytes(account, i) for i in chunk]
        page_body = _page_body(parts, fault)
        state.page_served(account)  # may change the catalogue (after_reads): this page is already built
        await respond(send, 200, page_body, headers)


def _page_body(parts: list[bytes], fault: Fault | None) -> bytes:
    """The page stitched from cached offer bytes, spoiled as the fault (if any) asks."""
    if fault is None:
        return b'{"isError":false,"messages":[],"results":[' + b",".join(parts) + b"]}"
    if fault.kind == "corrupt_product" and parts:
        parts[len(parts) // 2] = _corrupt(parts[len(parts) // 2])
    results = b"[]" if fault.kind == "empty_page" else b"[" + b",".join(parts) + b"]"
    if fault.kind == "no_results":
        return b'{"isError":false,"messages":[]}'
    if fault.kind == "ok_without_iserror":
        return b'{"messages":[],"results":' + results + b"}"
    page_body = b'{"isError":false,"messages":[],"results":' + results + b"}"
    if fault.kind == "malformed_json":
        page_body = page_body[: max(1, len(page_body) // 2)]
    return page_body


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _int(filters: dict[str, Any], key: str, default: int) -> int:
    value = filters.get(key, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValidationError(key, f"{key} must be an integer") from None


def _paging(filters: dict[str, Any]) -> tuple[int, int]:
    page, per_page = _int(filters, "currentPage", 1), _int(filters, "itemsPerPage", 100)
    if not 1 <= per_page <= 100:
        raise ValidationError("itemsPerPage", "itemsPerPage must be an integer between 1 and 100")
    if page < 1:
        raise ValidationError("currentPage", "currentPage must be an integer greater than 0")
    return page, per_page


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


def _corrupt(product_bytes: bytes) -> bytes:
    product = hostile.loads(product_bytes)
    product["sale_price"] = "abc"
    product["stock"] = "n/a"
    return hostile.dumps(product)


async def _raw_fault(fault: Fault, receive: Receive, send: Send) -> bool:
    """Serve a fault that replaces the whole response; False for faults that alter a normal page."""
    if fault.kind in _HTML_BODIES:
        status, body = _HTML_BODIES[fault.kind]
        await respond(send, status, body, HTML)
        return True
    if fault.kind == "timeout":
        # Outlive the client's read timeout, but stop as soon as it hangs up so shutdown stays quick.
        try:
            await asyncio.wait_for(_until_disconnect(receive), fault.timeout_seconds)
        except TimeoutError:
            await respond(send, 200, error("Request took too long"))
        return True
    if fault.kind == "reset":
        await _reset_connection(receive)
        return True
    return False


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


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
