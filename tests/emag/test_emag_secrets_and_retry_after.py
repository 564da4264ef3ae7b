"""No password in any log line or error, the detailed log shows each request and response, and a
`Retry-After` from eMAG is honoured."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncIterator, Callable

import pytest

from magflow.emag import AccountConfig, EmagClient, EmagError, InProcessRateBudget
from magflow.testing.sandbox import Sandbox

MakeConfig = Callable[..., AccountConfig]
COUNT_BODY = b'{"isError":false,"messages":[],"results":{"noOfItems":"5","noOfPages":"1","itemsPerPage":"100"}}'


async def test_detailed_log_shows_requests_and_responses_without_credentials(
    sandbox: Sandbox, make_config: MakeConfig, fast_budget: InProcessRateBudget, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    faults = sandbox.state.faults
    for kind in ("500", "reset", "malformed_json"):
        faults.inject(kind, page=2)
    good = make_config(sandbox.base_url, detailed_log=True)
    errors: list[EmagError] = []
    async with EmagClient(good, budget=fast_budget) as client:
        pages = [page async for page in client.iter_product_pages(items_per_page=100)]
    wrong_password = "sandbox-main-pass-but-wrong"
    for config in (make_config(sandbox.base_url, password=wrong_password, detailed_log=True),):
        async with EmagClient(config, budget=fast_budget) as client:
            try:
                await client.read_products_page(1)
            except EmagError as exc:
                errors.append(exc)
            verdict = await client.check_connection()
    sandbox.state.set_ip_whitelisted(False)
    async with EmagClient(good, budget=fast_budget) as client:
        try:
            await client.count_products()
        except EmagError as exc:
            errors.append(exc)

    assert sum(len(p.offers) for p in pages) == len(sandbox.state.truth("main"))
    wire = [r.getMessage() for r in caplog.records if r.name == "magflow.emag.wire"]
    assert any(line.startswith("eMAG request account=main attempt=2 POST product_offer/read") for line in wire)
    assert any("HTTP 500" in line for line in wire) and any("failed: connection failed" in line for line in wire)
    everything = "\n".join(
        [r.getMessage() for r in caplog.records] + [str(e) + repr(e) for e in errors] + [repr(verdict)]
    )
    assert len(errors) == 2
    for password in ("sandbox-main-pass", wrong_password):
        token = base64.b64encode(f"sandbox-main:{password}".encode()).decode()
        assert password not in everything
        assert token not in everything
    assert "sandbox-main-pass" not in repr(good) + str(good)


async def test_without_detailed_log_nothing_is_logged_per_request(
    sandbox: Sandbox, config: AccountConfig, fast_budget: InProcessRateBudget, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="magflow.emag")
    async with EmagClient(config, budget=fast_budget) as client:
        await client.read_products_page(1)
    assert not [r for r in caplog.records if r.name == "magflow.emag.wire"]


@pytest.fixture
async def retry_after_server() -> AsyncIterator[tuple[str, list[float]]]:
    """A tiny real HTTP server: the first request gets 429 with Retry-After: 1, later ones a count."""
    arrivals: list[float] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    ),
                    0,
                )
                await reader.readexactly(length)
                arrivals.append(time.monotonic())
                if len(arrivals) == 1:
                    status, extra, body = (
                        b"429 Too Many Requests",
                        b"Retry-After: 1\r\n",
                        b'{"message":"API rate limit exceeded"}',
                    )
                else:
                    status, extra = b"200 OK", b""
                    body = COUNT_BODY
                writer.write(
                    b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n" + extra
                    + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                )  # fmt: skip
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/api-3", arrivals
    server.close()
    await server.wait_closed()


async def test_retry_after_is_honoured(
    retry_after_server: tuple[str, list[float]], make_config: MakeConfig, fast_budget: InProcessRateBudget
) -> None:
    base_url, arrivals = retry_after_server
    async with EmagClient(make_config(base_url), budget=fast_budget) as client:
        count = await client.count_products()
    assert count.items == 5
    assert len(arrivals) == 2 and arrivals[1] - arrivals[0] >= 1.0
    assert client.stats.http_429 == 1 and client.stats.retries == 1
