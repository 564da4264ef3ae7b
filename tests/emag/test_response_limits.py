"""Issue 19, item 5: eMAG's answers are consumed safely. A server that drips its answer cannot hold a call past the
attempt's bound; an answer past EMAG_MAX_RESPONSE_BYTES is refused unread (declared, streamed, or a gzip bomb) and
not retried; a count no catalogue holds neither crashes the run's bookkeeping nor leaves the run `running`.
Real HTTP: a raw socket server for the byte-level behaviours, the eMAG stand-in and PostgreSQL for the sync."""

from __future__ import annotations

import gzip
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.accounts import account_config
from magflow.config import load_settings
from magflow.db.engine import session_factory
from magflow.emag import AccountConfig, EmagClient, EmagTransientError, InProcessRateBudget, RateLimits
from magflow.emag.payloads import MAX_COUNT, parse_count
from magflow.emag.transport import EmagResponseTooLargeError
from magflow.models import EmagSyncLog, EmagSyncProgress
from magflow.sync import EmagProductSyncService
from magflow.testing.standin import StandIn
from magflow.testing.sync import stored

FAST = RateLimits(per_second=1000, per_minute=60_000, orders_per_second=1000, orders_per_minute=60_000)
MIB = 1024 * 1024
PAGE_START = b'{"isError":false,"messages":[],"results":['


class RawEmag:
    """An HTTP server on 127.0.0.1 that answers every POST with `head` and then `body` (bytes, or a function making
    the pieces afresh for each request), `drip` bytes at a time every `every` seconds (all at once when `every` is
    0), and records what it sent before the client hung up."""

    def __init__(
        self, head: bytes, body: bytes | Callable[[], Iterator[bytes]], *, drip: int = 0, every: float = 0.0
    ) -> None:
        self.head, self.body, self.drip, self.every = head, body, drip, every
        self.requests = 0
        self.sent = 0
        self.hung_up = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/api-3"

    def config(self, **changes: Any) -> AccountConfig:
        options: dict[str, Any] = {"timeout_seconds": 1.0, "connect_timeout_seconds": 1.0, "max_attempts": 1}
        return AccountConfig("main", "user", "raw-emag-pw", base_url=self.base_url, **{**options, **changes})

    def __enter__(self) -> RawEmag:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            with conn:
                self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(65536)
        head, _, body = request.partition(b"\r\n\r\n")
        length = next(
            (int(v) for k, _, v in (h.partition(b":") for h in head.split(b"\r\n")) if k.lower() == b"content-length"),
            0,
        )
        while len(body) < length:  # all of it: closing with request bytes unread would reset the connection
            body += conn.recv(65536)
        self.requests += 1
        pieces = [self.body] if isinstance(self.body, bytes) else self.body()
        try:
            conn.sendall(self.head)
            for piece in pieces:
                step = self.drip or len(piece) or 1
                for start in range(0, len(piece), step):
                    if self._stop.wait(self.every) if self.every else self._stop.is_set():
                        return
                    conn.sendall(piece[start : start + step])
                    self.sent += len(piece[start : start + step])
        except OSError:
            self.hung_up.set()


def _head(length: int | None, *extra: str) -> bytes:
    framing = [f"Content-Length: {length}"] if length is not None else []
    lines = ["HTTP/1.1 200 OK", "Content-Type: application/json", *framing, *extra, "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _page_of(size: int) -> Iterator[bytes]:
    """A valid page of about `size` bytes (one offer with a huge description), produced a MiB at a time."""
    yield PAGE_START + b'{"id":1,"description":"'
    for _ in range(size // MIB):
        yield b"x" * MIB
    yield b'"}]}'


async def _read_page(config: AccountConfig) -> Any:
    async with EmagClient(config, budget=InProcessRateBudget(FAST)) as client:
        return await client.read_products_page(1)


# -- a dripping server ------------------------------------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize("where", ["body", "head"])
async def test_a_server_dripping_its_answer_is_cut_off_at_the_attempts_bound(where: str) -> None:
    # One byte every 0.2 s: each read waits far less than the 1 s read timeout, so only a bound on the whole
    # attempt (read plus connect timeout, 2 s here) ends the call; the whole answer would take 60 s.
    body = PAGE_START + b" " * 300 + b"]}"
    head = _head(len(body))
    if where == "head":
        server_body, head = head + body, b""
    else:
        server_body = body
    with RawEmag(head, server_body, drip=1, every=0.2) as emag:
        with pytest.raises(EmagTransientError) as caught:
            await _read_page(emag.config())
        assert emag.hung_up.wait(5)
    assert "no answer within 1s" in str(caught.value)
    assert emag.requests == 1
    assert emag.sent < len(server_body) // 4  # the client hung up long before the answer could finish


# -- answers larger than EMAG_MAX_RESPONSE_BYTES ----------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked-or-unknown"])
async def test_a_page_past_the_byte_cap_fails_at_once_unread_and_says_what_to_do(declared: bool) -> None:
    size = 64 * MIB
    length = len(b"".join(_page_of(0))) + size if declared else None
    with RawEmag(_head(length), lambda: _page_of(size)) as emag:
        with pytest.raises(EmagResponseTooLargeError) as caught:
            await _read_page(emag.config(max_response_bytes=MIB, max_attempts=4))
        emag.hung_up.wait(5)
    message = str(caught.value)
    assert "product_offer/read page 1 of account main" in message
    assert "EMAG_MAX_RESPONSE_BYTES (1048576)" in message and "raise EMAG_MAX_RESPONSE_BYTES" in message
    assert emag.requests == 1  # a permanent problem of that page: not retried
    assert emag.sent < 16 * MIB  # the rest of the 64 MiB was never downloaded


@pytest.mark.timeout(60)
async def test_a_small_gzip_body_that_unpacks_past_the_cap_is_refused() -> None:
    bomb = gzip.compress(PAGE_START + b'{"id":1,"description":"' + b"0" * (64 * MIB) + b'"}]}')
    assert len(bomb) < MIB
    with RawEmag(_head(len(bomb), "Content-Encoding: gzip"), bomb) as emag, pytest.raises(EmagResponseTooLargeError):
        await _read_page(emag.config(max_response_bytes=MIB))


async def test_a_page_within_the_cap_is_read_whole_also_gzipped() -> None:
    page = b"".join(_page_of(MIB // 2))
    for head, body in [(_head(len(page)), page), (_head(None, "Content-Encoding: gzip"), gzip.compress(page))]:
        with RawEmag(head, body) as emag:
            read = await _read_page(emag.config(max_response_bytes=MIB))
        assert [offer.id for offer in read.offers] == [1]


def test_emag_max_response_bytes_reaches_every_account() -> None:
    settings = load_settings(
        _env_file=None, emag_main_username="u", emag_main_password="p", emag_max_response_bytes=2 * MIB
    )
    assert account_config(settings, "main").max_response_bytes == 2 * MIB
    assert (
        account_config(
            load_settings(_env_file=None, emag_main_username="u", emag_main_password="p"), "main"
        ).max_response_bytes
        == 32 * MIB
    )


# -- counts no catalogue holds ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "read"),
    [("99999999999", MAX_COUNT), ("99999999999999999999999999", MAX_COUNT), ("-5", 0), ("1234", 1234)],
)
def test_a_count_is_clamped_to_what_the_schema_holds(sent: str, read: int, caplog: pytest.LogCaptureFixture) -> None:
    count = parse_count({"noOfItems": sent, "noOfPages": sent, "itemsPerPage": "100"}, 100)
    assert (count.items, count.pages) == (read, read)
    assert bool(caplog.records) == (read != 1234)


async def test_a_sync_of_both_accounts_whose_counts_overflow_an_integer_ends_instead_of_staying_running(
    clean_engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    huge = {"noOfItems": "99999999999", "noOfPages": "999999999", "itemsPerPage": "100"}
    with StandIn(products=5) as emag:
        emag.fail_next("envelope", count=2, route="product_offer/count", body={"isError": False, "results": huge})
        configs = {account: emag.config(account) for account in ("main", "fbe")}
        async with (
            session_factory(clean_engine)() as db,
            EmagProductSyncService(
                db=db, account_type="both", account_configs=configs, budget=InProcessRateBudget(FAST),
                triggered_by="test",
            ) as service,
        ):  # fmt: skip
            result = await service.sync_all_products(mode="full")
    assert result["status"] in ("completed", "partial"), result
    async with session_factory(clean_engine)() as session:
        run = (await session.scalars(select(EmagSyncLog))).one()
        progress = (await session.scalars(select(EmagSyncProgress))).all()
    assert run.status == result["status"]
    assert run.total_items == 2 * MAX_COUNT  # past INTEGER: the counters are BIGINT
    assert len(progress) == 2
    assert [len(await stored(clean_engine, a)) for a in ("main", "fbe")] == [5, 5]
    assert "noOfItems 99999999999, which no catalogue holds" in caplog.text
