"""Texts eMAG sends can never forge a log line, and reach errors, the database and the API short and on one line.

A hostile or broken eMAG answer (an error message, a 400's `errors[].field`, an "Invalid vendor ip [...]", a raw
body in the detailed log) that holds a line break followed by a made-up `... ERROR magflow.sync ... account=main`
must stay inside the line of the record that quoted it, so the guide's `grep ERROR` and `grep "account=main"`
never show a line magflow did not write.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.emag import (
    AccountConfig,
    EmagApiError,
    EmagClient,
    EmagRequestError,
    EmagTransientError,
    InProcessRateBudget,
    RateLimits,
)
from magflow.emag.errors import EMAG_TEXT_LIMIT, emag_text
from magflow.observability.logging import CONTINUATION, configure_logging, reset_logging
from magflow.testing.sandbox import Sandbox

from .conftest import SyncRunner, settings_for

FORGED_AT = "2026-12-02T10:00:00.000Z"
FORGED = f"{FORGED_AT} ERROR magflow.sync sync failed sync_id=forged account=main"
RECORD = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+ ")
# Every way a reader may end a line: grep and less (\n), terminals (\r), Python's splitlines (\v \f \x1c-\x1e
# \x85 U+2028 U+2029), JavaScript log viewers (U+2028 U+2029).
BREAKS = ["\n", "\r\n", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
FAST = RateLimits(per_second=1000, per_minute=60_000, orders_per_second=1000, orders_per_minute=60_000)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    levels = (root.level, logging.getLogger("magflow").level)
    yield
    reset_logging()
    root.setLevel(levels[0])
    logging.getLogger("magflow").setLevel(levels[1])


def physical_lines(path: Path) -> list[str]:
    """The file's lines as any reader may split them (grep on \\n, Python on every break in BREAKS)."""
    raw = path.read_bytes().decode("utf-8")
    assert raw.endswith("\n")
    return raw.splitlines()


def assert_no_forged_line(path: Path) -> list[str]:
    """Every line is a record magflow wrote, or a marked continuation of one; return the record lines."""
    lines = physical_lines(path)
    assert not [line for line in lines if line.startswith(FORGED_AT)]
    strays = [line for line in lines if not RECORD.match(line) and not line.startswith(CONTINUATION)]
    assert strays == []
    assert path.read_bytes().decode("utf-8").count("\n") == len(lines)  # no break hides inside a line
    return [line for line in lines if RECORD.match(line)]


def test_a_break_in_a_message_or_a_field_stays_inside_its_line(tmp_path: Path) -> None:
    path = configure_logging(settings_for(tmp_path), console=False)
    log = logging.getLogger("magflow.emag")
    for n, brk in enumerate(BREAKS):
        log.warning("eMAG said %s account=fbe n=%d", f"oops{brk}{FORGED}", n)
    log.info("eMAG answered account=fbe", extra={"detail": f"x{FORGED}\n{FORGED}", "body": "\x1b[2J\x1b[31mred"})
    records = assert_no_forged_line(path)
    assert len(records) == len(BREAKS) + 1
    assert [line for line in records if " ERROR " in line[:40]] == []
    assert "oops\\n2026-12-02T10:00:00.000Z ERROR" in records[0]
    assert "oops\\u2028" in records[BREAKS.index("\u2028")]
    assert "\x1b" not in path.read_text() and "body=\\x1b[2J" in records[-1]


def test_traceback_lines_are_marked_and_cannot_pass_for_records(tmp_path: Path) -> None:
    path = configure_logging(settings_for(tmp_path), console=False)
    try:
        raise RuntimeError(f"eMAG said: bad\n{FORGED}\u2028{FORGED}")
    except RuntimeError:
        logging.getLogger("magflow.sync").warning("sync retry account=fbe", exc_info=True)
    logging.getLogger("magflow.sync").warning("stack account=fbe", stack_info=True)
    lines = physical_lines(path)
    records = assert_no_forged_line(path)
    assert len(records) == 2
    continuation = [line for line in lines if line.startswith(CONTINUATION)]
    assert any("Traceback (most recent call last):" in line for line in continuation)
    assert sum(FORGED in line for line in continuation) == 2  # shown, but marked as part of the traceback
    assert [line for line in lines if re.match(r"^\S+ ERROR ", line)] == []


def test_json_lines_hold_no_raw_line_separator(tmp_path: Path) -> None:
    path = configure_logging(settings_for(tmp_path, log_format="json"), console=False)
    for brk in BREAKS:
        logging.getLogger("magflow.emag").warning("eMAG said %s", f"oops{brk}{FORGED}", extra={"field": brk})
    entries = [json.loads(line) for line in physical_lines(path)]
    assert len(entries) == len(BREAKS)
    assert [e["message"] for e in entries] == [f"eMAG said oops{brk}{FORGED}" for brk in BREAKS]  # lossless


def test_emag_text_is_one_line_and_capped() -> None:
    assert emag_text("plain text") == "plain text"
    assert emag_text(f"a\r\n{FORGED}\u2028b\x00c\ud83d") == f"a\\r\\n{FORGED}\\u2028b\\x00c\\ud83d"
    long = emag_text("x" * 100_000)
    assert len(long) < EMAG_TEXT_LIMIT + 40 and long.endswith("(99500 more characters)")


async def test_an_ip_refusal_with_a_forged_line_reaches_log_and_database_on_one_line(
    sync_runner: SyncRunner, sandbox: Sandbox, clean_engine: AsyncEngine, tmp_path: Path
) -> None:
    path = configure_logging(settings_for(tmp_path), console=False)
    sandbox.state.set_ip_whitelisted(False, reported_ip=f"203.0.113.7\n{FORGED}\n" + "9" * 100_000)

    result = await sync_runner(account="main", mode="full")

    assert result["status"] == "failed"
    records = assert_no_forged_line(path)
    assert [line for line in records if "ERROR magflow.sync" in line[:40] and "sync_id=forged" in line[:120]] == []
    assert max(len(line) for line in records) < 4000
    async with clean_engine.connect() as conn:
        stored = (await conn.execute(text("SELECT error_message, errors::text FROM emag_sync_logs"))).one()
    for shown in (result["error_message"], stored.error_message, stored.errors):
        assert "\n" not in shown and "\u2028" not in shown
        assert "whitelist it in the eMAG seller portal" in shown and len(shown) < 3000


@pytest.fixture
async def hostile_emag() -> AsyncIterator[str]:
    """A real HTTP server standing in for a hostile eMAG: a 400 whose message and fields forge log lines (its
    body spread over lines), an `isError` answer with two thousand long messages, and a 502 page whose raw
    text holds forged lines (any other route)."""
    bad_request = (
        b'{"message": '
        + orjson.dumps(f"Invalid filter\n{FORGED}\n" + "m" * 50_000)
        + b',\n"errors": [\n'
        + b",\n".join(orjson.dumps({"field": f"status\n{FORGED}", "message": "x" * 5_000}) for _ in range(500))
        + b"\n]}\n"
    )
    refused = orjson.dumps({"isError": True, "messages": [f"no\n{FORGED}" + "y" * 1_000] * 2_000})
    broken = f"<html>Bad gateway\n{FORGED}\r\n{FORGED}\u2028{FORGED}</html>".encode()
    answers = {b"product_offer/read": (b"400 Bad Request", bad_request), b"product_offer/count": (b"200 OK", refused)}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
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
            route = head.split(b" ")[1].rpartition(b"/api-3/")[2]
            status, body = answers.get(route, (b"502 Bad Gateway", broken))
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nConnection: close\r\n"
                + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )  # fmt: skip
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/api-3"
    server.close()
    await server.wait_closed()


async def test_a_hostile_400_and_raw_bodies_stay_on_their_lines_and_errors_stay_short(
    hostile_emag: str, tmp_path: Path
) -> None:
    path = configure_logging(settings_for(tmp_path), console=False)
    config = AccountConfig(
        account="main", username="u", password="p", base_url=hostile_emag, max_attempts=1, detailed_log=True
    )
    async with EmagClient(config, budget=InProcessRateBudget(FAST)) as client:
        with pytest.raises(EmagRequestError) as rejected:
            await client.read_products_page(1)
        with pytest.raises(EmagApiError) as refused:
            await client.count_products()
        with pytest.raises(EmagTransientError) as failed:
            await client.acknowledge_order(1)
    for error in (rejected.value, refused.value, failed.value):
        shown = str(error)
        assert "\n" not in shown and len(shown) < 3000, len(shown)
        logging.getLogger("magflow.sync").error("sync stopped account=main reason=%s", error)
    assert rejected.value.field is not None and "\n" not in rejected.value.field
    assert len(rejected.value.emag_message) <= EMAG_TEXT_LIMIT + 40
    assert len(rejected.value.fields) <= 20 and len(refused.value.messages) <= 20
    records = assert_no_forged_line(path)
    assert sum(" magflow.emag.wire eMAG response account=main" in line for line in records) == 3
