"""`magflow sandbox` takes every switch as a flag (issue 13)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

MAGFLOW = str(Path(sys.executable).with_name("magflow"))
ENV = {**os.environ, "NO_COLOR": "1"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def started(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    port = _free_port()
    log = tmp_path / "sandbox.log"
    flags = ["--body-style", "wrapped", "--error-style", "http400", "--platform", "hu", "--gzip", "--results-object"]
    flags += ["--rate-scope", "ip", "--rate-window", "fixed", "--count-rejected", "--retry-after"]
    flags += ["--iserror", "string", "--limit-before-auth", "--insert-at", "front", "--empty-objects-as-lists"]
    flags += ["--product-sort", "id_desc", "--sparse-products", "--fault", "captive_html:1@vat/read", "--no-errors-key"]
    command = [MAGFLOW, "sandbox", "--port", str(port), "--products", "120", *flags]
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=ENV)
        try:
            yield port, log
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_the_sandbox_command_sets_every_switch_it_is_given(started: tuple[int, Path]) -> None:
    port, log = started
    auth = ("sandbox-main", "sandbox-main-pass")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}/api-3", auth=auth) as http:
        deadline = time.monotonic() + 30
        while True:
            try:
                captive = http.post("/vat/read", json={})
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        page = http.post("/product_offer/read", json={"data": {"currentPage": 2, "itemsPerPage": 10}})
        rejected = http.post("/product_offer/read", json={"data": {"status": "x"}})
    assert captive.headers["content-type"] == "text/html"
    assert page.headers["content-encoding"] == "gzip"
    body = page.json()
    assert body["isError"] == "false" and "errors" not in body
    rows = list(body["results"].values())
    assert [r["id"] for r in rows] == list(range(100_110, 100_100, -1)) and rows[0]["currency"] == "HUF"
    assert rows[0]["commission"] is None
    assert rejected.status_code == 400
    printed = log.read_text()
    assert "body_style=data" in printed and "fault: captive_html:1@vat/read" in printed


def test_a_bad_switch_value_is_refused_with_the_choices() -> None:
    done = subprocess.run(
        [MAGFLOW, "sandbox", "--port", str(_free_port()), "--body-style", "xml"],
        capture_output=True, text=True, env=ENV, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "body_style must be one of" in done.stdout + done.stderr
