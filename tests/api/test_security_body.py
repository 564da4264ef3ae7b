"""Issue 19, item 1: a body is never read before its sender is authorised, and never past the limit.

Each test sends the head of a request and only part of its body over a raw socket, then waits for the answer:
a server that reads the body first (as FastAPI does for a declared body model) never answers, and the test
fails on its socket timeout instead of getting the refusal.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from .conftest import PREFIX, Api
from .serve_process import connect, read_response

MISSING_PRODUCT = f"{PREFIX}/products/00000000-0000-0000-0000-000000000000"
BOMB_BYTES = 30 * 1024 * 1024
LIMIT = 1024 * 1024


def _port(api: Api) -> int:
    port = urlsplit(api.base_url).port
    assert port is not None
    return port


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _bomb_start(size: int) -> bytes:
    return b'{"stock":[' + b"{}," * (size // 3)


def _answer_to_partial_body(api: Api, method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    """Declare a 30 MB body, send 16 KB of it, and read the answer while the rest is still owed."""
    sock = connect(_port(api))
    try:
        sock.sendall(
            _head(method, path, {"Content-Type": "application/json", "Content-Length": str(BOMB_BYTES), **headers})
        )
        sock.sendall(_bomb_start(16 * 1024))
        try:
            status, answer_headers, body = read_response(sock)
        except TimeoutError:
            raise AssertionError("no answer while the body was incomplete: the server waited to read it") from None
    finally:
        sock.close()
    payload = json.loads(body)
    assert set(payload) == {"error", "detail"}, payload
    return status, {**answer_headers, "error": payload["error"]}


async def test_an_unauthenticated_body_is_refused_before_it_is_read(api: Api) -> None:
    for method, path in (
        ("PATCH", MISSING_PRODUCT),
        ("POST", f"{PREFIX}/conflicts/1/resolve"),
        ("POST", f"{PREFIX}/sync"),
    ):
        status, answer = _answer_to_partial_body(api, method, path, {})
        assert (status, answer["error"]) == (401, "missing_token"), (method, path)
        status, answer = _answer_to_partial_body(api, method, path, {"Authorization": "Bearer mgf_not-a-token"})
        assert (status, answer["error"]) == (401, "invalid_token"), (method, path)


async def test_a_token_without_the_scope_is_refused_before_its_body_is_read(api: Api) -> None:
    read = {"Authorization": f"Bearer {api.tokens['read']}"}
    status, answer = _answer_to_partial_body(api, "PATCH", MISSING_PRODUCT, read)
    assert (status, answer["error"]) == (403, "insufficient_scope")


async def test_a_body_over_the_limit_is_refused_by_its_content_length(api: Api) -> None:
    admin = {"Authorization": f"Bearer {api.tokens['admin']}"}
    status, answer = _answer_to_partial_body(api, "PATCH", MISSING_PRODUCT, admin)
    assert (status, answer["error"]) == (413, "payload_too_large")


async def test_a_chunked_body_over_the_limit_is_refused_while_it_streams(api: Api) -> None:
    # No Content-Length: the limit can only be kept by counting what arrives.
    head = _head(
        "PATCH",
        MISSING_PRODUCT,
        {
            "Authorization": f"Bearer {api.tokens['admin']}",
            "Content-Type": "application/json",
            "Transfer-Encoding": "chunked",
        },
    )
    piece = _bomb_start(64 * 1024)
    sock = connect(_port(api))
    sent = 0
    try:
        sock.sendall(head)
        try:
            while sent < 3 * LIMIT:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and hung up: read what it said
        try:
            status, _, body = read_response(sock)
        except TimeoutError:
            raise AssertionError("no answer to a 3 MiB chunked body that was never finished") from None
    finally:
        sock.close()
    assert status == 413, body
    assert json.loads(body)["error"] == "payload_too_large"


async def test_a_body_within_the_limit_reaches_the_route(api: Api) -> None:
    async with api.client("admin") as http:
        patched = await http.patch("/products/00000000-0000-0000-0000-000000000000", json={"name": "x" * 1000})
        assert patched.status_code == 404 and patched.json()["error"] == "product_not_found"
        invalid = await http.patch("/products/00000000-0000-0000-0000-000000000000", json={"sale_price": "abc"})
        assert invalid.status_code == 422 and invalid.json()["fields"][0]["field"] == "sale_price"
        started = await http.post("/sync", content=b'{"mode": "sometimes"}')
        assert started.status_code == 422 and "mode" in started.json()["detail"]
