"""A real `magflow serve` process for the security tests, and raw-socket helpers to talk HTTP the way a hostile
client does (a body that never ends, headers that drip)."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def serve_env(database_url: str, workdir: Path, **extra: str) -> dict[str, str]:
    """The environment of a `magflow serve` on the test database: no eMAG account, no broker, its own log."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMAG_", "MAGFLOW_", "FORWARDED_"))}
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL="",
        CELERY_BROKER_URL="",
        LOG_FILE=str(workdir / "emag_sync.log"),
        MAGFLOW_DATA_DIR=str(workdir / "data"),
    )
    env.update(extra)
    return env


class MagflowServe:
    """`python -m magflow serve --port N ARGS` in a working directory of its own (so no stray .env is read)."""

    def __init__(self, database_url: str, workdir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.output = workdir / "serve.out"
        self.log_file = workdir / "emag_sync.log"
        self.command = [sys.executable, "-m", "magflow", "serve", "--port", str(self.port), *args]
        self.env = serve_env(database_url, workdir, **(env or {}))
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, within: float = 60) -> MagflowServe:
        with self.output.open("wb") as out:
            self.process = subprocess.Popen(
                self.command, env=self.env, cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + within
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"magflow serve did not start:\n{self.output.read_text(errors='replace')}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def connect(port: int, timeout: float = 15) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one HTTP/1.1 answer with a Content-Length (the API's JSON answers)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"the server closed the connection without an answer (got {data[:200]!r})")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def closed_by_server(sock: socket.socket, wait: float) -> bytes | None:
    """What the server sent before hanging up, if it hung up within `wait` seconds; None if still open."""
    received = b""
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([sock], [], [], left)
        if not readable:
            return None
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return received
        if not chunk:
            return received
        received += chunk
    return None
