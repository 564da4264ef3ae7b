"""Issue 19, item 9: `magflow serve` hangs up on clients that never finish their request head, refuses heads
larger than it needs, and answers 503 past its concurrency limit instead of taking every connection."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .serve_process import MagflowServe, closed_by_server, connect


@pytest.fixture(scope="module")
def impatient(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MagflowServe]:
    """`magflow serve` that gives a request head one second."""
    server = MagflowServe(database_url, tmp_path_factory.mktemp("impatient"), "--header-timeout", "1").start()
    yield server
    server.stop()


def test_a_client_that_drips_its_headers_is_disconnected(impatient: MagflowServe) -> None:
    sock = connect(impatient.port)
    try:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for line in range(40):  # one header line every half second: 20 s, never the blank line
            answer = closed_by_server(sock, wait=0.5)
            if answer is not None:
                assert answer.startswith(b"HTTP/1.1 408") or answer == b"", answer
                return
            try:
                sock.sendall(b"X-Drip-%d: y\r\n" % line)
            except (BrokenPipeError, ConnectionResetError):
                return
    finally:
        sock.close()
    raise AssertionError("the server kept a connection whose headers were still dripping after 20 s")


def test_a_client_that_sends_nothing_is_disconnected(impatient: MagflowServe) -> None:
    sock = connect(impatient.port)
    try:
        answer = closed_by_server(sock, wait=20)
    finally:
        sock.close()
    assert answer is not None, "the server kept a silent connection open for 20 s"


def test_a_request_head_over_64_kib_is_refused(impatient: MagflowServe) -> None:
    sock = connect(impatient.port)
    try:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (2 * 1024 * 1024) + b"\r\n\r\n")
        answer = closed_by_server(sock, wait=10)
    finally:
        sock.close()
    assert answer is not None and not answer.startswith(b"HTTP/1.1 200"), answer
    # A normal request still works afterwards.
    assert httpx.get(impatient.url + "/health", timeout=10).status_code == 200


def test_connections_past_the_limit_get_503(database_url: str, tmp_path: Path) -> None:
    server = MagflowServe(database_url, tmp_path, "--limit-concurrency", "3", "--header-timeout", "30").start()
    idle = []
    try:
        for _ in range(3):
            sock = connect(server.port)
            sock.sendall(b"GET /health HTTP/1.1\r\n")  # a head that is never finished
            idle.append(sock)
        time.sleep(0.5)
        with httpx.Client(timeout=10) as http:
            assert http.get(server.url + "/health").status_code == 503
        for sock in idle:
            sock.close()
        deadline = time.monotonic() + 10
        while httpx.get(server.url + "/health", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "the server stayed at its limit after the idle clients left"
            time.sleep(0.1)
    finally:
        for sock in idle:
            sock.close()
        server.stop()


def test_a_refused_client_that_keeps_sending_still_gets_its_answer(impatient: MagflowServe) -> None:
    # The answer goes out before the body is read; the server then discards the rest instead of resetting the
    # connection under the client (which would lose the answer).
    product = impatient.url + "/api/v1/emag/products/products/00000000-0000-0000-0000-000000000000"
    body = b'{"stock":[' + b"{}," * 700_000 + b"{}]}"  # 2 MiB: over the limit, and more than socket buffers hold
    with httpx.Client(timeout=30) as http:
        refused = http.patch(product, content=body, headers={"Authorization": "Bearer mgf_unknown"})
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_token"
        assert http.get(impatient.url + "/health").status_code == 200
