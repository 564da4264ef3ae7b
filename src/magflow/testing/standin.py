"""A small stand-in for eMAG over real HTTP, for tests of how the client meets eMAG's wire: the body styles a
strict server reads, and the envelope as eMAG really sends it.

It is deliberately narrow (product_offer/read and count, vat/read, order/read and count; filters `id`,
`status` and `part_number`) and strict: with `reads="top_level"` a `{"data": ...}` wrapper is an unknown key
and ignored, so every read is page 1 of 100 with no filter, as a real server that does not read the wrapper
would answer. One-shot faults (`fail_next`) and envelope variants (`variants`) reshape answers. The sandbox
(magflow.sandbox) models eMAG as a whole; this stand-in exists to aim one wire behaviour at the client.

    with StandIn(products=5, reads="form") as emag:
        config = emag.config("main", request_format="form")
        ...
        emag.received  # every request: route, content type, raw body, the parameters the server read
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import math
import socket
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any, Literal

import orjson
import uvicorn

from magflow.emag import AccountConfig
from magflow.sandbox.wire import parse_php_form

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Reads = Literal["top_level", "wrapped", "form", "any"]
Variant = Literal["iserror_string", "results_object", "messages_objects", "errors_key", "gzip", "rate_headers"]
FaultKind = Literal[
    "html_200", "reset_mid_body", "slow", "trickle", "429", "gzip_garbage", "iserror_missing", "iserror_null",
    "envelope", "ip_refused",
]  # fmt: skip
CAPTIVE_PAGE = b"<!DOCTYPE html><html><head><title>Sign in to the network</title></head><body>Login</body></html>"
PASSWORDS = {"main": "standin-main-pw", "fbe": "standin-fbe-pw"}


@dataclass
class Fault:
    kind: FaultKind
    route: str | None = None  # None: any route
    seconds: float = 0.0  # slow: how long to wait before answering; trickle: how long the body takes to arrive
    headers: dict[str, str] = field(default_factory=dict)  # 429: the headers to send
    body: dict[str, Any] | None = None  # envelope: the answer to send (HTTP 200)


@dataclass
class Received:
    route: str
    account: str
    content_type: str
    body: bytes
    params: dict[str, Any]


def offer(offer_id: int, currency: str = "RON") -> dict[str, Any]:
    """A plausible, complete enough offer for a sync to store."""
    return {
        "id": offer_id,
        "part_number": f"SKU-{offer_id}",
        "part_number_key": f"PNK{offer_id}",
        "name": f"Offer {offer_id}",
        "brand": "Brand",
        "sale_price": f"{offer_id % 97 + 10}.5000",
        "currency": currency,
        "vat_id": 1,
        "status": 1,
        "general_stock": offer_id % 7,
        "stock": [{"warehouse_id": 1, "value": offer_id % 7}],
        "handling_time": [{"warehouse_id": 1, "value": 1}],
        "validation_status": [{"value": 9, "description": "Approved documentation"}],
        "offer_validation_status": {"value": 1, "description": "Saleable"},
        "images": [{"url": f"https://example.invalid/{offer_id}.jpg", "display_type": 1}],
        "characteristics": [{"id": 38, "value": "x"}],
        "family": {"id": 0, "name": None, "family_type_id": 0},
        "ean": [f"59{offer_id:011d}"],
        "ownership": 1,
    }


def _read_params(reads: Reads, content_type: str, body: bytes) -> dict[str, Any]:
    """What a server of this kind reads from the request; what it does not read it ignores."""
    is_form = "x-www-form-urlencoded" in content_type
    if is_form:
        form = parse_php_form(body)
        if reads == "form":
            data = form.get("data")
            return data if isinstance(data, dict) else {}
        if reads == "any":
            data = form.get("data")
            return data if isinstance(data, dict) else form
        return {}
    try:
        payload = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(payload, dict) or reads == "form":
        return {}
    if reads == "top_level":
        return {k: v for k, v in payload.items() if k != "data"}  # the wrapper is an unknown key
    data = payload.get("data")
    if reads == "wrapped":
        return data if isinstance(data, dict) else {}
    return data if isinstance(data, dict) else payload


class StandInApp:
    def __init__(self, standin: StandIn) -> None:
        self.emag = standin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await _body(receive)
        headers = dict(scope["headers"])
        route = scope["path"].removeprefix("/api-3/").strip("/")
        account = self.emag.account_of(headers.get(b"authorization", b""))
        if account is None:
            await self._answer(send, 403, {"isError": True, "messages": ["You are not allowed to use this API."]})
            return
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        params = _read_params(self.emag.reads, content_type, body)
        self.emag.received.append(Received(route, account, content_type, body, params))
        fault = self.emag.take_fault(route)
        if fault is not None and await self._fault(fault, receive, send):
            return
        await self._route(account, route, params, send)

    async def _route(self, account: str, route: str, params: dict[str, Any], send: Send) -> None:
        page, per_page = int(params.get("currentPage", 1)), int(params.get("itemsPerPage", 100))
        per_page = min(per_page, 100)  # eMAG serves at most 100, silently
        if route in ("product_offer/read", "product_offer/count"):
            offers = self.emag.select(account, params)
            if route.endswith("count"):
                results: Any = {
                    "noOfItems": str(len(offers)),
                    "noOfPages": str(math.ceil(len(offers) / per_page)),
                    "itemsPerPage": str(per_page),
                }
            else:
                results = offers[(page - 1) * per_page : page * per_page]
        elif route == "order/count":
            results = {"noOfItems": "0", "noOfPages": "0", "itemsPerPage": str(per_page)}
        elif route in ("order/read", "vat/read"):
            results = [{"vat_id": 1, "vat_rate": 0.21, "is_default": 1}] if route == "vat/read" else []
        else:
            await self._answer(send, 404, {"message": "Invalid URL"})
            return
        await self._answer(send, 200, {"isError": False, "messages": [], "results": results})

    async def _answer(self, send: Send, status: int, envelope: dict[str, Any]) -> None:
        variants = self.emag.variants
        if status == 200:
            if "iserror_string" in variants:
                envelope["isError"] = "true" if envelope["isError"] else "false"
            if "results_object" in variants and isinstance(envelope.get("results"), list):
                envelope["results"] = {str(i): r for i, r in enumerate(envelope["results"])}
            if "messages_objects" in variants:
                envelope["messages"] = [{"message": m, "code": 0} for m in envelope.get("messages", [])]
            if "errors_key" in variants:
                envelope.setdefault("errors", [])
        body = orjson.dumps(envelope)
        headers = [(b"content-type", b"application/json")]
        if "gzip" in variants:
            body = gzip.compress(body)
            headers.append((b"content-encoding", b"gzip"))
        if "rate_headers" in variants:
            headers += [(b"X-RateLimit-Limit-3second", b"9"), (b"X-RateLimit-Remaining-3second", b"8")]
        await self._send(send, status, body, headers)

    async def _send(self, send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        date = formatdate(time.time() + self.emag.clock_skew_seconds, usegmt=True).encode()
        headers = [*headers, (b"date", date), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _fault(self, fault: Fault, receive: Receive, send: Send) -> bool:
        """Serve a fault; False when it only delays the normal answer."""
        if fault.kind == "slow":
            await asyncio.sleep(fault.seconds)
            return False
        if fault.kind == "trickle":
            await _trickle(send, fault.seconds)
            return True
        if fault.kind == "html_200":
            await self._send(send, 200, CAPTIVE_PAGE, [(b"content-type", b"text/html; charset=utf-8")])
        elif fault.kind == "429":
            await self._send(send, 429, b'{"message":"API rate limit exceeded"}', _raw(fault.headers))
        elif fault.kind == "gzip_garbage":
            headers = [(b"content-type", b"application/json"), (b"content-encoding", b"gzip")]
            await self._send(send, 200, b'{"isError":false,"results":[]} not gzip at all', headers)
        elif fault.kind == "reset_mid_body":
            await _reset_mid_body(receive, send)
        elif fault.kind == "ip_refused":
            envelope = {"isError": True, "messages": [f"ERROR: Invalid vendor ip [{self.emag.reported_ip}]"]}
            await self._send(send, 200, orjson.dumps({**envelope, "results": []}), _raw({}))
        else:
            bodies: dict[str, dict[str, Any]] = {
                "iserror_missing": {"messages": [], "results": []},
                "iserror_null": {"isError": None, "messages": [], "results": []},
            }
            await self._send(send, 200, orjson.dumps(bodies.get(fault.kind, fault.body or {})), _raw({}))
        return True


def _raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/json"), *((k.encode(), v.encode()) for k, v in headers.items())]


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _trickle(send: Send, seconds: float) -> None:
    """A page whose bytes keep coming, slowly: no single read waits long, the whole answer takes `seconds`."""
    body = orjson.dumps({"isError": False, "messages": [], "results": []})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    pieces = 10
    size = math.ceil(len(body) / pieces)
    for start in range(0, len(body), size):
        await asyncio.sleep(seconds / pieces)
        await send({"type": "http.response.body", "body": body[start : start + size], "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _reset_mid_body(receive: Receive, send: Send) -> None:
    """Promise a long body, send part of it, then drop the connection: a reset in the middle of a page."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"100000")],
        }
    )
    await send(
        {"type": "http.response.body", "body": b'{"isError":false,"messages":[],"results":[{"id":1,', "more_body": True}
    )
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if transport is not None:
        transport.abort()
    await asyncio.sleep(0)


class StandIn:
    """The stand-in server: a thread running uvicorn on 127.0.0.1, a catalogue per account, what it received."""

    def __init__(
        self,
        products: int = 5,
        *,
        reads: Reads = "top_level",
        variants: Iterable[Variant] = (),
        currency: str = "RON",
        clock_skew_seconds: float = 0.0,
    ) -> None:
        self.reads: Reads = reads
        self.variants: set[str] = set(variants)
        self.clock_skew_seconds = clock_skew_seconds
        self.reported_ip = "203.0.113.7"
        self.catalogue = {
            "main": [offer(1000 + i, currency) for i in range(products)],
            "fbe": [offer(5000 + i, currency) for i in range(products)],
        }
        self.received: list[Received] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            StandInApp(self), log_level="critical", lifespan="off", access_log=False, date_header=False,
            server_header=False, timeout_graceful_shutdown=1,
        )  # fmt: skip
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api-3"

    def account_of(self, authorization: bytes) -> str | None:
        for account, password in PASSWORDS.items():
            if authorization == b"Basic " + base64.b64encode(f"{account}-user:{password}".encode()):
                return account
        return None

    def config(self, account: str = "main", **changes: Any) -> AccountConfig:
        """An AccountConfig for this server with quick timeouts and backoff."""
        options: dict[str, Any] = {
            "timeout_seconds": 5.0,
            "connect_timeout_seconds": 2.0,
            "max_attempts": 4,
            "deadline_seconds": 60.0,
            "backoff_base_seconds": 0.02,
            "backoff_max_seconds": 0.1,
            **changes,
        }
        return AccountConfig(
            account=account, username=f"{account}-user", password=PASSWORDS[account], base_url=self.base_url, **options
        )

    def env(self, account: str = "main") -> dict[str, str]:
        """Environment variables pointing magflow's account at this server."""
        upper = account.upper()
        return {
            f"EMAG_{upper}_USERNAME": f"{account}-user",
            f"EMAG_{upper}_PASSWORD": PASSWORDS[account],
            f"EMAG_{upper}_BASE_URL": self.base_url,
        }

    def fail_next(self, kind: FaultKind, count: int = 1, route: str | None = None, **options: Any) -> None:
        with self._lock:
            for _ in range(count):
                self._faults.append(Fault(kind, route, **options))

    def take_fault(self, route: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.route is None or fault.route == route:
                    self._faults.remove(fault)
                    return fault
        return None

    def select(self, account: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        offers = self.catalogue[account]
        if params.get("id") not in (None, ""):
            offers = [o for o in offers if o["id"] == int(params["id"])]
        if params.get("status") not in (None, ""):
            offers = [o for o in offers if o["status"] == int(params["status"])]
        if params.get("part_number") not in (None, ""):
            offers = [o for o in offers if o["part_number"] == str(params["part_number"])]
        return offers

    def reads_of(self, route: str = "product_offer/read") -> list[Received]:
        return [r for r in self.received if r.route == route]

    def start(self) -> StandIn:
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._server.serve(sockets=[self._socket]),), daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the eMAG stand-in did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
